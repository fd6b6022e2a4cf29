"""The core hot path per poll cycle, in process: frame, summaries, latest values and the raw message.

Each cycle feeds ``--points`` (2000) good float readings of one device through
:meth:`edge_agent.pipeline.Pipeline.on_readings` (the :class:`~edge_agent.telemetry.CycleFrame`, the
summary accumulators and the latest-value cache) and builds the raw-telemetry payload
(:meth:`~edge_agent.telemetry.RawTelemetry.payload`, ``publish_raw: true``; with ``--on-change`` report by
exception with a 0.5 deadband instead). The readings are made before the clock starts, so only the
pipeline's own work is timed. The floor, timed the same way in the same run, is a bare loop that
``json.dumps`` the cycle's values list. The summary close of the same 2000 points is timed separately.

Times are CPU time of this process (``time.process_time_ns``), best of ``--repeat`` runs, in µs per cycle
(close: ms per close).

Run:  .venv/bin/python benchmarks/bench_hot_path.py [--points 2000] [--cycles 3000] [--repeat 5] [--on-change]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from itertools import repeat
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.base import Quality, Reading
from edge_agent.pipeline import Pipeline
from edge_agent.records import Priority
from edge_agent.summaries import SummaryAggregator
from edge_agent.telemetry import RawTelemetry, RawTelemetrySettings

STATISTICS = ["count", "good", "min", "max", "mean", "std", "last", "twa"]
VARIANTS = 16  # distinct value sets, cycled through


def value_sets(points: int, seed: int = 1) -> list[list[float]]:
    """``VARIANTS`` lists of ``points`` floats: a random walk around 100 with 0.1 steps (engineering units)."""
    rng = random.Random(seed)
    base = [rng.uniform(0.0, 200.0) for _ in range(points)]
    out = []
    for _ in range(VARIANTS):
        base = [round(v + rng.gauss(0.0, 0.3), 3) for v in base]
        out.append(base)
    return out


def cycle_readings(names: list[str], values: list[float], ts: float) -> list[Reading]:
    """One cycle of good readings at ``ts`` (epoch s)."""
    return list(map(Reading, names, values, repeat(Quality.GOOD), repeat(ts)))


async def _no_emit(topic: str, body: dict[str, object], priority: Priority) -> None:
    return None


def run_pipeline(points: int, cycles: int, on_change: bool) -> tuple[float, float]:
    """(µs per cycle, ms per summary close) of the pipeline, CPU time."""
    names = [f"p{i:05d}" for i in range(points)]
    keys = [f"plc/{n}" for n in names]
    units = dict.fromkeys(keys, "bar")
    pipeline = Pipeline(SummaryAggregator({"plc": keys}, units, STATISTICS, start_s=0.0), units, _no_emit)
    settings = (RawTelemetrySettings("plc", "on_change", 1, 60.0, (0.5, 0.0)) if on_change
                else RawTelemetrySettings("plc", "every_cycle", 1))
    raw = RawTelemetry(settings, "gw")
    sets = value_sets(points)
    spent = 0
    size = 0
    for k in range(cycles):
        ts = 1.0 + k
        readings = cycle_readings(names, sets[k % VARIANTS], ts)
        t0 = time.process_time_ns()
        frame = pipeline.on_readings("plc", readings)
        payload = raw.payload(frame, ts)
        spent += time.process_time_ns() - t0
        size += len(payload) if payload is not None else 0
    assert size > 0
    t0 = time.process_time_ns()
    closes = asyncio.run(_close(pipeline, float(cycles + 1)))
    close_ns = time.process_time_ns() - t0
    assert closes >= 1  # one record per asset, or several parts for an asset too big for one message
    return spent / cycles / 1e3, close_ns / 1e6


async def _close(pipeline: Pipeline, end_s: float) -> int:
    return await pipeline.close_summary_interval(end_s)


def run_floor(points: int, cycles: int) -> float:
    """µs per cycle of ``json.dumps(values)``, CPU time."""
    names = [f"p{i:05d}" for i in range(points)]
    sets = value_sets(points)
    spent = 0
    size = 0
    for k in range(cycles):
        readings = cycle_readings(names, sets[k % VARIANTS], 1.0 + k)
        t0 = time.process_time_ns()
        text = json.dumps([r.value for r in readings])
        spent += time.process_time_ns() - t0
        size += len(text)
    assert size > 0
    return spent / cycles / 1e3


def main() -> None:
    """Print the best-of-N µs per cycle of the pipeline and of the floor, and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--on-change", action="store_true", help="report by exception (0.5 deadband)")
    args = ap.parse_args()
    best_pipe = best_close = best_floor = float("inf")
    for _ in range(args.repeat):
        pipe_us, close_ms = run_pipeline(args.points, args.cycles, args.on_change)
        floor_us = run_floor(args.points, args.cycles)
        best_pipe, best_close, best_floor = min(best_pipe, pipe_us), min(best_close, close_ms), min(best_floor,
                                                                                                     floor_us)
    mode = "on_change" if args.on_change else "every_cycle"
    print(f"{args.points} points, {args.cycles} cycles, {mode}, best of {args.repeat}: "
          f"pipeline {best_pipe:.0f} us/cycle, floor (json.dumps values) {best_floor:.0f} us/cycle, "
          f"ratio {best_pipe / best_floor:.2f}; summary close {best_close:.1f} ms "
          f"(numpy imported: {'numpy' in sys.modules})")


if __name__ == "__main__":
    main()
