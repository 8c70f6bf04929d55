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
              the first ``sinks``) or 'linear' (kernelised, a recurrent state instead of a cache);
  sink_positions (attention='sliding'): 'absolute' (every key keeps its position in the sequence)
              or 'cache' (StreamingLLM's: positions counted inside the set a query sees, sinks then
              window; rope and alibi only). See ``DecoderAttention``. The default is 'absolute':
              it is the only numbering every position kind has (learned and sinusoid vectors are
              added to the input, once per token, and cannot be renumbered per query), and it
              keeps what earlier models and lessons computed. 'cache' is what streaming far past
              the training length wants with rope (lesson 25 measures it).

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
from .. import ops
from ..attention.alibi import alibi_bias, alibi_slopes
from ..attention.attend import scaled_dot_product_attention
from ..attention.linear_attention import feature_map, linear_attention, linear_attention_step
from ..attention.rotary import rotary_embedding
from ..attention.sliding_window import sliding_window_attention
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

__all__ = ["DecoderOnlyTransformer", "DecoderAttention", "DecoderBlock", "FeedForward"]

POSITIONS = ("learned", "sinusoid", "rope", "alibi")
ATTENTIONS = ("full", "sliding", "linear")
SINK_POSITIONS = ("absolute", "cache")
LINEAR_EPS = 1e-6            # added to linear attention's denominators, as attention.linear_attention


