"""Keep freed memory in the process for reuse, so each attack step stops page-faulting.

Every attack step allocates and frees the same large activations (25-50 MB at 512 px).
glibc serves blocks that large with fresh `mmap`s, or returns the top of the heap to the
OS when they are freed, so the next step faults every page in again. Raising glibc's mmap
and trim thresholds keeps those pages mapped and reused: in one run on this 2-core CPU a
12 MP photo went from 15.6 to 12.6 s at medium and from 3.1 to 2.6 s at fast, with
identical output (benchmarks/speed.py --untuned). The price is that the process holds on
to its peak memory until it exits, or until `release_freed_memory()`.

This changes a process-wide setting, so the library never calls it on import: the CLI,
the desktop app and batch workers call `keep_freed_memory()` at start. It does nothing
(returns False) where the C library is not glibc (macOS, Windows, musl), or when
CLOAK_KEEP_FREED_MEMORY=0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the reusable heap
TRIM_THRESHOLD = 2**31 - 1  # largest value mallopt takes: never shrink the heap

_applied: bool | None = None
OFF_WORDS = ("0", "false", "no", "off")  # as CLOAK_OFFLINE reads them


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process (unless
    CLOAK_KEEP_FREED_MEMORY is 0, false, no or off). True when they are set."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("CLOAK_KEEP_FREED_MEMORY", "").strip().lower() in OFF_WORDS:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        _applied = False
    return _applied


def release_freed_memory() -> bool:
    """Give the memory freed since the last call back to the OS (glibc's malloc_trim),
    where keep_freed_memory() made the process keep it: the desktop app, left open
    between batches, calls it when a batch ends. True when memory was released."""
    if not _applied:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
