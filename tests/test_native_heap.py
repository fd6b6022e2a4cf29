"""glibc's heap under the agent: stats from mallinfo2, and malloc_trim giving stranded pages back.

The scenario is the one that makes a long-running agent's RSS creep: many mid-size allocations (above
Python's 512-byte small-object limit, so they come from malloc's main heap), all freed except one at the
top, which keeps glibc from shrinking the heap by itself. The free pages stay resident until a trim.
"""

from __future__ import annotations

import pytest

from edge_agent.config import AgentConfig
from edge_agent.metrics import AgentMetrics, read_rss_bytes
from edge_agent.native_heap import NativeHeap

MB = 1_000_000
heap = NativeHeap()
glibc_only = pytest.mark.skipif(not heap.can_trim or heap.stats() is None,
                                reason="malloc_trim/mallinfo2 are glibc (>= 2.33) functions")


@glibc_only
def test_trim_gives_back_the_pages_of_freed_chunks_below_a_live_one() -> None:
    heap.trim(read_rss_bytes)  # start from a trimmed heap
    chunks = [bytearray(4000) for _ in range(10_000)]  # ~40 MB of 4 kB malloc chunks (below the mmap threshold)
    for chunk in chunks:
        chunk[::512] = b"x" * len(chunk[::512])  # touch every page
    pin = bytearray(4000)  # allocated last: sits above the others and keeps the heap top in use
    before = heap.stats()
    del chunks
    freed = heap.stats()
    assert before is not None and freed is not None
    assert before.in_use - freed.in_use > 35 * MB
    assert freed.free - before.free > 35 * MB
    rss_freed = read_rss_bytes()
    assert rss_freed is not None

    result = heap.trim(read_rss_bytes)

    assert result is not None and result.released_any
    assert result.rss_before >= rss_freed - 2 * MB
    assert result.returned_bytes > 30 * MB, result
    assert len(pin) == 4000


@glibc_only
def test_stats_are_consistent_bytes() -> None:
    stats = heap.stats()
    assert stats is not None
    assert 0 < stats.in_use <= stats.heap and 0 <= stats.free <= stats.heap
    assert stats.in_use + stats.free == stats.heap  # glibc: uordblks + fordblks == arena
    assert stats.mmapped >= 0


def test_metrics_export_the_heap_gauges_where_glibc_has_them_and_count_trims() -> None:
    body = AgentMetrics(process=False).render()[0].decode()
    assert "edge_agent_native_heap_trims_total 0.0" in body
    assert "edge_agent_native_heap_trim_returned_bytes_total 0.0" in body
    names = ("edge_agent_native_heap_bytes", "edge_agent_native_heap_in_use_bytes",
             "edge_agent_native_heap_free_bytes", "edge_agent_native_heap_mmapped_bytes")
    if heap.stats() is None:
        assert not any(f"{name} " in body for name in names)
    else:
        assert all(f"# TYPE {name} gauge" in body for name in names), body


def test_without_glibc_nothing_is_exported_and_trim_is_a_no_op() -> None:
    other = NativeHeap()
    other._info = other._trim = None  # as on musl or macOS
    assert other.stats() is None and other.trim(read_rss_bytes) is None and not other.can_trim


def test_memory_trim_interval_defaults_parses_units_and_refuses_negatives() -> None:
    base = {"agent": {"id": "gw", "site": "plant"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"}}
    assert AgentConfig.model_validate(base).service.memory_trim_interval == 600.0
    assert AgentConfig.model_validate({**base, "service": {"memory_trim_interval": "1h"}}) \
        .service.memory_trim_interval == 3600.0
    assert AgentConfig.model_validate({**base, "service": {"memory_trim_interval": 0}}) \
        .service.memory_trim_interval == 0.0
    for bad in ("-5s", "1ms", 2):  # a trim holds the allocator's locks: not more often than every 10 s
        with pytest.raises(ValueError, match="memory_trim_interval"):
            AgentConfig.model_validate({**base, "service": {"memory_trim_interval": bad}})


MMAP_PROBE = """
import json
from edge_agent.native_heap import NativeHeap
heap = NativeHeap()
fixed = heap.fix_mmap_threshold() if {fix} else None
first = bytearray(300_000)   # above glibc's starting threshold (128 KiB): its own mapping
del first                    # glibc's dynamic threshold now climbs to ~300 kB (unless fixed)
before = heap.stats().mmapped
second = bytearray(300_000)
print(json.dumps({{"fixed": fixed, "mmapped": heap.stats().mmapped - before}}))
"""


def _mmap_probe(fix: bool) -> dict[str, object]:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MMAP_PROBE.format(fix=fix)], capture_output=True, text=True,
                         check=True, timeout=60)
    return dict(json.loads(out.stdout))


@glibc_only
def test_a_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap() -> None:
    # glibc's own behaviour first: after a large free, the same size comes from the heap
    # ("mmapped": how much the second block added to the mapped bytes)
    assert int(_mmap_probe(False)["mmapped"]) < 300_000  # type: ignore[call-overload]
    pinned = _mmap_probe(True)
    assert pinned["fixed"] is True
    assert int(pinned["mmapped"]) >= 300_000  # type: ignore[call-overload]
