"""Rules on vibration results: ISO 20816 zone changes and fault indicators, per waveform point."""

from __future__ import annotations

from typing import Annotated, Literal

from edge_agent.config._base import ConfigModel, Name, PointRef, issues_error
from edge_agent.config._pydantic import Field, model_validator
from edge_agent.config.rules_common import InterlockedRule, Severity
from edge_agent.config.units import Duration

FaultName = Literal[
    "unbalance",
    "misalignment",
    "looseness",
    "bearing_outer_race",
    "bearing_inner_race",
    "bearing_ball",
    "bearing_cage",
]
BEARING_FAULTS: frozenset[str] = frozenset(
    {"bearing_outer_race", "bearing_inner_race", "bearing_ball", "bearing_cage"}
)


class ZoneSeverity(ConfigModel):
    """Severity when the velocity RMS enters zone C and zone D (ISO 20816-3:2022 §6.2 zone meanings)."""

    zone_c: Severity = Field(default="warning", description="Zone C: not suitable for long-term operation.")
    zone_d: Severity = Field(default="critical", description="Zone D: vibration may damage the machine.")


class IsoZoneRule(InterlockedRule):
    """Alert on ISO 20816-3 zone changes of a waveform point, or of every waveform point of an asset."""

    kind: Literal["iso_zone"]
    point: PointRef | None = Field(
        default=None, description="Waveform point, as device/point (or give asset)."
    )
    asset: Name | None = Field(
        default=None, description="Every waveform point of this asset (or give point)."
    )
    on_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time in the zone before raising."
    )
    off_delay: Annotated[Duration, Field(ge=0)] = Field(
        default=0.0, description="Time out of it before clearing."
    )
    severity: ZoneSeverity = Field(default_factory=ZoneSeverity)

    @model_validator(mode="after")
    def _one_target(self) -> IsoZoneRule:
        if (self.point is None) == (self.asset is None):
            raise issues_error([((), "an iso_zone rule watches exactly one of point or asset")])
        return self


class FaultRule(InterlockedRule):
    """Alert when a fault indicator of a waveform point is detected in ``consecutive`` captures in a row."""

    kind: Literal["fault"]
    point: PointRef = Field(description="Waveform point, as device/point.")
    fault: FaultName = Field(description="Fault indicator from the vibration diagnostics.")
    consecutive: int = Field(default=3, ge=1, le=1000, description="Captures in a row before raising.")
    clear_consecutive: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Captures in a row without it before clearing (default: consecutive).",
    )
    severity: Severity = "warning"
