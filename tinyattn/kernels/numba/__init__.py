"""The compiled twins, one file per op: the same kernels as the references in the ops' own files
(ops/softmax.py ...), as explicit loops compiled by Numba.

Read each one next to its plain twin (same name, same sections, same formulas). The plain twin
walks whole arrays several times and allocates a temporary for every intermediate; the loops here
visit each row once, keep the running sums in registers, and fuse the arithmetic.

Rules every kernel here follows:
  * ``cache=True``: a second Python process loads the machine code from disk instead of compiling;
    the first run says that it compiles (``compile_notice.py``).
  * ``fastmath=False``: the compiler may not reorder arithmetic, so results agree with the twin to
    ~1e-15 (the tests ask for 1e-12 in float64). The LSTM layer's loops allow one relaxation,
    fused multiply-add (``_JIT_FMA``): one rounding instead of two, never a reordering. Speed comes from writing loops it can vectorise:
    innermost loops run over 1-D rows (``xr = x[r]``), transcendental functions come from
    ``lowlevel/fastmath.py`` (inlined arithmetic, not calls into libm), and row sums/maxima keep several
    independent partial results (``_row_sum``, ``_row_max``).
  * ``error_model="numpy"``: x / 0 is inf as in NumPy, so divisions need no Python-style check.
  * Threads only where each has plenty to do, each running a serial ``nogil`` kernel on its
    share (``lowlevel/thread_split.py``: compiled once, unlike ``parallel=True``, which about
    doubles a kernel's compile time): attention runs over (sequence, query
    tile) or (sequence, key tile) pairs that never write to the same place; the LSTM layer runs
    each thread on its own block of sequences for the whole time loop (they meet only at the end)
    and splits its big products by rows; its per-step products use ``lowlevel/packed_matmul.py`` (weights
    packed once); the BLAS calls made inside kernels run on one thread per caller
    (``lowlevel/blas_threads.py``). The row kernels (softmax, layer norm, cross-entropy) and the
    ``lstm_sequence`` op (which is handed x_proj) are serial: at the sizes the lessons use, waking a
    second thread costs more than the work. The one scatter (embedding backward) must be serial
    anyway: threads would race on repeated rows.
    What did not work for the LSTM (README, "The LSTM gap"): threads that meet at every time step
    (hidden units per thread), and any split that left NumPy's own BLAS threads running beside
    Numba's - the two pools fought over the same cores and a step got 1.5-5x slower.
  * ``NUMBA_DISABLE_JIT=1`` turns every ``@njit`` into the plain Python function it decorates, so
    the kernels can be stepped through in a debugger (slowly).
Only NumPy arrays arrive here; CuPy arrays are sent to the xp twins by ``kernels.get``.
"""
from . import compile_notice

compile_notice.install()        # "compiling kernels, first run only" instead of a silent pause

from ..lowlevel import numba_cache  # noqa: E402

with numba_cache.kernel_cache():    # a disk cache even in a read-only installation (see there)
    from . import (cross_entropy, embedding, gelu, layer_norm, lstm,  # noqa: F401 - each registers its kernels
                   memory_efficient_attention, relu, softmax)
