"""One agent per data directory: an exclusive ``flock`` on ``DATA_DIR/agent.lock`` for the agent's lifetime.

Two agents on one data directory would share one outbox and one alarm state: each would publish the
other's records and overwrite the other's alarms. It happens in the field when an engineer runs
``edge-agent run -c /etc/edge-agent/config.yaml`` by hand while the service is running. The lock is
advisory and held by the open file, so the kernel drops it when the process dies (even by SIGKILL or a
power cut): there is never a stale lock to clean up. The file keeps the holder's PID for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from edge_agent.errors import EdgeAgentError

LOCK_NAME = "agent.lock"


class DataDirInUseError(EdgeAgentError):
    """Another process holds the data directory's lock."""


class DataDirLock:
    """The exclusive lock on one data directory; :meth:`acquire` at start, :meth:`release` at stop."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataDirInUseError` naming the holder's PID and what to do."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held open for the agent's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUseError(
                f"data directory {self.path.parent} is in use by another edge-agent (pid {holder}); stop that "
                "one first (systemctl stop edge-agent), or give this one its own agent.data_dir"
            ) from None
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would race with the next agent taking it)."""
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
