"""Files a config refers to (TLS material, certificates, password files, the remote signing key).

Do they exist, and can we read them?

Validation of the config itself never touches the file system, so a config can be checked on another
machine; call :func:`missing_files` where the agent will run (``edge-agent check``, start-up).
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.config.models import AgentConfig
from edge_agent.config.opcua import OpcuaDevice


def _referenced_files(cfg: AgentConfig) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    tls = cfg.mqtt.tls
    if tls is not None:
        for field in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, field)
            if path is not None:
                files.append((f"mqtt.tls.{field}", path))
    if cfg.mqtt.password_file is not None:
        files.append(("mqtt.password_file", cfg.mqtt.password_file))
    if cfg.remote.public_key_file is not None:
        files.append(("remote.public_key_file", cfg.remote.public_key_file))
    for i, device in enumerate(cfg.devices):
        if isinstance(device, OpcuaDevice):
            for field in ("certificate", "private_key", "server_certificate", "password_file"):
                path = getattr(device, field)
                if path is not None:
                    files.append((f"devices[{i}].{field}", path))
    return files


def _password_variables(cfg: AgentConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if cfg.mqtt.password_env is not None:
        found.append(("mqtt.password_env", cfg.mqtt.password_env))
    for i, device in enumerate(cfg.devices):
        variable = getattr(device, "password_env", None)
        if isinstance(variable, str):
            found.append((f"devices[{i}].password_env", variable))
    return found


def missing_files(cfg: AgentConfig, base_dir: Path | None = None) -> list[str]:
    """One ``path.to.field: problem`` line per referenced file that is missing or unreadable, and per
    password environment variable that is not set in this environment.

    Relative paths are taken from ``base_dir`` (default: the working directory, as the agent does).
    """
    problems: list[str] = []
    for where, variable in _password_variables(cfg):
        if variable not in os.environ:
            problems.append(f"{where}: environment variable '{variable}' is not set here (the service needs it: "
                            "Environment= or EnvironmentFile= in its systemd unit)")
    for where, path in _referenced_files(cfg):
        full = path if path.is_absolute() or base_dir is None else base_dir / path
        if not full.exists():
            problems.append(f"{where}: no such file '{path}'")
        elif not full.is_file():
            problems.append(f"{where}: '{path}' is not a regular file")
        elif not os.access(full, os.R_OK):
            problems.append(f"{where}: '{path}' is not readable by this user")
    return problems
