"""Where Numba keeps the compiled kernels between runs when the package's own folder cannot.

``@njit(cache=True)`` picks a folder for each function when it is decorated: ``__pycache__``
beside the source file, else one under the user's home (``~/.cache``). A package installed in a
read-only folder (a system site-packages, a container image) for a user without a writable home
has neither, and every decoration raises "cannot cache function ...: no locator available".

So, when the kernels are first loaded (``kernels.get``; never at ``import tinyattn``), and only
if Numba would find no folder (``NUMBA_CACHE_DIR`` unset, and a probe decorated in each kernel
folder fails), ``kernel_cache()`` points Numba at a private folder in the temporary directory
while the kernel modules are imported - Numba's own setting is restored right after, so other
code using Numba is not affected. If no private folder can be made either, ``ENABLED`` is False
and the kernels compile in every run, without a cache.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

import numba

ENABLED = True          # the kernels' jit options read it (cache=numba_cache.ENABLED)

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the folders holding @njit(cache=True) functions: kernels/numba, kernels/lowlevel, ops (erf)
_FOLDERS = [os.path.join(_PACKAGE, *parts) for parts in
            (("kernels", "numba"), ("kernels", "lowlevel"), ("ops",))]
_chosen = None          # None: not decided yet; "": Numba's own choice works; else our folder


def _numba_finds_a_folder(folder):
    """Would ``@njit(cache=True)`` on a function from a file in ``folder`` find a cache folder?
    Decorating compiles nothing, so the probe costs microseconds and writes nothing."""
    source = os.path.join(folder, "__init__.py")
    if not os.path.exists(source):
        return True                     # nothing of ours to cache there
    namespace = {"__name__": "tinyattn.kernels.cache_probe"}
    exec(compile("def probe():\n    return 0\n", source, "exec"), namespace)   # noqa: S102
    try:
        numba.njit(cache=True)(namespace["probe"])
    except RuntimeError:                # "no locator available"
        return False
    return True


def _private_folder():
    """``<tmp>/tinyattn-numba-cache-<uid>``, made ours alone (0o700), or None. A folder of that
    name that another user made, or that others may write, is never used: cached machine code is
    run as it is, so it must be ours."""
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    try:
        base = tempfile.gettempdir()
        path = os.path.join(base, f"tinyattn-numba-cache-{uid}")
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        info = os.lstat(path)
        safe = (stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o022
                and (not hasattr(os, "geteuid") or info.st_uid == uid))
        if not safe:
            path = tempfile.mkdtemp(prefix="tinyattn-numba-cache-")   # fresh: this run only
        with tempfile.TemporaryFile(dir=path):
            pass
        return path
    except OSError:
        return None


@contextlib.contextmanager
def kernel_cache():
    """Around the import of the kernel modules: a cache folder Numba can use, or ENABLED = False."""
    global ENABLED, _chosen
    if _chosen is None:
        if numba.config.CACHE_DIR or all(_numba_finds_a_folder(f) for f in _FOLDERS):
            _chosen = ""
        else:
            _chosen = _private_folder() or ""
            ENABLED = bool(_chosen)
    if not _chosen:
        yield
        return
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _chosen
    try:
        yield
    finally:
        numba.config.CACHE_DIR = saved
