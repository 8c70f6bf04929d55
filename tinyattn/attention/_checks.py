"""Input checks shared by the attention functions: clear errors that name the function, the shapes
and the fix, raised before NumPy would fail deep inside an op (or, worse, broadcast silently)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, as_array


def as_tensor(x, name: str, what: str) -> Tensor:
    """``x`` as a Tensor (arrays and lists are wrapped, Tensors pass through unchanged)."""
    if isinstance(x, Tensor):
        return x
    if x is None:
        raise TypeError(f"{name}: {what} is required, got None.")
    try:
        return Tensor(x)
    except TypeError as exc:                    # say which op and argument was given it
        text = str(exc).removeprefix("tensor: ")
        raise TypeError(f"{name}: {what}: {text}") from None


def broadcasts_to(shape, target) -> bool:
    """True when ``shape`` broadcasts to ``target`` without growing it."""
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def check_min_ndim(name: str, what: str, x, ndim: int, layout: str) -> None:
    if x.ndim < ndim:
        raise ValueError(f"{name}: {what} must have at least {ndim} dims, laid out as {layout}; "
                         f"got shape {tuple(x.shape)}. Add a leading axis (x[None]) for a "
                         f"single sequence.")


def check_queries_keys(name: str, q, k, same_width: bool = True) -> None:
    """q: (..., Tq, d), k: (..., Tk, d), batch axes broadcastable."""
    check_min_ndim(name, "queries", q, 2, "(..., Tq, d)")
    check_min_ndim(name, "keys", k, 2, "(..., Tk, d)")
    if same_width and q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{name}: queries have feature size d={q.shape[-1]} (shape "
                         f"{tuple(q.shape)}) but keys have d={k.shape[-1]} (shape {tuple(k.shape)}). "
                         f"Project both to the same size first, or use general_score / "
                         f"additive_score, which accept different sizes.")
    try:
        np.broadcast_shapes(tuple(q.shape[:-2]), tuple(k.shape[:-2]))
    except ValueError:
        raise ValueError(f"{name}: the batch axes of queries {tuple(q.shape)} and keys "
                         f"{tuple(k.shape)} do not broadcast (everything before the last two axes "
                         f"must match or be 1).") from None


def check_values(name: str, scores_shape, values) -> None:
    """values: (..., Tk, dv) with Tk equal to the scores' last axis."""
    check_min_ndim(name, "values", values, 2, "(..., Tk, dv)")
    if values.shape[-2] != scores_shape[-1]:
        raise ValueError(f"{name}: the weights cover Tk={scores_shape[-1]} keys (shape "
                         f"{tuple(scores_shape)}) but values have {values.shape[-2]} rows (shape "
                         f"{tuple(values.shape)}). Values must be laid out as (..., Tk, dv), one row "
                         f"per key.")


def plain_mask(name: str, mask, scores_shape):
    """A boolean mask (True = may attend) as a plain array, checked against the scores' shape.

    The mask must broadcast to the scores *without* enlarging them. A key-padding mask given as
    (B, Tk) instead of (B, 1, Tk) against (B, Tq, Tk) scores is caught this way when B != Tq; when
    B == Tq it would line batch b up with query b, which no shape check can see - that is why
    padding_mask returns (B, 1, Tk)."""
    if mask is None:
        return None
    m = as_array(mask)                     # a NumPy mask for CuPy scores is copied over once
    if not hasattr(m, "dtype"):            # a Python bool
        m = backend.active_module().asarray(m)
    if m.dtype != np.bool_:
        raise TypeError(f"{name}: mask must be boolean (True = may attend), got dtype {m.dtype}. "
                        f"Build it with causal_mask / padding_mask / local_window_mask, or compare "
                        f"(mask != 0). An additive float mask goes to scaled_dot_product_attention's "
                        f"attn_mask, or add it to the scores yourself.")
    if not broadcasts_to(m.shape, scores_shape):
        raise ValueError(f"{name}: mask of shape {tuple(m.shape)} does not broadcast to the scores' "
                         f"shape {tuple(scores_shape)} (..., Tq, Tk). A key-padding mask for a batch "
                         f"needs shape (B, 1, Tk) (add the query axis: mask[:, None, :]).")
    return m
