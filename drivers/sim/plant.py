"""The simulated plant behind every simulated PLC: a motor driving a pump, and the tank it fills.

Pure and time-driven: :meth:`Plant.update` moves the model to ``t_s`` seconds after its start and
:meth:`Plant.value` returns a process value by name (``motor.speed_rpm`` ...). Values depend only on
``seed``, ``scenario`` and ``t_s`` (not on how often ``update`` was called), so a Modbus server and an
OPC UA server reading the same plant show the same process. The one value with memory, the bearing
temperature (a first-order lag), is integrated on a fixed 1 s grid from the start.

What moves:

- motor load (%) wanders slowly between about 55 % and 95 %; speed follows an induction motor's slip
  (1500 rpm synchronous, 4-pole at 50 Hz, about 27 rpm slip at full load: ~1480 rpm at 75 %); current
  rises with load from a no-load 7 A to 28 A; bearing temperature lags toward an equilibrium of
  ambient + 45 K at full load with a 10-minute time constant;
- the motor stops for 60 s once an hour (t in [3000, 3060) s of every hour);
- the tank fills at 0.2 %/s to 80 % and drains at 0.15 %/s to 20 % (a 700 s cycle); its bottom
  pressure is hydrostatic (5 m tall tank, water) plus 0.2 bar of blanket gas;
- ambient temperature follows a daily sine between -3 and +27 degC.

Scenario ``bearing_overheat`` adds heat to the bearing from t = 60 s on, so its temperature climbs
about 2 K per minute above the healthy value until it saturates 60 K higher.
"""

from __future__ import annotations

import enum
import math

import numpy as np

STANDARD_GRAVITY_M_S2 = 9.80665  # m/s² (CGPM 1901)
WATER_DENSITY_KG_M3 = 998.0  # at 20 degC
SYNC_SPEED_RPM = 1500.0  # 4-pole motor on a 50 Hz supply
FULL_LOAD_SLIP_RPM = 27.0
NO_LOAD_CURRENT_A = 7.0
FULL_LOAD_CURRENT_A = 28.0
RATED_POWER_KW = 15.0
BEARING_TIME_CONSTANT_S = 600.0
BEARING_RISE_FULL_LOAD_K = 45.0
TANK_HEIGHT_M = 5.0
TANK_VOLUME_L = 5000.0
TANK_FILL_PCT_S = 0.2
TANK_DRAIN_PCT_S = 0.15
TANK_HIGH_PCT = 80.0
TANK_LOW_PCT = 20.0
BLANKET_PRESSURE_BAR = 0.2
MOTOR_SERIAL = "MTR-7781-2024-0042"
STEP_S = 1.0  # integration step of the bearing temperature


class Scenario(enum.StrEnum):
    """What happens in the plant."""

    HEALTHY = "healthy"
    BEARING_OVERHEAT = "bearing_overheat"


#: Every value the plant exposes, with its unit; the names are the contract of :meth:`Plant.value`.
PLANT_VALUES: dict[str, str] = {
    "motor.running": "",
    "motor.load_pct": "%",
    "motor.speed_rpm": "rpm",
    "motor.current_a": "A",
    "motor.power_kw": "kW",
    "motor.bearing_temp_c": "degC",
    "motor.run_hours": "h",
    "motor.energy_kwh": "kWh",
    "motor.starts": "",
    "motor.status_word": "",
    "motor.state": "",
    "motor.serial": "",
    "tank.level_pct": "%",
    "tank.volume_l": "L",
    "tank.pressure_bar": "bar",
    "tank.filling": "",
    "tank.high_level": "",
    "tank.low_level": "",
    "tank.inflow_total_l": "L",
    "ambient.temp_c": "degC",
}

#: Codes of ``motor.state``.
MOTOR_STATES: dict[int, str] = {0: "stopped", 1: "running", 2: "overheat"}
BEARING_WARNING_C = 85.0

PlantValue = float | int | bool | str


