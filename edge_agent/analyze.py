"""``edge-agent analyze FILE``: run the vibration diagnostics on a recorded waveform.

Reads ``.npy``, ``.csv``, ``.wav`` and MATLAB ``.mat`` files, analyses the samples with
:func:`diagnostics.vibration.analyze_waveform` and prints a summary, or one JSON object with
``--json``; ``--plot OUT.png`` draws waveform, spectrum and envelope spectrum (needs matplotlib:
``pip install edge-agent[plot]``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from diagnostics.bearing_geometry import BearingGeometry, DefectOrders, bearing_by_name, defect_orders
from diagnostics.vibration import VibrationResult, analyze_waveform

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

FloatArray = npt.NDArray[np.float64]


class InputError(Exception):
    """The file or the options cannot be turned into a waveform; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Recording:
    """Samples read from a file, with what the file itself says about them (sample rate in Hz, rpm)."""

    samples: FloatArray
    fs_hz: float | None
    rpm: float | None
    source: str


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``edge-agent analyze``."""
    p = argparse.ArgumentParser(
        prog="edge-agent analyze",
        description="Vibration diagnostics of one recorded acceleration waveform "
        "(features, ISO 20816-3 zone, shaft faults, bearing faults).",
    )
    p.add_argument("file", help="waveform file: .npy, .csv, .wav or .mat")
    p.add_argument("--fs", type=float, help="sample rate in Hz (required unless the file carries it)")
    p.add_argument("--rpm", type=float, help="shaft speed in rpm (a .mat file's X###RPM is used if present)")
    p.add_argument(
        "--nominal-rpm", type=float, help="nominal speed in rpm: the running speed is estimated within ±10 %% of it"
    )
    p.add_argument(
        "--units", default="g", choices=["g", "m/s2", "mm/s"], help="unit of the samples (default g; mm/s: velocity)"
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the samples by this (e.g. sensor g per volt; .wav integers are first "
        "normalised to ±1 full scale)",
    )
    p.add_argument("--column", type=int, default=None, help="column of a .csv/.npy 2-D array (0-based)")
    p.add_argument(
        "--variable",
        default=None,
        help="variable of a .mat file (default: the *_DE_time or the only 1-D numeric array)",
    )
    g = p.add_argument_group("bearing (pick one way)")
    g.add_argument("--bearing", help="built-in bearing name, e.g. SKF-6205")
    g.add_argument("--balls", type=int, help="number of rolling elements")
    g.add_argument("--ball-diameter", type=float, help="ball diameter in mm")
    g.add_argument("--pitch-diameter", type=float, help="pitch diameter in mm")
    g.add_argument("--contact-angle", type=float, default=None, help="contact angle in degrees (default 0)")
    for name in ("bpfo", "bpfi", "bsf", "ftf"):
        g.add_argument(f"--{name}", type=float, help=f"{name.upper()} as a multiple of shaft speed")
    p.add_argument(
        "--envelope-band",
        type=float,
        nargs=2,
        metavar=("LOW_HZ", "HIGH_HZ"),
        help="demodulation band in Hz (default: chosen by spectral kurtosis)",
    )
    p.add_argument("--group", type=int, default=2, choices=[1, 2], help="ISO 20816-3 machine group (default 2)")
    p.add_argument(
        "--foundation", default="rigid", choices=["rigid", "flexible"], help="ISO 20816-3 foundation (default rigid)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="write a PNG: waveform, spectrum, envelope spectrum")
    return p


# --------------------------------------------------------------------------------------------- reading
def _pick_column(arr: npt.NDArray[np.float64], column: int | None, what: str) -> FloatArray:
    if arr.ndim == 1:
        if column not in (None, 0):
            raise InputError(f"{what} holds one column; --column {column} does not exist")
        return arr
    if arr.ndim != 2:
        raise InputError(f"{what} has shape {arr.shape}; expected a 1-D array or a 2-D table")
    if arr.shape[1] == 1 or (arr.shape[0] == 1 and column is None):
        return arr.reshape(-1)
    if column is None:
        raise InputError(f"{what} has {arr.shape[1]} columns; choose one with --column N (0-based)")
    if not 0 <= column < arr.shape[1]:
        raise InputError(f"--column {column} is out of range: {what} has {arr.shape[1]} columns")
    return np.ascontiguousarray(arr[:, column])


def _read_npy(path: Path, column: int | None) -> Recording:
    arr = np.load(path, allow_pickle=False)
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: dtype {arr.dtype} is not numeric")
    return Recording(_pick_column(np.asarray(arr, dtype=np.float64), column, str(path)), None, None, "npy")


def _read_csv(path: Path, column: int | None) -> Recording:
    text = path.read_text(encoding="utf-8-sig").splitlines()
    rows = [ln for ln in text if ln.strip() and not ln.lstrip().startswith("#")]
    if not rows:
        raise InputError(f"{path}: no data rows")
    delim = ";" if rows[0].count(";") > rows[0].count(",") else ("," if "," in rows[0] else None)
    header: list[str] | None = None
    try:
        [float(v) for v in rows[0].split(delim)]
    except ValueError:
        header = [h.strip().lower() for h in rows[0].split(delim)]
        rows = rows[1:]
    try:
        table = np.array([[float(v) for v in r.split(delim)] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: not a numeric CSV table ({exc})") from None
    fs: float | None = None
    if table.ndim == 2 and table.shape[1] == 2 and column is None and header and header[0] in ("t", "time", "time_s"):
        dt = np.diff(table[:, 0])
        if dt.size and np.all(dt > 0):
            fs = 1.0 / float(np.median(dt))
        column = 1
    return Recording(_pick_column(table, column, str(path)), fs, None, "csv")


def _read_wav(path: Path, column: int | None) -> Recording:
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except ValueError as exc:
        raise InputError(f"{path}: cannot read WAV ({exc})") from None
    arr = np.asarray(data)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        arr = (arr.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max + 1 - (info.max + info.min + 1) / 2)
    return Recording(_pick_column(arr.astype(np.float64), column, str(path)), float(rate), None, "wav")


def _read_mat(path: Path, column: int | None, variable: str | None) -> Recording:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (ValueError, NotImplementedError) as exc:
        raise InputError(f"{path}: cannot read MATLAB file ({exc}); v7.3 files need converting to v7") from None
    arrays = {k: np.asarray(v) for k, v in mat.items() if not k.startswith("__")}
    numeric = {k: v for k, v in arrays.items() if np.issubdtype(v.dtype, np.number)}
    if variable is not None:
        if variable not in numeric:
            raise InputError(f"{path}: no numeric variable {variable!r}; it holds {', '.join(sorted(numeric))}")
        name = variable
    else:
        de = [k for k in numeric if k.endswith("_DE_time")]
        long_ = [k for k, v in numeric.items() if v.size > 1 and min(v.shape) == 1]
        if len(de) == 1:
            name = de[0]
        elif len(long_) == 1:
            name = long_[0]
        else:
            raise InputError(f"{path}: choose the waveform with --variable NAME; it holds {', '.join(sorted(numeric))}")
    rpm = None
    rpm_vars = [k for k in numeric if re.fullmatch(r"X\d+RPM", k) and numeric[k].size == 1]
    if rpm_vars:
        rpm = float(numeric[rpm_vars[0]].reshape(-1)[0])
    arr = numeric[name].astype(np.float64)
    arr = arr.reshape(-1) if min(arr.shape) == 1 else arr
    return Recording(_pick_column(arr, column, f"{path}:{name}"), None, rpm, f"mat:{name}")


def read_recording(path: Path, *, column: int | None = None, variable: str | None = None) -> Recording:
    """Read a waveform from ``path`` by its suffix (.npy, .csv, .wav, .mat)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, column)
    if suffix in (".csv", ".txt"):
        return _read_csv(path, column)
    if suffix == ".wav":
        return _read_wav(path, column)
    if suffix == ".mat":
        return _read_mat(path, column, variable)
    raise InputError(f"{path}: unsupported file type {suffix!r}; use .npy, .csv, .wav or .mat")


