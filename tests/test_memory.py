"""tinyattn.memory: importing tinyattn changes no process setting; memory.tune() keeps freed memory
for the next array (a training step stops faulting in fresh pages) and gives the heap huge pages,
and the environment switches turn those parts off."""
import json
import os
import subprocess
import sys

import pytest

from tinyattn import memory

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="the malloc settings are glibc's")

# One fresh process: import tinyattn, run LSTM steps (ops, autograd, kernels), measure; then tune()
# and measure the same again. Page faults per step show malloc's behaviour (glibc on its own hands
# the step's ~12 MB fresh pages every time); the heap's VmFlags show madvise(MADV_HUGEPAGE) ("hg").
_PROBE = """
import json, resource
import numpy as np
import tinyattn as ta
from tinyattn import memory, nn
ta.manual_seed(0)
lstm = nn.LSTM(32, 128)
x = np.random.default_rng(0).standard_normal((50, 32, 32)).astype(np.float32)
def step():
    lstm.zero_grad()
    out, _ = lstm(ta.tensor(x, requires_grad=True))
    out.mean().backward()
def faults_per_step():
    for _ in range(5):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
def heap_advised_huge():
    flags, in_heap = [], False
    for line in open("/proc/self/smaps"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            in_heap = line.rstrip().endswith("[heap]")
        elif in_heap and line.startswith("VmFlags:"):
            flags += line.split()[1:]
    return "hg" in flags
def state():
    return {"tuned": memory.is_tuned(), "faults": faults_per_step(), "hg": heap_advised_huge()}
out = {"import": state()}
out["tune"] = memory.tune()
out["tune_again"] = memory.tune()
out["after"] = state()
print(json.dumps(out))
"""


def _probe(**env):
    res = subprocess.run([sys.executable, "-c", _PROBE], env=dict(os.environ, **env),
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _thp_madvise_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[madvise]" in f.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def default_run():
    return _probe(TINYATTN_KEEP_FREED_MEMORY="1", TINYATTN_HUGE_PAGES="1")


def test_import_and_ops_leave_malloc_and_the_heap_untouched(default_run):
    before, after = default_run["import"], default_run["after"]
    assert not before["tuned"]
    assert not before["hg"], "import tinyattn marked the heap for huge pages"
    # untouched glibc hands each step fresh pages; tune() is what makes the step reuse them
    assert before["faults"] > 10 * max(after["faults"], 10), (before, after)


def test_tune_keeps_freed_memory_and_is_idempotent(default_run):
    assert default_run["tune"]["keep_freed_memory"]
    assert default_run["tune_again"] == default_run["tune"]
    assert default_run["after"]["tuned"]
    # ~12 MB of arrays per step: with freed memory kept next to no page is faulted in
    assert default_run["after"]["faults"] < 100, default_run


@pytest.mark.skipif(not _thp_madvise_mode(), reason="transparent huge pages are not in madvise mode here")
def test_tune_marks_the_heap_for_huge_pages(default_run):
    assert default_run["tune"]["huge_pages"]
    assert default_run["after"]["hg"]


def test_the_environment_switches_turn_the_parts_off():
    no_huge = _probe(TINYATTN_KEEP_FREED_MEMORY="1", TINYATTN_HUGE_PAGES="0")
    assert no_huge["tune"] == {"keep_freed_memory": True, "huge_pages": False}
    assert not no_huge["after"]["hg"]
    untouched = _probe(TINYATTN_KEEP_FREED_MEMORY="0")
    assert untouched["tune"] == {"keep_freed_memory": False, "huge_pages": False}
    assert not untouched["after"]["tuned"] and not untouched["after"]["hg"]
    # malloc left as it was: the steps still fault in fresh pages
    assert untouched["after"]["faults"] > 10 * max(no_huge["after"]["faults"], 10), (untouched, no_huge)


_RELEASE = """
import numpy as np
from tinyattn import memory
memory.tune()
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * {page}
a = np.ones(20 * 2**20 // 8)    # 20 MiB, below the tuned mmap threshold: it comes from the heap
del a                           # ... and stays with the process
before = resident()
print(memory.release(), before - resident())
"""


def test_release_hands_kept_memory_back():
    code = _RELEASE.format(page=os.sysconf("SC_PAGE_SIZE"))
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TINYATTN_KEEP_FREED_MEMORY="1"),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) > 10 * 2**20, out
