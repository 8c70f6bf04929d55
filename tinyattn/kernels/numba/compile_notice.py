"""Say so when the compiled kernels are being compiled, instead of pausing silently.

A learner's first run compiles the kernels it uses (seconds to a minute); every later run loads
the machine code from Numba's disk cache (``cache=True``). Numba announces each real compilation
as a "numba:compile" event - a cache hit is not one - so a listener on that event prints, the
first time one of tinyattn's kernels compiles in this process, one line to stderr:

    tinyattn: compiling kernels, first run only (cached on disk for the next runs) ...

and at exit the total it cost. ``TINYATTN_COMPILE_NOTICE=0`` silences both. ``compiled()`` lists
what was compiled in this process (name, signature, seconds), for measuring the cold-start cost.
Installed when the kernels are first loaded (``kernels.get``), never at ``import tinyattn``.
"""
from __future__ import annotations

import atexit
import os
import sys
import time

from numba.core import event

from ..lowlevel import numba_cache

_MESSAGE = "tinyattn: compiling kernels, first run only (cached on disk for the next runs) ..."
_UNCACHED = ("tinyattn: compiling kernels (no writable folder for Numba's cache here: they are "
             "compiled in every run) ...")


def _ours(ev):
    fn = getattr(ev.data.get("dispatcher"), "py_func", None) if isinstance(ev.data, dict) else None
    return fn is not None and getattr(fn, "__module__", "").startswith("tinyattn.")


class _Notice(event.Listener):
    def __init__(self):
        self.printed = False
        self.started = []           # start times of the compilations in progress (they nest)
        self.records = []           # (qualified name, argument types, seconds), outermost only
        self.total = 0.0

    def on_start(self, ev):
        if not _ours(ev):
            return
        self.started.append(time.perf_counter())
        if not self.printed and _enabled():
            self.printed = True
            print(_MESSAGE if numba_cache.ENABLED else _UNCACHED, file=sys.stderr, flush=True)

    def on_end(self, ev):
        if not _ours(ev) or not self.started:
            return
        seconds = time.perf_counter() - self.started.pop()
        fn = ev.data["dispatcher"].py_func
        self.records.append((f"{fn.__module__}.{fn.__qualname__}", str(ev.data.get("args")), seconds))
        if not self.started:        # time spent in nested compilations is inside the outer one
            self.total += seconds


def _enabled():
    return os.environ.get("TINYATTN_COMPILE_NOTICE", "1") != "0"


_notice = None


def install():
    """Start listening (once per process)."""
    global _notice
    if _notice is None:
        _notice = _Notice()
        event.register("numba:compile", _notice)
        atexit.register(_summary)


def compiled():
    """[(name, argument types, seconds)] of every kernel compiled in this process so far."""
    return [] if _notice is None else list(_notice.records)


def _summary():
    if _notice is not None and _notice.printed and _enabled():
        print(f"tinyattn: compiling kernels took {_notice.total:.1f} s in this run "
              f"({len(_notice.records)} compiled"
              f"{'; the next runs load them from the cache' if numba_cache.ENABLED else ''})",
              file=sys.stderr, flush=True)
