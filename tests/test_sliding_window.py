"""Sliding window + attention sinks: the mask written out by hand, equal to causal & local window
without sinks, decoding offsets, equal to masked full SDPA (and torch's), errors, CuPy stand-in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fakecupy
import tinyattn as ta
from tinyattn.attention import causal_mask, local_window_mask, scaled_dot_product_attention
from tinyattn.attention.sliding_window import sliding_window_attention, sliding_window_mask


def _by_hand(Tq, Tk, window, sinks, offset):
    m = np.zeros((Tq, Tk), dtype=bool)
    for i in range(Tq):
        p = offset + i
        for j in range(Tk):
            m[i, j] = j <= p and (max(0, p - window + 1) <= j or j < sinks)
    return m


@pytest.mark.parametrize("Tq,Tk,window,sinks,offset", [
    (6, 6, 2, 0, 0), (8, 8, 3, 2, 0), (1, 10, 4, 1, 9), (3, 12, 5, 2, 9), (5, 5, 10, 3, 0)])
def test_mask_by_hand(Tq, Tk, window, sinks, offset):
    got = sliding_window_mask(Tq, Tk, window=window, sinks=sinks, query_offset=offset).numpy()
    np.testing.assert_array_equal(got, _by_hand(Tq, Tk, window, sinks, offset))


def test_without_sinks_it_is_causal_and_local_window():
    got = sliding_window_mask(9, window=4).numpy()
    want = (causal_mask(9) & local_window_mask(9, window=3)).numpy()
    np.testing.assert_array_equal(got, want)
    # decoding rows at their offsets are the rows of the full mask
    full = sliding_window_mask(9, window=3, sinks=2).numpy()
    np.testing.assert_array_equal(sliding_window_mask(2, window=3, sinks=2, query_offset=7).numpy(),
                                  full[7:9])


@pytest.mark.parametrize("window,sinks,offset,Tq", [(3, 0, 0, 9), (3, 2, 0, 9), (4, 1, 6, 3)])
def test_equals_masked_full_sdpa_and_torch(window, sinks, offset, Tq):
    rng = np.random.default_rng(window + sinks + offset)
    Tk = offset + Tq
    q = rng.standard_normal((2, 3, Tq, 4))
    k, v = rng.standard_normal((2, 3, Tk, 4)), rng.standard_normal((2, 3, Tk, 5))
    t = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = sliding_window_attention(*t, window=window, sinks=sinks, query_offset=offset)
    mask = _by_hand(Tq, Tk, window, sinks, offset)
    u = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    ref = scaled_dot_product_attention(*u, attn_mask=ta.tensor(mask))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(ta.tensor(g))
    ref.backward(ta.tensor(g))
    for a, b in zip(t, u):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-10)
    T = [torch.tensor(a) for a in (q, k, v)]
    tref = torch.nn.functional.scaled_dot_product_attention(*T, attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.numpy(), tref.numpy(), atol=1e-12)


def test_sinks_change_the_output_once_the_window_has_slid_past_them():
    rng = np.random.default_rng(7)
    q, k, v = (ta.tensor(rng.standard_normal((1, 8, 4))) for _ in range(3))
    a = sliding_window_attention(q, k, v, window=3).numpy()
    b = sliding_window_attention(q, k, v, window=3, sinks=1).numpy()
    np.testing.assert_allclose(a[0, :3], b[0, :3], atol=1e-12)     # key 0 still in the window
    assert np.abs(a[0, 3:] - b[0, 3:]).min() > 1e-6


@pytest.mark.parametrize("kw,match", [
    (dict(window=0), "window"), (dict(window=2, sinks=-1), "sinks"),
    (dict(window=2, query_offset=-1), "query_offset")])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        sliding_window_mask(4, **kw)


def test_runs_on_the_cupy_stand_in(monkeypatch):
    fakecupy.install(monkeypatch)
    rng = np.random.default_rng(8)
    arrs = [rng.standard_normal((2, 6, 4)) for _ in range(3)]
    for sinks in (0, 2):
        t = [ta.tensor(a, requires_grad=True) for a in arrs]
        out = sliding_window_attention(*t, window=2, sinks=sinks)
        assert isinstance(out.array, fakecupy.DeviceArray)
        out.sum().backward()
        assert all(isinstance(a.grad.array, fakecupy.DeviceArray) for a in t)
        T = [torch.tensor(a) for a in arrs]
        ref = torch.nn.functional.scaled_dot_product_attention(
            *T, attn_mask=torch.tensor(_by_hand(6, 6, 2, sinks, 0)))
        np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), atol=1e-12)


def test_window_only_uses_the_streaming_kernel(monkeypatch):
    import tinyattn.ops.memory_efficient_attention as mea
    calls = []
    orig = mea.memory_efficient_attention
    monkeypatch.setattr(mea, "memory_efficient_attention",
                        lambda *a, **kw: calls.append(kw) or orig(*a, **kw))
    x = ta.tensor(np.random.default_rng(9).standard_normal((1, 5, 4)))
    sliding_window_attention(x, x, x, window=2)
    assert calls == [dict(causal=True, scale=None, window=1)]
    sliding_window_attention(x, x, x, window=2, sinks=1)
    assert len(calls) == 1                              # sinks: the masked SDPA path
