"""Rules on process values: limits (threshold), rate of change, deviation from a reference, and trends."""

from __future__ import annotations

from typing import Annotated, Literal

from edge_agent.config._base import Issue, PointRef, issues_error
from edge_agent.config._pydantic import Field, model_validator
from edge_agent.config.rules_common import (
    InterlockedRule,
    RuleBase,
    RuleSeverity,
    Severity,
    limit_order_issues,
)
from edge_agent.config.units import Duration

#: Fewest samples the trend predictor fits (diagnostics.trend.MIN_SAMPLES, which imports numpy: a
#: Modbus-only agent must not load it for its config; tests/test_config_rules.py keeps the two equal).
TREND_MIN_SAMPLES = 5
TrendFeature = Literal["velocity_rms", "rms", "peak", "peak_to_peak", "crest_factor", "kurtosis"]
DEFAULT_TREND_FEATURE = "velocity_rms"


class ThresholdRule(InterlockedRule):
    """Raise an alert while a point is beyond a limit (after on_delay); clear it past the deadband."""

    kind: Literal["threshold"] = "threshold"
    point: PointRef = Field(description="Value point the rule watches, as device/point.")
    high_high: float | None = None
    high: float | None = None
    low: float | None = None
    low_low: float | None = None
    deadband: float = Field(default=0.0, ge=0, description="Hysteresis (engineering units) before clearing.")
    on_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time beyond a limit before raising."
    )
    off_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time back inside before clearing."
    )
    severity: RuleSeverity = Field(default_factory=RuleSeverity)

    @model_validator(mode="after")
    def _ordered_limits(self) -> ThresholdRule:
        limits = {"high_high": self.high_high, "high": self.high, "low": self.low, "low_low": self.low_low}
        if all(v is None for v in limits.values()):
            raise issues_error([((), "a threshold rule needs at least one of high_high, high, low, low_low")])
        issues = limit_order_issues(limits)
        if issues:
            raise issues_error(issues)
        return self


class RateRule(InterlockedRule):
    """Raise an alert when a point rises or falls faster than allowed, measured over ``window``."""

    kind: Literal["rate"]
    point: PointRef = Field(description="Value point the rule watches, as device/point.")
    rise: float | None = Field(
        default=None, gt=0, description="Largest allowed rise per 'per' (engineering units)."
    )
    fall: float | None = Field(
        default=None, gt=0, description="Largest allowed fall per 'per' (engineering units, positive)."
    )
    per: Literal["second", "minute"] = Field(default="minute", description="Rate unit: second | minute.")
    window: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0, description="Span the rate is fitted over (e.g. 60s)."
    )
    deadband: float = Field(default=0.0, ge=0, description="Hysteresis on the rate before clearing.")
    min_samples: int = Field(default=3, ge=2, description="Good samples in the window before judging.")
    on_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time too fast before raising."
    )
    off_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time back within before clearing."
    )
    severity: Severity = "warning"

    @model_validator(mode="after")
    def _some_limit(self) -> RateRule:
        if self.rise is None and self.fall is None:
            raise issues_error([((), "a rate rule needs rise, fall or both (e.g. rise: 5, per: minute)")])
        return self

    @property
    def per_s(self) -> float:
        """Seconds of one ``per`` unit: 1 for second, 60 for minute."""
        return 1.0 if self.per == "second" else 60.0


class DeviationRule(InterlockedRule):
    """Raise an alert when ``point - reference`` leaves its limits (reference: another point or a number)."""

    kind: Literal["deviation"]
    point: PointRef = Field(description="Value point the rule watches, as device/point.")
    reference_point: PointRef | None = Field(
        default=None, description="Point subtracted from 'point' (e.g. the ambient temperature)."
    )
    baseline: float | None = Field(default=None, description="Fixed number subtracted from 'point'.")
    high_high: float | None = None
    high: float | None = None
    low: float | None = None
    low_low: float | None = None
    deadband: float = Field(default=0.0, ge=0, description="Hysteresis on the difference before clearing.")
    max_reference_age: Annotated[Duration, Field(gt=0)] = Field(
        default=300.0, description="A reference value older than this is not used."
    )
    on_delay: Annotated[Duration, Field(ge=0)] = Field(default=0.0, description="Time beyond before raising.")
    off_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time back inside before clearing."
    )
    severity: RuleSeverity = Field(default_factory=RuleSeverity)

    @model_validator(mode="after")
    def _consistent(self) -> DeviationRule:
        issues: list[Issue] = []
        if (self.reference_point is None) == (self.baseline is None):
            issues.append(
                (
                    (),
                    "a deviation rule needs exactly one of reference_point (device/point) "
                    "or baseline (a number)",
                )
            )
        if self.reference_point is not None and self.reference_point == self.point:
            issues.append((("reference_point",), "reference_point must differ from point"))
        limits = {"high_high": self.high_high, "high": self.high, "low": self.low, "low_low": self.low_low}
        if all(v is None for v in limits.values()):
            issues.append(((), "a deviation rule needs at least one of high_high, high, low, low_low"))
        issues += limit_order_issues(limits)
        if issues:
            raise issues_error(issues)
        return self


class TrendRule(RuleBase):
    """Warn (``predicted``) when a point's robust trend is forecast to reach ``limit`` within ``horizon``.

    A waveform point is trended through one feature of each capture: ``velocity_rms`` (mm/s, the default),
    ``rms``, ``peak`` or ``peak_to_peak`` (acceleration, the point's unit, e.g. g), ``crest_factor`` or
    ``kurtosis`` (dimensionless).
    """

    kind: Literal["trend"]
    point: PointRef = Field(description="Point to trend (a waveform point trends its velocity RMS, mm/s).")
    feature: TrendFeature | None = Field(
        default=None, description="Feature of a waveform point to trend (default velocity_rms, mm/s)."
    )
    limit: float = Field(
        description="Level whose crossing is forecast (engineering units; mm/s for waveforms)."
    )
    direction: Literal["rising", "falling"] = Field(
        default="rising", description="rising: forecast reaching limit from below; falling: from above."
    )
    window: Annotated[Duration, Field(gt=0)] = Field(
        default=7 * 86400.0, description="History the trend is fitted over (e.g. 7d)."
    )
    horizon: Annotated[Duration, Field(gt=0)] = Field(
        default=14 * 86400.0, description="Warn when the limit is forecast within this time (e.g. 14d)."
    )
    min_samples: int = Field(default=10, ge=TREND_MIN_SAMPLES,
                             description="Samples (buckets) needed before forecasting.")
    severity: Severity = "warning"

    def feature_of(self, point_kind: str) -> str | None:
        """The feature trended for a point of ``point_kind``: None for a value point (its value)."""
        return (self.feature or DEFAULT_TREND_FEATURE) if point_kind == "waveform" else None
