"""Maintenance counters: run hours, starts, zone time, service intervals, resets with audit, persistence."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.counters import CounterConfig, MaintenanceCounters, ServiceInterval

H = 3600.0


def test_run_hours_and_starts_from_running_state() -> None:
    c = MaintenanceCounters(CounterConfig("pump-1"))
    c.update_running(0, False)
    c.update_running(60, True)  # start 1
    c.update_running(60 + 2 * H, False)  # ran 2 h (in one gap of 2 h? no: capped, see below)
    assert c.starts == 1
    assert c.run_hours == pytest.approx(300 / H)  # a 2 h gap without data counts only max_gap_s (300 s)

    c = MaintenanceCounters(CounterConfig("pump-1"))
    c.update_running(0, False)
    for k in range(1, 121):  # every minute for 2 h: running the first hour, then stopped, then running
        c.update_running(k * 60.0, k <= 60 or k > 90)
    assert c.starts == 2
    # time counts from a running sample to the next one: minutes 1..61 and 91..120
    assert c.run_hours == pytest.approx(89 / 60)


def test_unknown_state_does_not_count_and_first_sample_running_is_not_a_start() -> None:
    c = MaintenanceCounters(CounterConfig("a"))
    c.update_running(0, True)
    c.update_running(60, None)  # bad quality: the minute before still counted (it was running)
    c.update_running(120, True)  # unknown minute not counted; still the same run, not a new start
    c.update_running(180, True)
    assert c.starts == 0
    assert c.run_hours == pytest.approx(120 / H)


def test_running_from_speed_with_hysteresis() -> None:
    c = MaintenanceCounters(CounterConfig("a", running_threshold=100.0, hysteresis=20.0))
    speeds = [0, 105, 111, 95, 89, 95, 109, 111, 0]
    for k, s in enumerate(speeds):
        c.update_level(k * 10.0, s)
    # on at >= 110, off at <= 90: 111 starts, 89 stops, 111 starts again
    assert c.starts == 2
    assert c.run_hours == pytest.approx(30 / H)
    with pytest.raises(ValueError, match="running_threshold"):
        MaintenanceCounters(CounterConfig("b")).update_level(0, 1.0)


def test_zone_time() -> None:
    c = MaintenanceCounters(CounterConfig("a", max_gap_s=3600))
    for k, z in enumerate(["A", "A", "B", "C", None, "C", "D"]):
        c.update_zone(k * 600.0, z)
    assert c.zone_hours == pytest.approx({"A": 1200 / H, "B": 600 / H, "C": 1200 / H, "D": 0.0})
    with pytest.raises(ValueError, match="zone 'E'"):
        c.update_zone(9999, "E")


def test_service_due_once_per_interval_then_reset_with_audit() -> None:
    svc = ServiceInterval("bearing regrease", every_run_hours=2.0)
    c = MaintenanceCounters(CounterConfig("pump-1", max_gap_s=600, services=[svc]))
    events = []
    c.update_running(0, False)
    for k in range(1, 12 * 6 + 1):  # 12 h running, sample every 10 min
        events += c.update_running(k * 600.0, True)
    raised = [e for e in events if e.state == "raised"]
    updated = [e for e in events if e.state == "updated"]
    assert len(raised) == 1 and raised[0].last_ts == pytest.approx(2 * H + 600)  # ran from the 600 s sample
    assert raised[0].alarm_id == "pump-1:maintenance:bearing regrease" and raised[0].kind == "maintenance_due"
    assert raised[0].message.startswith("pump-1: service 'bearing regrease' due: 2 run hours since the last service")
    assert raised[0].unit == "h" and raised[0].limit == 2.0 and raised[0].evidence["starts"] == 1
    assert len(updated) == 4  # overdue at 4, 6, 8, 10 h
    assert "overdue" in updated[-1].message

    (cleared,) = c.reset_service("bearing regrease", by="alice", ts_s=13 * H, note="greased DE and NDE")
    assert cleared.state == "cleared" and "reset by alice" in cleared.message
    (entry,) = c.audit
    assert (entry.by, entry.action, entry.target, entry.note) == ("alice", "reset_service", "bearing regrease",
                                                                  "greased DE and NDE")
    assert entry.previous["since_service"] == pytest.approx(71 / 6)  # ran from 600 s to 43 200 s
    assert c.since_service("bearing regrease") == 0.0
    assert c.run_hours == pytest.approx(71 / 6)  # totals are not touched


def test_service_by_starts() -> None:
    c = MaintenanceCounters(CounterConfig("m", services=[ServiceInterval("contactor", every_starts=3)]))
    events = []
    for k in range(14):
        events += c.update_running(float(k), k % 2 == 1)
    assert c.starts == 7  # stopped at 0, then a start at every odd second
    assert [e.state for e in events] == ["raised", "updated"]
    assert events[0].unit == "starts" and events[0].value == 3


def test_reset_totals_and_unknown_service() -> None:
    c = MaintenanceCounters(CounterConfig("m", services=[ServiceInterval("s", every_starts=1)]))
    c.update_running(0, False)
    c.update_running(1, True)
    c.reset_totals("bob", 2.0, note="motor replaced")
    assert c.starts == 0 and c.run_hours == 0
    assert c.audit[-1].previous["starts"] == 1 and c.audit[-1].action == "reset_totals"
    with pytest.raises(KeyError, match="no service interval 'x' \\(known: s\\)"):
        c.reset_service("x", "bob", 3.0)


def test_persistence_round_trip_continues_exactly() -> None:
    cfg = CounterConfig("pump-1", services=[ServiceInterval("oil", every_run_hours=1.0)])
    a = MaintenanceCounters(cfg)
    a.update_running(0, False)
    for k in range(1, 40):
        a.update_running(k * 60.0, True)
    a.update_zone(0, "B")
    a.update_zone(60, "C")
    a.reset_service("oil", "alice", 30 * 60.0)
    restored = MaintenanceCounters(cfg).load_dict(json.loads(json.dumps(a.to_dict())))
    assert restored.to_dict() == a.to_dict()
    ev_a = [e for k in range(40, 200) for e in a.update_running(k * 60.0, True)]
    ev_b = [e for k in range(40, 200) for e in restored.update_running(k * 60.0, True)]
    assert ev_a == ev_b and [e.state for e in ev_a] == ["raised", "updated"]
    with pytest.raises(ValueError, match="does not belong to asset 'other'"):
        MaintenanceCounters(CounterConfig("other")).load_dict(a.to_dict())


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(name="x"), "exactly one of"),
        (dict(name="x", every_run_hours=1, every_starts=1), "exactly one of"),
        (dict(name="x", every_run_hours=0), "every_run_hours=0"),
        (dict(name="x", every_starts=0), "every_starts=0"),
        (dict(name=""), "needs a name"),
    ],
)
def test_service_interval_validation(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        ServiceInterval(**kw)  # type: ignore[arg-type]
    assert fragment in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1.0, 30.0, 400.0]), st.sampled_from([True, False, None])), max_size=80))
def test_counters_match_a_reference_model(steps: list[tuple[float, bool | None]]) -> None:
    c = MaintenanceCounters(CounterConfig("a", max_gap_s=300))
    t = 0.0
    run_s = 0.0
    starts = 0
    state: bool | None = None
    last_known: bool | None = None
    for dt, running in steps:
        t += dt
        if state:
            run_s += min(dt, 300.0)
        if running is not None:
            if running and last_known is False:
                starts += 1
            last_known = running
        state = running
        c.update_running(t, running)
    assert c.starts == starts
    assert c.run_hours == pytest.approx(run_s / 3600, abs=1e-9)
