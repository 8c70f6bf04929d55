"""The KV cache: keep every layer's keys and values, so that generating token t costs O(t), not O(t²).

A causal decoder that writes one token at a time computes, at step t, the keys and values of all
t tokens so far. Tokens 0 .. t-1 have not changed since the step before (causal attention never
lets an earlier token see a later one), so their keys and values are the same numbers again. A
cache keeps them: each step projects only the new token, appends its key and value, and attends
from the new query to everything kept. The work per step is then one token through the layers plus
one row of attention (O(t)), instead of the whole prefix again (O(t²) attention, O(t) projections).

Two phases:
  * prefill: the prompt (T tokens) goes through at once; the cache receives T keys and values;
  * decode: one token per call; the cache grows by one per layer.

``KVCache`` holds one attention layer's keys and values, (N, H_kv, S, D), only the *key/value*
heads: with grouped-query attention (H_kv < H query heads) the cache is H / H_kv times smaller,
which is that design's whole point. Beside them it keeps, per stored key, its column (the index of
the token in the sequence, ``positions``) and whether it is padding (``key_padding``), so that a
layer can build its masks from the cache alone.

Padding of a batch of prompts of different lengths: **left padding** (``left_pad``). Every prompt
then ends in the same column, so each decode step appends one column for the whole batch and the
new tokens all sit at the same index; the padding keys are remembered as padding and masked in
every later step. (Right padding would put the next token of a short prompt in the middle of the
padding, a different column per row.) A model that uses absolute positions gives each row's first
real token position 0 (``DecoderOnlyTransformer`` does: position = column - padding of that row).

Sliding-window caches (``window``, ``sinks``) keep only the first ``sinks`` columns (the attention
sinks) and the last ``window`` columns; everything in between is dropped, so the memory stays
bounded however long the generation runs (what positions the kept keys carry is the model's choice:
``DecoderOnlyTransformer(sink_positions=...)``). ``static=True`` is for cross-attention: the encoder's
keys and values are projected once, on the first call, and reused by every step.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor, unwrap
from ..backend import active_module, get_array_module, to_numpy

__all__ = ["DecoderCache", "KVCache", "LinearAttentionState", "left_pad"]


def left_pad(prompts, pad_value=0):
    """Prompts of different lengths -> (tokens (N, T_max) int64, padding (N, T_max) bool, True =
    padding), each prompt right-aligned: the padding goes on the left (see the module docstring).
    ``prompts``: a list of 1-D integer sequences, or a 2-D integer array (already equal lengths)."""
    xp = active_module()
    if hasattr(prompts, "ndim") or isinstance(prompts, Tensor):
        arr = xp.asarray(unwrap(prompts))
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise ValueError(f"left_pad: a prompt array must be 2-D integer token ids (N, T), got "
                             f"{arr.dtype} of shape {tuple(arr.shape)}.")
        return arr.astype(np.int64), xp.zeros(arr.shape, dtype=bool)
    rows = [to_numpy(unwrap(p)).reshape(-1) for p in prompts]   # host: lists, ragged
    if not rows or min(len(r) for r in rows) == 0:
        raise ValueError("left_pad: every prompt needs at least one token (got an empty prompt "
                         "or no prompts); start each with a beginning-of-sequence token.")
    if any(r.dtype.kind not in "iu" for r in rows):
        raise ValueError(f"left_pad: prompts must hold integer token ids, got dtypes "
                         f"{sorted({str(r.dtype) for r in rows})}.")
    width = max(len(r) for r in rows)
    # right-aligned as Python lists on the host, then moved to the active backend in one copy
    tokens = [[pad_value] * (width - len(r)) + r.tolist() for r in rows]
    padding = [[True] * (width - len(r)) + [False] * len(r) for r in rows]
    return xp.asarray(tokens, dtype=np.int64), xp.asarray(padding, dtype=bool)


class KVCache:
    """One attention layer's keys and values, for incremental decoding.

        cache = KVCache()
        k_all, v_all = cache.update(k, v)      # k, v: (N, H_kv, T_new, D) -> (N, H_kv, S, D)

    ``update`` appends the new keys and values and returns everything the new queries may attend
    to: the kept keys followed by the new ones. Their columns are ``cache.last_positions`` (S,) and
    their padding ``cache.last_key_padding`` (N, S) (True = padding) for building masks.

    window, sinks: keep only the first ``sinks`` columns and the last ``window`` ones (a
        sliding-window model's cache; ``sink_columns`` may be raised above ``sinks`` when left
        padding occupies the first columns). None: keep everything.
    static: keep the first keys and values forever (cross-attention over an encoder's output);
        later ``update`` calls return them unchanged.

    ``nbytes`` is the memory of the keys and values kept (what grows with the sequence; the small
    integer columns and padding flags beside them are not counted).
    """

    def __init__(self, window=None, sinks=0, static=False):
        if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
            raise ValueError(f"KVCache: window must be a positive whole number of keys or None, "
                             f"got {window!r}.")
        if isinstance(sinks, bool) or int(sinks) != sinks or sinks < 0:
            raise ValueError(f"KVCache: sinks must be a whole number >= 0, got {sinks!r}.")
        if static and window is not None:
            raise ValueError("KVCache: a static (cross-attention) cache keeps all its keys; "
                             "window does not apply to it.")
        self.window = None if window is None else int(window)
        self.sinks = self.sink_columns = int(sinks)
        self.static = bool(static)
        self.reset()

    def reset(self):
        """Forget everything (the next update starts a new sequence at column 0)."""
        self._k = self._v = None          # buffers (N, H, capacity, D); the first _len are kept
        self._pos = None                  # (capacity,) int64 columns
        self._pad = None                  # (N, capacity) bool, True = padding
        self._len = 0
        self.offset = 0                   # columns seen so far = the column of the next token
        self.last_positions = None
        self.last_key_padding = None
        return self

    # ------------------------------------------------------------------ what is kept
    def __len__(self):
        return self._len

    @property
    def filled(self):
        return self._k is not None

    @property
    def keys(self):
        """The kept keys (N, H_kv, S, D) as a Tensor (a view: read it, do not keep it across
        updates), or None before the first update."""
        return None if self._k is None else Tensor(self._k[:, :, :self._len])

    @property
    def values(self):
        return None if self._v is None else Tensor(self._v[:, :, :self._len])

    @property
    def positions(self):
        """The column of each kept key (S,) int64."""
        return None if self._pos is None else self._pos[:self._len]

    @property
    def key_padding(self):
        """(N, S) bool, True where a kept key is padding."""
        return None if self._pad is None else self._pad[:, :self._len]

    @property
    def nbytes(self):
        """Bytes of the keys and values kept: 2 · N · H_kv · S · D · itemsize."""
        if self._k is None:
            return 0
        N, H, _, D = self._k.shape
        return 2 * N * H * self._len * D * self._k.dtype.itemsize

    @property
    def batch_size(self):
        return None if self._k is None else self._k.shape[0]

    # ------------------------------------------------------------------ appending
    def update(self, k, v, key_padding_mask=None):
        """Append k, v (N, H_kv, T, D) (Tensors) and their padding (N, T) bool (True = padding;
        None = none is padding); return (keys, values) (N, H_kv, S, D): the kept ones, then the new.

        The returned Tensors carry the gradient of the new k and v (the kept ones are constants:
        they were computed by earlier calls); without gradients they are views of the buffer."""
        if self.static and self.filled:
            self.last_positions, self.last_key_padding = self.positions, self.key_padding
            return self.keys, self.values
        self._check(k, v, key_padding_mask)
        ka, va = k.array, v.array
        xp = get_array_module(ka)
        N, H, T, D = ka.shape
        n = self._len
        self._reserve(xp, N, H, n + T, D, va.shape[3], ka.dtype)
        self._k[:, :, n:n + T] = ka
        self._v[:, :, n:n + T] = va
        if T == 1:                              # a decoding step: no temporary arrays
            self._pos[n] = self.offset
        else:
            self._pos[n:n + T] = xp.arange(self.offset, self.offset + T, dtype=np.int64)
        self._pad[:, n:n + T] = (False if key_padding_mask is None
                                 else xp.asarray(unwrap(key_padding_mask), dtype=bool))
        self._len, self.offset = n + T, self.offset + T
        self.last_positions = self._pos[:n + T]
        self.last_key_padding = self._pad[:, :n + T]
        if (k.requires_grad or v.requires_grad) and is_grad_enabled():
            old_k, old_v = Tensor(self._k[:, :, :n]), Tensor(self._v[:, :, :n])
            keys, values = ops.concatenate([old_k, k], axis=2), ops.concatenate([old_v, v], axis=2)
        else:
            keys, values = Tensor(self._k[:, :, :n + T]), Tensor(self._v[:, :, :n + T])
        if self.window is not None:
            self._evict(xp)
        return keys, values

    def _check(self, k, v, key_padding_mask):
        for what, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.array.ndim != 4:
                raise ValueError(f"KVCache.update: {what} must be a Tensor (N, H_kv, T, D), got "
                                 f"{getattr(t, 'shape', type(t).__name__)}.")
        ks, vs = k.array.shape, v.array.shape          # plain tuples: cheaper than Tensor.shape
        if ks[:3] != vs[:3]:
            raise ValueError(f"KVCache.update: k {tuple(k.shape)} and v {tuple(v.shape)} must agree "
                             f"in (N, H_kv, T).")
        if self._k is not None:
            N, H, _, D = self._k.shape
            if (ks[0], ks[1], ks[3], vs[3]) != (N, H, D, self._v.shape[3]) \
                    or k.array.dtype != self._k.dtype:
                raise ValueError(f"KVCache.update: the cache holds keys (N={N}, H_kv={H}, D={D}) "
                                 f"{self._k.dtype}, but got k {tuple(k.shape)} {k.dtype}; a cache "
                                 f"belongs to one layer and one batch (reset() it for a new one).")
        if key_padding_mask is not None and tuple(unwrap(key_padding_mask).shape) != (k.shape[0], k.shape[2]):
            raise ValueError(f"KVCache.update: key_padding_mask must be (N, T) = "
                             f"{(k.shape[0], k.shape[2])}, got {tuple(unwrap(key_padding_mask).shape)}.")

    def _reserve(self, xp, N, H, needed, D, Dv, dtype):
        """Room for ``needed`` keys. Grows by doubling into a new buffer (never in place, so a view
        returned earlier keeps its numbers)."""
        if self._k is not None and needed <= self._k.shape[2]:
            return
        capacity = needed if self._k is None else max(needed, 2 * self._k.shape[2])
        if self.window is not None:
            capacity = max(needed, self.sink_columns + self.window + 1)
        new_k = xp.zeros((N, H, capacity, D), dtype=dtype)
        new_v = xp.zeros((N, H, capacity, Dv), dtype=dtype)
        new_pos = xp.zeros((capacity,), dtype=np.int64)
        new_pad = xp.ones((N, capacity), dtype=bool)
        n = self._len
        if n:
            new_k[:, :, :n], new_v[:, :, :n] = self._k[:, :, :n], self._v[:, :, :n]
            new_pos[:n], new_pad[:, :n] = self._pos[:n], self._pad[:, :n]
        self._k, self._v, self._pos, self._pad = new_k, new_v, new_pos, new_pad

    def _evict(self, xp):
        """Keep the sink columns and the last ``window`` columns, in a new buffer."""
        n = self._len
        keep_sink = self._pos[:n] < self.sink_columns
        keep_recent = self._pos[:n] >= self.offset - self.window
        keep = xp.nonzero(keep_sink | keep_recent)[0]
        if len(keep) == n:
            return
        k, v = self._k[:, :, keep], self._v[:, :, keep]
        pos, pad = self._pos[keep], self._pad[:, keep]
        self._k = self._v = self._pos = self._pad = None
        self._len = 0
        N, H, m, D = k.shape
        self._reserve(xp, N, H, m, D, v.shape[3], k.dtype)
        self._k[:, :, :m], self._v[:, :, :m], self._pos[:m], self._pad[:, :m] = k, v, pos, pad
        self._len = m

    def causal_mask(self, num_queries):
        """(L, S) bool, True = may attend, for the last update's ``num_queries`` queries (they are
        the newest tokens, columns offset-L .. offset-1) over the keys it returned: key column <=
        query column; with a window also key column > query column - window, or a sink column."""
        xp = get_array_module(self.last_positions)
        q_cols = xp.arange(self.offset - num_queries, self.offset, dtype=np.int64)[:, None]
        k_cols = self.last_positions[None, :]
        allowed = k_cols <= q_cols
        if self.window is not None:
            allowed &= (q_cols - k_cols < self.window) | (k_cols < self.sink_columns)
        return allowed

    # ------------------------------------------------------------------ beams
    def reorder(self, index):
        """Keep batch rows ``index`` (ints, may repeat): after a beam search step, each beam
        continues the hypothesis it was extended from."""
        if self._k is None:
            return self
        xp = get_array_module(self._k)
        idx = xp.asarray(unwrap(index), dtype=np.int64)
        self._k, self._v, self._pad = self._k[idx], self._v[idx], self._pad[idx]
        return self

    def __repr__(self):
        shape = None if self._k is None else (self._k.shape[0], self._k.shape[1], self._len,
                                              self._k.shape[3])
        extra = "" if self.window is None else f", window={self.window}, sinks={self.sinks}"
        return f"KVCache(keys={shape}, offset={self.offset}, nbytes={self.nbytes}{extra})"


class LinearAttentionState:
    """The whole memory of one causal linear-attention layer (``attention.linear_attention``):
    S = Σ_j φ(k_j) v_jᵀ (N, H_kv, 1, D, Dv) and z = Σ_j φ(k_j) (N, H_kv, 1, D), summed over every
    token so far. Its size does not grow with the sequence: that is linear attention's trade (no
    keys are kept, so no key can be looked up exactly again; lesson 24). ``offset`` counts the
    columns seen, as ``KVCache.offset`` does."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.state = None                 # (S, z) Tensors, or None before the first token
        self.offset = 0
        return self

    @property
    def batch_size(self):
        return None if self.state is None else self.state[0].shape[0]

    @property
    def nbytes(self):
        if self.state is None:
            return 0
        return sum(t.array.size * t.array.dtype.itemsize for t in self.state)

    def reorder(self, index):
        if self.state is not None:
            xp = get_array_module(self.state[0].array)
            idx = xp.asarray(unwrap(index), dtype=np.int64)
            self.state = tuple(Tensor(t.array[idx]) for t in self.state)
        return self

    def __repr__(self):
        shape = None if self.state is None else tuple(self.state[0].shape)
        return f"LinearAttentionState(S={shape}, offset={self.offset}, nbytes={self.nbytes})"


