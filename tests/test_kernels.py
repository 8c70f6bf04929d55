"""The compiled kernels equal their plain twins (float64, 1e-12 relative) on awkward shapes, the
fast path passes the same gradient checks, and the switch and the debugger escape hatch work."""
from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys
import zlib

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import kernels

pytest.importorskip("numba")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def twin_outputs(name, *args):
    plain = kernels.implementation(name, "numpy")(*args)
    fast = kernels.implementation(name, "numba")(*args)
    return ((plain,), (fast,)) if not isinstance(plain, tuple) else (plain, fast)


def assert_twins_agree(name, *args):
    plain, fast = twin_outputs(name, *args)
    assert len(plain) == len(fast)
    for a, b in zip(plain, fast):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype, b.dtype)
        finite = np.isfinite(a)
        assert np.array_equal(finite, np.isfinite(b)), f"{name}: inf/nan in different places"
        scale = np.abs(a[finite]).max() if finite.any() else 0.0
        np.testing.assert_allclose(b[finite], a[finite], rtol=1e-12, atol=1e-12 * scale,
                                   err_msg=name)
        assert np.array_equal(a[~finite], b[~finite])


def rng_for(*key):
    """A generator seeded from the test's parameters: reproducible across runs (unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def test_every_kernel_has_both_twins():
    for name in kernels.names():
        assert {"numpy", "numba"} <= set(kernels.available(name)), name


# ---------------------------------------------------------------------------------- softmax family
SHAPES = [(1,), (7,), (1, 1), (3, 1), (1, 5), (4, 9, 3), (2, 3, 1, 17)]


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_family_twins(shape):
    rng = rng_for("softmax", shape)
    x = rng.standard_normal(shape) * 5
    g = rng.standard_normal(shape)
    for axis in range(-len(shape), len(shape)):
        assert_twins_agree("softmax_forward", x, axis, None)
        y = kernels.implementation("softmax_forward", "numpy")(x, axis, None)
        assert_twins_agree("softmax_backward", y, g, axis)
        assert_twins_agree("log_softmax_forward", x, axis)
        out = kernels.implementation("log_softmax_forward", "numpy")(x, axis)
        assert_twins_agree("log_softmax_backward", out, g, axis)


def test_masked_softmax_twins_with_fully_masked_rows():
    rng = rng_for("mask")
    x = rng.standard_normal((3, 5, 6))
    mask = rng.random((5, 6)) > 0.4
    mask[1] = False                      # a row with nothing to attend to
    for m in (mask, mask[None], rng.random((3, 5, 1)) > 0.5):
        assert_twins_agree("softmax_forward", x, -1, m)
        y = kernels.implementation("softmax_forward", "numba")(x, -1, m)
        assert np.all(np.isfinite(y))
    assert np.all(kernels.implementation("softmax_forward", "numba")(x, -1, mask)[:, 1] == 0)


# ---------------------------------------------------------------------------------- layer norm
@pytest.mark.parametrize("m,n", [(1, 1), (5, 1), (1, 7), (13, 33)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_twins(m, n, affine):
    rng = rng_for("ln", m, n)
    x = rng.standard_normal((m, n)) * 3 + 2
    w, b = (rng.standard_normal(n), rng.standard_normal(n)) if affine else (None, None)
    assert_twins_agree("layer_norm_forward", x, w, b, 1e-5)
    _, mean, rstd = kernels.implementation("layer_norm_forward", "numpy")(x, w, b, 1e-5)
    assert_twins_agree("layer_norm_backward", rng.standard_normal((m, n)), x, mean, rstd, w)


# ---------------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("n,c", [(1, 1), (1, 4), (6, 1), (11, 7)])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_twins(n, c, smoothing, weighted):
    rng = rng_for("ce", n, c, smoothing, weighted)
    logits = rng.standard_normal((n, c)) * 4
    target = rng.integers(0, c, n)
    target[::3] = -100                    # ignored rows, including the first
    w = rng.uniform(0.1, 2, c) if weighted else None
    assert_twins_agree("cross_entropy_forward", logits, target, w, -100, smoothing)
    logp = kernels.implementation("cross_entropy_forward", "numpy")(logits, target, w, -100, smoothing)[2]
    assert_twins_agree("cross_entropy_backward", rng.standard_normal(n), logp, target, w, -100,
                       smoothing)


# ---------------------------------------------------------------------------------- embedding
@pytest.mark.parametrize("k,v,d", [(1, 1, 1), (50, 3, 4), (7, 10, 1)])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_backward_twins(k, v, d, padding_idx):
    rng = rng_for("emb", k, v, d)
    assert_twins_agree("embedding_backward", rng.integers(0, v, k), rng.standard_normal((k, d)), v,
                       padding_idx)


# ---------------------------------------------------------------------------------- LSTM
@pytest.mark.parametrize("T,B,H", [(1, 1, 1), (7, 3, 5), (4, 1, 2)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_lstm_twins(T, B, H, with_lengths):
    rng = rng_for("lstm", T, B, H)
    x_proj = rng.standard_normal((T, B, 4 * H))
    w_hh = rng.standard_normal((4 * H, H)) * 0.5
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    lengths = rng.integers(0, T + 1, B) if with_lengths else None
    assert_twins_agree("lstm_forward", x_proj, w_hh, h0, c0, lengths)
    out, gates, cs, hs = kernels.implementation("lstm_forward", "numpy")(x_proj, w_hh, h0, c0, lengths)
    assert_twins_agree("lstm_backward", rng.standard_normal(out.shape),
                       rng.standard_normal((B, H)), rng.standard_normal((B, H)), gates, cs, hs,
                       w_hh, lengths)


@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (7, 3, 2, 5), (3, 17, 4, 2), (2, 40, 3, 3)])
@pytest.mark.parametrize("with_lengths,with_bias", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("threads", ["one", "all"])
def test_lstm_layer_twins(T, B, I, H, with_lengths, with_bias, threads):
    """17 and 40 sequences: the compiled layer splits them into blocks of rows on several threads
    ("all"); on one thread its weight products take another route (NumPy's BLAS)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1 if threads == "one" else numba.config.NUMBA_NUM_THREADS)
    try:
        _check_lstm_layer_twins(T, B, I, H, with_lengths, with_bias)
    finally:
        numba.set_num_threads(before)


def _check_lstm_layer_twins(T, B, I, H, with_lengths, with_bias):
    rng = rng_for("lstm_layer", T, B, I, H)
    x, w_ih = rng.standard_normal((T, B, I)), rng.standard_normal((4 * H, I))
    w_hh = rng.standard_normal((4 * H, H)) * 0.5
    bias = rng.standard_normal(4 * H) if with_bias else None
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    lengths = rng.integers(0, T + 1, B) if with_lengths else None
    assert_twins_agree("lstm_layer_forward", x, w_ih, w_hh, bias, h0, c0, lengths)
    out, gates, cs, hs = kernels.implementation("lstm_layer_forward", "numpy")(x, w_ih, w_hh, bias, h0,
                                                                         c0, lengths)
    assert_twins_agree("lstm_layer_backward", rng.standard_normal(out.shape),
                       rng.standard_normal((B, H)), rng.standard_normal((B, H)), x, w_ih, w_hh,
                       gates, cs, hs, lengths)


# ---------------------------------------------------------------------------------- attention
@pytest.mark.parametrize("bh,tq,tk,d,dv", [(1, 1, 1, 1, 1), (2, 67, 67, 5, 3), (3, 130, 70, 4, 4),
                                           (1, 9, 200, 3, 2)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [None, 0, 7])
def test_attention_twins(bh, tq, tk, d, dv, causal, window):
    rng = rng_for("attn", bh, tq, tk, d, causal, window)
    q, k = rng.standard_normal((bh, tq, d)), rng.standard_normal((bh, tk, d))
    v, g = rng.standard_normal((bh, tk, dv)), rng.standard_normal((bh, tq, dv))
    lengths = rng.integers(0, tk + 1, bh)
    lengths[0] = tk
    for key_lengths in (np.full(bh, tk), lengths):
        args = (key_lengths, causal, 0.37, window)
        assert_twins_agree("attention_forward", q, k, v, *args)
        out, lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
        assert_twins_agree("attention_backward", g, q, k, v, out, lse, *args)


def test_attention_empty_rows_give_zeros_not_nan():
    q = k = v = np.ones((2, 4, 3))
    for provider in ("numpy", "numba"):
        out, lse = kernels.implementation("attention_forward", provider)(q, k, v, np.array([0, 4]), True,
                                                                    1.0, None)
        assert np.all(out[0] == 0) and np.all(lse[0] == -np.inf) and np.all(np.isfinite(out))
        dq, dk, dv = kernels.implementation("attention_backward", provider)(
            np.ones_like(out), q, k, v, out, lse, np.array([0, 4]), True, 1.0, None)
        assert np.all(dq[0] == 0) and np.all(dk[0] == 0) and np.all(dv[0] == 0)


# ---------------------------------------------------------------------------------- gradchecks
_FAST_OPS = {"softmax", "log_softmax", "layer_norm", "cross_entropy", "embedding", "lstm_sequence", "lstm_layer",
             "memory_efficient_attention"}


def _cases():
    sys.path.insert(0, str(ROOT / "tests"))
    cases = []
    for path in sorted((ROOT / "tests").glob("gradcases_*.py")):
        cases += [c for c in importlib.import_module(path.stem).CASES if c.op in _FAST_OPS]
    return cases


@pytest.mark.parametrize("provider", ["numba", "numpy"])
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_gradchecks_pass_on_both_paths(case, provider):
    with kernels.using(provider):
        assert ta.gradcheck(case.fn, case.inputs(), **case.kwargs)


# ---------------------------------------------------------------------------------- the switch
def test_use_switches_the_implementation_and_rejects_unknown_names():
    x = np.zeros((2, 3))
    with kernels.using("numpy"):
        assert kernels.get("softmax_forward", x) is kernels.implementation("softmax_forward", "numpy")
    with kernels.using("numba"):
        assert kernels.get("softmax_forward", x) is kernels.implementation("softmax_forward", "numba")
    with pytest.raises(ValueError, match="unknown provider 'cuda'"):
        kernels.use("cuda")
    with pytest.raises(KeyError, match="no kernel named"):
        kernels.get("no_such_kernel")


def test_numba_disable_jit_runs_the_same_kernels_as_plain_python():
    """NUMBA_DISABLE_JIT=1 (for stepping through in a debugger) must still give the twin's numbers."""
    script = r"""
import numpy as np
from tinyattn import kernels
from tinyattn.kernels.numba import softmax as numba_softmax
assert not hasattr(numba_softmax._softmax_rows, "signatures")   # a plain Python function now
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 5))
def same(name, *args):
    a = kernels.implementation(name, "numpy")(*args)
    b = kernels.implementation(name, "numba")(*args)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-12)
same("softmax_forward", x, -1, x > 0)
same("layer_norm_forward", x, None, None, 1e-5)
same("cross_entropy_forward", x, np.array([1, -100, 4]), None, -100, 0.1)
same("embedding_backward", np.array([0, 2, 0]), x, 4, None)
same("lstm_forward", rng.standard_normal((3, 2, 8)), rng.standard_normal((8, 2)),
     np.zeros((2, 2)), np.zeros((2, 2)), np.array([3, 1]))
q = rng.standard_normal((1, 5, 2))
same("attention_forward", q, q, q, np.array([4]), True, 0.5, None)
print("ok")
"""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


def test_second_process_loads_compiled_kernels_from_the_cache():
    """cache=True: the machine code is written next to the source; a new process loads it."""
    script = r"""
import numpy as np
from tinyattn.kernels.numba import layer_norm as numba_layer_norm
x = np.random.default_rng(0).standard_normal((4, 6))
numba_layer_norm.layer_norm_forward(x, None, None, 1e-5)
stats = numba_layer_norm._layer_norm_rows.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    for res in runs:
        assert res.returncode == 0, res.stderr[-2000:]
    hits, misses = map(int, runs[1].stdout.split())
    assert hits >= 1 and misses == 0


def test_single_threaded_blas_restores_the_thread_count():
    from tinyattn.kernels.lowlevel import blas_threads

    lib = blas_threads._scipy_openblas()
    if lib is None:
        pytest.skip("SciPy's OpenBLAS not found: single_threaded_blas is a no-op here")
    before = lib.scipy_openblas_get_num_threads()
    with blas_threads.single_threaded_blas():
        assert lib.scipy_openblas_get_num_threads() == 1
    assert lib.scipy_openblas_get_num_threads() == before


def test_attention_backward_both_work_splits_agree_with_the_twin():
    """One sequence with several threads takes the split-by-tile path; one thread the
    by-sequence path. Both must give the twin's gradients."""
    import numba

    rng = rng_for("split")
    q, k, v, g = (rng.standard_normal((1, 150, 4)) for _ in range(4))
    args = (np.array([140]), True, 0.5, 40)
    out, lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            assert_twins_agree("attention_backward", g, q, k, v, out, lse, *args)
    finally:
        numba.set_num_threads(before)


def test_fastmath_functions_match_numpy_to_the_last_bits():
    from numba import njit

    from tinyattn.kernels.lowlevel import fastmath as fm

    @njit(error_model="numpy")
    def apply_all(x, out):
        for i in range(x.shape[0]):
            out[0, i], out[1, i] = fm.exp(x[i]), fm.expm1(x[i])
            out[2, i], out[3, i] = fm.sigmoid(x[i]), fm.tanh(x[i])

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-30, 30, 2000), rng.uniform(-1e-3, 1e-3, 200),
                        [0.0, -0.0, 1e-300, -1e-300, 0.3465, -0.3466, 700.0, -700.0, -800.0, 800.0]])
    for dtype, tol in ((np.float64, 4e-16 * 8), (np.float32, 6e-8 * 8)):
        xd = x.astype(dtype)
        out = np.empty((4, x.size), dtype=dtype)
        apply_all(xd, out)
        with np.errstate(over="ignore"):
            ref = [np.exp(xd), np.expm1(xd), 1 / (1 + np.exp(-xd.astype(np.float64))), np.tanh(xd)]
        for name, got, want in zip(("exp", "expm1", "sigmoid", "tanh"), out, ref):
            want = want.astype(dtype)
            normal = np.abs(want) > np.finfo(dtype).tiny     # ignore flushed subnormals
            np.testing.assert_allclose(got[normal], want[normal], rtol=tol, atol=0, err_msg=name)
            assert np.array_equal(np.isinf(got), np.isinf(want)), name


