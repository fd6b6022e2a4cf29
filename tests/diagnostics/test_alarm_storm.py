"""Storm guard: a device outage yields one device alarm and one summary, not hundreds of stale alarms."""

from __future__ import annotations

import json

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
    out = guard.filter(limit.update(1, 90) + feed(stale_other, 1, True) + stale_other[0].tick(10))
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
    out = guard.filter(a.tick(5))
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
