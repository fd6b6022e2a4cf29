"""OPC UA subscription throughput: value changes per second ingested at 5 000 monitored items, and CPU.

The simulator runs in its own process (so its CPU is not counted) with ``--items`` load nodes that all
change every ``--update`` seconds. In this process, one after the other on the same server:

- **agent**: :class:`drivers.opcua.client.OpcUaDriver` with every node as a ``subscribe`` point; its
  sink receives the :class:`~drivers.base.Reading` batches and only counts them (the pipeline's work
  is not part of the driver's cost);
- **bare**: a plain asyncua ``Client.create_subscription`` with a handler whose
  ``datachange_notification`` only counts.

For each: changes per second received, and CPU seconds of this process per 1000 changes
(``time.process_time``). The ratio agent/bare is the driver's overhead relative to the library alone.

Run: ``.venv/bin/python benchmarks/bench_opcua_sub.py [--items 5000] [--seconds 10] [--update 0.5]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import Client

from drivers.base import Reading
from drivers.opcua.client import OpcUaDriver
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec
from drivers.sim.opcua_server import OpcUaSimServer, free_port
from drivers.sim.plant import Plant


def serve(port: int, items: int, update_s: float, ready: Any, stop: Any, updates: Any) -> None:
    """Child process: run the simulator with ``items`` changing load nodes until ``stop`` is set,
    publishing its update count in the shared ``updates``."""
    logging.disable(logging.CRITICAL)

    async def main() -> None:
        server = OpcUaSimServer(Plant(seed=0), port=port, load_nodes=items, update_interval_s=update_s)
        await server.start()
        ready.set()
        while not await asyncio.to_thread(stop.wait, 0.1):
            updates.value = server.update_count
        await server.stop()

    asyncio.run(main())


@dataclass
class Measurement:
    """Changes counted and CPU used over a wall-clock window."""

    name: str
    changes: int
    wall_s: float
    cpu_s: float
    produced: int

    @property
    def changes_per_s(self) -> float:
        """Value changes received per wall-clock second."""
        return self.changes / self.wall_s

    @property
    def cpu_ms_per_1000(self) -> float:
        """CPU milliseconds of this process per 1000 value changes."""
        return 1000.0 * self.cpu_s / max(self.changes, 1) * 1000.0


#: Shared with the simulator process: how many times it has updated every load node.
UPDATES: Any = None
ITEMS = 0


async def measure(name: str, counter: list[int], seconds: float, warmup_s: float) -> Measurement:
    """Let ``warmup_s`` pass, then count what ``counter[0]`` gains over ``seconds``, the CPU spent, and
    how many changes the simulator produced meanwhile."""
    await asyncio.sleep(warmup_s)
    c0, t0, p0, u0 = counter[0], time.perf_counter(), time.process_time(), UPDATES.value
    await asyncio.sleep(seconds)
    produced = (UPDATES.value - u0) * ITEMS
    return Measurement(name, counter[0] - c0, time.perf_counter() - t0, time.process_time() - p0, produced)


async def run_agent(endpoint: str, items: int, seconds: float, warmup_s: float) -> Measurement:
    """Subscribe through the edge-agent driver; the sink only counts."""
    points = tuple(
        OpcUaPointSpec(name=f"p{i:05d}", node=f"ns=2;s=Load.{i:05d}", mode="subscribe",
                       sampling_interval_s=0.1)
        for i in range(items)
    )
    driver = OpcUaDriver(OpcUaDeviceSpec(name="bench", endpoint=endpoint, timeout_s=30.0, points=points))
    counter = [0]

    def sink(readings: Sequence[Reading]) -> None:
        counter[0] += len(readings)

    await driver.connect()
    try:
        await driver.subscribe(sink)
        return await measure("agent (OpcUaDriver)", counter, seconds, warmup_s)
    finally:
        await driver.close()


class CountingHandler:
    """The least a subscriber can do: count."""

    def __init__(self) -> None:
        self.counter = [0]

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.counter[0] += 1


async def run_bare(endpoint: str, items: int, seconds: float, warmup_s: float) -> Measurement:
    """Subscribe with plain asyncua and a counting handler."""
    # a long keep-alive probe interval: 5000 handler tasks per publish keep the loop busy for a while
    client = Client(endpoint, timeout=30.0, watchdog_intervall=30.0)
    await client.connect()
    try:
        handler = CountingHandler()
        sub = await client.create_subscription(100.0, handler)
        nodes = [client.get_node(f"ns=2;s=Load.{i:05d}") for i in range(items)]
        await sub.subscribe_data_change(nodes, sampling_interval=100.0)
        result = await measure("bare asyncua handler", handler.counter, seconds, warmup_s)
        await sub.delete()
        return result
    finally:
        await client.disconnect()


async def bench(items: int, seconds: float, update_s: float) -> list[Measurement]:
    """Start the simulator process, measure agent and bare (then agent again), stop it."""
    ctx = mp.get_context("spawn")
    global UPDATES, ITEMS
    ready, stop = ctx.Event(), ctx.Event()
    UPDATES, ITEMS = ctx.Value("q", 0), items
    port = free_port("127.0.0.1")
    proc = ctx.Process(target=serve, args=(port, items, update_s, ready, stop, UPDATES), daemon=True)
    proc.start()
    try:
        if not await asyncio.to_thread(ready.wait, 120):
            raise RuntimeError("simulator did not start within 120 s")
        endpoint = f"opc.tcp://127.0.0.1:{port}/edge-agent/sim"
        warmup_s = max(3.0, 4 * update_s)
        return [
            await run_agent(endpoint, items, seconds, warmup_s),
            await run_bare(endpoint, items, seconds, warmup_s),
            await run_agent(endpoint, items, seconds, warmup_s),
        ]
    finally:
        stop.set()
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)


def main() -> None:
    """Parse arguments, run, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000, help="monitored items (default 5000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per run (s)")
    parser.add_argument("--update", type=float, default=0.5, help="simulator update interval (s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(bench(args.items, args.seconds, args.update))
    print(f"OPC UA subscription ingest: {args.items} monitored items, the simulator rewrites every item "
          f"every {args.update:g} s (as fast as it can), {args.seconds:g} s windows\n")
    print("| run | changes/s received | changes/s produced by the server | CPU ms per 1000 changes "
          "| CPU % of one core |")
    print("|---|---:|---:|---:|---:|")
    for m in results:
        cpu_pct = 100 * m.cpu_s / m.wall_s
        print(f"| {m.name} | {m.changes_per_s:,.0f} | {m.produced / m.wall_s:,.0f} | {m.cpu_ms_per_1000:.1f} "
              f"| {cpu_pct:.0f} |")
    agent = [m for m in results if m.name.startswith("agent")]
    bare = next(m for m in results if m.name.startswith("bare"))
    best_agent = min(a.cpu_ms_per_1000 for a in agent)
    print(f"\nCPU ratio agent/bare (best agent run): {best_agent / bare.cpu_ms_per_1000:.2f}")


if __name__ == "__main__":
    main()
