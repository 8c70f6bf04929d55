"""Lesson 16 - making it fast: what a compiled kernel fuses, and what that buys.

What it teaches: tinyattn computes everything with NumPy, and NumPy is fast on big arrays but pays
twice on small, many-step work: (1) Python runs once per operation, so a loop of tiny operations
(an LSTM stepping through time) is dominated by interpreter overhead, and (2) every NumPy
expression walks the whole array and writes a new temporary, so softmax(x) = exp(x - max) / sum
reads and writes memory four or five times. A kernel compiled with Numba fixes both: the loop runs
in machine code, and one pass over each row does all the arithmetic while the row sits in cache
("fusion"), with no temporaries. tinyattn keeps every such kernel beside its plain NumPy twin
(the reference math in each op's file, e.g. tinyattn/ops/softmax.py, and tinyattn/kernels/numba/softmax.py) and one switch picks which runs:

    with tinyattn.kernels.using("numpy"):  ...     # the plain twins
    with tinyattn.kernels.using("numba"):  ...     # the compiled kernels (the default)

We time the same computations both ways, check they give the same numbers, and measure peak memory.
Every conclusion the lesson prints is computed from the run's own measurements; a first run also
compiles the kernels (up to a minute), which the timings exclude and the lesson says.
(`python -m tinyattn.bench` runs the full benchmark, PyTorch CPU included.)

Criterion: every kernel agrees with its plain path in float32, the precision it is timed in
(relative difference <= 1e-4, float32 rounding; tests/test_kernels.py checks the float64 twins to
1e-12), and the measured speed-ups are printed. Timings depend on the machine and its load: they
are printed, never asserted.
"""
# %%
from _common import Lesson

import time
import tracemalloc

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import kernels, memory
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention

try:                                   # what Numba compiled in this process (a first run compiles)
    from tinyattn.kernels.numba.compile_notice import compiled as compile_records
except ImportError:                    # no Numba: the lesson's kernels.using("numba") reports it
    compile_records = None

lesson = Lesson(16, "making it fast")
rng = lesson.rng
if lesson.backend == "cupy":
    # The switch compares CPU providers (Numba vs plain NumPy); GPU arrays always take the CuPy
    # path, so on --backend cupy there would be nothing to compare (lesson 18 compares CPU and GPU).
    print("This lesson compares the two CPU providers of every kernel (Numba and plain NumPy); CuPy arrays "
          "always take the GPU path, so there is nothing to compare with --backend cupy. See lesson 18.")
    lesson.skip("compares CPU kernels (Numba vs NumPy); not run with --backend cupy")
MiB = 2 ** 20
# A process that trains wants freed memory kept for the next step's arrays (and a huge-page heap):
# an LSTM step then faults in 0 fresh pages instead of ~3,200, about a quarter of its time (13.8 ->
# 10.1 ms in README.md's measurements). The library never does this on import; we ask for it here.
print(f"memory.tune(): {memory.tune()}")


def best_time(fn, repeats=5):
    """The fastest of a few runs: other programs on the machine can only make a run slower, so the
    minimum is the most repeatable estimate of what the code itself costs."""
    fn()                                                  # warm-up (and compile, the first time)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory(fn):
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak / MiB


def max_difference(a, b):
    """The largest difference between two lists of arrays, relative to the size of the reference
    (b): float32 rounds at ~6e-8 of a number's size, so this is the scale on which to compare."""
    return max(float(np.abs(x.astype(np.float64) - y).max() / max(np.abs(y).max(), 1e-30)) for x, y in zip(a, b))


rows = []            # (name, path, seconds, MiB) for the table and the figure
agreement = {}

# %% [markdown]
# ## 1. The LSTM, three ways
#   a. one LSTMCell per time step: 17 graph operations per step (matmuls, σ, tanh, products,
#      slices), each a Python call that builds a graph node, and as many again in backward;
#   b. nn.LSTM with the plain twin: the whole layer is ONE graph operation (lstm_layer): the input
#      projection for all steps in one matrix product, then the time loop - still a Python loop;
#   c. nn.LSTM with the Numba kernel: the same loop compiled, the gate arithmetic fused into one
#      pass per row with no (B, 4H) temporaries, and the batch split into blocks of sequences,
#      one per thread, each running the whole time loop on its own. The per-step product h @ W_hh
#      runs on weights packed once per call (kernels/lowlevel/packed_matmul.py), not through BLAS, which
#      would repack the whole weight matrix at every step.
# Same weights in all three (the cell's parameters are loaded into the LSTM).

