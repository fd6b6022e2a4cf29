"""Data-quality alarms: stale data (no good reading for N intervals) and bad quality."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import AlarmEvent, EventState, Level, Quality, fmt_number
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

    Staleness is judged on every sample and on every :meth:`tick`, so a point that stops arriving
    altogether still raises. Before the first good reading, age counts from the first sample or tick.
    """

    kind = "stale"

    def __init__(self, rule: StaleRule) -> None:
        self.rule = rule
        self._level = Level("stale", rule.severity)
        self._last_good_ts: float | None = None
        self._since_ts: float | None = None
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, "s"), [self._level], Timing(0.0, rule.off_delay_s)
        )

    def _age(self, ts_s: float) -> float:
        ref = self._last_good_ts if self._last_good_ts is not None else self._since_ts
        if ref is None:
            self._since_ts = ref = ts_s
        return max(0.0, ts_s - ref)

    def _judge(self, age: float) -> Level | None:
        return self._level if age >= self.rule.stale_after_s else None

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Judge staleness at ``now_s`` (epoch s) and let delays and shelves expire."""
        events = self.machine.step_time(now_s)
        age = self._age(now_s)
        level = self._judge(age)
        if level is not None or self.machine.active_level is not None:
            events.extend(self.machine.step(now_s, level if self._enabled else None, age, from_clock=True))
        return events

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        usable = usable_number(value, quality) is not None
        if usable and (self._last_good_ts is None or ts_s > self._last_good_ts):
            self._last_good_ts = ts_s
        age = self._age(ts_s)
        return self._judge(age), age, None

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        limit = self.rule.stale_after_s
        rule = f"{fmt_number(limit)} s = {self.rule.missed_intervals} x {fmt_number(self.rule.interval_s)} s"
        if state == "cleared":
            return limit, f"{self.rule.point} receiving good readings again (was stale: none for {rule})"
        return limit, f"{self.rule.point} stale: no good reading for {fmt_number(value)} s (limit {rule})"

    def _rule_state(self) -> dict[str, object]:
        return {"last_good_ts": self._last_good_ts, "since_ts": self._since_ts}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        lg, st = data.get("last_good_ts"), data.get("since_ts")
        self._last_good_ts = None if lg is None else float(lg)
        self._since_ts = None if st is None else float(st)


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
