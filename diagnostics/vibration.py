"""One call that turns an acceleration waveform into a condition-monitoring result.

``analyze_waveform`` runs, on one record: time-domain features, the amplitude spectrum, velocity RMS
and the ISO 20816-3 zone, the running speed and its harmonics with the shaft-fault indicators, and,
when a bearing is given, envelope analysis with defect detection. Everything is pure; the result is a
frozen dataclass whose ``to_dict()`` is ready for JSON.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from diagnostics.bearing_detect import DefectDetection, DefectFamily, detect_bearing_defects
from diagnostics.bearing_geometry import BearingGeometry, DefectOrders, defect_orders
from diagnostics.envelope import (
    EnvelopeBand,
    rank_envelope_bands,
    rfft_of,
    squared_envelope_spectrum,
)
from diagnostics.features import TimeFeatures, time_features
from diagnostics.iso20816 import ZoneLimits, iso20816_3_limits, iso_zone
from diagnostics.shaft import (
    FaultIndicator,
    OrderLine,
    RunningSpeed,
    estimate_running_speed,
    shaft_indicators,
)
from diagnostics.spectrum import (
    Peak,
    Spectrum,
    amplitude_spectrum,
    band_rms,
    detrend,
    reduced_spectrum,
    top_peaks,
    validate_signal,
)
from diagnostics.velocity import check_band, check_units, iso_velocity_band, velocity_from_spectrum

#: Names of the bearing defects in results, and the diagnosis each one raises.
BEARING_DEFECTS: dict[str, str] = {
    "outer_race": "bearing_outer_race",
    "inner_race": "bearing_inner_race",
    "ball": "bearing_ball",
    "cage": "bearing_cage",
}
SHAFT_FAULTS: tuple[str, ...] = ("unbalance", "misalignment", "looseness")


@dataclass(frozen=True, slots=True)
class VibrationResult:
    """Everything :func:`analyze_waveform` found in one waveform (units in the field names or docstring).

    ``features`` in the input unit (g or m/s²); ``velocity_rms_mm_s`` in mm/s RMS over ``velocity_band_hz``
    (Hz); ``iso_zone`` A–D against ``zone_limits``; ``running_speed`` None when neither a speed nor a
    nominal speed was given; ``orders`` the 1X…10X and ½-order velocity lines (mm/s peak); ``shaft``
    and ``bearing`` the fault indicators; ``top_peaks`` of the acceleration spectrum (input unit, peak);
    ``reduced_spectrum`` the acceleration spectrum's maximum in equal bands from 0 to
    ``reduced_spectrum_max_hz``; ``diagnosis`` the names of the detected faults; ``notes`` what was skipped;
    ``band_rms`` the acceleration RMS (input unit) in equal bands from 0 to ``reduced_spectrum_max_hz``,
    the band energies a :class:`~diagnostics.baseline.Baseline` learns.
    """

    fs_hz: float
    n_samples: int
    units: str
    features: TimeFeatures
    velocity_rms_mm_s: float
    velocity_band_hz: tuple[float, float]
    iso_zone: str
    zone_limits: ZoneLimits
    running_speed: RunningSpeed | None
    orders: list[OrderLine]
    shaft: dict[str, FaultIndicator]
    envelope_band: EnvelopeBand | None
    bearing: dict[str, DefectDetection]
    top_peaks: list[Peak]
    reduced_spectrum: list[float]
    reduced_spectrum_max_hz: float
    diagnosis: list[str]
    notes: list[str] = field(default_factory=list)
    band_rms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping: headline fields (fs_hz, rms, peak, …, iso_zone, diagnosis) and details."""
        f = self.features
        rs = self.running_speed
        bearing = {name: det.to_dict() for name, det in self.bearing.items()}
        return {
            "fs_hz": self.fs_hz,
            "n_samples": self.n_samples,
            "duration_s": self.n_samples / self.fs_hz,
            "units": self.units,
            "running_speed_hz": None if rs is None else round(rs.hz, 4),
            "running_speed_rpm": None if rs is None else round(rs.rpm, 2),
            "running_speed_source": None if rs is None else rs.source,
            "rms": f.rms,
            "peak": f.peak,
            "peak_to_peak": f.peak_to_peak,
            "crest_factor": f.crest_factor,
            "kurtosis": f.kurtosis,
            "skewness": f.skewness,
            "velocity_rms_mm_s": self.velocity_rms_mm_s,
            "velocity_band_hz": list(self.velocity_band_hz),
            "iso_zone": self.iso_zone,
            "iso_limits_mm_s": {
                "A/B": self.zone_limits.ab_mm_s,
                "B/C": self.zone_limits.bc_mm_s,
                "C/D": self.zone_limits.cd_mm_s,
            },
            "orders": [
                {"order": o.order, "frequency_hz": round(o.freq_hz, 3), "velocity_mm_s": o.amplitude}
                for o in self.orders
            ],
            "shaft": {name: ind.to_dict() for name, ind in self.shaft.items()},
            "envelope_band_hz": None
            if self.envelope_band is None
            else [round(self.envelope_band.low_hz, 1), round(self.envelope_band.high_hz, 1)],
            "envelope_band_method": None if self.envelope_band is None else self.envelope_band.method,
            "envelope_band_kurtosis": None
            if self.envelope_band is None or not math.isfinite(self.envelope_band.spectral_kurtosis)
            else round(self.envelope_band.spectral_kurtosis, 3),
            "bearing": bearing,
            "top_peaks": [{"frequency_hz": round(p.freq_hz, 3), "amplitude": p.amplitude} for p in self.top_peaks],
            "reduced_spectrum": {
                "max_hz": self.reduced_spectrum_max_hz,
                "unit": f"{self.units} peak",
                "bands": self.reduced_spectrum,
            },
            "band_rms": {"max_hz": self.reduced_spectrum_max_hz, "unit": f"{self.units} rms", "bands": self.band_rms},
            "diagnosis": list(self.diagnosis),
            "notes": list(self.notes),
        }


