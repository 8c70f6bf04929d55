"""gradcheck: compare autograd's gradients with central finite differences, in float64.

For a function f and a random cotangent v (not all ones, so that mistakes cannot cancel), the
gradient of L(x) = Σ v · f(x) computed by backward must equal, element by element,

    (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

For inputs with many elements we check random directions d instead of every e_j. When the output
is small we also check the full Jacobian row by row (one one-hot cotangent per output element).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .function import no_grad
from .tensor import Tensor

FULL_JACOBIAN_MAX_ELEMENTS = 300   # inputs up to this size are perturbed element by element
N_DIRECTIONS = 12                  # random directions for larger inputs
FULL_ROWS_MAX_OUTPUTS = 16         # outputs up to this size get every Jacobian row checked


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor)]


def _loss_value(fn, inputs, cotangents):
    with no_grad():
        outs = _outputs(fn(*inputs))
    return sum(float((backend.to_numpy(o.data).astype(np.float64) * v).sum())
               for o, v in zip(outs, cotangents))


def _analytic(fn, inputs, cotangents, checked):
    for t in checked:
        t.grad = None
    outs = _outputs(fn(*inputs))
    total = None
    for o, v in zip(outs, cotangents):
        if not o.requires_grad:
            continue
        term = (o * Tensor(backend.to_backend(v.astype(o.dtype)))).sum()
        total = term if total is None else total + term
    if total is not None:
        total.backward()
    xp = backend.active_module()
    return [backend.to_numpy(t.grad) if t.grad is not None else np.zeros(t.shape)
            for t in checked], xp


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check ``fn(*inputs)``'s gradients w.r.t. every input tensor with ``requires_grad``.

    Returns True, or False on failure when ``raise_exception=False``; by default a failure raises
    ``GradcheckError`` naming the input, the worst element, both values and the tolerances.
    Inputs should be float64 (the check is meaningless in float32: eps would drown in rounding).
    """
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check.")
    for i, t in enumerate(checked):
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {t.dtype}; finite differences need "
                            f"float64. Create it with dtype='float64' (or call .double()).")
    rng = np.random.default_rng(seed)
    with no_grad():
        outs = _outputs(fn(*inputs))
    cot = [rng.uniform(0.5, 1.5, o.shape) * rng.choice([-1.0, 1.0], o.shape) for o in outs]

    analytic, _ = _analytic(fn, inputs, cot, checked)
    names = {id(t): (t.name or f"input {inputs.index(t)}") for t in checked}

    for t, grad in zip(checked, analytic):
        name = names[id(t)]
        if tuple(grad.shape) != tuple(t.shape):
            return _fail(f"gradcheck: {name}: gradient has shape {grad.shape}, input has {t.shape}",
                         raise_exception)
        original = t.data.copy()
        flat_orig = backend.to_numpy(original).ravel()

        def loss_at(direction, step):
            t.data = backend.to_backend((flat_orig + step * direction).reshape(t.shape))
            return _loss_value(fn, inputs, cot)

        try:
            if t.size <= FULL_JACOBIAN_MAX_ELEMENTS:
                directions = np.eye(t.size)
            else:
                directions = rng.standard_normal((N_DIRECTIONS, t.size))
            for k, d in enumerate(directions):
                numeric = (loss_at(d, eps) - loss_at(d, -eps)) / (2 * eps)
                exact = float(grad.ravel() @ d)
                if abs(exact - numeric) > atol + rtol * abs(numeric):
                    where = (f"element {np.unravel_index(k, t.shape)}" if t.size <= FULL_JACOBIAN_MAX_ELEMENTS
                             else f"random direction {k}")
                    return _fail(
                        f"gradcheck failed for {name} (shape {t.shape}) at {where}: analytic "
                        f"{exact:.10g} vs numeric {numeric:.10g} (difference {abs(exact - numeric):.3g} > "
                        f"atol {atol:g} + rtol {rtol:g} * |numeric|).", raise_exception)
        finally:
            t.data = original

    # The full Jacobian, row by row, when the output is small.
    if sum(o.size for o in outs) <= FULL_ROWS_MAX_OUTPUTS:
        for oi, o in enumerate(outs):
            for r in range(o.size):
                onehot = [np.zeros(p.shape) for p in outs]
                onehot[oi].ravel()[r] = 1.0
                row, _ = _analytic(fn, inputs, onehot, checked)
                for t, g in zip(checked, row):
                    flat = backend.to_numpy(t.data).ravel().copy()
                    orig = t.data.copy()
                    for j in range(t.size):
                        e = np.zeros(t.size)
                        e[j] = eps
                        t.data = backend.to_backend((flat + e).reshape(t.shape))
                        plus = _loss_value(fn, inputs, onehot)
                        t.data = backend.to_backend((flat - e).reshape(t.shape))
                        minus = _loss_value(fn, inputs, onehot)
                        t.data = orig
                        numeric = (plus - minus) / (2 * eps)
                        exact = float(g.ravel()[j])
                        if abs(exact - numeric) > atol + rtol * abs(numeric):
                            return _fail(
                                f"gradcheck failed for {names[id(t)]}: Jacobian entry d out{oi}"
                                f"[{r}] / d x[{j}]: analytic {exact:.10g} vs numeric {numeric:.10g}"
                                f" (atol {atol:g}, rtol {rtol:g}).", raise_exception)

    # A zero cotangent must give zero gradients.
    zero, _ = _analytic(fn, inputs, [np.zeros(o.shape) for o in outs], checked)
    for t, g in zip(checked, zero):
        if np.any(g != 0):
            return _fail(f"gradcheck: {names[id(t)]}: a zero output gradient gave a non-zero input "
                         f"gradient (max {np.abs(g).max():.3g}).", raise_exception)

    # Backward twice through a retained graph must give the same gradients.
    for t in checked:
        t.grad = None
    outs_g = _outputs(fn(*inputs))
    total = sum(((o * Tensor(backend.to_backend(v))).sum() for o, v in zip(outs_g, cot)
                 if o.requires_grad), Tensor(0.0, dtype="float64"))
    if total.requires_grad:
        total.backward(retain_graph=True)
        first = [None if t.grad is None else t.grad.copy() for t in checked]
        for t in checked:
            t.grad = None
        total.backward()
        for t, a in zip(checked, first):
            b = t.grad
            if (a is None) != (b is None) or (a is not None and not np.allclose(
                    backend.to_numpy(a), backend.to_numpy(b), rtol=1e-12, atol=0)):
                return _fail(f"gradcheck: {names[id(t)]}: two backward passes through the same "
                             "graph gave different gradients.", raise_exception)
    for t in checked:
        t.grad = None
    return True
