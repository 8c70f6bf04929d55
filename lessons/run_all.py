"""Run every lesson in order as a script, print a summary table, and write out/runs.html.

    python lessons/run_all.py                 # all lessons, seed 0
    python lessons/run_all.py 03 05           # only these (numbers or name fragments)
    python lessons/run_all.py --seed 1 --backend cupy --out out

Lessons are found automatically: every ``lessons/NN_*.py`` (two digits, then a name). Each runs in
its own process (so one lesson's state or crash cannot affect another) with
``--out <out>/lessons/NN``; its printed output is saved beside its figures as ``output.txt``.
``out/runs.html`` then shows every lesson's output and figures on one page, in order. (The book,
``out/index.html`` with one page per lesson, cell by cell, is built by ``build_book.py``.)
Exit status: 0 if every lesson passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import glob
import html
import json
import os
import re
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def discover():
    """(number, path) of every lesson script, in number order."""
    found = []
    for path in glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py")):
        found.append((int(os.path.basename(path)[:2]), path))
    return sorted(found)


def select(lessons, only):
    """The lessons named by ``only`` (numbers or name fragments); all of them when it is empty."""
    if not only:
        return lessons
    return [(n, p) for n, p in lessons
            if any(sel.isdigit() and int(sel) == n or (not sel.isdigit() and sel in os.path.basename(p))
                   for sel in only)]


def run_one(path, out_dir, seed, backend, timeout):
    """Run one lesson; return (status, seconds, criterion line, captured output)."""
    cmd = [sys.executable, path, "--seed", str(seed), "--backend", backend, "--out", out_dir]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        output, code = proc.stdout + (("\n[stderr]\n" + proc.stderr) if proc.stderr.strip() else ""), proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        output += f"\n[runner] stopped after {timeout} s"
        code = None
    seconds = time.perf_counter() - start
    match = re.findall(r"^CRITERION: (PASS|FAIL|SKIP) (.*)$", output, flags=re.M)  # SKIP: Lesson.skip
    if code is None:
        status, criterion = "TIMEOUT", f"did not finish within {timeout} s"
    elif code == 3:
        status, criterion = "SKIP", output.strip().splitlines()[0] if output.strip() else "backend unavailable"
    elif match:
        status, criterion = match[-1]
        if code != 0 and status == "PASS":
            status = "ERROR"
    else:
        status, criterion = "ERROR", f"exit status {code}, no CRITERION line (see output)"
    with open(os.path.join(out_dir, "output.txt"), "w", encoding="utf-8") as f:
        f.write(output)
    return status, seconds, criterion, output


def write_index(out_root, rows):
    """One static page: each lesson's output in <pre> and its figures as <img>, in order."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tinyattn lessons</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}"
             "img{max-width:100%;border:1px solid #ddd;margin:.3em 0}"
             "td,th{padding:.2em .8em;text-align:left}.PASS{color:#080}.FAIL,.ERROR,.TIMEOUT{color:#c00}"
             "</style></head><body><h1>tinyattn lessons</h1><table><tr><th>lesson</th><th>status</th>"
             "<th>seconds</th><th>criterion</th></tr>"]
    for number, name, status, seconds, criterion, _ in rows:
        parts.append(f"<tr><td><a href='#l{number:02d}'>{html.escape(name)}</a></td>"
                     f"<td class='{status}'>{status}</td><td>{seconds:.1f}</td>"
                     f"<td>{html.escape(criterion)}</td></tr>")
    parts.append("</table>")
    for number, name, status, seconds, criterion, output in rows:
        lesson_dir = os.path.join(out_root, "lessons", f"{number:02d}")
        parts.append(f"<h2 id='l{number:02d}'>{html.escape(name)} "
                     f"<small class='{status}'>{status}, {seconds:.1f} s</small></h2>")
        parts.append(f"<pre>{html.escape(output)}</pre>")
        figures = []
        result_path = os.path.join(lesson_dir, "result.json")
        if os.path.exists(result_path):
            with open(result_path, encoding="utf-8") as f:
                figures = json.load(f).get("figures", [])
        else:
            figures = sorted(os.path.basename(p) for p in glob.glob(os.path.join(lesson_dir, "*.png")))
        for fig in figures:
            rel = os.path.relpath(os.path.join(lesson_dir, fig), out_root)
            parts.append(f"<div><img src='{html.escape(rel)}' alt='{html.escape(fig)}'></div>")
    parts.append("</body></html>")
    path = os.path.join(out_root, "runs.html")     # out/index.html is the book's (build_book.py)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the tinyattn lessons and summarise them.")
    parser.add_argument("only", nargs="*", help="lesson numbers or name fragments (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--out", default=os.path.join(ROOT, "out"), help="output root (default out/)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds before a lesson is stopped")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")

    lessons = select(discover(), args.only)
    if not lessons:
        parser.error("no lesson matches " + " ".join(args.only))

    rows = []
    for number, path in lessons:
        name = os.path.basename(path)[:-3]
        out_dir = os.path.join(args.out, "lessons", f"{number:02d}")
        os.makedirs(out_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(out_dir, "*.png")) + glob.glob(os.path.join(out_dir, "result.json")):
            os.remove(stale)            # a crashed run must not show the figures of an older one
        print(f"running {name} ...", flush=True)
        status, seconds, criterion, output = run_one(path, out_dir, args.seed, args.backend, args.timeout)
        rows.append((number, name, status, seconds, criterion, output))
        print(f"  {status} in {seconds:.1f} s", flush=True)

    width = max(len(r[1]) for r in rows)
    print()
    print(f"{'lesson':<{width}}  {'seconds':>7}  criterion")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 60}")
    for _, name, status, seconds, criterion, _ in rows:
        # one line per check, wrapped, so the table stays readable in an 100-column terminal
        lines = []
        for part in f"{status} {criterion}".split("; "):
            lines += textwrap.wrap(part, width=max(40, 100 - width - 11), subsequent_indent="    ")
        print(f"{name:<{width}}  {seconds:7.1f}  {lines[0]}")
        for line in lines[1:]:
            print(f"{'':<{width}}  {'':7}       {line.strip()}")
    index = write_index(args.out, rows)
    n_pass = sum(r[2] in ("PASS", "SKIP") for r in rows)
    n_skip = sum(r[2] == "SKIP" for r in rows)
    skipped = f" ({n_skip} skipped: backend unavailable)" if n_skip else ""
    print(f"\n{n_pass}/{len(rows)} lessons passed{skipped}; every output and figure: {index}")
    return 0 if n_pass == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
