"""Grouped-query attention (GQA) and multi-query attention (MQA): fewer key/value heads than query
heads.

Multi-head attention gives every one of its H heads its own queries, keys and values. While
generating, the keys and values of every past token are kept (the KV cache, ``kv_cache.py``), and
for long sequences that cache, not the weights, fills the memory: 2 · layers · H · D numbers per
token. Grouped-query attention (Ainslie et al., 2023) keeps H query heads but only H_kv key/value
heads; query heads come in H / H_kv groups, and every head of a group reads the same keys and
values::

    Q = x W_qᵀ  -> H heads of width D          (N, H,    L, D)
    K = x W_kᵀ  -> H_kv heads of width D       (N, H_kv, L, D)
    V = x W_vᵀ  -> H_kv heads of width D
    head_i = softmax(Q_i K_gᵀ / √D + mask) V_g      with g = i // (H / H_kv)
    out = concat(head_1 .. head_H) W_oᵀ

H_kv = H is ordinary multi-head attention, H_kv = 1 is multi-query attention (Shazeer, 2019). The
cache and the k/v projections shrink by H / H_kv. The attention itself is
``scaled_dot_product_attention(q, k, v, ..., enable_gqa=True)``, PyTorch's own switch for this.

Masks follow ``scaled_dot_product_attention`` (this module is built on it, and PyTorch has no GQA
module to copy): a **bool mask is True where attention IS allowed**; a float mask is added. (The
opposite of ``MultiheadAttention``'s bool masks: there True means blocked.)
"""
from __future__ import annotations

from .. import ops
from ..attention.attend import scaled_dot_product_attention
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, unwrap
from ..backend import get_array_module
from .kv_cache import KVCache
from .linear import Linear
from .module import Module, check_sizes

