"""Append-only JSON-lines audit log of every remote command and config change, bounded by rotation.

``audit.jsonl`` grows to ``max_bytes``, then becomes ``audit.jsonl.1`` (older files shift up to
``backups``; the oldest is deleted). Each line is one JSON object with ``ts`` (UTC epoch milliseconds).
Values under keys that look like secrets are replaced by ``"***"`` and long strings are truncated.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECRET_KEY = re.compile(r"pass(word)?|secret|token|private|credential|api[_-]?key", re.IGNORECASE)
MAX_STRING_CHARS = 512
MAX_DEPTH = 6


def redact(value: Any, depth: int = 0) -> Any:
    """Copy of ``value`` with secret-looking keys masked, strings cut to 512 chars and nesting cut at 6."""
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): "***" if SECRET_KEY.search(str(k)) else redact(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value[:100]]
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        return value[:MAX_STRING_CHARS] + f"…(+{len(value) - MAX_STRING_CHARS} chars)"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)[:MAX_STRING_CHARS]


class AuditLog:
    """A bounded, rotated, fsynced JSON-lines file; thread-safe so callers may use ``asyncio.to_thread``."""

    def __init__(self, path: Path | str, *, max_bytes: int = 1_000_000, backups: int = 3,
                 fsync: bool = True) -> None:
        if max_bytes < 1024:
            raise ValueError(f"{max_bytes=} must be at least 1024")
        if backups < 1:
            raise ValueError(f"{backups=} must be at least 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._fsync = fsync
        self._lock = threading.Lock()

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Write one event (redacted, with ``ts`` added when missing) and return what was written."""
        record = redact(dict(event))
        record.setdefault("ts", int(time.time() * 1000))
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, line)
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return dict(record)

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        """The last ``count`` events, oldest first, read across the current file and its backups."""
        lines: list[str] = []
        with self._lock:
            for path in [self.path] + [self._backup(i) for i in range(1, self.backups + 1)]:
                if len(lines) >= count:
                    break
                try:
                    chunk = path.read_text(encoding="utf-8").splitlines()
                except FileNotFoundError:
                    continue
                lines = chunk + lines
        events: list[dict[str, Any]] = []
        for line in lines[-count:]:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        self._backup(self.backups).unlink(missing_ok=True)
        for index in range(self.backups - 1, 0, -1):
            if self._backup(index).exists():
                os.replace(self._backup(index), self._backup(index + 1))
        os.replace(self.path, self._backup(1))
