"""Spectrum, velocity, ISO zones and time features against analytic answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.features import time_features
from diagnostics.iso20816 import ISO20816_3_BOUNDARIES_MM_S, ZoneLimits, iso20816_3_limits, iso_zone
from diagnostics.spectrum import (
    amplitude_spectrum,
    band_rms,
    detrend,
    reduced_spectrum,
    top_peaks,
    welch_amplitude_spectrum,
)
from diagnostics.velocity import STANDARD_GRAVITY_M_S2, velocity_from_acceleration, velocity_waveform

FS = 12_800.0
N = 16_384


def sine(freq_hz: float, amp: float = 1.0, n: int = N, fs: float = FS, phase: float = 0.3) -> np.ndarray:
    t = np.arange(n) / fs
    return amp * np.sin(2 * np.pi * freq_hz * t + phase)


@pytest.mark.parametrize("offset_bins", [0.0, 0.25, 0.5, 0.73])
def test_flattop_reads_one_g_peak_on_and_off_bin(offset_bins: float) -> None:
    df = FS / N
    f0 = 100 * df + offset_bins * df
    spec = amplitude_spectrum(sine(f0), FS, window_name="flattop")
    k = int(np.argmax(spec.amplitude))
    assert abs(spec.freqs_hz[k] - f0) <= df
    assert spec.amplitude[k] == pytest.approx(1.0, rel=0.01)


def test_hann_reads_exact_on_bin_and_scallops_off_bin() -> None:
    df = FS / N
    on = amplitude_spectrum(sine(200 * df, 2.5), FS, window_name="hann")
    assert on.amplitude.max() == pytest.approx(2.5, rel=1e-6)
    off = amplitude_spectrum(sine(200.5 * df, 2.5), FS, window_name="hann")
    # Hann's worst-case scalloping loss is 1.42 dB (Harris 1978): 2.5 g reads about 2.12 g.
    assert off.amplitude.max() == pytest.approx(2.5 * 10 ** (-1.42 / 20), rel=0.01)


def test_rect_window_and_dc_and_trend_removed() -> None:
    x = sine(400.0, 0.5) + 3.0 + np.linspace(0, 5, N)
    spec = amplitude_spectrum(x, FS, window_name="flattop", detrend_mode="linear")
    assert spec.amplitude[0] < 1e-3
    assert spec.amplitude.max() == pytest.approx(0.5, rel=0.01)
    assert np.allclose(detrend(np.linspace(1, 2, 100), "linear"), 0.0, atol=1e-12)
    assert np.allclose(detrend(np.full(10, 4.0), "constant"), 0.0)


def test_welch_keeps_sine_amplitude_and_averages_noise() -> None:
    rng = np.random.default_rng(3)
    x = sine(1000.0, 1.0, n=8 * N) + rng.normal(0, 1.0, 8 * N)
    spec = welch_amplitude_spectrum(x, FS, nperseg=4096, overlap=0.5, window_name="flattop")
    assert spec.amplitude.max() == pytest.approx(1.0, rel=0.05)
    assert spec.freqs_hz[np.argmax(spec.amplitude)] == pytest.approx(1000.0, abs=FS / 4096)
    # Noise RMS from the band: white noise of σ = 1 reads RMS ≈ 1 over the whole band.
    noise = welch_amplitude_spectrum(rng.normal(0, 1.0, 8 * N), FS, nperseg=2048, window_name="hann")
    assert band_rms(noise, 0.0, FS / 2 + 1) == pytest.approx(1.0, rel=0.05)


def test_top_peaks_and_reduced_spectrum() -> None:
    x = sine(500.0, 1.0) + sine(1500.0, 0.5) + sine(3000.0, 0.25)
    spec = amplitude_spectrum(x, FS, window_name="flattop")
    peaks = top_peaks(spec, 3)
    assert [round(p.freq_hz, -1) for p in peaks] == [500.0, 1500.0, 3000.0]
    assert peaks[0].freq_hz == pytest.approx(500.0, abs=0.2)
    bands = reduced_spectrum(spec, 16, 6400.0)
    assert len(bands) == 16
    assert bands[1] == pytest.approx(1.0, rel=0.01)  # 400–800 Hz band holds 500 Hz
    assert bands[3] == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"x": np.zeros((4, 4)), "fs_hz": FS}, "1-D"),
        ({"x": np.zeros(4), "fs_hz": FS}, "at least"),
        ({"x": np.zeros(100), "fs_hz": 0.0}, "fs_hz"),
        ({"x": np.r_[np.zeros(99), np.nan], "fs_hz": FS}, "NaN"),
    ],
)
def test_bad_input_is_named(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        amplitude_spectrum(bad["x"], bad["fs_hz"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("freq_hz", "units"), [(50.0, "g"), (159.155, "g"), (733.3, "m/s2")])
def test_velocity_of_a_known_sine(freq_hz: float, units: str) -> None:
    a_peak = 1.0
    x = sine(freq_hz, a_peak)
    a_m_s2 = a_peak * (STANDARD_GRAVITY_M_S2 if units == "g" else 1.0)
    expected_rms_mm_s = a_m_s2 / (2 * math.pi * freq_hz) / math.sqrt(2) * 1000
    res = velocity_from_acceleration(x, FS, units=units)
    assert res.rms_mm_s == pytest.approx(expected_rms_mm_s, rel=0.01)
    v = velocity_waveform(x, FS, units=units)
    assert float(np.sqrt(np.mean(v[2000:-2000] ** 2))) == pytest.approx(expected_rms_mm_s, rel=0.02)


def test_velocity_band_excludes_out_of_band_lines() -> None:
    x = sine(5.0, 1.0) + sine(2000.0, 5.0)  # both outside 10–1000 Hz
    assert velocity_from_acceleration(x, FS).rms_mm_s < 0.05 * 9806.65 / (2 * math.pi * 5.0)
    with pytest.raises(ValueError, match="units"):
        velocity_from_acceleration(x, FS, units="in/s")
    with pytest.raises(ValueError, match="band_hz"):
        velocity_from_acceleration(x, FS, band_hz=(100.0, 10.0))


def test_iso_zones_at_and_around_every_boundary() -> None:
    for (group, foundation), (ab, bc, cd) in ISO20816_3_BOUNDARIES_MM_S.items():
        lim = iso20816_3_limits(group, foundation)
        assert iso_zone(0.0, lim) == "A"
        assert iso_zone(ab * 0.999, lim) == "A"
        assert iso_zone(ab, lim) == "B"
        assert iso_zone(bc * 0.999, lim) == "B"
        assert iso_zone(bc, lim) == "C"
        assert iso_zone(cd * 0.999, lim) == "C"
        assert iso_zone(cd, lim) == "D"
    assert iso20816_3_limits(1, "rigid") == ZoneLimits(2.3, 4.5, 7.1)
    assert iso20816_3_limits(1, "flexible") == ZoneLimits(3.5, 7.1, 11.0)
    assert iso20816_3_limits(2, "rigid") == ZoneLimits(1.4, 2.8, 4.5)
    assert iso20816_3_limits(2, "flexible") == ZoneLimits(2.3, 4.5, 7.1)
    with pytest.raises(ValueError, match="group"):
        iso20816_3_limits(3, "rigid")
    with pytest.raises(ValueError, match="foundation"):
        iso20816_3_limits(1, "soft")
    with pytest.raises(ValueError, match="A/B < B/C"):
        ZoneLimits(3.0, 2.0, 4.0)


def test_time_features_of_sine_square_and_noise() -> None:
    f = time_features(sine(100.0, 2.0, n=128 * 100, fs=12_800.0) + 7.0)
    assert f.rms == pytest.approx(2 / math.sqrt(2), rel=1e-3)
    assert f.peak == pytest.approx(2.0, rel=1e-3)
    assert f.peak_to_peak == pytest.approx(4.0, rel=1e-3)
    assert f.crest_factor == pytest.approx(math.sqrt(2), rel=1e-3)
    assert f.kurtosis == pytest.approx(1.5, rel=1e-3)
    assert f.skewness == pytest.approx(0.0, abs=1e-3)
    g = time_features(np.random.default_rng(1).normal(0, 1, 200_000))
    assert g.kurtosis == pytest.approx(3.0, abs=0.05)
    exp = time_features(np.random.default_rng(1).exponential(1.0, 200_000))
    assert exp.skewness == pytest.approx(2.0, abs=0.1)  # skewness of an exponential is 2
    flat = time_features(np.ones(10))
    assert flat.rms == 0.0 and flat.crest_factor == 0.0


def test_iso_band_follows_machine_speed() -> None:
    from diagnostics.velocity import iso_velocity_band
    from diagnostics.vibration import analyze_waveform

    assert iso_velocity_band(None) == (10.0, 1000.0)
    assert iso_velocity_band(25.0) == (10.0, 1000.0)
    assert iso_velocity_band(10.0) == (2.0, 1000.0)  # 600 r/min and below: 2–1000 Hz
    x = sine(5.0, 0.05, n=8 * N)  # a 300 r/min machine's 1X: outside 10–1000 Hz, inside 2–1000 Hz
    slow = analyze_waveform(x, FS, speed_hz=5.0)
    expected = 0.05 * STANDARD_GRAVITY_M_S2 / (2 * math.pi * 5.0) / math.sqrt(2) * 1000
    assert slow.velocity_band_hz == (2.0, 1000.0)
    assert slow.velocity_rms_mm_s == pytest.approx(expected, rel=0.02)
    assert analyze_waveform(x, FS, speed_hz=25.0).velocity_rms_mm_s < 0.05 * expected


@settings(max_examples=60, deadline=None)
@given(
    amp=st.floats(min_value=1e-3, max_value=100.0),
    freq_hz=st.floats(min_value=20.0, max_value=5000.0),
    phase=st.floats(min_value=0.0, max_value=2 * math.pi),
)
def test_flattop_amplitude_for_any_sine(amp: float, freq_hz: float, phase: float) -> None:
    spec = amplitude_spectrum(sine(freq_hz, amp, phase=phase), FS, window_name="flattop")
    k = int(np.argmax(spec.amplitude))
    assert spec.amplitude[k] == pytest.approx(amp, rel=0.01)
    assert abs(spec.freqs_hz[k] - freq_hz) <= 2 * FS / N


@settings(max_examples=40, deadline=None)
@given(amp=st.floats(min_value=0.01, max_value=50.0), freq_hz=st.floats(min_value=15.0, max_value=900.0))
def test_velocity_rms_for_any_in_band_sine(amp: float, freq_hz: float) -> None:
    expected = amp * STANDARD_GRAVITY_M_S2 / (2 * math.pi * freq_hz) / math.sqrt(2) * 1000
    assert velocity_from_acceleration(sine(freq_hz, amp), FS).rms_mm_s == pytest.approx(expected, rel=0.015)


def test_velocity_sensor_input_is_band_limited_not_integrated() -> None:
    from diagnostics.vibration import analyze_waveform

    v = sine(80.0, 10.0) + sine(3.0, 50.0)  # 10 mm/s peak at 80 Hz, plus 3 Hz drift outside the band
    res = analyze_waveform(v, FS, units="mm/s")
    assert res.velocity_rms_mm_s == pytest.approx(10.0 / math.sqrt(2), rel=0.01)
    assert res.units == "mm/s"
    with pytest.raises(ValueError, match="velocity sensor"):
        analyze_waveform(v, FS, units="in/s")