def bearing_families(orders: DefectOrders, shaft_hz: float) -> list[DefectFamily]:
    """Defect families searched in the envelope spectrum at ``shaft_hz`` (Hz).

    Outer race at BPFO; inner race at BPFI with ±1X sidebands (the defect turns with the shaft through
    the load zone); ball at 2×BSF (a ball defect strikes both races once per spin) with ±FTF sidebands;
    cage at FTF, subordinate to the others. Slip sensitivities: BPFO and FTF follow the cage (−1),
    BPFI = BPFI_kin + BPFO_kin·s (+BPFO/BPFI), ball spin unknown.
    """
    return [
        DefectFamily("outer_race", orders.bpfo * shaft_hz, slip_sensitivity=-1.0),
        DefectFamily(
            "inner_race", orders.bpfi * shaft_hz, sideband_hz=shaft_hz, slip_sensitivity=orders.bpfo / orders.bpfi
        ),
        DefectFamily("ball", 2 * orders.bsf * shaft_hz, sideband_hz=orders.ftf * shaft_hz),
        DefectFamily("cage", orders.ftf * shaft_hz, subordinate=True, slip_sensitivity=-1.0),
    ]


def bearing_diagnosis(
    detrended: npt.NDArray[np.float64],
    fs_hz: float,
    shaft_hz: float,
    bearing: BearingGeometry | DefectOrders,
    *,
    envelope_band_hz: tuple[float, float] | None = None,
    tolerance: float = 0.02,
    n_envelope_bands: int = 3,
) -> tuple[EnvelopeBand, dict[str, DefectDetection]]:
    """Envelope analysis of a detrended acceleration record at ``fs_hz`` (Hz) on a shaft at ``shaft_hz`` (Hz).

    Returns the demodulation band used and the detection of each defect family (outer_race,
    inner_race, ball, cage). The band is ``envelope_band_hz`` (Hz) or, when None, taken from the
    kurtogram: the ``n_envelope_bands`` most impulsive bands are demodulated in order until one shows a
    defect (one knock gives a high spectral kurtosis too, without any periodicity), with the evidence
    threshold raised for the number of bands that may be tried; with no detection anywhere the most
    impulsive band is reported. ``tolerance`` is the slip/speed tolerance (fraction).
    """
    dorders = bearing if isinstance(bearing, DefectOrders) else defect_orders(bearing)
    families = bearing_families(dorders, shaft_hz)
    spectrum = rfft_of(detrended, "none")
    if envelope_band_hz is not None:
        lo, hi = check_band(envelope_band_hz, fs_hz, "envelope_band_hz")
        candidates = [EnvelopeBand(lo, hi, float("nan"), "configured")]
    else:
        # Wide enough for 4 harmonics of the highest defect frequency plus a 1X sideband, and starting
        # above them so that the shaft harmonics stay out of the demodulated band.
        min_bw = 4 * max(fam.expected_hz for fam in families) * (1 + tolerance) + shaft_hz
        candidates = rank_envelope_bands(
            detrended, fs_hz, min_bandwidth_hz=min_bw, min_low_hz=min_bw, rfft=spectrum, n_bands=n_envelope_bands
        )
    chosen: tuple[EnvelopeBand, dict[str, DefectDetection]] | None = None
    for cand in candidates:
        ses = squared_envelope_spectrum(detrended, fs_hz, (cand.low_hz, cand.high_hz), rfft=spectrum)
        found = detect_bearing_defects(
            ses,
            shaft_hz,
            families,
            tolerance=tolerance,
            cage_hz=dorders.ftf * shaft_hz,
            extra_tests=len(candidates),
        )
        if chosen is None or any(d.detected for d in found.values()):
            chosen = (cand, found)
        if any(d.detected for d in found.values()):
            break
    assert chosen is not None  # candidates is never empty
    return chosen


