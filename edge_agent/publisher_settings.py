"""Build the publisher's settings from the ``mqtt`` config section (secrets are read here, never logged)."""

from __future__ import annotations

from edge_agent.config import AgentConfig
from edge_agent.mqtt.settings import PublisherSettings, TlsSettings


def publisher_settings(cfg: AgentConfig) -> PublisherSettings:
    """The publisher settings for ``cfg`` (raises ConfigError when a password source cannot be read)."""
    m = cfg.mqtt
    tls = None
    if m.tls is not None or m.uses_tls:
        t = m.tls
        tls = TlsSettings(
            ca_file=str(t.ca_file) if t and t.ca_file else None,
            cert_file=str(t.cert_file) if t and t.cert_file else None,
            key_file=str(t.key_file) if t and t.key_file else None,
            verify_hostname=t.verify_hostname if t else True,
            alpn=tuple(t.alpn) if t else (),
        )
    return PublisherSettings(
        url=m.url,
        client_id=cfg.mqtt_client_id,
        topic_prefix=cfg.topic_prefix,
        keepalive_s=int(m.keepalive),
        username=m.username,
        password=m.read_password(),
        tls=tls,
        protocol=m.protocol,
        max_packet_size=int(m.max_packet_size) if m.max_packet_size is not None else None,
    )
