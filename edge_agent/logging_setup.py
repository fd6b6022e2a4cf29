"""Logging for a long-running service: one handler on stderr, text or JSON lines, secrets masked.

- ``fmt="text"``: ``2026-11-23 12:00:00.123 WARNING edge_agent.publisher: broker unreachable``. When
  stderr is connected to the journal (systemd sets ``$JOURNAL_STREAM`` to its ``device:inode``), the
  timestamp is left out (journald adds its own) and each line starts with a syslog priority prefix
  ``<4>``, so ``journalctl -p warning -u edge-agent`` filters by level.
- ``fmt="json"``: one JSON object per line (``ts`` ISO 8601 UTC, ``level``, ``logger``, ``msg``, ``exc``,
  and any ``extra=`` fields) for log shippers.
- Levels per component: ``component_levels={"pymodbus": "warning", "edge_agent.publisher": "debug"}``.
  The chatty protocol stacks (asyncua, pymodbus) default to WARNING.
- :class:`RedactionFilter` masks secrets in every record before any formatter sees it: URL passwords
  (``mqtt://user:***@host``), ``password=...``/``"token": "..."`` style assignments, bearer tokens, PEM
  private keys, and any literal registered with :func:`register_secret` (e.g. the MQTT password read
  from its file).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
# Third-party loggers that drown the agent's own lines at INFO; a component_levels entry overrides these.
# pymodbus logs every failed request with frame dumps at ERROR; the Modbus driver reports failures itself,
# once per episode, so the library is quiet unless a component level asks for it.
QUIET_BY_DEFAULT = {"asyncua": "warning", "pymodbus": "critical", "amqtt": "warning"}
MASK = "***"
_MIN_SECRET_CHARS = 4  # shorter literals would mask ordinary words

_SECRET_KEY = (
    r"(?:[A-Za-z0-9]+[_.-])*"
    r"(?:password|passwd|passphrase|pass|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"secret[_-]?key|private[_-]?key|client[_-]?secret|authorization|credentials?)"
)
# `password=hunter2`, `"token": "abc"`, `{'password': 'x y'}`, `PASSWORD: abc` (key must END in a secret word,
# so `password_file=/etc/...` and `max_tokens=5` stay readable).
_ASSIGNMENT = re.compile(
    rf"""(?ix)
    (?P<key>(?<![A-Za-z0-9_]){_SECRET_KEY}(?![A-Za-z0-9_])["']?\s*[=:]\s*)
    (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;&}}\])"']+)
    """
)
# an ``extra=`` field whose own name is a secret word
_SECRET_NAME = re.compile(_SECRET_KEY, re.IGNORECASE)
#: ``extra=`` values that cannot hold a secret (kept as they are, numbers stay numbers in JSON lines).
_PLAIN_EXTRA = frozenset({int, float, bool})
# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)(?P<password>[^\s/@]+)(?=@)")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer|basic)\s+(?P<token>[A-Za-z0-9._~+/-]+=*)")
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)


class Redactor:
    """Masks secrets in text: pattern-based rules plus literal values registered at run time."""

    def __init__(self) -> None:
        self._literals: set[str] = set()

    def add_secret(self, value: str) -> None:
        """Mask every later occurrence of ``value`` (ignored when shorter than 4 characters)."""
        if len(value) >= _MIN_SECRET_CHARS:
            self._literals.add(value)

    def clear(self) -> None:
        """Forget the registered literal secrets."""
        self._literals.clear()

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        for literal in sorted(self._literals, key=len, reverse=True):
            if literal in text:
                text = text.replace(literal, MASK)
        text = _PEM_PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m['kind']}PRIVATE KEY----- {MASK}", text)
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
        text = _BEARER.sub(lambda m: f"{m['head']} {MASK}", text)
        return _ASSIGNMENT.sub(_mask_assignment, text)


def _mask_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{quote}{MASK}{quote}"


_redactor = Redactor()


def register_secret(value: str) -> None:
    """Never log ``value``: call it with every password or token the agent reads (files, environment)."""
    _redactor.add_secret(value)


def redact(text: str) -> str:
    """Mask secrets in ``text`` with the process-wide redactor."""
    return _redactor.redact(text)


class RedactionFilter(logging.Filter):
    """Rewrites a record's message, exception and stack text with secrets masked (always lets it pass)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or _redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in ``record`` in place; return True."""
        if getattr(record, "_edge_agent_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad %-format must not lose the line (its arguments are not shown)
            message = f"{record.msg} (bad log format: {exc})"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS or key.startswith("_") or value is None or type(value) in _PLAIN_EXTRA:
                continue
            if _SECRET_NAME.fullmatch(key):  # extra={"password": ...}: the name says it all
                setattr(record, key, MASK)
            elif isinstance(value, str):
                setattr(record, key, self.redactor.redact(value))
            else:  # a dict, list or object: masked as the text a formatter would print, if it holds a secret
                text = json.dumps(value, default=str, ensure_ascii=False)
                masked = self.redactor.redact(text)
                if masked != text:
                    setattr(record, key, masked)
        record._edge_agent_redacted = True
        return True


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                         "taskName"}

