"""Hard attention: each query looks at exactly one key.

Deterministic: the key with the highest score (a one-hot row). Its true gradient is zero almost
everywhere (nudging a score does not change which one is largest), so to train through it you
either pick a gradient by hand (straight-through: pretend the forward pass was a softmax) or
sample the key and use the REINFORCE estimator (Williams, 1992; Xu et al., 2015 "Show, Attend and
Tell"):

    ∇_θ E_{j~p_θ}[R(j)] = E_{j~p_θ}[(R(j) - b) ∇_θ log p_θ(j)]     for any baseline b not depending on j.
"""
from __future__ import annotations

import numbers

from .. import backend, kernels, ops, random
from ..autograd.function import Function
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ._checks import as_tensor, broadcasts_to, plain_mask
from .weights import _check_temperature


def _one_hot(xp, index, Tk, dtype):
    """index (..., 1) -> one-hot rows (..., Tk)."""
    return (xp.arange(Tk) == index).astype(dtype)


def _rows_with_a_key(xp, mask, shape):
    """(..., 1) bool: does the row have at least one allowed key? (all True without a mask)."""
    if mask is None:
        return xp.ones(shape[:-1] + (1,), dtype=bool)
    return xp.broadcast_to(mask, shape).any(axis=-1, keepdims=True)


class HardArgmax(Function):
    """One-hot of the argmax over the last axis (first one on ties, as torch.argmax), with the
    gradient chosen by ``gradient``: 'none' (the true one: 0) or 'straight_through' (softmax's)."""

    real_inputs = (0,)

    @staticmethod
    def forward(ctx, scores, mask=None, gradient="none", temperature=1.0):
        xp = get_array_module(scores)
        if scores.shape[-1] == 0:       # no keys: empty rows, as rows whose keys are all masked
            ctx.gradient = "none"
            return xp.zeros_like(scores)
        masked = scores if mask is None else xp.where(mask, scores, -xp.inf)
        index = masked.argmax(axis=-1)[..., None]
        out = _one_hot(xp, index, scores.shape[-1], scores.dtype)
        out *= _rows_with_a_key(xp, mask, scores.shape)          # all-masked rows: no key at all
        ctx.gradient = gradient
        if gradient == "straight_through":
            ctx.save_for_backward(kernels.get("softmax_forward", scores)(scores / temperature, -1, mask))
            ctx.temperature = temperature
        return out

    @staticmethod
    def backward(ctx, g):
        if ctx.gradient == "none":
            return get_array_module(g).zeros_like(g)
        (y,) = ctx.saved
        return kernels.get("softmax_backward", y)(y, g, -1) / ctx.temperature


_GRADIENTS = ("none", "straight_through")


@register_op("attention.hard_attention")
def hard_attention(scores, mask=None, gradient="none", temperature=1.0):
    """Hard (argmax) attention weights: w_ij = 1 if j = argmax_{j' allowed} s_ij' else 0.

    scores: (..., Tq, Tk); mask: bool, True = may attend -> one-hot rows (..., Tq, Tk); a row with
    no allowed key is all zeros. Ties go to the first key.

    gradient:
      'none'             the true gradient, 0 (argmax is piecewise constant).
      'straight_through' forward one-hot, backward as if the weights were softmax(s / temperature):
                         a biased but useful signal (Bengio et al., 2013).
    """
    scores = as_tensor(scores, "hard_attention", "scores")
    if gradient not in _GRADIENTS:
        raise ValueError(f"hard_attention: gradient must be one of {_GRADIENTS}, got {gradient!r}. "
                         f"For sampled hard attention trained with REINFORCE use "
                         f"stochastic_hard_attention and reinforce_loss.")
    _check_temperature("hard_attention", temperature)
    m = plain_mask("hard_attention", mask, scores.shape)
    return HardArgmax.apply(scores, mask=m, gradient=gradient, temperature=temperature)


