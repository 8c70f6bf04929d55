"""The per-call fast paths of layer_norm, GELU and split/chunk (issue 20) against their reference
paths: the same numbers (bit for bit where the steps are the same), the same errors."""
import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import kernels
from tinyattn.ops import layernorm
from tinyattn.ops.elementwise import gelu_forward

numba_gelu = pytest.importorskip("tinyattn.kernels.numba.gelu")

EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 3.9999, 4.0, -4.0, 5.657, -5.657,
         1e-30, -1e-40, 1e-45, 0.5, -0.5]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1,), (7,), (4, 1, 512), (3, 5, 8), (0,), (2, 0, 3)])
def test_compiled_gelu_is_bit_identical_to_its_twin(dtype, shape):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 3).astype(dtype)
    a, b = gelu_forward(x), numba_gelu.gelu_forward(x)
    assert a.shape == b.shape == shape and a.dtype == b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_gelu_edges_dense_grid_and_strided_input(dtype):
    with np.errstate(invalid="ignore"):          # -inf · 0 is NaN in both
        for x in (np.array(EDGES, dtype=dtype), np.linspace(-9, 9, 100_001).astype(dtype),
                  np.arange(60, dtype=dtype).reshape(3, 4, 5)[:, ::2].transpose(2, 0, 1) / 7 - 4):
            a, b = gelu_forward(x), numba_gelu.gelu_forward(x)
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)                       # NaN where NaN
            np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def test_gelu_op_same_under_both_providers_and_for_0d_and_float16():
    x = ta.tensor(np.random.default_rng(3).standard_normal((2, 3, 16)).astype(np.float32))
    with kernels.using("numpy"):
        ref = ta.nn.functional.gelu(x).numpy()
    np.testing.assert_array_equal(ta.nn.functional.gelu(x).numpy(), ref)
    for v in (ta.tensor(np.float32(0.7)), ta.tensor(np.array([0.7, -2], dtype=np.float16))):
        np.testing.assert_array_equal(ta.nn.functional.gelu(v).numpy(), gelu_forward(v.array))


def _extreme_rows_reference(mean, rstd):
    big = math.sqrt(float(np.finfo(mean.dtype).max)) / 4
    bad = ~((np.abs(mean) < big) & (rstd > 1 / big))
    return bad if bad.any() else None


@pytest.mark.parametrize("rows", [1, 4, 64, 65, 200])
@pytest.mark.parametrize("where", [None, 0, -1, "middle"])
@pytest.mark.parametrize("value", ["nan_mean", "nan_rstd", "huge_mean", "-inf_mean", "tiny_rstd"])
def test_layer_norm_extreme_row_check_matches_the_whole_array_rule(rows, where, value):
    rng = np.random.default_rng(rows)
    mean = rng.standard_normal(rows).astype(np.float32)
    rstd = (rng.random(rows) + 0.5).astype(np.float32)
    if where is not None:
        i = rows // 2 if where == "middle" else where
        if value == "nan_mean":
            mean[i] = np.nan
        elif value == "nan_rstd":
            rstd[i] = np.nan
        elif value == "huge_mean":
            mean[i] = 1e19
        elif value == "-inf_mean":
            mean[i] = -np.inf
        else:
            rstd[i] = 1e-19
    got, want = layernorm._extreme_rows(mean, rstd), _extreme_rows_reference(mean, rstd)
    assert (got is None) == (want is None)
    if want is not None:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape,ns", [((4, 1, 128), (128,)), ((6, 10), (10,)), ((3, 4, 5), (4, 5)),
                                      ((2, 3), 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_fast_path_equals_the_numpy_provider(shape, ns, affine):
    rng = np.random.default_rng(1)
    x = ta.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    nsh = (ns,) if isinstance(ns, int) else ns
    w = ta.tensor(rng.standard_normal(nsh).astype(np.float32), requires_grad=True) if affine else None
    b = ta.tensor(rng.standard_normal(nsh).astype(np.float32), requires_grad=True) if affine else None
    out = {}
    for provider in ("numpy", "numba"):
        with kernels.using(provider):
            y = ta.nn.functional.layer_norm(x, ns, w, b)
            y.sum().backward()
            out[provider] = [y.numpy()] + [t.grad.numpy().copy() for t in (x, w, b) if t is not None]
            for t in (x, w, b):
                if t is not None:
                    t.grad = None
    for a, c in zip(out["numpy"], out["numba"]):
        assert a.shape == c.shape
        np.testing.assert_allclose(c, a, rtol=2e-5, atol=2e-6)


def test_layer_norm_errors_unchanged():
    x = ta.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="must end with normalized_shape"):
        ta.nn.functional.layer_norm(x, (4,))
    with pytest.raises(ValueError, match="weight has shape"):
        ta.nn.functional.layer_norm(x, (3,), ta.tensor(np.ones(4, np.float32)))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        ta.nn.functional.layer_norm(x, 3, eps=-1)
    with pytest.raises(TypeError, match="dtype"):
        ta.nn.functional.layer_norm(x, 3, ta.tensor(np.ones(3, np.float64)))


