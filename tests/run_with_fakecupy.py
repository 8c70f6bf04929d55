"""Run a script with ``tests/fakecupy.py`` standing in for CuPy: ``set_backend("cupy")`` (or a lesson's
``--backend cupy``) then puts every tensor on CPU-side arrays that behave like CuPy's (no implicit
NumPy conversion, no mixing with host arrays, no numpy.* functions on them).

    python tests/run_with_fakecupy.py lessons/12_transformer_encoder.py --backend cupy --out /tmp/x

Prints the transfer ledger (d2h/h2d/sync counts) at the end. A test tool: it proves that a script
does not fall back to NumPy on CuPy arrays; it says nothing about CUDA itself.
"""
from __future__ import annotations

import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fakecupy  # noqa: E402


class _Patch:
    """The three monkeypatch methods ``fakecupy.install`` uses, without undo (process-wide)."""

    @staticmethod
    def setattr(obj, name, value):
        setattr(obj, name, value)

    @staticmethod
    def setitem(d, key, value):
        d[key] = value

    @staticmethod
    def delitem(d, key):
        del d[key]


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    fake = fakecupy.install(_Patch())
    sys.modules["cupy"] = fake            # a script's own `import cupy` gets the stand-in too
    from tinyattn import backend  # noqa: PLC0415

    backend._ACTIVE = "numpy"        # the script chooses (a lesson: --backend cupy)
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))   # as `python script.py` does
    try:
        runpy.run_path(argv[0], run_name="__main__")
    finally:
        print(f"fakecupy ledger: {dict(fakecupy.ledger)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
