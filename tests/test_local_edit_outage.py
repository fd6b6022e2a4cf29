"""A local edit made while the broker is down stays: commit-confirm protects a working uplink from a change,
it must not throw away an engineer's on-site edit because the uplink was already down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.runtime import AgentService

try:
    from tests.mqtt_support import Mosquitto, free_port, poll_until
except ImportError:  # tests/ is not a package
    from mqtt_support import Mosquitto, free_port, poll_until  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent


def demo_config(tmp_path: Path, broker_port: int) -> Path:
    text = (ROOT / "config" / "demo.yaml").read_text()
    text = (text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{broker_port}")
            .replace("port: 5020", f"port: {free_port()}").replace("./var/demo", str(tmp_path / "data")))
    path = tmp_path / "config.yaml"
    path.write_text(text + "\nremote:\n  confirm_window: 2s\n")
    return path


async def test_a_local_edit_during_a_broker_outage_is_kept(mosquitto: Mosquitto, tmp_path: Path) -> None:
    path = demo_config(tmp_path, mosquitto.port)
    service = AgentService(load_config(path), path, path.read_text())
    await service.start()
    try:
        publisher = service.agent.publisher
        assert publisher is not None and service.watch is not None
        await poll_until(lambda: publisher.connected, 20, "connected")
        mosquitto.stop()  # the uplink is down; the technician edits a limit on site
        await poll_until(lambda: not publisher.connected, 20, "disconnected")
        assert "high: 80" in path.read_text()
        path.write_text(path.read_text().replace("high: 80", "high: 70"))
        service.request_reload()
        await poll_until(lambda: service.watch is not None and service.watch.last_outcome is not None, 20,
                         "the edit applied")
        await asyncio.sleep(3.0)  # past the confirm window
        assert service.watch.last_outcome is not None and service.watch.last_outcome.result == "accepted"
        assert "high: 70" in path.read_text()
        assert [a.rule.high for a in service.agent.alarms.limit_alarms["plc/bearing_temp"]] == [70.0]
    finally:
        await service.stop()


async def test_sighup_reloads_the_file_with_the_remote_service_off(mosquitto: Mosquitto, tmp_path: Path) -> None:
    path = demo_config(tmp_path, mosquitto.port)
    path.write_text(path.read_text().replace("remote:\n  confirm_window: 2s\n", "remote:\n  enabled: false\n"))
    service = AgentService(load_config(path), path, path.read_text())
    await service.start()
    try:
        assert service.remote is None and service.watch is not None
        path.write_text(path.read_text().replace("high: 80", "high: 70"))
        service.request_reload()  # systemctl reload
        await poll_until(lambda: [a.rule.high for a in service.agent.alarms.limit_alarms["plc/bearing_temp"]]
                         == [70.0], 20, "the edit applied")
        assert service.agent.cfg.rules == load_config(path).rules
    finally:
        await service.stop()
