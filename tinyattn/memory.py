"""Opt-in process tuning for speed: keep freed memory for the next array, and give the heap huge pages.

Nothing here runs on ``import tinyattn``: a library must not change the malloc settings of the
program that imports it (a notebook, a PyTorch job). Call ``tinyattn.memory.tune()`` once, early,
in a process that runs tinyattn's training steps and wants them fast; ``python -m tinyattn.bench``
and lesson 16 do. What it gains, measured on the benchmark's workload 1 (LSTM forward+backward,
batch 32, 50 steps; README.md "The LSTM gap, measured"):
  * keeping freed memory: 13.8 -> 10.1 ms per step (~3,200 page faults per step -> 0);
  * huge pages for the heap: the same process ran at either 6.5 or 8.7 ms (about half the runs
    each) before, and at the fast speed in 8 of 8 processes after.
``tune()`` is idempotent and returns what it did; ``tuning()`` says it again later, ``is_tuned()``
says whether anything was changed. ``release()`` hands kept memory back to the system.

Keeping freed memory. Why: a training step allocates the same large arrays every time (an LSTM's
gates, states and their gradients: ~12 MB per step in the benchmark's workload 1). glibc's
``malloc`` serves large blocks with ``mmap`` and returns them with ``munmap`` (or trims the heap
when its free top grows), so every step gets *fresh* pages, and the kernel must fault each 4 KiB
page in and zero it on first touch: ~3,200 page faults, about a quarter of that step's time on our
benchmark machine. (PyTorch's GPU allocator keeps freed blocks for the same reason; its CPU tuning
guide suggests jemalloc or tcmalloc.)

How: two documented glibc settings (``mallopt``), applied by ``tune()``:
  * ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's maximum): blocks below it come from the heap, so a freed
    block can be handed out again (this also stops glibc from moving the threshold by itself);
  * ``M_TRIM_THRESHOLD`` = 256 MiB: free memory at the top of the heap is kept up to this much.
The cost: after a peak, up to 256 MiB of freed memory stays with the process (``release()`` gives
it back). With ``TINYATTN_KEEP_FREED_MEMORY=0`` in the environment ``tune()`` leaves ``malloc`` as
it was (and so asks for no huge pages either). On systems without glibc (macOS, Windows, musl)
nothing is changed.

Huge pages for the heap (``advise_huge_pages``). Why: with 4 KiB pages the kernel hands a process
physical pages from anywhere, and the L2 cache picks a line's place by its *physical* address, so
how many of one kernel's arrays collide in the same cache sets is decided anew in every process.
On the benchmark machine that made whole processes ~25% slower than others running the same LSTM
step. With 2 MiB pages physical and virtual offsets agree over 2 MiB and the split disappeared.
How: where the kernel gives huge pages only on request (``/sys/kernel/mm/transparent_hugepage/
enabled`` is ``madvise``, the common default), ``tune()`` reserves the first ``HUGE_HEAP`` bytes of
heap and marks them with ``madvise(MADV_HUGEPAGE)``; the arrays allocated from it afterwards get
2 MiB pages. It costs no memory until used (pages are only given when touched), then up to 2 MiB
of rounding. With ``TINYATTN_HUGE_PAGES=0`` in the environment ``tune()`` skips it.
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


HUGE_HEAP = 64 * 1024 * 1024       # heap marked for huge pages: a few LSTM steps' arrays
_HUGE_PAGE = 2 * 1024 * 1024
_MADV_HUGEPAGE = 14                 # from <sys/mman.h>
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"
_huge = False


def advise_huge_pages(nbytes=HUGE_HEAP) -> bool:
    """Grow the heap by ``nbytes``, ask for huge pages over it, hand it back to ``malloc`` (free
    memory at the top of the heap, where the next arrays come from). True when the kernel took it.
    Needs glibc, the settings above (else the freed block would be unmapped at once) and the
    ``madvise`` mode of transparent huge pages (under ``always`` there is nothing to ask for)."""
    global _huge
    libc = _glibc()
    try:
        with open(_THP_MODE) as f:
            madvise_mode = "[madvise]" in f.read()
    except OSError:
        madvise_mode = False
    if libc is None or not _kept or not madvise_mode:
        return False
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    piece = MMAP_THRESHOLD // 2             # below the mmap threshold: taken from the heap
    blocks = [libc.malloc(piece) for _ in range(max(1, nbytes // piece))]
    ok = all(blocks)
    if ok:
        start = -(-min(blocks) // _HUGE_PAGE) * _HUGE_PAGE      # whole 2 MiB pages inside
        end = (max(blocks) + piece) // _HUGE_PAGE * _HUGE_PAGE
        contiguous = max(blocks) - min(blocks) < len(blocks) * piece + _HUGE_PAGE
        ok = contiguous and end > start and libc.madvise(start, end - start, _MADV_HUGEPAGE) == 0
    for block in blocks:
        libc.free(block)
    _huge = ok
    return ok


def is_using_huge_pages() -> bool:
    return _huge


_done = None     # what tune() did, once it has run


def tune() -> dict:
    """Keep freed memory and ask for huge pages over the heap (see the module docstring), once per
    process; later calls change nothing and return the same record:
    ``{"keep_freed_memory": bool, "huge_pages": bool}``, True where the setting is now in effect.
    The environment switches ``TINYATTN_KEEP_FREED_MEMORY=0`` / ``TINYATTN_HUGE_PAGES=0`` turn the
    two parts off."""
    global _done
    if _done is None:
        kept = huge = False
        if os.environ.get("TINYATTN_KEEP_FREED_MEMORY", "1") != "0":
            kept = keep_freed_memory()
            if os.environ.get("TINYATTN_HUGE_PAGES", "1") != "0":
                huge = advise_huge_pages()
        _done = {"keep_freed_memory": kept, "huge_pages": huge}
    return dict(_done)


def tuning() -> dict:
    """What ``tune()`` did in this process (both False before it is called)."""
    return {"keep_freed_memory": _kept, "huge_pages": _huge}


def is_tuned() -> bool:
    """True once ``tune()`` (or ``keep_freed_memory()``) changed this process's malloc settings."""
    return _kept
