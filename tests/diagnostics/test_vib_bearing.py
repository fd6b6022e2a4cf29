"""Bearing defect frequencies and envelope detection on simulated signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.bearing_detect import DefectFamily, consistent_ratio_range, detect_bearing_defects, explain_lines
from diagnostics.bearing_geometry import BEARINGS, BearingGeometry, DefectOrders, bearing_by_name, defect_orders
from diagnostics.envelope import select_envelope_band, spectral_kurtosis, squared_envelope_spectrum
from diagnostics.line_stats import Clutter, NoiseFloor, line_log10_chance
from diagnostics.vibration import analyze_waveform
from drivers.sim.vibration import SKF_6205 as SIM_6205
from drivers.sim.vibration import MachineVibration, Scenario

FS = 12_800.0
N = 16_384 * 2
SHAFT_HZ = 29.95


def test_skf_6205_orders_match_cwru_published_values() -> None:
    # CWRU Bearing Data Center: BPFI 5.4152, BPFO 3.5848, FTF 0.39828, rolling element 4.7135 (= 2×BSF).
    o = defect_orders(bearing_by_name("SKF-6205"))
    assert o.bpfi == pytest.approx(5.4152, abs=1e-4)
    assert o.bpfo == pytest.approx(3.5848, abs=1e-4)
    assert o.ftf == pytest.approx(0.39828, abs=5e-5)
    assert 2 * o.bsf == pytest.approx(4.7135, abs=1e-4)
    fe = defect_orders(bearing_by_name("skf 6203"))  # CWRU fan end: 3.0530 / 4.9469 / 0.3817 / 3.9874
    assert (fe.bpfo, fe.bpfi, fe.ftf, 2 * fe.bsf) == pytest.approx((3.0530, 4.9469, 0.3817, 3.9874), abs=5e-4)
    ims = defect_orders(BEARINGS["REXNORD-ZA2115"])  # IMS: BPFO 236.4 Hz, BPFI 296.9 Hz at 2000 rpm
    assert ims.bpfo * 2000 / 60 == pytest.approx(236.4, abs=0.2)
    assert ims.bpfi * 2000 / 60 == pytest.approx(296.9, abs=0.2)


def test_orders_identities_and_validation() -> None:
    g = BearingGeometry(12, 10.0, 50.0, 15.0)
    o = defect_orders(g)
    assert o.bpfo + o.bpfi == pytest.approx(12.0)  # n/2 (1 − r) + n/2 (1 + r) = n
    assert o.bpfo == pytest.approx(12 * o.ftf)  # BPFO = n × FTF
    assert o.at_speed(10.0)["bpfi"] == pytest.approx(10 * o.bpfi)
    with pytest.raises(ValueError, match="balls"):
        BearingGeometry(2, 1.0, 10.0)
    with pytest.raises(ValueError, match="pitch_diameter_mm"):
        BearingGeometry(9, 10.0, 5.0)
    with pytest.raises(ValueError, match=r"unknown bearing 'NOPE'.*SKF-6205"):
        bearing_by_name("NOPE")
    with pytest.raises(ValueError, match="bpfo"):
        DefectOrders(-1.0, 5.0, 2.0, 0.4)


def test_spectral_kurtosis_of_noise_is_zero_and_of_impulses_high() -> None:
    rng = np.random.default_rng(0)
    _, sk = spectral_kurtosis(rng.normal(size=N), FS, 64)
    assert np.median(sk[2:-2]) == pytest.approx(0.0, abs=0.1)
    # Realistic noise: away from the resonance the bins must be noise-dominated for SK to point at it.
    sim = MachineVibration(FS, SHAFT_HZ, scenario=Scenario.OUTER_RACE, seed=1, noise_g=0.5, ramp_s=1.0)
    x = sim.capture(10.0, N)
    band = select_envelope_band(x, FS, min_bandwidth_hz=600.0, min_low_hz=600.0)
    assert band.low_hz < sim.resonance_hz < band.high_hz  # the band holds the ringing resonance
    assert band.spectral_kurtosis > 1.0


def _sim(scenario: Scenario, seed: int, noise_g: float = 0.05) -> tuple[MachineVibration, np.ndarray]:
    sim = MachineVibration(FS, SHAFT_HZ, scenario=scenario, seed=seed, noise_g=noise_g, ramp_s=1.0)
    return sim, sim.capture(10.0, N)


@pytest.mark.parametrize("speed_error", [-0.02, 0.0, 0.02])
@pytest.mark.parametrize(
    ("scenario", "expected"), [(Scenario.OUTER_RACE, "bearing_outer_race"), (Scenario.INNER_RACE, "bearing_inner_race")]
)
def test_simulated_race_fault_found_with_speed_error(scenario: Scenario, expected: str, speed_error: float) -> None:
    sim, x = _sim(scenario, seed=11)
    res = analyze_waveform(x, FS, speed_hz=SHAFT_HZ * (1 + speed_error), bearing=SIM_6205)
    bearing_dx = [d for d in res.diagnosis if d.startswith("bearing_")]
    assert bearing_dx == [expected]
    name = expected.removeprefix("bearing_")
    true_hz = sim.defect_frequencies().bpfo_hz if name == "outer_race" else sim.defect_frequencies().bpfi_hz
    # At ±2 % the true line sits on the edge of the ±2 % slip window; the match may stop just inside it.
    assert res.bearing[name].frequency_hz == pytest.approx(true_hz, rel=0.003 if speed_error == 0 else 0.006)
    assert 1 in res.bearing[name].harmonics_found


@pytest.mark.parametrize("nominal_error", [-0.02, 0.02])
def test_simulated_fault_found_with_estimated_speed(nominal_error: float) -> None:
    _, x = _sim(Scenario.INNER_RACE, seed=5)
    res = analyze_waveform(x, FS, nominal_speed_hz=SHAFT_HZ * (1 + nominal_error), bearing=SIM_6205)
    assert res.running_speed is not None and res.running_speed.source == "estimated"
    assert res.running_speed.hz == pytest.approx(SHAFT_HZ, rel=0.002)
    assert [d for d in res.diagnosis if d.startswith("bearing_")] == ["bearing_inner_race"]
    assert res.bearing["inner_race"].sidebands_found >= 1  # ±1X from the load zone


def test_simulated_ball_fault_is_not_called_a_race_fault() -> None:
    _, x = _sim(Scenario.BALL, seed=3)
    res = analyze_waveform(x, FS, speed_hz=SHAFT_HZ, bearing=SIM_6205)
    assert "bearing_outer_race" not in res.diagnosis and "bearing_inner_race" not in res.diagnosis
    assert "bearing_ball" in res.diagnosis


@pytest.mark.parametrize("seed", range(6))
def test_healthy_machine_has_no_bearing_fault(seed: int) -> None:
    _, x = _sim(Scenario.HEALTHY, seed=seed, noise_g=0.1)
    res = analyze_waveform(x, FS, speed_hz=SHAFT_HZ, bearing=SIM_6205)
    assert res.diagnosis == []
    assert not any(d.detected for d in res.bearing.values())


@pytest.mark.parametrize("seed", range(4))
def test_pure_noise_gives_no_detection_in_any_family(seed: int) -> None:
    x = np.random.default_rng(100 + seed).normal(0, 1.0, N)
    ses = squared_envelope_spectrum(x, FS, (2000.0, 4000.0))
    fams = [DefectFamily("a", 107.3), DefectFamily("b", 162.2, SHAFT_HZ), DefectFamily("c", 141.2, 11.9)]
    found = detect_bearing_defects(ses, SHAFT_HZ, fams)
    assert not any(d.detected for d in found.values())


def test_configured_band_and_missing_speed() -> None:
    _, x = _sim(Scenario.OUTER_RACE, seed=2)
    res = analyze_waveform(x, FS, speed_hz=SHAFT_HZ, bearing=SIM_6205, envelope_band_hz=(2400.0, 3600.0))
    assert res.envelope_band is not None and res.envelope_band.method == "configured"
    assert res.diagnosis == ["bearing_outer_race"]
    res2 = analyze_waveform(x, FS, bearing=SIM_6205)
    assert res2.bearing == {} and any("no speed" in n for n in res2.notes)
    with pytest.raises(ValueError, match="envelope_band_hz"):
        analyze_waveform(x, FS, speed_hz=SHAFT_HZ, bearing=SIM_6205, envelope_band_hz=(7000.0, 8000.0))


def test_noise_floor_of_rayleigh_bins_is_its_median() -> None:
    rng = np.random.default_rng(7)
    sigma = 2.0
    amp = np.abs(rng.normal(0, sigma, 40_000) + 1j * rng.normal(0, sigma, 40_000))
    floor = NoiseFloor.of(amp, df=0.5)
    # Median of a Rayleigh(σ) variable: σ·√(2 ln 2).
    assert floor.at(5_000.0, 2_000.0) == pytest.approx(sigma * np.sqrt(2 * np.log(2)), rel=0.03)
    clutter = Clutter.of(amp, floor)
    # Survival of r × median for Rayleigh bins: 2^(−r²).
    assert clutter.survival(2.0) == pytest.approx(2.0**-4, rel=0.1)
    assert line_log10_chance(3.0, None) == pytest.approx(-9 * np.log10(2))
    assert line_log10_chance(3.0, clutter) >= line_log10_chance(3.0, None)


def test_slip_consistency_window() -> None:
    # Outer race matched exactly at kinematic: the inner race can only be at or above its kinematic
    # frequency (cage slip lowers BPFO and raises BPFI), up to +2 % slip × BPFO/BPFI.
    lo, hi = consistent_ratio_range(1.0, -1.0, 3.5848 / 5.4152, 0.02, 0.0)
    assert lo == pytest.approx(1.0)
    assert hi == pytest.approx((1 + 0.02 * 3.5848 / 5.4152) / 0.98)
    lo2, hi2 = consistent_ratio_range(1.0, -1.0, None, 0.02, 0.001)
    assert lo2 < 1.0 < hi2


def test_explain_lines_removes_harmonics_and_sidebands_only() -> None:
    df = 0.25
    amp = np.ones(4001)
    explain_lines(amp, df, 100.0, 30.0, ((12.0, 1),))
    for f in (100.0, 200.0, 130.0, 70.0, 112.0, 88.0, 280.0):
        assert amp[round(f / df)] == 0.0
    for f in (45.0, 115.0, 165.0, 255.0):  # not k·100 ± m·30 (|m| ≤ 6) nor k·100 ± 12
        assert amp[round(f / df)] == 1.0


@pytest.mark.parametrize("seed", range(20))
def test_no_false_alarm_on_noise_with_shaft_lines(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    t = np.arange(N) / FS
    x = rng.normal(0, 1.0, N) + 0.3 * np.sin(2 * np.pi * SHAFT_HZ * t) + 0.1 * np.sin(2 * np.pi * 2 * SHAFT_HZ * t)
    res = analyze_waveform(x, FS, speed_hz=SHAFT_HZ, bearing=SIM_6205)
    assert not [d for d in res.diagnosis if d.startswith("bearing_")]


def test_more_tests_need_more_evidence() -> None:
    sim, x = _sim(Scenario.OUTER_RACE, seed=9, noise_g=0.05)
    ses = squared_envelope_spectrum(x, FS, (2400.0, 3600.0))
    fams = [DefectFamily("outer_race", sim.defect_frequencies().bpfo_hz, slip_sensitivity=-1.0)]
    one = detect_bearing_defects(ses, SHAFT_HZ, fams)["outer_race"]
    many = detect_bearing_defects(ses, SHAFT_HZ, fams, extra_tests=10 ** int(one.score))["outer_race"]
    assert one.detected and not many.detected
    with pytest.raises(ValueError, match="extra_tests"):
        detect_bearing_defects(ses, SHAFT_HZ, fams, extra_tests=0)
