"""Assets: the machines whose points are diagnosed together (running speed, ISO zones, bearings)."""

from __future__ import annotations

import difflib
from typing import Literal

from diagnostics.bearing_geometry import BEARINGS, bearing_by_name
from edge_agent.config._base import ConfigModel, Issue, Name, PointRef, issues_error
from edge_agent.config._pydantic import Field, PydanticCustomError, field_validator, model_validator
from edge_agent.config.maintenance import MaintenanceConfig


class Machine(ConfigModel):
    """How to judge an asset's vibration.

    ISO 20816-3:2022 §5.2: group 1 = large machines (rated power above 300 kW), group 2 = medium machines
    (15 kW to 300 kW); the foundation (rigid or flexible) selects the zone boundary table.
    """

    group: Literal[1, 2] = Field(description="ISO 20816-3 machine group: 1 (> 300 kW) or 2 (15-300 kW).")
    foundation: Literal["rigid", "flexible"] = Field(description="ISO 20816-3 foundation class.")
    speed_point: PointRef | None = Field(default=None, description="Point that gives shaft speed (rpm).")
    nominal_speed: float | None = Field(default=None, gt=0, description="Rated shaft speed (rpm).")
    running_point: PointRef | None = Field(
        default=None, description="Point that is true / non-zero while the machine runs."
    )


class BearingGeometry(ConfigModel):
    """Rolling-element bearing dimensions, from which the defect frequencies follow."""

    balls: int = Field(ge=3, le=100, description="Number of rolling elements.")
    ball_diameter_mm: float = Field(gt=0, description="Rolling-element diameter (mm).")
    pitch_diameter_mm: float = Field(gt=0, description="Pitch circle diameter (mm).")
    contact_angle_deg: float = Field(default=0.0, ge=0, lt=90, description="Contact angle (degrees).")

    @model_validator(mode="after")
    def _ball_fits(self) -> BearingGeometry:
        if self.ball_diameter_mm >= self.pitch_diameter_mm:
            raise PydanticCustomError(
                "bearing_geometry",
                "ball_diameter_mm ({ball}) must be smaller than pitch_diameter_mm ({pitch})",
                {"ball": self.ball_diameter_mm, "pitch": self.pitch_diameter_mm},
            )
        return self


class BearingMultiples(ConfigModel):
    """Bearing defect frequencies as multiples of shaft speed (orders), as bearing makers publish them."""

    bpfo: float = Field(gt=0, description="Ball pass frequency, outer race (x shaft speed).")
    bpfi: float = Field(gt=0, description="Ball pass frequency, inner race (x shaft speed).")
    bsf: float = Field(gt=0, description="Ball spin frequency (x shaft speed).")
    ftf: float = Field(gt=0, description="Fundamental train (cage) frequency (x shaft speed).")


class Bearing(ConfigModel):
    """A bearing watched through a waveform point: by catalogue model, geometry or defect multiples."""

    point: PointRef = Field(description="Waveform point of the accelerometer on this bearing.")
    model: str | None = Field(default=None, min_length=1, description="Catalogue designation, e.g. SKF-6205.")
    geometry: BearingGeometry | None = None
    multiples: BearingMultiples | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str | None) -> str | None:
        if model is not None:
            try:
                bearing_by_name(model)
            except ValueError as exc:
                close = difflib.get_close_matches(model.upper(), sorted(BEARINGS), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise PydanticCustomError("bearing_model", "{message}{hint}",
                                          {"message": str(exc), "hint": hint}) from None
        return model

    @model_validator(mode="after")
    def _one_description(self) -> Bearing:
        given = [f for f in ("model", "geometry", "multiples") if getattr(self, f) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "bearing_description",
                "describe the bearing by exactly one of model, geometry or multiples{given}",
                {"given": f" (got {', '.join(given)})" if given else ""},
            )
        return self


class Asset(ConfigModel):
    """A machine: its points and how to diagnose it."""

    empty_means_default = frozenset({"points", "bearings"})
    name: Name = Field(description="Asset name, unique; it names the summary/alert/vibration topics.")
    points: list[PointRef] = Field(default_factory=list, description="Points of this asset, as device/point.")
    machine: Machine | None = None
    bearings: list[Bearing] = Field(default_factory=list)
    maintenance: MaintenanceConfig | None = Field(
        default=None, description="Run hours, starts, time per ISO zone and service intervals."
    )

    @model_validator(mode="after")
    def _unique_points(self) -> Asset:
        issues: list[Issue] = []
        seen: dict[str, int] = {}
        for i, ref in enumerate(self.points):
            if ref in seen:
                issues.append((("points", i), f"point '{ref}' is listed twice (also points[{seen[ref]}])"))
            seen.setdefault(ref, i)
        if issues:
            raise issues_error(issues)
        return self
