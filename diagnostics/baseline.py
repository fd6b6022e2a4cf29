"""Baseline of a measurement point learnt from its first captures, and deviation of new captures from it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deviation:
    """Distance of one feature from its baseline: ``ratio`` = value / mean, ``z`` = (value − mean) / std."""

    value: float
    mean: float
    std: float
    ratio: float
    z: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready mapping (rounded)."""
        return {
            "value": self.value,
            "baseline": self.mean,
            "ratio": round(self.ratio, 4),
            "z": round(self.z, 3),
        }


class Baseline:
    """Per-point baseline of named features (velocity RMS, kurtosis, band energies…) over ``n_captures``.

    Memory is constant: each feature keeps a running mean and variance (Welford's algorithm), never the
    captures themselves. While learning, :meth:`update` returns None; afterwards it returns the
    deviation of each feature and leaves the baseline unchanged. :meth:`relearn` starts over (on command).
    The std used for z-scores is floored at 5 % of the mean so a very steady baseline does not turn
    ordinary noise into huge z-scores.
    """

    def __init__(self, n_captures: int = 10) -> None:
        if n_captures < 2:
            raise ValueError(f"{n_captures=} must be at least 2 (the spread needs two captures)")
        self.n_captures = n_captures
        self._count = 0
        self._mean: dict[str, float] = {}
        self._m2: dict[str, float] = {}

    @property
    def learned(self) -> bool:
        """True once ``n_captures`` captures have been seen."""
        return self._count >= self.n_captures

    @property
    def count(self) -> int:
        """Captures learnt so far (at most ``n_captures``)."""
        return self._count

    def relearn(self) -> None:
        """Forget the baseline and learn again from the next captures."""
        self._count = 0
        self._mean.clear()
        self._m2.clear()

    def update(self, features: Mapping[str, float]) -> dict[str, Deviation] | None:
        """Learn from ``features`` while learning; afterwards return each feature's deviation from baseline.

        Feature names must stay the same from capture to capture; a missing or new name raises ValueError.
        """
        for name, value in features.items():
            if not math.isfinite(value):
                raise ValueError(f"baseline feature {name}={value} must be finite")
        if self._count and set(features) != set(self._mean):
            raise ValueError(
                f"baseline features changed: learnt {sorted(self._mean)}, got {sorted(features)}; call relearn()"
            )
        if not self.learned:
            self._count += 1
            for name, value in features.items():
                mean = self._mean.get(name, 0.0)
                delta = value - mean
                mean += delta / self._count
                self._mean[name] = mean
                self._m2[name] = self._m2.get(name, 0.0) + delta * (value - mean)
            return None
        out: dict[str, Deviation] = {}
        for name, value in features.items():
            mean = self._mean[name]
            std = math.sqrt(self._m2[name] / (self._count - 1))
            std = max(std, 0.05 * abs(mean), 1e-12)
            ratio = value / mean if mean != 0 else math.inf
            out[name] = Deviation(value=value, mean=mean, std=std, ratio=ratio, z=(value - mean) / std)
        return out
