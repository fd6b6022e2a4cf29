"""Shared pieces of the remote tests: a config, a running RemoteService on a real broker, a requester.

No tests here. The harness wires the real parts: PahoTransport to Mosquitto, FileConfigApplier with the
real config loader, ConfigHistory and AuditLog on disk. The supervisor's live-apply hook is a small real
function that reports which parts changed (device by device, rules, publisher).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.remote.applier import FileConfigApplier
from edge_agent.remote.audit import AuditLog
from edge_agent.remote.cli_session import CliSession
from edge_agent.remote.contracts import CommandHandler, HealthCheck
from edge_agent.remote.history import ConfigHistory
from edge_agent.remote.mqtt_client import BrokerOptions
from edge_agent.remote.service import RemoteService, RemoteSettings
from edge_agent.remote.transport_paho import PahoTransport

PREFIX = "edge/lab/gw-1"
AGENT_ID = "gw-1"
WAIT_S = 30.0

CONFIG_TEMPLATE = """\
agent:
  id: gw-1
  site: lab
  data_dir: {data_dir}
mqtt:
  url: {url}
  topic_prefix: edge/lab/gw-1
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    port: 5020
    points:
      - {{name: temp, table: input, address: 1, type: float32, unit: degC}}
      - {{name: setpoint, table: holding, address: 4, type: float32, writable: true}}
  - name: pump
    protocol: modbus_tcp
    host: 127.0.0.1
    port: 5021
    points:
      - {{name: flow, table: input, address: 0, type: uint16}}
rules:
  - point: plc/temp
    high: 80
    deadband: 2
"""


def make_config(data_dir: Path, url: str) -> str:
    """The test agent's config text."""
    return CONFIG_TEMPLATE.format(data_dir=data_dir, url=url)


def changed_parts(old: Any, new: Any) -> list[str]:
    """Which parts a supervisor would restart: each changed device, the publisher, the rules."""
    parts = []
    old_devices = {d.name: d.model_dump() for d in old.devices}
    for device in new.devices:
        if old_devices.get(device.name) != device.model_dump():
            parts.append(f"device:{device.name}")
    if old.mqtt != new.mqtt:
        parts.append("publisher")
    if old.rules != new.rules:
        parts.append("rules")
    return parts


async def broker_reachable(applier: FileConfigApplier) -> bool | str:
    """Health probe: can a TCP connection reach the broker of the running config?"""
    url = applier.config.mqtt.url
    options = BrokerOptions.from_url(url)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(options.host, options.port), 2.0)
    except (OSError, TimeoutError) as exc:
        return f"broker {url} unreachable ({type(exc).__name__})"
    writer.close()
    await writer.wait_closed()
    return True


class Harness:
    """A RemoteService for agent gw-1 on a real broker, plus an MQTT 5 requester."""

    def __init__(self, tmp_path: Path, url: str, *, settings: RemoteSettings | None = None,
                 commands: dict[str, CommandHandler] | None = None, with_health: bool = False,
                 ca_file: Path | None = None) -> None:
        self.url = url
        self.options = BrokerOptions.from_url(url, ca_file=ca_file)
        self.data_dir = tmp_path / "data"
        self.config_path = tmp_path / "agent.yaml"
        self.original_text = make_config(self.data_dir, url)
        self.config_path.write_text(self.original_text)
        self.history = ConfigHistory(self.data_dir, keep=5)
        self.changes: list[list[str]] = []
        self.applier = FileConfigApplier(self.config_path, self.history, on_change=self._on_change)
        self.audit = AuditLog(self.data_dir / "audit.jsonl", fsync=False)
        self.transport = PahoTransport(self.options, "gw-1-remote")
        health: HealthCheck | None = None
        if with_health:
            async def health() -> bool | str:
                return await broker_reachable(self.applier)
        self.service = RemoteService(PREFIX, AGENT_ID, self.transport, self.applier, commands or {}, self.audit,
                                     settings or RemoteSettings(config_rate_per_min=600, config_burst=50,
                                                                command_rate_per_min=600, command_burst=50),
                                     health=health)
        self.session = CliSession(self.options, timeout_s=WAIT_S)
        self.state_session = CliSession(self.options, timeout_s=WAIT_S)
        self._last_state: dict[str, Any] | None = None

    async def _on_change(self, old: Any, new: Any) -> list[str]:
        parts = changed_parts(old, new)
        self.changes.append(parts)
        return parts

    async def __aenter__(self) -> Harness:
        await self.transport.start()
        await self.service.start()
        await asyncio.to_thread(self.session.__enter__)
        await asyncio.to_thread(self.state_session.__enter__)
        await asyncio.to_thread(self.state_session.subscribe, f"{PREFIX}/config/state")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.session.close)
        await asyncio.to_thread(self.state_session.close)
        await self.service.close()
        await self.transport.close()

    async def request(self, suffix: str, payload: bytes | str | dict[str, Any], *,
                      timeout_s: float = WAIT_S) -> dict[str, Any]:
        """Publish on ``{prefix}/{suffix}`` with a response topic; return the first reply."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        return (await self.replies(suffix, data, count=1, timeout_s=timeout_s))[0]

    async def replies(self, suffix: str, data: bytes, *, count: int, timeout_s: float = WAIT_S
                      ) -> list[dict[str, Any]]:
        """Publish once and collect ``count`` replies carrying our correlation data."""
        correlation = uuid.uuid4().bytes

        def run() -> list[dict[str, Any]]:
            self.session.publish(f"{PREFIX}/{suffix}", data, correlation_data=correlation,
                                 response_topic=self.session.reply_topic)
            found: list[dict[str, Any]] = []
            for _ in range(count):
                message = self.session.wait_for(lambda m: m.correlation_data == correlation, timeout_s)
                if message is None:
                    raise TimeoutError(f"reply {len(found) + 1} of {count} to {suffix} not received "
                                       f"within {timeout_s} s")
                found.append(json.loads(message.payload))
            return found

        return await asyncio.to_thread(run)

    async def retained_state(self) -> dict[str, Any] | None:
        """The retained config/state as a fresh subscriber sees it (None when there is none)."""
        def fetch() -> list[Any]:
            with CliSession(self.options, timeout_s=WAIT_S) as session:
                return session.collect_retained(f"{PREFIX}/config/state")

        found = await asyncio.to_thread(fetch)
        if not found:
            return None
        state: dict[str, Any] = json.loads(found[-1].payload)
        return state

    async def wait_state(self, predicate: Callable[[dict[str, Any]], bool],
                         timeout_s: float = WAIT_S) -> dict[str, Any]:
        """Wait until a config/state message satisfying ``predicate`` arrives (or the last one did)."""
        if self._last_state is not None and predicate(self._last_state):
            return self._last_state

        def run() -> dict[str, Any] | None:
            for message in self.state_session.messages(timeout_s):
                if message.topic == f"{PREFIX}/config/state" and message.payload:
                    self._last_state = json.loads(message.payload)
                    if predicate(self._last_state):
                        return self._last_state
            return None

        state = await asyncio.to_thread(run)
        if state is None:
            raise TimeoutError(f"no matching config/state within {timeout_s} s; last: {self._last_state}")
        return state
