"""tinyattn.memory: freed memory is kept for the next array, so a training step does not fault in
fresh pages every time (and the switch to turn that off works)."""
import os
import subprocess
import sys

import pytest

from tinyattn import memory

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="the malloc settings are glibc's")

_STEP_FAULTS = """
import resource
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
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(memory.is_keeping_freed_memory(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_step(keep):
    env = dict(os.environ, TINYATTN_KEEP_FREED_MEMORY="1" if keep else "0")
    out = subprocess.run([sys.executable, "-c", _STEP_FAULTS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


def test_a_training_step_reuses_freed_memory_instead_of_faulting_in_fresh_pages():
    kept, faults = _faults_per_step(keep=True)
    assert kept
    # ~12 MB of arrays per step: without the settings ~3,000 pages are faulted in per step
    assert faults < 100, f"{faults} page faults per LSTM step with freed memory kept"


def test_the_environment_switch_leaves_malloc_alone():
    kept, faults = _faults_per_step(keep=False)
    assert not kept
    kept_faults = _faults_per_step(keep=True)[1]
    # what the settings are for: glibc on its own hands this step fresh pages every time
    assert faults > 10 * max(kept_faults, 10), (faults, kept_faults)


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_release_hands_kept_memory_back():
    import numpy as np
    if not memory.is_keeping_freed_memory():
        pytest.skip("TINYATTN_KEEP_FREED_MEMORY=0 in this run")
    a = np.ones(20 * 2**20 // 8)        # 20 MiB, below the mmap threshold: it comes from the heap
    del a                               # ... and stays with the process
    before = _resident_bytes()
    assert memory.release()
    assert before - _resident_bytes() > 10 * 2**20


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read()
    except OSError:
        return ""


_HUGE = """
import numpy as np
import tinyattn as ta
from tinyattn import memory, nn
ta.manual_seed(0)
lstm = nn.LSTM(32, 128)
x = np.random.default_rng(0).standard_normal((50, 32, 32)).astype(np.float32)
for _ in range(3):
    lstm.zero_grad()
    out, _ = lstm(ta.tensor(x, requires_grad=True))
    out.mean().backward()
huge_kib = int(open("/proc/self/smaps_rollup").read().split("AnonHugePages:")[1].split()[0])
print(memory.is_using_huge_pages(), huge_kib)
"""


def _huge_pages(on):
    env = dict(os.environ, TINYATTN_HUGE_PAGES="1" if on else "0", TINYATTN_KEEP_FREED_MEMORY="1")
    out = subprocess.run([sys.executable, "-c", _HUGE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif("[madvise]" not in _thp_mode(), reason="transparent huge pages are not in madvise mode here")
def test_the_heap_gets_huge_pages_and_the_switch_turns_them_off():
    used, huge_kib = _huge_pages(on=True)
    assert used
    # an LSTM step's arrays (~12 MB) live in the marked heap: several 2 MiB pages back them
    assert huge_kib >= 4 * 1024, huge_kib
    used_off, huge_kib_off = _huge_pages(on=False)
    assert not used_off
    assert huge_kib_off < huge_kib, (huge_kib_off, huge_kib)
