"""The supervisor: wires config, drivers, pipeline, outbox and publisher, and runs them until stopped.

Start-up order is back to front (Telegraf's rule): the outbox opens first, then the publisher, then the
pipeline, then the pollers, so nothing is produced before there is somewhere durable to put it. Shutdown is
front to back: pollers stop, the last partial summary interval is closed and stored, the publisher gets a
bounded time to finish in-flight publishes (whatever is not acknowledged stays in the outbox), the outbox
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from drivers.base import CommsState, Driver, DriverError, Quality, Reading
from edge_agent import __version__
from edge_agent.alarm_stage import AlarmStage, source_clock_offset
from edge_agent.config import AgentConfig, Device
from edge_agent.data_dir_lock import DataDirLock
from edge_agent.driver_factory import create_driver, device_units, point_key
from edge_agent.errors import ConfigChangeRefused
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.publisher import Publisher
from edge_agent.publisher_settings import publisher_settings
from edge_agent.records import Priority, encode_payload, make_envelope
from edge_agent.scheduler import CadenceStats, PollActivity, cancel_and_wait, run_periodic
from edge_agent.summaries import SummaryAggregator
from edge_agent.telemetry import CycleFrame
from edge_agent.vibration_stage import VibrationStage

log = logging.getLogger(__name__)

STATUS_CHECK_INTERVAL_S = 5.0
ALARM_TICK_INTERVAL_S = 1.0
_point_of = attrgetter("point")
#: Bound of each subscribed device's queue of pushed reading batches.
PUSHED_QUEUE_BATCHES = 1000


@dataclass(slots=True)
class DeviceRunner:
    """One device's driver and the counters of its poll cadence."""

    driver: Driver
    poll_interval_s: float
    publish_raw: bool = False
    cadence: CadenceStats = field(default_factory=CadenceStats)
    connect_tried: bool = False
    last_state: CommsState | None = None
    task: asyncio.Task[None] | None = None
    subscribed: bool = False
    pushed: asyncio.Queue[Sequence[Reading]] | None = None
    pushed_task: asyncio.Task[None] | None = None
    pushed_dropped: int = 0
    #: With raw telemetry: the latest pushed reading of each subscribed point, sent with every poll cycle.
    pushed_latest: dict[str, Reading] = field(default_factory=dict)


def without_repeats(readings: Sequence[Reading]) -> list[Sequence[Reading]]:
    """``readings`` cut, in order, into parts in which no point appears twice.

    A subscription batch can hold several changes of one point (a monitored item's queue, or two changes
    in one publishing interval); a frame holds one value per point, so each part becomes one frame and
    every value counts, in order.
    """
    if len(set(map(_point_of, readings))) == len(readings):
        return [readings]
    parts: list[Sequence[Reading]] = []
    seen: set[str] = set()
    start = 0
    for i, reading in enumerate(readings):
        if reading.point in seen:
            parts.append(readings[start:i])
            seen = set()
            start = i
        seen.add(reading.point)
    parts.append(readings[start:])
    return parts


def asset_groups(cfg: AgentConfig) -> dict[str, list[str]]:
    """Map each asset to its point keys; points that belong to no asset are summarised under their device."""
    groups: dict[str, list[str]] = {a.name: list(a.points) for a in cfg.assets}
    claimed = {p for pts in groups.values() for p in pts}
    for device in cfg.devices:
        keys = (point_key(device.name, p.name) for p in device.points)
        loose = [key for key in keys if key not in claimed]
        if loose:
            groups.setdefault(device.name, []).extend(loose)
    return groups


def has_subscriptions(device: Device) -> bool:
    """True when ``device`` has points the device pushes (OPC UA ``mode: subscribe``)."""
    return any(getattr(p, "mode", "poll") == "subscribe" for p in device.points)


