"""Data-quality alarms: stale data (no good reading for N intervals) and bad quality."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import AlarmEvent, EventState, Level, Quality, check_quality, fmt_number
from diagnostics.alarms.machine import AlarmIdentity, Timing


@dataclass(frozen=True, slots=True)
class StaleRule:
    """Alarm when ``point`` has had no good reading for ``missed_intervals`` x ``interval_s`` seconds."""

    rule_id: str
    point: str
    interval_s: float
    missed_intervals: int = 3
    off_delay_s: float = 0.0
    severity: str = "warning"

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point})"
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"{where}: interval_s={self.interval_s} must be the point's poll interval in s (> 0)")
        if self.missed_intervals < 1:
            raise ValueError(f"{where}: missed_intervals={self.missed_intervals} must be >= 1")
        try:
            Level("stale", self.severity)
            Timing(0.0, self.off_delay_s)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    @property
    def stale_after_s(self) -> float:
        """Age in seconds from which the point is stale."""
        return self.interval_s * self.missed_intervals


class StaleAlarm(RuleAlarm):
    """The alarm instance of one :class:`StaleRule`; events report the age of the last good value (s).

    Two modes, each on one clock:

    - **ticked** (the agent): once :meth:`tick` has been called, staleness is judged at ticks on the
      tick clock: age = tick time minus the tick time at which the last good sample was first seen
      (its own timestamp when the clocks agree, else the tick before it arrived; never later than the
      tick itself). A device clock that runs behind or ahead of the agent never makes fresh data
      look stale, nor stale data fresh. A good sample clears an active alarm at once.
    - **samples only** (offline analysis): without ticks, the age is judged at every sample on the
      samples' clock.

    Before the first good reading, age counts from the first sample or tick.
    """

    kind = "stale"

    def __init__(self, rule: StaleRule) -> None:
        self.rule = rule
        self._level = Level("stale", rule.severity)
        self._last_good_ts: float | None = None  # sample clock
        self._since_ts: float | None = None  # sample clock: first sample
        self._good_since_tick = False
        self._prev_tick: float | None = None  # tick clock
        self._tick_ref: float | None = None  # tick clock: when the last good sample was seen
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, "s"), [self._level], Timing(0.0, rule.off_delay_s)
        )

    def _judge(self, age: float) -> Level | None:
        return self._level if age >= self.rule.stale_after_s and self._enabled else None

    def update(self, ts_s: float, value: float | None, quality: Quality | str = "good") -> list[AlarmEvent]:
        """Feed one sample at ``ts_s`` (epoch s, device or receive clock)."""
        q = check_quality(quality)
        if self._since_ts is None:
            self._since_ts = ts_s
        good = usable_number(value, q) is not None
        if good:
            self._good_since_tick = True
            if self._last_good_ts is None or ts_s > self._last_good_ts:
                self._last_good_ts = ts_s
        if self._prev_tick is None:  # samples only: judge on the samples' clock
            ref = self._last_good_ts if self._last_good_ts is not None else self._since_ts
            age = max(0.0, ts_s - ref)
            return self.machine.step(ts_s, self._judge(age), age)
        if good and self.machine.active_level is not None:  # fresh data ends staleness at once
            self._tick_ref = self._prev_tick
            self._good_since_tick = False
            return self.machine.step(self._prev_tick, None, 0.0)
        return []

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Judge staleness at ``now_s`` (epoch s, the agent's clock) and let delays and shelves expire."""
        if self._prev_tick is None:
            self.machine.reset_sample_clock()  # from now on the machine runs on the tick clock
        elif now_s < self._prev_tick:
            return []
        events = self.machine.step_time(now_s)
        if self._good_since_tick:
            # The good sample arrived after the previous tick. Its own timestamp is used when it fits
            # that (the clocks agree); otherwise this tick's time, which can only make the age
            # shorter: a clock mismatch delays stale detection by at most one tick, never fakes it.
            lower = self._prev_tick if self._prev_tick is not None else now_s - self.rule.stale_after_s
            last = self._last_good_ts
            fits = last is not None and (lower < last <= now_s or (self._prev_tick is None and last == lower))
            self._tick_ref = last if fits and last is not None else now_s
            self._good_since_tick = False
        elif self._tick_ref is None:
            self._tick_ref = now_s
        self._prev_tick = now_s
        age = max(0.0, now_s - self._tick_ref)
        level = self._judge(age)
        if level is not None or self.machine.active_level is not None:
            events.extend(self.machine.step(now_s, level, age))
        return events

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        raise AssertionError("StaleAlarm.update judges samples itself")  # pragma: no cover

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        limit = self.rule.stale_after_s
        rule = f"{fmt_number(limit)} s = {self.rule.missed_intervals} x {fmt_number(self.rule.interval_s)} s"
        if state == "cleared":
            return limit, f"{self.rule.point} receiving good readings again (was stale: none for {rule})"
        return limit, f"{self.rule.point} stale: no good reading for {fmt_number(value)} s (limit {rule})"

    def resume_after_restart(self) -> None:
        """A stale alarm that was not active starts counting age afresh: the agent's own downtime is not the
        point's (an active one stays active until a good reading arrives)."""
        super().resume_after_restart()
        if self.machine.active_level is None:
            self._last_good_ts = self._since_ts = self._prev_tick = self._tick_ref = None
            self._good_since_tick = False

    def _rule_state(self) -> dict[str, object]:
        return {
            "last_good_ts": self._last_good_ts,
            "since_ts": self._since_ts,
            "good_since_tick": self._good_since_tick,
            "prev_tick": self._prev_tick,
            "tick_ref": self._tick_ref,
        }

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        def opt(key: str) -> float | None:
            v = data.get(key)
            return None if v is None else float(v)

        self._last_good_ts = opt("last_good_ts")
        self._since_ts = opt("since_ts")
        self._good_since_tick = bool(data.get("good_since_tick", False))
        self._prev_tick = opt("prev_tick")
        self._tick_ref = opt("tick_ref")


@dataclass(frozen=True, slots=True)
class BadQualityRule:
    """Alarm while ``point`` reads with bad quality (and, with ``include_uncertain``, uncertain)."""

    rule_id: str
    point: str
    include_uncertain: bool = False
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    severity: str = "warning"

    def __post_init__(self) -> None:
        try:
            Level("bad_quality", self.severity)
            Timing(self.on_delay_s, self.off_delay_s)
        except ValueError as e:
            raise ValueError(f"rule {self.rule_id} ({self.point}): {e}") from None


class BadQualityAlarm(RuleAlarm):
    """The alarm instance of one :class:`BadQualityRule`; events carry the last quality as evidence.

    A good-quality sample without a usable value (``None``, NaN) counts as bad.
    """

    kind = "bad_quality"

    def __init__(self, rule: BadQualityRule) -> None:
        self.rule = rule
        self._level = Level("bad_quality", rule.severity)
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, ""),
            [self._level],
            Timing(rule.on_delay_s, rule.off_delay_s),
        )

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        bad = quality == "bad" or (quality == "uncertain" and self.rule.include_uncertain)
        if not bad and usable_number(value, quality) is None:
            bad = True
        return (self._level if bad else None), None, {"quality": quality}

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        which = "bad or uncertain" if self.rule.include_uncertain else "bad"
        if state == "cleared":
            return None, f"{self.rule.point} quality good again"
        return None, f"{self.rule.point} quality {which}"
