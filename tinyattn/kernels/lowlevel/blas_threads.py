"""Run the compiled kernels' own BLAS calls on one thread.

``np.dot`` inside a Numba kernel calls SciPy's copy of OpenBLAS (not NumPy's). The kernels call it
from several ``prange`` threads at once, often on small blocks (attention: one product per 64 x 64
tile; an LSTM layer: each thread's share of the input projection and weight gradients - its
per-step products use ``packed_matmul`` instead). Handing each
small product to a second BLAS thread costs more than it saves, and on a busy machine a step can
wait milliseconds for that thread to be scheduled. So while a kernel runs, SciPy's OpenBLAS is
set to one thread and restored afterwards; the kernels get their parallelism from ``prange``
instead. NumPy's own BLAS (the big matrix products outside the kernels) is untouched.

Where SciPy's OpenBLAS cannot be found, this does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os

_lib = None
_searched = False


def _scipy_openblas():
    global _lib, _searched
    if not _searched:
        _searched = True
        try:
            import scipy  # noqa: PLC0415

            libs = os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs")
            for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
                lib = ctypes.CDLL(path)
                if hasattr(lib, "scipy_openblas_set_num_threads"):
                    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
                    _lib = lib
                    break
        except (ImportError, OSError):
            _lib = None
    return _lib


@contextlib.contextmanager
def single_threaded_blas():
    """Inside this block, BLAS calls from compiled kernels use one thread."""
    lib = _scipy_openblas()
    if lib is None:
        yield
        return
    before = lib.scipy_openblas_get_num_threads()
    if before != 1:
        lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            lib.scipy_openblas_set_num_threads(before)
