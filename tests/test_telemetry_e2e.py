"""Raw telemetry end to end over real sockets: simulated PLC -> agent -> outbox -> real Mosquitto -> subscriber.

The simulator's plant runs on a clock the test sets, so every value the agent publishes can be checked
against the registers the simulator serves, decoded independently with the codec.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import pytest_asyncio

from drivers.modbus.codec import decode_point
from drivers.modbus.spec import ModbusPointSpec
from drivers.sim.modbus_server import ModbusSimServer
from drivers.sim.plant import Plant
from drivers.sim.register_map import REGISTER_MAP
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, load_config_data
from edge_agent.records import Priority

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, poll_until
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, poll_until  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

PREFIX = "edge/test-site/gw-raw"
TOPIC = f"{PREFIX}/telemetry/plc"
POINT_NAMES = ("speed", "current", "ambient_temp", "bearing_temp", "power", "level")
SPECS: dict[str, ModbusPointSpec] = {e.point.name: e.point for e in REGISTER_MAP if e.point.name in POINT_NAMES}


class Clock:
    """The simulated plant's time, in seconds, set by the test."""

    def __init__(self) -> None:
        self.t_s = 0.0

    def __call__(self) -> float:
        return self.t_s


class QosCollector(MqttCollector):
    """A collector that also keeps the QoS each message was delivered with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.qos_seen: list[int] = []

    def _on_message(self, client: paho.Client, ud: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.qos_seen.append(msg.qos)
        super()._on_message(client, ud, msg)


@pytest_asyncio.fixture
async def plc() -> AsyncIterator[tuple[ModbusSimServer, Clock]]:
    """The simulated PLC; its plant moves only when the test sets the clock and calls refresh()."""
    clock = Clock()
    server = ModbusSimServer(Plant(seed=11), port=0, update_interval_s=None, clock=clock)
    await server.start()
    try:
        yield server, clock
    finally:
        await server.stop()


def served_values(server: ModbusSimServer) -> dict[str, Any]:
    """What the simulator serves for each point, decoded here independently of the agent."""
    return {name: decode_point(p, server.registers(p.table, p.address, p.register_count))
            for name, p in SPECS.items()}


def config(data_dir: Path, broker_url: str, port: int, **raw: Any) -> AgentConfig:
    points = []
    for name in POINT_NAMES:
        p = SPECS[name]
        point: dict[str, Any] = {"name": name, "table": p.table, "address": p.address, "type": p.type,
                                 "byte_order": p.byte_order, "scale": p.scale, "unit": p.unit}
        point.update(raw.pop(f"point_{name}", {}))
        points.append(point)
    return load_config_data({
        "agent": {"id": "gw-raw", "site": "test-site", "data_dir": str(data_dir)},
        "mqtt": {"url": broker_url, "keepalive": "5s"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
                     "poll_interval": "100ms", "timeout": "2s", "points": points, **raw}],
        "summaries": {"interval": "60s"},
    }, "test-config")


def bodies(collector: MqttCollector) -> list[dict[str, Any]]:
    return [json.loads(p) for p in collector.payloads(TOPIC)]


@pytest.mark.parametrize("qos", [0, 1])
async def test_every_cycle_carries_the_served_values(mosquitto: Mosquitto, plc: tuple[ModbusSimServer, Clock],
                                                     tmp_path: Path, qos: int) -> None:
    server, _ = plc
    expected = served_values(server)
    collector = QosCollector(mosquitto.host, mosquitto.port, TOPIC, qos=1).start()
    agent = Agent(config(tmp_path / "data", mosquitto.url, server.port, publish_raw=True, raw_qos=qos))
    try:
        await agent.start()
        await collector.wait_until(lambda m: len(m) >= 6, 30)
    finally:
        await agent.stop()
        collector.close()
    got = bodies(collector)
    for body in got:
        assert body["device"] == "plc" and body["agent"] == "gw-raw" and body["v"] == 1
        assert body["values"] == expected
        assert body["quality"] == {}
        assert body["cycle"] % 100 == 0  # on the 100 ms poll grid
    cycles = [b["cycle"] for b in got]
    assert cycles == sorted(set(cycles)), "one message per cycle, in order"
    assert set(collector.qos_seen) == {qos}


async def test_on_change_sends_what_moved_beyond_its_deadband(
        mosquitto: Mosquitto, plc: tuple[ModbusSimServer, Clock], tmp_path: Path) -> None:
    server, clock = plc
    before = served_values(server)
    collector = MqttCollector(mosquitto.host, mosquitto.port, TOPIC).start()
    agent = Agent(config(tmp_path / "data", mosquitto.url, server.port, publish_raw="on_change",
                         heartbeat="1h", point_speed={"publish_deadband": 10_000},
                         point_current={"publish_deadband_percent": 50}))
    runner = agent.devices["plc"]
    try:
        await agent.start()
        await collector.wait_until(lambda m: len(m) >= 1, 30)
        first_cycles = runner.cadence.cycles
        await poll_until(lambda: runner.cadence.cycles >= first_cycles + 5, 30, "five more poll cycles")
        assert len(collector.payloads(TOPIC)) == 1, "unchanged values are not sent again before the heartbeat"
        clock.t_s = 5400.0
        server.refresh()
        after = served_values(server)
        await collector.wait_until(lambda m: len(m) >= 2, 30)
        cycles_after_change = runner.cadence.cycles
        await poll_until(lambda: runner.cadence.cycles >= cycles_after_change + 5, 30, "five more poll cycles")
    finally:
        await agent.stop()
        collector.close()
    first, second, *rest = bodies(collector)
    assert first["values"] == before and rest == []
    assert after["speed"] != before["speed"], "precondition: the plant's speed moved"
    moved = {name for name in POINT_NAMES if after[name] != before[name]}
    moved.discard("speed")  # within its 10 000 rpm deadband
    if abs(after["current"] - before["current"]) <= 0.5 * abs(before["current"]):
        moved.discard("current")  # within 50 % of the last sent value
    assert moved, "precondition: some point moved beyond its deadband"
    assert second["values"] == {name: after[name] for name in moved}


async def test_heartbeat_resends_unchanged_values(mosquitto: Mosquitto, plc: tuple[ModbusSimServer, Clock],
                                                  tmp_path: Path) -> None:
    server, _ = plc
    expected = served_values(server)
    collector = MqttCollector(mosquitto.host, mosquitto.port, TOPIC).start()
    agent = Agent(config(tmp_path / "data", mosquitto.url, server.port, publish_raw="on_change",
                         heartbeat="500ms"))
    try:
        await agent.start()
        await collector.wait_until(lambda m: len(m) >= 4, 30)
    finally:
        await agent.stop()
        collector.close()
    got = bodies(collector)
    assert all(b["values"] == expected for b in got)
    gaps = [b["cycle"] - a["cycle"] for a, b in itertools.pairwise(got)]
    # 500 ms apart, or a whole number of ticks more when a loaded machine skipped a tick
    assert all(g >= 500 and g % 100 == 0 for g in gaps), gaps
    assert 500 in gaps, gaps


async def test_raw_telemetry_is_the_first_class_evicted(plc: tuple[ModbusSimServer, Clock],
                                                        tmp_path: Path) -> None:
    server, _ = plc
    # No broker at all: everything stays in a 10 kB outbox, which must keep the summaries and drop telemetry.
    cfg = config(tmp_path / "data", "mqtt://127.0.0.1:1", server.port, publish_raw=True)
    cfg = cfg.model_copy(update={"buffer": cfg.buffer.model_copy(update={"max_size": 10_000})})
    agent = Agent(cfg)
    try:
        await agent.start()
        assert agent.outbox is not None
        outbox = agent.outbox
        await agent.pipeline.close_summary_interval(0.0)
        await poll_until(lambda: outbox.stats()["evicted"].get("telemetry", 0) > 0, 30, "telemetry evicted")
        stats = outbox.stats()
    finally:
        await agent.stop(drain_timeout_s=0.5)
    assert stats["evicted"].get("summary", 0) == 0 and stats["depth"].get("summary", 0) >= 1
    assert stats["depth"].get("telemetry", 0) >= 1
    assert Priority.TELEMETRY < Priority.SUMMARY


MODULE_CHECK = textwrap.dedent("""
    import asyncio, json, sys
    from edge_agent.agent import Agent
    from edge_agent.config import load_config_data

    async def main() -> None:
        cfg = load_config_data(json.loads(sys.argv[1]))
        agent = Agent(cfg)
        await agent.start()
        try:
            for _ in range(600):
                if agent.pipeline.readings_good >= 12:
                    break
                await asyncio.sleep(0.05)
        finally:
            await agent.stop()
        print(json.dumps({"readings": agent.pipeline.readings_good,
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("asyncua", "scipy"))}))

    asyncio.run(main())
