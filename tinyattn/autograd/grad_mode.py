"""Grad mode: whether ops record the graph (``no_grad``, ``enable_grad``, ``inference_mode``), per
thread. Each is a context manager and a decorator (``@no_grad()`` or bare ``@no_grad``), as in
PyTorch."""
from __future__ import annotations

import contextlib
import threading


class _GradMode(threading.local):
    """Whether ops record the graph; per thread, as in PyTorch (each thread starts with True)."""

    def __init__(self):
        self.enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


class _SetGradMode(contextlib.ContextDecorator):
    """Inside the block (or the decorated function) grad mode is ``self.enabled``; afterwards it
    is what it was before."""

    enabled = True

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if len(args) == 1 and not kwargs and callable(args[0]):   # bare @no_grad on a function
            self.__init__()
            return self(args[0])
        return self

    def __init__(self):
        self._before = []          # a stack: the same object may be entered again (recursion)

    def __enter__(self):
        self._before.append(_grad_mode.enabled)
        _grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._before.pop()
        return False


class no_grad(_SetGradMode):  # noqa: N801 - PyTorch's name
    """Inside this block ops build no graph: for evaluation, and for optimiser updates."""
    enabled = False


class enable_grad(_SetGradMode):  # noqa: N801
    """Record the graph again, e.g. inside a no_grad block."""
    enabled = True


class inference_mode(_SetGradMode):  # noqa: N801
    """PyTorch's faster no_grad; here the same as no_grad (``inference_mode(False)``: unchanged
    grad recording)."""

    def __init__(self, mode=True):
        super().__init__()
        self._mode = mode

    def __enter__(self):
        self._before.append(_grad_mode.enabled)
        if self._mode:
            _grad_mode.enabled = False
        return self
