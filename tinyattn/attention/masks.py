"""Masks: which keys each query may look at.

Every mask here is a boolean Tensor with **True = may attend**, the meaning PyTorch's
``scaled_dot_product_attention`` gives a boolean ``attn_mask``. Its last two axes are (Tq, Tk) (or
broadcast to them), so masks combine with ``&`` (both allow) and ``|`` (either allows), e.g.
``causal_mask(T) & local_window_mask(T, window=2)`` looks back at most 2 steps.

Masks are not differentiable (they are built from positions and lengths, not from learnt numbers),
so they are not in the op registry; the attention functions that use them are, and their gradient
checks run with these masks.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, unwrap


def _size(name: str, what: str, n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name}: {what} must be a positive int, got {n!r}.")
    return int(n)


def _positions(Tq: int, Tk: int):
    """Row index i as (Tq, 1) and column index j as (1, Tk), on the active backend."""
    xp = backend.active_module()
    return xp.arange(Tq)[:, None], xp.arange(Tk)[None, :]


def causal_mask(Tq: int, Tk: int | None = None) -> Tensor:
    """mask[i, j] = (j <= i): query i sees keys 0..i and nothing later.

    Shape (Tq, Tk), Tk defaulting to Tq. Aligned top-left when Tq != Tk, exactly like PyTorch's
    ``is_causal=True`` (``torch.ones(Tq, Tk).tril()``): query 0 sees key 0 only.
    """
    Tq = _size("causal_mask", "Tq", Tq)
    Tk = Tq if Tk is None else _size("causal_mask", "Tk", Tk)
    i, j = _positions(Tq, Tk)
    return Tensor(j <= i)


def local_window_mask(Tq: int, Tk: int | None = None, *, window: int) -> Tensor:
    """mask[i, j] = (|i - j| <= window): local attention over a band of 2·window + 1 keys.

    Shape (Tq, Tk), Tk defaulting to Tq. ``window=0`` lets each query see only its own position;
    a window of Tk - 1 or more is global attention.
    """
    Tq = _size("local_window_mask", "Tq", Tq)
    Tk = Tq if Tk is None else _size("local_window_mask", "Tk", Tk)
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 0:
        raise ValueError(f"local_window_mask: window must be an int >= 0 (the half-width D in "
                         f"|i - j| <= D), got {window!r}.")
    i, j = _positions(Tq, Tk)
    return Tensor(abs(i - j) <= window)


def _lengths(name: str, what: str, lengths, T):
    """Lengths as an int array on the active backend, and the padded length T, both checked.

    Lists are copied to the device once; device arrays stay there and are checked there (only
    bools and, without an explicit T, the longest length come back to the host)."""
    arr = backend.active_module().asarray(unwrap(lengths))   # other backend's array: moved once
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: {what} must be a non-empty 1-D list of ints, one per sequence in "
                         f"the batch; got {arr.dtype} array of shape {tuple(arr.shape)}.")
    if bool((arr < 0).any()):
        raise ValueError(f"{name}: {what} must be >= 0, got {arr.tolist()}.")
    T = int(arr.max()) if T is None else _size(name, "the padded length", T)
    if T < 1:
        raise ValueError(f"{name}: every sequence has length 0; give the padded length explicitly.")
    if bool((arr > T).any()):
        raise ValueError(f"{name}: {what} {arr.tolist()} exceed the padded length {T}.")
    return arr, T


def padding_mask(key_lengths, Tk: int | None = None, query_lengths=None, Tq: int | None = None) -> Tensor:
    """Mask for a batch of sequences of different lengths, padded to a common length.

    key_lengths: (B,) ints -> mask of shape (B, 1, Tk) with mask[b, 0, j] = (j < key_lengths[b]):
    padding keys get no weight, and the size-1 query axis broadcasts over (B, Tq, Tk) scores.
    For multi-head scores (B, H, Tq, Tk) add the head axis: ``mask[:, None]``.

    With query_lengths (B,) too, the mask has shape (B, Tq, Tk) and also blanks the rows of padding
    queries; such a row has no key to attend to, and our softmax gives it all-zero weights (and
    zero gradient) rather than NaN.
    Tk / Tq default to the longest length.
    """
    kl, Tk = _lengths("padding_mask", "key_lengths", key_lengths, Tk)
    xp = backend.get_array_module(kl)
    keys_ok = xp.arange(Tk)[None, None, :] < kl[:, None, None]          # (B, 1, Tk)
    if query_lengths is None:
        if Tq is not None:
            raise ValueError("padding_mask: Tq is only used together with query_lengths.")
        return Tensor(keys_ok)
    ql, Tq = _lengths("padding_mask", "query_lengths", query_lengths, Tq)
    if ql.shape != kl.shape:
        raise ValueError(f"padding_mask: query_lengths has {ql.shape[0]} entries but key_lengths has "
                         f"{kl.shape[0]}; give one of each per sequence in the batch.")
    queries_ok = xp.arange(Tq)[None, :, None] < ql[:, None, None]       # (B, Tq, 1)
    return Tensor(queries_ok & keys_ok)
