"""ops.linalg.Linear computes x @ wᵀ two ways, by the number of rows (FEW_ROWS): both must give
PyTorch's F.linear for any number of leading axes, and the same gradients."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.ops import linalg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("lead", [(1,), (4,), (2, 1, 3), (linalg.FEW_ROWS,), (linalg.FEW_ROWS + 1,),
                                  (5, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_torch_on_both_sides_of_few_rows(lead, dtype):
    rng = np.random.default_rng(len(lead) + lead[0])
    x = rng.standard_normal((*lead, 24)).astype(dtype)
    w = rng.standard_normal((40, 24)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    g = rng.standard_normal((*lead, 40)).astype(dtype)
    xs, ws, bs = (ta.tensor(a, requires_grad=True) for a in (x, w, b))
    out = ta.nn.functional.linear(xs, ws, bs)
    assert out.shape == (*lead, 40) and out.array.flags.c_contiguous and out.dtype == dtype
    out.backward(ta.tensor(g))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = torch.nn.functional.linear(xt, wt, bt)
    ref.backward(torch.from_numpy(g))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.array, ref.detach().numpy(), rtol=tol, atol=tol)
    for ours, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(ours.grad.array, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_linear_sees_an_input_changed_in_place():
    x = ta.tensor(np.ones((2, 3, 4), np.float32), requires_grad=True)
    out = ta.nn.functional.linear(x, ta.tensor(np.ones((5, 4), np.float32), requires_grad=True))
    with ta.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()


# --- the bias added inside BLAS (kernels/lowlevel/numpy_blas.py), many rows
from tinyattn.kernels.lowlevel import numpy_blas  # noqa: E402


def _reference(x, w, b):
    out = np.matmul(x, w.T)
    out += b
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(33, 24, 40), (80, 128, 48), (256, 64, 7), (40, 1, 5)])
def test_addmm_is_numpys_product_plus_bias_bit_for_bit(m, k, n, dtype):
    rng = np.random.default_rng(m + k + n)
    x, w = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    if not numpy_blas.addmm(x, w, b, out):
        pytest.skip("NumPy's bundled OpenBLAS is not there: Linear uses its NumPy path")
    assert np.array_equal(out, _reference(x, w, b))


def test_addmm_long_inner_dimension_agrees_to_rounding():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((64, 1024)).astype(np.float32), rng.standard_normal((96, 1024)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    out = np.empty((64, 96), np.float32)
    if not numpy_blas.addmm(x, w, b, out):
        pytest.skip("NumPy's bundled OpenBLAS is not there")
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    ref = _reference(x, w, b)
    # no further from the float64 result than NumPy's own float32 product is, give or take a unit
    assert np.abs(out - exact).max() <= np.abs(ref - exact).max() + np.spacing(np.float32(np.abs(exact).max()))


def test_addmm_declines_what_it_cannot_do_in_one_call():
    x, w = np.ones((40, 8), np.float32), np.ones((6, 8), np.float32)
    b, out = np.ones(6, np.float32), np.zeros((40, 6), np.float32)
    assert not numpy_blas.addmm(x.astype(np.float64), w, b, out)            # mixed dtypes
    assert not numpy_blas.addmm(np.asfortranarray(x), w, b, out)           # not row-major
    assert not numpy_blas.addmm(x, w, np.ones(12, np.float32)[::2], out)   # strided bias
    assert not numpy_blas.addmm(x.astype(np.float16), w.astype(np.float16), b.astype(np.float16),
                                out.astype(np.float16))
    assert (out == 0).all()                                                # left untouched
    empty = np.ones((40, 6), np.float32)
    if numpy_blas.addmm(np.ones((40, 0), np.float32), np.ones((6, 0), np.float32), b, empty):
        assert (empty == 1).all()                                          # K = 0: just the bias


@pytest.mark.parametrize("strided", [False, True])
def test_linear_with_many_rows_equals_product_plus_bias(strided):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 40, 64)).astype(np.float32)
    x = x[:, ::2] if strided else x                    # a strided input is made contiguous first
    w, b = rng.standard_normal((48, 64)).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    out = ta.nn.functional.linear(ta.tensor(x), ta.tensor(w), ta.tensor(b)).array
    rows = np.ascontiguousarray(x).reshape(-1, 64)
    assert np.array_equal(out.reshape(-1, 48), _reference(rows, w, b))