__all__ = ["GroupedQueryAttention"]


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@register_op("nn.GroupedQueryAttention")
class GroupedQueryAttention(Module):
    """Self-attention with ``num_heads`` query heads sharing ``num_kv_heads`` key/value heads.

    Parameters (state_dict names): q_proj (E, E), k_proj (H_kv·D, E), v_proj (H_kv·D, E),
    out_proj (E, E), each a Linear with a bias when ``bias``; D = embed_dim / num_heads.
    num_kv_heads: None or num_heads (MHA), 1 (MQA), or any divisor of num_heads (GQA).

    forward(x (N, L, E) batch first, attn_mask=None, is_causal=False, key_padding_mask=None,
            cache=None) -> (N, L, E)
      attn_mask: sdpa's convention (bool True = may attend; float added), broadcastable to
          (N, H, L, S); key_padding_mask (N, L) bool, True = padding (as in PyTorch's layers);
      cache: a ``KVCache``: the new keys and values are appended (only the H_kv heads are kept)
          and the queries attend to all of them; ``is_causal`` then means causal at the cache's
          offset, and attn_mask must cover all S kept + new keys.
    """

    def __init__(self, embed_dim, num_heads, num_kv_heads=None, bias=True, dropout=0.0,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check_sizes(name, minimum=1, embed_dim=embed_dim, num_heads=num_heads,
                    num_kv_heads=num_kv_heads)
        if embed_dim % num_heads:
            raise ValueError(f"{name}: embed_dim={embed_dim} is not divisible by num_heads="
                             f"{num_heads}; choose num_heads among {_divisors(embed_dim)}.")
        if num_heads % num_kv_heads:
            raise ValueError(f"{name}: num_heads={num_heads} is not a multiple of num_kv_heads="
                             f"{num_kv_heads}, so the query heads cannot be split into equal "
                             f"groups; choose num_kv_heads among {_divisors(num_heads)} "
                             f"(1 = multi-query, {num_heads} = multi-head).")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}.")
        self.embed_dim, self.num_heads, self.num_kv_heads = int(embed_dim), int(num_heads), int(num_kv_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        kv_dim = self.num_kv_heads * self.head_dim
        self.q_proj = Linear(self.embed_dim, self.embed_dim, bias=bias, device=device, dtype=dtype)
        self.k_proj = Linear(self.embed_dim, kv_dim, bias=bias, device=device, dtype=dtype)
        self.v_proj = Linear(self.embed_dim, kv_dim, bias=bias, device=device, dtype=dtype)
        self.out_proj = Linear(self.embed_dim, self.embed_dim, bias=bias, device=device, dtype=dtype)

    @property
    def groups(self):
        """Query heads per key/value head."""
        return self.num_heads // self.num_kv_heads

    # ------------------------------------------------------------------ the steps
    def split_heads(self, x, heads):
        """(N, T, heads·D) -> (N, heads, T, D)."""
        N, T, _ = x.shape
        return ops.permute(ops.reshape(x, (N, T, heads, self.head_dim)), (0, 2, 1, 3))

    def project(self, x):
        """q (N, H, L, D), k and v (N, H_kv, L, D)."""
        return (self.split_heads(self.q_proj(x), self.num_heads),
                self.split_heads(self.k_proj(x), self.num_kv_heads),
                self.split_heads(self.v_proj(x), self.num_kv_heads))

    def merge_heads(self, heads):
        """(N, H, L, D) -> concat over heads (N, L, E) -> out_proj."""
        N, H, L, D = heads.shape
        return self.out_proj(ops.reshape(ops.permute(heads, (0, 2, 1, 3)), (N, L, H * D)))

    def attend(self, q, k, v, attn_mask=None, is_causal=False):
        """softmax(q kᵀ/√D + mask) v with query head i reading key/value head i // groups."""
        dropout_p = self.dropout if self.training else 0.0
        return scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                            is_causal=is_causal, enable_gqa=True)

    # ------------------------------------------------------------------ forward
    def forward(self, x, attn_mask=None, is_causal=False, key_padding_mask=None, cache=None):
        self._check(x, key_padding_mask, cache)
        q, k, v = self.project(x)
        if cache is None:
            mask = _combine(attn_mask, None if key_padding_mask is None else
                            ~_bool(key_padding_mask)[:, None, None, :], is_causal, x.shape[1])
            return self.merge_heads(self.attend(q, k, v, mask, is_causal and mask is None))
        k, v = cache.update(k, v, None if key_padding_mask is None else _bool(key_padding_mask))
        mask = cache_mask(cache, x.shape[1], is_causal)
        return self.merge_heads(self.attend(q, k, v, _combine(attn_mask, mask, False, None)))

    def _check(self, x, key_padding_mask, cache):
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"{name}: x must be a Tensor (N, L, embed_dim={self.embed_dim}) "
                             f"(batch first), got {getattr(x, 'shape', type(x).__name__)}.")
        if x.dtype != self.q_proj.weight.dtype:
            raise TypeError(f"{name}: x is {x.dtype} but the parameters are "
                            f"{self.q_proj.weight.dtype}; convert one of them.")
        if key_padding_mask is not None and tuple(unwrap(key_padding_mask).shape) != tuple(x.shape[:2]):
            raise ValueError(f"{name}: key_padding_mask must be (N, L) = {tuple(x.shape[:2])}, got "
                             f"{tuple(unwrap(key_padding_mask).shape)}.")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"{name}: cache must be a tinyattn.nn.KVCache, got "
                            f"{type(cache).__name__}.")

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"num_kv_heads={self.num_kv_heads}")


def _bool(mask):
    arr = unwrap(mask)
    if arr.dtype != bool:
        raise TypeError(f"GroupedQueryAttention: key_padding_mask must be bool (True = padding), "
                        f"got {arr.dtype}.")
    return arr


def cache_mask(cache, num_queries, is_causal):
    """(N, 1, L, S) bool, True = may attend, for the queries of the cache's last update: its keys
    that are not padding, and with ``is_causal`` only those at or before each query's column
    (and inside the window, for a sliding-window cache)."""
    keep = ~cache.last_key_padding[:, None, None, :]
    return keep & cache.causal_mask(num_queries)[None, None] if is_causal else keep


def _combine(attn_mask, allowed, is_causal, length):
    """One sdpa mask from the caller's attn_mask and a bool ``allowed`` (True = may attend); the
    causal triangle is added explicitly when there is another mask (sdpa takes is_causal only
    without one)."""
    if allowed is None:
        return attn_mask
    if is_causal:
        xp = get_array_module(allowed)
        allowed = allowed & xp.tril(xp.ones((length, length), dtype=bool))
    if attn_mask is None:
        return allowed
    arr = unwrap(attn_mask)
    if arr.dtype == bool:
        return arr & allowed
    xp = get_array_module(allowed)
    blocked = Tensor(xp.where(allowed, 0.0, -xp.inf).astype(arr.dtype))
    return (attn_mask if isinstance(attn_mask, Tensor) else Tensor(arr)) + blocked
