"""Shared by the solution files: the repository root on the path, and a runner that prints answers.

A solution file is ``lessons/solutions/<lesson slug>.py`` (the lesson's file name without its
number, so renumbering lessons never renames a solution). It defines ``exercise_1()``,
``exercise_2()``, ... each computing its answer with tinyattn and returning it, and ends with
``if __name__ == "__main__": _setup.main(globals())`` so that ``python lessons/solutions/<slug>.py``
prints every answer. ``tests/test_solutions.py`` calls each function and checks its answer by an
independent route.
"""
from __future__ import annotations

import os
import sys

# The same one-thread settings as the lessons (see lessons/_common.py): small arrays, shared cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(namespace: dict) -> None:
    """Run every ``exercise_N`` in a solution module and print what it returns."""
    names = sorted((n for n in namespace if n.startswith("exercise_")), key=lambda n: int(n.split("_")[1]))
    for name in names:
        doc = (namespace[name].__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0] if doc else ''}")
        answer = repr(namespace[name]())
        print(f"  answer: {answer if len(answer) <= 400 else answer[:400] + ' ...'}")
