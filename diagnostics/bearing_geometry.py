"""Rolling-element bearing defect frequencies from geometry, and a table of common bearings."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BearingGeometry:
    """Geometry of a rolling-element bearing.

    ``balls`` rolling elements of diameter ``ball_diameter_mm`` on ``pitch_diameter_mm`` (mm), contact
    angle ``contact_angle_deg`` (degrees; 0 for a deep-groove bearing under radial load).
    """

    balls: int
    ball_diameter_mm: float
    pitch_diameter_mm: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.balls < 3:
            raise ValueError(f"balls={self.balls} must be at least 3")
        if not 0 < self.ball_diameter_mm < self.pitch_diameter_mm:
            raise ValueError(
                f"ball_diameter_mm={self.ball_diameter_mm} must be positive and smaller than "
                f"pitch_diameter_mm={self.pitch_diameter_mm}"
            )
        if not 0 <= self.contact_angle_deg < 90:
            raise ValueError(f"contact_angle_deg={self.contact_angle_deg} must be in [0, 90) degrees")


@dataclass(frozen=True, slots=True)
class DefectOrders:
    """Defect frequencies as multiples of shaft speed (orders): multiply by the shaft speed in Hz to get Hz.

    ``bsf`` is the ball spin frequency; a ball defect strikes both races once per spin, so its impacts
    repeat at 2×``bsf``.
    """

    bpfo: float
    bpfi: float
    bsf: float
    ftf: float

    def __post_init__(self) -> None:
        for name in ("bpfo", "bpfi", "bsf", "ftf"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be a positive multiple of shaft speed")

    def at_speed(self, shaft_hz: float) -> dict[str, float]:
        """Defect frequencies in Hz at ``shaft_hz`` (Hz): keys bpfo, bpfi, bsf, ftf."""
        if not shaft_hz > 0:
            raise ValueError(f"{shaft_hz=} must be positive (Hz)")
        return {
            "bpfo": self.bpfo * shaft_hz,
            "bpfi": self.bpfi * shaft_hz,
            "bsf": self.bsf * shaft_hz,
            "ftf": self.ftf * shaft_hz,
        }


def defect_orders(geometry: BearingGeometry) -> DefectOrders:
    """BPFO, BPFI, BSF and FTF of ``geometry`` as orders of shaft speed (inner race turning, outer fixed).

    Kinematic formulas from R. B. Randall and J. Antoni, "Rolling element bearing diagnostics — A
    tutorial", Mech. Syst. Signal Process. 25 (2011) 485–520, eqs. (1)–(4)::

        FTF  = ½ (1 − d/D cos φ)          BPFO = n/2 (1 − d/D cos φ)
        BPFI = n/2 (1 + d/D cos φ)        BSF  = D/(2d) (1 − (d/D cos φ)²)
    """
    ratio = geometry.ball_diameter_mm / geometry.pitch_diameter_mm * math.cos(math.radians(geometry.contact_angle_deg))
    n = geometry.balls
    return DefectOrders(
        bpfo=n / 2 * (1 - ratio),
        bpfi=n / 2 * (1 + ratio),
        bsf=geometry.pitch_diameter_mm / (2 * geometry.ball_diameter_mm) * (1 - ratio**2),
        ftf=0.5 * (1 - ratio),
    )


_IN = 25.4  # mm per inch

#: Built-in bearings, keyed by a normalised name (upper case, no spaces, '-' between maker and model).
BEARINGS: dict[str, BearingGeometry] = {
    # CWRU test rig drive-end bearing: 9 balls, d = 0.3126 in, D = 1.537 in (Case Western Reserve
    # University Bearing Data Center, https://engineering.case.edu/bearingdatacenter, "Apparatus &
    # Procedures"; reproduces CWRU's published orders BPFO 3.5848, BPFI 5.4152, FTF 0.39828).
    "SKF-6205": BearingGeometry(9, 0.3126 * _IN, 1.537 * _IN, 0.0),
    # CWRU test rig fan-end bearing 6203-2RS JEM: 8 balls, d = 0.2656 in, D = 1.122 in (same source;
    # CWRU publishes BPFO 3.0530, BPFI 4.9469, FTF 0.3817).
    "SKF-6203": BearingGeometry(8, 0.2656 * _IN, 1.122 * _IN, 0.0),
    # Rexnord ZA-2115 double-row bearing of the IMS/NASA run-to-failure set: 16 rollers per row,
    # d = 0.331 in, D = 2.815 in, contact angle 15.17° (H. Qiu, J. Lee, J. Lin, G. Yu, "Wavelet filter-
    # based weak signature detection method and its application on rolling element bearing
    # prognostics", J. Sound Vib. 289 (2006) 1066–1090, Table 1).
    "REXNORD-ZA2115": BearingGeometry(16, 0.331 * _IN, 2.815 * _IN, 15.17),
}

_ALIASES: dict[str, str] = {
    "6205": "SKF-6205",
    "SKF6205": "SKF-6205",
    "6205-2RS": "SKF-6205",
    "SKF-6205-2RS": "SKF-6205",
    "6203": "SKF-6203",
    "SKF6203": "SKF-6203",
    "6203-2RS": "SKF-6203",
    "SKF-6203-2RS": "SKF-6203",
    "ZA-2115": "REXNORD-ZA2115",
    "ZA2115": "REXNORD-ZA2115",
    "REXNORD-ZA-2115": "REXNORD-ZA2115",
}


def bearing_by_name(name: str) -> BearingGeometry:
    """Geometry of a built-in bearing by ``name`` (e.g. 'SKF-6205', '6205'; case-insensitive)."""
    key = name.strip().upper().replace(" ", "-").replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in BEARINGS:
        raise ValueError(
            f"unknown bearing {name!r}; built-in bearings are {', '.join(sorted(BEARINGS))} "
            "(or give the geometry: balls, ball and pitch diameter, contact angle)"
        )
    return BEARINGS[key]
