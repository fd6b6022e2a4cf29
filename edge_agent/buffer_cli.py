"""``edge-agent buffer stats|peek|export|purge``: look into the outbox file, export it, or empty it.

The commands open ``<data_dir>/outbox.sqlite`` directly. ``stats``, ``peek`` and ``export`` open it read-only
and are safe while the agent runs (WAL readers never block the writer). ``purge`` deletes records; while the
agent runs its in-memory counts stay stale until it restarts, so stop the agent first when you can.

Usage (``edge-agent`` delegates ``buffer`` to :func:`main`)::

    edge-agent buffer -c agent.yaml stats [--json]
    edge-agent buffer -c agent.yaml peek -n 5 --class alert
    edge-agent buffer --data-dir /var/lib/edge-agent export -o backlog.jsonl
    edge-agent buffer -c agent.yaml purge --class telemetry --older-than 86400 --yes
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from edge_agent.data_dir_lock import DataDirInUseError, DataDirLock
from edge_agent.records import Priority

OUTBOX_FILENAME = "outbox.sqlite"


def outbox_path(data_dir: Path) -> Path:
    """Where the agent keeps its outbox inside ``data_dir``."""
    return Path(data_dir) / OUTBOX_FILENAME


def _parse_class(name: str | None) -> Priority | None:
    if name is None:
        return None
    try:
        return Priority[name.upper()]
    except KeyError:
        raise ValueError(f"unknown class {name!r}; use one of "
                         f"{', '.join(p.name.lower() for p in Priority)}") from None


def _connect(data_dir: Path, write: bool = False) -> sqlite3.Connection:
    path = outbox_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no outbox at {path}: check agent.data_dir in the config "
                                "(the agent creates the file on its first start)")
    mode = "rw" if write else "ro"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=10.0)
    try:
        conn.execute("SELECT 1 FROM records LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(f"{path} is not a readable outbox: {exc}") from exc
    return conn


def buffer_stats(data_dir: Path) -> dict[str, Any]:
    """Records, bytes and oldest age (s) per class, and evictions counted since the file was created."""
    now_ms = time.time() * 1000
    conn = _connect(data_dir)
    try:
        depth = {p.name.lower(): {"records": 0, "bytes": 0, "oldest_age_s": None} for p in Priority}
        for prio, count, size, oldest in conn.execute(
                "SELECT priority, count(*), coalesce(sum(size), 0), min(created_ms) FROM records GROUP BY priority"):
            depth[Priority(prio).name.lower()] = {
                "records": count, "bytes": size, "oldest_age_s": round((now_ms - oldest) / 1000, 3)}
        evicted = {p.name.lower(): 0 for p in Priority}
        for name, value in conn.execute("SELECT name, value FROM counters WHERE name LIKE 'evicted.%'"):
            evicted[name.removeprefix("evicted.").lower()] = value
    finally:
        conn.close()
    return {
        "path": str(outbox_path(data_dir)),
        "records": sum(d["records"] for d in depth.values()),
        "bytes": sum(d["bytes"] for d in depth.values()),
        "by_class": depth,
        "evicted": evicted,
    }


def _rows(conn: sqlite3.Connection, cls: Priority | None, limit: int | None,
          exact: bool = False) -> Iterator[dict[str, Any]]:
    """Records in send order; ``exact``: every row also carries ``payload_base64`` (the stored bytes)."""
    where = "" if cls is None else f"WHERE priority = {int(cls)}"
    sql = ("SELECT id, priority, topic, payload, qos, retain, created_ms FROM records "
           f"{where} ORDER BY priority DESC, id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    for rid, prio, topic, payload, qos, retain, created_ms in conn.execute(sql):
        raw = bytes(payload)
        row: dict[str, Any] = {"id": rid, "class": Priority(prio).name.lower(), "topic": topic, "qos": qos,
                               "retain": bool(retain), "created_ms": created_ms}
        try:
            row["payload"] = json.loads(raw, parse_constant=str)  # NaN / Infinity stay text, JSON stays valid
        except (UnicodeDecodeError, ValueError):
            exact = True
        if exact:
            row["payload_base64"] = base64.b64encode(raw).decode("ascii")
        yield row


def buffer_peek(data_dir: Path, limit: int = 10, cls: str | None = None) -> list[dict[str, Any]]:
    """The next ``limit`` records in send order (alerts first, oldest first), payloads decoded."""
    if limit < 1:
        raise ValueError(f"limit={limit} must be >= 1")
    conn = _connect(data_dir)
    try:
        return list(_rows(conn, _parse_class(cls), limit))
    finally:
        conn.close()


def buffer_export(data_dir: Path, out: IO[str], cls: str | None = None) -> int:
    """Write every record as one JSON object per line (send order) to ``out``; returns the count.

    Each line carries the payload's exact bytes (``payload_base64``), so an export can be replayed as it
    was; ``payload`` is a decoded view, where the payload is JSON. ASCII-only lines: any text survives.
    """
    conn = _connect(data_dir)
    n = 0
    try:
        for row in _rows(conn, _parse_class(cls), None, exact=True):
            out.write(json.dumps(row, separators=(",", ":"), ensure_ascii=True, default=str) + "\n")
            n += 1
    finally:
        conn.close()
    return n


def buffer_purge(data_dir: Path, cls: str | None = None, older_than_s: float | None = None) -> int:
    """Delete records (all, one class, and/or older than ``older_than_s`` seconds); returns the count."""
    if older_than_s is not None and older_than_s < 0:
        raise ValueError(f"older_than_s={older_than_s} must be >= 0 seconds")
    clauses, params = [], []
    prio = _parse_class(cls)
    if prio is not None:
        clauses.append("priority = ?")
        params.append(int(prio))
    if older_than_s is not None:
        clauses.append("created_ms < ?")
        params.append(int(time.time() * 1000 - older_than_s * 1000))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    # Not under a running agent: its buffer accounting would go wrong (it would evict alerts to make room it
    # already has) and it would wait on this write's lock. The data directory's lock says who runs.
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirInUseError as exc:
        raise ValueError(f"{exc}; purge works on a stopped agent's buffer") from None
    try:
        conn = _connect(data_dir, write=True)
        try:
            with conn:
                cur = conn.execute(f"DELETE FROM records{where}", params)
            return cur.rowcount
        finally:
            conn.close()
    finally:
        lock.release()


def add_buffer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``stats | peek | export | purge`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="buffer_command", required=True)
    stats = sub.add_parser("stats", help="records, bytes, oldest age and evictions per class")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    peek = sub.add_parser("peek", help="show the next records in send order")
    peek.add_argument("-n", "--limit", type=int, default=10, help="how many records (default 10)")
    peek.add_argument("--class", dest="cls", help="only this class (alert, vibration, summary, ...)")
    export = sub.add_parser("export", help="write all records as JSON lines")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--class", dest="cls", help="only this class")
    purge = sub.add_parser("purge", help="delete buffered records (they will never be sent)")
    purge.add_argument("--class", dest="cls", help="only this class")
    purge.add_argument("--older-than", type=float, metavar="SECONDS", help="only records older than this")
    purge.add_argument("--yes", action="store_true", help="really delete")


def run_buffer_command(data_dir: Path, args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Run the parsed ``buffer`` sub-command; returns the process exit code (0 ok, 2 usage/data error)."""
    out = out or sys.stdout
    try:
        if args.buffer_command == "stats":
            stats = buffer_stats(data_dir)
            if args.json:
                out.write(json.dumps(stats, indent=2) + "\n")
            else:
                out.write(f"{stats['path']}: {stats['records']} records, {stats['bytes']} bytes\n")
                out.write(f"{'class':<10} {'records':>9} {'bytes':>12} {'oldest (s)':>12} {'evicted':>9}\n")
                for name, d in stats["by_class"].items():
                    age = "-" if d["oldest_age_s"] is None else f"{d['oldest_age_s']:.0f}"
                    out.write(f"{name:<10} {d['records']:>9} {d['bytes']:>12} {age:>12} "
                              f"{stats['evicted'][name]:>9}\n")
        elif args.buffer_command == "peek":
            for row in buffer_peek(data_dir, args.limit, args.cls):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif args.buffer_command == "export":
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    n = buffer_export(data_dir, f, args.cls)
                sys.stderr.write(f"exported {n} records to {args.output}\n")
            else:
                buffer_export(data_dir, out, args.cls)
        elif args.buffer_command == "purge":
            if not args.yes:
                sys.stderr.write("purge deletes records that will then never be sent; add --yes to proceed\n")
                return 2
            n = buffer_purge(data_dir, args.cls, args.older_than)
            out.write(f"purged {n} records\n")
        else:
            raise ValueError(f"unknown buffer command {args.buffer_command!r}")
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"edge-agent buffer: {exc}\n")
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-agent buffer`` argument parser."""
    parser = argparse.ArgumentParser(prog="edge-agent buffer", description="Inspect, export or empty the outbox.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-c", "--config", help="agent YAML config (its agent.data_dir holds the outbox)")
    where.add_argument("--data-dir", help="the agent's data directory, instead of a config")
    add_buffer_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``edge-agent buffer``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        from edge_agent.config.loader import load_config
        from edge_agent.errors import ConfigError

        try:
            data_dir = Path(load_config(args.config).agent.data_dir)
        except ConfigError as exc:
            sys.stderr.write(f"edge-agent buffer: invalid config:\n{exc}\n")
            return 2
        except OSError as exc:
            sys.stderr.write(f"edge-agent buffer: cannot read the config: {exc}\n")
            return 2
    return run_buffer_command(data_dir, args)
