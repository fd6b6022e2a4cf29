"""Where the agent's memory goes over a footprint run: tracemalloc snapshots plus native-memory counters.

Two halves, one module:

- **In the agent.** :func:`agent_env` writes a ``sitecustomize.py`` into a directory and returns the
  environment (``PYTHONTRACEMALLOC``, ``PYTHONPATH``, ``FOOTPRINT_TM_*``) that makes the agent import it;
  ``bench_footprint.py --tracemalloc SECONDS`` passes that environment to the agent. At import the
  sitecustomize calls :func:`install`, which starts a daemon thread that every ``FOOTPRINT_TM_EVERY``
  seconds appends one row to ``timeline.csv`` (see :data:`COLUMNS`: RSS split anonymous/file and by kind
  of mapping (:func:`smaps_breakdown`), the bytes tracemalloc traces and its own overhead, glibc
  ``mallinfo2`` arena/in-use/free/mmap bytes, SQLite's ``sqlite3_memory_used``, gc-tracked objects,
  threads, open fds, sizes of the data directory's SQLite files) and, when tracing, dumps a snapshot
  ``snap-NNNN.pickle``; it also writes ``types-NNNN.json`` (live gc-tracked objects by type).
- **Offline.** ``python benchmarks/footprint_tracemalloc.py DIR [--base N] [--top 30]`` prints the
  timeline with per-hour slopes from row ``--base`` (the first after warm-up) on, the allocation sites
  ranked by the least-squares slope of their size over all snapshots from ``--base`` (with how many
  intervals each grew in: a leak grows in all of them, a per-cycle buffer caught mid-cycle does not), the
  tracebacks of the biggest first-to-last growths, and the object types whose counts grew.

Tracing slows the agent (2-10x CPU under this load) and takes RSS of its own: each snapshot copies the
trace table (tens of MB of glibc arena that stays resident), so read RSS and arena figures only from a
``--tracemalloc-frames 0`` run, and the Python heap only from a traced one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import functools
import gc
import itertools
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

MB = 1024 * 1024
#: Columns of ``timeline.csv``; byte counts unless named otherwise.
COLUMNS = ("t_s", "rss", "rss_anon", "rss_file", "traced", "traced_peak", "tm_overhead", "arena",
           "in_use", "free", "mmap", "sqlite_used", "sqlite_highwater", "gc_objects", "gc_frozen",
           "threads", "fds", "db_files", "heap_rss", "arenas_rss", "other_anon_rss", "file_rss")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


@functools.cache
def _native() -> tuple[object | None, object | None]:
    """glibc's ``mallinfo2`` and the SQLite library the ``_sqlite3`` module links (None when missing)."""
    mallinfo2 = sqlite = None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
        mallinfo2.restype = _MallInfo2
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import _sqlite3

        sqlite = ctypes.CDLL(_sqlite3.__file__)
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return mallinfo2, sqlite


def _status_kb(names: Sequence[str]) -> dict[str, int]:
    out = dict.fromkeys(names, 0)
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        key = line.split(":", 1)[0]
        if key in out:
            out[key] = int(line.split()[1]) * (1024 if line.endswith("kB") else 1)
    return out


#: Non-main glibc malloc arenas are reserved as 64 MiB-aligned mappings (HEAP_MAX_SIZE on 64-bit Linux).
ARENA_ALIGN = 64 * MB


def smaps_breakdown(pid: int | str = "self") -> dict[str, int]:
    """Resident bytes of process ``pid`` by kind of mapping, from ``/proc/PID/smaps``: ``heap_rss`` (the
    brk heap: glibc's main arena), ``arenas_rss`` (anonymous mappings starting on a 64 MiB boundary: the
    arenas of other threads), ``other_anon_rss`` (the rest of the anonymous memory: CPython's 1 MiB object
    arenas, malloc's mmap'd big blocks, thread stacks) and ``file_rss`` (libraries and mapped files)."""
    out = {"heap_rss": 0, "arenas_rss": 0, "other_anon_rss": 0, "file_rss": 0}
    kind = "file_rss"
    for line in Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8", errors="replace").splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5].strip() if len(head) > 5 else ""
            start = int(head[0].split("-")[0], 16)
            if name == "[heap]":
                kind = "heap_rss"
            elif name.startswith("/") or (name.startswith("[") and name != "[stack]"):
                kind = "file_rss"
            else:
                kind = "arenas_rss" if not name and start % ARENA_ALIGN == 0 else "other_anon_rss"
        elif head[0] == "Rss:":
            out[kind] += int(head[1]) * 1024
    return out


