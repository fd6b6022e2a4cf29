"""Robust trends and predicted time to reach a limit.

The slope is the Theil–Sen estimator (median of pairwise slopes; Sen 1968, Theil 1950), which
ignores up to ~29 % of outliers. Its confidence interval is Sen's distribution-free interval from
the variance of Kendall's S, ``n(n-1)(2n+5)/18`` (no ties). For long series a bounded, seeded random
sample of pairs stands in for all of them, so cost is O(``max_pairs``) whatever the window length.

Time is UTC epoch seconds, slopes are value units per second. A predicted crossing comes with a
band: the crossing times of the lines through the slope's confidence limits.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_MAX_PAIRS = 20_000
MIN_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class TrendFit:
    """A Theil–Sen line ``value = intercept + slope_per_s * (ts - t_ref_s)``.

    ``slope_low_per_s`` .. ``slope_high_per_s`` is the ``confidence`` interval of the slope (value
    units per second); ``intercepts`` are the matching lines' values at ``t_ref_s`` (the median time
    of the samples).
    """

    slope_per_s: float
    slope_low_per_s: float
    slope_high_per_s: float
    intercept: float
    intercept_low_slope: float
    intercept_high_slope: float
    t_ref_s: float
    n_samples: int
    n_pairs: int
    confidence: float

    def value_at(self, ts_s: float) -> float:
        """Fitted value at ``ts_s`` (epoch s), in the samples' unit."""
        return self.intercept + self.slope_per_s * (ts_s - self.t_ref_s)