@register_op("models.DecoderAttention")
class DecoderAttention(GroupedQueryAttention):
    """Causal self-attention of one decoder block: ``GroupedQueryAttention``'s projections and
    heads, plus where the configuration puts positions and which keys a query sees.

    positions: 'rope' rotates q and k by their positions (attention.rotary_embedding) before the
        keys are cached; 'alibi' adds -m_h·(distance) to the scores (attention.alibi_bias); others
        leave attention position-blind (the model adds position vectors to its input instead).
    attention: 'full' (every earlier token), 'sliding' (the last ``window`` tokens and the first
        ``sinks``, attention.sliding_window_attention's rule), 'linear' (attention.linear_attention
        with the elu + 1 feature map; with a cache its recurrent state, not keys, is kept).
    sink_positions (sliding only): 'absolute': a key keeps its position in the sequence, so a query
        at position p meets a sink key p positions away (rotary keys are cached already rotated).
        'cache' (StreamingLLM, Xiao et al. 2023): positions are counted inside the set of keys the
        query sees, sinks first, then the window, the query last. That set is the sinks 0..s-1 and
        the window p-W+1..p; while p < s + W - 1 they overlap into 0..p (nothing to renumber), after
        that the query sits at index s + W - 1. A window key's distance to the query stays p - j; a
        sink key's becomes min(p, s + W - 1) - j, at most s + W - 1 however long the stream.
        rope: the cache keeps the keys UNROTATED; at attention time the keys are rotated by their
        positions and the query twice, at p (for the window keys) and at min(p, s + W - 1) (for the
        sinks). Rotary scores depend only on the difference of the two angles, so this is the
        same as rotating every kept key by its index in the cache and the query by the last index
        (tests/test_decoder_only.py checks it against that literal formulation).
        alibi: the bias is -m_h times those same distances.

    forward(x (N, T, E), positions (N, T) ints, padding (N, T) bool or None, cache=None)
    """

    def __init__(self, embed_dim, num_heads, num_kv_heads=None, positions="learned",
                 attention="full", window=None, sinks=0, rope_base=10000.0, bias=True,
                 dropout=0.0, dtype=None, sink_positions="absolute"):
        super().__init__(embed_dim, num_heads, num_kv_heads, bias=bias, dropout=dropout,
                         dtype=dtype)
        if positions == "rope" and self.head_dim % 2:
            raise ValueError(f"DecoderAttention: positions='rope' rotates features in pairs, so "
                             f"the head size embed_dim / num_heads = {self.head_dim} must be even.")
        self.positions, self.attention = positions, attention
        self.window, self.sinks, self.rope_base = window, int(sinks), float(rope_base)
        if sink_positions not in SINK_POSITIONS or (sink_positions == "cache"
                                                    and positions not in ("rope", "alibi")):
            raise ValueError(f"DecoderAttention: sink_positions must be one of {SINK_POSITIONS}, "
                             f"and 'cache' needs positions='rope' or 'alibi' (positions added to "
                             f"the input cannot be renumbered); got sink_positions="
                             f"{sink_positions!r} with positions={positions!r}.")
        self.sink_positions = sink_positions
        # with no sinks the two numberings agree (a window key's distance is p - j either way)
        self.renumber = sink_positions == "cache" and attention == "sliding" and self.sinks > 0

    def forward(self, x, positions, padding=None, cache=None):
        xp = get_array_module(x.array)                 # masks are built where the activations live
        positions = xp.asarray(unwrap(positions))
        padding = None if padding is None else xp.asarray(unwrap(padding))
        q, k, v = self.project(x)
        if self.positions == "rope" and not self.renumber:     # renumbered keys are cached unrotated
            q = rotary_embedding(q, positions, self.rope_base)
            k = rotary_embedding(k, positions, self.rope_base)
        if self.attention == "linear":
            return self.merge_heads(self._linear(q, k, v, padding, cache))
        if cache is not None:
            k, v = cache.update(k, v, padding)
            key_cols, key_pad = cache.last_positions, cache.last_key_padding
            q_cols = cache.offset - x.shape[1] + get_array_module(key_cols).arange(x.shape[1])
            lead = q_cols[-1] - positions[:, -1]        # each row's left padding (its last token is real)
            key_pos = key_cols[None, :] - lead[:, None]
        else:
            if padding is None and self.positions != "alibi" and not self.renumber:  # fast paths
                if self.attention == "sliding":
                    return self.merge_heads(self._sliding(q, k, v))
                return self.merge_heads(self.attend(q, k, v, is_causal=True))
            q_cols = key_cols = xp.arange(x.shape[1])
            key_pad, key_pos = padding, positions
        mask = self._mask(q_cols, key_cols, positions, key_pos, key_pad)
        if self.renumber:
            return self.merge_heads(self._attend_in_cache(q, k, v, positions, key_pos, mask))
        if self.positions == "alibi":
            bias = alibi_bias(self.num_heads, q_cols, key_cols, dtype=q.dtype).array
            mask = Tensor(xp.where(mask, bias[None], -xp.inf).astype(q.dtype))
        return self.merge_heads(self.attend(q, k, v, mask))

    def _mask(self, q_cols, key_cols, q_pos, key_pos, key_pad):
        """(N, 1, T, S) bool, True = may attend: earlier (or the same) column, not padding, and
        for a sliding window within the last ``window`` positions or among the first ``sinks``."""
        allowed = (key_cols[None, :] <= q_cols[:, None])[None, None]
        if key_pad is not None:
            allowed = allowed & ~key_pad[:, None, None, :]
        if self.attention == "sliding":
            near = (q_pos[:, :, None] - key_pos[:, None, :]) < self.window
            sink = (key_pos < self.sinks)[:, None, :]
            allowed = allowed & (near | sink)[:, None]
        return allowed

    def _attend_in_cache(self, q, k, v, q_pos, key_pos, mask):
        """Attention with positions counted inside the sinks + window set (sink_positions='cache'):
        q (N, H, T, D) and k (N, H_kv, S, D) unrotated, q_pos (N, T) and key_pos (N, S) positions in
        the sequence, mask (N or 1, 1, T, S) bool."""
        xp = get_array_module(q.array)
        q_at_sinks = xp.minimum(q_pos, self.sinks + self.window - 1)      # (N, T): the query's index
        is_sink = key_pos < self.sinks                                    # (N, S)
        if self.positions == "alibi":
            distance = xp.where(is_sink[:, None, :], q_at_sinks[:, :, None], q_pos[:, :, None]) \
                - key_pos[:, None, :]                                     # (N, T, S)
            slopes = xp.asarray(alibi_slopes(self.num_heads), dtype=xp.float64)
            bias = -slopes[None, :, None, None] * distance[:, None].astype(xp.float64)
            mask = Tensor(xp.where(mask, bias, -xp.inf).astype(q.dtype))
            return self.attend(q, k, v, mask)
        # rope. Each key must meet the query rotated to the right place: window keys the query at
        # p, sink keys the query at min(p, s + W - 1). One dot product does both: the query's two
        # rotations side by side (2D features), each key's features in the half of its kind and
        # zeros in the other half, the scale kept at 1/sqrt(D).
        k = rotary_embedding(k, key_pos, self.rope_base)
        q2 = ops.cat([rotary_embedding(q, q_pos, self.rope_base),
                      rotary_embedding(q, q_at_sinks, self.rope_base)], dim=-1)
        sink = Tensor(is_sink[:, None, :, None].astype(k.dtype))          # (N, 1, S, 1)
        k2 = ops.cat([k * (1.0 - sink), k * sink], dim=-1)
        dropout_p = self.dropout if self.training else 0.0
        return scaled_dot_product_attention(q2, k2, v, attn_mask=mask, dropout_p=dropout_p,
                                            scale=self.head_dim ** -0.5,
                                            enable_gqa=True)

    def _sliding(self, q, k, v):
        """No padding, no cache: attention.sliding_window_attention (the streaming kernel when
        there are no sinks), with the key/value heads repeated for grouped queries."""
        if self.groups > 1:
            k, v = (ops.repeat_interleave(t, self.groups, dim=1) for t in (k, v))
        return sliding_window_attention(q, k, v, window=self.window, sinks=self.sinks)

    def _linear(self, q, k, v, padding, cache):
        """Causal linear attention, grouped: q as (N, H_kv, G, T, D), k and v as (N, H_kv, 1, T, D),
        so a group's G query heads share one key/value head (and one recurrent state)."""
        N, H, T, D = q.shape
        qg = ops.reshape(q, (N, self.num_kv_heads, self.groups, T, D))
        kg, vg = ops.unsqueeze(k, 2), ops.unsqueeze(v, 2)
        if cache is not None and cache.offset > 0:                  # decode: the recurrence
            if T != 1:
                raise ValueError("DecoderAttention: linear attention decodes one token per call "
                                 "after the prefill.")
            out, cache.state = linear_attention_step(qg[..., 0, :], kg[..., 0, :], vg[..., 0, :],
                                                     cache.state, eps=LINEAR_EPS)
            cache.offset += 1
            return ops.reshape(out, (N, H, 1, -1))
        if padding is None:
            out = linear_attention(qg, kg, vg, causal=True, eps=LINEAR_EPS)
        else:
            out = _masked_causal_linear(qg, kg, vg, ~padding)
        if cache is not None:                                       # prefill: keep the sums
            fk = feature_map(kg)
            if padding is not None:
                fk = fk * Tensor(_keep(~padding, fk.dtype))
            cache.state = (Tensor(ops.sum(fk[..., :, None] * vg[..., None, :], axis=-3).array),
                           Tensor(ops.sum(fk, axis=-2).array))
            cache.offset += T
        return ops.reshape(out, (N, H, T, -1))


