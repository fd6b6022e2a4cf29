"""Footprint of the agent under issue 8's reference gateway load: CPU, memory, loop lag, poll jitter.

The load (see :mod:`footprint_config`): 2 000 Modbus points polled every second, 500 OPC UA monitored
items, 4 vibration channels of 16 384 samples every 10 s analysed on the gateway, summaries each minute.
Everything runs as separate processes on 127.0.0.1: Mosquitto on a free port, the Modbus simulator, the
OPC UA simulator, and the agent itself as ``edge-agent run -c footprint.yaml`` with its health/metrics
endpoint on. A paho subscriber counts what the broker delivers.

Measured on the agent process, after ``--warmup`` seconds:

- mean CPU % of one core: ``utime + stime`` from ``/proc/PID/stat`` over the measured window;
- peak RSS: ``VmHWM`` at the end (the whole run, start-up included);
- RSS growth: ``VmRSS`` sampled every ``--sample-every`` seconds after warm-up, least-squares slope;
- event-loop lag p99 and poll jitter p99: the agent's own histograms
  (``edge_agent_event_loop_lag_seconds``, ``edge_agent_poll_jitter_seconds``) scraped from ``/metrics`` at
  the start and the end of the window, so only the window's observations count; the p99 is reported as
  the bucket bound it lies under (a guaranteed upper bound) and interpolated inside that bucket;
- throughput, to show the load was really carried: poll cycles and readings per device, readings that the
  delivered summaries account for, messages the broker delivered by kind.

Targets (issue 8): < 25 % of one core, < 120 MB RSS, no RSS growth after warm-up, poll jitter p99 < 20 ms.
``--py-spy SECONDS`` profiles the agent for that long after the measured window (so the profiler does not
disturb the numbers) and prints the hottest frames.

``--tracemalloc SECONDS`` has the agent sample its own memory every SECONDS (RSS by kind of mapping, glibc
arenas, SQLite, tracemalloc snapshots; see :mod:`footprint_tracemalloc`) into ``WORKDIR/tracemalloc``; read it
with ``python benchmarks/footprint_tracemalloc.py WORKDIR/tracemalloc``. Tracing inflates RSS and CPU:
``--tracemalloc-frames 0`` samples without tracing.

Run: ``.venv/bin/python benchmarks/bench_footprint.py [--duration 600] [--warmup 300] [--py-spy 30]``
(``--duration`` counts from the agent's start and includes the warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from footprint_config import Endpoints, ReferenceLoad, build_config, write_config
from footprint_peers import (
    DeliveryCount,
    DeliveryCounter,
    Peer,
    agent,
    free_port,
    modbus_simulator,
    mosquitto,
    opcua_simulator,
    wait_port_open,
)
from footprint_probe import (
    ProcSample,
    Quantile,
    Trend,
    bucket_delta,
    counter_total,
    cpu_percent,
    histogram_buckets,
    histogram_label_values,
    quantile,
    read_proc,
    rss_trend,
)
from footprint_pyspy import Profile, profile
from footprint_tracemalloc import agent_env as tracemalloc_env

from edge_agent.config import load_config

MB = 1024 * 1024
# Issue 8 "Footprint" targets.
TARGET_CPU_PCT = 25.0
TARGET_PEAK_RSS_BYTES = 120 * MB
TARGET_JITTER_P99_S = 0.020
#: RSS "does not grow" when the fitted slope is below this (bytes/s: 1 MB per hour) or not significant.
GROWTH_TOLERANCE_B_PER_S = MB / 3600.0
LAG = "edge_agent_event_loop_lag_seconds"
JITTER = "edge_agent_poll_jitter_seconds"
LATENCY = "edge_agent_poll_latency_seconds"
PUBLISH = "edge_agent_publish_latency_seconds"


@dataclass
class Snapshot:
    """Everything read at one instant: the agent's /proc sample, its /metrics text, the delivery counts."""

    proc: ProcSample
    metrics: str
    delivered: DeliveryCount
    peers_cpu_s: dict[str, float]


