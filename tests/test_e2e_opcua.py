"""OPC UA through the whole agent: subscribed and polled nodes of the simulator, a waveform array analysed
on the gateway, summaries and vibration results at a real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers.sim.opcua_server import OpcUaSimServer
from drivers.sim.plant import Plant
from drivers.sim.vibration import MachineVibration
from edge_agent.agent import Agent
from edge_agent.config import load_config_data

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, free_port
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, free_port  # type: ignore[no-redef]

pytestmark = pytest.mark.integration
PREFIX = "edge/test-site/gw-ua"


async def test_subscriptions_polls_and_waveforms_reach_the_broker(mosquitto: Mosquitto, tmp_path: Path) -> None:
    vibration = MachineVibration(12800.0, 24.7, scenario="outer_race", seed=3, ramp_s=1.0)
    server = OpcUaSimServer(Plant(seed=3), port=0, vibration=vibration, update_interval_s=0.2,
                            waveform_samples=16384, waveform_interval_s=0.5)
    await server.start()
    cfg = load_config_data({
        "agent": {"id": "gw-ua", "site": "test-site", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": mosquitto.url},
        "devices": [{
            "name": "pump", "protocol": "opcua", "endpoint": server.endpoint, "poll_interval": "500ms",
            "points": [
                {"name": "speed", "node": "ns=2;s=Motor.Speed", "mode": "subscribe", "sampling_interval": "100ms",
                 "unit": "rpm"},
                {"name": "bearing_temp", "node": "ns=2;s=Motor.BearingTemperature", "unit": "degC"},
                {"name": "vib_de", "node": "ns=2;s=Pump.VibrationDE", "kind": "waveform",
                 "sample_rate_node": "ns=2;s=Pump.VibrationDE.SampleRate", "unit": "g"},
            ],
        }],
        "assets": [{"name": "pump-1", "points": ["pump/speed", "pump/bearing_temp", "pump/vib_de"],
                    "machine": {"group": 2, "foundation": "rigid", "speed_point": "pump/speed"},
                    "bearings": [{"point": "pump/vib_de", "model": "SKF-6205"}]}],
        "summaries": {"interval": "1s"},
    }, "opcua-test")
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/#").start()
    agent = Agent(cfg)
    try:
        await agent.start()

        def done(msgs: list[tuple[str, bytes]]) -> bool:
            summaries = [json.loads(p) for t, p in msgs if t == f"{PREFIX}/summary/pump-1"]
            vib = [t for t, _ in msgs if t.startswith(f"{PREFIX}/vibration/pump-1/")]
            return bool(vib) and any(s["points"]["pump/speed"]["good"] >= 3
                                     and s["points"]["pump/bearing_temp"]["good"] >= 1 for s in summaries)

        msgs = await collector.wait_until(done, 60)
    finally:
        await agent.stop()
        collector.close()
        await server.stop()
    summary = next(json.loads(p) for t, p in msgs if t == f"{PREFIX}/summary/pump-1"
                   and json.loads(p)["points"]["pump/speed"]["good"] >= 3)
    speed = summary["points"]["pump/speed"]
    assert 1300 < speed["mean"] < 1600 and speed["unit"] == "rpm"
    result = json.loads(next(p for t, p in msgs if t.startswith(f"{PREFIX}/vibration/pump-1/")))
    assert result["point"] == "pump/vib_de" and result["fs_hz"] == pytest.approx(12800.0)
    assert result["iso_zone"] in "ABCD" and result["velocity_rms_mm_s"] > 0
    assert result["running_speed_source"] == "given"
    assert "bearing_outer_race" in result["diagnosis"], result["diagnosis"]


async def test_raw_telemetry_carries_subscribed_points_every_cycle(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Subscribed (pushed) points are in the device's raw telemetry each poll cycle, with the polled ones; an
    all-subscribed device still sends one message per poll_interval; a lost server turns them bad."""
    server = OpcUaSimServer(Plant(seed=5), port=0, update_interval_s=0.2)
    await server.start()
    speed = {"name": "speed", "node": "ns=2;s=Motor.Speed", "mode": "subscribe", "sampling_interval": "100ms"}
    cfg = load_config_data({
        "agent": {"id": "gw-ua", "site": "test-site", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": mosquitto.url},
        "devices": [
            {"name": "mixed", "protocol": "opcua", "endpoint": server.endpoint, "poll_interval": "500ms",
             "publish_raw": True,
             "points": [speed, {"name": "bearing_temp", "node": "ns=2;s=Motor.BearingTemperature"}]},
            {"name": "pushed", "protocol": "opcua", "endpoint": server.endpoint, "poll_interval": "500ms",
             "publish_raw": True, "points": [speed]},
        ],
    }, "opcua-raw-test")
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/telemetry/#").start()
    agent = Agent(cfg)

    def telemetry(msgs: list[tuple[str, bytes]], device: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in msgs if t == f"{PREFIX}/telemetry/{device}"]

    try:
        await agent.start()
        msgs = await collector.wait_until(
            lambda m: len([b for b in telemetry(m, "pushed") if "speed" in b["values"]]) >= 4
            and any({"speed", "bearing_temp"} <= set(b["values"]) for b in telemetry(m, "mixed")), 30)
        pushed = [b for b in telemetry(msgs, "pushed") if "speed" in b["values"]]
        mixed = next(b for b in telemetry(msgs, "mixed") if {"speed", "bearing_temp"} <= set(b["values"]))
        await server.stop()  # the link goes: the subscribed point is sent as bad, with no value
        msgs = await collector.wait_until(
            lambda m: any(b["quality"].get("speed") == "bad" for b in telemetry(m, "pushed")), 30)
    finally:
        await agent.stop()
        collector.close()
        await server.stop()
    assert all(1300 < b["values"]["speed"] < 1600 and b["quality"] == {} for b in pushed[:4])
    cycles = [b["cycle"] for b in pushed[:4]]  # on the 500 ms poll grid, one message per tick
    assert all(c % 500 == 0 for c in cycles) and len(set(cycles)) == len(cycles), cycles
    assert 1300 < mixed["values"]["speed"] < 1600 and 0 < mixed["values"]["bearing_temp"] < 150
    lost = next(b for b in telemetry(msgs, "pushed") if b["quality"].get("speed") == "bad")
    assert lost["values"]["speed"] is None


async def test_subscribed_points_are_bad_not_missing_while_the_server_is_unreachable(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The agent starts while the OPC UA server is down: its subscribed points are sent bad (value null)
    from the first cycles, then good once the server is up and the subscription delivers."""
    port = free_port()
    cfg = load_config_data({
        "agent": {"id": "gw-ua", "site": "test-site", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": mosquitto.url},
        "devices": [{"name": "pushed", "protocol": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{port}",
                     "poll_interval": "500ms", "publish_raw": True,
                     "points": [{"name": "speed", "node": "ns=2;s=Motor.Speed", "mode": "subscribe",
                                 "sampling_interval": "100ms"}]}],
    }, "opcua-down-test")
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/telemetry/#").start()
    agent = Agent(cfg)
    server = OpcUaSimServer(Plant(seed=5), port=port, update_interval_s=0.2)

    def bodies(msgs: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in msgs if t == f"{PREFIX}/telemetry/pushed"]

    try:
        await agent.start()
        msgs = await collector.wait_until(lambda m: any(b["quality"].get("speed") == "bad" for b in bodies(m)), 30)
        down = next(b for b in bodies(msgs) if b["quality"].get("speed") == "bad")
        await server.start()
        msgs = await collector.wait_until(
            lambda m: any(b["quality"] == {} and "speed" in b["values"] for b in bodies(m)), 60)
    finally:
        await agent.stop()
        collector.close()
        await server.stop()
    assert down["values"] == {"speed": None}
    up = next(b for b in bodies(msgs) if b["quality"] == {} and "speed" in b["values"])
    assert 1300 < up["values"]["speed"] < 1600
