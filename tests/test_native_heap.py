"""glibc's heap under the agent, as mallinfo2 reports it and /metrics exports it.

The figures must tell a leak (bytes in use grow) from fragmentation (free bytes grow, in use does not):
checked with mid-size allocations (above Python's 512-byte small-object limit, so they come from malloc),
held and then freed below one that stays, which keeps glibc from shrinking the heap by itself.
"""

from __future__ import annotations

import pytest

from edge_agent.metrics import AgentMetrics
from edge_agent.native_heap import NativeHeap

MB = 1_000_000
heap = NativeHeap()
glibc_only = pytest.mark.skipif(heap.stats() is None, reason="mallinfo2 is a glibc (>= 2.33) function")


@glibc_only
def test_in_use_follows_live_allocations_and_free_follows_freed_ones() -> None:
    before = heap.stats()
    chunks = [bytearray(4000) for _ in range(10_000)]  # ~40 MB of 4 kB malloc chunks
    pin = bytearray(4000)  # allocated last: keeps the heap top in use, so the freed chunks stay free chunks
    held = heap.stats()
    del chunks
    freed = heap.stats()
    assert before is not None and held is not None and freed is not None
    assert held.in_use - before.in_use > 35 * MB  # what a leak would look like
    assert held.in_use - freed.in_use > 35 * MB
    assert freed.free - held.free > 35 * MB  # what fragmentation looks like: free, not given back
    assert len(pin) == 4000


@glibc_only
def test_stats_are_consistent_bytes() -> None:
    stats = heap.stats()
    assert stats is not None
    assert 0 < stats.in_use <= stats.heap and 0 <= stats.free <= stats.heap
    assert stats.in_use + stats.free == stats.heap  # glibc: uordblks + fordblks == arena
    assert stats.mmapped >= 0


def test_metrics_export_the_heap_gauges_where_glibc_has_them() -> None:
    body = AgentMetrics(process=False).render()[0].decode()
    names = ("edge_agent_native_heap_bytes", "edge_agent_native_heap_in_use_bytes",
             "edge_agent_native_heap_free_bytes", "edge_agent_native_heap_mmapped_bytes")
    if heap.stats() is None:
        assert not any(name in body for name in names)
    else:
        assert all(f"# TYPE {name} gauge" in body for name in names), body
