"""Products with PyTorch's names and strict shapes: einsum, mm, bmm, addmm, baddbmm, outer, dot.

mm/bmm/dot check their operands the way PyTorch does (exactly 2-D / 3-D / 1-D, no broadcasting)
and then reuse matmul; addmm and baddbmm are beta * input + alpha * product, composed from
registered ops. einsum is its own op: the gradient of each operand is again an einsum, of the
output gradient with the other operands, so one parser serves forward and backward.
"""
from __future__ import annotations

import string

from ..autograd.function import Function
from ..autograd.registry import register_op
from ..backend import get_array_module
from ._args import shape_of
from .elementwise import Add, Mul
from .linalg import MatMul
from .shape import BroadcastTo, Reshape

_SPARE = string.ascii_uppercase          # letters that stand in for the dims of an ellipsis


def _parse(equation, shapes):
    """'bij,bjk->bik' -> (['bij', 'bjk'], 'bik'), with '...' spelled out as spare letters and
    the output filled in when '->' is missing (NumPy's and PyTorch's implicit rule: the letters
    that occur once, in alphabetical order, after the ellipsis dims)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operand term(s) but "
                         f"{len(shapes)} operand(s) were given; one comma-separated term per "
                         f"operand.")
    if any(c in _SPARE for c in eq):
        raise ValueError(f"einsum: use lowercase letters for subscripts (got {equation!r}); "
                         f"uppercase letters are kept for the dims of an ellipsis here.")
    n_ell = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t),
                default=0)
    ell = _SPARE[:n_ell]
    out_terms = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            k = len(s) - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:])     # right-aligned, as broadcasting is
        if len(t) != len(s):
            raise ValueError(f"einsum: term {t!r} names {len(t)} dims but its operand has shape "
                             f"{tuple(s)} ({len(s)} dims) in {equation!r}.")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(out_terms)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    for c in out:
        if c not in "".join(out_terms):
            raise ValueError(f"einsum: output subscript {c!r} of {equation!r} appears in no "
                             f"operand.")
    return out_terms, out


@register_op("einsum")
class Einsum(Function):
    @staticmethod
    def forward(ctx, *operands, equation=""):
        terms, out = _parse(equation, [o.shape for o in operands])
        repeated = [t for t in terms if len(set(t)) != len(t)]
        if repeated and any(ctx.needs_input_grad):
            raise NotImplementedError(
                f"einsum: a subscript repeated within one operand ({repeated[0]!r} in "
                f"{equation!r}: a diagonal or trace) has no gradient here. Take the diagonal "
                f"first with x.diagonal() / a mask, or compute it under no_grad().")
        ctx.terms, ctx.out = terms, out
        ctx.save_for_backward(*operands)
        xp = get_array_module(*operands)
        return xp.einsum(",".join(terms) + "->" + out, *operands)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        grads = []
        for i, (x, term) in enumerate(zip(ctx.saved, ctx.terms)):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [t for j, t in enumerate(ctx.terms) if j != i]
            known = ctx.out + "".join(others)
            kept = "".join(c for c in term if c in known)   # letters summed in x alone: broadcast
            arrays = [g] + [a for j, a in enumerate(ctx.saved) if j != i]
            gi = xp.einsum(",".join([ctx.out] + others) + "->" + kept, *arrays)
            # Put the missing letters back as length-1 axes and broadcast them to x's length.
            # A letter of length 1 in x that broadcast against another operand keeps the longer
            # length here; the engine sums it back down to x's shape.
            sizes = iter(gi.shape)
            full = [next(sizes) if c in known else 1 for c in term]
            gi = gi.reshape(full)
            target = tuple(f if c in known else n for c, f, n in zip(term, full, x.shape))
            grads.append(xp.broadcast_to(gi, target) if gi.shape != target else gi)
        return tuple(grads)


def einsum(equation, *operands):
    """Einstein summation: einsum('ij,jk->ik', a, b) is a @ b. Operands may also come as one
    list, einsum('ij,jk', [a, b]); '...' stands for leading dims that broadcast."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument must be the equation string, e.g. "
                        f"einsum('ij,jk->ik', a, b); got {type(equation).__name__}.")
    return Einsum.apply(*operands, equation=equation)



