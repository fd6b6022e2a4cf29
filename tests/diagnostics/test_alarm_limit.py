"""Limit alarm transitions, table-driven: delays, deadbands, flapping, bad quality, restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from diagnostics.alarms import AlarmEvent, LimitAlarm, LimitRule


@dataclass(frozen=True)
class S:
    """One step: a sample (value, quality) or, with tick=True, only time passing."""

    ts: float
    value: float | None = None
    quality: str = "good"
    tick: bool = False


def T(ts: float) -> S:
    return S(ts, tick=True)


def run(alarm: LimitAlarm, steps: list[S]) -> list[tuple[float, str, str]]:
    out: list[AlarmEvent] = []
    for s in steps:
        out += alarm.tick(s.ts) if s.tick else alarm.update(s.ts, s.value, s.quality)
    return [(e.last_ts, e.state, e.level) for e in out]


TEMP = dict(rule_id="bt", point="motor-plc/bearing_temp", unit="degC")

CASES: list[tuple[str, dict[str, object], list[S], list[tuple[float, str, str]]]] = [
    (
        "no delay: raise at the limit, clear below it",
        dict(high=80),
        [S(0, 70), S(1, 80), S(2, 85), S(3, 79.9), S(4, 70)],
        [(1, "raised", "high"), (3, "cleared", "high")],
    ),
    (
        "on_delay: a short excursion does not raise",
        dict(high=80, on_delay_s=10),
        [S(0, 70), S(1, 85), S(5, 85), S(10.9, 85), S(10.95, 70), S(30, 70)],
        [],
    ),
    (
        "on_delay: held long enough raises at the sample that completes it",
        dict(high=80, on_delay_s=10),
        [S(0, 70), S(1, 85), S(5, 85), S(11, 85), S(12, 70)],
        [(11, "raised", "high"), (12, "cleared", "high")],
    ),
    (
        "on_delay: tick raises when samples only come on change",
        dict(high=80, on_delay_s=10),
        [S(0, 70), S(1, 85), T(5), T(10.99), T(11), T(12)],
        [(11, "raised", "high")],
    ),
    (
        "on_delay: a late sample raises for the time the condition held (tick missed)",
        dict(high=80, on_delay_s=10),
        [S(0, 70), S(1, 85), S(20, 70)],
        [(20, "raised", "high"), (20, "cleared", "high")],
    ),
    (
        "flapping faster than on_delay never raises",
        dict(high=80, on_delay_s=5),
        [S(t, 85 if t % 2 == 0 else 75) for t in range(40)],
        [],
    ),
    (
        "deadband: dithering around the limit keeps the alarm, clears below limit minus deadband",
        dict(high=80, deadband=2),
        [S(0, 81), S(1, 79), S(2, 80.5), S(3, 78.5), S(4, 78), S(5, 77.9)],
        [(0, "raised", "high"), (4, "cleared", "high")],
    ),
    (
        "off_delay: a short dip does not clear",
        dict(high=80, off_delay_s=5),
        [S(0, 85), S(1, 75), S(3, 85), S(4, 75), T(8.9), T(9)],
        [(0, "raised", "high"), (9, "cleared", "high")],
    ),
    (
        "flapping input with off_delay: one raise, one clear",
        dict(high=80, off_delay_s=3),
        [*(S(t, 85 if t % 2 == 0 else 75) for t in range(20)), S(20, 70), T(23)],
        [(0, "raised", "high"), (23, "cleared", "high")],
    ),
    (
        "escalate and de-escalate are updates of one episode",
        dict(high=80, high_high=95),
        [S(0, 85), S(1, 96), S(2, 90), S(3, 70)],
        [(0, "raised", "high"), (1, "updated", "high_high"), (2, "updated", "high"), (3, "cleared", "high")],
    ),
    (
        "a jump straight past high-high raises at high-high",
        dict(high=80, high_high=95),
        [S(0, 70), S(1, 99), S(2, 70)],
        [(1, "raised", "high_high"), (2, "cleared", "high_high")],
    ),
    (
        "escalation also waits for on_delay",
        dict(high=80, high_high=95, on_delay_s=5),
        [S(0, 85), S(5, 85), S(6, 96), S(10, 96), S(11, 96), S(12, 85)],
        [(5, "raised", "high"), (11, "updated", "high_high"), (12, "updated", "high")],
    ),
    (
        "de-escalation waits for off_delay",
        dict(high=80, high_high=95, off_delay_s=5),
        [S(0, 96), S(1, 90), S(5, 90), S(6, 90), S(7, 70), S(12, 70)],
        [(0, "raised", "high_high"), (6, "updated", "high"), (12, "cleared", "high")],
    ),
    (
        "min_update_interval: a change too soon is announced when the interval passed",
        dict(high=80, high_high=95, min_update_interval_s=10),
        [S(0, 85), S(1, 96), T(5), T(10), S(11, 96)],
        [(0, "raised", "high"), (10, "updated", "high_high")],
    ),
    (
        "min_update_interval: an excursion that ends in time is never announced",
        dict(high=80, high_high=95, min_update_interval_s=10),
        [S(0, 85), S(1, 96), S(2, 85), T(20)],
        [(0, "raised", "high")],
    ),
    (
        "bad quality mid-episode holds: no clear however long",
        dict(high=80),
        [S(0, 85), S(1, None, "bad"), S(100, 12.0, "bad"), T(500), S(600, 70)],
        [(0, "raised", "high"), (600, "cleared", "high")],
    ),
    (
        "bad quality during on_delay holds: nothing raises while bad",
        dict(high=80, on_delay_s=10),
        [S(0, 85), S(5, None, "bad"), T(20), S(30, 70)],
        [],
    ),
    (
        "condition true before and after a bad gap counts as continuous",
        dict(high=80, on_delay_s=10),
        [S(0, 85), S(5, None, "bad"), T(20), S(21, 86)],
        [(21, "raised", "high")],
    ),
    (
        "uncertain quality is judged like good",
        dict(high=80),
        [S(0, 85, "uncertain"), S(1, 70, "uncertain")],
        [(0, "raised", "high"), (1, "cleared", "high")],
    ),
    (
        "NaN holds like bad quality",
        dict(high=80),
        [S(0, 85), S(1, float("nan")), S(2, 70)],
        [(0, "raised", "high"), (2, "cleared", "high")],
    ),
    (
        "low and low-low side",
        dict(low=10, low_low=5, deadband=1),
        [S(0, 20), S(1, 9), S(2, 4), S(3, 5.5), S(4, 6.1), S(5, 10.5), S(6, 11.1)],
        [(1, "raised", "low"), (2, "updated", "low_low"), (4, "updated", "low"), (6, "cleared", "low")],
    ),
    (
        "swing from high to low: clear, then a new episode",
        dict(high=80, low=10),
        [S(0, 85), S(1, 5), S(2, 50)],
        [(0, "raised", "high"), (1, "cleared", "high"), (1, "raised", "low"), (2, "cleared", "low")],
    ),
    (
        "off_delay: high-high straight back to normal steps down to high for the off-delay of high",
        dict(high=80, high_high=95, deadband=2, on_delay_s=10, off_delay_s=30),
        [*(S(t, 97) for t in range(0, 100)), *(S(t, 90) for t in range(100, 120)),
         *(S(t, 70) for t in range(120, 160))],
        [(10, "raised", "high_high"), (130, "updated", "high"), (150, "cleared", "high")],
    ),
    (
        "off_delay: high-high to normal with ticks only (samples on change)",
        dict(high=80, high_high=95, on_delay_s=10, off_delay_s=30),
        [S(0, 97), T(10), S(20, 70), T(49), T(50), T(51)],
        [(10, "raised", "high_high"), (50, "cleared", "high_high")],
    ),
    (
        "a sample older than the newest is ignored",
        dict(high=80),
        [S(10, 70), S(5, 99), S(11, 70)],
        [],
    ),
]


@pytest.mark.parametrize(("title", "limits", "steps", "expected"), CASES, ids=[c[0] for c in CASES])
def test_limit_transitions(
    title: str, limits: dict[str, object], steps: list[S], expected: list[tuple[float, str, str]]
) -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, **limits))  # type: ignore[arg-type]
    assert run(alarm, steps) == expected


def test_event_carries_value_limit_units_and_severity() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80, high_high=95))  # type: ignore[arg-type]
    (e,) = alarm.update(100.0, 96.2)
    assert e.message == "motor-plc/bearing_temp 96.2 degC above high-high limit 95 degC"
    assert (e.alarm_id, e.state, e.severity, e.kind, e.value, e.limit, e.unit) == (
        "bt", "raised", "critical", "limit", 96.2, 95, "degC"
    )
    assert (e.first_ts, e.last_ts, e.episode) == (100.0, 100.0, 1)
    (c,) = alarm.update(160.0, 70.0)
    assert c.state == "cleared" and c.first_ts == 100.0 and c.last_ts == 160.0
    assert "back to normal" in c.message and "70 degC" in c.message
    (e2,) = alarm.update(200.0, 81.0)
    assert e2.episode == 2 and e2.severity == "warning" and e2.first_ts == 200.0
    assert json.loads(json.dumps(e2.to_dict()))["message"] == "motor-plc/bearing_temp 81 degC above high limit 80 degC"
    assert AlarmEvent.from_dict(e2.to_dict()) == e2


def test_custom_severity_per_level() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80, severity_high="info"))  # type: ignore[arg-type]
    assert alarm.update(0, 90)[0].severity == "info"


RESTART_CASES: list[tuple[str, dict[str, object], list[S], list[S], list[tuple[float, str, str]]]] = [
    (
        "restart while active: no re-raise, the clear still comes",
        dict(high=80, off_delay_s=5),
        [S(0, 70), S(1, 85), S(2, 85)],
        [S(100, 86), S(101, 70), T(106)],
        [(106, "cleared", "high")],
    ),
    (
        "restart during on_delay: raises when the delay completes",
        dict(high=80, on_delay_s=10),
        [S(0, 70), S(1, 85), S(5, 85)],
        [T(10), T(11)],
        [(11, "raised", "high")],
    ),
    (
        "restart while holding bad quality: still holding",
        dict(high=80),
        [S(0, 85), S(1, None, "bad")],
        [T(50), S(51, None, "bad"), S(60, 70)],
        [(60, "cleared", "high")],
    ),
    (
        "restart with a deferred escalation: it is announced after the interval",
        dict(high=80, high_high=95, min_update_interval_s=10),
        [S(0, 85), S(1, 96)],
        [T(9), T(10)],
        [(10, "updated", "high_high")],
    ),
]


@pytest.mark.parametrize(
    ("title", "limits", "before", "after", "expected"), RESTART_CASES, ids=[c[0] for c in RESTART_CASES]
)
def test_restart_mid_episode(
    title: str, limits: dict[str, object], before: list[S], after: list[S], expected: list[tuple[float, str, str]]
) -> None:
    rule = LimitRule(**TEMP, **limits)  # type: ignore[arg-type]
    first = LimitAlarm(rule)
    run(first, before)
    saved = json.loads(json.dumps(first.to_dict()))  # through JSON, as the agent stores it
    restored = LimitAlarm(rule).load_dict(saved)
    assert restored.to_dict() == first.to_dict()
    assert run(restored, after) == expected
    # and the restored alarm behaves exactly as the one that never stopped
    assert run(first, after) == expected


def test_restored_state_of_another_rule_is_refused() -> None:
    a = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    a.update(0, 90)
    other = LimitAlarm(LimitRule(rule_id="other", point="x", high=80))
    with pytest.raises(ValueError, match="not 'other'"):
        other.load_dict(a.to_dict())
    changed = LimitAlarm(LimitRule(**TEMP, low=10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rule changed"):
        changed.load_dict(a.to_dict())


def test_shelve_suppresses_and_reconciles_at_expiry() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    assert run(alarm, [S(0, 85)]) == [(0, "raised", "high")]
    alarm.shelve(1, 100, by="op1")
    assert alarm.snapshot().shelved_until == 101 and alarm.snapshot().shelved_by == "op1"
    # cleared while shelved: no event now, the clear comes when the shelve ends
    assert run(alarm, [S(10, 70), S(20, 70), T(100.9)]) == []
    assert run(alarm, [T(101)]) == [(101, "cleared", "high")]
    assert alarm.snapshot().shelved_until is None


def test_shelve_raise_and_clear_inside_shelve_is_silent() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    alarm.update(0, 70)
    alarm.shelve(0, 60, by="op1")
    assert run(alarm, [S(10, 90), S(20, 70), T(61)]) == []


def test_shelve_raised_inside_and_still_active_is_raised_at_expiry() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80, high_high=95))  # type: ignore[arg-type]
    alarm.update(0, 70)
    alarm.shelve(0, 60, by="op1")
    assert run(alarm, [S(10, 90), S(20, 99), T(61)]) == [(61, "raised", "high_high")]


def test_shelve_new_episode_inside_shelve_clears_old_and_raises_new() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    alarm.update(0, 90)
    alarm.shelve(1, 60, by="op1")
    assert run(alarm, [S(10, 70), S(20, 90)]) == []
    events = alarm.unshelve(30)
    assert [(e.state, e.episode) for e in events] == [("cleared", 1), ("raised", 2)]


def test_shelve_duration_is_bounded() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    for bad in (0, -5, float("inf"), 31 * 86400):
        with pytest.raises(ValueError, match="duration_s"):
            alarm.shelve(0, bad, by="op1")


def test_acknowledge_sets_flag_and_escalation_resets_it() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80, high_high=95))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not active"):
        alarm.acknowledge("op1", 0)
    alarm.update(0, 85)
    ack = alarm.acknowledge("op1", 1)
    assert ack.state == "updated" and ack.acked and ack.evidence["acked_by"] == "op1"
    assert alarm.snapshot().acked and alarm.snapshot().acked_by == "op1"
    (esc,) = alarm.update(2, 99)
    assert esc.level == "high_high" and not esc.acked
    alarm.acknowledge("op2", 3)
    (de,) = alarm.update(4, 85)
    assert de.level == "high" and de.acked  # de-escalation keeps the acknowledgement
    alarm.update(5, 70)
    (again,) = alarm.update(6, 85)
    assert again.state == "raised" and not again.acked  # a new episode needs a new ack


def test_acknowledge_while_shelved_speaks_of_what_the_outside_sees() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80, high_high=95))  # type: ignore[arg-type]
    alarm.update(0, 70)
    alarm.shelve(0, 60, by="op1")
    alarm.update(1, 99)  # raised while shelved: the outside does not know
    with pytest.raises(ValueError, match="is not active \\(it is shelved\\)"):
        alarm.acknowledge("op1", 2)
    alarm.unshelve(3)
    alarm.shelve(4, 60, by="op1")
    alarm.update(5, 85)  # de-escalated while shelved
    ack = alarm.acknowledge("op1", 6)
    assert ack.level == "high_high"  # the outside still sees high-high until the shelve ends
    assert [(e.state, e.level, e.acked) for e in alarm.unshelve(7)] == [("updated", "high", True)]


def test_interlock_suppresses_and_reenables() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    alarm.update(0, 90)
    assert [e.state for e in alarm.set_enabled(1, False)] == ["cleared"]
    assert alarm.update(2, 95) == []
    alarm.set_enabled(3, True)
    assert [e.state for e in alarm.update(4, 95)] == ["raised"]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (dict(), "at least one of"),
        (dict(high=80, high_high=70), "high_high=70 must be above high=80"),
        (dict(low=10, low_low=20), "low_low=20 must be below low=10"),
        (dict(high=10, low=9, deadband=1), "limits overlap"),
        (dict(high=float("nan")), "must be a finite number"),
        (dict(high=80, deadband=-1), "deadband=-1"),
        (dict(high=80, on_delay_s=-1), "on_delay_s=-1"),
        (dict(high=80, severity_high="urgent"), "severity 'urgent' must be one of"),
    ],
)
def test_bad_rule_is_refused_with_a_clear_message(limits: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="rule bt") as err:
        LimitRule(**TEMP, **limits)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_bad_quality_string_is_refused() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality 'ok'"):
        alarm.update(0, 1.0, "ok")


@pytest.mark.parametrize("device_offset_s", [-3600.0, 3600.0])
def test_interlock_on_the_agent_clock_works_with_a_device_clock_off_by_an_hour(device_offset_s: float) -> None:
    """The interlock decides at the agent's time; samples carry the device's, an hour behind or ahead."""
    agent_now = 1_700_000_000.0
    device_now = agent_now + device_offset_s
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    assert [e.state for e in alarm.update(device_now, 90)] == ["raised"]

    assert [e.state for e in alarm.set_enabled(agent_now + 1, False)] == ["cleared"]
    assert alarm.update(device_now + 2, 95) == []  # suppressed, but taken in order
    alarm.set_enabled(agent_now + 3, True)
    assert [e.state for e in alarm.update(device_now + 4, 95)] == ["raised"]
    assert alarm.machine.out_of_order == 0


def test_interlock_before_any_sample_does_not_move_the_sample_clock() -> None:
    alarm = LimitAlarm(LimitRule(**TEMP, high=80))  # type: ignore[arg-type]
    assert alarm.set_enabled(2_000.0, False) == []
    alarm.set_enabled(2_001.0, True)
    assert [e.state for e in alarm.update(1_000.0, 95)] == ["raised"]  # a device clock behind the agent's
    assert alarm.machine.out_of_order == 0
