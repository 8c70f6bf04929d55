"""Run one compiled, serial kernel on several threads: ``split(fn, n, *args)`` calls
``fn(*args, k, n)`` for k = 0 .. n-1 at once, each on its own thread, and waits for all.

Why not Numba's ``parallel=True`` and ``prange``: it compiles each kernel twice over (the parallel
loop body becomes a separate function, with extra analysis passes): 2-3x the compile time of the
same kernel compiled serially, which a learner pays on the first run (attention forward, float32:
~12 s of CPU time instead of ~5 s). Here the kernel is compiled once, serially, with ``nogil=True``
so that Python threads really run it side by side; each call k decides which share is its own
(a block of rows, or every n-th task: interleaving keeps causal attention's uneven tiles balanced,
where prange's contiguous blocks gave the last thread ~3/4 of the work of one long sequence).

The thread count is Numba's (``numba.get_num_threads()``, set by ``tinyattn.set_num_threads``);
the threads are started on the first call that needs more than one, never at import. Share 0 runs
on the calling thread.
"""
from __future__ import annotations

import concurrent.futures
import threading

_pool = None
_lock = threading.Lock()


def num_threads() -> int:
    import numba  # noqa: PLC0415

    return int(numba.get_num_threads())


def _executor(workers):
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < workers:      # noqa: SLF001 - grow only
            import numba  # noqa: PLC0415

            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(workers, numba.config.NUMBA_NUM_THREADS - 1),
                thread_name_prefix="tinyattn-kernel")
        return _pool


def split(fn, n, *args):
    """fn(*args, k, n) for every k in range(n), on n threads; the first error is raised."""
    if n <= 1:
        fn(*args, 0, 1)
        return
    pool = _executor(n - 1)
    futures = [pool.submit(fn, *args, k, n) for k in range(1, n)]
    try:
        fn(*args, 0, n)
    finally:
        for f in futures:
            f.result()
