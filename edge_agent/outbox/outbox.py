"""The durable outbox: records wait here, in SQLite, until the broker has acknowledged them.

Guarantee (DESIGN.md, "Delivery guarantee"): ``await put(...)`` returns only after the transaction holding the
record has committed; a record leaves only through ``ack`` (after the broker's PUBACK) or through eviction by
the size and age bounds, which is counted per class and reported by ``stats()``.

Why ``synchronous=FULL``: in WAL mode a commit appends frames to the ``-wal`` file. With ``NORMAL`` SQLite
fsyncs the WAL only at checkpoints, so a power cut can roll back the last transactions that already reported
success (the database stays consistent, but committed records vanish). With ``FULL`` the WAL is fsynced at
every commit, so a record whose ``put`` returned survives a power cut. The cost, one fsync per commit, is
paid once per *group* of records: every ``put`` waiting while a commit is in progress joins the next
transaction (group commit). Transactions that only delete (acks, evictions) skip their own fsync
(``synchronous=NORMAL`` for that commit): a power cut can only bring such records back, which at-least-once
delivery allows, and the next record-inserting commit makes the deletions durable too.

Threading: one writer thread owns the SQLite connection and does all reads and writes, so the event loop
never waits on the disk; callers get their results through futures resolved with
``loop.call_soon_threadsafe``. ``stats()`` reads a snapshot the writer refreshes after each transaction.

Failure handling: a corrupt file found at open (or at runtime) is renamed to
``<name>.corrupt-<UTC time>`` with its ``-wal``/``-shm`` files, and a fresh store is created. If the disk
refuses a write (disk full, I/O error, read-only), the outbox switches to an in-memory SQLite store
with the same bounds, sets ``mode = "memory-fallback"`` and ``last_error`` (loud in status and the log),
and retries the disk every ``DISK_RETRY_INTERVAL_S``; when the disk accepts writes again the in-memory
records move back to it with their ids. Records stored only in memory are lost if the process dies
meanwhile: that is the price of not crashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge_agent.errors import OutboxError
from edge_agent.outbox.sqlite_store import NewRecord, Record, SqliteStore, WriteResult, is_corruption
from edge_agent.records import Priority

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 1.0  # age eviction runs at least this often, even with no traffic
DISK_RETRY_INTERVAL_S = 30.0  # how often a memory fallback tries the disk again
#: Ids of a memory store opened because the disk could not even be read at start-up begin here (plus the
#: time in microseconds), far above any id the unreadable file can hold, so they never clash with it when
#: the records move back to disk.
UNREADABLE_DISK_ID_BASE = 1 << 50
#: A jump of the wall clock against the monotonic one bigger than this (s) is a clock step.
CLOCK_STEP_S = 1.0
MAX_RECORDS_PER_TRANSACTION = 20_000
EVICTION_LOG_INTERVAL_S = 60.0
MODE_DISK = "disk"
MODE_MEMORY_FALLBACK = "memory-fallback"

JobKind = Literal["put", "ack", "take", "close"]


@dataclass(slots=True)
class _Job:
    kind: JobKind
    future: asyncio.Future[Any]
    records: Sequence[NewRecord] = ()
    ids: Sequence[int] = ()
    limit: int = 0


@dataclass(slots=True)
class _Snapshot:
    """What ``stats()`` reports; replaced as a whole by the writer thread after each transaction."""

    mode: str = MODE_DISK
    depth: dict[str, int] = field(default_factory=dict)
    bytes_by_class: dict[str, int] = field(default_factory=dict)
    oldest_ms: dict[str, int | None] = field(default_factory=dict)
    evicted: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    moved_aside: list[str] = field(default_factory=list)
    transactions: int = 0


def _resolve(future: asyncio.Future[Any], result: object = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _resolve_all(outcomes: Sequence[tuple[asyncio.Future[Any], object]]) -> None:
    for future, result in outcomes:
        if not future.done():
            future.set_result(result)


def validate_record(topic: str, payload: bytes, priority: Priority | int, qos: int, retain: bool,
                    max_size_bytes: int) -> NewRecord:
    """Check one record's fields and return it as a :class:`NewRecord`; ``ValueError`` names what is wrong."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty string, got {topic!r}")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic!r} contains a wildcard (+ or #); publish topics must be concrete")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ValueError(f"payload for {topic!r} must be bytes (use records.encode_payload), "
                         f"got {type(payload).__name__}")
    try:
        prio = Priority(priority)
    except ValueError:
        raise ValueError(f"priority {priority!r} for {topic!r} is not one of "
                         f"{[p.name for p in Priority]}") from None
    if qos not in (0, 1, 2):
        raise ValueError(f"qos {qos!r} for {topic!r} must be 0, 1 or 2")
    record = NewRecord(topic, bytes(payload), prio, qos, bool(retain))
    if record.size > max_size_bytes:
        raise ValueError(f"record for {topic!r} is {record.size} bytes, larger than the whole buffer "
                         f"({max_size_bytes} bytes); raise buffer.max_size or send less")
    return record


