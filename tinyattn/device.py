"""``tinyattn.device('cpu')``: PyTorch's device objects.

A device is a str subclass ('cpu', 'cuda', 'cuda:0'), so that everything that already takes a
device name takes one, and ``x.device == tinyattn.device('cpu')`` holds for the plain string a
tensor's ``.device`` returns. ``.type`` and ``.index`` are PyTorch's attributes.
"""
from __future__ import annotations

from . import backend


class device(str):  # noqa: N801 - PyTorch's name
    def __new__(cls, type, index=None):  # noqa: A002 - PyTorch's argument name
        name = str(type)
        if index is not None:
            name = f"{name}:{int(index)}"
        if backend.device_backend(name) is None:
            raise ValueError(f"device({name!r}): unknown device; use 'cpu' or 'cuda' "
                             f"(also 'cuda:0'); tinyattn has no other devices.")
        return super().__new__(cls, name)

    @property
    def type(self):
        return self.split(":")[0]

    @property
    def index(self):
        parts = self.split(":")
        return int(parts[1]) if len(parts) > 1 else None

    def __repr__(self):
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")
