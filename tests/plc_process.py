"""The simulated Modbus PLC in its own process, for tests that need the agent and the PLC apart.

``python -m drivers.sim.modbus_server --port 0 ...`` binds a free loopback port and prints
``listening 127.0.0.1:PORT``; :func:`simulated_plc` starts it, yields that port and kills it afterwards.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def simulated_plc(*args: str) -> Iterator[int]:
    """Run the simulator with extra command-line ``args`` (e.g. ``"--synthetic", "200"``); yield its port."""
    proc = subprocess.Popen([sys.executable, "-m", "drivers.sim.modbus_server", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening "), f"simulator did not start: {line!r}"
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
