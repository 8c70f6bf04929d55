"""cross_entropy: log-softmax + negative log-likelihood fused into one op (PyTorch semantics).

Composing ``log_softmax`` and an indexing op would work, but would keep the (N, C) log-probabilities
*and* a one-hot gradient around and walk them several times. Fused, the forward computes log-softmax
and the picked losses row by row, and the backward writes d loss / d logits in one pass:

    p = softmax(logits);  dlogits[n] = g_n · (p · k_n - (1 - ε)·w[y_n]·onehot(y_n) - (ε/C)·w)

with k_n = (1 - ε)·w[y_n] + (ε/C)·Σ w (see ``cross_entropy_backward`` below).
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
@register_kernel("cross_entropy_forward", "numpy")
def cross_entropy_forward(logits, target, class_weight, ignore_index, label_smoothing):
    """Per-row loss of log-softmax + negative log-likelihood, with PyTorch's label smoothing.

    logits (N, C), target (N,) ints, class_weight (C,) or None (then all ones), ε = label_smoothing:

        logp = log_softmax(logits)
        loss_n = (1 - ε) · w[y_n] · (-logp[n, y_n])  +  (ε / C) · Σ_c w_c · (-logp[n, c])
        loss_n = 0 where y_n == ignore_index

    Returns loss (N,), weight_of_row (N,) = w[y_n] (0 where ignored: the 'mean' denominator is its
    sum) and logp (N, C), which backward turns into the softmax."""
    xp = get_array_module(logits)
    n, c = logits.shape
    m = logits.max(axis=1, keepdims=True)
    shifted = logits - m
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    keep = target != ignore_index
    safe_target = xp.where(keep, target, 0)
    w = xp.ones(c, dtype=logits.dtype) if class_weight is None else class_weight
    row_weight = xp.where(keep, w[safe_target], 0).astype(logits.dtype)
    picked = logp[xp.arange(n), safe_target]
    loss = (1.0 - label_smoothing) * row_weight * (-picked)
    if label_smoothing > 0:
        smooth = -(logp * w).sum(axis=1)
        loss = loss + (label_smoothing / c) * xp.where(keep, smooth, 0)
    return loss, row_weight, logp


@register_kernel("cross_entropy_backward", "numpy")
def cross_entropy_backward(g_rows, logp, target, class_weight, ignore_index, label_smoothing):
    """d loss / d logits for upstream per-row gradients g_rows (N,); with p = softmax = exp(logp),
    k = (1 - ε)·w[y] + (ε / C)·Σ_c w_c:

        dlogits[n, j] = g_n · ( p_j · k - (1 - ε) · w[y_n] · [j == y_n] - (ε / C) · w_j )

    and 0 for ignored rows."""
    xp = get_array_module(logp)
    n, c = logp.shape
    keep = target != ignore_index
    safe_target = xp.where(keep, target, 0)
    w = xp.ones(c, dtype=logp.dtype) if class_weight is None else class_weight
    wy = w[safe_target]
    k = (1.0 - label_smoothing) * wy + (label_smoothing / c) * w.sum()
    d = xp.exp(logp) * k[:, None] - (label_smoothing / c) * w
    d[xp.arange(n), safe_target] -= (1.0 - label_smoothing) * wy
    g_rows = xp.where(keep, g_rows, 0)
    return d * g_rows[:, None]


_REDUCTIONS = ("none", "mean", "sum")


@register_op("cross_entropy")
class CrossEntropy(Function):
    """logits (N, C) -> loss: (N,) for reduction='none', a scalar for 'mean' / 'sum'.

    Static: target (N,) ints, class_weight (C,) or None, ignore_index, reduction, label_smoothing."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, logits, target=None, class_weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        loss, row_weight, logp = kernels.get("cross_entropy_forward", logits)(
            logits, target, class_weight, ignore_index, label_smoothing)
        ctx.save_for_backward(logp)
        ctx.target, ctx.class_weight = target, class_weight
        ctx.ignore_index, ctx.reduction, ctx.label_smoothing = ignore_index, reduction, label_smoothing
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        # mean: divided by the summed weights of the targets that count (their number, unweighted);
        # all targets ignored gives 0/0 = nan, as in PyTorch
        total = row_weight.sum()
        ctx.total = total
        xp = get_array_module(logits)
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(loss.sum() / total, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        (logp,) = ctx.saved
        xp = get_array_module(logp)
        n = logp.shape[0]
        if ctx.reduction == "none":
            g_rows = g
        elif ctx.reduction == "sum":
            g_rows = xp.full(n, g, dtype=logp.dtype)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                g_rows = xp.full(n, g / ctx.total, dtype=logp.dtype)
        return kernels.get("cross_entropy_backward", logp)(
            g_rows, logp, ctx.target, ctx.class_weight, ctx.ignore_index, ctx.label_smoothing)


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """``torch.nn.functional.cross_entropy`` for class-index targets.

    logits: Tensor (N, C) of unnormalised scores; target: int array or Tensor (N,) of class indices
    in [0, C) or ``ignore_index``; weight: optional (C,) per-class weights (not differentiated);
    reduction: 'none' -> (N,), 'sum', or 'mean' = Σ loss / Σ w[target] over non-ignored rows;
    label_smoothing ε in [0, 1]: the target distribution is (1 - ε)·onehot + ε / C."""
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    if logits.ndim != 2:
        raise ValueError(
            f"cross_entropy: logits must have shape (N, C), got {tuple(logits.shape)}. For a sequence "
            f"of shape (B, T, C), reshape to (B*T, C) and the target to (B*T,).")
    n, c = logits.shape
    xp = get_array_module(logits.array)
    target_arr = target.array if isinstance(target, Tensor) else xp.asarray(target)
    if target_arr.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must hold integer class indices, got dtype {target_arr.dtype}. "
            f"Convert with target.astype('int64') (probability targets are not supported).")
    if tuple(target_arr.shape) != (n,):
        raise ValueError(f"cross_entropy: target has shape {tuple(target_arr.shape)} but logits "
                         f"have shape {(n, c)}; target must be ({n},), one class index per row.")
    target_arr = target_arr.astype(np.int64, copy=False)
    # checked where the targets live: on a GPU one bool comes back, never the target array
    out_of_range = (target_arr != ignore_index) & ((target_arr < 0) | (target_arr >= c))
    if n and bool(out_of_range.any()):
        bad = target_arr[out_of_range][0]
        raise IndexError(f"cross_entropy: target value {int(bad)} is out of range for {c} classes; "
                         f"targets must lie in [0, {c - 1}] or equal ignore_index={ignore_index}.")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}.")
    class_weight = None
    if weight is not None:
        class_weight = (weight.array if isinstance(weight, Tensor) else xp.asarray(weight))
        if tuple(class_weight.shape) != (c,):
            raise ValueError(f"cross_entropy: weight has shape {tuple(class_weight.shape)}, but "
                             f"the logits have {c} classes; give one weight per class, shape "
                             f"({c},).")
        class_weight = class_weight.astype(logits.dtype, copy=False)
    return CrossEntropy.apply(logits, target=target_arr, class_weight=class_weight,
                              ignore_index=int(ignore_index), reduction=reduction,
                              label_smoothing=float(label_smoothing))
