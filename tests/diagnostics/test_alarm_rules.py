"""Rate, deviation, stale, bad-quality, ISO zone and fault-indicator alarms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.alarms import (
    AlarmEvent,
    BadQualityAlarm,
    BadQualityRule,
    DeviationAlarm,
    DeviationRule,
    FaultAlarm,
    FaultRule,
    RateAlarm,
    RateRule,
    RuleAlarm,
    StaleAlarm,
    StaleRule,
    ZoneAlarm,
    ZoneRule,
)


def states(events: list[AlarmEvent]) -> list[tuple[float, str, str]]:
    return [(e.last_ts, e.state, e.level) for e in events]


def roundtrip(alarm: RuleAlarm, fresh: RuleAlarm) -> RuleAlarm:
    restored = fresh.load_dict(json.loads(json.dumps(alarm.to_dict())))
    assert restored.to_dict() == alarm.to_dict()
    return restored


# ---- rate of change ------------------------------------------------------------------------------


def ramp_events(alarm: RateAlarm, slope_per_s: float, t0: float, t1: float, v0: float = 0.0) -> list[AlarmEvent]:
    out: list[AlarmEvent] = []
    for t in range(int(t0), int(t1)):
        out += alarm.update(float(t), v0 + slope_per_s * (t - t0))
    return out


def test_rate_measures_a_known_ramp_per_minute() -> None:
    alarm = RateAlarm(RateRule("r", "tank/level", window_s=30, unit="%", per="min", max_rise=5.0))
    events = ramp_events(alarm, slope_per_s=0.1, t0=0, t1=20)  # 6 %/min
    assert alarm.rate() == pytest.approx(6.0)
    (e,) = events
    # judged once the window holds samples over half of it (15 s)
    assert (e.state, e.level, e.last_ts, e.unit) == ("raised", "rise", 15.0, "%/min")
    assert e.value == pytest.approx(6.0) and e.limit == 5.0
    assert e.message == "tank/level rising at 6 %/min over 30 s, faster than limit 5 %/min"


def test_rate_clears_when_the_ramp_stops_and_honours_deadband() -> None:
    alarm = RateAlarm(RateRule("r", "p", window_s=10, unit="bar", per="s", max_rise=1.0, deadband=0.2))
    raised = ramp_events(alarm, 1.5, 0, 10)
    assert [e.state for e in raised] == ["raised"]
    # 0.9 bar/s: below the limit but inside the deadband -> stays
    assert ramp_events(alarm, 0.9, 10, 40, v0=alarm._window[-1][1] + 0.9) == []
    cleared = ramp_events(alarm, 0.0, 40, 60, v0=50.0)
    assert [e.state for e in cleared] == ["cleared"]


def test_rate_fall_and_noisy_flat_signal() -> None:
    alarm = RateAlarm(RateRule("r", "p", window_s=60, unit="degC", per="min", max_fall=2.0))
    # flat with alternating +-0.5 noise: slope ~0, never raises
    flat = [alarm.update(float(t), 20 + (0.5 if t % 2 else -0.5)) for t in range(120)]
    assert all(not e for e in flat)
    falling = ramp_events(alarm, -3.0 / 60, 120, 240, v0=20.0)
    assert [(e.state, e.level) for e in falling] == [("raised", "fall")]


def test_rate_bad_quality_holds_and_state_round_trips() -> None:
    rule = RateRule("r", "p", window_s=10, unit="bar", per="s", max_rise=1.0)
    alarm = RateAlarm(rule)
    ramp_events(alarm, 2.0, 0, 10)
    assert alarm.update(10, None, "bad") == []
    restored = roundtrip(alarm, RateAlarm(rule))
    assert restored.rate() == pytest.approx(2.0)
    assert [e.state for e in ramp_events(restored, 0.0, 11, 30, v0=100)] == ["cleared"]


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(window_s=0, max_rise=1), "window_s=0"),
        (dict(window_s=10), "give max_rise, max_fall"),
        (dict(window_s=10, max_rise=-1), "max_rise=-1"),
        (dict(window_s=10, max_rise=1, per="h"), "per='h'"),
        (dict(window_s=10, max_rise=1, deadband=2), "deadband=2"),
    ],
)
def test_rate_rule_validation(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match="rule r") as err:
        RateRule("r", "p", **kw)  # type: ignore[arg-type]
    assert fragment in str(err.value)


# ---- deviation -----------------------------------------------------------------------------------


def test_deviation_from_a_reference_point() -> None:
    rule = DeviationRule(
        "d", "motor-plc/bearing_temp", unit="degC", reference_point="motor-plc/ambient",
        high=30, high_high=40, deadband=2, max_reference_age_s=60,
    )
    alarm = DeviationAlarm(rule)
    assert alarm.update(0, 60) == []  # no reference yet: hold
    alarm.update_reference(0, 25)
    (e,) = alarm.update(1, 60)  # 35 above ambient
    assert (e.state, e.level, e.value, e.limit) == ("raised", "high", 35, 30)
    assert e.evidence == {"value": 60, "reference": 25}
    assert e.message == "motor-plc/bearing_temp is 35 degC above motor-plc/ambient, above high deviation limit 30 degC"
    alarm.update_reference(2, 35)  # ambient rises: deviation 25 -> within deadband? 25 < 28 -> clears
    (c,) = alarm.update(3, 60)
    assert c.state == "cleared"
    # a stale reference holds instead of judging against an old ambient
    assert alarm.update(100, 90) == []
    alarm.update_reference(101, 20, "bad")
    assert alarm.update(102, 90) == []
    alarm.update_reference(103, 20)
    assert [x.level for x in alarm.update(104, 90)] == ["high_high"]


def test_deviation_from_a_baseline_and_round_trip() -> None:
    rule = DeviationRule("d", "pump/flow", unit="m3/h", baseline=100.0, low=-20)
    alarm = DeviationAlarm(rule)
    (e,) = alarm.update(0, 75)
    assert (e.level, e.value) == ("low", -25)
    assert "25 m3/h below baseline 100" in e.message
    restored = roundtrip(alarm, DeviationAlarm(rule))
    assert [x.state for x in restored.update(1, 100)] == ["cleared"]


def test_deviation_rule_needs_one_reference() -> None:
    with pytest.raises(ValueError, match="exactly one of reference_point or baseline"):
        DeviationRule("d", "p", high=1)
    with pytest.raises(ValueError, match="exactly one of reference_point or baseline"):
        DeviationRule("d", "p", high=1, baseline=1, reference_point="q")


# ---- stale and bad quality -----------------------------------------------------------------------


def test_stale_raises_on_tick_when_readings_stop() -> None:
    alarm = StaleAlarm(StaleRule("s", "motor-plc/speed", interval_s=2, missed_intervals=5))
    assert alarm.update(0, 1500) == []
    assert alarm.tick(9.9) == []
    (e,) = alarm.tick(10)
    assert (e.state, e.value, e.limit, e.unit) == ("raised", 10, 10, "s")
    assert e.message == "motor-plc/speed stale: no good reading for 10 s (limit 10 s = 5 x 2 s)"
    assert alarm.tick(30) == []  # one raise per episode
    (c,) = alarm.update(31, 1500)
    assert c.state == "cleared" and "receiving good readings again" in c.message


def test_stale_counts_bad_readings_as_missing() -> None:
    alarm = StaleAlarm(StaleRule("s", "p", interval_s=1, missed_intervals=3))
    events = []
    events += alarm.update(0, 1.0)
    for t in range(1, 6):
        events += alarm.update(float(t), None, "bad")
    assert states(events) == [(3.0, "raised", "stale")]


def test_stale_before_any_reading_counts_from_first_tick_and_round_trips() -> None:
    rule = StaleRule("s", "p", interval_s=1, missed_intervals=3)
    alarm = StaleAlarm(rule)
    assert alarm.tick(100) == []
    restored = roundtrip(alarm, StaleAlarm(rule))
    assert states(restored.tick(103)) == [(103, "raised", "stale")]


def test_stale_tick_does_not_reject_slightly_earlier_samples() -> None:
    alarm = StaleAlarm(StaleRule("s", "p", interval_s=1, missed_intervals=3))
    alarm.update(0, 1.0)
    for t in range(1, 6):
        alarm.tick(t)  # raised by the agent's clock at 3
    # a reading stamped by the device a bit earlier than the tick still counts
    assert [e.state for e in alarm.update(4.9, 1.0)] == ["cleared"]


def test_bad_quality_rule_with_delay() -> None:
    alarm = BadQualityAlarm(BadQualityRule("q", "plc/flow", on_delay_s=5))
    events = []
    events += alarm.update(0, 1.0)
    events += alarm.update(1, None, "bad")
    events += alarm.update(3, 1.0)
    events += alarm.update(4, None, "bad")
    events += alarm.update(9, None, "bad")
    events += alarm.update(10, 2.0, "uncertain")
    assert states(events) == [(9, "raised", "bad_quality"), (10, "cleared", "bad_quality")]
    assert events[0].message == "plc/flow quality bad" and events[0].evidence == {"quality": "bad"}


def test_bad_quality_including_uncertain() -> None:
    alarm = BadQualityAlarm(BadQualityRule("q", "p", include_uncertain=True))
    assert [e.state for e in alarm.update(0, 1.0, "uncertain")] == ["raised"]
    assert [e.state for e in alarm.update(1, float("nan"), "good")] == []  # NaN counts as bad
    assert [e.state for e in alarm.update(2, 1.0)] == ["cleared"]


# ---- vibration -----------------------------------------------------------------------------------

GROUP2_RIGID = (1.4, 2.8, 4.5)  # ISO 20816-3 Table A.2, group 2, rigid (mm/s RMS)


def test_zone_b_to_c_warning_c_to_d_critical_and_back() -> None:
    alarm = ZoneAlarm(ZoneRule("z", "pump/vib_de", GROUP2_RIGID))
    events = []
    for t, v in enumerate([1.0, 2.0, 2.9, 3.5, 4.6, 5.0, 4.4, 4.2, 2.75, 2.6]):
        events += alarm.update(float(t), v)
    assert [(e.last_ts, e.state, e.level, e.severity) for e in events] == [
        (2, "raised", "zone_C", "warning"),
        (4, "updated", "zone_D", "critical"),
        (7, "updated", "zone_C", "warning"),  # 4.4 stays D (deadband 5 %: 4.275), 4.2 leaves
        (9, "cleared", "zone_C", "warning"),  # 2.75 stays C (2.66), 2.6 leaves
    ]
    assert events[1].message == "pump/vib_de velocity 4.6 mm/s RMS in ISO 20816 zone D (boundary 4.5 mm/s)"
    assert events[1].evidence == {"zone": "D"}


def test_zone_rule_validates_boundaries() -> None:
    with pytest.raises(ValueError, match="A/B < B/C < C/D"):
        ZoneRule("z", "p", (2.8, 1.4, 4.5))


def test_fault_needs_k_consecutive_captures_and_carries_evidence() -> None:
    rule = FaultRule("f", "pump/vib_de", fault="bearing_outer_race", threshold=3.0, consecutive=3, clear_consecutive=2)
    alarm = FaultAlarm(rule)
    events = []
    scores = [1.0, 3.5, 3.6, 1.0, 3.5, 3.6, 3.7, 3.8, 2.6, 1.0, 3.2, 1.0, 1.0]
    for t, s in enumerate(scores):
        events += alarm.update_capture(float(t) * 60, s, {"bpfo_hz": 107.4, "harmonics": 3})
    assert states(events) == [(360.0, "raised", "fault"), (720.0, "cleared", "fault")]
    e = events[0]
    assert e.evidence == {"fault": "bearing_outer_race", "consecutive": 3, "bpfo_hz": 107.4, "harmonics": 3}
    assert e.message == "pump/vib_de bearing_outer_race indicator 3.7 at or above 3 in 3 consecutive captures"
    # 2.6 is between clear threshold (2.4) and threshold: it resets both counts; 3.2 resets the clear count
    restored = roundtrip(alarm, FaultAlarm(rule))
    assert restored.snapshot().active_level is None


def test_fault_bad_capture_holds() -> None:
    alarm = FaultAlarm(FaultRule("f", "p", fault="unbalance", threshold=1.0, consecutive=2, clear_consecutive=1))
    assert alarm.update_capture(0, 2.0) == []
    assert alarm.update_capture(1, None, quality="bad") == []
    assert [e.state for e in alarm.update_capture(2, 2.0)] == ["raised"]
    assert alarm.update_capture(3, None, quality="bad") == []
    assert [e.state for e in alarm.update_capture(4, 0.1)] == ["cleared"]


def test_interlock_gates_vibration_alarm_while_stopped() -> None:
    alarm = ZoneAlarm(ZoneRule("z", "pump/vib_de", GROUP2_RIGID))
    alarm.set_enabled(0, False)  # running is false
    assert alarm.update(1, 6.0) == []
    alarm.set_enabled(2, True)
    assert [e.level for e in alarm.update(3, 6.0)] == ["zone_D"]


def test_refused_state_leaves_the_alarm_as_it_was() -> None:
    rule = RateRule("r", "p", window_s=10, unit="bar", per="s", max_rise=1.0)
    alarm = RateAlarm(rule)
    ramp_events(alarm, 2.0, 0, 10)
    before = alarm.to_dict()
    broken = json.loads(json.dumps(before))
    broken["machine"]["active"] = None
    broken["rule"]["window"] = [[1.0]]  # malformed window after a valid machine part
    with pytest.raises(ValueError, match="malformed"):
        alarm.load_dict(broken)
    assert alarm.to_dict() == before


def test_stale_is_not_fooled_by_a_device_clock_running_behind() -> None:
    alarm = StaleAlarm(StaleRule("s", "opc/flow", interval_s=1, missed_intervals=5))
    events: list[AlarmEvent] = []
    for t in range(100):  # the device stamps its readings 60 s behind the agent's clock
        events += alarm.update(t - 60.0, 1.0)
        events += alarm.tick(t + 0.5)
    assert events == []
    for t in range(100, 110):  # readings stop
        events += alarm.tick(t + 0.5)
    assert states(events) == [(104.5, "raised", "stale")]  # 5 s after the tick that last saw fresh data
    assert [e.state for e in alarm.update(50.0, 1.0)] == ["cleared"]


def test_stale_with_a_device_clock_running_ahead_still_detects_the_stop() -> None:
    alarm = StaleAlarm(StaleRule("s", "opc/flow", interval_s=1, missed_intervals=5))
    events: list[AlarmEvent] = []
    for t in range(20):
        events += alarm.update(t + 3600.0, 1.0)
        events += alarm.tick(t + 0.5)
    for t in range(20, 30):
        events += alarm.tick(t + 0.5)
    assert states(events) == [(24.5, "raised", "stale")]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.1, 5.0), st.floats(-1e3, 1e3, allow_nan=False)),
        min_size=3,
        max_size=200,
    )
)
def test_running_rate_equals_a_least_squares_fit_of_the_window(steps: list[tuple[float, float]]) -> None:
    alarm = RateAlarm(RateRule("r", "p", window_s=20, unit="u", per="s", max_rise=1e9, min_samples=3))
    t = 1_800_000_000.0
    for dt, v in steps:
        t += dt
        alarm.update(t, v)
    window = list(alarm._window)
    got = alarm.rate()
    if len(window) < 3 or window[-1][0] - window[0][0] < 10:
        assert got is None
        return
    ts = np.array([w[0] for w in window]) - window[0][0]
    vs = np.array([w[1] for w in window])
    want = np.polyfit(ts, vs, 1)[0]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-6 * (1 + float(np.abs(vs).max())))
