"""A real process under a stand-in for systemd's service manager: notify socket, watchdog, SIGABRT.

The child runs the agent's service plumbing the way the agent does (setup_logging, start_watchdog, READY=1)
and then either stops cleanly or blocks its event loop in a "stuck driver call". The test plays systemd:
it reads the notify datagrams (with the sender's credentials, as NotifyAccess=main does), and when the
pings stop it sends the unit's WatchdogSignal=SIGABRT. The fault handler that setup_logging enables then
writes the stuck call's traceback to stderr, which is what lands in the journal.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0
WATCHDOG_S = 1.0

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from edge_agent.logging_setup import setup_logging
    from edge_agent.sdnotify import default_notifier, start_watchdog

    def stuck_driver_call():
        print("stalling", flush=True)
        time.sleep(3600)

    async def main():
        setup_logging()
        watchdog = start_watchdog()
        notifier = default_notifier()
        notifier.ready("running: test child")
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() == "stall":
            stuck_driver_call()
        notifier.stopping("stopping: test child")
        await watchdog.stop()

    asyncio.run(main())
    """
)


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    directory = tempfile.mkdtemp(prefix="sdw-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory)


def receive(sock: socket.socket, timeout_s: float) -> tuple[str, int] | None:
    """One datagram and its sender PID, or None after ``timeout_s``."""
    sock.settimeout(timeout_s)
    try:
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    except (TimeoutError, BlockingIOError):
        return None
    pid = next(struct.unpack("3i", d[:12])[0] for level, kind, d in ancillary
               if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
    return data.decode(), pid


def wait_for(sock: socket.socket, child: subprocess.Popen[str], wanted: str, count: int = 1) -> None:
    """Read datagrams until ``wanted`` was seen ``count`` times, each from the child's PID."""
    deadline = time.monotonic() + TIMEOUT_S
    seen = 0
    while seen < count:
        left = deadline - time.monotonic()
        got = receive(sock, max(left, 0.01))
        if got is None:
            pytest.fail(f"no {wanted!r} within {TIMEOUT_S} s (child exit code {child.poll()})")
        message, pid = got
        assert pid == child.pid, "a datagram from another process: systemd's NotifyAccess=main would drop it"
        seen += wanted in message.split("\n")


@pytest.fixture
def child(notify_socket: tuple[socket.socket, str]) -> Iterator[subprocess.Popen[str]]:
    _, path = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
           "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT_S)


def test_healthy_child_pings_and_stops_cleanly(notify_socket: tuple[socket.socket, str],
                                               child: subprocess.Popen[str]) -> None:
    sock, _ = notify_socket
    wait_for(sock, child, "READY=1")
    wait_for(sock, child, "WATCHDOG=1", count=3)
    assert child.stdin is not None
    child.stdin.write("stop\n")
    child.stdin.flush()
    wait_for(sock, child, "STOPPING=1")
    assert child.wait(timeout=TIMEOUT_S) == 0


def test_stalled_loop_stops_pinging_and_watchdog_signal_dumps_the_stuck_call(
        notify_socket: tuple[socket.socket, str], child: subprocess.Popen[str]) -> None:
    sock, _ = notify_socket
    wait_for(sock, child, "READY=1")
    wait_for(sock, child, "WATCHDOG=1", count=3)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("stall\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "stalling"  # the loop is blocked from here on
    while receive(sock, 0.0) is not None:  # pings sent before the stall
        pass
    # systemd would give up after WatchdogSec without a ping; wait twice that to be sure none comes
    assert receive(sock, 2 * WATCHDOG_S) is None, "the stalled process kept pinging the watchdog"
    child.send_signal(signal.SIGABRT)  # WatchdogSignal=SIGABRT
    assert child.wait(timeout=TIMEOUT_S) == -signal.SIGABRT
    _, stderr = child.communicate(timeout=TIMEOUT_S)
    assert "Fatal Python error: Aborted" in stderr
    assert "in stuck_driver_call" in stderr
