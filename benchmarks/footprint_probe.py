"""What the footprint benchmark measures about the agent process, from outside it.

- :func:`read_proc` — CPU seconds (``utime + stime`` of ``/proc/PID/stat``), RSS (``VmRSS``) and peak RSS
  (``VmHWM``) of a process at one instant;
- :func:`cpu_percent` — mean CPU % of one core between two samples;
- :func:`rss_trend` — least-squares slope of RSS over time (bytes/s) with its standard error;
- :func:`histogram_buckets` / :func:`bucket_delta` / :func:`quantile` — a Prometheus histogram scraped
  from ``/metrics``, the observations between two scrapes, and a quantile of them: the upper bound of the
  bucket it falls in (a guaranteed upper bound) and the linear interpolation inside that bucket
  (what Prometheus' ``histogram_quantile`` computes);
- :func:`counter_values` — the samples of a counter or gauge, by label set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One look at a process: at monotonic time ``t_s`` (s) it had used ``cpu_s`` CPU seconds (user plus
    system), had ``rss_bytes`` resident and a peak of ``hwm_bytes``."""

    t_s: float
    cpu_s: float
    rss_bytes: int
    hwm_bytes: int


def read_proc(pid: int, t_s: float, proc: Path = Path("/proc")) -> ProcSample:
    """Sample process ``pid`` (stamped with the caller's monotonic ``t_s``, s); raises ProcessLookupError
    when the process is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="ascii")
        status = (proc / str(pid) / "status").read_text(encoding="ascii")
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
          if line.startswith(("VmRSS:", "VmHWM:"))}
    return ProcSample(t_s, (utime + stime) / CLOCK_TICKS_PER_S, kb.get("VmRSS", 0) * 1024,
                      kb.get("VmHWM", 0) * 1024)


def cpu_percent(first: ProcSample, last: ProcSample) -> float:
    """Mean CPU use between two samples of one process, in % of one core."""
    wall_s = last.t_s - first.t_s
    if wall_s <= 0:
        raise ValueError(f"samples must be in time order ({first.t_s} s, then {last.t_s} s)")
    return 100.0 * (last.cpu_s - first.cpu_s) / wall_s


@dataclass(frozen=True, slots=True)
class Trend:
    """A least-squares line through (t, y): ``slope`` per second, its standard error ``stderr`` (same
    unit; ``inf`` with fewer than three points) and the number of points ``n``."""

    slope: float
    stderr: float
    n: int


def rss_trend(samples: Sequence[ProcSample]) -> Trend:
    """Slope of RSS against time (bytes/s) over ``samples`` (at least two, at distinct times)."""
    if len(samples) < 2:
        raise ValueError(f"a trend needs at least two samples, got {len(samples)}")
    ts = [s.t_s for s in samples]
    ys = [float(s.rss_bytes) for s in samples]
    n = len(ts)
    t_mean, y_mean = sum(ts) / n, sum(ys) / n
    sxx = sum((t - t_mean) ** 2 for t in ts)
    if sxx == 0:
        raise ValueError("the samples must not all be taken at the same time")
    slope = sum((t - t_mean) * (y - y_mean) for t, y in zip(ts, ys, strict=True)) / sxx
    if n < 3:
        return Trend(slope, math.inf, n)
    residual = sum((y - (y_mean + slope * (t - t_mean))) ** 2 for t, y in zip(ts, ys, strict=True))
    return Trend(slope, math.sqrt(residual / (n - 2) / sxx), n)


def _labels(sample_labels: Mapping[str, str], drop: str = "le") -> LabelSet:
    return tuple(sorted((k, v) for k, v in sample_labels.items() if k != drop))


def histogram_buckets(text: str, name: str, where: Mapping[str, str] | None = None) -> dict[float, float]:
    """Cumulative bucket counts (upper bound in the metric's unit -> observations at or below it) of
    histogram ``name`` in the Prometheus exposition ``text``, summed over every label set that matches
    ``where`` (all label sets when None). Empty when the histogram is not there."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name or family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            if where and any(sample.labels.get(k) != v for k, v in where.items()):
                continue
            bound = float(sample.labels["le"])
            out[bound] = out.get(bound, 0.0) + sample.value
    return dict(sorted(out.items()))


def histogram_label_values(text: str, name: str, label: str) -> list[str]:
    """The values label ``label`` takes in histogram ``name`` (e.g. every ``device``), sorted."""
    values: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            values.update(s.labels[label] for s in family.samples if label in s.labels)
    return sorted(values)


def bucket_delta(before: Mapping[float, float], after: Mapping[float, float]) -> dict[float, float]:
    """Observations that arrived between two scrapes of one cumulative histogram (bucket by bucket)."""
    return {bound: count - before.get(bound, 0.0) for bound, count in sorted(after.items())}


@dataclass(frozen=True, slots=True)
class Quantile:
    """A quantile of a bucketed histogram: ``upper_bound`` of the bucket it lies in (``inf`` when beyond
    the last finite bound), ``interpolated`` linearly inside that bucket, and ``count`` observations."""

    upper_bound: float
    interpolated: float
    count: float


def quantile(buckets: Mapping[float, float], q: float) -> Quantile:
    """Quantile ``q`` (0 < q < 1) of cumulative ``buckets`` (upper bound -> count, ``+Inf`` included)."""
    if not 0 < q < 1:
        raise ValueError(f"{q=} must be between 0 and 1")
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return Quantile(math.nan, math.nan, 0.0)
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return Quantile(math.inf, lower_bound, total)
            inside = count - lower_count
            fraction = (rank - lower_count) / inside if inside > 0 else 1.0
            return Quantile(bound, lower_bound + (bound - lower_bound) * fraction, total)
        lower_bound, lower_count = bound, count
    return Quantile(math.inf, lower_bound, total)  # pragma: no cover - the +Inf bucket holds the total


def counter_values(text: str, name: str) -> dict[LabelSet, float]:
    """Every sample of counter or gauge ``name`` in ``text`` by its label set (a counter's ``_total``
    sample is what is returned for it)."""
    out: dict[LabelSet, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name in (name, f"{name}_total"):
                out[_labels(sample.labels, drop="")] = sample.value
    return out


def counter_total(text: str, name: str, where: Mapping[str, str] | None = None) -> float:
    """The sum of counter/gauge ``name`` over the label sets matching ``where`` (all when None)."""
    return sum(value for labels, value in counter_values(text, name).items()
               if not where or all((k, v) in labels for k, v in where.items()))
