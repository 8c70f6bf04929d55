"""Keep freed memory for the next array instead of handing it back to the operating system.

Why: a training step allocates the same large arrays every time (an LSTM's gates, states and their
gradients: ~12 MB per step in the benchmark's workload 1). glibc's ``malloc`` serves large blocks
with ``mmap`` and returns them with ``munmap`` (or trims the heap when its free top grows), so every
step gets *fresh* pages, and the kernel must fault each 4 KiB page in and zero it on first touch:
~3,200 page faults, about a quarter of that step's time on our benchmark machine. (PyTorch's GPU
allocator keeps freed blocks for the same reason; its CPU tuning guide suggests jemalloc or
tcmalloc.)

How: two documented glibc settings (``mallopt``), applied once when tinyattn is imported:
  * ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's maximum): blocks below it come from the heap, so a freed
    block can be handed out again (this also stops glibc from moving the threshold by itself);
  * ``M_TRIM_THRESHOLD`` = 256 MiB: free memory at the top of the heap is kept up to this much.
The cost: after a peak, up to 256 MiB of freed memory stays with the process (``release()`` gives
it back). Set ``TINYATTN_KEEP_FREED_MEMORY=0`` before importing tinyattn to leave ``malloc`` as it
was. On systems without glibc (macOS, Windows, musl) nothing is changed.
"""
from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1      # mallopt parameter numbers, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024

_kept = False


def _glibc():
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version       # only glibc has it (and mallopt's parameters above)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Apply the two settings; True when they are in effect (glibc found and both accepted)."""
    global _kept
    libc = _glibc()
    if libc is None:
        return False
    _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept


def is_keeping_freed_memory() -> bool:
    return _kept


def release() -> bool:
    """Give free heap memory back to the operating system now (glibc's ``malloc_trim``)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


if os.environ.get("TINYATTN_KEEP_FREED_MEMORY", "1") != "0":
    keep_freed_memory()
