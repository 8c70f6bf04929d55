"""Linear attention (Katharopoulos et al., 2020, "Transformers are RNNs").

Softmax attention weighs key j for query i by exp(q_i·k_j); replace that with a product of
feature maps φ(q_i)·φ(k_j) (φ >= 0 so weights stay non-negative) and the sum can be reordered:

    out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)
          = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / φ(q_i)ᵀ (Σ_j φ(k_j))        S = Σ φ(k) vᵀ: (d, dv), z = Σ φ(k): (d,)

No (T, T) matrix is ever formed: non-causal costs O(T·d·dv). Causal attention sums only j <= i, so
S and z become running (prefix) sums S_i, z_i along time; that is the existing ``cumsum`` op, whose
backward is the reversed running sum, so the causal form is composed of differentiable ops and
needs no op of its own. Read one step at a time the prefix sums are a recurrence, an RNN whose
state is (S, z): ``linear_attention_step`` decodes one token in O(d·dv) whatever the length.

Feature maps: "elu" (elu(x) + 1, the paper's), "relu", "identity" (not non-negative: weights can be
negative and the denominator can cross zero; for experiments only). ``eps`` is added to every
denominator so an all-zero relu feature gives 0, not NaN (the quadratic reference in the tests adds
the same eps).
"""
from __future__ import annotations

from .. import ops
from ..autograd.registry import register_op
from ._checks import as_tensor

FEATURE_MAPS = ("elu", "relu", "identity")


def feature_map(x, kind: str = "elu"):
    """φ(x): "elu" -> elu(x) + 1 (> 0 everywhere), "relu" -> max(x, 0), "identity" -> x."""
    if kind == "elu":
        return ops.where(x > 0, x + 1.0, ops.exp(ops.minimum(x, 0.0)))
    if kind == "relu":
        return ops.relu(x)
    if kind == "identity":
        return x
    raise ValueError(f"linear_attention: feature_map must be one of {FEATURE_MAPS}, got {kind!r}.")


def _check(name, q, k, v):
    q, k, v = as_tensor(q, name, "query"), as_tensor(k, name, "key"), as_tensor(v, name, "value")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"{name}: query, key, value must be (..., T, d); got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}.")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{name}: need query (..., Tq, d), key (..., Tk, d), value (..., Tk, dv); got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} (d or Tk differ).")
    return q, k, v


@register_op("attention.linear_attention")
def linear_attention(query, key, value, causal: bool = False, feature_map_kind: str = "elu",
                     eps: float = 1e-6):
    """query (..., Tq, d), key (..., Tk, d), value (..., Tk, dv) -> (..., Tq, dv).

    causal=True needs Tq == Tk and lets query i see keys 0..i (prefix sums; memory O(T·d·dv))."""
    name = "linear_attention"
    q, k, v = _check(name, query, key, value)
    fq, fk = feature_map(q, feature_map_kind), feature_map(k, feature_map_kind)
    if not causal:
        S = fk.transpose(-1, -2) @ v                                        # (..., d, dv)
        z = fk.sum(dim=-2, keepdim=True)                                    # (..., 1, d)
        return (fq @ S) / ((fq * z).sum(dim=-1, keepdim=True) + eps)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"{name}: causal=True needs as many queries as keys (one per time step); "
                         f"got Tq={q.shape[-2]}, Tk={k.shape[-2]}.")
    S = ops.cumsum(fk[..., :, :, None] * v[..., :, None, :], dim=-3)        # (..., T, d, dv): S_i
    z = ops.cumsum(fk, dim=-2)                                              # (..., T, d): z_i
    num = (fq[..., :, None, :] @ S)[..., 0, :]                              # φ(q_i)ᵀ S_i
    return num / ((fq * z).sum(dim=-1, keepdim=True) + eps)


def linear_attention_step(query, key, value, state=None, feature_map_kind: str = "elu",
                          eps: float = 1e-6):
    """One causal step: query, key (..., d), value (..., dv) of the newest token; state (S, z) with
    S (..., d, dv), z (..., d), or None at the start -> (out (..., dv), new state)."""
    fq, fk = feature_map(query, feature_map_kind), feature_map(key, feature_map_kind)
    kv = fk[..., :, None] * value[..., None, :]
    S, z = (kv, fk) if state is None else (state[0] + kv, state[1] + fk)
    num = (fq[..., None, :] @ S)[..., 0, :]
    return num / ((fq * z).sum(dim=-1, keepdim=True) + eps), (S, z)
