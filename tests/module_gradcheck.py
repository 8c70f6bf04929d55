"""Gradient checks for whole modules (a test helper): every parameter and every input, in float64.

    from module_gradcheck import gradcheck_module
    gradcheck_module(nn.LSTM(3, 4), x)                  # x: float64 Tensor, requires_grad=True

For the op registry (``tests/gradcases_*.py``), ``module_case`` turns a module factory and an input
factory into the (fn, inputs) pair a ``GradCase`` wants. Parameters are passed to gradcheck as extra
"inputs" that fn ignores: gradcheck perturbs their arrays in place, and the module reads them, so
finite differences see the change and the analytic gradient lands in ``p.grad``.
"""
from __future__ import annotations

from tinyattn.autograd.gradcheck import gradcheck
from tinyattn.autograd.tensor import Tensor
from tinyattn.random import manual_seed


def flatten_outputs(out):
    """Every Tensor in a nested tuple/list output (e.g. LSTM's ``(output, (h_n, c_n))``), in order."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten_outputs(o)]
    return []


def _prepare(module):
    """The module in float64, with its trainable parameters named (for gradcheck's messages)."""
    module.double()
    params = []
    for name, p in module.named_parameters():
        if p.requires_grad:
            p.name = f"parameter {name}"
            params.append(p)
    return params


def _caller(module, n_inputs, call, seed):
    def fn(*args):
        manual_seed(seed)       # the same dropout masks on every call, so training mode is checkable
        inputs = args[:n_inputs]
        out = call(module, *inputs) if call is not None else module(*inputs)
        return tuple(flatten_outputs(out))
    return fn


def gradcheck_module(module, *inputs, call=None, seed=0, **tolerances):
    """Gradcheck ``module(*inputs)`` (or ``call(module, *inputs)``) w.r.t. all trainable parameters
    and every input Tensor with ``requires_grad``. The module is converted to float64 in place;
    float inputs must already be float64. Non-tensor inputs (index arrays, lengths) pass through.
    Raises ``GradcheckError`` naming the parameter or input that disagrees."""
    params = _prepare(module)
    fn = _caller(module, len(inputs), call, seed)
    return gradcheck(fn, [*inputs, *params], **tolerances)


def module_case(make_module, make_inputs, call=None, seed=0):
    """(fn, inputs) for a ``GradCase``: ``make_module()`` -> Module, ``make_inputs()`` -> list of
    inputs; the module is built (seeded, float64) each time ``inputs()`` is called."""
    holder = {}

    def inputs():
        manual_seed(seed)
        module = make_module()
        params = _prepare(module)
        args = list(make_inputs())
        holder["module"], holder["n"] = module, len(args)
        return [*args, *params]

    def fn(*args):
        return _caller(holder["module"], holder["n"], call, seed)(*args)

    return fn, inputs
