"""The agent's Prometheus metrics, in a registry the agent owns (never the library's global one).

One :class:`AgentMetrics` per running agent; its parts update the metric objects directly or through the
``observe_*`` helpers, and :mod:`edge_agent.health` serves :meth:`AgentMetrics.render` on ``/metrics``.
Every name starts with ``edge_agent_``; times are in seconds, sizes in bytes (Prometheus conventions).
Labels are bounded: ``device`` (configured device names), ``quality`` (good/uncertain/bad) and
``priority`` (outbox priority class names) only, never point names or values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from drivers.base import Quality, Reading
from edge_agent import __version__

log = logging.getLogger(__name__)

# Bucket upper bounds, seconds.
POLL_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JITTER_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PUBLISH_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class ProcessResourceCollector(Collector):
    """CPU time and memory of the agent's process, read at scrape time (no background sampling).

    It needs only ``/proc/self`` and ``os.times()``, so it keeps working under the unit's
    ``ProcSubset=pid``, which hides ``/proc/stat`` and with it prometheus-client's process collector.
    """

    def __init__(self, statm: Path | str = "/proc/self/statm", status: Path | str = "/proc/self/status") -> None:
        self.statm = statm
        self.status = status

    def collect(self) -> Iterator[Metric]:
        """Yield CPU seconds and the memory gauges that can be read on this platform."""
        times = os.times()
        yield CounterMetricFamily("edge_agent_cpu_seconds", "User plus system CPU time of the agent process, s.",
                                  value=times.user + times.system)
        rss = read_rss_bytes(self.statm)
        if rss is not None:
            yield GaugeMetricFamily("edge_agent_resident_memory_bytes",
                                    "Resident set size of the agent process (/proc/self/statm), bytes.", value=rss)
        peak = read_peak_rss_bytes(self.status)
        if peak is not None:
            yield GaugeMetricFamily("edge_agent_peak_resident_memory_bytes",
                                    "Peak resident set size since start (VmHWM), bytes.", value=peak)


class AgentMetrics:
    """Every metric the agent exports, registered in :attr:`registry`.

    CPU seconds and memory are always exported (:class:`ProcessResourceCollector`); ``process=True`` also
    registers prometheus-client's process collector (open fds, start time) where ``/proc/stat`` is readable.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
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
            ProcessCollector(registry=r)

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
        """The registry in the exposition format ``accept`` asks for (Prometheus text by default): body, type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
