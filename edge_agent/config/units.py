"""Durations, byte sizes and frequencies as people write them in config files.

Each quantity has a plain parser (``parse_duration``, ``parse_byte_size``, ``parse_frequency``) and a
pydantic ``Annotated`` type (``Duration``, ``ByteSize``, ``Frequency``) so that a model field typed with it
accepts both a bare number and a string with a unit. The JSON Schema of each type is "a number, or a
string matching this pattern", so editors can check config files.

Units (case-insensitive, optional space between number and unit):

- Duration -> float seconds: ``us``, ``ms``, ``s``, ``m``/``min``, ``h``, ``d``; parts may be chained
  (``1h30m``); a bare number is seconds.
- Byte size -> int bytes: ``B``; decimal ``kB``/``KB`` = 10^3, ``MB`` = 10^6, ``GB`` = 10^9, ``TB`` = 10^12;
  binary ``KiB`` = 2^10, ``MiB`` = 2^20, ``GiB`` = 2^30, ``TiB`` = 2^40 (IEC 80000-13 prefixes).
  A bare integer is bytes.
- Frequency -> float Hz: ``Hz``, ``kHz``, ``MHz``; a bare number is Hz.
- Rate (events per time) -> float per minute: ``10/min``, ``1/s``, ``600/h``; a bare number is per minute.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from edge_agent.config._pydantic import BeforeValidator, PydanticCustomError, WithJsonSchema

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"

_DURATION_UNITS_S: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
# IEC 80000-13: decimal prefixes are powers of 1000, binary prefixes (Ki, Mi, Gi, Ti) powers of 1024.
_SIZE_UNITS_B: dict[str, int] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_FREQUENCY_UNITS_HZ: dict[str, float] = {"hz": 1.0, "khz": 1e3, "mhz": 1e6}

_DURATION_UNIT = "us|ms|s|min|m|h|d"
_SIZE_UNIT = "kib|mib|gib|tib|kb|mb|gb|tb|b"
_FREQUENCY_UNIT = "khz|mhz|hz"
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*({_DURATION_UNIT})", re.IGNORECASE)
_SIZE_RE = re.compile(rf"^\s*({_NUMBER})\s*({_SIZE_UNIT})?\s*$", re.IGNORECASE)
_FREQUENCY_RE = re.compile(rf"^\s*({_NUMBER})\s*({_FREQUENCY_UNIT})?\s*$", re.IGNORECASE)
_BARE_NUMBER_RE = re.compile(rf"^\s*{_NUMBER}\s*$")

DURATION_FORMS = (
    "a number of seconds or a number with a unit us, ms, s, m, h, d (e.g. 250ms, 10s, 5m, 1h30m, 7d)"
)
BYTE_SIZE_FORMS = (
    "a number of bytes or a number with a unit B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB "
    "(powers of 1024), e.g. 512kB, 256MB, 1GiB"
)
RATE_FORMS = "a number per minute or a number per unit: 10/min, 1/s, 600/h"
FREQUENCY_FORMS = "a number of Hz or a number with a unit Hz, kHz, MHz (e.g. 12800Hz, 12.8kHz)"


def _shown(value: object) -> str:
    """A value as the user wrote it in YAML (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else repr(value)


def _reject_non_text_number(value: object, what: str, forms: str) -> None:
    """Refuse booleans (YAML ``true`` is an int in Python) and anything that is neither text nor number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PydanticCustomError(
            f"{what}_type",
            "invalid {what} {value}: use {forms}",
            {"what": what, "value": _shown(value), "forms": forms},
        )


def _invalid(what: str, value: object, forms: str) -> PydanticCustomError:
    return PydanticCustomError(
        f"{what}_parsing",
        "invalid {what} {value}: use {forms}",
        {"what": what, "value": _shown(value), "forms": forms},
    )


def _finite_non_negative(number: float, what: str, value: object, forms: str) -> float:
    if not math.isfinite(number) or number < 0:
        raise _invalid(what, value, forms)
    return number


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds: a bare number is seconds, a string may carry units (``250ms``, ``1h30m``).

    Raises ``PydanticCustomError`` (a ``ValueError``) naming the accepted forms when ``value`` is not a
    non-negative finite duration.
    """
    _reject_non_text_number(value, "duration", DURATION_FORMS)
    if isinstance(value, (int, float)):
        return _finite_non_negative(float(value), "duration", value, DURATION_FORMS)
    assert isinstance(value, str)
    if _BARE_NUMBER_RE.match(value):
        return _finite_non_negative(float(value), "duration", value, DURATION_FORMS)
    total_s = 0.0
    position = 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            raise _invalid("duration", value, DURATION_FORMS)
        total_s += float(match.group(1)) * _DURATION_UNITS_S[match.group(2).lower()]
        position = match.end()
    if position == 0 or value[position:].strip():
        raise _invalid("duration", value, DURATION_FORMS)
    return _finite_non_negative(total_s, "duration", value, DURATION_FORMS)


def parse_byte_size(value: object) -> int:
    """Return ``value`` in bytes: ``MB`` is 10^6 bytes, ``MiB`` is 2^20 bytes, a bare integer is bytes.

    Fractions are allowed when they come to whole bytes (``1.5kB`` = 1500); raises ``PydanticCustomError``
    (a ``ValueError``) naming the accepted forms otherwise.
    """
    _reject_non_text_number(value, "size", BYTE_SIZE_FORMS)
    if isinstance(value, int):
        if value < 0:
            raise _invalid("size", value, BYTE_SIZE_FORMS)
        return value
    if isinstance(value, float):
        number, multiplier = value, 1
    else:
        assert isinstance(value, str)
        match = _SIZE_RE.match(value)
        if match is None:
            raise _invalid("size", value, BYTE_SIZE_FORMS)
        number = float(match.group(1))
        multiplier = _SIZE_UNITS_B[(match.group(2) or "b").lower()]
    size_b = _finite_non_negative(number * multiplier, "size", value, BYTE_SIZE_FORMS)
    if size_b != math.floor(size_b):
        raise _invalid("size", value, BYTE_SIZE_FORMS)
    return int(size_b)


def parse_frequency(value: object) -> float:
    """Return ``value`` in Hz: a bare number is Hz, a string may carry ``Hz``, ``kHz`` or ``MHz``.

    Raises ``PydanticCustomError`` (a ``ValueError``) naming the accepted forms when ``value`` is not a
    non-negative finite frequency.
    """
    return _parse_number_with_unit(value, "frequency", FREQUENCY_FORMS, _FREQUENCY_RE, _FREQUENCY_UNITS_HZ, "hz")


def _parse_number_with_unit(value: object, what: str, forms: str, pattern: re.Pattern[str],
                            units: dict[str, float], default_unit: str) -> float:
    """A bare number, or ``<number><unit>`` matched by ``pattern`` and scaled by ``units`` (lower-case keys)."""
    _reject_non_text_number(value, what, forms)
    if isinstance(value, (int, float)):
        return _finite_non_negative(float(value), what, value, forms)
    assert isinstance(value, str)
    match = pattern.match(value)
    if match is None:
        raise _invalid(what, value, forms)
    scaled = float(match.group(1)) * units[(match.group(2) or default_unit).lower()]
    return _finite_non_negative(scaled, what, value, forms)


_RATE_UNITS_PER_MIN: dict[str, float] = {"s": 60.0, "sec": 60.0, "m": 1.0, "min": 1.0, "h": 1 / 60}
_RATE_UNIT = "sec|min|s|m|h"
_RATE_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_RATE_UNIT}))?\s*$", re.IGNORECASE)