def sample_row(t_s: float, db_dir: Path | None) -> dict[str, int | float]:
    """One timeline row for this process at ``t_s`` (s since :func:`install`): see :data:`COLUMNS`."""
    mallinfo2, sqlite = _native()
    st = _status_kb(("VmRSS", "RssAnon", "RssFile", "Threads"))
    traced, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    row: dict[str, int | float] = {
        "t_s": round(t_s, 1), "rss": st["VmRSS"], "rss_anon": st["RssAnon"], "rss_file": st["RssFile"],
        "traced": traced, "traced_peak": peak, "tm_overhead": tracemalloc.get_tracemalloc_memory(),
        "arena": 0, "in_use": 0, "free": 0, "mmap": 0, "sqlite_used": -1, "sqlite_highwater": -1,
        "gc_objects": len(gc.get_objects()), "gc_frozen": gc.get_freeze_count(), "threads": st["Threads"],
        "fds": len(os.listdir("/proc/self/fd")), "db_files": 0,
    }
    row.update(smaps_breakdown())
    if mallinfo2 is not None:
        info = mallinfo2()  # type: ignore[operator]
        row.update(arena=info.arena, in_use=info.uordblks, free=info.fordblks, mmap=info.hblkhd)
    if sqlite is not None:
        row.update(sqlite_used=sqlite.sqlite3_memory_used(),  # type: ignore[attr-defined]
                   sqlite_highwater=sqlite.sqlite3_memory_highwater(0))  # type: ignore[attr-defined]
    if db_dir is not None and db_dir.is_dir():
        row["db_files"] = sum(p.stat().st_size for p in db_dir.rglob("*")
                              if p.is_file() and p.name.endswith((".db", ".sqlite", "-wal", "-shm")))
    return row


def type_counts() -> dict[str, int]:
    """Live gc-tracked objects (not frozen ones) by ``module.qualname`` of their type."""
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return dict(counts)


