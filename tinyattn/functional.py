"""The functional API, ``import tinyattn.functional as F``, with PyTorch's names and arguments.

Layers (``tinyattn.nn``) are built from these functions. Arguments follow
``torch.nn.functional``: ``dim=`` rather than ``axis=``, ``reduction='mean'|'sum'|'none'``,
``ignore_index=-100``. Index and target arguments may be tinyattn tensors or NumPy arrays.

The fused, hand-differentiated ops (layer_norm, cross_entropy, embedding) live in ``tinyattn.ops``;
the rest are written here from Tensor operations, so autograd differentiates them.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import ops
from .attention.attend import scaled_dot_product_attention  # noqa: F401 - torch's F has it too
from .autograd.registry import register_op
from .autograd.tensor import Tensor, as_array
from .backend import get_array_module
from .ops.cross_entropy import cross_entropy as _cross_entropy_rows
from .ops.embedding import embedding as _embedding
from .ops.layernorm import layer_norm as _layer_norm
from .random import generator

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout",
           "embedding", "gelu", "huber_loss", "kl_div", "layer_norm", "linear", "log_softmax",
           "mse_loss", "nll_loss", "relu", "scaled_dot_product_attention", "sigmoid",
           "smooth_l1_loss", "softmax", "tanh"]

_REDUCTIONS = ("none", "mean", "sum")


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _plain(x, xp=None):
    """An index/target/mask given as a Tensor or any array-like, as a plain array."""
    if isinstance(x, Tensor):
        return x.array
    return as_array(x) if xp is None else xp.asarray(x)


def _class_weights(fn, weight, c, dtype, xp=None):
    """``weight`` as a (C,) array in ``dtype``: one weight per class, or an error naming both
    counts (a weight with too many entries would otherwise be indexed silently, PyTorch refuses
    it too)."""
    w = _plain(weight, xp)
    if tuple(w.shape) != (c,):
        raise ValueError(f"{fn}: weight has shape {tuple(w.shape)}, but the input has {c} classes; "
                         f"give one weight per class, shape ({c},).")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: weight has dtype {w.dtype}; class weights are real numbers.")
    return w.astype(dtype)


def _check_reduction(fn, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}.")


# ---------------------------------------------------------------------------- layers
@register_op("F.linear")
def linear(input, weight, bias=None):
    """y = input @ weightᵀ + bias.

    input (..., in_features); weight (out_features, in_features); bias (out_features,) or None
    -> (..., out_features), one op (``ops.linalg.Linear``) whatever the number of leading axes."""
    input = _tensor(input)
    # the checks read the arrays' own shapes and dtypes (cheaper than the Tensor properties: this
    # runs for every layer of every step)
    x = input.array
    w = weight.array if isinstance(weight, Tensor) else weight
    in_features = w.shape[-1]
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(
            f"linear: input has shape {tuple(input.shape)} but the weight has shape "
            f"{tuple(weight.shape)} (out_features, in_features); the input's last axis must have "
            f"in_features={in_features} entries.")
    if x.dtype != w.dtype:
        raise TypeError(
            f"linear: input has dtype {input.dtype} but the weight has dtype {weight.dtype}; they "
            f"must match (PyTorch: 'mat1 and mat2 must have the same dtype'). Convert the input "
            f"(x.astype('{weight.dtype}'), e.g. x.float()) or the model "
            f"(model.double() / model.float()).")
    b = bias.array if isinstance(bias, Tensor) else bias
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias has shape {tuple(bias.shape)} but the weight has shape "
                         f"{tuple(weight.shape)}; the bias must have shape (out_features,) = "
                         f"({weight.shape[0]},).")
    if b is not None and b.dtype != w.dtype:
        raise TypeError(f"linear: bias has dtype {bias.dtype} but the weight has dtype "
                        f"{weight.dtype}; convert one of them (e.g. bias.astype('{weight.dtype}')).")
    return ops.linalg.Linear.apply(input, weight, bias)


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``input`` (any shape; Tensor or
    NumPy array) -> (*input.shape, dim). Row ``padding_idx`` receives no gradient."""
    return _embedding(input, weight, padding_idx)


