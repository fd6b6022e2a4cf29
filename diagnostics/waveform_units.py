"""The units a vibration waveform may be given in, and how its samples convert to the ones the analysis takes.

Pure Python (no numpy): the config validates waveform units with it, and a Modbus-only agent must not load
numpy. Spellings are matched without case, and with ``²``, ``^2`` or ``2`` for squared.
"""

from __future__ import annotations

#: Standard acceleration of gravity, m/s² per g (3rd CGPM 1901; ISO 80000-3:2019 item 3-9.1 note).
STANDARD_GRAVITY_M_S2 = 9.80665

#: Unit as written (normalised: lower case, '^2'/'²' as '2', no spaces) -> (analysis unit, factor on samples).
_UNITS: dict[str, tuple[str, float]] = {
    "g": ("g", 1.0),
    "mg": ("g", 1e-3),
    "m/s2": ("m/s2", 1.0),
    "mm/s2": ("m/s2", 1e-3),
    "mm/s": ("mm/s", 1.0),
    "m/s": ("mm/s", 1e3),
    "in/s": ("mm/s", 25.4),
    "ips": ("mm/s", 25.4),
}
#: The spellings accepted, as a user would write them (for error messages and the docs).
ACCEPTED = "g, mg, m/s², mm/s² (acceleration) or mm/s, m/s, in/s (velocity)"


def _normalise(unit: str) -> str:
    return unit.strip().lower().replace(" ", "").replace("²", "2").replace("^2", "2")


def waveform_units(unit: str) -> tuple[str, float]:
    """The analysis unit ('g', 'm/s2' or 'mm/s') for a waveform in ``unit``, and the factor its samples
    are multiplied by to be in it; ``ValueError`` naming the accepted units for anything else.

    An empty unit is 'g' (an accelerometer's usual unit, and what configs without one have meant).
    """
    key = _normalise(unit) or "g"
    try:
        return _UNITS[key]
    except KeyError:
        raise ValueError(f"vibration waveform unit {unit!r} is not known; use {ACCEPTED}") from None