# %%
lesson.section("1. LSTM forward + backward: batch 32, 50 steps, input 32, hidden 128")
T, B, D_IN, H = 50, 32, 32, 128


def lstm_paths(dtype):
    ta.manual_seed(lesson.seed)
    cell = nn.LSTMCell(D_IN, H, dtype=dtype)
    lstm = nn.LSTM(D_IN, H, dtype=dtype)
    lstm.load_state_dict({"weight_ih_l0": cell.weight_ih, "weight_hh_l0": cell.weight_hh,
                          "bias_ih_l0": cell.bias_ih, "bias_hh_l0": cell.bias_hh})
    x_np = rng.normal(size=(T, B, D_IN)).astype(dtype)
    g_np = rng.normal(size=(T, B, H)).astype(dtype)

    def run_cell():
        x = ta.tensor(x_np, requires_grad=True)
        state, outs = None, []
        for t in range(T):                           # the time loop, in Python, op by op
            state = cell(x[t], state)
            outs.append(state[0])
        (ta.stack(outs) * ta.tensor(g_np)).sum().backward()
        return x.grad.numpy(), cell.weight_hh.grad.numpy()

    def run_lstm():
        x = ta.tensor(x_np, requires_grad=True)
        out, _ = lstm(x)
        (out * ta.tensor(g_np)).sum().backward()
        return x.grad.numpy(), lstm.weight_hh_l0.grad.numpy()

    return cell, lstm, run_cell, run_lstm


# Agreement and timings in float32 only: each dtype is one more compiled specialisation of every
# kernel, and a first run compiles them all (the float64 twins are checked in tests/test_kernels.py).
cell, lstm, run_cell, run_lstm = lstm_paths("float32")
reference = [a.astype(np.float64) for a in run_cell()]
for provider in ("numpy", "numba"):
    lstm.zero_grad()
    with kernels.using(provider):
        agreement[f"LSTM ({provider}) vs LSTMCell loop"] = max_difference(run_lstm(), reference)
for name, diff in agreement.items():
    print(f"  float32 gradients (dx, dW_hh), {name}: max relative difference {diff:.1e}")

paths = {"LSTMCell loop (graph)": (run_cell, "numba"), "nn.LSTM, plain twin": (run_lstm, "numpy"),
         "nn.LSTM, Numba kernel": (run_lstm, "numba")}
for name, (fn, provider) in paths.items():
    with kernels.using(provider):
        seconds, mib = best_time(fn), peak_memory(fn)
    rows.append(("LSTM", name, seconds, mib))
    print(f"  {name:<24} {1e3 * seconds:8.1f} ms   extra peak memory {mib:6.1f} MiB")
lstm_times = {name: s for task, name, s, _ in rows if task == "LSTM"}
print(f"speed-ups: fused op vs cell loop {lstm_times['LSTMCell loop (graph)'] / lstm_times['nn.LSTM, plain twin']:.1f}x; "
      f"compiled vs plain twin {lstm_times['nn.LSTM, plain twin'] / lstm_times['nn.LSTM, Numba kernel']:.1f}x; "
      f"overall {lstm_times['LSTMCell loop (graph)'] / lstm_times['nn.LSTM, Numba kernel']:.1f}x")

# %% [markdown]
# ## 2. Row kernels: softmax, LayerNorm, cross-entropy
# Plain softmax: m = max(x); e = exp(x - m); s = sum(e); y = e / s - four passes over the array and
# three temporaries as large as x. The kernel takes one row at a time: max, then exp and sum
# together, then divide, with the row in cache and nothing allocated but the output. LayerNorm and
# cross-entropy (log-softmax + pick the target) are fused the same way, and so are their backwards.

# %%
lesson.section("2. row kernels, forward + backward on (4096, 512)")
x_np = rng.normal(size=(4096, 512))
targets = rng.integers(0, 512, 4096)
weight_np, bias_np = rng.normal(size=512), rng.normal(size=512)
g_np = rng.normal(size=(4096, 512))
row_tasks = {
    "softmax": lambda x: ta.softmax(x, axis=-1),
    "LayerNorm": lambda x: F.layer_norm(x, (512,), ta.tensor(weight_np.astype(x.dtype)), ta.tensor(bias_np.astype(x.dtype))),
    "cross-entropy": lambda x: F.cross_entropy(x, ta.tensor(targets)),
}


