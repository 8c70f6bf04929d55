"""``tinyattn.set_num_threads(n)`` / ``get_num_threads()``: the CPU threads tinyattn computes with.

Two pools do the work: the compiled kernels' threads (``kernels/lowlevel/thread_split.py``, as many
as Numba's setting) and the BLAS behind the
kernels' own products (SciPy's OpenBLAS, see kernels/lowlevel/blas_threads.py). set_num_threads sets both;
nothing is changed at import, only by an explicit call. NumPy's own BLAS keeps its setting (its
environment variables, as usual), since it cannot be changed safely once loaded without extra
packages.
"""
from __future__ import annotations

from .kernels.lowlevel.blas_threads import _scipy_openblas


def get_num_threads() -> int:
    """The number of threads the compiled kernels run on (Numba's setting)."""
    import numba  # noqa: PLC0415 - numba loads slowly; only when asked
    return int(numba.get_num_threads())


def set_num_threads(n: int) -> None:
    """Run the compiled kernels and their BLAS calls on ``n`` threads (1 <= n <= the cores
    Numba was started with, ``numba.config.NUMBA_NUM_THREADS``)."""
    import numba  # noqa: PLC0415
    top = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= top:
        raise ValueError(f"set_num_threads({n!r}): give a whole number from 1 to {top} (the "
                         f"threads available; set NUMBA_NUM_THREADS before starting for more).")
    numba.set_num_threads(n)
    lib = _scipy_openblas()
    if lib is not None:
        lib.scipy_openblas_set_num_threads(n)
