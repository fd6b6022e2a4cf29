"""Agent memory with a 1 000 000-record backlog on disk, and the replay rate of that backlog.

1. Fill an outbox file with N records (~200-byte payloads, default 1 000 000) by direct SQLite inserts matching
   the outbox schema (the schema itself is created by ``Outbox.open``), then check it with ``Outbox.open``.
2. RSS with the backlog: a fresh process opens the outbox as the agent does (``Outbox.open`` + ``Publisher``)
   with the broker DOWN (nothing listens on its port, so nothing drains) and keeps producing live records at
   ``--live-rate`` records/s, like an agent during an outage; this process samples the child's VmRSS
   (``/proc/PID/status``) every second for ``--seconds`` s. The same is done with an empty outbox; both series,
   their means and the difference are printed. "Flat" means: no growth over the run (last minus first sample)
   and the backlog costs a bounded, small amount over the empty outbox (the backlog is never loaded into
   memory, only SQLite's page cache touches it). SQLite's page cache is capped (default ``cache_size`` of
   -2000, i.e. 2000 KiB per connection); the empty outbox's RSS creeping up by about 1 MiB over the run is
   most likely that cache filling as its table grows from nothing (with the backlog it is full from the
   start): the probe holds no other per-record state.
3. Replay (``--replay``): the publisher drains the whole backlog into a local Mosquitto at QoS 1 until every
   record is acknowledged and deleted (records/s), with the child's RSS sampled during the drain too.

Run: ``.venv/bin/python benchmarks/bench_outbox_backlog.py [--records 1000000] [--seconds 30] [--replay]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mqtt_support import Mosquitto, free_port

from edge_agent.mqtt import PublisherSettings
from edge_agent.outbox import Outbox
from edge_agent.outbox.sqlite_store import NewRecord
from edge_agent.publisher import Publisher
from edge_agent.records import Priority

PREFIX = "edge/bench/gw"
TOPIC = f"{PREFIX}/summary/pump-1"
MAX_SIZE_BYTES = 10**10
INSERT_BATCH = 50_000
READY_TIMEOUT_S = 300.0


def payload(seq: int) -> bytes:
    """A ~200-byte summary-like record in the wire envelope with a unique ``id``."""
    return (b'{"v":1,"id":"%s","ts":%d,"agent":"gw","asset":"pump-1","seq":%d,"points":{"motor-plc/speed":'
            b'{"count":60,"min":1490,"max":1502,"mean":1497.2,"unit":"rpm"}}}'
            % (str(uuid.uuid4()).encode(), int(time.time() * 1000), seq))


async def create_schema(path: Path) -> None:
    """Let ``Outbox.open`` create the file and its schema (so the inserts below match it exactly)."""
    outbox = await Outbox.open(path, MAX_SIZE_BYTES, None)
    await outbox.close()


def fill(path: Path, n: int) -> float:
    """Insert ``n`` summary records into the outbox table at ``path``; return seconds taken."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    now_ms = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, n, INSERT_BATCH):
        rows = []
        for i in range(start, min(n, start + INSERT_BATCH)):
            body = payload(i)
            size = NewRecord(TOPIC, body, Priority.SUMMARY).size
            rows.append((int(Priority.SUMMARY), TOPIC, body, 1, 0, now_ms, size))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO records (priority, topic, payload, qos, retain, created_ms, size) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - t0


async def check_backlog(path: Path, n: int) -> None:
    """Open the filled file with ``Outbox.open`` and check it holds ``n`` records."""
    outbox = await Outbox.open(path, MAX_SIZE_BYTES, None)
    try:
        stored = outbox.stats()["records"]
    finally:
        await outbox.close()
    if stored != n:
        raise RuntimeError(f"outbox holds {stored} records after the fill, expected {n}")


