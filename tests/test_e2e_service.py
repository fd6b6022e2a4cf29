"""The agent as a service, end to end: `AgentService` with its config file, the engineer's
`edge-agent remote` CLI, a real Mosquitto and the simulated PLC.

Push a valid config -> applied live (only the rules restart, devices keep their connections); push an
invalid one -> refused with line numbers and the old config keeps running; a local edit of the file is
picked up; `read` returns live values.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from drivers.sim.modbus_server import ModbusSimServer
from edge_agent.config import load_config
from edge_agent.remote.cli import main as remote_main
from edge_agent.runtime import AgentService

try:
    from tests.mqtt_support import Mosquitto, poll_until
    from tests.test_e2e_agent import frozen_plc
except ImportError:
    from mqtt_support import Mosquitto, poll_until  # type: ignore[no-redef]
    from test_e2e_agent import frozen_plc  # type: ignore[no-redef]

__all__ = ["frozen_plc"]
pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
PREFIX = "edge/demo-plant/gw-demo"


def service_config(tmp_path: Path, broker_port: int, plc_port: int) -> Path:
    text = (ROOT / "config/demo.yaml").read_text()
    text = (text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{broker_port}")
                .replace("port: 5020", f"port: {plc_port}")
                .replace("./var/demo", str(tmp_path / "data"))
                .replace("poll_interval: 1s", "poll_interval: 200ms"))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


async def remote(*argv: str, broker: Mosquitto, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(remote_main, [*argv, "--broker", broker.url, "--timeout", "30"])
    out = capsys.readouterr()
    return code, out.out + out.err


async def test_remote_push_applies_live_refuses_bad_and_reads(
        mosquitto: Mosquitto, frozen_plc: ModbusSimServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = service_config(tmp_path, mosquitto.port, frozen_plc.port)
    cfg = load_config(path)
    service = AgentService(cfg, path, path.read_text())
    await service.start()
    agent = service.agent
    try:
        await poll_until(lambda: agent.devices["plc"].driver.comms.state.value == "ok", 30, "plc up")
        plc_driver = agent.devices["plc"].driver

        code, out = await remote("cmd", PREFIX, "ping", broker=mosquitto, capsys=capsys)
        assert code == 0 and "pong from gw-demo" in out

        new_file = tmp_path / "push.yaml"
        new_file.write_text(path.read_text().replace("high: 80", "high: 70"))
        code, out = await remote("config", "push", PREFIX, str(new_file), "--wait", broker=mosquitto, capsys=capsys)
        assert code == 0, out
        assert "accepted" in out and "restarted: rules" in out
        assert agent.alarms.limit_alarms["plc/bearing_temp"][0].rule.high == 70
        assert agent.devices["plc"].driver is plc_driver, "a threshold change reconnected the device"
        assert "high: 70" in path.read_text(), "the accepted config was not persisted to the file"

        bad = tmp_path / "bad.yaml"
        bad.write_text(new_file.read_text().replace("type: float32, unit: degC", "type: flaot32, unit: degC"))
        line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if "flaot32" in s)
        code, out = await remote("config", "push", PREFIX, str(bad), "--wait", broker=mosquitto, capsys=capsys)
        assert code == 2, out
        assert f":{line}: devices[0].points[5].type: unknown type 'flaot32'" in out
        assert agent.alarms.limit_alarms["plc/bearing_temp"][0].rule.high == 70  # old config still runs
        assert "flaot32" not in path.read_text()

        code, out = await remote("cmd", PREFIX, "read", "points=plc/speed", "--json", broker=mosquitto,
                                 capsys=capsys)
        assert code == 0, out
        reply = json.loads(out)
        speed = json.dumps(reply)
        assert "plc/speed" in speed and "good" in speed

        # A local edit of the file goes through the same path (here: the watcher picks it up).
        path.write_text(path.read_text().replace("high: 70", "high: 65"))
        assert service.watch is not None
        service.request_reload()
        await poll_until(lambda: agent.alarms.limit_alarms["plc/bearing_temp"][0].rule.high == 65, 30,
                         "local edit applied")
    finally:
        await service.stop()


async def test_service_tells_systemd_and_serves_health_and_metrics(
        mosquitto: Mosquitto, frozen_plc: ModbusSimServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """READY/STATUS/STOPPING reach a real notify socket; /healthz and /metrics answer over a real socket."""
    import socket
    import urllib.request

    try:
        from tests.mqtt_support import free_port
    except ImportError:
        from mqtt_support import free_port  # type: ignore[no-redef]

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify.sock"
    notify.bind(str(notify_path))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    port = free_port()
    path = service_config(tmp_path, mosquitto.port, frozen_plc.port)
    path.write_text(path.read_text() + f"\nservice:\n  health: {{enabled: true, host: 127.0.0.1, port: {port}}}\n"
                    "  memory_trim_interval: 200ms\n")
    monkeypatch.setattr("edge_agent.config.service.MIN_TRIM_INTERVAL_S", 0.1)  # a trim within the test
    cfg = load_config(path)
    service = AgentService(cfg, path, path.read_text())
    messages: list[str] = []

    def drain() -> None:
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                return

    def get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    await service.start()
    try:
        agent = service.agent
        await poll_until(lambda: agent.devices["plc"].driver.comms.state.value == "ok"
                         and agent.publisher is not None and agent.publisher.connected, 30, "up")
        drain()
        assert any(m.startswith("READY=1") for m in messages), messages
        assert any("STATUS=" in m and "devices up" in m for m in messages), messages
        # The endpoint is served by the agent's own event loop: fetch from a thread.
        for _ in range(300):
            status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
            _, metrics = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
            if status == 200 and 'edge_agent_device_up{device="plc"} 1.0' in metrics \
                    and "edge_agent_published_records_total" in metrics \
                    and (not service.metrics.heap.can_trim or "edge_agent_native_heap_trims_total 0.0" not in metrics):
                break
            await asyncio.sleep(0.1)
        assert status == 200 and "ready" in body, body
        assert "edge_agent_published_records_total" in metrics and "edge_agent_poll" in metrics
        if service.metrics.heap.can_trim:  # glibc: the periodic trim ran
            assert "edge_agent_native_heap_trims_total 0.0" not in metrics, metrics
        if service.metrics.heap.stats() is not None:  # glibc >= 2.33: the C heap's gauges are exported
            assert "edge_agent_native_heap_in_use_bytes" in metrics and "edge_agent_native_heap_free_bytes" in metrics
    finally:
        await service.stop()
        drain()
        notify.close()
    assert any(m.startswith("STOPPING=1") for m in messages), messages