def _need(op, x, ndim, what):
    if len(shape_of(x)) != ndim:
        raise ValueError(f"{op}: {what} must be {ndim}-D, got shape {shape_of(x)}. "
                         f"{_HINT[op]}")


_HINT = {
    "mm": "mm multiplies two matrices (no batches, no broadcasting); use matmul (@) for those.",
    "bmm": "bmm multiplies batches of matrices (b, n, m) @ (b, m, p); use matmul (@) to broadcast.",
    "dot": "dot takes two vectors; use matmul (@) or mm for matrices.",
    "outer": "outer takes two vectors; flatten them first if you meant all elements.",
    "addmm": "addmm(input, mat1, mat2) needs matrices mat1 (n, m) and mat2 (m, p).",
    "baddbmm": "baddbmm(input, b1, b2) needs batches b1 (b, n, m) and b2 (b, m, p).",
}


def _strict(op, a, b, ndim, names=("input", "mat2")):
    """The shapes of a and b after checking that both have exactly ``ndim`` dims."""
    _need(op, a, ndim, names[0])
    _need(op, b, ndim, names[1])
    return shape_of(a), shape_of(b)


def mm(input, mat2):  # noqa: A002 - PyTorch's argument name
    """(n, m) @ (m, p) -> (n, p), both exactly 2-D."""
    a, b = _strict("mm", input, mat2, 2)
    if a[1] != b[0]:
        raise ValueError(f"mm: shapes {a} and {b} cannot be multiplied ({a[1]} columns vs "
                         f"{b[0]} rows).")
    return MatMul.apply(input, mat2)


def bmm(input, mat2):  # noqa: A002
    """(b, n, m) @ (b, m, p) -> (b, n, p), both exactly 3-D with the same b."""
    a, b = _strict("bmm", input, mat2, 3)
    if a[0] != b[0] or a[2] != b[1]:
        raise ValueError(f"bmm: shapes {a} and {b} do not fit: need (b, n, m) and (b, m, p) with "
                         f"the same batch size b (no broadcasting). {_HINT['bmm']}")
    return MatMul.apply(input, mat2)


def dot(input, other):  # noqa: A002
    """Σ a_i b_i of two 1-D tensors of the same length."""
    a, b = _strict("dot", input, other, 1, ("input", "other"))
    if a != b:
        raise ValueError(f"dot: the vectors have lengths {a[0]} and {b[0]}; they must be equal.")
    return MatMul.apply(input, other)


vdot = dot   # the same for real numbers (vdot conjugates its first argument)


def outer(input, vec2):  # noqa: A002
    """out[i, j] = a[i] * b[j] for 1-D a and b."""
    _strict("outer", input, vec2, 1, ("input", "vec2"))
    return Mul.apply(Reshape.apply(input, shape=(-1, 1)), Reshape.apply(vec2, shape=(1, -1)))


ger = outer


def _scaled_sum(op, input, product, beta, alpha):
    """beta * input + alpha * product; beta = 0 ignores input (its NaN/inf too), as in PyTorch."""
    if alpha != 1:
        product = Mul.apply(product, alpha)
    if beta == 0:
        shape = shape_of(product)
        if not _broadcasts(shape_of(input), shape):
            raise ValueError(f"{op}: input of shape {shape_of(input)} does not broadcast to the "
                             f"product's shape {shape}.")
        return product
    scaled = input if beta == 1 else Mul.apply(input, beta)
    if not _broadcasts(shape_of(input), shape_of(product)):
        raise ValueError(f"{op}: input of shape {shape_of(input)} does not broadcast to the "
                         f"product's shape {shape_of(product)}; it must (e.g. a bias of shape "
                         f"({shape_of(product)[-1]},)).")
    return Add.apply(BroadcastTo.apply(scaled, shape=shape_of(product)), product)


def _broadcasts(small, big):
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(small[::-1], big[::-1]))


def addmm(input, mat1, mat2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * (mat1 @ mat2), input broadcasting to (n, p)."""
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):  # noqa: A002
    """beta * input + alpha * bmm(batch1, batch2), input broadcasting to (b, n, p)."""
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)

