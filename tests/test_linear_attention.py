"""Linear attention: causal prefix-sum form and non-causal form equal the quadratic form with the
same feature map (written in NumPy here), the one-token recurrence equals the causal form,
no (T, T) intermediate in the causal form, errors, the CuPy stand-in."""
from __future__ import annotations

import numpy as np
import pytest

import fakecupy
import tinyattn as ta
from tinyattn.attention.linear_attention import linear_attention, linear_attention_step

EPS = 1e-6


def _phi(x, kind):
    return {"elu": lambda a: np.where(a > 0, a + 1, np.exp(np.minimum(a, 0))),
            "relu": lambda a: np.maximum(a, 0), "identity": lambda a: a}[kind](x)


def _quadratic(q, k, v, causal, kind):
    """The explicit form: weights φ(Q)φ(K)ᵀ, masked, each row divided by its sum."""
    w = _phi(q, kind) @ np.swapaxes(_phi(k, kind), -1, -2)
    if causal:
        w = w * np.tril(np.ones(w.shape[-2:]))
    return (w @ v) / (w.sum(-1, keepdims=True) + EPS)


def _qkv(seed, shape_q=(2, 3, 7, 4), shape_v=None):
    rng = np.random.default_rng(seed)
    shape_v = shape_v or shape_q[:-1] + (5,)
    return rng.standard_normal(shape_q), rng.standard_normal(shape_q), rng.standard_normal(shape_v)


@pytest.mark.parametrize("kind", ["elu", "relu", "identity"])
@pytest.mark.parametrize("causal", [True, False])
def test_equals_the_quadratic_form(kind, causal):
    q, k, v = _qkv(1)
    if kind == "identity":       # keep the identity map's denominators away from zero
        q, k = np.abs(q) + 0.1, np.abs(k) + 0.1
    out = linear_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v), causal=causal,
                           feature_map_kind=kind).numpy()
    np.testing.assert_allclose(out, _quadratic(q, k, v, causal, kind), rtol=1e-10, atol=1e-12)


def test_gradients_equal_the_quadratic_forms():
    q, k, v = _qkv(2, (2, 6, 3))
    t = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    linear_attention(*t, causal=True).sum().backward()
    # the same quadratic form built from tinyattn ops, differentiated by autograd
    u = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    from tinyattn.attention.linear_attention import feature_map
    w = feature_map(u[0]) @ feature_map(u[1]).transpose(-1, -2) * ta.tensor(np.tril(np.ones((6, 6))))
    ((w @ u[2]) / (w.sum(dim=-1, keepdim=True) + EPS)).sum().backward()
    for a, b in zip(t, u):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_recurrent_steps_equal_the_causal_form():
    q, k, v = _qkv(3)
    full = linear_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v), causal=True).numpy()
    state, outs = None, []
    for t in range(q.shape[-2]):
        o, state = linear_attention_step(ta.tensor(q[..., t, :]), ta.tensor(k[..., t, :]),
                                         ta.tensor(v[..., t, :]), state)
        outs.append(o.numpy())
    np.testing.assert_allclose(np.stack(outs, axis=-2), full, rtol=1e-10, atol=1e-12)
    assert state[0].shape == (2, 3, 4, 5) and state[1].shape == (2, 3, 4)   # fixed size, any T


def test_causal_form_never_builds_a_time_by_time_array(monkeypatch):
    """Record the shape of every array the causal form's ops produce: none is (T, T)."""
    import tinyattn.autograd.tensor as tensor_mod
    shapes = []
    orig = tensor_mod.Tensor._output.__func__

    def spy(cls, arr, ctx, idx):
        shapes.append(tuple(arr.shape))
        return orig(cls, arr, ctx, idx)

    monkeypatch.setattr(tensor_mod.Tensor, "_output", classmethod(spy))
    T = 64
    q, k, v = _qkv(4, (1, T, 3), (1, T, 2))
    x = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    linear_attention(*x, causal=True).sum().backward()
    assert shapes, "the spy saw no op outputs"
    assert not [s for s in shapes if s.count(T) >= 2], shapes


def test_errors():
    q = ta.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="feature_map must be one of"):
        linear_attention(q, q, q, feature_map_kind="softmax")
    with pytest.raises(ValueError, match="causal=True needs as many queries as keys"):
        linear_attention(ta.tensor(np.zeros((2, 3))), q, q, causal=True)
    with pytest.raises(ValueError, match="d or Tk differ"):
        linear_attention(q, ta.tensor(np.zeros((4, 2))), q)


def test_runs_on_the_cupy_stand_in(monkeypatch):
    fakecupy.install(monkeypatch)
    q, k, v = _qkv(5, (2, 4, 3))
    t = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = linear_attention(*t, causal=True)
    assert isinstance(out.array, fakecupy.DeviceArray)
    out.sum().backward()
    assert all(isinstance(a.grad.array, fakecupy.DeviceArray) for a in t)
    np.testing.assert_allclose(out.cpu().numpy(), _quadratic(q, k, v, True, "elu"), rtol=1e-10)
