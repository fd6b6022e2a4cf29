"""The systemd unit: its sandbox score from systemd-analyze, and the contract it shares with the agent."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "edge-agent.service"
INSTALL_SH = REPO / "deploy" / "install.sh"
MAX_EXPOSURE = 2.0  # systemd-analyze's "OK" band ends at 3.9; the issue asks for 2.0 or lower


def unit_settings() -> dict[str, dict[str, list[str]]]:
    """The unit's settings; keys repeat in unit files, so every value is kept in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(path).exists():
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): cannot score the unit's sandbox")
    return path


def test_security_exposure_is_ok_or_better() -> None:
    tool = systemd_analyze()
    result = subprocess.run([tool, "security", "--offline=true", str(UNIT)], capture_output=True, text=True,
                            timeout=120, check=False)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline mode: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for edge-agent\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout
    # systemd-analyze's own gate agrees (its threshold is in tenths)
    gated = subprocess.run([tool, "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert gated.returncode == 0, gated.stdout[-500:]


def test_unit_matches_the_agent_and_the_installer() -> None:
    unit = unit_settings()
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] and service["Restart"] == ["on-failure"]
    assert "StartLimitBurst" in unit["Unit"] and "StartLimitIntervalSec" in unit["Unit"]
    assert service["User"] == ["edge-agent"] and service["Group"] == ["edge-agent"]
    assert service["SupplementaryGroups"] == ["dialout"]
    assert service["StateDirectory"] == ["edge-agent"] and service["ConfigurationDirectory"] == ["edge-agent"]
    assert service["ExecReload"] == ["kill -HUP $MAINPID"]
    # exit code 2 is the CLI's configuration error: never restarted in a loop
    assert service["RestartPreventExitStatus"] == ["2"]
    from edge_agent.cli import EXIT_CONFIG

    assert EXIT_CONFIG == 2

    # ExecStart runs the console script the wheel installs, where install.sh puts the virtualenv
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["edge-agent"] == "edge_agent.cli:main"
    install = INSTALL_SH.read_text(encoding="utf-8")
    venv = re.search(r"^VENV=\$PREFIX/venv$", install, re.M)
    prefix = re.search(r"^PREFIX=(\S+)$", install, re.M)
    assert venv and prefix
    assert service["ExecStart"] == [f"{prefix[1]}/venv/bin/edge-agent run -c /etc/edge-agent/config.yaml"]
    # the CLI accepts exactly that command line
    from edge_agent.cli import build_parser

    args = build_parser().parse_args(service["ExecStart"][0].split()[1:])
    assert args.command == "run" and args.config == "/etc/edge-agent/config.yaml"


def test_serial_ports_are_allowed_and_nothing_else_raw() -> None:
    service = unit_settings()["Service"]
    assert service["DevicePolicy"] == ["closed"]
    allowed = {value.split()[0] for value in service["DeviceAllow"]}
    assert allowed == {"char-ttyS", "char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttySC"}
    assert service["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert service["CapabilityBoundingSet"] == [""]


def test_unit_file_parses_as_ini() -> None:
    """No duplicate sections or stray lines that systemd would warn about."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    assert parser.sections() == ["Unit", "Service", "Install"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"