""")


def loaded_heavy_modules(cfg_data: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", MODULE_CHECK, json.dumps(cfg_data)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["readings"] >= 12
    return result


def modbus_only(data_dir: Path, broker_url: str, port: int) -> dict[str, Any]:
    return {
        "agent": {"id": "gw-raw", "site": "test-site", "data_dir": str(data_dir)},
        "mqtt": {"url": broker_url},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
                     "poll_interval": "100ms", "publish_raw": True,
                     "points": [{"name": "speed", "address": 0}, {"name": "current", "address": 1}]}],
        "rules": [{"point": "plc/speed", "high": 5000}],
    }


async def test_modbus_only_agent_loads_no_opcua_stack(mosquitto: Mosquitto, plc: tuple[ModbusSimServer, Clock],
                                                      tmp_path: Path) -> None:
    server, _ = plc
    result = await asyncio.to_thread(loaded_heavy_modules, modbus_only(tmp_path / "d", mosquitto.url, server.port))
    assert not [m for m in result["loaded"] if m.startswith("asyncua")]


async def test_modbus_only_agent_loads_no_scipy(mosquitto: Mosquitto, plc: tuple[ModbusSimServer, Clock],
                                                tmp_path: Path) -> None:
    server, _ = plc
    result = await asyncio.to_thread(loaded_heavy_modules, modbus_only(tmp_path / "d", mosquitto.url, server.port))
    assert not [m for m in result["loaded"] if m.startswith("scipy")]
