"""The durable outbox against a real SQLite file: ordering, group commit, bounds, restarts, power cuts, damage."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.errors import OutboxError
from edge_agent.outbox import MODE_DISK, MODE_MEMORY_FALLBACK, RECORD_OVERHEAD_BYTES, NewRecord, Outbox
from edge_agent.records import Priority

try:
    from tests.mqtt_support import poll_until
except ImportError:
    from mqtt_support import poll_until  # type: ignore[no-redef]

BIG = 10**9

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.sqlite", BIG, None)
    yield ob
    await ob.close()


def rows_on_disk(path: Path) -> list[tuple[int, int, str, bytes]]:
    """(id, priority, topic, payload) as another process would read them from the file."""
    conn = sqlite3.connect(path)
    try:
        return [(i, p, t, bytes(b)) for i, p, t, b in
                conn.execute("SELECT id, priority, topic, payload FROM records ORDER BY id")]
    finally:
        conn.close()


async def test_take_batch_orders_by_class_then_age_and_ack_deletes(outbox: Outbox) -> None:
    plan = [Priority.TELEMETRY, Priority.ALERT, Priority.SUMMARY, Priority.ALERT, Priority.VIBRATION,
            Priority.TELEMETRY, Priority.SUMMARY]
    ids = [await outbox.put(f"t/{i}", f"{i}".encode(), p) for i, p in enumerate(plan)]
    batch = await outbox.take_batch(100)
    got = [(r.priority, r.id) for r in batch]
    want = sorted(zip(plan, ids, strict=True), key=lambda pi: (-pi[0], pi[1]))
    assert got == want
    assert [r.payload for r in batch[:2]] == [b"1", b"3"]

    later = await outbox.take_batch(3, exclude_ids=[ids[1], ids[3]])  # the two alerts are in flight
    assert [r.priority for r in later] == [Priority.VIBRATION, Priority.SUMMARY, Priority.SUMMARY]

    await outbox.ack([ids[1], ids[3], ids[0]])
    stats = outbox.stats()
    assert stats["depth"] == {"telemetry": 1, "summary": 2, "vibration": 1, "status": 0, "alert": 0}
    assert stats["records"] == 4
    assert [r[0] for r in rows_on_disk(outbox.path)] == [ids[2], ids[4], ids[5], ids[6]]


async def test_put_returns_only_after_the_record_is_committed_to_the_file(outbox: Outbox) -> None:
    rid = await outbox.put("edge/a/alerts/pump-1", b'{"state":"raised"}', Priority.ALERT, qos=1, retain=False)
    assert rows_on_disk(outbox.path) == [(rid, int(Priority.ALERT), "edge/a/alerts/pump-1", b'{"state":"raised"}')]


async def test_concurrent_puts_share_transactions(outbox: Outbox) -> None:
    n = 2000
    ids = await asyncio.gather(*(outbox.put(f"t/{i % 7}", b"x" * 50, Priority.SUMMARY) for i in range(n)))
    assert len(set(ids)) == n
    assert ids == sorted(ids)  # queued in call order, committed in that order
    stats = outbox.stats()
    assert stats["records"] == n
    assert stats["transactions"] < n / 5, stats["transactions"]  # group commit, not one fsync per record
    assert len(rows_on_disk(outbox.path)) == n


async def test_put_many_keeps_order_and_fields(outbox: Outbox) -> None:
    ids = await outbox.put_many([
        ("a/1", b"1", Priority.SUMMARY),
        NewRecord("a/2", b"2", Priority.STATUS, qos=0, retain=True),
    ])
    batch = await outbox.take_batch(10)
    assert [(r.id, r.topic, r.qos, r.retain) for r in batch] == [(ids[1], "a/2", 0, True), (ids[0], "a/1", 1, False)]
    assert await outbox.put_many([]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", b"x", Priority.ALERT), "non-empty"),
        (("a/#", b"x", Priority.ALERT), "wildcard"),
        (("a/b", "text", Priority.ALERT), "must be bytes"),
        (("a/b", b"x", 9), "priority 9"),
        (("a/b", b"x", Priority.ALERT, 3), "qos 3"),
        (("a/b", b"x" * 5000, Priority.ALERT), "larger than the whole buffer"),
    ],
)
async def test_bad_records_are_refused_with_a_clear_message(tmp_path: Path, args: tuple[object, ...],
                                                            message: str) -> None:
    ob = await Outbox.open(tmp_path / "o.sqlite", 4096, None)
    try:
        with pytest.raises(ValueError, match=message):
            await ob.put(*args)  # type: ignore[arg-type]
    finally:
        await ob.close()


async def test_bad_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_size_bytes"):
        await Outbox.open(tmp_path / "o.sqlite", 0, None)
    with pytest.raises(ValueError, match="max_age_s"):
        await Outbox.open(tmp_path / "o.sqlite", 1000, -1)


async def test_reopen_keeps_records_and_never_reuses_ids(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = await Outbox.open(path, BIG, None)
    first = await ob.put_many([(f"t/{i}", b"p", Priority.SUMMARY) for i in range(5)])
    await ob.ack(first[-2:])  # the highest ids are gone; a reopened store must still not hand them out again
    await ob.close()
    with pytest.raises(OutboxError, match="closed"):
        await ob.put("t", b"x", Priority.ALERT)

    ob = await Outbox.open(path, BIG, None)
    try:
        assert [r.id for r in await ob.take_batch(10)] == first[:3]
        new = await ob.put("t/new", b"n", Priority.SUMMARY)
        assert new > first[-1]
    finally:
        await ob.close()


async def test_full_buffer_evicts_telemetry_first_then_summaries_and_counts(tmp_path: Path) -> None:
    record = 100 + len("t/x") + RECORD_OVERHEAD_BYTES
    ob = await Outbox.open(tmp_path / "o.sqlite", 20 * record, None)
    try:
        alerts = await ob.put_many([("t/x", b"a" * 100, Priority.ALERT) for _ in range(5)])
        summaries = await ob.put_many([("t/x", b"s" * 100, Priority.SUMMARY) for _ in range(5)])
        await ob.put_many([("t/x", b"t" * 100, Priority.TELEMETRY) for _ in range(10)])  # exactly full
        assert ob.stats()["evicted_total"] == 0
        newer_telemetry = await ob.put_many([("t/x", b"T" * 100, Priority.TELEMETRY) for _ in range(8)])
        stats = ob.stats()
        assert stats["evicted"]["telemetry"] == 8  # the 8 oldest telemetry records made room
        assert stats["bytes"] <= 20 * record
        await ob.put_many([("t/x", b"A" * 100, Priority.ALERT) for _ in range(12)])  # 12 more: over by 12
        stats = ob.stats()
        assert stats["evicted"] == {"telemetry": 18, "summary": 2, "vibration": 0, "status": 0, "alert": 0}
        left = {r.id for r in await ob.take_batch(100)}
        assert set(alerts) <= left
        assert set(summaries[2:]) <= left and not set(summaries[:2]) & left  # oldest summaries went first
        assert not set(newer_telemetry) & left
    finally:
        await ob.close()
    ob = await Outbox.open(tmp_path / "o.sqlite", 20 * record, None)  # the counts survive a restart
    try:
        assert ob.stats()["evicted_total"] == 20
    finally:
        await ob.close()


async def test_records_older_than_max_age_are_dropped_even_without_traffic(tmp_path: Path) -> None:
    ob = await Outbox.open(tmp_path / "o.sqlite", BIG, 0.3)
    try:
        await ob.put_many([("t/x", b"old", Priority.ALERT), ("t/y", b"old", Priority.TELEMETRY)])
        await poll_until(lambda: ob.stats()["records"] == 0, 20, "age eviction")
        stats = ob.stats()
        assert stats["evicted"]["alert"] == 1 and stats["evicted"]["telemetry"] == 1
        assert stats["oldest_age_s"] is None
    finally:
        await ob.close()


def copy_like_a_power_cut(db: Path, target_dir: Path) -> None:
    """Copy the database and its WAL while the writer keeps committing, as a power cut would leave them.

    A read transaction is held during the copy so a checkpoint cannot restart the WAL between the two file
    copies (a real power cut freezes both files at one instant); the WAL is copied first, so the main file can
    only be older than it. The tail of the WAL may be a torn, half-written frame, as after a real cut.
    """
    target_dir.mkdir()
    reader = sqlite3.connect(db)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM records").fetchone()
        wal = Path(f"{db}-wal")
        if wal.exists():
            shutil.copyfile(wal, target_dir / f"{db.name}-wal")
        shutil.copyfile(db, target_dir / db.name)
        reader.execute("ROLLBACK")
    finally:
        reader.close()


async def test_power_cut_mid_write_loses_no_committed_record(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite"
    ob = await Outbox.open(db, BIG, None)
    committed: set[int] = set()
    stop = asyncio.Event()

    async def produce(k: int) -> None:
        i = 0
        while not stop.is_set():
            committed.add(await ob.put(f"t/{k}", f"{k}:{i}".encode() * 20, Priority(k % 5)))
            i += 1

    producers = [asyncio.create_task(produce(k)) for k in range(8)]
    try:
        await poll_until(lambda: len(committed) >= 3000, 30, "3000 committed records")
        reported_before_cut = set(committed)
        await asyncio.to_thread(copy_like_a_power_cut, db, tmp_path / "after-cut")
        writes_during_copy = len(committed) - len(reported_before_cut)
    finally:
        stop.set()
        await asyncio.gather(*producers)
        await ob.close()

    copy = tmp_path / "after-cut" / db.name
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        on_disk = {row[0] for row in conn.execute("SELECT id FROM records")}
    finally:
        conn.close()
    assert reported_before_cut <= on_disk, f"lost {len(reported_before_cut - on_disk)} committed records"
    assert writes_during_copy >= 0

    reopened = await Outbox.open(copy, BIG, None)  # the agent restarting on the cut files
    try:
        stats = reopened.stats()
        assert stats["mode"] == MODE_DISK and stats["moved_aside"] == []
        assert stats["records"] == len(on_disk)
    finally:
        await reopened.close()


async def test_garbage_file_is_moved_aside_and_a_fresh_store_created(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database, it is a text file that got here somehow\n" * 100)
    ob = await Outbox.open(path, BIG, None)
    try:
        stats = ob.stats()
        assert stats["mode"] == MODE_DISK
        assert len(stats["moved_aside"]) == 1
        moved = Path(stats["moved_aside"][0])
        assert moved.name.startswith("outbox.sqlite.corrupt-")
        assert (await asyncio.to_thread(moved.read_bytes)).startswith(b"this is not")
        assert "corrupt" in stats["last_error"]
        rid = await ob.put("t", b"fresh", Priority.ALERT)
        assert rows_on_disk(path) == [(rid, int(Priority.ALERT), "t", b"fresh")]
    finally:
        await ob.close()


async def test_damaged_pages_are_detected_and_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None)
    await ob.put_many([(f"t/{i}", bytes(range(256)) * 8, Priority.SUMMARY) for i in range(300)])
    await ob.close()
    raw = bytearray(path.read_bytes())
    assert len(raw) > 40 * 4096
    raw[20 * 4096:30 * 4096] = b"\xa5" * (10 * 4096)  # scribble over ten pages in the middle of the table
    path.write_bytes(bytes(raw))
    ob = await Outbox.open(path, BIG, None)
    try:
        stats = ob.stats()
        assert len(stats["moved_aside"]) == 1 and stats["records"] == 0 and stats["mode"] == MODE_DISK
        assert await ob.put("t", b"after", Priority.ALERT) >= 1
    finally:
        await ob.close()


async def test_disk_full_falls_back_to_memory_without_losing_puts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None, pragmas={"max_page_count": 40})  # a disk of 40 pages
    try:
        ids = []
        for i in range(400):
            ids.append(await ob.put(f"t/{i}", b"z" * 1000, Priority.SUMMARY))
            if ob.mode == MODE_MEMORY_FALLBACK:
                break
        stats = ob.stats()
        assert stats["mode"] == MODE_MEMORY_FALLBACK, "the 40-page disk never filled"
        assert "full" in stats["last_error"]
        on_disk = {r[0] for r in rows_on_disk(path)}
        more = await ob.put_many([(f"m/{i}", b"m", Priority.ALERT) for i in range(5)])
        assert min(more) > max(ids)  # ids stay unique across the switch
        taken = await ob.take_batch(1000)
        in_memory = {r.id for r in taken}
        assert set(more) <= in_memory
        assert set(ids) <= on_disk | in_memory  # every put that returned is stored somewhere
        await ob.ack(more)
        assert ob.stats()["depth"]["alert"] == 0
    finally:
        await ob.close()


async def test_unusable_data_dir_gives_memory_fallback_then_moves_back_to_disk(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    path = blocker / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None)
    try:
        assert ob.mode == MODE_MEMORY_FALLBACK
        assert "cannot open" in ob.stats()["last_error"]
        ids = await ob.put_many([(f"t/{i}", f"{i}".encode(), Priority.SUMMARY) for i in range(10)])
        await ob.ack(ids[:3])
        blocker.unlink()  # the operator fixes the disk
        ob.try_return_to_disk_now()
        await poll_until(lambda: ob.mode == MODE_DISK, 20, "return to disk")
        assert [r[0] for r in rows_on_disk(path)] == ids[3:]  # same ids, so in-flight acks stay valid
        assert ob.stats()["last_error"] is None
        newer = await ob.put("t/after", b"a", Priority.SUMMARY)
        assert newer > ids[-1]
    finally:
        await ob.close()


async def test_records_buffered_while_the_store_was_unreadable_go_back_next_to_the_old_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None)
    old = await ob.put_many([(f"old/{i}", b"o", Priority.SUMMARY) for i in range(5)])
    await ob.close()
    data.rename(tmp_path / "away")
    data.write_text("the disk is not mounted yet")  # at start-up the store cannot even be read
    ob = await Outbox.open(path, BIG, None)
    try:
        assert ob.mode == MODE_MEMORY_FALLBACK
        new = await ob.put_many([(f"alerts/{i}", b"n", Priority.ALERT) for i in range(3)])
        assert min(new) > max(old)
        data.unlink()
        (tmp_path / "away").rename(data)  # mounted: the old records are there again
        ob.try_return_to_disk_now()
        await poll_until(lambda: ob.mode == MODE_DISK, 20, "return to disk")
        assert [r[0] for r in rows_on_disk(path)] == old + new
        assert [r.id for r in await ob.take_batch(100)] == new + old  # alerts first, then by age
    finally:
        await ob.close()
    assert [r[0] for r in rows_on_disk(path)] == old + new  # nothing lost at the stop


async def test_the_way_back_to_disk_is_taken_under_steady_traffic(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    ob = await Outbox.open(blocker / "outbox.sqlite", BIG, None)
    try:
        assert ob.mode == MODE_MEMORY_FALLBACK
        blocker.unlink()
        ob.try_return_to_disk_now()
        for i in range(40):  # a poller's records every 0.25 s: the writer is never idle for a whole second
            await ob.put(f"t/{i}", b"x", Priority.TELEMETRY)
            if ob.mode == MODE_DISK:
                break
            await asyncio.sleep(0.25)
        assert ob.mode == MODE_DISK
    finally:
        await ob.close()


async def test_a_wall_clock_step_does_not_age_out_fresh_records(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time
    import types

    import edge_agent.outbox.outbox as outbox_module

    offset = {"s": -3 * 365 * 86400.0, "elapsed": 0.0}  # a gateway without a real-time clock boots 3 years behind
    fake = types.SimpleNamespace(time=lambda: real_time.time() + offset["s"] + offset["elapsed"],
                                 monotonic=lambda: real_time.monotonic() + offset["elapsed"])
    monkeypatch.setattr(outbox_module, "time", fake)
    ob = await Outbox.open(tmp_path / "outbox.sqlite", BIG, 30 * 86400.0)  # max age 30 days
    try:
        await ob.put_many([(f"alerts/{i}", b"x", Priority.ALERT) for i in range(10)])
        offset["s"] = 0.0  # NTP sets the clock right
        await ob.put("t/after", b"y", Priority.TELEMETRY)
        await asyncio.sleep(1.5)  # an idle age eviction pass too
        assert ob.stats()["records"] == 11
        offset["elapsed"] = 31 * 86400.0  # 31 days go by (both clocks move): records age out as before
        await ob.put("t/later", b"z", Priority.TELEMETRY)
        await poll_until(lambda: ob.stats()["records"] == 1, 10, "age eviction after 31 days")
    finally:
        await ob.close()


async def test_one_record_stamped_in_the_future_does_not_stop_age_eviction(tmp_path: Path) -> None:
    """A record written while the clock was a day ahead sat between expired ones: eviction stopped at it and
    kept everything behind it for ever. Ids give the true write order: it goes with the records around it."""
    import time as real_time

    path = tmp_path / "outbox.sqlite"
    ob = await Outbox.open(path, BIG, None)
    await ob.put_many([(f"alerts/{i}", b"x", Priority.ALERT) for i in range(5)])
    await ob.close()
    now_ms = int(real_time.time() * 1000)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE records SET created_ms = ?", (now_ms - 2 * 3600 * 1000,))
        conn.execute("UPDATE records SET created_ms = ? WHERE id = (SELECT min(id) + 2 FROM records)",
                     (now_ms + 86400 * 1000,))
    conn.close()
    ob = await Outbox.open(path, BIG, 3600.0)  # max age 1 h
    try:
        await poll_until(lambda: ob.stats()["records"] == 0, 20, "age eviction past the future-stamped record")
        assert ob.stats()["evicted"]["alert"] == 5
    finally:
        await ob.close()


def test_extended_sqlite_corruption_codes_count_as_corruption() -> None:
    from edge_agent.outbox.sqlite_store import is_corruption

    def error(code: int) -> sqlite3.DatabaseError:
        exc = sqlite3.DatabaseError("damaged")
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert is_corruption(error(11)) and is_corruption(error(779)) and is_corruption(error(26))  # CORRUPT_INDEX 779
    assert not is_corruption(error(5)) and not is_corruption(error(517))  # BUSY, BUSY_SNAPSHOT
