"""Per-interval statistics of every point, grouped by asset.

Accumulators live in numpy arrays, one slot per point of a device, and are updated in bulk once per poll
cycle from the cycle's :class:`~edge_agent.telemetry.CycleFrame` (no object and no dictionary lookup per
value). Statistics: ``count`` (every reading), ``good`` (good readings with a value), ``min``, ``max``,
``mean`` and ``std`` (Welford, over good numeric values; bools count as 0/1), ``last`` (the last good
value, strings and bools as they are) and ``twa`` (time-weighted mean, each value held until the next
one). At the end of each summary interval the aggregator yields one summary body per asset and starts a
new interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.base import Reading
from edge_agent.telemetry import BoolArray, CycleFrame, FloatArray, LayoutIndex

_FLOAT_FIELDS: dict[str, float] = {
    "count": 0.0, "good": 0.0, "numeric": 0.0, "min": math.inf, "max": -math.inf, "mean": 0.0, "m2": 0.0,
    "tw_area": 0.0, "tw_span": 0.0, "prev_value": math.nan, "prev_ts": math.nan, "last_number": math.nan,
    "last_seq": -1.0, "last_bool": 0.0,
}


class DeviceStats:
    """Running statistics of every point of one device over one interval, as arrays indexed by position."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.index = LayoutIndex(names)
        self.arrays: dict[str, FloatArray] = {k: np.full(len(self.index), v) for k, v in _FLOAT_FIELDS.items()}
        self.last_other: dict[int, tuple[int, object]] = {}  # position -> (cycle seq, good non-numeric value)
        self.seq = 0

    def _fit(self) -> None:
        n = len(self.index)
        if len(self.arrays["count"]) < n:
            for k, fill in _FLOAT_FIELDS.items():
                a = self.arrays[k]
                self.arrays[k] = np.concatenate([a, np.full(n - len(a), fill)])

    def add(self, frame: CycleFrame) -> None:
        """Add one frame (one cycle of the device, or a subscription batch)."""
        layout = self.index.positions(frame.names)
        self._fit()
        self.seq += 1
        a = self.arrays
        if layout is None and len(frame) == len(a["count"]):
            cols = a  # identity layout: update the arrays in place
        else:
            pos = np.arange(len(frame)) if layout is None else layout
            cols = {k: v[pos] for k, v in a.items()}
        x = frame.numbers()
        ts = frame.timestamps()
        cols["count"] += 1.0
        if frame.all_good_numbers and not np.isnan(x).any():
            _update_numeric_all(cols, x, ts, self.seq, frame.bool_mask())
            cols["good"] += 1.0
        else:
            good = frame.good_mask()
            cols["good"] += good
            _update_numeric_some(cols, x, ts, self.seq, frame.bool_mask())
            for i in np.flatnonzero(good & np.isnan(x)):  # good but not a number: strings, enum names
                value = frame.values[i]
                if not isinstance(value, float):  # a NaN float is no value to report
                    self.last_other[int(i) if layout is None else int(layout[i])] = (self.seq, value)
        if cols is not a:
            pos = np.arange(len(frame)) if layout is None else layout
            for k, v in cols.items():
                a[k][pos] = v

    def bodies(self, end_s: float, statistics: Iterable[str]) -> dict[str, dict[str, object]]:
        """The summary of every point (by name) for an interval ending at ``end_s`` (epoch s), without units.

        Computed column-wise (a few numpy passes and one ``tolist`` per statistic), then one small dict per
        point with the requested ``statistics``.
        """
        wanted = [k for k in statistics if k in _STATISTICS]
        a = self.arrays
        n = len(a["count"])
        if n == 0:
            return {}
        numeric_n = a["numeric"]
        numeric = numeric_n > 0
        cols: dict[str, list[Any]] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            if "count" in wanted:
                cols["count"] = a["count"].astype(np.int64).tolist()
            if "good" in wanted:
                cols["good"] = a["good"].astype(np.int64).tolist()
            if "min" in wanted:
                cols["min"] = _none_where(a["min"], ~numeric)
            if "max" in wanted:
                cols["max"] = _none_where(a["max"], ~numeric)
            mean = np.round(a["mean"], 6)
            if "mean" in wanted:
                cols["mean"] = _none_where(mean, ~numeric)
                std = np.round(np.sqrt(np.maximum(a["m2"], 0.0) / (numeric_n - 1.0)), 6)
                std = np.round(np.sqrt(np.maximum(a["m2"], 0.0) / (numeric_n - 1.0)).astype(np.float64), 6)
                cols["std"] = _none_where(std, numeric_n < 2)
            if "twa" in wanted:
                hold = np.maximum(0.0, end_s - a["prev_ts"])
                area = a["tw_area"] + a["prev_value"] * hold
                span = a["tw_span"] + hold
                twa = np.where(span > 0, np.round(area / span, 6), mean)
                cols["twa"] = _none_where(twa, ~numeric | np.isnan(a["prev_ts"]))
            if "last" in wanted:
                cols["last"] = self._last_values()
        names = list(self.index.position)[:n]
        out: dict[str, dict[str, object]] = {}
        for i, name in enumerate(names):
            out[name] = {k: cols[k][i] for k in wanted}
        return out

    def _last_values(self) -> list[object]:
        """The last good value of every position: numbers as float, bools as bool, strings as they came."""
        a = self.arrays
        numbers = a["last_number"]
        last: list[object] = _none_where(numbers, np.isnan(numbers))
        for p in np.flatnonzero(a["last_bool"] > 0).tolist():
            if last[p] is not None:
                last[p] = bool(last[p])
        seq = a["last_seq"]
        for p, (when, value) in self.last_other.items():
            if p < len(last) and when >= seq[p]:
                last[p] = value
        return last