def _clean(ts_s: npt.ArrayLike, values: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(ts_s, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"ts_s {t.shape} and values {y.shape} must be 1-D arrays of equal length")
    keep = np.isfinite(t) & np.isfinite(y)
    return t[keep], y[keep]


def theil_sen(
    ts_s: npt.ArrayLike,
    values: npt.ArrayLike,
    confidence: float = 0.95,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    seed: int = 0,
) -> TrendFit:
    """Theil–Sen slope (units per second) with Sen's ``confidence`` interval.

    Non-finite samples are dropped (bad readings). Needs at least :data:`MIN_SAMPLES` samples at
    two or more distinct times. With more than ``max_pairs`` pairs, ``max_pairs`` random pairs drawn
    with ``seed`` are used (deterministic for a given input).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"{confidence=} must be between 0 and 1 (e.g. 0.95)")
    if max_pairs < 100:
        raise ValueError(f"{max_pairs=} must be >= 100")
    t, y = _clean(ts_s, values)
    n = t.size
    if n < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} finite samples for a trend, got {n}")
    t_ref = float(np.median(t))
    tc = t - t_ref
    total = n * (n - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=max_pairs)
        j = rng.integers(0, n, size=max_pairs)
    dt = tc[j] - tc[i]
    ok = dt != 0
    if not np.any(ok):
        raise ValueError("all samples share one timestamp; a trend needs samples spread over time")
    slopes = np.sort((y[j][ok] - y[i][ok]) / dt[ok])
    slope = float(np.median(slopes))
    # Sen (1968): rank bounds (N -/+ z*sqrt(var S)) / 2 of the N ordered pairwise slopes.
    z = NormalDist().inv_cdf(0.5 + confidence / 2)  # stdlib: keeps scipy out of a gateway that only trends
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    q_lo = min(max((total - c) / (2 * total), 0.0), 1.0)
    q_hi = min(max((total + c) / (2 * total), 0.0), 1.0)
    lo = float(np.quantile(slopes, q_lo))
    hi = float(np.quantile(slopes, q_hi))
    return TrendFit(
        slope_per_s=slope,
        slope_low_per_s=lo,
        slope_high_per_s=hi,
        intercept=float(np.median(y - slope * tc)),
        intercept_low_slope=float(np.median(y - lo * tc)),
        intercept_high_slope=float(np.median(y - hi * tc)),
        t_ref_s=t_ref,
        n_samples=int(n),
        n_pairs=int(slopes.size),
        confidence=confidence,
    )


@dataclass(frozen=True, slots=True)
class Prediction:
    """When a trend reaches ``limit``: ``crossing_ts_s`` (epoch s) within ``earliest_ts_s`` .. ``latest_ts_s``.

    ``latest_ts_s`` is ``None`` when the slope's confidence interval allows that the limit is never
    reached. ``time_to_crossing_s`` counts from ``now_s``; 0 when the fitted value is already past it.
    """

    limit: float
    direction: int
    now_s: float
    value_now: float
    crossing_ts_s: float
    earliest_ts_s: float
    latest_ts_s: float | None
    time_to_crossing_s: float
    fit: TrendFit

    @property
    def band_s(self) -> tuple[float, float | None]:
        """(earliest, latest) time to crossing from ``now_s`` in seconds; latest ``None`` = unbounded."""
        late = None if self.latest_ts_s is None else max(0.0, self.latest_ts_s - self.now_s)
        return max(0.0, self.earliest_ts_s - self.now_s), late


def _crossing(limit: float, intercept: float, slope: float, t_ref: float) -> float | None:
    if slope == 0:
        return None
    return t_ref + (limit - intercept) / slope


def predict_from_fit(fit: TrendFit, limit: float, now_s: float) -> Prediction | None:
    """Crossing of ``limit`` by ``fit`` seen from ``now_s``; ``None`` when the trend heads away or is flat."""
    if not math.isfinite(limit):
        raise ValueError(f"{limit=} must be a finite number in the samples' unit")
    value_now = fit.value_at(now_s)
    direction = 1 if limit >= value_now else -1
    if value_now == limit or (value_now - limit) * direction > 0:
        return None  # pragma: no cover - direction is chosen so this cannot hold
    slope = fit.slope_per_s
    if slope * direction <= 0:
        return None
    crossing = _crossing(limit, fit.intercept, slope, fit.t_ref_s)
    assert crossing is not None
    # steeper toward the limit = earlier; the other confidence limit = later (or never)
    steep, shallow = (
        (fit.slope_high_per_s, fit.slope_low_per_s) if direction > 0 else (fit.slope_low_per_s, fit.slope_high_per_s)
    )
    b_steep = fit.intercept_high_slope if direction > 0 else fit.intercept_low_slope
    b_shallow = fit.intercept_low_slope if direction > 0 else fit.intercept_high_slope
    early = _crossing(limit, b_steep, steep, fit.t_ref_s)
    late = _crossing(limit, b_shallow, shallow, fit.t_ref_s) if shallow * direction > 0 else None
    early_ts = min(crossing, early) if early is not None else crossing
    late_ts = max(crossing, late) if late is not None else None
    return Prediction(
        limit=limit,
        direction=direction,
        now_s=now_s,
        value_now=value_now,
        crossing_ts_s=crossing,
        earliest_ts_s=early_ts,
        latest_ts_s=late_ts,
        time_to_crossing_s=max(0.0, crossing - now_s),
        fit=fit,
    )


def predict_crossing(
    ts_s: npt.ArrayLike,
    values: npt.ArrayLike,
    limit: float,
    now_s: float | None = None,
    confidence: float = 0.95,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Prediction | None:
    """Predict when the robust trend of ``values`` (at ``ts_s``, epoch s) reaches ``limit``.

    Returns ``None`` when the trend is flat or heads away from the limit, or when the fitted value is
    already past the limit (the limit alarm speaks then). ``now_s`` defaults to the last sample time.
    """
    fit = theil_sen(ts_s, values, confidence=confidence, max_pairs=max_pairs)
    if now_s is None:
        t, _ = _clean(ts_s, values)
        now_s = float(t.max())
    value_now = fit.value_at(now_s)
    direction = 1 if limit > value_now else -1 if limit < value_now else 0
    if direction == 0:
        return None
    return predict_from_fit(fit, limit, now_s)


def format_duration(seconds: float) -> str:
    """Human approximate duration: '~45 seconds', '~12 minutes', '~5 hours', '~9 days'."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{seconds=} must be a finite number >= 0")
    for unit, size, upto in (("second", 1, 90), ("minute", 60, 90 * 60), ("hour", 3600, 36 * 3600)):
        if seconds < upto:
            n = round(seconds / size)
            return f"~{n} {unit}{'' if n == 1 else 's'}"
    n = round(seconds / 86400)
    return f"~{n} day{'' if n == 1 else 's'}"


