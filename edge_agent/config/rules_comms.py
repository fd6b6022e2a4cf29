"""Rules on data quality and communications: stale data and bad quality, per point or for a whole device."""

from __future__ import annotations

from typing import Annotated, Literal

from edge_agent.config._base import Name, PointRef, issues_error
from edge_agent.config._pydantic import Field, model_validator
from edge_agent.config.rules_common import RuleBase, Severity
from edge_agent.config.units import Duration


class _PointOrDevice(RuleBase):
    point: PointRef | None = Field(default=None, description="One point, as device/point (or give device).")
    device: Name | None = Field(default=None, description="Every point of this device (or give point).")

    @model_validator(mode="after")
    def _one_target(self) -> _PointOrDevice:
        if (self.point is None) == (self.device is None):
            raise issues_error([((), f"a {self.kind_name()} rule watches exactly one of point or device")])
        return self

    def kind_name(self) -> str:
        """The rule kind, for messages."""
        return str(getattr(self, "kind", "comms"))


class StaleRule(_PointOrDevice):
    """Raise an alert when no good reading arrived for ``intervals`` poll intervals of the device."""

    kind: Literal["stale"]
    intervals: int = Field(default=3, ge=1, le=10000, description="Poll intervals without a good reading.")
    severity: Severity = "warning"


class BadQualityRule(_PointOrDevice):
    """Raise an alert while readings have bad quality (also uncertain, with include_uncertain)."""

    kind: Literal["bad_quality"]
    include_uncertain: bool = Field(default=False, description="Treat uncertain quality as bad too.")
    on_delay: Annotated[Duration, Field(ge=0)] = Field(default=0.0, description="Time bad before raising.")
    off_delay: Annotated[Duration, Field(ge=0)] = Field(default=0.0, description="Time good before clearing.")
    severity: Severity = "warning"
