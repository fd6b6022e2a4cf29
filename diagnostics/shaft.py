"""Shaft-synchronous diagnostics: running speed, 1X…nX amplitudes, unbalance, misalignment, looseness.

Rules of thumb used for the indicators are the classic ones of vibration analysis (e.g. J. S. Mitchell,
"Introduction to Machinery Analysis and Monitoring", 2nd ed., PennWell 1993, ch. 11; ISO 13373-3:2015
Annex on typical fault symptoms): unbalance shows as a dominant 1X; misalignment as a large 2X
relative to 1X; mechanical looseness as many harmonics and half-order sub-harmonics. An indicator is
only raised when the overall velocity is above the zone A/B boundary: a dominant 1X on a smooth
machine is normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from diagnostics.spectrum import Peak, Spectrum, fast_median, interpolated_peak

#: The 1X line must be this many times its local median for the speed estimate to be trusted.
SPEED_LINE_MIN_RATIO = 3.0
#: 1X carrying at least this fraction of the band's velocity energy is "dominant" (unbalance).
UNBALANCE_1X_ENERGY_FRACTION = 0.6
#: 2X above this fraction of 1X suggests misalignment (classic rule: 2X > 50 % of 1X).
MISALIGNMENT_2X_TO_1X = 0.5
#: Looseness: at least this many of the 3X…10X harmonics or ½-order lines above 10 % of 1X.
LOOSENESS_MIN_LINES = 4
LOOSENESS_LINE_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class RunningSpeed:
    """Shaft speed ``hz`` (Hz) and its ``source``: 'given'; 'estimated' from the spectrum near ``nominal_hz``;
    or 'nominal' when no 1X line stood out and the nominal speed is used as is.
    """

    hz: float
    source: str
    nominal_hz: float | None = None

    @property
    def rpm(self) -> float:
        """Shaft speed in revolutions per minute."""
        return self.hz * 60.0


@dataclass(frozen=True, slots=True)
class OrderLine:
    """The line at ``order`` × running speed: ``freq_hz`` (Hz), ``amplitude`` (peak, unit of the spectrum)."""

    order: float
    freq_hz: float
    amplitude: float


@dataclass(frozen=True, slots=True)
class FaultIndicator:
    """One fault indicator: ``name``, ``detected``, ``score`` (rule's ratio, dimensionless), ``evidence``."""

    name: str
    detected: bool
    score: float
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {"detected": self.detected, "score": round(self.score, 3), "evidence": list(self.evidence)}


def _max_in(spectrum: Spectrum, lo_hz: float, hi_hz: float) -> Peak | None:
    f = spectrum.freqs_hz
    df = spectrum.resolution_hz
    i0 = max(1, int(np.ceil(lo_hz / df)))
    i1 = min(f.size - 1, int(np.floor(hi_hz / df)))
    if i1 < i0:
        return None
    i = i0 + int(np.argmax(spectrum.amplitude[i0 : i1 + 1]))
    return interpolated_peak(spectrum, i)


def _local_median(spectrum: Spectrum, centre_hz: float, half_width_hz: float) -> float:
    df = spectrum.resolution_hz
    lo = max(1, int((centre_hz - half_width_hz) / df))
    hi = min(spectrum.amplitude.size, int((centre_hz + half_width_hz) / df) + 1)
    return fast_median(spectrum.amplitude[lo:hi]) if hi > lo else 0.0


def estimate_running_speed(spectrum: Spectrum, nominal_hz: float, *, search_fraction: float = 0.1) -> RunningSpeed:
    """Running speed (Hz) from ``spectrum``, searched in ``nominal_hz`` (Hz) ± ``search_fraction`` (fraction).

    Each candidate f is scored by the sum of the spectrum at f, 2f and 3f (a shaft produces
    harmonics, a random line does not); the best candidate is refined by parabolic interpolation of the
    1X line. Works on acceleration or velocity spectra; velocity favours 1X. When the chosen line is not
    3× its local median, the nominal speed is returned with source 'nominal'.
    """
    if not nominal_hz > 0:
        raise ValueError(f"{nominal_hz=} must be positive (Hz)")
    if not 0 < search_fraction < 0.5:
        raise ValueError(f"{search_fraction=} must be in (0, 0.5)")
    df = spectrum.resolution_hz
    amp = spectrum.amplitude
    lo, hi = nominal_hz * (1 - search_fraction), nominal_hz * (1 + search_fraction)
    if hi * 3 >= spectrum.freqs_hz[-1]:
        raise ValueError(f"{nominal_hz=} is too high for this sample rate (3× must stay under Nyquist)")
    i0, i1 = max(1, int(np.ceil(lo / df))), int(np.floor(hi / df))
    if i1 - i0 < 2:
        raise ValueError(
            f"the speed search band {lo:.2f}–{hi:.2f} Hz spans fewer than 3 lines ({df:.3g} Hz per line); "
            "use a longer record or a wider search_fraction"
        )
    idx = np.arange(i0, i1 + 1)
    score = amp[idx].copy()
    for k in (2, 3):
        j = k * idx
        score += np.maximum(np.maximum(amp[j - 1], amp[j]), amp[np.minimum(j + 1, amp.size - 1)]) / k
    best = int(idx[np.argmax(score)])
    peak = interpolated_peak(spectrum, best)
    # A 1X that does not stand out of its neighbourhood is no estimate: fall back to the nominal speed
    # and say so, rather than report the largest noise bin as the shaft speed.
    if not peak.amplitude >= SPEED_LINE_MIN_RATIO * _local_median(spectrum, peak.freq_hz, 0.25 * nominal_hz):
        return RunningSpeed(hz=nominal_hz, source="nominal", nominal_hz=nominal_hz)
    return RunningSpeed(hz=peak.freq_hz, source="estimated", nominal_hz=nominal_hz)


def order_lines(
    spectrum: Spectrum, speed_hz: float, orders: list[float], *, tolerance: float = 0.02
) -> list[OrderLine]:
    """Line at each of ``orders`` × ``speed_hz`` (Hz): the largest within ± ``tolerance`` (fraction) of it."""
    if not speed_hz > 0:
        raise ValueError(f"{speed_hz=} must be positive (Hz)")
    nyq = float(spectrum.freqs_hz[-1])
    out: list[OrderLine] = []
    df = spectrum.resolution_hz
    for order in orders:
        f = order * speed_hz
        half = max(f * tolerance, df)
        if f + half >= nyq:
            continue
        pk = _max_in(spectrum, f - half, f + half)
        if pk is not None:
            out.append(OrderLine(order=order, freq_hz=pk.freq_hz, amplitude=pk.amplitude))
    return out


def shaft_indicators(
    velocity_spectrum: Spectrum,
    speed_hz: float,
    velocity_rms_mm_s: float,
    alert_level_mm_s: float,
    *,
    tolerance: float = 0.02,
) -> tuple[list[OrderLine], dict[str, FaultIndicator]]:
    """1X…10X and ½-order lines of ``velocity_spectrum`` (mm/s peak); unbalance, misalignment, looseness.

    ``velocity_rms_mm_s`` is the band's overall velocity (mm/s RMS); indicators are only detected at or
    above ``alert_level_mm_s`` (mm/s RMS, normally the ISO 20816-3 A/B boundary).
    """
    orders = [float(k) for k in range(1, 11)] + [0.5, 1.5, 2.5]
    lines = order_lines(velocity_spectrum, speed_hz, orders, tolerance=tolerance)
    by_order = {ln.order: ln for ln in lines}
    elevated = velocity_rms_mm_s >= alert_level_mm_s
    level_note = f"overall {velocity_rms_mm_s:.2f} mm/s RMS vs alert level {alert_level_mm_s:.2f} mm/s"
    # A line counts only if it stands out of its neighbourhood (3× the local median): in a noisy
    # spectrum the largest bin of a ±2 % window is otherwise just the noise's maximum.
    real = {
        o: ln
        for o, ln in by_order.items()
        if ln.amplitude >= 3.0 * _local_median(velocity_spectrum, ln.freq_hz, 0.25 * speed_hz)
    }
    one = by_order.get(1.0)
    # Every indicator is judged against 1X: a 1X that does not stand out of the noise is no reference (a
    # 2X-only spectrum, e.g. a two-pole motor's electrical 2X, made noise-level ratios of 1000 or more).
    a1 = real[1.0].amplitude if 1.0 in real else 0.0
    a2 = real[2.0].amplitude if 2.0 in real else 0.0

    frac_1x = (a1 / np.sqrt(2.0)) ** 2 / velocity_rms_mm_s**2 if velocity_rms_mm_s > 0 else 0.0
    unbalance = FaultIndicator(
        "unbalance",
        detected=bool(elevated and frac_1x >= UNBALANCE_1X_ENERGY_FRACTION and a2 < MISALIGNMENT_2X_TO_1X * a1),
        score=float(min(frac_1x, 1.0)),
        evidence=[
            f"1X {one.freq_hz:.2f} Hz {a1:.2f} mm/s peak = {100 * frac_1x:.0f} % of band energy"
            if one and a1 > 0
            else "1X does not stand out of the noise" if one else "1X not found",
            level_note,
        ],
    )
    ratio_2x = a2 / a1 if a1 > 0 else 0.0
    misalignment = FaultIndicator(
        "misalignment",
        detected=bool(elevated and a1 > 0 and ratio_2x >= MISALIGNMENT_2X_TO_1X),
        score=float(ratio_2x),
        evidence=[f"2X {a2:.2f} mm/s peak = {ratio_2x:.2f} × 1X ({a1:.2f} mm/s)" if a1 > 0
                  else f"2X {a2:.2f} mm/s peak; no 1X out of the noise to compare it with", level_note],
    )
    loose_lines = [
        ln
        for ln in real.values()
        if (ln.order >= 3.0 or ln.order % 1.0 == 0.5) and a1 > 0 and ln.amplitude >= LOOSENESS_LINE_FRACTION * a1
    ]
    looseness = FaultIndicator(
        "looseness",
        detected=bool(elevated and len(loose_lines) >= LOOSENESS_MIN_LINES),
        score=float(len(loose_lines) / 11.0),
        evidence=[
            f"{len(loose_lines)} of 3X…10X and ½-order lines above {LOOSENESS_LINE_FRACTION:.0%} of 1X: "
            + ", ".join(f"{ln.order:g}X {ln.amplitude:.2f} mm/s" for ln in loose_lines),
            level_note,
        ],
    )
    if looseness.detected and misalignment.detected and ratio_2x < 1.0:
        # A long harmonic series explains a large 2X too; misalignment is only called when 2X leads 1X.
        misalignment = replace(
            misalignment,
            detected=False,
            evidence=[*misalignment.evidence, "2X explained by the looseness harmonic series (2X < 1X)"],
        )
    return lines, {"unbalance": unbalance, "misalignment": misalignment, "looseness": looseness}
