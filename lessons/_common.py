"""The small piece every lesson shares: arguments, output folder, figures, document claims, verdict.

A lesson script is used like this::

    from _common import Lesson
    lesson = Lesson(3, "attention pooling")        # parses --seed/--backend/--out, prints a header
    rng = lesson.rng                                # NumPy generator seeded with --seed
    ...
    lesson.claim("s_11", ours=14.0, doc=1.0, note="the document multiplied first components only")
    lesson.savefig(fig, "weights")                 # -> <out>/weights.png, listed in result.json
    lesson.check("rows sum to 1", max_err <= 1e-6, f"max |row sum - 1| = {max_err:.1e}")
    lesson.finish()                                 # prints CRITERION: PASS|FAIL ..., exits 0 or 1

Command line (the same for every lesson)::

    python lessons/NN_name.py [--seed S] [--backend numpy|cupy] [--out DIR]

Exit status: 0 when every check passed, 1 when one failed, 2 for bad arguments (argparse), and
3 when ``--backend cupy`` was asked for on a machine without CuPy or without a GPU (the lesson does
not silently fall back to NumPy: a number printed "on the GPU" must have been computed there).

Besides its printed output a lesson leaves in its output folder (default ``out/lessons/NN``):
the figures as PNG and ``result.json`` = {lesson, title, seed, backend, passed, criterion, seconds,
checks: [{name, passed, measured}], values: {...numbers recorded with ``lesson.record``},
figures: [file names in the order they were saved]}. Tests read ``result.json`` to assert the
numbers themselves, not only the word PASS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# Lessons run from a fresh checkout without installing the package: put the repository root on
# the path (this file lives in <root>/lessons/).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
os.environ.setdefault("MPLBACKEND", "Agg")   # figures go to files; no window ever opens
# One BLAS thread: lesson matrices are small, so OpenBLAS threads cost more than they save, and
# on a shared machine (the test suite, several lessons at once) they oversubscribe the cores - a
# small Transformer step measured 30x slower with the default threads on 2 busy cores. Must be set
# before NumPy is imported; set the variable yourself to override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Lessons work on small arrays, where waking a second thread costs far more than the work itself
# (on a busy 2-core machine a parallel Numba softmax of 16 numbers took ~20 ms instead of ~20 us).
# So compiled kernels run on one thread here; set NUMBA_NUM_THREADS yourself to override.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinyattn as ta  # noqa: E402

EXIT_FAIL = 1
EXIT_NO_BACKEND = 3


def _to_builtin(x):
    """Make numbers JSON-friendly: NumPy scalars and arrays become floats and lists."""
    if isinstance(x, ta.Tensor):
        x = x.numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _to_builtin(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_builtin(v) for v in x]
    return x


class Lesson:
    """Arguments, seed, output folder, figures and the final criterion of one lesson script."""

    def __init__(self, number: int, title: str, argv=None):
        parser = argparse.ArgumentParser(description=f"Lesson {number:02d}: {title}")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                            help="array library for tinyattn tensors (default numpy)")
        parser.add_argument("--out", default=None,
                            help=f"folder for figures and result.json (default out/lessons/{number:02d})")
        # parse_known_args: inside Jupyter the kernel passes its own flags, which we ignore
        args, unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        if unknown and "ipykernel" not in sys.modules:    # a typo (--sed 5) must not be ignored
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
            parser.error(f"--out {args.out!r} is a file; give a folder for figures and result.json")

        self.number, self.title = number, title
        self.seed, self.backend = args.seed, args.backend
        self.out = args.out or os.path.join(_ROOT, "out", "lessons", f"{number:02d}")
        os.makedirs(self.out, exist_ok=True)
        self._start = time.perf_counter()
        self.checks: list[dict] = []
        self.values: dict = {}
        self.figures: list[str] = []
        self._finished = False

        if self.backend == "cupy":
            try:
                ta.set_backend("cupy")
            except ta.backend.BackendError as exc:
                print(f"CuPy/GPU not available, so this lesson cannot run with --backend cupy:\n  {exc}")
                sys.exit(EXIT_NO_BACKEND)
        ta.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)   # for data; tinyattn's own draws use manual_seed

        line = f"Lesson {number:02d}: {title}"
        print(line)
        print("=" * len(line))
        print(f"seed {self.seed}, backend {self.backend}, figures and result.json in {self.out}")

    # ------------------------------------------------------------------ printing
    @staticmethod
    def section(title: str) -> None:
        """A visible heading between the steps of a lesson."""
        print(f"\n--- {title} " + "-" * max(3, 72 - len(title)))

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def claim(self, label: str, ours, doc, note: str = "", tol: float = 0.0) -> bool:
        """Print a value we computed beside what the document says; return True if they agree.

        ``tol`` is the absolute difference still counted as agreement (e.g. 0.005 for a number the
        document rounds to two decimals). Disagreements are marked with '<-- differs'."""
        ours_a = np.asarray(_to_builtin(ours), dtype=float)
        doc_a = np.asarray(doc, dtype=float)
        same = ours_a.shape == doc_a.shape and bool(np.all(np.abs(ours_a - doc_a) <= tol + 1e-12))
        def fmt(a):
            if a.ndim == 0:
                return f"{float(a):.6g}"
            return np.array2string(a, precision=4, separator=", ", suppress_small=True)
        mark = "   agrees" if same else "   <-- differs"
        print(f"  {label:<14} tinyattn {fmt(ours_a):<26} document {fmt(doc_a):<22}{mark}")
        if note and not same:
            print(f"  {'':<14} why: {note}")
        return same

    # ------------------------------------------------------------------ figures and numbers
    def savefig(self, fig, name: str) -> str:
        """Save ``fig`` as ``<out>/<name>.png`` (closing it) and remember it for the index page."""
        import matplotlib.pyplot as plt  # noqa: PLC0415 - only lessons with figures pay for it

        path = os.path.join(self.out, f"{name}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(os.path.basename(path))
        print(f"  [figure] {path}")
        return path

    def record(self, **values) -> None:
        """Numbers for result.json (tests assert them)."""
        self.values.update({k: _to_builtin(v) for k, v in values.items()})

    def check(self, name: str, passed: bool, measured: str) -> bool:
        """One part of the lesson's criterion: a name, whether it holds, and what was measured."""
        passed = bool(passed)
        self.checks.append({"name": name, "passed": passed, "measured": measured})
        print(f"  [{'ok' if passed else 'FAIL'}] {name}: {measured}")
        return passed

    def finish(self) -> None:
        """Print the CRITERION line, write result.json, and exit (status 1 if any check failed)."""
        if not self.checks:
            raise RuntimeError("Lesson.finish: the lesson made no check; a criterion needs at least one.")
        passed = all(c["passed"] for c in self.checks)
        seconds = self.elapsed()
        criterion = "; ".join(f"{c['name']}: {c['measured']}" for c in self.checks)
        self._end({"passed": passed, "criterion": criterion, "checks": self.checks}, seconds,
                  f"CRITERION: {'PASS' if passed else 'FAIL'} {criterion}")
        if not passed:
            sys.exit(EXIT_FAIL)

    def skip(self, reason: str) -> None:
        """End a lesson whose criterion cannot be measured on this machine (e.g. no GPU): print
        ``CRITERION: SKIP <reason>``, write result.json with ``skipped: true`` and ``passed: null``,
        and exit 0. Unlike ``--backend cupy`` without CuPy (exit 3), this is for a lesson whose
        *default* run needs hardware that is not there: it still runs, explains, and skips."""
        checks = self.checks + [{"name": "criterion", "passed": None,
                                 "measured": f"SKIPPED: {reason}"}]
        self._end({"passed": None, "skipped": True, "criterion": f"SKIPPED: {reason}",
                   "checks": checks}, self.elapsed(), f"CRITERION: SKIP {reason}")
        sys.exit(0)

    def _end(self, outcome, seconds, line):
        """Write result.json (the outcome plus what every lesson records) and print the last lines."""
        result = {"lesson": self.number, "title": self.title, "seed": self.seed,
                  "backend": self.backend, **outcome, "seconds": round(seconds, 3),
                  "values": self.values, "figures": self.figures}
        with open(os.path.join(self.out, "result.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        self._finished = True
        print()
        print(line)
        print(f"wall time {seconds:.1f} s")
        sys.stdout.flush()


class Progress:
    """Periodic progress lines for training loops: ``step  loss  accuracy  seconds``.

    Prints at most every ``every`` steps (and always the last), so a 20-second run shows ~10 lines."""

    def __init__(self, total_steps: int, every: int | None = None, label: str = ""):
        self.total, self.label = total_steps, label
        self.every = every or max(1, total_steps // 10)
        self._start = time.perf_counter()

    def __call__(self, step: int, loss: float, acc: float | None = None, **extra) -> None:
        if step % self.every and step != self.total:
            return
        parts = [f"{self.label}step {step:>5}/{self.total}", f"loss {loss:.4f}"]
        if acc is not None:
            parts.append(f"acc {acc:6.1%}")
        parts += [f"{k} {v:.4g}" for k, v in extra.items()]
        parts.append(f"{time.perf_counter() - self._start:5.1f} s")
        print("  " + "  ".join(parts))
