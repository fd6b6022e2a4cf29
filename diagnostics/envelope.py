"""Envelope analysis: band selection by a kurtogram, band-pass Hilbert envelope, squared-envelope spectrum.

The band-pass filter and the Hilbert transform are done together in the frequency domain: the lines
of the chosen band are shifted down to 0 Hz and inverse-transformed over just enough points to hold
the squared envelope without aliasing. That gives the complex envelope already decimated, at a
fraction of the cost of filtering at the full sample rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from diagnostics.spectrum import DetrendMode, Spectrum, detrend, rfft_freqs, validate_signal, window
from diagnostics.velocity import check_band

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]


@dataclass(frozen=True, slots=True)
class EnvelopeBand:
    """A demodulation band ``low_hz``..``high_hz`` (Hz) and how it was chosen.

    ``spectral_kurtosis`` is the band's SK, E|z|⁴/(E|z|²)² − 2 of its complex envelope z (0 for Gaussian
    noise; 'configured' bands carry NaN); ``method`` is 'configured' or 'spectral_kurtosis'.
    """

    low_hz: float
    high_hz: float
    spectral_kurtosis: float
    method: str


def rfft_of(x: FloatArray, detrend_mode: DetrendMode = "linear") -> ComplexArray:
    """One-sided FFT of the record ``x`` after ``detrend_mode`` (no window), shared by the envelope functions."""
    return np.asarray(np.fft.rfft(detrend(x, detrend_mode)), dtype=np.complex128)


def complex_envelope(
    spectrum: ComplexArray, n: int, fs_hz: float, band_hz: tuple[float, float], *, oversample: int = 2
) -> tuple[ComplexArray, float]:
    """Complex envelope of the band ``band_hz`` (Hz) of a record of ``n`` samples with FFT ``spectrum``.

    Returns (samples, sample rate in Hz). |samples| is the Hilbert envelope of the band-passed signal
    (unit of x); the rate is fs_hz·m/n with m ≥ ``oversample`` × band lines: 2 (default) keeps
    |samples|² free of aliasing for its spectrum; 1 is enough for statistics of |samples| alone.
    """
    lo, hi = check_band(band_hz, fs_hz, "envelope_band_hz")
    k_lo = max(1, math.ceil(lo * n / fs_hz))
    k_hi = min(spectrum.size - 1, math.floor(hi * n / fs_hz))
    if k_hi - k_lo < 2:
        raise ValueError(
            f"envelope_band_hz={band_hz} holds fewer than 3 spectral lines at this record length "
            f"({n} samples at {fs_hz:g} Hz, {fs_hz / n:.3g} Hz per line); "
            "widen the band or use a longer record"
        )
    width = k_hi - k_lo + 1
    if oversample < 1:
        raise ValueError(f"{oversample=} must be at least 1")
    m = _next_fast_len(oversample * width + 2)
    m = min(m, n)
    shifted = np.zeros(m, dtype=np.complex128)
    shifted[:width] = spectrum[k_lo : k_hi + 1]
    # Analytic signal: positive lines doubled; the inverse over m points is decimated by n/m.
    z = np.fft.ifft(shifted) * (2.0 * m / n)
    return np.asarray(z, dtype=np.complex128), fs_hz * m / n


def squared_envelope_spectrum(
    x: npt.ArrayLike, fs_hz: float, band_hz: tuple[float, float], *, rfft: ComplexArray | None = None
) -> Spectrum:
    """Squared-envelope spectrum (SES) of ``x`` demodulated in ``band_hz`` (Hz); amplitude in (unit of x)².

    The SES (R. B. Randall and J. Antoni, MSSP 25 (2011) 485–520, §3.2) shows a bearing defect as a line
    at its repetition frequency and harmonics. Resolution equals the record's, fs_hz/len(x). Pass the
    record's ``rfft`` (from :func:`rfft_of`) to reuse it.
    """
    arr = validate_signal(x, fs_hz)
    spec = rfft_of(arr) if rfft is None else rfft
    z, fs_env = complex_envelope(spec, arr.size, fs_hz, band_hz)
    sq = z.real * z.real + z.imag * z.imag
    sq -= sq.mean()
    w = window("hann", sq.size)
    amp = np.abs(np.fft.rfft(sq * w)) * (2.0 / float(w.sum()))
    return Spectrum(rfft_freqs(sq.size, fs_env), amp, 1.5)


def spectral_kurtosis(x: npt.ArrayLike, fs_hz: float, nperseg: int) -> tuple[FloatArray, FloatArray]:
    """Spectral kurtosis SK(f) of ``x`` from a Hann STFT of ``nperseg`` samples, 50 % overlap.

    Returns (freqs in Hz, SK): SK = ⟨|X|⁴⟩/⟨|X|²⟩² − 2, which is 0 for stationary Gaussian noise, −1 for
    a steady sine and large where the signal is impulsive (J. Antoni, "The spectral kurtosis: a
    useful tool for characterising non-stationary signals", MSSP 20 (2006) 282–307).
    """
    arr = validate_signal(x, fs_hz)
    if nperseg < 4 or nperseg * 4 > arr.size:
        raise ValueError(f"{nperseg=} must be at least 4 and at most a quarter of the record ({arr.size} samples)")
    frames = np.lib.stride_tricks.sliding_window_view(arr, nperseg)[:: nperseg // 2]
    spec = np.fft.rfft(frames * window("hann", nperseg), axis=1)
    p = spec.real**2 + spec.imag**2
    m2 = p.mean(axis=0)
    m4 = (p * p).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sk = np.where(m2 > 0, m4 / (m2 * m2) - 2.0, 0.0)
    return rfft_freqs(nperseg, fs_hz), np.asarray(sk, dtype=np.float64)


def band_kurtosis(spectrum: ComplexArray, n: int, fs_hz: float, band_hz: tuple[float, float]) -> tuple[float, int]:
    """Spectral kurtosis of one band: E|z|⁴/(E|z|²)² − 2 of its complex envelope z (0 for Gaussian noise).

    Returns (SK, number of independent envelope samples ≈ n·bandwidth/fs_hz, which sets the SK's
    noise: its standard deviation for Gaussian noise is about 2/√samples).
    """
    z, _ = complex_envelope(spectrum, n, fs_hz, band_hz, oversample=1)
    p = z.real * z.real + z.imag * z.imag
    m2 = float(p.mean())
    if m2 <= 0:
        return 0.0, 1
    sk = float(np.einsum("i,i->", p, p) / p.size / (m2 * m2) - 2.0)
    return sk, max(1, int(n * (band_hz[1] - band_hz[0]) / fs_hz))


def rank_envelope_bands(
    x: npt.ArrayLike,
    fs_hz: float,
    *,
    min_bandwidth_hz: float,
    min_low_hz: float = 0.0,
    rfft: ComplexArray | None = None,
    n_bands: int = 3,
) -> list[EnvelopeBand]:
    """The ``n_bands`` most impulsive, mutually distinct demodulation bands (Hz), best first (a kurtogram).

    Bands follow the fast kurtogram's tree (J. Antoni, "Fast computation of the kurtogram for the
    detection of transient faults", MSSP 21 (2007) 108–124): widths Nyquist/2^k and Nyquist/(3·2^k),
    here with half-overlapping centres so a resonance on a band edge is not split. Each band's SK is
    measured on its complex envelope, made with the same FFT band-pass the envelope spectrum uses.
    Only bands at least ``min_bandwidth_hz`` wide (so the envelope holds the defect harmonics and
    sidebands) and starting at or above ``min_low_hz`` (keeps shaft harmonics out) compete. Bands are
    ranked by SK − 3·2/√M (M independent envelope samples), so a narrow band cannot win on estimator
    noise alone. A band whose centre lies inside a better band is skipped. Pass the record's ``rfft``
    (from :func:`rfft_of`) to reuse it.
    """
    arr = validate_signal(x, fs_hz)
    if min_bandwidth_hz <= 0:
        raise ValueError(f"{min_bandwidth_hz=} must be positive (Hz)")
    if n_bands < 1:
        raise ValueError(f"{n_bands=} must be at least 1")
    spec = rfft_of(arr) if rfft is None else rfft
    nyq = fs_hz / 2
    df = fs_hz / arr.size
    widths = sorted({nyq / 2**k for k in range(12)} | {nyq / (3 * 2**k) for k in range(12)}, reverse=True)
    scored: list[tuple[float, float, float, float]] = []  # (criterion, low, high, sk)
    for width in widths:
        if width < min_bandwidth_hz or width < 8 * df:
            continue
        step = width / 2
        low = math.ceil(min_low_hz / step) * step
        while low + width <= nyq + 1e-9:
            high = min(low + width, nyq)
            sk, m = band_kurtosis(spec, arr.size, fs_hz, (low, high))
            scored.append((sk - 6.0 / math.sqrt(m), low, high, sk))
            low += step
    if not scored:
        raise ValueError(
            f"no demodulation band of at least {min_bandwidth_hz:g} Hz fits between {min_low_hz:g} Hz and "
            f"Nyquist ({nyq:g} Hz) for a record of {arr.size} samples; configure envelope_band_hz"
        )
    scored.sort(reverse=True)
    chosen: list[EnvelopeBand] = []
    for _, low, high, sk in scored:
        centre = (low + high) / 2
        if any(b.low_hz <= centre <= b.high_hz for b in chosen):
            continue
        chosen.append(EnvelopeBand(low_hz=low, high_hz=high, spectral_kurtosis=sk, method="spectral_kurtosis"))
        if len(chosen) == n_bands:
            break
    return chosen


def select_envelope_band(
    x: npt.ArrayLike,
    fs_hz: float,
    *,
    min_bandwidth_hz: float,
    min_low_hz: float = 0.0,
    rfft: ComplexArray | None = None,
) -> EnvelopeBand:
    """The most impulsive demodulation band (Hz): the first of :func:`rank_envelope_bands`."""
    return rank_envelope_bands(
        x, fs_hz, min_bandwidth_hz=min_bandwidth_hz, min_low_hz=min_low_hz, rfft=rfft, n_bands=1
    )[0]


def _next_fast_len(n: int) -> int:
    """The smallest integer >= ``n`` with no prime factor above 11 (a length pocketfft transforms fast; the
    same as ``scipy.fft.next_fast_len(n)``)."""
    m = max(n, 1)
    while True:
        rest = m
        for p in (2, 3, 5, 7, 11):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1
