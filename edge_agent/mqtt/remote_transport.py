"""The publisher's connection as the remote service's transport: one MQTT session per agent, not two.

:class:`PublisherTransport` implements :class:`edge_agent.remote.contracts.RemoteTransport` on top of a
running :class:`edge_agent.publisher.Publisher`: subscriptions go through ``Publisher.subscribe`` (kept across
reconnects) and replies through ``Publisher.publish_now`` (outside the outbox, awaited until the PUBACK).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paho.mqtt.properties import Properties

from edge_agent.remote.contracts import InboundMessage, MessageHandler

if TYPE_CHECKING:
    from edge_agent.publisher import Publisher


class PublisherTransport:
    """``RemoteTransport`` over a :class:`~edge_agent.publisher.Publisher` (MQTT 5 properties when the
    publisher speaks protocol "5"; on 3.1.1 there are none and replies go to ``.../result`` topics)."""

    def __init__(self, publisher: Publisher, publish_timeout_s: float = 20.0) -> None:
        self.publisher = publisher
        self.publish_timeout_s = publish_timeout_s

    @property
    def connected(self) -> bool:
        """True while the publisher's broker session is up."""
        return self.publisher.connected

    async def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Deliver every message matching ``topic_filter`` to ``handler`` as an :class:`InboundMessage`."""

        async def deliver(topic: str, payload: bytes, props: Properties | None) -> None:
            response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
            correlation = getattr(props, "CorrelationData", None) if props is not None else None
            await handler(InboundMessage(topic, payload, response_topic,
                                         bytes(correlation) if correlation is not None else None))

        self.publisher.subscribe(topic_filter, deliver, qos=1)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      properties: Mapping[str, Any] | None = None) -> None:
        """Publish now and return after the PUBACK; raises ``PublishError`` when that cannot happen."""
        await self.publisher.publish_now(topic, payload, qos, retain, properties, self.publish_timeout_s)
