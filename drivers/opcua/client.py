"""OPC UA driver (asyncua): batched polling, subscriptions, waveforms, security and self-healing sessions.

Two modes per point. ``poll`` points are read with **one** Read service call per cycle for the whole
device (plus the sample-rate nodes of waveforms, in the same call), split only when the server
publishes a smaller MaxNodesPerRead operation limit. ``subscribe`` points become
monitored items of one subscription; each Publish response turns into one batch of
:class:`~drivers.base.Reading` with the server's source timestamp, handed to the sink.

Status codes map to quality by their severity bits (OPC 10000-4 §7.39: 00 Good, 01 Uncertain,
10/11 Bad). A point whose NodeId does not parse, whose browse path does not resolve, or that the
server rejects, is BAD with the reason; the device carries on with the others.

Recovery: a lost connection (asyncua's keep-alive probe, a failed request, or a subscription that
has sent neither data nor keep-alive for twice its keep-alive period) drops the whole session; a new
one is opened with exponential backoff and jitter, capped, and the subscription is recreated.
``read()`` and, once ``subscribe()`` was called, a supervisor task both drive the reconnection, so
subscription-only devices heal too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.object_ids import ObjectIds

from drivers.base import (
    CommsState,
    CommsStatus,
    DriverError,
    Quality,
    Reading,
    ReadingSink,
    ReadResult,
    Waveform,
)
from drivers.opcua.certs import thumbprint, trusted_certificates_der
from drivers.opcua.requests import browse_path, chunks, monitored_item, ns0, read_value_id, ua_bool
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec, node_id_error
from drivers.opcua.values import bad_reading, status_quality, to_reading, to_waveform

log = logging.getLogger(__name__)

#: How often the subscription supervisor wakes to check the link (s) when nothing happens.
SUPERVISOR_TICK_S = 0.5
#: Shortest session timeout asked of the server, s (see _open).
SESSION_TIMEOUT_MIN_S = 10.0
#: Fastest publishing interval requested (ms); sampling intervals of 0 (as fast as possible) publish at this.
MIN_PUBLISHING_MS = 50.0


@dataclass(slots=True)
class _Target:
    """A point resolved against the server: its NodeId, or why it has none."""

    spec: OpcUaPointSpec
    node_id: ua.NodeId | None = None
    rate_node_id: ua.NodeId | None = None
    error: str | None = None


def _describe(exc: BaseException) -> str:
    """A one-line reason for an exception, with a hint where the fix is known."""
    text = str(exc).strip()
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if "No matching endpoints" in text:
        reason += " (the server has no endpoint with this security_policy/security_mode; use one it offers)"
    elif "BadIdentityTokenRejected" in text or "BadUserAccessDenied" in text:
        reason += " (check username/password, or whether the server allows anonymous login)"
    return reason


class OpcUaDriver:
    """One OPC UA server. See the module docstring; the contract is :class:`drivers.base.Driver`."""

    supports_subscribe = True

    def __init__(self, spec: OpcUaDeviceSpec, *, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.comms = CommsStatus()
        #: Data-change values delivered to the sink since creation (a metric).
        self.notifications_received = 0
        #: Times the watchdog found a subscription that had stopped delivering.
        self.stalls_detected = 0
        self._rng = rng or random.Random()
        self._poll_points = [p for p in spec.points if p.mode == "poll"]
        self._sub_points = [p for p in spec.points if p.mode == "subscribe"]
        self._client: Client | None = None
        self._targets: dict[str, _Target] = {}
        self._sink: ReadingSink | None = None
        self._subscription_id: int | None = None
        self._handles: dict[int, OpcUaPointSpec] = {}
        self._last_publish: float = 0.0
        self._stale_after_s = 2 * spec.keepalive_s + spec.timeout_s
        self._lost_reason: str | None = None
        self._ever_connected = False
        self._delay_s = spec.reconnect_min_s
        self._next_attempt = 0.0
        self._link_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._subscribed_told_bad = False  # the sink has the subscribed points as BAD (see _subscribed_bad)
        self._bad_polled: dict[str, str] = {}  # polled points reading BAD -> reason (see _settle_state)
        #: The server's OperationLimits (0 = none): Read and CreateMonitoredItems calls are split to fit.
        self.max_nodes_per_read = 0
        self.max_monitored_items_per_call = 0

    # ------------------------------------------------------------------ Driver contract
    async def connect(self) -> None:
        """Open a session (security and user from the spec), resolve the points, recreate the
        subscription when ``subscribe()`` was called; raise :class:`DriverError` when unreachable."""
        async with self._link_lock:
            if self._client is not None and self._lost_reason is None:
                return  # the subscription supervisor connected first
            await self._open()

    async def read(self) -> ReadResult:
        """Read every ``poll`` point in one Read call; failures come back as BAD readings, never raised."""
        if self._client is None or self._lost_reason is not None:
            await self._reconnect_if_due()
        client = self._client
        now = time.time()
        if client is None or self._lost_reason is not None:
            reason = self.comms.last_error or self._lost_reason or "not connected"  # the latest failure
            wait_s = max(self._next_attempt - time.monotonic(), 0.0)
            reason = f"{reason} (next connection attempt in {wait_s:.1f} s)"
            self.comms.requests_last_cycle = 0
            return ReadResult(readings=[bad_reading(p, reason, now) for p in self._poll_points])
        return await self._read_polled(client)

    async def subscribe(self, sink: ReadingSink) -> None:
        """Deliver the ``subscribe`` points' data changes to ``sink`` (one call per Publish response)
        until :meth:`close`; keeps the subscription alive across reconnects. ``sink`` runs on the event
        loop inside asyncua's publish loop: keep it quick (hand the batch on, don't process it there)."""
        self._sink = sink
        if not self._sub_points:
            return
        if self._client is None and self.comms.last_error is not None:  # already failed to connect
            self._subscribed_bad(self.comms.last_error)
        async with self._link_lock:
            client = self._client
            if client is not None and self._lost_reason is None and self._subscription_id is None:
                try:
                    await self._create_subscription(client)
                except Exception as exc:
                    self._mark_lost(f"cannot create subscription: {_describe(exc)}")
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name=f"opcua:{self.name}:supervisor")

    async def close(self) -> None:
        """Stop the supervisor and close the session; idempotent."""
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._sink = None
        client, self._client = self._client, None
        self._subscription_id = None
        self._handles = {}
        if client is not None:
            await self._dispose(client)
        self.comms.state = CommsState.DOWN

    # ------------------------------------------------------------------ session
    async def _open(self) -> None:
        """Connect a fresh asyncua client; on success it becomes ``self._client``."""
        spec = self.spec
        # asyncua probes the server every watchdog interval and gives the probe as long to answer: tying
        # both to the request timeout keeps a busy event loop from being mistaken for a dead link.
        client = Client(spec.endpoint, timeout=spec.timeout_s, watchdog_intervall=spec.timeout_s)
        # A session whose socket died cannot be closed; the server keeps it (and its subscription) until
        # the session timeout. asyncua asks for an hour: after a few dropped links a PLC with few session
        # slots would refuse us. A few keep-alive periods are enough (asyncua renews it while alive), ms.
        client.session_timeout = int(max(SESSION_TIMEOUT_MIN_S, 4 * spec.keepalive_s, 4 * spec.timeout_s) * 1000)
        client.application_uri = spec.application_uri
        client.name = client.description = f"edge-agent {spec.name}"
        client.connection_lost_callback = self._on_connection_lost
        try:
            async with asyncio.timeout(3 * spec.timeout_s):
                if spec.security_policy == "Basic256Sha256":
                    await self._secure(client)
                if spec.username is not None:
                    client.set_user(spec.username)
                    client.set_password(spec.password or "")
                await client.connect()
                await self._read_operation_limits(client)
                await self._resolve(client)
                self._client = client
                if self._sink is not None and self._sub_points:
                    await self._create_subscription(client)
        except asyncio.CancelledError:  # close() while connecting: leave nothing behind
            self._client = None
            await self._dispose(client)
            raise
        except Exception as exc:
            self._client = None
            await self._dispose(client)
            reason = f"cannot connect to {spec.endpoint}: {_describe(exc)}"
            self._note_error(reason)
            self._subscribed_bad(reason)
            raise DriverError(f"{self.name}: {reason}") from exc
        if self._ever_connected:
            self.comms.reconnects += 1
            log.info("%s: reconnected to %s (reconnect #%d)", self.name, spec.endpoint, self.comms.reconnects)
        else:
            log.info("%s: connected to %s", self.name, spec.endpoint)
        self._ever_connected = True
        self._lost_reason = None
        self._delay_s = spec.reconnect_min_s
        self.comms.state = CommsState.DEGRADED if self._has_point_errors() else CommsState.OK
        self.comms.last_ok_ts = time.time()

    async def _secure(self, client: Client) -> None:
        """Basic256Sha256 with the client's certificate; the server's certificate is pinned (a file),
        checked against a trust list (a directory), or taken from its endpoint (neither)."""
        spec = self.spec
        assert spec.certificate is not None and spec.private_key is not None
        sign_only = spec.security_mode == "Sign"
        mode = ua.MessageSecurityMode.Sign if sign_only else ua.MessageSecurityMode.SignAndEncrypt
        trusted: set[bytes] | None = None
        pinned = spec.server_certificate
        if pinned is not None and await asyncio.to_thread(Path(pinned).is_dir):
            trusted, pinned = await asyncio.to_thread(trusted_certificates_der, pinned), None
        await client.set_security(SecurityPolicyBasic256Sha256, spec.certificate, spec.private_key,
                                  server_certificate=pinned, mode=mode)
        if trusted is not None:
            offered = client.security_policy.peer_certificate or b""
            if offered not in trusted:
                raise ValueError(f"the server's certificate (SHA-1 {thumbprint(offered)}) is not in the "
                                 f"trust list {spec.server_certificate}; copy it there to trust it")

    async def _dispose(self, client: Client) -> None:
        """Close a client's session and socket, whatever state it is in (never raises)."""
        client.connection_lost_callback = None
        try:
            async with asyncio.timeout(2 * self.spec.timeout_s):
                await client.disconnect()
        except Exception as exc:
            log.debug("%s: disconnect: %s", self.name, _describe(exc))
        with contextlib.suppress(Exception):
            client.disconnect_socket()

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._mark_lost(f"connection lost: {_describe(exc)}")

    def _mark_lost(self, reason: str) -> None:
        """Declare the session dead; the next read() or the supervisor reconnects. The first cause is
        kept: what follows a loss (e.g. asyncua's synthetic BadShutdown to subscriptions) is a symptom.

        The subscribed points go BAD at once: nothing tells their values any more, and a stale value kept
        as good would mislead every consumer (alarms, interlocks, summaries) until the link is back.
        """
        if self._lost_reason is not None:
            return
        log.warning("%s: %s; reconnecting", self.name, reason)
        self._lost_reason = reason
        self._note_error(reason)
        # (the re-created subscription's first notification brings each point back, its current value
        # again even when unchanged: it is the reading that ends the gap)
        self._subscribed_bad(reason)
        self._wake.set()

    def _subscribed_bad(self, reason: str) -> None:
        """Hand every subscribed point to the sink as BAD with ``reason``, once per gap in the data: on a
        loss, and when the server cannot be reached before any subscription delivered (at start-up, a
        rebuilt device), so consumers see them bad, not missing."""
        if self._sink is None or not self._sub_points or self._subscribed_told_bad:
            return
        self._subscribed_told_bad = True
        now = time.time()
        self._deliver([bad_reading(p, reason, now) for p in self._sub_points])

    def _note_error(self, reason: str) -> None:
        self.comms.state = CommsState.DOWN
        self.comms.last_error = reason
        self.comms.last_error_ts = time.time()

    async def _reconnect_if_due(self) -> None:
        """One reconnection attempt if the backoff allows it now; schedules the next one on failure."""
        if time.monotonic() < self._next_attempt or self._link_lock.locked():
            return  # backing off, or another task is reconnecting right now: don't queue behind it
        async with self._link_lock:
            if self._client is not None and self._lost_reason is None:
                return  # someone else reconnected while we waited for the lock
            old, self._client = self._client, None
            self._subscription_id = None
            self._handles = {}
            if old is not None:
                await self._dispose(old)
            try:
                await self._open()
            except DriverError:
                jittered = self._delay_s * self._rng.uniform(0.8, 1.2)
                self._next_attempt = time.monotonic() + min(jittered, self.spec.reconnect_max_s)
                self._delay_s = min(self._delay_s * 2, self.spec.reconnect_max_s)

    async def _supervise(self) -> None:
        """Keep a subscribing device connected and its subscription delivering."""
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SUPERVISOR_TICK_S)
            try:
                await self._supervise_once()
            except Exception:  # a bug here must not end supervision for good; log it and go on
                log.exception("%s: subscription supervisor failed; continuing", self.name)

    async def _supervise_once(self) -> None:
        if self._client is None or self._lost_reason is not None:
            await self._reconnect_if_due()
            return
        if self._subscription_id is not None:
            silent_s = time.monotonic() - self._last_publish
            if silent_s > self._stale_after_s:
                self.stalls_detected += 1
                reason = f"subscription stopped delivering: no data or keep-alive for {silent_s:.1f} s"
                self._mark_lost(reason)

    async def _read_operation_limits(self, client: Client) -> None:
        """MaxNodesPerRead and MaxMonitoredItemsPerCall from the server (OPC 10000-5 §6.3.11); a
        server that does not publish them (or says 0) has no limit."""
        params = ua.ReadParameters()
        params.NodesToRead = [
            read_value_id(ns0(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)),
            read_value_id(ns0(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)),
        ]
        limits: list[int] = []
        for dv in await client.uaclient.read(params):
            value = dv.Value.Value if dv.Value is not None else None
            good = status_quality(dv.StatusCode) is Quality.GOOD
            ok = good and isinstance(value, int) and not isinstance(value, bool) and value > 0
            limits.append(int(value) if ok else 0)  # type: ignore[arg-type]
        self.max_nodes_per_read, self.max_monitored_items_per_call = limits

    # ------------------------------------------------------------------ resolution
    async def _resolve(self, client: Client) -> None:
        """Map every point to a NodeId: parse NodeId strings, translate browse paths in one call."""
        targets: dict[str, _Target] = {}
        by_path: list[tuple[_Target, str]] = []
        for point in self.spec.points:
            target = _Target(point)
            targets[point.name] = target
            if point.node is not None:
                if (why := node_id_error(point.node)) is not None:
                    target.error = why
                else:
                    target.node_id = ua.NodeId.from_string(point.node)
            elif point.browse_path is not None:
                by_path.append((target, point.browse_path))
            if point.sample_rate_node is not None and target.error is None:
                if (why := node_id_error(point.sample_rate_node)) is not None:
                    target.error = f"sample_rate_node: {why}"
                else:
                    target.rate_node_id = ua.NodeId.from_string(point.sample_rate_node)
        if by_path:
            paths = [browse_path(p) for _, p in by_path]
            results = await client.uaclient.translate_browsepaths_to_nodeids(paths)
            for (target, path), result in zip(by_path, results, strict=True):
                if result.StatusCode.is_good() and result.Targets:
                    target.node_id = ua.NodeId(result.Targets[0].TargetId.Identifier,
                                               result.Targets[0].TargetId.NamespaceIndex)
                else:
                    target.error = (f"browse path {path!r} does not resolve on the server "
                                    f"({result.StatusCode.name}); check each element's namespace and name")
        for target in targets.values():
            if target.error is not None:
                log.warning("%s: point %r is BAD: %s", self.name, target.spec.name, target.error)
        self._targets = targets

    def _has_point_errors(self) -> bool:
        return any(t.error is not None for t in self._targets.values())

    # ------------------------------------------------------------------ polling
    async def _read_polled(self, client: Client) -> ReadResult:
        now = time.time()
        result = ReadResult()
        to_read: list[ua.ReadValueId] = []
        slots: list[tuple[_Target, int, int | None]] = []  # target, value index, sample-rate index
        for point in self._poll_points:
            target = self._targets.get(point.name)
            if target is None or target.node_id is None:
                reason = target.error if target is not None and target.error else "not resolved"
                result.readings.append(bad_reading(point, reason, now))
                continue
            value_index = len(to_read)
            to_read.append(read_value_id(target.node_id))
            rate_index = None
            if target.rate_node_id is not None:
                rate_index = len(to_read)
                to_read.append(read_value_id(target.rate_node_id))
            slots.append((target, value_index, rate_index))
        if not to_read:
            self.comms.requests_last_cycle = 0
            self._settle_state(result)
            return result
        values: list[ua.DataValue] = []
        requests = 0
        try:
            for chunk in chunks(to_read, self.max_nodes_per_read):
                params = ua.ReadParameters()
                params.TimestampsToReturn = ua.TimestampsToReturn.Both
                params.NodesToRead = chunk
                requests += 1
                async with asyncio.timeout(self.spec.timeout_s + 1):
                    values.extend(await client.uaclient.read(params))
        except Exception as exc:  # transport, timeout, service fault: all mean "rebuild the session"
            reason = f"read failed: {_describe(exc)}"
            self._mark_lost(reason)
            self.comms.requests_last_cycle = result.requests = requests
            result.readings.extend(bad_reading(t.spec, reason, now) for t, _, _ in slots)
            return result
        received = time.time()
        for target, value_index, rate_index in slots:
            dv = values[value_index]
            if target.spec.kind == "waveform":
                rate_dv = values[rate_index] if rate_index is not None else None
                item = to_waveform(target.spec, dv, rate_dv, received)
                if isinstance(item, Waveform):
                    result.waveforms.append(item)
                else:
                    result.readings.append(item)
            else:
                result.readings.append(to_reading(target.spec, dv, received))
        result.requests = self.comms.requests_last_cycle = requests
        self.comms.last_ok_ts = received
        self._settle_state(result)
        return result

    def _settle_state(self, result: ReadResult) -> None:
        """DEGRADED while some point reads BAD (OK otherwise). A point the server refuses (e.g.
        BadNodeIdUnknown: a NodeId typo) is logged once until it reads again, and is the device's
        ``last_error``, as a refused Modbus request is: the status then says why, not just 'degraded'."""
        bad = {r.point: r.reason or "bad quality" for r in result.readings if r.quality is Quality.BAD}
        for name, reason in bad.items():
            target = self._targets.get(name)  # a point that did not resolve was logged when resolving
            if self._bad_polled.get(name) != reason and (target is None or target.error is None):
                log.warning("%s: point %r is BAD: %s (logged once until it recovers)", self.name, name, reason)
        for name in self._bad_polled.keys() - bad.keys():
            log.info("%s: point %r reads again", self.name, name)
        self._bad_polled = bad
        if bad:
            name, reason = next(iter(bad.items()))
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            self.comms.last_error = f"point {name!r}: {reason}{more}"
            self.comms.last_error_ts = time.time()
        self.comms.state = CommsState.DEGRADED if bad or self._has_point_errors() else CommsState.OK

    # ------------------------------------------------------------------ subscription
    async def _create_subscription(self, client: Client) -> None:
        """One subscription for all ``subscribe`` points; monitored items created in one call (or as few
        as MaxMonitoredItemsPerCall allows). Points that cannot be monitored go to the sink as BAD."""
        spec = self.spec
        publishing_ms = max(1000.0 * min(p.sampling_interval_s for p in self._sub_points), MIN_PUBLISHING_MS)
        keepalive_count = max(1, math.ceil(1000.0 * spec.keepalive_s / publishing_ms))
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = ua.Double(publishing_ms)
        params.RequestedMaxKeepAliveCount = ua.UInt32(keepalive_count)
        # lifetime must be at least 3 × keep-alive count (OPC 10000-4 §5.13.2)
        params.RequestedLifetimeCount = ua.UInt32(10 * keepalive_count)
        params.MaxNotificationsPerPublish = ua.UInt32(0)  # no limit
        params.PublishingEnabled = ua_bool(True)
        params.Priority = ua.Byte(0)
        created = await client.uaclient.create_subscription(params, self._on_publish)
        self._subscription_id = int(created.SubscriptionId)
        self._subscribed_told_bad = False  # its first notifications bring the values back
        self._last_publish = time.monotonic()
        revised_keepalive_s = created.RevisedPublishingInterval / 1000.0 * created.RevisedMaxKeepAliveCount
        self._stale_after_s = 2 * max(revised_keepalive_s, spec.keepalive_s) + spec.timeout_s
        now = time.time()
        bad: list[Reading] = []
        items: list[ua.MonitoredItemCreateRequest] = []
        handles: dict[int, OpcUaPointSpec] = {}
        for point in self._sub_points:
            target = self._targets.get(point.name)
            if target is None or target.node_id is None:
                reason = target.error if target is not None and target.error else "not resolved"
                bad.append(bad_reading(point, reason, now))
                continue
            handle = len(handles) + 1
            handles[handle] = point
            items.append(monitored_item(target.node_id, handle, point))
        self._handles = handles
        for chunk in chunks(items, self.max_monitored_items_per_call):
            mparams = ua.CreateMonitoredItemsParameters()
            mparams.SubscriptionId = ua.UInt32(self._subscription_id)
            mparams.ItemsToCreate = chunk
            mparams.TimestampsToReturn = ua.TimestampsToReturn.Both
            results = await client.uaclient.create_monitored_items(mparams)
            for item, res in zip(chunk, results, strict=True):
                if not res.StatusCode.is_good():
                    point = handles.pop(int(item.RequestedParameters.ClientHandle))
                    reason = f"monitored item rejected by the server: {res.StatusCode.name}"
                    log.warning("%s: point %r is BAD: %s", self.name, point.name, reason)
                    bad.append(bad_reading(point, reason, now))
        if bad:
            self.comms.state = CommsState.DEGRADED
            self._deliver(bad)

    def _on_publish(self, result: ua.PublishResult) -> None:
        """asyncua's publish loop calls this for every Publish response, keep-alives included."""
        if result.SubscriptionId != self._subscription_id:
            return  # a late response of a subscription we already dropped
        self._last_publish = time.monotonic()
        data = result.NotificationMessage.NotificationData
        if not data:
            return
        now = time.time()
        readings: list[Reading] = []
        handles = self._handles
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    point = handles.get(item.ClientHandle)
                    if point is not None:
                        readings.append(to_reading(point, item.Value, now))
            elif isinstance(notification, ua.StatusChangeNotification) and notification.Status.is_bad():
                self._mark_lost(f"subscription ended by the server: {notification.Status.name}")
        if readings:
            self.notifications_received += len(readings)
            self.comms.last_ok_ts = now
            self._deliver(readings)

    def _deliver(self, readings: Sequence[Reading]) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink(readings)
        except Exception:  # the sink is the agent's; its bug must not stop the subscription
            log.exception("%s: reading sink failed", self.name)
