"""Issue 17: tinyattn imports and runs its compiled kernels from a read-only installation whose
user has no writable home (Numba's cache then had no folder: "cannot cache function ...: no
locator available", raised at the first kernel). The kernels now cache in a private folder in
the temporary directory, chosen when they are first loaded (never at import), or not at all.

Each check runs a fresh Python on a copy of the package in a folder nobody may write. The tests
may run as root, who can write anyway; a *file* named ``__pycache__`` in every folder of the copy
blocks Numba's in-tree cache for root as well, and root's home is put under a file
(``/dev/null/...``), which no one can create; other users get ``HOME=/nonexistent``."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import tinyattn

PACKAGE = os.path.dirname(os.path.abspath(tinyattn.__file__))

SCRIPT = r"""
import json, os, sys, tempfile
import tinyattn as ta
private = os.path.join(tempfile.gettempdir(), f"tinyattn-numba-cache-{os.geteuid()}")
created_at_import = os.path.exists(private)
if sys.argv[1] == "no-folder":
    from tinyattn.kernels.lowlevel import numba_cache
    numba_cache._private_folder = lambda: None
import tinyattn.functional as F
x = ta.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], requires_grad=True)
y = (ta.softmax(x, -1) * F.layer_norm(x, (3,)) + ta.gelu(x)).sum()
y.backward()
import numba
from tinyattn.kernels.lowlevel import numba_cache
from tinyattn.kernels.numba import compile_notice
print(json.dumps({
    "file": ta.__file__, "y": y.item(), "grad": x.grad.tolist(),
    "created_at_import": created_at_import, "cache_enabled": numba_cache.ENABLED,
    "numba_cache_dir": numba.config.CACHE_DIR, "env": os.environ.get("NUMBA_CACHE_DIR"),
    "compiled": [name for name, *_ in compile_notice.compiled()],
    "private_exists": os.path.isdir(private),
}))
"""


def _read_only_copy(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "tinyattn", ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _, _ in os.walk(root):
        open(os.path.join(folder, "__pycache__"), "w").close()      # blocks a cache folder there
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
    for folder, _, _ in sorted(os.walk(root), reverse=True):
        os.chmod(folder, 0o555)
    return root


def _run(root, tmp_path, mode):
    unwritable = "/dev/null/nohome" if os.geteuid() == 0 else "/nonexistent"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUMBA_CACHE_DIR", "PYTHON", "XDG_"))}
    env.update(HOME=unwritable, XDG_CACHE_HOME=unwritable, PYTHONPATH=str(root),
               TMPDIR=str(tmp_path / "tmp"), TINYATTN_COMPILE_NOTICE="1",
               PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True,
                          text=True, timeout=600, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), stderr=done.stderr)


@pytest.fixture
def read_only_site(tmp_path):
    (tmp_path / "tmp").mkdir()
    root = _read_only_copy(tmp_path)
    yield root
    for folder, _, _ in os.walk(root):              # let pytest clean up
        os.chmod(folder, stat.S_IRWXU)


def test_a_read_only_install_without_a_home_imports_runs_and_caches_privately(read_only_site,
                                                                             tmp_path):
    first = _run(read_only_site, tmp_path, "cache")
    assert first["file"].startswith(str(read_only_site))
    assert not first["created_at_import"]              # nothing happens at import
    assert first["cache_enabled"] and first["private_exists"]
    assert first["numba_cache_dir"] == "" and first["env"] is None   # Numba's setting restored
    assert first["compiled"] and "first run only" in first["stderr"]   # the first run compiles
    second = _run(read_only_site, tmp_path, "cache")
    assert second["compiled"] == []                    # the second loads them from the cache
    assert second["y"] == first["y"] and second["grad"] == first["grad"]


def test_with_no_folder_to_cache_in_the_kernels_run_uncached(read_only_site, tmp_path):
    run = _run(read_only_site, tmp_path, "no-folder")
    assert not run["cache_enabled"] and not run["private_exists"]
    assert "compiled in every run" in run["stderr"] and "next runs" not in run["stderr"]
    x = tinyattn.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], requires_grad=True)
    y = (tinyattn.softmax(x, -1) * tinyattn.functional.layer_norm(x, (3,)) + tinyattn.gelu(x)).sum()
    y.backward()
    assert run["y"] == pytest.approx(y.item(), rel=1e-6)
    np.testing.assert_allclose(run["grad"], x.grad.numpy(), rtol=1e-5)


STALE_SCRIPT = r"""
import json, os
import tinyattn as ta
x = ta.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
y = ta.softmax(x, -1)
from tinyattn.kernels.lowlevel import numba_cache
from tinyattn.kernels.numba import compile_notice
print(json.dumps({"y": y.tolist(), "folder": numba_cache.cache_folder(),
                  "compiled": [name for name, *_ in compile_notice.compiled()]}))
"""


def test_a_changed_helper_file_recompiles_the_kernels_that_use_it(tmp_path):
    """Numba alone reuses a cached kernel while the kernel's own file is unchanged, even when a
    helper it inlines (fastmath.py, rows.py) changed: the old machine code ran on. The cache
    folder is named by a fingerprint of all kernel sources, so editing a helper recompiles."""
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "tinyattn", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "PYTHON"))}
    env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", TINYATTN_COMPILE_NOTICE="1")

    def run():
        done = subprocess.run([sys.executable, "-c", STALE_SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run()
    assert first["compiled"] and first["folder"].startswith(str(root / "tinyattn" / "kernels"))
    assert run()["compiled"] == []                              # cached
    helper = root / "tinyattn" / "kernels" / "lowlevel" / "fastmath.py"
    helper.write_text(helper.read_text() + "\n# an edit to a helper the softmax kernel inlines\n")
    third = run()
    assert third["compiled"] and third["folder"] != first["folder"]    # recompiled, new folder
    assert third["y"] == first["y"]
    versions = [n for n in os.listdir(os.path.dirname(third["folder"])) if n.startswith("kernels-")]
    assert versions == [os.path.basename(third["folder"])]           # the stale one is gone
