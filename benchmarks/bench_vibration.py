"""Speed and memory of the full vibration analysis of one 16 384-sample waveform.

Usage: ``.venv/bin/python benchmarks/bench_vibration.py [--waveforms 10000]``

Times, on one core, ``analyze_waveform`` (features, spectrum, velocity, running speed, harmonics,
envelope, bearing detection) with a configured envelope band and with the band chosen by spectral
kurtosis, against one bare ``numpy.fft.rfft`` of the same length in the same run. Then analyses
``--waveforms`` captures in a row and reports the resident memory after the first 10 % and at the
end: a flat line means no per-waveform growth. Targets: < 3 ms configured, < 10 ms automatic band.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from diagnostics.bearing_geometry import bearing_by_name
from diagnostics.vibration import analyze_waveform
from drivers.sim.vibration import MachineVibration, Scenario

FS_HZ = 12_800.0
N = 16_384
SHAFT_HZ = 29.95


def best_of(fn: Callable[[], object], repeats: int, inner: int) -> tuple[float, float, float]:
    """(median wall, minimum wall, median CPU) seconds per call of ``fn`` over ``repeats`` batches of ``inner``.

    CPU time (process_time) is reported because a shared 2-core gateway inflates wall time with waits
    for the other processes; the ratio to rfft is taken on CPU time for the same reason.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(inner):
            fn()
        wall.append((time.perf_counter() - t0) / inner)
        cpu.append((time.process_time() - c0) / inner)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    """Run the benchmark and print a Markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--waveforms", type=int, default=10_000, help="waveforms for the memory check")
    args = ap.parse_args()
    sim = MachineVibration(FS_HZ, SHAFT_HZ, scenario=Scenario.OUTER_RACE, seed=1, noise_g=0.5, ramp_s=1.0)
    x = sim.capture(10.0, N)
    bearing = bearing_by_name("SKF-6205")
    band = (2400.0, 3600.0)

    def configured() -> object:
        return analyze_waveform(x, FS_HZ, speed_hz=SHAFT_HZ, bearing=bearing, envelope_band_hz=band)

    def automatic() -> object:
        return analyze_waveform(x, FS_HZ, speed_hz=SHAFT_HZ, bearing=bearing)

    def estimated_speed() -> object:
        return analyze_waveform(x, FS_HZ, nominal_speed_hz=SHAFT_HZ * 1.02, bearing=bearing)

    for fn in (configured, automatic):  # warm caches (windows, FFT plans)
        fn()
    rfft_med, rfft_min, rfft_cpu = best_of(lambda: np.fft.rfft(x), 15, 200)
    rows = []
    for name, fn in (
        ("configured band", configured),
        ("automatic band (spectral kurtosis)", automatic),
        ("automatic band, estimated speed", estimated_speed),
    ):
        med, mn, cpu = best_of(fn, 15, 20)
        rows.append((name, med, mn, cpu))
    print(f"# bench_vibration: {N} samples at {FS_HZ:g} Hz, one core (pid {os.getpid()})\n")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(
        f"bare numpy.fft.rfft({N}): wall median {rfft_med * 1e3:.3f} ms, min {rfft_min * 1e3:.3f} ms, "
        f"CPU median {rfft_cpu * 1e3:.3f} ms\n"
    )
    print("| analysis | wall median ms | wall min ms | CPU median ms | CPU × rfft CPU | waveforms/s (CPU) |")
    print("|---|---|---|---|---|---|")
    for name, med, mn, cpu in rows:
        print(f"| {name} | {med * 1e3:.2f} | {mn * 1e3:.2f} | {cpu * 1e3:.2f} | {cpu / rfft_cpu:.0f} | {1 / cpu:.0f} |")
    res = configured()
    print(f"\nresult check: diagnosis {getattr(res, 'diagnosis', None)}")

    n = args.waveforms
    rng = np.random.default_rng(0)
    marks: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for i in range(n):
        xi = x + rng.normal(0.0, 0.01, N)
        analyze_waveform(xi, FS_HZ, speed_hz=SHAFT_HZ, bearing=bearing, envelope_band_hz=band)
        if i + 1 in (max(1, n // 10), n // 2, n):
            marks.append((i + 1, rss_mib()))
    elapsed = time.perf_counter() - t0
    print(f"\nmemory over {n} waveforms ({elapsed:.1f} s, {n / elapsed:.0f} waveforms/s incl. noise generation):")
    for count, mib in marks:
        print(f"- after {count:>6} waveforms: RSS {mib:.1f} MiB")
    growth = marks[-1][1] - marks[0][1]
    print(f"- growth from first mark to end: {growth:+.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
