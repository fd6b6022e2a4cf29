"""Predicted alarms: raise within the horizon, clear with hysteresis, persist, validate."""

from __future__ import annotations

import json

import pytest

from diagnostics.alarms import AlarmEvent, PredictionAlarm, PredictionRule

DAY = 86400.0
T0 = 1_800_000_000.0


def rule(**kw: object) -> PredictionRule:
    base: dict[str, object] = dict(
        rule_id="p", point="motor-plc/bearing_temp", limit=95.0, horizon_s=2 * DAY, window_s=4 * DAY,
        bucket_s=3600.0, unit="degC", what="bearing temperature",
    )
    base.update(kw)
    return PredictionRule(**base)  # type: ignore[arg-type]


def feed(alarm: PredictionAlarm, start_h: int, end_h: int, value_at) -> list[AlarmEvent]:  # type: ignore[no-untyped-def]
    out: list[AlarmEvent] = []
    for h in range(start_h, end_h):
        for m in range(0, 60, 10):
            ts = T0 + h * 3600 + m * 60
            out += alarm.update(ts, value_at((ts - T0) / DAY))
    return out


def test_raises_when_crossing_enters_horizon_and_clears_when_the_trend_turns() -> None:
    alarm = PredictionAlarm(rule())
    # 60 degC rising 5 degC/day: crossing 95 at day 7, enters the 2-day horizon at day 5
    events = feed(alarm, 0, 6 * 24, lambda d: 60 + 5 * d)
    (e,) = events
    assert e.state == "raised" and e.kind == "predicted"
    assert T0 + 5 * DAY <= e.last_ts <= T0 + 5 * DAY + 2 * 3600
    assert e.message.startswith("bearing temperature will reach 95 degC in ~2 days")
    assert e.evidence["time_to_crossing_s"] == pytest.approx(2 * DAY, rel=0.05)
    # temperature stabilises: once the window's trend is flat enough the forecast goes away
    events = feed(alarm, 6 * 24, 12 * 24, lambda d: 90.0)
    assert [x.state for x in events] == ["cleared"]
    assert "no longer forecast" in events[0].message


def test_reached_limit_keeps_the_alarm_and_says_so() -> None:
    alarm = PredictionAlarm(rule(horizon_s=DAY))
    events = feed(alarm, 0, 10 * 24, lambda d: 60 + 5 * d)
    assert [x.state for x in events] == ["raised"]
    assert alarm.prediction is None  # past the limit: no future crossing, alarm stays


def test_falling_direction() -> None:
    alarm = PredictionAlarm(rule(limit=1.0, direction="falling", what="oil level", unit="bar"))
    events = feed(alarm, 0, 7 * 24, lambda d: 5 - 0.5 * d)  # reaches 1 bar at day 8
    assert [x.state for x in events] == ["raised"]
    assert events[0].message.startswith("oil level will reach 1 bar in ~2 days")


def test_state_round_trip_continues_identically() -> None:
    r = rule()
    a = PredictionAlarm(r)
    feed(a, 0, 3 * 24, lambda d: 60 + 5 * d)
    b = PredictionAlarm(r).load_dict(json.loads(json.dumps(a.to_dict())))
    assert b.to_dict() == a.to_dict()
    assert feed(a, 3 * 24, 8 * 24, lambda d: 60 + 5 * d) == feed(b, 3 * 24, 8 * 24, lambda d: 60 + 5 * d)


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(horizon_s=0), "horizon_s=0"),
        (dict(bucket_s=DAY), "fewer than min_buckets"),
        (dict(direction="up"), "direction='up'"),
        (dict(limit=float("inf")), "limit=inf"),
        (dict(clear_factor=0.5), "clear_factor=0.5"),
    ],
)
def test_validation(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match="rule p") as err:
        rule(**kw)
    assert fragment in str(err.value)
