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
values; each metric also refuses more than :data:`~edge_agent.prometheus.MAX_SERIES` label sets. The metric
types and the renderers are in :mod:`edge_agent.prometheus`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from drivers.base import Quality, Reading
from edge_agent import __version__
from edge_agent.native_heap import NativeHeap
from edge_agent.prometheus import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    Counter,
    Gauge,
    Histogram,
    Info,
    MetricFamily,
    MetricsRegistry,
    render_openmetrics,
    render_text,
    wants_openmetrics,
)

log = logging.getLogger(__name__)

# Bucket upper bounds, seconds.
POLL_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JITTER_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PUBLISH_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class NativeHeapCollector:
    """glibc's allocator figures (``mallinfo2``) read at scrape time; nothing on other C libraries."""

    def __init__(self, heap: NativeHeap) -> None:
        self.heap = heap

    def collect(self) -> Iterator[MetricFamily]:
        """Yield the C heap's size, bytes in use, free bytes and mmapped bytes."""
        stats = self.heap.stats()
        if stats is None:
            return
        yield _one("edge_agent_native_heap_bytes", "gauge",
                   "C heap obtained from the system by glibc malloc (all arenas, without mmapped blocks), bytes.",
                   stats.heap)
        yield _one("edge_agent_native_heap_in_use_bytes", "gauge",
                   "Of the C heap, bytes held by live allocations, bytes.", stats.in_use)
        yield _one("edge_agent_native_heap_free_bytes", "gauge",
                   "Of the C heap, bytes in free chunks (fragmentation when it grows and in-use does not), bytes.",
                   stats.free)
        yield _one("edge_agent_native_heap_mmapped_bytes", "gauge",
                   "Large allocations served by their own mmap, bytes.", stats.mmapped)


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

    def __init__(self, registry: MetricsRegistry | None = None, *, process: bool = True,
                 heap: NativeHeap | None = None) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()
        self.heap = heap if heap is not None else NativeHeap()
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
        self.heap_trims = Counter(
            "edge_agent_native_heap_trims", "Periodic malloc_trim calls (service.memory_trim_interval).",
            registry=r)
        self.heap_trim_returned_bytes = Counter(
            "edge_agent_native_heap_trim_returned_bytes", "Resident memory the periodic malloc_trim gave back, bytes.",
            registry=r)
        r.register(ProcessResourceCollector())
        r.register(NativeHeapCollector(self.heap))
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
