"""Where Numba keeps the compiled kernels between runs: one folder per version of the kernels' sources.

Two problems with Numba's own choice (``@njit(cache=True)``: ``__pycache__`` beside the source file,
else under the user's home):

* **Stale kernels.** Numba reuses a cached kernel while *its own file* is unchanged (same mtime
  and size). Our kernels inline helpers from other files (``fastmath.py``, ``rows.py``, ``erf.py``)
  and read constants from them at compile time; after ``git pull`` changed only a helper, the old
  machine code kept running - silently, with the old arithmetic (it made two training lessons
  differ from a clean clone's). So the cache folder is named by a fingerprint of every kernel
  source (``kernels/numba``, ``kernels/lowlevel``, ``ops/special.py``): any change there starts a
  fresh folder, and folders of other fingerprints are removed.
* **No folder at all.** A package installed read-only (a system site-packages, a container image)
  for a user without a writable home has neither, and every decoration raised "cannot cache
  function ...: no locator available".

The folder is the first that can be written of: ``NUMBA_CACHE_DIR`` (where the user set it),
``tinyattn/kernels/__pycache__``, ``$XDG_CACHE_HOME/tinyattn`` (``~/.cache/tinyattn``), and a
private ``<tmp>/tinyattn-numba-cache-<uid>``; inside it, ``kernels-<fingerprint>``. It is chosen
when the kernels are first loaded (``kernels.get``; never at ``import tinyattn``), and
``kernel_cache()`` points Numba at it only while the kernel modules are imported - Numba's own
setting is restored right after, so other code using Numba is not affected. If no folder can be
made, ``ENABLED`` is False and the kernels compile in every run, without a cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile

import numba

ENABLED = True          # the kernels' jit options read it (cache=numba_cache.ENABLED)

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the sources compiled into the kernels: kernels/numba, kernels/lowlevel, ops/special.py (erf)
_SOURCE_FOLDERS = [os.path.join(_PACKAGE, "kernels", "numba"), os.path.join(_PACKAGE, "kernels", "lowlevel")]
_SOURCE_FILES = [os.path.join(_PACKAGE, "ops", "special.py")]
_PREFIX = "kernels-"
_chosen = None          # None: not decided yet; "": no folder (uncached); else our folder


def sources_fingerprint() -> str:
    """A hash of every kernel source file (names and contents): the cache folder's name."""
    digest = hashlib.sha256()
    paths = [os.path.join(folder, name) for folder in _SOURCE_FOLDERS
             for name in sorted(os.listdir(folder)) if name.endswith(".py")] + _SOURCE_FILES
    for path in paths:
        digest.update(os.path.relpath(path, _PACKAGE).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def _writable(folder):
    """Make ``folder`` (and its parents) if needed; True if a file can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def _bases():
    """Candidate parent folders, best first (each tried lazily)."""
    if numba.config.CACHE_DIR:
        yield numba.config.CACHE_DIR
    yield os.path.join(_PACKAGE, "kernels", "__pycache__")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    yield os.path.join(xdg, "tinyattn")
    yield _private_folder()


def _remove_other_versions(base, keep):
    """Folders of other fingerprints hold kernels no version of these sources will load again."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if name.startswith(_PREFIX) and name != keep:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def cache_folder():
    """The folder the kernels are cached in ("" where none could be made); decided once."""
    global ENABLED, _chosen
    if _chosen is None:
        name = _PREFIX + sources_fingerprint()
        _chosen = ""
        for base in _bases():
            if base and _writable(os.path.join(base, name)):
                _remove_other_versions(base, name)
                _chosen = os.path.join(base, name)
                break
        ENABLED = bool(_chosen)
    return _chosen


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
    """Around the import of the kernel modules: Numba caches in ``cache_folder()`` (or, where
    there is none, ``ENABLED`` is False and nothing is cached)."""
    folder = cache_folder()
    if not folder:
        yield
        return
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = folder
    try:
        yield
    finally:
        numba.config.CACHE_DIR = saved
