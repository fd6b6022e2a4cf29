"""Detection of bearing defect frequencies in a squared-envelope spectrum, against the local noise floor.

How a defect is called, and why (statistics in :mod:`diagnostics.line_stats`):

1. Shaft harmonics n×1X are masked: they are synchronous, a bearing defect is not.
2. Each family k·f (k = 1..4) is searched as a comb: one fundamental f within the slip tolerance, its
   harmonics at exact multiples, so harmonics cannot each wander into a different unrelated line.
3. A line is r times the local median floor. The fundamental must reach r ≥ 4.5 (an impulse train's
   strongest envelope line is its rate), with at least one more line (harmonic, or ±1X / ±FTF
   sideband) at r ≥ 3. A bin reaches r·M by chance with probability 2^(−r²) (Rayleigh), or the
   measured line density of the spectrum when higher; the evidence (``score``) is −log10 of the joint
   chance of the lines found, the fundamental corrected for the size of its search window.
4. The evidence must reach 6 decades + log10(number of family tests so far) (Bonferroni).
5. Families are accepted strongest first; each accepted family explains its harmonics and their
   ±1X, ±FTF and own sidebands, and fixes speed error and slip, so a second family is only searched
   where the same shaft and a physical slip (the cage lags) can put it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from diagnostics.line_stats import Clutter, NoiseFloor, line_log10_chance
from diagnostics.spectrum import Spectrum

FloatArray = npt.NDArray[np.float64]

#: A line this many times the local median is a strong (search-window-wide) detection.
STRONG_RATIO = 4.5
#: A line this many times the local median at a predicted position confirms the family.
CONFIRM_RATIO = 3.0
#: Evidence (decades of chance probability) needed to call a defect: 1 false alarm in 10⁶ windows.
EVIDENCE_THRESHOLD = 6.0
#: Ratios are capped here so one enormous line cannot make up for missing harmonics.
_RATIO_CAP = 12.0
_LOG10_2 = math.log10(2.0)  # log10 of the Rayleigh tail base: P(bin ≥ r·median) = 2^(−r²)


@dataclass(frozen=True, slots=True)
class DefectDetection:
    """Outcome for one defect family in the envelope spectrum.

    ``expected_hz`` is the kinematic frequency at the given shaft speed, ``frequency_hz`` the matched
    fundamental (Hz, within the slip tolerance), ``score`` the evidence in decades (−log10 of the chance
    probability of the lines found; see the module docstring for when it counts as detected),
    ``harmonics_found``
    the orders k whose line k·frequency_hz stands out, ``ratios`` each harmonic's amplitude over the
    local median (capped at 12), ``sidebands_found`` how many modulation sidebands (±1X inner race, ±FTF
    ball) stand out, ``strength`` the uncapped sum of the ratios of the lines found (ranks families),
    ``evidence`` one human-readable line per spectral line found.
    """

    name: str
    expected_hz: float
    detected: bool
    score: float
    frequency_hz: float
    harmonics_found: tuple[int, ...] = ()
    ratios: tuple[float, ...] = ()
    sidebands_found: int = 0
    strength: float = 0.0
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping: detected, score, frequency_hz, expected_hz, harmonics, ratios, sidebands, evidence."""
        return {
            "detected": self.detected,
            "score": round(self.score, 3),
            "frequency_hz": round(self.frequency_hz, 3),
            "expected_hz": round(self.expected_hz, 3),
            "harmonics_found": list(self.harmonics_found),
            "ratios": [round(r, 2) for r in self.ratios],
            "sidebands_found": self.sidebands_found,
            "evidence": list(self.evidence),
        }


def mask_shaft_harmonics(ses: Spectrum, shaft_hz: float) -> FloatArray:
    """Copy of the SES amplitudes with the lines at integer multiples of ``shaft_hz`` (Hz) set to 0.

    A line at n×1X is shaft-synchronous (unbalance, looseness, the 1X load-zone modulation) and cannot
    be a non-synchronous bearing defect; masking ±2 bins (+0.2 % of n×1X for speed error) keeps those
    lines from being counted as defect harmonics.
    """
    amp = ses.amplitude.copy()
    df = ses.resolution_hz
    f_max = float(ses.freqs_hz[-1])
    n = np.arange(1, int(f_max / shaft_hz) + 1)
    centres = n * shaft_hz
    half = 2.0 * df + 0.002 * centres
    for c, h in zip(centres, half, strict=True):
        amp[int(max(0.0, (c - h) / df)) : int((c + h) / df) + 1] = 0.0
    return amp


