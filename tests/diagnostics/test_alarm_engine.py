"""The alarm engine: routing by point, interlocks, storm guard, operator actions, restart and config change."""

from __future__ import annotations

import json

import pytest

from diagnostics.alarms import (
    AlarmEngine,
    AlarmEvent,
    BadQualityRule,
    DeviationRule,
    FaultRule,
    InterlockSpec,
    LimitRule,
    PredictionRule,
    RuleConfig,
    StaleRule,
    StormGuard,
    ZoneRule,
)

T0 = 1_800_000_000.0


def rules() -> list[RuleConfig]:
    return [
        LimitRule("bt:limit", "motor-plc/bearing_temp", unit="degC", high=80, high_high=95, deadband=2, on_delay_s=10),
        DeviationRule("bt:dev", "motor-plc/bearing_temp", unit="degC", reference_point="motor-plc/ambient", high=50),
        StaleRule("speed:stale", "motor-plc/speed", interval_s=1, missed_intervals=5),
        BadQualityRule("speed:bad", "motor-plc/speed"),
        ZoneRule("vib:zone", "pump-opcua/vib_de", (1.4, 2.8, 4.5)),
        FaultRule("vib:bpfo", "pump-opcua/vib_de", fault="bearing_outer_race", threshold=3.0, consecutive=2),
        PredictionRule("vib:pred", "pump-opcua/vib_de", limit=4.5, horizon_s=1200, window_s=1800, bucket_s=60,
                       unit="mm/s"),
    ]


def rules_without_stale() -> list[RuleConfig]:
    return [r for r in rules() if not isinstance(r, StaleRule)]


def summary(events: list[AlarmEvent]) -> list[tuple[str, str, str]]:
    return [(e.alarm_id, e.state, e.level) for e in events]


def test_values_are_routed_to_every_rule_of_the_point() -> None:
    engine = AlarmEngine(rules())
    ev = engine.on_values(T0, {"motor-plc/bearing_temp": (70.0, "good"), "motor-plc/ambient": (25.0, "good"),
                               "motor-plc/speed": (1480, "good")})
    assert ev == []
    ev = engine.on_values(T0 + 1, {"motor-plc/bearing_temp": (96.2, "good"), "motor-plc/speed": (None, "bad")})
    assert summary(ev) == [("bt:dev", "raised", "high"), ("speed:bad", "raised", "bad_quality")]
    assert summary(engine.tick(T0 + 5)) == [("speed:stale", "raised", "stale")]  # no good speed since T0
    assert engine.tick(T0 + 10.9) == []
    ev = engine.tick(T0 + 11)
    assert summary(ev) == [("bt:limit", "raised", "high_high")]
    assert ev[0].message == "motor-plc/bearing_temp 96.2 degC above high-high limit 95 degC"
    assert engine.tick(T0 + 6) == []  # time never goes back


def test_stale_from_tick_when_a_point_stops_arriving() -> None:
    engine = AlarmEngine(rules())
    engine.on_values(T0, {"motor-plc/speed": (1480, "good")})
    assert summary(engine.tick(T0 + 5)) == [("speed:stale", "raised", "stale")]
    assert summary(engine.on_values(T0 + 6, {"motor-plc/speed": (1480, "good")})) == [
        ("speed:stale", "cleared", "stale")
    ]


def test_vibration_results_feed_zone_fault_and_prediction() -> None:
    engine = AlarmEngine(rules())
    events: list[AlarmEvent] = []
    for k in range(40):
        v = 2.0 + 0.1 * k  # 0.1 mm/s per minute
        score = 3.5 if k >= 20 else 1.0
        events += engine.on_vibration(T0 + 60 * k, "pump-opcua/vib_de", v,
                                      {"bearing_outer_race": (score, {"bpfo_hz": 107.4})})
    got = summary(events)
    assert ("vib:zone", "raised", "zone_C") in got and ("vib:zone", "updated", "zone_D") in got
    fault = next(e for e in events if e.alarm_id == "vib:bpfo")
    assert fault.last_ts == T0 + 60 * 21 and fault.evidence["bpfo_hz"] == 107.4
    pred = next(e for e in events if e.alarm_id == "vib:pred")
    zone_d = next(e for e in events if e.level == "zone_D")
    assert pred.last_ts < zone_d.last_ts  # warned before it happened
    # a capture without the fault's score holds that alarm instead of clearing it
    assert engine.on_vibration(T0 + 60 * 41, "pump-opcua/vib_de", 5.0, {}) == []


def test_interlock_with_short_names_gates_bulk_and_single_rules() -> None:
    engine = AlarmEngine(
        rules_without_stale(),
        [InterlockSpec("running and speed > 100", ("vib:zone", "bt:limit"),
                       {"running": "motor-plc/running", "speed": "motor-plc/speed"})],
    )
    engine.on_values(T0, {"motor-plc/running": (False, "good"), "motor-plc/speed": (0, "good")})
    assert engine.on_vibration(T0 + 1, "pump-opcua/vib_de", 5.0) == []
    assert engine.on_values(T0 + 2, {"motor-plc/bearing_temp": (99.0, "good")}) == []
    assert engine.tick(T0 + 30) == []
    engine.on_values(T0 + 31, {"motor-plc/running": (True, "good"), "motor-plc/speed": (1480, "good")})
    assert summary(engine.on_vibration(T0 + 32, "pump-opcua/vib_de", 5.0)) == [("vib:zone", "raised", "zone_D")]
    engine.on_values(T0 + 33, {"motor-plc/bearing_temp": (99.0, "good")})
    assert summary(engine.tick(T0 + 43)) == [("bt:limit", "raised", "high_high")]


