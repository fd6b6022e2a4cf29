"""The publisher: drains the outbox to the MQTT broker, at least once, alerts first.

One connection at a time, each a fresh paho client driven by the event loop
(:mod:`edge_agent.mqtt.paho_bridge`). A fresh client per connection means paho never replays messages of its
own after a reconnect: the outbox is the only source of truth, and unacknowledged records are simply taken
again, in order, once the next connection is up.

Drain loop (a transaction, STYLE.md rule 7): take a batch from the outbox (highest priority class first,
oldest first within a class, skipping what is in flight), publish each record, and ``ack`` it in the outbox
only when the broker's PUBACK arrives (for QoS 0, when paho has written it to the socket). At most
``max_inflight`` QoS 1 messages are unacknowledged at once (capped by an MQTT 5 broker's Receive Maximum,
which a broker may enforce by disconnecting): outbox records take ``max_inflight - 1`` of them, and one
slot is kept for the status messages and ``publish_now`` replies (more while more of those wait). The
window is refilled as soon as any PUBACK frees a slot, so a new alert waits behind at most one window, never
behind the backlog; refilling at once also keeps data flowing back to the broker, which lets TCP acknowledge
its PUBACKs without the delayed-ACK/Nagle stall (40 ms per round on Linux) that waiting for a fuller window
caused (measured: 2 000 records/s waiting for a quarter window, 6 700 refilling at once).

Connection: birth message on connect (retained QoS 1 on ``{prefix}/status`` with the ``status_provider``
body, ``"state": "online"``), last will (retained ``{"state": "offline"}`` on the same topic) for a death
without DISCONNECT, an explicit retained offline status before a clean stop. Reconnects use exponential
backoff with jitter between ``reconnect_min_s`` and ``reconnect_max_s``; an error is logged once, then
quietly until it changes or the connection recovers. A broker refusing the client (bad credentials, not
authorised) shows as ``state == "refused"`` with ``last_error`` and is retried on the same capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.errors import PublishError
from edge_agent.mqtt.paho_bridge import PahoAsyncioBridge
from edge_agent.mqtt.settings import PublisherSettings
from edge_agent.outbox import Outbox, Record
from edge_agent.records import SCHEMA_VERSION, encode_payload, new_record_id

log = logging.getLogger(__name__)

StatusProvider = Callable[[], dict[str, Any]]
MessageHandler = Callable[[str, bytes, Properties | None], Awaitable[None] | None]

INCOMING_QUEUE_SIZE = 256
DISCONNECT_WAIT_S = 2.0


class PublisherState(StrEnum):
    """Where the publisher's connection is."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"  # waiting before the next attempt after a network or TLS failure
    REFUSED = "refused"  # the broker answered and refused us (credentials, authorisation, client id)


T = TypeVar("T")


class _Refused(Exception):
    """The broker sent a failing CONNACK."""


class _StopRequested(Exception):
    """stop() was asked while a connection attempt waited for the broker."""


