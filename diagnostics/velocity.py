"""Acceleration to velocity by integration in the frequency domain, band-limited as ISO 20816 asks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from diagnostics.spectrum import Spectrum, detrend, enbw_bins, rfft_freqs, validate_signal, window
from diagnostics.waveform_units import STANDARD_GRAVITY_M_S2

FloatArray = npt.NDArray[np.float64]
AccelUnit = Literal["g", "m/s2"]


#: Default velocity band in Hz. ISO 20816-3:2022 (measurement procedures) measures broadband
#: velocity from 10 Hz to 1 000 Hz for machines running above 600 r/min (2 Hz to 1 000 Hz below 600 r/min).
ISO_VELOCITY_BAND_HZ: tuple[float, float] = (10.0, 1000.0)
#: Band for machines at or below 600 r/min (10 Hz shaft speed), same clause of ISO 20816-3.
ISO_VELOCITY_BAND_LOW_SPEED_HZ: tuple[float, float] = (2.0, 1000.0)
ISO_LOW_SPEED_LIMIT_HZ = 10.0


def iso_velocity_band(speed_hz: float | None) -> tuple[float, float]:
    """ISO 20816-3 velocity band (Hz) for a shaft at ``speed_hz`` (Hz): 2–1000 Hz up to 600 r/min, else 10–1000 Hz.

    Unknown speed (None) gets the 10–1000 Hz band of the common case.
    """
    if speed_hz is not None and speed_hz <= ISO_LOW_SPEED_LIMIT_HZ:
        return ISO_VELOCITY_BAND_LOW_SPEED_HZ
    return ISO_VELOCITY_BAND_HZ


#: Units a vibration waveform may be in: acceleration (integrated to velocity) or velocity itself.
VELOCITY_UNITS: tuple[str, ...] = ("mm/s",)


def check_units(units: str) -> str:
    """Validate a waveform unit: 'g' or 'm/s2' (acceleration) or 'mm/s' (velocity sensor); return it."""
    if units in VELOCITY_UNITS:
        return units
    try:
        accel_scale_to_m_s2(units)
    except ValueError:
        raise ValueError(
            f"units={units!r} is not supported; use 'g' or 'm/s2' (accelerometer) or 'mm/s' (velocity sensor)"
        ) from None
    return units


def accel_scale_to_m_s2(units: str) -> float:
    """Factor that converts acceleration in ``units`` ('g' or 'm/s2') to m/s²."""
    if units == "g":
        return STANDARD_GRAVITY_M_S2
    if units in ("m/s2", "m/s^2", "m/s²"):
        return 1.0
    raise ValueError(f"units={units!r} is not an acceleration unit; use 'g' or 'm/s2'")


def check_band(band_hz: tuple[float, float], fs_hz: float, name: str = "band_hz") -> tuple[float, float]:
    """Validate a (low, high) band in Hz against the Nyquist frequency fs_hz/2; return it as floats."""
    lo, hi = float(band_hz[0]), float(band_hz[1])
    if not (0.0 <= lo < hi):
        raise ValueError(f"{name}={band_hz} must satisfy 0 <= low < high (Hz)")
    if lo >= fs_hz / 2:
        raise ValueError(f"{name}={band_hz} starts above Nyquist ({fs_hz / 2:g} Hz for fs_hz={fs_hz:g})")
    return lo, min(hi, fs_hz / 2)


@dataclass(frozen=True, slots=True)
class VelocityResult:
    """Velocity from acceleration: ``rms_mm_s`` (mm/s RMS in ``band_hz``) and its spectrum (mm/s peak)."""

    rms_mm_s: float
    band_hz: tuple[float, float]
    spectrum: Spectrum


def velocity_from_acceleration(
    x: npt.ArrayLike,
    fs_hz: float,
    *,
    units: str = "g",
    band_hz: tuple[float, float] = ISO_VELOCITY_BAND_HZ,
) -> VelocityResult:
    """Velocity RMS (mm/s) and spectrum (mm/s peak) of acceleration ``x`` (g or m/s²) sampled at ``fs_hz`` Hz.

    The detrended signal is Hann-windowed and transformed; each line is divided by 2πf (integration)
    and lines outside ``band_hz`` (Hz, default 10–1000 Hz per ISO 20816-3) are dropped. The RMS comes
    from Parseval's theorem corrected for the window's noise bandwidth, so it is right for tones and
    for broadband vibration. A sine of acceleration a (m/s² peak) at f Hz gives a/(2πf)/√2 m/s RMS.
    """
    arr = detrend(validate_signal(x, fs_hz), "linear")
    n = arr.size
    w = window("hann", n)
    acc_peak = np.abs(np.fft.rfft(arr * w)) * (2.0 / float(w.sum()))
    acc = Spectrum(rfft_freqs(n, fs_hz), acc_peak, enbw_bins("hann", n))
    return velocity_from_spectrum(acc, fs_hz, units=units, band_hz=band_hz)


def velocity_from_spectrum(
    acceleration: Spectrum,
    fs_hz: float,
    *,
    units: str = "g",
    band_hz: tuple[float, float] = ISO_VELOCITY_BAND_HZ,
) -> VelocityResult:
    """Velocity RMS (mm/s) and spectrum (mm/s peak) from a peak ``acceleration`` spectrum (g or m/s² peak).

    Same integration as :func:`velocity_from_acceleration`, for callers that already have the
    spectrum; the RMS uses the spectrum's noise bandwidth (``enbw_bins``). ``fs_hz`` is in Hz. With
    ``units`` 'mm/s' the spectrum already is velocity (a velocity sensor): it is only band-limited.
    """
    lo, hi = check_band(band_hz, fs_hz)
    freqs = acceleration.freqs_hz
    vel = np.zeros_like(acceleration.amplitude)
    sel = (freqs >= lo) & (freqs <= hi) & (freqs > 0)
    if check_units(units) in VELOCITY_UNITS:
        vel[sel] = acceleration.amplitude[sel]
    else:
        scale = accel_scale_to_m_s2(units) * 1000.0  # → mm/s² so the result is mm/s
        vel[sel] = acceleration.amplitude[sel] * scale / (2.0 * math.pi * freqs[sel])
    rms = float(np.sqrt(np.sum(vel[sel] ** 2) / 2.0 / acceleration.enbw_bins))
    return VelocityResult(rms_mm_s=rms, band_hz=(lo, hi), spectrum=Spectrum(freqs, vel, acceleration.enbw_bins))


def velocity_waveform(
    x: npt.ArrayLike,
    fs_hz: float,
    *,
    units: str = "g",
    band_hz: tuple[float, float] = ISO_VELOCITY_BAND_HZ,
) -> FloatArray:
    """Velocity time waveform (mm/s) of acceleration ``x`` (g or m/s²), integrated in ``band_hz`` (Hz).

    Integration is done on the FFT of the whole (detrended, unwindowed) record, so the result is
    periodic over the record; use records many periods of the lowest band frequency long.
    """
    arr = detrend(validate_signal(x, fs_hz), "linear")
    lo, hi = check_band(band_hz, fs_hz)
    spec = np.fft.rfft(arr) * (accel_scale_to_m_s2(units) * 1000.0)
    freqs = rfft_freqs(arr.size, fs_hz)
    sel = (freqs >= lo) & (freqs <= hi) & (freqs > 0)
    out = np.zeros_like(spec)
    out[sel] = spec[sel] / (2j * math.pi * freqs[sel])
    return np.asarray(np.fft.irfft(out, n=arr.size), dtype=np.float64)