def test_device_down_is_one_alarm_and_one_summary() -> None:
    many = [StaleRule(f"p{i}:stale", f"plc9/p{i}", interval_s=1, missed_intervals=3) for i in range(300)]
    engine = AlarmEngine(many, storm_guard=StormGuard(summary_after_s=10))
    engine.on_values(T0, {f"plc9/p{i}": (1.0, "good") for i in range(300)})
    published = engine.device_down("plc9", T0 + 1, "timeout")
    for t in range(2, 30):
        published += engine.on_values(T0 + t, {f"plc9/p{i}": (None, "bad") for i in range(300)})
        published += engine.tick(T0 + t)
    assert [(e.kind, e.state) for e in published] == [("device_down", "raised"), ("device_down", "updated")]
    assert published[1].evidence["suppressed"] == 300
    published = engine.device_up("plc9", T0 + 30)
    published += engine.on_values(T0 + 31, {f"plc9/p{i}": (1.0, "good") for i in range(300)})
    assert [(e.kind, e.state) for e in published] == [("device_down", "cleared")]


def test_operator_actions_by_alarm_id() -> None:
    engine = AlarmEngine(rules_without_stale())
    engine.on_values(T0, {"motor-plc/bearing_temp": (99.0, "good"), "motor-plc/speed": (None, "bad")})
    engine.tick(T0 + 10)
    assert engine.acknowledge("bt:limit", "alice", T0 + 11).acked
    assert engine.acknowledge("speed:bad", "alice", T0 + 11).acked
    engine.shelve("speed:bad", T0 + 12, 60, "alice")
    assert engine.on_values(T0 + 13, {"motor-plc/speed": (1480, "good")}) == []
    assert summary(engine.unshelve("speed:bad", T0 + 14)) == [("speed:bad", "cleared", "bad_quality")]
    active = {s.alarm_id: s for s in engine.snapshot()}
    assert set(active) == {"bt:limit"} and active["bt:limit"].acked_by == "alice"
    with pytest.raises(KeyError, match="no alarm rule with id 'nope'"):
        engine.shelve("nope", T0, 60, "alice")
    assert set(engine.rule_ids()) == {r.rule_id for r in rules_without_stale()}


def test_restart_restores_without_re_raise_and_the_clear_still_comes() -> None:
    engine = AlarmEngine(rules(), storm_guard=StormGuard())
    ev = engine.on_values(T0, {"motor-plc/bearing_temp": (99.0, "good"), "motor-plc/ambient": (25.0, "good")})
    assert summary(ev) == [("bt:dev", "raised", "high")]  # the reference of the same cycle is used
    assert summary(engine.tick(T0 + 10)) == [("bt:limit", "raised", "high_high")]
    saved = json.loads(json.dumps(engine.to_dict()))

    restarted = AlarmEngine(rules(), storm_guard=StormGuard())
    assert restarted.load_dict(saved, T0 + 100) == []
    assert restarted.to_dict() == engine.to_dict()
    assert restarted.on_values(T0 + 101, {"motor-plc/bearing_temp": (99.0, "good")}) == []
    cleared = restarted.on_values(T0 + 102, {"motor-plc/bearing_temp": (70.0, "good")})
    assert summary(cleared) == [("bt:dev", "cleared", "high"), ("bt:limit", "cleared", "high_high")]
    assert cleared[1].first_ts == T0 + 10


def test_config_change_closes_orphaned_alarms() -> None:
    engine = AlarmEngine(rules())
    engine.on_values(T0, {"motor-plc/bearing_temp": (99.0, "good"), "motor-plc/speed": (None, "bad")})
    engine.tick(T0 + 10)
    saved = json.loads(json.dumps(engine.to_dict()))
    changed = [r for r in rules() if r.rule_id not in ("bt:limit", "speed:bad")]
    changed.append(LimitRule("bt:limit", "motor-plc/bearing_temp", unit="degC", high=80))  # high_high removed
    after = AlarmEngine(changed)
    orphans = after.load_dict(saved, T0 + 50)
    assert sorted(summary(orphans)) == [("bt:limit", "cleared", "high_high"), ("speed:bad", "cleared", "bad_quality")]
    bt = next(e for e in orphans if e.alarm_id == "bt:limit")
    assert bt.kind == "limit" and bt.severity == "critical" and bt.first_ts == T0 + 10
    assert "its rule changed" in bt.message
    # the changed rule starts afresh and raises again if the condition is still there
    assert summary(after.on_values(T0 + 51, {"motor-plc/bearing_temp": (99.0, "good")})) == [
        ("bt:limit", "raised", "high")
    ]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicated: x"):
        AlarmEngine([LimitRule("x", "a/b", high=1), StaleRule("x", "a/c", interval_s=1)])
    with pytest.raises(ValueError, match="unknown rule ids: nope"):
        AlarmEngine(rules(), [InterlockSpec("running", ("nope",))])
    with pytest.raises(ValueError, match="quality 'fine'"):
        AlarmEngine(rules()).on_values(T0, {"a/b": (1.0, "fine")})
