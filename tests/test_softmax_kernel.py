"""softmax's compiled forward (kernels/numba/softmax.py) against its twin in ops/softmax.py on both
of its paths (rows shorter than SHORT_ROW in three sweeps, longer rows one at a time) and with masks
of every broadcast shape (used as they are when they repeat over leading axes, else broadcast)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from tinyattn import kernels  # noqa: E402
from tinyattn.kernels.numba import softmax as numba_softmax  # noqa: E402

SHAPES = [(0, 5), (3, 0), (1, 1), (7, 1), (5, 12), (64, 4, 12, 12), (3, 2, 63), (4, 1030), (2, 3, 5, 7)]


def _scores(shape, dtype, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    if x.size >= 8:                                       # inf, -inf and NaN rows and entries
        flat = x.reshape(-1, x.shape[-1])
        flat[0, 0] = np.inf
        flat[-1, :] = -np.inf
        flat[len(flat) // 2, -1] = np.nan
    return x


def _agree(x, axis, mask):
    with np.errstate(invalid="ignore", over="ignore"):
        plain = kernels.implementation("softmax_forward", "numpy")(x, axis, mask)
        fast = kernels.implementation("softmax_forward", "numba")(x, axis, mask)
    assert fast.shape == plain.shape and fast.dtype == plain.dtype
    tol = dict(rtol=2e-6, atol=1e-7) if x.dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fast, plain, **tol)          # NaN where NaN
    return fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_kernel_agrees_with_its_twin_without_a_mask(shape, dtype):
    x = _scores(shape, dtype, len(shape))
    _agree(x, -1, None)
    if len(shape) > 1:
        _agree(x, 0, None)                                   # moved axis
        _agree(np.swapaxes(x, 0, -1), -1, None)              # strided rows


def _causal(L, S):
    return ~np.triu(np.ones((L, S), bool), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S", [1, 5, 12, 70, 1100])
@pytest.mark.parametrize("mask_shape", ["(L, S)", "(1, H, L, S)", "(N, 1, L, S)", "(N, H, L, S)",
                                        "(N, 1, 1, S)", "(L, 1)", "read-only", "empty rows"])
def test_softmax_kernel_agrees_with_its_twin_with_a_mask(mask_shape, S, dtype):
    N, H, L = 3, 2, 4
    x = _scores((N, H, L, S), dtype, S)
    rng = np.random.default_rng(S)
    if mask_shape == "(L, S)":
        mask = _causal(L, S)
    elif mask_shape == "(1, H, L, S)":
        mask = rng.random((1, H, L, S)) > 0.3
    elif mask_shape == "(N, 1, L, S)":
        mask = rng.random((N, 1, L, S)) > 0.3
    elif mask_shape == "(N, H, L, S)":
        mask = rng.random((N, H, L, S)) > 0.3
    elif mask_shape == "(N, 1, 1, S)":
        mask = rng.random((N, 1, 1, S)) > 0.3
    elif mask_shape == "(L, 1)":
        mask = np.array([True, False, True, True])[:, None]
    elif mask_shape == "read-only":
        mask = np.broadcast_to(_causal(L, S), (H, L, S))
    else:
        mask = _causal(L, S)
        mask[1] = False                                      # a row with nothing kept: zeros
    out = _agree(x, -1, mask)
    blocked = out[~np.broadcast_to(mask, x.shape)]
    assert np.all((blocked == 0) | np.isnan(blocked))      # NaN only in rows with a kept inf/NaN


def test_both_paths_give_the_same_numbers():
    x = _scores((6, 40), np.float32, 1)
    mask = np.random.default_rng(2).random((6, 40)) > 0.2
    short = numba_softmax.softmax_forward(x, -1, mask)
    saved = numba_softmax.SHORT_ROW
    try:
        numba_softmax.SHORT_ROW = 1                          # every row through _softmax_rows
        long = numba_softmax.softmax_forward(x, -1, mask)
    finally:
        numba_softmax.SHORT_ROW = saved
    np.testing.assert_array_equal(short, long)
