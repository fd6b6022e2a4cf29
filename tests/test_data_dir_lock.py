"""One agent per data directory: a second `edge-agent run` on the same data dir is refused with a clear
message and writes nothing there; the lock goes with the process, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_config_text
from edge_agent.data_dir_lock import LOCK_NAME, DataDirInUseError, DataDirLock

ROOT = Path(__file__).resolve().parent.parent
EDGE_AGENT = [sys.executable, "-c", "import sys; from edge_agent.cli import main; sys.exit(main())"]

try:
    from tests.mqtt_support import free_port
except ImportError:
    from mqtt_support import free_port  # type: ignore[no-redef]


def test_second_lock_is_refused_with_the_holders_pid_until_released(tmp_path: Path) -> None:
    first, second = DataDirLock(tmp_path), DataDirLock(tmp_path)
    first.acquire()
    assert first.held and (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirInUseError, match=rf"in use by another edge-agent \(pid {os.getpid()}\).*data_dir"):
        second.acquire()
    assert not second.held
    first.release()
    second.acquire()
    assert second.held
    second.release()
    assert (tmp_path / LOCK_NAME).exists()  # kept: removing it would race with the next agent


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from edge_agent.data_dir_lock import "
         "DataDirLock; lock = DataDirLock(Path(sys.argv[1])); lock.acquire(); print('locked', flush=True); "
         "time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirInUseError, match=f"pid {holder.pid}"):
            DataDirLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        lock = DataDirLock(tmp_path)
        lock.acquire()  # the kernel dropped the dead process's lock
        lock.release()
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.integration
def test_a_second_agent_on_the_same_data_dir_exits_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"agent: {{id: gw-1, site: plant, data_dir: {data}}}\n"
        f"mqtt: {{url: 'mqtt://127.0.0.1:{free_port()}'}}\n"  # no broker: the agent buffers, that is fine here
        f"devices:\n- {{name: plc, protocol: modbus_tcp, host: 127.0.0.1, port: {free_port()}, "
        "points: [{name: speed, address: 0}]}\n")
    first = subprocess.Popen([*EDGE_AGENT, "run", "-c", str(config), "--duration", "60"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (data / "outbox.sqlite").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[1]

        second = subprocess.run([*EDGE_AGENT, "run", "-c", str(config), "--duration", "60"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)

        assert second.returncode == 1, second.stderr
        assert f"data directory {data} is in use by another edge-agent (pid {first.pid})" in second.stderr
        assert "systemctl stop edge-agent" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None, "the running agent was disturbed"
        assert (data / LOCK_NAME).read_text().strip() == str(first.pid)
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err


async def test_an_agent_refused_its_data_dir_stops_without_writing_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = load_config_text(
        f"agent: {{id: gw-2, site: plant, data_dir: {data}}}\n"
        f"mqtt: {{url: 'mqtt://127.0.0.1:{free_port()}'}}\n"
        f"devices:\n- {{name: plc, protocol: modbus_tcp, host: 127.0.0.1, port: {free_port()}, "
        "points: [{name: speed, address: 0}]}\n"
        "rules:\n- {name: hot, kind: threshold, point: plc/speed, high: 10}\n")
    holder = DataDirLock(data)
    holder.acquire()
    try:
        agent = Agent(cfg)
        with pytest.raises(DataDirInUseError):
            await agent.start()
        await agent.stop()
        assert sorted(p.name for p in data.iterdir()) == [LOCK_NAME]  # no outbox, no alarm state
    finally:
        holder.release()
