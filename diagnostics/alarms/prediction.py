"""Predicted alarms: raised when a point's robust trend is forecast to reach a limit within a horizon."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import EventState, Level, Quality, fmt_quantity
from diagnostics.alarms.machine import HOLD, AlarmIdentity, Timing
from diagnostics.trend import (
    MIN_SAMPLES,
    Prediction,
    TrendWindow,
    format_duration,
    predict_from_fit,
    prediction_message,
)


@dataclass(frozen=True, slots=True)
class PredictionRule:
    """Forecast ``point`` (in ``unit``) reaching ``limit`` within ``horizon_s`` seconds.

    The trend is Theil–Sen over the last ``window_s`` seconds averaged into ``bucket_s`` buckets,
    refitted at most every ``evaluate_every_s`` (default: one bucket). The alarm raises when the
    predicted crossing is within the horizon and clears when it moves beyond ``clear_factor`` times
    the horizon or the trend no longer heads to the limit. ``what`` and ``limit_label`` make the
    message: "bearing velocity RMS will reach 7.1 mm/s (zone D) in ~9 days".
    """

    rule_id: str
    point: str
    limit: float
    horizon_s: float
    window_s: float
    bucket_s: float
    unit: str = ""
    direction: Literal["rising", "falling"] = "rising"
    what: str | None = None
    limit_label: str | None = None
    min_buckets: int = 10
    confidence: float = 0.95
    clear_factor: float = 1.5
    evaluate_every_s: float | None = None
    severity: str = "warning"

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point})"
        if not math.isfinite(self.limit):
            raise ValueError(f"{where}: limit={self.limit} must be finite ({self.unit})")
        if not (self.horizon_s > 0 and math.isfinite(self.horizon_s)):
            raise ValueError(f"{where}: horizon_s={self.horizon_s} must be > 0 seconds (e.g. 14 days)")
        if self.direction not in ("rising", "falling"):
            raise ValueError(f"{where}: direction={self.direction!r} must be 'rising' or 'falling'")
        if self.min_buckets < MIN_SAMPLES:
            raise ValueError(f"{where}: min_buckets={self.min_buckets} must be >= {MIN_SAMPLES}")
        if self.window_s / self.bucket_s < self.min_buckets:
            raise ValueError(
                f"{where}: window_s / bucket_s = {self.window_s / self.bucket_s:g} buckets, fewer than "
                f"min_buckets={self.min_buckets}; shorten bucket_s or lengthen window_s"
            )
        if self.clear_factor < 1:
            raise ValueError(f"{where}: clear_factor={self.clear_factor} must be >= 1")
        try:
            TrendWindow(self.window_s, self.bucket_s)
            Level("predicted", self.severity)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


class PredictionAlarm(RuleAlarm):
    """The alarm instance of one :class:`PredictionRule`; ``value`` in events is the fitted value now."""

    kind = "predicted"

    def __init__(self, rule: PredictionRule) -> None:
        self.rule = rule
        self.window = TrendWindow(rule.window_s, rule.bucket_s)
        self._level = Level("predicted", rule.severity, side=1 if rule.direction == "rising" else -1)
        self._sign = 1 if rule.direction == "rising" else -1
        self._on = False
        self._last_eval_ts: float | None = None
        self._prediction: Prediction | None = None
        self._reached = False
        super().__init__(AlarmIdentity(rule.rule_id, self.kind, rule.point, rule.unit), [self._level], Timing())

    @property
    def prediction(self) -> Prediction | None:
        """The latest forecast (``None`` when none heads to the limit)."""
        return self._prediction

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        if v is None:
            return HOLD, None, None
        self.window.add(ts_s, v)
        every = self.rule.evaluate_every_s if self.rule.evaluate_every_s is not None else self.rule.bucket_s
        if self._last_eval_ts is not None and ts_s - self._last_eval_ts < every:
            return (self._level if self._on else None), self.machine.last_value, None
        self._last_eval_ts = ts_s
        if len(self.window) < self.rule.min_buckets:
            return HOLD, None, None
        fit = self.window.fit(self.rule.confidence)
        assert fit is not None
        now_value = fit.value_at(ts_s)
        self._reached = (now_value - self.rule.limit) * self._sign >= 0
        pred = None if self._reached else predict_from_fit(fit, self.rule.limit, ts_s)
        if pred is not None and pred.direction != self._sign:
            pred = None
        self._prediction = pred
        horizon = self.rule.horizon_s * (self.rule.clear_factor if self._on else 1.0)
        self._on = self._reached or (pred is not None and pred.time_to_crossing_s <= horizon)
        evidence: dict[str, object] = {"slope_per_s": fit.slope_per_s, "reached": self._reached}
        if pred is not None:
            early, late = pred.band_s
            evidence.update(
                time_to_crossing_s=pred.time_to_crossing_s,
                earliest_s=early,
                latest_s=late,
                crossing_ts=pred.crossing_ts_s,
            )
        return (self._level if self._on else None), now_value, evidence

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        what = self.rule.what or self.rule.point
        limit = fmt_quantity(self.rule.limit, self.rule.unit)
        if state == "cleared":
            return self.rule.limit, f"{what}: no longer forecast to reach {limit} within the horizon"
        if self._reached:
            return self.rule.limit, f"{what} trend has reached {limit}"
        if self._prediction is None:
            return self.rule.limit, f"{what} forecast to reach {limit} within {format_duration(self.rule.horizon_s)}"
        return self.rule.limit, prediction_message(what, self._prediction, self.rule.unit, self.rule.limit_label)

    def _rule_state(self) -> dict[str, object]:
        return {"window": self.window.to_dict(), "on": self._on, "last_eval_ts": self._last_eval_ts}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        self.window.load_dict(dict(data["window"]))
        self._on = bool(data.get("on", False))
        last = data.get("last_eval_ts")
        self._last_eval_ts = None if last is None else float(last)
