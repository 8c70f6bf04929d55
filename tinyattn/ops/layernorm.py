"""layer_norm: normalise over the trailing ``normalized_shape`` axes, hand-written fused backward.

PyTorch semantics: mean and *biased* variance over the last len(normalized_shape) axes,

    y = (x - mean) / sqrt(var + eps) * weight + bias

The arithmetic lives in the kernels ``layer_norm_forward`` / ``layer_norm_backward`` (a plain NumPy
twin and a compiled one); this op only flattens x to rows (M, N) and back.
"""
from __future__ import annotations

import math

import numpy as np  # errstate, and which backend: the rows that overflow are redone on the CPU

from .. import kernels
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ..kernels import register_kernel


# ----- the reference math (whole-array xp: NumPy or CuPy). These are the definitions; the fast
# kernels in tinyattn/kernels/ register against the same names and the twin tests compare them.
@register_kernel("layer_norm_forward", "numpy")
def layer_norm_forward(x, weight, bias, eps):
    """Rows of x (M, N) normalised to zero mean and unit (biased) variance, then scaled and shifted:

        mean = Σ x / N,   var = Σ (x - mean)² / N,   rstd = 1 / sqrt(var + eps)
        y = (x - mean) · rstd · weight + bias          weight, bias: (N,) or None

    Returns y (M, N), mean (M,), rstd (M,): backward needs the last two."""
    xp = get_array_module(x)
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    var = (centred * centred).mean(axis=1)
    rstd = 1.0 / xp.sqrt(var + eps)
    y = centred * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


