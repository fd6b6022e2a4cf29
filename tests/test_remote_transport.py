"""PahoTransport against a real Mosquitto: MQTT 5 properties end to end, refusal when disconnected."""

from __future__ import annotations

import pytest

from edge_agent.errors import PublishError
from edge_agent.remote.contracts import InboundMessage
from edge_agent.remote.mqtt_client import BrokerOptions
from edge_agent.remote.transport_paho import PahoTransport

try:
    from tests.mqtt_support import Mosquitto, free_port, poll_until
except ImportError:  # tests/ is not a package
    from mqtt_support import Mosquitto, free_port, poll_until  # type: ignore[no-redef]

pytestmark = pytest.mark.integration


async def test_start_fails_clearly_when_no_broker_listens() -> None:
    transport = PahoTransport(BrokerOptions("127.0.0.1", free_port()), "lonely")
    with pytest.raises(PublishError, match=r"no connection to 127\.0\.0\.1:\d+ within 1 s"):
        await transport.start(timeout_s=1.0)


async def test_properties_round_trip_and_disconnected_publish_is_refused(mosquitto: Mosquitto) -> None:
    transport = PahoTransport(BrokerOptions.from_url(mosquitto.url), "t1")
    received: list[InboundMessage] = []

    async def handler(message: InboundMessage) -> None:
        received.append(message)

    await transport.start()
    try:
        await transport.subscribe("t/#", handler)
        await transport.publish("t/a", b"one", properties={"correlation_data": b"\x01\x02"})
        await transport.publish("t/b", b"two", qos=0)
        await poll_until(lambda: len(received) == 2, 30, "both messages back")
        assert [(m.topic, m.payload, m.correlation_data) for m in received] == [
            ("t/a", b"one", b"\x01\x02"), ("t/b", b"two", None)]
        await mosquitto.astop()
        await poll_until(lambda: not transport.connected, 30, "disconnect noticed")
        with pytest.raises(PublishError, match="not connected"):
            await transport.publish("t/c", b"three")
        await mosquitto.astart()
        assert await transport.wait_connected(30)
        await transport.publish("t/d", b"four")  # subscriptions renewed on reconnect: it comes back
        await poll_until(lambda: any(m.topic == "t/d" for m in received), 30, "message after reconnect")
    finally:
        await transport.close()
