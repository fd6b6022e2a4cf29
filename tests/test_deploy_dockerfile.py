"""The Dockerfile is not built here (no daemon), so check what can drift: sources, user, entry point, command."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip()]


def test_base_image_is_python_311_slim() -> None:
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert arg and arg[1].startswith("python:3.11-slim")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_copied_sources_exist() -> None:
    for name, args in instructions():
        if name == "COPY" and "--from=" not in args:
            sources = [a for a in args.split()[:-1] if not a.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_runs_as_the_unprivileged_user() -> None:
    users = [args.strip() for name, args in instructions() if name == "USER"]
    assert users == ["edge-agent"]
    assert "--uid 10001" in DOCKERFILE


def test_entrypoint_and_command_are_a_valid_cli_call() -> None:
    found = dict(instructions())
    entrypoint, command = json.loads(found["ENTRYPOINT"]), json.loads(found["CMD"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["edge-agent"] and "edge-agent" in scripts
    from edge_agent.cli import build_parser

    args = build_parser().parse_args(command)
    assert args.command == "run" and args.config == "/etc/edge-agent/config.yaml"
    assert found["STOPSIGNAL"] == "SIGTERM"