@register_op("attention.stochastic_hard_attention")
def stochastic_hard_attention(scores, mask=None, temperature=1.0, generator=None):
    """Sample one key per query from p = softmax(s / τ) (masked), for REINFORCE training.

    scores: (..., Tq, Tk) -> (sample, log_prob):
      sample:   (..., Tq, Tk) one-hot rows (a constant: no gradient flows through the draw);
      log_prob: (..., Tq) log p(j_sampled), differentiable in the scores. Feed it to
                ``reinforce_loss``. Rows with no allowed key give a zero row and log_prob 0.
    ``generator``: a NumPy/CuPy Generator; default ``tinyattn.random.generator()`` (seeded by
    ``tinyattn.manual_seed``).
    """
    scores = as_tensor(scores, "stochastic_hard_attention", "scores")
    _check_temperature("stochastic_hard_attention", temperature)
    m = plain_mask("stochastic_hard_attention", mask, scores.shape)
    gen = random.generator() if generator is None else generator
    xp = get_array_module(scores.array)
    z = scores / temperature if temperature != 1.0 else scores
    has_key = _rows_with_a_key(xp, m, scores.shape)
    if m is not None:
        # Masked keys get -inf, so log p = -inf there; rows with no key at all are left unmasked
        # (their log_prob is then discarded) so that no -inf - (-inf) = NaN ever appears.
        z = ops.where(m | ~has_key, z, -xp.inf)
    log_p = ops.log_softmax(z, axis=-1)                          # (..., Tq, Tk)
    # Inverse-CDF sampling: the first j whose cumulative probability exceeds u · total.
    p = xp.exp(log_p.array)
    cdf = xp.cumsum(p, axis=-1)
    u = xp.asarray(gen.random(scores.shape[:-1] + (1,))) * cdf[..., -1:]
    index = xp.minimum((cdf <= u).sum(axis=-1, keepdims=True), scores.shape[-1] - 1)
    sample = _one_hot(xp, index, scores.shape[-1], scores.dtype) * has_key
    log_prob = ops.where(sample.astype(bool), log_p, 0.0).sum(axis=-1)
    return Tensor(sample), log_prob


@register_op("attention.reinforce_loss")
def reinforce_loss(log_prob, reward, baseline=0.0, reduction="mean"):
    """The REINFORCE surrogate loss  L = -(R - b) · log p(sample)  (mean or sum over samples).

    log_prob: (...,) from ``stochastic_hard_attention``; reward R and baseline b: numbers or
    arrays/Tensors broadcastable to log_prob. R and b are treated as constants (detached), so
    -∇L is an unbiased estimate of ∇ E[R]: minimising L raises the probability of samples that did
    better than the baseline. A good baseline (e.g. a running mean of R) only lowers the variance.
    """
    log_prob = as_tensor(log_prob, "reinforce_loss", "log_prob")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reinforce_loss: reduction must be 'mean' or 'sum', got {reduction!r}.")
    advantage = _constant(reward, log_prob.dtype) - _constant(baseline, log_prob.dtype)
    if not broadcasts_to(getattr(advantage, "shape", ()), log_prob.shape):
        # e.g. log_prob (N, 1) with reward (N,) would silently become an (N, N) loss
        raise ValueError(f"reinforce_loss: reward/baseline of shape {tuple(advantage.shape)} must "
                         f"broadcast to log_prob's shape {tuple(log_prob.shape)} without enlarging "
                         f"it; reshape the reward to {tuple(log_prob.shape)}.")
    loss = -(log_prob * advantage)
    return loss.mean() if reduction == "mean" else loss.sum()


def _constant(x, dtype):
    """A reward or baseline as a plain array/number in log_prob's dtype: no gradient flows into it."""
    if isinstance(x, Tensor):
        x = x.array
    if isinstance(x, numbers.Number):
        return x
    if not backend.is_array(x):
        x = backend.active_module().asarray(x)
    return x.astype(dtype, copy=False)