def detect_defect(
    ses: Spectrum,
    masked_amplitude: FloatArray,
    name: str,
    expected_hz: float,
    *,
    tolerance: float,
    n_harmonics: int = 4,
    sideband_hz: float | None = None,
    ratio_range: tuple[float, float] | None = None,
    floor: NoiseFloor | None = None,
    clutter: Clutter | None = None,
) -> DefectDetection:
    """Look for lines k·f, k = 1..``n_harmonics``, f in ``expected_hz``·(1 ± ``tolerance``) (Hz), in ``ses``.

    ``masked_amplitude`` is the SES with shaft harmonics removed (:func:`mask_shaft_harmonics`). The
    fundamental is the candidate that maximises the capped sum of harmonic-to-floor ratios, so the
    harmonics are searched at exact multiples of one slip-corrected frequency, not each in its own
    window. ``sideband_hz`` (Hz) adds ± sidebands around the first two harmonics as confirming lines.
    ``ratio_range`` (fractions of ``expected_hz``) replaces the ±``tolerance`` window when another
    family has already fixed the speed and slip (see :func:`detect_bearing_defects`). ``floor`` is the
    SES's :class:`NoiseFloor` (computed here when not given); ``clutter`` the measured line density of
    the residual spectrum, which sets the chance of each confirming line when it is higher than noise's.
    """
    if not expected_hz > 0:
        raise ValueError(f"{expected_hz=} must be positive (Hz)")
    if not 0 <= tolerance < 0.2:
        raise ValueError(f"{tolerance=} must be in [0, 0.2) (fraction of the defect frequency)")
    df = ses.resolution_hz
    amp = masked_amplitude
    nyq = float(ses.freqs_hz[-1])
    noise = NoiseFloor.of(ses.amplitude, df) if floor is None else floor
    lo_ratio, hi_ratio = (1 - tolerance, 1 + tolerance) if ratio_range is None else ratio_range
    if not 0 < lo_ratio <= hi_ratio:
        raise ValueError(f"{ratio_range=} must be an increasing pair of positive ratios")
    ks = [k for k in range(1, n_harmonics + 1) if k * expected_hz * hi_ratio + 2 * df < nyq]
    if not ks:
        return DefectDetection(name, expected_hz, False, 0.0, expected_hz)
    # Floors are taken on the unmasked spectrum, over a window wide enough to be dominated by noise.
    floors = []
    for k in ks:
        half = k * expected_hz * tolerance + max(10 * df, 0.25 * expected_hz)
        floors.append(noise.at(k * expected_hz, half))
    floor_arr = np.array(floors)
    if not np.all(np.isfinite(floor_arr) & (floor_arr > 0)):
        return DefectDetection(name, expected_hz, False, 0.0, expected_hz)
    step = df / (2 * max(ks))
    cands = np.arange(expected_hz * lo_ratio, expected_hz * hi_ratio + step / 2, step)
    raw = np.empty((len(ks), cands.size))
    exact = np.zeros(cands.size)
    for j, k in enumerate(ks):
        idx = np.rint(k * cands / df).astype(np.int64)
        win = np.maximum(np.maximum(amp[idx - 1], amp[idx]), amp[np.minimum(idx + 1, amp.size - 1)])
        raw[j] = win / floor_arr[j]
        exact += np.log1p(amp[idx] / floor_arr[j])
    ratios = np.minimum(raw, _RATIO_CAP)
    # Ties (capped ratios, ±1-bin windows) are broken by the lines hit exactly, which centres the
    # estimate on the true fundamental instead of the lowest candidate that reaches the peaks.
    best = int(np.argmax(ratios.sum(axis=0) + 1e-3 * exact))
    f0 = float(cands[best])
    r: list[float] = ratios[:, best].tolist()
    strength = sum(v for v in raw[:, best].tolist() if v >= CONFIRM_RATIO)
    found = [k for k, rk in zip(ks, r, strict=True) if rk >= CONFIRM_RATIO]
    evidence_lines = [
        f"{k}x{name} {k * f0:.2f} Hz at {rk:.1f}x floor" for k, rk in zip(ks, r, strict=True) if rk >= CONFIRM_RATIO
    ]
    # Chance probability: the strongest line was the best of the whole search window, the others sat
    # at predicted positions (±1 bin).
    n_search = max(1.0, sum((hi_ratio - lo_ratio) * k * expected_hz / df for k in ks))
    strongest = max(r)
    decades = strongest**2 * _LOG10_2 - math.log10(n_search) if strongest >= CONFIRM_RATIO else 0.0
    n_lines = 1 if strongest >= CONFIRM_RATIO else 0
    for rk in sorted(r, reverse=True)[1:]:
        if rk >= CONFIRM_RATIO:
            decades += -line_log10_chance(rk, clutter) - math.log10(3.0)
            n_lines += 1
    sidebands = 0
    if sideband_hz is not None and sideband_hz > 0:
        for k in (1, 2):
            for sign in (-1.0, 1.0):
                fs_ = k * f0 + sign * sideband_hz
                if not 2 * df < fs_ < nyq - 2 * df:
                    continue
                i = round(fs_ / df)
                a = float(amp[i - 1 : i + 2].max())
                sb_floor = noise.at(fs_, max(10 * df, 0.25 * expected_hz))
                if sb_floor > 0 and a / sb_floor >= CONFIRM_RATIO:
                    ratio = min(a / sb_floor, _RATIO_CAP)
                    sidebands += 1
                    n_lines += 1
                    decades += -line_log10_chance(ratio, clutter) - math.log10(3.0)
                    evidence_lines.append(
                        f"sideband {k}x{name}{'+' if sign > 0 else '-'} {fs_:.2f} Hz at {ratio:.1f}x floor"
                    )
    # An impulse train at rate f puts its strongest envelope line at f; requiring a strong fundamental
    # keeps a coincidence of one higher harmonic with an unrelated line from being called a defect.
    detected = r[0] >= STRONG_RATIO and n_lines >= 2 and decades >= EVIDENCE_THRESHOLD
    return DefectDetection(
        name=name,
        expected_hz=expected_hz,
        detected=bool(detected),
        score=max(0.0, decades),
        frequency_hz=f0,
        harmonics_found=tuple(found),
        ratios=tuple(r),
        sidebands_found=sidebands,
        strength=strength,
        evidence=evidence_lines,
    )