@dataclass
class RunResult:
    """The raw material of the report."""

    load: ReferenceLoad
    started_utc: str
    duration_s: float
    warmup_s: float
    samples: list[ProcSample]
    start: Snapshot
    end: Snapshot
    agent_exit_code: int | None
    agent_log_problems: list[str]
    profile: Profile | None = None
    profile_s: float = 0.0
    profile_error: str = ""
    workdir: Path | None = None
    loadavg: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0, 0, 0), (0, 0, 0))
    agent_env: dict[str, str] = field(default_factory=dict)


def scrape(port: int, path: str = "/metrics", timeout_s: float = 10.0) -> tuple[int, str]:
    """GET ``http://127.0.0.1:PORT/PATH``: status code and body (0 and the error when unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def wait_ready(peer: Peer, health_port: int, timeout_s: float) -> str:
    """Poll ``/healthz`` until the agent says ready; return the last body (the caller reports a non-ready
    agent). RuntimeError when the agent exits."""
    deadline = time.monotonic() + timeout_s
    body = ""
    while time.monotonic() < deadline:
        if peer.proc is not None and peer.proc.poll() is not None:
            raise RuntimeError(f"the agent exited with code {peer.proc.returncode}:\n{peer.log_text()}")
        code, body = scrape(health_port, "/healthz", 5.0)
        if code == 200:
            return body
        time.sleep(1.0)
    return body


@contextlib.contextmanager
def running(peers: list[Peer]) -> Iterator[list[Peer]]:
    """Stop every started peer on the way out, last started first."""
    try:
        yield peers
    finally:
        for peer in reversed(peers):
            with contextlib.suppress(Exception):
                peer.stop()


def snapshot(agent_peer: Peer, others: Sequence[Peer], health_port: int,
             counter: DeliveryCounter) -> Snapshot:
    """Read the agent's /proc and /metrics and the delivery counts, as close together as possible."""
    code, metrics = scrape(health_port)
    if code != 200:
        raise RuntimeError(f"/metrics answered {code}: {metrics[:500]}")
    proc = read_proc(agent_peer.pid, time.monotonic())
    peers_cpu: dict[str, float] = {}
    for peer in others:
        with contextlib.suppress(ProcessLookupError, RuntimeError):
            peers_cpu[peer.name] = read_proc(peer.pid, 0.0).cpu_s
    return Snapshot(proc, metrics, counter.snapshot(), peers_cpu)


def write_samples(samples: Sequence[ProcSample], t0: float, path: Path) -> None:
    """The agent's samples as CSV: seconds since its start, CPU seconds, RSS and peak RSS in bytes."""
    rows = [f"{s.t_s - t0:.1f},{s.cpu_s:.2f},{s.rss_bytes},{s.hwm_bytes}" for s in samples]
    path.write_text("t_s,cpu_s,rss_bytes,hwm_bytes\n" + "\n".join(rows) + "\n", encoding="utf-8")


