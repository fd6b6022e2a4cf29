"""Bulk limit evaluation: operator actions, persistence, input checks, and that idle rules cost no steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.alarms import BulkLimitEvaluator, LimitRule


def make(n: int = 4, **kw: float) -> BulkLimitEvaluator:
    return BulkLimitEvaluator([LimitRule(f"r{i}", f"d/p{i}", unit="bar", high=10.0, **kw) for i in range(n)])


def test_idle_rules_run_no_state_machine() -> None:
    bulk = make(1000)
    rng = np.random.default_rng(0)
    for t in range(50):
        assert bulk.update(float(t), rng.uniform(0, 9, 1000)) == []
    assert bulk.machine_steps == 0
    values = np.full(1000, 5.0)
    values[[3, 500]] = 12.0
    events = bulk.update(50.0, values)
    assert [(e.alarm_id, e.state) for e in events] == [("r3", "raised"), ("r500", "raised")]
    assert bulk.machine_steps == 2


def test_subset_update_touches_only_the_given_rules() -> None:
    bulk = make(4)
    bulk.update(0.0, [12.0, 1.0, 12.0, 1.0])
    events = bulk.update(1.0, [1.0, 12.0], index=[2, 3])
    assert [(e.alarm_id, e.state) for e in events] == [("r2", "cleared"), ("r3", "raised")]
    assert {s.alarm_id for s in bulk.snapshot()} == {"r0", "r3"}


def test_on_delay_in_bulk_needs_tick_or_update() -> None:
    bulk = make(2, on_delay_s=5)
    bulk.update(0.0, [12.0, 1.0])
    assert bulk.tick(4.0) == []
    assert [(e.alarm_id, e.state, e.last_ts) for e in bulk.tick(5.0)] == [("r0", "raised", 5.0)]


def test_bad_quality_mask_holds() -> None:
    bulk = make(2)
    bulk.update(0.0, [12.0, 12.0])
    assert bulk.update(1.0, [1.0, 1.0], good=[False, True])[0].alarm_id == "r1"
    assert [e.alarm_id for e in bulk.update(2.0, [np.nan, 1.0])] == []
    assert [e.alarm_id for e in bulk.update(3.0, [1.0, 1.0])] == ["r0"]


def test_shelve_ack_and_interlock_by_rule_id() -> None:
    bulk = make(2)
    bulk.update(0.0, [12.0, 1.0])
    ack = bulk.acknowledge("r0", "op", 1.0)
    assert ack.acked and ack.value == 12.0
    bulk.shelve("r1", 1.0, 60, "op")
    assert bulk.update(2.0, [12.0, 12.0]) == []
    assert [(e.alarm_id, e.state) for e in bulk.unshelve("r1", 3.0)] == [("r1", "raised")]
    assert [e.state for e in bulk.set_enabled("r0", 4.0, False)] == ["cleared"]
    bulk.set_enabled("r0", 5.0, True)
    assert [(e.alarm_id, e.state) for e in bulk.update(6.0, [12.0, 12.0])] == [("r0", "raised")]
    assert {s.alarm_id for s in bulk.snapshot()} == {"r0", "r1"}
    with pytest.raises(KeyError, match="no limit rule with id 'nope'"):
        bulk.acknowledge("nope", "op", 1.0)


def test_state_survives_restart_without_re_raise() -> None:
    rules = [LimitRule(f"r{i}", f"d/p{i}", high=10.0, off_delay_s=5) for i in range(3)]
    bulk = BulkLimitEvaluator(rules)
    bulk.update(0.0, [12.0, 1.0, 12.0])
    saved = json.loads(json.dumps(bulk.to_dict()))
    assert set(saved["alarms"]) == {"r0", "r2"}  # idle rules are not stored
    restored = BulkLimitEvaluator(rules).load_dict(saved)
    assert restored.update(100.0, [12.0, 1.0, 1.0]) == []
    assert [(e.alarm_id, e.state) for e in restored.tick(105.0)] == [("r2", "cleared")]
    # a state for a rule removed from the config is ignored, not an error
    BulkLimitEvaluator(rules[:1]).load_dict(saved)


def test_input_errors_are_explicit() -> None:
    bulk = make(3)
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3,\)"):
        bulk.update(0.0, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"values has shape \(3,\); expected \(2,\)"):
        bulk.update(0.0, [1.0, 2.0, 3.0], index=[0, 2])
    bulk.update(5.0, [1.0, 2.0, 3.0])
    events = bulk.update(4.0, [11.0, 2.0, 3.0])  # older than the last update: taken as t = 5
    assert bulk.clamped == 1 and events[0].last_ts == 5.0
    with pytest.raises(ValueError, match="duplicated: r0"):
        BulkLimitEvaluator([LimitRule("r0", "a", high=1), LimitRule("r0", "b", high=1)])