class DecoderCache:
    """The caches of a whole decoder: one ``KVCache`` per layer for its self-attention (or, with
    ``linear=True``, one ``LinearAttentionState``) and, with ``cross=True`` (an encoder-decoder),
    one static ``KVCache`` per layer for the encoder's keys and values, computed on the first step.

        cache = DecoderCache(num_layers, cross=True)
        decoder(tgt_step, memory, tgt_is_causal=True, cache=cache)      # one step

    ``layer(i)`` is the pair (self, cross) that layer i uses; ``nbytes`` adds up every layer's
    keys and values; ``reorder(index)`` follows beams; ``offset`` is the number of target columns
    seen. ``padding`` (N,) is the number of left-padding columns of each row, set by a decoder-only
    model at its prefill (None: no padding).
    """

    def __init__(self, num_layers, cross=False, window=None, sinks=0, linear=False):
        if isinstance(num_layers, bool) or int(num_layers) != num_layers or num_layers < 1:
            raise ValueError(f"DecoderCache: num_layers must be a whole number >= 1, got "
                             f"{num_layers!r}.")
        if linear:                       # linear attention: a fixed-size state per layer
            self.self_attn = [LinearAttentionState() for _ in range(int(num_layers))]
        else:
            self.self_attn = [KVCache(window=window, sinks=sinks) for _ in range(int(num_layers))]
        self.cross_attn = [KVCache(static=True) for _ in range(int(num_layers))] if cross else None
        self.padding = None

    def __len__(self):
        return len(self.self_attn)

    def layer(self, i):
        return self.self_attn[i], None if self.cross_attn is None else self.cross_attn[i]

    @property
    def offset(self):
        return self.self_attn[0].offset

    @property
    def batch_size(self):
        return self.self_attn[0].batch_size

    @property
    def nbytes(self):
        caches = self.self_attn + (self.cross_attn or [])
        return sum(c.nbytes for c in caches)

    def reorder(self, index):
        for c in self.self_attn + (self.cross_attn or []):
            c.reorder(index)
        if self.padding is not None:
            xp = get_array_module(self.padding)
            self.padding = self.padding[xp.asarray(unwrap(index), dtype=np.int64)]
        return self

    def reset(self):
        for c in self.self_attn + (self.cross_attn or []):
            c.reset()
        self.padding = None
        return self

    def __repr__(self):
        return (f"DecoderCache(layers={len(self)}, cross={self.cross_attn is not None}, "
                f"offset={self.offset}, nbytes={self.nbytes})")