def prediction_message(what: str, prediction: Prediction, unit: str = "", limit_label: str | None = None) -> str:
    """E.g. 'bearing velocity RMS will reach 7.1 mm/s (zone D) in ~9 days (between ~7 days and ~12 days)'."""
    limit = f"{prediction.limit:.6g}" + (f" {unit}" if unit else "")
    label = f" ({limit_label})" if limit_label else ""
    early, late = prediction.band_s
    head = f"{what} will reach {limit}{label} in {format_duration(prediction.time_to_crossing_s)}"
    if late is None:
        return f"{head} (possibly never; not before {format_duration(early)})"
    low, high = format_duration(early), format_duration(late)
    return head if low == high else f"{head} (between {low} and {high})"


class TrendWindow:
    """A sliding window of ``window_s`` seconds, averaged into ``bucket_s`` buckets (bounded memory).

    Averaging into buckets keeps the Theil–Sen input at most ``window_s / bucket_s`` points and the
    bucket means have less noise than single readings.
    """

    def __init__(self, window_s: float, bucket_s: float) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"{window_s=} must be > 0 seconds")
        if not (math.isfinite(bucket_s) and 0 < bucket_s <= window_s / MIN_SAMPLES):
            most = window_s / MIN_SAMPLES
            raise ValueError(f"{bucket_s=} must be > 0 and at most window_s / {MIN_SAMPLES} = {most} s")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._buckets: deque[tuple[int, float, int, float]] = deque()  # (index, sum_t, count, sum_v)

    def add(self, ts_s: float, value: float) -> None:
        """Add one sample (epoch s, samples' unit); non-finite values and old buckets are ignored."""
        if not (math.isfinite(ts_s) and math.isfinite(value)):
            return
        k = math.floor(ts_s / self.bucket_s)
        b = self._buckets
        if b and k < b[-1][0]:
            return
        if b and b[-1][0] == k:
            idx, st, cnt, sv = b[-1]
            b[-1] = (idx, st + ts_s, cnt + 1, sv + value)
        else:
            b.append((k, ts_s, 1, value))
        oldest = math.floor((ts_s - self.window_s) / self.bucket_s)
        while b and b[0][0] <= oldest:
            b.popleft()

    def __len__(self) -> int:
        return len(self._buckets)

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """(bucket mean times in epoch s, bucket mean values)."""
        if not self._buckets:
            return np.empty(0), np.empty(0)
        arr = np.array([(st / c, sv / c) for _, st, c, sv in self._buckets], dtype=np.float64)
        return arr[:, 0], arr[:, 1]

    def fit(self, confidence: float = 0.95) -> TrendFit | None:
        """Theil–Sen fit of the window; ``None`` until it holds :data:`MIN_SAMPLES` buckets."""
        if len(self._buckets) < MIN_SAMPLES:
            return None
        t, v = self.arrays()
        return theil_sen(t, v, confidence=confidence)

    def predict(self, limit: float, now_s: float, confidence: float = 0.95) -> Prediction | None:
        """Predicted crossing of ``limit`` seen from ``now_s``; ``None`` when none is forecast."""
        fit = self.fit(confidence)
        if fit is None:
            return None
        value_now = fit.value_at(now_s)
        if value_now == limit:
            return None
        return predict_from_fit(fit, limit, now_s)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready buckets for persistence."""
        return {"window_s": self.window_s, "bucket_s": self.bucket_s, "buckets": [list(x) for x in self._buckets]}

    def load_dict(self, data: dict[str, object]) -> TrendWindow:
        """Restore buckets written by :meth:`to_dict` (same bucket size required)."""
        if data.get("bucket_s") != self.bucket_s:
            raise ValueError(f"trend state has bucket_s={data.get('bucket_s')}, this window uses {self.bucket_s}")
        raw = data.get("buckets")
        if not isinstance(raw, list):
            raise ValueError("trend state needs a 'buckets' list")
        self._buckets = deque((int(k), float(st), int(c), float(sv)) for k, st, c, sv in raw)
        return self
