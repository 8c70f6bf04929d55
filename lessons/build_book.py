"""Build the lesson book: every lesson executed as a notebook, and one HTML page per lesson.

    python lessons/build_book.py                 # all lessons -> out/index.html, out/book/, out/notebooks/
    python lessons/build_book.py 02 03           # only these (numbers or name fragments, as run_all.py)
    python lessons/build_book.py --seed 1 --out out --timeout 300

For each ``lessons/NN_name.py`` (the lessons ``run_all.py`` finds, in the same order):

1. jupytext reads the py:percent file as a notebook (the module docstring becomes the first,
   markdown, cell: the lesson's title and what it teaches);
2. nbclient executes it cell by cell in a fresh Jupyter kernel (arguments through
   ``TINYATTN_LESSON_ARGS``, see ``_common.py``); figures appear inline, and a lesson that stops
   early (``Lesson.skip``, a FAIL) ends at that cell with one line, the cells below kept unrun;
3. the executed notebook is written to ``out/notebooks/NN_name.ipynb`` and nbconvert turns it into
   ``out/book/NN_name.html``: prose, code, printed output and figures, in order, cell by cell, with
   links to the contents, the previous and the next lesson;
4. figures, ``result.json`` and any attention explorer go to ``out/lessons/NN/`` as for the script.

``out/index.html`` is the table of contents: each lesson's status, time and criterion, and links to
its page, its notebook and its attention explorers. Every link is relative, so ``out/`` can be
moved or served as it is. Exit status: 0 if every lesson passed (or skipped), 1 otherwise.
The lessons stay plain scripts: ``run_all.py`` runs them as such (output in ``out/runs.html``).
"""
from __future__ import annotations

import argparse
import ast
import glob
import html
import json
import os
import re
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run_all import discover, select  # noqa: E402  - one list of lessons for the runner and the book

KERNEL_NAME = "python3"
STOPPED = "LessonStopped"       # _common.LessonStopped: the lesson's own early end, not a crash


def read_lesson(path):
    """The lesson as an nbformat notebook; a docstring-only first cell becomes markdown prose."""
    import jupytext  # noqa: PLC0415 - the book extra; run_all.py does not need it

    nb = jupytext.read(path)
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "code":
        try:
            body = ast.parse(first.source).body
        except SyntaxError:
            body = []
        if len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            title, _, rest = body[0].value.value.strip().partition("\n")
            from nbformat.v4 import new_markdown_cell  # noqa: PLC0415

            nb.cells[0] = new_markdown_cell(f"# {title.strip()}\n\n{rest.strip()}\n")
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def execute(nb, out_dir, seed, backend, timeout):
    """Run the notebook's cells in order in a new kernel; return (status, note).

    status: "ran" (every cell ran), "stopped" (the lesson ended itself with LessonStopped),
    "error" (a cell raised something else) or "timeout"."""
    from nbclient import NotebookClient  # noqa: PLC0415
    from nbclient.exceptions import CellExecutionError, CellTimeoutError  # noqa: PLC0415

    out_arg = os.path.relpath(out_dir, ROOT) if os.path.abspath(out_dir).startswith(ROOT + os.sep) else out_dir
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               TINYATTN_LESSON_ARGS=shlex.join(["--seed", str(seed), "--backend", backend, "--out", out_arg]))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.setdefault(var, "1")        # as _common does, in case the kernel imports NumPy first
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=False,
                            resources={"metadata": {"path": ROOT}})
    client.km = client.create_kernel_manager()
    client.km.transport = "ipc"         # a local socket file: no TCP port, and no warning about one
    with client.setup_kernel(env=env, cwd=ROOT):
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                return "timeout", f"a cell ran longer than {timeout} s"
            except CellExecutionError as exc:
                if exc.ename == STOPPED:
                    return "stopped", exc.evalue
                return "error", f"{exc.ename}: {exc.evalue}"
    return "ran", ""


def nav_bar(rows, i):
    """Links at the top of lesson page i: contents, previous, next (all relative)."""
    links = ["<a href='../index.html'>contents</a>"]
    if i > 0:
        links.append(f"<a href='{rows[i - 1]['name']}.html'>&larr; {html.escape(rows[i - 1]['name'])}</a>")
    if i + 1 < len(rows):
        links.append(f"<a href='{rows[i + 1]['name']}.html'>{html.escape(rows[i + 1]['name'])} &rarr;</a>")
    links.append(f"<a href='../notebooks/{rows[i]['name']}.ipynb'>notebook (.ipynb)</a>")
    return ("<nav class='book-nav' style='font-family:sans-serif;padding:.5em 1em;border-bottom:1px solid #ddd'>"
            + " &nbsp;|&nbsp; ".join(links) + "</nav>")


def to_html(nb):
    """nbconvert's HTML page for an executed notebook, with no script or style fetched from the
    network (the figures are already inside the page as data: URIs)."""
    from nbconvert import HTMLExporter  # noqa: PLC0415

    exporter = HTMLExporter(template_name="lab")
    page, _ = exporter.from_notebook_node(nb)
    # the lab template links require.js and MathJax on a CDN; the book uses neither (no widgets, and
    # the lessons write formulas in plain text), and it must work offline from relative paths only
    page = re.sub(r"<script[^>]*\bsrc=['\"]https?://[^'\"]*['\"][^>]*>\s*</script>", "", page)
    page = re.sub(r"<link[^>]*\bhref=['\"]https?://[^'\"]*['\"][^>]*>", "", page)
    page = re.sub(r"<script type=\"text/x-mathjax-config\">.*?</script>", "", page, flags=re.S)
    return page


