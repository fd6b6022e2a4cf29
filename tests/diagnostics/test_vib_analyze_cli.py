"""``edge-agent analyze`` on .npy, .csv, .wav and .mat files, through ``edge_agent.analyze.main``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.io.wavfile

from drivers.sim.vibration import MachineVibration, Scenario
from edge_agent.analyze import main

FS = 12_800
SHAFT_HZ = 29.95
REQUIRED = (
    "fs_hz",
    "running_speed_hz",
    "rms",
    "peak",
    "crest_factor",
    "kurtosis",
    "velocity_rms_mm_s",
    "iso_zone",
    "bearing",
    "diagnosis",
)


@pytest.fixture(scope="module")
def outer_race() -> np.ndarray:
    sim = MachineVibration(FS, SHAFT_HZ, scenario=Scenario.OUTER_RACE, seed=4, noise_g=0.05, ramp_s=1.0)
    return sim.capture(10.0, 32_768)


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def check_outer_race(d: dict[str, object]) -> None:
    for key in REQUIRED:
        assert key in d, key
    assert d["diagnosis"] == ["bearing_outer_race"]
    bearing = d["bearing"]
    assert isinstance(bearing, dict)
    assert set(bearing) == {"outer_race", "inner_race", "ball", "cage"}
    for det in bearing.values():
        assert {"detected", "score", "frequency_hz"} <= set(det)
    assert bearing["outer_race"]["detected"] is True
    assert bearing["outer_race"]["frequency_hz"] == pytest.approx(3.5848 * SHAFT_HZ, rel=0.01)


def test_npy_with_named_bearing(tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.npy"
    np.save(f, outer_race.astype(np.float32))
    d = run_json([str(f), "--fs", str(FS), "--rpm", str(SHAFT_HZ * 60), "--bearing", "SKF-6205"], capsys)
    check_outer_race(d)
    assert d["fs_hz"] == FS and d["running_speed_hz"] == pytest.approx(SHAFT_HZ)


def test_csv_with_time_column_and_geometry(
    tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "x.csv"
    t = np.arange(outer_race.size) / FS
    np.savetxt(f, np.column_stack([t, outer_race]), delimiter=",", header="time,accel_g", comments="")
    d = run_json(
        [
            str(f),
            "--rpm",
            str(SHAFT_HZ * 60),
            "--balls",
            "9",
            "--ball-diameter",
            "7.94",
            "--pitch-diameter",
            "39.04",
            "--contact-angle",
            "0",
        ],
        capsys,
    )
    check_outer_race(d)
    assert d["fs_hz"] == pytest.approx(FS, rel=1e-6)  # from the time column


def test_wav_with_orders_and_scale(tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.wav"
    full_scale_g = 10.0
    scipy.io.wavfile.write(f, FS, np.round(outer_race / full_scale_g * 32767).astype(np.int16))
    d = run_json(
        [
            str(f),
            "--rpm",
            str(SHAFT_HZ * 60),
            "--scale",
            str(full_scale_g),
            "--bpfo",
            "3.5848",
            "--bpfi",
            "5.4152",
            "--bsf",
            "2.3567",
            "--ftf",
            "0.39828",
        ],
        capsys,
    )
    check_outer_race(d)
    assert d["rms"] == pytest.approx(float(np.std(outer_race)), rel=0.01)


def test_mat_reads_cwru_style_variables_and_rpm(
    tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "x.mat"
    scipy.io.savemat(
        f,
        {
            "X130_DE_time": outer_race.reshape(-1, 1),
            "X130_FE_time": outer_race.reshape(-1, 1) * 0.1,
            "X130RPM": np.array([[SHAFT_HZ * 60]]),
        },
    )
    d = run_json([str(f), "--fs", str(FS), "--bearing", "6205"], capsys)
    check_outer_race(d)  # rpm came from X130RPM


def test_text_output_and_shaft_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = MachineVibration(FS, 24.7, scenario=Scenario.UNBALANCE, seed=2, ramp_s=1.0)
    f = tmp_path / "u.npy"
    np.save(f, sim.capture(10.0, 32_768))
    assert main([str(f), "--fs", str(FS), "--nominal-rpm", "1500", "--group", "2", "--foundation", "rigid"]) == 0
    out = capsys.readouterr().out
    assert "estimated" in out and "diagnosis       unbalance" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.npy", "--fs", "1000"], "no such file"),
        (["{npy}"], "--fs HZ"),
        (["{npy}", "--fs", "12800", "--bearing", "NOPE"], "unknown bearing"),
        (["{npy}", "--fs", "12800", "--bearing", "SKF-6205", "--bpfo", "3"], "one way only"),
        (["{npy}", "--fs", "12800", "--balls", "9"], "needs all of"),
        (["{npy}", "--fs", "12800", "--bpfo", "3"], "need all of"),
        (["{txt}", "--fs", "12800"], "not a numeric CSV"),
        (
            ["{npy}", "--fs", "12800", "--rpm", "1797", "--bearing", "6205", "--envelope-band", "9000", "9500"],
            "envelope_band_hz",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).normal(size=4096))
    txt = tmp_path / "bad.csv"
    txt.write_text("a,b\n1,x\n")
    argv = [a.format(npy=npy, txt=txt) for a in args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x.npy", "--frobnicate"]) == 2


def test_plot_without_matplotlib_says_how_to_install(
    tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" raise ImportError
    f = tmp_path / "x.npy"
    np.save(f, outer_race)
    assert main([str(f), "--fs", str(FS), "--plot", str(tmp_path / "p.png")]) == 2
    assert "pip install 'edge-agent[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib (plot extra) not installed")
def test_plot_writes_a_png(tmp_path: Path, outer_race: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.npy"
    np.save(f, outer_race)
    out = tmp_path / "p.png"
    assert (
        main([str(f), "--fs", str(FS), "--rpm", str(SHAFT_HZ * 60), "--bearing", "SKF-6205", "--plot", str(out)]) == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
