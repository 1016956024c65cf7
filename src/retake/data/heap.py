"""Keep freed frame memory in the worker's heap for the next video instead of handing it back to the kernel.

A worker decodes video after video into big frame arrays (tens to hundreds of MB each) and frees each one
when its video is done. glibc serves blocks that big with a fresh `mmap` and unmaps them on free, so every
video pays a page fault (and the kernel's zeroing) on every 4 KiB page of its frames again: about 0.2 ms per
256 px RGB frame, some 10% of the curation pipeline's time. With the mmap threshold raised, the arrays come
from the heap; with the trim threshold raised too, freed ones stay there and the next video reuses the pages
already mapped. The cost: a worker's resident memory stays at its largest video (bounded by the recipe's
`keep_budget_mb`) until it exits (the local executor recycles its workers every 64 tasks).

Only glibc has `mallopt`; elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks above this still get their own mapping: only frame stacks beyond 1 GiB, which the keep budget
# never makes, and which are rare enough that reusing them would not pay for the memory held.
RETAIN_BYTES = 1 << 30


@functools.cache
def retain_freed_memory() -> bool:
    """Serve blocks up to `RETAIN_BYTES` from the heap and keep as much freed memory mapped for reuse.
    Acts once per process (later calls return the first answer); True where glibc took both settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    value = min(RETAIN_BYTES, 2**31 - 1)  # mallopt takes a C int
    # Setting the mmap threshold also turns off glibc's own adaptive threshold, which only ever rises to
    # 32 MiB: below the frame stacks of most videos.
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
