"""First run: `import tinyattn` loads no compiler and compiles nothing; the first real compilation
of a kernel is announced once on stderr ("compiling kernels, first run only") with its cost at
exit; a run that finds the kernels in the cache says nothing; TINYATTN_COMPILE_NOTICE=0 silences."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MESSAGE = "compiling kernels, first run only"

# one small kernel (softmax rows, float64): the cheapest real compilation
SCRIPT = r"""
import numpy as np, tinyattn as ta
print(ta.softmax(ta.tensor(np.arange(6.0).reshape(2, 3)), dim=-1).sum().item())
"""


def _run(script, cache_dir, **env_extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache_dir), **env_extra)
    env.pop("NUMBA_DISABLE_JIT", None)
    env.pop("TINYATTN_COMPILE_NOTICE", None)
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def test_import_loads_no_compiler(tmp_path):
    res = _run("import sys, tinyattn\nprint(sorted(m for m in ('numba', 'llvmlite', 'scipy') "
               "if m in sys.modules))", tmp_path)
    assert res.stdout.strip() == "[]"
    assert MESSAGE not in res.stderr


def test_the_first_compilation_is_announced_once_and_a_cached_run_is_quiet(tmp_path):
    first = _run(SCRIPT, tmp_path)
    assert first.stderr.count(MESSAGE) == 1
    assert "compiling kernels took" in first.stderr            # the cost, once, at exit
    second = _run(SCRIPT, tmp_path)                             # same cache: loaded, not compiled
    assert float(second.stdout) == pytest.approx(float(first.stdout))
    assert MESSAGE not in second.stderr and "took" not in second.stderr


def test_the_notice_can_be_silenced(tmp_path):
    res = _run(SCRIPT, tmp_path, TINYATTN_COMPILE_NOTICE="0")
    assert MESSAGE not in res.stderr


def test_compiled_lists_what_this_process_compiled():
    from tinyattn.kernels.numba import compile_notice

    for name, args, seconds in compile_notice.compiled():
        assert name.startswith("tinyattn.kernels.") and seconds >= 0 and args