# --------------------------------------------------------------------------------------------- options
def bearing_from_args(args: argparse.Namespace) -> BearingGeometry | DefectOrders | None:
    """The bearing the options describe (by name, geometry or orders), or None; InputError on a mix-up."""
    geometry = [args.balls, args.ball_diameter, args.pitch_diameter]
    orders = [args.bpfo, args.bpfi, args.bsf, args.ftf]
    ways = sum(
        [
            args.bearing is not None,
            any(v is not None for v in geometry) or args.contact_angle is not None,
            any(v is not None for v in orders),
        ]
    )
    if ways > 1:
        raise InputError(
            "give the bearing one way only: --bearing NAME, or --balls/--ball-diameter/"
            "--pitch-diameter[/--contact-angle], or --bpfo/--bpfi/--bsf/--ftf"
        )
    try:
        if args.bearing is not None:
            return bearing_by_name(args.bearing)
        if any(v is not None for v in geometry) or args.contact_angle is not None:
            if any(v is None for v in geometry):
                raise InputError("bearing geometry needs all of --balls, --ball-diameter and --pitch-diameter")
            return BearingGeometry(args.balls, args.ball_diameter, args.pitch_diameter, args.contact_angle or 0.0)
        if any(v is not None for v in orders):
            if any(v is None for v in orders):
                raise InputError("defect orders need all of --bpfo, --bpfi, --bsf and --ftf")
            return DefectOrders(args.bpfo, args.bpfi, args.bsf, args.ftf)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return None


