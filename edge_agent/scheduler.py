"""Drift-free periodic execution.

A device is polled on a fixed grid: tick ``k`` is due at ``t0 + k * period`` where ``t0`` is aligned to a
multiple of the period on the wall clock (so a 1 s poll runs on whole seconds and a 60 s summary closes on
the minute). Sleeping uses the event loop's monotonic clock, so wall-clock steps do not disturb the cadence
and errors never accumulate. A tick is never run while the previous one is still running: when a cycle
overruns its period, the ticks it missed are skipped and counted, never queued (Telegraf's rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


class PollActivity:
    """Which poll cycles are running, so that deferrable work can give way to them.

    Poll cycles have the tight deadline (a cycle that overruns its period loses a tick); a summary close
    does not (its interval is already taken out; encoding it a little later changes nothing). Pollers mark
    themselves with :meth:`polling`; deferrable work calls :meth:`give_way` between its slices, which
    returns as soon as no cycle runs, or after ``max_wait_s`` seconds if cycles never pause (many devices
    polled back to back), so the deferred work is delayed, never starved.
    """

    def __init__(self, max_wait_s: float = 0.1) -> None:
        self.max_wait_s = max_wait_s
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        """Poll cycles in progress."""
        return self._running

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """Mark one poll cycle as running for the duration of the ``with`` block."""
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def give_way(self) -> None:
        """Pass through the event loop once, then wait (up to ``max_wait_s`` s) until no poll cycle runs."""
        await asyncio.sleep(0)
        if self._running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_wait_s):
                    await self._idle.wait()


@dataclass(slots=True)
class CadenceStats:
    """Counters of one periodic task. Times in seconds."""

    cycles: int = 0
    skipped: int = 0
    last_duration_s: float = 0.0
    max_duration_s: float = 0.0
    last_lateness_s: float = 0.0

    def record(self, lateness_s: float, duration_s: float) -> None:
        """Record one executed cycle (lateness = start time minus due time)."""
        self.cycles += 1
        self.last_duration_s = duration_s
        self.max_duration_s = max(self.max_duration_s, duration_s)
        self.last_lateness_s = lateness_s


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks``, wait until each has finished, and empty the list."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    tasks.clear()


def aligned_start(period_s: float, now_wall_s: float) -> float:
    """Return the next wall-clock instant (epoch s) that is a whole multiple of ``period_s``."""
    if period_s <= 0:
        raise ValueError(f"{period_s=} must be > 0")
    return math.floor(now_wall_s / period_s) * period_s + period_s


#: A gap between the wall clock and the monotonic clock bigger than this is a clock step, s (both clocks are
#: slewed alike by NTP, so they never drift apart by this much otherwise).
CLOCK_STEP_S = 1.0


async def run_periodic(
    period_s: float,
    cycle: Callable[[float], Awaitable[None]],
    *,
    name: str,
    stats: CadenceStats | None = None,
    align: bool = True,
) -> None:
    """Call ``await cycle(due_wall_s)`` every ``period_s`` seconds until cancelled.

    ``due_wall_s`` is the tick's nominal wall-clock time (epoch s), used as the cycle timestamp so that
    records line up on the grid. Exceptions from ``cycle`` are logged and the cadence goes on: a runtime
    error never stops the agent.
    """
    if period_s <= 0:
        raise ValueError(f"{period_s=} must be > 0")
    stats = stats if stats is not None else CadenceStats()
    loop = asyncio.get_running_loop()
    wall_now = time.time()
    first_due_wall = aligned_start(period_s, wall_now) if align else wall_now
    # Map the wall-clock grid onto the monotonic clock once; from here on only the monotonic clock counts.
    mono_origin = loop.time() + (first_due_wall - wall_now)
    k = 0
    while True:
        due_mono = mono_origin + k * period_s
        delay = due_mono - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = loop.time()
        # The wall clock was stepped (NTP's first sync on a gateway without a battery-backed clock, an
        # operator's date -s): the grid keeps the old time base, so every timestamp would be off by the step
        # for the life of the process. Re-anchor on the new wall clock.
        wall_now = time.time()
        step_s = wall_now - (first_due_wall + (started - mono_origin))
        if abs(step_s) > CLOCK_STEP_S:
            log.warning("%s: the wall clock jumped by %+.1f s; ticks re-aligned on the new time", name, step_s)
            first_due_wall = aligned_start(period_s, wall_now) if align else wall_now
            mono_origin = started + (first_due_wall - wall_now)
            k = 0
            continue
        try:
            await cycle(first_due_wall + k * period_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: cycle failed; the next one runs on schedule", name)
        finished = loop.time()
        stats.record(started - due_mono, finished - started)
        # Next tick strictly after now: skip (and count) every tick that fell inside this cycle.
        next_k = max(k + 1, math.floor((finished - mono_origin) / period_s) + 1)
        skipped = next_k - k - 1
        if skipped:
            stats.skipped += skipped
            log.warning("%s: cycle took %.3f s, skipped %d tick(s) of %.3f s", name,
                        finished - started, skipped, period_s)
        k = next_k
