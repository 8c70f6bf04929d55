"""The finite-difference table that lesson 01 used to print: the ops the lessons use, each checked
by a plain central-difference loop (written here, independent of tinyattn.gradcheck) and by
tinyattn.gradcheck, in float64.

For each op f and a random signed weighting v of its outputs, L(x) = sum(v * f(x)); autograd's
dL/dx is compared with (L(x + eps e_j) - L(x - eps e_j)) / (2 eps) for every element j. The
relative error max_j |autograd_j - numeric_j| / max_j |numeric_j| must be at most 1e-6: central
differences are off by about eps² |f'''| / 6 plus rounding 1e-16 / eps, both far below that,
while a wrong backward formula gives errors near 1.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta

EPS = 1e-6


def finite_difference(fn, inputs, v, eps=EPS):
    """Numeric dL/dx for each input, perturbing one element at a time."""
    grads = []
    for t in inputs:
        flat = t.array.reshape(-1)      # a view: writing it changes t
        g = np.zeros(flat.size)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            plus = float((fn(*inputs).numpy() * v).sum())
            flat[j] = keep - eps
            minus = float((fn(*inputs).numpy() * v).sum())
            flat[j] = keep
            g[j] = (plus - minus) / (2 * eps)
        grads.append(g.reshape(t.shape))
    return grads


def autograd_gradient(fn, inputs, v):
    for t in inputs:
        t.grad = None
    (fn(*inputs) * ta.tensor(v, dtype="float64")).sum().backward()
    return [t.grad.numpy() for t in inputs]


_rng = np.random.default_rng(0)


def leaf(shape, lo=-1.0, hi=1.0):
    return ta.tensor(_rng.uniform(lo, hi, size=shape), dtype="float64", requires_grad=True)


def away_from_ties(shape):
    """Distinct values, so that max/relu/abs are differentiable at every point we test."""
    vals = _rng.permutation(np.linspace(-1, 1, int(np.prod(shape))) + 0.013)
    return ta.tensor(vals.reshape(shape), dtype="float64", requires_grad=True)


MASK = np.random.default_rng(1).random((3, 5)) > 0.3
MASK[:, 0] = True                       # every row keeps at least one key
X_SMALL = np.random.default_rng(2).normal(size=(4, 3))     # lesson 01's small graph: tanh(x W + b)² mean

OPS = [  # (name, function, input factory)
    ("add (broadcast)", lambda p, q: p + q, lambda: [leaf((3, 4)), leaf((4,))]),
    ("sub", lambda p, q: p - q, lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("mul (broadcast)", lambda p, q: p * q, lambda: [leaf((3, 4)), leaf((3, 1))]),
    ("div", lambda p, q: p / q, lambda: [leaf((3, 4)), leaf((3, 4), 0.5, 2.0)]),
    ("pow", lambda p: p ** 3, lambda: [leaf((3, 4))]),
    ("exp", ta.exp, lambda: [leaf((3, 4))]),
    ("log", ta.log, lambda: [leaf((3, 4), 0.2, 3.0)]),
    ("sqrt", ta.sqrt, lambda: [leaf((3, 4), 0.2, 3.0)]),
    ("tanh", ta.tanh, lambda: [leaf((3, 4), -2, 2)]),
    ("sigmoid", ta.sigmoid, lambda: [leaf((3, 4), -4, 4)]),
    ("relu", ta.relu, lambda: [away_from_ties((3, 4))]),
    ("abs", ta.abs, lambda: [away_from_ties((3, 4))]),
    ("matmul", lambda p, q: p @ q, lambda: [leaf((3, 4)), leaf((4, 2))]),
    ("batched matmul", lambda p, q: p @ q, lambda: [leaf((2, 3, 4)), leaf((2, 4, 5))]),
    ("sum (axis 1)", lambda p: p.sum(axis=1), lambda: [leaf((3, 4))]),
    ("mean", lambda p: p.mean(axis=0, keepdims=True), lambda: [leaf((3, 4))]),
    ("max (axis 1)", lambda p: p.amax(axis=1), lambda: [away_from_ties((3, 4))]),
    ("var", lambda p: p.var(axis=1, correction=0), lambda: [leaf((3, 4))]),
    ("logsumexp", lambda p: ta.logsumexp(p, axis=1), lambda: [leaf((3, 4), -3, 3)]),
    ("softmax", lambda p: ta.softmax(p, axis=-1), lambda: [leaf((3, 5), -3, 3)]),
    ("masked softmax", lambda p: ta.softmax(p, axis=-1, mask=MASK), lambda: [leaf((3, 5), -3, 3)]),
    ("log_softmax", lambda p: ta.log_softmax(p, axis=-1), lambda: [leaf((3, 5), -3, 3)]),
    ("reshape", lambda p: p.reshape(4, 3), lambda: [leaf((3, 4))]),
    ("transpose", lambda p: p.T, lambda: [leaf((3, 4))]),
    ("getitem", lambda p: p[1:, ::2], lambda: [leaf((3, 4))]),
    ("concatenate", lambda p, q: ta.concatenate([p, q], axis=1), lambda: [leaf((3, 2)), leaf((3, 4))]),
    ("stack", lambda p, q: ta.stack([p, q], axis=0), lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("where", lambda p, q: ta.where(MASK[:, :4], p, q), lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("the small graph", lambda Wt, bt: (ta.tanh(ta.tensor(X_SMALL, dtype="float64") @ Wt + bt) ** 2).mean(),
     lambda: [leaf((3, 2)), leaf((2,))]),
]


def test_the_table_has_the_lesson_ops():
    assert len(OPS) == 29 and len({name for name, _, _ in OPS}) == 29


@pytest.mark.parametrize("name,fn,make", OPS, ids=[name for name, _, _ in OPS])
def test_autograd_matches_central_differences(name, fn, make):
    inputs = make()
    shape = fn(*inputs).shape
    v = _rng.uniform(0.5, 1.5, size=shape) * _rng.choice([-1.0, 1.0], size=shape)
    exact = autograd_gradient(fn, inputs, v)
    numeric = finite_difference(fn, inputs, v)
    scale = max(np.abs(n).max() for n in numeric)
    assert scale > 0, f"{name}: the numeric gradient is all zero, the check would prove nothing"
    rel = max(np.abs(e - n).max() for e, n in zip(exact, numeric)) / scale
    assert rel <= 1e-6, f"{name}: relative error {rel:.2e}"
    for k, t in enumerate(inputs):
        t.name = f"{name} input {k}"     # gradcheck names the failing input in its message
    assert ta.gradcheck(fn, inputs)


def test_the_central_difference_loop_catches_a_wrong_gradient():
    """The loop above is a real check: a backward that forgets a factor 2 fails it."""
    from test_gradcheck import ForgetsTheFactorTwo          # y = x², backward says x instead of 2x

    x = leaf((3, 4))
    v = np.ones((3, 4))
    exact = autograd_gradient(ForgetsTheFactorTwo.apply, [x], v)
    numeric = finite_difference(ForgetsTheFactorTwo.apply, [x], v)
    assert np.abs(exact[0] - numeric[0]).max() / np.abs(numeric[0]).max() > 0.4
