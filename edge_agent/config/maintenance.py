"""Maintenance counters of an asset: what says it is running, and the service intervals that fall due.

Running comes from exactly one source: ``running_point`` (true / non-zero while running), or ``speed_point``
with ``speed_threshold`` (rpm), or ``current_point`` with ``current_threshold`` (A). Each service interval is
due every ``every`` run hours (written as a duration: ``2000h``) or every ``starts`` starts.
"""

from __future__ import annotations

from typing import Annotated

from edge_agent.config._base import ConfigModel, Issue, Name, PointRef, duplicate_issues, issues_error
from edge_agent.config._pydantic import Field, model_validator
from edge_agent.config.rules_common import Severity
from edge_agent.config.units import Duration

RUNNING_SOURCES = ("running_point", "speed_point", "current_point")


class ServiceInterval(ConfigModel):
    """A service due every N run hours (``every: 2000h``) or every N starts (``starts: 500``)."""

    name: Name = Field(description="Service name, unique within the asset, e.g. regrease.")
    every: Annotated[Duration, Field(gt=0)] | None = Field(
        default=None, description="Run time between services, e.g. 2000h (give every or starts)."
    )
    starts: int | None = Field(
        default=None, ge=1, description="Starts between services (give every or starts)."
    )
    severity: Severity = Field(default="warning", description="Severity of the maintenance_due alert.")

    @model_validator(mode="after")
    def _one_measure(self) -> ServiceInterval:
        if (self.every is None) == (self.starts is None):
            raise issues_error(
                [
                    (
                        (),
                        f"service interval '{self.name}' needs exactly one of every (run time, e.g. 2000h) "
                        "or starts",
                    )
                ]
            )
        return self

    @property
    def every_run_hours(self) -> float | None:
        """``every`` in run hours, or None for a start-count interval."""
        return None if self.every is None else self.every / 3600.0


class MaintenanceConfig(ConfigModel):
    """Run hours, starts, time per ISO zone and service intervals of one asset."""

    empty_means_default = frozenset({"intervals"})
    running_point: PointRef | None = Field(
        default=None, description="Point that is true / non-zero while running."
    )
    speed_point: PointRef | None = Field(
        default=None, description="Speed point (rpm); running above speed_threshold."
    )
    speed_threshold: float | None = Field(default=None, gt=0, description="Speed (rpm) above which it runs.")
    current_point: PointRef | None = Field(default=None, description="Motor current point (A).")
    current_threshold: float | None = Field(
        default=None, gt=0, description="Current (A) above which it runs."
    )
    hysteresis: float = Field(
        default=0.0,
        ge=0,
        description="Band around the threshold (point unit): runs from threshold + half, stops below - half.",
    )
    max_gap: Annotated[Duration, Field(gt=0)] = Field(
        default=300.0, description="A gap in the data longer than this is not counted as run time."
    )
    intervals: list[ServiceInterval] = Field(default_factory=list, description="Service intervals.")

    @model_validator(mode="after")
    def _consistent(self) -> MaintenanceConfig:
        issues: list[Issue] = []
        given = [f for f in RUNNING_SOURCES if getattr(self, f) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            issues.append(
                (
                    (),
                    "say how to tell the machine runs with exactly one of running_point, "
                    f"speed_point + speed_threshold or current_point + current_threshold{got}",
                )
            )
        for source, threshold in (("speed_point", "speed_threshold"), ("current_point", "current_threshold")):
            has_point = getattr(self, source) is not None
            has_threshold = getattr(self, threshold) is not None
            if has_point and not has_threshold:
                issues.append(((), f"{source} needs {threshold} (the level above which the machine runs)"))
            elif has_threshold and not has_point:
                issues.append(((threshold,), f"{threshold} applies with {source} only"))
        if self.hysteresis and self.running_point is not None:
            issues.append((("hysteresis",), "hysteresis applies to speed_point or current_point only"))
        level = self.running_threshold
        if level is not None and self.hysteresis >= 2 * level:
            issues.append((("hysteresis",), f"a band of {self.hysteresis:g} puts the stop level at "
                           f"{level - self.hysteresis / 2:g} (threshold minus half the band): the machine "
                           f"would never count as stopped; use a band below {2 * level:g}"))
        issues += duplicate_issues([s.name for s in self.intervals], ("intervals",), "service interval")
        if issues:
            raise issues_error(issues)
        return self

    @property
    def running_threshold(self) -> float | None:
        """The speed (rpm) or current (A) threshold, None with a running_point."""
        return self.speed_threshold if self.speed_threshold is not None else self.current_threshold

    @property
    def source_point(self) -> str:
        """The point the running state comes from (device/point)."""
        return next(p for p in (self.running_point, self.speed_point, self.current_point) if p is not None)
