"""MQTT plumbing for the publisher: connection settings and the paho-on-asyncio socket bridge."""

from edge_agent.mqtt.settings import PublisherSettings, TlsSettings

__all__ = ["PublisherSettings", "TlsSettings"]
