"""Solutions to the exercises of the same-code-on-a-GPU lesson. They run on the CPU: exercise 2 uses
``tests/fakecupy.py``, a CPU stand-in for CuPy that counts every host-device crossing."""
import _setup  # noqa: F401  (the repository root on the path)

import contextlib
import os
import sys

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import kernels, optim


def exercise_1(T=1024):
    """Attention forward in float32 and in float64 on the CPU: the largest relative difference."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(1, 4, T, 64)) for _ in range(3)]
    out = {}
    with kernels.using("numpy"):     # the plain twins: the rounding is the same, and nothing to compile
        for dtype in ("float32", "float64"):
            out[dtype] = A.scaled_dot_product_attention(*(ta.tensor(a, dtype=dtype) for a in arrays)).numpy()
    ref = out["float64"]
    return float(np.abs(out["float32"].astype(np.float64) - ref).max() / np.abs(ref).max())


class _Undo:
    """The three monkeypatch methods ``fakecupy.install`` uses, remembering how to undo them."""

    _missing = object()

    def __init__(self):
        self.undo = []

    def setattr(self, obj, name, value):
        old = getattr(obj, name, self._missing)
        self.undo.append(lambda: delattr(obj, name) if old is self._missing else setattr(obj, name, old))
        setattr(obj, name, value)

    def setitem(self, d, key, value):
        old = d.get(key, self._missing)
        self.undo.append(lambda: d.pop(key, None) if old is self._missing else d.__setitem__(key, old))
        d[key] = value

    def delitem(self, d, key):
        old = d[key]
        self.undo.append(lambda: d.__setitem__(key, old))
        del d[key]


@contextlib.contextmanager
def fake_gpu():
    """Run tinyattn on the CPU stand-in for CuPy; yields its ledger of host-device crossings."""
    sys.path.insert(0, os.path.join(_setup.ROOT, "tests"))
    try:
        import fakecupy  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    patch = _Undo()
    fakecupy.install(patch)
    try:
        yield fakecupy.ledger
    finally:
        for undo in reversed(patch.undo):
            undo()


def exercise_2(steps=3):
    """On the (fake) GPU: host-device crossings of attention forward + backward, then of `steps`
    training steps that each print `loss.item()`."""
    rng = np.random.default_rng(0)
    out = {}
    with fake_gpu() as ledger:
        q, k, v = (ta.tensor(rng.normal(size=(1, 2, 16, 8)).astype(np.float32), requires_grad=True) for _ in range(3))
        A.scaled_dot_product_attention(q, k, v).sum().backward()
        out["attention forward + backward"] = dict(ledger)
        ledger.clear()
        w = ta.tensor(rng.normal(size=(8, 1)).astype(np.float32), requires_grad=True)
        x = ta.tensor(rng.normal(size=(32, 8)).astype(np.float32))
        opt = optim.SGD([w], lr=0.1)
        for _ in range(steps):
            loss = ((x @ w) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()                       # what a progress line reads
        out[f"{steps} training steps with loss.item()"] = dict(ledger)
    return out


if __name__ == "__main__":
    _setup.main(globals())
