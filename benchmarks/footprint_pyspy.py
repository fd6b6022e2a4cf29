"""Where the agent's CPU goes: ``py-spy record`` on its process, summarised as the hottest frames.

:func:`profile` runs ``py-spy record --nonblocking --format raw`` (collapsed stacks: ``frame;frame;... N``,
idle threads not sampled) and :func:`hottest_frames` turns the stacks into per-function shares: *self* (the
function was on top of the stack) and *total* (it was anywhere on the stack, counted once per stack), in
% of the samples of running threads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")
_SITE = re.compile(r"^.*/(?:site|dist)-packages/")
_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


@dataclass(frozen=True, slots=True)
class FrameCost:
    """One function's share of the samples: ``self_pct`` on top of the stack, ``total_pct`` anywhere."""

    frame: str
    self_pct: float
    total_pct: float


def short_frame(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file path relative to the repo or site-packages)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = _SITE.sub("", match["file"]).removeprefix(_ROOT)
    path = re.sub(r"^.*/lib/python3\.\d+/", "stdlib/", path)
    return f"{match['func']} ({path})"


def parse_collapsed(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``a;b;c 12``) -> sample count per stack of shortened frames, outermost first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise ValueError(f"not a collapsed-stack line: {line[:200]!r}")
        stacks[tuple(short_frame(f) for f in stack.split(";"))] += int(count)
    return stacks


def hottest_frames(stacks: Counter[tuple[str, ...]], top: int = 15) -> list[FrameCost]:
    """The ``top`` functions by self share, then by total share (% of all samples)."""
    total = sum(stacks.values())
    if total == 0:
        return []
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        self_counts[stack[-1]] += count
        for frame in set(stack):
            total_counts[frame] += count
    ranked = sorted(total_counts, key=lambda f: (self_counts[f], total_counts[f]), reverse=True)[:top]
    return [FrameCost(f, 100.0 * self_counts[f] / total, 100.0 * total_counts[f] / total) for f in ranked]


#: Which part of the agent a stack belongs to: the first marker found anywhere in it names the part.
SUBSYSTEMS: tuple[tuple[str, str], ...] = (
    ("diagnostics/", "vibration analysis (worker thread)"),
    ("asyncua/", "OPC UA (asyncua: sessions, subscriptions, waveform arrays)"),
    ("drivers/opcua/", "OPC UA (asyncua: sessions, subscriptions, waveform arrays)"),
    ("pymodbus/", "Modbus (pymodbus and the driver's block decode)"),
    ("drivers/modbus/", "Modbus (pymodbus and the driver's block decode)"),
    ("edge_agent/outbox/", "outbox (SQLite)"),
    ("paho/", "publisher (paho MQTT)"),
    ("edge_agent/publisher", "publisher (paho MQTT)"),
    ("edge_agent/pipeline", "pipeline, summaries, alarms"),
    ("edge_agent/summaries", "pipeline, summaries, alarms"),
    ("edge_agent/alarm_stage", "pipeline, summaries, alarms"),
    ("edge_agent/health", "health and metrics endpoint"),
    ("prometheus_client/", "health and metrics endpoint"),
)


def by_subsystem(stacks: Counter[tuple[str, ...]]) -> list[tuple[str, float]]:
    """Share of the samples (%) per part of the agent (:data:`SUBSYSTEMS`; the rest is the event loop
    itself and everything else), largest first."""
    total = sum(stacks.values())
    if total == 0:
        return []
    parts: Counter[str] = Counter()
    for stack, count in stacks.items():
        joined = ";".join(stack)
        part = next((name for marker, name in SUBSYSTEMS if marker in joined), "event loop and other")
        parts[part] += count
    return [(name, 100.0 * count / total) for name, count in parts.most_common()]


def py_spy_binary() -> str:
    """The py-spy next to this interpreter, else the one on PATH; RuntimeError when there is none."""
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return found


@dataclass(frozen=True, slots=True)
class Profile:
    """What :func:`profile` found: the hottest ``frames``, the share of each ``subsystem`` (%), and the
    number of ``samples`` of running threads."""

    frames: list[FrameCost]
    subsystems: list[tuple[str, float]]
    samples: int


def profile(pid: int, seconds: float, output: Path, rate_hz: int = 100, top: int = 15) -> Profile:
    """Sample process ``pid`` for ``seconds`` (at ``rate_hz``) without pausing it. RuntimeError with
    py-spy's message when it cannot attach (e.g. no ptrace permission)."""
    argv = [py_spy_binary(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(rate_hz), "--format", "raw", "--nonblocking", "--output", str(output)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0 or not output.exists():
        message = (done.stderr or done.stdout).strip()[-1000:]
        raise RuntimeError(f"py-spy exited with {done.returncode}: {message}")
    with output.open(encoding="utf-8", errors="replace") as lines:
        stacks = parse_collapsed(lines)
    return Profile(hottest_frames(stacks, top), by_subsystem(stacks), sum(stacks.values()))
