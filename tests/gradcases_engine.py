"""Gradient-check cases for the engine's ops (tinyattn/ops/*): every one in float64, with
broadcasting on either side and across ranks, non-contiguous (transposed) inputs, inputs used
twice, and inputs kept away from kinks (relu at 0, abs at 0, ties of max/maximum, clip bounds)."""
from __future__ import annotations

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
from tinyattn.ops import getitem

from gradcases import GradCase, rnd


def pos(*shape, seed=0):
    """Positive inputs, for log, sqrt, and the base of a real power."""
    return rnd(*shape, lo=0.5, hi=2.0, seed=seed)


def distinct(*shape, seed=0):
    """Values that are well apart, so max/min have no ties and no near-ties."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    vals = rng.permutation(n) * 0.25 + rng.uniform(-0.05, 0.05, n)
    return ta.tensor(vals.reshape(shape), requires_grad=True, dtype="float64")


def bools(*shape, seed=0, p=0.5):
    return np.random.default_rng(seed).uniform(size=shape) < p


CASES = [
    # ---------------------------------------------------------------- arithmetic, broadcasting
    GradCase("add", lambda a, b: a + b, lambda: [rnd(2, 3), rnd(2, 3, seed=1)], "same shape"),
    GradCase("add", lambda a, b: a + b, lambda: [rnd(4, 1, 3), rnd(2, 1, seed=1)],
             "broadcast both sides, rank mismatch"),
    GradCase("add", lambda a: 2.5 + a + np.ones((2, 1, 3)), lambda: [rnd(4, 3)],
             "scalar on the left, array operand adds a leading axis"),
    GradCase("add", lambda a: a + a, lambda: [rnd(3)], "reused input"),
    GradCase("sub", lambda a, b: a - b, lambda: [rnd(3, 1), rnd(4, seed=1)], "broadcast outer"),
    GradCase("sub", lambda a: 1.0 - a, lambda: [rnd(2, 3)], "scalar on the left"),
    GradCase("sub", lambda a: a.T - a, lambda: [rnd(3, 3)], "reused through a transposed view"),
    GradCase("mul", lambda a, b: a * b, lambda: [rnd(2, 3), rnd(3, seed=1)], "broadcast rank"),
    GradCase("mul", lambda a: a * a, lambda: [rnd(2, 3)], "reused input x*x"),
    GradCase("mul", lambda a, b: a.T * b, lambda: [rnd(3, 2), rnd(2, 1, seed=1)],
             "non-contiguous operand"),
    GradCase("mul", lambda a: 3.0 * a, lambda: [rnd(4)], "scalar on the left"),
    GradCase("div", lambda a, b: a / b, lambda: [rnd(2, 3), pos(3, seed=1)], "broadcast rank"),
    GradCase("div", lambda a: 2.0 / a, lambda: [pos(2, 2)], "scalar numerator"),
    GradCase("div", lambda a: a / (a * a + 1), lambda: [rnd(5)], "reused in both operands"),
    GradCase("pow", lambda a: a ** 3, lambda: [rnd(2, 3)], "integer exponent"),
    GradCase("pow", lambda a: a ** 0.5, lambda: [pos(4)], "fractional exponent"),
    GradCase("pow", lambda a, b: a ** b, lambda: [pos(2, 3), rnd(3, seed=1)],
             "tensor base and exponent, broadcast"),
    GradCase("pow", lambda b: 2.0 ** b, lambda: [rnd(3)], "scalar base"),
    GradCase("pow", lambda a: a ** a, lambda: [pos(3)], "reused input"),
    GradCase("neg", lambda a: -a, lambda: [rnd(2, 3)]),
    GradCase("neg", lambda a: -(a.T), lambda: [rnd(2, 3)], "non-contiguous"),
    # ---------------------------------------------------------------- unary functions
    GradCase("exp", lambda a: ta.exp(a), lambda: [rnd(2, 3)]),
    GradCase("exp", lambda a: a.exp() * a, lambda: [rnd(4)], "reused"),
    GradCase("log", lambda a: ta.log(a), lambda: [pos(2, 3)]),
    GradCase("log", lambda a: a.T.log(), lambda: [pos(3, 2)], "non-contiguous"),
    GradCase("sqrt", lambda a: ta.sqrt(a), lambda: [pos(2, 3)]),
    GradCase("abs", lambda a: ta.abs(a), lambda: [rnd(3, 4, away_from=0.0)], "away from 0"),
    GradCase("abs", lambda a: abs(a) * a, lambda: [rnd(5, away_from=0.0)], "builtin abs, reused"),
    # ---------------------------------------------------------------- maximum, minimum, clip, where
    GradCase("maximum", lambda a, b: ta.maximum(a, b),
             lambda: [rnd(2, 3, seed=1), rnd(3, seed=2)], "broadcast (no ties)"),
    GradCase("maximum", lambda a: ta.maximum(a, 0.0), lambda: [rnd(3, 3, away_from=0.0)],
             "against a scalar, away from the kink"),
    GradCase("maximum", lambda a: ta.maximum(a, a), lambda: [rnd(4)],
             "every element tied: gradient split 0.5/0.5 sums to 1"),
    GradCase("minimum", lambda a, b: ta.minimum(a, b),
             lambda: [rnd(4, 1, seed=3), rnd(1, 3, seed=4)], "broadcast both sides"),
    GradCase("minimum", lambda a: a.minimum(0.25), lambda: [rnd(6, away_from=0.25)], "method"),
    GradCase("clip", lambda a: ta.clip(a, -0.5, 0.5),
             lambda: [rnd(3, 4, lo=-1.5, hi=1.5, away_from=0.5)], "both bounds"),
    GradCase("clip", lambda a: a.clip(-0.3), lambda: [rnd(8, away_from=-0.3)], "lower bound only"),
    GradCase("clip", lambda a: ta.clip(a, max=0.2), lambda: [rnd(8, away_from=0.2)],
             "upper bound only"),
    GradCase("where", lambda a, b: ta.where(bools(2, 3), a, b), lambda: [rnd(2, 3), rnd(3, seed=1)],
             "numpy condition, broadcast b"),
    GradCase("where", lambda a: ta.where(a > 0.1, a, a * a), lambda: [rnd(3, 4, away_from=0.1)],
             "bool tensor condition, reused input"),
    GradCase("where", lambda a: ta.where(bools(2, 1, seed=5), 0.0, a.T), lambda: [rnd(3, 2)],
             "scalar branch, non-contiguous"),
    # ---------------------------------------------------------------- activations
    GradCase("sigmoid", lambda a: ta.sigmoid(a), lambda: [rnd(2, 3, lo=-4, hi=4)]),
    GradCase("sigmoid", lambda a: a.sigmoid() * a, lambda: [rnd(5)], "reused"),
    GradCase("tanh", lambda a: ta.tanh(a), lambda: [rnd(2, 3, lo=-2, hi=2)]),
    GradCase("relu", lambda a: ta.relu(a), lambda: [rnd(3, 4, away_from=0.0)], "away from 0"),
    GradCase("relu", lambda a: a.T.relu(), lambda: [rnd(3, 2, away_from=0.0)], "non-contiguous"),
    GradCase("gelu", lambda a: ta.gelu(a), lambda: [rnd(3, 4, lo=-3, hi=3)], "exact (erf)"),
    GradCase("gelu", lambda a: ta.gelu(a, approximate="tanh"), lambda: [rnd(3, 4, lo=-3, hi=3)],
             "tanh approximation"),
    GradCase("softplus", lambda a: ta.softplus(a), lambda: [rnd(3, 4, lo=-3, hi=3)]),
    GradCase("softplus", lambda a: ta.softplus(a, beta=2.0, threshold=3.0),
             lambda: [rnd(10, lo=-3, hi=3, away_from=1.5)], "beta and threshold (linear part)"),
    GradCase("cast", lambda a: a.astype("float64") * 2, lambda: [rnd(2, 3)], "same dtype"),
    GradCase("cast", lambda a: a.clone() * a, lambda: [rnd(4)], "clone is a cast, reused"),
    # ---------------------------------------------------------------- reductions
    GradCase("sum", lambda a: a.sum(), lambda: [rnd(2, 3)], "all axes"),
    GradCase("sum", lambda a: ta.sum(a, axis=1), lambda: [rnd(2, 3, 4)], "one axis"),
    GradCase("sum", lambda a: a.sum(axis=(0, 2), keepdims=True), lambda: [rnd(2, 3, 4)],
             "two axes, keepdims"),
    GradCase("sum", lambda a: a.T.sum(axis=-1), lambda: [rnd(3, 4)], "negative axis, transposed"),
    GradCase("mean", lambda a: a.mean(), lambda: [rnd(2, 3)]),
    GradCase("mean", lambda a: ta.mean(a, axis=(1, 2), keepdims=True), lambda: [rnd(2, 3, 4)],
             "keepdims"),
    GradCase("mean", lambda a: a.mean(axis=0) * a, lambda: [rnd(3, 4)], "reused, broadcast back"),
    GradCase("max", lambda a: a.max(), lambda: [distinct(3, 4)], "all axes, no ties"),
    GradCase("max", lambda a: ta.amax(a, axis=1, keepdims=True), lambda: [distinct(2, 5, 3)],
             "one axis keepdims"),
    GradCase("max", lambda a: a.T.amax(axis=0), lambda: [distinct(4, 3)], "non-contiguous"),
    GradCase("min", lambda a: a.amin(axis=-1), lambda: [distinct(3, 4, seed=2)]),
    GradCase("min", lambda a: ta.amin(a, axis=(0, 1)), lambda: [distinct(2, 3, 2, seed=3)],
             "two axes"),
    GradCase("var", lambda a: a.var(), lambda: [rnd(3, 4)], "all axes"),
    GradCase("var", lambda a: ta.var(a, axis=1, keepdims=True, ddof=1), lambda: [rnd(3, 5)],
             "ddof=1, keepdims"),
    GradCase("var", lambda a: a.var(axis=0) + a.mean(axis=0), lambda: [rnd(4, 3)], "reused"),
    GradCase("logsumexp", lambda a: ta.logsumexp(a, axis=-1), lambda: [rnd(3, 5, lo=-3, hi=3)]),
    GradCase("logsumexp", lambda a: a.logsumexp(), lambda: [rnd(2, 3, lo=50, hi=60)],
             "large values (no overflow)"),
    GradCase("logsumexp", lambda a: a.logsumexp(axis=(0, 2), keepdims=True),
             lambda: [rnd(2, 3, 2)], "two axes keepdims"),
    # ---------------------------------------------------------------- softmax family
    GradCase("softmax", lambda a: ta.softmax(a, axis=-1), lambda: [rnd(3, 5, lo=-2, hi=2)]),
    GradCase("softmax", lambda a: a.softmax(axis=0), lambda: [rnd(4, 3)], "axis 0"),
    GradCase("softmax", lambda a: ta.softmax(a, mask=np.array([[True, True, False, True],
                                                                [False, False, False, False],
                                                                [True, False, False, False]])),
             lambda: [rnd(3, 4)], "mask with a fully masked row and a single kept entry"),
    GradCase("softmax", lambda a: ta.softmax(a, mask=ta.tensor(bools(1, 5, seed=2) | (np.arange(5) == 0))),
             lambda: [rnd(2, 3, 5)], "broadcast bool-tensor mask"),
    GradCase("softmax", lambda a: ta.softmax(a * a, axis=-1) * a, lambda: [rnd(2, 4)], "reused"),
    GradCase("log_softmax", lambda a: ta.log_softmax(a), lambda: [rnd(3, 5, lo=-3, hi=3)]),
    GradCase("log_softmax", lambda a: a.T.log_softmax(axis=0), lambda: [rnd(4, 3)],
             "axis 0, non-contiguous"),
    # ---------------------------------------------------------------- shapes
    GradCase("reshape", lambda a: a.reshape(3, 2) * np.arange(6).reshape(3, 2),
             lambda: [rnd(2, 3)], "ints"),
    GradCase("reshape", lambda a: ta.reshape(a.T, (-1,)) * np.arange(6), lambda: [rnd(2, 3)],
             "-1 from a transposed (non-contiguous) input"),
    GradCase("reshape", lambda a: a.unsqueeze(1).squeeze(1) * a.view(2, 3), lambda: [rnd(2, 3)],
             "unsqueeze/squeeze/view, reused"),
    GradCase("permute", lambda a: a.permute(2, 0, 1) * np.arange(24).reshape(4, 2, 3),
             lambda: [rnd(2, 3, 4)]),
    GradCase("permute", lambda a: ta.transpose(a, -2, -1) @ a, lambda: [rnd(2, 3, 4)],
             "transpose(-2, -1) (PyTorch swap), reused"),
    GradCase("permute", lambda a: a.swapaxes(0, 2).T * np.arange(24).reshape(2, 3, 4),
             lambda: [rnd(2, 3, 4)], "swapaxes then .T"),
    GradCase("broadcast_to", lambda a: ta.broadcast_to(a, (2, 3, 4)) * np.arange(24).reshape(2, 3, 4),
             lambda: [rnd(3, 1)], "rank and length-1 axes"),
    GradCase("broadcast_to", lambda a: a.expand(-1, 3) * a, lambda: [rnd(2, 1)], "expand, reused"),
    GradCase("concatenate", lambda a, b: ta.concatenate([a, b, a], axis=1),
             lambda: [rnd(2, 3), rnd(2, 1, seed=1)], "reused input, axis 1"),
    GradCase("concatenate", lambda a: ta.concatenate([a.T, np.ones((1, 2))], axis=0),
             lambda: [rnd(2, 3)], "with a constant array, non-contiguous"),
    GradCase("stack", lambda a, b: ta.stack([a, b, a], axis=-1), lambda: [rnd(2, 3), rnd(2, 3, seed=1)],
             "last axis, reused"),
    GradCase("stack", lambda a: ta.stack([a, a * 2]), lambda: [rnd(3)], "axis 0"),
    GradCase("split", lambda a: a.tensor_split(3, axis=1), lambda: [rnd(2, 6)], "equal parts, all outputs"),
    GradCase("split", lambda a: ta.tensor_split(a, [1, 3], axis=0)[2] * 2, lambda: [rnd(5, 2)],
             "cut indices, one output used (others get zero gradient)"),
    GradCase("split", lambda a: (lambda p: p[0] * p[1])(ta.split(a, 2)), lambda: [rnd(4, 3)],
             "outputs multiplied together"),
    GradCase("pad", lambda a: ta.pad(a, ((1, 0), (2, 1))) * np.arange(24).reshape(4, 6),
             lambda: [rnd(3, 3)], "pair per axis"),
    GradCase("pad", lambda a: a.pad(1, value=0.5) * a.pad((0, 2)), lambda: [rnd(3)],
             "int and single pair, reused"),
    # ---------------------------------------------------------------- linear (x @ w.T + b, fused)
    GradCase("linear", lambda x, w, b: ta.ops.linalg.Linear.apply(x, w, b),
             lambda: [rnd(4, 3), rnd(5, 3, seed=1), rnd(5, seed=2)], "with bias"),
    GradCase("linear", lambda x, w: ta.ops.linalg.Linear.apply(x, w, None), lambda: [rnd(4, 3), rnd(2, 3, seed=1)],
             "no bias"),
    GradCase("linear", lambda x: ta.ops.linalg.Linear.apply(x, x, x[0]), lambda: [rnd(3, 3)],
             "x as input, weight and (a row of it) bias"),
    GradCase("linear", lambda x, w, b: F.linear(x, w, b),
             lambda: [rnd(2, 3, 4), rnd(5, 4, seed=1), rnd(5, seed=2)], "F.linear, 3-D input"),
    GradCase("linear", lambda x, w, b: ta.ops.linalg.Linear.apply(x, w, b),
             lambda: [rnd(3, 12, 2), rnd(3, 2, seed=1), rnd(3, seed=2)],
             "3-D input with more rows than FEW_ROWS (the x @ w.T branch)"),
    # ---------------------------------------------------------------- matmul
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(2, 3), rnd(3, 4, seed=1)], "2-D"),
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(3), rnd(3, 4, seed=1)], "1-D x 2-D"),
    GradCase("matmul", lambda a, b: ta.matmul(a, b), lambda: [rnd(2, 3), rnd(3, seed=1)], "2-D x 1-D"),
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(4), rnd(4, seed=1)], "1-D x 1-D (dot)"),
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(2, 1, 3, 4), rnd(5, 4, 2, seed=1)],
             "batched, broadcast batch axes on both sides"),
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(3), rnd(2, 3, 2, seed=1)], "1-D x batched"),
    GradCase("matmul", lambda a, b: a @ b, lambda: [rnd(2, 2, 3), rnd(3, seed=1)], "batched x 1-D"),
    GradCase("matmul", lambda a: a @ a.T, lambda: [rnd(3, 4)], "x @ x.T (reused, non-contiguous)"),
    GradCase("matmul", lambda a: np.arange(6.0).reshape(2, 3) @ a, lambda: [rnd(3, 2)],
             "numpy array on the left"),
    # ---------------------------------------------------------------- indexing
    GradCase("getitem", lambda a: a[1:, ::2], lambda: [rnd(3, 5)], "slices with a step"),
    GradCase("getitem", lambda a: a[None, ..., 1], lambda: [rnd(2, 3, 4)], "None and Ellipsis"),
    GradCase("getitem", lambda a: a[-1], lambda: [rnd(3, 2)], "negative int"),
    GradCase("getitem", lambda a: a[np.array([0, 2, 0, 0])], lambda: [rnd(3, 2)],
             "integer array with repeated indices (scatter-add)"),
    GradCase("getitem", lambda a: a[ta.tensor([[1, 1], [0, 1]]), ta.tensor([2, 2])],
             lambda: [rnd(2, 3)], "two integer tensors, repeats, broadcast index"),
    GradCase("getitem", lambda a: a[[0, 0, 1]] * a[0], lambda: [rnd(2, 3)], "list index, reused"),
    GradCase("getitem", lambda a: a[bools(3, 4, seed=7)], lambda: [rnd(3, 4)], "boolean mask"),
    GradCase("getitem", lambda a: a[a > 0.2], lambda: [rnd(4, 3, away_from=0.2)],
             "boolean tensor mask from the input"),
    GradCase("getitem", lambda a: a.T[1:, np.array([2, 0, 2])], lambda: [rnd(3, 4)],
             "slice and integer array on a transposed view"),
    GradCase("getitem", lambda a: getitem(a, (slice(None), 0)), lambda: [rnd(2, 3)],
             "functional spelling"),
]