class Outbox:
    """Durable, bounded, priority-ordered store of outgoing records. Open with ``await Outbox.open(...)``."""

    def __init__(self, path: Path, max_size_bytes: int, max_age_s: float | None,
                 loop: asyncio.AbstractEventLoop, pragmas: Mapping[str, int | str] | None = None) -> None:
        """Use :meth:`open`; this only sets fields."""
        if max_size_bytes <= 0:
            raise ValueError(f"max_size_bytes={max_size_bytes} must be > 0 (buffer.max_size, e.g. 256MB)")
        if max_age_s is not None and (not math.isfinite(max_age_s) or max_age_s <= 0):
            raise ValueError(f"max_age_s={max_age_s} must be > 0 seconds or None (buffer.max_age, e.g. 30d)")
        self.path = Path(path)
        self.max_size_bytes = int(max_size_bytes)
        self.max_age_s = max_age_s
        self._loop = loop
        self._pragmas = dict(pragmas or {})
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._store: SqliteStore | None = None
        self._disk: SqliteStore | None = None
        self._pending_disk_acks: set[int] = set()
        self._fallback_first_id = 0
        self._snapshot = _Snapshot()
        self._moved_aside: list[str] = []
        self._last_error: str | None = None
        self._last_disk_retry = 0.0
        self._last_id = 0  # highest id handed out, so a replacement store never reuses one
        self._last_maintenance = time.monotonic()
        # Wall clock minus monotonic clock, and the first record id stamped on that time base (see _check_clock).
        self._clock_offset = time.time() - time.monotonic()
        self._time_base_first_id = 1
        self._closed = False
        self._transactions = 0
        self._evicted_unlogged: dict[str, int] = {}
        self._last_eviction_log = -EVICTION_LOG_INTERVAL_S
        self._new_records = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(cls, path: str | Path, max_size_bytes: int, max_age_s: float | None,
                   pragmas: Mapping[str, int | str] | None = None) -> Outbox:
        """Open (or create) the outbox at ``path`` and start its writer thread.

        ``max_size_bytes`` bounds topic + payload + 64 bytes per record; ``max_age_s`` (seconds, None for no
        limit) drops older records. ``pragmas`` are extra SQLite pragmas (e.g. ``{"cache_size": -8000}``).
        Never raises for disk problems: a corrupt file is moved aside, an unusable disk gives a memory
        fallback.
        """
        outbox = cls(Path(path), max_size_bytes, max_age_s, asyncio.get_running_loop(), pragmas)
        await asyncio.to_thread(outbox._open_store)
        outbox._thread = threading.Thread(target=outbox._run, name=f"outbox-writer:{outbox.path.name}",
                                          daemon=True)
        outbox._thread.start()
        return outbox

    async def close(self) -> None:
        """Finish queued writes, close the database and stop the writer thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        future: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put(_Job("close", future))
        await future
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # ------------------------------------------------------------------ API
    async def put(self, topic: str, payload: bytes, priority: Priority | int, qos: int = 1,
                  retain: bool = False) -> int:
        """Store one record durably; returns its id once the transaction holding it has committed."""
        ids = await self._submit_put([validate_record(topic, payload, priority, qos, retain,
                                                      self.max_size_bytes)])
        return ids[0]

    async def put_many(self, records: Iterable[NewRecord | tuple[str, bytes, Priority]]) -> list[int]:
        """Store several records in one transaction; returns their ids (in the given order) after the commit.

        Each item is a :class:`NewRecord` or a ``(topic, payload, priority)`` tuple (qos 1, not retained).
        """
        checked: list[NewRecord] = []
        for item in records:
            if isinstance(item, NewRecord):
                checked.append(validate_record(item.topic, item.payload, item.priority, item.qos, item.retain,
                                               self.max_size_bytes))
            else:
                topic, payload, priority = item
                checked.append(validate_record(topic, payload, priority, 1, False, self.max_size_bytes))
        if not checked:
            return []
        return await self._submit_put(checked)

    async def take_batch(self, limit: int, exclude_ids: Iterable[int] = ()) -> list[Record]:
        """Up to ``limit`` records not in ``exclude_ids``: alerts first, then by class, oldest first.

        Taking does not remove anything: a record stays until :meth:`ack`.
        """
        if limit <= 0:
            return []
        future = self._new_future()
        self._jobs.put(_Job("take", future, ids=list(exclude_ids), limit=limit))
        result: list[Record] = await future
        return result

    async def ack(self, ids: Sequence[int]) -> None:
        """Delete records the broker has acknowledged; returns after the deletion committed."""
        if not ids:
            return
        future = self._new_future()
        self._jobs.put(_Job("ack", future, ids=list(ids)))
        await future

    async def wait_for_records(self, timeout_s: float | None = None) -> bool:
        """Wait until a ``put`` committed since the last call (or ``timeout_s`` seconds); True if one did."""
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 it can swallow a cancellation
                await self._new_records.wait()
        except TimeoutError:
            return False
        self._new_records.clear()
        return True

    def stats(self) -> dict[str, Any]:
        """Buffer status: ``mode`` ("disk" | "memory-fallback"), ``records``, ``bytes``, ``max_bytes``,
        ``depth`` and ``bytes_by_class`` per class, ``oldest_age_s`` (seconds, overall and per class),
        ``evicted`` per class (since the file was created) and ``evicted_total``, ``last_error``,
        ``moved_aside`` (corrupt files renamed), ``transactions`` (write commits since open)."""
        snap = self._snapshot
        now_ms = time.time() * 1000
        ages = {k: None if v is None else round(max(0.0, now_ms - v) / 1000, 3)
                for k, v in snap.oldest_ms.items()}
        present = [a for a in ages.values() if a is not None]
        return {
            "mode": snap.mode,
            "path": str(self.path),
            "records": sum(snap.depth.values()),
            "bytes": sum(snap.bytes_by_class.values()),
            "max_bytes": self.max_size_bytes,
            "max_age_s": self.max_age_s,
            "depth": dict(snap.depth),
            "bytes_by_class": dict(snap.bytes_by_class),
            "oldest_age_s": max(present) if present else None,
            "oldest_age_s_by_class": ages,
            "evicted": dict(snap.evicted),
            "evicted_total": sum(snap.evicted.values()),
            "last_error": snap.last_error,
            "moved_aside": list(snap.moved_aside),
            "transactions": snap.transactions,
        }

    @property
    def mode(self) -> str:
        """``"disk"`` normally, ``"memory-fallback"`` while the disk refuses writes."""
        return self._snapshot.mode

    # ------------------------------------------------------------------ loop side helpers
    def _new_future(self) -> asyncio.Future[Any]:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._loop.create_future()

    async def _submit_put(self, records: Sequence[NewRecord]) -> list[int]:
        future = self._new_future()
        self._jobs.put(_Job("put", future, records=records))
        ids: list[int] = await future
        self._new_records.set()
        return ids

    def _post(self, future: asyncio.Future[Any], result: object = None,
              error: BaseException | None = None) -> None:
        """Resolve ``future`` on the event loop (called from the writer thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve, future, result, error)

    # ------------------------------------------------------------------ writer thread
    def _open_store(self) -> None:
        """Open the disk store, moving a corrupt file aside; fall back to memory if the disk is unusable."""
        try:
            self._disk = self._open_disk()
            self._store = self._disk
            self._last_id = self._disk.max_id()
        except (sqlite3.Error, OSError) as exc:
            # the file's highest id is unknown: start far above it (see UNREADABLE_DISK_ID_BASE)
            self._last_id = UNREADABLE_DISK_ID_BASE + int(time.time() * 1_000_000)
            self._enter_fallback(f"cannot open {self.path}: {exc}")
        self._time_base_first_id = self._last_id + 1
        self._publish_snapshot()

    def _open_disk(self) -> SqliteStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return SqliteStore.open_file(self.path, self._pragmas)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            moved = self._move_aside(str(exc))
            log.error("outbox %s is corrupt (%s); moved it to %s and started a fresh store",
                      self.path, exc, moved)
            return SqliteStore.open_file(self.path, self._pragmas)

    def _move_aside(self, reason: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(target) + suffix))
        self._moved_aside.append(str(target))
        self._last_error = f"corrupt database moved to {target}: {reason}"
        return str(target)

    def _enter_fallback(self, reason: str) -> None:
        first_id = self._last_id + 1
        self._last_error = reason
        log.error("OUTBOX DISK FAILURE: %s. Buffering in memory (bounded to %d bytes) until the disk works "
                  "again; records in memory are lost if the agent stops before then",
                  reason, self.max_size_bytes)
        self._store = SqliteStore.open_memory(first_id)
        self._fallback_first_id = first_id
        self._last_disk_retry = time.monotonic()

    def _run(self) -> None:
        while True:
            try:
                first = self._jobs.get(timeout=MAINTENANCE_INTERVAL_S)
            except queue.Empty:
                self._maintain()
                continue
            batch: list[_Job] = [first] if first is not None else []
            n_records = sum(len(j.records) for j in batch)
            while n_records < MAX_RECORDS_PER_TRANSACTION:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    batch.append(job)
                    n_records += len(job.records)
            if not self._process(batch):
                return
            if time.monotonic() - self._last_maintenance >= MAINTENANCE_INTERVAL_S:
                self._maintain()  # also under steady traffic: age eviction, the way back from memory to disk

    def _process(self, batch: list[_Job]) -> bool:
        """Run one group of jobs; returns False after a close job."""
        writes = [j for j in batch if j.kind in ("put", "ack")]
        if writes:
            self._commit(writes)
        for job in batch:
            if job.kind == "take":
                self._take(job)
        for job in batch:
            if job.kind == "close":
                self._shutdown()
                self._post(job.future)
                return False
        return True

    def _commit(self, jobs: list[_Job]) -> None:
        new = [r for j in jobs if j.kind == "put" for r in j.records]
        ack_ids = [i for j in jobs if j.kind == "ack" for i in j.ids]
        try:
            result = self._write(new, ack_ids)
        except Exception as exc:  # even the memory store failed: tell every caller, keep running
            error = OutboxError(f"outbox write failed: {exc}")
            for job in jobs:
                self._post(job.future, error=error)
            self._publish_snapshot()
            return
        self._publish_snapshot()  # before resolving, so a caller's stats() after its await sees its write
        outcomes: list[tuple[asyncio.Future[Any], object]] = []
        pos = 0
        for job in jobs:
            if job.kind == "put":
                outcomes.append((job.future, result.ids[pos:pos + len(job.records)]))
                pos += len(job.records)
            else:
                outcomes.append((job.future, None))
        with contextlib.suppress(RuntimeError):  # one loop wake-up for the whole group, not one per caller
            self._loop.call_soon_threadsafe(_resolve_all, outcomes)
        self._log_evictions(result.evicted)

    def _check_clock(self) -> None:
        """After a wall-clock step, move the creation times of the records stamped on the old time base by
        the step, so that age eviction counts their real age: a gateway without a battery-backed clock that
        boots years behind and is corrected by NTP must not evict the alerts it just stored.

        Only this process's records since the last step are moved; older ones were stamped on a time base
        nobody can know now.
        """
        offset = time.time() - time.monotonic()
        step_s = offset - self._clock_offset
        if abs(step_s) <= CLOCK_STEP_S:
            return
        self._clock_offset = offset
        step_ms = round(step_s * 1000)
        for store in {id(s): s for s in (self._store, self._disk) if s is not None}.values():
            try:
                moved = store.shift_created(step_ms, self._time_base_first_id)
            except sqlite3.Error as exc:
                log.warning("outbox %s: cannot move record times after a clock step: %s", self.path, exc)
                continue
            if moved:
                log.warning("outbox %s: the wall clock jumped by %+.0f s; %d buffered record(s) keep their age",
                            self.path, step_s, moved)
        self._time_base_first_id = self._last_id + 1

    def _write(self, new: Sequence[NewRecord], ack_ids: Sequence[int]) -> WriteResult:
        assert self._store is not None
        self._check_clock()
        max_age_ms = None if self.max_age_s is None else int(self.max_age_s * 1000)
        now_ms = int(time.time() * 1000)
        if self._store is not self._disk and ack_ids:
            # acks of records taken before the fallback: they live on disk, delete them there on return
            self._pending_disk_acks.update(i for i in ack_ids if i < self._fallback_first_id)
        try:
            result = self._store.write(new, ack_ids, now_ms, self.max_size_bytes, max_age_ms)
        except sqlite3.Error as exc:
            if self._store is not self._disk:
                raise
            if is_corruption(exc):
                self._replace_corrupt_disk(str(exc))
            else:
                self._enter_fallback(f"write to {self.path} failed: {exc}")
            result = self._store.write(new, ack_ids, now_ms, self.max_size_bytes, max_age_ms)
        self._transactions += 1
        if result.ids:
            self._last_id = max(self._last_id, result.ids[-1])
        return result

    def _replace_corrupt_disk(self, reason: str) -> None:
        assert self._disk is not None
        first_id = self._last_id + 1
        self._disk.close()
        self._disk = None
        try:
            moved = self._move_aside(reason)
            log.error("outbox %s became corrupt (%s); moved it to %s, records in it are not sent",
                      self.path, reason, moved)
            disk = SqliteStore.open_file(self.path, self._pragmas)
            if first_id > 1:
                disk.reserve_ids_below(first_id)
            self._disk = self._store = disk
        except (sqlite3.Error, OSError) as exc:
            self._enter_fallback(f"cannot recreate {self.path} after corruption: {exc}")

    def _maintain(self) -> None:
        """Periodic work (idle, or every ``MAINTENANCE_INTERVAL_S`` under traffic): age eviction, and while in
        memory fallback, a periodic attempt to return to disk."""
        self._last_maintenance = time.monotonic()
        in_fallback = self._store is not None and self._store is not self._disk
        if in_fallback and time.monotonic() - self._last_disk_retry >= DISK_RETRY_INTERVAL_S:
            self._try_return_to_disk()
        if self.max_age_s is not None and self._store is not None:
            cutoff = time.time() * 1000 - self.max_age_s * 1000
            if any(t.oldest_ms is not None and t.oldest_ms < cutoff for t in self._store.tallies.values()):
                self._write_idle_eviction()

    def _write_idle_eviction(self) -> None:
        try:
            result = self._write([], [])
        except Exception as exc:
            log.error("outbox age eviction failed: %s", exc)
            return
        self._publish_snapshot()
        self._log_evictions(result.evicted)

    def _log_evictions(self, evicted: Mapping[Priority, int]) -> None:
        """Warn about evictions at most once per ``EVICTION_LOG_INTERVAL_S``, with counts since the last."""
        for prio, n in evicted.items():
            self._evicted_unlogged[prio.name.lower()] = self._evicted_unlogged.get(prio.name.lower(), 0) + n
        now = time.monotonic()
        if self._evicted_unlogged and now - self._last_eviction_log >= EVICTION_LOG_INTERVAL_S:
            log.warning("outbox %s full or records expired: evicted %s (max %d bytes, max age %s s)",
                        self.path, self._evicted_unlogged, self.max_size_bytes, self.max_age_s)
            self._evicted_unlogged = {}
            self._last_eviction_log = now

    def try_return_to_disk_now(self) -> None:
        """Ask the writer to retry the disk at its next idle moment (for operators and tests)."""
        self._last_disk_retry = 0.0

    def _try_return_to_disk(self) -> None:
        self._last_disk_retry = time.monotonic()
        memory = self._store
        assert memory is not None
        try:
            disk = self._disk if self._disk is not None else self._open_disk()
            self._disk = disk
            max_age_ms = None if self.max_age_s is None else int(self.max_age_s * 1000)
            disk.write([], sorted(self._pending_disk_acks), int(time.time() * 1000), self.max_size_bytes,
                       max_age_ms, adopt=memory.all_records())
        except (sqlite3.Error, OSError) as exc:
            log.warning("outbox disk still unusable (%s); staying in memory, next try in %.0f s",
                        exc, DISK_RETRY_INTERVAL_S)
            self._last_error = f"disk still unusable: {exc}"
            self._publish_snapshot()
            return
        memory.close()
        self._store = disk
        self._pending_disk_acks.clear()
        self._last_error = None
        log.warning("outbox %s: disk writable again; moved buffered records back to disk", self.path)
        self._publish_snapshot()

    def _take(self, job: _Job) -> None:
        assert self._store is not None
        try:
            records = self._store.take(job.limit, job.ids)
        except sqlite3.Error as exc:
            self._post(job.future, error=OutboxError(f"outbox read failed: {exc}"))
            return
        self._post(job.future, records)

    def _shutdown(self) -> None:
        if self._store is not None and self._store is not self._disk:
            if self._store.tallies and any(t.count for t in self._store.tallies.values()):
                self._try_return_to_disk()
            if self._store is not self._disk:
                n = sum(t.count for t in self._store.tallies.values())
                log.error("outbox closing in memory fallback: %d record(s) not on disk are lost", n)
                self._store.close()
        if self._disk is not None:
            self._disk.close()

    def _publish_snapshot(self) -> None:
        store = self._store
        if store is None:
            return
        disk_evicted = self._disk.evicted_total if self._disk is not None else {}
        self._snapshot = _Snapshot(
            mode=MODE_DISK if store is self._disk else MODE_MEMORY_FALLBACK,
            depth={p.name.lower(): t.count for p, t in store.tallies.items()},
            bytes_by_class={p.name.lower(): t.bytes for p, t in store.tallies.items()},
            oldest_ms={p.name.lower(): t.oldest_ms for p, t in store.tallies.items()},
            evicted={p.name.lower(): n + (disk_evicted.get(p, 0) if store is not self._disk else 0)
                     for p, n in store.evicted_total.items()},
            last_error=self._last_error,
            moved_aside=list(self._moved_aside),
            transactions=self._transactions,
        )