@dataclass(frozen=True, slots=True)
class DefectFamily:
    """A defect family to look for: ``name``, fundamental ``expected_hz`` and ``sideband_hz`` (Hz or None).

    A ``subordinate`` family (the cage, FTF) is only reported when no other family is detected: any
    defect carried through the load zone by the cage is modulated at FTF, so FTF lines next to a race
    or ball defect are evidence of that defect, not of a second one.

    ``slip_sensitivity`` c says how the frequency moves with the cage's slip s (a fraction, s ≥ 0: the
    cage lags its kinematic speed): f = f_kinematic·(1 + δ)(1 + c·s), δ being the speed error. BPFO and
    FTF follow the cage (c = −1); BPFI = n(fr − f_cage) rises (c = +BPFO/BPFI); None means unknown
    (ball spin), taken as anywhere in [−1, +1].
    """

    name: str
    expected_hz: float
    sideband_hz: float | None = None
    subordinate: bool = False
    slip_sensitivity: float | None = None


#: Shaft-speed sidebands explained around each harmonic of a detected family. The load zone switches an
#: inner-race defect on for about half a revolution, a window rich in 1X harmonics, so its sidebands
#: reach far (lines at 2×BPFI − 6X are typical on the CWRU rig); ±6 covers them.
SHAFT_SIDEBANDS_EXPLAINED = 6
#: Sidebands explained for the family's own modulation frequency (FTF for a ball defect).
OWN_SIDEBANDS_EXPLAINED = 2
#: Cage (FTF) sidebands explained around every detected family: the cage carries each rolling
#: element through the load zone, and rolling elements differ slightly, so any defect's lines carry
#: FTF sidebands (BPFO + 3·FTF lands within 0.1 % of 2×BSF on a 6205).
CAGE_SIDEBANDS_EXPLAINED = 3


