"""Property tests of the generic lifecycle with operator actions: what the outside sees stays consistent."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.alarms import HOLD, AlarmEvent, AlarmIdentity, AlarmMachine, Level, Timing
from diagnostics.alarms.events import EventState

HIGH = Level("high", "warning", 1, 1)
HIGH_HIGH = Level("high_high", "critical", 1, 2)
LOW = Level("low", "warning", -1, 1)
LEVELS = [HIGH, HIGH_HIGH, LOW]


def describe(level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
    return None, f"{state} {level.name}"


@dataclass(frozen=True)
class Op:
    kind: str  # sample | tick | shelve | unshelve | ack | restart
    dt: float
    arg: object = None


ops = st.lists(
    st.one_of(
        st.builds(Op, st.just("sample"), st.sampled_from([0.0, 1.0, 2.0, 7.0]),
                  st.sampled_from([None, HIGH, HIGH_HIGH, LOW, HOLD])),
        st.builds(Op, st.just("tick"), st.sampled_from([0.5, 3.0, 20.0])),
        st.builds(Op, st.just("shelve"), st.just(0.0), st.sampled_from([5.0, 30.0])),
        st.builds(Op, st.just("unshelve"), st.just(0.0)),
        st.builds(Op, st.just("ack"), st.just(0.0)),
        st.builds(Op, st.just("restart"), st.just(0.0)),
    ),
    max_size=80,
)
timings = st.builds(
    Timing,
    on_delay_s=st.sampled_from([0.0, 2.0, 5.0]),
    off_delay_s=st.sampled_from([0.0, 3.0]),
    min_update_interval_s=st.sampled_from([0.0, 4.0]),
)


def new_machine(timing: Timing) -> AlarmMachine:
    return AlarmMachine(AlarmIdentity("a", "test", "d/p"), LEVELS, timing, describe)


@settings(max_examples=500, deadline=None)
@given(timings, ops)
def test_outside_view_is_consistent_under_shelve_ack_and_restart(timing: Timing, seq: list[Op]) -> None:
    m = new_machine(timing)
    t = 0.0
    seen: str | None = None  # the level the outside world believes is active
    last_raised_episode = 0
    for op in seq:
        t += op.dt
        shelved_before = m.snapshot().shelved_until
        events: list[AlarmEvent] = []
        if op.kind == "sample":
            events = m.step(t, op.arg, 1.0)  # type: ignore[arg-type]
        elif op.kind == "tick":
            events = m.step_time(t)
        elif op.kind == "shelve":
            m.shelve(t, float(op.arg), "op")  # type: ignore[arg-type]
        elif op.kind == "unshelve":
            events = m.unshelve(t)
        elif op.kind == "ack":
            if m.published_level is not None:
                ack = m.acknowledge("op", t)
                assert ack.acked and m.snapshot().acked and ack.level == seen
        else:  # agent restart: the state goes through JSON into a new machine
            restored = new_machine(timing)
            restored.load_dict(json.loads(json.dumps(m.to_dict())))
            m = restored

        if shelved_before is not None and t < shelved_before and op.kind in ("sample", "tick"):
            assert events == [], "a shelved alarm must stay silent"
        for e in events:
            if e.state == "raised":
                assert seen is None, "raised while the outside already sees it active"
                assert e.episode > last_raised_episode
                last_raised_episode = e.episode
                seen = e.level
            elif e.state == "updated":
                assert seen is not None and e.level != seen
                seen = e.level
            else:
                assert seen == e.level, "cleared a level the outside did not see"
                seen = None
        if m.snapshot().shelved_until is None:
            active = m.active_level
            assert seen == (active.name if active else None), "outside view differs from the state"


@settings(max_examples=300, deadline=None)
@given(timings, ops, ops)
def test_restore_continues_exactly(timing: Timing, before: list[Op], after: list[Op]) -> None:
    def play(m: AlarmMachine, seq: list[Op], t: float) -> list[AlarmEvent]:
        out: list[AlarmEvent] = []
        for op in seq:
            t += op.dt
            if op.kind == "sample":
                out += m.step(t, op.arg, 1.0)  # type: ignore[arg-type]
            elif op.kind == "tick":
                out += m.step_time(t)
            elif op.kind == "shelve":
                m.shelve(t, float(op.arg), "op")  # type: ignore[arg-type]
            elif op.kind == "unshelve":
                out += m.unshelve(t)
            elif op.kind == "ack" and m.published_level is not None:
                out.append(m.acknowledge("op", t))
        return out

    a = new_machine(timing)
    play(a, before, 0.0)
    b = new_machine(timing)
    b.load_dict(json.loads(json.dumps(a.to_dict())))
    assert b.to_dict() == a.to_dict()
    t0 = sum(op.dt for op in before)
    assert play(b, after, t0) == play(a, after, t0)
