"""The drift-free cadence: aligned start, no cumulative drift, no overlap, overruns skipped and counted."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from edge_agent.scheduler import CadenceStats, PollActivity, aligned_start, run_periodic


def test_aligned_start_is_next_multiple() -> None:
    assert aligned_start(1.0, 100.25) == 101.0
    assert aligned_start(60.0, 125.0) == 180.0
    assert aligned_start(0.25, 10.0) == 10.25
    with pytest.raises(ValueError, match="period_s"):
        aligned_start(0.0, 1.0)


async def test_due_times_lie_on_the_grid_without_drift() -> None:
    dues: list[float] = []
    enough = asyncio.Event()

    async def cycle(due: float) -> None:
        dues.append(due)
        if len(dues) >= 12:
            enough.set()
        await asyncio.sleep(0.005)  # work inside the cycle must not shift the grid

    task = asyncio.create_task(run_periodic(0.05, cycle, name="t"))
    await asyncio.wait_for(enough.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    steps = [b - a for a, b in itertools.pairwise(dues)]
    # Nominal due times are exact multiples of the period: no accumulated error at all.
    # (epoch seconds carry ~2e-7 s of float resolution, hence abs=1e-6). On a loaded machine a tick may be
    # skipped, so each step is a whole number of periods.
    for step in steps:
        assert step / 0.05 == pytest.approx(round(step / 0.05), abs=1e-4)
        assert round(step / 0.05) >= 1
    assert round(dues[0] / 0.05) * 0.05 == pytest.approx(dues[0], abs=1e-6)


async def test_overrun_skips_ticks_and_never_overlaps() -> None:
    running = 0
    max_running = 0
    dues: list[float] = []
    stats = CadenceStats()
    enough = asyncio.Event()

    async def slow_cycle(due: float) -> None:
        nonlocal running, max_running
        running += 1
        max_running = max(max_running, running)
        dues.append(due)
        await asyncio.sleep(0.12)  # longer than two periods
        running -= 1
        if len(dues) >= 4:
            enough.set()

    task = asyncio.create_task(run_periodic(0.05, slow_cycle, name="slow", stats=stats, align=False))
    await asyncio.wait_for(enough.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert max_running == 1
    assert stats.skipped >= 2 * (stats.cycles)  # each 0.12 s cycle swallows at least two 0.05 s ticks
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert all(g >= 0.15 - 1e-6 for g in gaps)


async def test_a_failing_cycle_does_not_stop_the_cadence() -> None:
    calls = 0
    enough = asyncio.Event()

    async def flaky(due: float) -> None:
        nonlocal calls
        calls += 1
        if calls >= 5:
            enough.set()
        if calls % 2:
            raise RuntimeError("device exploded")

    task = asyncio.create_task(run_periodic(0.02, flaky, name="flaky", align=False))
    await asyncio.wait_for(enough.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls >= 5


async def test_give_way_waits_for_running_poll_cycles_then_returns() -> None:
    activity = PollActivity(max_wait_s=5.0)
    order: list[str] = []

    async def poll() -> None:
        with activity.polling():
            order.append("poll start")
            await asyncio.sleep(0.05)
            order.append("poll end")

    async def deferrable() -> None:
        await activity.give_way()
        order.append("slice")

    task = asyncio.create_task(poll())
    await asyncio.sleep(0)  # the poll is running
    assert activity.running == 1
    await deferrable()
    await task
    assert order == ["poll start", "poll end", "slice"]
    assert activity.running == 0
    await asyncio.wait_for(deferrable(), 1.0)  # nothing running: returns at once


async def test_give_way_is_bounded_when_polls_never_pause() -> None:
    activity = PollActivity(max_wait_s=0.05)
    with activity.polling():
        started = time.monotonic()
        await activity.give_way()
        waited = time.monotonic() - started
    assert 0.04 <= waited < 2.0  # gave up after max_wait_s instead of starving


async def test_polling_marks_are_counted_and_survive_errors() -> None:
    activity = PollActivity()
    with pytest.raises(RuntimeError), activity.polling(), activity.polling():
        assert activity.running == 2
        raise RuntimeError("cycle failed")
    assert activity.running == 0
    await asyncio.wait_for(activity.give_way(), 1.0)


@pytest.mark.parametrize("step_s", [3600.0, -600.0])
async def test_a_wall_clock_step_re_aligns_the_ticks(monkeypatch: pytest.MonkeyPatch, step_s: float,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import edge_agent.scheduler as scheduler

    offset = [0.0]
    real = time.time
    monkeypatch.setattr(scheduler.time, "time", lambda: real() + offset[0])
    seen: list[tuple[float, float]] = []

    async def cycle(due: float) -> None:
        seen.append((due, scheduler.time.time()))
        if len(seen) == 3:
            offset[0] = step_s  # NTP's first sync on a gateway without a real-time clock

    task = asyncio.create_task(run_periodic(0.05, cycle, name="poll"))
    await asyncio.sleep(0.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(seen) >= 8
    assert max(abs(now - due) for due, now in seen) < 0.5  # every tick's timestamp on the clock it ran by
    assert all(abs(due / 0.05 - round(due / 0.05)) < 1e-3 for due, _ in seen)  # still on the grid
    assert "wall clock jumped by" in caplog.text
