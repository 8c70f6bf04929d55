"""The KV cache: prefill then one token at a time gives the same outputs as the whole sequence at
once, for nn.MultiheadAttention (and PyTorch's on the same weights), GroupedQueryAttention, the
Transformer decoder (self- and cross-attention) and padded batches; it keeps only the key/value
heads, reports its bytes, slides its window, and follows beams."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.models import TransformerSeq2Seq

torch = pytest.importorskip("torch")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _incremental(step, x, first, seq_axis=1):
    """Outputs of ``step(chunk)`` over x: a prefill of ``first`` tokens, then one at a time,
    concatenated along the sequence axis."""
    T = x.shape[seq_axis]
    cuts = [0, first, *range(first + 1, T + 1)]
    outs = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        idx = [slice(None)] * x.ndim
        idx[seq_axis] = slice(a, b)
        outs.append(step(ta.tensor(x[tuple(idx)])).numpy())
    return np.concatenate(outs, axis=seq_axis)


# ----------------------------------------------------------------------------------- MultiheadAttention
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("first", [1, 3])
def test_cached_mha_equals_uncached_and_torch(batch_first, first):
    E, H, N, T = 8, 2, 2, 6
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    ta.manual_seed(0)
    ours = nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = _x(N, T, E) if batch_first else _x(T, N, E)
    causal = nn.generate_square_subsequent_mask(T, dtype="float64")
    full = ours(ta.tensor(x), ta.tensor(x), ta.tensor(x), attn_mask=causal)[0].numpy()
    xt = torch.tensor(x)
    ref = theirs(xt, xt, xt, attn_mask=torch.tensor(causal.numpy()))[0].detach().numpy()
    np.testing.assert_allclose(full, ref, atol=1e-12)             # the full-sequence case

    cache = nn.KVCache()
    with ta.no_grad():
        inc = _incremental(lambda c: ours(c, c, c, is_causal=True, cache=cache)[0], x, first,
                           seq_axis=1 if batch_first else 0)
    np.testing.assert_allclose(inc, full, atol=1e-12)
    assert len(cache) == T and cache.offset == T
    assert cache.nbytes == 2 * N * H * T * (E // H) * 8


def test_cached_mha_with_left_padding_and_weights():
    """Left-padded prompts: the padding keys are remembered and masked in every later step; the
    weights over all keys come back too, zero at the padding."""
    E, H, T = 8, 2, 5
    ta.manual_seed(1)
    m = nn.MultiheadAttention(E, H, batch_first=True).double()
    x = _x(2, T, E, seed=1)
    pad = np.zeros((2, T), bool)
    pad[1, :2] = True                                             # row 1: 2 padding tokens first
    causal = nn.generate_square_subsequent_mask(T, dtype="float64")
    full, w_full = m(ta.tensor(x), ta.tensor(x), ta.tensor(x), attn_mask=causal,
                     key_padding_mask=pad)
    cache = nn.KVCache()
    with ta.no_grad():
        p = ta.tensor(x[:, :3])
        out0, _ = m(p, p, p, is_causal=True, key_padding_mask=pad[:, :3], cache=cache)
        steps = [m(ta.tensor(x[:, t:t + 1]), ta.tensor(x[:, t:t + 1]), ta.tensor(x[:, t:t + 1]),
                   is_causal=True, cache=cache) for t in (3, 4)]
    real = ~pad[:, :, None]
    np.testing.assert_allclose(out0.numpy() * real[:, :3], full.numpy()[:, :3] * real[:, :3], atol=1e-12)
    for t, (o, w) in zip((3, 4), steps):
        np.testing.assert_allclose(o.numpy()[:, 0], full.numpy()[:, t], atol=1e-12)
        np.testing.assert_allclose(w.numpy()[:, 0], w_full.numpy()[:, t, :t + 1], atol=1e-12)
        assert np.all(w.numpy()[1, 0, :2] == 0)
    np.testing.assert_array_equal(cache.key_padding, pad)


def test_cached_mha_gradient_reaches_the_new_tokens_only():
    """With gradients on, the new keys and values stay in the graph; the cached ones are
    constants (computed by earlier calls)."""
    ta.manual_seed(2)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = _x(1, 4, 4, seed=2)
    cache = nn.KVCache()
    with ta.no_grad():
        p = ta.tensor(x[:, :3])
        m(p, p, p, is_causal=True, cache=cache)
    new = ta.tensor(x[:, 3:], requires_grad=True)
    out, _ = m(new, new, new, is_causal=True, cache=cache)
    out.sum().backward()
    # the same gradient as the last row of the full computation w.r.t. the last input only
    full_in = ta.tensor(x, requires_grad=True)
    causal = nn.generate_square_subsequent_mask(4, dtype="float64")
    m.zero_grad()
    q = full_in[:, 3:]
    k = ta.concatenate([ta.tensor(x[:, :3]), full_in[:, 3:]], axis=1)
    m(q, k, k, attn_mask=causal[3:])[0].sum().backward()
    np.testing.assert_allclose(new.grad.numpy(), full_in.grad.numpy()[:, 3:], atol=1e-12)


def test_static_cache_projects_the_memory_once():
    ta.manual_seed(3)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    q, mem = _x(2, 3, 4, seed=3), _x(2, 5, 4, seed=4)
    pad = np.zeros((2, 5), bool)
    pad[0, 4] = True
    full = m(ta.tensor(q), ta.tensor(mem), ta.tensor(mem), key_padding_mask=pad)[0].numpy()
    cache = nn.KVCache(static=True)
    outs = [m(ta.tensor(q[:, t:t + 1]), ta.tensor(mem), ta.tensor(mem), key_padding_mask=pad,
              cache=cache)[0].numpy() for t in range(3)]
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=1e-12)
    assert len(cache) == 5 and cache.offset == 5                  # the memory, stored once


@pytest.mark.parametrize("kwargs,call,err,match", [
    (dict(add_bias_kv=True), {}, ValueError, "add_bias_kv"),
    ({}, dict(key_padding_mask=np.zeros((1, 2))), TypeError, "must be bool"),
    ({}, dict(cache="no"), TypeError, "KVCache"),
    ({}, dict(attn_mask=np.zeros((2, 2))), ValueError, r"attn_mask must have shape \(L, S\) = \(2, 5\)"),
])
def test_cached_mha_errors_are_named(kwargs, call, err, match):
    m = nn.MultiheadAttention(4, 2, batch_first=True, **kwargs)
    cache = nn.KVCache()
    x = ta.zeros(1, 3, 4)
    if "cache" not in call:
        if not kwargs:
            m(x, x, x, is_causal=True, cache=cache)
        call = dict(call, cache=cache)
    y = ta.zeros(1, 2, 4)
    with pytest.raises(err, match=match):
        m(y, y, y, **call)


# ----------------------------------------------------------------------------------- GQA
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_gqa_cache_equals_uncached_and_stores_only_kv_heads(kv_heads):
    ta.manual_seed(4)
    m = nn.GroupedQueryAttention(16, 4, num_kv_heads=kv_heads).double()
    x = _x(2, 7, 16, seed=5)
    full = m(ta.tensor(x), is_causal=True).numpy()
    cache = nn.KVCache()
    with ta.no_grad():
        inc = _incremental(lambda c: m(c, is_causal=True, cache=cache), x, 4)
    np.testing.assert_allclose(inc, full, atol=1e-12)
    assert cache.keys.shape == (2, kv_heads, 7, 4)
    assert cache.nbytes == 2 * 2 * kv_heads * 7 * 4 * 8          # H / H_kv times less than MHA


def test_gqa_cache_with_left_padding():
    ta.manual_seed(5)
    m = nn.GroupedQueryAttention(8, 4, num_kv_heads=2).double()
    x = _x(2, 5, 8, seed=6)
    pad = np.array([[True, True, False, False, False], [False] * 5])
    full = m(ta.tensor(x), is_causal=True, key_padding_mask=pad).numpy()
    cache = nn.KVCache()
    with ta.no_grad():
        a = m(ta.tensor(x[:, :3]), is_causal=True, key_padding_mask=pad[:, :3], cache=cache).numpy()
        b = m(ta.tensor(x[:, 3:4]), is_causal=True, cache=cache).numpy()
        c = m(ta.tensor(x[:, 4:]), is_causal=True, cache=cache).numpy()
    np.testing.assert_allclose(np.concatenate([a, b, c], 1)[~pad], full[~pad], atol=1e-12)


# ----------------------------------------------------------------------------------- the window
def test_sliding_window_cache_keeps_sinks_and_the_last_window():
    cache = nn.KVCache(window=3, sinks=2)
    xp = np
    for t in range(10):
        k = ta.tensor(xp.full((1, 1, 1, 2), float(t)))
        keys, _ = cache.update(k, k)
        assert keys.shape[2] == min(t + 1, 2 + 3 + 1)             # kept + the new one
        allowed = cache.causal_mask(1)[0]
        seen = sorted(int(p) for p, a in zip(cache.last_positions, allowed) if a)
        assert seen == sorted(set(range(min(2, t + 1))) | set(range(max(0, t - 2), t + 1)))
    np.testing.assert_array_equal(cache.positions, [0, 1, 7, 8, 9])
    np.testing.assert_array_equal(cache.keys.numpy()[0, 0, :, 0], [0, 1, 7, 8, 9])
    assert cache.nbytes == 2 * 5 * 2 * 8


def test_windowed_cache_in_mha_equals_a_windowed_mask():
    """MHA with a sliding-window cache = MHA over the whole sequence with the band mask."""
    ta.manual_seed(6)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x, T, W, S = _x(1, 9, 4, seed=7), 9, 3, 1
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    blocked = (j > i) | ((i - j >= W) & (j >= S))
    full = m(ta.tensor(x), ta.tensor(x), ta.tensor(x), attn_mask=blocked)[0].numpy()
    cache = nn.KVCache(window=W, sinks=S)
    with ta.no_grad():
        inc = _incremental(lambda c: m(c, c, c, is_causal=True, cache=cache)[0], x, 5)
    np.testing.assert_allclose(inc, full, atol=1e-12)
    assert len(cache) == S + W


# ----------------------------------------------------------------------------------- decoder layers
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_decoder_cache_equals_the_whole_target(norm_first):
    ta.manual_seed(7)
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first)
    dec = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8)).double()
    tgt, mem = _x(2, 5, 8, seed=8), _x(2, 4, 8, seed=9)
    mpad = np.array([[False, False, False, True], [False] * 4])
    full = dec(ta.tensor(tgt), ta.tensor(mem), tgt_mask=nn.generate_square_subsequent_mask(5, dtype="float64"),
               memory_key_padding_mask=mpad).numpy()
    cache = nn.DecoderCache(2, cross=True)
    with ta.no_grad():
        inc = _incremental(lambda c: dec(c, ta.tensor(mem), memory_key_padding_mask=mpad,
                                         tgt_is_causal=True, cache=cache), tgt, 2)
    np.testing.assert_allclose(inc, full, atol=1e-12)
    assert cache.offset == 5
    assert cache.nbytes == 2 * (2 * 2 * 2 * 5 * 4 * 8) + 2 * (2 * 2 * 2 * 4 * 4 * 8)   # self + cross


def test_seq2seq_greedy_with_and_without_cache_agree():
    ta.manual_seed(8)
    m = TransformerSeq2Seq(9, 7, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                           dim_feedforward=16, dropout=0.0, padding_idx=0).double().eval()
    src = np.array([[3, 4, 5, 6, 0], [2, 7, 8, 1, 1]])
    a = m.greedy_decode(src, 1, 8, eos=2).numpy()
    b = m.greedy_decode(src, 1, 8, eos=2, use_cache=True).numpy()
    np.testing.assert_array_equal(a, b)


def test_reorder_follows_beams():
    cache = nn.DecoderCache(1)
    k = ta.tensor(np.arange(3 * 2, dtype=float).reshape(3, 1, 2, 1))
    cache.self_attn[0].update(k, k)
    cache.reorder([2, 2, 0])
    np.testing.assert_array_equal(cache.self_attn[0].keys.numpy()[:, 0, :, 0], [[4, 5], [4, 5], [0, 1]])


def test_left_pad():
    tokens, pad = nn.left_pad([[5, 6, 7], [8]], pad_value=0)
    np.testing.assert_array_equal(tokens, [[5, 6, 7], [0, 0, 8]])
    np.testing.assert_array_equal(pad, [[False] * 3, [True, True, False]])
    with pytest.raises(ValueError, match="at least one token"):
        nn.left_pad([[1], []])


@pytest.mark.parametrize("kwargs,match", [(dict(window=0), "window"), (dict(sinks=-1), "sinks"),
                                          (dict(window=2, static=True), "static")])
def test_bad_cache_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.KVCache(**kwargs)


def test_update_with_another_layer_shape_is_named():
    cache = nn.KVCache()
    cache.update(ta.zeros(1, 2, 3, 4), ta.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="belongs to one layer"):
        cache.update(ta.zeros(1, 1, 1, 4), ta.zeros(1, 1, 1, 4))
