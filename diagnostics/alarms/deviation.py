"""Deviation alarms: a point minus a reference point (bearing minus ambient) or a fixed baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import EventState, Level, Quality, fmt_quantity
from diagnostics.alarms.limit import DEFAULT_SEVERITY, DISPLAY, LEVEL_CODES, LEVEL_NAMES, LimitBands
from diagnostics.alarms.machine import HOLD, AlarmIdentity, Timing


@dataclass(frozen=True, slots=True)
class DeviationRule:
    """Alarm on ``value - reference`` with limit levels and deadband in ``unit``.

    The reference is the latest good value of ``reference_point`` (fed with
    :meth:`DeviationAlarm.update_reference`, trusted for ``max_reference_age_s`` seconds) or the fixed
    ``baseline``. Exactly one of the two must be given.
    """

    rule_id: str
    point: str
    unit: str = ""
    reference_point: str | None = None
    baseline: float | None = None
    high: float | None = None
    high_high: float | None = None
    low: float | None = None
    low_low: float | None = None
    deadband: float = 0.0
    max_reference_age_s: float = 300.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    min_update_interval_s: float = 0.0
    severity_high: str = DEFAULT_SEVERITY["high"]
    severity_high_high: str = DEFAULT_SEVERITY["high_high"]
    severity_low: str = DEFAULT_SEVERITY["low"]
    severity_low_low: str = DEFAULT_SEVERITY["low_low"]

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point})"
        if (self.reference_point is None) == (self.baseline is None):
            raise ValueError(f"{where}: give exactly one of reference_point or baseline")
        if self.baseline is not None and not math.isfinite(self.baseline):
            raise ValueError(f"{where}: baseline={self.baseline} must be finite ({self.unit})")
        if not (self.max_reference_age_s > 0):
            raise ValueError(f"{where}: max_reference_age_s={self.max_reference_age_s} must be > 0 seconds")
        try:
            self.bands()
            Timing(self.on_delay_s, self.off_delay_s, self.min_update_interval_s)
            self.levels()
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def bands(self) -> LimitBands:
        """Deviation limits as :class:`LimitBands`."""
        return LimitBands(self.high, self.high_high, self.low, self.low_low, self.deadband)

    def levels(self) -> dict[int, Level]:
        """Levels of the configured limits, keyed by level code."""
        out: dict[int, Level] = {}
        for name in LEVEL_NAMES:
            if getattr(self, name) is not None:
                code = LEVEL_CODES[name]
                out[code] = Level(name, getattr(self, f"severity_{name}"), 1 if code > 0 else -1, abs(code))
        return out

    @property
    def reference_name(self) -> str:
        """What the deviation is measured against, for messages."""
        return self.reference_point if self.reference_point is not None else f"baseline {self.baseline:g}"


class DeviationAlarm(RuleAlarm):
    """The alarm instance of one :class:`DeviationRule`; events report the deviation in ``unit``."""

    kind = "deviation"

    def __init__(self, rule: DeviationRule) -> None:
        self.rule = rule
        self._bands = rule.bands()
        self._by_code = rule.levels()
        self._code = 0
        self._ref_value: float | None = rule.baseline
        self._ref_ts: float | None = None
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, rule.unit),
            list(self._by_code.values()),
            Timing(rule.on_delay_s, rule.off_delay_s, rule.min_update_interval_s),
        )

    def update_reference(self, ts_s: float, value: float | None, quality: Quality | str = "good") -> None:
        """Feed one sample of the reference point (ignored for a baseline rule or when not usable)."""
        if self.rule.reference_point is None:
            return
        v = usable_number(value, quality)
        if v is not None and (self._ref_ts is None or ts_s >= self._ref_ts):
            self._ref_value, self._ref_ts = v, ts_s

    def _reference_at(self, ts_s: float) -> float | None:
        if self.rule.reference_point is None:
            return self.rule.baseline
        if self._ref_ts is None or abs(ts_s - self._ref_ts) > self.rule.max_reference_age_s:
            return None
        return self._ref_value

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        ref = self._reference_at(ts_s)
        if v is None or ref is None:
            return HOLD, None, None
        dev = v - ref
        self._code = self._bands.classify_code(dev, self._code)
        return self._by_code.get(self._code), dev, {"value": v, "reference": ref}

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        limit: float | None = getattr(self.rule, level.name)
        unit = self.rule.unit
        where = "above" if level.side > 0 else "below"
        dev = abs(value) if value is not None else None
        rel = "above" if value is None or value >= 0 else "below"
        head = f"{self.rule.point} is {fmt_quantity(dev, unit)} {rel} {self.rule.reference_name}"
        text = f"{DISPLAY[level.name]} deviation limit {fmt_quantity(limit, unit)}"
        if state == "cleared":
            return limit, f"{head}, back to normal (was {where} {text})"
        return limit, f"{head}, {where} {text}"

    def _rule_state(self) -> dict[str, object]:
        return {"code": self._code, "ref_value": self._ref_value, "ref_ts": self._ref_ts}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        self._code = int(data.get("code", 0))
        if self.rule.reference_point is not None:
            rv, rt = data.get("ref_value"), data.get("ref_ts")
            self._ref_value = None if rv is None else float(rv)
            self._ref_ts = None if rt is None else float(rt)
