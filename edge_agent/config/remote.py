"""The ``remote:`` section: remote configuration and diagnostics commands over MQTT (issue 7).

Local-only settings (a remote config may never change them; only an edit of the file on the gateway can):

- ``remote.require_signature`` and ``remote.public_key_file``: they decide who may push a config;
- any point's ``writable``: a remote config may never make a point writable (DESIGN.md, Safety).

:data:`LOCAL_ONLY_FIELDS` lists them; :func:`edge_agent.config.safety.local_only_violations` compares the
running config with a proposed one and names every violation.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated

from edge_agent.config._base import ConfigModel, Issue, issues_error
from edge_agent.config._pydantic import AfterValidator, Field, PydanticCustomError, model_validator
from edge_agent.config.units import ByteSize, Duration, RatePerMinute

#: Field paths a remote config may never change (``*`` stands for every device / point).
LOCAL_ONLY_FIELDS: tuple[str, ...] = (
    "remote.require_signature",
    "remote.public_key_file",
    "devices[*].points[*].writable",
)
#: Commands the agent knows (``edge-agent remote cmd AGENT NAME``); commands_enabled picks among them.
REMOTE_COMMANDS: tuple[str, ...] = (
    "ping",
    "status",
    "read",
    "capture",
    "baseline",
    "ack",
    "shelve",
    "logs",
    "audit",
    "config",
    "reset_counter",
    "maintenance",
)
COMMAND_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_COMMAND_NAME_RE = re.compile(COMMAND_NAME_PATTERN)
MAX_PAYLOAD_LIMIT_B = 16_000_000  # 16MB


def _check_command(value: str) -> str:
    if value in REMOTE_COMMANDS:
        return value
    close = difflib.get_close_matches(value, REMOTE_COMMANDS, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise PydanticCustomError(
        "remote_command",
        "unknown command {value}{hint}; known: {known}",
        {"value": repr(value), "hint": hint, "known": ", ".join(REMOTE_COMMANDS)},
    )


def _check_payload_limit(size_b: int) -> int:
    if size_b > MAX_PAYLOAD_LIMIT_B:
        raise PydanticCustomError(
            "max_payload",
            "max_payload of {size} bytes is above the limit of 16MB: a config is a few kB and a command "
            "reply a few hundred kB; use e.g. 256kB",
            {"size": size_b},
        )
    return size_b


CommandName = Annotated[str, AfterValidator(_check_command), Field(pattern=COMMAND_NAME_PATTERN)]


class RemoteConfig(ConfigModel):
    """Remote configuration and commands; see the module docstring for the local-only settings."""

    empty_means_default = frozenset({"commands_enabled"})
    enabled: bool = Field(default=True, description="Accept configs and commands over MQTT.")
    require_signature: bool = Field(
        default=False, description="Refuse configs without a valid Ed25519 signature (local-only setting)."
    )
    public_key_file: Path | None = Field(
        default=None, description="Ed25519 public key (PEM) that signs configs (local-only setting)."
    )
    max_payload: Annotated[ByteSize, Field(gt=0), AfterValidator(_check_payload_limit)] = Field(
        default=256_000, description="Largest config or command payload accepted (e.g. 256kB)."
    )
    confirm_window: Annotated[Duration, Field(ge=0)] = Field(
        default=60.0,
        description="Health watch after a remote config is applied; rolled back if the broker is lost.",
    )
    keep_configs: int = Field(default=10, ge=1, le=1000, description="Previous configs kept on disk.")
    command_rate: Annotated[RatePerMinute, Field(gt=0)] = Field(
        default=10.0, description="Commands accepted per minute (e.g. 10/min, 1/s, or a number per minute)."
    )
    commands_enabled: list[CommandName] | None = Field(
        default=None, description="Commands answered (default: all). ping is always answered."
    )

    @model_validator(mode="after")
    def _consistent(self) -> RemoteConfig:
        issues: list[Issue] = []
        if self.require_signature and self.public_key_file is None:
            issues.append(
                (
                    ("public_key_file",),
                    "require_signature: true needs public_key_file (make a key pair with "
                    "'edge-agent remote keygen PRIV PUB' and copy PUB here)",
                )
            )
        if self.commands_enabled is not None:
            seen: dict[str, int] = {}
            for i, name in enumerate(self.commands_enabled):
                if name in seen:
                    issues.append((("commands_enabled", i), f"'{name}' is listed twice"))
                seen.setdefault(name, i)
        if issues:
            raise issues_error(issues)
        return self

    def command_enabled(self, name: str) -> bool:
        """True when ``name`` may run: remote enabled and (no list, or listed, or ``ping``)."""
        if not self.enabled:
            return False
        return self.commands_enabled is None or name == "ping" or name in self.commands_enabled
