"""CPU cost of polling Modbus with our driver versus a bare pymodbus loop, same simulator, same run.

The simulated PLC runs in a child process (so its CPU is not counted) serving N synthetic points
(uint16 / int16 / int32 / float32-CDAB, back to back in the holding table). In this process we
measure ``time.process_time()`` over whole poll cycles of:

- ``driver``: :class:`drivers.modbus.ModbusDriver` (plan, pymodbus reads, block decode, Readings);
- ``bare``: a loop of ``read_holding_registers`` over the very same 125-register blocks, no decoding.

Rounds alternate between the two and the median is reported, as CPU seconds per 1000 point values
and per 1000 registers, with the ratio driver / bare. Run:
``.venv/bin/python benchmarks/bench_modbus_poll.py [--points 1000 10000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient

from drivers.base import Quality
from drivers.modbus import ModbusTcpSpec
from drivers.modbus.client import ModbusDriver
from drivers.sim.register_map import synthetic_register_map


@dataclass
class Sample:
    """CPU and wall seconds spent on ``cycles`` poll cycles."""

    cpu_s: float
    wall_s: float
    cycles: int


def start_simulator(n_points: int) -> tuple[subprocess.Popen[str], int]:
    """Run the simulated PLC in a child process; return it and its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "drivers.sim.modbus_server", "--port", "0", "--synthetic", str(n_points),
         "--update-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


async def measure_driver(driver: ModbusDriver, cycles: int) -> Sample:
    """Poll ``cycles`` times through the driver (plan, read, decode, Readings)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(cycles):
        result = await driver.read()
    cpu1, wall1 = time.process_time(), time.perf_counter()
    if any(r.quality is not Quality.GOOD for r in result.readings):
        raise RuntimeError(f"driver read failed: {driver.comms}")
    return Sample(cpu1 - cpu0, wall1 - wall0, cycles)


async def measure_bare(client: AsyncModbusTcpClient, blocks: list[tuple[int, int]], cycles: int) -> Sample:
    """Poll ``cycles`` times with bare pymodbus reads of the same blocks, no decoding."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(cycles):
        for address, count in blocks:
            response = await client.read_holding_registers(address, count=count, device_id=1)
            if response.isError():
                raise RuntimeError(f"bare read failed: {response}")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    return Sample(cpu1 - cpu0, wall1 - wall0, cycles)


async def bench(n_points: int, rounds: int) -> dict[str, float]:
    """Measure both paths on a simulator serving ``n_points``; medians over alternating ``rounds``."""
    proc, port = start_simulator(n_points)
    try:
        entries = synthetic_register_map(n_points)
        n_registers = sum(e.point.register_count for e in entries)
        spec = ModbusTcpSpec(name="bench", host="127.0.0.1", port=port, timeout_s=10.0,
                             points=tuple(e.point for e in entries))
        driver = ModbusDriver(spec)
        await driver.connect()
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0, reconnect_delay=0)
        await client.connect()
        blocks = [(r.address, r.count) for r in driver.plan]
        cycles = max(3, 20000 // n_points)
        await measure_driver(driver, 2)  # warm up both paths
        await measure_bare(client, blocks, 2)
        drv, bare = [], []
        for _ in range(rounds):
            drv.append(await measure_driver(driver, cycles))
            bare.append(await measure_bare(client, blocks, cycles))
        requests = driver.comms.requests_last_cycle
        await driver.close()
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    def per_1000(samples: list[Sample], unit_count: int) -> float:
        """Median CPU seconds per 1000 units (values or registers)."""
        return statistics.median(s.cpu_s / (s.cycles * unit_count) * 1000 for s in samples)

    def wall_ms(samples: list[Sample]) -> float:
        """Median wall milliseconds per cycle."""
        return statistics.median(s.wall_s / s.cycles * 1000 for s in samples)

    return {
        "points": n_points, "registers": n_registers, "requests": requests,
        "driver_cpu_per_1000_values": per_1000(drv, n_points),
        "bare_cpu_per_1000_values": per_1000(bare, n_points),
        "driver_cpu_per_1000_registers": per_1000(drv, n_registers),
        "bare_cpu_per_1000_registers": per_1000(bare, n_registers),
        "driver_wall_ms_per_cycle": wall_ms(drv), "bare_wall_ms_per_cycle": wall_ms(bare),
    }


def main() -> None:
    """Run the benchmark at each ``--points`` size and print one table row per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("Modbus poll CPU cost: our driver vs a bare pymodbus loop over the same 125-register blocks")
    print(f"python {sys.version.split()[0]}, medians of {args.rounds} alternating rounds; simulator in a "
          "child process (not counted)")
    header = (f"{'points':>7} {'registers':>9} {'req/cycle':>9} | {'driver ms CPU':>13} {'bare ms CPU':>11} "
              f"{'ratio':>5} (per 1000 values) | {'driver':>7} {'bare':>7} ms CPU per 1000 registers | "
              f"{'driver':>7} {'bare':>7} ms wall per cycle")
    print(header)
    for n in args.points:
        r = asyncio.run(bench(n, args.rounds))
        ratio = r["driver_cpu_per_1000_values"] / r["bare_cpu_per_1000_values"]
        print(f"{int(r['points']):>7} {int(r['registers']):>9} {int(r['requests']):>9} | "
              f"{r['driver_cpu_per_1000_values'] * 1000:>13.2f} {r['bare_cpu_per_1000_values'] * 1000:>11.2f} "
              f"{ratio:>5.2f}                  | "
              f"{r['driver_cpu_per_1000_registers'] * 1000:>7.2f} {r['bare_cpu_per_1000_registers'] * 1000:>7.2f}"
              f"                          | {r['driver_wall_ms_per_cycle']:>7.1f} {r['bare_wall_ms_per_cycle']:>7.1f}")


if __name__ == "__main__":
    main()