def log_problems(text: str, limit: int = 10) -> list[str]:
    """Lines of the agent's log at ERROR/CRITICAL level or starting a traceback (the first ``limit``)."""
    hits = [line for line in text.splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
    return hits[:limit]


def run(load: ReferenceLoad, duration_s: float, warmup_s: float, sample_every_s: float, py_spy_s: float,
        workdir: Path, agent_env: dict[str, str] | None = None) -> RunResult:
    """Start the broker, the simulators and the agent (with ``agent_env`` added to its environment);
    measure; stop everything."""
    broker_port, modbus_port, opcua_port, health_port = (free_port() for _ in range(4))
    broker = mosquitto(workdir, broker_port)
    modbus = modbus_simulator(workdir, modbus_port, load.modbus_points)
    opcua = opcua_simulator(workdir, opcua_port, load.opcua_items, load.waveform_samples)
    started_utc = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_before = os.getloadavg()
    with running([]) as peers:
        for peer in (broker, modbus, opcua):
            peer.start()
            peers.append(peer)
        if not wait_port_open(broker_port, 20.0):
            raise RuntimeError(f"mosquitto is not listening on {broker_port}:\n{broker.log_text()}")
        modbus.wait_for_line("listening", 120.0)
        endpoint = opcua.wait_for_line("READY ", 180.0).split()[1]

        config_path = write_config(
            build_config(load, Endpoints(broker_port, modbus_port, endpoint, health_port), workdir / "data"),
            workdir / "footprint.yaml")
        cfg = load_config(config_path)  # a ConfigError here names the generator's mistake
        counter = DeliveryCounter(broker_port, cfg.topic_prefix)
        counter.start()
        try:
            the_agent = agent(workdir, config_path)
            t0 = time.monotonic()
            the_agent.start(env={**os.environ, "PYTHONUNBUFFERED": "1", **(agent_env or {})})
            peers.append(the_agent)
            health = wait_ready(the_agent, health_port, 120.0)
            if '"ready"' not in health:
                print(f"warning: the agent is not ready after 120 s: {health}", file=sys.stderr)
            samples: list[ProcSample] = []
            start: Snapshot | None = None
            next_sample = time.monotonic()
            while True:
                now = time.monotonic()
                if start is None and now - t0 >= warmup_s:
                    start = snapshot(the_agent, (broker, modbus, opcua), health_port, counter)
                    samples.append(start.proc)
                if now - t0 >= duration_s:
                    break
                if now >= next_sample:
                    sample = read_proc(the_agent.pid, now)
                    if start is not None:
                        samples.append(sample)
                    next_sample += sample_every_s
                if the_agent.proc is not None and the_agent.proc.poll() is not None:
                    raise RuntimeError(f"the agent exited early with code {the_agent.proc.returncode}:\n"
                                       f"{the_agent.log_text()}")
                wake = min(next_sample, t0 + duration_s, t0 + warmup_s if start is None else math.inf)
                time.sleep(max(0.05, wake - time.monotonic()))
            end = snapshot(the_agent, (broker, modbus, opcua), health_port, counter)
            samples.append(end.proc)
            write_samples(samples, t0, workdir / "agent-samples.csv")
            assert start is not None
            frames: Profile | None = None
            profile_error = ""
            if py_spy_s > 0:
                try:
                    frames = profile(the_agent.pid, py_spy_s, workdir / "py-spy.txt")
                except (RuntimeError, OSError) as exc:
                    profile_error = str(exc)
            exit_code = the_agent.stop(30.0)
        finally:
            counter.stop()
    return RunResult(load, started_utc, duration_s, warmup_s, samples, start, end, exit_code,
                     log_problems(the_agent.log_text(10_000_000)), frames, py_spy_s, profile_error, workdir,
                     (load_before, os.getloadavg()))


# --------------------------------------------------------------------------------------------- report
def fmt_s(q: Quantile) -> str:
    """A latency quantile in ms: '≤ bound (≈ interpolated)'."""
    if q.count == 0 or math.isnan(q.upper_bound):
        return "no observations"
    bound = "> last bucket" if math.isinf(q.upper_bound) else f"≤ {q.upper_bound * 1000:g} ms"
    return f"{bound} (≈ {q.interpolated * 1000:.1f} ms), n = {q.count:.0f}"


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "**MISS**"


def machine_facts() -> str:
    """nproc, CPU model, memory, kernel, Python."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (f"{os.cpu_count()} CPU ({model}), {mem_gb:.0f} GB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def growth_ok(trend: Trend) -> bool:
    """No growth: a slope under the tolerance, or not distinguishable from zero (below 2 standard errors)."""
    return trend.slope <= GROWTH_TOLERANCE_B_PER_S or trend.slope <= 2 * trend.stderr


def render(result: RunResult) -> str:
    """The Markdown report."""
    a, b = result.start, result.end
    window_s = b.proc.t_s - a.proc.t_s
    cpu = cpu_percent(a.proc, b.proc)
    trend = rss_trend(result.samples)
    middle = (result.samples[0].t_s + result.samples[-1].t_s) / 2
    late = rss_trend([s for s in result.samples if s.t_s >= middle] or result.samples[-2:])
    lag = quantile(bucket_delta(histogram_buckets(a.metrics, LAG), histogram_buckets(b.metrics, LAG)), 0.99)
    devices = histogram_label_values(b.metrics, JITTER, "device")
    modbus_devices = [d for d in devices if d.startswith("plc-")]
    jitter_all = quantile(bucket_delta(histogram_buckets(a.metrics, JITTER),
                                       histogram_buckets(b.metrics, JITTER)), 0.99)
    jitter_modbus = quantile(bucket_delta(_sum_buckets(a.metrics, JITTER, modbus_devices),
                                          _sum_buckets(b.metrics, JITTER, modbus_devices)), 0.99)
    rss_after = [s.rss_bytes for s in result.samples]
    publish = quantile(bucket_delta(histogram_buckets(a.metrics, PUBLISH),
                                    histogram_buckets(b.metrics, PUBLISH)), 0.99)
    lines = [
        f"## Footprint under the reference gateway load ({result.started_utc})",
        "",
        f"Machine: {machine_facts()}.",
        f"Load: {result.load.describe()}.",
        "Agent: `edge-agent run -c footprint.yaml`"
        + (f" with {', '.join(f'{k}={v}' for k, v in result.agent_env.items())}" if result.agent_env else "")
        + ".",
        f"Run: {result.duration_s:g} s from the agent's start, warm-up {result.warmup_s:g} s, "
        f"measured window {window_s:.0f} s, RSS sampled every "
        f"~{window_s / max(len(result.samples) - 1, 1):.0f} s "
        f"({len(result.samples)} samples). The simulators, Mosquitto and this harness share the machine; "
        f"load average (1/5/15 min) {_loadavg(result.loadavg[0])} before, "
        f"{_loadavg(result.loadavg[1])} after.",
        "",
        "| measure | value | target | verdict |",
        "|---|---|---|---|",
        f"| agent CPU, mean over the window | {cpu:.1f} % of one core | < {TARGET_CPU_PCT:g} % "
        f"| {verdict(cpu < TARGET_CPU_PCT)} |",
        f"| peak RSS (VmHWM, whole run) | {b.proc.hwm_bytes / MB:.1f} MB "
        f"| < {TARGET_PEAK_RSS_BYTES / MB:g} MB | {verdict(b.proc.hwm_bytes < TARGET_PEAK_RSS_BYTES)} |",
        f"| RSS after warm-up: first / last / max | {rss_after[0] / MB:.1f} / {rss_after[-1] / MB:.1f} / "
        f"{max(rss_after) / MB:.1f} MB | | |",
        f"| RSS slope after warm-up | {trend.slope * 3600 / MB:+.2f} ± {trend.stderr * 3600 / MB:.2f} MB/h "
        f"| no growth | {verdict(growth_ok(trend))} |",
        f"| RSS slope, last half of the window (a cache still filling up flattens here) | "
        f"{late.slope * 3600 / MB:+.2f} ± {late.stderr * 3600 / MB:.2f} MB/h | | |",
        f"| poll jitter p99, Modbus devices | {fmt_s(jitter_modbus)} | < {TARGET_JITTER_P99_S * 1000:g} ms "
        f"| {verdict(jitter_modbus.count > 0 and jitter_modbus.upper_bound <= TARGET_JITTER_P99_S)} |",
        f"| poll jitter p99, all polled devices | {fmt_s(jitter_all)} | < {TARGET_JITTER_P99_S * 1000:g} ms "
        f"| {verdict(jitter_all.count > 0 and jitter_all.upper_bound <= TARGET_JITTER_P99_S)} |",
        f"| event-loop lag p99 | {fmt_s(lag)} | | |",
        f"| publish latency p99 (publish to PUBACK) | {fmt_s(publish)} | | |",
        "",
        "Per device over the window:",
        "",
        "| device | poll cycles | skipped ticks | readings/s good (bad) | poll duration p50 / p99 "
        "| jitter p99 |",
        "|---|---:|---:|---:|---|---|",
    ]
    for device in devices:
        where = {"device": device}
        cycles = counter_total(b.metrics, "edge_agent_poll_cycles", where) - \
            counter_total(a.metrics, "edge_agent_poll_cycles", where)
        skipped = counter_total(b.metrics, "edge_agent_poll_cycles_skipped", where) - \
            counter_total(a.metrics, "edge_agent_poll_cycles_skipped", where)
        good = _delta(a, b, "edge_agent_readings", {"device": device, "quality": "good"})
        bad = _delta(a, b, "edge_agent_readings", {"device": device, "quality": "bad"}) + \
            _delta(a, b, "edge_agent_readings", {"device": device, "quality": "uncertain"})
        latency = bucket_delta(histogram_buckets(a.metrics, LATENCY, where),
                               histogram_buckets(b.metrics, LATENCY, where))
        jitter = quantile(bucket_delta(histogram_buckets(a.metrics, JITTER, where),
                                       histogram_buckets(b.metrics, JITTER, where)), 0.99)
        lines.append(f"| {device} | {cycles:.0f} | {skipped:.0f} | {good / window_s:,.0f} "
                     f"({bad / window_s:,.0f}) | {_short(quantile(latency, 0.5))} / "
                     f"{_short(quantile(latency, 0.99))} | {_short(jitter)} |")
    lines += _delivery_lines(result, window_s)
    lines += _peer_lines(result, window_s)
    if result.agent_exit_code not in (0, None) or result.agent_log_problems:
        lines += ["", f"Agent exit code {result.agent_exit_code}; error lines in its log:", ""]
        lines += [f"    {line}" for line in result.agent_log_problems]
    else:
        lines += ["", f"The agent stopped cleanly on SIGTERM (exit code {result.agent_exit_code}); "
                  "no ERROR lines in its log."]
    lines += _profile_lines(result)
    return "\n".join(lines) + "\n"


def _loadavg(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _short(q: Quantile) -> str:
    return fmt_s(q).split(",")[0]


def _delta(a: Snapshot, b: Snapshot, name: str, where: dict[str, str]) -> float:
    return counter_total(b.metrics, name, where) - counter_total(a.metrics, name, where)


def _sum_buckets(text: str, name: str, devices: Sequence[str]) -> dict[float, float]:
    total: Counter[float] = Counter()
    for device in devices:
        total.update(histogram_buckets(text, name, {"device": device}))
    return dict(total)


def _delivery_lines(result: RunResult, window_s: float) -> list[str]:
    a, b = result.start.delivered, result.end.delivered
    kinds = sorted(set(b.messages))
    lines = ["", "Delivered by the broker to a `{prefix}/#` subscriber (QoS 1):", "",
             "| kind | messages in the window | per minute | whole run | bytes in the window |",
             "|---|---:|---:|---:|---:|"]
    for kind in kinds:
        n = b.messages[kind] - a.messages[kind]
        lines.append(f"| {kind} | {n} | {60 * n / window_s:.1f} | {b.messages[kind]} | "
                     f"{b.payload_bytes[kind] - a.payload_bytes[kind]:,} |")
    published = _delta(result.start, result.end, "edge_agent_published_records", {})
    outbox = counter_total(result.end.metrics, "edge_agent_outbox_records")
    lines += ["", f"Records acknowledged by the broker in the window (agent's counter): {published:.0f}; "
              f"outbox depth at the end: {outbox:.0f}."]
    if b.summary_readings:
        lines += ["", "Readings the delivered summaries account for (whole run, sum of points' `count`):",
                  "", "| summary group | readings | good | covered s | readings per covered s |",
                  "|---|---:|---:|---:|---:|"]
        for group in sorted(b.summary_readings):
            span = b.summary_span_s[group]
            rate = f"{b.summary_readings[group] / span:,.0f}" if span else "-"
            lines.append(f"| {group} | {b.summary_readings[group]:,} | {b.summary_good[group]:,} | {span} "
                         f"| {rate} |")
    return lines


def _peer_lines(result: RunResult, window_s: float) -> list[str]:
    a, b = result.start.peers_cpu_s, result.end.peers_cpu_s
    parts = [f"{name} {100 * (b[name] - a[name]) / window_s:.1f} %" for name in sorted(b) if name in a]
    return ["", "CPU of the other processes over the window (% of one core): " + ", ".join(parts) + "."]


def _profile_lines(result: RunResult) -> list[str]:
    if result.profile_error:
        return ["", f"py-spy failed: {result.profile_error}"]
    p = result.profile
    if p is None:
        return []
    lines = ["", f"py-spy, {result.profile_s:g} s after the window (`py-spy record --nonblocking`, idle "
             f"threads not sampled; {p.samples} samples): share of the samples by part of the agent:", "",
             "| part | % of samples |", "|---|---:|"]
    lines += [f"| {name} | {pct:.1f} |" for name, pct in p.subsystems]
    lines += ["", "Hottest frames:", "", "| frame | self % | total % |", "|---|---:|---:|"]
    lines += [f"| `{f.frame}` | {f.self_pct:.1f} | {f.total_pct:.1f} |" for f in p.frames]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print the report; exit code 0 (misses are reported, not raised)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds from the agent's start to the end of the window (default 600)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before measuring (default: 300, at most half the duration; the "
                             "agent's RSS reaches its plateau about 6 minutes after start)")
    parser.add_argument("--sample-every", type=float, default=10.0,
                        help="RSS sampling period, s (default 10)")
    parser.add_argument("--py-spy", type=float, default=0.0, metavar="SECONDS",
                        help="profile the agent with py-spy for SECONDS after the window (default: off)")
    parser.add_argument("--modbus-points", type=int, default=2000)
    parser.add_argument("--modbus-devices", type=int, default=4)
    parser.add_argument("--opcua-items", type=int, default=500)
    parser.add_argument("--channels", type=int, default=4, help="vibration channels")
    parser.add_argument("--samples", type=int, default=16384, help="samples per waveform")
    parser.add_argument("--agent-env", action="append", default=[], metavar="NAME=VALUE",
                        help="add to the agent's environment (repeatable), e.g. MALLOC_ARENA_MAX=2")
    parser.add_argument("--tracemalloc", type=float, default=0.0, metavar="SECONDS",
                        help="trace the agent's allocations and dump a snapshot plus native-memory counters "
                             "every SECONDS into WORKDIR/tracemalloc (see footprint_tracemalloc.py; "
                             "default: off)")
    parser.add_argument("--tracemalloc-frames", type=int, default=6,
                        help="frames kept per traced allocation (default 6; 0: sample the native-memory "
                             "counters and object counts without tracing, for undistorted RSS)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep configs and logs in this directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(300.0, args.duration / 2)
    if not 0 < warmup < args.duration:
        parser.error(f"--warmup {warmup:g} must be positive and shorter than --duration {args.duration:g}")
    if args.sample_every <= 0:
        parser.error("--sample-every must be positive seconds")
    if args.py_spy > 0 and shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None \
            and shutil.which("py-spy") is None:
        parser.error("--py-spy needs the py-spy binary (pip install py-spy)")
    try:
        load = ReferenceLoad(modbus_points=args.modbus_points, modbus_devices=args.modbus_devices,
                             opcua_items=args.opcua_items, vibration_channels=args.channels,
                             waveform_samples=args.samples)
    except ValueError as exc:
        parser.error(str(exc))
    # SIGTERM unwinds like Ctrl-C, so the broker, the simulators and the agent are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    agent_env: dict[str, str] = {}
    for item in args.agent_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--agent-env {item!r}: write NAME=VALUE, e.g. MALLOC_ARENA_MAX=2")
        agent_env[name] = value
    if args.tracemalloc < 0 or args.tracemalloc_frames < 0:
        parser.error("--tracemalloc must be positive seconds (0: off), --tracemalloc-frames 0 or more")

    def env_for(workdir: Path) -> dict[str, str]:
        if args.tracemalloc == 0:
            return agent_env
        return {**agent_env, **tracemalloc_env(workdir / "tracemalloc-site", workdir / "tracemalloc",
                                               args.tracemalloc, args.tracemalloc_frames, workdir / "data")}

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        env = env_for(args.keep)
        result = run(load, args.duration, warmup, args.sample_every, args.py_spy, args.keep, env)
    else:
        with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
            env = env_for(Path(tmp))
            result = run(load, args.duration, warmup, args.sample_every, args.py_spy, Path(tmp), env)
    result.agent_env = env
    print(render(result), end="")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)

