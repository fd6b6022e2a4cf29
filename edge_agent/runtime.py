"""Run one agent as a service process: the agent plus everything around it.

- systemd: ``READY=1`` after the first successful start, ``STATUS=`` lines, ``WATCHDOG=1`` only while the
  event loop is healthy, ``STOPPING=1`` on the way out (``edge_agent.sdnotify``; no-ops outside systemd);
- the optional local health and metrics endpoint (``/healthz``, ``/metrics``);
- remote configuration and commands over the publisher's MQTT session (``edge_agent.remote``), with
  live apply through :meth:`Agent.reconfigure`, commit-confirm, history and audit on disk;
- local edits of the config file, picked up by polling and at once on SIGHUP, through the same path;
- SIGINT/SIGTERM stop everything cleanly: in-flight publishes finish or stay in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge_agent.agent import Agent
from edge_agent.commands import AgentCommands, RecentLogHandler
from edge_agent.config import AgentConfig
from edge_agent.config.isolated import load_config_checked, stop_config_checks
from edge_agent.health import HealthServer, HealthState
from edge_agent.metrics import AgentMetrics, read_rss_bytes
from edge_agent.mqtt.remote_transport import PublisherTransport
from edge_agent.publisher import Publisher
from edge_agent.remote.applier import FileConfigApplier
from edge_agent.remote.audit import AuditLog
from edge_agent.remote.config_watch import ConfigFileWatch
from edge_agent.remote.contracts import ApplyOutcome, MessageHandler
from edge_agent.remote.history import ConfigHistory
from edge_agent.remote.service import RemoteService, RemoteSettings
from edge_agent.remote.unconfirmed import undo_unconfirmed
from edge_agent.scheduler import cancel_and_wait
from edge_agent.sdnotify import Notifier, start_watchdog

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 5.0
STARTUP_BROKER_WAIT_S = 3.0


class SwappablePublisherTransport(PublisherTransport):
    """A publisher transport that follows the agent to a new publisher after a broker change."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher)
        self._subscriptions: list[tuple[str, MessageHandler]] = []

    async def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Subscribe now and remember it for the next publisher."""
        self._subscriptions.append((topic_filter, handler))
        await super().subscribe(topic_filter, handler)

    async def swap(self, publisher: Publisher) -> None:
        """Move every subscription to ``publisher``."""
        self.publisher = publisher
        for topic_filter, handler in self._subscriptions:
            await super().subscribe(topic_filter, handler)


class AgentService:
    """The agent with its service duties; ``await AgentService(...).run(stop)``."""

    def __init__(self, cfg: AgentConfig, config_path: Path | None, text: str) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.metrics = AgentMetrics()
        self.agent = Agent(cfg, text, metrics=self.metrics)
        self.text = text
        self.notifier = Notifier.from_env()
        self.health = HealthState()
        self.recent_logs = RecentLogHandler()
        self.remote: RemoteService | None = None
        self.watch: ConfigFileWatch | None = None
        self.transport: SwappablePublisherTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._health_server: HealthServer | None = None
        self._watchdog: Any = None
        self._exported: dict[str, tuple[object, int]] = {}  # key -> (source, running total) last exported
        self._device_series: set[str] = set()  # devices with an edge_agent_device_up series
        self._first_publisher: Publisher | None = None  # its first connection is not a reconnection
        self._exported_publisher: Publisher | None = None  # the publisher the counters were last read from

    # ----------------------------------------------------------------- health
    async def _health_cycle(self) -> None:
        while True:
            agent = self.agent
            publisher = agent.publisher
            if publisher is not None and not publisher.connected:
                self.health.degrade("broker", str(publisher.stats().get("last_error") or "not connected"))
            else:
                self.health.clear("broker")
            if publisher is not None:
                self._export_publisher_metrics(publisher)
            for name, runner in agent.devices.items():
                comms = runner.driver.comms
                if comms.state.value != "ok" and runner.connect_tried:
                    self.health.degrade(f"device:{name}", f"{comms.state.value}: {comms.last_error or ''}")
                else:
                    self.health.clear(f"device:{name}")
            for key in self.health.degraded_parts():  # devices a config change removed: nothing to be degraded about
                if key.startswith("device:") and key.removeprefix("device:") not in agent.devices:
                    self.health.clear(key)
            for name in self._device_series - set(agent.devices):
                self.metrics.device_up.remove(name)
            self._device_series = set(agent.devices)
            if agent.outbox is not None:
                stats = agent.outbox.stats()
                self.metrics.set_outbox(int(stats["records"]), int(stats["bytes"]))
                if stats.get("mode") != "disk":
                    self.health.degrade("buffer", f"outbox in {stats.get('mode')} mode: {stats.get('last_error')}")
                else:
                    self.health.clear("buffer")
            self.metrics.alarms_active.set(len(agent.alarms.active()))
            report = self.health.report()
            self.notifier.status(self._status_line(report.ready))
            await asyncio.sleep(HEALTH_INTERVAL_S)

    async def _memory_trim_cycle(self) -> None:
        """Every ``service.memory_trim_interval`` (read each time, so a reload applies), hand free C-heap pages
        back to the system (see :mod:`edge_agent.native_heap`); runs on a worker thread."""
        heap = self.metrics.heap
        while True:
            interval_s = self.agent.cfg.service.memory_trim_interval
            await asyncio.sleep(interval_s if interval_s > 0 else HEALTH_INTERVAL_S)
            if self.agent.cfg.service.memory_trim_interval <= 0:
                continue
            result = await asyncio.to_thread(heap.trim, read_rss_bytes)
            if result is None:
                return
            self.metrics.heap_trims.inc()
            self.metrics.heap_trim_returned_bytes.inc(result.returned_bytes)
            log.debug("malloc_trim: RSS %.1f -> %.1f MB", result.rss_before / 1e6, result.rss_after / 1e6)

    def _delta(self, key: str, source: object, value: int, *, baseline: bool = False) -> int:
        """How much the running total ``value`` of ``source`` grew since the last export under ``key``.

        A new source object (a publisher or device rebuilt by a config change) or a smaller value (a reset)
        starts over: all of its value is new. ``baseline``: the first value seen is history (e.g. evictions
        counted in the outbox file since it was created), not growth.
        """
        previous = self._exported.get(key)
        self._exported[key] = (source, value)
        if previous is None:
            return 0 if baseline else value
        old_source, old_value = previous
        if source is not old_source or value < old_value:
            return value
        return value - old_value

    def _export_publisher_counts(self, publisher: Publisher) -> None:
        stats = publisher.stats()
        self.metrics.published_records.inc(self._delta("acked", publisher, int(stats.get("acked") or 0)))
        # the agent's first connection is not a reconnection (a rebuilt publisher's first one is)
        connections = int(stats.get("connections") or 0)
        if self._first_publisher is None:
            self._first_publisher = publisher
        first_publisher = publisher is self._first_publisher
        self.metrics.mqtt_reconnects.inc(self._delta("reconnects", publisher,
                                                     max(0, connections - 1) if first_publisher else connections))

    def _export_publisher_metrics(self, publisher: Publisher) -> None:
        """Counters from the publisher's, the devices' and the outbox's own statistics (growth since the last
        export; a publisher replaced by a config change is exported one last time; counts of a rebuilt device
        between its last export and the rebuild are lost)."""
        m = self.metrics
        m.mqtt_connected.set(1 if publisher.connected else 0)
        previous = self._exported_publisher
        if previous is not None and previous is not publisher:  # replaced by a config change: its last counts
            self._export_publisher_counts(previous)
        self._exported_publisher = publisher
        self._export_publisher_counts(publisher)
        for name, runner in self.agent.devices.items():
            m.device_up.labels(device=name).set(1 if runner.driver.comms.state.value == "ok" else 0)
            m.poll_cycles_skipped.labels(device=name).inc(self._delta(f"skipped:{name}", runner,
                                                                      runner.cadence.skipped))
            m.device_reconnects.labels(device=name).inc(self._delta(f"reconnects:{name}", runner,
                                                                    runner.driver.comms.reconnects))
        outbox = self.agent.outbox
        if outbox is not None:
            for priority, evicted in dict(outbox.stats().get("evicted") or {}).items():
                m.outbox_evictions.labels(priority=str(priority)).inc(
                    self._delta(f"evicted:{priority}", outbox, int(evicted), baseline=True))

    def _status_line(self, ready: bool) -> str:
        agent = self.agent
        devices = agent.comms_summary()
        up = sum(1 for s in devices.values() if s.value == "ok")
        buffered = agent.outbox.stats()["records"] if agent.outbox is not None else 0
        broker = "connected" if agent.publisher is not None and agent.publisher.connected else "disconnected"
        return (f"{'running' if ready else 'degraded'}: {up}/{len(devices)} devices up, broker {broker}, "
                f"{buffered} record(s) buffered, {len(agent.alarms.active())} alarm(s) active")

    async def _broker_health(self) -> bool | str:
        publisher = self.agent.publisher
        if publisher is None or not publisher.connected:
            return "not connected to the broker"
        return True

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the agent, then the remote service, watch, health endpoint and watchdog; send READY."""
        logging.getLogger().addHandler(self.recent_logs)
        agent = self.agent
        await agent.start()
        # Everything built at start-up (config models, drivers, plans) lives for the whole run: move it out
        # of the collector's way, so full collections stay ~1 ms instead of 65-90 ms (poll jitter).
        gc.collect()
        gc.freeze()
        if self.cfg.service.memory_trim_interval > 0:  # the config load's transient pages, before READY
            await asyncio.to_thread(self.metrics.heap.trim, read_rss_bytes)
        data_dir = agent.data_dir
        assert agent.publisher is not None
        # Give the broker a moment so the remote state goes out with the birth message (not required).
        await agent.publisher.wait_connected(STARTUP_BROKER_WAIT_S)
        if self.config_path is not None:
            remote_cfg = self.cfg.remote
            applier = FileConfigApplier(self.config_path, ConfigHistory(data_dir, keep=remote_cfg.keep_configs),
                                        on_change=agent.reconfigure, text=self.text, config=self.cfg)
            self.text = ""  # the applier holds it from now on (compressed)
            self.transport = SwappablePublisherTransport(agent.publisher)
            agent.on_publisher_change.append(self.transport.swap)
            if remote_cfg.enabled:
                commands = AgentCommands(agent, self.recent_logs).handlers()
                self.remote = RemoteService(agent.prefix, self.cfg.agent.id, self.transport, applier, commands,
                                            AuditLog(data_dir / "audit.jsonl"),
                                            RemoteSettings.from_config(self.cfg.remote, data_dir),
                                            health=self._broker_health)
                await self.remote.start()
                remote = self.remote
                self.watch = watch = ConfigFileWatch(
                    self.config_path, applier.active_text,
                    lambda text, source: remote.apply_local(text, source, reread=watch.read))
            else:  # no remote service: local edits and SIGHUP still apply, through the applier alone
                local_lock = asyncio.Lock()
                self.watch = watch = ConfigFileWatch(
                    self.config_path, applier.active_text,
                    lambda text, source: _apply_local_file(applier, watch, source, local_lock))
            self._tasks.append(asyncio.create_task(watch.run(), name="config-watch"))
        health_cfg = self.cfg.service.health
        if health_cfg.enabled:
            self._health_server = HealthServer(self.health.report, self.metrics, host=health_cfg.host,
                                               port=health_cfg.port)
            await self._health_server.start()
        self._watchdog = start_watchdog(on_lag=self.metrics.observe_loop_lag, notifier=self.notifier)
        self._tasks.append(asyncio.create_task(self._health_cycle(), name="health"))
        if self.metrics.heap.can_trim:
            self._tasks.append(asyncio.create_task(self._memory_trim_cycle(), name="memory-trim"))
        self.health.mark_started()
        self.notifier.ready(self._status_line(True))

    def request_reload(self) -> None:
        """SIGHUP: re-read the config file now."""
        if self.watch is not None:
            log.info("SIGHUP: re-reading %s", self.config_path)
            self.watch.request_reload()

    async def stop(self) -> None:
        """Stop everything; the agent last so that its final records are stored and drained."""
        self.notifier.stopping("stopping: finishing in-flight publishes")
        stop_config_checks()  # a config check running in a worker thread would hold the exit for its duration
        await cancel_and_wait(self._tasks)
        if self.remote is not None:
            with contextlib.suppress(Exception):
                await self.remote.close()
        if self._health_server is not None:
            await self._health_server.stop()
        if self._watchdog is not None:
            await self._watchdog.stop()
        await self.agent.stop()
        logging.getLogger().removeHandler(self.recent_logs)


