"""One agent per data directory: a second `edge-agent run` on the same data dir is refused with a clear
message and writes nothing there; the lock goes with the process, however it dies."""

from __future__ import annotations

import os
import shutil
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


AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_setpriv = pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None,
                                   reason="needs root and setpriv to act as a group member without write access")
TRY_LOCK = ("import sys; from pathlib import Path; from edge_agent.data_dir_lock import DataDirLock, "
            "DataDirInUseError\ntry:\n    DataDirLock(Path(sys.argv[1])).acquire()\nexcept DataDirInUseError as exc:\n"
            "    print(exc)\nelse:\n    print('acquired')")


def service_owned(tmp_path: Path) -> Path:
    """A data dir and its lock file as the unit leaves them: owner the service user, group readable, not
    writable."""
    data = tmp_path / "data"
    data.mkdir()
    (data / LOCK_NAME).touch()
    for path, mode in ((data, 0o750), (data / LOCK_NAME, 0o640)):
        os.chown(path, 12345, 0)
        os.chmod(path, mode)
    return data


def try_lock_as_group_member(data: Path) -> str:
    """DataDirLock.acquire() as a member of the data dir's group (root without its file-permission overrides)."""
    result = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
         sys.executable, "-c", TRY_LOCK, str(data)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@needs_setpriv
def test_a_user_who_may_only_read_the_lock_still_learns_who_holds_it(tmp_path: Path) -> None:
    data = service_owned(tmp_path)
    holder = DataDirLock(data)
    holder.acquire()  # root's open descriptor stays writable whatever the mode
    try:
        message = try_lock_as_group_member(data)
    finally:
        holder.release()
    assert message.startswith(f"data directory {data} is in use by another edge-agent (pid {os.getpid()})")


@needs_setpriv
def test_a_user_who_may_not_write_the_lock_is_told_to_run_as_the_service_user(tmp_path: Path) -> None:
    data = service_owned(tmp_path)
    message = try_lock_as_group_member(data)
    assert message.startswith(f"cannot take the lock {data / LOCK_NAME}: Permission denied")
    assert "sudo -u edge-agent" in message
    os.chmod(data, 0o700)  # not even readable: the same message, not a traceback
    assert try_lock_as_group_member(data).startswith(f"cannot take the lock {data / LOCK_NAME}: Permission denied")


def test_the_demo_on_a_held_data_directory_is_refused_with_the_same_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"agent: {{id: gw-1, site: plant, data_dir: {data}}}\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\n"
                   "devices:\n- {name: plc, protocol: modbus_tcp, host: 127.0.0.1, port: 1, "
                   "points: [{name: speed, address: 0}]}\n")
    holder = DataDirLock(data)
    holder.acquire()
    try:
        result = subprocess.run([*EDGE_AGENT, "demo", "--config", str(cfg), "--plain", "--duration", "2"],
                                capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    finally:
        holder.release()
    assert result.returncode == 1
    assert f"data directory {data} is in use by another edge-agent (pid {os.getpid()})" in result.stderr
    assert "Traceback" not in result.stderr
