"""The decoder-only model: its state_dict layout, its configurations, causality, padding, the KV
cache (prefill + decode = one pass; a padded batch = each prompt alone), its memory per
configuration, a PyTorch twin written from the same weights, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.models import DecoderOnlyTransformer
from tinyattn.nn import left_pad

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _model(**kw):
    ta.manual_seed(kw.pop("seed", 0))
    args = dict(vocab_size=13, d_model=16, num_layers=2, num_heads=4, max_len=32)
    args.update(kw)
    return DecoderOnlyTransformer(**args).double().eval()


def _tokens(N, T, seed=0, vocab=13):
    return np.random.default_rng(seed).integers(0, vocab, (N, T))


SLIDING = dict(attention="sliding", window=3, sinks=1)
CONFIGS = ([dict(positions=p, num_kv_heads=h) for p in ("learned", "sinusoid", "rope", "alibi")
            for h in (4, 2, 1)]
           + [dict(positions=p, num_kv_heads=h, **SLIDING) for p in ("learned", "rope", "alibi")
              for h in (4, 1)]
           + [dict(positions="rope", num_kv_heads=4, attention="sliding", window=4, sinks=0)]
           + [dict(positions=p, num_kv_heads=h, attention="linear") for p in ("learned", "rope")
              for h in (4, 2)])
IDS = ["{}-kv{}-{}{}".format(c["positions"], c["num_kv_heads"], c.get("attention", "full"),
                             f"-w{c['window']}s{c['sinks']}" if "window" in c else "") for c in CONFIGS]


def _cache_bytes(cfg, N, T, layers=2, D=4):
    """What the cache must hold after T tokens of N unpadded sequences (float64)."""
    kv = cfg["num_kv_heads"]
    if cfg.get("attention") == "linear":                 # S (D x D) and z (D) per kv head
        return layers * N * kv * (D * D + D) * 8
    kept = T if cfg.get("attention") != "sliding" else min(T, cfg["sinks"] + cfg["window"])
    return layers * 2 * N * kv * kept * D * 8


def test_state_dict_layout():
    m = _model(num_kv_heads=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert list(shapes)[:2] == ["tok_emb.weight", "pos_emb.weight"]
    assert shapes["tok_emb.weight"] == (13, 16) and shapes["pos_emb.weight"] == (32, 16)
    assert shapes["blocks.0.attn.q_proj.weight"] == (16, 16)
    assert shapes["blocks.0.attn.k_proj.weight"] == (8, 16)      # 2 kv heads of width 4
    assert shapes["blocks.1.ff.linear1.weight"] == (64, 16)
    assert shapes["lm_head.weight"] == (13, 16) and "lm_head.bias" not in shapes
    assert {"ln_f.weight", "ln_f.bias", "blocks.1.ln2.weight"} <= set(shapes)
    assert "pos_emb.weight" not in _model(positions="sinusoid").state_dict()


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_causal_later_tokens_do_not_change_earlier_logits(cfg):
    m = _model(**cfg)
    a, b = _tokens(2, 8), _tokens(2, 8, seed=1)
    b[:, :5] = a[:, :5]
    with ta.no_grad():
        la, lb = m(a).numpy(), m(b).numpy()
    np.testing.assert_allclose(la[:, :5], lb[:, :5], atol=1e-12)
    assert not np.allclose(la[:, 5:], lb[:, 5:])


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_cache_prefill_then_decode_equals_one_pass(cfg):
    m = _model(**cfg)
    seq = _tokens(3, 9, seed=1)
    cache = m.new_cache()
    with ta.no_grad():
        full = m(seq).numpy()
        parts = [m(seq[:, :4], cache=cache).numpy()] + [m(seq[:, t:t + 1], cache=cache).numpy()
                                                         for t in range(4, 9)]
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-12)
    assert cache.nbytes == _cache_bytes(cfg, 3, 9)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_left_padded_batch_equals_each_prompt_alone(cfg):
    m = _model(**cfg)
    prompts = [_tokens(1, n, seed=n)[0] for n in (5, 2, 4)]
    nxt = _tokens(3, 3, seed=9)
    tokens, pad = left_pad(prompts)
    cache = m.new_cache()
    with ta.no_grad():
        batch = [m(tokens, padding=pad, cache=cache).numpy()[:, -1]]
        batch += [m(nxt[:, t:t + 1], cache=cache).numpy()[:, 0] for t in range(3)]
        uncached = m(np.concatenate([tokens, nxt], 1),
                     padding=np.concatenate([pad, np.zeros((3, 3), bool)], 1)).numpy()[:, -4:]
        for i, p in enumerate(prompts):
            alone = m(np.concatenate([p, nxt[i]])[None]).numpy()[0, -4:]
            np.testing.assert_allclose(np.stack([b[i] for b in batch]), alone, atol=1e-12)
            np.testing.assert_allclose(uncached[i], alone, atol=1e-12)


def test_right_padding_without_cache_counts_positions_from_real_tokens():
    m = _model()
    seq = _tokens(1, 4, seed=3)
    padded = np.concatenate([seq, [[0, 0]]], 1)
    pad = np.array([[False] * 4 + [True] * 2])
    with ta.no_grad():
        np.testing.assert_allclose(m(padded, padding=pad).numpy()[:, :4], m(seq).numpy(), atol=1e-12)


def test_gradients_reach_every_parameter():
    m = _model(num_kv_heads=1)
    m.train()
    logits = m(_tokens(2, 5))
    logits.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and np.any(p.grad.numpy()), name


def _torch_twin(m, tokens):
    """The learned-position model written out in PyTorch from our state_dict."""
    P = {k: torch.tensor(v) for k, v in m.state_dict().items()}
    N, T = tokens.shape
    t = torch.tensor(tokens)
    x = TF.embedding(t, P["tok_emb.weight"]) + P["pos_emb.weight"][:T]
    for i in range(m.num_layers):
        a = m.blocks[i].attn
        pre = f"blocks.{i}."
        h = TF.layer_norm(x, (m.d_model,), P[pre + "ln1.weight"], P[pre + "ln1.bias"])

        def proj(name, heads, h=h, pre=pre, a=a):
            y = TF.linear(h, P[pre + f"attn.{name}.weight"], P[pre + f"attn.{name}.bias"])
            return y.reshape(N, T, heads, a.head_dim).transpose(1, 2)

        q, k, v = proj("q_proj", a.num_heads), proj("k_proj", a.num_kv_heads), proj("v_proj", a.num_kv_heads)
        o = TF.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + TF.linear(o.transpose(1, 2).reshape(N, T, m.d_model), P[pre + "attn.out_proj.weight"],
                          P[pre + "attn.out_proj.bias"])
        h = TF.layer_norm(x, (m.d_model,), P[pre + "ln2.weight"], P[pre + "ln2.bias"])
        f = TF.gelu(TF.linear(h, P[pre + "ff.linear1.weight"], P[pre + "ff.linear1.bias"]))
        x = x + TF.linear(f, P[pre + "ff.linear2.weight"], P[pre + "ff.linear2.bias"])
    x = TF.layer_norm(x, (m.d_model,), P["ln_f.weight"], P["ln_f.bias"])
    return TF.linear(x, P["lm_head.weight"])


@pytest.mark.parametrize("kv", [4, 2, 1])
def test_matches_a_pytorch_twin_on_the_same_weights(kv):
    m = _model(num_kv_heads=kv)
    seq = _tokens(2, 7, seed=4)
    with ta.no_grad():
        ours = m(seq).numpy()
    np.testing.assert_allclose(ours, _torch_twin(m, seq).numpy(), atol=1e-10)


def test_state_dict_round_trip():
    a, b = _model(seed=1), _model(seed=2)
    seq = _tokens(1, 5)
    b.load_state_dict(a.state_dict())
    with ta.no_grad():
        np.testing.assert_array_equal(a(seq).numpy(), b(seq).numpy())


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(positions="absolute"), ValueError, "positions must be one of"),
    (dict(attention="sparse"), ValueError, "attention must be one of"),
    (dict(window=4), ValueError, "window and sinks belong to attention='sliding'"),
    (dict(attention="sliding"), ValueError, "needs window"),
    (dict(attention="sliding", window=2, sinks=-1), ValueError, "sinks must be >= 0"),
    (dict(attention="linear", positions="alibi"), ValueError, "never forms"),
    (dict(positions="rope", d_model=12, num_heads=4), ValueError, "must be even"),
    (dict(num_heads=4, num_kv_heads=3), ValueError, "not a multiple of num_kv_heads"),
])
def test_bad_configuration_is_named(kwargs, err, match):
    with pytest.raises(err, match=match):
        _model(**kwargs)


def test_bad_calls_are_named():
    m = _model(max_len=6)
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.12"):
        m(np.array([[1, 13]]))
    with pytest.raises(ValueError, match="integer ids of shape"):
        m(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="beyond max_len=6"):
        m(_tokens(1, 7))
    cache = m.new_cache()
    with pytest.raises(ValueError, match="left-padded"):
        m(_tokens(1, 3), padding=np.array([[False, True, False]]), cache=cache)
    m(_tokens(2, 3), cache=cache)
    with pytest.raises(ValueError, match="holds 2 sequences"):
        m(_tokens(1, 1), cache=cache)
    with pytest.raises(ValueError, match="only allowed in the first"):
        m(_tokens(2, 1), padding=np.array([[True], [False]]), cache=cache)
    with pytest.raises(TypeError, match="new_cache"):
        m(_tokens(2, 1), cache=ta.nn.KVCache())


def test_rope_and_alibi_models_extrapolate_without_a_table():
    """rope / alibi have no position table: positions beyond max_len are allowed (that is the
    point of lesson 22), where learned / sinusoid refuse."""
    for positions in ("rope", "alibi"):
        m = _model(positions=positions, max_len=4)
        with ta.no_grad():
            assert m(_tokens(1, 9)).shape == (1, 9, 13)


def test_rope_logits_depend_on_relative_positions_only():
    """Shifting every position by the same offset leaves a rope model's logits unchanged (its
    attention sees only offsets i - j) - checked by prefilling a cache with a dummy prefix that
    is then masked out as padding."""
    m = _model(positions="rope")
    seq = _tokens(1, 6, seed=5)
    with ta.no_grad():
        plain = m(seq).numpy()
        cache = m.new_cache()
        shifted = m(np.concatenate([np.zeros((1, 3), int), seq], 1),
                    padding=np.array([[True] * 3 + [False] * 6]), cache=cache).numpy()[:, 3:]
    np.testing.assert_allclose(shifted, plain, atol=1e-12)


def test_sliding_window_model_matches_the_masked_full_model():
    """attention='sliding' (the library's sliding_window_attention) = attention='full' with the
    same weights and the band mask applied by hand: window 3, sink 1."""
    m = _model(**SLIDING)
    seq = _tokens(2, 8, seed=6)
    T = 8
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    band = (j <= i) & ((i - j < 3) | (j < 1))
    full = _model()
    full.load_state_dict(m.state_dict())
    with ta.no_grad():
        x = full.tok_emb(seq) + full.pos_emb(np.arange(T))
        for blk in full.blocks:
            a = blk.attn
            q, k, v = a.project(blk.ln1(x))
            x = x + a.merge_heads(a.attend(q, k, v, band))
            x = x + blk.ff(blk.ln2(x))
        by_hand = full.lm_head(full.ln_f(x)).numpy()
        np.testing.assert_allclose(m(seq).numpy(), by_hand, atol=1e-12)


def test_linear_attention_cache_is_constant_size():
    m = _model(attention="linear", num_kv_heads=2)
    cache = m.new_cache()
    sizes = []
    with ta.no_grad():
        m(_tokens(2, 3), cache=cache)
        for t in range(20):
            m(_tokens(2, 1, seed=t), cache=cache)
            sizes.append(cache.nbytes)
    assert len(set(sizes)) == 1 and sizes[0] == _cache_bytes(dict(num_kv_heads=2, attention="linear"), 2, 23)
    with pytest.raises(ValueError, match="one token per call"):
        m(_tokens(2, 2), cache=cache)