def _loop(out: Path, every_s: float, db_dir: Path | None) -> None:
    t0 = time.monotonic()
    n = 0
    with (out / "timeline.csv").open("a", encoding="ascii", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        while True:
            writer.writerow(sample_row(time.monotonic() - t0, db_dir))
            handle.flush()
            if tracemalloc.is_tracing():
                snap = tracemalloc.take_snapshot()
                snap.dump(str(out / f"snap-{n:04d}.pickle"))
                del snap
            (out / f"types-{n:04d}.json").write_text(json.dumps(type_counts()), encoding="utf-8")
            n += 1
            time.sleep(every_s)


def install() -> None:
    """Start the sampling thread when ``FOOTPRINT_TM_DIR`` is set (period ``FOOTPRINT_TM_EVERY`` s,
    default 300; SQLite files measured under ``FOOTPRINT_TM_DB_DIR``). Called by the sitecustomize."""
    where = os.environ.get("FOOTPRINT_TM_DIR")
    if not where:
        return
    out = Path(where)
    out.mkdir(parents=True, exist_ok=True)
    db = os.environ.get("FOOTPRINT_TM_DB_DIR")
    thread = threading.Thread(target=_loop, name="footprint-tracemalloc", daemon=True,
                              args=(out, float(os.environ.get("FOOTPRINT_TM_EVERY", "300")),
                                    Path(db) if db else None))
    thread.start()


def agent_env(site_dir: Path, out_dir: Path, every_s: float, frames: int = 1,
              db_dir: Path | None = None) -> dict[str, str]:
    """Write ``site_dir/sitecustomize.py`` and return the environment that makes a Python process sample
    into ``out_dir`` every ``every_s`` seconds and trace allocations with ``frames`` frames (``frames=0``:
    no tracing, only the timeline and type counts, for RSS that tracing does not inflate). An inherited
    ``PYTHONPATH`` is kept after ``site_dir``."""
    site_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    (site_dir / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(here)!r})\n"
        "import footprint_tracemalloc\nfootprint_tracemalloc.install()\n", encoding="utf-8")
    path = os.pathsep.join(p for p in (str(site_dir), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "FOOTPRINT_TM_DIR": str(out_dir), "FOOTPRINT_TM_EVERY": f"{every_s:g}"}
    if frames > 0:
        env["PYTHONTRACEMALLOC"] = str(frames)
    if db_dir is not None:
        env["FOOTPRINT_TM_DB_DIR"] = str(db_dir)
    return env


# -------------------------------------------------------------------------------------------- offline
def read_timeline(path: Path) -> list[dict[str, float]]:
    """The rows of a ``timeline.csv``, as numbers."""
    with path.open(encoding="ascii") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def slope_per_h(rows: Sequence[dict[str, float]], column: str) -> float:
    """Least-squares slope of ``column`` against ``t_s``, in units per hour (0 with fewer than 2 rows)."""
    if len(rows) < 2:
        return 0.0
    ts = [r["t_s"] for r in rows]
    ys = [r[column] for r in rows]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    sxx = sum((t - mt) ** 2 for t in ts)
    return 0.0 if sxx == 0 else 3600 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / sxx


def _frame(frame: tracemalloc.Frame) -> str:
    parts = Path(frame.filename).parts
    short = "/".join(parts[-3:]) if "site-packages" in parts or "python3.11" in parts else "/".join(parts[-2:])
    return f"{short}:{frame.lineno}"


def _site(stat: tracemalloc.StatisticDiff) -> str:
    return _frame(stat.traceback[0])


def _snapshot_lines(snaps: Sequence[Path], times_s: Sequence[float], top: int, tracebacks: int) -> list[str]:
    """Per-site growth over a series of snapshots (``times_s``: when each was taken, s)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, __file__, all_frames=True),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    sizes: dict[str, list[float]] = {}
    blocks: dict[str, int] = {}
    totals: list[dict[str, float]] = []
    first = last = None
    for n, path in enumerate(snaps):
        snap = tracemalloc.Snapshot.load(str(path)).filter_traces(ignore)
        for stat in snap.statistics("lineno"):
            site = _frame(stat.traceback[0])
            sizes.setdefault(site, [0.0] * len(snaps))[n] = stat.size
            if n == len(snaps) - 1:
                blocks[site] = stat.count
        totals.append({"t_s": times_s[n], "traced": float(sum(sizes[k][n] for k in sizes))})
        if n == 0:
            first = snap
        last = snap
    assert first is not None and last is not None
    rows = []
    for site, series in sizes.items():
        points = [{"t_s": t, "size": size} for t, size in zip(times_s, series, strict=False)]
        grew = sum(b > a for a, b in itertools.pairwise(series))
        rows.append((slope_per_h(points, "size"), site, series, grew))
    rows.sort(key=lambda r: -r[0])
    lines = ["", f"tracemalloc, {len(snaps)} snapshots {snaps[0].name} (t={times_s[0]:.0f} s) .. {snaps[-1].name} "
             f"(t={times_s[len(snaps) - 1]:.0f} s): traced {totals[0]['traced'] / MB:.2f} -> "
             f"{totals[-1]['traced'] / MB:.2f} MB, slope {slope_per_h(totals, 'traced') / MB:+.3f} MB/h. "
             f"Top {top} sites by least-squares slope:", "",
             "| site | first KiB | last KiB | slope KiB/h | intervals grown | blocks now |",
             "|---|---:|---:|---:|---:|---:|"]
    for slope, site, series, grew in rows[:top]:
        lines.append(f"| `{site}` | {series[0] / 1024:.1f} | {series[-1] / 1024:.1f} | {slope / 1024:+.1f} | "
                     f"{grew}/{len(series) - 1} | {blocks.get(site, 0)} |")
    for d in sorted(last.compare_to(first, "traceback"), key=lambda d: -d.size_diff)[:tracebacks]:
        if d.size_diff <= 0:
            break
        where = " <- ".join(_frame(f) for f in reversed(d.traceback))  # most recent call first
        lines.append(f"\nFirst to last {d.size_diff / 1024:+.1f} KiB ({d.count_diff:+d} blocks) at {where}")
    shrunk = rows[-5:][::-1]
    lines += ["", "Fastest shrinking: " + ", ".join(f"`{site}` {slope / 1024:+.1f} KiB/h"
                                                   for slope, site, _, _ in shrunk)]
    return lines


def report(out: Path, base: int, top: int, tracebacks: int = 5) -> str:
    """The Markdown summary of one probe directory (see the module docstring), with the whole traceback of
    the ``tracebacks`` fastest-growing allocations."""
    lines: list[str] = []
    rows = read_timeline(out / "timeline.csv")
    after = rows[base:]
    lines += ["| t s | RSS MB | anon | traced | tm overhead | arena | in use | free | mmap | sqlite | "
              "gc objs | fds | db files MB |", "|" + "---:|" * 13]
    for r in rows:
        lines.append(f"| {r['t_s']:.0f} | {r['rss'] / MB:.1f} | {r['rss_anon'] / MB:.1f} | "
                     f"{r['traced'] / MB:.2f} | {r['tm_overhead'] / MB:.1f} | {r['arena'] / MB:.1f} | "
                     f"{r['in_use'] / MB:.2f} | {r['free'] / MB:.2f} | {r['mmap'] / MB:.1f} | "
                     f"{r['sqlite_used'] / MB:.2f} | {r['gc_objects']:.0f} | {r['fds']:.0f} | "
                     f"{r['db_files'] / MB:.2f} |")
    lines += ["", f"Slopes from row {base} on ({len(after)} rows), per hour:", ""]
    for column in ("rss", "rss_anon", "traced", "tm_overhead", "arena", "in_use", "free", "mmap",
                   "sqlite_used", "db_files", "heap_rss", "arenas_rss", "other_anon_rss", "file_rss"):
        if rows and column in rows[0]:
            lines.append(f"- {column}: {slope_per_h(after, column) / MB:+.3f} MB/h")
    lines.append(f"- gc_objects: {slope_per_h(after, 'gc_objects'):+.0f} objects/h")
    snaps = sorted(out.glob("snap-*.pickle"))[base:]
    if len(snaps) > 1:
        lines += _snapshot_lines(snaps, [r["t_s"] for r in after], top, tracebacks)
    types = sorted(out.glob("types-*.json"))
    if len(types) > base + 1:
        ta = json.loads(types[base].read_text(encoding="utf-8"))
        tb = json.loads(types[-1].read_text(encoding="utf-8"))
        grew = sorted(((tb.get(k, 0) - ta.get(k, 0), k) for k in set(ta) | set(tb)), reverse=True)[:15]
        lines += ["", f"gc-tracked object types, {types[base].name} -> {types[-1].name} (count now, change):",
                  ""] + [f"- `{k}`: {tb.get(k, 0)} ({n:+d})" for n, k in grew if n]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`report` for a probe directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the probe directory (FOOTPRINT_TM_DIR)")
    parser.add_argument("--base", type=int, default=1, help="first row/snapshot after warm-up (default 1)")
    parser.add_argument("--top", type=int, default=30, help="allocation sites to list (default 30)")
    parser.add_argument("--tracebacks", type=int, default=5,
                        help="fastest-growing allocations to show with their traceback (default 5)")
    args = parser.parse_args(argv)
    sys.stdout.write(report(args.dir, args.base, args.top, args.tracebacks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
