"""End to end over real sockets: simulated PLC -> agent -> outbox -> real Mosquitto -> a subscriber.

The simulator's plant is frozen (no periodic updates), so every reading of a point equals the plant value
encoded at start-up and the summaries have exact known answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.sim.modbus_server import ModbusSimServer
from drivers.sim.plant import Plant
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, load_config_data

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

PREFIX = "edge/test-site/gw-test"


@pytest_asyncio.fixture
async def frozen_plc() -> AsyncIterator[ModbusSimServer]:
    """The simulated PLC with its plant frozen at t=0 (values never change)."""
    server = ModbusSimServer(Plant(seed=7), port=0, update_interval_s=None)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def agent_config(data_dir: Path, broker_url: str, plc_port: int, summary_s: float, poll_s: float = 0.1,
                 publish_raw: bool = False) -> AgentConfig:
    """A config with one Modbus device and two assets, as plain data (like a JSON config push)."""
    return load_config_data({
        "agent": {"id": "gw-test", "site": "test-site", "data_dir": str(data_dir)},
        "mqtt": {"url": broker_url, "keepalive": "5s"},
        "devices": [{
            "name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": plc_port,
            "poll_interval": poll_s, "timeout": "1s", "publish_raw": publish_raw,
            "points": [
                {"name": "speed", "table": "holding", "address": 0, "type": "uint16", "unit": "rpm"},
                {"name": "current", "table": "holding", "address": 1, "type": "uint16", "scale": 0.01,
                 "unit": "A"},
                {"name": "bearing_temp", "table": "holding", "address": 8, "type": "float32", "unit": "degC"},
                {"name": "power", "table": "holding", "address": 10, "type": "float32", "byte_order": "CDAB",
                 "unit": "kW"},
                {"name": "level", "table": "input", "address": 0, "type": "uint16", "scale": 0.1, "unit": "%"},
                {"name": "running", "table": "discrete", "address": 0, "type": "bool"},
            ],
        }],
        "assets": [
            {"name": "pump-1", "points": ["plc/speed", "plc/current", "plc/bearing_temp", "plc/power",
                                          "plc/running"]},
            {"name": "tank-1", "points": ["plc/level"]},
        ],
        "summaries": {"interval": summary_s},
    }, "test-config")


def summaries_of(messages: list[tuple[str, bytes]], asset: str) -> list[dict[str, Any]]:
    """Decoded summary bodies of ``asset``, in arrival order."""
    topic = f"{PREFIX}/summary/{asset}"
    return [json.loads(p) for t, p in messages if t == topic]


def assert_contiguous(bodies: list[dict[str, Any]]) -> None:
    """Every interval from the first to the last is present once, with no gap (duplicates allowed)."""
    intervals = sorted({(b["start"], b["end"]) for b in bodies})
    for (_s0, e0), (s1, _e1) in itertools.pairwise(intervals):
        assert s1 == e0, f"gap or overlap between intervals ending {e0} and starting {s1}: {intervals}"


async def test_summaries_carry_the_plc_values(mosquitto: Mosquitto, frozen_plc: ModbusSimServer,
                                              tmp_path: Path) -> None:
    plant = frozen_plc.plant
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/#").start()
    agent = Agent(agent_config(tmp_path / "data", mosquitto.url, frozen_plc.port, summary_s=1.0))
    def device_ok(m: list[tuple[str, bytes]]) -> bool:
        return any(json.loads(p)["devices"]["plc"]["state"] == "ok" for t, p in m if t == f"{PREFIX}/status")

    try:
        await agent.start()
        msgs = await collector.wait_until(
            lambda m: any(b["points"]["plc/speed"]["count"] >= 3 for b in summaries_of(m, "pump-1"))
            and device_ok(m), 30)
    finally:
        await agent.stop()
        collector.close()

    body = next(b for b in summaries_of(msgs, "pump-1") if b["points"]["plc/speed"]["count"] >= 3)
    assert body["v"] == 1 and body["agent"] == "gw-test" and body["asset"] == "pump-1"
    assert body["end"] > body["start"] and isinstance(body["id"], str) and isinstance(body["ts"], int)
    expected = {
        "plc/speed": (round(plant.value("motor.speed_rpm")), 0.0, "rpm"),
        "plc/current": (round(plant.value("motor.current_a") / 0.01) * 0.01, 1e-9, "A"),
        "plc/bearing_temp": (plant.value("motor.bearing_temp_c"), 1e-4, "degC"),
        "plc/power": (plant.value("motor.power_kw"), 1e-4, "kW"),
    }
    for key, (value, tol, unit) in expected.items():
        stats = body["points"][key]
        assert stats["good"] == stats["count"] >= 3, key
        for field in ("min", "max", "mean", "last"):
            assert stats[field] == pytest.approx(value, abs=tol), (key, field)
        assert stats["unit"] == unit
    running = body["points"]["plc/running"]
    assert running["last"] is bool(plant.value("motor.running"))
    tank = next(b for b in summaries_of(msgs, "tank-1") if b["points"]["plc/level"]["count"] > 0)
    assert tank["points"]["plc/level"]["last"] == pytest.approx(
        round(plant.value("tank.level_pct") / 0.1) * 0.1, abs=1e-9)
    status = [json.loads(p) for t, p in msgs if t == f"{PREFIX}/status"]
    # The birth message comes first (before the first poll); a status update follows when the link is up.
    assert status[0]["state"] == "online"
    assert any(s["state"] == "online" and s["devices"]["plc"]["state"] == "ok" for s in status)
    assert json.loads(collector.retained[-1][1])["state"] in ("online", "offline") if collector.retained else True


async def test_broker_outage_loses_nothing(tmp_path: Path, frozen_plc: ModbusSimServer) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto not installed")
    # Broker persistence plus a persistent subscriber session: the subscriber's queue survives the restart,
    # so what the test sees is exactly what the agent delivered.
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    collector = MqttCollector(broker.host, broker.port, f"{PREFIX}/summary/#", persistent=True,
                              client_id="e2e-outage-collector").start()
    agent = Agent(agent_config(tmp_path / "data", broker.url, frozen_plc.port, summary_s=0.5))
    try:
        await agent.start()
        await collector.wait_until(lambda m: len(summaries_of(m, "pump-1")) >= 2, 30)
        await broker.astop()
        assert agent.outbox is not None
        outbox = agent.outbox
        await poll_until(lambda: outbox.stats()["records"] >= 6, 30, "records buffered during the outage")
        await broker.astart()
        await poll_until(lambda: outbox.stats()["records"] == 0, 60, "backlog delivered after the outage")
    finally:
        await agent.stop()
    try:
        # The final partial interval was stored at stop; wait for everything the agent produced.
        await collector.wait_until(lambda m: len(summaries_of(m, "pump-1")) >= 4, 30)
        await asyncio.sleep(1.0)
        msgs = collector.snapshot()
    finally:
        collector.close()
        broker.kill()
    bodies = summaries_of(msgs, "pump-1")
    assert_contiguous(bodies)
    ids = [b["id"] for b in bodies]
    duplicates = len(ids) - len(set(ids))
    print(f"delivered {len(set(ids))} pump-1 summaries across the outage, {duplicates} duplicate(s)")
    assert len(set(ids)) >= 4


async def test_records_buffered_before_a_restart_are_delivered_after_it(
        mosquitto: Mosquitto, frozen_plc: ModbusSimServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cfg = agent_config(data_dir, mosquitto.url, frozen_plc.port, summary_s=0.3)
    await mosquitto.astop()  # the first run never reaches the broker
    first = Agent(cfg)
    await first.start()
    assert first.outbox is not None
    outbox = first.outbox
    await poll_until(lambda: outbox.stats()["records"] >= 6, 30, "records buffered while offline")
    await first.stop()

    await mosquitto.astart()
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/summary/#").start()
    second = Agent(cfg)
    try:
        await second.start()
        msgs = await collector.wait_until(
            lambda m: any(b["start"] < (second.started_ts * 1000) - 500 for b in summaries_of(m, "pump-1"))
            and len(summaries_of(m, "pump-1")) >= 3, 30)
        assert second.outbox is not None
        second_outbox = second.outbox
        await poll_until(lambda: second_outbox.stats()["records"] == 0, 30, "backlog delivered")
    finally:
        await second.stop()
        await asyncio.sleep(0.5)
        msgs = collector.snapshot()
        collector.close()
    before_restart = [b for b in summaries_of(msgs, "pump-1") if b["end"] <= second.started_ts * 1000]
    assert len(before_restart) >= 2, "summaries from the first run were not delivered after the restart"
    assert_contiguous(before_restart)
