"""Property tests of the alarm lifecycle: justified raises, proper alternation, restart transparency,
and the bulk evaluator producing exactly the events of rules updated one by one."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.alarms import AlarmEvent, BulkLimitEvaluator, LimitAlarm, LimitRule


@dataclass(frozen=True)
class Step:
    dt: float
    value: float | None  # None = bad quality
    tick: bool


values = st.sampled_from([60.0, 77.0, 78.0, 78.5, 79.9, 80.0, 81.0, 93.0, 94.0, 95.0, 99.0, None])
steps = st.lists(
    st.builds(Step, dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 11.0]), value=values, tick=st.booleans()),
    max_size=60,
)
rules = st.builds(
    LimitRule,
    rule_id=st.just("r"),
    point=st.just("d/p"),
    high=st.just(80.0),
    high_high=st.sampled_from([None, 95.0]),
    deadband=st.sampled_from([0.0, 2.0]),
    on_delay_s=st.sampled_from([0.0, 1.0, 5.0, 10.0]),
    off_delay_s=st.sampled_from([0.0, 3.0]),
    min_update_interval_s=st.sampled_from([0.0, 4.0]),
)


Sample = tuple[float, float | None]


def drive(alarm: LimitAlarm, seq: list[Step], t0: float = 0.0) -> tuple[list[AlarmEvent], list[Sample]]:
    events: list[AlarmEvent] = []
    samples: list[tuple[float, float | None]] = []
    t = t0
    for s in seq:
        t += s.dt
        if s.tick:
            events += alarm.tick(t)
        else:
            events += alarm.update(t, s.value, "good" if s.value is not None else "bad")
            samples.append((t, s.value))
    return events, samples


@settings(max_examples=400, deadline=None)
@given(rules, steps)
def test_events_alternate_one_raise_and_at_most_one_clear_per_episode(rule: LimitRule, seq: list[Step]) -> None:
    events, _ = drive(LimitAlarm(rule), seq)
    active = False
    episode = 0
    for e in events:
        if e.state == "raised":
            assert not active, "raised while already active"
            active = True
            episode += 1
            assert e.episode == episode
        elif e.state == "updated":
            assert active and e.episode == episode
        else:
            assert active and e.episode == episode, "cleared without a raise"
            active = False
    levels = [e.level for e in events]
    for a, b, e in zip(levels, levels[1:], events[1:], strict=False):
        if e.state == "updated":
            assert a != b, "an update must change the level"


@settings(max_examples=400, deadline=None)
@given(rules, steps)
def test_no_raise_without_the_condition_held_for_on_delay(rule: LimitRule, seq: list[Step]) -> None:
    events, samples = drive(LimitAlarm(rule), seq)
    good = [(t, v) for t, v in samples if v is not None]
    for e in (x for x in events if x.state == "raised"):
        limit = rule.high_high if e.level == "high_high" else rule.high
        assert limit is not None
        justified = False
        for k, (tk, vk) in enumerate(good):
            if tk > e.last_ts - rule.on_delay_s or vk < limit:
                continue
            later = [v for t, v in good[k + 1 :] if t < e.last_ts]
            if all(v >= limit or v > limit - rule.deadband for v in later):
                justified = True
                break
        assert justified, f"raise at {e.last_ts} ({e.level}) without {limit} held for {rule.on_delay_s} s"


@settings(max_examples=300, deadline=None)
@given(rules, steps, steps)
def test_restart_anywhere_is_invisible(rule: LimitRule, before: list[Step], after: list[Step]) -> None:
    running = LimitAlarm(rule)
    drive(running, before)
    restored = LimitAlarm(rule).load_dict(json.loads(json.dumps(running.to_dict())))
    t0 = sum(s.dt for s in before)
    assert drive(restored, after, t0)[0] == drive(running, after, t0)[0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(rules, min_size=1, max_size=6),
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 3.0, 11.0]),
            st.lists(values, min_size=6, max_size=6),
            st.booleans(),
            st.lists(st.booleans(), min_size=6, max_size=6),
        ),
        max_size=40,
    ),
)
def test_bulk_evaluator_emits_exactly_what_single_rules_emit(
    rule_list: list[LimitRule], cycles: list[tuple[float, list[float | None], bool, list[bool]]]
) -> None:
    rule_list = [replace(r, rule_id=f"r{i}") for i, r in enumerate(rule_list)]
    n = len(rule_list)
    bulk = BulkLimitEvaluator(rule_list)
    singles = [LimitAlarm(r) for r in rule_list]
    t = 0.0
    for dt, vals, tick, present in cycles:
        t += dt
        vals = vals[:n]
        if tick:
            got = bulk.tick(t)
            want = [e for a in singles for e in a.tick(t)]
        else:
            # a subscription batch carries only some points: update those rules only
            index = [i for i in range(n) if present[i]]
            arr = np.array([np.nan if vals[i] is None else vals[i] for i in index])
            got = bulk.update(t, arr, index=index) if len(index) < n else bulk.update(t, arr)
            want = []
            for i in index:
                v = vals[i]
                want += singles[i].update(t, v, "good" if v is not None else "bad")
        assert got == want
