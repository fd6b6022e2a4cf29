"""The agent's Prometheus metrics, in a registry the agent owns, rendered by the agent itself.

Why not prometheus-client: importing it costs 4.6 MB of RSS (it drags in http.server, wsgiref, email and
urllib) out of a 60 MB budget for a Modbus-only gateway, and the exposition format is ~100 lines.
The tests still parse ``/metrics`` with prometheus-client's reference parser (a ``dev`` dependency).

One :class:`AgentMetrics` per running agent; its parts update the metric objects directly or through the
``observe_*`` helpers, and :mod:`edge_agent.health` serves :meth:`AgentMetrics.render` on ``/metrics``:
the text format 0.0.4 by default, OpenMetrics 1.0.0 when the scraper's ``Accept`` asks for it.
Every name starts with ``edge_agent_`` (plus the standard ``process_*`` family); times are in seconds,
sizes in bytes (Prometheus conventions). Labels are bounded: ``device`` (configured device names),
``quality`` (good/uncertain/bad) and ``priority`` (outbox priority class names) only, never point names or
values; each metric also refuses more than :data:`MAX_SERIES` label sets.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drivers.base import Quality, Reading
from edge_agent import __version__

log = logging.getLogger(__name__)

# Bucket upper bounds, seconds.
POLL_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JITTER_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PUBLISH_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

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


# ----------------------------------------------------------------------------------------------- the process
def read_rss_bytes(statm: Path | str = "/proc/self/statm") -> int | None:
    """Resident set size of this process in bytes from ``/proc/self/statm`` (``None`` where there is none)."""
    try:
        fields = Path(statm).read_text(encoding="ascii").split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


def read_peak_rss_bytes(status: Path | str = "/proc/self/status") -> int | None:
    """Peak resident set size (``VmHWM``) of this process in bytes, or ``None`` where it is not available."""
    try:
        for line in Path(status).read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    return None
                return int(value) * 1024
    except (OSError, ValueError):
        return None
    return None


def _one(name: str, kind: str, documentation: str, value: float) -> MetricFamily:
    sample = name + "_total" if kind == "counter" else name
    return MetricFamily(name, kind, documentation, ((sample, (), float(value)),))


class ProcessResourceCollector:
    """CPU time and memory of the agent's process, read at scrape time (no background sampling).

    It needs only ``/proc/self`` and ``os.times()``, so it keeps working under the unit's
    ``ProcSubset=pid``, which hides ``/proc/stat`` and with it the standard process collector.
    """

    def __init__(self, statm: Path | str = "/proc/self/statm", status: Path | str = "/proc/self/status") -> None:
        self.statm = statm
        self.status = status

    def collect(self) -> Iterator[MetricFamily]:
        """Yield CPU seconds and the memory gauges that can be read on this platform."""
        times = os.times()
        yield _one("edge_agent_cpu_seconds", "counter", "User plus system CPU time of the agent process, s.",
                   times.user + times.system)
        rss = read_rss_bytes(self.statm)
        if rss is not None:
            yield _one("edge_agent_resident_memory_bytes", "gauge",
                       "Resident set size of the agent process (/proc/self/statm), bytes.", rss)
        peak = read_peak_rss_bytes(self.status)
        if peak is not None:
            yield _one("edge_agent_peak_resident_memory_bytes", "gauge",
                       "Peak resident set size since start (VmHWM), bytes.", peak)


class ProcessCollector:
    """The standard ``process_*`` metrics of Prometheus client libraries (same names, help and units),
    read from ``/proc``; nothing where ``/proc/stat`` is hidden (its boot time dates the process start)."""

    def __init__(self, proc: Path | str = "/proc") -> None:
        self.proc = Path(proc)
        self.ticks = float(os.sysconf("SC_CLK_TCK"))
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.boot_time = 0.0
        try:
            for line in (self.proc / "stat").read_bytes().splitlines():
                if line.startswith(b"btime "):
                    self.boot_time = float(line.split()[1])
        except OSError:
            pass

    def collect(self) -> Iterator[MetricFamily]:
        """Virtual and resident memory (bytes), start time (s since the epoch), CPU (s), open and max fds."""
        if not self.boot_time:
            return
        me = self.proc / "self"
        try:
            parts = (me / "stat").read_bytes().split(b")")[-1].split()
            yield _one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", float(parts[20]))
            yield _one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                       float(parts[21]) * self.page)
            yield _one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                       float(parts[19]) / self.ticks + self.boot_time)
            yield _one("process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds.",
                       (float(parts[11]) + float(parts[12])) / self.ticks)
        except (OSError, IndexError, ValueError):
            pass
        try:
            max_fds = next(float(line.split()[3]) for line in (me / "limits").read_bytes().splitlines()
                           if line.startswith(b"Max open files"))
            open_fds = len(os.listdir(me / "fd"))
        except (OSError, StopIteration, IndexError, ValueError):
            return
        yield _one("process_open_fds", "gauge", "Number of open file descriptors.", open_fds)
        yield _one("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds)


# ----------------------------------------------------------------------------------------------- the agent's
class AgentMetrics:
    """Every metric the agent exports, registered in :attr:`registry`.

    CPU seconds and memory are always exported (:class:`ProcessResourceCollector`); ``process=True`` also
    registers the standard process collector (open fds, start time) where ``/proc/stat`` is readable.
    """

    def __init__(self, registry: MetricsRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()
        r = self.registry
        self.build_info = Info("edge_agent_build", "Version of the running agent.", registry=r)
        self.build_info.info({"version": __version__})

        # Southbound: one series per configured device.
        self.poll_latency_seconds = Histogram(
            "edge_agent_poll_latency_seconds", "Duration of one poll cycle of a device (all its requests), s.",
            ["device"], buckets=POLL_LATENCY_BUCKETS_S, registry=r)
        self.poll_jitter_seconds = Histogram(
            "edge_agent_poll_jitter_seconds", "How late a poll cycle started after its due tick, s.",
            ["device"], buckets=JITTER_BUCKETS_S, registry=r)
        self.poll_requests_per_cycle = Gauge(
            "edge_agent_poll_requests_per_cycle", "Protocol requests the last poll cycle of a device needed.",
            ["device"], registry=r)
        self.poll_cycles = Counter(
            "edge_agent_poll_cycles", "Poll cycles run.", ["device"], registry=r)
        self.poll_cycles_skipped = Counter(
            "edge_agent_poll_cycles_skipped", "Poll ticks skipped because the previous cycle overran.",
            ["device"], registry=r)
        self.readings = Counter(
            "edge_agent_readings", "Readings received, by quality (good, uncertain, bad).",
            ["device", "quality"], registry=r)
        self.device_up = Gauge(
            "edge_agent_device_up", "1 while the link to a device is up, else 0.", ["device"], registry=r)
        self.device_reconnects = Counter(
            "edge_agent_device_reconnects", "Reconnections to a device.", ["device"], registry=r)

        # Outbox (SQLite store-and-forward).
        self.outbox_records = Gauge(
            "edge_agent_outbox_records", "Records waiting in the outbox for a broker acknowledgement.", registry=r)
        self.outbox_bytes = Gauge(
            "edge_agent_outbox_bytes", "Payload bytes waiting in the outbox.", registry=r)
        self.outbox_evictions = Counter(
            "edge_agent_outbox_evictions", "Records dropped from a full or expired outbox, by priority class.",
            ["priority"], registry=r)

        # Northbound (MQTT).
        self.publish_latency_seconds = Histogram(
            "edge_agent_publish_latency_seconds", "Time from publish to the broker's PUBACK, s.",
            buckets=PUBLISH_LATENCY_BUCKETS_S, registry=r)
        self.published_records = Counter(
            "edge_agent_published_records", "Records the broker acknowledged.", registry=r)
        self.mqtt_connected = Gauge(
            "edge_agent_mqtt_connected", "1 while connected to the MQTT broker, else 0.", registry=r)
        self.mqtt_reconnects = Counter(
            "edge_agent_mqtt_reconnects", "Reconnections to the MQTT broker.", registry=r)

        # Diagnostics and the process itself.
        self.alarms_active = Gauge(
            "edge_agent_alarms_active", "Alarms currently raised (not cleared).", registry=r)
        self.event_loop_lag_seconds = Histogram(
            "edge_agent_event_loop_lag_seconds", "How late the event loop ran a timer that was due, s.",
            buckets=LOOP_LAG_BUCKETS_S, registry=r)
        r.register(ProcessResourceCollector())
        if process and os.path.isdir("/proc/self"):
            r.register(ProcessCollector())

    def observe_poll(self, device: str, *, duration_s: float, lateness_s: float, requests: int,
                     readings: Iterable[Reading] = ()) -> None:
        """Record one poll cycle of ``device``: its duration (s), start lateness (s), requests and readings."""
        self.poll_cycles.labels(device=device).inc()
        self.poll_latency_seconds.labels(device=device).observe(max(0.0, duration_s))
        self.poll_jitter_seconds.labels(device=device).observe(abs(lateness_s))
        self.poll_requests_per_cycle.labels(device=device).set(requests)
        self.observe_pushed(device, readings)

    def observe_pushed(self, device: str, readings: Iterable[Reading]) -> None:
        """Count readings by quality; alone, for readings a device pushed (OPC UA subscriptions: no poll
        cycle, so no latency or jitter)."""
        counts = {quality: 0 for quality in Quality}
        for reading in readings:
            counts[reading.quality] += 1
        for quality, count in counts.items():
            if count:
                self.readings.labels(device=device, quality=quality.value).inc(count)

    def observe_loop_lag(self, lag_s: float) -> None:
        """Record one event-loop lag probe (seconds); pass this as the watchdog's ``on_lag``."""
        self.event_loop_lag_seconds.observe(max(0.0, lag_s))

    def set_outbox(self, records: int, size_bytes: int) -> None:
        """Set the outbox depth (records) and size (bytes)."""
        self.outbox_records.set(records)
        self.outbox_bytes.set(size_bytes)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the exposition format ``accept`` asks for (Prometheus text 0.0.4 by default, or
        OpenMetrics 1.0.0): body and content type."""
        if wants_openmetrics(accept):
            return render_openmetrics(self.registry.collect()), CONTENT_TYPE_OPENMETRICS
        return render_text(self.registry.collect()), CONTENT_TYPE_TEXT
