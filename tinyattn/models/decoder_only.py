"""A decoder-only Transformer (the GPT family's shape), composed by configuration.

    model = DecoderOnlyTransformer(vocab_size=50, d_model=64, num_layers=2, num_heads=4,
                                   num_kv_heads=2, positions="learned")
    logits = model(tokens)                     # (N, T) ints -> (N, T, vocab_size)

Each block is pre-norm (as GPT-2 and most models since): the residual stream x passes through
unchanged and every sub-layer adds to it::

    x = x + attn(ln1(x))          causal self-attention: token t sees tokens 0..t
    x = x + ff(ln2(x))            a two-layer MLP on each token by itself
    logits = lm_head(ln_f(x))

Configuration (every combination works with the KV cache and with left-padded batches):
  positions:  'learned' (a trained vector per position, GPT-2's wpe), 'sinusoid' (the 2017 paper's
              fixed table), 'rope' (rotary: queries and keys rotated by their position) or
              'alibi' (no position vectors: a per-head linear penalty on the distance);
  heads:      num_kv_heads = num_heads (MHA), 1 (MQA) or a divisor between (GQA);
  attention:  'full' (causal softmax), 'sliding' (each token sees the last ``window`` tokens and
              the first ``sinks``) or 'linear' (kernelised, a recurrent state instead of a cache).

state_dict layout (for num_layers = 2, positions='learned')::

    tok_emb.weight                      (vocab, d)
    pos_emb.weight                      (max_len, d)          only with positions='learned'
    blocks.0.ln1.weight, .bias          (d,)
    blocks.0.attn.q_proj.weight, .bias  (d, d)
    blocks.0.attn.k_proj.weight, .bias  (num_kv_heads · d/num_heads, d)
    blocks.0.attn.v_proj.weight, .bias  (num_kv_heads · d/num_heads, d)
    blocks.0.attn.out_proj.weight, .bias (d, d)
    blocks.0.ln2.weight, .bias
    blocks.0.ff.linear1.weight, .bias   (dim_feedforward, d)
    blocks.0.ff.linear2.weight, .bias   (d, dim_feedforward)
    blocks.1. ...
    ln_f.weight, .bias
    lm_head.weight                      (vocab, d)

Padding: ``padding`` (N, T) bool, True = padding, masks those keys everywhere; positions count
real tokens only (a row's first real token is position 0). With a cache the padding must be on
the left (``nn.left_pad``): see ``tinyattn/nn/kv_cache.py`` for why.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, unwrap
from ..backend import active_module, get_array_module
from ..nn.container import ModuleList
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.grouped_query import GroupedQueryAttention
from ..nn.kv_cache import DecoderCache
from ..nn.linear import Linear
from ..nn.module import Module, check_sizes
from ..nn.normalization import LayerNorm
from ..nn.positional import sinusoidal_table

__all__ = ["DecoderOnlyTransformer", "DecoderBlock", "FeedForward"]

POSITIONS = ("learned", "sinusoid", "rope", "alibi")
ATTENTIONS = ("full", "sliding", "linear")
# Options whose ops (rotary.py, alibi.py, sliding_window.py, linear_attention.py) are written in
# another part of issue 19; until they are in the library these options say so.
_PENDING = {"rope": "tinyattn.attention.rotary", "alibi": "tinyattn.attention.alibi",
            "sliding": "tinyattn.attention.sliding_window",
            "linear": "tinyattn.attention.linear_attention"}


def _pending(option, value):
    raise NotImplementedError(
        f"DecoderOnlyTransformer: {option}={value!r} needs {_PENDING[value]}, which is not in "
        f"this version of tinyattn yet; use positions='learned' or 'sinusoid' and "
        f"attention='full' meanwhile.")


@register_op("models.FeedForward")
class FeedForward(Module):
    """linear2(dropout(gelu(linear1(x)))): the position-wise MLP of a Transformer block."""

    def __init__(self, d_model, dim_feedforward, dropout=0.0, bias=True, dtype=None):
        super().__init__()
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))


@register_op("models.DecoderBlock")
class DecoderBlock(Module):
    """x + attn(ln1(x)), then x + ff(ln2(x)) (pre-norm)."""

    def __init__(self, d_model, num_heads, num_kv_heads, dim_feedforward, dropout=0.0, bias=True,
                 layer_norm_eps=1e-5, dtype=None):
        super().__init__()
        self.ln1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.attn = GroupedQueryAttention(d_model, num_heads, num_kv_heads, bias=bias,
                                          dropout=dropout, dtype=dtype)
        self.ln2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x, padding=None, cache=None):
        h = self.attn(self.ln1(x), is_causal=True, key_padding_mask=padding, cache=cache)
        x = x + self.dropout(h)
        return x + self.dropout(self.ff(self.ln2(x)))


@register_op("models.DecoderOnlyTransformer")
class DecoderOnlyTransformer(Module):
    """Token embedding (+ positions) -> ``num_layers`` pre-norm blocks -> ln_f -> lm_head.

    vocab_size, d_model, num_layers, num_heads: the sizes; num_kv_heads: key/value heads
    (default num_heads); dim_feedforward: the MLP's width (default 4 · d_model); max_len: the
    longest sequence the position table covers ('learned', 'sinusoid').

    forward(tokens (N, T) ints, padding=None (N, T) bool True = padding, cache=None)
        -> logits (N, T, vocab_size). With ``cache`` (from ``new_cache()``), ``tokens`` are the
        next tokens after those already cached: the prompt first (prefill, left-padded), then one
        token per call (decode).
    """

    def __init__(self, vocab_size, d_model=64, num_layers=2, num_heads=4, num_kv_heads=None,
                 dim_feedforward=None, max_len=256, positions="learned", attention="full",
                 window=None, sinks=0, dropout=0.0, bias=True, layer_norm_eps=1e-5, dtype=None):
        super().__init__()
        name = type(self).__name__
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        check_sizes(name, minimum=1, vocab_size=vocab_size, d_model=d_model,
                    num_layers=num_layers, num_heads=num_heads, dim_feedforward=dim_feedforward,
                    max_len=max_len)
        if positions not in POSITIONS:
            raise ValueError(f"{name}: positions must be one of {POSITIONS}, got {positions!r}.")
        if attention not in ATTENTIONS:
            raise ValueError(f"{name}: attention must be one of {ATTENTIONS}, got {attention!r}.")
        if (window is not None or sinks) and attention != "sliding":
            raise ValueError(f"{name}: window and sinks belong to attention='sliding' (got "
                             f"attention={attention!r}, window={window!r}, sinks={sinks!r}).")
        for option, value in (("positions", positions), ("attention", attention)):
            if value in _PENDING:
                _pending(option, value)
        self.vocab_size, self.d_model, self.max_len = int(vocab_size), int(d_model), int(max_len)
        self.positions, self.attention = positions, attention
        self.window, self.sinks = window, int(sinks)
        self.tok_emb = Embedding(vocab_size, d_model, dtype=dtype)
        if positions == "learned":
            self.pos_emb = Embedding(max_len, d_model, dtype=dtype)
        elif positions == "sinusoid":        # derived data: rebuilt here, not saved
            table = active_module().asarray(sinusoidal_table(max_len, d_model, dtype=dtype))
            self.register_buffer("pos_table", Tensor(table), persistent=False)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([
            DecoderBlock(d_model, num_heads, num_kv_heads, dim_feedforward, dropout, bias,
                         layer_norm_eps, dtype) for _ in range(int(num_layers))])
        self.ln_f = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.lm_head = Linear(d_model, vocab_size, bias=False, dtype=dtype)

    @property
    def num_layers(self):
        return len(self.blocks)

    def new_cache(self):
        """An empty cache for incremental decoding: one KVCache per block (only its key/value
        heads), sliding-window caches for attention='sliding'."""
        return DecoderCache(self.num_layers, window=self.window, sinks=self.sinks)

    # ------------------------------------------------------------------ forward
    def forward(self, tokens, padding=None, cache=None):
        tokens, padding = self._check(tokens, padding, cache)
        x = self.tok_emb(tokens)
        positions = self._positions(tokens, padding, cache)
        if self.positions == "learned":
            x = x + self.pos_emb(positions)
        elif self.positions == "sinusoid":
            x = x + Tensor(self.pos_table.array[positions].astype(x.dtype, copy=False))
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, padding, None if cache is None else cache.self_attn[i])
        return self.lm_head(self.ln_f(x))

    def _positions(self, tokens, padding, cache):
        """(N, T) int positions: real tokens count 0, 1, 2, ... in each row; padding gets 0.
        With a cache the count continues from the tokens it holds (left padding: position =
        column - the row's padding)."""
        xp = get_array_module(tokens)
        N, T = tokens.shape
        if cache is None:
            if padding is None:
                return xp.broadcast_to(xp.arange(T, dtype=np.int64), (N, T))
            return xp.maximum(xp.cumsum(~padding, axis=1) - 1, 0)
        if cache.offset == 0:                                   # prefill: remember the padding
            cache.padding = (xp.zeros(N, dtype=np.int64) if padding is None
                             else padding.sum(axis=1).astype(np.int64))
            if self.sinks:                                      # the sinks are each row's first
                for layer in cache.self_attn:                   # real tokens: keep those columns
                    layer.sink_columns = self.sinks + int(cache.padding.max())
        cols = xp.arange(cache.offset, cache.offset + T, dtype=np.int64)
        positions = xp.maximum(cols[None, :] - cache.padding[:, None], 0)
        return positions

    def _check(self, tokens, padding, cache):
        name = type(self).__name__
        arr = unwrap(tokens)
        if not hasattr(arr, "dtype"):
            arr = active_module().asarray(arr)
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name}: tokens must be integer ids of shape (N, T), got "
                             f"{arr.dtype} array of shape {tuple(arr.shape)}.")
        if bool((arr < 0).any()) or bool((arr >= self.vocab_size).any()):
            raise ValueError(f"{name}: token ids must lie in 0..{self.vocab_size - 1}, got "
                             f"values from {int(arr.min())} to {int(arr.max())}.")
        xp = get_array_module(arr)
        if padding is not None:
            padding = xp.asarray(unwrap(padding))
            if padding.dtype != bool or padding.shape != arr.shape:
                raise ValueError(f"{name}: padding must be a bool array like tokens "
                                 f"{tuple(arr.shape)} (True = padding), got {padding.dtype} "
                                 f"{tuple(padding.shape)}.")
            if not bool(padding.any()):
                padding = None
        if cache is not None:
            if not isinstance(cache, DecoderCache) or len(cache) != self.num_layers:
                raise TypeError(f"{name}: cache must come from model.new_cache() (a DecoderCache "
                                f"with {self.num_layers} layers), got {cache!r}.")
            if padding is not None:
                if cache.offset > 0:
                    raise ValueError(f"{name}: padding is only allowed in the first (prefill) "
                                     f"call with a cache; the tokens after it are all real.")
                left = padding == (xp.arange(arr.shape[1])[None, :] < padding.sum(axis=1)[:, None])
                if not bool(left.all()):
                    raise ValueError(f"{name}: with a cache, prompts must be left-padded (padding "
                                     f"only before the first real token; tinyattn.nn.left_pad "
                                     f"does it), so that every row's next token lands in the same "
                                     f"column.")
            if cache.batch_size is not None and cache.batch_size != arr.shape[0]:
                raise ValueError(f"{name}: the cache holds {cache.batch_size} sequences but "
                                 f"tokens has {arr.shape[0]} rows.")
        last = (cache.offset if cache is not None else 0) + arr.shape[1]
        pad_rows = 0 if padding is None else int(padding.sum(axis=1).min())
        if self.positions in ("learned", "sinusoid") and last - pad_rows > self.max_len:
            raise ValueError(f"{name}: position {last - pad_rows - 1} is beyond max_len="
                             f"{self.max_len} (positions={self.positions!r} has a vector for "
                             f"positions 0..{self.max_len - 1} only); build the model with a "
                             f"larger max_len or generate fewer tokens.")
        return arr, padding

    def extra_repr(self):
        a = self.blocks[0].attn
        return (f"vocab_size={self.vocab_size}, d_model={self.d_model}, layers={self.num_layers}, "
                f"heads={a.num_heads}, kv_heads={a.num_kv_heads}, positions={self.positions!r}, "
                f"attention={self.attention!r}")
