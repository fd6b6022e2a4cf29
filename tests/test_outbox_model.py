"""Property test: the SQLite store behaves like a plain-Python model of the outbox rules.

Random sequences of writes (new records, acks, time passing) against a small size bound and age bound; after
every step the store's send order, per-class tallies and eviction counts must equal the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.outbox import RECORD_OVERHEAD_BYTES, NewRecord
from edge_agent.outbox.sqlite_store import SqliteStore
from edge_agent.records import Priority

MAX_BYTES = 12 * (RECORD_OVERHEAD_BYTES + 40)
MAX_AGE_MS = 5_000


@dataclass
class Model:
    """The outbox rules written as simply as possible."""

    rows: list[tuple[int, Priority, int, int]] = field(default_factory=list)  # id, class, size, created_ms
    next_id: int = 1
    evicted: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))

    def write(self, new: list[NewRecord], acks: list[int], now_ms: int) -> list[int]:
        ids = []
        for rec in new:
            self.rows.append((self.next_id, rec.priority, rec.size, now_ms))
            ids.append(self.next_id)
            self.next_id += 1
        self.rows = [r for r in self.rows if r[0] not in set(acks)]
        for prio in Priority:  # age: created_ms grows with id here, so the expired rows are the oldest
            old = [r for r in self.rows if r[1] == prio and r[3] < now_ms - MAX_AGE_MS]
            self.evicted[prio] += len(old)
            self.rows = [r for r in self.rows if r not in old]
        for prio in sorted(Priority):  # size: lowest class first, oldest first
            while sum(r[2] for r in self.rows) > MAX_BYTES:
                victims = [r for r in self.rows if r[1] == prio]
                if not victims:
                    break
                self.rows.remove(victims[0])
                self.evicted[prio] += 1
        return ids

    def send_order(self) -> list[int]:
        return [r[0] for r in sorted(self.rows, key=lambda r: (-r[1], r[0]))]


step = st.tuples(
    st.lists(st.tuples(st.sampled_from(list(Priority)), st.integers(0, 80)), max_size=6),  # new records
    st.lists(st.integers(0, 40), max_size=4),  # positions (in send order) of records to ack
    st.integers(0, 3_000),  # ms that pass before the step
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_store_matches_the_model(tmp_path_factory: object, steps: list[tuple[list[tuple[Priority, int]],
                                                                              list[int], int]]) -> None:
    path = Path(tmp_path_factory.mktemp("model")) / "o.sqlite"  # type: ignore[attr-defined]
    store = SqliteStore.open_file(path)
    model = Model()
    now_ms = 1_000_000
    try:
        for new_spec, ack_positions, dt_ms in steps:
            now_ms += dt_ms
            new = [NewRecord("t/x", b"p" * n, prio) for prio, n in new_spec]
            order = model.send_order()
            acks = sorted({order[i] for i in ack_positions if i < len(order)})
            got_ids = store.write(new, acks, now_ms, MAX_BYTES, MAX_AGE_MS).ids
            assert got_ids == model.write(new, acks, now_ms)
            assert [r.id for r in store.take(10_000)] == model.send_order()
            for prio in Priority:
                rows = [r for r in model.rows if r[1] == prio]
                tally = store.tallies[prio]
                assert (tally.count, tally.bytes) == (len(rows), sum(r[2] for r in rows))
                assert tally.oldest_ms == (rows[0][3] if rows else None)
            assert store.evicted_total == model.evicted
            assert store.total_bytes <= MAX_BYTES
    finally:
        store.close()
    reopened = SqliteStore.open_file(path)  # counts rebuilt from the file agree too
    try:
        assert reopened.evicted_total == model.evicted
        assert [r.id for r in reopened.take(10_000)] == model.send_order()
    finally:
        reopened.close()
