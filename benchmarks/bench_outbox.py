"""Outbox and publisher throughput against bare baselines with the same guarantees.

1. Durable enqueue (records/s): ``Outbox.put`` from many concurrent producers (group commit) and from one
   producer awaiting each put, against a bare ``sqlite3`` loop in WAL mode with ``synchronous=FULL`` that
   commits every record (the same per-record guarantee) and one that commits in batches of 1000 (the upper
   bound: no per-record guarantee at all).
2. Replay of a backlog to a local Mosquitto at QoS 1 (records/s): the publisher draining N stored records
   until every one is acknowledged and deleted, against a bare paho QoS 1 publisher sending the same N
   messages from memory until every PUBACK is in (same in-flight window, no storage, no deletes).

Run: ``.venv/bin/python benchmarks/bench_outbox.py [--records 100000] [--enqueue 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mqtt_support import Mosquitto, poll_until

from edge_agent.mqtt import PublisherSettings
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from edge_agent.records import Priority, encode_payload, make_envelope

PREFIX = "edge/bench/gw"
WINDOW = 100


def payload(i: int) -> bytes:
    """A ~200-byte summary-like record."""
    return encode_payload(make_envelope({"asset": "pump-1", "seq": i, "points": {
        "motor-plc/speed": {"count": 60, "min": 1490, "max": 1502, "mean": 1497.2, "unit": "rpm"}}}, "gw"))


async def bench_outbox_concurrent(path: Path, n: int, producers: int) -> float:
    ob = await Outbox.open(path, 10**10, None)
    body = payload(0)
    per = n // producers

    async def produce(k: int) -> None:
        for _ in range(per):
            await ob.put(f"{PREFIX}/summary/{k}", body, Priority.SUMMARY)

    t0 = time.perf_counter()
    await asyncio.gather(*(produce(k) for k in range(producers)))
    dt = time.perf_counter() - t0
    await ob.close()
    return per * producers / dt


async def bench_outbox_sequential(path: Path, n: int) -> float:
    ob = await Outbox.open(path, 10**10, None)
    body = payload(0)
    t0 = time.perf_counter()
    for _ in range(n):
        await ob.put(f"{PREFIX}/summary/x", body, Priority.SUMMARY)
    dt = time.perf_counter() - t0
    await ob.close()
    return n / dt


def bench_bare_sqlite(path: Path, n: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY AUTOINCREMENT, priority INT, topic TEXT, payload BLOB,"
                 " qos INT, retain INT, created_ms INT, size INT)")
    conn.execute("CREATE INDEX r_by_class ON r (priority, id)")
    body = payload(0)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        conn.execute("BEGIN")
        for _ in range(min(batch, n - start)):
            conn.execute("INSERT INTO r (priority, topic, payload, qos, retain, created_ms, size) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (1, f"{PREFIX}/summary/x", body, 1, 0, 0, 300))
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


async def bench_replay(path: Path, broker: Mosquitto, n: int) -> tuple[float, float]:
    """Returns (records/s over the whole drain, seconds)."""
    ob = await Outbox.open(path, 10**10, None)
    for start in range(0, n, 10_000):
        await ob.put_many([(f"{PREFIX}/summary/pump-1", payload(i), Priority.SUMMARY)
                           for i in range(start, min(n, start + 10_000))])
    assert ob.stats()["records"] == n
    pub = Publisher(PublisherSettings(url=broker.url, client_id="bench-gw", topic_prefix=PREFIX,
                                      max_inflight=WINDOW), ob, lambda: {"state": "online"})
    t0 = time.perf_counter()
    await pub.start()
    await poll_until(lambda: ob.stats()["records"] == 0, 3600, "backlog drained")
    dt = time.perf_counter() - t0
    await pub.stop(5)
    await ob.close()
    return n / dt, dt


def bench_bare_paho(broker: Mosquitto, n: int) -> tuple[float, float]:
    """A bare paho QoS 1 publisher keeping ``WINDOW`` messages in flight (the next one goes out from the
    PUBACK callback), so paho's 16-bit message ids never wrap over queued messages."""
    bodies = [payload(i) for i in range(n)]
    acked = 0
    sent = 0
    done = threading.Event()
    lock = threading.Lock()

    def send_next(c: paho.Client) -> None:
        nonlocal sent
        with lock:
            if sent >= n:
                return
            body = bodies[sent]
            sent += 1
        c.publish(f"{PREFIX}/summary/pump-1", body, qos=1)

    def on_publish(c: paho.Client, ud: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        acked += 1
        if acked >= n:
            done.set()
        send_next(c)

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_publish = on_publish
    client.max_inflight_messages_set(WINDOW)
    client.connect(broker.host, broker.port)
    client.loop_start()
    t0 = time.perf_counter()
    for _ in range(WINDOW):
        send_next(client)
    finished = done.wait(600)
    dt = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    if not finished:
        raise RuntimeError(f"bare paho: only {acked} of {n} PUBACKs in 600 s")
    return n / dt, dt


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="backlog size for the replay benchmark")
    ap.add_argument("--enqueue", type=int, default=20_000, help="records for the enqueue benchmark")
    ap.add_argument("--sequential", type=int, default=2_000, help="records for the one-producer benchmarks")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    try:
        print(f"durable enqueue, WAL + synchronous=FULL, ~{len(payload(0))}-byte payloads")
        conc = await bench_outbox_concurrent(work / "a.sqlite", args.enqueue, 100)
        seq = await bench_outbox_sequential(work / "b.sqlite", args.sequential)
        bare1 = await asyncio.to_thread(bench_bare_sqlite, work / "c.sqlite", args.sequential, 1)
        bare_batch = await asyncio.to_thread(bench_bare_sqlite, work / "d.sqlite", args.enqueue, 1000)
        print(f"  Outbox.put, 100 concurrent producers : {conc:10.0f} records/s")
        print(f"  Outbox.put, 1 producer awaiting each : {seq:10.0f} records/s")
        print(f"  bare sqlite3, commit per record      : {bare1:10.0f} records/s")
        print(f"  bare sqlite3, commit per 1000        : {bare_batch:10.0f} records/s (no per-record guarantee)")
        print(f"  ratio Outbox concurrent / bare per-record commit : {conc / bare1:6.2f}")
        print(f"  ratio Outbox 1 producer / bare per-record commit : {seq / bare1:6.2f}")
        print(f"  ratio Outbox concurrent / bare commit per 1000   : {conc / bare_batch:6.2f}")

        broker = Mosquitto(work / "broker")
        broker.start()
        try:
            print(f"replay of a {args.records}-record backlog to local Mosquitto, QoS 1, window {WINDOW}")
            ours, ours_s = await bench_replay(work / "e.sqlite", broker, args.records)
            bare, bare_s = await asyncio.to_thread(bench_bare_paho, broker, args.records)
        finally:
            broker.stop()
        print(f"  publisher from outbox (ack + delete) : {ours:10.0f} records/s ({ours_s:.1f} s)")
        print(f"  bare paho QoS 1 from memory          : {bare:10.0f} records/s ({bare_s:.1f} s)")
        print(f"  ratio publisher / bare paho          : {ours / bare:6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
