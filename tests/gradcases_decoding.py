"""Gradient-check cases for issue 19's modules: grouped-query attention (MHA, GQA, MQA; masks,
padding, a KV cache holding earlier keys) and the decoder-only model and its pieces."""
from __future__ import annotations

import numpy as np
from gradcases import GradCase
from module_gradcheck import module_case

import tinyattn as ta
from tinyattn.models import DecoderOnlyTransformer
from tinyattn.models.decoder_only import DecoderBlock, FeedForward
from tinyattn.nn.grouped_query import GroupedQueryAttention
from tinyattn.nn.kv_cache import KVCache


def x64(*shape, seed=0):
    return ta.tensor(np.random.default_rng(seed).normal(size=shape), dtype="float64",
                     requires_grad=True)


def _case(op, make_module, make_inputs, call=None, label=""):
    fn, inputs = module_case(make_module, make_inputs, call=call)
    return GradCase(op, fn, inputs, label=label)


_PAD = np.array([[True, False, False], [False, False, False]])      # row 0 left-padded


def _with_cache(m, x):
    """Two cached keys and values (constants, as the cache holds them: not functions of the
    parameters, which finite differences perturb), then x attends to them and to itself."""
    cache = KVCache()
    rng = np.random.default_rng(9)
    kept = (x.shape[0], m.num_kv_heads, 2, m.head_dim)
    cache.update(ta.tensor(rng.normal(size=kept)), ta.tensor(rng.normal(size=kept)))
    return m(x, is_causal=True, cache=cache)


CASES = [
    _case("nn.GroupedQueryAttention", lambda: GroupedQueryAttention(8, 4, num_kv_heads=2),
          lambda: [x64(2, 3, 8)], call=lambda m, x: m(x, is_causal=True), label="GQA,causal"),
    _case("nn.GroupedQueryAttention", lambda: GroupedQueryAttention(8, 4, num_kv_heads=1),
          lambda: [x64(2, 3, 8, seed=1)], call=lambda m, x: m(x, is_causal=True, key_padding_mask=_PAD),
          label="MQA,causal,padding"),
    _case("nn.GroupedQueryAttention", lambda: GroupedQueryAttention(8, 2),
          lambda: [x64(2, 3, 8, seed=2), x64(1, 2, 3, 3, seed=3)],
          call=lambda m, x, bias: m(x, attn_mask=bias), label="MHA,float mask with grad"),
    _case("nn.GroupedQueryAttention", lambda: GroupedQueryAttention(8, 4, num_kv_heads=2),
          lambda: [x64(2, 2, 8, seed=4)], call=_with_cache, label="GQA,KV cache"),
    _case("models.FeedForward", lambda: FeedForward(4, 6), lambda: [x64(2, 3, 4, seed=5)]),
    _case("models.DecoderBlock", lambda: DecoderBlock(8, 4, 2, 12), lambda: [x64(2, 3, 8, seed=6)],
          call=lambda m, x: m(x, np.array([[0, 0, 1], [0, 1, 2]]), padding=_PAD)),
    _case("models.DecoderOnlyTransformer",
          lambda: DecoderOnlyTransformer(7, d_model=8, num_layers=1, num_heads=2, num_kv_heads=1,
                                         dim_feedforward=8, max_len=6),
          lambda: [], call=lambda m: m(np.array([[1, 2, 3], [4, 5, 6]]), padding=_PAD),
          label="learned,MQA,padding"),
    _case("models.DecoderOnlyTransformer",
          lambda: DecoderOnlyTransformer(7, d_model=8, num_layers=2, num_heads=2,
                                         dim_feedforward=8, max_len=6, positions="sinusoid"),
          lambda: [], call=lambda m: m(np.array([[1, 2, 3], [4, 5, 6]])), label="sinusoid,MHA"),
]

from tinyattn.models.decoder_only import DecoderAttention  # noqa: E402

_POS = np.array([[0, 0, 1], [0, 1, 2]])                               # positions for _PAD's rows


def _attn_case(label, pad=True, cached=False, **kw):
    def call(m, x):
        if not cached:
            return m(x, _POS if pad else np.arange(3)[None].repeat(2, 0), _PAD if pad else None)
        cache = KVCache(window=kw.get("window"), sinks=kw.get("sinks", 0))
        rng = np.random.default_rng(9)
        kept = (2, m.num_kv_heads, 2, m.head_dim)
        cache.update(ta.tensor(rng.normal(size=kept)), ta.tensor(rng.normal(size=kept)))
        return m(x, np.array([[2, 3, 4], [2, 3, 4]]), None, cache)
    return _case("models.DecoderAttention", lambda: DecoderAttention(8, 4, 2, **kw),
                 lambda: [x64(2, 3, 8, seed=7)], call=call, label=label)


CASES += [
    _attn_case("rope,GQA,padding", positions="rope"),
    _attn_case("alibi,GQA,padding", positions="alibi"),
    _attn_case("sliding window 2 + 1 sink, no padding (sliding_window_attention)", pad=False,
               attention="sliding", window=2, sinks=1),
    _attn_case("sliding, rope, padding (mask path)", positions="rope", attention="sliding",
               window=2, sinks=1),
    _attn_case("linear, padding (masked prefix sums)", attention="linear"),
    _attn_case("linear, no padding (attention.linear_attention)", pad=False, attention="linear"),
    _attn_case("rope, full, KV cache with 2 kept keys", cached=True, positions="rope"),
    _attn_case("alibi, sliding, KV cache", cached=True, positions="alibi", attention="sliding",
               window=3, sinks=1),
    _attn_case("sliding, rope, positions inside the cache, padding", positions="rope",
               attention="sliding", window=1, sinks=1, sink_positions="cache"),
    _attn_case("sliding, rope, positions inside the cache, KV cache", cached=True, positions="rope",
               attention="sliding", window=2, sinks=1, sink_positions="cache"),
    _attn_case("sliding, alibi, positions inside the cache, KV cache", cached=True,
               positions="alibi", attention="sliding", window=2, sinks=1, sink_positions="cache"),
]
