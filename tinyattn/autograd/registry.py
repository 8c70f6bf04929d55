"""A list of every differentiable op, so that the test suite can walk it.

Each op (a ``Function`` subclass, or a composite function built from Tensor operations) is entered
under a dotted name with ``@register_op("exp")``. ``tests/test_gradcheck_registry.py`` fails for any
name that has no gradient-check case, so a new op cannot land without one.
"""
from __future__ import annotations

OPS: dict[str, object] = {}


def register_op(name: str):
    """Decorator: record ``obj`` as the differentiable op ``name``."""
    def deco(obj):
        if name in OPS and OPS[name] is not obj:
            raise ValueError(f"register_op: op name {name!r} is already taken by {OPS[name]!r}")
        OPS[name] = obj
        if isinstance(obj, type) and "op_name" not in vars(obj):
            obj.op_name = name            # error messages name the op as the user called it
        return obj
    return deco


def registered_ops() -> dict[str, object]:
    """name -> op, for everything registered so far (import tinyattn fully first)."""
    return dict(OPS)
