"""Run the bearing diagnostics on every CWRU record and print the per-record table as Markdown.

Usage: ``.venv/bin/python benchmarks/cwru_report.py [DATA_DIR]`` (default ``../shared/data/cwru``,
i.e. /work/shared/data/cwru). Each record is analysed whole, at its own sample rate, with its own rpm
(from metadata.json) and the SKF 6205 geometry; nothing is tuned per record.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from diagnostics.bearing_geometry import bearing_by_name
from diagnostics.vibration import analyze_waveform

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cwru"
TRUTH = {"normal": None, "inner": "bearing_inner_race", "outer": "bearing_outer_race", "ball": "bearing_ball"}


def run(data_dir: Path) -> list[dict[str, object]]:
    """Analyse each record listed in ``data_dir``/metadata.json; one row dict per record."""
    meta = json.loads((data_dir / "metadata.json").read_text())
    bearing = bearing_by_name("SKF-6205")
    rows: list[dict[str, object]] = []
    for rec in meta["records"]:
        x = np.load(data_dir / rec["file"])
        t0 = time.perf_counter()
        res = analyze_waveform(
            x, float(rec["sampling_rate_hz"]), units="g", speed_hz=rec["rpm"] / 60.0, bearing=bearing
        )
        ms = (time.perf_counter() - t0) * 1e3
        truth = TRUTH[rec["fault_location"]]
        bearing_dx = [d for d in res.diagnosis if d.startswith("bearing_")]
        if truth is None:
            verdict = "ok" if not bearing_dx else "FALSE ALARM"
        elif truth == "bearing_ball":
            verdict = (
                "ok" if bearing_dx == [truth] else ("missed" if not bearing_dx else "other: " + ",".join(bearing_dx))
            )
        else:
            verdict = "ok" if bearing_dx == [truth] else ("missed" if truth not in bearing_dx else "extra")
        rows.append(
            {
                "record": rec["record"],
                "file": rec["file"],
                "truth": rec["fault_location"],
                "size_in": rec["fault_diameter_in"],
                "load_hp": rec["motor_load_hp"],
                "fs_hz": rec["sampling_rate_hz"],
                "diagnosis": bearing_dx,
                "verdict": verdict,
                "band": res.envelope_band,
                "scores": {k: v.score for k, v in res.bearing.items()},
                "kurtosis": res.features.kurtosis,
                "ms": ms,
            }
        )
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table plus a summary line per fault class."""
    out = [
        "| record | truth | size (in) | load (hp) | fs (Hz) | envelope band (Hz) | diagnosis | "
        "score OR / IR / ball / cage | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        band = r["band"]
        band_s = f"{band.low_hz:.0f}–{band.high_hz:.0f}" if band is not None else "–"  # type: ignore[attr-defined]
        sc = r["scores"]
        assert isinstance(sc, dict)
        scores = " / ".join(f"{sc.get(k, 0.0):.1f}" for k in ("outer_race", "inner_race", "ball", "cage"))
        dx = ", ".join(r["diagnosis"]) or "–"  # type: ignore[arg-type]
        out.append(
            f"| {r['record']} | {r['truth']} | {r['size_in'] or '–'} | {r['load_hp']} | {r['fs_hz']} | "
            f"{band_s} | {dx} | {scores} | {r['verdict']} |"
        )
    out.append("")
    for cls in ("normal", "inner", "outer", "ball"):
        sel = [r for r in rows if r["truth"] == cls]
        ok = sum(1 for r in sel if r["verdict"] == "ok")
        out.append(f"- {cls}: {ok}/{len(sel)} right")
    return "\n".join(out)


def main() -> int:
    """Print the CWRU table for the data directory given as argument (or the default)."""
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    print(markdown(run(data_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
