"""Recent log lines for the remote ``logs`` command: a bounded in-memory ring with secrets redacted.

Attach :class:`RecentLogs` to the root logger at start-up; pass ``recent_logs.command`` as the ``logs``
command handler. Lines are redacted when they are recorded, so a secret never sits in the ring.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from typing import Any

from edge_agent.remote.errors import CommandError

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
     "[private key redacted]"),
    (re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization)(\"?\s*[:=]\s*\"?)([^\s\",;]+)"),
     r"\1\2***"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE), r"\1***@"),
)
MAX_LINE_CHARS = 2000


def redact_line(text: str) -> str:
    """``text`` with passwords, tokens, keys and URL credentials replaced by ``***``, cut to 2000 chars."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…"


class RecentLogs(logging.Handler):
    """Keeps the last ``capacity`` formatted records (oldest dropped first, counted in ``dropped``)."""

    def __init__(self, capacity: int = 1000, level: int = logging.INFO) -> None:
        super().__init__(level)
        if capacity < 1:
            raise ValueError(f"{capacity=} must be at least 1")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._ring_lock = threading.Lock()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Format, redact and store one record (never raises into the logging caller)."""
        try:
            line = redact_line(self.format(record))
        except Exception:
            self.handleError(record)
            return
        with self._ring_lock:
            if len(self._lines) == self._lines.maxlen:
                self.dropped += 1
            self._lines.append((record.levelno, line))

    def lines(self, count: int = 100, min_level: int = logging.DEBUG, contains: str = "") -> list[str]:
        """The newest ``count`` lines at or above ``min_level`` containing ``contains``, oldest first."""
        with self._ring_lock:
            snapshot = list(self._lines)
        selected = [line for level, line in snapshot if level >= min_level and contains in line]
        return selected[-count:]

    async def command(self, args: dict[str, Any]) -> dict[str, Any]:
        """``logs`` command: args ``count`` (1-500, default 100), ``level`` (default info), ``contains``."""
        count = args.get("count", 100)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 500:
            raise CommandError("count must be an integer from 1 to 500")
        level_name = str(args.get("level", "info")).upper()
        level = logging.getLevelName(level_name)
        if not isinstance(level, int):
            raise CommandError(f"level {args.get('level')!r} must be debug, info, warning, error or critical")
        contains = args.get("contains", "")
        if not isinstance(contains, str):
            raise CommandError("contains must be a string")
        return {"lines": self.lines(count, level, contains), "dropped_older": self.dropped}