@register_op("F.dropout")
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the survivors by 1/(1-p), so the expected
    value is unchanged; the identity when ``training`` is False or p == 0. The mask is drawn from
    tinyattn's seeded generator (``tinyattn.manual_seed``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}.")
    input = _tensor(input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = generator().random(input.shape) >= p
    scale = get_array_module(input.array).asarray(1.0 / (1.0 - p), dtype=input.dtype)
    return input * (keep * scale)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` axes (biased variance), then
    ``* weight + bias``. input (..., *normalized_shape) -> same shape."""
    input = _tensor(input)
    dtype = input.array.dtype
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.array.dtype if isinstance(p, Tensor) else getattr(p, "dtype", dtype)) != dtype:
            raise TypeError(
                f"layer_norm: input has dtype {input.dtype} but the {name} has dtype {p.dtype}; "
                f"they must match (PyTorch: 'mixed dtype (CPU): all inputs must share same "
                f"datatype'). Convert the input (x.astype('{p.dtype}')) or the model "
                f"(model.double() / model.float()).")
    return _layer_norm(input, normalized_shape, weight, bias, eps)


# ---------------------------------------------------------------------------- activations
def relu(input, inplace=False):
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility; a new tensor is returned."""
    return ops.relu(_tensor(input))


def gelu(input, approximate="none"):
    return ops.gelu(_tensor(input), approximate=approximate)


def tanh(input):
    return ops.tanh(_tensor(input))


def sigmoid(input):
    return ops.sigmoid(_tensor(input))


def _implicit_dim(fn, ndim):
    """PyTorch's legacy rule when ``dim`` is not given (deprecated there too)."""
    warnings.warn(f"{fn}: implicit dimension choice is deprecated; pass dim= explicitly.",
                  UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, dtype=None):
    """exp(x_i) / Σ_j exp(x_j) along ``dim``; ``dtype`` casts the input first, as in PyTorch."""
    input = _tensor(input)
    if dtype is not None:
        input = input.astype(dtype)
    if dim is None:
        dim = _implicit_dim("softmax", input.ndim)
    return ops.softmax(input, axis=dim)


def log_softmax(input, dim=None, dtype=None):
    """x_i - log Σ_j exp(x_j) along ``dim``, computed stably."""
    input = _tensor(input)
    if dtype is not None:
        input = input.astype(dtype)
    if dim is None:
        dim = _implicit_dim("log_softmax", input.ndim)
    return ops.log_softmax(input, axis=dim)


# ---------------------------------------------------------------------------- losses
def _classes_last(fn, input, target):
    """PyTorch puts classes on axis 1: (N, C, d1, ...) with target (N, d1, ...), or (C,) with a
    scalar target. Return input as rows (M, C), target as (M,), and the shape 'none' returns."""
    if input.ndim == 1:
        return input.reshape(1, -1), target.reshape(1), ()
    if input.ndim == 2:
        return input, target, (input.shape[0],)
    n, c = input.shape[0], input.shape[1]
    if tuple(target.shape) != (n, *input.shape[2:]):
        raise ValueError(f"{fn}: input has shape {tuple(input.shape)} (N, C, d1, ...) so target "
                         f"must have shape {(n, *input.shape[2:])}, got {tuple(target.shape)}.")
    axes = (0, *range(2, input.ndim), 1)
    return input.permute(*axes).reshape(-1, c), target.reshape(-1), tuple(target.shape)


@register_op("F.cross_entropy")
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    input: logits (N, C), (C,) or (N, C, d1, ...); target: class indices (N,) / () / (N, d1, ...)
    in [0, C) or ``ignore_index`` (Tensor or NumPy array), or class probabilities with the
    input's shape (floats). weight: optional (C,) class weights. 'mean' divides by the summed
    weights of the counted targets (by N for probability targets). label_smoothing ε mixes the
    target with the uniform distribution: (1 - ε)·target + ε/C.
    """
    input = _tensor(input)
    _check_reduction("cross_entropy", reduction)
    target_arr = _plain(target, get_array_module(input.array))
    if target_arr.dtype.kind == "f":
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    if input.ndim == 1 and target_arr.ndim != 0:
        raise ValueError(f"cross_entropy: unbatched logits of shape {tuple(input.shape)} need a "
                         f"scalar target, got shape {tuple(target_arr.shape)}.")
    rows, flat_target, out_shape = _classes_last("cross_entropy", input, target_arr)
    loss = _cross_entropy_rows(rows, flat_target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    if reduction == "none" and input.ndim != 2:
        loss = loss.reshape(*out_shape)
    return loss


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing):
    """Soft targets: loss_n = -Σ_c w_c q_nc log p_nc with q = (1-ε)·target + ε/C."""
    q = _tensor(target)                         # a list of floats: the default dtype
    if tuple(q.shape) != tuple(input.shape):
        raise ValueError(f"cross_entropy: probability targets must have the input's shape "
                         f"{tuple(input.shape)}, got {tuple(q.shape)}.")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    class_axis = 0 if input.ndim == 1 else 1
    if label_smoothing > 0:
        q = q * (1.0 - label_smoothing) + label_smoothing / c
    terms = ops.log_softmax(input, axis=class_axis) * q
    if weight is not None:
        w = _class_weights("cross_entropy", weight, c, input.dtype)
        shape = [1] * input.ndim
        shape[class_axis] = c
        terms = terms * w.reshape(shape)
    loss = -terms.sum(axis=class_axis)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    n = 1 if input.ndim == 1 else loss.numel()
    return loss.sum() / n


@register_op("F.nll_loss")
def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities: loss_n = -w[y_n] · input[n, y_n].

    input (N, C), (C,) or (N, C, d1, ...) of log-probabilities (e.g. from log_softmax); target
    class indices as in ``cross_entropy``. 'mean' divides by Σ w[y_n] over non-ignored rows."""
    input = _tensor(input)
    _check_reduction("nll_loss", reduction)
    xp = get_array_module(input.array)
    target_arr = _plain(target, xp)
    if target_arr.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype "
                        f"{target_arr.dtype}; convert with .astype('int64').")
    rows, flat, out_shape = _classes_last("nll_loss", input, target_arr)
    n, c = rows.shape
    if tuple(flat.shape) != (n,):
        raise ValueError(f"nll_loss: input has {n} rows of {c} classes but target has shape "
                         f"{tuple(target_arr.shape)}.")
    counted = flat != ignore_index
    bad = counted & ((flat < 0) | (flat >= c))
    if bool(bad.any()):
        raise IndexError(f"nll_loss: target value {int(flat[bad][0])} is out of range for {c} "
                         f"classes; targets must lie in [0, {c - 1}] or equal "
                         f"ignore_index={ignore_index}.")
    safe = xp.where(counted, flat, 0).astype(np.int64)
    w = (xp.ones(c, dtype=input.dtype) if weight is None
         else _class_weights("nll_loss", weight, c, input.dtype, xp))
    row_weight = w[safe] * counted
    loss = -(rows[xp.arange(n), safe] * row_weight)
    if reduction == "none":
        return loss.reshape(*out_shape) if input.ndim != 2 else loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore", divide="ignore"):   # all ignored: 0/0 = nan, as PyTorch
        return loss.sum() / row_weight.sum()


@register_op("F.mse_loss")
def mse_loss(input, target, reduction="mean"):
    """(input - target)², averaged ('mean'), summed ('sum') or kept ('none'). Both sides may
    require grad. Different shapes are broadcast with a warning, as in PyTorch - nearly always a
    bug, e.g. predictions (N, 1) against targets (N,) give an (N, N) matrix of differences."""
    _check_reduction("mse_loss", reduction)
    input = _tensor(input)
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"mse_loss: input shape {tuple(input.shape)} and target shape "
                      f"{tuple(target.shape)} differ; they are broadcast together, which is "
                      f"probably not what you want. Reshape one of them so they match.",
                      UserWarning, stacklevel=2)
    diff = input - target
    sq = diff * diff
    if reduction == "none":
        return sq
    return sq.sum() if reduction == "sum" else sq.mean()


def _reduce(loss, reduction):
    """Apply a checked reduction ('none' | 'mean' | 'sum') to elementwise losses."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _same_shape(fn, input, target, hint):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{fn}: target has shape {tuple(target.shape)} but the input has shape "
                         f"{tuple(input.shape)}; they must be equal ({hint}).")


@register_op("F.kl_div")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence KL(target ‖ model) with ``input`` = the model's
    log-probabilities: target · (log target - input) elementwise (0 where target = 0), or
    exp(target) · (target - input) when ``log_target``. 'batchmean' divides the sum by the batch
    size (the true KL per sample); 'mean' divides by the number of elements, as PyTorch does
    (with the same warning)."""
    if size_average is not None or reduce is not None:
        raise TypeError("kl_div: size_average and reduce are deprecated in PyTorch and not "
                        "supported here; use reduction='batchmean' | 'sum' | 'mean' | 'none'.")
    if reduction not in (*_REDUCTIONS, "batchmean"):
        raise ValueError(f"kl_div: reduction must be one of {(*_REDUCTIONS, 'batchmean')}, got "
                         f"{reduction!r}.")
    input, target = _tensor(input), _tensor(target)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        # log of 1 where target is 0, so that 0 · log 0 counts as 0 (and its gradient is finite)
        xp = get_array_module(target.array)
        positive = target.array > 0
        safe = ops.where(positive, target, xp.ones((), dtype=target.dtype))
        loss = target * (ops.log(safe) - input)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides the total loss by both the batch size "
                      "and the support size. 'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition.", UserWarning, stacklevel=2)
    return _reduce(loss, reduction)


@register_op("F.binary_cross_entropy")
def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w · (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1] (each log clamped at
    -100, as PyTorch, so x = 0 or 1 gives a finite loss). Prefer binary_cross_entropy_with_logits
    on the raw scores: it is exact where sigmoid would round to 0 or 1."""
    _check_reduction("binary_cross_entropy", reduction)
    input, target = _tensor(input), _tensor(target)
    _same_shape("binary_cross_entropy", input, target,
                "one probability target per prediction; e.g. squeeze (N, 1) predictions")
    x = input.array
    if x.size and bool(((x < 0) | (x > 1) | (x != x)).any()):
        raise ValueError(f"binary_cross_entropy: all elements of the input must be probabilities "
                         f"in [0, 1], got values in [{float(x.min())}, {float(x.max())}]. Apply "
                         f"sigmoid first, or pass the raw scores to "
                         f"binary_cross_entropy_with_logits (stabler).")
    with np.errstate(divide="ignore"):          # log 0 = -inf, clamped on the next line
        log_p = ops.maximum(ops.log(input), -100.0)
        log_not_p = ops.maximum(ops.log(1.0 - input), -100.0)
    loss = -(target * log_p + (1.0 - target) * log_not_p)
    if weight is not None:
        loss = loss * _tensor(weight)
    return _reduce(loss, reduction)


@register_op("F.binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """BCE of sigmoid(input), computed from the logits without forming sigmoid:
    (1 - y) x + (1 + (p - 1) y) · softplus(-x), with softplus(-x) = log(1 + e^-|x|) + max(-x, 0)
    = -log σ(x) exact for every x. ``pos_weight`` p (broadcast over the last axis: one per class)
    weighs the positive term; ``weight`` each element."""
    if size_average is not None or reduce is not None:
        raise TypeError("binary_cross_entropy_with_logits: size_average and reduce are "
                        "deprecated in PyTorch and not supported here; use reduction=.")
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input, target = _tensor(input), _tensor(target)
    _same_shape("binary_cross_entropy_with_logits", input, target,
                "one target per logit; e.g. squeeze (N, 1) logits")
    neg_log_sigmoid = ops.softplus(-input, threshold=float("inf"))   # no cut-off: exact softplus
    if pos_weight is None:
        loss = (1.0 - target) * input + neg_log_sigmoid
    else:
        loss = (1.0 - target) * input + (1.0 + (_tensor(pos_weight) - 1.0) * target) * neg_log_sigmoid
    if weight is not None:
        loss = loss * _tensor(weight)
    return _reduce(loss, reduction)


def _huber(diff, delta):
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta): quadratic near 0, linear beyond."""
    absolute = ops.abs(diff)
    return ops.where(absolute.array < delta, 0.5 * diff * diff, delta * (absolute - 0.5 * delta))


@register_op("F.huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0):
    """Huber loss: 0.5 (x - y)² where |x - y| < delta, else delta (|x - y| - 0.5 delta)."""
    _check_reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}.")
    input, target = _tensor(input), _tensor(target)
    _same_shape("huber_loss", input, target, "reshape one of them so they match")
    return _reduce(_huber(input - target, delta), reduction)


@register_op("F.smooth_l1_loss")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1: 0.5 (x - y)² / beta where |x - y| < beta, else |x - y| - 0.5 beta (Huber loss
    divided by beta; plain L1 for beta = 0)."""
    if size_average is not None or reduce is not None:
        raise TypeError("smooth_l1_loss: size_average and reduce are deprecated in PyTorch and "
                        "not supported here; use reduction=.")
    _check_reduction("smooth_l1_loss", reduction)
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}.")
    input, target = _tensor(input), _tensor(target)
    _same_shape("smooth_l1_loss", input, target, "reshape one of them so they match")
    diff = input - target
    loss = _huber(diff, beta) / beta if beta > 0 else ops.abs(diff)
    return _reduce(loss, reduction)
