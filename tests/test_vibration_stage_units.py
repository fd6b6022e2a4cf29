"""Waveform units: every accepted spelling gives the same velocity for the same vibration; a unit nobody can
convert is refused, by the config (file, line, field) and by the analysis, never silently taken as g."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from diagnostics.waveform_units import STANDARD_GRAVITY_M_S2, waveform_units
from drivers.base import Waveform
from edge_agent.config import load_config_text
from edge_agent.errors import ConfigError
from edge_agent.vibration_stage import VibrationStage

FS_HZ, N, F_HZ, V_RMS_MM_S = 12_800.0, 16_384, 50.0, 10.0


def acceleration_m_s2() -> np.ndarray:
    """A 50 Hz vibration of 10 mm/s RMS, as acceleration in m/s² (a = 2 pi f v)."""
    t = np.arange(N) / FS_HZ
    peak_m_s2 = 2 * math.pi * F_HZ * V_RMS_MM_S * math.sqrt(2) / 1000.0
    return np.asarray(peak_m_s2 * np.sin(2 * math.pi * F_HZ * t))


@pytest.mark.parametrize("unit, per_m_s2", [
    ("g", 1 / STANDARD_GRAVITY_M_S2), ("G", 1 / STANDARD_GRAVITY_M_S2), ("", 1 / STANDARD_GRAVITY_M_S2),
    ("mg", 1000 / STANDARD_GRAVITY_M_S2), ("m/s2", 1.0), ("m/s²", 1.0), ("M/S^2", 1.0), ("mm/s2", 1000.0),
    ("mm/s²", 1000.0),
])
def test_every_acceleration_spelling_gives_the_same_velocity(unit: str, per_m_s2: float) -> None:
    stage = VibrationStage.__new__(VibrationStage)  # only analyse(): no config needed
    stage.channels, stage._speed_rpm = {}, lambda key: None
    waveform = Waveform("de", acceleration_m_s2() * per_m_s2, FS_HZ, 0.0, unit)
    result = asyncio.run(stage.analyse("plc/de", waveform))
    assert result.velocity_rms_mm_s == pytest.approx(V_RMS_MM_S, rel=0.01)


@pytest.mark.parametrize("unit, expected", [("mm/s", ("mm/s", 1.0)), ("m/s", ("mm/s", 1000.0)),
                                            ("in/s", ("mm/s", 25.4)), ("IPS", ("mm/s", 25.4))])
def test_velocity_units_convert_to_mm_per_s(unit: str, expected: tuple[str, float]) -> None:
    assert waveform_units(unit) == expected


@pytest.mark.parametrize("unit", ["mm/s3", "m/s/s2", "degC", "V"])
def test_an_unknown_unit_is_refused_by_the_analysis(unit: str) -> None:
    stage = VibrationStage.__new__(VibrationStage)
    stage.channels, stage._speed_rpm = {}, lambda key: None
    with pytest.raises(ValueError, match=rf"waveform unit '{re_escape(unit)}' is not known; use g, mg"):
        asyncio.run(stage.analyse("plc/de", Waveform("de", acceleration_m_s2(), FS_HZ, 0.0, unit)))


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_config_with_an_unknown_waveform_unit_names_the_line_and_the_units(tmp_path: Path) -> None:
    text = f"""\
agent: {{id: gw-1, site: plant, data_dir: {tmp_path}}}
mqtt: {{url: mqtt://127.0.0.1:1883}}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {{name: speed, address: 0}}
      - {{name: vib, table: input, address: 100, type: int16, kind: waveform, count: 1024,
          sample_rate: 12800Hz, unit: mm/s3}}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "site.yaml")
    [error] = caught.value.errors
    assert error.startswith("site.yaml:10: devices[0].points[1].unit: ")  # the line of the unit itself
    assert "'mm/s3' is not known; use g, mg, m/s², mm/s²" in error
    load_config_text(text.replace("mm/s3", "m/s²"), "site.yaml")  # the fix works


def test_a_bogus_speed_reading_does_not_cost_the_capture_its_velocity(tmp_path: Path) -> None:
    """A speed point reading 300 000 rpm (a scale off by 100) is above a quarter of the sample rate: the
    analysis used to refuse the whole capture; now the speed is ignored and velocity and zone come out."""
    cfg = load_config_text(f"""
agent: {{id: gw, site: s, data_dir: {tmp_path}}}
mqtt: {{url: "mqtt://127.0.0.1:1883"}}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {{name: speed, address: 0, unit: rpm}}
      - {{name: de, address: 100, kind: waveform, count: 1024, sample_rate: 12800, unit: m/s2}}
assets:
  - name: m
    points: [plc/speed, plc/de]
    machine: {{group: 2, foundation: rigid, speed_point: plc/speed}}
""")
    stage = VibrationStage(cfg, lambda *a: None, lambda key: 300_000.0)  # type: ignore[arg-type,return-value]
    waveform = Waveform("de", acceleration_m_s2(), FS_HZ, 0.0, "m/s2")
    result = asyncio.run(stage.analyse("plc/de", waveform))
    assert result.velocity_rms_mm_s == pytest.approx(V_RMS_MM_S, rel=0.01)
    assert result.iso_zone == "D"
