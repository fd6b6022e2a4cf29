"""The outbox's table in SQLite: synchronous operations, used by exactly one thread (the outbox writer).

Each write is one transaction holding the new rows, the deletions of acknowledged rows and the evictions the
bounds call for, so a power cut leaves either all of it or none of it. Per-class counts and bytes are kept in
memory, updated from what each transaction inserted and deleted (``DELETE ... RETURNING``), so status costs
no table scan; they are recounted from the table once at open.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.records import Priority

log = logging.getLogger(__name__)

# Estimated per-row cost on disk beyond topic and payload: the row header, the rowid, the (priority, id)
# index entry and page slack. The size bound counts ``len(topic) + len(payload) + RECORD_OVERHEAD_BYTES``.
RECORD_OVERHEAD_BYTES = 64
EVICTION_CHUNK_ROWS = 512
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    priority   INTEGER NOT NULL,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    qos        INTEGER NOT NULL,
    retain     INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    size       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_class ON records (priority, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to store: where it goes, what it carries, and how it is published."""

    topic: str
    payload: bytes
    priority: Priority
    qos: int = 1
    retain: bool = False

    @property
    def size(self) -> int:
        """Bytes this record counts against the size bound."""
        return len(self.topic.encode("utf-8")) + len(self.payload) + RECORD_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record: ``id`` orders records within a priority class (it never repeats)."""

    id: int
    topic: str
    payload: bytes
    priority: Priority
    qos: int
    retain: bool
    created_ms: int


@dataclass(slots=True)
class ClassTally:
    """Count, bytes and the creation time (epoch ms) of the oldest record of one priority class."""

    count: int = 0
    bytes: int = 0
    oldest_ms: int | None = None


@dataclass(slots=True)
class WriteResult:
    """What one write transaction did."""

    ids: list[int] = field(default_factory=list)
    evicted: dict[Priority, int] = field(default_factory=dict)


def is_corruption(exc: BaseException) -> bool:
    """True if ``exc`` says the database file is damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.DatabaseError) else None
    # Python gives SQLite's extended codes (779 SQLITE_CORRUPT_INDEX, 267 SQLITE_CORRUPT_VTAB...): the primary
    # code is the low byte
    return isinstance(code, int) and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


