"""MultiheadAttention: PyTorch's ``nn.MultiheadAttention``, parameter for parameter, built from
Tensor ops (no hand-written backward).

The computation, for h heads of size d = embed_dim / h::

    Q = query W_qᵀ + b_q    K = key W_kᵀ + b_k    V = value W_vᵀ + b_v        (in-projection)
    split Q, K, V into h heads of width d
    head_i = softmax(Q_i K_iᵀ / √d + mask) V_i                               (per head)
    out = concat(head_1 .. head_h) W_oᵀ + b_o                                 (out_proj)

Masks follow PyTorch's *MultiheadAttention* convention, which is the opposite of
``scaled_dot_product_attention``'s: a **bool mask is True where attention is NOT allowed**; a float
mask is *added* to the scores (0 = allowed, -inf = blocked, anything else = a bias).

``_attend`` takes these steps in this order, one short method each: ``_project`` (in-projection),
``_split_heads``, ``_heads_with_weights`` / ``_heads_without_weights`` (attention per head),
``_merge_heads`` (concat + out_proj); ``add_bias_kv`` and ``add_zero_attn`` append their extra keys
after the projection. What exists only to match PyTorch's code is in ``pytorch_quirks``.

One deliberate difference: a query row whose keys are all blocked gets all-zero weights (so its
output is just ``out_proj.bias``) and a zero gradient, where PyTorch returns NaN.
"""
from __future__ import annotations

import contextlib
import math

from .. import functional as F
from .. import ops
from ..attention.attend import scaled_dot_product_attention
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, unwrap
from ..backend import get_array_module
from . import init, pytorch_quirks
from .kv_cache import KVCache
from .linear import Linear
from .masks import as_additive_mask, pad_allowed_keys
from .module import Module, check_sizes, empty_parameter

__all__ = ["MultiheadAttention", "record_attention"]


def _each_once(fn, query, key, value):
    """fn applied to query, key and value, once per distinct tensor, so that self-attention
    (query is key is value) stays recognisable for the packed projection."""
    q = fn(query)
    k = q if key is query else fn(key)
    v = k if value is key else (q if value is query else fn(value))
    return q, k, v


def _mask_shape(mask):
    return tuple(unwrap(mask).shape)


