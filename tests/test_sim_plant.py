"""The plant model: deterministic, physically plausible, and the fault scenario does what it says."""

from __future__ import annotations

import math

import pytest

from drivers.sim.plant import (
    BLANKET_PRESSURE_BAR,
    MOTOR_SERIAL,
    PLANT_VALUES,
    STANDARD_GRAVITY_M_S2,
    TANK_HEIGHT_M,
    WATER_DENSITY_KG_M3,
    Plant,
    Scenario,
)


def test_values_depend_on_time_and_seed_only_not_on_update_cadence() -> None:
    fine, coarse = Plant(seed=7), Plant(seed=7)
    for t in range(0, 1201, 3):
        fine.update(float(t))
    coarse.update(1200.0)
    assert fine.values() == coarse.values()
    other = Plant(seed=8)
    other.update(1200.0)
    assert other.value("motor.load_pct") != coarse.value("motor.load_pct")


def test_every_documented_value_is_present() -> None:
    plant = Plant()
    assert set(plant.values()) == set(PLANT_VALUES)
    with pytest.raises(KeyError, match=r"plant has no value 'motor\.speed'"):
        plant.value("motor.speed")


def test_motor_is_plausible_over_two_hours() -> None:
    plant = Plant(seed=1)
    for t in range(0, 7200, 10):
        plant.update(float(t))
        v = plant.values()
        if v["motor.running"]:
            assert 1465 < float(v["motor.speed_rpm"]) < 1490  # 4-pole 50 Hz motor under 55..95 % load
            assert 18 < float(v["motor.current_a"]) < 28
            assert v["motor.state"] == "running" and int(v["motor.status_word"]) & 1
        else:
            assert 3000 <= t % 3600 < 3060  # the hourly stop
            assert v["motor.speed_rpm"] == 0.0 and v["motor.current_a"] == 0.0 and v["motor.state"] == "stopped"
        assert v["motor.serial"] == MOTOR_SERIAL
    assert plant.value("motor.starts") == 2


def test_bearing_temperature_lags_toward_a_load_dependent_equilibrium() -> None:
    plant = Plant(seed=2, start_bearing_temp_c=20.0)
    temps = []
    for t in range(0, 2401, 600):
        plant.update(float(t))
        temps.append(float(plant.value("motor.bearing_temp_c")))
    assert temps == sorted(temps)  # warms up monotonically from cold
    # after four 600 s time constants it is within a few K of ambient + 45 K x load
    ambient = float(plant.value("ambient.temp_c"))
    assert ambient + 20 < temps[-1] < ambient + 45


def test_bearing_overheat_scenario_climbs_above_healthy() -> None:
    healthy, faulty = Plant(seed=4), Plant(seed=4, scenario="bearing_overheat")
    for plant in (healthy, faulty):
        plant.update(1800.0)
    excess = float(faulty.value("motor.bearing_temp_c")) - float(healthy.value("motor.bearing_temp_c"))
    # equilibrium +2 K/min from 60 s; the 600 s lag lets roughly 2/3 of the last 10 min's rise through
    assert 25 < excess < 58
    assert faulty.scenario is Scenario.BEARING_OVERHEAT


def test_tank_cycles_between_its_limits_with_hydrostatic_pressure() -> None:
    plant = Plant(seed=3)
    levels, inflows = [], []
    for t in range(0, 1401, 5):
        plant.update(float(t))
        level = float(plant.value("tank.level_pct"))
        levels.append(level)
        inflows.append(float(plant.value("tank.inflow_total_l")))
        head_bar = WATER_DENSITY_KG_M3 * STANDARD_GRAVITY_M_S2 * TANK_HEIGHT_M * level / 100 / 1e5
        assert float(plant.value("tank.pressure_bar")) == pytest.approx(BLANKET_PRESSURE_BAR + head_bar)
        assert plant.value("tank.high_level") == (level >= 75.0)
    assert min(levels) == pytest.approx(20.0, abs=1.0) and max(levels) == pytest.approx(80.0, abs=1.0)
    assert inflows == sorted(inflows) and inflows[0] == 0.0
    # two full 700 s cycles each pump in 60 % of 5000 L
    assert inflows[-1] == pytest.approx(2 * 3000.0, abs=60.0)


def test_bad_time_and_scenario_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown plant scenario 'meltdown'; use one of: healthy"):
        Plant(scenario="meltdown")
    plant = Plant()
    plant.update(10.0)
    with pytest.raises(ValueError, match="cannot go backwards"):
        plant.update(5.0)
    with pytest.raises(ValueError, match="finite, non-negative"):
        plant.update(math.nan)