def run_row_task(op, dtype):
    def run():
        x = ta.tensor(x_np.astype(dtype), requires_grad=True)
        y = op(x)
        (y * ta.tensor(g_np.astype(dtype)) if y.ndim else y).sum().backward()
        return y.numpy(), x.grad.numpy()
    return run


for task, op in row_tasks.items():
    with kernels.using("numpy"):
        plain = run_row_task(op, "float32")()
    with kernels.using("numba"):
        fast = run_row_task(op, "float32")()
    agreement[f"{task} (numba vs numpy)"] = max_difference(fast, plain)
    timed = {}
    for provider in ("numpy", "numba"):
        with kernels.using(provider):
            fn = run_row_task(op, "float32")
            timed[provider] = (best_time(fn), peak_memory(fn))
        rows.append((task, "plain twin" if provider == "numpy" else "Numba kernel", *timed[provider]))
    print(f"  {task:<14} plain {1e3 * timed['numpy'][0]:7.1f} ms ({timed['numpy'][1]:5.1f} MiB)   "
          f"Numba {1e3 * timed['numba'][0]:7.1f} ms ({timed['numba'][1]:5.1f} MiB)   "
          f"speed-up {timed['numpy'][0] / timed['numba'][0]:4.1f}x   agreement (float32, relative) "
          f"{agreement[f'{task} (numba vs numpy)']:.1e}")

# %% [markdown]
# ## 3. Attention: the tiled streaming kernel, plain and compiled
# memory_efficient_attention (lesson 17) walks key tiles with an online softmax. The plain twin
# does it a block of queries at a time with NumPy; the compiled one works on 64 x 64 tiles that
# stay in cache and fuses scale, mask, exp and the running sums into one pass per tile.

# %%
lesson.section("3. memory-efficient attention forward + backward: 1 head, length 2048, d 64")
Ta, Da = 2048, 64
qkv_np = [rng.normal(size=(1, Ta, Da)) for _ in range(3)]
ga_np = rng.normal(size=(1, Ta, Da))


def run_attention(dtype, causal=False):
    def run():
        q, k, v = (ta.tensor(a.astype(dtype), requires_grad=True) for a in qkv_np)
        (memory_efficient_attention(q, k, v, causal=causal) * ta.tensor(ga_np.astype(dtype))).sum().backward()
        return q.grad.numpy(), k.grad.numpy(), v.grad.numpy()
    return run


with kernels.using("numpy"):
    plain = run_attention("float32", causal=True)()
with kernels.using("numba"):
    fast = run_attention("float32", causal=True)()
agreement["attention, causal (numba vs numpy)"] = max_difference(fast, plain)
timed = {}
for provider in ("numpy", "numba"):
    with kernels.using(provider):
        fn = run_attention("float32")
        timed[provider] = (best_time(fn, repeats=3), peak_memory(fn))
    rows.append(("attention", "plain twin" if provider == "numpy" else "Numba kernel", *timed[provider]))
print(f"  plain twin {1e3 * timed['numpy'][0]:7.1f} ms ({timed['numpy'][1]:5.1f} MiB)   Numba "
      f"{1e3 * timed['numba'][0]:7.1f} ms ({timed['numba'][1]:5.1f} MiB)   speed-up "
      f"{timed['numpy'][0] / timed['numba'][0]:4.1f}x   agreement (float32, causal, relative) "
      f"{agreement['attention, causal (numba vs numpy)']:.1e}")

# %% [markdown]
# ## 4. Inside one kernel: where the time goes
# Time the softmax and LayerNorm forward kernels alone, on raw float32 arrays (no autograd), and
# exp alone. If the compiled softmax loses, this is why: NumPy's exp is SIMD-vectorised (several
# numbers per instruction), while the compiled loop calls a scalar exp per element (fastmath is
# off so that it agrees with the twin to ~1e-15). Fusion saves memory traffic, but when the
# arithmetic (exp) costs more than the memory traffic, the vectorised unfused version can win.
# LayerNorm has no exp, so there fusion should win. Measure, don't assume: section 5 reads this
# run's numbers.

