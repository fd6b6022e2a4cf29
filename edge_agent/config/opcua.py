"""OPC UA devices (one server endpoint each) and their points (nodes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from edge_agent.config._base import (
    Compacted,
    ConfigModel,
    Issue,
    Name,
    PasswordSource,
    duplicate_issues,
    issues_error,
    waveform_unit_issues,
    without_credentials,
)
from edge_agent.config._pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PydanticCustomError,
    WithJsonSchema,
    model_validator,
)
from edge_agent.config.modbus import (
    DeviceBase,
    PointKind,
    PublishDeadband,
    PublishDeadbandPercent,
    point_deadband_issues,
)
from edge_agent.config.units import Duration, Frequency

# OPC UA Part 6 §5.3.1.10 (string form of a NodeId): [ns=<index>;|nsu=<uri>;]<i|s|g|b>=<identifier>
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
NODE_ID_PATTERN = rf"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g={_GUID}|b=[A-Za-z0-9+/=]+)$"
_NODE_ID_RE = re.compile(NODE_ID_PATTERN, re.DOTALL)


def _check_node_id(value: str) -> str:
    if not _NODE_ID_RE.match(value):
        raise PydanticCustomError(
            "node_id",
            "invalid NodeId {value}: write it as ns=<index>;<i|s|g|b>=<identifier>, "
            "e.g. ns=2;s=Pump.Flow or i=2258",
            {"value": repr(value)},
        )
    return value


NodeId = Annotated[
    str,
    AfterValidator(_check_node_id),
    WithJsonSchema({"type": "string", "pattern": NODE_ID_PATTERN, "description": "OPC UA NodeId string."}),
]

ENDPOINT_PATTERN = r"^opc\.tcp://[^\s/:]+(?::\d{1,5})?(?:/\S*)?$"
_ENDPOINT_RE = re.compile(ENDPOINT_PATTERN)


def _check_endpoint(value: str) -> str:
    if not _ENDPOINT_RE.match(value):
        shown = without_credentials(value)
        hint = "; put the user in 'username' and the password in password_file" if shown != value else ""
        raise PydanticCustomError(
            "endpoint",
            "invalid endpoint {value}: write opc.tcp://host:port[/path], e.g. opc.tcp://127.0.0.1:4840{hint}",
            {"value": repr(shown), "hint": hint},
        )
    return value


Endpoint = Annotated[
    str,
    AfterValidator(_check_endpoint),
    WithJsonSchema(
        {"type": "string", "pattern": ENDPOINT_PATTERN, "description": "opc.tcp://host:port[/path]"}
    ),
]


def _split_browse_path(value: object) -> object:
    """Accept ``"0:Objects/2:Pump/2:Flow"`` as well as a list of browse names."""
    if isinstance(value, str):
        return [part for part in value.split("/") if part]
    return value


BrowsePath = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    BeforeValidator(_split_browse_path),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "Browse names below the Objects folder: '2:Pump/2:Flow' or a list of them.",
        }
    ),
]


class Deadband(ConfigModel):
    """A data-change filter: report a value only when it moved more than this (OPC UA Part 4 §7.22.2)."""

    type: Literal["absolute", "percent"] = Field(
        description="absolute (engineering units) or percent of EURange."
    )
    value: float = Field(ge=0)

    @model_validator(mode="after")
    def _percent_range(self) -> Deadband:
        if self.type == "percent" and self.value > 100:
            raise PydanticCustomError(
                "deadband_percent", "a percent deadband must be 0-100, got {value}", {"value": self.value}
            )
        return self


class OpcuaPoint(ConfigModel):
    """One node read by polling or by a subscription."""

    model_config = ConfigDict(extra="forbid", defer_build=True, frozen=True)  # frozen: see compact_model

    name: Name = Field(description="Point name, unique within its device.")
    node: NodeId | None = Field(
        default=None, description="NodeId, e.g. ns=2;s=Pump.Flow (or give browse_path)."
    )
    browse_path: BrowsePath | None = Field(
        default=None, description="Browse names from the Objects folder, e.g. 2:Pump/2:Flow."
    )
    mode: Literal["poll", "subscribe"] = Field(default="poll", description="poll | subscribe")
    sampling_interval: Annotated[Duration, Field(ge=0)] | None = Field(
        default=None, description="Server-side sampling interval of a subscription (default: poll_interval)."
    )
    queue_size: int = Field(default=1, ge=1, le=10000, description="Server-side queue of a subscription.")
    deadband: Deadband | None = None
    kind: PointKind = Field(default="value", description="value | waveform (an array of samples).")
    sample_rate: Annotated[Frequency, Field(gt=0)] | None = Field(
        default=None, description="Waveform rate (Hz)."
    )
    sample_rate_node: NodeId | None = Field(default=None, description="Node holding the waveform rate in Hz.")
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    writable: bool = Field(default=False, description="Allow writes to this point (local config only).")
    publish_deadband: PublishDeadband = Field(
        default=None,
        description="With publish_raw: on_change, the change (engineering units) that counts for this point.",
    )
    publish_deadband_percent: PublishDeadbandPercent = Field(
        default=None,
        description="With publish_raw: on_change, the change in percent of the last sent value.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaPoint:
        issues: list[Issue] = point_deadband_issues(self)
        if (self.node is None) == (self.browse_path is None):
            issues.append((("node",), "give exactly one of node (a NodeId) or browse_path"))
        if self.browse_path and self.browse_path[0] in ("0:Objects", "Objects", "0:Root", "Root"):
            issues.append(
                (
                    ("browse_path",),
                    f"browse_path starts below the Objects folder; drop '{self.browse_path[0]}'",
                )
            )
        if self.deadband is not None and self.mode != "subscribe":
            issues.append((("deadband",), "deadband filters a subscription; set mode: subscribe or drop it"))
        if self.kind == "waveform":
            if (self.sample_rate is None) == (self.sample_rate_node is None):
                issues.append(
                    (
                        ("sample_rate",),
                        "a waveform point needs exactly one of sample_rate (e.g. 12800Hz) "
                        "or sample_rate_node",
                    )
                )
            issues.extend(waveform_unit_issues(self.unit))
        else:
            for field in ("sample_rate", "sample_rate_node"):
                if getattr(self, field) is not None:
                    issues.append(((field,), f"{field} applies to kind waveform only"))
        if issues:
            raise issues_error(issues)
        return self


class OpcuaDevice(DeviceBase, PasswordSource):
    """An OPC UA server endpoint."""

    protocol: Literal["opcua"]
    endpoint: Endpoint
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = Field(default=None, description="Client certificate (DER or PEM).")
    private_key: Path | None = Field(default=None, description="Client private key (PEM).")
    server_certificate: Path | None = Field(default=None, description="Expected server certificate.")
    username: str | None = None
    points: list[Annotated[OpcuaPoint, Compacted]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaDevice:
        issues: list[Issue] = []
        if (self.security_policy == "None") != (self.security_mode == "None"):
            issues.append(
                (
                    ("security_mode",),
                    f"security_policy {self.security_policy} needs security_mode "
                    + ("None" if self.security_policy == "None" else "Sign or SignAndEncrypt"),
                )
            )
        if self.security_policy != "None":
            for field in ("certificate", "private_key"):
                if getattr(self, field) is None:
                    issues.append(((field,), f"security_policy {self.security_policy} needs '{field}'"))
        if (self.password_file is not None or self.password_env is not None) and self.username is None:
            issues.append((("username",), "a password needs a username"))
        issues.extend(duplicate_issues([p.name for p in self.points], ("points",), "point"))
        issues.extend(self.raw_issues(self.points))
        if issues:
            raise issues_error(issues)
        return self
