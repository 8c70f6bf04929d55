"""lessons/_common.py outside a plain script: in a notebook kernel (argv, skip, finish), the
attention explorer's data, and the progress lines. In-process and fast; the real kernel is
exercised by tests/test_book.py."""
import json
import os
import sys

import numpy as np
import pytest

LESSONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lessons")


@pytest.fixture(scope="module")
def common():
    saved = dict(os.environ)       # _common sets thread and backend variables for lessons: not for us
    sys.path.insert(0, LESSONS)
    try:
        import _common
    finally:
        sys.path.remove(LESSONS)
        os.environ.clear()
        os.environ.update(saved)
    return _common


@pytest.fixture
def notebook(common, monkeypatch):
    monkeypatch.setattr(common, "in_notebook", lambda: True)
    return common


def test_kernel_argv_is_ignored_and_lesson_args_are_read(notebook, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel-1.json"])
    monkeypatch.setenv(notebook.LESSON_ARGS_VAR, f"--seed 7 --out {tmp_path / 'o'}")
    lesson = notebook.Lesson(99, "notebook")
    assert lesson.seed == 7 and lesson.out == str(tmp_path / "o")
    monkeypatch.delenv(notebook.LESSON_ARGS_VAR)
    monkeypatch.setenv(notebook.LESSON_ARGS_VAR, "--sed 7")        # a typo is still an error
    with pytest.raises(SystemExit) as exc:
        notebook.Lesson(99, "notebook")
    assert exc.value.code == 2
    assert "unrecognized arguments: --sed" in capsys.readouterr().err


def test_script_mode_still_reads_argv_and_rejects_typos(common, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["lesson.py", "--seed", "3", "--out", str(tmp_path)])
    assert common.Lesson(99, "script").seed == 3
    monkeypatch.setattr(sys, "argv", ["lesson.py", "-f", "x.json"])
    with pytest.raises(SystemExit) as exc:
        common.Lesson(99, "script")
    assert exc.value.code == 2


def test_finish_and_skip_in_a_notebook_raise_no_system_exit(notebook, tmp_path, capsys):
    lesson = notebook.Lesson(99, "pass", argv=["--out", str(tmp_path / "a")])
    lesson.check("holds", True, "1 == 1")
    assert lesson.finish() is None                                   # PASS: the last cell just ends
    assert "CRITERION: PASS" in capsys.readouterr().out

    lesson = notebook.Lesson(99, "fail", argv=["--out", str(tmp_path / "b")])
    lesson.check("holds", False, "1 != 2")
    with pytest.raises(notebook.LessonStopped) as exc:
        lesson.finish()
    assert exc.value.status == notebook.EXIT_FAIL
    assert exc.value._render_traceback_() == [f"LessonStopped: {exc.value}"]     # one line, no traceback
    assert json.load(open(tmp_path / "b" / "result.json"))["passed"] is False

    lesson = notebook.Lesson(99, "skip", argv=["--out", str(tmp_path / "c")])
    with pytest.raises(notebook.LessonStopped) as exc:
        lesson.skip("no GPU")
    assert exc.value.status == 0 and "no GPU" in str(exc.value)
    assert "CRITERION: SKIP no GPU" in capsys.readouterr().out
    assert json.load(open(tmp_path / "c" / "result.json"))["skipped"] is True


def test_script_exit_codes_unchanged(common, tmp_path):
    lesson = common.Lesson(99, "fail", argv=["--out", str(tmp_path / "a")])
    lesson.check("holds", False, "no")
    with pytest.raises(SystemExit) as exc:
        lesson.finish()
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:
        common.Lesson(99, "skip", argv=["--out", str(tmp_path / "b")]).skip("why")
    assert exc.value.code == 0


def test_attention_explorer_writes_the_data_and_a_standalone_page(common, tmp_path):
    lesson = common.Lesson(99, "explorer", argv=["--out", str(tmp_path)])
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=(2, 4, 2))     # 2 layers, 4 heads, 2 x 3
    assert lesson.attention_explorer("demo", ["a", "</script>"], ["x", "y", "z"], w, title="t") is None
    path = tmp_path / "attention_demo.html"
    data = json.load(open(tmp_path / "attention_demo.json"))
    np.testing.assert_allclose(data["weights"], w, atol=1e-5)
    assert data["tokens_q"] == ["a", "</script>"] and data["heads"] == 4 and data["layers"] == ["layer 1", "layer 2"]
    page = open(path, encoding="utf-8").read()
    assert page.count("</script>") == 2               # the token is escaped inside the data element
    assert "__EXPLORER" not in page and "http" not in page.split("-->", 1)[1]      # no placeholder, no fetch
    lesson.check("ran", True, "yes")
    lesson.finish()
    assert json.load(open(tmp_path / "result.json"))["explorers"] == ["attention_demo.html"]


@pytest.mark.parametrize("weights, tokens_k, grid, message", [
    (np.ones((2, 3)), ["x", "y"], None, r"weights must be \[layers\]\[heads\]\[2 queries\]\[2 keys\]; got shape \(1, 1, 2, 3\)"),
    (np.full((2, 2), np.nan), ["x", "y"], None, "NaN"),
    (np.ones((2, 2)), ["x", "y"], (3, 1), r"grid \(3, 1\) has 3 cells for 2 keys"),
])
def test_attention_explorer_rejects_bad_input(common, tmp_path, weights, tokens_k, grid, message):
    lesson = common.Lesson(99, "explorer", argv=["--out", str(tmp_path)])
    with pytest.raises(ValueError, match=message):
        lesson.attention_explorer("bad", ["a", "b"], tokens_k, weights, grid=grid)


def test_progress_lines_with_time_left(common, capsys):
    progress = common.Progress(100, every=25, label="demo ")     # stderr is not a terminal here: no bar
    for step in range(1, 101):
        progress(step, 1.0 / step, acc=0.5)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].strip().startswith("demo step    25/100")
    assert all("eta" in line for line in lines[:3]) and "eta" not in lines[-1]
    assert "loss 0.0100" in lines[-1] and "acc  50.0%" in lines[-1]


def test_progress_on_a_terminal_adds_a_tqdm_bar_and_keeps_the_lines(common, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = common.Progress(50, every=25, label="bar ")
    for step in range(1, 51):
        progress(step, 0.5)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line.split("loss")[0].strip() for line in lines] == ["bar step    25/50", "bar step    50/50"]
    assert "bar" in terminal.getvalue() and "50/50" in terminal.getvalue()   # the bar ran to the end


def test_no_lesson_needs_what_a_notebook_kernel_lacks():
    """A kernel has no __file__ and its own sys.argv: lessons use _common (LESSONS_DIR, Lesson)."""
    for name in sorted(os.listdir(LESSONS)):
        if name[:2].isdigit() and name.endswith(".py"):
            source = open(os.path.join(LESSONS, name), encoding="utf-8").read()
            for word in ("__file__", "sys.argv", "__name__ =="):
                assert word not in source, f"{name} uses {word}, which a notebook kernel does not give it"