# --------------------------------------------------------------------------------------------- output
def format_text(res: VibrationResult, path: str) -> str:
    """Human-readable summary of ``res``."""
    f = res.features
    lines = [f"{path}: {res.n_samples} samples at {res.fs_hz:g} Hz ({res.n_samples / res.fs_hz:.2f} s), {res.units}"]
    if res.running_speed is not None:
        rs = res.running_speed
        lines.append(f"running speed   {rs.hz:.3f} Hz = {rs.rpm:.1f} rpm ({rs.source})")
    lines.append(
        f"rms {f.rms:.4g} {res.units}  peak {f.peak:.4g}  crest factor {f.crest_factor:.2f}  "
        f"kurtosis {f.kurtosis:.2f}  skewness {f.skewness:.2f}"
    )
    lim = res.zone_limits
    lines.append(
        f"velocity        {res.velocity_rms_mm_s:.3f} mm/s RMS ({res.velocity_band_hz[0]:g}–"
        f"{res.velocity_band_hz[1]:g} Hz) -> ISO 20816-3 zone {res.iso_zone} "
        f"(A/B {lim.ab_mm_s}, B/C {lim.bc_mm_s}, C/D {lim.cd_mm_s} mm/s)"
    )
    for name, ind in res.shaft.items():
        lines.append(f"{name:<15} {'DETECTED' if ind.detected else 'no':<9} score {ind.score:.2f}  {ind.evidence[0]}")
    if res.envelope_band is not None:
        b = res.envelope_band
        lines.append(f"envelope band   {b.low_hz:.0f}–{b.high_hz:.0f} Hz ({b.method})")
    for name, det in res.bearing.items():
        lines.append(
            f"{name:<15} {'DETECTED' if det.detected else 'no':<9} score {det.score:6.1f}  "
            f"at {det.frequency_hz:.2f} Hz (expected {det.expected_hz:.2f}), "
            f"harmonics {list(det.harmonics_found)}, sidebands {det.sidebands_found}"
        )
    lines.append("diagnosis       " + (", ".join(res.diagnosis) if res.diagnosis else "no fault found"))
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