async def _apply_local_file(applier: FileConfigApplier, watch: ConfigFileWatch, source: str,
                            lock: asyncio.Lock) -> ApplyOutcome:
    """Apply the config file as it is now (read under ``lock``, so two reloads never interleave)."""
    async with lock:
        try:
            text = await asyncio.to_thread(watch.read)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return ApplyOutcome("rejected", "", [f"{source}: cannot read it: {exc}"],
                                message="the file could not be read; the running config stays")
        return await applier.apply(text, source, "local", None)


#: Threads of the event loop's default executor (SQLite commits, file reads, vibration analysis).
WORKER_THREADS = 2


def started_pool(workers: int, name_prefix: str) -> ThreadPoolExecutor:
    """A thread pool of ``workers`` threads, all of them already running.

    ThreadPoolExecutor starts a thread only when a task finds none idle, so the second worker of an
    agent's pool used to appear minutes or hours into a run (the first time two analyses overlapped),
    bringing its stack and malloc arena with it: a step in RSS long after start-up. Starting every
    worker here puts that memory into the start-up footprint, where it belongs.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name_prefix)
    gathered = threading.Barrier(workers, timeout=10.0)
    # each task waits until all are running, so each submit finds no idle thread and starts a new one
    for future in [pool.submit(gathered.wait) for _ in range(workers)]:
        future.result()
    return pool


async def run_agent(cfg: AgentConfig, config_path: Path | None, duration_s: float | None = None) -> int:
    """Run the agent service until SIGINT/SIGTERM (or ``duration_s`` seconds); return the exit code."""
    loop = asyncio.get_running_loop()
    # Two workers are enough (SQLite commits, file reads, vibration analysis) and keep the footprint fixed:
    # the default pool grows to cpu+4 threads over hours, each one adding its own ~1.2 MB malloc arena.
    loop.set_default_executor(started_pool(WORKER_THREADS, "agent-worker"))
    if config_path is not None:  # a change left on trial by the last run is undone first
        history = ConfigHistory(cfg.agent.data_dir, keep=cfg.remote.keep_configs)
        if await asyncio.to_thread(undo_unconfirmed, config_path, history):
            cfg = await asyncio.to_thread(load_config_checked, config_path)
    text = await asyncio.to_thread(config_path.read_text, encoding="utf-8") if config_path is not None else ""
    service = AgentService(cfg, config_path, text)
    del text  # this frame lives as long as the agent: 600 KB of YAML at 10 000 points
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.request_reload)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    started = time.monotonic()
    try:
        await service.start()
        await stop.wait()
    finally:
        await service.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    log.info("ran for %.0f s", time.monotonic() - started)
    # What this config made the process load (issue 9: a Modbus-only gateway must not load numpy, asyncua...).
    log.debug("%d Python modules loaded; numpy %s, asyncua %s, cryptography %s", len(sys.modules),
              *("loaded" if name in sys.modules else "not loaded" for name in ("numpy", "asyncua", "cryptography")))
    return 0
