"""Broker URLs and paho client construction shared by the agent-side transport and the engineer's CLI."""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.remote.errors import RemoteError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerOptions:
    """Where and how to connect: host, TCP port, TLS on/off and files, optional username/password."""

    host: str
    port: int
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, *, ca_file: Path | str | None = None, cert_file: Path | str | None = None,
                 key_file: Path | str | None = None, username: str | None = None,
                 password: str | None = None) -> BrokerOptions:
        """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (default ports 1883 / 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise RemoteError(f"broker URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883",
                              code="settings")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise RemoteError(f"broker URL {url!r} has an invalid port", code="settings") from None
        tls = parts.scheme == "mqtts"
        if (cert_file is None) != (key_file is None):
            raise RemoteError("a client certificate needs both --cert-file and --key-file", code="settings")
        for name, path in (("CA", ca_file), ("certificate", cert_file), ("key", key_file)):
            if path is not None and not Path(path).is_file():
                raise RemoteError(f"{name} file {path} does not exist", code="settings")
        return cls(parts.hostname, port, tls or ca_file is not None,
                   Path(ca_file) if ca_file else None, Path(cert_file) if cert_file else None,
                   Path(key_file) if key_file else None, username or parts.username,
                   password or parts.password)


def make_client(client_id: str, options: BrokerOptions, *, mqtt5: bool = True) -> mqtt.Client:
    """A paho client (callback API v2) configured for ``options``; not yet connected."""
    protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if options.tls:
        client.tls_set(ca_certs=str(options.ca_file) if options.ca_file else None,
                       certfile=str(options.cert_file) if options.cert_file else None,
                       keyfile=str(options.key_file) if options.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
    if options.username is not None:
        client.username_pw_set(options.username, options.password)
    client.on_socket_open = _no_delay
    return client


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Disable Nagle: small request/response packets otherwise wait on delayed ACKs (~40 ms each)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
