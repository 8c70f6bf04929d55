"""Exact GELU's compiled gradient (kernels/numba/gelu.py) against its twin in ops/elementwise.py:
shapes, dtypes, special values, inputs it hands to the twin; and the note that keeps the GELU
kernels' disk cache from going stale when erf.py's fit changes."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("numba")

import tinyattn as ta  # noqa: E402
from tinyattn import kernels  # noqa: E402
from tinyattn.kernels.numba import erf as numba_erf  # noqa: E402
from tinyattn.kernels.numba import gelu as numba_gelu  # noqa: E402

SHAPES = [(0,), (1,), (7,), (3, 0, 2), (4, 1, 512), (4, 9, 33)]
SPECIAL = [-0.0, 0.0, np.nan, np.inf, -np.inf, 1e-45, 3.9, -3.9, 5.657, -5.657, 1e30, -1e30]


def _inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    n = min(x.size, len(SPECIAL))
    x.reshape(-1)[:n] = SPECIAL[:n]
    return x, g


def _close(fast, plain, dtype):
    assert fast.shape == plain.shape and fast.dtype == plain.dtype
    tol = dict(rtol=2e-6, atol=2e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fast, plain, **tol)       # NaN where NaN (x = ±inf: inf · 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_backward_kernel_agrees_with_its_twin(shape, dtype):
    x, g = _inputs(shape, dtype, len(shape))
    with np.errstate(invalid="ignore", over="ignore"):
        plain = kernels.implementation("gelu_backward", "numpy")(x, g)
        fast = kernels.implementation("gelu_backward", "numba")(x, g)
    _close(fast, plain, dtype)


def test_gelu_backward_kernel_on_a_dense_grid_and_strided_inputs():
    x = np.linspace(-9, 9, 100_001).astype(np.float32)
    g = np.ones_like(x)
    plain = kernels.implementation("gelu_backward", "numpy")(x, g)
    _close(kernels.implementation("gelu_backward", "numba")(x, g), plain, np.float32)
    xs, gs = x[:-1].reshape(-1, 8)[:, ::3], np.full((x.size // 8, 8), 0.5, np.float32)[:, ::3]
    _close(kernels.implementation("gelu_backward", "numba")(xs, gs),
           kernels.implementation("gelu_backward", "numpy")(xs, gs), np.float32)


@pytest.mark.parametrize("case", ["0-d", "mixed dtypes", "broadcast gradient", "float16"])
def test_gradients_the_kernel_does_not_take_go_to_the_twin(case):
    x = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32)
    g = np.ones((6, 8), np.float32)
    if case == "0-d":
        x, g = x[0, 0][()], g[0, 0][()]
        x, g = np.asarray(x), np.asarray(g)
    elif case == "mixed dtypes":
        g = g.astype(np.float64)
    elif case == "broadcast gradient":
        g = g[:1]
    else:
        x, g = x.astype(np.float16), g.astype(np.float16)
    plain = kernels.implementation("gelu_backward", "numpy")(x, g)
    fast = kernels.implementation("gelu_backward", "numba")(x, g)
    assert fast.dtype == plain.dtype and np.array_equal(fast, plain)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_gradient_under_either_provider_and_against_torch(dtype):
    torch = pytest.importorskip("torch")
    x0 = (np.random.default_rng(1).standard_normal((5, 40)) * 3).astype(dtype)
    w = np.random.default_rng(2).standard_normal((5, 40)).astype(dtype)
    grads = {}
    for provider in ("numpy", "numba"):
        with kernels.using(provider):
            x = ta.tensor(x0, requires_grad=True)
            (ta.gelu(x) * ta.tensor(w)).sum().backward()
            grads[provider] = x.grad.numpy()
    _close(grads["numba"], grads["numpy"], np.dtype(dtype))
    tx = torch.from_numpy(x0).requires_grad_()
    (torch.nn.functional.gelu(tx) * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(grads["numba"], tx.grad.numpy(),
                               **(dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12)))


def test_gelu_file_names_the_erf_fit_it_inlines():
    # Numba's disk cache checks a file's own text: gelu.py must change when erf.py's fit does
    fit = f"degree {numba_erf.DEGREE} on [0, {numba_erf.LIMIT}²], {numba_erf.SCHEME}"
    assert numba_gelu.ERF_FIT == fit
    with open(os.path.join(os.path.dirname(numba_gelu.__file__), "gelu.py"), encoding="utf-8") as f:
        assert f'ERF_FIT = "{fit}"' in f.read()