def explain_lines(
    amp: FloatArray, df: float, f0_hz: float, shaft_hz: float, modulations: tuple[tuple[float, int], ...] = ()
) -> None:
    """Zero, in place, the lines k·``f0_hz``, k·``f0_hz`` ± m·``shaft_hz`` (|m| ≤ 6) and ± m·mod (Hz).

    ``modulations`` holds (frequency in Hz, how many sidebands each side), e.g. the cage (FTF) that
    carries every rolling element through the load zone. Once a family is detected its harmonics and
    their modulation sidebands are explained; removing them stops a coincidence (3×BPFO ≈ 2×BPFI on
    a 6205, BPFO + 3·FTF ≈ 2×BSF) from being read as a second fault.
    """
    nyq = df * (amp.size - 1)
    harmonics = f0_hz * np.arange(1, int(nyq / f0_hz) + 1)
    offsets = [m * shaft_hz for m in range(-SHAFT_SIDEBANDS_EXPLAINED, SHAFT_SIDEBANDS_EXPLAINED + 1)]
    for mod_hz, n_side in modulations:
        offsets += [m * mod_hz for m in range(-n_side, n_side + 1) if m != 0]
    centres = (harmonics[:, None] + np.asarray(offsets)[None, :]).ravel()
    centres = centres[(centres > 0) & (centres < nyq)]
    half = 2.0 * df + 0.003 * centres
    starts = np.maximum(0, ((centres - half) / df).astype(np.int64))
    stops = np.minimum(amp.size, ((centres + half) / df).astype(np.int64) + 1)
    # Mark every [start, stop) at once: +1 at each start, −1 at each stop, covered where the sum is > 0.
    edges = np.zeros(amp.size + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, stops, -1)
    amp[np.cumsum(edges[:-1]) > 0] = 0.0


def consistent_ratio_range(
    winner_ratio: float,
    winner_sensitivity: float | None,
    sensitivity: float | None,
    max_slip: float,
    margin: float,
) -> tuple[float, float]:
    """Range of f/f_kinematic another family can have once a detected one matched at ``winner_ratio``.

    Both share one speed error δ and one slip s in [0, ``max_slip``]: ratio = winner_ratio·(1 + c·s)/
    (1 + c_w·s). Unknown sensitivities span [−1, +1]; ``margin`` (fraction) absorbs the resolution of
    the matched frequency. A line outside this range cannot come from the same shaft at the same slip.
    """
    cs = [-1.0, 1.0] if sensitivity is None else [sensitivity]
    cws = [-1.0, 1.0] if winner_sensitivity is None else [winner_sensitivity]
    values = [winner_ratio * (1 + c * sl) / (1 + cw * sl) for c in cs for cw in cws for sl in (0.0, max_slip)]
    return min(values) - margin, max(values) + margin


