"""``tinyattn.autograd.grad(outputs, inputs)``: the gradients of outputs with respect to chosen
inputs, returned rather than accumulated - no ``.grad`` anywhere is touched (first order only)."""
from __future__ import annotations

from .tensor import Tensor, backpropagate


def _as_list(x, what):
    items = [x] if isinstance(x, Tensor) else list(x)
    if not all(isinstance(t, Tensor) for t in items):
        raise TypeError(f"autograd.grad: {what} must be tensors (or a sequence of them).")
    return items


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """d(outputs)/d(inputs) as a tuple of tensors, one per input (PyTorch's signature).

    ``grad_outputs``: d(loss)/d(output) for outputs with more than one element (like backward's
    argument). ``allow_unused=True`` gives None for an input the outputs do not depend on.
    """
    if create_graph:
        raise NotImplementedError("autograd.grad(create_graph=True): tinyattn's backward passes "
                                  "are not themselves recorded, so only first-order gradients "
                                  "exist; leave create_graph=False.")
    outputs, inputs = _as_list(outputs, "outputs"), _as_list(inputs, "inputs")
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"autograd.grad: {len(outputs)} outputs but {len(grad_outputs)} "
                         f"grad_outputs; give one per output (None for a one-element output).")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} (shape {t.shape}) does not require grad; "
                               f"create it with requires_grad=True.")
    found = [None] * len(inputs)

    def keep(i):
        def store(g):
            found[i] = g.copy() if found[i] is None else found[i] + g
        return store

    leaf_slots = {}
    capture = {}
    for i, t in enumerate(inputs):
        if t._ctx is None:
            leaf_slots.setdefault(id(t), []).append(keep(i))
        else:
            capture[t._ctx, t._idx] = keep(i)

    def sink(t, g):
        for store in leaf_slots.get(id(t), ()):
            store(g)

    roots = [(o, o._initial_grad(g)) for o, g in zip(outputs, grad_outputs)]
    backpropagate(roots, bool(retain_graph), sink, capture)
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {i} (shape {inputs[i].shape}) was not used "
                               f"to compute the outputs; pass allow_unused=True to get None for it.")
    return tuple(None if g is None else Tensor(g.astype(t.dtype, copy=False))
                 for g, t in zip(found, inputs))
