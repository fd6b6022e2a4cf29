"""Storm guard: a device outage yields one device alarm and one summary, not hundreds of stale alarms."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.alarms import AlarmEvent, LimitAlarm, LimitRule, StaleAlarm, StaleRule, StormGuard


def stale_rules(device: str, n: int) -> list[StaleAlarm]:
    return [StaleAlarm(StaleRule(f"{device}/p{i}:stale", f"{device}/p{i}", interval_s=1, missed_intervals=3))
            for i in range(n)]


def feed(alarms: list[StaleAlarm], ts: float, good: bool) -> list[AlarmEvent]:
    out: list[AlarmEvent] = []
    for a in alarms:
        out += a.update(ts, 1.0 if good else None, "good" if good else "bad")
    return out


def test_device_down_suppresses_point_alarms_and_summarises_once() -> None:
    guard = StormGuard(summary_after_s=30, release_after_s=60)
    plc = stale_rules("plc1", 200)
    other = stale_rules("plc2", 2)
    published: list[AlarmEvent] = []
    published += guard.filter(feed(plc + other, 0, good=True))
    published += guard.device_down("plc1", 1, reason="connection refused")
    for t in range(1, 60):
        published += guard.filter(feed(plc, t, good=False) + feed(other, t, good=True))
        published += guard.tick(t)
    kinds = [(e.kind, e.state) for e in published]
    assert kinds == [("device_down", "raised"), ("device_down", "updated")]
    assert published[0].message == "device plc1 down: connection refused"
    summary = published[1]
    assert summary.last_ts == 31 and summary.evidence["suppressed"] == 200
    assert "200 point alarm(s) suppressed" in summary.message
    assert guard.hidden_count == 200

    # the device comes back: point alarms clear silently, the device alarm clears with the total
    published = guard.device_up("plc1", 60)
    published += guard.filter(feed(plc, 61, good=True))
    for t in range(61, 200):
        published += guard.tick(t)
    assert [(e.kind, e.state) for e in published] == [("device_down", "cleared")]
    assert published[0].evidence["suppressed"] == 200 and published[0].first_ts == 1
    assert guard.hidden_count == 0


def test_other_devices_and_other_kinds_pass_through() -> None:
    guard = StormGuard()
    guard.device_down("plc1", 0)
    limit = LimitAlarm(LimitRule("plc1/temp:limit", "plc1/temp", high=80))
    stale_other = stale_rules("plc2", 1)
    out = guard.filter(limit.update(1, 90) + feed(stale_other, 1, True) + stale_other[0].tick(2)
                       + stale_other[0].tick(10))
    assert [(e.kind, e.state) for e in out] == [("limit", "raised"), ("stale", "raised")]


def test_point_still_bad_after_recovery_is_released_as_raised() -> None:
    guard = StormGuard(summary_after_s=5, release_after_s=20)
    alarms = stale_rules("plc1", 3)
    feed(alarms, 0, True)
    guard.device_down("plc1", 1)
    for t in range(1, 10):
        guard.filter(feed(alarms, t, False))
    guard.device_up("plc1", 10)
    released: list[AlarmEvent] = []
    for t in range(10, 40):
        # two points recover, one stays bad (a real sensor fault)
        released += guard.filter(feed(alarms[:2], t, True) + feed(alarms[2:], t, False))
        released += guard.tick(t)
    assert [(e.alarm_id, e.state, e.last_ts) for e in released] == [("plc1/p2:stale", "raised", 30)]
    assert "held back while device plc1 was down" in released[0].message
    later = guard.filter(feed(alarms[2:], 41, True))
    assert [e.state for e in later] == ["cleared"]  # its clear now goes out, matching the release


def test_alarm_published_before_the_outage_still_clears() -> None:
    guard = StormGuard()
    (a,) = stale_rules("plc1", 1)
    a.update(0, 1.0)
    out = guard.filter(a.tick(1) + a.tick(5))
    assert [e.state for e in out] == ["raised"]  # stale before the device was declared down
    guard.device_down("plc1", 6)
    assert [e.state for e in guard.filter(a.update(7, 1.0))] == ["cleared"]


def test_state_round_trips_through_json() -> None:
    guard = StormGuard(summary_after_s=5)
    alarms = stale_rules("plc1", 4)
    feed(alarms, 0, True)
    guard.device_down("plc1", 1)
    for t in range(1, 6):
        guard.filter(feed(alarms, t, False))
    restored = StormGuard(summary_after_s=5).load_dict(json.loads(json.dumps(guard.to_dict())))
    assert restored.to_dict() == guard.to_dict()
    assert [e.evidence["suppressed"] for e in restored.tick(6)] == [4]
    assert guard.device_down("plc1", 7) == []  # already down: no second raise

storm_ops = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.integers(0, 3), st.sampled_from([1.0, 2.0])),
        st.tuples(st.just("bad"), st.integers(0, 3), st.sampled_from([1.0, 4.0])),
        st.tuples(st.just("down"), st.just(0), st.just(0.0)),
        st.tuples(st.just("up"), st.just(0), st.just(0.0)),
        st.tuples(st.just("tick"), st.just(0), st.sampled_from([1.0, 10.0, 70.0])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(storm_ops)
def test_outside_view_of_point_alarms_stays_consistent(ops: list[tuple[str, int, float]]) -> None:
    """Whatever the outage pattern: no clear without a raise, no double raise, and once the device is up
    and the release time has passed, the outside view equals the true alarm states."""
    guard = StormGuard(summary_after_s=5, release_after_s=20)
    alarms = stale_rules("plc1", 4)
    outside: dict[str, bool] = {a.rule_id: False for a in alarms}
    t = 0.0
    for a in alarms:
        a.update(t, 1.0)

    def publish(events: list[AlarmEvent]) -> None:
        for e in events:
            if e.kind != "stale":
                continue
            if e.state == "raised":
                assert not outside[e.alarm_id], "raised twice"
                outside[e.alarm_id] = True
            elif e.state == "cleared":
                assert outside[e.alarm_id], "cleared without a raise"
                outside[e.alarm_id] = False

    for kind, i, dt in ops:
        t += dt
        if kind == "good":
            publish(guard.filter(alarms[i].update(t, 1.0)))
        elif kind == "bad":
            publish(guard.filter(alarms[i].update(t, None, "bad")))
        elif kind == "down":
            guard.device_down("plc1", t)
        elif kind == "up":
            guard.device_up("plc1", t)
        else:
            events: list[AlarmEvent] = []
            for a in alarms:
                events += a.tick(t)
            publish(guard.filter(events))
            publish(guard.tick(t))
    # settle: device up, everything ticks past the release time
    guard.device_up("plc1", t)
    for step in (1.0, 25.0):
        t += step
        events = []
        for a in alarms:
            events += a.tick(t)
        publish(guard.filter(events))
        publish(guard.tick(t))
    truth = {a.rule_id: a.snapshot().active_level is not None for a in alarms}
    assert outside == truth
