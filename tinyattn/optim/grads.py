"""Reading and replacing a parameter's gradient array.

``p.grad`` is a Tensor, as in PyTorch; the optimisers and the clipping functions work on its
array through these helpers.
"""
from __future__ import annotations

from ..autograd.tensor import Tensor


def grad_array(p):
    """The gradient of ``p`` as an array (None when it has none)."""
    g = p.grad
    return None if g is None else g.array


def set_grad_array(p, array):
    """Make ``array`` the gradient of ``p`` (the same ``p.grad`` Tensor where there is one, as an
    in-place update in PyTorch would)."""
    if p.grad is None:
        p.grad = Tensor._output(array, None, 0)
    else:
        p.grad.array = array


def zero_grads(parameters, set_to_none=True):
    """``zero_grad`` of Module and Optimizer: drop each gradient, or zero it in place."""
    for p in parameters:
        if set_to_none or p.grad is None:
            p.grad = None
        else:
            g = p.grad.array
            g[...] = 0
