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
              for h in (4, 2)]
           # positions counted inside the sinks + window (StreamingLLM): s + W - 1 = 3 or 4 < T
           + [dict(positions=p, num_kv_heads=h, attention="sliding", window=3, sinks=s,
                   sink_positions="cache") for p, h, s in (("rope", 4, 1), ("rope", 1, 2),
                                                            ("alibi", 2, 1), ("alibi", 4, 2))])
IDS = ["{}-kv{}-{}{}{}".format(c["positions"], c["num_kv_heads"], c.get("attention", "full"),
                               f"-w{c['window']}s{c['sinks']}" if "window" in c else "",
                               "-cachepos" if c.get("sink_positions") == "cache" else "")
       for c in CONFIGS]


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
    (dict(attention="sliding", window=2, sink_positions="relative"), ValueError,
     "sink_positions must be one of"),
    (dict(positions="rope", sink_positions="cache"), ValueError, "needs attention='sliding'"),
    (dict(positions="learned", attention="sliding", window=2, sinks=1, sink_positions="cache"),
     ValueError, "cannot be renumbered"),
    (dict(positions="sinusoid", attention="sliding", window=2, sinks=1, sink_positions="cache"),
     ValueError, "cannot be renumbered"),
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


# --------------------------------------------------------------------------- sink_positions='cache'
def _numpy_rotate(x, index, base=10000.0):
    """x (..., D) turned by the angles index·base^(-2m/D), halves pairing (attention.rotary's)."""
    h = x.shape[-1] // 2
    angle = index * base ** (-np.arange(h) * 2.0 / x.shape[-1])
    c, s = np.cos(angle), np.sin(angle)
    return np.concatenate([x[..., :h] * c - x[..., h:] * s, x[..., h:] * c + x[..., :h] * s], -1)


def _numpy_cache_numbered(a, x, padding, window, sinks):
    """StreamingLLM's numbering, literally, in NumPy: for each query, gather the keys it sees (its
    row's real keys among the first ``sinks`` and the last ``window`` positions), number them 0..m-1
    in order, the query at m-1; rope turns each key by its number and the query by m-1, alibi adds
    -slope_h · (m-1 - number). Returns DecoderAttention's output (N, T, E); padding rows are NaN."""
    q, k, v = (t.numpy() for t in a.project(ta.tensor(x)))
    N, H, T, D = q.shape
    pos = np.cumsum(~padding, axis=1) - 1
    slopes = 2.0 ** (-8.0 * (np.arange(H) + 1) / H)                  # H a power of two
    heads = np.full((N, T, H, D), np.nan)
    for n in range(N):
        for i in range(T):
            if padding[n, i]:
                continue
            seen = [j for j in range(i + 1) if not padding[n, j]
                    and (pos[n, i] - pos[n, j] < window or pos[n, j] < sinks)]
            m = len(seen)
            for h in range(H):
                kv = h // a.groups
                keys, vals = k[n, kv, seen], v[n, kv, seen]
                if a.positions == "rope":
                    keys = np.stack([_numpy_rotate(kj, idx) for idx, kj in enumerate(keys)])
                    scores = keys @ _numpy_rotate(q[n, h, i], m - 1) / np.sqrt(D)
                else:
                    scores = q[n, h, i] @ keys.T / np.sqrt(D) - slopes[h] * (m - 1 - np.arange(m))
                w = np.exp(scores - scores.max())
                heads[n, i, h] = (w / w.sum()) @ vals
    W, b = a.out_proj.weight.numpy(), a.out_proj.bias.numpy()
    return heads.reshape(N, T, H * D) @ W.T + b


@pytest.mark.parametrize("positions,kv", [("rope", 2), ("rope", 1), ("alibi", 4), ("alibi", 2)])
def test_cache_sink_positions_equal_a_numpy_numbering_inside_the_cache(positions, kv):
    """A full pass (left padding in one row) and a KV cache fed one token at a time both equal the
    literal formulation: keys numbered by their index among those the query sees."""
    from tinyattn.models.decoder_only import DecoderAttention
    from tinyattn.nn import KVCache
    ta.manual_seed(3)
    a = DecoderAttention(16, 4, kv, positions=positions, attention="sliding", window=3, sinks=2,
                         sink_positions="cache").double().eval()
    T = 11
    x = np.random.default_rng(4).normal(size=(2, T, 16))
    padding = np.zeros((2, T), bool)
    padding[1, :3] = True
    pos = np.maximum(np.cumsum(~padding, axis=1) - 1, 0)
    expect = _numpy_cache_numbered(a, x, padding, 3, 2)
    real = ~padding
    with ta.no_grad():
        got = a(ta.tensor(x), pos, padding).numpy()
        np.testing.assert_allclose(got[real], expect[real], atol=1e-12)
        cache = KVCache(window=3, sinks=2)                   # row 0 alone, token by token
        steps = [a(ta.tensor(x[:1, t:t + 1]), np.array([[t]]), None, cache).numpy()[0, 0]
                 for t in range(T)]
    np.testing.assert_allclose(np.stack(steps), expect[0], atol=1e-12)
    assert len(cache) == 2 + 3