@register_op("nn.MultiheadAttention")
class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's parameters, names, masks and return values.

    Parameters (state_dict names as PyTorch):
      in_proj_weight (3E, E) and in_proj_bias (3E,) — when key and value have width E;
      q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim) instead when
      ``kdim`` or ``vdim`` differ from ``embed_dim`` (in_proj_bias still packs all three biases);
      out_proj.weight (E, E), out_proj.bias (E,); bias_k, bias_v (1, 1, E) with ``add_bias_kv``.

    Shapes (N batch, L target length, S source length, E embed_dim):
      query (L, N, E), key (S, N, kdim), value (S, N, vdim), or (N, L, E) ... with
      ``batch_first=True``, or unbatched (L, E), (S, kdim), (S, vdim).
      key_padding_mask (N, S) (or (S,) unbatched): True / -inf marks a padding key to ignore.
      attn_mask (L, S), or (N*num_heads, L, S) for a mask per batch element and head.
    Returns (output, weights): output like query; weights (N, L, S) averaged over heads, or
    (N, num_heads, L, S) with ``average_attn_weights=False``, or None with ``need_weights=False``.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        check_sizes("MultiheadAttention", minimum=1, embed_dim=embed_dim, num_heads=num_heads,
                    **{k: v for k, v in (("kdim", kdim), ("vdim", vdim)) if v is not None})
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiheadAttention: embed_dim={embed_dim} is not divisible by "
                f"num_heads={num_heads}, so the heads cannot split it evenly. Choose num_heads "
                f"among the divisors of {embed_dim} "
                f"({[h for h in range(1, embed_dim + 1) if embed_dim % h == 0]}) or change embed_dim.")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}.")
        self.embed_dim = int(embed_dim)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.head_dim = self.embed_dim // self.num_heads
        E = self.embed_dim

        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty_parameter((3 * E, E), dtype, device)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = empty_parameter((E, E), dtype, device)
            self.k_proj_weight = empty_parameter((E, self.kdim), dtype, device)
            self.v_proj_weight = empty_parameter((E, self.vdim), dtype, device)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = empty_parameter((3 * E,), dtype, device)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = empty_parameter((1, 1, E), dtype, device)
            self.bias_v = empty_parameter((1, 1, E), dtype, device)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = bool(add_zero_attn)
        self._recorder = None          # a list while inside record_attention(...)
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's choice: Xavier-uniform projections, zero in/out biases, Xavier-normal bias_k/v
        (out_proj.weight keeps Linear's own initialisation)."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    # ------------------------------------------------------------------ forward
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False, *, cache=None):
        """PyTorch's forward. ``cache`` (a ``KVCache``, tinyattn's addition) is for incremental
        decoding: the new keys and values are appended to it and the queries attend to all keys
        kept so far. Then ``key_padding_mask`` (bool) covers the new keys only (the cache remembers
        it for later steps), ``attn_mask`` covers all keys (L, S_kept + S_new), and ``is_causal``
        without a mask means "causal at the cache's offset": new query i sees every kept key and
        the new keys 0..i. A ``KVCache(static=True)`` (cross-attention) projects ``key``/``value``
        on its first call only and reuses them after."""
        batched = self._check_inputs(query, key, value, key_padding_mask, attn_mask, cache)
        query, key, value, key_padding_mask = self._to_batch_first(batched, query, key, value,
                                                                   key_padding_mask)
        if self._recorder is None:
            out, weights = self._attend(query, key, value, key_padding_mask, need_weights,
                                        attn_mask, average_attn_weights, is_causal, cache)
        else:
            out, weights = self._attend_and_record(batched, query, key, value, key_padding_mask,
                                                   need_weights, attn_mask, average_attn_weights,
                                                   is_causal, cache)
        return self._from_batch_first(batched, out, weights)

    def _to_batch_first(self, batched, query, key, value, key_padding_mask):
        """The caller's layout -> (N, L, E): unbatched (L, E) becomes a batch of one."""
        if not batched:
            query, key, value = _each_once(lambda t: ops.unsqueeze(t, 0), query, key, value)
            if key_padding_mask is not None:
                key_padding_mask = (ops.unsqueeze(key_padding_mask, 0)
                                    if isinstance(key_padding_mask, Tensor)
                                    else key_padding_mask[None])
        elif not self.batch_first:
            query, key, value = _each_once(lambda t: ops.swapaxes(t, 0, 1), query, key, value)
        return query, key, value, key_padding_mask

    def _from_batch_first(self, batched, out, weights):
        """(N, L, E) -> the caller's layout (weights are batch first already, as in PyTorch)."""
        if not batched:
            return ops.squeeze(out, 0), None if weights is None else ops.squeeze(weights, 0)
        if not self.batch_first:
            out = ops.swapaxes(out, 0, 1)
        return out, weights

    def _attend_and_record(self, batched, query, key, value, key_padding_mask, need_weights,
                           attn_mask, average_attn_weights, is_causal, cache=None):
        """``_attend`` inside record_attention: the per-head weights are always computed (and kept),
        then returned as the caller asked."""
        out, weights = self._attend(query, key, value, key_padding_mask, True, attn_mask, False,
                                    is_causal, cache)
        self._recorder.append(Tensor(weights.array if batched else weights.array[0]))
        if not need_weights:
            return out, None
        return out, ops.mean(weights, axis=1) if average_attn_weights else weights

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights, is_causal, cache=None):
        """MultiHead(Q, K, V) = concat(head_1 .. head_h) W_o, batch first: query (N, L, E),
        key (N, S, kdim), value (N, S, vdim) -> (N, L, E) and the weights (or None)."""
        if cache is not None:
            return self._attend_cached(query, key, value, key_padding_mask, need_weights,
                                       attn_mask, average_attn_weights, is_causal, cache)
        pytorch_quirks.check_is_causal_has_mask(is_causal, attn_mask, query.shape[1])
        use_causal = pytorch_quirks.causal_hint_replaces_attn_mask(is_causal, key_padding_mask,
                                                                   need_weights)
        masks = self._additive_masks(None if use_causal else attn_mask, key_padding_mask, query)
        q, k, v = self._project(query, key, value)           # (N, L, E), (N, S, E), (N, S, E)
        k, v = self._append_bias_kv(k, v)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        k, v = self._append_zero_attn(k, v)                  # (N, H, S + extra keys, D)
        dropout_p = self.dropout if self.training else 0.0
        if not need_weights and dropout_p < 1.0:            # sdpa takes dropout in [0, 1) only
            return self._merge_heads(self._heads_without_weights(q, k, v, masks, dropout_p,
                                                                 use_causal)), None
        heads, weights = self._heads_with_weights(q, k, v, masks, dropout_p)
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)                                 # (N, L, S)
        return self._merge_heads(heads), weights

    def _attend_cached(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                       average_attn_weights, is_causal, cache):
        """``_attend`` with a KVCache: project the new tokens, append their keys and values to the
        cache, attend to everything it keeps (the masks built for all kept keys)."""
        if cache.static and cache.filled:             # cross-attention: memory projected before
            E, b = self.embed_dim, self.in_proj_bias
            W = self.in_proj_weight[:E] if self._qkv_same_embed_dim else self.q_proj_weight
            q = self._split_heads(F.linear(query, W, None if b is None else b[:E]))
            k, v = cache.update(None, None)
        else:
            q, k, v = self._project(query, key, value)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            k, v = cache.update(k, v, unwrap(key_padding_mask))
        if is_causal and attn_mask is None:
            attn_mask = ~cache.causal_mask(query.shape[1])             # our convention: True = blocked
        masks = self._additive_masks(attn_mask, cache.last_key_padding, query)
        dropout_p = self.dropout if self.training else 0.0
        if not need_weights and dropout_p < 1.0:
            return self._merge_heads(self._heads_without_weights(q, k, v, masks, dropout_p,
                                                                 False)), None
        heads, weights = self._heads_with_weights(q, k, v, masks, dropout_p)
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)
        return self._merge_heads(heads), weights

    def _additive_masks(self, attn_mask, key_padding_mask, query):
        """The masks that apply, as additive masks broadcasting over the scores (N, H, L, S'):
        attn_mask as (L, S') or (N, H, L, S'), key_padding_mask as (N, 1, 1, S'), where S' counts
        the bias_k / zero-attention keys too (always allowed)."""
        N, L, _ = query.shape
        extra = int(self.bias_k is not None) + int(self.add_zero_attn)
        kpm = as_additive_mask(key_padding_mask, "key_padding_mask", query.dtype, like=query.array)
        amask = as_additive_mask(attn_mask, "attn_mask", query.dtype, like=query.array)
        if amask is not None and amask.ndim == 3:            # (N*H, L, S) -> (N, H, L, S)
            shape = (N, self.num_heads, L, -1)
            amask = ops.reshape(amask, shape) if isinstance(amask, Tensor) else amask.reshape(shape)
        amask, kpm = pad_allowed_keys(amask, extra), pad_allowed_keys(kpm, extra)
        if kpm is not None:
            kpm = kpm[:, None, None, :]                      # the same for all heads and queries
        return [m for m in (amask, kpm) if m is not None]

    def _project(self, query, key, value):
        """The in-projection. Self-attention (query is key is value) does one matrix product with
        the packed (3E, E) weight and splits it; otherwise each input gets its own third."""
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            W = self.in_proj_weight
            if query is key and key is value:
                return tuple(ops.chunk(F.linear(query, W, b), 3, dim=-1))
            q = F.linear(query, W[:E], bq)
            if key is value:
                k, v = ops.chunk(F.linear(key, W[E:], None if b is None else b[E:]), 2, dim=-1)
                return q, k, v
            return q, F.linear(key, W[E:2 * E], bk), F.linear(value, W[2 * E:], bv)
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def _append_bias_kv(self, k, v):
        """add_bias_kv: one more learned key and value, the same for every sequence."""
        if self.bias_k is None:
            return k, v
        N, _, E = k.shape
        return (ops.concatenate([k, ops.broadcast_to(self.bias_k, (N, 1, E))], axis=1),
                ops.concatenate([v, ops.broadcast_to(self.bias_v, (N, 1, E))], axis=1))

    def _split_heads(self, x):
        """(N, T, E) -> (N, H, T, D): head i gets features i*D .. (i+1)*D - 1."""
        N, T, _ = x.shape
        return ops.permute(ops.reshape(x, (N, T, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def _append_zero_attn(self, k, v):
        """add_zero_attn: one more all-zero key and value per head."""
        if not self.add_zero_attn:
            return k, v
        N, H, _, D = k.shape
        zeros = Tensor(get_array_module(k.array).zeros((N, H, 1, D), dtype=k.dtype))
        return ops.concatenate([k, zeros], axis=2), ops.concatenate([v, zeros], axis=2)

    @staticmethod
    def _heads_without_weights(q, k, v, masks, dropout_p, use_causal):
        """head_i = softmax(Q_i K_iᵀ / √D + mask) V_i when nobody wants the weights: exactly
        scaled_dot_product_attention (which streams long sequences without building the L x S
        matrix), with the masks merged into one additive mask, since sdpa's bool masks mean the
        opposite of ours."""
        merged = None
        for mask in masks:
            merged = mask if merged is None else merged + mask
        return scaled_dot_product_attention(q, k, v, attn_mask=merged, dropout_p=dropout_p,
                                            is_causal=use_causal)

    @staticmethod
    def _heads_with_weights(q, k, v, masks, dropout_p):
        """head_i = softmax(Q_i K_iᵀ / √D + mask) V_i, keeping the (N, H, L, S) weights."""
        xp = get_array_module(q.array)
        scores = ops.matmul(q * (1.0 / math.sqrt(q.shape[-1])), ops.swapaxes(k, -1, -2))
        allowed = None                                       # bool, True = may attend
        for mask in masks:
            scores = scores + mask
            ok = xp.isfinite(unwrap(mask)) | (unwrap(mask) > 0)
            allowed = ok if allowed is None else allowed & ok
        # Blocked entries are dropped by the mask, so a fully blocked row gives zeros, not NaN.
        weights = ops.softmax(scores, axis=-1, mask=allowed)
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p, True)
        return ops.matmul(weights, v), weights

    def _merge_heads(self, heads):
        """(N, H, L, D) -> concat over heads (N, L, E) -> out_proj."""
        N, H, L, D = heads.shape
        return self.out_proj(ops.reshape(ops.permute(heads, (0, 2, 1, 3)), (N, L, H * D)))

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, query, key, value, key_padding_mask, attn_mask, cache=None):
        """Raise a clear error for inconsistent shapes; return True for batched input."""
        name = "MultiheadAttention"
        if cache is not None:
            self._check_cache(cache, key_padding_mask)
        for what, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: {what} must be a tinyattn Tensor, got "
                                f"{type(t).__name__}. Wrap it with tinyattn.tensor(...).")
        if query.ndim not in (2, 3):
            raise ValueError(f"{name}: query must be unbatched 2-D (L, E) or batched 3-D "
                             f"({'N, L, E' if self.batch_first else 'L, N, E'}); got shape "
                             f"{tuple(query.shape)}.")
        batched = query.ndim == 3
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{name}: query, key and value must all be {query.ndim}-D; got query "
                             f"{tuple(query.shape)}, key {tuple(key.shape)}, value "
                             f"{tuple(value.shape)}.")
        for what, t, width in (("query", query, self.embed_dim), ("key", key, self.kdim),
                               ("value", value, self.vdim)):
            if t.shape[-1] != width:
                hint = "" if what == "query" else (
                    f" Pass {'kdim' if what == 'key' else 'vdim'}={t.shape[-1]} to the "
                    f"constructor if {what}s really have that width.")
                raise ValueError(f"{name}: {what} has feature size {t.shape[-1]} (shape "
                                 f"{tuple(t.shape)}) but the module expects "
                                 f"{'embed_dim' if what == 'query' else what[0] + 'dim'}={width}.{hint}")
        seq_ax = 1 if (batched and self.batch_first) else 0
        batch_ax = 0 if self.batch_first else 1
        if key.shape[seq_ax] != value.shape[seq_ax]:
            raise ValueError(f"{name}: key and value must have the same sequence length; got key "
                             f"{tuple(key.shape)} and value {tuple(value.shape)}.")
        if batched and not (query.shape[batch_ax] == key.shape[batch_ax] == value.shape[batch_ax]):
            raise ValueError(f"{name}: query, key and value have different batch sizes: "
                             f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)} "
                             f"(batch axis {batch_ax}, batch_first={self.batch_first}).")
        wdtype = self.out_proj.weight.dtype
        for what, t in (("query", query), ("key", key), ("value", value)):
            if t.dtype != wdtype:
                raise TypeError(f"{name}: {what} is {t.dtype} but the parameters are {wdtype}; "
                                f"convert the input ({what}.astype('{wdtype}')) or the module "
                                f"(model.double() / model.float()).")
        N = query.shape[batch_ax] if batched else 1
        L, S = query.shape[seq_ax], key.shape[seq_ax]
        if cache is not None and cache.static and cache.filled:
            S = len(cache)                            # the memory projected on the first call
        if key_padding_mask is not None:
            want = (N, S) if batched else (S,)
            if _mask_shape(key_padding_mask) != want:
                raise ValueError(f"{name}: key_padding_mask must have shape {want} (batch, source "
                                 f"length), got {_mask_shape(key_padding_mask)}.")
        if cache is not None and not (cache.static and cache.filled):
            S = len(cache) + S                        # attn_mask covers the kept keys too
        if attn_mask is not None:
            shape = _mask_shape(attn_mask)
            heads = N * self.num_heads
            if shape not in ((L, S), (heads, L, S)):
                raise ValueError(
                    f"{name}: attn_mask must have shape (L, S) = {(L, S)} or (N*num_heads, L, S) = "
                    f"{(heads, L, S)} for query {tuple(query.shape)} and key {tuple(key.shape)}; "
                    f"got {shape}.")
        return batched

    def _check_cache(self, cache, key_padding_mask):
        name = "MultiheadAttention"
        if not isinstance(cache, KVCache):
            raise TypeError(f"{name}: cache must be a tinyattn.nn.KVCache, got "
                            f"{type(cache).__name__}.")
        if self.bias_k is not None or self.add_zero_attn:
            raise ValueError(f"{name}: cache= cannot be combined with add_bias_kv / add_zero_attn "
                             f"(their extra key would be appended again at every step).")
        if key_padding_mask is not None and unwrap(key_padding_mask).dtype != bool:
            raise TypeError(f"{name}: with cache=, key_padding_mask must be bool (True = padding), "
                            f"so that the cache can remember it; got "
                            f"{unwrap(key_padding_mask).dtype}.")

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


@contextlib.contextmanager
def record_attention(model):
    """Keep the attention weights of every MultiheadAttention inside ``model``, for heatmaps.

        with record_attention(model) as maps:
            model(src, tgt)
        maps["decoder.layers.0.multihead_attn"][0]     # (N, num_heads, L, S), first call

    Yields a dict: sub-module name -> list of per-head weight Tensors (detached), one per call
    (unbatched calls give (num_heads, L, S)). Layers ask for ``need_weights=False``, as in
    PyTorch; inside this block the weights are computed anyway and their outputs are unchanged.
    """
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, MultiheadAttention)]
    if not modules:
        raise ValueError(f"record_attention: {type(model).__name__} contains no "
                         f"MultiheadAttention module.")
    records = {}
    for name, m in modules:
        m._recorder = records.setdefault(name, [])
    try:
        yield records
    finally:
        for _, m in modules:
            m._recorder = None
