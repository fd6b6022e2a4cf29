"""Raw telemetry end to end over real sockets: the agent against the floor, CPU per 1000 values delivered.

One run starts, each in its own process: the simulated PLC serving N synthetic holding registers
(``python -m drivers.sim.modbus_server --synthetic N``), a local Mosquitto on a free port, and a
subscriber that counts the values arriving on ``bench/#``. Then, one after the other, on the same PLC
and broker:

(a) **agent**: ``edge-agent run -c generated.yaml`` (one Modbus TCP device with the N points,
    ``publish_raw: true`` at QoS 1, summaries every 10 s, health endpoint on for ``/metrics``);
(b) **floor**: a bare loop (this file, ``--floor``) that reads the same 125-register blocks with
    pymodbus on the same drift-free grid and publishes one JSON message per cycle with paho at QoS 1
    (``{"cycle", "ts", "values": {point: first register of the point}}``, no decoding).

For each, after a warm-up, CPU seconds (user + system, from ``/proc/<pid>/stat`` of the process and
its children) are taken over a fixed window; values delivered are the values in the messages whose
cycle falls in the window, against N x the cycles in the window. Peak RSS is ``VmHWM``. Poll jitter
p99 is from the agent's ``edge_agent_poll_jitter_seconds`` histogram (bucket bound) and, for both,
the p99 of (message ``ts`` - ``cycle``): the tick-to-message latency, an upper bound of start jitter.

Run: ``.venv/bin/python benchmarks/bench_telemetry_e2e.py [--quick]``; ``--configs 2000x1 2000x0.1 10000x1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EDGE_AGENT = str(Path(PYTHON).parent / "edge-agent")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_REGISTERS = 125


# ----------------------------------------------------------------------------------------------- helpers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    """Poll until 127.0.0.1:``port`` accepts connections."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (threads included)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return total


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of ``pid`` in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return math.nan


def stop(proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def synthetic_points(n: int) -> list[dict[str, Any]]:
    """The simulator's synthetic map as config points (same names, addresses, types, scales)."""
    from drivers.sim.register_map import synthetic_register_map

    points = []
    for e in synthetic_register_map(n):
        point: dict[str, Any] = {"name": e.point.name, "address": e.point.address, "type": e.point.type}
        if e.point.byte_order != "ABCD":
            point["byte_order"] = e.point.byte_order
        if e.point.scale != 1.0:
            point["scale"] = e.point.scale
        points.append(point)
    return points


def blocks_of(points: list[dict[str, Any]]) -> list[tuple[int, int, list[tuple[str, int]]]]:
    """125-register blocks over back-to-back points: (address, count, [(point, offset in block)])."""
    from drivers.modbus.spec import TYPE_REGISTERS

    blocks: list[tuple[int, int, list[tuple[str, int]]]] = []
    start, members = -1, []  # type: ignore[var-annotated]
    end = 0
    for p in points:
        size = TYPE_REGISTERS[p["type"]]
        if start < 0 or p["address"] + size - start > MAX_REGISTERS or p["address"] != end:
            if start >= 0:
                blocks.append((start, end - start, members))
            start, members = p["address"], []
        members.append((p["name"], p["address"] - start))
        end = p["address"] + size
    blocks.append((start, end - start, members))
    return blocks


# ----------------------------------------------------------------------------------------------- subscriber
def run_subscriber(port: int, out_path: str) -> None:
    """Count what arrives on bench/# and agent telemetry; write (topic, cycle, ts, n values, recv) on SIGTERM."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    rows: list[tuple[str, int, int, int, float]] = []
    lock = threading.Lock()
    done = threading.Event()

    def on_connect(client: paho.Client, ud: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([("bench/#", 1)])

    def on_message(client: paho.Client, ud: Any, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if "values" not in body:
            return
        with lock:
            rows.append((msg.topic, int(body["cycle"]), int(body["ts"]), len(body["values"]), time.time()))

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    client.loop_start()
    print("subscribed", flush=True)
    done.wait()
    client.loop_stop()
    with lock, open(out_path, "w") as f:
        json.dump(rows, f)


def start_subscriber(port: int, out_path: Path) -> subprocess.Popen[str]:
    """The subscriber in its own process (it plays the cloud: its CPU is not counted)."""
    proc = subprocess.Popen([PYTHON, __file__, "--subscriber", str(port), str(out_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "subscribed":
        raise RuntimeError("subscriber did not start")
    time.sleep(0.5)  # let the SUBACK land
    return proc


# ----------------------------------------------------------------------------------------------- floor
async def floor_loop(plc_port: int, broker_port: int, n_points: int, period_s: float) -> None:
    """The floor: bare pymodbus reads of the 125-register blocks, one JSON message per cycle with paho."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from pymodbus.client import AsyncModbusTcpClient

    blocks = blocks_of(synthetic_points(n_points))
    client = AsyncModbusTcpClient("127.0.0.1", port=plc_port, timeout=5, retries=0, reconnect_delay=0)
    await client.connect()
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-floor-{os.getpid()}")
    mqtt.max_queued_messages_set(0)
    mqtt.connect("127.0.0.1", broker_port)
    mqtt.loop_start()
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop_event.set)
    first_due = (math.floor(time.time() / period_s) + 1) * period_s
    origin = loop.time() + (first_due - time.time())
    k = 0
    print("floor running", flush=True)
    while not stop_event.is_set():
        due = origin + k * period_s
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        values: dict[str, int] = {}
        for address, count, members in blocks:
            response = await client.read_holding_registers(address, count=count, device_id=1)
            registers = response.registers
            for name, offset in members:
                values[name] = registers[offset]
        body = {"cycle": round((first_due + k * period_s) * 1000), "ts": int(time.time() * 1000), "values": values}
        mqtt.publish("bench/floor", json.dumps(body, separators=(",", ":")), qos=1)
        k = max(k + 1, math.floor((loop.time() - origin) / period_s) + 1)  # skip missed ticks, never queue
    mqtt.loop_stop()
    mqtt.disconnect()
    client.close()


