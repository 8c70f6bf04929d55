"""Reading and replacing a parameter's gradient, whatever ``p.grad`` holds.

Today ``p.grad`` is a plain array; PyTorch's is a Tensor. The optimisers and the clipping
functions go through these two helpers only, so they work with either.
"""
from __future__ import annotations

from ..autograd.tensor import Tensor


def grad_array(p):
    """The gradient of ``p`` as an array (None when it has none)."""
    g = p.grad
    return g.data if isinstance(g, Tensor) else g


def set_grad_array(p, array):
    """Make ``array`` the gradient of ``p``, keeping ``p.grad``'s kind (Tensor or array)."""
    if isinstance(p.grad, Tensor):
        p.grad.data = array
    else:
        p.grad = array


def zero_grads(parameters, set_to_none=True):
    """``zero_grad`` of Module and Optimizer: drop each gradient, or fill it with zeros (a new
    array: the old one may be shared with another graph)."""
    for p in parameters:
        g = grad_array(p)
        if set_to_none or g is None:
            p.grad = None
        else:
            set_grad_array(p, g * 0)
