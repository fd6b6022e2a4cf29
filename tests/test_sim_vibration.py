"""The simulated machine vibration carries exactly the physics it claims: checked against analytic answers."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from drivers.sim.vibration import (
    SKF_6205,
    STANDARD_GRAVITY_M_S2,
    BearingGeometry,
    MachineVibration,
    Scenario,
    defect_frequencies,
)

FS_HZ = 12800.0
N = 4 * 12800  # 4 s: 0.25 Hz resolution


def amplitude_spectrum(x: npt.NDArray[np.float64], fs_hz: float) -> tuple[npt.NDArray[np.float64], ...]:
    """Hann-windowed single-sided amplitude spectrum (peak units) and its frequency axis (Hz)."""
    w = np.hanning(len(x))
    spec = 2 * np.abs(np.fft.rfft((x - x.mean()) * w)) / w.sum()
    return np.fft.rfftfreq(len(x), 1 / fs_hz), spec


def envelope_spectrum(
    x: npt.NDArray[np.float64], fs_hz: float, band_hz: tuple[float, float]
) -> tuple[npt.NDArray[np.float64], ...]:
    """Envelope spectrum: ideal band-pass in the frequency domain, analytic signal, |.|, spectrum."""
    spec = np.fft.fft(x)
    f = np.fft.fftfreq(len(x), 1 / fs_hz)
    analytic = np.where((f >= band_hz[0]) & (f <= band_hz[1]), 2 * spec, 0)
    env = np.abs(np.fft.ifft(analytic))
    return amplitude_spectrum(env, fs_hz)


def peak_near(
    freqs: npt.NDArray[np.float64], spec: npt.NDArray[np.float64], f_hz: float, tol_hz: float
) -> float:
    band = (freqs >= f_hz - tol_hz) & (freqs <= f_hz + tol_hz)
    return float(spec[band].max())


def noise_floor(freqs: npt.NDArray[np.float64], spec: npt.NDArray[np.float64], lo: float, hi: float) -> float:
    band = (freqs >= lo) & (freqs <= hi)
    return float(np.median(spec[band]))


def test_defect_frequencies_match_cwru_published_multiples() -> None:
    # CWRU publishes for the SKF 6205: BPFI 5.4152, BPFO 3.5848, FTF 0.39828, rolling element 4.7135 (= 2×BSF)
    f = defect_frequencies(SKF_6205, 1.0)
    assert f.bpfi_hz == pytest.approx(5.4152, abs=2e-4)
    assert f.bpfo_hz == pytest.approx(3.5848, abs=2e-4)
    assert f.ftf_hz == pytest.approx(0.39828, abs=5e-5)  # CWRU rounds to 4 significant digits
    assert 2 * f.bsf_hz == pytest.approx(4.7135, abs=2e-4)
    # BPFO + BPFI = n·fr for any geometry
    g = BearingGeometry(balls=12, ball_diameter_mm=10.0, pitch_diameter_mm=60.0, contact_angle_deg=15.0)
    h = defect_frequencies(g, 25.0)
    assert h.bpfo_hz + h.bpfi_hz == pytest.approx(12 * 25.0)


@pytest.mark.parametrize("shaft_hz", [25.0, 29.95])  # bin-centred and off-bin
def test_unbalance_puts_the_dominant_peak_at_exactly_1x(shaft_hz: float) -> None:
    m = MachineVibration(FS_HZ, shaft_hz, scenario=Scenario.UNBALANCE, seed=3, ramp_s=60.0)
    freqs, spec = amplitude_spectrum(m.capture(120.0, N), FS_HZ)
    low = freqs < 500
    f_peak = freqs[low][np.argmax(spec[low])]
    assert abs(f_peak - shaft_hz) <= 0.25
    # fully developed: 1.0 (healthy) + 7.0 mm/s peak at 1X → acceleration 2π f v / g0
    expected_g = 8.0e-3 * 2 * math.pi * shaft_hz / STANDARD_GRAVITY_M_S2
    if shaft_hz == 25.0:  # bin-centred: Hann amplitude is exact
        assert peak_near(freqs, spec, shaft_hz, 0.3) == pytest.approx(expected_g, rel=0.01)


def test_misalignment_puts_the_dominant_peak_at_exactly_2x() -> None:
    shaft_hz = 24.5
    m = MachineVibration(FS_HZ, shaft_hz, scenario="misalignment", seed=3, ramp_s=60.0, noise_g=0.0)
    freqs, spec = amplitude_spectrum(m.capture(120.0, N), FS_HZ)
    low = freqs < 500
    assert freqs[low][np.argmax(spec[low])] == pytest.approx(2 * shaft_hz, abs=0.01)
    one_x = peak_near(freqs, spec, shaft_hz, 0.3)
    two_x = peak_near(freqs, spec, 2 * shaft_hz, 0.3)
    # velocity 6.3 vs 2.5 mm/s peak; acceleration doubles again with frequency
    assert two_x / one_x == pytest.approx(6.3 / 2.5 * 2, rel=0.01)


def test_looseness_has_harmonics_and_sub_harmonics_above_the_noise() -> None:
    shaft_hz = 25.0
    m = MachineVibration(FS_HZ, shaft_hz, scenario=Scenario.LOOSENESS, seed=5, ramp_s=10.0)
    freqs, spec = amplitude_spectrum(m.capture(60.0, N), FS_HZ)
    floor = noise_floor(freqs, spec, 10, 400)
    for order in [0.5, 1.5, 2.5, *range(1, 11)]:
        assert peak_near(freqs, spec, order * shaft_hz, 0.3) > 20 * floor, order
    healthy = MachineVibration(FS_HZ, shaft_hz, scenario=Scenario.HEALTHY, seed=5)
    hf, hs = amplitude_spectrum(healthy.capture(60.0, N), FS_HZ)
    assert peak_near(hf, hs, 5 * shaft_hz, 0.3) < 5 * noise_floor(hf, hs, 10, 400)


@pytest.mark.parametrize(
    ("scenario", "rate"),
    [(Scenario.OUTER_RACE, "bpfo"), (Scenario.INNER_RACE, "bpfi"), (Scenario.BALL, "2bsf")],
)
def test_bearing_impacts_repeat_at_the_computed_defect_frequency(scenario: Scenario, rate: str) -> None:
    shaft_hz = 29.95
    m = MachineVibration(FS_HZ, shaft_hz, scenario=scenario, seed=11, ramp_s=30.0)
    x = m.capture(60.0, N)
    f = defect_frequencies(SKF_6205, shaft_hz)
    expected_hz = {"bpfo": f.bpfo_hz, "bpfi": f.bpfi_hz, "2bsf": 2 * f.bsf_hz}[rate]
    ef, es = envelope_spectrum(x, FS_HZ, (m.resonance_hz - 800, m.resonance_hz + 800))
    search = (ef > 5) & (ef < 400)
    f_peak = ef[search][np.argmax(es[search])]
    if scenario is Scenario.BALL:
        # FTF modulation and the alternating contacts spread energy; the 2×BSF line must still stand out
        assert peak_near(ef, es, expected_hz, 0.02 * expected_hz) > 5 * noise_floor(ef, es, 5, 400)
    else:
        assert abs(f_peak - expected_hz) <= 0.02 * expected_hz  # slip tolerance (1–2 %)
    if scenario is Scenario.INNER_RACE:
        # load-zone modulation at 1X: sidebands at BPFI ± fr
        floor = noise_floor(ef, es, 5, 400)
        assert peak_near(ef, es, expected_hz - shaft_hz, 1.5) > 5 * floor
        assert peak_near(ef, es, expected_hz + shaft_hz, 1.5) > 5 * floor
    # impulsive: kurtosis well above a Gaussian's 3
    z = (x - x.mean()) / x.std()
    assert float(np.mean(z**4)) > 4.0


def test_healthy_machine_has_no_bearing_lines_and_gaussian_kurtosis() -> None:
    shaft_hz = 29.95
    m = MachineVibration(FS_HZ, shaft_hz, scenario=Scenario.HEALTHY, seed=2)
    x = m.capture(600.0, N)
    f = defect_frequencies(SKF_6205, shaft_hz)
    ef, es = envelope_spectrum(x, FS_HZ, (m.resonance_hz - 800, m.resonance_hz + 800))
    floor = noise_floor(ef, es, 5, 400)
    for f_hz in (f.bpfo_hz, f.bpfi_hz, 2 * f.bsf_hz):
        assert peak_near(ef, es, f_hz, 0.02 * f_hz) < 5 * floor
    z = (x - x.mean()) / x.std()
    assert float(np.mean(z**4)) == pytest.approx(3.0, abs=0.5)


def test_fault_grows_over_the_ramp() -> None:
    m = MachineVibration(FS_HZ, 25.0, scenario=Scenario.OUTER_RACE, seed=4, ramp_s=300.0, noise_g=0.0)
    early = float(np.std(m.capture(0.0, N)))
    late = float(np.std(m.capture(600.0, N)))
    assert m.severity(0.0) == pytest.approx(0.1)
    assert m.severity(150.0) == pytest.approx(0.55)
    assert m.severity(1e6) == 1.0
    assert late > 5 * early


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    a = MachineVibration(FS_HZ, 25.0, scenario=Scenario.INNER_RACE, seed=42).capture(10.0, 4096)
    b = MachineVibration(FS_HZ, 25.0, scenario=Scenario.INNER_RACE, seed=42).capture(10.0, 4096)
    c = MachineVibration(FS_HZ, 25.0, scenario=Scenario.INNER_RACE, seed=43).capture(10.0, 4096)
    d = MachineVibration(FS_HZ, 25.0, scenario=Scenario.INNER_RACE, seed=42).capture(11.0, 4096)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, d)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fs_hz": 0.0}, "fs_hz"),
        ({"shaft_hz": 2000.0}, "shaft_hz"),
        ({"scenario": "broken"}, "unknown scenario 'broken'; use one of: healthy"),
        ({"resonance_hz": 7000.0}, "Nyquist"),
        ({"slip": 0.5}, "slip"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"fs_hz": FS_HZ, "shaft_hz": 25.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MachineVibration(**args)  # type: ignore[arg-type]


def test_bad_bearing_geometry_is_named() -> None:
    with pytest.raises(ValueError, match="ball_diameter_mm"):
        BearingGeometry(balls=9, ball_diameter_mm=50.0, pitch_diameter_mm=39.0)


def test_capture_follows_a_shaft_speed_override() -> None:
    m = MachineVibration(FS_HZ, 25.0, scenario=Scenario.UNBALANCE, seed=6, ramp_s=1.0, noise_g=0.0)
    freqs, spec = amplitude_spectrum(m.capture(10.0, N, shaft_hz=24.5), FS_HZ)
    assert freqs[np.argmax(spec[freqs < 500])] == pytest.approx(24.5, abs=0.01)
    with pytest.raises(ValueError, match="shaft_hz=900"):
        m.capture(10.0, N, shaft_hz=900.0)
    with pytest.raises(ValueError, match="n_samples=0"):
        m.capture(10.0, 0)


@pytest.mark.parametrize("fs_hz", [5120.0, 12800.0])
def test_modulated_impacts_add_no_line_at_1x(fs_hz: float) -> None:
    # The ringing integrates to zero (the housing ends at rest), so load-zone modulation of the
    # inner-race impacts at 1X must not fake an unbalance line at 1X in the raw spectrum.
    shaft_hz, n = 25.0, int(4 * fs_hz)
    inner = MachineVibration(fs_hz, shaft_hz, scenario=Scenario.INNER_RACE, seed=8, ramp_s=1.0, noise_g=0.0)
    healthy = MachineVibration(fs_hz, shaft_hz, scenario=Scenario.HEALTHY, seed=8, noise_g=0.0)
    fi, si = amplitude_spectrum(inner.capture(60.0, n), fs_hz)
    fh, sh = amplitude_spectrum(healthy.capture(60.0, n), fs_hz)
    one_x_healthy = peak_near(fh, sh, shaft_hz, 0.3)
    assert peak_near(fi, si, shaft_hz, 0.3) == pytest.approx(one_x_healthy, rel=0.1)
    assert abs(float(np.sum(inner._ringing))) < 1e-9
