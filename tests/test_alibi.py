"""ALiBi: slopes against the paper's values written out by hand, the bias layout and cache offsets,
and scaled_dot_product_attention with the bias against torch's with the same bias."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fakecupy
import tinyattn as ta
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.attention.alibi import alibi_bias, alibi_slopes


def test_slopes_power_of_two_heads():
    # the paper: for 8 heads the slopes are 1/2^1, 1/2^2, ..., 1/2^8
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-15)
    # 16 heads: 1/2^0.5, 1/2^1, ..., 1/2^8
    np.testing.assert_allclose(alibi_slopes(16), [2.0 ** (-k / 2) for k in range(1, 17)], rtol=1e-15)
    assert alibi_slopes(1) == [2.0 ** -8]


def test_slopes_other_head_counts_follow_the_papers_rule():
    # 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then every other 8-head slope 2^-1, 2^-3
    np.testing.assert_allclose(alibi_slopes(6), [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3], rtol=1e-15)
    # 12 heads: 8-head slopes 2^-1..2^-8, then 16-head slopes 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
    want = [2.0 ** -k for k in range(1, 9)] + [2.0 ** -(k + 0.5) for k in range(4)]
    np.testing.assert_allclose(alibi_slopes(12), want, rtol=1e-15)
    assert len(set(alibi_slopes(12))) == 12


def test_bias_values_and_decoding_offset():
    b = alibi_bias(4, 5, dtype=np.float64).numpy()
    assert b.shape == (4, 5, 5)
    m = np.array(alibi_slopes(4))
    i, j = np.arange(5)[:, None], np.arange(5)[None]
    np.testing.assert_allclose(b, -m[:, None, None] * np.abs(i - j), rtol=1e-15)
    np.testing.assert_allclose(np.diagonal(b, axis1=1, axis2=2), 0.0)
    # the last row computed alone, at its absolute position, equals the last row of the full bias
    row = alibi_bias(4, [4], np.arange(5), dtype=np.float64).numpy()
    np.testing.assert_array_equal(row, b[:, 4:5, :])
    # ALiBi is translation-invariant: shifting every position changes nothing
    np.testing.assert_array_equal(alibi_bias(4, np.arange(100, 105), dtype=np.float64).numpy(), b)


def test_sdpa_with_bias_matches_torch():
    rng = np.random.default_rng(0)
    N, H, L, E = 2, 4, 6, 8
    q, k, v = (rng.standard_normal((N, H, L, E)) for _ in range(3))
    bias = alibi_bias(H, L, dtype=np.float64).numpy()
    causal = np.tril(np.ones((L, L), dtype=bool))
    bias = np.where(causal, bias, -np.inf)
    tq, tk, tv = (ta.tensor(a, requires_grad=True) for a in (q, k, v))
    out = scaled_dot_product_attention(tq, tk, tv, attn_mask=ta.tensor(bias))
    Q, K, V = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(Q, K, V, attn_mask=torch.tensor(bias))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(ref.shape)
    out.backward(ta.tensor(g))
    ref.backward(torch.tensor(g))
    for mine, theirs in ((tq, Q), (tk, K), (tv, V)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("args,match", [
    ((0, 4), "positive int"),
    ((2, np.arange(3.0)), "int positions"),
    ((2, np.arange(3), np.zeros((2, 2), dtype=int)), "1-D"),
])
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        alibi_bias(*args)


def test_runs_on_the_cupy_stand_in(monkeypatch):
    fakecupy.install(monkeypatch)
    b = alibi_bias(3, 4)
    assert isinstance(b.array, fakecupy.DeviceArray) and b.dtype == np.float32
    np.testing.assert_allclose(b.cpu().numpy()[2, 0, 3], -3 * alibi_slopes(3)[2], rtol=1e-6)