def _keep(keep, dtype):
    """(N, T) bool -> (N, 1, 1, T, 1) of 0/1, to zero the features of padding keys."""
    return keep[:, None, None, :, None].astype(dtype)


def _masked_causal_linear(q, k, v, keep):
    """attention.linear_attention(causal=True) with padding keys left out: their features φ(k) are
    zeroed, so they add to neither the numerator's S nor the denominator's z (the op itself has no
    mask argument; the prefix sums are its own, written out)."""
    fq, fk = feature_map(q), feature_map(k) * Tensor(_keep(keep, k.dtype))
    S = ops.cumsum(fk[..., :, :, None] * v[..., :, None, :], dim=-3)
    z = ops.cumsum(fk, dim=-2)
    num = (fq[..., :, None, :] @ S)[..., 0, :]
    return num / ((fq * z).sum(dim=-1, keepdim=True) + LINEAR_EPS)


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
    """x + attn(ln1(x)), then x + ff(ln2(x)) (pre-norm). ``attention_options`` go to
    DecoderAttention (positions, attention, window, sinks, rope_base, sink_positions)."""

    def __init__(self, d_model, num_heads, num_kv_heads, dim_feedforward, dropout=0.0, bias=True,
                 layer_norm_eps=1e-5, dtype=None, **attention_options):
        super().__init__()
        self.ln1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.attn = DecoderAttention(d_model, num_heads, num_kv_heads, bias=bias,
                                     dropout=dropout, dtype=dtype, **attention_options)
        self.ln2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x, positions, padding=None, cache=None):
        h = self.attn(self.ln1(x), positions, padding, cache)
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
                 window=None, sinks=0, rope_base=10000.0, dropout=0.0, bias=True,
                 layer_norm_eps=1e-5, dtype=None, sink_positions="absolute"):
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
        if attention == "sliding":
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
                raise ValueError(f"{name}: attention='sliding' needs window, the number of recent "
                                 f"tokens each token sees (itself included), a whole number >= 1; "
                                 f"got {window!r}.")
            check_sizes(name, minimum=0, sinks=sinks)
        if sink_positions not in SINK_POSITIONS:
            raise ValueError(f"{name}: sink_positions must be one of {SINK_POSITIONS}, got "
                             f"{sink_positions!r}.")
        if sink_positions == "cache" and attention != "sliding":
            raise ValueError(f"{name}: sink_positions='cache' numbers positions inside a sliding "
                             f"window's cache; it needs attention='sliding' (got {attention!r}).")
        if sink_positions == "cache" and positions in ("learned", "sinusoid"):
            raise ValueError(f"{name}: sink_positions='cache' renumbers the keys a query sees, "
                             f"per query, inside attention; positions={positions!r} are added to "
                             f"the token vectors before attention, once per token, so they cannot "
                             f"be renumbered. Use positions='rope' or 'alibi', or "
                             f"sink_positions='absolute'.")
        if attention == "linear" and positions == "alibi":
            raise ValueError(f"{name}: positions='alibi' adds a bias to softmax scores, which "
                             f"attention='linear' never forms; choose rope, learned or sinusoid.")
        self.vocab_size, self.d_model, self.max_len = int(vocab_size), int(d_model), int(max_len)
        self.positions, self.attention = positions, attention
        self.window, self.sinks, self.sink_positions = window, int(sinks), sink_positions
        self.tok_emb = Embedding(vocab_size, d_model, dtype=dtype)
        if positions == "learned":
            self.pos_emb = Embedding(max_len, d_model, dtype=dtype)
        elif positions == "sinusoid":        # derived data: rebuilt here, not saved
            table = active_module().asarray(sinusoidal_table(max_len, d_model, dtype=dtype))
            self.register_buffer("pos_table", Tensor(table), persistent=False)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([
            DecoderBlock(d_model, num_heads, num_kv_heads, dim_feedforward, dropout, bias,
                         layer_norm_eps, dtype, positions=positions, attention=attention,
                         window=window, sinks=sinks, rope_base=rope_base,
                         sink_positions=sink_positions)
            for _ in range(int(num_layers))])
        self.ln_f = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.lm_head = Linear(d_model, vocab_size, bias=False, dtype=dtype)

    @property
    def num_layers(self):
        return len(self.blocks)

    def new_cache(self):
        """An empty cache for incremental decoding: one KVCache per block (only its key/value
        heads), sliding-window caches (sinks + window) for attention='sliding', a fixed-size
        recurrent state per block for attention='linear'."""
        return DecoderCache(self.num_layers, window=self.window, sinks=self.sinks,
                            linear=self.attention == "linear")

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
            x = block(x, positions, padding, None if cache is None else cache.self_attn[i])
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
        if cache.offset > 0 and cache.padding is None:          # a cache filled by hand
            cache.padding = xp.zeros(N, dtype=np.int64)
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
        if cache is not None and self.attention == "linear" and cache.offset > 0 and arr.shape[1] != 1:
            raise ValueError(f"{name}: with attention='linear' the cache is a recurrent state: "
                             f"after the prefill, feed one token per call (got {arr.shape[1]}).")
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
                f"attention={self.attention!r}"
                + (f", window={self.window}, sinks={self.sinks}, "
                   f"sink_positions={self.sink_positions!r}" if self.attention == "sliding" else ""))
