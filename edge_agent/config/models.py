"""The config file as pydantic models: ``AgentConfig`` and its sections.

Field names follow DESIGN.md's example config, which is the contract users write against: fields may be
added, never renamed. Every model forbids unknown keys. Values the user left out stay ``None`` where the
default depends on another section (``mqtt.topic_prefix``, ``mqtt.client_id``, a point's ``byte_order``);
read them through ``AgentConfig.topic_prefix``, ``AgentConfig.mqtt_client_id`` and
``ModbusDeviceBase.byte_order_of`` so that a dumped config re-loads with the same meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from diagnostics.expr import parse_expression
from edge_agent.config._base import ConfigModel, Name, PasswordSource, issues_error, without_credentials
from edge_agent.config._pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PydanticCustomError,
    WithJsonSchema,
    model_validator,
)
from edge_agent.config.alarms import AlarmsConfig
from edge_agent.config.assets import Asset
from edge_agent.config.interlocks import short_names
from edge_agent.config.modbus import ModbusPoint, ModbusRtuDevice, ModbusRtuOverTcpDevice, ModbusTcpDevice
from edge_agent.config.opcua import OpcuaDevice, OpcuaPoint
from edge_agent.config.references import MAINTENANCE_REFS, RULE_REFS, reference_issues
from edge_agent.config.remote import RemoteConfig
from edge_agent.config.rules import RULE_MODELS, AnyRule, Rule
from edge_agent.config.service import ServiceConfig
from edge_agent.config.units import ByteSize, Duration

DEFAULT_TOPIC_PREFIX = "edge/{site}/{id}"
MQTT_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
SummaryStatistic = Literal["count", "good", "min", "max", "mean", "std", "last", "twa"]
DEFAULT_STATISTICS: list[SummaryStatistic] = ["count", "good", "min", "max", "mean", "last"]


class AgentSection(ConfigModel):
    """Who this agent is and where it keeps its state."""

    id: Name = Field(description="Agent id, unique per broker; part of the default topic prefix.")
    site: Name = Field(description="Site (plant) name; part of the default topic prefix.")
    data_dir: Path = Field(
        default=Path("./var/edge-agent"),
        description="Directory for the outbox, alarm state and config history.",
    )


class TlsConfig(ConfigModel):
    """TLS towards the broker; without ca_file the system's trusted CAs are used."""

    ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the broker certificate."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM), with key_file.")
    key_file: Path | None = Field(default=None, description="Client private key (PEM), with cert_file.")
    verify_hostname: bool = Field(default=True, description="Check the broker certificate's host name.")
    alpn: list[str] = Field(default_factory=list, description="ALPN protocols to offer, e.g. [mqtt].")

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise PydanticCustomError(
                "tls_client_cert", "cert_file and key_file go together; give both or neither", {}
            )
        return self




