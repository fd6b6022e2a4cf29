"""How to reach the broker: URL, identity, credentials, TLS, protocol version, in-flight window.

Frozen dataclasses that validate themselves on construction; a bad value raises ``ValueError`` naming the
field and the fix. The agent builds them from the ``mqtt`` config section.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for ``mqtts://``: CA bundle (None = system CAs), optional client certificate, ALPN protocols."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_hostname: bool = True
    alpn: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"mqtt.tls.{name}: file {value!r} does not exist or is not a file")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("mqtt.tls.key_file is set without mqtt.tls.cert_file; give both for a client "
                             "certificate, or neither")

    def ssl_context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` (TLS 1.2+) verifying the broker against ``ca_file`` or the system CAs."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.verify_hostname
        if self.cert_file is not None:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.alpn:
            ctx.set_alpn_protocols(list(self.alpn))
        return ctx


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """Broker connection settings. ``url`` is ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    url: str
    client_id: str
    topic_prefix: str
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    max_inflight: int = 100
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 20.0
    #: Largest MQTT packet the broker takes, bytes (None: unknown; an MQTT 5 broker tells it on connect).
    max_packet_size: int | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"mqtt.url {self.url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"mqtt.url {self.url!r} has no host; write e.g. mqtt://127.0.0.1:1883")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"mqtt.url {self.url!r}: the port must be a number 1..65535") from None
        if port == 0:
            raise ValueError(f"mqtt.url {self.url!r}: the port must be a number 1..65535")
        if parts.path not in ("", "/"):
            raise ValueError(f"mqtt.url {self.url!r}: MQTT URLs carry no path; use topic_prefix for topics")
        if parts.scheme == "mqtt" and self.tls is not None:
            raise ValueError(f"mqtt.tls is set but mqtt.url {self.url!r} is plain mqtt://; use mqtts://")
        if not self.client_id or len(self.client_id.encode()) > 65535:
            raise ValueError("mqtt client_id must be a non-empty string (defaults to agent.id)")
        prefix = self.topic_prefix
        if not prefix or "+" in prefix or "#" in prefix or prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"mqtt.topic_prefix {prefix!r} must be non-empty, without + or # wildcards and "
                             "without a leading or trailing '/', e.g. edge/site/gw-1")
        if not 5 <= self.keepalive_s <= 65535:
            raise ValueError(f"mqtt keepalive_s={self.keepalive_s} must be 5..65535 seconds")
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"mqtt.protocol {self.protocol!r} must be \"3.1.1\" or \"5\"")
        if not 1 <= self.max_inflight <= 65535:
            raise ValueError(f"mqtt max_inflight={self.max_inflight} must be 1..65535 messages")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError(f"reconnect_min_s={self.reconnect_min_s} must be > 0 and <= "
                             f"reconnect_max_s={self.reconnect_max_s} (seconds)")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt password is set without a username")

    @property
    def host(self) -> str:
        """Broker host name or address."""
        host = urlsplit(self.url).hostname
        assert host is not None
        return host

    @property
    def port(self) -> int:
        """Broker TCP port (1883 for mqtt://, 8883 for mqtts:// when the URL names none)."""
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def uses_tls(self) -> bool:
        """True for ``mqtts://`` URLs."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def status_topic(self) -> str:
        """The retained birth / last-will topic, ``{prefix}/status``."""
        return f"{self.topic_prefix}/status"

    def effective_tls(self) -> TlsSettings | None:
        """TLS settings to use: the given ones, system-CA defaults for ``mqtts://``, or None for ``mqtt://``."""
        if not self.uses_tls:
            return None
        return self.tls if self.tls is not None else TlsSettings()