def backoff_delay_s(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Delay (s) before reconnect ``attempt`` (0-based): ``min_s * 2**attempt`` times a jitter in [1, 1.5),
    never above ``max_s``. Jitter keeps a fleet of gateways from reconnecting in lock-step after an outage."""
    base = min(max_s, min_s * 2 ** min(attempt, 30))
    return float(min(max_s, base * rng.uniform(1.0, 1.5)))


@dataclass(slots=True)
class _Session:
    """One live connection: its client, the records in flight by MQTT message id, and its end."""

    client: paho.Client
    bridge: PahoAsyncioBridge
    inflight: dict[int, int] = field(default_factory=dict)  # mid -> outbox record id
    #: mid -> (time.monotonic() of the publish, PUBLISH bytes, place in this connection's publish order)
    sent: dict[int, tuple[float, int, int]] = field(default_factory=dict)
    window: int = 100
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    connack: asyncio.Future[tuple[ReasonCode, Properties | None]] | None = None
    status_mids: set[int] = field(default_factory=set)
    direct: dict[int, asyncio.Future[None]] = field(default_factory=dict)  # publish_now() waiting for PUBACK
    status_acked: asyncio.Event = field(default_factory=asyncio.Event)
    max_packet: int | None = None  # bytes: the smaller of mqtt.max_packet_size and the broker's (MQTT 5)
    acked: int = 0  # records acknowledged on this connection
    largest: tuple[int, str] = (0, "")  # the biggest record published on it: PUBLISH bytes, topic
    largest_id: int | None = None  # its outbox record id
    largest_seq: int = 0  # its place in this connection's publish order
    largest_at: float = 0.0  # time.monotonic() of its publish
    published: int = 0  # records published on this connection
    last_acked_seq: int = 0  # the latest place in the publish order acknowledged


#: Connections in a row lost before any record was acknowledged, before the publisher says why that may be.
UNACKED_LOSSES_BEFORE_HINT = 3
#: Connections in a row lost within OVERSIZED_LOSS_WINDOW_S of publishing the same record, the biggest in
#: flight and bigger than any the broker ever acknowledged, with nothing published after it acknowledged,
#: before that record is taken for one the broker refuses by size (an MQTT 3.1.1 broker just disconnects)
#: and dropped, so that it stops holding back every other record. Only with MQTT 3.1.1 and no
#: mqtt.max_packet_size (an MQTT 5 broker announces its limit; a configured one is applied before sending).
OVERSIZED_LOSSES_BEFORE_DROP = 5
OVERSIZED_LOSS_WINDOW_S = 5.0
#: Records this size or smaller are never taken for oversized: no broker in use limits packets that low
#: (AWS IoT Core 128 KB, Azure IoT Hub 256 KB; Mosquitto, EMQX and HiveMQ 1 MB or more by default), so a
#: flaky link or a refusing ACL cannot get ordinary records dropped this way.
OVERSIZED_MIN_BYTES = 16 * 1024


def _unsendable(size: int, max_packet: int | None) -> str | None:
    """Why a PUBLISH of ``size`` bytes cannot go to a broker taking packets of at most ``max_packet``, or None."""
    if max_packet is not None and size > max_packet:
        return f"its PUBLISH packet is {size} bytes, the broker takes at most {max_packet}"
    return None


def publish_packet_size(topic_bytes: int, payload_bytes: int, qos: int, properties_bytes: int = 0) -> int:
    """Bytes of an MQTT PUBLISH packet (MQTT 5 §3.3; without properties, as MQTT 3.1.1 §3.3, plus one)."""
    remaining = 2 + topic_bytes + (2 if qos else 0) + 1 + properties_bytes + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4
    return 1 + length_bytes + remaining


@dataclass(slots=True)
class PublisherCounters:
    """Totals since start."""

    published: int = 0
    acked: int = 0
    rejected: int = 0  # MQTT 5 PUBACK with a failure reason: dropped (logged), not retried
    connections: int = 0
    connect_failures: int = 0
    incoming: int = 0
    incoming_dropped: int = 0


class Publisher:
    """Sends outbox records to the broker; ``await start()``, then ``await stop(drain_timeout_s)``."""

    def __init__(self, settings: PublisherSettings, outbox: Outbox, status_provider: StatusProvider,
                 *, rng: random.Random | None = None,
                 ack_latency_observer: Callable[[float], None] | None = None) -> None:
        """``status_provider()`` returns the status body (with ``"state": "online"``) for birth messages;
        ``ack_latency_observer(seconds)`` (optional, e.g. a metrics histogram) gets each record's time from
        publish to PUBACK."""
        self.settings = settings
        self.outbox = outbox
        self.status_provider = status_provider
        self.ack_latency_observer = ack_latency_observer
        self.counters = PublisherCounters()
        self.last_error: str | None = None
        self._state = PublisherState.STOPPED
        self._rng = rng or random.Random()
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # window space freed, or stop requested
        self._pending_delete: set[int] = set()  # acked by the broker, deletion not yet committed
        self._unacked_losses = 0  # connections in a row lost before any record was acknowledged
        self._largest_acked = 0  # PUBLISH bytes of the biggest record the broker acknowledged (since start)
        self._oversized_suspect: tuple[int, int] | None = None  # (record id, connections in a row lost on it)
        self._acks_to_commit: list[int] = []
        self._ack_ready = asyncio.Event()
        self._subscriptions: dict[str, tuple[int, MessageHandler]] = {}
        self._incoming: asyncio.Queue[tuple[str, bytes, Properties | None]] = asyncio.Queue(
            INCOMING_QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._last_status_body: dict[str, Any] | None = None
        self._logged_error: str | None = None
        self._drain_deadline = 0.0

    # ------------------------------------------------------------------ public state
    @property
    def state(self) -> PublisherState:
        """Current connection state."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while a connection is up (CONNACK accepted, not yet lost)."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected (or ``timeout_s`` seconds); returns whether it is connected."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def stats(self) -> dict[str, Any]:
        """Publisher status: state, last error, in-flight count and counters since start."""
        session = self._session
        return {
            "state": self._state.value,
            "connected": self.connected,
            "broker": f"{self.settings.host}:{self.settings.port}",
            "last_error": self.last_error,
            "inflight": len(session.inflight) if session else 0,
            "published": self.counters.published,
            "acked": self.counters.acked,
            "rejected": self.counters.rejected,
            "connections": self.counters.connections,
            "connect_failures": self.counters.connect_failures,
            "incoming": self.counters.incoming,
            "incoming_dropped": self.counters.incoming_dropped,
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start connecting and draining in the background; returns at once (see :meth:`wait_connected`)."""
        if self._tasks:
            raise RuntimeError("Publisher.start() called twice")
        self._status_body("online")  # fail early on a status provider that breaks the contract
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mqtt-connect")
        self._tasks = [
            asyncio.create_task(self._run(), name="publisher"),
            asyncio.create_task(self._commit_acks(), name="publisher acks"),
            asyncio.create_task(self._dispatch_incoming(), name="publisher incoming"),
        ]

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop: let in-flight publishes finish for up to ``drain_timeout_s`` seconds, publish the retained
        offline status, disconnect cleanly. Records not acknowledged by then stay in the outbox."""
        if not self._tasks:
            return
        self._drain_deadline = time.monotonic() + max(0.0, drain_timeout_s)
        self._stopping.set()
        self._wake.set()
        run_task, ack_task, incoming_task = self._tasks
        try:
            async with asyncio.timeout(drain_timeout_s + self.settings.connect_timeout_s + 5):
                await asyncio.shield(run_task)
        except TimeoutError:
            log.error("publisher did not stop in time; cancelling")
            run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run_task
        for task in (ack_task, incoming_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ids, self._acks_to_commit = self._acks_to_commit, []
        if ids:  # the last PUBACKs: delete those records now, or they would be sent again after a restart
            try:
                await self.outbox.ack(ids)
            except Exception:
                log.exception("could not delete %d acknowledged record(s); they may be sent again", len(ids))
        self._pending_delete.clear()
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._state = PublisherState.STOPPED

    # ------------------------------------------------------------------ status
    def _status_body(self, state: str, **extra: Any) -> dict[str, Any]:
        body = dict(self.status_provider())
        if state == "online" and body.get("state") != "online":
            raise ValueError(f"status_provider() must return a dict with \"state\": \"online\", got "
                             f"state={body.get('state')!r}")
        body["state"] = state
        body.update(extra)
        return body

    def _status_payload(self, body: dict[str, Any]) -> bytes:
        envelope: dict[str, Any] = {"v": SCHEMA_VERSION, "id": new_record_id(), "ts": int(time.time() * 1000),
                                    "agent": self.settings.client_id}
        envelope.update(body)
        return encode_payload(envelope)

    def _offline_body(self, reason: str) -> dict[str, Any]:
        body = self._last_status_body or {}
        keep: dict[str, Any] = {k: body[k] for k in ("agent", "site", "version", "started") if k in body}
        return {**keep, "state": "offline", "reason": reason}

    async def publish_status(self) -> bool:
        """Publish the current status (retained, QoS 1) if connected and changed since the last one.

        Returns True if a message was sent. The birth message on each connection is sent regardless.
        """
        session = self._session
        if session is None or not self.connected:
            return False
        body = self._status_body("online")
        if body == self._last_status_body:
            return False
        self._send_status(session, body)
        return True

    def _send_status(self, session: _Session, body: dict[str, Any]) -> None:
        payload = self._status_payload(body)
        info = session.client.publish(self.settings.status_topic, payload, qos=1, retain=True)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            session.status_mids.add(info.mid)
            session.status_acked.clear()
            if body.get("state") == "online":
                self._last_status_body = body

    # ------------------------------------------------------------------ direct publishing
    async def publish_now(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                          properties: Mapping[str, Any] | None = None, timeout_s: float = 20.0) -> None:
        """Publish outside the outbox (replies, config state) and return after the PUBACK (QoS 1/2) or
        the write (QoS 0). Raises ``PublishError`` when not connected, when the connection drops first, or
        after ``timeout_s`` seconds. ``properties`` (MQTT 5 only, ignored on 3.1.1): ``correlation_data``
        (bytes), ``content_type`` and ``response_topic`` (str)."""
        session = self._session
        if session is None or not self.connected:
            raise PublishError(f"not connected to the broker; {topic} not published")
        props = None
        if properties and self.settings.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if properties.get("correlation_data") is not None:
                props.CorrelationData = bytes(properties["correlation_data"])
            if properties.get("content_type"):
                props.ContentType = str(properties["content_type"])
            if properties.get("response_topic"):
                props.ResponseTopic = str(properties["response_topic"])
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        info = session.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        session.direct[info.mid] = future
        try:
            # asyncio.timeout, never wait_for here: on Python 3.11 wait_for returns the result instead of
            # raising CancelledError when the PUBACK lands in the same loop turn as a cancel (CPython
            # gh-86296), and a caller that loops (RemoteService's state loop) then never stops
            async with asyncio.timeout(timeout_s):
                await future
        except TimeoutError:
            raise PublishError(f"no PUBACK for {topic} within {timeout_s:g} s") from None
        finally:
            session.direct.pop(info.mid, None)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> None:
        """Call ``handler(topic, payload, properties)`` (sync or async) for each message matching
        ``topic_filter``; kept across reconnects. Handlers run one at a time, in arrival order; a full queue
        (256 messages) drops new messages, counted in ``stats()["incoming_dropped"]``."""
        if not topic_filter or qos not in (0, 1, 2):
            raise ValueError(f"subscribe({topic_filter!r}, qos={qos}): need a non-empty filter and qos 0..2")
        self._subscriptions[topic_filter] = (qos, handler)
        session = self._session
        if session is not None and self.connected:
            session.client.subscribe(topic_filter, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        """Stop delivering messages for ``topic_filter``."""
        self._subscriptions.pop(topic_filter, None)
        session = self._session
        if session is not None and self.connected:
            session.client.unsubscribe(topic_filter)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.counters.incoming += 1
        props = getattr(msg, "properties", None)
        try:
            self._incoming.put_nowait((msg.topic, bytes(msg.payload), props))
        except asyncio.QueueFull:
            self.counters.incoming_dropped += 1
            if self.counters.incoming_dropped == 1 or self.counters.incoming_dropped % 100 == 0:
                log.warning("incoming MQTT queue full (%d): dropped %d message(s) so far, latest on %s",
                            INCOMING_QUEUE_SIZE, self.counters.incoming_dropped, msg.topic)

    async def _dispatch_incoming(self) -> None:
        while True:
            topic, payload, props = await self._incoming.get()
            for topic_filter, (_qos, handler) in list(self._subscriptions.items()):
                if not paho.topic_matches_sub(topic_filter, topic):
                    continue
                try:
                    result = handler(topic, payload, props)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("handler for %s failed on a message on %s", topic_filter, topic)

    # ------------------------------------------------------------------ connection supervision
    def _note_error(self, message: str, state: PublisherState) -> None:
        self._state = state
        self.last_error = message
        self.counters.connect_failures += 1
        if message != self._logged_error:
            self._logged_error = message
            log.error("%s; retrying with backoff up to %.0f s (logged once until it changes)",
                      message, self.settings.reconnect_max_s)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            self._state = PublisherState.CONNECTING
            try:
                session = await self._connect()
            except _StopRequested:
                break
            except _Refused as exc:
                self._note_error(str(exc), PublisherState.REFUSED)
            except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
                self._note_error(self._describe_failure(exc), PublisherState.BACKOFF)
            except Exception as exc:  # a bug or a library surprise must not end publishing for good
                log.exception("unexpected error while connecting to the broker")
                self._note_error(f"unexpected error while connecting: {exc!r}", PublisherState.BACKOFF)
            else:
                if self._logged_error is not None:
                    log.warning("connected to %s:%d again", self.settings.host, self.settings.port)
                else:
                    log.info("connected to %s:%d", self.settings.host, self.settings.port)
                self._logged_error = None
                self.last_error = None
                attempt = 0
                try:
                    await self._serve(session)
                except Exception as exc:  # e.g. the outbox failed to read: reconnect and try again
                    log.exception("publishing stopped on an unexpected error; reconnecting")
                    self.last_error = f"unexpected error while publishing: {exc!r}"
                if self._stopping.is_set():
                    break
                self._state = PublisherState.BACKOFF
            delay = backoff_delay_s(attempt, self.settings.reconnect_min_s, self.settings.reconnect_max_s,
                                    self._rng)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
        self._state = PublisherState.STOPPED

    def _describe_failure(self, exc: BaseException) -> str:
        where = f"{self.settings.host}:{self.settings.port}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"TLS handshake with {where} failed: certificate verify failed ({exc.verify_message}) "
                    "(check mqtt.tls.ca_file and that the broker certificate names this host)")
        if isinstance(exc, ssl.SSLError):
            return f"TLS error with {where}: {exc} (check mqtt.tls and the broker's TLS listener)"
        if isinstance(exc, TimeoutError):
            return f"no CONNACK from {where} within {self.settings.connect_timeout_s:.0f} s"
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect to {where}: connection refused (is the broker running on that port?)"
        return f"cannot connect to {where}: {exc}"

    def _new_client(self, tls_sockets: list[ssl.SSLSocket]) -> paho.Client:
        """A fresh paho client for one connection attempt; TLS sockets it wraps are appended to
        ``tls_sockets`` so a failed handshake's socket can be closed (paho drops it unclosed)."""
        s = self.settings
        v5 = s.protocol == "5"
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             clean_session=None if v5 else True,
                             protocol=paho.MQTTv5 if v5 else paho.MQTTv311, reconnect_on_failure=False)
        client.max_inflight_messages = 0  # the publisher keeps its own window; paho must not queue
        client.max_queued_messages = 0
        client.connect_timeout = s.connect_timeout_s
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        tls = s.effective_tls()
        if tls is not None:
            ctx = tls.ssl_context()
            wrap = ctx.wrap_socket

            def tracked_wrap(*args: Any, **kwargs: Any) -> ssl.SSLSocket:
                sock = wrap(*args, **kwargs)
                tls_sockets.append(sock)
                return sock

            ctx.wrap_socket = tracked_wrap  # type: ignore[method-assign]
            client.tls_set_context(ctx)
            if not tls.verify_hostname:
                client.tls_insecure_set(True)
        offline = self._status_payload(self._offline_body("connection lost (last will)"))
        client.will_set(s.status_topic, offline, qos=1, retain=True)
        return client

    async def _connect(self) -> _Session:
        loop = asyncio.get_running_loop()
        s = self.settings
        if self._last_status_body is None:
            self._last_status_body = self._status_body("online")
        tls_sockets: list[ssl.SSLSocket] = []
        client = self._new_client(tls_sockets)
        session = _Session(client, PahoAsyncioBridge(client, loop), window=s.max_inflight)
        session.connack = loop.create_future()
        self._bind_callbacks(session)
        client.connect_async(s.host, s.port, keepalive=int(s.keepalive_s),
                             clean_start=True if s.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY)
        assert self._executor is not None
        # Not cancellable on purpose: the thread runs until the TCP/TLS connect ends (bounded by
        # connect_timeout_s); abandoning it would leak its socket.
        connecting = loop.run_in_executor(self._executor, client.reconnect)
        try:
            await asyncio.shield(connecting)
            async with asyncio.timeout(s.connect_timeout_s):
                reason, props = await self._unless_stopping(session.connack)
        except BaseException:
            with contextlib.suppress(BaseException):
                await connecting
            session.bridge.abort()
            for sock in tls_sockets:
                sock.close()
            raise
        tls_sockets.clear()
        if reason.is_failure:
            session.bridge.abort()
            raise _Refused(f"broker {s.host}:{s.port} refused the connection: {reason} "
                           "(check mqtt.username / password and the broker's ACL for this client id)")
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        if receive_max:
            session.window = min(session.window, int(receive_max))
        limits = [n for n in (s.max_packet_size, getattr(props, "MaximumPacketSize", None) if props else None) if n]
        session.max_packet = min(int(n) for n in limits) if limits else None
        return session

    async def _unless_stopping(self, future: asyncio.Future[T]) -> T:
        """``future``'s result (it is not cancelled meanwhile), or :class:`_StopRequested` as soon as stop() is
        asked: a broker that accepts TCP but never sends CONNACK must not hold a stop for connect_timeout."""
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        waited: set[asyncio.Future[Any]] = {future, stopping}
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if future.done():
            return future.result()
        raise _StopRequested

    def _bind_callbacks(self, session: _Session) -> None:
        client = session.client

        def on_connect(c: paho.Client, ud: Any, flags: Any, reason: ReasonCode,
                       props: Properties | None) -> None:
            if session.connack is not None and not session.connack.done():
                session.connack.set_result((reason, props))

        def on_disconnect(c: paho.Client, ud: Any, flags: Any, reason: ReasonCode,
                          props: Properties | None) -> None:
            session.lost.set()
            self._wake.set()
            if session.connack is not None and not session.connack.done():
                session.connack.set_exception(
                    ConnectionResetError(f"connection closed before CONNACK: {reason}"))

        def on_publish(c: paho.Client, ud: Any, mid: int, reason: ReasonCode, props: Properties) -> None:
            self._on_publish(session, mid, reason)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = self._on_message

    def _on_publish(self, session: _Session, mid: int, reason: ReasonCode) -> None:
        direct = session.direct.pop(mid, None)
        if direct is not None:
            if direct.done():
                return
            if reason.is_failure:
                direct.set_exception(PublishError(f"broker rejected the message: {reason}"))
            else:
                direct.set_result(None)
            self._wake.set()
            return
        if mid in session.status_mids:
            session.status_mids.discard(mid)
            if not session.status_mids:
                session.status_acked.set()
            self._wake.set()  # its slot in the window is free again
            return
        record_id = session.inflight.pop(mid, None)
        sent = session.sent.pop(mid, None)
        if record_id is None or sent is None:
            return
        sent_at, size, seq = sent
        session.last_acked_seq = max(session.last_acked_seq, seq)
        if not reason.is_failure and size > self._largest_acked:
            self._largest_acked = size
        if self.ack_latency_observer is not None:
            try:
                self.ack_latency_observer(time.monotonic() - sent_at)
            except Exception:
                log.exception("ack latency observer failed")
        session.acked += 1
        if reason.is_failure:
            self.counters.rejected += 1
            log.error("broker rejected record %d (%s); dropping it from the outbox", record_id, reason)
        else:
            self.counters.acked += 1
        self._pending_delete.add(record_id)
        self._acks_to_commit.append(record_id)
        self._ack_ready.set()
        self._wake.set()

    async def _commit_acks(self) -> None:
        """Delete acknowledged records from the outbox in groups (one transaction per group)."""
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            ids, self._acks_to_commit = self._acks_to_commit, []
            if not ids:
                continue
            try:
                await self.outbox.ack(ids)
            except Exception:
                log.exception("could not delete %d acknowledged record(s); they may be sent again", len(ids))
            self._pending_delete.difference_update(ids)
            self._wake.set()

    # ------------------------------------------------------------------ one connection
    async def _serve(self, session: _Session) -> None:
        self._session = session
        self.counters.connections += 1
        self._state = PublisherState.CONNECTED
        self._connected.set()
        try:
            self._send_status(session, self._status_body("online"))
            for topic_filter, (qos, _handler) in self._subscriptions.items():
                session.client.subscribe(topic_filter, qos)
            await self._drain(session)
            if self._stopping.is_set() and not session.lost.is_set():
                await self._finish(session)
        finally:
            self._connected.clear()
            self._session = None
            if not session.lost.is_set():
                session.lost.set()
            session.bridge.abort()
            lost = len(session.inflight)
            suspect_in_flight = session.largest_id is not None and session.largest_id in session.inflight.values()
            session.inflight.clear()
            session.sent.clear()
            for future in session.direct.values():
                if not future.done():
                    future.set_exception(PublishError("connection lost before the PUBACK"))
            session.direct.clear()
            if not self._stopping.is_set():
                self.last_error = f"connection to {self.settings.host}:{self.settings.port} lost"
                log.warning("%s with %d record(s) in flight; they stay in the outbox and go again after "
                            "reconnecting", self.last_error, lost)
                self._note_unacked_loss(session, lost)
                self._note_oversized_suspect(session, suspect_in_flight)

    def _note_oversized_suspect(self, session: _Session, in_flight: bool) -> None:
        """After a lost connection: was it (again) lost on the same oversized-looking record? See
        OVERSIZED_LOSSES_BEFORE_DROP for when such a record is dropped (counted as rejected, logged with the
        fix): an MQTT 3.1.1 broker with a size limit disconnects without saying why, and the record would
        otherwise block the outbox (and, the buffer filling, get good records evicted) for ever."""
        size, topic = session.largest
        record_id = session.largest_id
        suspect = (
            in_flight and record_id is not None
            and self.settings.protocol == "3.1.1" and not self.settings.max_packet_size
            and size > max(self._largest_acked, OVERSIZED_MIN_BYTES)
            and session.last_acked_seq < session.largest_seq  # nothing sent after it got through
            and time.monotonic() - session.largest_at <= OVERSIZED_LOSS_WINDOW_S)
        if not suspect or record_id is None:
            self._oversized_suspect = None  # in a row, or not at all
            return
        previous = self._oversized_suspect
        strikes = previous[1] + 1 if previous is not None and previous[0] == record_id else 1
        self._oversized_suspect = (record_id, strikes)
        if strikes < OVERSIZED_LOSSES_BEFORE_DROP:
            return
        self._oversized_suspect = None
        self._drop_record(record_id, topic,
                          f"the broker dropped the connection {strikes} times in a row within seconds of its "
                          f"{size}-byte PUBLISH, and has never acknowledged a record over {self._largest_acked} "
                          "bytes: it likely refuses records this big (MQTT 3.1.1 brokers do not say so). Set "
                          "mqtt.max_packet_size to the broker's limit to have such records dropped at once")

    def _note_unacked_loss(self, session: _Session, lost: int) -> None:
        """Say what to do when the broker keeps dropping the connection before acknowledging anything: the
        usual cause is a record bigger than the broker takes (an MQTT 3.1.1 broker does not announce its
        limit, it just disconnects), which then blocks the outbox on every connection."""
        if session.acked or not lost:
            self._unacked_losses = 0
            return
        self._unacked_losses += 1
        if self._unacked_losses == UNACKED_LOSSES_BEFORE_HINT:
            size, topic = session.largest
            log.error("the broker dropped the last %d connections before acknowledging any record; the biggest "
                      "record in flight is %d bytes on %s. If the broker limits message size, set "
                      "mqtt.max_packet_size (e.g. 128kB for AWS IoT Core) and such records are dropped with an "
                      "error instead of blocking the others", self._unacked_losses, size, topic)

    async def _drain(self, session: _Session) -> None:
        """Keep the in-flight window full from the outbox until the connection drops or stop is asked."""
        client = session.client
        refill_at = 1  # see the module docstring: waiting for a fuller window stalls on delayed ACKs
        while not session.lost.is_set() and not self._stopping.is_set():
            # Status and publish_now() messages count against the broker's Receive Maximum too: keep a slot
            # for them (more while more of them are unacknowledged).
            others = len(session.status_mids) + len(session.direct)
            free = session.window - len(session.inflight) - max(others, 1 if session.window > 1 else 0)
            if free < refill_at and (session.inflight or others):
                self._wake.clear()
                await self._wake.wait()
                continue
            exclude = set(session.inflight.values()) | self._pending_delete
            batch = await self.outbox.take_batch(free, exclude)
            if session.lost.is_set() or self._stopping.is_set():
                return
            if not batch:
                self._wake.clear()
                waiter = asyncio.ensure_future(self.outbox.wait_for_records())
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waiter, waker}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    waker.cancel()
                    await asyncio.gather(waiter, waker, return_exceptions=True)
                continue
            for record in batch:
                size = publish_packet_size(len(record.topic.encode()), len(record.payload), record.qos)
                refusal = _unsendable(size, session.max_packet)
                if refusal is None:
                    try:
                        info = client.publish(record.topic, record.payload, qos=record.qos, retain=record.retain)
                    except ValueError as exc:  # paho refuses it (e.g. a topic over 65 535 bytes)
                        refusal = str(exc)
                if refusal is not None:
                    # Sending it would fail the same way on every connection, holding back the whole outbox.
                    self._drop_unsendable(record, refusal)
                    continue
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    return  # the connection is gone; on_disconnect ends the session
                now = time.monotonic()
                session.inflight[info.mid] = record.id
                session.published += 1
                session.sent[info.mid] = (now, size, session.published)
                if size > session.largest[0]:
                    session.largest = (size, record.topic)
                    session.largest_id, session.largest_seq, session.largest_at = record.id, session.published, now
                self.counters.published += 1

    def _drop_unsendable(self, record: Record, reason: str) -> None:
        """Drop a record no broker connection can carry, counted as rejected and logged with the fix."""
        self._drop_record(record.id, record.topic, f"{reason}; a bigger mqtt.max_packet_size or broker limit would "
                                                   "let such records through")

    def _drop_record(self, record_id: int, topic: str, reason: str) -> None:
        self.counters.rejected += 1
        log.error("record %d on %s cannot be sent (%s); dropping it from the outbox", record_id, topic, reason)
        self._pending_delete.add(record_id)
        self._acks_to_commit.append(record_id)
        self._ack_ready.set()

    async def _finish(self, session: _Session) -> None:
        """Clean stop: await in-flight PUBACKs until the drain deadline, send offline status, DISCONNECT."""
        deadline = self._drain_deadline
        while session.inflight and not session.lost.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("stop: %d record(s) still unacknowledged; they stay in the outbox",
                            len(session.inflight))
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
        if session.lost.is_set():
            return
        # the offline status and DISCONNECT get what is left of the drain time, within [0.5, 2] s each
        grace_s = min(DISCONNECT_WAIT_S, max(0.5, deadline - time.monotonic()))
        self._send_status(session, self._offline_body("shutdown"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await session.status_acked.wait()
        session.client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await session.lost.wait()

