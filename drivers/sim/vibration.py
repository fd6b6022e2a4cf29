"""A rotating machine's casing acceleration, generated from the physics of its faults.

Pure numpy, no I/O. One :class:`MachineVibration` stands for one accelerometer on one machine; each
:meth:`MachineVibration.capture` returns a block of acceleration samples in g, as a vibration sensor
would deliver it. What is in the signal:

- shaft components: 1X (unbalance), 2X (misalignment), higher harmonics and ½X sub-harmonics
  (mechanical looseness), specified as velocity in mm/s (peak) so their severity does not depend on
  the shaft speed, converted to acceleration at their own frequency;
- bearing defect impacts at BPFO / BPFI / 2×BSF from the bearing geometry, each impact ringing a
  damped structural resonance (default 3 kHz). Inner-race impacts are amplitude-modulated at 1X
  (the defect passes through the load zone once per revolution), ball impacts at FTF (the cage
  carries the ball through the load zone). The interval between impacts jitters randomly by about
  1 % (rolling elements slip), which is what makes bearing signals cyclostationary rather than
  periodic;
- broadband Gaussian noise.

A :class:`Scenario` picks which fault is present; its severity grows from 10 % to 100 % over
``ramp_s`` seconds after the start, so a fault "grows over minutes". The same ``seed``, ``t_s`` and
``n_samples`` always give the same samples.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

STANDARD_GRAVITY_M_S2 = 9.80665  # m/s² per g (CGPM 1901, ISO 80000-3)

#: Velocity amplitudes (mm/s peak) of a healthy machine's 1X and 2X. 1.0 mm/s peak ≈ 0.7 mm/s RMS,
#: inside ISO 20816-3 zone A for both machine groups (A/B boundary 1.4 mm/s RMS group 2, rigid).
HEALTHY_1X_MM_S = 1.0
HEALTHY_2X_MM_S = 0.3


@dataclass(frozen=True, slots=True)
class BearingGeometry:
    """Rolling-element bearing geometry.

    ``balls`` rolling elements of diameter ``ball_diameter_mm`` on pitch diameter ``pitch_diameter_mm``
    (mm) with contact angle ``contact_angle_deg`` (degrees; 0 for a deep-groove bearing under radial load).
    """

    balls: int
    ball_diameter_mm: float
    pitch_diameter_mm: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.balls < 3:
            raise ValueError(f"bearing balls={self.balls} must be at least 3")
        if not 0 < self.ball_diameter_mm < self.pitch_diameter_mm:
            raise ValueError(
                f"bearing ball_diameter_mm={self.ball_diameter_mm} must be positive and smaller than "
                f"pitch_diameter_mm={self.pitch_diameter_mm}"
            )
        if not 0 <= self.contact_angle_deg < 90:
            raise ValueError(f"bearing contact_angle_deg={self.contact_angle_deg} must be in [0, 90)")


#: SKF 6205-2RS JEM, the drive-end bearing of the CWRU test rig: 9 balls of 0.3126 in on a 1.537 in pitch
#: diameter (CWRU Bearing Data Center, https://engineering.case.edu/bearingdatacenter), 25.4 mm per inch.
SKF_6205 = BearingGeometry(
    balls=9, ball_diameter_mm=0.3126 * 25.4, pitch_diameter_mm=1.537 * 25.4, contact_angle_deg=0.0
)


@dataclass(frozen=True, slots=True)
class DefectFrequencies:
    """Bearing defect frequencies in Hz at one shaft speed (inner race rotating, outer race fixed)."""

    ftf_hz: float
    bpfo_hz: float
    bpfi_hz: float
    bsf_hz: float


def defect_frequencies(bearing: BearingGeometry, shaft_hz: float) -> DefectFrequencies:
    """Return FTF, BPFO, BPFI and BSF in Hz of ``bearing`` at shaft speed ``shaft_hz`` (Hz).

    Kinematic formulas for a rotating inner race and a stationary outer race, from R. B. Randall and
    J. Antoni, "Rolling element bearing diagnostics — A tutorial", Mech. Syst. Signal Process. 25
    (2011) 485–520, eqs. (1)–(4) (also T. A. Harris, Rolling Bearing Analysis)::

        FTF  = fr/2 · (1 − d/D·cos φ)
        BPFO = n·fr/2 · (1 − d/D·cos φ)
        BPFI = n·fr/2 · (1 + d/D·cos φ)
        BSF  = D/(2d) · fr · (1 − (d/D·cos φ)²)

    Note that a ball defect strikes both races once per spin revolution, i.e. at 2×BSF.
    """
    if shaft_hz <= 0:
        raise ValueError(f"{shaft_hz=} must be positive (Hz)")
    cos_phi = math.cos(math.radians(bearing.contact_angle_deg))
    ratio = bearing.ball_diameter_mm / bearing.pitch_diameter_mm * cos_phi
    return DefectFrequencies(
        ftf_hz=shaft_hz / 2 * (1 - ratio),
        bpfo_hz=bearing.balls * shaft_hz / 2 * (1 - ratio),
        bpfi_hz=bearing.balls * shaft_hz / 2 * (1 + ratio),
        bsf_hz=bearing.pitch_diameter_mm / (2 * bearing.ball_diameter_mm) * shaft_hz * (1 - ratio**2),
    )


class Scenario(enum.StrEnum):
    """Which fault the simulated machine has."""

    HEALTHY = "healthy"
    UNBALANCE = "unbalance"
    MISALIGNMENT = "misalignment"
    LOOSENESS = "looseness"
    OUTER_RACE = "outer_race"
    INNER_RACE = "inner_race"
    BALL = "ball"


@dataclass(frozen=True, slots=True)
class FaultLevels:
    """Fully developed fault amplitudes of one scenario.

    Shaft components are velocity in mm/s peak: ``one_x_mm_s`` (1X), ``two_x_mm_s`` (2X),
    ``harmonics_mm_s`` (each of 3X…10X, falling as 1/k from 3X), ``sub_harmonic_mm_s`` (½X, 1½X, 2½X).
    ``impact_g`` is the peak acceleration (g) of the ringing each bearing impact excites.
    """

    one_x_mm_s: float = 0.0
    two_x_mm_s: float = 0.0
    harmonics_mm_s: float = 0.0
    sub_harmonic_mm_s: float = 0.0
    impact_g: float = 0.0


#: Fully developed levels per scenario, added on top of the healthy 1X/2X. The shaft-fault levels take
#: a group 2 rigid machine to ISO 20816-3 zone C/D (boundaries 2.8 and 4.5 mm/s RMS); the bearing
#: impacts are a few g, typical of a spalled race seen on the bearing housing.
SCENARIO_LEVELS: dict[Scenario, FaultLevels] = {
    Scenario.HEALTHY: FaultLevels(),
    Scenario.UNBALANCE: FaultLevels(one_x_mm_s=7.0),
    Scenario.MISALIGNMENT: FaultLevels(one_x_mm_s=1.5, two_x_mm_s=6.0),
    Scenario.LOOSENESS: FaultLevels(
        one_x_mm_s=1.5, two_x_mm_s=1.5, harmonics_mm_s=2.0, sub_harmonic_mm_s=1.5
    ),
    Scenario.OUTER_RACE: FaultLevels(impact_g=3.0),
    Scenario.INNER_RACE: FaultLevels(impact_g=3.0),
    Scenario.BALL: FaultLevels(impact_g=2.0),
}

#: Severity of a fault at the start, as a fraction of its fully developed level.
INITIAL_SEVERITY = 0.1


class MachineVibration:
    """Accelerometer signal (g) of one rotating machine with one bearing and one fault scenario.

    ``fs_hz`` sample rate (Hz); ``shaft_hz`` nominal shaft speed (Hz); ``bearing`` geometry of the
    monitored bearing; ``scenario`` the fault; ``seed`` makes every capture reproducible;
    ``ramp_s`` seconds for the fault to grow from 10 % to 100 %; ``noise_g`` RMS of the broadband noise
    (g); ``resonance_hz`` the structural resonance the impacts excite (default 3 kHz, or 0.3·fs when
    that is above Nyquist); ``damping_ratio`` of that resonance; ``slip`` the relative standard
    deviation of the interval between bearing impacts (0.01 = 1 %).
    """

    def __init__(
        self,
        fs_hz: float,
        shaft_hz: float,
        bearing: BearingGeometry = SKF_6205,
        scenario: Scenario | str = Scenario.HEALTHY,
        seed: int = 0,
        *,
        ramp_s: float = 300.0,
        noise_g: float = 0.02,
        resonance_hz: float | None = None,
        damping_ratio: float = 0.05,
        slip: float = 0.01,
    ) -> None:
        if fs_hz <= 0:
            raise ValueError(f"{fs_hz=} must be positive (Hz)")
        if not 0 < shaft_hz < fs_hz / 20:
            raise ValueError(f"{shaft_hz=} must be positive and below fs_hz/20 = {fs_hz / 20:g} Hz "
                             "(so that 10X stays under Nyquist)")
        try:
            self.scenario = Scenario(scenario)
        except ValueError:
            names = ", ".join(s.value for s in Scenario)
            raise ValueError(f"unknown scenario {scenario!r}; use one of: {names}") from None
        if resonance_hz is None:
            resonance_hz = min(3000.0, 0.3 * fs_hz)
        if not 0 < resonance_hz < fs_hz / 2:
            raise ValueError(f"{resonance_hz=} must be positive and below Nyquist ({fs_hz / 2:g} Hz)")
        if ramp_s <= 0:
            raise ValueError(f"{ramp_s=} must be positive (seconds)")
        if noise_g < 0:
            raise ValueError(f"{noise_g=} must not be negative (g RMS)")
        if not 0 < damping_ratio < 1:
            raise ValueError(f"{damping_ratio=} must be in (0, 1)")
        if not 0 <= slip < 0.1:
            raise ValueError(f"{slip=} must be in [0, 0.1) (relative jitter of the impact interval)")
        self.fs_hz = float(fs_hz)
        self.shaft_hz = float(shaft_hz)
        self.bearing = bearing
        self.seed = int(seed)
        self.ramp_s = float(ramp_s)
        self.noise_g = float(noise_g)
        self.resonance_hz = float(resonance_hz)
        self.damping_ratio = float(damping_ratio)
        self.slip = float(slip)
        self.levels = SCENARIO_LEVELS[self.scenario]
        self._ringing = self._impulse_response()

    def severity(self, t_s: float) -> float:
        """Fault severity (0.1 … 1.0, dimensionless) at ``t_s`` seconds after the start."""
        return INITIAL_SEVERITY + (1 - INITIAL_SEVERITY) * min(max(t_s, 0.0) / self.ramp_s, 1.0)

    def defect_frequencies(self, shaft_hz: float | None = None) -> DefectFrequencies:
        """Defect frequencies (Hz) of this machine's bearing at ``shaft_hz`` (default: nominal speed)."""
        return defect_frequencies(self.bearing, self.shaft_hz if shaft_hz is None else shaft_hz)

    def capture(self, t_s: float, n_samples: int, shaft_hz: float | None = None) -> npt.NDArray[np.float64]:
        """Return ``n_samples`` of acceleration (g) starting ``t_s`` seconds after the start.

        ``shaft_hz`` overrides the nominal shaft speed for this capture (Hz), e.g. from a speed that
        drifts in the plant model. Deterministic for a given (seed, t_s, n_samples, shaft_hz).
        """
        if n_samples < 1:
            raise ValueError(f"{n_samples=} must be at least 1")
        fr = self.shaft_hz if shaft_hz is None else float(shaft_hz)
        if not 0 < fr < self.fs_hz / 20:
            raise ValueError(f"shaft_hz={fr} must be positive and below fs_hz/20 = {self.fs_hz / 20:g} Hz")
        rng = np.random.default_rng([self.seed, round(t_s * 1e6) & 0xFFFFFFFFFFFF, n_samples])
        t = t_s + np.arange(n_samples) / self.fs_hz
        sev = self.severity(t_s)
        x = self._shaft_components(t, fr, sev)
        if self.levels.impact_g > 0:
            x += self._bearing_impacts(t_s, n_samples, fr, sev * self.levels.impact_g, rng)
        if self.noise_g > 0:
            x += rng.normal(0.0, self.noise_g, n_samples)
        return x

    # ------------------------------------------------------------------ parts of the signal
    def _shaft_components(self, t: npt.NDArray[np.float64], fr: float, sev: float) -> npt.NDArray[np.float64]:
        """Sum of shaft-synchronous sines (g): velocity mm/s peak → acceleration at each frequency."""
        lv = self.levels
        orders: list[tuple[float, float]] = [
            (1.0, HEALTHY_1X_MM_S + sev * lv.one_x_mm_s),
            (2.0, HEALTHY_2X_MM_S + sev * lv.two_x_mm_s),
        ]
        if lv.harmonics_mm_s > 0:
            orders += [(float(k), sev * lv.harmonics_mm_s * 3.0 / k) for k in range(3, 11)]
        if lv.sub_harmonic_mm_s > 0:
            orders += [(k + 0.5, sev * lv.sub_harmonic_mm_s / (k + 1)) for k in range(3)]
        x = np.zeros_like(t)
        # Fixed phases per order (from the seed, not per capture): the rotor's unbalance does not move.
        phases = np.random.default_rng([self.seed, 7]).uniform(0, 2 * np.pi, 32)
        for i, (order, v_mm_s) in enumerate(orders):
            f_hz = order * fr
            a_g = v_mm_s * 1e-3 * 2 * np.pi * f_hz / STANDARD_GRAVITY_M_S2
            x += a_g * np.sin(2 * np.pi * f_hz * t + phases[i])
        return x

    def _bearing_impacts(
        self, t_s: float, n_samples: int, fr: float, impact_g: float, rng: np.random.Generator
    ) -> npt.NDArray[np.float64]:
        """Impact train of the scenario's bearing defect convolved with the resonance's ringing (g)."""
        freqs = defect_frequencies(self.bearing, fr)
        if self.scenario is Scenario.OUTER_RACE:
            rate_hz = freqs.bpfo_hz
        elif self.scenario is Scenario.INNER_RACE:
            rate_hz = freqs.bpfi_hz
        else:
            rate_hz = 2 * freqs.bsf_hz  # a ball spall hits the outer and the inner race once per spin
        duration_s = n_samples / self.fs_hz
        ring_len = len(self._ringing)
        # Start early enough that ringing from impacts just before the capture spills into it.
        lead_s = ring_len / self.fs_hz
        n_impacts = int((duration_s + lead_s) * rate_hz * 1.1) + 3
        intervals = (1.0 + self.slip * rng.standard_normal(n_impacts)) / rate_hz
        times = t_s - lead_s + rng.uniform(0, 1 / rate_hz) + np.cumsum(intervals) - intervals[0]
        times = times[times < t_s + duration_s]
        amps = np.full(times.shape, impact_g)
        if self.scenario is Scenario.INNER_RACE:
            # Load zone: the defect on the rotating inner race is loaded once per shaft revolution.
            amps *= 0.5 * (1 + np.cos(2 * np.pi * fr * times))
        elif self.scenario is Scenario.BALL:
            # The cage carries the ball through the load zone once per cage revolution (FTF); the two
            # contacts per spin (outer race, then inner race) transmit differently to the housing.
            amps *= 0.5 * (1 + np.cos(2 * np.pi * freqs.ftf_hz * times))
            amps[1::2] *= 0.5
        train = np.zeros(n_samples + ring_len)
        idx = np.round((times - (t_s - lead_s)) * self.fs_hz).astype(np.int64)
        keep = (idx >= 0) & (idx < len(train))
        np.add.at(train, idx[keep], amps[keep])
        return np.convolve(train, self._ringing)[ring_len : ring_len + n_samples]

    def _impulse_response(self) -> npt.NDArray[np.float64]:
        """Unit-peak ringing of a single-degree-of-freedom resonance, cut when it decays below 0.1 %.

        The shape is ``exp(-ζ ωn t) · cos(ωd t + φ)`` with ``tan φ = ζ ωn / ωd``, the response of an SDOF
        structure whose integral is zero: the housing ends at rest, so an impact leaves no net velocity
        change and puts nothing at DC or at its load-zone modulation frequency (a plain damped sine would
        fake a 1X line from the inner-race modulation). The last sample's rounding is removed at t = 0.
        """
        wn = 2 * np.pi * self.resonance_hz
        zeta = self.damping_ratio
        wd = wn * math.sqrt(1 - zeta**2)
        phi = math.atan2(zeta * wn, wd)
        decay_s = math.log(1000.0) / (zeta * wn)
        t = np.arange(max(int(decay_s * self.fs_hz), 4)) / self.fs_hz
        h = np.exp(-zeta * wn * t) * np.cos(wd * t + phi)
        h /= float(np.max(np.abs(h)))
        h[0] -= float(np.sum(h))  # exact zero mean on the sample grid
        return h