def write_plot(res: VibrationResult, samples: FloatArray, out: Path) -> None:
    """Write a PNG of the waveform, the spectrum with 1X harmonics and the envelope spectrum with defect lines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'edge-agent[plot]'") from None
    from diagnostics.envelope import squared_envelope_spectrum
    from diagnostics.spectrum import amplitude_spectrum

    n_axes = 3 if res.envelope_band is not None else 2
    fig, axes = plt.subplots(n_axes, 1, figsize=(11, 3.2 * n_axes))
    t = np.arange(samples.size) / res.fs_hz
    axes[0].plot(t, samples, lw=0.5)
    axes[0].set(
        xlabel="time (s)",
        ylabel=res.units,
        title=f"waveform: rms {res.features.rms:.3g} {res.units}, kurtosis {res.features.kurtosis:.2f}, "
        f"velocity {res.velocity_rms_mm_s:.2f} mm/s RMS, zone {res.iso_zone}",
    )
    spec = amplitude_spectrum(samples, res.fs_hz)
    fmax = min(res.fs_hz / 2, 12 * res.running_speed.hz if res.running_speed else 1000.0)
    sel = spec.freqs_hz <= fmax
    axes[1].plot(spec.freqs_hz[sel], spec.amplitude[sel], lw=0.7)
    if res.running_speed is not None:
        for k in range(1, int(fmax / res.running_speed.hz) + 1):
            axes[1].axvline(k * res.running_speed.hz, color="tab:red", ls=":", lw=0.8)
    axes[1].set(xlabel="frequency (Hz)", ylabel=f"{res.units} peak", title="spectrum (red: 1X harmonics)")
    if res.envelope_band is not None:
        b = res.envelope_band
        ses = squared_envelope_spectrum(samples, res.fs_hz, (b.low_hz, b.high_hz))
        top = max((d.expected_hz for d in res.bearing.values()), default=200.0) * 4.5
        sel = (ses.freqs_hz <= top) & (ses.freqs_hz > 0)
        axes[2].plot(ses.freqs_hz[sel], ses.amplitude[sel], lw=0.7, color="k")
        colors = {"outer_race": "tab:blue", "inner_race": "tab:red", "ball": "tab:green", "cage": "tab:purple"}
        for name, det in res.bearing.items():
            for k in range(1, 5):
                axes[2].axvline(
                    k * det.frequency_hz,
                    color=colors.get(name, "gray"),
                    ls="--",
                    lw=0.8,
                    label=f"{name}{' (detected)' if det.detected else ''}" if k == 1 else None,
                )
        axes[2].legend(loc="upper right", fontsize=8)
        axes[2].set(
            xlabel="frequency (Hz)",
            ylabel=f"({res.units})²",
            title=f"squared envelope spectrum, band {b.low_hz:.0f}–{b.high_hz:.0f} Hz; diagnosis: "
            + (", ".join(res.diagnosis) or "none"),
        )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Analyse the file named in ``args`` and print the result; raises InputError for bad input."""
    path = Path(args.file)
    rec = read_recording(path, column=args.column, variable=args.variable)
    fs = args.fs if args.fs is not None else rec.fs_hz
    if fs is None:
        raise InputError(f"{path}: the file does not carry its sample rate; give it with --fs HZ")
    if args.fs is not None and rec.fs_hz is not None and not math.isclose(args.fs, rec.fs_hz, rel_tol=1e-6):
        print(f"note: --fs {args.fs:g} Hz overrides the file's {rec.fs_hz:g} Hz", file=sys.stderr)
    rpm = args.rpm if args.rpm is not None else rec.rpm
    if rpm is not None and rpm <= 0:
        raise InputError(f"--rpm {rpm} must be positive")
    bearing = bearing_from_args(args)
    samples = rec.samples * args.scale
    try:
        res = analyze_waveform(
            samples,
            fs,
            units=args.units,
            speed_hz=None if rpm is None else rpm / 60.0,
            nominal_speed_hz=None if args.nominal_rpm is None else args.nominal_rpm / 60.0,
            bearing=bearing,
            group=args.group,
            foundation=args.foundation,
            envelope_band_hz=None if args.envelope_band is None else tuple(args.envelope_band),
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    if args.plot:
        write_plot(res, samples, Path(args.plot))
    if args.json:
        out = res.to_dict()
        out["file"] = str(path)
        if isinstance(bearing, BearingGeometry):
            bearing = defect_orders(bearing)
        if bearing is not None:
            out["bearing_orders"] = {"bpfo": bearing.bpfo, "bpfi": bearing.bpfi, "bsf": bearing.bsf, "ftf": bearing.ftf}
        print(json.dumps(out, allow_nan=False, default=_json_default))
    else:
        print(format_text(res, str(path)))
    return EXIT_OK


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def main(argv: list[str]) -> int:
    """Entry point of ``edge-agent analyze``; returns the exit code (0 ok, 1 analysis failed, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return run(args)
    except InputError as exc:
        print(f"edge-agent analyze: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"edge-agent analyze: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