@pytest.mark.parametrize("shape,chunks,dim", [((4, 1, 384), 3, -1), ((4, 1, 384), 3, 2), ((7, 5), 3, 0),
                                              ((7, 5), 2, -2), ((5,), 5, 0), ((5,), 8, 0), ((0, 3), 2, 0),
                                              ((2, 3, 4), 2, 1)])
def test_chunk_views_equal_numpy_array_split_and_gradients_flow(shape, chunks, dim):
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    t = ta.tensor(x, requires_grad=True)
    parts = t.chunk(chunks, dim=dim)
    n = shape[dim]
    size = max(-(-n // chunks), 1)
    want = np.split(x, list(range(size, n, size)), axis=dim)
    assert len(parts) == len(want)
    for p, w in zip(parts, want):
        np.testing.assert_array_equal(p.numpy(), w)
        assert p.array.base is not None or p.array.size == 0      # a view, no copy
    sum(((p * (i + 1)).sum() for i, p in enumerate(parts)), ta.tensor(0.0)).backward()
    expect = np.concatenate([np.full(w.shape, i + 1.0) for i, w in enumerate(want)], axis=dim)
    np.testing.assert_array_equal(t.grad.numpy(), expect)


def test_split_sizes_and_errors_unchanged():
    x = ta.tensor(np.arange(12.0).reshape(3, 4))
    assert [p.shape for p in x.split(3, dim=1)] == [(3, 3), (3, 1)]
    assert [p.shape for p in x.split([1, 2], axis=0)] == [(1, 4), (2, 4)]
    assert [p.shape for p in ta.split(x, [1, 3], -1)] == [(3, 1), (3, 3)]
    with pytest.raises(ValueError, match="add up to"):
        x.split([1, 1], dim=0)
    with pytest.raises(IndexError, match="out of range"):
        x.chunk(2, dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        x.chunk(2, dim=1.0)
    with pytest.raises(ValueError, match="positive int"):
        x.chunk(0)


@pytest.mark.parametrize("index", [(slice(None), -1), 1, -1, (Ellipsis, 0), (None, slice(1, 3)),
                                   slice(None, None, -1), True, (0, [1, 0]), [2, 0, 2],
                                   (slice(None), np.array([True, False, True]))])
def test_getitem_plain_fast_path_and_the_general_path_agree_with_numpy(index):
    x = np.arange(3 * 3 * 2, dtype=np.float64).reshape(3, 3, 2)
    t = ta.tensor(x, requires_grad=True)
    want = x[np.asarray(index) if isinstance(index, list) else index]
    got = t[index]
    np.testing.assert_array_equal(got.numpy(), want)
    got.sum().backward()
    expect = np.zeros_like(x)
    np.add.at(expect, np.asarray(index) if isinstance(index, list) else index, 1.0)
    np.testing.assert_array_equal(t.grad.numpy(), expect)


def test_getitem_error_names_the_op():
    with pytest.raises(IndexError, match="getitem: cannot index a tensor of shape"):
        ta.tensor(np.zeros((2, 3)))[:, 5]