def detect_bearing_defects(
    ses: Spectrum,
    shaft_hz: float,
    families: list[DefectFamily],
    *,
    tolerance: float = 0.02,
    n_harmonics: int = 4,
    cage_hz: float | None = None,
    extra_tests: int = 1,
) -> dict[str, DefectDetection]:
    """Detect each of ``families`` in the squared-envelope spectrum ``ses`` of a shaft at ``shaft_hz`` (Hz).

    Greedy explaining-away: shaft harmonics are masked; then, repeatedly, the detected family with the
    largest strength is accepted and its harmonics with ±1X sidebands (and its own sidebands) are removed
    before the remaining families are tested again. A real second fault keeps lines of its own and
    is still found; lines that only coincide with the first fault's family are not counted twice.
    The first detection also fixes the speed error: later families are searched only where the same
    speed and a slip in [0, ``tolerance``] put them (:func:`consistent_ratio_range`), not in their own
    ±``tolerance`` window. ``tolerance`` is the slip/speed tolerance on each fundamental (fraction);
    ``cage_hz`` (FTF, Hz) adds ±3 cage sidebands to what a detection explains. Every family test is
    one more chance of a false alarm, so the evidence needed grows by log10 of the tests made so far
    (Bonferroni), times ``extra_tests`` when the caller tries several envelope bands.
    """
    if not shaft_hz > 0:
        raise ValueError(f"{shaft_hz=} must be positive (Hz)")
    amp = mask_shaft_harmonics(ses, shaft_hz)
    df = ses.resolution_hz
    floor = NoiseFloor.of(ses.amplitude, df)
    results: dict[str, DefectDetection] = {}
    remaining = list(families)
    if extra_tests < 1:
        raise ValueError(f"{extra_tests=} must be at least 1")
    n_tests = 0
    anchor: tuple[float, float | None] | None = None  # (matched ratio, slip sensitivity) of the first detection
    while remaining:
        clutter = Clutter.of(amp, floor)
        trial: dict[str, DefectDetection] = {}
        for fam in remaining:
            window = None
            if anchor is not None:
                # The anchor fundamental is known to about one line (the comb over its harmonics refines
                # it further); 0.1 % more for speed wander within the record.
                margin = df / fam.expected_hz + 0.001
                lo, hi = consistent_ratio_range(anchor[0], anchor[1], fam.slip_sensitivity, tolerance, margin)
                # Never wider than the family's own slip window: both constraints hold at once.
                lo, hi = max(lo, 1 - tolerance), min(hi, 1 + tolerance)
                if hi <= lo:  # no speed and slip can put this family anywhere near: nothing to find
                    lo = hi = 1 - tolerance if lo > 1 else 1 + tolerance
                    lo, hi = min(lo, hi), max(lo, hi)
                window = (lo, hi)
            trial[fam.name] = detect_defect(
                ses,
                amp,
                fam.name,
                fam.expected_hz,
                tolerance=tolerance,
                n_harmonics=n_harmonics,
                sideband_hz=fam.sideband_hz,
                ratio_range=window,
                floor=floor,
                clutter=clutter,
            )
            n_tests += extra_tests
            det = trial[fam.name]
            if det.detected and det.score < EVIDENCE_THRESHOLD + math.log10(n_tests):
                trial[fam.name] = replace(
                    det,
                    detected=False,
                    evidence=[
                        *det.evidence,
                        f"evidence {det.score:.1f} below {EVIDENCE_THRESHOLD + math.log10(n_tests):.1f} "
                        f"after {n_tests} family tests",
                    ],
                )
        # Subordinate families (the cage) never explain lines away: their dense comb (FTF ≈ 0.4X) with
        # shaft sidebands would blank the whole spectrum. They are judged after the primaries.
        primaries = {f.name for f in remaining if not f.subordinate}
        hits = [d for d in trial.values() if d.detected and (d.name in primaries or not primaries)]
        if not hits:
            results.update(trial)
            break
        winner = max(hits, key=lambda d: d.strength)
        results[winner.name] = winner
        fam = next(f for f in remaining if f.name == winner.name)
        if anchor is None:
            anchor = (winner.frequency_hz / winner.expected_hz, fam.slip_sensitivity)
        if not fam.subordinate:
            mods: list[tuple[float, int]] = []
            if fam.sideband_hz is not None:
                mods.append((fam.sideband_hz, OWN_SIDEBANDS_EXPLAINED))
            if cage_hz is not None:
                mods.append((cage_hz, CAGE_SIDEBANDS_EXPLAINED))
            explain_lines(amp, df, winner.frequency_hz, shaft_hz, tuple(mods))
        remaining = [f for f in remaining if f.name != winner.name]
    primary_found = any(results[f.name].detected for f in families if not f.subordinate)
    for fam in families:
        det = results[fam.name]
        if fam.subordinate and det.detected and primary_found:
            results[fam.name] = replace(
                det,
                detected=False,
                evidence=[*det.evidence, "explained as cage modulation of the detected defect"],
            )
    return {fam.name: results[fam.name] for fam in families}
