"""Direct publishing (outside the outbox) and the remote-service transport over the publisher's session."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.errors import PublishError
from edge_agent.mqtt import PublisherSettings
from edge_agent.mqtt.remote_transport import PublisherTransport
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from edge_agent.records import Priority
from edge_agent.remote.contracts import InboundMessage

try:
    from tests.mqtt_support import Mosquitto, poll_until
except ImportError:
    from mqtt_support import Mosquitto, poll_until  # type: ignore[no-redef]

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_thread_leak")]

PREFIX = "edge/direct/gw"


class CloudClient:
    """An MQTT 5 client on its own thread, standing in for the cloud side."""

    def __init__(self, broker: Mosquitto) -> None:
        self.received: list[tuple[str, bytes, Any]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="cloud", protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, ud: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), msg.properties))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_command_round_trip_with_correlation_data(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    pub = Publisher(PublisherSettings(url=mosquitto.url, client_id="gw", topic_prefix=PREFIX, protocol="5"),
                    ob, lambda: {"state": "online"})
    transport = PublisherTransport(pub)
    seen: list[InboundMessage] = []

    async def on_command(msg: InboundMessage) -> None:
        seen.append(msg)
        assert msg.response_topic is not None
        await transport.publish(msg.response_topic, b'{"pong":true}',
                                properties={"correlation_data": msg.correlation_data,
                                            "content_type": "application/json"})

    await transport.subscribe(f"{PREFIX}/cmd/+", on_command)
    cloud = CloudClient(mosquitto)
    try:
        await pub.start()
        assert await pub.wait_connected(30)
        cloud.client.subscribe("cloud/replies/#", qos=1)
        await poll_until(cloud.subscribed.is_set, 30, "cloud SUBACK")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "cloud/replies/1"
        props.CorrelationData = b"req-42"

        def replied() -> bool:
            with cloud.lock:
                return any(t == "cloud/replies/1" for t, _, _ in cloud.received)

        for _ in range(150):  # our SUBACK may still be in flight: send until the command is seen
            cloud.client.publish(f"{PREFIX}/cmd/ping", b"{}", qos=1, properties=props)
            try:
                await poll_until(replied, 0.2)
                break
            except TimeoutError:
                continue
        await poll_until(replied, 30, "reply")
    finally:
        cloud.close()
        await pub.stop(2)
        await ob.close()
    assert seen[0].topic == f"{PREFIX}/cmd/ping" and seen[0].correlation_data == b"req-42"
    _topic, payload, reply_props = next(r for r in cloud.received if r[0] == "cloud/replies/1")
    assert payload == b'{"pong":true}'
    assert reply_props.CorrelationData == b"req-42" and reply_props.ContentType == "application/json"


async def test_publish_now_raises_when_it_cannot_deliver(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    latencies: list[float] = []
    pub = Publisher(PublisherSettings(url=mosquitto.url, client_id="gw", topic_prefix=PREFIX), ob,
                    lambda: {"state": "online"}, ack_latency_observer=latencies.append)
    try:
        with pytest.raises(PublishError, match="not connected"):
            await pub.publish_now(f"{PREFIX}/x", b"1")
        await pub.start()
        assert await pub.wait_connected(30)
        await pub.publish_now(f"{PREFIX}/config/state", b"{}", retain=True)  # acknowledged: returns
        await ob.put_many([(f"{PREFIX}/alerts/a", b"%d" % i, Priority.ALERT) for i in range(10)])
        await poll_until(lambda: len(latencies) == 10, 30, "10 PUBACKs observed")
        assert all(0 <= s < 60 for s in latencies)
        assert mosquitto.proc is not None
        mosquitto.proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(PublishError, match="no PUBACK"):
                await pub.publish_now(f"{PREFIX}/x", b"2", timeout_s=0.5)
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
    finally:
        await pub.stop(1)
        await ob.close()


async def test_cancelling_publish_now_is_never_swallowed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A cancel that lands in the same loop turn as the PUBACK must still cancel the caller (regression:
    asyncio.wait_for on Python 3.11 returned the result instead, and a remote-service loop never stopped)."""
    import asyncio

    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    pub = Publisher(PublisherSettings(url=mosquitto.url, client_id="gw", topic_prefix=PREFIX), ob,
                    lambda: {"state": "online"})
    assert mosquitto.proc is not None
    try:
        await pub.start()
        assert await pub.wait_connected(30)
        mosquitto.proc.send_signal(signal.SIGSTOP)  # keep the real PUBACK away; we deliver it by hand
        try:
            task = asyncio.create_task(pub.publish_now(f"{PREFIX}/config/state", b"{}", timeout_s=60))
            session = pub._session
            assert session is not None
            await poll_until(lambda: bool(session.direct), 30, "publish in flight")
            next(iter(session.direct.values())).set_result(None)  # the PUBACK arrives ...
            task.cancel()  # ... in the same loop turn as the cancel
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
    finally:
        await pub.stop(1)
        await ob.close()


def test_a_client_collected_after_its_loop_closed_does_not_raise() -> None:
    """paho's Client.__del__ closes its socket and calls back into the bridge; after the event loop is
    gone that must be a no-op, not 'RuntimeError: Event loop is closed' from a finaliser."""
    import asyncio
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.mqtt.paho_bridge import PahoAsyncioBridge

    loop = asyncio.new_event_loop()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    bridge = PahoAsyncioBridge(client, loop)
    loop.close()
    errors: list[BaseException] = []

    def close_from_another_thread() -> None:
        try:
            bridge._on_socket_close(client, None, None)
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    worker = threading.Thread(target=close_from_another_thread)
    worker.start()
    worker.join()
    bridge._on_socket_close(client, None, None)  # and from the loop's own thread
    assert errors == []
