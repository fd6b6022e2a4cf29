"""Interlocks gate alarm rules with a safe expression over an asset's points."""

from __future__ import annotations

import pytest

from diagnostics.alarms import Interlock, LimitAlarm, LimitRule, ZoneAlarm, ZoneRule
from diagnostics.expr import ExpressionError


def test_vibration_alarm_only_while_running() -> None:
    lock = Interlock("running and motor-plc/speed > 100")
    zone = ZoneAlarm(ZoneRule("z", "pump/vib_de", (1.4, 2.8, 4.5)))
    temp = LimitAlarm(LimitRule("t", "pump/temp", high=80))
    rules = [zone, temp]
    events = lock.apply(0, {"running": True, "motor-plc/speed": 1480}, rules)
    events += zone.update(1, 5.0) + temp.update(1, 90)
    assert [(e.alarm_id, e.state) for e in events] == [("z", "raised"), ("t", "raised")]
    # machine stops: gated alarms clear, and stay quiet while stopped
    events = lock.apply(2, {"running": False, "motor-plc/speed": 0}, rules)
    assert [(e.alarm_id, e.state) for e in events] == [("z", "cleared"), ("t", "cleared")]
    assert zone.update(3, 5.0) == [] and not zone.enabled
    # speed unreadable: keep the last decision (suppressed), no flapping
    assert lock.apply(4, {"running": True, "motor-plc/speed": None}, rules) == []
    assert lock.state is False
    # running again
    assert lock.apply(5, {"running": True, "motor-plc/speed": 1480}, rules) == []
    assert [e.state for e in zone.update(6, 5.0)] == ["raised"]


def test_unknown_before_first_decision_changes_nothing() -> None:
    lock = Interlock("running")
    alarm = LimitAlarm(LimitRule("t", "p", high=1))
    assert lock.apply(0, {}, [alarm]) == [] and lock.state is None and alarm.enabled
    assert lock.evaluate({"running": float("nan")}) is None


def test_text_where_a_number_is_needed_keeps_the_last_decision() -> None:
    lock = Interlock("motor-plc/speed > 100")
    alarm = LimitAlarm(LimitRule("t", "p", high=1))
    assert lock.apply(0, {"motor-plc/speed": 1480}, [alarm]) == [] and lock.state is True
    assert lock.evaluate({"motor-plc/speed": "RUN"}) is None  # a device sent text: no decision, no error
    assert lock.apply(1, {"motor-plc/speed": "RUN"}, [alarm]) == [] and lock.state is True and alarm.enabled


def test_interlock_names_are_checked_at_load() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'runing'"):
        Interlock("runing", allowed_names=frozenset({"running"}))
    assert Interlock("a and b > 1").names == frozenset({"a", "b"})
