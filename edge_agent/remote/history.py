"""On-disk history of applied configs, and atomic persistence of the active config file.

Layout under ``data_dir/config-history/``: ``NNNN-<hash>.yaml`` (the exact text that was applied) and
``NNNN-<hash>.json`` (metadata: seq, version, label, hash, applied_at, by, source, result). ``NNNN`` is a
sequence number that only grows; the oldest pairs are pruned beyond ``keep``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from edge_agent.remote.atomic_file import write_atomic

HASH_DIGITS = 16
HistoryResult = Literal["accepted", "confirmed", "rolled_back", "restored"]
_ENTRY_NAME = re.compile(r"^(\d{4,})-([0-9a-f]+)\.json$")


def config_hash(text: str) -> str:
    """Short identity of a config text: the first 16 hex digits of sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_DIGITS]


def write_active_config(path: Path | str, text: str) -> None:
    """Atomically replace the config file at ``path`` with ``text`` (it is always complete on disk)."""
    write_atomic(Path(path), text.encode("utf-8"), mode=0o640)


@dataclass(frozen=True)
class HistoryEntry:
    """Metadata of one applied config; ``applied_at_ms`` is UTC epoch milliseconds."""

    seq: int
    version: int | None
    label: str
    hash: str
    applied_at_ms: int
    by: str
    source: str
    result: HistoryResult

    @property
    def stem(self) -> str:
        """File name without extension: ``NNNN-<hash>``."""
        return f"{self.seq:04d}-{self.hash}"


class ConfigHistory:
    """The last ``keep`` applied configs on disk, newest last."""

    def __init__(self, data_dir: Path | str, keep: int = 10) -> None:
        if keep < 1:
            raise ValueError(f"{keep=} must be at least 1 (the running config)")
        self.directory = Path(data_dir) / "config-history"
        self.keep = keep

    def entries(self) -> list[HistoryEntry]:
        """Every stored entry, oldest first (entries with unreadable metadata are skipped)."""
        found: list[HistoryEntry] = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.iterdir():
            if not _ENTRY_NAME.match(path.name) or not path.with_suffix(".yaml").exists():
                continue
            try:
                found.append(HistoryEntry(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda e: e.seq)

    def record(self, text: str, *, version: int | None, label: str, by: str, source: str,
               result: HistoryResult = "accepted") -> HistoryEntry:
        """Store ``text`` as the newest entry (YAML first, then metadata), prune old ones, return it."""
        existing = self.entries()
        seq = existing[-1].seq + 1 if existing else 1
        entry = HistoryEntry(seq=seq, version=version, label=label, hash=config_hash(text),
                             applied_at_ms=int(time.time() * 1000), by=by, source=source, result=result)
        write_atomic(self.directory / f"{entry.stem}.yaml", text.encode("utf-8"), mode=0o640)
        self._write_meta(entry)
        for old in [*existing, entry][: -self.keep]:
            for suffix in (".json", ".yaml"):
                (self.directory / f"{old.stem}{suffix}").unlink(missing_ok=True)
        return entry

    def mark(self, entry: HistoryEntry, result: HistoryResult) -> HistoryEntry:
        """Rewrite ``entry``'s metadata with a new result (e.g. ``confirmed`` or ``rolled_back``)."""
        updated = replace(entry, result=result)
        self._write_meta(updated)
        return updated

    def latest(self) -> HistoryEntry | None:
        """The newest entry, or None when the history is empty."""
        entries = self.entries()
        return entries[-1] if entries else None

    def rollback_target(self) -> HistoryEntry | None:
        """The newest entry before the latest one whose config was not itself rolled back."""
        entries = self.entries()
        for entry in reversed(entries[:-1]):
            if entry.result != "rolled_back":
                return entry
        return None

    def load_text(self, entry: HistoryEntry) -> str:
        """The exact config text stored for ``entry``."""
        return (self.directory / f"{entry.stem}.yaml").read_text(encoding="utf-8")

    def _write_meta(self, entry: HistoryEntry) -> None:
        data = json.dumps(asdict(entry), sort_keys=True, indent=1).encode("utf-8")
        write_atomic(self.directory / f"{entry.stem}.json", data, mode=0o640)
