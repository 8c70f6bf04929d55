"""kernels/lowlevel/thread_split.py: split(fn, n, *args) makes the n calls fn(*args, k, n), each
once, on n threads at the same time, and raises a call's error instead of losing it."""
import threading

import pytest

from tinyattn.kernels.lowlevel.thread_split import split


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_every_share_runs_once(n):
    seen, lock = [], threading.Lock()

    def fn(tag, k, m):
        with lock:
            seen.append((tag, k, m, threading.get_ident()))

    split(fn, n, "x")
    m = max(n, 1)
    assert sorted(s[:3] for s in seen) == [("x", k, m) for k in range(m)]
    if n <= 1:
        assert seen[0][3] == threading.get_ident()       # no thread for a single share


def test_shares_run_at_the_same_time():
    barrier = threading.Barrier(3, timeout=30)          # breaks if they ran one after another

    def fn(k, m):
        barrier.wait()

    split(fn, 3)


def test_an_error_in_any_share_is_raised():
    def fn(k, m):
        if k == 1:
            raise ValueError("share 1 failed")

    with pytest.raises(ValueError, match="share 1 failed"):
        split(fn, 2)
