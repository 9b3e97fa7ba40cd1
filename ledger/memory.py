"""Handing the C heap's free pages back to the operating system after a large batch.

glibc serves an allocation under its mmap threshold from the heap, and the threshold
rises (up to 32 MB) each time a larger mmapped block is freed. After a first read of a
large catalog, the watermark's per-system numpy arrays (tens of MB each) have come from
the heap and been freed, and the heap keeps those pages: about 200 MB of B1's peak at
100,000 SKUs (BENCHMARKS.md, issue 16). ``malloc_trim`` returns free pages anywhere in
the heap. Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_heap() -> bool:
    """Return the heap's free pages to the OS; False where that cannot be done."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
