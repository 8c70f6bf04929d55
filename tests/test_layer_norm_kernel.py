"""layer_norm's compiled kernels (kernels/numba/layer_norm.py) against their twins in
ops/layernorm.py: row lengths on and off the vector width, rows of 1, empty inputs, both float
dtypes, with and without weight and bias (an absent bias is added as -0.0, which must keep every
value, signed zeros included), inf and NaN entries."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from tinyattn import kernels  # noqa: E402

SHAPES = [(0, 5), (3, 0), (3, 1), (1, 7), (768, 64), (6, 129), (2, 1030)]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("affine", ["weight and bias", "weight only", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layer_norm_kernels_agree_with_their_twins(shape, dtype, affine):
    rng = np.random.default_rng(shape[0] + shape[1])
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    if shape[0] >= 4 and shape[1] >= 2:
        x[1, 0], x[2, 1] = np.inf, np.nan                     # rows of NaN, as in the twin
        x[3] = 2.5                                           # a constant row: x̂ = 0 exactly
    n = shape[1]
    w = (rng.standard_normal(n)).astype(dtype) if affine != "none" else None
    b = (rng.standard_normal(n)).astype(dtype) if affine == "weight and bias" else None
    with np.errstate(invalid="ignore", over="ignore"):
        plain = kernels.implementation("layer_norm_forward", "numpy")(x, w, b, 1e-5)
        fast = kernels.implementation("layer_norm_forward", "numba")(x, w, b, 1e-5)
    for p, f in zip(plain, fast):
        assert p.shape == f.shape and p.dtype == f.dtype
        np.testing.assert_allclose(f, p, **_tol(dtype))
    zeros = plain[0] == 0
    assert np.array_equal(np.signbit(plain[0][zeros]), np.signbit(fast[0][zeros]))
    y, mean, rstd = plain
    ok = np.isfinite(mean)
    g = rng.standard_normal(shape).astype(dtype)
    args = (g[ok], x[ok], mean[ok], rstd[ok], w)
    back_plain = kernels.implementation("layer_norm_backward", "numpy")(*args)
    back_fast = kernels.implementation("layer_norm_backward", "numba")(*args)
    for p, f in zip(back_plain, back_fast):
        assert p.shape == f.shape and p.dtype == f.dtype
        np.testing.assert_allclose(f, p, **_tol(dtype))


def test_layer_norm_backward_kernel_takes_strided_rows():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 40)).astype(np.float32)[:, ::2]
    g = rng.standard_normal((9, 40)).astype(np.float32)[:, ::2]
    w = rng.standard_normal(20).astype(np.float32)
    _, mean, rstd = kernels.implementation("layer_norm_forward", "numpy")(x, w, None, 1e-5)
    fast = kernels.implementation("layer_norm_forward", "numba")(x, w, None, 1e-5)
    np.testing.assert_allclose(fast[1], mean, rtol=1e-6, atol=1e-7)
    for p, f in zip(kernels.implementation("layer_norm_backward", "numpy")(g, x, mean, rstd, w),
                    kernels.implementation("layer_norm_backward", "numba")(g, x, mean, rstd, w)):
        np.testing.assert_allclose(f, p, **_tol(np.float32))
