"""gradcheck: compare autograd's gradients with central finite differences, in float64.

For a function f and a random cotangent v (not all ones, so that mistakes cannot cancel), the
gradient of L(x) = Σ v · f(x) computed by backward must equal, element by element,

    (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

For inputs with many elements we check random directions d instead of every e_j. When the output
is small we also check the full Jacobian: one backward pass per output element (a one-hot
cotangent) gives each Jacobian row, compared with the same finite differences. Finally a zero
cotangent must give zero gradients, and two backward passes through a retained graph must agree.
A failure reports the worst element, not merely the first.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .function import no_grad
from .tensor import Tensor

FULL_JACOBIAN_MAX_ELEMENTS = 300   # inputs up to this size are perturbed element by element
N_DIRECTIONS = 12                  # random directions for larger inputs
FULL_ROWS_MAX_OUTPUTS = 32         # outputs up to this size get every Jacobian row checked


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _float_outputs(out):
    """The floating-point output tensors of fn (integer/bool outputs have no gradient)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind in "fc"]


def _flat_values(fn, inputs):
    """All floating outputs of fn(*inputs), as one float64 NumPy vector (no graph built)."""
    with no_grad():
        outs = _float_outputs(fn(*inputs))
    return np.concatenate([backend.to_numpy(o.array).astype(np.float64).ravel() for o in outs])


def _backward(fn, inputs, cotangents, checked, retain_graph=False):
    """Gradients of Σ_k cotangents[k] · output_k w.r.t. each checked input (zeros where none)."""
    for t in checked:
        t.grad = None
    outs = _float_outputs(fn(*inputs))
    total = None
    for o, v in zip(outs, cotangents):
        if o.requires_grad:
            term = (o * Tensor(backend.to_backend(v.astype(o.dtype)))).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward(retain_graph=retain_graph)
    grads = [np.zeros(t.shape) if t.grad is None else backend.to_numpy(t.grad.array).copy()
             for t in checked]
    return grads, total


def _split_cotangent(flat, shapes):
    """A flat vector over all outputs, cut back into one array per output."""
    parts, start = [], 0
    for shape in shapes:
        n = int(np.prod(shape, dtype=np.int64))
        parts.append(flat[start:start + n].reshape(shape))
        start += n
    return parts


