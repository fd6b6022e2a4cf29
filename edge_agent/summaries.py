"""Per-interval statistics of every point, grouped by asset.

Accumulators are plain mutable slots updated in place for each reading (no object per value). At the end
of each summary interval the aggregator yields one summary body per asset and starts a new interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.base import Quality, Reading


@dataclass(slots=True)
class PointStats:
    """Running statistics of one point over one interval (Welford for the variance)."""

    unit: str = ""
    count: int = 0
    good: int = 0
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0
    last: float | bool | str | None = None
    last_ts: float | None = None
    tw_area: float = 0.0
    tw_span: float = 0.0
    prev_value: float | None = None
    prev_ts: float | None = None

    def add(self, value: object, quality: Quality, ts: float) -> None:
        """Add one reading; only good numeric readings enter min/max/mean."""
        self.count += 1
        if quality is not Quality.GOOD or value is None:
            return
        self.good += 1
        self.last = value if isinstance(value, (bool, str)) else float(value)  # type: ignore[arg-type]
        self.last_ts = ts
        if isinstance(value, str):
            return
        x = float(value)  # type: ignore[arg-type]
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        n = self.good
        delta = x - self.mean
        self.mean += delta / n
        self.m2 += delta * (x - self.mean)
        # Time-weighted mean: each value holds until the next one (sample-and-hold).
        if self.prev_value is not None and self.prev_ts is not None and ts > self.prev_ts:
            dt = ts - self.prev_ts
            self.tw_area += self.prev_value * dt
            self.tw_span += dt
        self.prev_value = x
        self.prev_ts = ts

    def numeric_goods(self) -> int:
        """Number of good readings that entered min/max/mean."""
        return self.good if self.min != math.inf else 0

    def as_dict(self, end_s: float, statistics: Iterable[str]) -> dict[str, object]:
        """Return the JSON body for this point; ``end_s`` closes the time-weighted mean's last hold."""
        numeric = self.min != math.inf
        values: dict[str, object] = {
            "count": self.count,
            "good": self.good,
            "min": self.min if numeric else None,
            "max": self.max if numeric else None,
            "mean": round(self.mean, 6) if numeric else None,
            "std": round(math.sqrt(self.m2 / (self.good - 1)), 6) if numeric and self.good > 1 else None,
            "last": self.last,
            "twa": None,
        }
        if numeric and self.prev_value is not None and self.prev_ts is not None:
            area = self.tw_area + self.prev_value * max(0.0, end_s - self.prev_ts)
            span = self.tw_span + max(0.0, end_s - self.prev_ts)
            values["twa"] = round(area / span, 6) if span > 0 else values["mean"]
        out = {k: values[k] for k in statistics if k in values}
        out["unit"] = self.unit
        return out


class SummaryAggregator:
    """Collects readings into per-asset summaries for consecutive intervals.

    ``asset_points`` maps each asset name to its point keys (``device/point``); ``units`` gives each point's
    unit. A reading is keyed ``device/point``.
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
        self._stats: dict[str, PointStats] = {}
        self._reset()

    def _reset(self) -> None:
        self._stats = {key: PointStats(unit=self._units.get(key, "")) for key in self._units}

    def reset_start(self, start_s: float) -> None:
        """Discard what was collected and start the current interval at ``start_s`` (epoch s)."""
        self._start_s = start_s
        self._reset()

    @property
    def start_s(self) -> float:
        """Start of the current interval (epoch s)."""
        return self._start_s

    def add(self, device: str, readings: Iterable[Reading]) -> None:
        """Add the readings of one device's poll cycle."""
        stats = self._stats
        for r in readings:
            s = stats.get(f"{device}/{r.point}")
            if s is not None:
                s.add(r.value, r.quality, r.source_ts or r.receive_ts)

    def close(self, end_s: float) -> list[tuple[str, dict[str, object]]]:
        """Close the interval at ``end_s`` (epoch s); return ``(asset, body)`` pairs and start the next."""
        out: list[tuple[str, dict[str, object]]] = []
        for asset, keys in self._asset_points.items():
            points = {k: self._stats[k].as_dict(end_s, self._statistics) for k in keys if k in self._stats}
            out.append((asset, {
                "asset": asset,
                "start": int(self._start_s * 1000),
                "end": int(end_s * 1000),
                "points": points,
            }))
        self._start_s = end_s
        self._reset()
        return out
