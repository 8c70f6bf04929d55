"""relu's compiled kernels (kernels/numba/relu.py) equal their twins in ops/elementwise.py bit for
bit: signed zeros, NaN and inf in either input, awkward shapes, both float dtypes; inputs the
kernels do not take (integers, strided arrays, mixed dtypes) go to the twin; and relu's gradient is
the same under either provider."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import kernels

pytest.importorskip("numba")

SHAPES = [(), (0,), (1,), (7,), (3, 0, 2), (4, 9, 3), (64, 12, 129)]
SPECIAL = [-0.0, 0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -1.0]


def _inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    n = min(x.size, len(SPECIAL))
    x.reshape(-1)[:n] = SPECIAL[:n]                        # x's special values beside random g
    g.reshape(-1)[:n] = SPECIAL[::-1][:n]                  # and g's, where x takes other values
    return x, g


def _same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    view = np.uint32 if a.dtype == np.float32 else np.uint64
    assert np.array_equal(np.ascontiguousarray(a).view(view), np.ascontiguousarray(b).view(view))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_relu_kernels_equal_their_twins_bit_for_bit(shape, dtype):
    x, g = _inputs(shape, dtype, len(shape))
    for name, args in (("relu_forward", (x,)), ("relu_backward", (x, g))):
        plain = kernels.implementation(name, "numpy")(*args)
        fast = kernels.implementation(name, "numba")(*args)
        _same_bits(plain, fast)
    assert not np.signbit(kernels.implementation("relu_forward", "numba")(x)[x == 0]).any()


def test_relu_backward_gives_zero_where_x_is_not_positive_even_for_nan_gradients():
    x = np.array([-1.0, 0.0, -0.0, np.nan, 2.0], np.float32)
    g = np.array([np.nan, np.inf, -3.0, 5.0, -4.0], np.float32)
    out = kernels.implementation("relu_backward", "numba")(x, g)
    _same_bits(out, np.array([0.0, 0.0, 0.0, 0.0, -4.0], np.float32))


@pytest.mark.parametrize("case", ["int64", "strided", "mixed dtypes", "broadcast gradient"])
def test_inputs_the_kernels_do_not_take_go_to_the_twin(case):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    g = rng.standard_normal((6, 8)).astype(np.float32)
    if case == "int64":
        x, g = (x * 10).astype(np.int64), (g * 10).astype(np.int64)
    elif case == "strided":
        x, g = x[:, ::2], g[:, ::2]
    elif case == "mixed dtypes":
        g = g.astype(np.float64)
    else:
        g = g[:1]
    for name, args in (("relu_forward", (x,)), ("relu_backward", (x, g))):
        plain = kernels.implementation(name, "numpy")(*args)
        fast = kernels.implementation(name, "numba")(*args)
        assert fast.dtype == plain.dtype and np.array_equal(fast, plain)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_gradient_is_the_same_under_either_provider(dtype):
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((5, 33)).astype(dtype)
    w = rng.standard_normal((5, 33)).astype(dtype)
    grads = {}
    for provider in ("numpy", "numba"):
        with kernels.using(provider):
            x = ta.tensor(x0, requires_grad=True)
            (ta.relu(x) * ta.tensor(w)).sum().backward()
            grads[provider] = x.grad.numpy()
    _same_bits(grads["numpy"], grads["numba"])
    assert np.array_equal(grads["numba"], np.where(x0 > 0, w, 0))


def test_integer_relu_stays_integer():
    out = ta.relu(ta.tensor(np.array([-2, 0, 3])))
    assert out.dtype == np.int64 and out.numpy().tolist() == [0, 0, 3]
