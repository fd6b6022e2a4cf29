"""The alarm stage wired from a real config: every rule kind, interlocks, maintenance counters, restarts.

Readings are fed directly (no sockets): this checks the translation from config to state machines and the
records that come out, with known answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drivers.base import Quality, Reading
from edge_agent.alarm_stage import AlarmStage
from edge_agent.config import load_config_data
from edge_agent.records import Priority


def config(tmp_path: Path, rules: list[dict[str, Any]], maintenance: dict[str, Any] | None = None) -> Any:
    asset: dict[str, Any] = {"name": "motor-1", "points": ["plc/temp", "plc/ambient", "plc/running", "plc/speed"]}
    if maintenance is not None:
        asset["maintenance"] = maintenance
    return load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path)},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "poll_interval": "1s",
                     "points": [
                         {"name": "temp", "table": "holding", "address": 0, "type": "float32", "unit": "degC"},
                         {"name": "ambient", "table": "holding", "address": 2, "type": "float32", "unit": "degC"},
                         {"name": "running", "table": "coil", "address": 0, "type": "bool"},
                         {"name": "speed", "table": "holding", "address": 4, "type": "uint16", "unit": "rpm"},
                     ]}],
        "assets": [asset],
        "rules": rules,
        "alarms": {"update_interval": 0},
    }, "stage-test")


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    async def __call__(self, topic: str, body: dict[str, object], priority: Priority) -> None:
        assert priority is Priority.ALERT
        self.records.append((topic, body))

    def states(self) -> list[tuple[str, str]]:
        return [(str(b["rule"]), str(b["state"])) for _t, b in self.records]


def r(point: str, value: object, ts: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading(point, value, quality, receive_ts=ts, source_ts=ts)  # type: ignore[arg-type]


async def feed(stage: AlarmStage, ts: float, **values: object) -> None:
    await stage.on_readings("plc", [r(k, v, ts) for k, v in values.items()])


async def test_deviation_from_a_reference_point_and_interlock(tmp_path: Path) -> None:
    sink = Sink()
    cfg = config(tmp_path, [{"kind": "deviation", "name": "temp-rise", "point": "plc/temp",
                             "reference_point": "plc/ambient", "high": 40, "when": "running"}])
    stage = AlarmStage(cfg, {"plc/temp": "degC", "plc/ambient": "degC"}, sink, tmp_path)
    await feed(stage, 100.0, ambient=20.0, running=True, temp=50.0)   # +30: normal
    await feed(stage, 101.0, ambient=20.0, running=True, temp=65.0)   # +45: above
    assert sink.states() == [("temp-rise", "raised")]
    assert "degC" in str(sink.records[0][1]["message"]) and sink.records[0][0] == "alerts/motor-1"
    await feed(stage, 102.0, ambient=20.0, running=False, temp=65.0)  # interlock off: suppressed -> cleared
    assert sink.states()[-1] == ("temp-rise", "cleared")


async def test_rate_of_change_and_stale_and_bad_quality(tmp_path: Path) -> None:
    sink = Sink()
    cfg = config(tmp_path, [
        {"kind": "rate", "name": "temp-ramp", "point": "plc/temp", "rise": 5, "per": "second", "window": "4s"},
        {"kind": "stale", "name": "temp-stale", "point": "plc/temp", "intervals": 3},
        {"kind": "bad_quality", "name": "speed-bad", "point": "plc/speed"},
    ])
    stage = AlarmStage(cfg, {"plc/temp": "degC"}, sink, tmp_path)
    for i in range(5):
        await feed(stage, 100.0 + i, temp=20.0 + 10 * i, speed=1500)   # 10 degC/s ramp
    assert ("temp-ramp", "raised") in sink.states()
    await stage.on_readings("plc", [r("speed", None, 106.0, Quality.BAD)])
    assert ("speed-bad", "raised") in sink.states()
    for now in range(105, 111):   # the agent ticks every second; temp was last seen at 104 s
        await stage.tick(float(now))
    assert ("temp-stale", "raised") in sink.states()


async def test_maintenance_counter_raises_due_and_resets_with_audit(tmp_path: Path) -> None:
    sink = Sink()
    cfg = config(tmp_path, [], maintenance={"running_point": "plc/running",
                                             "intervals": [{"name": "inspect", "starts": 2}]})
    stage = AlarmStage(cfg, {}, sink, tmp_path)
    for i, running in enumerate([False, True, False, True]):
        await feed(stage, 100.0 + 10 * i, running=running)
    assert stage.maintenance()["motor-1"]["starts"] == 2
    assert [s for _r, s in sink.states()] == ["raised"]
    assert sink.records[0][1]["kind"] == "maintenance_due"
    result = await stage.reset_maintenance("motor-1", "inspect", by="tech-1", note="bearings greased")
    assert result["service"] == "inspect"
    assert [s for _r, s in sink.states()] == ["raised", "cleared"]


async def test_state_survives_a_restart_without_re_raising(tmp_path: Path) -> None:
    rules = [{"name": "hot", "point": "plc/temp", "high": 80}]
    sink = Sink()
    stage = AlarmStage(config(tmp_path, rules), {"plc/temp": "degC"}, sink, tmp_path)
    await feed(stage, 100.0, temp=90.0)
    assert sink.states() == [("hot", "raised")]
    saved = json.loads((tmp_path / "alarms.json").read_text())
    assert "hot" in saved["alarms"]

    sink2 = Sink()
    restarted = AlarmStage(config(tmp_path, rules), {"plc/temp": "degC"}, sink2, tmp_path)
    await feed(restarted, 200.0, temp=91.0)
    assert sink2.states() == []                       # still active: no second raise
    await feed(restarted, 201.0, temp=20.0)
    assert sink2.states() == [("hot", "cleared")]    # and the clear is not forgotten


def bearing_pump_config(tmp_path: Path) -> Any:
    """One OPC UA waveform point on an SKF-6205 bearing of a group 2 pump on a rigid foundation."""
    return load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path)},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840",
                     "points": [{"name": "vib", "node": "ns=2;s=V", "kind": "waveform", "sample_rate": "12800Hz",
                                 "unit": "g"}]}],
        "assets": [{"name": "pump-1", "points": ["ua/vib"], "machine": {"group": 2, "foundation": "rigid"},
                    "bearings": [{"point": "ua/vib", "model": "SKF-6205"}]}],
    }, "fault-test")


async def test_bearing_fault_in_two_consecutive_captures_raises_one_alert_with_evidence(tmp_path: Path) -> None:
    from diagnostics.bearing_geometry import bearing_by_name
    from diagnostics.vibration import analyze_waveform
    from drivers.sim.vibration import MachineVibration

    cfg = bearing_pump_config(tmp_path)
    sink = Sink()
    stage = AlarmStage(cfg, {}, sink, tmp_path)
    machine = MachineVibration(12800.0, 24.7, scenario="outer_race", seed=5, ramp_s=1.0)
    for i in range(3):
        samples = machine.capture(100.0 + i, 16384)
        result = analyze_waveform(samples, 12800.0, speed_hz=24.7, bearing=bearing_by_name("SKF-6205"))
        assert "bearing_outer_race" in result.diagnosis
        await stage.on_vibration("pump-1", "ua/vib", result, 100.0 + i)
    raised = [b for _t, b in sink.records if b["state"] == "raised"]
    assert [b["rule"] for b in raised] == ["ua/vib:bearing_outer_race"]   # once, after the 2nd capture
    message = str(raised[0]["message"])
    assert message.startswith("ua/vib: bearing outer-race defect detected at ") and "Hz" in message
    assert raised[0]["asset"] == "pump-1" and raised[0]["kind"] == "fault"


async def test_when_gates_zone_and_fault_rules_too(tmp_path: Path) -> None:
    """iso_zone and fault rules honour when: (they were raised whether the machine ran or not) and pass
    their min_update_interval on."""
    from diagnostics.bearing_geometry import bearing_by_name
    from diagnostics.vibration import analyze_waveform
    from drivers.sim.vibration import MachineVibration

    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path)},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840", "points": [
            {"name": "vib", "node": "ns=2;s=V", "kind": "waveform", "sample_rate": "12800Hz", "unit": "g"},
            {"name": "running", "node": "ns=2;s=R"}]}],
        "assets": [{"name": "pump-1", "points": ["ua/vib", "ua/running"],
                    "machine": {"group": 2, "foundation": "rigid"},
                    "bearings": [{"point": "ua/vib", "model": "SKF-6205"}]}],
        "rules": [{"kind": "iso_zone", "asset": "pump-1", "when": "running", "min_update_interval": "10m"},
                  {"kind": "fault", "name": "outer", "point": "ua/vib", "fault": "bearing_outer_race",
                   "consecutive": 2, "when": "running", "min_update_interval": "1h"}],
    }, "gated-vibration")
    sink = Sink()
    stage = AlarmStage(cfg, {}, sink, tmp_path)
    zone = stage.zone_alarms["ua/vib"]
    assert zone.rule.min_update_interval_s == 600.0
    machine = MachineVibration(12800.0, 24.7, scenario="outer_race", seed=5, ramp_s=1.0)

    async def captures(start_s: float, running: bool) -> None:
        for i in range(3):
            ts = start_s + i
            await stage.on_readings("ua", [r("running", running, ts)])
            result = analyze_waveform(machine.capture(ts, 16384), 12800.0, speed_hz=24.7,
                                      bearing=bearing_by_name("SKF-6205"))
            assert "bearing_outer_race" in result.diagnosis
            await stage.on_vibration("pump-1", "ua/vib", result, ts)

    await captures(100.0, running=False)
    assert not zone.enabled and [b for _t, b in sink.records if b["state"] == "raised"] == []
    assert not stage.fault_alarms["ua/vib"]["bearing_outer_race"].enabled
    await captures(200.0, running=True)
    assert zone.enabled
    raised = [b for _t, b in sink.records if b["state"] == "raised"]
    assert [b["rule"] for b in raised if b["kind"] == "fault"] == ["outer"]
    assert stage.fault_alarms["ua/vib"]["bearing_outer_race"].rule.min_update_interval_s == 3600.0


async def test_a_threshold_on_an_on_off_point_fires_when_it_turns_on(tmp_path: Path) -> None:
    """On/off states count as 1 and 0 (they were dropped as 'not a number': the rule never fired)."""
    sink = Sink()
    stage = AlarmStage(config(tmp_path, [{"name": "running-on", "point": "plc/running", "high": 0.5}]), {}, sink,
                       tmp_path)
    await feed(stage, 100.0, running=False)
    await feed(stage, 101.0, running=True)
    await feed(stage, 102.0, running=False)
    assert sink.states() == [("running-on", "raised"), ("running-on", "cleared")]


async def test_an_active_fault_alarm_survives_a_restart_without_a_false_clear(tmp_path: Path) -> None:
    """Fault alarms are made at their point's first capture: at a restart their saved state used to look
    orphaned ('cleared: its rule was removed') and then came back active at the next capture."""
    from diagnostics.bearing_geometry import bearing_by_name
    from diagnostics.vibration import analyze_waveform
    from drivers.sim.vibration import MachineVibration

    cfg = bearing_pump_config(tmp_path)
    machine = MachineVibration(12800.0, 24.7, scenario="outer_race", seed=5, ramp_s=1.0)

    def result(ts: float) -> Any:
        return analyze_waveform(machine.capture(ts, 16384), 12800.0, speed_hz=24.7,
                                bearing=bearing_by_name("SKF-6205"))

    first = Sink()
    stage = AlarmStage(cfg, {}, first, tmp_path)
    for i in range(3):
        await stage.on_vibration("pump-1", "ua/vib", result(100.0 + i), 100.0 + i)
    assert [b["state"] for _t, b in first.records] == ["raised"]
    # a restart, and another before the point's next capture (its fault alarm not made yet in between): the
    # saved fault state must outlive the saves of that middle run
    middle = AlarmStage(cfg, {}, Sink(), tmp_path, restart=True)
    middle.save()
    after = Sink()
    restarted = AlarmStage(cfg, {}, after, tmp_path, restart=True)
    await restarted.tick(200.0)
    await restarted.on_vibration("pump-1", "ua/vib", result(201.0), 201.0)
    await restarted.tick(202.0)
    assert [b for _t, b in after.records if b["state"] in ("cleared", "raised")] == []
    assert restarted.fault_alarms["ua/vib"]["bearing_outer_race"].snapshot().active_level == "fault"