#: Lines per lower band edge a record needs for a trustworthy velocity RMS: resolution <= edge / 4.
RESOLUTION_PER_BAND_EDGE = 4.0


def analyze_waveform(
    samples: npt.ArrayLike,
    fs_hz: float,
    *,
    units: str = "g",
    speed_hz: float | None = None,
    nominal_speed_hz: float | None = None,
    speed_search_fraction: float = 0.1,
    bearing: BearingGeometry | DefectOrders | None = None,
    group: int = 2,
    foundation: str = "rigid",
    zone_limits: ZoneLimits | None = None,
    velocity_band_hz: tuple[float, float] | None = None,
    envelope_band_hz: tuple[float, float] | None = None,
    slip_tolerance: float = 0.02,
    n_peaks: int = 10,
    n_bands: int = 64,
    reduced_max_hz: float | None = None,
    n_envelope_bands: int = 3,
    n_energy_bands: int = 8,
) -> VibrationResult:
    """Analyse one vibration waveform ``samples`` sampled at ``fs_hz`` (Hz).

    ``units``: 'g' or 'm/s2' for an accelerometer (integrated to velocity), 'mm/s' for a velocity
    sensor (features, spectra and envelope are then in mm/s).

    Running speed: ``speed_hz`` (Hz, from a tachometer) is used as given; otherwise it is estimated
    within ``nominal_speed_hz`` ± ``speed_search_fraction``; with neither, speed-based diagnostics are
    skipped (see ``notes``). ``bearing`` (geometry or defect orders) enables envelope analysis in
    ``envelope_band_hz`` (Hz) or, when None, in the band chosen by spectral kurtosis; defect frequencies
    are matched within ``slip_tolerance`` (fraction; the speed estimate's resolution is added when the
    speed is estimated). Severity uses ``zone_limits`` or ISO 20816-3 for ``group``/``foundation``, on
    velocity in ``velocity_band_hz`` (Hz; default ISO 20816-3's: 10–1000 Hz, 2–1000 Hz at ≤ 600 r/min).
    ``n_peaks`` top peaks and ``n_bands`` reduced-spectrum bands up to ``reduced_max_hz`` (default Nyquist).
    With an automatic band, up to ``n_envelope_bands`` kurtogram bands are tried (:func:`bearing_diagnosis`).
    ``n_energy_bands`` equal bands carry ``band_rms``.
    """
    arr = validate_signal(samples, fs_hz, min_samples=256)
    check_units(units)
    if speed_hz is not None and not (math.isfinite(speed_hz) and 0 < speed_hz < fs_hz / 4):
        raise ValueError(f"{speed_hz=} must be positive and below fs_hz/4 = {fs_hz / 4:g} Hz")
    if not 0 <= slip_tolerance < 0.1:
        raise ValueError(f"{slip_tolerance=} must be in [0, 0.1) (fraction of the defect frequency)")
    if velocity_band_hz is not None:
        check_band(velocity_band_hz, fs_hz, "velocity_band_hz")
    for name, value in (("n_energy_bands", n_energy_bands), ("n_envelope_bands", n_envelope_bands)):
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")
    limits = zone_limits if zone_limits is not None else iso20816_3_limits(group, foundation)
    notes: list[str] = []

    features = time_features(arr)
    detrended = detrend(arr, "linear")  # once, shared by the spectrum and the envelope
    acc = amplitude_spectrum(detrended, fs_hz, window_name="hann", detrend_mode="none")
    # ISO 20816-3's band depends on the speed: take the given or nominal one (the estimate comes later
    # and only refines it by a few per cent).
    if velocity_band_hz is None:
        velocity_band_hz = iso_velocity_band(speed_hz if speed_hz is not None else nominal_speed_hz)
    vel = velocity_from_spectrum(acc, fs_hz, units=units, band_hz=velocity_band_hz)  # its lines: 1X, 2X...
    # The overall RMS from a Blackman-Harris spectrum: Hann's leakage (-31 dB sidelobes) from strong content
    # below the band (sensor drift, a 5 Hz sway) lands on the lowest in-band lines, where integrating divides
    # it by a small frequency (1 g at 5 Hz read +87 % on a 100 Hz tone); -92 dB sidelobes keep it out.
    velocity_rms = velocity_from_spectrum(
        amplitude_spectrum(detrended, fs_hz, window_name="blackmanharris", detrend_mode="none"),
        fs_hz, units=units, band_hz=velocity_band_hz).rms_mm_s
    zone = iso_zone(velocity_rms, limits)
    band_low_hz = velocity_band_hz[0]
    if band_low_hz > 0 and acc.resolution_hz > band_low_hz / RESOLUTION_PER_BAND_EDGE:
        # Window leakage into the lines near the band's lower edge is divided by a small frequency when
        # integrating: with coarse lines the velocity reads high (+50 % at 12.5 Hz per line for a 25 Hz 1X), or
        # low when the lines are so coarse that the 1X falls partly below the edge (-98 % with 256 samples).
        needed = math.ceil(RESOLUTION_PER_BAND_EDGE * fs_hz / band_low_hz)
        notes.append(f"{acc.resolution_hz:.3g} Hz per line is coarse for the {band_low_hz:g} Hz band edge: "
                     f"velocity RMS and zone may be off (high or low); capture at least {needed} samples")

    speed: RunningSpeed | None = None
    if speed_hz is not None:
        speed = RunningSpeed(hz=float(speed_hz), source="given", nominal_hz=nominal_speed_hz)
    elif nominal_speed_hz is not None:
        # Search on acceleration / f (velocity-like, unbanded) so 1X stands out of the high-frequency content.
        f = acc.freqs_hz
        velocity_like = np.zeros_like(acc.amplitude)
        velocity_like[1:] = acc.amplitude[1:] / f[1:]
        try:
            speed = estimate_running_speed(
                Spectrum(f, velocity_like, acc.enbw_bins), nominal_speed_hz, search_fraction=speed_search_fraction
            )
        except ValueError as exc:  # a short record: too few lines to search (velocity and zone still hold)
            speed = RunningSpeed(hz=float(nominal_speed_hz), source="nominal", nominal_hz=nominal_speed_hz)
            notes.append(f"running speed not searched ({exc}): nominal speed used")
    else:
        notes.append("no speed given: running speed, shaft-fault and bearing diagnostics skipped")

    orders: list[OrderLine] = []
    shaft: dict[str, FaultIndicator] = {}
    tolerance = slip_tolerance
    if speed is not None:
        if speed.source == "estimated":
            tolerance += acc.resolution_hz / speed.hz
        elif speed.source == "nominal":
            tolerance += speed_search_fraction
            notes.append("no 1X line stood out near the nominal speed: nominal speed used, tolerances widened")
        orders, shaft = shaft_indicators(
            vel.spectrum, speed.hz, velocity_rms, limits.ab_mm_s, tolerance=min(tolerance, 0.05)
        )

    env_band: EnvelopeBand | None = None
    bearing_out: dict[str, DefectDetection] = {}
    if bearing is not None and speed is not None:
        env_band, bearing_out = bearing_diagnosis(
            detrended,
            fs_hz,
            speed.hz,
            bearing,
            envelope_band_hz=envelope_band_hz,
            tolerance=min(tolerance, 0.1),
            n_envelope_bands=n_envelope_bands,
        )
    elif bearing is not None:
        notes.append("bearing given but no speed: bearing diagnostics skipped")

    diagnosis = [name for name in SHAFT_FAULTS if name in shaft and shaft[name].detected]
    diagnosis += [
        BEARING_DEFECTS[name] for name in BEARING_DEFECTS if name in bearing_out and bearing_out[name].detected
    ]
    top = reduced_max_hz if reduced_max_hz is not None else fs_hz / 2
    return VibrationResult(
        fs_hz=float(fs_hz),
        n_samples=int(arr.size),
        units=units,
        features=features,
        velocity_rms_mm_s=velocity_rms,
        velocity_band_hz=vel.band_hz,
        iso_zone=zone,
        zone_limits=limits,
        running_speed=speed,
        orders=orders,
        shaft=shaft,
        envelope_band=env_band,
        bearing=bearing_out,
        top_peaks=top_peaks(acc, n_peaks, min_freq_hz=acc.resolution_hz),
        reduced_spectrum=reduced_spectrum(acc, n_bands, top),
        reduced_spectrum_max_hz=float(top),
        band_rms=[band_rms(acc, lo, hi) for lo, hi in itertools.pairwise(np.linspace(0.0, top, n_energy_bands + 1))],
        diagnosis=diagnosis,
        notes=notes,
    )


def baseline_features(result: VibrationResult) -> dict[str, float]:
    """The features a per-point :class:`~diagnostics.baseline.Baseline` learns from one result.

    Overall levels (velocity mm/s RMS, acceleration RMS and peak in the input unit), shape (crest
    factor, kurtosis) and the energy of each band (``band_rms``, input unit RMS): a bearing defect or a
    new resonance shows in a band long before it moves the overall level.
    """
    feats = {
        "velocity_rms_mm_s": result.velocity_rms_mm_s,
        "rms": result.features.rms,
        "peak": result.features.peak,
        "crest_factor": result.features.crest_factor,
        "kurtosis": result.features.kurtosis,
    }
    step = result.reduced_spectrum_max_hz / max(len(result.band_rms), 1)
    for i, value in enumerate(result.band_rms):
        feats[f"band_rms_{i * step:.0f}_{(i + 1) * step:.0f}_hz"] = value
    return feats