class SqliteStore:
    """One SQLite database holding the outbox table (a file in WAL mode, or ``:memory:`` as a fallback)."""

    def __init__(self, conn: sqlite3.Connection, location: str) -> None:
        self.conn = conn
        self.location = location
        self.tallies: dict[Priority, ClassTally] = {p: ClassTally() for p in Priority}
        self.evicted_total: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self._recount()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_file(cls, path: Path, pragmas: Mapping[str, int | str] | None = None) -> SqliteStore:
        """Open (or create) the store at ``path`` in WAL mode with ``synchronous=FULL``.

        Raises ``sqlite3.DatabaseError`` if the file is corrupt (see :func:`is_corruption`) or cannot be
        opened.
        """
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {path} to WAL mode (journal_mode is {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")  # truncate the WAL to 64 MB after checkpoints
            for name, value in (pragmas or {}).items():
                conn.execute(f"PRAGMA {name}={value}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                err = sqlite3.DatabaseError(f"{path} failed its integrity check: {check}")
                err.sqlite_errorcode = SQLITE_CORRUPT
                raise err
            conn.executescript(_SCHEMA)
            return cls(conn, str(path))
        except BaseException:
            conn.close()
            raise

    @classmethod
    def open_memory(cls, first_id: int = 1) -> SqliteStore:
        """An in-memory store (the fallback when the disk fails) whose ids start at ``first_id``."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        store = cls(conn, ":memory:")
        store.reserve_ids_below(first_id)
        return store

    def close(self) -> None:
        """Close the connection (checkpointing the WAL into the main file)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    # ------------------------------------------------------------------ reading
    def _recount(self) -> None:
        for tally in self.tallies.values():
            tally.count, tally.bytes = 0, 0
        for prio, count, size in self.conn.execute(
                "SELECT priority, count(*), coalesce(sum(size), 0) FROM records GROUP BY priority"):
            tally = self.tallies[Priority(prio)]
            tally.count, tally.bytes = count, size
        for name, value in self.conn.execute("SELECT name, value FROM counters"):
            if name.startswith("evicted."):
                with contextlib.suppress(KeyError):
                    self.evicted_total[Priority[name.removeprefix("evicted.")]] = value
        self._refresh_oldest(Priority)

    def _refresh_oldest(self, classes: Iterable[Priority]) -> None:
        for prio in classes:
            row = self.conn.execute("SELECT created_ms FROM records WHERE priority = ? ORDER BY id LIMIT 1",
                                    (int(prio),)).fetchone()
            self.tallies[prio].oldest_ms = None if row is None else row[0]

    @property
    def total_bytes(self) -> int:
        """Bytes of all records as counted against the size bound."""
        return sum(t.bytes for t in self.tallies.values())

    def shift_created(self, delta_ms: int, from_id: int) -> int:
        """Add ``delta_ms`` to the creation time of the records with id >= ``from_id``; return how many."""
        with self.conn:
            moved = self.conn.execute("UPDATE records SET created_ms = created_ms + ? WHERE id >= ?",
                                      (delta_ms, from_id)).rowcount
        self._refresh_oldest(Priority)
        return int(moved)

    def reserve_ids_below(self, first_id: int) -> None:
        """Make the next new id at least ``first_id`` (ids must never repeat across replacement stores)."""
        if first_id > self.max_id() + 1:
            self.conn.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
            self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?)",
                              (first_id - 1,))

    def max_id(self) -> int:
        """The highest id ever handed out by this store (0 if none)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return 0 if row is None else int(row[0])

    def take(self, limit: int, exclude_ids: Iterable[int] = ()) -> list[Record]:
        """Up to ``limit`` records, highest priority class first, oldest first (by id) within a class."""
        excluded = set(exclude_ids)
        out: list[Record] = []
        for prio in sorted(Priority, reverse=True):
            if len(out) >= limit:
                break
            if self.tallies[prio].count == 0:
                continue
            after_id = 0
            while len(out) < limit:
                rows = self.conn.execute(
                    "SELECT id, topic, payload, qos, retain, created_ms FROM records "
                    "WHERE priority = ? AND id > ? ORDER BY id LIMIT ?",
                    (int(prio), after_id, limit - len(out) + min(len(excluded), 1000)),
                ).fetchall()
                if not rows:
                    break
                for rid, topic, payload, qos, retain, created_ms in rows:
                    after_id = rid
                    if rid in excluded:
                        continue
                    out.append(Record(rid, topic, bytes(payload), prio, qos, bool(retain), created_ms))
                    if len(out) >= limit:
                        break
        return out

    def all_records(self) -> list[tuple[Record, int]]:
        """Every record with its counted size, in id order (to move a fallback store back to disk)."""
        return [
            (Record(rid, topic, bytes(payload), Priority(prio), qos, bool(retain), created_ms), size)
            for rid, prio, topic, payload, qos, retain, created_ms, size in self.conn.execute(
                "SELECT id, priority, topic, payload, qos, retain, created_ms, size FROM records ORDER BY id")
        ]

    # ------------------------------------------------------------------ writing
    def write(self, new: Sequence[NewRecord], ack_ids: Sequence[int], now_ms: int, max_bytes: int,
              max_age_ms: int | None, adopt: Sequence[tuple[Record, int]] = ()) -> WriteResult:
        """In one transaction: insert ``new`` (and ``adopt``: records keeping their ids), delete ``ack_ids``,
        then evict by age and by size. Returns the new ids and the evictions per class.

        On any ``sqlite3.Error`` the transaction is rolled back, the tallies are recounted and the error is
        raised to the caller.

        A transaction that only deletes (acks, evictions) commits with ``synchronous=NORMAL``: no fsync of its
        own, made durable by the next record-inserting (``FULL``) commit or checkpoint. A power cut in between
        can only bring deleted records back, which at-least-once delivery allows (a duplicate, never a loss).
        """
        only_deletes = not new and not adopt
        result = WriteResult()
        touched: set[Priority] = set()
        deltas: dict[Priority, list[int]] = {p: [0, 0] for p in Priority}
        evicted: dict[Priority, int] = {}
        conn = self.conn
        try:
            if only_deletes:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for rec, size in adopt:
                conn.execute(
                    "INSERT INTO records (id, priority, topic, payload, qos, retain, created_ms, size) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec.id, int(rec.priority), rec.topic, rec.payload, rec.qos, int(rec.retain),
                     rec.created_ms, size))
                deltas[rec.priority][0] += 1
                deltas[rec.priority][1] += size
                touched.add(rec.priority)
            for item in new:
                cur = conn.execute(
                    "INSERT INTO records (priority, topic, payload, qos, retain, created_ms, size) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (int(item.priority), item.topic, item.payload, item.qos, int(item.retain), now_ms,
                     item.size))
                assert cur.lastrowid is not None
                result.ids.append(cur.lastrowid)
                deltas[item.priority][0] += 1
                deltas[item.priority][1] += item.size
                touched.add(item.priority)
            for start in range(0, len(ack_ids), 500):
                chunk = list(ack_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                deleted = conn.execute(f"DELETE FROM records WHERE id IN ({marks}) RETURNING priority, size",
                                       chunk).fetchall()
                for prio, size in deleted:
                    p = Priority(prio)
                    deltas[p][0] -= 1
                    deltas[p][1] -= size
                    touched.add(p)
            self._apply(deltas)
            if max_age_ms is not None:
                self._evict_older_than(now_ms - max_age_ms, evicted, now_ms)
            if self.total_bytes > max_bytes:
                self._evict_to_size(max_bytes, evicted)
            for prio, n in evicted.items():
                conn.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (f"evicted.{prio.name}", n))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._recount()
            raise
        finally:
            if only_deletes:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=FULL")
        for prio, n in evicted.items():
            self.evicted_total[prio] += n
        result.evicted = evicted
        self._refresh_oldest(touched | set(evicted))
        return result

    def _apply(self, deltas: Mapping[Priority, list[int]]) -> None:
        for prio, (count, size) in deltas.items():
            self.tallies[prio].count += count
            self.tallies[prio].bytes += size

    def _evict_rows(self, prio: Priority, upto_id: int, evicted: dict[Priority, int]) -> None:
        removed = self.conn.execute("DELETE FROM records WHERE priority = ? AND id <= ? RETURNING size",
                                    (int(prio), upto_id)).fetchall()
        self.tallies[prio].count -= len(removed)
        self.tallies[prio].bytes -= sum(r[0] for r in removed)
        evicted[prio] = evicted.get(prio, 0) + len(removed)

    def _evict_older_than(self, cutoff_ms: int, evicted: dict[Priority, int], now_ms: int) -> None:
        """Drop records created before ``cutoff_ms`` (epoch ms), oldest first in each class.

        A record stamped after ``now_ms`` (a clock that was ahead when it was written) neither stops the scan
        nor counts as young: ids give the true write order, so one written between expired records is older
        than the later of them and goes with them.
        """
        self._refresh_oldest(p for p in Priority if self.tallies[p].count)
        for prio in Priority:
            oldest = self.tallies[prio].oldest_ms
            if oldest is None or cutoff_ms <= oldest <= now_ms:
                continue
            after_id, last_expired, reached_young = 0, 0, False
            while not reached_young:
                rows = self.conn.execute(
                    "SELECT id, created_ms FROM records WHERE priority = ? AND id > ? ORDER BY id LIMIT ?",
                    (int(prio), after_id, EVICTION_CHUNK_ROWS)).fetchall()
                if not rows:
                    break
                for rid, created in rows:
                    if created > now_ms:
                        continue  # from a clock that was ahead: decided by the records around it
                    if created >= cutoff_ms:
                        reached_young = True
                        break
                    last_expired = rid
                after_id = rows[-1][0]
            if last_expired:
                self._evict_rows(prio, last_expired, evicted)

    def _evict_to_size(self, max_bytes: int, evicted: dict[Priority, int]) -> None:
        """Drop the oldest records of the lowest class first until the total fits ``max_bytes``."""
        for prio in sorted(Priority):
            excess = self.total_bytes - max_bytes
            if excess <= 0:
                return
            after_id, freed, upto = 0, 0, 0
            while freed < excess:
                rows = self.conn.execute(
                    "SELECT id, size FROM records WHERE priority = ? AND id > ? ORDER BY id LIMIT ?",
                    (int(prio), after_id, EVICTION_CHUNK_ROWS)).fetchall()
                if not rows:
                    break
                for rid, size in rows:
                    freed += size
                    upto = rid
                    if freed >= excess:
                        break
                after_id = rows[-1][0]
            if upto:
                self._evict_rows(prio, upto, evicted)