# ----------------------------------------------------------------------------------------------- agent
#: ``--experiment`` hooks, injected into the agent process with a ``sitecustomize`` module. They preview
#: changes proposed for files outside this benchmark; a run with them is labelled, never the headline.
EXPERIMENTS = {
    # gc.freeze() once the agent runs: start-up objects leave the collector's generations (proposed for
    # edge_agent/runtime.py after agent.start()).
    "gc-freeze": "import gc, threading\n"
                 "t = threading.Timer(4.0, lambda: (gc.collect(), gc.freeze()))\n"
                 "t.daemon = True\nt.start()\n",
    # scipy not loaded (proposed: diagnostics/trend.py without scipy.stats, vibration imports made lazy).
    # A stub stands in for scipy; a Modbus-only agent never calls it.
    "no-scipy": "import sys, types\n"
                "class _Stub(types.ModuleType):\n"
                "    __path__ = []\n"
                "    def __getattr__(self, name):\n"
                "        if name.startswith('__'):\n"
                "            raise AttributeError(name)\n"
                "        return lambda *a, **k: None\n"
                "for _name in ('scipy', 'scipy.stats', 'scipy.signal', 'scipy.fft', 'scipy.integrate',\n"
                "              'scipy.ndimage', 'scipy.interpolate', 'scipy.optimize', 'scipy.special'):\n"
                "    sys.modules[_name] = _Stub(_name)\n",
    # glibc malloc with a fixed mmap threshold (128 KiB): every allocation above it gets its own mapping,
    # returned on free, instead of the dynamic threshold that grows after the first large free and then
    # serves large transients (JSON texts, summary parts) from the heap, whose free space stays resident.
    "mmap-128k": "import ctypes\n"
                 "ctypes.CDLL('libc.so.6').mallopt(-3, 128 * 1024)\n",
}


def agent_yaml(work: Path, plc_port: int, broker_port: int, health_port: int, n_points: int,
               period_s: float) -> Path:
    """The generated agent config: one device with the N points, raw telemetry on, summaries on."""
    import yaml

    cfg = {
        "agent": {"id": "bench", "site": "bench", "data_dir": str(work / "agent-data")},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "topic_prefix": "bench/agent"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": plc_port,
                     "poll_interval": period_s, "timeout": "5s", "publish_raw": True, "raw_qos": 1,
                     "points": synthetic_points(n_points)}],
        "summaries": {"interval": "10s"},
        "service": {"health": {"enabled": True, "port": health_port}, "log_level": "warning"},
    }
    path = work / "generated.yaml"
    # one point per line in flow style: 10 000 points stay under the loader's 1 MB file limit
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=200))
    return path


