"""Vibration alarms: ISO 20816 zone changes and fault indicators confirmed over K captures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import AlarmEvent, EventState, Level, Quality, check_quality, fmt_quantity
from diagnostics.alarms.machine import HOLD, AlarmIdentity, Timing


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """Alarm on the ISO 20816 zone of broadband velocity RMS (mm/s) of ``point``.

    ``boundaries_mm_s`` are the A/B, B/C and C/D boundaries, e.g. from
    ``diagnostics.iso20816.iso20816_3_limits``. By default zone C raises a warning and zone D is
    critical (ISO 20816-3 §6.3.1: C "unsatisfactory for long-term operation", D "severe enough to
    cause damage"). A zone is left when velocity falls below its lower boundary by
    ``deadband_fraction`` of that boundary.
    """

    rule_id: str
    point: str
    boundaries_mm_s: tuple[float, float, float]
    severity_c: str = "warning"
    severity_d: str = "critical"
    deadband_fraction: float = 0.05
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    min_update_interval_s: float = 0.0

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point})"
        ab, bc, cd = self.boundaries_mm_s
        if not (0 < ab < bc < cd and math.isfinite(cd)):
            raise ValueError(f"{where}: boundaries_mm_s={self.boundaries_mm_s} must satisfy 0 < A/B < B/C < C/D")
        if not (0 <= self.deadband_fraction < 0.5):
            raise ValueError(f"{where}: deadband_fraction={self.deadband_fraction} must be in [0, 0.5)")
        try:
            Level("zone_C", self.severity_c)
            Level("zone_D", self.severity_d)
            Timing(self.on_delay_s, self.off_delay_s, self.min_update_interval_s)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


class ZoneAlarm(RuleAlarm):
    """The alarm instance of one :class:`ZoneRule`; update with velocity RMS in mm/s per capture."""

    kind = "iso_zone"

    def __init__(self, rule: ZoneRule) -> None:
        self.rule = rule
        self._c = Level("zone_C", rule.severity_c, rank=1)
        self._d = Level("zone_D", rule.severity_d, rank=2)
        self._rank = 0
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, "mm/s"),
            [self._c, self._d],
            Timing(rule.on_delay_s, rule.off_delay_s, rule.min_update_interval_s),
        )

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        if v is None or v < 0:
            return HOLD, None, None
        _, bc, cd = self.rule.boundaries_mm_s
        keep = 1.0 - self.rule.deadband_fraction
        rank = 0
        if v >= bc or (self._rank >= 1 and v > bc * keep):
            rank = 1
        if v >= cd or (self._rank >= 2 and v > cd * keep):
            rank = 2
        self._rank = rank
        zone = "D" if v >= cd else "C" if v >= bc else "B" if v >= self.rule.boundaries_mm_s[0] else "A"
        return (self._d if rank == 2 else self._c if rank == 1 else None), v, {"zone": zone}

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        _, bc, cd = self.rule.boundaries_mm_s
        limit = cd if level is self._d else bc
        zone = level.name[-1]
        speed = fmt_quantity(value, "mm/s RMS")
        if state == "cleared":
            return limit, f"{self.rule.point} velocity {speed} back below zone C (was in ISO 20816 zone {zone})"
        return limit, (
            f"{self.rule.point} velocity {speed} in ISO 20816 zone {zone} "
            f"(boundary {fmt_quantity(limit, 'mm/s')})"
        )

    def _rule_state(self) -> dict[str, object]:
        return {"rank": self._rank}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        self._rank = int(data.get("rank", 0))


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Alarm when fault indicator ``fault`` of ``point`` reaches ``threshold`` in ``consecutive`` captures.

    The score is whatever the vibration diagnostics report for the fault (e.g. a bearing outer-race
    indicator, dimensionless). It clears after ``clear_consecutive`` captures below
    ``clear_threshold`` (default 80 % of ``threshold``). Evidence of the latest capture travels with
    each event.
    """

    rule_id: str
    point: str
    fault: str
    threshold: float
    consecutive: int = 3
    clear_threshold: float | None = None
    clear_consecutive: int = 3
    severity: str = "warning"
    unit: str = ""
    min_update_interval_s: float = 0.0

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point}, {self.fault})"
        if not math.isfinite(self.threshold):
            raise ValueError(f"{where}: threshold={self.threshold} must be finite")
        if self.consecutive < 1 or self.clear_consecutive < 1:
            raise ValueError(f"{where}: consecutive and clear_consecutive must be >= 1 captures")
        if not self.effective_clear_threshold <= self.threshold:
            raise ValueError(f"{where}: clear_threshold={self.clear_threshold} must not exceed threshold")
        try:
            Level("fault", self.severity)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    @property
    def effective_clear_threshold(self) -> float:
        """Score below which a capture counts toward clearing."""
        if self.clear_threshold is not None:
            return self.clear_threshold
        return self.threshold * 0.8 if self.threshold > 0 else self.threshold


class FaultAlarm(RuleAlarm):
    """The alarm instance of one :class:`FaultRule`; feed it one score per capture."""

    kind = "fault"

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self._level = Level("fault", rule.severity)
        self._above = 0
        self._below = 0
        self._on = False
        super().__init__(AlarmIdentity(rule.rule_id, self.kind, rule.point, rule.unit), [self._level],
                         Timing(min_update_interval_s=rule.min_update_interval_s))

    def update_capture(
        self,
        ts_s: float,
        score: float | None,
        evidence: Mapping[str, object] | None = None,
        quality: Quality | str = "good",
    ) -> list[AlarmEvent]:
        """Feed one capture's fault score with its ``evidence`` (JSON-ready, e.g. defect frequencies)."""
        q = check_quality(quality)
        classified, reported, _ = self._classify(ts_s, score, q)
        if not self._enabled and classified is not HOLD:
            classified = None
        ev = {"fault": self.rule.fault, "consecutive": self._above, **(evidence or {})}
        return self.machine.step(ts_s, classified, reported, ev if classified is not HOLD else None)

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        if v is None:
            return HOLD, None, None
        if v >= self.rule.threshold:
            self._above += 1
            self._below = 0
        elif v < self.rule.effective_clear_threshold:
            self._below += 1
            self._above = 0
        else:
            self._above = self._below = 0  # between the thresholds: confirms neither way
        if not self._on and self._above >= self.rule.consecutive:
            self._on = True
        elif self._on and self._below >= self.rule.clear_consecutive:
            self._on = False
        return (self._level if self._on else None), v, None

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        thr = self.rule.threshold
        score = fmt_quantity(value, self.rule.unit)
        if state == "cleared":
            return thr, f"{self.rule.point} {self.rule.fault} indicator back to normal ({score})"
        return thr, (
            f"{self.rule.point} {self.rule.fault} indicator {score} at or above {fmt_quantity(thr, self.rule.unit)} "
            f"in {self.rule.consecutive} consecutive captures"
        )

    def _rule_state(self) -> dict[str, object]:
        return {"above": self._above, "below": self._below, "on": self._on}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        self._above = int(data.get("above", 0))
        self._below = int(data.get("below", 0))
        self._on = bool(data.get("on", False))
