"""NumPy's own BLAS, called directly for the one product NumPy cannot ask of it: C = A Bᵀ + C.

Why: a linear layer is x wᵀ + b. Through NumPy that is a product into a fresh array and then a
second pass over it to add b. BLAS's gemm does both in one pass when C starts out holding b in
every row and beta = 1 (what PyTorch's addmm asks of its BLAS). A small gain, measured on the
benchmark's shapes as F.linear under no_grad, float32, one thread, AMD EPYC (znver4), best CPU
time of 200 alternating calls: (256 x 128) @ (128 x 384) 298 -> 289 µs, (768 x 64) @ (64 x 192)
237 -> 223 µs; none for (256 x 512) @ (512 x 128), where the product dwarfs the addition.

The library is the OpenBLAS that NumPy's wheels carry (``numpy.libs/libscipy_openblas64_*``, the
one ``np.matmul`` itself calls, so it runs on NumPy's BLAS threads), found on first use through
ctypes. Where it is not there (NumPy built against another BLAS, another OS) ``addmm`` returns
False and the caller takes its plain NumPy path.

Rounding: BLAS adds each block of its inner sum to C in turn. While the inner dimension fits in
one of OpenBLAS's blocks (a few hundred) that is exactly fl(x wᵀ) + b, bit for bit NumPy's
result; beyond it the bias joins the first block's sum instead of the total (still one rounding
per addition; the tests allow that).
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_gemm = {}            # dtype -> the cblas function, once found
_searched = False


def _load():
    global _searched
    _searched = True
    try:
        libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*"))):
            lib = ctypes.CDLL(path)
            for dtype, name, real in ((np.float32, "scipy_cblas_sgemm64_", ctypes.c_float),
                                      (np.float64, "scipy_cblas_dgemm64_", ctypes.c_double)):
                fn = getattr(lib, name, None)
                if fn is None:
                    continue
                i64, ptr, enum = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
                fn.argtypes = [enum, enum, enum, i64, i64, i64, real, ptr, i64, ptr, i64, real,
                               ptr, i64]
                fn.restype = None
                _gemm[np.dtype(dtype)] = fn
            if _gemm:
                return
    except OSError:
        _gemm.clear()


def addmm(rows, w, b, out):
    """out = rows @ w.T + b for C-contiguous rows (M, K), w (N, K), b (N,), out (M, N) of one
    float dtype, in one BLAS call; False (out untouched) where NumPy's BLAS cannot be called."""
    if not _searched:
        _load()
    fn = _gemm.get(out.dtype)
    if (fn is None or rows.dtype is not out.dtype or w.dtype is not out.dtype
            or b.dtype is not out.dtype or not (rows.flags.c_contiguous and w.flags.c_contiguous
                                                and b.flags.c_contiguous)):
        return False
    (m, k), n = rows.shape, w.shape[0]
    out[...] = b
    if m and n and k:
        fn(_ROW_MAJOR, _NO_TRANS, _TRANS, m, n, k, 1.0, rows.ctypes.data, k, w.ctypes.data, k,
           1.0, out.ctypes.data, n)
    return True
