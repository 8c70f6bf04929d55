"""The lesson book: lessons executed as notebooks (nbclient) with their figures inline, and the HTML
book (out/index.html, one page per lesson) with a table of contents and relative links only.

Built once for the module on the shortest lessons (02, 04, 07 with figures; 18, which skips
without a GPU, for a lesson that stops early in a kernel)."""
import base64
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = os.path.join(ROOT, "lessons")
WITH_FIGURES = ["02_sigmoid_vs_softmax", "04_masks_and_irregular_sequences", "07_sequential_vs_parallel"]
SKIPS = "18_same_code_on_gpu"
BUILT = WITH_FIGURES + [SKIPS]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    for module in ("jupytext", "nbclient", "nbconvert", "ipykernel"):
        pytest.importorskip(module, reason=f"{module} is missing: the book needs pip install -e '.[book]'")
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([sys.executable, os.path.join(LESSONS, "build_book.py"), *[n[:2] for n in BUILT],
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    return out, proc


def notebook(out, name):
    import nbformat

    return nbformat.read(os.path.join(out, "notebooks", f"{name}.ipynb"), as_version=4)


def test_build_succeeds(book):
    out, proc = book
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{len(BUILT)}/{len(BUILT)} lessons passed" in proc.stdout


@pytest.mark.parametrize("name", WITH_FIGURES)
def test_notebook_ran_every_cell_and_shows_its_figures_inline(book, name):
    out, _ = book
    nb = notebook(out, name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "CRITERION: PASS" in text and "SystemExit" not in text
    result = json.load(open(os.path.join(out, "lessons", name[:2], "result.json")))
    assert result["passed"] is True and result["seed"] == 0      # ran with the builder's arguments
    images = [base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(result["figures"]) >= 1
    for png, fig in zip(images, result["figures"]):              # inline = the very file it saved
        assert png == open(os.path.join(out, "lessons", name[:2], fig), "rb").read()
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# Lesson {name[:2]}")


def test_a_skip_in_a_kernel_ends_the_lesson_in_one_line(book):
    out, _ = book
    nb = notebook(out, SKIPS)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [(i, o) for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1
    where, error = errors[0]
    assert error.ename == "LessonStopped" and len(error.traceback) == 1 and "skipped" in error.evalue
    assert all(c.execution_count is None for c in code[where + 1:]) and len(code) > where + 1
    assert not any("SystemExit" in json.dumps(c.outputs) for c in code)
    assert json.load(open(os.path.join(out, "lessons", "18", "result.json")))["skipped"] is True


def links(page):
    return re.findall(r"""(?:href|src)=['"]([^'"]+)['"]""", page)


def test_index_is_a_table_of_contents_with_relative_links(book):
    out, _ = book
    index = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    pages = [f"book/{name}.html" for name in BUILT]
    positions = [index.index(f"href='{p}'") for p in pages]
    assert positions == sorted(positions)                          # in lesson order
    assert index.count("class='PASS'") == len(WITH_FIGURES) and index.count("class='SKIP'") == 1
    for link in links(index):
        assert not re.match(r"^(/|[a-z]+:)", link) and ROOT not in link, link
        assert os.path.exists(os.path.join(out, link)), link
    for name in BUILT:
        assert f"notebooks/{name}.ipynb" in links(index)


@pytest.mark.parametrize("i", range(len(BUILT)))
def test_lesson_page_shows_prose_code_output_and_figures_in_order(book, i):
    out, _ = book
    name = BUILT[i]
    page = open(os.path.join(out, "book", f"{name}.html"), encoding="utf-8").read()
    nb = notebook(out, name)
    heading = next(c.source for c in nb.cells[1:] if c.cell_type == "markdown" and c.source.startswith("## "))
    heading = heading.splitlines()[0][3:]
    code_line = next(c.source for c in nb.cells if c.cell_type == "code").splitlines()[0]
    at_prose = page.index(">" + heading.split()[0])              # rendered markdown: a heading element
    assert re.search(r"<h2[^>]*>\s*" + re.escape(heading.split()[0]), page)
    assert "lesson" in code_line.lower() or "import" in code_line
    at_output = page.index("CRITERION: ")
    assert at_prose < at_output
    if name in WITH_FIGURES:
        at_figure = re.search(r"<img[^>]*src=\"data:image/png;base64,", page).start()   # an inline figure
        assert at_prose < at_figure < at_output                   # figures before the closing line
    for link in links(page):
        if link.startswith(("#", "data:")):
            continue
        assert not re.match(r"^(/|[a-z]+:)", link) and ROOT not in link, link
        assert os.path.exists(os.path.join(out, "book", link)), link
    assert "href='../index.html'" in page
    if i + 1 < len(BUILT):
        assert f"href='{BUILT[i + 1]}.html'" in page


@pytest.mark.parametrize("name", WITH_FIGURES)
def test_no_cell_echoes_a_return_value(book, name):
    """savefig as a cell's last line must not add an 'Out[n]: path' under the figure."""
    out, _ = book
    assert not [o for c in notebook(out, name).cells if c.cell_type == "code"
                for o in c.outputs if o.output_type == "execute_result"]
