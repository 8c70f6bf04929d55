"""Sliding-window attention with attention sinks (Xiao et al., 2023, "Efficient Streaming Language
Models with Attention Sinks"; the window as in Longformer / Mistral).

Causal query at absolute position p sees the last ``window`` keys, p - window + 1 .. p, plus the
first ``sinks`` positions 0 .. sinks-1 whatever its distance to them. The paper's finding: softmax
must put its weight somewhere, trained models dump the surplus on the first tokens, and a window
that has slid past them breaks down; keeping those few "sink" keys restores it.

``window`` counts keys (window=1: only itself), unlike ``local_window_mask``'s half-width D of
|i - j| <= D; without sinks and offset this mask is ``causal_mask(T) & local_window_mask(T,
window=window - 1)``, and the attention function then hands over to the streaming kernel
(``memory_efficient_attention`` with causal=True, window=window-1: O(T·window) work, no (T, T)
matrix). With sinks or an offset it builds the boolean mask and uses scaled_dot_product_attention.

Positions: this function takes q and k as they are (already rotated, if rotary), so keys keep
their absolute positions and far into a stream a query meets the sink keys at distances never
seen in training. StreamingLLM instead counts positions inside the cache (the sinks sit just
before the window); that needs the unrotated keys and lives in the decoder:
``DecoderOnlyTransformer(..., attention='sliding', sink_positions='cache')`` (rope or alibi; see
``models.decoder_only.DecoderAttention``). Lesson 25 measures the difference (with rotary
positions it is large).

``query_offset``: the absolute position of the first query (decoding with a KV cache: Tq new
queries at positions offset .. offset+Tq-1 over all Tk = offset + Tq cached keys).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ._checks import as_tensor
from .attend import scaled_dot_product_attention


def _int(name, what, n, low):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < low:
        raise ValueError(f"{name}: {what} must be an int >= {low}, got {n!r}.")
    return int(n)


def sliding_window_mask(Tq: int, Tk: int | None = None, *, window: int, sinks: int = 0,
                        query_offset: int = 0) -> Tensor:
    """Boolean (Tq, Tk), True = may attend: key j for the query at p = query_offset + i when
    j <= p and (j > p - window or j < sinks). Tk defaults to query_offset + Tq."""
    name = "sliding_window_mask"
    Tq = _int(name, "Tq", Tq, 1)
    query_offset = _int(name, "query_offset", query_offset, 0)
    Tk = query_offset + Tq if Tk is None else _int(name, "Tk", Tk, 1)
    window = _int(name, "window (the number of recent keys each query sees, itself included)", window, 1)
    sinks = _int(name, "sinks", sinks, 0)
    xp = backend.active_module()
    p = xp.arange(query_offset, query_offset + Tq)[:, None]
    j = xp.arange(Tk)[None, :]
    return Tensor((j <= p) & ((j > p - window) | (j < sinks)))


@register_op("attention.sliding_window_attention")
def sliding_window_attention(query, key, value, *, window: int, sinks: int = 0,
                             query_offset: int = 0, scale=None):
    """Causal attention over a sliding window plus sink keys: query (..., Tq, E), key (..., Tk, E),
    value (..., Tk, Ev) -> (..., Tq, Ev)."""
    name = "sliding_window_attention"
    q, k, v = (as_tensor(t, name, w) for t, w in ((query, "query"), (key, "key"), (value, "value")))
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"{name}: query, key, value must be (..., T, E); got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}.")
    mask = sliding_window_mask(q.shape[-2], k.shape[-2], window=window, sinks=sinks,
                               query_offset=query_offset)
    streaming = (sinks == 0 and query_offset == 0 and q.shape[-2] == k.shape[-2]
                 and q.shape[:-2] == k.shape[:-2] == v.shape[:-2] and q.dtype == k.dtype == v.dtype
                 and k.shape[-1] == q.shape[-1])
    if streaming:
        from ..ops.memory_efficient_attention import memory_efficient_attention  # noqa: PLC0415
        return memory_efficient_attention(q, k, v, causal=True, scale=scale, window=window - 1)
    return scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
