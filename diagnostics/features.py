"""Time-domain condition indicators of a vibration waveform."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from diagnostics.spectrum import inner_product, validate_signal


@dataclass(frozen=True, slots=True)
class TimeFeatures:
    """Statistics of one waveform after mean removal, in the unit of the samples (e.g. g).

    ``kurtosis`` is Pearson's (3 for Gaussian noise, 1.5 for a sine; impacts from a bearing defect
    drive it above 3); ``skewness`` is 0 for a symmetric signal; ``crest_factor`` = peak / rms.
    """

    rms: float
    peak: float
    peak_to_peak: float
    crest_factor: float
    kurtosis: float
    skewness: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready mapping of the features."""
        return asdict(self)


def time_features(x: npt.ArrayLike) -> TimeFeatures:
    """RMS, peak (|x| max), peak-to-peak, crest factor, kurtosis (Pearson), skewness of ``x`` minus its mean.

    Units are those of ``x`` (g, m/s², mm/s); crest factor, kurtosis and skewness are dimensionless.
    A constant signal has rms 0 and its crest factor, kurtosis and skewness are reported as 0.
    """
    arr = validate_signal(x, 1.0, min_samples=2)
    centred = arr - arr.mean()
    sq = centred * centred
    var = float(sq.mean())
    rms = float(np.sqrt(var))
    peak = float(np.max(np.abs(centred)))
    p2p = float(centred.max() - centred.min())
    if var <= 0.0:
        return TimeFeatures(rms=0.0, peak=peak, peak_to_peak=p2p, crest_factor=0.0, kurtosis=0.0, skewness=0.0)
    kurt = float(inner_product(sq, sq) / sq.size / (var * var))
    skew = float(inner_product(sq, centred) / sq.size / (var * rms))
    return TimeFeatures(rms=rms, peak=peak, peak_to_peak=p2p, crest_factor=peak / rms, kurtosis=kurt, skewness=skew)