@register_kernel("layer_norm_backward", "numpy")
def layer_norm_backward(g, x, mean, rstd, weight):
    """Gradients of layer_norm for rows x (M, N), upstream g (M, N).

    With x̂ = (x - mean)·rstd and ĝ = g·weight (or g):
        dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂))      (means along the row)
        dweight = Σ_rows g ⊙ x̂,   dbias = Σ_rows g
    Returns dx, dweight, dbias (the last two computed even without weight/bias; the op drops them)."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    gh = g * weight if weight is not None else g
    dx = rstd[:, None] * (gh - gh.mean(axis=1, keepdims=True)
                          - xhat * (gh * xhat).mean(axis=1, keepdims=True))
    return dx, (g * xhat).sum(axis=0), g.sum(axis=0)


# ----- rows of huge numbers. The kernels square deviations in the input's dtype; in float32 a
# row near 3e38 overflows there (NaN or ±inf, while the true result is finite and bounded).
# Such rows are rare and are found from the statistics the kernel returns anyway (one comparison
# per row); they are then redone here in float64 after dividing by a power of two.
def _extreme_rows(mean, rstd):
    """Rows whose mean or spread is too large for the dtype's squares: |mean| or 1/rstd beyond
    sqrt(max) / 4 (NaN and inf included). None when there is none (the usual case)."""
    if type(mean) is not np.ndarray:   # on a GPU the test would cost a device-to-host wait in
        if get_array_module(mean) is not np:    # every call: there such rows give NaN, as in
            return None                         # PyTorch (README, "When things go wrong")
    bounds = _BIG.get(mean.dtype)
    if bounds is None:
        big = math.sqrt(float(np.finfo(mean.dtype).max)) / 4
        bounds = _BIG[mean.dtype] = (big, 1 / big)
    big, small = bounds
    # the usual case in two reductions (NaN fails both comparisons, so it reaches the mask); for
    # a few rows (a generation step) Python's min/max over floats are ~8x cheaper. min/max may
    # step over a NaN, but a sum never does: a NaN anywhere makes the total NaN (total != total).
    if mean.size <= _FEW_ROWS:
        if mean.size:
            ms, rs = mean.tolist(), rstd.tolist()
            total = sum(ms) + sum(rs)
            if -big < min(ms) and max(ms) < big and min(rs) > small and total == total:
                return None
    xp = get_array_module(mean)
    if mean.size > _FEW_ROWS and float(xp.abs(mean).max()) < big and float(rstd.min()) > small:
        return None
    bad = ~((xp.abs(mean) < big) & (rstd > small))
    return bad if bool(bad.any()) else None


_BIG = {}        # dtype -> (sqrt(max) / 4, its reciprocal)
_FEW_ROWS = 64


def _scaled_rows(x, eps):
    """x̂ = (x - mean) · rstd and rstd for rows (M, N) of any size, in float64: each row is first
    divided by a power of two s near its largest |x| (exact), so nothing overflows; eps scales
    by 1/s², as var does."""
    xp = get_array_module(x)
    x = x.astype(xp.float64)
    top = xp.abs(x).max(axis=1, keepdims=True)
    s = xp.where(xp.isfinite(top) & (top > 0), xp.exp2(xp.floor(xp.log2(xp.where(top > 0, top, 1)))), 1.0)
    xs = x / s
    centred = xs - xs.mean(axis=1, keepdims=True)
    rstd_scaled = 1.0 / xp.sqrt((centred * centred).mean(axis=1, keepdims=True) + eps / (s * s))
    return centred * rstd_scaled, rstd_scaled / s


def _scaled_forward(x, weight, bias, eps):
    xhat, _ = _scaled_rows(x, eps)
    y = xhat if weight is None else xhat * weight
    return (y if bias is None else y + bias).astype(x.dtype)


def _scaled_backward(g, x, weight, eps):
    """The twin's backward formulas on _scaled_rows' x̂ and rstd."""
    xhat, rstd = _scaled_rows(x, eps)
    g64 = g.astype(xhat.dtype)
    gh = g64 if weight is None else g64 * weight
    dx = rstd * (gh - gh.mean(axis=1, keepdims=True) - xhat * (gh * xhat).mean(axis=1, keepdims=True))
    return dx.astype(x.dtype), (g64 * xhat).sum(axis=0).astype(x.dtype), g.sum(axis=0)


@register_op("layer_norm")
class LayerNorm(Function):
    """x (..., *normalized_shape), weight and bias (*normalized_shape) or None -> y like x."""

    real_inputs = (0, 1, 2)

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape=(), eps=1e-5):
        k = len(normalized_shape)
        n = math.prod(normalized_shape)
        shape = x.shape
        rows = x.reshape(math.prod(shape[:len(shape) - k]), n) if k != 1 or len(shape) != 2 else x
        w, b = weight, bias                 # already (n,) for one normalised axis (checked)
        if k != 1:
            w = None if weight is None else weight.reshape(n)
            b = None if bias is None else bias.reshape(n)
        kernel = kernels.get("layer_norm_forward", rows)
        if kernel is layer_norm_forward:        # whole-array NumPy: overflow warnings silenced
            with np.errstate(over="ignore", invalid="ignore"):   # (the rows are redone below)
                y, mean, rstd = kernel(rows, w, b, eps)
        else:                                   # compiled loops raise no NumPy warnings
            y, mean, rstd = kernel(rows, w, b, eps)
        extreme = _extreme_rows(mean, rstd) if rows.size else None
        if extreme is not None:
            y[extreme] = _scaled_forward(rows[extreme], w, b, eps)
        ctx.save_for_backward(rows, mean, rstd, w)
        ctx.x_shape, ctx.extreme, ctx.eps = shape, extreme, eps
        ctx.normalized_shape = normalized_shape
        return y if rows is x else y.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        rows, mean, rstd, w = ctx.saved
        g_rows = g.reshape(rows.shape)
        backward = kernels.get("layer_norm_backward", rows)
        if ctx.extreme is None:
            dx, dw, db = backward(g_rows, rows, mean, rstd, w)
        else:                                   # the ordinary rows by the kernel, the others here
            bad, ok = ctx.extreme, ~ctx.extreme
            dx = get_array_module(rows).empty_like(rows)
            dx[ok], dw, db = backward(g_rows[ok], rows[ok], mean[ok], rstd[ok], w)
            dx[bad], dw_bad, db_bad = _scaled_backward(g_rows[bad], rows[bad], w, ctx.eps)
            dw, db = dw + dw_bad, db + db_bad
        # a gradient for an absent weight or bias (None input) is dropped by backward()
        return (dx.reshape(ctx.x_shape), None if dw is None else dw.reshape(ctx.normalized_shape),
                None if db is None else db.reshape(ctx.normalized_shape))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation as ``torch.nn.functional.layer_norm``.

    x: Tensor (..., *normalized_shape); normalized_shape: int or tuple of the trailing axes;
    weight, bias: Tensors of shape normalized_shape, or None."""
    if type(normalized_shape) is not tuple or len(normalized_shape) != 1 \
            or type(normalized_shape[0]) is not int:          # (the usual (n,) needs no work)
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        normalized_shape = tuple([int(s) for s in normalized_shape])
    k = len(normalized_shape)
    shape = x.array.shape if type(x) is Tensor or isinstance(x, Tensor) else tuple(x.shape)
    if k == 0 or shape[len(shape) - k:] != normalized_shape or len(shape) < k:
        raise ValueError(
            f"layer_norm: input of shape {tuple(x.shape)} must end with normalized_shape "
            f"{normalized_shape}. Pass the trailing axes to normalise over, e.g. "
            f"normalized_shape={tuple(x.shape[-1:])} for the last axis.")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.array.shape if isinstance(p, Tensor) else tuple(p.shape)) != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(p.shape)} but normalized_shape "
                             f"is {normalized_shape}; they must be equal.")
    if eps < 0:
        raise ValueError(f"layer_norm: eps must be >= 0, got {eps}.")
    x = x if isinstance(x, Tensor) else Tensor(x)
    return LayerNorm.apply(x, weight, bias, normalized_shape=normalized_shape,
                           eps=eps if type(eps) is float else float(eps))