def syslog_priority(levelno: int) -> int:
    """The syslog priority (RFC 5424 section 6.2.1: 2 crit, 3 err, 4 warning, 6 info, 7 debug) of a level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class TextFormatter(logging.Formatter):
    """``2026-11-23 12:00:00.123 LEVEL logger: message`` (UTC); ``<N>logger: message`` for the journal."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        """Format one record as a single human-readable line (plus traceback lines)."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        extra_lines = [text for text in (record.exc_text, record.stack_info) if text]
        if self.journal:
            # journald stores each line as its own entry: every line carries the priority, so
            # `journalctl -p err` shows a whole traceback, not just its first line.
            prefix = f"<{syslog_priority(record.levelno)}>"
            lines = [f"{record.name}: {message}", *"\n".join(extra_lines).splitlines()]
            return "\n".join(prefix + line for line in lines)
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname} {record.name}: {message}"
        return "\n".join([line, *extra_lines])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, optional ``exc``, plus extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record as a single-line JSON object."""
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


def parse_level(name: str, what: str = "log level") -> int:
    """Return the ``logging`` level for ``debug|info|warning|error|critical`` (any case)."""
    level = LEVELS.get(str(name).strip().lower())
    if level is None:
        raise ValueError(f"{what} {name!r} is not one of {', '.join(LEVELS)}")
    return level


def stream_is_journal(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal stream systemd names in ``$JOURNAL_STREAM`` (``device:inode``)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":", 1))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return info.st_dev == device and info.st_ino == inode


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler setup_logging installs (marked so a second call replaces it instead of adding one)."""


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    component_levels: Mapping[str, str] | None = None,
    *,
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Configure the root logger for the agent and return the installed handler.

    ``level`` is the root level, ``fmt`` ``"text"`` or ``"json"``, ``component_levels`` maps logger names
    (``"pymodbus"``, ``"edge_agent.publisher"``) to levels. ``stream`` defaults to stderr; ``secrets`` are
    literal values to mask (see :func:`register_secret`). Calling it again replaces the previous set-up.
    Raises ``ValueError`` naming the bad level, format or component.
    """
    root_level = parse_level(level)
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r} is not one of text, json")
    per_component = {**QUIET_BY_DEFAULT, **dict(component_levels or {})}
    resolved = {name: parse_level(value, f"log level of component {name!r}") for name, value in per_component.items()}
    for secret in secrets:
        register_secret(secret)

    out = stream if stream is not None else sys.stderr
    if stream is None and not faulthandler.is_enabled():
        # stderr may have no file descriptor (embedded use): then there is simply no crash dump
        with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
            faulthandler.enable(file=sys.stderr, all_threads=True)
    handler = _AgentHandler(out)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(journal=stream_is_journal(out)))
    handler.addFilter(RedactionFilter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AgentHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(root_level)
    for name, component_level in resolved.items():
        logging.getLogger(name).setLevel(component_level)
    logging.captureWarnings(True)
    return handler
