"""The C heap under the interpreter: glibc's allocator statistics, for a process that runs for years.

Python keeps its small objects in its own arenas, but everything larger than 512 bytes (lists and dicts of
a few dozen entries, bytes of a Modbus response, JSON texts), SQLite's page cache and the C extensions'
buffers come from glibc ``malloc``. When the agent's RSS moves over weeks, these figures tell a leak
(``in_use`` grows) from fragmentation (``free`` grows while ``in_use`` stays) without stopping the service;
the agent exports them on ``/metrics`` (:class:`~edge_agent.metrics.NativeHeapCollector`).

:class:`NativeHeap` finds glibc's ``mallinfo2`` with :mod:`ctypes` once. On other C libraries (musl in
Alpine containers, macOS) or glibc before 2.33 it is unavailable and :meth:`NativeHeap.stats` returns
``None``; nothing else in the agent depends on it.

Not done here: a periodic ``malloc_trim``. Under the reference gateway load each trim gave back ~3 MB, which
the next vibration analyses and summary closes touched again within two minutes; the mean RSS over a
2-hour run was the same with and without it (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from dataclasses import dataclass
from typing import Any


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33): every field a ``size_t``, in this order."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


@dataclass(frozen=True)
class HeapStats:
    """One reading of glibc's allocator, all in bytes.

    ``heap``: obtained from the system with ``brk``/``sbrk`` across all malloc arenas; ``in_use``: of that,
    held by live allocations; ``free``: of that, free chunks (resident or not); ``mmapped``: large
    allocations served by their own ``mmap``.
    """

    heap: int
    in_use: int
    free: int
    mmapped: int


class NativeHeap:
    """glibc's ``mallinfo2`` when this process runs on glibc >= 2.33; nothing elsewhere."""

    def __init__(self) -> None:
        self._info: Any = None
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            return
        info = getattr(libc, "mallinfo2", None)  # glibc >= 2.33 (Debian 12, Raspberry Pi OS 12)
        if info is not None:
            info.argtypes = []
            info.restype = _MallInfo2
            self._info = info

    def stats(self) -> HeapStats | None:
        """The allocator's current figures in bytes, or ``None`` without glibc >= 2.33."""
        if self._info is None:
            return None
        info = self._info()
        return HeapStats(heap=int(info.arena), in_use=int(info.uordblks), free=int(info.fordblks),
                         mmapped=int(info.hblkhd))