def _check_mqtt_url(value: str) -> str:
    def _bad(why: str) -> PydanticCustomError:
        shown = without_credentials(value)  # never echo a password written into the url
        return PydanticCustomError(
            "mqtt_url",
            "invalid url {value}: {why}; write mqtt://host:port or mqtts://host:port",
            {"value": repr(shown), "why": why},
        )

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _bad(str(exc)) from None
    if parts.scheme not in MQTT_DEFAULT_PORTS:
        raise _bad(f"scheme must be mqtt or mqtts, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise _bad("credentials do not belong in the url (use username and password_file or password_env)")
    if not parts.hostname:
        raise _bad("no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad("no path, query or fragment allowed")
    if port == 0:
        raise _bad("port 0")
    return value


MqttUrl = Annotated[
    str,
    AfterValidator(_check_mqtt_url),
    Field(
        description="Broker: mqtt://host:port (default port 1883) or mqtts://host:port (TLS, default 8883)."
    ),
]

_TOPIC_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def _check_topic_prefix(value: str) -> str:
    def _bad(why: str) -> PydanticCustomError:
        return PydanticCustomError(
            "topic_prefix", "invalid topic_prefix {value}: {why}", {"value": repr(value), "why": why}
        )

    if any(c in value for c in "+#\0"):
        raise _bad("MQTT wildcards (+, #) are not allowed in a topic")
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise _bad("use levels separated by single '/', with no leading or trailing '/'")
    unknown = [p for p in _TOPIC_PLACEHOLDER_RE.findall(value) if p not in ("site", "id")]
    if unknown:
        raise _bad(f"unknown placeholder {{{unknown[0]}}} (only {{site}} and {{id}} are replaced)")
    return value


def _protocol_version(value: object) -> object:
    """YAML reads ``protocol: 5`` as a number; the field holds text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 5:
        return "5"
    return value


class MqttConfig(PasswordSource):
    """The broker connection."""

    url: MqttUrl
    topic_prefix: Annotated[str, AfterValidator(_check_topic_prefix)] | None = Field(
        default=None,
        description="Prefix of every topic; default edge/{site}/{id} ({site}, {id} are replaced).",
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings (needs an mqtts:// url).")
    username: str | None = None
    client_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="Default: the agent id."
    )
    # MQTT 3.1.1 §3.1.2.10 / MQTT 5 §3.1.2.10: keep alive is a 16-bit number of seconds, 0 = off.
    keepalive: Annotated[Duration, Field(ge=0, le=65535)] = Field(
        default=30.0, description="Keep-alive interval."
    )
    protocol: Annotated[
        Literal["3.1.1", "5"],
        BeforeValidator(_protocol_version),
        WithJsonSchema({"enum": ["3.1.1", "5", 5]}),
    ] = Field(default="3.1.1", description="MQTT protocol version: 3.1.1 or 5.")
    max_packet_size: Annotated[ByteSize, Field(ge=1024, le=268_435_455)] | None = Field(
        default=None,
        description="Largest MQTT packet the broker accepts (e.g. 128kB for AWS IoT Core over MQTT 3.1.1). "
                    "A record too big for it is dropped with an error instead of being retried forever. "
                    "Default: no limit, or what an MQTT 5 broker announces on connect.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        issues = []
        if self.tls is not None and not self.uses_tls:
            issues.append((("tls",), "a tls section needs an mqtts:// url"))
        if (self.password_file is not None or self.password_env is not None) and self.username is None:
            issues.append((("username",), "a password needs a username"))
        if issues:
            raise issues_error(issues)
        return self

    @property
    def uses_tls(self) -> bool:
        """True for ``mqtts://`` urls."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """Broker host name or IP address (IPv6 without brackets)."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Broker TCP port: the url's, else 1883 for mqtt and 8883 for mqtts."""
        parts = urlsplit(self.url)
        return parts.port or MQTT_DEFAULT_PORTS[parts.scheme]


class BufferConfig(ConfigModel):
    """Bounds of the durable outbox; when full, the oldest low-priority records go first."""

    max_size: Annotated[ByteSize, Field(gt=0)] = Field(
        default=256_000_000, description="Largest outbox (bytes)."
    )
    max_age: Annotated[Duration, Field(gt=0)] = Field(default=30 * 86400.0, description="Oldest record kept.")


class SummariesConfig(ConfigModel):
    """Per-interval statistics of every point, published per asset."""

    interval: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0, description="Length of one summary interval."
    )
    statistics: list[SummaryStatistic] = Field(
        default_factory=lambda: list(DEFAULT_STATISTICS),
        min_length=1,
        description="Statistics: count, good, min, max, mean, std, last, twa (time-weighted mean).",
    )
    per_vibration_point_features: bool = Field(
        default=True,
        description="Add, per vibration point, statistics of its features (velocity RMS mm/s, peak g, ...).",
    )
    max_message_size: Annotated[ByteSize, Field(ge=8192)] = Field(
        default=128_000,
        description="Largest summary message (bytes); an asset with more points is sent in parts "
        "(part/parts). 128kB is AWS IoT Core's limit; Azure IoT Hub takes 256kB.",
    )

    @model_validator(mode="after")
    def _unique(self) -> SummariesConfig:
        issues = [
            (("statistics", i), f"'{s}' is listed twice")
            for i, s in enumerate(self.statistics)
            if s in self.statistics[:i]
        ]
        if issues:
            raise issues_error(issues)
        return self


Device = Annotated[
    ModbusTcpDevice | ModbusRtuDevice | ModbusRtuOverTcpDevice | OpcuaDevice, Field(discriminator="protocol")
]
Point = ModbusPoint | OpcuaPoint
DEVICE_MODELS: dict[str, type[ModbusTcpDevice | ModbusRtuDevice | ModbusRtuOverTcpDevice | OpcuaDevice]] = {
    "modbus_tcp": ModbusTcpDevice,
    "modbus_rtu": ModbusRtuDevice,
    "modbus_rtu_over_tcp": ModbusRtuOverTcpDevice,
    "opcua": OpcuaDevice,
}
#: Discriminator values pydantic inserts into error locations; the loader drops them from paths.
UNION_TAGS: frozenset[str] = frozenset(DEVICE_MODELS) | frozenset(RULE_MODELS)


class AgentConfig(ConfigModel):
    """The whole config file."""

    empty_means_default = frozenset(
        {"buffer", "devices", "assets", "rules", "summaries", "alarms", "remote", "service"}
    )
    agent: AgentSection
    mqtt: MqttConfig
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    devices: list[Device] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    summaries: SummariesConfig = Field(default_factory=SummariesConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    remote: RemoteConfig = Field(default_factory=RemoteConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @model_validator(mode="after")
    def _references(self) -> AgentConfig:
        issues = reference_issues(self._reference_sketch())
        if issues:
            raise issues_error(issues)
        return self

    def _reference_sketch(self) -> dict[str, Any]:
        """The names and references the cross-section checks read (a full model_dump is 10x slower)."""
        return {
            "devices": [
                {"name": d.name, "points": [{"name": p.name, "kind": p.kind} for p in d.points]}
                for d in self.devices
            ],
            "assets": [
                {
                    "name": a.name,
                    "points": a.points,
                    "machine": a.machine.model_dump() if a.machine else None,
                    "bearings": [{"point": b.point} for b in a.bearings],
                    "maintenance": a.maintenance.model_dump(include=set(MAINTENANCE_REFS))
                    if a.maintenance
                    else None,
                }
                for a in self.assets
            ],
            "rules": [r.model_dump(include=set(RULE_REFS)) for r in self.rules],
        }

    @property
    def topic_prefix(self) -> str:
        """The MQTT topic prefix with ``{site}`` and ``{id}`` replaced (default ``edge/{site}/{id}``)."""
        template = self.mqtt.topic_prefix or DEFAULT_TOPIC_PREFIX
        return template.replace("{site}", self.agent.site).replace("{id}", self.agent.id)

    @property
    def mqtt_client_id(self) -> str:
        """The MQTT client id: ``mqtt.client_id``, else the agent id."""
        return self.mqtt.client_id or self.agent.id

    def point_index(self) -> dict[str, tuple[Device, Point]]:
        """Map every ``device/point`` to its device and point models, in config order."""
        index: dict[str, tuple[Device, Point]] = {}
        for device in self.devices:
            for point in device.points:
                index[f"{device.name}/{point.name}"] = (device, point)
        return index

    def assets_of(self, ref: str) -> list[Asset]:
        """The assets that list the point ``ref`` (``device/point``), in config order."""
        return [asset for asset in self.assets if ref in asset.points]

    def when_bindings(self, rule: AnyRule) -> dict[str, str]:
        """Map every name in ``rule.when`` to the ``device/point`` it stands for; empty without ``when``.

        Short names resolve within the rule's asset (the assets of its point, or its ``asset``); validation
        has already refused unknown and ambiguous names.
        """
        text = getattr(rule, "when", None)
        if text is None:
            return {}
        asset_name = getattr(rule, "asset", None)
        point = getattr(rule, "point", None)
        owners = (
            [a for a in self.assets if a.name == asset_name] if asset_name else self.assets_of(point or "")
        )
        scope = short_names([ref for owner in owners for ref in owner.points])
        return {
            name: name if "/" in name else scope[name][0] for name in sorted(parse_expression(text).names)
        }

    def device(self, name: str) -> Device:
        """The device called ``name``; ``KeyError`` naming the known devices when there is none."""
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(f"no device {name!r} (devices: {', '.join(d.name for d in self.devices) or 'none'})")
