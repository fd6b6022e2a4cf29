"""Prometheus metric types and their text exposition, small enough to read in one sitting.

Counter, Gauge, Histogram and Info with bounded label sets, a registry that keeps collectors in
registration order, and the renderers for the text format 0.0.4 and OpenMetrics 1.0.0. Output follows
prometheus-client's byte for byte (minus its ``_created`` series); the tests check that with its parsers.
Why not prometheus-client itself: see :mod:`edge_agent.metrics`.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)
#: Most label sets one metric keeps; observations for more are dropped (and logged once).
MAX_SERIES = 1000

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


# ----------------------------------------------------------------------------------------------- exposition
@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric family at scrape time: OpenMetrics ``name`` (no ``_total``/``_info``), ``kind``
    (counter, gauge, histogram, info), help text and samples ``(sample name, sorted labels, value)``."""

    name: str
    kind: str
    documentation: str
    samples: tuple[tuple[str, Labels, float], ...]


class Collector(Protocol):
    """Anything that yields :class:`MetricFamily` snapshots when scraped."""

    def collect(self) -> Iterable[MetricFamily]:
        """The collector's families, read now."""
        ...


def format_value(value: float) -> str:
    """A sample value as Go's Prometheus libraries print it (``+Inf``, ``NaN``, ``1.5e+06``; no unit)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python's repr
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def escape_label_value(value: str) -> str:
    """A label value with backslash, double quote and newline escaped (both exposition formats)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample_line(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{escape_label_value(val)}"' for key, val in labels)
        return f"{name}{{{inner}}} {format_value(value)}\n"
    return f"{name} {format_value(value)}\n"


def render_text(families: Iterable[MetricFamily]) -> bytes:
    """Prometheus text exposition format 0.0.4: HELP and TYPE lines, then one line per sample."""
    out: list[str] = []
    for family in families:
        name, kind = family.name, family.kind
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        out.extend(_sample_line(*sample) for sample in family.samples)
    return "".join(out).encode("utf-8")


def render_openmetrics(families: Iterable[MetricFamily]) -> bytes:
    """OpenMetrics 1.0.0 text: like 0.0.4, but families keep their bare names and the body ends in ``# EOF``."""
    out: list[str] = []
    for family in families:
        out.append(f"# HELP {family.name} {escape_label_value(family.documentation)}\n"
                   f"# TYPE {family.name} {family.kind}\n")
        out.extend(_sample_line(*sample) for sample in family.samples)
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def wants_openmetrics(accept: str) -> bool:
    """True when an HTTP ``Accept`` header lists ``application/openmetrics-text`` (any version >= 1)."""
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        if media == "application/openmetrics-text":
            version = next((p.split("=", 1)[1] for p in params if p.startswith("version=")), "")
            if not version or not version.startswith("0."):
                return True
    return False


# ----------------------------------------------------------------------------------------------- metrics
class _Metric:
    """Shared part of the metric types: name, help, label names and the bounded set of label values."""

    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: MetricsRegistry | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], _Value] = {}
        self._overflowed = False
        if not self.labelnames:
            self._children[()] = self._new_value()
        if registry is not None:
            registry.register(self)

    def _new_value(self) -> _Value:
        return _Value(self._lock)

    def _child(self, *values: object, **by_name: object) -> _Value:
        if by_name:
            if values or set(by_name) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels must be exactly {self.labelnames}, got {sorted(by_name)}")
            values = tuple(by_name[n] for n in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label value(s), got {len(values)}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._new_value()
                    if len(self._children) < MAX_SERIES:
                        self._children[key] = child
                    elif not self._overflowed:
                        self._overflowed = True
                        log.warning("metric %s has %d label sets; dropping observations for new ones (%s)",
                                    self.name, MAX_SERIES, dict(zip(self.labelnames, key, strict=True)))
        return child

    def remove(self, *values: object) -> None:
        """Drop the series of one label set (e.g. a device removed by a config change); no-op if absent."""
        with self._lock:
            self._children.pop(tuple(str(v) for v in values), None)

    def _series(self) -> list[tuple[Labels, _Value]]:
        with self._lock:
            return [(tuple(zip(self.labelnames, key, strict=True)), child) for key, child in self._children.items()]

    def collect(self) -> Iterable[MetricFamily]:
        """This metric's family with every label set's samples, read now."""
        samples: list[tuple[str, Labels, float]] = []
        for labels, child in self._series():
            samples.extend(self._samples(labels, child))
        yield MetricFamily(self.name, self.kind, self.documentation, tuple(samples))

    def _samples(self, labels: Labels, child: _Value) -> Iterable[tuple[str, Labels, float]]:
        return [(self.name, tuple(sorted(labels)), child.value)]


class _Value:
    """One series' value (counter or gauge), guarded by its metric's lock."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (same unit as the metric)."""
        if amount < 0:
            raise ValueError(f"counters only go up: inc({amount})")
        with self._lock:
            self.value += amount

    def set(self, value: float) -> None:
        """Set the gauge to ``value`` (same unit as the metric)."""
        self.value = float(value)

    def add(self, amount: float) -> None:
        """Add ``amount`` (may be negative: gauges only)."""
        with self._lock:
            self.value += amount


class Counter(_Metric):
    """A monotonically increasing count, exported as ``<name>_total``."""

    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: MetricsRegistry | None = None) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def labels(self, *values: object, **by_name: object) -> _Value:
        """The series of one label set (created on first use): call ``.inc()`` on it."""
        return self._child(*values, **by_name)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to an unlabelled counter."""
        self._children[()].inc(amount)

    def _samples(self, labels: Labels, child: _Value) -> Iterable[tuple[str, Labels, float]]:
        return [(self.name + "_total", tuple(sorted(labels)), child.value)]


class _GaugeValue(_Value):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (same unit as the gauge)."""
        self.add(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount`` (same unit as the gauge)."""
        self.add(-amount)


class Gauge(_Metric):
    """A value that goes up and down (set, inc, dec)."""

    kind = "gauge"

    def _new_value(self) -> _Value:
        return _GaugeValue(self._lock)

    def labels(self, *values: object, **by_name: object) -> _GaugeValue:
        """The series of one label set (created on first use): call ``.set()`` on it."""
        child = self._child(*values, **by_name)
        assert isinstance(child, _GaugeValue)
        return child

    def set(self, value: float) -> None:
        """Set an unlabelled gauge to ``value`` (same unit as the gauge)."""
        self._children[()].set(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to an unlabelled gauge."""
        self._children[()].add(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount`` from an unlabelled gauge."""
        self._children[()].add(-amount)


class _HistogramValue(_Value):
    """Per-bucket counts (not cumulative) and the sum of one series."""

    __slots__ = ("bounds", "counts")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        super().__init__(lock)
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` (the histogram's unit) in its bucket and the sum; NaN is
        ignored (it would make the sum NaN for good)."""
        if value != value:
            return
        index = bisect.bisect_left(self.bounds, value)  # le is inclusive: value == bound falls in that bucket
        with self._lock:
            self.counts[index] += 1
            self.value += value


class Histogram(_Metric):
    """Observations counted in fixed buckets (``_bucket{le=...}``, cumulative), with ``_count`` and ``_sum``."""

    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 buckets: Sequence[float], registry: MetricsRegistry | None = None) -> None:
        bounds = tuple(sorted(float(b) for b in buckets if b != math.inf))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct and non-empty, got {buckets}")
        if "le" in labelnames:
            raise ValueError(f"{name}: 'le' is reserved for bucket bounds")
        self.bounds = bounds
        super().__init__(name, documentation, labelnames, registry)

    def _new_value(self) -> _Value:
        return _HistogramValue(self._lock, self.bounds)

    def labels(self, *values: object, **by_name: object) -> _HistogramValue:
        """The series of one label set (created on first use): call ``.observe()`` on it."""
        child = self._child(*values, **by_name)
        assert isinstance(child, _HistogramValue)
        return child

    def observe(self, value: float) -> None:
        """Count one observation of an unlabelled histogram (the histogram's unit)."""
        child = self._children[()]
        assert isinstance(child, _HistogramValue)
        child.observe(value)

    def _samples(self, labels: Labels, child: _Value) -> Iterable[tuple[str, Labels, float]]:
        assert isinstance(child, _HistogramValue)
        with self._lock:
            counts, total = list(child.counts), child.value
        out: list[tuple[str, Labels, float]] = []
        cumulative = 0
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            cumulative += count
            out.append((self.name + "_bucket", tuple(sorted((*labels, ("le", format_value(bound))))),
                        float(cumulative)))
        plain = tuple(sorted(labels))
        out.append((self.name + "_count", plain, float(cumulative)))
        out.append((self.name + "_sum", plain, total))
        return out


class Info(_Metric):
    """Constant key-value facts (version...), exported as ``<name>_info{...} 1``."""

    kind = "info"

    def __init__(self, name: str, documentation: str, registry: MetricsRegistry | None = None) -> None:
        self._info: Labels = ()
        super().__init__(name, documentation, (), registry)

    def info(self, values: dict[str, str]) -> None:
        """Set the facts (label name to value)."""
        self._info = tuple(sorted((k, str(v)) for k, v in values.items()))

    def collect(self) -> Iterable[MetricFamily]:
        """The info family: one sample of value 1 with the facts as labels."""
        yield MetricFamily(self.name, self.kind, self.documentation, ((self.name + "_info", self._info, 1.0),))


class MetricsRegistry:
    """The metrics and collectors of one agent, in registration order (the order of the exposition)."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        """Add a metric or collector."""
        with self._lock:
            self._collectors.append(collector)

    def collect(self) -> Iterator[MetricFamily]:
        """Every family of every collector, read now."""
        with self._lock:
            collectors = list(self._collectors)
        for collector in collectors:
            yield from collector.collect()