class Plant:
    """A motor, a pump and a tank whose process values move plausibly with time.

    ``seed`` picks the phases of the slow wanderings (same seed, same plant); ``scenario`` picks a
    fault; ``start_bearing_temp_c`` is the bearing temperature at t = 0 (degC).
    """

    def __init__(self, seed: int = 0, scenario: Scenario | str = Scenario.HEALTHY,
                 start_bearing_temp_c: float = 30.0) -> None:
        try:
            self.scenario = Scenario(scenario)
        except ValueError:
            names = ", ".join(s.value for s in Scenario)
            raise ValueError(f"unknown plant scenario {scenario!r}; use one of: {names}") from None
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self._phases = rng.uniform(0.0, 2 * math.pi, size=8).tolist()
        self._tank_phase_s = float(rng.uniform(0.0, 700.0))
        self._bearing_c = float(start_bearing_temp_c)
        self._bearing_t_s = 0.0
        self.t_s = 0.0
        self._values: dict[str, PlantValue] = {}
        self.update(0.0)

    # ------------------------------------------------------------------ public
    def update(self, t_s: float) -> None:
        """Move the plant to ``t_s`` seconds after its start (never backwards)."""
        if not math.isfinite(t_s) or t_s < 0:
            raise ValueError(f"{t_s=} must be a finite, non-negative number of seconds")
        if t_s < self.t_s:
            raise ValueError(f"plant time cannot go backwards: {t_s=} < current {self.t_s}")
        self._advance_bearing(t_s)
        self.t_s = t_s
        self._values = self._evaluate(t_s)

    def value(self, name: str) -> PlantValue:
        """The current value of ``name`` (one of :data:`PLANT_VALUES`)."""
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"plant has no value {name!r}; known: {', '.join(PLANT_VALUES)}") from None

    def values(self) -> dict[str, PlantValue]:
        """A copy of every current value by name."""
        return dict(self._values)

    # ------------------------------------------------------------------ model
    def _wander(self, t_s: float, period_s: float, phase: int) -> float:
        """A smooth deterministic wandering in [-1, 1] with period ``period_s`` seconds."""
        return math.sin(2 * math.pi * t_s / period_s + self._phases[phase])

    def running(self, t_s: float) -> bool:
        """True unless in the hourly 60 s stop (t mod 3600 in [3000, 3060))."""
        return not 3000.0 <= t_s % 3600.0 < 3060.0

    def load_fraction(self, t_s: float) -> float:
        """Motor load as a fraction of rated (0 when stopped)."""
        if not self.running(t_s):
            return 0.0
        return 0.75 + 0.15 * self._wander(t_s, 311.0, 0) + 0.05 * self._wander(t_s, 47.0, 1)

    def _bearing_extra_k(self, t_s: float) -> float:
        """Extra bearing temperature equilibrium (K) of the overheat fault: 2 K/min from 60 s, up to 60 K."""
        if self.scenario is not Scenario.BEARING_OVERHEAT:
            return 0.0
        return min(60.0, max(0.0, t_s - 60.0) * 2.0 / 60.0)

    def ambient_c(self, t_s: float) -> float:
        """Ambient temperature (degC): daily sine between -3 and +27."""
        return 12.0 + 15.0 * self._wander(t_s, 86400.0, 2)

    def _advance_bearing(self, t_s: float) -> None:
        # Fixed-grid explicit integration (1 s step << 600 s time constant) so the result does not
        # depend on how often update() is called.
        while self._bearing_t_s + STEP_S <= t_s:
            t = self._bearing_t_s
            target = self._bearing_target_c(t)
            self._bearing_c += (target - self._bearing_c) * STEP_S / BEARING_TIME_CONSTANT_S
            self._bearing_t_s = t + STEP_S

    def _bearing_target_c(self, t_s: float) -> float:
        return (self.ambient_c(t_s) + BEARING_RISE_FULL_LOAD_K * self.load_fraction(t_s)
                + self._bearing_extra_k(t_s))

    def _bearing_c_at(self, t_s: float) -> float:
        """Bearing temperature (degC) at ``t_s``, between grid points by the same first-order step."""
        frac = t_s - self._bearing_t_s
        target = self._bearing_target_c(self._bearing_t_s)
        return self._bearing_c + (target - self._bearing_c) * frac / BEARING_TIME_CONSTANT_S

    def _tank_level_pct(self, t_s: float) -> tuple[float, bool, float]:
        """Level (%), filling flag and total inflow since the start (L) of the fill/drain cycle."""
        fill_s = (TANK_HIGH_PCT - TANK_LOW_PCT) / TANK_FILL_PCT_S
        drain_s = (TANK_HIGH_PCT - TANK_LOW_PCT) / TANK_DRAIN_PCT_S
        cycle_s = fill_s + drain_s

        def filling_time_s(x_s: float) -> float:
            """Seconds spent filling between shifted time 0 and ``x_s``."""
            cycles, within = divmod(x_s, cycle_s)
            return cycles * fill_s + min(within, fill_s)

        shifted = t_s + self._tank_phase_s
        within = shifted % cycle_s
        if within < fill_s:
            level, filling = TANK_LOW_PCT + TANK_FILL_PCT_S * within, True
        else:
            level, filling = TANK_HIGH_PCT - TANK_DRAIN_PCT_S * (within - fill_s), False
        fill_l_s = TANK_FILL_PCT_S / 100.0 * TANK_VOLUME_L
        inflow = fill_l_s * (filling_time_s(shifted) - filling_time_s(self._tank_phase_s))
        return level, filling, inflow

    def _evaluate(self, t_s: float) -> dict[str, PlantValue]:
        running = self.running(t_s)
        load = self.load_fraction(t_s)
        speed = current = 0.0
        if running:
            speed = SYNC_SPEED_RPM - FULL_LOAD_SLIP_RPM * load + 0.8 * self._wander(t_s, 23.0, 3)
            current = (NO_LOAD_CURRENT_A + (FULL_LOAD_CURRENT_A - NO_LOAD_CURRENT_A) * load
                       + 0.15 * self._wander(t_s, 7.3, 4))
        power = RATED_POWER_KW * load
        bearing = self._bearing_c_at(t_s)
        # Counters integrate in closed form: run hours exclude the 60 s hourly stop; energy uses the
        # mean load (75 %) so it stays monotonic and cheap.
        hours, into_hour = divmod(t_s, 3600.0)
        run_s = hours * 3540.0 + min(into_hour, 3000.0) + max(0.0, into_hour - 3060.0)
        starts = int(hours) + (1 if into_hour >= 3060.0 else 0)
        overheat = bearing >= BEARING_WARNING_C
        status = (1 if running else 0) | (2 if overheat else 0) | (4 if not running else 0)
        level, filling, inflow = self._tank_level_pct(t_s)
        height_m = TANK_HEIGHT_M * level / 100.0
        pressure = BLANKET_PRESSURE_BAR + WATER_DENSITY_KG_M3 * STANDARD_GRAVITY_M_S2 * height_m / 1e5
        state = 2 if overheat else (1 if running else 0)
        return {
            "motor.running": running,
            "motor.load_pct": 100.0 * load,
            "motor.speed_rpm": speed,
            "motor.current_a": current,
            "motor.power_kw": power,
            "motor.bearing_temp_c": bearing,
            "motor.run_hours": run_s / 3600.0,
            "motor.energy_kwh": run_s / 3600.0 * RATED_POWER_KW * 0.75,
            "motor.starts": starts,
            "motor.status_word": status,
            "motor.state": MOTOR_STATES[state],
            "motor.serial": MOTOR_SERIAL,
            "tank.level_pct": level,
            "tank.volume_l": level / 100.0 * TANK_VOLUME_L,
            "tank.pressure_bar": pressure,
            "tank.filling": filling,
            "tank.high_level": level >= 75.0,
            "tank.low_level": level <= 25.0,
            "tank.inflow_total_l": inflow,
            "ambient.temp_c": self.ambient_c(t_s),
        }
