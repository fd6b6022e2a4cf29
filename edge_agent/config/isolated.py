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

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.config.mode import lean_models
from edge_agent.errors import ConfigCheckFailed, ConfigError

if TYPE_CHECKING:
    from edge_agent.config.models import AgentConfig

__all__ = ["ConfigCheckFailed", "load_config_checked", "load_config_text_checked", "share_equal_values",
           "stop_config_checks"]

log = logging.getLogger(__name__)

#: A 1 MB config validates in about 2 s on a Raspberry Pi 3; far above that, the child is stuck.
CHILD_TIMEOUT_S = 120.0
#: The child's last stderr lines that reach the agent's log (a traceback, a warning).
_STDERR_LINES_LOGGED = 20

#: Validation children running now (normally none or one), for :func:`stop_config_checks`.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()

_OK = "ok"
_INVALID = "invalid"
_STALE = "stale"


def _code_fingerprint() -> str:
    """Names, sizes and modification times of the config package's files: the code the models come from."""
    package = Path(__file__).resolve().parent
    parts = []
    for path in sorted(package.glob("*.py")):
        with contextlib.suppress(OSError):
            info = path.stat()
            parts.append(f"{path.name}:{info.st_size}:{info.st_mtime_ns}")
    return ";".join(parts)


#: Taken when this process loads the models. A child that finds other files (an upgrade installed under a
#: running agent) refuses to answer: the agent would unpickle new models into its old classes.
_CODE_FINGERPRINT = _code_fingerprint()

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
    # -P: the working directory (the agent's data directory under systemd) is not searched for modules
    command = [sys.executable, "-P", "-m", "edge_agent.config.isolated"]
    expired = threading.Event()
    with tempfile.TemporaryFile() as stderr_file:
        try:
            # its own process group: a kill reaches anything it started, which could hold the pipe open
            child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file,
                                     start_new_session=True)
        except OSError as exc:
            raise ConfigCheckFailed(f"{source}: cannot start the config validation process: {exc}") from exc

        def expire() -> None:
            expired.set()
            _kill(child)

        timer = threading.Timer(CHILD_TIMEOUT_S, expire)
        timer.daemon = True
        with _RUNNING_LOCK:
            _RUNNING.add(child)
        timer.start()
        try:
            answer, unreadable = _exchange(child, request)
            returncode = child.wait()
        finally:
            timer.cancel()
            with _RUNNING_LOCK:
                _RUNNING.discard(child)
            if child.poll() is None:
                _kill(child)
                child.wait()
        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", "replace").strip().splitlines()
    for line in stderr[-_STDERR_LINES_LOGGED:]:
        log.warning("config validation process: %s", line)
    if expired.is_set():
        raise ConfigCheckFailed(f"{source}: config validation took over {CHILD_TIMEOUT_S:.0f} s; stopped it")
    if returncode != 0:
        last = stderr[-1] if stderr else "no message"
        raise ConfigCheckFailed(f"{source}: the config validation process ended with code {returncode} ({last})")
    if unreadable is not None:
        raise ConfigCheckFailed(f"{source}: the config validation process gave an unreadable answer: "
                                f"{type(unreadable).__name__}: {unreadable}") from unreadable
    kind, payload, peak_rss_bytes = answer
    if kind == _INVALID:
        raise ConfigError(list(payload))
    if kind == _STALE:
        raise ConfigCheckFailed(f"{source}: the agent's code on disk changed since it started (an upgrade?); "
                                "restart the agent to check and apply configs again")
    if kind != _OK:
        raise ConfigCheckFailed(f"{source}: the config validation process answered {kind!r}")
    share_equal_values(payload)  # numbers: pickle does not keep them shared (texts it does)
    log.info("%s validated in a child process in %.1f s (its peak RSS %.1f MB)", source,
             time.monotonic() - started, peak_rss_bytes / 1e6)
    config: AgentConfig = payload
    return config


def _exchange(child: subprocess.Popen[bytes], request: tuple[Any, ...]) -> tuple[Any, Exception | None]:
    """Send the request, read the answer as a stream (no second copy of a 1 MB pickle in memory)."""
    assert child.stdin is not None and child.stdout is not None
    try:
        with child.stdin:
            child.stdin.write(pickle.dumps((_CODE_FINGERPRINT, request), protocol=pickle.HIGHEST_PROTOCOL))
    except BrokenPipeError:
        pass  # the child is gone: its exit code tells why
    try:
        with child.stdout:
            answer = pickle.load(child.stdout)
        if not (isinstance(answer, tuple) and len(answer) == 3):
            raise ValueError(f"not an answer: {type(answer).__name__}")
        return answer, None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as exc:
        return None, exc


def stop_config_checks() -> None:
    """Kill the validation children still running (the agent is stopping): their callers get
    :class:`ConfigCheckFailed` at once instead of holding the exit for up to ``CHILD_TIMEOUT_S``."""
    with _RUNNING_LOCK:
        for child in _RUNNING:
            _kill(child)


def _kill(child: subprocess.Popen[bytes]) -> None:
    if child.returncode is not None:  # reaped: its pid (and group) may belong to someone else by now
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve(fingerprint: str, request: tuple[Any, ...]) -> tuple[str, object, int]:
    """The child's work: validate as the request says; the answer the parent unpickles."""
    from edge_agent.config.loader import load_config, load_config_text

    if fingerprint != _CODE_FINGERPRINT:
        return _STALE, None, _peak_rss_bytes()
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
    the agent again after unpickling (pickle writes every number out anew, and texts come back
    uninterned: interned here, the runtime's ``sys.intern`` of a point name finds the config's string
    instead of keeping a second copy). Floats count as equal only with the same sign and bits (``-0.0``
    stays itself). Frozen models are changed under their feet: only for a config that nothing uses yet.
    """
    from edge_agent.config._pydantic import BaseModel

    shared: dict[tuple[type, object], object] = {}
    seen: set[int] = set()
    pending: list[object] = [model]
    intern = sys.intern

    def one(value: object) -> object:  # (not recursive: no reference cycle keeps the tables alive)
        kind = type(value)
        if isinstance(value, str) and kind is str:
            return intern(value)
        if kind is int:
            return shared.setdefault((kind, value), value)
        if isinstance(value, float) and kind is float:
            return shared.setdefault((kind, value.hex()), value)
        pending.append(value)
        return value

    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, list):
            value[:] = [one(item) for item in value]
        elif isinstance(value, dict):
            for key, item in value.items():
                value[key] = one(item)
        elif isinstance(value, tuple):
            pending.extend(value)  # tuples stay as they are; what they hold is shared
        elif isinstance(value, BaseModel):
            lean_fields: tuple[str, ...] | None = getattr(type(value), "_lean_fields", None)
            if lean_fields is None:  # pydantic's model: the fields live in a real __dict__
                fields = value.__dict__
                for key, item in fields.items():
                    fields[key] = one(item)
            else:  # lean: through the attributes (asking for __dict__ would build one, 64 bytes each)
                for name in lean_fields:
                    object.__setattr__(value, name, one(getattr(value, name)))


def main() -> int:
    """Child entry: a pickled request on stdin, the pickled answer on stdout."""
    fingerprint, request = pickle.loads(sys.stdin.buffer.read())
    answer = _serve(fingerprint, request)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
