"""The ``service:`` section: the local health/metrics endpoint and logging (issue 8)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from edge_agent.config._base import ConfigModel, Host, Port, issues_error
from edge_agent.config._pydantic import AfterValidator, BeforeValidator, Field, PydanticCustomError, model_validator
from edge_agent.config.units import Duration

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
COMPONENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$"
_COMPONENT_RE = re.compile(COMPONENT_PATTERN)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _lower_case(value: object) -> object:
    """Levels are matched without case: INFO and info are the same level."""
    return value.strip().lower() if isinstance(value, str) else value


Level = Annotated[LogLevel, BeforeValidator(_lower_case)]


class HealthEndpoint(ConfigModel):
    """``/healthz`` and ``/metrics`` over HTTP; off by default, loopback only unless allow_remote."""

    enabled: bool = Field(default=False, description="Serve /healthz and /metrics.")
    host: Host = Field(
        default="127.0.0.1", description="Address to listen on (loopback unless allow_remote)."
    )
    port: Port = Field(default=9753, description="TCP port (1-65535); 9753, clear of node_exporter's 9100.")
    allow_remote: bool = Field(
        default=False, description="Allow a non-loopback host (the endpoint has no authentication)."
    )

    @model_validator(mode="after")
    def _loopback(self) -> HealthEndpoint:
        if not self.allow_remote and not is_loopback_host(self.host):
            raise issues_error(
                [
                    (
                        ("host",),
                        f"health host '{self.host}' is not a loopback address; the endpoint has no "
                        "authentication, so use 127.0.0.1 (or set allow_remote: true to expose it)",
                    )
                ]
            )
        return self


def _check_component(value: str) -> str:
    if not _COMPONENT_RE.match(value):
        raise PydanticCustomError(
            "log_component",
            "invalid component {value}: give a logger name such as drivers.modbus, edge_agent.publisher "
            "or pymodbus",
            {"value": repr(value)},
        )
    return value


Component = Annotated[str, AfterValidator(_check_component)]


def _check_trim_interval(value: float) -> float:
    if value != 0 and not value >= MIN_TRIM_INTERVAL_S:
        raise PydanticCustomError(
            "trim_interval", "memory_trim_interval {value} s: use 0 (never) or at least {least} s (a trim holds "
            "the allocator's locks for milliseconds)", {"value": value, "least": MIN_TRIM_INTERVAL_S})
    return value


#: Least seconds between two trims (each holds glibc's arena locks for a few milliseconds).
MIN_TRIM_INTERVAL_S = 10.0


class ServiceConfig(ConfigModel):
    """How the agent runs as a service: health endpoint and logging."""

    empty_means_default = frozenset({"component_levels"})
    health: HealthEndpoint = Field(default_factory=HealthEndpoint)
    log_level: Level = Field(default="info", description="Level of the agent's log lines.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text (journal) or json (shippers)."
    )
    component_levels: dict[Component, Level] = Field(
        default_factory=dict,
        description="Levels per logger, e.g. {drivers.modbus: debug, pymodbus: warning}.",
    )
    memory_trim_interval: Annotated[Duration, AfterValidator(_check_trim_interval)] = Field(
        default=600.0,
        description="How often to hand free C-heap pages back to the system (glibc malloc_trim), so RSS "
        "does not ratchet up with each new high-water of transient allocations; at least 10s, or 0 for never.",
    )
