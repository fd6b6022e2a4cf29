"""Vibration severity zones A/B/C/D of ISO 20816-3 from broadband velocity RMS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Zone = Literal["A", "B", "C", "D"]
Foundation = Literal["rigid", "flexible"]

#: Zone boundaries in mm/s RMS (10–1000 Hz), ISO 20816-3:2022 Annex A, Table A.1 (group 1: large
#: machines, 300 kW–50 MW) and Table A.2 (group 2: medium machines, 15 kW–300 kW). Same values as the
#: withdrawn ISO 10816-3:2009 Table A.1. Order: (A/B, B/C, C/D).
ISO20816_3_BOUNDARIES_MM_S: dict[tuple[int, str], tuple[float, float, float]] = {
    (1, "rigid"): (2.3, 4.5, 7.1),
    (1, "flexible"): (3.5, 7.1, 11.0),
    (2, "rigid"): (1.4, 2.8, 4.5),
    (2, "flexible"): (2.3, 4.5, 7.1),
}


@dataclass(frozen=True, slots=True)
class ZoneLimits:
    """Velocity RMS boundaries (mm/s) between zones A/B, B/C and C/D."""

    ab_mm_s: float
    bc_mm_s: float
    cd_mm_s: float

    def __post_init__(self) -> None:
        if not 0 < self.ab_mm_s < self.bc_mm_s < self.cd_mm_s:
            raise ValueError(
                f"zone limits must satisfy 0 < A/B < B/C < C/D (mm/s RMS), got "
                f"{self.ab_mm_s}, {self.bc_mm_s}, {self.cd_mm_s}"
            )


def iso20816_3_limits(group: int = 2, foundation: str = "rigid") -> ZoneLimits:
    """ISO 20816-3 zone boundaries (mm/s RMS) for machine ``group`` (1 or 2) on a ``foundation``.

    ``foundation`` is 'rigid' or 'flexible' (ISO 20816-3 §4.4: rigid when the lowest natural frequency
    of machine plus support is at least 25 % above the main excitation frequency).
    """
    if group not in (1, 2):
        raise ValueError(f"{group=} must be 1 (large machines, > 300 kW) or 2 (medium, 15–300 kW)")
    if foundation not in ("rigid", "flexible"):
        raise ValueError(f"{foundation=} must be 'rigid' or 'flexible'")
    ab, bc, cd = ISO20816_3_BOUNDARIES_MM_S[(group, foundation)]
    return ZoneLimits(ab, bc, cd)


def iso_zone(velocity_rms_mm_s: float, limits: ZoneLimits) -> Zone:
    """Zone A/B/C/D of ``velocity_rms_mm_s`` (mm/s RMS, broadband); a boundary value is in the upper zone."""
    if not velocity_rms_mm_s >= 0:
        raise ValueError(f"{velocity_rms_mm_s=} must be a non-negative number (mm/s RMS)")
    if velocity_rms_mm_s < limits.ab_mm_s:
        return "A"
    if velocity_rms_mm_s < limits.bc_mm_s:
        return "B"
    if velocity_rms_mm_s < limits.cd_mm_s:
        return "C"
    return "D"
