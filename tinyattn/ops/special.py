"""Special functions NumPy lacks: erf (for exact GELU), on any backend."""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module

_np_erf = None


def _numpy_erf():
    """erf for NumPy arrays: a Numba ufunc of math.erf (exact), float32 arrays a compiled series
    (kernels/numba/erf.py); or a plain ufunc fallback without Numba."""
    global _np_erf
    if _np_erf is None:
        try:
            import numba  # noqa: PLC0415

            from ..kernels.lowlevel import numba_cache  # noqa: PLC0415

            with numba_cache.kernel_cache():      # a disk cache even in a read-only install
                @numba.vectorize(["float32(float32)", "float64(float64)"],
                                 cache=numba_cache.ENABLED)
                def _erf(x):
                    return math.erf(x)

            _erf(np.zeros(1))   # NUMBA_DISABLE_JIT=1 gives a plain function: use the fallback
            with numba_cache.kernel_cache():
                from ..kernels.numba.erf import erf_float32  # noqa: PLC0415

            def _np_erf(x):
                # float32: a vectorised series, ~3x faster than math.erf, within 1 ulp of it
                return erf_float32(x) if x.dtype == np.float32 and x.ndim else _erf(x)
        except Exception:  # noqa: BLE001 - numba missing or JIT disabled
            plain = np.vectorize(math.erf, otypes=[np.float64])
            _np_erf = lambda x: plain(x).astype(np.result_type(x, np.float32))  # noqa: E731
    return _np_erf


def erf(x):
    """The error function, elementwise, keeping dtype."""
    xp = get_array_module(x)
    if xp is np:      # the compiled ufunc has float32/float64 loops: float16 comes back float16
        return _numpy_erf()(x).astype(x.dtype, copy=False)
    from cupyx.scipy.special import erf as cupy_erf  # noqa: PLC0415

    return cupy_erf(x)
