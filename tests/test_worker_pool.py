"""The agent's worker pool starts all its threads at once (no thread, stack or malloc arena appearing hours
into a run, when two analyses first overlap)."""

from __future__ import annotations

import threading
import time

from edge_agent.runtime import WORKER_THREADS, started_pool


def _workers(prefix: str) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix + "_"))


def test_every_worker_runs_before_the_first_task() -> None:
    pool = started_pool(WORKER_THREADS, "pool-under-test")
    try:
        assert _workers("pool-under-test") == [f"pool-under-test_{i}" for i in range(WORKER_THREADS)]
    finally:
        pool.shutdown()
    assert _workers("pool-under-test") == []


def test_the_pool_runs_tasks_in_parallel_and_never_grows() -> None:
    pool = started_pool(3, "busy-pool")
    try:
        both = threading.Barrier(3, timeout=5.0)  # passes only when three tasks run at the same time
        # with fewer threads the barrier times out and result() raises BrokenBarrierError
        assert sorted(f.result() for f in [pool.submit(both.wait) for _ in range(3)]) == [0, 1, 2]
        names = [f.result() for f in [pool.submit(lambda: (time.sleep(0.001), threading.current_thread().name)[1])
                                      for _ in range(50)]]
        assert set(names) <= {"busy-pool_0", "busy-pool_1", "busy-pool_2"}
        assert len(_workers("busy-pool")) == 3
    finally:
        pool.shutdown()
