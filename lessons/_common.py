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

Inside a Jupyter kernel (the lesson opened as a notebook, or executed by ``build_book.py``) the
kernel's own ``sys.argv`` is ignored: the arguments come from the environment variable
``TINYATTN_LESSON_ARGS`` (e.g. ``"--seed 1 --out out/lessons/03"``; empty = the defaults), figures
are also shown inline, and ``skip``/``finish``/a missing backend never call ``sys.exit`` (which
Jupyter shows as a SystemExit traceback): ``finish`` on PASS and ``skip`` print their CRITERION
line, and where the cells below must not run (a skip, a FAIL, no backend) they raise
``LessonStopped``, which the notebook shows as one line and ``build_book.py`` treats as the
lesson's end.

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
import html
import json
import os
import shlex
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
LESSON_ARGS_VAR = "TINYATTN_LESSON_ARGS"   # a lesson's arguments inside a notebook kernel
# where the lessons are: a notebook kernel has no __file__, so a lesson that runs another asks here
LESSONS_DIR = os.path.dirname(os.path.abspath(__file__))
_EXPLORER = os.path.join(LESSONS_DIR, "attention_explorer.html")


def in_notebook() -> bool:
    """True inside a Jupyter (IPython) kernel: its argv is the kernel's, its figures can be shown
    inline, and sys.exit there prints a traceback instead of ending anything."""
    ipython = sys.modules.get("IPython")        # never imported here: a script must not pay for it
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class LessonStopped(Exception):
    """Raised in a notebook kernel where a script would exit early (skip, FAIL, missing backend):
    the cells below do not run. Shown as this one line, without a traceback (IPython calls
    ``_render_traceback_``); ``build_book.py`` stops the lesson there and keeps what ran."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status                     # the exit status the script would have had

    def _render_traceback_(self):
        return [f"LessonStopped: {self}"]


def _stop(message: str, status: int) -> None:
    """End the lesson: exit with ``status`` as a script; in a notebook, raise LessonStopped."""
    if in_notebook():
        raise LessonStopped(message, status)
    sys.exit(status)


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
        if argv is None:
            # in a kernel sys.argv is the kernel's (-f connection.json ...), not the lesson's
            argv = shlex.split(os.environ.get(LESSON_ARGS_VAR, "")) if in_notebook() else sys.argv[1:]
        args = parser.parse_args(argv)           # a typo (--sed 5) is an error, not ignored
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
        self.explorers: list[str] = []
        self._finished = False

        if self.backend == "cupy":
            try:
                ta.set_backend("cupy")
            except ta.backend.BackendError as exc:
                print(f"CuPy/GPU not available, so this lesson cannot run with --backend cupy:\n  {exc}")
                _stop("CuPy/GPU not available for --backend cupy", EXIT_NO_BACKEND)
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
    def savefig(self, fig, name: str) -> None:
        """Save ``fig`` as ``<out>/<name>.png`` (closing it) and remember it for result.json.

        Returns nothing (the path is printed): as a notebook cell's last line a returned value
        would be shown again as the cell's result."""
        import matplotlib.pyplot as plt  # noqa: PLC0415 - only lessons with figures pay for it

        path = os.path.join(self.out, f"{name}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(os.path.basename(path))
        print(f"  [figure] {path}")
        if in_notebook():                        # the saved PNG itself, inline under the cell
            from IPython.display import Image, display  # noqa: PLC0415

            display(Image(filename=path))

    def attention_explorer(self, name: str, tokens_q, tokens_k, weights, title: str = "",
                           layer_names=None, grid=None) -> None:
        """An interactive page for attention weights: choose a layer and a head, hover a query
        token to see where it looks (each key token shaded and labelled with its weight).

        ``weights[layer][head][i][j]`` is how much query ``tokens_q[i]`` attends to key
        ``tokens_k[j]`` (a 2-D array is one layer with one head; 3-D is one layer of heads).
        ``grid=(rows, cols)`` lays the keys out as a grid (image patches). Writes
        ``<out>/attention_<name>.json`` (the data) and ``<out>/attention_<name>.html`` (a static
        page, data and script inside: it opens from disk, no server), lists it in result.json
        under ``explorers``, and in a notebook shows it under the cell. Returns nothing, like
        ``savefig``."""
        w = np.asarray(_to_builtin(weights), dtype=float)
        if w.ndim == 2:
            w = w[None, None]
        elif w.ndim == 3:
            w = w[None]
        tokens_q, tokens_k = [str(t) for t in tokens_q], [str(t) for t in tokens_k]
        if w.ndim != 4 or w.shape[2:] != (len(tokens_q), len(tokens_k)):
            raise ValueError(f"Lesson.attention_explorer({name!r}): weights must be "
                             f"[layers][heads][{len(tokens_q)} queries][{len(tokens_k)} keys]; got shape "
                             f"{w.shape}. Pass one token label per query row and per key column.")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"Lesson.attention_explorer({name!r}): weights contain NaN or inf")
        if grid is not None and int(grid[0]) * int(grid[1]) != len(tokens_k):
            raise ValueError(f"Lesson.attention_explorer({name!r}): grid {tuple(grid)} has "
                             f"{int(grid[0]) * int(grid[1])} cells for {len(tokens_k)} keys")
        layer_names = [str(n) for n in layer_names] if layer_names else [f"layer {i + 1}" for i in range(w.shape[0])]
        if len(layer_names) != w.shape[0]:
            raise ValueError(f"Lesson.attention_explorer({name!r}): {len(layer_names)} layer names "
                             f"for {w.shape[0]} layers")
        data = {"name": name, "title": title or name, "lesson": self.number,
                "tokens_q": tokens_q, "tokens_k": tokens_k, "layers": layer_names,
                "heads": int(w.shape[1]), "grid": [int(g) for g in grid] if grid is not None else None,
                "weights": np.round(w, 5).tolist()}
        base = os.path.join(self.out, f"attention_{name}")
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(data, f)
        widget = explorer_html(data)
        with open(base + ".html", "w", encoding="utf-8") as f:
            f.write("<!doctype html><html><head><meta charset='utf-8'>"
                    f"<title>{html.escape(data['title'])}</title></head><body>{widget}</body></html>")
        self.explorers.append(os.path.basename(base) + ".html")
        print(f"  [attention explorer] {base}.html")
        if in_notebook():
            from IPython.display import HTML, display  # noqa: PLC0415

            display(HTML(widget))

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
            _stop(f"Lesson {self.number:02d} FAILED: {criterion}", EXIT_FAIL)

    def skip(self, reason: str) -> None:
        """End a lesson whose criterion cannot be measured on this machine (e.g. no GPU): print
        ``CRITERION: SKIP <reason>``, write result.json with ``skipped: true`` and ``passed: null``,
        and exit 0. Unlike ``--backend cupy`` without CuPy (exit 3), this is for a lesson whose
        *default* run needs hardware that is not there: it still runs, explains, and skips."""
        checks = self.checks + [{"name": "criterion", "passed": None,
                                 "measured": f"SKIPPED: {reason}"}]
        self._end({"passed": None, "skipped": True, "criterion": f"SKIPPED: {reason}",
                   "checks": checks}, self.elapsed(), f"CRITERION: SKIP {reason}")
        _stop(f"Lesson {self.number:02d} skipped: {reason} (the cells below do not apply)", 0)

    def _end(self, outcome, seconds, line):
        """Write result.json (the outcome plus what every lesson records) and print the last lines."""
        result = {"lesson": self.number, "title": self.title, "seed": self.seed,
                  "backend": self.backend, **outcome, "seconds": round(seconds, 3),
                  "values": self.values, "figures": self.figures,
                  "explorers": self.explorers}
        with open(os.path.join(self.out, "result.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        self._finished = True
        print()
        print(line)
        print(f"wall time {seconds:.1f} s")
        sys.stdout.flush()


def explorer_html(data: dict) -> str:
    """The explorer's HTML for one data set: the page template with the data inside (as JSON in a
    script element, so the page needs no server and no fetch)."""
    with open(_EXPLORER, encoding="utf-8") as f:
        template = f.read()
    payload = json.dumps(data).replace("</", "<\\/")     # a token "</script>" must not end the element
    return template.replace("__EXPLORER_ID__", f"attn-{data['lesson']:02d}-{data['name']}") \
                   .replace("__EXPLORER_DATA__", payload)


class Progress:
    """Progress of a training loop: ``step  loss  accuracy  seconds  eta``.

    Prints a line at most every ``every`` steps (and always the last), so a 20-second run shows
    ~10 lines that stay readable in a log, a pipe, a notebook and the book. On a terminal a tqdm
    bar (on stderr) also moves between those lines."""

    def __init__(self, total_steps: int, every: int | None = None, label: str = ""):
        self.total, self.label = total_steps, label
        self.every = every or max(1, total_steps // 10)
        self._start = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty() and not in_notebook():
            try:
                from tqdm import tqdm  # noqa: PLC0415 - optional: only the live bar needs it
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total_steps, desc=label.strip() or "training", leave=False,
                                 dynamic_ncols=True)

    def __call__(self, step: int, loss: float, acc: float | None = None, **extra) -> None:
        if self._bar is not None:
            self._bar.update(max(0, step - self._bar.n))
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if step % self.every and step != self.total:
            return
        seconds = time.perf_counter() - self._start
        parts = [f"{self.label}step {step:>5}/{self.total}", f"loss {loss:.4f}"]
        if acc is not None:
            parts.append(f"acc {acc:6.1%}")
        parts += [f"{k} {v:.4g}" for k, v in extra.items()]
        parts.append(f"{seconds:5.1f} s")
        if 0 < step < self.total:           # time left at the rate so far
            parts.append(f"eta {seconds / step * (self.total - step):4.0f} s")
        line = "  " + "  ".join(parts)
        if self._bar is not None:
            self._bar.write(line)            # above the bar, which redraws below it
            if step >= self.total:
                self._bar.close()
        else:
            print(line, flush=True)