def test_float32_fastmath_stays_in_float32():
    """One float64 constant or branch in fastmath.py silently promotes a whole float32 loop to
    float64 (half the numbers per instruction, twice the time): the compiled float32 loop over
    all four functions must hold no float64 arithmetic at all."""
    import re

    import numba
    from numba import njit

    from tinyattn.kernels.lowlevel import fastmath as fm

    if numba.config.DISABLE_JIT:
        pytest.skip("no compiled code under NUMBA_DISABLE_JIT")

    @njit(error_model="numpy")
    def apply_all(x, out):
        for i in range(x.shape[0]):
            out[i] = fm.exp(x[i]) + fm.expm1(x[i]) + fm.sigmoid(x[i]) + fm.tanh(x[i])

    x = np.linspace(-3, 3, 64, dtype=np.float32)
    apply_all(x, np.empty_like(x))
    ir = "\n".join(apply_all.inspect_llvm().values())
    promoted = [line.strip() for line in ir.splitlines()
                if re.search(r"\b(fpext|fptrunc)\b|\bf(add|sub|mul|div)\b[^=]*\bdouble\b", line)]
    assert not promoted, promoted[:5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_on_bit_patterns_equals_numpys_max(dtype):
    """fastmath.row_max orders the numbers by their bit patterns read as integers: it must agree
    with max() on negatives, zeros of either sign, infinities, every length (vector remainder
    included) and the empty row, compiled and as plain Python."""
    from numba import njit

    from tinyattn.kernels.lowlevel import fastmath as fm

    @njit(error_model="numpy")
    def compiled(row, n):
        return fm.row_max(row, n)

    rng = rng_for("row_max", np.dtype(dtype).name)
    rows = [rng.standard_normal(n).astype(dtype) * 100 for n in (1, 2, 15, 16, 17, 40, 257)]
    rows += [-np.abs(r) for r in rows[:4]]
    rows += [np.array(x, dtype=dtype) for x in ([-np.inf, -5.0, -np.inf], [-np.inf, -np.inf],
                                                [-0.0, -1.0], [0.0, -0.0], [np.inf, 1.0],
                                                [-3e38, -np.inf], [-1e-40, -2e-40])]
    for row in rows:
        for n in {0, 1, len(row) // 2, len(row)}:
            want = row[:n].max() if n else -np.inf
            assert compiled(row, n) == want and fm.row_max(row, n) == want, (row, n)
    assert np.isnan(compiled(np.array([1.0, np.nan, 2.0], dtype=dtype), 3))  # NaN: propagates
