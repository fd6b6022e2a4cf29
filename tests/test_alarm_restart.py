"""Alarms across a restart and a live config change: a restored state's samples are stale, saved active
alarms whose rule is gone are closed, episodes never repeat, the interval's counts survive a rules change,
and the storm guard knows a device is down before its all-bad readings reach the rules."""

from __future__ import annotations

import time
from pathlib import Path

from drivers.base import Quality, Reading
from drivers.sim.modbus_server import ModbusSimServer
from drivers.sim.plant import Plant
from edge_agent.agent import Agent
from edge_agent.alarm_stage import AlarmStage
from edge_agent.config import load_config_data

try:
    from tests.test_alarm_stage import Sink, config, feed
    from tests.test_e2e_agent import agent_config
except ImportError:  # tests/ is not a package
    from test_alarm_stage import Sink, config, feed  # type: ignore[no-redef]
    from test_e2e_agent import agent_config  # type: ignore[no-redef]


async def test_a_stale_rule_does_not_count_the_agents_downtime(tmp_path: Path) -> None:
    rules = [{"kind": "stale", "name": "temp-stale", "point": "plc/temp", "intervals": 3}]
    stage = AlarmStage(config(tmp_path, rules), {}, Sink(), tmp_path)
    for t in range(100, 110):
        await stage.tick(float(t))
        await feed(stage, t + 0.5, temp=20.0)
    stage.save()
    sink = Sink()
    restarted = AlarmStage(config(tmp_path, rules), {}, sink, tmp_path)  # 10 minutes later
    await restarted.tick(710.0)  # the first alarm tick runs before the first poll
    await feed(restarted, 710.5, temp=20.0)
    await restarted.tick(711.0)
    assert sink.states() == []
    for t in range(712, 716):  # and it still detects a point that really stops updating
        await restarted.tick(float(t))
    assert sink.states() == [("temp-stale", "raised")]


async def test_an_active_stale_alarm_stays_active_across_a_restart_until_a_good_reading(tmp_path: Path) -> None:
    rules = [{"kind": "stale", "name": "temp-stale", "point": "plc/temp", "intervals": 3}]
    sink = Sink()
    stage = AlarmStage(config(tmp_path, rules), {}, sink, tmp_path)
    await stage.tick(100.0)
    await feed(stage, 100.5, temp=20.0)
    for t in range(101, 106):
        await stage.tick(float(t))
    assert sink.states() == [("temp-stale", "raised")]
    stage.save()
    sink = Sink()
    restarted = AlarmStage(config(tmp_path, rules), {}, sink, tmp_path)
    await restarted.tick(700.0)
    assert sink.states() == []
    await feed(restarted, 700.5, temp=20.0)
    assert sink.states() == [("temp-stale", "cleared")]


async def test_a_pending_on_delay_needs_a_fresh_sample_after_a_restart(tmp_path: Path) -> None:
    rules = [{"name": "hot", "point": "plc/temp", "high": 80, "on_delay": "60s"}]
    stage = AlarmStage(config(tmp_path, rules), {}, Sink(), tmp_path)
    await feed(stage, 100.0, temp=90.0)  # above the limit; 60 s on-delay running at shutdown
    await stage.tick(101.0)
    stage.save()
    sink = Sink()
    restarted = AlarmStage(config(tmp_path, rules), {}, sink, tmp_path)
    await restarted.tick(3700.0)  # an hour later, before any reading
    await feed(restarted, 3700.5, temp=20.0)  # back to normal: nothing ever raised on a stale sample
    await restarted.tick(3800.0)
    assert sink.states() == []
    await feed(restarted, 3801.0, temp=90.0)  # a fresh excursion still raises after its own delay
    await restarted.tick(3840.0)
    assert sink.states() == []
    await restarted.tick(3861.0)
    assert sink.states() == [("hot", "raised")]