def test_decoder_attention_refuses_cache_sink_positions_it_cannot_renumber():
    from tinyattn.models.decoder_only import DecoderAttention
    for kw in (dict(positions="learned", sink_positions="cache"), dict(sink_positions="relative")):
        with pytest.raises(ValueError, match="DecoderAttention: sink_positions must be one of"):
            DecoderAttention(8, 2, attention="sliding", window=2, sinks=1, **kw)


def test_cache_sink_positions_cache_keeps_keys_unrotated():
    """rope with sink_positions='cache': the cache holds the projected keys as they are (rotated
    only at attention time, by their place in the cache); 'absolute' caches them rotated."""
    seq = _tokens(1, 7, seed=2)
    kept = {}
    for where in ("cache", "absolute"):
        m = _model(positions="rope", attention="sliding", window=2, sinks=1, sink_positions=where,
                   num_layers=1)
        cache = m.new_cache()
        with ta.no_grad():
            m(seq, cache=cache)
            k = m.blocks[0].attn.project(m.blocks[0].ln1(m.tok_emb(seq)))[1].numpy()
        assert cache.self_attn[0].positions.tolist() == [0, 5, 6]
        kept[where] = (cache.self_attn[0].keys.numpy(), k[:, :, [0, 5, 6]])
    np.testing.assert_allclose(*kept["cache"], atol=1e-15)
    assert not np.allclose(*kept["absolute"])


def test_cache_sink_positions_differ_from_absolute_only_past_sinks_plus_window():
    """Up to position s + W - 1 every key sits at its own index in the cache, so both numberings
    give the same logits; after it only the sinks' distances change. With no sinks they agree."""
    seq = _tokens(2, 12, seed=7)
    for positions in ("rope", "alibi"):
        logits = {}
        for sinks in (0, 2):
            for where in ("absolute", "cache"):
                m = _model(positions=positions, attention="sliding", window=3, sinks=sinks,
                           sink_positions=where)
                with ta.no_grad():
                    logits[sinks, where] = m(seq).numpy()
        np.testing.assert_allclose(logits[0, "cache"], logits[0, "absolute"], atol=1e-12)
        np.testing.assert_allclose(logits[2, "cache"][:, :5], logits[2, "absolute"][:, :5],
                                   atol=1e-12)                        # positions 0..4 = s + W - 1
        assert np.abs(logits[2, "cache"][:, 5:] - logits[2, "absolute"][:, 5:]).min() > 1e-9


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_cache_sink_positions_generation_same_tokens_with_and_without_cache(positions):
    from tinyattn.models import generate
    m = _model(positions=positions, attention="sliding", window=3, sinks=2, sink_positions="cache",
               num_kv_heads=2)
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 1]]
    for kw in (dict(), dict(do_sample=True, top_k=5)):
        runs = [generate(m, prompts, 14, use_cache=c, generator=ta.Generator().manual_seed(1), **kw)[0]
                for c in (True, False)]
        np.testing.assert_array_equal(*runs)


def test_cache_sink_positions_on_the_cupy_stand_in(monkeypatch):
    """The renumbered attention never falls back to NumPy: generation on CuPy-like arrays
    (tests/fakecupy.py) gives the host's tokens, with gradients on device arrays."""
    import fakecupy  # noqa: PLC0415
    from tinyattn.models import generate
    hosts = {p: _model(positions=p, attention="sliding", window=2, sinks=1, sink_positions="cache")
             for p in ("rope", "alibi")}
    prompts = [[1, 2, 3, 4, 5], [6, 7]]
    expect = {p: generate(m, prompts, 6)[0] for p, m in hosts.items()}
    fake = fakecupy.install(monkeypatch)
    for p, m in hosts.items():
        dev = m.to("cuda")
        tokens, _ = generate(dev, prompts, 6)
        assert isinstance(tokens, fakecupy.DeviceArray)
        np.testing.assert_array_equal(fake.asnumpy(tokens), expect[p])
        dev.train()
        dev(fake.asarray(_tokens(2, 6))).sum().backward()
        assert isinstance(dev.blocks[0].attn.q_proj.weight.grad.array, fakecupy.DeviceArray)