_STATISTICS = frozenset({"count", "good", "min", "max", "mean", "std", "last", "twa"})


def _none_where(values: npt.NDArray[np.floating[Any]], missing: BoolArray) -> list[Any]:
    """``values`` as a list of floats with None where ``missing``."""
    out: list[Any] = values.tolist()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
    return out


def _update_numeric_all(c: dict[str, FloatArray], x: FloatArray, ts: FloatArray, seq: int,
                        bools: BoolArray | None) -> None:
    """Every value is a good number: plain vector updates, no masks."""
    c["numeric"] += 1.0
    np.minimum(c["min"], x, out=c["min"])
    np.maximum(c["max"], x, out=c["max"])
    delta = x - c["mean"]
    c["mean"] += delta / c["numeric"]
    c["m2"] += delta * (x - c["mean"])
    with np.errstate(invalid="ignore"):
        dt = ts - c["prev_ts"]
        held = dt > 0  # NaN (no previous value) compares False
    if held.all():
        c["tw_area"] += c["prev_value"] * dt
        c["tw_span"] += dt
    else:
        c["tw_area"] += np.where(held, c["prev_value"] * dt, 0.0)
        c["tw_span"] += np.where(held, dt, 0.0)
    c["prev_value"][:] = x
    c["prev_ts"][:] = ts
    c["last_number"][:] = x
    c["last_seq"][:] = seq
    c["last_bool"][:] = 0.0 if bools is None else bools


def _update_numeric_some(c: dict[str, FloatArray], x: FloatArray, ts: FloatArray, seq: int,
                         bools: BoolArray | None) -> None:
    """Some values are missing, bad or not numbers (NaN in ``x``): the same updates under a mask."""
    num = ~np.isnan(x)
    c["numeric"] += num
    np.fmin(c["min"], x, out=c["min"])
    np.fmax(c["max"], x, out=c["max"])
    n = np.where(num, c["numeric"], 1.0)
    delta = np.where(num, x - c["mean"], 0.0)
    c["mean"] += delta / n
    c["m2"] += np.where(num, delta * (x - c["mean"]), 0.0)
    with np.errstate(invalid="ignore"):
        dt = ts - c["prev_ts"]
        held = num & (dt > 0)
    c["tw_area"] += np.where(held, c["prev_value"] * dt, 0.0)
    c["tw_span"] += np.where(held, dt, 0.0)
    c["prev_value"][:] = np.where(num, x, c["prev_value"])
    c["prev_ts"][:] = np.where(num, ts, c["prev_ts"])
    c["last_number"][:] = np.where(num, x, c["last_number"])
    c["last_seq"][:] = np.where(num, seq, c["last_seq"])
    if bools is not None:
        c["last_bool"][:] = np.where(num, bools, c["last_bool"])
    else:
        c["last_bool"][:] = np.where(num, 0.0, c["last_bool"])


class SummaryAggregator:
    """Collects readings into per-asset summaries for consecutive intervals.

    ``asset_points`` maps each asset name to its point keys (``device/point``); ``units`` gives each point's
    unit and names the points that are summarised (others are ignored). A reading is keyed ``device/point``.
    """

    def __init__(
        self,
        asset_points: Mapping[str, list[str]],
        units: Mapping[str, str],
        statistics: Iterable[str],
        start_s: float,
    ) -> None:
        self._asset_points = {a: list(p) for a, p in asset_points.items()}
        self._units = dict(units)
        self._statistics = tuple(statistics)
        self._start_s = start_s
        self._devices: dict[str, list[str]] = {}
        for key in self._units:
            device, _, point = key.partition("/")
            self._devices.setdefault(device, []).append(point)
        self._stats: dict[str, DeviceStats] = {}
        self._reset()

    def _reset(self) -> None:
        self._stats = {device: DeviceStats(points) for device, points in self._devices.items()}

    def reset_start(self, start_s: float) -> None:
        """Discard what was collected and start the current interval at ``start_s`` (epoch s)."""
        self._start_s = start_s
        self._reset()

    @property
    def start_s(self) -> float:
        """Start of the current interval (epoch s)."""
        return self._start_s

    def add(self, device: str, readings: list[Reading] | tuple[Reading, ...]) -> None:
        """Add the readings of one device's poll cycle."""
        if readings:
            self.add_frame(CycleFrame(device, readings))

    def add_frame(self, frame: CycleFrame) -> None:
        """Add one device's cycle as a frame (the pipeline builds it once for every consumer)."""
        stats = self._stats.get(frame.device)
        if stats is not None:
            stats.add(frame)

    def close(self, end_s: float) -> list[tuple[str, dict[str, object]]]:
        """Close the interval at ``end_s`` (epoch s); return ``(asset, body)`` pairs and start the next."""
        per_device = {device: stats.bodies(end_s, self._statistics) for device, stats in self._stats.items()}
        wanted = [k for k in self._statistics if k in _STATISTICS]
        out: list[tuple[str, dict[str, object]]] = []
        for asset, keys in self._asset_points.items():
            points: dict[str, object] = {}
            for key in keys:
                unit = self._units.get(key)
                if unit is None:
                    continue
                device, _, name = key.partition("/")
                body = per_device.get(device, {}).get(name)
                if body is None:
                    body = {k: _EMPTY.get(k) for k in wanted}
                body["unit"] = unit
                points[key] = body
            out.append((asset, {
                "asset": asset,
                "start": int(self._start_s * 1000),
                "end": int(end_s * 1000),
                "points": points,
            }))
        self._start_s = end_s
        self._reset()
        return out


#: A point with no reading in the interval.
_EMPTY: dict[str, object] = {"count": 0, "good": 0}
