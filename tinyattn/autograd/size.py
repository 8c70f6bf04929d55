"""Size: a tensor's shape as PyTorch gives it (``torch.Size``), a tuple of ints with ``numel()``.

A tuple subclass, so everything that takes a NumPy shape (reshape, zeros, ==, unpacking) takes it.
"""
from __future__ import annotations


class Size(tuple):
    """The shape of a tensor: ``x.size()`` and ``x.shape``; ``x.size(d)`` is one of its ints."""

    __slots__ = ()

    def numel(self):
        """How many elements a tensor of this shape holds (1 for a 0-d tensor)."""
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, index):
        if type(index) is int:                  # the common case first: one length
            return tuple.__getitem__(self, index)
        out = tuple.__getitem__(self, index)
        return Size(out) if isinstance(index, slice) else out

    def __repr__(self):
        return f"tinyattn.Size({list(self)})"

    def __str__(self):
        # plain (4, 3) in f-strings, so every error message that prints a shape stays short
        return tuple.__repr__(self)
