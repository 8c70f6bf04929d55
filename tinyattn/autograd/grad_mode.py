"""Grad mode: whether ops record the graph (``no_grad``, ``enable_grad``), per thread."""
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


@contextlib.contextmanager
def no_grad():
    """Inside this block ops build no graph: for evaluation, and for optimiser updates."""
    prev = is_grad_enabled()
    _grad_mode.enabled = False
    try:
        yield
    finally:
        _grad_mode.enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    _grad_mode.enabled = True
    try:
        yield
    finally:
        _grad_mode.enabled = prev