# %%
lesson.section("4. single kernels on raw arrays, float32 (4096, 512), forward only")
x32 = x_np.astype(np.float32)
w32, b32 = weight_np.astype(np.float32), bias_np.astype(np.float32)
kernel_times = {}
for provider in ("numpy", "numba"):
    with kernels.using(provider):
        softmax_kernel, layer_norm_kernel = kernels.get("softmax_forward"), kernels.get("layer_norm_forward")
        kernel_times[provider] = {"softmax": best_time(lambda: softmax_kernel(x32, -1), repeats=9),
                                  "LayerNorm": best_time(lambda: layer_norm_kernel(x32, w32, b32, 1e-5), repeats=9)}
exp_time = best_time(lambda: np.exp(x32), repeats=9)
for name in ("softmax", "LayerNorm"):
    plain, fast = kernel_times["numpy"][name], kernel_times["numba"][name]
    print(f"  {name:<10} plain {1e3 * plain:6.2f} ms   Numba {1e3 * fast:6.2f} ms   -> the compiled kernel is "
          f"{'faster' if fast < plain else 'slower'} ({plain / fast:.2f}x)")
print(f"  np.exp alone on the same array: {1e3 * exp_time:.2f} ms (vectorised)")

# %% [markdown]
# ## 5. Reading the numbers
# The conclusions below are computed from this run's measurements, so they can change from run to
# run and machine to machine - which is the point: a shared or busy machine, or a first run that
# compiles, moves the numbers. Three questions: (a) did the LSTM gain more from fusing the layer
# into one op, or from compiling the loop? (b) which row kernels did fusion make faster, and which
# use less memory? (c) did this run compile kernels (a first run), and does that touch the timings?


# %%
def ratio(task, slow, fast):
    times = {r[1]: r[2] for r in rows if r[0] == task}
    return times[slow] / times[fast]


lesson.section("5. reading the numbers")
fused_gain = ratio("LSTM", "LSTMCell loop (graph)", "nn.LSTM, plain twin")
compiled_gain = ratio("LSTM", "nn.LSTM, plain twin", "nn.LSTM, Numba kernel")
print(f"(a) LSTM: one op for the layer instead of 17 per step gave {fused_gain:.2f}x; compiling that op's loop "
      f"gave {compiled_gain:.2f}x more. "
      + ("In this run the bigger gain came from fewer, bigger operations - before any compiler is involved."
         if fused_gain > compiled_gain else
         "In this run the compiled loop gained more than the fusion into one op; both remove Python and "
         "NumPy calls per step, and which matters more depends on the machine and its load."))
row_speedups = {t: ratio(t, "plain twin", "Numba kernel") for t in ("softmax", "LayerNorm", "cross-entropy")}
row_memory = {t: {r[1]: r[3] for r in rows if r[0] == t} for t in row_speedups}
faster = [t for t, x in row_speedups.items() if x > 1.1]
even = [t for t, x in row_speedups.items() if 0.9 <= x <= 1.1]
slower = [t for t, x in row_speedups.items() if x < 0.9]
less_memory = [t for t, m in row_memory.items() if m["Numba kernel"] < 0.9 * m["plain twin"]]
print(f"(b) row kernels, forward + backward: faster compiled (> 1.1x): {', '.join(faster) or 'none'}; "
      f"within 10%: {', '.join(even) or 'none'}; slower: {', '.join(slower) or 'none'}. "
      f"Less peak memory compiled (by > 10%): {', '.join(less_memory) or 'none'} - fusion keeps fewer temporaries.")
softmax_alone = kernel_times["numpy"]["softmax"] / kernel_times["numba"]["softmax"]
layer_norm_alone = kernel_times["numpy"]["LayerNorm"] / kernel_times["numba"]["LayerNorm"]
print("    the softmax forward kernel alone (section 4) is "
      + (f"{1 / softmax_alone:.2f}x slower compiled: the scalar exp in the loop costs more than the memory "
         f"traffic fusion saves (np.exp alone took {1e3 * exp_time:.2f} ms of the plain twin's "
         f"{1e3 * kernel_times['numpy']['softmax']:.2f} ms)"
         if softmax_alone < 1 else f"{softmax_alone:.2f}x faster compiled: fusion outweighed the scalar exp here")
      + "; LayerNorm's, with no exp, is "
      + (f"{layer_norm_alone:.2f}x faster compiled." if layer_norm_alone >= 1.05 else
         f"about as fast compiled ({layer_norm_alone:.2f}x: within 5%)." if layer_norm_alone > 0.95 else
         f"{1 / layer_norm_alone:.2f}x slower compiled in this run, despite having no exp."))
