"""The float32 erf kernel (kernels/numba/erf.py) against math.erf, its reference: within one unit
in the last place on a dense grid, exact at the special values, and used by exact GELU."""
import math

import numpy as np
import pytest

pytest.importorskip("numba")

import tinyattn as ta  # noqa: E402
from tinyattn.kernels.numba.erf import LIMIT, erf_float32  # noqa: E402
from tinyattn.ops.special import erf  # noqa: E402


def _reference(x):
    return np.array([math.erf(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


def test_erf_float32_within_one_ulp_of_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 200_001), np.geomspace(1e-30, 1e-3, 2001),
                        np.linspace(LIMIT - 1e-3, LIMIT + 1e-3, 2001)]).astype(np.float32)
    x = np.concatenate([x, -x])
    ours = erf_float32(x)
    ref = _reference(x)
    assert ours.dtype == np.float32
    ulp = np.spacing(np.abs(ref).astype(np.float32))
    assert np.max(np.abs(ours - ref) / ulp) <= 1.0


def test_erf_float32_special_values_and_shape():
    x = np.array([[0.0, -0.0, np.inf], [-np.inf, np.nan, 3.0]], dtype=np.float32)
    out = erf_float32(x)
    assert out.shape == (2, 3)
    assert out[0, 0] == 0.0 and not np.signbit(out[0, 0])
    assert out[0, 1] == 0.0 and np.signbit(out[0, 1])
    assert out[0, 2] == 1.0 and out[1, 0] == -1.0 and np.isnan(out[1, 1])
    np.testing.assert_allclose(erf_float32(x[:, ::2]), erf_float32(np.ascontiguousarray(x[:, ::2])))


def test_erf_dispatch_keeps_dtype_and_float64_stays_exact():
    x64 = np.linspace(-6, 6, 1001)
    assert np.array_equal(erf(x64), _reference(x64))          # float64: math.erf itself
    x32 = x64.astype(np.float32)
    assert erf(x32).dtype == np.float32
    np.testing.assert_allclose(erf(x32), _reference(x32), rtol=0, atol=1.2e-7)


def test_exact_gelu_float32_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((4, 63, 512)).astype(np.float32) * 3
    ours = ta.nn.functional.gelu(ta.tensor(x)).array
    theirs = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    # (0.5 x (1 + erf) cancels for negative x: the same formula with math.erf is as far off)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=2e-6)
