"""``tinyattn.cuda``: PyTorch's questions about the GPU, answered by the CuPy backend."""
from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True only where the CuPy backend can run (CuPy imports and sees a GPU)."""
    return bool(backend.cupy_available())


def device_count() -> int:
    """How many GPUs CuPy sees (0 without a usable CuPy); tinyattn computes on the first."""
    if not is_available():
        return 0
    return int(backend._import_cupy().cuda.runtime.getDeviceCount())
