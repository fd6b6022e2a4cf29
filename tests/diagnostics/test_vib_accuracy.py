"""Accuracy against analytic signals where the easy cases hide errors: a 1X line between two FFT bins (the
Hann window's scalloping loss), short records (too few lines to search for the speed, and coarse lines that
make integrated velocity read high)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diagnostics.vibration import analyze_waveform

G = 9.80665  # m/s² per g (ISO 80000-3)


def velocity_sines_in_g(fs_hz: float, n: int, lines: list[tuple[float, float]]) -> np.ndarray:
    """Acceleration (g) of velocity sines given as (frequency Hz, velocity peak mm/s): a = 2 pi f v."""
    t = np.arange(n) / fs_hz
    acc = sum(2 * math.pi * f * v / 1000.0 * np.sin(2 * math.pi * f * t) for f, v in lines)
    return np.asarray(acc) / G


@pytest.mark.parametrize("offset_bins", [0.0, 0.1, 0.25, 0.4, 0.5])
def test_a_1x_line_between_bins_keeps_its_amplitude(offset_bins: float) -> None:
    fs, n = 12_800.0, 16_384
    df = fs / n
    f1 = (32 + offset_bins) * df  # ~25 Hz, off the bin grid by offset_bins
    x = velocity_sines_in_g(fs, n, [(f1, 5.0), (2 * f1, 2.75)])  # 1X 5 mm/s pk, 2X 2.75: 2X/1X = 0.55
    result = analyze_waveform(x, fs, units="g", speed_hz=f1)
    amps = {o.order: o.amplitude for o in result.orders}
    assert amps[1.0] == pytest.approx(5.0, rel=0.01)  # was 4.31 (-14 %) at half a bin
    assert amps[2.0] == pytest.approx(2.75, rel=0.01)
    assert result.shaft["misalignment"].detected  # the ratio, and so the diagnosis, no longer hinge on the grid


def test_a_short_capture_with_a_nominal_speed_still_gives_velocity_and_zone() -> None:
    fs, n, f1 = 12_800.0, 4_096, 24.7  # 0.32 s: too few lines around 24.7 Hz to search for the speed
    x = velocity_sines_in_g(fs, n, [(f1, 10.0 * math.sqrt(2))])  # 10 mm/s RMS
    result = analyze_waveform(x, fs, units="g", nominal_speed_hz=f1)
    assert result.running_speed is not None and result.running_speed.source == "nominal"
    assert any("running speed not searched" in note for note in result.notes)
    assert result.velocity_rms_mm_s == pytest.approx(10.0, rel=0.2) and result.iso_zone in ("C", "D")


@pytest.mark.parametrize("fs, n, warned", [(12_800.0, 1_024, True), (25_600.0, 2_048, True),
                                           (12_800.0, 2_048, True), (12_800.0, 16_384, False)])
def test_lines_too_coarse_for_the_band_edge_are_flagged(fs: float, n: int, warned: bool) -> None:
    x = velocity_sines_in_g(fs, n, [(24.7, 10.0 * math.sqrt(2))])
    result = analyze_waveform(x, fs, units="g")
    notes = [note for note in result.notes if "coarse for the 10 Hz band edge" in note]
    assert bool(notes) is warned
    if warned:  # it does read high there, which is why the note is there
        assert result.velocity_rms_mm_s > 10.2 and str(math.ceil(4 * fs / 10)) in notes[0]
    else:
        assert result.velocity_rms_mm_s == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize(("low_g", "low_hz"), [(1.0, 5.0), (1.0, 2.0), (0.5, 4.0)])
def test_strong_content_below_the_band_stays_out_of_the_velocity(low_g: float, low_hz: float) -> None:
    """ISO 20816-3 measures 10-1000 Hz: a big low-frequency component (sensor drift, a sway) must not leak
    into the lowest in-band lines, which integration magnifies (1 g at 5 Hz read +87 % with a Hann window)."""
    fs, n = 25600.0, 16384
    t = np.arange(n) / fs
    x = 0.02 * np.sin(2 * math.pi * 100.0 * t + 0.3) + low_g * np.sin(2 * math.pi * low_hz * t + 1.1)
    expected = 0.02 * 9.80665e3 / (2 * math.pi * 100.0) / math.sqrt(2)  # the 100 Hz tone alone, mm/s RMS
    result = analyze_waveform(x, fs, units="g")
    assert result.velocity_rms_mm_s == pytest.approx(expected, rel=0.02)
    assert result.iso_zone == "A"


def test_the_blackman_harris_window_is_scipys() -> None:
    scipy_windows = pytest.importorskip("scipy.signal.windows")
    from diagnostics.spectrum import window

    for n in (8, 1000, 4096):
        np.testing.assert_allclose(window("blackmanharris", n), scipy_windows.blackmanharris(n, sym=False),
                                   rtol=0, atol=1e-12)