if compile_records is None:
    print("(c) the compile log is not available (Numba kernels not loaded).")
else:
    compiled_now = compile_records()
    if compiled_now:
        print(f"(c) this run compiled {len(compiled_now)} kernel specialisations (a first run: Numba's cache was cold). "
              "Each path's first call - best_time's warm-up, never timed - paid for its compile, so the timings "
              "above exclude it; the lesson's wall time does not. The next run loads them from the disk cache.")
    else:
        print("(c) this run compiled nothing: every kernel came from Numba's disk cache.")
print("None of the fast paths changes the arithmetic: the agreement numbers are what let us trust them.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

speedups = {}
for task in ("LSTM", "softmax", "LayerNorm", "cross-entropy", "attention"):
    task_rows = [r for r in rows if r[0] == task]
    slowest = max(r[2] for r in task_rows)
    speedups[task] = {r[1]: slowest / r[2] for r in task_rows}
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
labels = [f"{r[0]}\n{r[1]}" for r in rows]
colours = ["tab:gray" if ("plain" in r[1] or "Cell" in r[1]) else "tab:blue" for r in rows]
axes[0].barh(labels, [1e3 * r[2] for r in rows], color=colours)
axes[0].set(xlabel="milliseconds, forward + backward (best of 5)",
            title="time: plain NumPy (grey) vs fused/compiled (blue)")
axes[0].invert_yaxis()
axes[1].barh(labels, [r[3] for r in rows], color=colours)
axes[1].set(xlabel="extra peak memory (MiB)", title="peak memory (tracemalloc)")
axes[1].invert_yaxis()
for ax in axes:
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
fig.tight_layout()
lesson.savefig(fig, "kernels_time_and_memory")

# %%
lesson.section("criterion")
lesson.record(agreement=agreement, timings=[{"task": r[0], "path": r[1], "seconds": r[2], "MiB": r[3]} for r in rows],
              speedups=speedups, kernel_only_seconds=kernel_times, exp_seconds=exp_time,
              fused_gain=fused_gain, compiled_gain=compiled_gain, row_speedups=row_speedups,
              compiled_in_this_run=None if compile_records is None else len(compile_records()))
worst = max(agreement.values())
lesson.check("every kernel agrees with its plain path (float32, relative <= 1e-4)", worst <= 1e-4,
             f"worst relative difference {worst:.1e} over {len(agreement)} comparisons")
fast_over_plain = {t: lstm_times["nn.LSTM, plain twin"] / lstm_times["nn.LSTM, Numba kernel"] if t == "LSTM"
                   else dict((r[1], r[2]) for r in rows if r[0] == t)["plain twin"] / dict((r[1], r[2]) for r in rows if r[0] == t)["Numba kernel"]
                   for t in speedups}
lesson.record(numba_speedup_over_plain=fast_over_plain)
lesson.check("measured speed-ups printed (Numba kernel over plain twin; < 1 means slower)", len(fast_over_plain) == 5,
             ", ".join(f"{t} {v:.2f}x" for t, v in fast_over_plain.items())
             + f"; LSTM cell loop -> Numba LSTM {lstm_times['LSTMCell loop (graph)'] / lstm_times['nn.LSTM, Numba kernel']:.1f}x")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/making_it_fast.py`
# (memory and graph sizes only: timings depend on the machine and are never the answer).
# 1. The input to section 4's softmax is a (4096, 512) float32 array of 8 MiB. Predict the extra
#    peak memory of the plain twin and of the compiled kernel, in units of that array. Which
#    temporaries does the plain twin keep alive at once?
# 2. Count the graph operations behind the last hidden state of an LSTMCell loop for T = 1, 2 and
#    50 steps, and behind nn.LSTM's output for the same T (walk `t._ctx` and its `inputs`, as
#    `backward` does). How does each count grow with T, and what does that mean for Python overhead?
