"""Noise floor and line statistics of a spectrum, for deciding whether a line stands out.

Away from its lines, the squared-envelope spectrum of a random signal has approximately
complex-Gaussian bins, so its magnitude is Rayleigh distributed: with the local median M as the
scale, a bin exceeds r·M with probability 2^(−r²). Real spectra with a strong fault also hold many
weak intermodulation lines; :class:`Clutter` measures how often a bin reaches r·M so that a
confirming line is not worth more than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from diagnostics.spectrum import fast_median

FloatArray = npt.NDArray[np.float64]
_LOG10_2 = math.log10(2.0)


#: Bins per block of the noise-floor estimate: a line (3 bins with a Hann window) barely moves a
#: 16-bin median, and a window of several blocks gives a median of medians that ignores lines.
FLOOR_BLOCK_BINS = 16


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    """Local noise floor of a spectrum: medians of consecutive ``FLOOR_BLOCK_BINS``-bin blocks.

    Computed once per spectrum; :meth:`at` is then a median over a few block medians instead of a
    median over hundreds of bins per query.
    """

    block_hz: float
    medians: FloatArray
    # Memo of (first block, end block) → median: the same windows are asked for in every pass.
    _memo: dict[tuple[int, int], float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, amplitude: FloatArray, df: float) -> NoiseFloor:
        """Block medians of ``amplitude`` (bin spacing ``df`` Hz); bin 0 (DC) is left out."""
        nb = (amplitude.size - 1) // FLOOR_BLOCK_BINS
        if nb < 1:
            return cls(FLOOR_BLOCK_BINS * df, np.array([float(np.median(amplitude[1:]))]))
        blocks = amplitude[1 : 1 + nb * FLOOR_BLOCK_BINS].reshape(nb, FLOOR_BLOCK_BINS)
        return cls(FLOOR_BLOCK_BINS * df, np.median(blocks, axis=1))

    def at(self, centre_hz: float, half_width_hz: float) -> float:
        """Median of the block medians whose blocks overlap ``centre_hz`` ± ``half_width_hz`` (Hz)."""
        lo = max(0, int((centre_hz - half_width_hz) / self.block_hz))
        hi = min(self.medians.size, int((centre_hz + half_width_hz) / self.block_hz) + 1)
        if hi <= lo:
            return float("nan")
        key = (lo, hi)
        if key not in self._memo:
            self._memo[key] = fast_median(self.medians[lo:hi])
        return self._memo[key]


@dataclass(frozen=True, slots=True)
class Clutter:
    """Measured density of lines in a (residual) envelope spectrum: sorted ratios of every bin to its floor.

    A spectrum with a strong fault is full of weak intermodulation lines that no noise model predicts;
    the chance that a confirming line sits near a predicted position is then the measured fraction of
    bins at least that high, not the Rayleigh 2^(−r²).
    """

    sorted_ratios: FloatArray

    @classmethod
    def of(cls, amplitude: FloatArray, floor: NoiseFloor) -> Clutter:
        """Ratios of ``amplitude`` (masked residual, bin 0 excluded) to the block floor, sorted."""
        nb = floor.medians.size
        used = amplitude[1 : 1 + nb * FLOOR_BLOCK_BINS]
        ref = np.repeat(floor.medians, FLOOR_BLOCK_BINS)[: used.size]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(ref > 0, used / ref, 0.0)
        return cls(np.sort(ratios))

    def survival(self, ratio: float) -> float:
        """Fraction of bins at or above ``ratio`` × floor (with one pseudo-count, never 0)."""
        n = self.sorted_ratios.size
        above = n - int(np.searchsorted(self.sorted_ratios, ratio, side="left"))
        return (above + 1) / (n + 1)


def line_log10_chance(ratio: float, clutter: Clutter | None) -> float:
    """log10 of the chance that one bin reaches ``ratio`` × floor: Rayleigh 2^(−r²), or the clutter if higher."""
    rayleigh = -(ratio**2) * _LOG10_2
    return rayleigh if clutter is None else max(rayleigh, math.log10(clutter.survival(ratio)))
