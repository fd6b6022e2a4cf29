"""Config validation in a short-lived child process, for a running agent whose config models are lean.

Validation is the most memory-hungry thing the agent does: pydantic, its compiled validators, the YAML node
tree and the intermediate copies of a 10 000-point config cost well over 10 MB, and the allocator keeps
most of that resident after it is freed. ``edge-agent run`` therefore never validates in its own process
(see :mod:`edge_agent.config.mode`): it sends the file's path or the pushed text to ``python -m
edge_agent.config.isolated`` and unpickles the validated config into its lean model classes. The child
exits, and all of its memory with it.

Errors are the loader's own :class:`~edge_agent.errors.ConfigError` lines, with file and line. If the
child cannot run at all (no process slot, killed by the OOM killer, a timeout), the caller gets
:class:`ConfigCheckFailed`: nothing was learnt about the config, so it is neither accepted nor called
invalid. In a process with validating models, the functions here validate in process as before.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.config.mode import lean_models
from edge_agent.errors import ConfigError, EdgeAgentError

if TYPE_CHECKING:
    from edge_agent.config.models import AgentConfig

log = logging.getLogger(__name__)

#: A 1 MB config validates in about 2 s on a Raspberry Pi 3; far above that, the child is stuck.
CHILD_TIMEOUT_S = 120.0

_OK = "ok"
_INVALID = "invalid"
_STDERR_LINES_LOGGED = 20


class ConfigCheckFailed(EdgeAgentError):
    """The validation child could not run or died: the config is neither valid nor invalid (retry later)."""


def load_config_checked(path: str | Path, *, max_bytes: int | None = None) -> AgentConfig:
    """The validated config of the file at ``path``, as :func:`edge_agent.config.load_config` gives it.

    Validated in a child process when this process's models are lean, in process otherwise. Raises
    ConfigError (one line per problem) or, from the child only, :class:`ConfigCheckFailed`.
    """
    if not lean_models():
        from edge_agent.config.loader import load_config

        return load_config(path, **_limit(max_bytes))
    return _in_child(("path", str(path), max_bytes), str(path))


def load_config_text_checked(text: str, source: str, *, max_bytes: int | None = None) -> AgentConfig:
    """The validated config of YAML ``text`` (errors name ``source``), as ``load_config_text`` gives it.

    Validated in a child process when this process's models are lean; see :func:`load_config_checked`.
    """
    if not lean_models():
        from edge_agent.config.loader import load_config_text

        return load_config_text(text, source, **_limit(max_bytes))
    return _in_child(("text", text, source, max_bytes), source)


def _limit(max_bytes: int | None) -> dict[str, int]:
    return {} if max_bytes is None else {"max_bytes": max_bytes}


def _in_child(request: tuple[Any, ...], source: str) -> AgentConfig:
    started = time.monotonic()
    command = [sys.executable, "-m", "edge_agent.config.isolated"]
    try:
        child = subprocess.run(command, input=pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL),
                               capture_output=True, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConfigCheckFailed(f"{source}: config validation took over {CHILD_TIMEOUT_S:.0f} s; "
                                "stopped it") from exc
    except OSError as exc:
        raise ConfigCheckFailed(f"{source}: cannot start the config validation process: {exc}") from exc
    stderr = child.stderr.decode("utf-8", "replace").strip().splitlines()
    for line in stderr[-_STDERR_LINES_LOGGED:]:
        log.warning("config validation process: %s", line)
    if child.returncode != 0:
        last = stderr[-1] if stderr else "no message"
        raise ConfigCheckFailed(f"{source}: the config validation process ended with code {child.returncode} "
                                f"({last})")
    try:
        kind, payload, peak_rss_bytes = pickle.loads(child.stdout)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigCheckFailed(f"{source}: the config validation process gave an unreadable answer: "
                                f"{type(exc).__name__}: {exc}") from exc
    if kind == _INVALID:
        raise ConfigError(list(payload))
    if kind != _OK:
        raise ConfigCheckFailed(f"{source}: the config validation process answered {kind!r}")
    share_equal_values(payload)  # numbers: pickle does not keep them shared (texts it does)
    log.info("%s validated in a child process in %.1f s (its peak RSS %.1f MB)", source,
             time.monotonic() - started, peak_rss_bytes / 1e6)
    config: AgentConfig = payload
    return config


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve(request: tuple[Any, ...]) -> tuple[str, object, int]:
    """The child's work: validate as the request says; the answer the parent unpickles."""
    from edge_agent.config.loader import load_config, load_config_text

    try:
        if request[0] == "path":
            _, path, max_bytes = request
            result: tuple[str, object] = (_OK, load_config(path, **_limit(max_bytes)))
        else:
            _, text, source, max_bytes = request
            result = (_OK, load_config_text(text, source, **_limit(max_bytes)))
    except ConfigError as exc:
        result = (_INVALID, list(exc.errors))
    else:
        share_equal_values(result[1])
    return (*result, _peak_rss_bytes())


def share_equal_values(model: object) -> None:
    """Make equal text and number field values of ``model``'s tree one object each, in place.

    Validation gives every point its own ``'int16'``, ``0.0`` and ``'holding'``: ~100 bytes a point that
    one shared object of each saves. The child runs it before pickling (pickle writes a shared text once),
    the agent again after unpickling (pickle writes every number out anew). Floats count as equal only
    with the same sign and bits (``-0.0`` stays itself). Frozen models are changed under their feet: only
    for a config that nothing uses yet.
    """
    from edge_agent.config._pydantic import BaseModel

    shared: dict[tuple[type, object], object] = {}
    seen: set[int] = set()

    def one(value: object) -> object:
        kind = type(value)
        if kind is str or kind is int:
            return shared.setdefault((kind, value), value)
        if kind is float:
            return shared.setdefault((kind, value.hex()), value)  # type: ignore[attr-defined]
        walk(value)
        return value

    def walk(value: object) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, list):
            value[:] = [one(item) for item in value]
        elif isinstance(value, dict):
            for key, item in value.items():
                value[key] = one(item)
        elif isinstance(value, tuple):
            for item in value:  # tuples stay as they are; what they hold is shared
                walk(item)
        elif isinstance(value, BaseModel):
            fields = value.__dict__
            for key, item in fields.items():
                fields[key] = one(item)

    walk(model)


def main() -> int:
    """Child entry: a pickled request on stdin, the pickled answer on stdout."""
    request = pickle.loads(sys.stdin.buffer.read())
    answer = _serve(request)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
