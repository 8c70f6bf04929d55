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
          call=lambda m, x: m(x, padding=_PAD)),
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