def parse_rate_per_minute(value: object) -> float:
    """Return ``value`` as a count per minute: ``10/min`` = 10, ``1/s`` = 60, ``600/h`` = 10, ``5`` = 5.

    Raises ``PydanticCustomError`` (a ``ValueError``) naming the accepted forms when ``value`` is not a
    non-negative finite rate.
    """
    return _parse_number_with_unit(value, "rate", RATE_FORMS, _RATE_RE, _RATE_UNITS_PER_MIN, "min")


def _number_or_pattern(pattern: str, description: str, integer: bool = False) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer" if integer else "number", "minimum": 0},
            {"type": "string", "pattern": pattern},
        ],
        "description": description,
    }


def _case_insensitive(units: str) -> str:
    """``min|s`` as ``[mM][iI][nN]|[sS]``: JSON Schema regexes have no ``(?i)``."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in units)


def _unit_pattern(units: str, repeat: bool = False) -> str:
    """JSON Schema regex for a number with an optional unit, spelled case-insensitively (no ``(?i)``)."""
    spelled = _case_insensitive(units)
    if repeat:  # a bare number, or one or more number-with-unit parts (1h30m)
        return rf"^\s*(?:{_NUMBER}\s*|(?:{_NUMBER}\s*(?:{spelled})\s*)+)$"
    return rf"^\s*{_NUMBER}\s*(?:{spelled})?\s*$"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        _number_or_pattern(
            _unit_pattern(_DURATION_UNIT, repeat=True), f"Duration in seconds: {DURATION_FORMS}."
        )
    ),
]
"""Seconds (float); accepts ``250ms``, ``10s``, ``5m``, ``2h``, ``7d``, ``1h30m`` or a bare number."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_byte_size),
    WithJsonSchema(
        _number_or_pattern(_unit_pattern(_SIZE_UNIT), f"Size in bytes: {BYTE_SIZE_FORMS}.", integer=True)
    ),
]
"""Bytes (int); accepts ``512kB`` (10^3), ``256MB`` (10^6), ``1GiB`` (2^30) or a bare number of bytes."""

Frequency = Annotated[
    float,
    BeforeValidator(parse_frequency),
    WithJsonSchema(
        _number_or_pattern(_unit_pattern(_FREQUENCY_UNIT), f"Frequency in Hz: {FREQUENCY_FORMS}.")
    ),
]
"""Hz (float); accepts ``12800Hz``, ``12.8kHz`` or a bare number of Hz."""

RatePerMinute = Annotated[
    float,
    BeforeValidator(parse_rate_per_minute),
    WithJsonSchema(
        _number_or_pattern(
            rf"^\s*{_NUMBER}\s*(?:/\s*(?:{_case_insensitive(_RATE_UNIT)}))?\s*$",
            f"Count per minute: {RATE_FORMS}.",
        )
    ),
]
"""Count per minute (float); accepts ``10/min``, ``1/s``, ``600/h`` or a bare number per minute."""