# ---------------------------------------------------------------- the probe process (runs as the agent would)
async def probe(path: Path, broker_url: str, live_rate: float) -> None:
    """Open the outbox and a publisher to ``broker_url``, print ``ready``, produce live records at
    ``live_rate`` records/s until stdin closes (the parent's signal to stop)."""
    outbox = await Outbox.open(path, MAX_SIZE_BYTES, None)
    publisher = Publisher(PublisherSettings(url=broker_url, client_id="bench-backlog", topic_prefix=PREFIX),
                          outbox, lambda: {"state": "online", "buffer": outbox.stats()["records"]})
    await publisher.start()
    print(f"ready {outbox.stats()['records']}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    seq = 0
    period = 1.0 / live_rate if live_rate > 0 else None
    while not stdin_closed.done():
        if period is None:
            await asyncio.wait([stdin_closed], timeout=1.0)
            continue
        await outbox.put(f"{PREFIX}/telemetry/plc", payload(seq), Priority.TELEMETRY)
        seq += 1
        await asyncio.sleep(period)
    print(f"records {outbox.stats()['records']}", flush=True)
    await publisher.stop(5)
    await outbox.close()


# ---------------------------------------------------------------- the measuring side
def vm_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_probe(path: Path, broker_url: str, live_rate: float) -> tuple[subprocess.Popen[str], int]:
    """Start the probe process; wait for ``ready``; return it and the record count it reported."""
    proc = subprocess.Popen([sys.executable, __file__, "--probe", str(path), "--broker", broker_url,
                             "--live-rate", str(live_rate)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    t0 = time.monotonic()
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"probe did not start (said {line!r}, exit {proc.poll()})")
    print(f"    probe ready after {time.monotonic() - t0:.1f} s", flush=True)
    return proc, int(line.split()[1])


def stop_probe(proc: subprocess.Popen[str]) -> str:
    """Close the probe's stdin (its stop signal) and return what it printed last."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    out = proc.stdout.read()
    proc.wait(60)
    return out.strip()


def sample_rss(proc: subprocess.Popen[str], seconds: int) -> list[int]:
    """VmRSS (KiB) of ``proc`` once a second for ``seconds`` s (the first sample right away)."""
    samples = []
    t0 = time.monotonic()
    for k in range(seconds + 1):
        time.sleep(max(0.0, t0 + k - time.monotonic()))
        samples.append(vm_rss_kib(proc.pid))
    return samples


def rss_under_backlog(path: Path, seconds: int, live_rate: float) -> tuple[list[int], int, str]:
    """Samples of the probe's RSS (KiB) with the broker down, the records it found, and its last words."""
    down_url = f"mqtt://127.0.0.1:{free_port()}"
    with socket.socket() as s:  # nothing listens there: the publisher keeps retrying, nothing drains
        if s.connect_ex(("127.0.0.1", int(down_url.rsplit(":", 1)[1]))) == 0:
            raise RuntimeError(f"something listens on {down_url}; the broker must be down")
    proc, found = start_probe(path, down_url, live_rate)
    try:
        samples = sample_rss(proc, seconds)
    finally:
        last = stop_probe(proc)
    return samples, found, last


def describe(name: str, samples: list[int]) -> float:
    """Print a one-line summary of an RSS series (MiB); return its mean in MiB."""
    mib = [s / 1024 for s in samples]
    mean = sum(mib) / len(mib)
    half = len(mib) // 2
    print(f"  {name:<30} first {mib[0]:7.1f}  last {mib[-1]:7.1f}  min {min(mib):7.1f}  max {max(mib):7.1f}"
          f"  mean {mean:7.1f} MiB; growth last-first {mib[-1] - mib[0]:+6.1f} MiB, "
          f"second half minus first half {sum(mib[half:]) / len(mib[half:]) - sum(mib[:half]) / half:+6.2f} MiB")
    step = max(1, len(mib) // 40)  # at most ~40 values on the line
    shown = " ".join(f"{m:.1f}" for m in mib[::step])
    print(f"  {'':<30} samples (MiB{f', one in {step}' if step > 1 else ''}): {shown}")
    return mean


def replay(path: Path, broker: Mosquitto, n: int) -> None:
    """Drain the backlog into ``broker`` through the probe process; print records/s and its RSS."""
    proc, found = start_probe(path, broker.url, 0.0)
    t0 = time.perf_counter()
    samples = []
    try:
        while True:
            samples.append(vm_rss_kib(proc.pid))
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                left = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
            finally:
                conn.close()
            if left == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"probe exited with {proc.returncode} during the replay")
            time.sleep(1.0)
        dt = time.perf_counter() - t0
    finally:
        stop_probe(proc)
    print(f"  replayed {found} records to local Mosquitto, QoS 1, window 100: {found / dt:8.0f} records/s "
          f"({dt:.1f} s, from the probe's ready to an empty table, polled every 1 s)")
    describe("RSS during replay", samples)


def main() -> None:
    """Command line: the benchmark, or (``--probe``) the measured process."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="backlog size")
    ap.add_argument("--seconds", type=int, default=30, help="RSS sampling time per run (1 sample/s)")
    ap.add_argument("--live-rate", type=float, default=100.0, help="live records/s produced during sampling")
    ap.add_argument("--replay", action="store_true", help="also drain the backlog into a local Mosquitto")
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--broker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        asyncio.run(probe(args.probe, args.broker, args.live_rate))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    try:
        empty, full = work / "empty.sqlite", work / "backlog.sqlite"
        asyncio.run(create_schema(empty))
        asyncio.run(create_schema(full))
        fill_s = fill(full, args.records)
        asyncio.run(check_backlog(full, args.records))
        size_mb = sum(p.stat().st_size for p in work.glob("backlog.sqlite*")) / 1e6
        print(f"backlog: {args.records} records, ~{len(payload(0))}-byte payloads, {size_mb:.0f} MB on disk "
              f"(filled in {fill_s:.1f} s)")
        print(f"RSS of Outbox.open + Publisher, broker down, {args.live_rate:g} live records/s, "
              f"sampled every 1 s for {args.seconds} s")
        empty_samples, _, empty_last = rss_under_backlog(empty, args.seconds, args.live_rate)
        full_samples, found, full_last = rss_under_backlog(full, args.seconds, args.live_rate)
        if found != args.records:
            raise RuntimeError(f"probe found {found} records, expected {args.records}")
        empty_mean = describe("empty outbox", empty_samples)
        full_mean = describe(f"{args.records}-record backlog", full_samples)
        print(f"  difference of means (backlog - empty): {full_mean - empty_mean:+.1f} MiB; "
              f"probe said at stop: empty run '{empty_last}', backlog run '{full_last}'")
        if args.replay:
            broker = Mosquitto(work / "broker")
            broker.start()
            try:
                replay(full, broker, args.records)
            finally:
                broker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
