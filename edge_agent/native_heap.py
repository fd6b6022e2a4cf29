"""The C heap under the interpreter: glibc's statistics and ``malloc_trim``, for a process that runs for years.

Python keeps its small objects in its own arenas, but everything larger than 512 bytes (lists and dicts of
a few dozen entries, bytes of a Modbus response, JSON texts), SQLite's page cache and the C extensions'
buffers come from glibc ``malloc``. glibc hands memory back to the system only from the top of a heap: a
page in the middle whose chunks are all free stays resident. Each rare coincidence of transients (a summary
close, vibration analyses and an outbox batch at once) reaches a new high-water, and without a trim RSS
keeps that high-water: over hours it climbs in small steps that are not a leak (in-use bytes stay flat).

``malloc_trim`` gives such free pages back (``MADV_DONTNEED``). It does not shrink the heaps' address
range, and the next transients touch some pages again within minutes, so it lowers neither the peak nor
the mean RSS much (measured: two parallel 75-minute runs, mean 107.26 MB without, 107.34 MB with); what
it does is keep RSS from ratcheting up with each new high-water. Two parallel runs of 105 minutes on
2026-12-07 compare the trend (benchmarks/RESULTS.md).

Large blocks are the other half. glibc serves a block of 128 KiB or more with its own ``mmap`` and gives it
back at ``free``, but after each such free it raises that threshold to the block's size (up to 32 MiB),
so the next cycle's JSON texts and Modbus buffers come from the heap and leave holes there.
:meth:`NativeHeap.fix_mmap_threshold` pins the threshold (``mallopt(M_MMAP_THRESHOLD)``), which turns that
adjustment off: a 10 000-point cycle's large transients then come and go with their own mappings
(2.2 MB less peak RSS at 10 000 points; benchmarks/RESULTS.md).

The figures (:meth:`NativeHeap.stats`) tell a leak (``in_use`` grows) from fragmentation (``free`` grows
while ``in_use`` stays); the agent exports them on ``/metrics``. :class:`NativeHeap` finds the glibc
functions with :mod:`ctypes` once. On other C libraries (musl in Alpine containers, macOS) they are
unavailable: ``stats`` returns None and ``trim`` does nothing; nothing else in the agent depends on them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from collections.abc import Callable
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


@dataclass(frozen=True)
class TrimResult:
    """What one :meth:`NativeHeap.trim` did: RSS before and after (bytes), and whether glibc released pages."""

    rss_before: int
    rss_after: int
    released_any: bool

    @property
    def returned_bytes(self) -> int:
        """RSS given back to the system by the trim, bytes (0 when RSS did not drop)."""
        return max(0, self.rss_before - self.rss_after)


#: ``mallopt`` parameter number of glibc's mmap threshold (malloc.h: ``#define M_MMAP_THRESHOLD -3``).
M_MMAP_THRESHOLD = -3
#: glibc's own starting threshold; pinned there, it no longer climbs after large frees.
DEFAULT_MMAP_THRESHOLD_BYTES = 128 * 1024


class NativeHeap:
    """glibc's ``malloc_trim`` and ``mallinfo2`` when this process runs on glibc; a no-op elsewhere."""

    def __init__(self) -> None:
        self._trim: Any = None
        self._info: Any = None
        self._mallopt: Any = None
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            return
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim.argtypes = [ctypes.c_size_t]
            trim.restype = ctypes.c_int
            self._trim = trim
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            self._mallopt = mallopt
        info = getattr(libc, "mallinfo2", None)  # glibc >= 2.33 (Debian 12, Raspberry Pi OS 12)
        if info is not None:
            info.argtypes = []
            info.restype = _MallInfo2
            self._info = info

    @property
    def can_trim(self) -> bool:
        """True when ``malloc_trim`` is available (glibc)."""
        return self._trim is not None

    def fix_mmap_threshold(self, size_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES) -> bool:
        """Serve every block of ``size_bytes`` (bytes) or more by its own mmap, for good (see module docs).

        Returns whether glibc took the setting (False elsewhere). Best called early, before the heap holds
        large blocks.
        """
        if self._mallopt is None:
            return False
        return bool(self._mallopt(M_MMAP_THRESHOLD, size_bytes))

    def stats(self) -> HeapStats | None:
        """The allocator's current figures in bytes, or ``None`` without glibc >= 2.33."""
        if self._info is None:
            return None
        info = self._info()
        return HeapStats(heap=int(info.arena), in_use=int(info.uordblks), free=int(info.fordblks),
                         mmapped=int(info.hblkhd))

    def trim(self, rss: Callable[[], int | None]) -> TrimResult | None:
        """Give free heap pages back to the system (``malloc_trim(0)``); ``None`` when not on glibc.

        ``rss`` reads the process's resident set size in bytes (before and after). The trim walks every
        arena under its lock (a few milliseconds for the agent's ~25 MB heap, during which other threads'
        mallocs wait), so callers run it off the event loop, and not often.
        """
        if self._trim is None:
            return None
        before = rss() or 0
        released = bool(self._trim(0))
        after = rss() or 0
        return TrimResult(rss_before=before, rss_after=after, released_any=released)
