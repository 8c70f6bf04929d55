"""Rotary position embedding: against complex multiplication in NumPy, torch-free; relative-offset
property; positions (T,) and (N, T); errors; the CuPy stand-in."""
from __future__ import annotations

import numpy as np
import pytest

import fakecupy
import tinyattn as ta
from tinyattn.attention.rotary import rotary_embedding


def _rope_complex(x, positions, base=10000.0):
    """Independent formulation: pair m = (x[m], x[m+d/2]) as the complex number x[m] + i x[m+d/2],
    multiplied by e^{i p θ_m}."""
    d = x.shape[-1]
    h = d // 2
    theta = base ** (-2.0 * np.arange(h) / d)
    z = x[..., :h] + 1j * x[..., h:]
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos.reshape((pos.shape[0],) + (1,) * (x.ndim - 3) + (pos.shape[1],))
    z = z * np.exp(1j * pos[..., None] * theta)
    return np.concatenate([z.real, z.imag], axis=-1)


def test_matches_complex_multiplication():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 8))
    out = rotary_embedding(ta.tensor(x), np.arange(7)).numpy()
    np.testing.assert_allclose(out, _rope_complex(x, np.arange(7)), atol=1e-12)


def test_per_sequence_positions_for_a_cache_offset():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 6))
    pos = np.array([[5, 6, 7], [0, 1, 2]])
    out = rotary_embedding(ta.tensor(x), pos, base=500.0).numpy()
    np.testing.assert_allclose(out, _rope_complex(x, pos, base=500.0), atol=1e-12)
    # row 0 equals rotating at absolute offset 5 alone
    np.testing.assert_allclose(out[0], rotary_embedding(ta.tensor(x[0]), np.arange(5, 8), base=500.0).numpy(),
                               atol=1e-12)


def test_position_zero_is_identity_and_norm_is_kept():
    x = np.random.default_rng(2).standard_normal((5, 10))
    out = rotary_embedding(ta.tensor(x), np.zeros(5, dtype=int)).numpy()
    np.testing.assert_allclose(out, x, atol=1e-15)
    out = rotary_embedding(ta.tensor(x), np.arange(5) * 37).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)


def test_score_depends_only_on_offset():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal(16), rng.standard_normal(16)

    def score(i, j):
        qi = rotary_embedding(ta.tensor(q[None]), np.array([i])).numpy()[0]
        kj = rotary_embedding(ta.tensor(k[None]), np.array([j])).numpy()[0]
        return qi @ kj

    for offset in (0, 1, 5, -3):
        s = [score(i + offset, i) for i in (0, 7, 100, 1234)]
        np.testing.assert_allclose(s, s[0], rtol=1e-9)
    assert abs(score(5, 0) - score(0, 0)) > 1e-3          # and it does depend on the offset


def test_float32_stays_float32_and_gradient_is_inverse_rotation():
    x = ta.tensor(np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = rotary_embedding(x, np.arange(3))
    assert y.dtype == np.float32
    g = np.random.default_rng(5).standard_normal((3, 4))
    y.backward(ta.tensor(g.astype(np.float32)))
    # rotation is orthogonal: the gradient is g rotated by the negative angles
    np.testing.assert_allclose(x.grad.numpy(), _rope_complex(g, -np.arange(3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,pos,match", [
    ((3, 5), np.arange(3), "even"),
    ((3, 4), np.arange(4), "positions must have shape"),
    ((3, 4), np.arange(3.0), "integers"),
    ((4,), np.arange(1), r"\(\.\.\., T, d\)"),
])
def test_errors(shape, pos, match):
    with pytest.raises((ValueError, TypeError), match=match):
        rotary_embedding(ta.tensor(np.zeros(shape)), pos)


def test_runs_on_the_cupy_stand_in(monkeypatch):
    fake = fakecupy.install(monkeypatch)
    x_np = np.random.default_rng(6).standard_normal((2, 3, 4))
    x = ta.tensor(x_np, requires_grad=True)
    y = rotary_embedding(x, np.arange(3))
    assert isinstance(y.array, fakecupy.DeviceArray)
    y.sum().backward()
    assert isinstance(x.grad.array, fakecupy.DeviceArray)
    np.testing.assert_allclose(y.cpu().numpy(), _rope_complex(x_np, np.arange(3)), atol=1e-12)
    del fake
