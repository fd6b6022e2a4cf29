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

from edge_agent.errors import EdgeAgentError

LOCK_NAME = "agent.lock"


class DataDirInUseError(EdgeAgentError):
    """Another process holds the data directory's lock, or this user may not take it."""


class DataDirLock:
    """The exclusive lock on one data directory; :meth:`acquire` at start, :meth:`release` at stop."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataDirInUseError` naming the holder's PID and what to do.

        A user who may read the lock file but not write it (a member of the service's group, running the
        agent by hand) still learns who holds it: ``flock`` works on a read-only descriptor.
        """
        if self._fd is not None:
            return
        fd, denied = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUseError(
                f"data directory {self.path.parent} is in use by another edge-agent (pid {holder}); stop that "
                "one first (systemctl stop edge-agent), or give this one its own agent.data_dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if denied is not None:  # opened read-only: free, but this user cannot run an agent on it
            os.close(fd)
            raise self._access_error(denied)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def _open(self) -> tuple[int, PermissionError | None]:
        """The lock file, read-write (created 0640 under the umask), or read-only with the error that denied
        writing it."""
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags | os.O_RDWR | os.O_CREAT, 0o640), None
        except PermissionError as exc:
            try:
                return os.open(self.path, flags | os.O_RDONLY), exc
            except OSError:
                raise self._access_error(exc) from None
        except OSError as exc:
            raise self._access_error(exc) from None

    def _access_error(self, exc: OSError) -> DataDirInUseError:
        return DataDirInUseError(
            f"cannot take the lock {self.path}: {exc.strerror or exc}; run the agent as the user that owns the "
            "data directory (the service's is edge-agent: sudo -u edge-agent edge-agent run -c ...), or give "
            "this one its own agent.data_dir"
        )

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would race with the next agent taking it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