async def test_an_active_alarm_whose_rule_was_removed_is_cleared(tmp_path: Path) -> None:
    sink = Sink()
    stage = AlarmStage(config(tmp_path, [{"name": "hot", "point": "plc/temp", "high": 80}]), {}, sink, tmp_path)
    await feed(stage, 100.0, temp=90.0)
    assert sink.states() == [("hot", "raised")]
    raised = sink.records[0][1]
    stage.save()
    sink = Sink()
    restarted = AlarmStage(config(tmp_path, [{"name": "cold", "point": "plc/temp", "low": 0}]), {}, sink, tmp_path)
    await restarted.tick(102.0)
    assert sink.states() == [("hot", "cleared")]
    cleared = sink.records[0][1]
    assert (cleared["alarm_id"], cleared["episode"]) == (raised["alarm_id"], raised["episode"])
    assert "removed from the configuration" in str(cleared["message"])
    restarted.save()
    sink = Sink()
    await AlarmStage(config(tmp_path, [{"name": "cold", "point": "plc/temp", "low": 0}]), {}, sink,
                     tmp_path).tick(103.0)
    assert sink.states() == []  # closed once, not at every start


async def test_a_changed_rule_closes_its_old_episode_and_numbers_the_next_one_after_it(tmp_path: Path) -> None:
    sink = Sink()
    rule = {"name": "hot", "point": "plc/temp", "high": 80, "high_high": 90}
    stage = AlarmStage(config(tmp_path, [rule]), {}, sink, tmp_path)
    await feed(stage, 100.0, temp=95.0)
    first = sink.records[0][1]
    assert (first["state"], first["level"]) == ("raised", "high_high")
    stage.save()
    sink = Sink()
    changed = AlarmStage(config(tmp_path, [{"name": "hot", "point": "plc/temp", "high": 80}]), {}, sink, tmp_path)
    await changed.tick(100.5)
    await feed(changed, 101.0, temp=95.0)
    assert [(b["state"], b["level"], b["episode"]) for _t, b in sink.records] == [
        ("cleared", "high_high", first["episode"]), ("raised", "high", int(str(first["episode"])) + 1)]


async def test_the_intervals_alarm_counts_survive_a_rules_change(tmp_path: Path) -> None:
    base = agent_config(tmp_path / "data", "mqtt://127.0.0.1:1", 5020, summary_s=60.0)
    data = base.model_dump(mode="json", exclude_none=True)
    data["rules"] = [{"name": "fast", "point": "plc/speed", "high": 100}]
    old = load_config_data(data, "a")
    data["rules"] = data["rules"] + [{"name": "hot", "point": "plc/bearing_temp", "high": 100}]
    new = load_config_data(data, "b")
    (tmp_path / "data").mkdir()
    agent = Agent(old)
    sent: list[dict[str, object]] = []

    async def sink(topic: str, body: dict[str, object], priority: object, retain: bool = False) -> None:
        sent.append(body)

    agent.alarms._emit = sink
    await agent.alarms.on_readings("plc", [Reading("speed", 500, Quality.GOOD, time.time())])
    assert await agent.reconfigure(old, new) == ["rules"]
    assert agent.pipeline.summary_extras is not None
    assert agent.pipeline.summary_extras("pump-1")["alarms"] == {"raised": 1, "updated": 0, "cleared": 0,
                                                                  "active": 1}


async def test_a_device_going_down_raises_device_down_alone(tmp_path: Path) -> None:
    server = ModbusSimServer(Plant(seed=7), port=0, update_interval_s=None)
    await server.start()
    (tmp_path / "data").mkdir()
    base = agent_config(tmp_path / "data", "mqtt://127.0.0.1:1", server.port, summary_s=60.0)
    data = base.model_dump(mode="json", exclude_none=True)
    data["rules"] = [{"kind": "bad_quality", "point": "plc/speed"}, {"kind": "bad_quality", "point": "plc/level"}]
    agent = Agent(load_config_data(data, "t"))
    sent: list[dict[str, object]] = []

    async def sink(topic: str, body: dict[str, object], priority: object, retain: bool = False) -> None:
        sent.append(body)

    agent.alarms._emit = sink
    runner = agent.devices["plc"]
    try:
        await agent._poll_cycle("plc", runner, time.time())
        assert sent == []
        await server.stop()  # the PLC goes away: every point of the cycle reads bad
        await agent._poll_cycle("plc", runner, time.time())
    finally:
        await runner.driver.close()
        await server.stop()
    assert [(b["kind"], b["state"]) for b in sent] == [("device_down", "raised")]
