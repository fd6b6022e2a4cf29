"""OPC UA DataValues as the agent's values: quality from status codes, timestamps, scaling, waveforms.

Pure functions, no I/O. Status codes map to quality by their severity bits (OPC 10000-4 §7.39.1:
00 Good, 01 Uncertain, 10 Bad, 11 reserved and treated as Bad).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from asyncua import ua

from drivers.base import Quality, Reading, Value, Waveform
from drivers.opcua.spec import OpcUaPointSpec


def status_quality(status: ua.StatusCode | None) -> Quality:
    """Quality from an OPC UA StatusCode's severity bits (OPC 10000-4 §7.39); None means Good."""
    if status is None:
        return Quality.GOOD
    severity = (status.value >> 30) & 0b11
    if severity == 0b00:
        return Quality.GOOD
    if severity == 0b01:
        return Quality.UNCERTAIN
    return Quality.BAD


#: OPC 10000-6 §5.2.2.5: a DateTime at or before 1601-01-01 (the encoded value 0) means "no time".
_NO_TIME_S = datetime(1601, 1, 2, tzinfo=UTC).timestamp()


def epoch_s(value: datetime | None) -> float | None:
    """A DateTime as UTC epoch s; None for no time (missing, or the minimum DateTime)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = value.timestamp()
    return None if ts < _NO_TIME_S else ts


def bad_reading(point: OpcUaPointSpec, reason: str, receive_ts: float) -> Reading:
    """A BAD reading of ``point`` without a value, saying ``reason``."""
    return Reading(point.name, None, Quality.BAD, receive_ts, None, reason)


def _status_name(status: ua.StatusCode | None) -> str:
    return status.name if status is not None else "Good"


def to_reading(point: OpcUaPointSpec, dv: ua.DataValue, receive_ts: float) -> Reading:
    """One DataValue as a Reading: quality from the status, the server's source timestamp (server
    timestamp when the source gave none; UTC epoch s), numbers scaled as ``value * scale + offset``."""
    quality = status_quality(dv.StatusCode)
    source_ts = epoch_s(dv.SourceTimestamp) or epoch_s(dv.ServerTimestamp)
    if quality is Quality.BAD:
        return Reading(point.name, None, Quality.BAD, receive_ts, source_ts,
                       f"server status {_status_name(dv.StatusCode)}")
    raw = dv.Value.Value if dv.Value is not None else None
    try:
        value = _convert(point, raw)
    except ValueError as exc:
        return Reading(point.name, None, Quality.BAD, receive_ts, source_ts, str(exc))
    reason = f"server status {_status_name(dv.StatusCode)}" if quality is Quality.UNCERTAIN else None
    return Reading(point.name, value, quality, receive_ts, source_ts, reason)


def _convert(point: OpcUaPointSpec, raw: Any) -> Value:
    """A scalar Variant value as a Reading value; arrays are refused with the fix."""
    if raw is None or isinstance(raw, str | bool):
        return raw
    if isinstance(raw, int | float):
        if point.scale == 1.0 and point.offset == 0.0:
            return raw
        return float(raw) * point.scale + point.offset
    if isinstance(raw, datetime):
        return epoch_s(raw)
    if isinstance(raw, ua.LocalizedText):
        return raw.Text
    if isinstance(raw, list | tuple | np.ndarray):
        raise ValueError(f"node returned an array of {len(raw)} values; set kind: waveform for arrays")
    return str(raw)


def to_waveform(
    point: OpcUaPointSpec, dv: ua.DataValue, rate_dv: ua.DataValue | None, receive_ts: float
) -> Waveform | Reading:
    """An array DataValue as a Waveform (samples scaled into ``point.unit``, sample rate in Hz from
    ``rate_dv`` or the point's configured rate), or a BAD Reading saying why it is not one."""
    quality = status_quality(dv.StatusCode)
    source_ts = epoch_s(dv.SourceTimestamp) or epoch_s(dv.ServerTimestamp)

    def bad(reason: str) -> Reading:
        return Reading(point.name, None, Quality.BAD, receive_ts, source_ts, reason)

    if quality is Quality.BAD:
        return bad(f"server status {_status_name(dv.StatusCode)}")
    raw = dv.Value.Value if dv.Value is not None else None
    if not isinstance(raw, list | tuple | np.ndarray) or len(raw) == 0:
        return bad(f"waveform node returned {type(raw).__name__}, not a non-empty array of numbers")
    try:
        samples = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return bad("waveform array holds values that are not numbers")
    if samples.ndim != 1:
        return bad(f"waveform array has {samples.ndim} dimensions, expected 1")
    rate_hz = point.sample_rate_hz
    if rate_dv is not None:
        rate_raw = rate_dv.Value.Value if rate_dv.Value is not None else None
        numeric = isinstance(rate_raw, int | float) and not isinstance(rate_raw, bool)
        rate = float(rate_raw) if numeric else math.nan  # type: ignore[arg-type]
        if status_quality(rate_dv.StatusCode) is Quality.BAD or not 0 < rate < math.inf:
            return bad(f"sample_rate_node {point.sample_rate_node} gave {rate_raw!r} "
                       f"({_status_name(rate_dv.StatusCode)}), not a positive rate in Hz")
        rate_hz = rate
    if rate_hz is None:
        return bad("no sample rate: set sample_rate_hz or sample_rate_node")
    if point.scale != 1.0 or point.offset != 0.0:
        samples = samples * point.scale + point.offset
    ts = source_ts if source_ts is not None else receive_ts
    return Waveform(point.name, samples, rate_hz, ts, point.unit, quality)