def _output_position(r, shapes):
    """Flat output index r -> 'out1[2, 0]'."""
    for i, shape in enumerate(shapes):
        n = int(np.prod(shape, dtype=np.int64))
        if r < n:
            return f"out{i}[{', '.join(map(str, np.unravel_index(r, shape)))}]"
        r -= n
    return f"out?[{r}]"


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check ``fn(*inputs)``'s gradients w.r.t. every input tensor with ``requires_grad``.

    Returns True, or False on failure when ``raise_exception=False``; by default a failure raises
    ``GradcheckError`` naming the input, the worst element, both values and the tolerances.
    Inputs must be float64 (in float32, eps would drown in rounding error); an element passes
    when |analytic - numeric| <= atol + rtol * |numeric|.
    """
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check.")
    position = {id(t): i for i, t in enumerate(inputs) if isinstance(t, Tensor)}
    names = {id(t): t.name or f"input {position[id(t)]}" for t in checked}
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: {names[id(t)]} has dtype {t.dtype}; finite differences "
                            f"need float64. Create it with dtype='float64' (or call .double()).")
    with no_grad():
        outs = _float_outputs(fn(*inputs))
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor, so there is no gradient.")
    for i, o in enumerate(outs):
        if o.dtype != np.float64:
            raise TypeError(f"gradcheck: output {i} has dtype {o.dtype} although the inputs are "
                            "float64: the function loses precision somewhere (a cast, or an op "
                            "that does not keep float64).")
    shapes = [o.shape for o in outs]
    n_out = sum(o.numel() for o in outs)

    rng = np.random.default_rng(seed)
    cot_flat = rng.uniform(0.5, 1.5, n_out) * rng.choice([-1.0, 1.0], n_out)
    analytic, _ = _backward(fn, inputs, _split_cotangent(cot_flat, shapes), checked)
    rows = []      # rows[r][k]: gradient of output element r w.r.t. checked input k
    if n_out <= FULL_ROWS_MAX_OUTPUTS:
        for r in range(n_out):
            rows.append(_backward(fn, inputs, _split_cotangent(np.eye(n_out)[r], shapes), checked)[0])

    for k, t in enumerate(checked):
        name = names[id(t)]
        if tuple(analytic[k].shape) != tuple(t.shape):
            return _fail(f"gradcheck: {name}: gradient has shape {analytic[k].shape}, input has "
                         f"{t.shape}", raise_exception)
        message = _compare_with_finite_differences(fn, inputs, t, k, name, analytic, rows,
                                                   cot_flat, shapes, rng, eps, atol, rtol)
        if message:
            return _fail(message, raise_exception)

    zero, _ = _backward(fn, inputs, [np.zeros(s) for s in shapes], checked)
    for t, g in zip(checked, zero):
        if np.any(g != 0):
            return _fail(f"gradcheck: {names[id(t)]}: a zero output gradient gave a non-zero input "
                         f"gradient (max {np.abs(g).max():.3g}).", raise_exception)

    first, total = _backward(fn, inputs, _split_cotangent(cot_flat, shapes), checked,
                             retain_graph=True)
    if total is not None:
        for t in checked:
            t.grad = None
        total.backward()
        for t, a in zip(checked, first):
            b = np.zeros(t.shape) if t.grad is None else backend.to_numpy(t.grad.array)
            if not np.allclose(a, b, rtol=1e-12, atol=0):
                return _fail(f"gradcheck: {names[id(t)]}: two backward passes through the same "
                             "graph gave different gradients.", raise_exception)
    for t in checked:
        t.grad = None
    return True


def _compare_with_finite_differences(fn, inputs, t, k, name, analytic, rows, cot_flat, shapes,
                                     rng, eps, atol, rtol):
    """Perturb input t along each direction; return a message about the worst mismatch, or None.

    Per direction d we get the slope of every output, (f(x + eps d) - f(x - eps d)) / (2 eps).
    Column 0 compares v · slope with the analytic gradient · d (v: the random cotangent); the
    other columns, when the output is small, compare each slope with its Jacobian row · d."""
    elementwise = t.numel() <= FULL_JACOBIAN_MAX_ELEMENTS
    directions = np.eye(t.numel()) if elementwise else rng.standard_normal((N_DIRECTIONS, t.numel()))
    original = t.array
    flat = backend.to_numpy(original).astype(np.float64).ravel()
    slopes = []
    try:
        for d in directions:
            t.array = backend.to_backend((flat + eps * d).reshape(t.shape))
            plus = _flat_values(fn, inputs)
            t.array = backend.to_backend((flat - eps * d).reshape(t.shape))
            minus = _flat_values(fn, inputs)
            slopes.append((plus - minus) / (2 * eps))
    finally:
        t.array = original
    slopes = np.array(slopes)                                         # (directions, outputs)
    numeric = [slopes @ cot_flat]
    exact = [directions @ analytic[k].ravel()]
    if rows:
        numeric.append(slopes)
        exact.append(directions @ np.stack([row[k].ravel() for row in rows], axis=1))
    numeric = np.column_stack(numeric)                                # (directions, 1 + rows)
    exact = np.column_stack(exact)
    allowed = atol + rtol * np.abs(numeric)
    ratio = np.abs(exact - numeric) / allowed
    ratio[~np.isfinite(ratio)] = np.inf                               # NaN anywhere is a failure
    bad = ratio > 1
    if not bad.any():
        return None
    j, c = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    where = (f"element {tuple(int(i) for i in np.unravel_index(j, t.shape))}" if elementwise
             else f"random direction {j} of {N_DIRECTIONS}")
    label = (f"{where} (random output cotangent)" if c == 0
             else f"Jacobian entry d {_output_position(c - 1, shapes)} / d {where}")
    return (f"gradcheck failed for {name} (shape {t.shape}): worst at {label}: analytic "
            f"{exact[j, c]:.10g} vs numeric {numeric[j, c]:.10g} (difference "
            f"{abs(exact[j, c] - numeric[j, c]):.3g} > atol {atol:g} + rtol {rtol:g} * |numeric| = "
            f"{allowed[j, c]:.3g}); {int(bad.sum())} of {bad.size} checks failed.")


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False
