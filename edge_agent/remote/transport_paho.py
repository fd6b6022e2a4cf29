"""A :class:`~edge_agent.remote.contracts.RemoteTransport` on paho-mqtt, bridged into asyncio.

paho runs its own network thread (``loop_start``); callbacks hop onto the event loop with
``call_soon_threadsafe``. Publishes resolve when paho reports the PUBACK; incoming messages go through a
bounded queue (overflow policy: drop newest, counted) to one dispatcher task, in arrival order.
Subscriptions are renewed on every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.errors import PublishError
from edge_agent.remote.contracts import InboundMessage, MessageHandler
from edge_agent.remote.mqtt_client import BrokerOptions, make_client

log = logging.getLogger(__name__)


class PahoTransport:
    """MQTT 5 connection for the remote service: ``await start()``, subscribe/publish, ``await close()``."""

    def __init__(self, options: BrokerOptions, client_id: str, *, keepalive_s: int = 30,
                 publish_timeout_s: float = 20.0, queue_size: int = 256,
                 will: tuple[str, bytes, bool] | None = None) -> None:
        self._options = options
        self._client = make_client(client_id, options)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=will[2])
        self._keepalive_s = keepalive_s
        self._publish_timeout_s = publish_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        # PUBACK/SUBACK waiters by message id (paho numbers both from one counter). Touched only on the
        # event loop thread: paho's callbacks hop over with call_soon_threadsafe.
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._subscriptions: list[tuple[str, MessageHandler]] = []
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue(maxsize=queue_size)
        self._dispatcher: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.dropped_messages = 0
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe

    @property
    def connected(self) -> bool:
        """True while the broker session is up."""
        return self._connected.is_set()

    async def start(self, timeout_s: float = 20.0) -> None:
        """Connect (in paho's thread) and wait for CONNACK; paho keeps reconnecting after that."""
        self._loop = asyncio.get_running_loop()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="paho-transport-dispatch")
        try:
            self._client.connect_async(self._options.host, self._options.port, keepalive=self._keepalive_s)
            self._client.loop_start()
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except (TimeoutError, OSError) as exc:
            await self.close()
            raise PublishError(f"no connection to {self._options.host}:{self._options.port} within "
                               f"{timeout_s:g} s ({type(exc).__name__})") from exc

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected (True) or ``timeout_s`` seconds pass (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect, stop paho's thread and the dispatcher; pending publishes fail."""
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(PublishError("transport closed"))
        self._connected.clear()

    async def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (QoS 1, renewed on reconnect)."""
        self._subscriptions.append((topic_filter, handler))
        if not self.connected:
            return  # subscribed by _on_connect when the session comes up
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            return  # not connected after all: _on_connect subscribes on the next session
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[mid] = future  # the SUBACK callback hops over after this line (no await before it)
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await future
        except TimeoutError:
            raise PublishError(f"no SUBACK for {topic_filter} within {self._publish_timeout_s:g} s") from None
        finally:
            if self._pending.get(mid) is future:
                del self._pending[mid]

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      properties: Mapping[str, Any] | None = None) -> None:
        """Publish; for QoS 1 return after the PUBACK. Raises ``PublishError`` when not connected."""
        if not self.connected:
            raise PublishError(f"not connected to the broker; {topic} not published")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if properties:
            if properties.get("correlation_data") is not None:
                props.CorrelationData = bytes(properties["correlation_data"])
            if properties.get("content_type"):
                props.ContentType = str(properties["content_type"])
            if properties.get("response_topic"):
                props.ResponseTopic = str(properties["response_topic"])
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return
        # No await since publish(): the PUBACK callback, hopping over from paho's thread, runs after this.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[info.mid] = future
        try:
            async with asyncio.timeout(self._publish_timeout_s):  # not wait_for: it can eat a cancel on 3.11
                await future
        except TimeoutError:
            raise PublishError(f"no PUBACK for {topic} within {self._publish_timeout_s:g} s") from None
        finally:
            if self._pending.get(info.mid) is future:
                del self._pending[info.mid]

    # --- paho thread ------------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        for topic_filter in dict.fromkeys(t for t, _ in self._subscriptions):
            client.subscribe(topic_filter, qos=1)
        self._call(self._connected.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Any) -> None:
        self._call(self._connected.clear)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Any) -> None:
        error = PublishError(f"broker refused the publish: {reason}") if reason.is_failure else None
        self._call(self._acked, mid, error)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        error = PublishError(f"broker refused the subscription: {', '.join(failed)}") if failed else None
        self._call(self._acked, mid, error)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._call(self._enqueue, message)

    def _call(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(callback, *args)

    # --- event loop ------------------------------------------------------------------------------------

    def _acked(self, mid: int, error: Exception | None) -> None:
        future = self._pending.pop(mid, None)
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _enqueue(self, message: mqtt.MQTTMessage) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_messages += 1
            if self.dropped_messages in (1, 10, 100) or self.dropped_messages % 1000 == 0:
                log.warning("incoming queue full: %d message(s) dropped", self.dropped_messages)

    async def _dispatch(self) -> None:
        while True:
            message = await self._queue.get()
            props = getattr(message, "properties", None)
            inbound = InboundMessage(
                topic=message.topic, payload=bytes(message.payload),
                response_topic=getattr(props, "ResponseTopic", None) or None,
                correlation_data=getattr(props, "CorrelationData", None),
            )
            for topic_filter, handler in self._subscriptions:
                if mqtt.topic_matches_sub(topic_filter, message.topic):
                    try:
                        await handler(inbound)
                    except Exception:
                        log.exception("handler for %s failed", topic_filter)