def scrape(port: int) -> dict[str, float]:
    """The agent's /metrics as {series: value} (only the lines the benchmark reads)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("edge_agent_poll_jitter_seconds_bucket", "edge_agent_poll_requests_per_cycle",
                            "edge_agent_poll_cycles_total", "edge_agent_poll_cycles_skipped")):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def histogram_p99(before: dict[str, float], after: dict[str, float]) -> float:
    """Upper bucket bound (s) under which 99 % of the window's poll jitter observations fall."""
    buckets = []
    for key, value in after.items():
        if key.startswith("edge_agent_poll_jitter_seconds_bucket"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound
    return math.nan


# ----------------------------------------------------------------------------------------------- measuring
@dataclass
class Result:
    """One measured run."""

    who: str
    n_points: int
    period_s: float
    window_s: float
    cpu_s: float
    delivered: int
    expected: int
    peak_rss_mb: float
    requests_per_cycle: float
    latency_p99_ms: float
    jitter_p99_ms: float = math.nan
    skipped: float = 0.0  # poll ticks in the window without a message
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds per 1000 values delivered."""
        return self.cpu_s / max(1, self.delivered) * 1000

    @property
    def core_pct(self) -> float:
        """Share of one core over the window (%)."""
        return 100 * self.cpu_s / self.window_s


def window_rows(rows: list[list[Any]], topic: str, t0: float, t1: float) -> list[list[Any]]:
    """Messages on ``topic`` whose cycle (epoch ms) is in [t0, t1) (epoch s)."""
    return [r for r in rows if r[0] == topic and t0 * 1000 <= r[1] < t1 * 1000]


def measure(who: str, proc: subprocess.Popen[Any], sub_rows: Any, topic: str, n_points: int, period_s: float,
            warmup_s: float, window_s: float, health_port: int | None) -> Result:
    """Warm up, then take CPU and deliveries over ``window_s``; ``sub_rows()`` returns the subscriber's rows."""
    time.sleep(warmup_s)
    if proc.poll() is not None:
        raise RuntimeError(f"{who} exited with {proc.returncode} during warm-up")
    before = scrape(health_port) if health_port else {}
    # Align the window on the poll grid so it holds a whole number of ticks.
    now = time.time()
    t0 = (math.floor(now / period_s) + 1) * period_s
    time.sleep(max(0.0, t0 - time.time()) + 0.001)
    cpu0 = cpu_seconds(proc.pid)
    time.sleep(window_s)
    cpu1 = cpu_seconds(proc.pid)
    t1 = t0 + window_s
    after = scrape(health_port) if health_port else {}
    rss = peak_rss_mb(proc.pid)
    time.sleep(max(3.0, 5 * period_s))  # let the last window messages arrive
    return Result(who, n_points, period_s, window_s, cpu1 - cpu0, 0, 0, rss, math.nan, math.nan,
                  notes=[json.dumps({"t0": t0, "t1": t1, "before": before, "after": after})])


def finish(result: Result, rows: list[list[Any]], topic: str, requests_per_cycle: float) -> Result:
    """Fill deliveries and latency from the subscriber's rows."""
    info = json.loads(result.notes.pop())
    t0, t1 = info["t0"], info["t1"]
    got = window_rows(rows, topic, t0, t1)
    ticks = round((t1 - t0) / result.period_s)
    result.delivered = sum(r[3] for r in got)
    result.skipped = ticks - len({r[1] for r in got})  # ticks with no message: skipped or lost
    result.expected = ticks * result.n_points
    latencies = sorted(r[2] - r[1] for r in got)
    result.latency_p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else math.nan
    before, after = info["before"], info["after"]
    if after:
        result.jitter_p99_ms = histogram_p99(before, after) * 1000
        result.requests_per_cycle = next((v for k, v in after.items()
                                          if k.startswith("edge_agent_poll_requests_per_cycle")), math.nan)
    else:
        result.requests_per_cycle = requests_per_cycle
    return result


def run_config(n_points: int, period_s: float, warmup_s: float, window_s: float,
               experiments: tuple[str, ...] = ()) -> list[Result]:
    """Measure the agent and the floor for one configuration on a fresh PLC and broker."""
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    procs: list[subprocess.Popen[Any]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    agent_env = dict(env)
    if experiments:
        hooks = work / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text("".join(EXPERIMENTS[e] for e in experiments))
        agent_env["PYTHONPATH"] = f"{hooks}{os.pathsep}{ROOT}"
    try:
        plc = subprocess.Popen([PYTHON, "-m", "drivers.sim.modbus_server", "--port", "0", "--synthetic",
                                str(n_points), "--update-interval", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
        procs.append(plc)
        assert plc.stdout is not None
        line = plc.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError(f"simulator did not start: {line!r}")
        plc_port = int(line.rsplit(":", 1)[1])
        broker_port = free_port()
        (work / "mosquitto.conf").write_text(
            f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 100\nlog_dest none\n"
            + ("user root\n" if os.geteuid() == 0 else ""))
        broker = subprocess.Popen([MOSQUITTO, "-c", str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(broker)
        wait_port(broker_port)
        rows_path = work / "rows.json"
        sub = start_subscriber(broker_port, rows_path)
        procs.append(sub)
        blocks = blocks_of(synthetic_points(n_points))

        results: list[Result] = []
        health_port = free_port()
        cfg_path = agent_yaml(work, plc_port, broker_port, health_port, n_points, period_s)
        agent_log = (work / "agent.log").open("wb")
        agent = subprocess.Popen([EDGE_AGENT, "run", "-c", str(cfg_path)], stdout=agent_log,
                                 stderr=subprocess.STDOUT, cwd=work, env=agent_env)
        procs.append(agent)
        try:
            wait_port(health_port, 60.0)
        except TimeoutError:
            agent_log.close()
            raise RuntimeError("the agent did not open its health endpoint; its log:\n"
                               + (work / "agent.log").read_text(errors="replace")[-4000:]) from None
        who = "agent" + "".join(f"+{e}" for e in experiments)
        results.append(measure(who, agent, None, "bench/agent/telemetry/plc", n_points, period_s,
                               warmup_s, window_s, health_port))
        stop(agent)
        agent_log.close()

        floor = subprocess.Popen([PYTHON, __file__, "--floor", str(plc_port), str(broker_port), str(n_points),
                                  str(period_s)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        procs.append(floor)
        assert floor.stdout is not None
        floor.stdout.readline()
        results.append(measure("floor", floor, None, "bench/floor", n_points, period_s, warmup_s, window_s, None))
        stop(floor)

        stop(sub)
        rows = json.loads(rows_path.read_text())
        finish(results[0], rows, "bench/agent/telemetry/plc", math.nan)
        results[0].who = who
        finish(results[1], rows, "bench/floor", len(blocks))
        return results
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[Result]) -> None:
    """One row per measured run, then the agent/floor ratio per configuration."""
    print(f"{'config':>14} {'who':>24} | {'CPU s/1000 values':>17} {'core %':>7} | {'delivered':>17} "
          f"{'%':>6} | {'peak RSS MB':>11} | {'req/cycle':>9} | {'jitter p99 ms':>13} {'tick->msg p99 ms':>16} "
          f"{'missing ticks':>13}")
    for r in results:
        cfg = f"{r.n_points} x {r.period_s:g}s"
        jitter = "-" if math.isnan(r.jitter_p99_ms) else f"<= {r.jitter_p99_ms:g}"
        print(f"{cfg:>14} {r.who:>24} | {r.cpu_per_1000:17.4f} {r.core_pct:7.1f} | "
              f"{r.delivered:>8}/{r.expected:<8} {100 * r.delivered / max(1, r.expected):6.1f} | "
              f"{r.peak_rss_mb:11.1f} | {r.requests_per_cycle:9.0f} | {jitter:>13} {r.latency_p99_ms:16.0f} "
              f"{r.skipped:13.0f}")
    print()
    by_cfg: dict[tuple[int, float], dict[str, Result]] = {}
    for r in results:
        by_cfg.setdefault((r.n_points, r.period_s), {})["agent" if r.who.startswith("agent") else r.who] = r
    for (n, period), pair in by_cfg.items():
        if {"agent", "floor"} <= pair.keys():
            ratio = pair["agent"].cpu_per_1000 / pair["floor"].cpu_per_1000
            print(f"{n} points x {period:g} s: agent / floor CPU per 1000 values = {ratio:.2f}x (target <= 5x)")


def main() -> None:
    """Parse the command line; run the benchmark (or one of its helper processes)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        run_subscriber(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        asyncio.run(floor_loop(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short warm-up and window (smoke run)")
    parser.add_argument("--configs", nargs="+", default=["2000x1", "2000x0.1", "10000x1"],
                        help="POINTSxPERIOD_S, e.g. 2000x0.1")
    parser.add_argument("--window", type=float, default=None, help="measurement window, s")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up, s")
    parser.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                        help="preview a proposed change in the agent process (labelled in the table)")
    args = parser.parse_args()
    window = args.window or (8.0 if args.quick else 30.0)
    warmup = args.warmup or (4.0 if args.quick else 8.0)
    print("Raw telemetry end to end: agent (edge-agent run, publish_raw true, summaries on) vs the floor "
          "(bare pymodbus + paho, one JSON message per cycle)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, warm-up {warmup:g} s, window {window:g} s; "
          "CPU = user+system of the process tree from /proc; PLC, broker, subscriber not counted")
    results: list[Result] = []
    for spec in args.configs:
        n, period = spec.split("x")
        try:
            results.extend(run_config(int(n), float(period), warmup, window, tuple(args.experiment)))
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"{spec}: FAILED: {exc}", flush=True)
    print_table(results)
    agent_rows = [r for r in results if r.who.startswith("agent")]
    if agent_rows:
        worst = max(r.peak_rss_mb for r in agent_rows)
        print(f"agent peak RSS (worst config): {worst:.1f} MB (target < 60 MB)")


if __name__ == "__main__":
    main()
