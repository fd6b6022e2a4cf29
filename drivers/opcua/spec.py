"""What the OPC UA driver is told to do: one device (endpoint, security, cadence) and its points.

Frozen dataclasses that validate themselves on construction and name the device and point in every
error, so the agent can translate its config into them and report mistakes before starting anything.
NodeId syntax is checked by :func:`node_id_error` (the agent turns it into a config error); a NodeId
the server does not know, or a browse path that does not resolve, only shows at runtime and makes
that one point BAD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlparse

from asyncua import ua

PointMode = Literal["poll", "subscribe"]
PointKind = Literal["value", "waveform"]
DeadbandType = Literal["absolute", "percent"]
SecurityPolicy = Literal["None", "Basic256Sha256"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]

#: One element of a browse path: an optional namespace index and a browse name, e.g. ``2:Motor``.
_BROWSE_ELEMENT = re.compile(r"^(?:(\d+):)?([^/:]+)$")


def node_id_error(text: str) -> str | None:
    """Return why ``text`` is not a valid OPC UA NodeId string (e.g. ``ns=2;s=Motor.Speed``), or None."""
    try:
        ua.NodeId.from_string(text)
    except Exception as exc:  # asyncua raises several types for malformed strings
        return (f"NodeId {text!r} does not parse ({exc}); write it as ns=<index>;s=<name>, "
                "ns=<index>;i=<number>, ns=<index>;g=<guid> or ns=<index>;b=<base64>")
    return None


def parse_browse_path(text: str) -> list[tuple[int, str]]:
    """Split a browse path from the Root folder into (namespace index, browse name) pairs.

    ``"Objects/2:Motor/2:Speed"`` → ``[(0, "Objects"), (2, "Motor"), (2, "Speed")]``; a leading ``/`` is
    allowed, an element without ``<ns>:`` is in namespace 0. Raises ValueError naming the bad element.
    """
    body = text.strip().strip("/")
    if not body:
        raise ValueError(f"browse path {text!r} is empty; write it like Objects/2:Motor/2:Speed")
    out: list[tuple[int, str]] = []
    for element in body.split("/"):
        match = _BROWSE_ELEMENT.match(element.strip())
        if match is None:
            raise ValueError(f"browse path {text!r}: element {element!r} is not <ns>:<name> or <name>; "
                             "write it like Objects/2:Motor/2:Speed")
        out.append((int(match.group(1) or 0), match.group(2)))
    return out


@dataclass(frozen=True, slots=True)
class OpcUaPointSpec:
    """One OPC UA point.

    Addressed by ``node`` (a NodeId string) or ``browse_path`` (from the Root folder, see
    :func:`parse_browse_path`), exactly one of them. ``mode`` ``poll`` reads it in the device's batched
    Read each cycle; ``subscribe`` makes it a monitored item sampled every ``sampling_interval_s``
    seconds by the server (0: as fast as it can), with a server-side queue of ``queue_size`` values
    and an optional ``deadband_type`` (``absolute`` in the point's unit, ``percent`` of the node's EURange) of
    ``deadband_value``. ``kind`` ``waveform`` reads an array node as a :class:`drivers.base.Waveform`
    sampled at ``sample_rate_hz`` (Hz) or at the value of the sibling node ``sample_rate_node``
    (read in the same request); waveforms are polled. Numbers are converted as
    ``value * scale + offset`` into ``unit``.
    """

    name: str
    node: str | None = None
    browse_path: str | None = None
    mode: PointMode = "poll"
    sampling_interval_s: float = 1.0
    queue_size: int = 1
    deadband_type: DeadbandType | None = None
    deadband_value: float = 0.0
    kind: PointKind = "value"
    sample_rate_hz: float | None = None
    sample_rate_node: str | None = None
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        where = f"point {self.name!r}"
        if not self.name:
            raise ValueError("an OPC UA point needs a non-empty name")
        if (self.node is None) == (self.browse_path is None):
            raise ValueError(f"{where}: set exactly one of node (e.g. ns=2;s=Motor.Speed) or browse_path "
                             "(e.g. Objects/2:Motor/2:Speed)")
        if self.browse_path is not None:
            try:
                parse_browse_path(self.browse_path)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if self.mode not in ("poll", "subscribe"):
            raise ValueError(f"{where}: mode {self.mode!r} is not poll or subscribe")
        if self.kind not in ("value", "waveform"):
            raise ValueError(f"{where}: kind {self.kind!r} is not value or waveform")
        if not self.sampling_interval_s >= 0:
            raise ValueError(f"{where}: sampling_interval_s={self.sampling_interval_s} must not be negative "
                             "(s; 0 asks the server for its fastest rate)")
        if self.queue_size < 1:
            raise ValueError(f"{where}: queue_size={self.queue_size} must be at least 1")
        if self.deadband_type not in (None, "absolute", "percent"):
            raise ValueError(f"{where}: deadband_type {self.deadband_type!r} is not absolute or percent")
        if self.deadband_value < 0:
            raise ValueError(f"{where}: deadband_value={self.deadband_value} must not be negative")
        if self.deadband_type == "percent" and self.deadband_value > 100:
            raise ValueError(f"{where}: a percent deadband_value={self.deadband_value} must be 0…100")
        if self.kind == "waveform":
            if self.mode != "poll":
                raise ValueError(f"{where}: waveform points are read with mode: poll (arrays are large; "
                                 "a capture is taken once per poll cycle)")
            if self.sample_rate_hz is None and self.sample_rate_node is None:
                raise ValueError(f"{where}: a waveform needs sample_rate_hz (e.g. 12800) or sample_rate_node "
                                 "(e.g. ns=2;s=Pump.VibrationDE.SampleRate)")
            if self.sample_rate_hz is not None and not self.sample_rate_hz > 0:
                raise ValueError(f"{where}: sample_rate_hz={self.sample_rate_hz} must be positive (Hz)")
        elif self.sample_rate_hz is not None or self.sample_rate_node is not None:
            raise ValueError(f"{where}: sample_rate_hz / sample_rate_node only apply to kind: waveform")


@dataclass(frozen=True, slots=True)
class OpcUaDeviceSpec:
    """One OPC UA server and the points read from it.

    ``endpoint`` like ``opc.tcp://host:4840/path``; ``poll_interval_s`` the agent's read cadence (s);
    ``timeout_s`` per request (s). Security: ``security_policy`` ``None`` or ``Basic256Sha256`` with
    ``security_mode`` ``Sign`` or ``SignAndEncrypt``, the client's ``certificate`` (DER or PEM) and
    ``private_key`` (PEM) files, whose certificate must carry ``application_uri``. ``server_certificate``
    is a file that pins the server's certificate, or a directory of trusted server certificates (a
    trust list of DER or PEM files); without it the certificate the server announces is accepted.
    ``username``/``password`` log in as a user (anonymous otherwise; a username without a password
    sends an empty one). ``keepalive_s``: a subscription that sends neither data nor a keep-alive for
    twice this long (s) is declared stalled and the session is rebuilt. Reconnects back off from
    ``reconnect_min_s`` to ``reconnect_max_s`` (s) with jitter.
    """

    name: str
    endpoint: str
    points: tuple[OpcUaPointSpec, ...] = ()
    poll_interval_s: float = 1.0
    timeout_s: float = 4.0
    security_policy: SecurityPolicy = "None"
    security_mode: SecurityMode = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    application_uri: str = "urn:edge-agent:opcua-client"
    keepalive_s: float = 5.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        where = f"device {self.name!r}"
        url = urlparse(self.endpoint)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError(f"{where}: endpoint {self.endpoint!r} must look like opc.tcp://host:4840/path")
        if not self.poll_interval_s > 0 or not self.timeout_s > 0 or not self.keepalive_s > 0:
            raise ValueError(f"{where}: poll_interval_s, timeout_s and keepalive_s must be positive (s)")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError(f"{where}: need 0 < reconnect_min_s <= reconnect_max_s (s)")
        if self.security_policy not in ("None", "Basic256Sha256"):
            raise ValueError(f"{where}: security_policy {self.security_policy!r} is not None or "
                             "Basic256Sha256")
        if self.security_mode not in ("None", "Sign", "SignAndEncrypt"):
            raise ValueError(f"{where}: security_mode {self.security_mode!r} is not None, Sign or "
                             "SignAndEncrypt")
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(f"{where}: security_policy {self.security_policy} needs security_mode "
                             f"{'None' if self.security_policy == 'None' else 'Sign or SignAndEncrypt'}")
        if self.security_policy != "None" and (not self.certificate or not self.private_key):
            raise ValueError(f"{where}: security_policy {self.security_policy} needs certificate and "
                             "private_key files (generate a pair with `edge-agent opcua-cert`)")
        if self.password is not None and self.username is None:
            raise ValueError(f"{where}: a password needs a username")
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise ValueError(f"{where}: point name {point.name!r} is used twice")
            seen.add(point.name)

    def node_id_errors(self) -> list[str]:
        """One message per point whose ``node`` or ``sample_rate_node`` does not parse, naming the point."""
        errors: list[str] = []
        for point in self.points:
            for text in (point.node, point.sample_rate_node):
                if text is not None and (why := node_id_error(text)) is not None:
                    errors.append(f"device {self.name!r} point {point.name!r}: {why}")
        return errors
