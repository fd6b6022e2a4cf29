"""A small blocking MQTT 5 session for the engineer's CLI (paho runs its own network thread).

Messages arrive in a bounded thread-safe queue; the CLI waits for what it needs with deadlines, never
with sleeps. ``collect_retained`` uses a marker message to know when the broker has delivered every
retained message for a filter (the broker sends retained messages at subscribe time, before the marker).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.remote.errors import RemoteError
from edge_agent.remote.mqtt_client import BrokerOptions, make_client


@dataclass(frozen=True)
class Received:
    """One message as the CLI sees it."""

    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None


class CliSession:
    """Connect with ``with CliSession(options, timeout_s) as s:``; then subscribe / publish / wait."""

    def __init__(self, options: BrokerOptions, timeout_s: float = 10.0) -> None:
        self.options = options
        self.timeout_s = timeout_s
        self.client_id = f"edge-agent-cli-{uuid.uuid4().hex[:12]}"
        self.reply_topic = f"edge-agent-cli/{self.client_id}/reply"
        self._client = make_client(self.client_id, options)
        self._inbox: queue.Queue[Received] = queue.Queue(maxsize=10_000)
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._acks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_ack
        self._client.on_disconnect = self._on_disconnect

    def __enter__(self) -> CliSession:
        try:
            self._client.connect(self.options.host, self.options.port, keepalive=30)
        except OSError as exc:
            raise RemoteError(f"cannot reach the broker at {self.options.host}:{self.options.port}: "
                              f"{exc.strerror or exc}", code="broker") from exc
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s) or self._connect_error:
            self.close()
            why = self._connect_error or "no CONNACK within the timeout"
            raise RemoteError(f"broker {self.options.host}:{self.options.port} did not accept the "
                              f"connection: {why}", code="broker")
        self.subscribe(self.reply_topic)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic_filter: str) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK."""
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise RemoteError(f"subscribe to {topic_filter} failed: {mqtt.error_string(rc)}", code="broker")
        with self._lock:  # the SUBACK may already have arrived on paho's thread
            done = self._acks.setdefault(mid, threading.Event())
        acked = done.wait(self.timeout_s)
        with self._lock:
            self._acks.pop(mid, None)
        if not acked:
            raise RemoteError(f"no SUBACK for {topic_filter} within {self.timeout_s:g} s", code="broker")

    def publish(self, topic: str, payload: bytes, *, correlation_data: bytes | None = None,
                response_topic: str | None = None, retain: bool = False) -> None:
        """Publish at QoS 1 (with MQTT 5 request properties) and wait until the broker has it."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation_data is not None:
            props.CorrelationData = correlation_data
        if response_topic is not None:
            props.ResponseTopic = response_topic
        props.ContentType = "application/json"
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=props)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise RemoteError(f"publish to {topic} failed: {exc}", code="broker") from exc
        if not info.is_published():
            raise RemoteError(f"the broker did not acknowledge {topic} within {self.timeout_s:g} s",
                              code="broker")

    def collect_retained(self, topic_filter: str) -> list[Received]:
        """Every retained message currently stored for ``topic_filter``."""
        marker = f"edge-agent-cli/{self.client_id}/marker/{uuid.uuid4().hex[:8]}"
        self.subscribe(marker)
        self.subscribe(topic_filter)
        self.publish(marker, b"")
        found: list[Received] = []
        for message in self.messages(self.timeout_s):
            if message.topic == marker:
                return found
            if message.retain and mqtt.topic_matches_sub(topic_filter, message.topic):
                found.append(message)
        raise RemoteError(f"the broker did not return retained messages for {topic_filter} within "
                          f"{self.timeout_s:g} s", code="broker")

    def messages(self, timeout_s: float) -> Iterator[Received]:
        """Yield messages as they arrive until ``timeout_s`` seconds have passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                yield self._inbox.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue

    def wait_for(self, predicate: Callable[[Received], bool], timeout_s: float) -> Received | None:
        """The first message for which ``predicate`` holds, or None after ``timeout_s`` seconds."""
        for message in self.messages(timeout_s):
            if predicate(message):
                return message
        return None

    # paho thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()

    def _on_ack(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._acks.setdefault(mid, threading.Event()).set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        received = Received(message.topic, bytes(message.payload), bool(message.retain),
                            getattr(props, "CorrelationData", None))
        # A CLI that falls 10 000 messages behind only loses chatter it was not waiting for.
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait(received)