class Agent:
    """One running agent: construct with a validated config, then ``await run(stop)``."""

    def __init__(self, cfg: AgentConfig, config_text: str = "", metrics: AgentMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.config_hash = hashlib.sha256(config_text.encode()).hexdigest()[:16] if config_text else ""
        self.started_ts = time.time()
        self.data_dir = Path(cfg.agent.data_dir)
        self._data_dir_lock = DataDirLock(self.data_dir)
        self.prefix = cfg.topic_prefix
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        units: dict[str, str] = {}
        for device in cfg.devices:
            units.update(device_units(device))
        self.units = units
        self.poll_activity = PollActivity()
        self.pipeline = Pipeline(
            SummaryAggregator(asset_groups(cfg), units, cfg.summaries.statistics, start_s=time.time(),
                              max_message_bytes=cfg.summaries.max_message_size),
            units,
            self.emit,
        )
        self.vibration = VibrationStage(cfg, self.emit, self._latest_number)
        self.alarms = AlarmStage(cfg, units, self.emit, self.data_dir)
        self.pipeline.summary_extras = lambda asset: self.alarms.take_interval_counts(asset)
        self.devices: dict[str, DeviceRunner] = {
            d.name: DeviceRunner(create_driver(d), d.poll_interval, publish_raw=bool(d.publish_raw),
                                 subscribed=has_subscriptions(d))
            for d in cfg.devices
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._summary_task: asyncio.Task[None] | None = None
        self._last_status_key: object = None
        self.on_publisher_change: list[Callable[[Publisher], Awaitable[None]]] = []

    def _latest_number(self, key: str) -> float | None:
        """The latest good numeric value of point ``key`` (``device/point``), or None."""
        latest = self.pipeline.latest.get(key)
        if latest is None or latest.quality is not Quality.GOOD or isinstance(latest.value, (str, bool)):
            return None
        return float(latest.value) if isinstance(latest.value, (int, float)) else None

    # ----------------------------------------------------------------- records
    async def emit(self, topic_suffix: str, body: dict[str, object], priority: Priority,
                   retain: bool = False) -> None:
        """Wrap ``body`` in the wire envelope and store it durably; returns after the commit."""
        assert self.outbox is not None, "emit() before the outbox is open"
        # Summaries carry their points as JSON text already (RawJson, encoded slice by slice between polls by
        # Pipeline.close_summary_interval): encoding splices it into the small envelope.
        payload = encode_payload(make_envelope(body, self.cfg.agent.id))
        await self.outbox.put(f"{self.prefix}/{topic_suffix}", payload, priority, qos=1, retain=retain)

    def status(self) -> dict[str, object]:
        """The agent's status body (birth message and its updates)."""
        buffer = self.outbox.stats() if self.outbox is not None else {}
        return {
            "state": "online",
            "agent": self.cfg.agent.id,
            "site": self.cfg.agent.site,
            "version": __version__,
            "config_hash": self.config_hash,
            "started": int(self.started_ts * 1000),
            "devices": {name: r.driver.comms.as_dict() for name, r in self.devices.items()},
            "buffer": buffer,
            "alarms_active": len(self.alarms.active()),
        }

    def _status_key(self) -> object:
        """What, when changed, makes the status worth republishing (not every counter tick)."""
        buffer = self.outbox.stats() if self.outbox is not None else {}
        return (
            tuple((n, r.driver.comms.state.value, r.driver.comms.reconnects) for n, r in self.devices.items()),
            repr(buffer.get("evicted")),
            repr(buffer.get("mode")),
        )

    # ----------------------------------------------------------------- tasks
    async def _poll_cycle(self, name: str, runner: DeviceRunner, due_s: float) -> None:
        started = time.monotonic()
        lateness_s = max(0.0, time.time() - due_s)
        driver = runner.driver
        if not runner.connect_tried:
            runner.connect_tried = True  # one explicit connect; from here on read() owns reconnection and backoff
            try:
                await driver.connect()
            except DriverError as exc:
                log.warning("%s: cannot connect yet (%s); retrying on the next cycles", name, exc)
        result = await driver.read()
        # Comms first: the storm guard must know the device is down before its all-bad readings reach the
        # rules, or every bad_quality rule of the device raises along with device_down.
        await self._track_comms(name, runner)
        frame = self.pipeline.on_readings(name, result.readings) if result.readings else None
        if runner.publish_raw and self.outbox is not None:
            await self._publish_raw(name, runner, frame, result.readings, due_s)
        if result.readings:
            await self.alarms.on_readings(name, result.readings)
        if result.waveforms:
            await self.pipeline.on_waveforms(name, result.waveforms)
            for waveform in result.waveforms:
                vib = await self.vibration.on_waveform(name, waveform)
                if vib is not None:
                    key = f"{name}/{waveform.point}"
                    settings = self.vibration.channels.get(key)
                    await self.alarms.on_vibration(settings.asset if settings else name, key, vib, waveform.ts)
        if self.metrics is not None:
            self.metrics.observe_poll(name, duration_s=time.monotonic() - started, lateness_s=lateness_s,
                                      requests=result.requests, readings=result.readings)

    async def _publish_raw(self, name: str, runner: DeviceRunner, frame: CycleFrame | None,
                           polled: Sequence[Reading], due_s: float) -> None:
        """Store the cycle's raw-telemetry message: one per cycle, built once; QoS and report-by-exception
        from the device's config.

        A device with subscribed (pushed) points sends their latest pushed readings in each cycle's message
        along with the polled ones: the message is the device's state at the tick, whichever way each value
        arrived (an all-subscribed OPC UA device still sends one message per ``poll_interval``).
        """
        if runner.pushed_latest:
            frame = CycleFrame(name, [*polled, *runner.pushed_latest.values()])
        if frame is None:
            return
        raw = self.pipeline.raw_telemetry(self.cfg.device(name), self.cfg.agent.id)
        payload = raw.payload(frame, due_s) if raw is not None else None
        if raw is not None and payload is not None and self.outbox is not None:
            await self.outbox.put(f"{self.prefix}/telemetry/{name}", payload, Priority.TELEMETRY, qos=raw.qos)

    async def _track_comms(self, name: str, runner: DeviceRunner) -> None:
        """Tell the alarms when the device's comms go down or come back."""
        state = runner.driver.comms.state
        if state is not runner.last_state:
            if state is CommsState.DOWN:
                await self.alarms.on_comms(name, True, runner.driver.comms.last_error or "")
            elif runner.last_state is CommsState.DOWN:
                await self.alarms.on_comms(name, False)
            runner.last_state = state

    def _poller(self, name: str, runner: DeviceRunner) -> Callable[[float], Awaitable[None]]:
        async def cycle(due_s: float) -> None:
            with self.poll_activity.polling():
                await self._poll_cycle(name, runner, due_s)

        return cycle

    async def _summary_cycle(self, due_s: float) -> None:
        # The close falls on the poll grid: let the poll cycles of that tick run first (they have deadlines).
        await self.pipeline.close_summary_interval(due_s, pause=self.poll_activity.give_way)

    async def _alarm_tick(self, due_s: float) -> None:
        await self.alarms.tick(time.time())

    async def _status_cycle(self, due_s: float) -> None:
        """Store a status record (retained) when something worth telling changed.

        The birth message on each connection comes from the publisher; every change after it is a durable
        record like any other, so a change that happens during an outage is delivered after it, in order,
        and the retained status ends up being the latest one.
        """
        key = self._status_key()
        if key != self._last_status_key:
            self._last_status_key = key
            body = self.status()
            body.pop("agent", None)  # the envelope carries the agent id
            await self.emit("status", body, Priority.STATUS, retain=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _start_device(self, name: str, runner: DeviceRunner) -> None:
        runner.task = asyncio.create_task(
            run_periodic(runner.poll_interval_s, self._poller(name, runner), name=f"poll {name}",
                         stats=runner.cadence), name=f"poll:{name}")
        if runner.driver.supports_subscribe and runner.subscribed:
            runner.pushed = asyncio.Queue(maxsize=PUSHED_QUEUE_BATCHES)
            runner.pushed_task = asyncio.create_task(self._consume_pushed(name, runner), name=f"pushed:{name}")

    async def _subscribe_device(self, name: str, runner: DeviceRunner) -> None:
        """Start the device's subscriptions (OPC UA monitored items); pushed batches go through a bounded
        queue (overflow policy: drop the oldest batch and count it) to the same pipeline as polls."""
        def sink(readings: Sequence[Reading]) -> None:
            queue = runner.pushed
            if queue is None:
                return
            batch = list(readings)
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                # The oldest batch goes, never the newest: the newest says how things are now (a loss, or the
                # first values after one, which a steady point never sends again).
                queue.get_nowait()
                queue.put_nowait(batch)
                runner.pushed_dropped += 1
                if runner.pushed_dropped in (1, 10, 100) or runner.pushed_dropped % 1000 == 0:
                    log.warning("%s: pushed readings arrive faster than they are processed; dropped %d batch(es), "
                                "the oldest first", name, runner.pushed_dropped)

        await runner.driver.subscribe(sink)

    async def _consume_pushed(self, name: str, runner: DeviceRunner) -> None:
        assert runner.pushed is not None
        while True:
            readings = await runner.pushed.get()
            try:
                if self.metrics is not None:
                    self.metrics.observe_pushed(name, readings)
                if runner.publish_raw:
                    runner.pushed_latest.update(zip(map(_point_of, readings), readings, strict=True))
                offset = source_clock_offset(readings)  # of the whole publish, before cutting it
                for part in without_repeats(readings):
                    self.pipeline.on_readings(name, part)
                    await self.alarms.on_readings(name, part, pushed_offset=offset)
            except Exception:
                log.exception("%s: pushed readings could not be processed", name)

    async def _stop_device(self, name: str) -> None:
        runner = self.devices.get(name)
        if runner is None:  # a restore after a change that failed half-way
            return
        for task in (runner.task, runner.pushed_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        runner.task = runner.pushed_task = None
        with contextlib.suppress(Exception):
            await runner.driver.close()

    # ----------------------------------------------------------------- live reconfiguration
    async def reconfigure(self, old: AgentConfig, new: AgentConfig) -> list[str]:
        """Make ``new`` run in place of ``old``, restarting only what changed; return what was restarted.

        Unchanged devices keep their connections; a changed device reconnects alone; a broker change
        reconnects the publisher; rules, assets and summaries are rebuilt in memory with alarm state and
        vibration baselines kept. The outbox and everything buffered in it stay as they are. The agent's
        identity (id, site, data dir) cannot change while it runs: such a config is refused.
        """
        if (old.agent.id, old.agent.site, old.agent.data_dir) != (new.agent.id, new.agent.site, new.agent.data_dir):
            raise ConfigChangeRefused("agent.id, agent.site and agent.data_dir cannot change while the agent runs; "
                                      "edit the local config file and restart the service")
        # Read once at start-up (the remote service's settings, the topics it listens on): a live change would
        # be reported as applied and do nothing.
        restart_only = [name for name, before, after in (
            ("remote", old.remote, new.remote), ("mqtt.topic_prefix", old.topic_prefix, new.topic_prefix),
            ("mqtt.client_id", old.mqtt_client_id, new.mqtt_client_id)) if before != after]
        if restart_only:
            raise ConfigChangeRefused(f"{', '.join(restart_only)} cannot change while the agent runs; edit the "
                                      "local config file and restart the service")
        restarted: list[str] = []
        old_devices = {d.name: d for d in old.devices}
        new_devices = {d.name: d for d in new.devices}
        changed = [n for n in old_devices if n not in new_devices or old_devices[n] != new_devices[n]]
        added = [n for n in new_devices if n not in old_devices or old_devices[n] != new_devices[n]]
        # Build the new drivers before stopping anything: one that cannot be built (a password_env not set on
        # this gateway, a certificate file missing) refuses the change while everything still runs.
        built: dict[str, Driver] = {}
        for name in added:
            try:
                built[name] = create_driver(new_devices[name])
            except Exception as exc:
                raise ConfigChangeRefused(f"device {name}: {exc}") from exc
        for name in changed:
            await self._stop_device(name)
            self.devices.pop(name, None)
        self.cfg = new
        units: dict[str, str] = {}
        for device in new.devices:
            units.update(device_units(device))
        self.units = units
        for name in added:
            d = new_devices[name]
            self.devices[name] = DeviceRunner(built[name], d.poll_interval, publish_raw=bool(d.publish_raw),
                                              subscribed=has_subscriptions(d))
            self._start_device(name, self.devices[name])
            if self.devices[name].subscribed:
                await self._subscribe_device(name, self.devices[name])
            restarted.append(f"device {name}")
        for name in changed:
            if name not in new_devices:
                restarted.append(f"device {name} (removed)")

        shape_changed = bool(changed or added) or old.assets != new.assets or old.summaries != new.summaries
        if shape_changed:
            now = time.time()
            # The new aggregator first: readings of polls that run while the old interval is encoded (the
            # close gives way to them) count in it, instead of in the old one's next interval, thrown away.
            old_summaries = self.pipeline.summaries
            self.pipeline.summaries = SummaryAggregator(asset_groups(new), units, new.summaries.statistics, now,
                                                        max_message_bytes=new.summaries.max_message_size)
            self.pipeline.set_units(units)
            await self.pipeline.close_summary_interval(now, summaries=old_summaries)  # stored, not lost
        if old.summaries.interval != new.summaries.interval and self._summary_task is not None:
            self._summary_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._summary_task
            self._summary_task = asyncio.create_task(
                run_periodic(new.summaries.interval, self._summary_cycle, name="summaries"), name="summaries")
            restarted.append("summaries")
        if shape_changed or old.rules != new.rules:
            baselines = {k: c.baseline for k, c in self.vibration.channels.items()}
            self.vibration = VibrationStage(new, self.emit, self._latest_number)
            for key, channel in self.vibration.channels.items():
                if baselines.get(key) is not None:
                    channel.baseline = baselines[key]
            self.alarms.save()
            self.alarms = self.alarms.replaced_by(AlarmStage(new, units, self.emit, self.data_dir, restart=False))
            restarted.append("rules")
        if old.mqtt != new.mqtt and self.publisher is not None and self.outbox is not None:
            await self.publisher.stop(5.0)
            self.prefix = new.topic_prefix
            self.publisher = self._new_publisher(new, self.outbox)
            await self.publisher.start()
            for callback in self.on_publisher_change:
                await callback(self.publisher)
            restarted.append("publisher")
        if old.buffer != new.buffer:
            restarted.append("buffer (new bounds apply from the next start)")
        log.info("configuration applied; restarted: %s", ", ".join(restarted) or "nothing")
        return restarted

    def _new_publisher(self, cfg: AgentConfig, outbox: Outbox) -> Publisher:
        observer = self.metrics.publish_latency_seconds.observe if self.metrics is not None else None
        return Publisher(publisher_settings(cfg), outbox, self.status, ack_latency_observer=observer)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Lock the data directory, open the outbox, start the publisher and every poller; returns once all
        are running. Raises :class:`~edge_agent.data_dir_lock.DataDirInUseError` when another agent runs
        on the same data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir_lock.acquire()
        self.outbox = await Outbox.open(
            self.data_dir / "outbox.sqlite", self.cfg.buffer.max_size, self.cfg.buffer.max_age
        )
        self.publisher = self._new_publisher(self.cfg, self.outbox)
        await self.publisher.start()
        self.pipeline.summaries.reset_start(time.time())
        for name, runner in self.devices.items():
            self._start_device(name, runner)
            if runner.subscribed:
                await self._subscribe_device(name, runner)
        self._summary_task = asyncio.create_task(
            run_periodic(self.cfg.summaries.interval, self._summary_cycle, name="summaries"), name="summaries")
        self._spawn(run_periodic(STATUS_CHECK_INTERVAL_S, self._status_cycle, name="status", align=False),
                    "status")
        self._spawn(run_periodic(ALARM_TICK_INTERVAL_S, self._alarm_tick, name="alarm timers", align=False),
                    "alarm-tick")
        log.info("agent %s started: %d device(s), publishing to %s under %s", self.cfg.agent.id,
                 len(self.devices), self.cfg.mqtt.url, self.prefix)

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop pollers, store the last partial summary, let the publisher drain, close the outbox.

        An agent that never got its data directory (another agent holds it) stops without writing there.
        """
        if not self._data_dir_lock.held:
            await cancel_and_wait(self._tasks)
            log.info("agent %s stopped (it never owned %s)", self.cfg.agent.id, self.data_dir)
            return
        for name in list(self.devices):
            await self._stop_device(name)
        if self._summary_task is not None:
            self._tasks.append(self._summary_task)
            self._summary_task = None
        await cancel_and_wait(self._tasks)
        if self.outbox is not None:
            try:
                await self.pipeline.close_summary_interval(time.time())
            except Exception:
                log.exception("could not store the last partial summary")
        self.alarms.save()
        if self.publisher is not None:
            await self.publisher.stop(drain_timeout_s)
        if self.outbox is not None:
            await self.outbox.close()
        self._data_dir_lock.release()
        log.info("agent %s stopped", self.cfg.agent.id)

    async def run(self, stop: asyncio.Event) -> None:
        """Start, run until ``stop`` is set, then stop cleanly."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def comms_summary(self) -> dict[str, CommsState]:
        """Each device's link state."""
        return {name: r.driver.comms.state for name, r in self.devices.items()}
