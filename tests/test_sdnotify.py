"""sd_notify over a real Unix datagram socket: payloads, abstract names, sender PID, the loop-health watchdog."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent import sdnotify
from edge_agent.sdnotify import (
    MAX_STATUS_CHARS,
    Notifier,
    Watchdog,
    WatchdogDecision,
    notify_socket_address,
    status_line,
    watchdog_interval_s,
)

TIMEOUT_S = 20.0
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a short filesystem path (sun_path is limited to 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(TIMEOUT_S)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory)


def drain(sock: socket.socket) -> list[str]:
    """Every datagram waiting in ``sock`` right now."""
    got: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(TIMEOUT_S)
    return got


def collect(sock: socket.socket, into: list[str]) -> list[str]:
    """Append the waiting datagrams to ``into`` and return it."""
    into.extend(drain(sock))
    return into


async def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition()`` until true, failing after a generous timeout."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT_S} s waiting for {what}")
        await asyncio.sleep(0.02)


def test_socket_address_from_env() -> None:
    assert notify_socket_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_socket_address({"NOTIFY_SOCKET": "@abstract/name"}) == "\0abstract/name"
    assert notify_socket_address({}) is None
    assert notify_socket_address({"NOTIFY_SOCKET": ""}) is None
    assert notify_socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_watchdog_interval_from_env() -> None:
    pid = os.getpid()
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(pid)}) == 2.5
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert watchdog_interval_s({}) is None
    with pytest.raises(ValueError, match="WATCHDOG_USEC='soon'"):
        watchdog_interval_s({"WATCHDOG_USEC": "soon"})
    with pytest.raises(ValueError, match="WATCHDOG_USEC='0'"):
        watchdog_interval_s({"WATCHDOG_USEC": "0"})
    with pytest.raises(ValueError, match="WATCHDOG_PID='me'"):
        watchdog_interval_s({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "me"})


def test_status_line_is_one_bounded_line() -> None:
    assert status_line("polling 3 devices\n  outbox 12 records") == "STATUS=polling 3 devices outbox 12 records"
    long = status_line("x" * 1000)
    assert len(long) == len("STATUS=") + MAX_STATUS_CHARS
    assert long.endswith("…")


def test_describe_status_reads_like_a_sentence() -> None:
    assert sdnotify.describe_status(devices_up=3, devices_total=4, broker_connected=True, outbox_records=1) == (
        "3/4 devices up, broker connected, outbox 1 record")
    assert sdnotify.describe_status(devices_up=0, devices_total=1, broker_connected=False, outbox_records=1200,
                                    alarms_active=2) == (
        "0/1 devices up, broker unreachable, outbox 1200 records, 2 alarms active")


def test_ready_status_stopping_datagrams(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    try:
        assert notifier.ready("running: 2 devices, broker connected")
        assert notifier.status("outbox 12 records")
        assert notifier.watchdog()
        assert notifier.reloading()
        assert notifier.stopping("stopping: flushing outbox")
    finally:
        notifier.close()
    got = [sock.recv(4096).decode() for _ in range(5)]
    reloading, stamp = got[3].split("\n")
    assert reloading == "RELOADING=1"
    assert 0 <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000 - int(stamp.removeprefix("MONOTONIC_USEC=")) < 600e6
    assert got[:3] + got[4:] == [
        "READY=1\nSTATUS=running: 2 devices, broker connected",
        "STATUS=outbox 12 records",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping: flushing outbox",
    ]
    assert notifier.sent == 5


def test_abstract_namespace_socket() -> None:
    name = f"edge-agent-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(TIMEOUT_S)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        try:
            assert notifier.send("READY=1", "STATUS=abstract ok")
        finally:
            notifier.close()
        assert sock.recv(4096) == b"READY=1\nSTATUS=abstract ok"


def test_module_notify_uses_environment(receiver: tuple[socket.socket, str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdnotify, "_default", None)
    try:
        assert sdnotify.notify("STATUS=from module")
    finally:
        sdnotify.default_notifier().close()
    assert sock.recv(4096) == b"STATUS=from module"


def test_without_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert notifier.sent == 0


def test_bad_assignment_is_rejected(receiver: tuple[socket.socket, str]) -> None:
    _, path = receiver
    notifier = Notifier(path)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        notifier.send("READY")
    notifier.close()


def test_missing_socket_is_logged_once_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier("/tmp/edge-agent-no-such-dir/notify")
    assert not notifier.ready()
    assert not notifier.watchdog()
    notifier.close()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


def test_datagram_carries_the_sender_pid(receiver: tuple[socket.socket, str]) -> None:
    """systemd's NotifyAccess=main accepts a datagram only from the main PID, read from SCM_CREDENTIALS."""
    sock, path = receiver
    child = subprocess.Popen(
        [sys.executable, "-c", "from edge_agent.sdnotify import notify; notify('READY=1')"],
        env={**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": str(REPO)},
    )
    try:
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    finally:
        assert child.wait(timeout=TIMEOUT_S) == 0
    assert data == b"READY=1"
    creds = [d for level, kind, d in ancillary if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    assert creds, "no SCM_CREDENTIALS received"
    sender_pid, _, _ = struct.unpack("3i", creds[0][: struct.calcsize("3i")])
    assert sender_pid == child.pid


async def test_watchdog_pings_at_half_interval_while_healthy(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    lags: list[float] = []
    watchdog = Watchdog(Notifier(path), interval_s=0.4, max_lag_s=5.0, on_lag=lags.append)
    assert watchdog.ping_every_s == 0.2
    watchdog.start()
    received: list[str] = []
    try:
        await wait_until(lambda: collect(sock, received).count("WATCHDOG=1") >= 3,
                         "three WATCHDOG=1 pings")
    finally:
        await watchdog.stop()
        watchdog.notifier.close()
    assert set(received) == {"WATCHDOG=1"}
    assert lags and all(lag >= 0 for lag in lags)


async def test_stalled_loop_withholds_the_ping_then_recovers(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    decisions: list[WatchdogDecision] = []
    watchdog = Watchdog(Notifier(path), interval_s=1.0, max_lag_s=0.5, on_decision=decisions.append)
    watchdog.start()
    try:
        await wait_until(lambda: any(d.pinged for d in decisions), "a first ping")
        drain(sock)
        seen = len(decisions)
        time.sleep(2.0)  # noqa: ASYNC251 - deliberately block the event loop, as a stuck driver call would
        await wait_until(lambda: len(decisions) > seen, "the decision after the stall")
        after_stall = decisions[seen]
        assert not after_stall.pinged
        assert after_stall.max_lag_s >= 1.0
        assert "stalled" in after_stall.reason
        assert "WATCHDOG=1" not in drain(sock)
        await wait_until(lambda: any(d.pinged for d in decisions[seen + 1:]), "pings to resume")
        assert "WATCHDOG=1" in drain(sock)
        assert watchdog.withheld >= 1
    finally:
        await watchdog.stop()
        watchdog.notifier.close()


async def test_failing_health_check_withholds_the_ping(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    decisions: list[WatchdogDecision] = []
    state = ["sick"]

    def is_healthy() -> bool:
        if state[0] == "broken":
            raise RuntimeError("scheduler gone")
        return state[0] == "ok"

    watchdog = Watchdog(Notifier(path), interval_s=0.4, max_lag_s=5.0, is_healthy=is_healthy,
                        on_decision=decisions.append)
    watchdog.start()
    try:
        await wait_until(lambda: len(decisions) >= 2, "two decisions")
        assert not any(d.pinged for d in decisions)
        assert decisions[0].reason == "agent health check failed"
        assert drain(sock) == []
        state[0] = "broken"
        seen = len(decisions)
        await wait_until(lambda: len(decisions) > seen + 1, "decisions with a raising check")
        assert "scheduler gone" in decisions[-1].reason
        state[0] = "ok"
        await wait_until(lambda: any(d.pinged for d in decisions), "a ping once healthy")
        assert "WATCHDOG=1" in drain(sock)
    finally:
        await watchdog.stop()
        watchdog.notifier.close()


async def test_without_watchdog_interval_only_lag_is_measured(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    lags: list[float] = []
    watchdog = Watchdog(Notifier(path), interval_s=None, probe_s=0.05, on_lag=lags.append)
    assert not watchdog.pinging
    watchdog.start()
    try:
        await wait_until(lambda: len(lags) >= 3, "three lag probes")
    finally:
        await watchdog.stop()
        watchdog.notifier.close()
    assert drain(sock) == []


async def test_start_watchdog_reads_systemd_environment(receiver: tuple[socket.socket, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = receiver
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier(path)
    watchdog = sdnotify.start_watchdog(notifier=notifier)
    try:
        assert watchdog.interval_s == 0.4
        received: list[str] = []
        await wait_until(lambda: collect(sock, received), "the first ping")
        assert received[0] == "WATCHDOG=1"
    finally:
        await watchdog.stop()
        notifier.close()


def test_bad_watchdog_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="interval_s=0"):
        Watchdog(Notifier(None), interval_s=0)
    with pytest.raises(ValueError, match="probe_s=-1"):
        Watchdog(Notifier(None), interval_s=1.0, probe_s=-1)
    with pytest.raises(ValueError, match="max_lag_s=0"):
        Watchdog(Notifier(None), interval_s=1.0, max_lag_s=0)