def lesson_status(run_status, result):
    if run_status == "timeout":
        return "TIMEOUT"
    if run_status == "stopped" and result is None:
        return "SKIP"                   # stopped before any criterion: --backend cupy without CuPy/GPU
    if run_status == "error" or result is None:
        return "ERROR"
    if result.get("skipped"):
        return "SKIP"
    return "PASS" if result.get("passed") else "FAIL"


def write_index(out_root, rows):
    """out/index.html: the table of contents (status, time, criterion, page, notebook, explorers)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tinyattn: the lesson book</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "td,th{padding:.3em .7em;text-align:left;vertical-align:top;border-bottom:1px solid #eee}"
             ".PASS{color:#080}.SKIP{color:#a60}.FAIL,.ERROR,.TIMEOUT{color:#c00}small{color:#555}</style>"
             "</head><body><h1>tinyattn: the lesson book</h1>"
             "<p>Each lesson as executed: its prose, code, printed output and figures, cell by cell. "
             "The same lessons run as scripts with <code>python lessons/run_all.py</code>.</p>",
             "<h2>Contents</h2><table><tr><th>lesson</th><th>status</th><th>seconds</th>"
             "<th>criterion</th><th>files</th></tr>"]
    for row in rows:
        files = [f"<a href='book/{row['name']}.html'>page</a>", f"<a href='notebooks/{row['name']}.ipynb'>notebook</a>"]
        for explorer in row["explorers"]:
            rel = f"lessons/{row['number']:02d}/{explorer}"
            label = explorer[len("attention_"):-len(".html")] if explorer.startswith("attention_") else explorer
            files.append(f"<a href='{html.escape(rel)}'>attention explorer: {html.escape(label)}</a>")
        parts.append(f"<tr><td><a href='book/{row['name']}.html'>{row['number']:02d} {html.escape(row['title'])}</a>"
                     f"<br><small>{html.escape(row['name'])}.py</small></td>"
                     f"<td class='{row['status']}'>{row['status']}</td><td>{row['seconds']:.1f}</td>"
                     f"<td>{html.escape(row['criterion'])}</td><td>{'<br>'.join(files)}</td></tr>")
    parts.append("</table></body></html>")
    path = os.path.join(out_root, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Execute the tinyattn lessons as notebooks and build the book.")
    parser.add_argument("only", nargs="*", help="lesson numbers or name fragments (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--out", default=os.path.join(ROOT, "out"), help="output root (default out/)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds before one cell is stopped")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        import jupytext, nbclient, nbconvert  # noqa: F401, E401, PLC0415
    except ImportError as exc:
        parser.error(f"the book needs jupytext, nbclient, nbconvert and ipykernel ({exc}); "
                     "install them with: pip install -e \".[book]\"")
    lessons = select(discover(), args.only)
    if not lessons:
        parser.error("no lesson matches " + " ".join(args.only))

    import nbformat  # noqa: PLC0415

    out_root = os.path.abspath(args.out)
    for sub in ("book", "notebooks"):
        os.makedirs(os.path.join(out_root, sub), exist_ok=True)
    rows, pages = [], []
    for number, path in lessons:
        name = os.path.basename(path)[:-3]
        out_dir = os.path.join(out_root, "lessons", f"{number:02d}")
        os.makedirs(out_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(out_dir, "*.png")) + glob.glob(os.path.join(out_dir, "result.json")) \
                + glob.glob(os.path.join(out_dir, "attention_*")):
            os.remove(stale)            # a crashed run must not show what an older one left
        print(f"executing {name} ...", flush=True)
        nb = read_lesson(path)
        start = time.perf_counter()
        run_status, note = execute(nb, out_dir, args.seed, args.backend, args.timeout)
        seconds = time.perf_counter() - start
        nbformat.write(nb, os.path.join(out_root, "notebooks", f"{name}.ipynb"))
        result = None
        if os.path.exists(os.path.join(out_dir, "result.json")):
            with open(os.path.join(out_dir, "result.json"), encoding="utf-8") as f:
                result = json.load(f)
        status = lesson_status(run_status, result)
        criterion = result["criterion"] if result and status in ("PASS", "FAIL", "SKIP") else note
        rows.append({"number": number, "name": name, "status": status, "seconds": seconds,
                     "title": result["title"] if result else name[3:].replace("_", " "),
                     "criterion": criterion, "explorers": result.get("explorers", []) if result else []})
        pages.append(nb)
        print(f"  {status} in {seconds:.1f} s" + (f": {note}" if status in ("ERROR", "TIMEOUT") else ""), flush=True)
    for i, nb in enumerate(pages):
        page = to_html(nb)
        page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav_bar(rows, i), page, count=1)
        with open(os.path.join(out_root, "book", f"{rows[i]['name']}.html"), "w", encoding="utf-8") as f:
            f.write(page)
    index = write_index(out_root, rows)
    n_ok = sum(r["status"] in ("PASS", "SKIP") for r in rows)
    print(f"\n{n_ok}/{len(rows)} lessons passed (or skipped); the book: {index}")
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
