"""Alerts end to end: a limit rule on a simulated PLC value raises one alert at a real broker, and an agent
restart neither re-raises it nor forgets it."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.sim.modbus_server import ModbusSimServer
from edge_agent.agent import Agent
from edge_agent.config import load_config_data

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, poll_until
    from tests.test_e2e_agent import PREFIX, agent_config, frozen_plc
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, poll_until  # type: ignore[no-redef]
    from test_e2e_agent import PREFIX, agent_config, frozen_plc  # type: ignore[no-redef]

__all__ = ["frozen_plc"]


def alerts(messages: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    return [json.loads(p) for t, p in messages if t.startswith(f"{PREFIX}/alerts/")]


async def test_limit_alert_raised_once_across_a_restart(mosquitto: Mosquitto, frozen_plc: ModbusSimServer,
                                                        tmp_path: Path) -> None:
    temp = frozen_plc.plant.value("motor.bearing_temp_c")
    base = agent_config(tmp_path / "data", mosquitto.url, frozen_plc.port, summary_s=5.0)
    data = base.model_dump(mode="json", exclude_none=True)
    data["rules"] = [{"name": "bearing-hot", "point": "plc/bearing_temp", "high": round(temp - 5, 3),
                      "high_high": round(temp + 50, 3), "deadband": 1.0, "on_delay": "300ms"}]
    cfg = load_config_data(data, "alarm-test")
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/#").start()
    try:
        first = Agent(cfg)
        await first.start()
        try:
            msgs = await collector.wait_until(lambda m: len(alerts(m)) >= 1, 30)
        finally:
            await first.stop()
        (raised,) = alerts(msgs)
        assert raised["state"] == "raised" and raised["severity"] == "warning"
        assert raised["rule"] == "bearing-hot" and raised["point"] == "plc/bearing_temp"
        assert raised["asset"] == "pump-1" and raised["unit"] == "degC"
        assert raised["limit"] == round(temp - 5, 3)
        assert abs(float(raised["value"]) - temp) < 1e-3  # type: ignore[arg-type]
        assert "degC" in str(raised["message"])
        assert (tmp_path / "data" / "alarms.json").exists()

        second = Agent(cfg)
        await second.start()
        try:
            # Let the restarted agent evaluate the rule many times with the value still high.
            await poll_until(lambda: second.pipeline.readings_good >= 30, 30, "readings after restart")
            assert second.alarms.active(), "the active alarm was forgotten across the restart"
        finally:
            await second.stop()
        assert len(alerts(collector.snapshot())) == 1, "the restart re-raised an active alarm"
        # The last (partial) summary of the first run, delivered by the second run, counts the alert and the
        # asset's comms availability.
        summaries = await collector.wait_until(lambda m: any(
            json.loads(p).get("alarms", {}).get("raised") == 1 for t, p in m if t == f"{PREFIX}/summary/pump-1"), 30)
        summary = next(json.loads(p) for t, p in summaries if t == f"{PREFIX}/summary/pump-1"
                       and json.loads(p)["alarms"]["raised"] == 1)
        assert summary["alarms"]["active"] == 1 and summary["availability_pct"] == 100.0
    finally:
        collector.close()


async def test_overheating_bearing_gives_exactly_raise_then_escalation(mosquitto: Mosquitto,
                                                                       tmp_path: Path) -> None:
    """The simulator's bearing-overheat scenario on a manual clock: the alert sequence at the broker is
    exactly raised (warning, high) then updated (critical, high-high), nothing else."""
    from drivers.sim.plant import Plant

    times = (0.0, 900.0, 2400.0)
    model = Plant(seed=11, scenario="bearing_overheat")
    temps = []
    for t in times:
        model.update(t)
        temps.append(float(model.value("motor.bearing_temp_c")))
    assert temps[0] < temps[1] < temps[2]
    high = (temps[0] + temps[1]) / 2
    high_high = (temps[1] + temps[2]) / 2
    clock = [times[0]]
    server = ModbusSimServer(Plant(seed=11, scenario="bearing_overheat"), port=0, update_interval_s=None,
                             clock=lambda: clock[0])
    await server.start()
    base = agent_config(tmp_path / "data", mosquitto.url, server.port, summary_s=5.0)
    data = base.model_dump(mode="json", exclude_none=True)
    data["rules"] = [{"name": "bearing-temp", "point": "plc/bearing_temp", "high": round(high, 3),
                      "high_high": round(high_high, 3), "deadband": 0.5}]
    data["alarms"] = {"update_interval": 0}
    cfg = load_config_data(data, "overheat-test")
    collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/alerts/#").start()
    agent = Agent(cfg)
    try:
        await agent.start()
        for t, expected in zip(times, (0, 1, 2), strict=True):
            clock[0] = t
            server.refresh()
            seen = agent.pipeline.readings_good
            await poll_until(lambda s=seen: agent.pipeline.readings_good >= s + 20, 30, f"readings at t={t}")
            if expected:
                await collector.wait_until(lambda m, n=expected: len(alerts(m)) >= n, 30)
        await poll_until(lambda: agent.pipeline.readings_good >= seen + 40, 30, "more readings")
    finally:
        await agent.stop()
        collector.close()
        await server.stop()
    events = [(e["state"], e["severity"], e["level"]) for e in alerts(collector.snapshot())]
    assert events == [("raised", "warning", "high"), ("updated", "critical", "high_high")]
