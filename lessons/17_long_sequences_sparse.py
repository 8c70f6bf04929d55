"""Lesson 17 - long sequences: memory-efficient attention and sparse patterns.

What it teaches: plain attention builds the (T x T) matrix of scores. At T = 16,384 one head's
matrix in float32 is 1 GiB, and backpropagation keeps it (and the softmax of it) alive. Two ideas
make long sequences affordable:
  1. Don't store the matrix (memory-efficient / "flash" attention): walk over the keys a tile at a
     time with an online softmax, keep one number per query (the log-sum-exp), and in the backward
     pass rebuild each tile from q, k and that number. Same result; memory O(T) instead of O(T²).
     We write that online softmax out in NumPy, tile by tile, before using the library's kernel.
     The time is still O(T²): every pair is still compared.
  2. Don't compare every pair (sparse attention): let each query see a local window of keys, or a
     strided pattern (Sparse Transformer). The work drops to O(T·w) or O(T·√T), and stacking
     layers lets information still travel the whole sequence.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 002 Q4 (efficiency: sparse Transformers),
doc 004 §5.2 (challenge 1: long sequences cost too much compute and memory) and doc 003 §8.3
(the claim that the computation grows exponentially with length: measured, it is quadratic).
Criterion: the NumPy online softmax equals the library's memory-efficient attention (1e-12,
float64); memory-efficient attention at length 16,384 (1 head, d = 64, float32) runs forward +
backward with < 256 MiB extra peak memory and agrees with dense attention; the slopes of time and
memory against length on a log-log plot are printed (memory: dense ~2, memory-efficient ~1); dense
attention's operation count grows as T^2 (log-log slope 1.9-2.1), which an exponential does not fit.
"""
# %%
from _common import Lesson

import time
import tracemalloc

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import kernels, viz
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention

lesson = Lesson(17, "long sequences and sparse attention")
rng = lesson.rng
if lesson.backend == "cupy":
    # tracemalloc sees host memory only: on a GPU the memory criterion would measure nothing.
    print("This lesson measures peak memory with Python's tracemalloc, which sees CPU memory only; "
          "on the GPU backend its memory numbers would be meaningless. Run it without --backend cupy.")
    lesson.skip("memory measurements are CPU-only (tracemalloc); not run with --backend cupy")
d = 64
MiB = 2 ** 20

# %% [markdown]
# ## 1. What the dense matrix costs
# One head, float32 (4 bytes): the scores alone take 4·T² bytes, and autograd keeps both the
# scores and the softmax weights for the backward pass.

# %%
lesson.section("1. the size of the T x T matrix (one head, float32)")
for T in (1024, 4096, 16384, 65536):
    print(f"  T = {T:>6}: scores {4 * T * T / MiB:>9,.0f} MiB;  q, k, v together {3 * 4 * T * d / MiB:6.1f} MiB")


# %% [markdown]
# ## 2. The online softmax, written out
# How can softmax(q kᵀ/√d) v be computed without ever holding a whole row of scores? Walk the keys
# one tile at a time and keep three running quantities per query: the largest score seen so far
# m, the normaliser l = Σ exp(s_j - m) over the keys seen so far, and the unnormalised output
# acc = Σ exp(s_j - m) v_j. When a tile brings a larger maximum m', everything summed so far was
# measured against the old m: multiply l and acc by exp(m - m') (the correction) and carry on.
# After the last tile, output = acc / l, and m + log l is the log-sum-exp that the backward pass
# uses to rebuild any tile of probabilities. Below: 256 keys in 4 tiles of 64, in NumPy, with one
# key in tile 2 planted to score high for query 0, so that its running maximum jumps. (At tile 0
# the correction is exp(-inf) = 0: it multiplies sums that are still empty.)

# %%
lesson.section("2. the online softmax, written out (256 keys, tiles of 64, NumPy)")


def online_softmax_attention(q, k, v, tile=64, trace_query=0):
    """softmax(q kᵀ/√d) v over key tiles, never holding more than (Tq, tile) scores. Also returns
    the log-sum-exp per query and, for one query, (tile, tile max, m, correction, l) per tile."""
    m = np.full(len(q), -np.inf)                   # running maximum score, per query
    l = np.zeros(len(q))                           # running normaliser Σ exp(s - m)
    acc = np.zeros((len(q), v.shape[1]))           # running Σ exp(s - m) v
    trace = []
    for start in range(0, len(k), tile):
        s = q @ k[start:start + tile].T / np.sqrt(q.shape[1])     # (Tq, tile): this tile's scores only
        m_new = np.maximum(m, s.max(axis=1))
        correction = np.exp(m - m_new)             # rescale what was summed under the old maximum
        p = np.exp(s - m_new[:, None])
        l = l * correction + p.sum(axis=1)
        acc = acc * correction[:, None] + p @ v[start:start + tile]
        m = m_new
        trace.append({"tile": start // tile, "keys": f"{start}..{start + tile - 1}",
                      "tile_max": float(s[trace_query].max()), "running_max": float(m[trace_query]),
                      "correction": float(correction[trace_query]), "normaliser": float(l[trace_query])})
    return acc / l[:, None], m + np.log(l), trace


qo, ko, vo = (rng.normal(size=(n, d)) for n in (8, 256, 256))
ko[150] = 0.6 * qo[0]                               # a key in tile 2 that query 0 likes
ours, ours_lse, trace = online_softmax_attention(qo, ko, vo)
print(f"query 0, tile by tile:  {'tile':>4} {'keys':>9} {'tile max':>9} {'running m':>10} {'correction':>11} {'l':>9}")
for row in trace:
    print(f"                        {row['tile']:>4} {row['keys']:>9} {row['tile_max']:9.3f} {row['running_max']:10.3f} "
          f"{row['correction']:11.4f} {row['normaliser']:9.3f}")
jumps = [row["tile"] for row in trace[1:] if row["correction"] < 1]
print(f"the running maximum rose at tile(s) {jumps}: there l and acc were multiplied by the correction "
      f"(< 1); elsewhere the correction is exactly 1")
library_out = memory_efficient_attention(*(ta.tensor(a[None], dtype="float64") for a in (qo, ko, vo))).numpy()[0]
scores_full = qo @ ko.T / np.sqrt(d)               # the whole (8, 256) matrix, only to check
dense_lse = scores_full.max(1) + np.log(np.exp(scores_full - scores_full.max(1, keepdims=True)).sum(1))
online_error = float(np.abs(ours - library_out).max())
online_lse_error = float(np.abs(ours_lse - dense_lse).max())
print(f"our tiles vs the library's memory_efficient_attention: max difference {online_error:.1e}; "
      f"our log-sum-exp vs the full row's: {online_lse_error:.1e}")


# %% [markdown]
# ## 3. Dense attention, as every earlier lesson wrote it, and the streaming kernel
# dense:   softmax(q kᵀ / √d) v                      builds the (T, T) matrix
# memory-efficient: tinyattn.ops.memory_efficient_attention.memory_efficient_attention(q, k, v)
# (The library's scaled_dot_product_attention switches to the streaming kernel by itself for long
# sequences; here we call both paths explicitly to compare them.)
# First: they compute the same thing, outputs and gradients, in float64.

# %%
def dense_attention(q, k, v):
    return ta.softmax(q @ ta.swapaxes(k, -1, -2) * (1.0 / np.sqrt(q.shape[-1])), axis=-1) @ v


lesson.section("3. the two paths agree (T = 512, float64)")
print(f"kernel provider for CPU arrays: {kernels.current()} (compiled tiles; 'numpy' is the plain twin)")
q0, k0, v0 = (rng.normal(size=(1, 512, d)) for _ in range(3))
g0 = rng.normal(size=(1, 512, d))
results = []
for fn in (dense_attention, memory_efficient_attention):
    q, k, v = (ta.tensor(a, dtype="float64", requires_grad=True) for a in (q0, k0, v0))
    out = fn(q, k, v)
    (out * ta.tensor(g0, dtype="float64")).sum().backward()
    results.append([out.numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()])
agreement = max(float(np.abs(a - b).max()) for a, b in zip(*results))
print(f"max |dense - memory-efficient| over output and dq, dk, dv: {agreement:.1e}")


# %% [markdown]
# ## 4. Time and peak memory against length
# For each length: forward + backward of one head, timed, with Python's tracemalloc measuring the
# peak of memory allocated above what existed before (NumPy reports its arrays to tracemalloc; the
# kernel's own 64 x 64 tiles are a few KiB and not counted). Dense stops at 4,096: at 8,192 its
# matrices would need about 1 GiB.

# %%
def measure(fn, T, **options):
    q, k, v = (ta.tensor(rng.normal(size=(1, T, d)).astype(np.float32), requires_grad=True) for _ in range(3))
    g = ta.tensor(rng.normal(size=(1, T, d)).astype(np.float32))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    (fn(q, k, v, **options) * g).sum().backward()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return seconds, peak / MiB


lesson.section("4. forward + backward: time and extra peak memory, up to T = 16,384")
measure(memory_efficient_attention, 128)          # compile the kernels before timing anything
measure(memory_efficient_attention, 128, window=16)
window = 128
paths = {"dense": (dense_attention, {}, [512, 1024, 2048, 4096]),
         "memory-efficient": (memory_efficient_attention, {}, [1024, 2048, 4096, 16384]),
         f"local window ±{window}": (memory_efficient_attention, {"window": window}, [1024, 2048, 4096, 16384])}
timings = {}
for name, (fn, options, lengths) in paths.items():
    timings[name] = {"T": lengths, "seconds": [], "MiB": []}
    for T in lengths:
        seconds, peak = measure(fn, T, **options)
        timings[name]["seconds"].append(seconds)
        timings[name]["MiB"].append(peak)
        print(f"  {name:<22} T = {T:>6}: {seconds:8.3f} s   extra peak memory {peak:8.1f} MiB")

slopes = {}
for name, t in timings.items():
    logT = np.log(t["T"])
    slopes[name] = {"time": float(np.polyfit(logT, np.log(t["seconds"]), 1)[0]),
                    "memory": float(np.polyfit(logT, np.log(t["MiB"]), 1)[0])}
print("\nlog-log slopes (cost ∝ T^slope):")
for name, s in slopes.items():
    print(f"  {name:<22} time {s['time']:.2f}   memory {s['memory']:.2f}")
ideal = {"dense": (2, 2), "memory-efficient": (2, 1), f"local window ±{window}": (1, 1)}   # (time, memory)
print(f"Expected: dense memory 2 (the matrix); memory-efficient memory 1 but time still ~2 (every pair "
      f"is compared); local window time ~1 (each query sees 2·{window} + 1 keys).")
below = [n for n in slopes if slopes[n]["time"] < ideal[n][0]]
print(f"Measured time slopes below the ideal: {', '.join(below) or 'none'}"
      + ("; small lengths carry fixed overheads that flatten the start of a curve." if below else "."))
long_seconds = timings["memory-efficient"]["seconds"][-1]
long_peak = timings["memory-efficient"]["MiB"][-1]
dense_would_need = 2 * 4 * 16384 ** 2 / MiB
print(f"\nT = 16,384: memory-efficient forward + backward {long_seconds:.1f} s, extra peak {long_peak:.1f} MiB; "
      f"dense would hold scores + weights = {dense_would_need:,.0f} MiB before its backward even starts.")

# %% [markdown]
# ## 5. Sparse patterns
# Causal attention allows the lower triangle: T(T+1)/2 pairs. Two sparse patterns from the Sparse
# Transformer (Child et al., 2019), both causal:
#   local window: j in [i - w, i]                       -> about T·w pairs
#   strided:      j in [i - s + 1, i]  or  (i - j) % s == 0   -> about T·(s + T/s) pairs, T·2√T for s = √T
# One layer of either misses most pairs. But attention layers stack: what position j knows can
# reach position i through an intermediate position. Reachability after two layers is the boolean
# product of the pattern with itself - and for the strided pattern it is the whole triangle.

# %%
lesson.section("5. sparse patterns: local window and strided (T = 64)")
T_small, w_local, stride = 64, 8, 8
i, j = np.arange(T_small)[:, None], np.arange(T_small)[None, :]
patterns = {"dense causal": j <= i,
            f"local window (w = {w_local})": (j <= i) & (i - j <= w_local),
            f"strided (s = {stride})": (j <= i) & ((i - j < stride) | ((i - j) % stride == 0))}
reach = {}
for name, mask in patterns.items():
    two_layers = (mask.astype(int) @ mask.astype(int)) > 0
    reach[name] = {"pairs": int(mask.sum()), "fraction": float(mask.sum() / patterns["dense causal"].sum()),
                   "two_layer_coverage": float(two_layers[patterns["dense causal"]].mean())}
    print(f"  {name:<22} pairs {mask.sum():>5} ({reach[name]['fraction']:.0%} of causal); after 2 layers "
          f"reaches {reach[name]['two_layer_coverage']:.0%} of the causal pairs")

# The strided pattern as an attention mask: the library's sdpa takes it as a boolean mask
# (True = may attend); masked-out keys get exactly zero weight.
qs, ks, vs = (ta.tensor(rng.normal(size=(1, T_small, 16)), dtype="float64") for _ in range(3))
strided_mask = patterns[f"strided (s = {stride})"]
_, w_strided = A.scaled_dot_product_attention(qs, ks, vs, attn_mask=strided_mask, return_weights=True)
strided_zero = bool((w_strided.numpy()[0][~strided_mask] == 0).all())
print(f"sdpa with the strided mask: weights outside the pattern all exactly 0: {strided_zero}; rows sum to 1: "
      f"{np.allclose(w_strided.numpy().sum(-1), 1)}")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
for ax, (name, mask) in zip(axes, patterns.items()):
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.3, interpolation="nearest")
    ax.set(title=f"{name}\n{reach[name]['pairs']} pairs, 2 layers reach {reach[name]['two_layer_coverage']:.0%}",
           xlabel="key position j", ylabel="query position i")
fig.suptitle(f"which keys each query may attend to (T = {T_small}; blue = allowed)")
fig.tight_layout()
lesson.savefig(fig, "sparse_patterns")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
viz.plot_curves({f"{n} (slope {slopes[n]['time']:.2f})": (t["T"], t["seconds"]) for n, t in timings.items()},
                ax=axes[0], xlabel="sequence length T", ylabel="seconds, forward + backward",
                title="time vs length (log-log)", styles={f"{n} (slope {slopes[n]['time']:.2f})": "o-" for n in timings})
viz.plot_curves({f"{n} (slope {slopes[n]['memory']:.2f})": (t["T"], t["MiB"]) for n, t in timings.items()},
                ax=axes[1], xlabel="sequence length T", ylabel="extra peak memory (MiB)",
                title="memory vs length (log-log)", styles={f"{n} (slope {slopes[n]['memory']:.2f})": "s--" if "window" in n else "o-" for n in timings})
axes[1].text(1100, 1.0, "(the windowed kernel keeps the same O(T) arrays: its line lies on top)", fontsize=7)
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
axes[1].axhline(256, color="gray", ls="--", lw=1)
axes[1].text(600, 290, "256 MiB budget", color="gray", fontsize=8)
lesson.savefig(fig, "cost_vs_length")

# %% [markdown]
# ## 6. Quadratic, not exponential
# doc 003 §8.3 names as the first challenge that attention's computation "grows exponentially"
# (呈指数级增长) on long sequences. The two laws are easy to tell apart with equal steps of length:
# if cost ∝ T^b, adding 256 positions multiplies the cost by ((T + 256)/T)^b, a factor that falls
# towards 1 as T grows; if cost ∝ e^(βT), every added 256 positions multiplies it by the same e^(256β).
# We count the floating-point operations of dense attention's forward pass from the shapes of its
# steps (q kᵀ: 2·T·T·d; scaling, max-subtraction, exp, sum and division of the T x T scores: 5·T²;
# weights @ v: 2·T·T·d), time it at T = 256, 512, ..., 2048 (forward only, best of 5, float32),
# fit both laws to each on those lengths, and let each fit predict T = 4096, which we then measure.

# %%
lesson.section("6. doc 003 §8.3: does attention's cost grow exponentially with length?")
step_lengths = list(range(256, 2049, 256))
check_length = 4096


def dense_forward_flops(T, d):
    return 2 * T * T * d + 5 * T * T + 2 * T * T * d


def dense_forward_seconds(T, repeats=5):
    q, k, v = (ta.tensor(rng.normal(size=(1, T, d)).astype(np.float32)) for _ in range(3))
    best = np.inf
    with ta.no_grad():
        dense_attention(q, k, v)                       # warm-up (allocations, a first kernel call)
        for _ in range(repeats):
            start = time.perf_counter()
            dense_attention(q, k, v)
            best = min(best, time.perf_counter() - start)
    return best


growth = {"FLOPs": [float(dense_forward_flops(T, d)) for T in step_lengths + [check_length]],
          "seconds": [dense_forward_seconds(T) for T in step_lengths + [check_length]]}
fits = {}
for name, values in growth.items():
    y, measured_check = np.log(values[:-1]), values[-1]
    b, log_c = np.polyfit(np.log(step_lengths), y, 1)             # log cost = log c + b log T
    beta, log_c_exp = np.polyfit(step_lengths, y, 1)              # log cost = log c + β T
    power_rms = float(np.sqrt(np.mean((log_c + b * np.log(step_lengths) - y) ** 2)))
    exp_rms = float(np.sqrt(np.mean((log_c_exp + beta * np.array(step_lengths) - y) ** 2)))
    ratios = [values[i + 1] / values[i] for i in range(len(step_lengths) - 1)]
    fits[name] = {"power_slope": float(b), "power_log_rms": power_rms, "exp_per_256": float(np.exp(256 * beta)),
                  "exp_log_rms": exp_rms, "step_ratios": ratios, "measured_4096": float(measured_check),
                  "power_predicts_4096": float(np.exp(log_c + b * np.log(check_length))),
                  "exp_predicts_4096": float(np.exp(log_c_exp + beta * check_length))}
    f = fits[name]
    print(f"  {name}: ratio per +256 positions " + " ".join(f"{r:.2f}" for r in ratios))
    print(f"  {'':<{len(name)}}  power law T^{f['power_slope']:.2f}: log-error {f['power_log_rms']:.3f};  "
          f"exponential (x{f['exp_per_256']:.2f} per 256): log-error {f['exp_log_rms']:.3f}")
    print(f"  {'':<{len(name)}}  at T = {check_length}: measured {f['measured_4096']:.4g}, power law predicts "
          f"{f['power_predicts_4096']:.4g}, exponential predicts {f['exp_predicts_4096']:.4g}")
flop_fit, time_fit = fits["FLOPs"], fits["seconds"]
exp_overshoot = flop_fit["exp_predicts_4096"] / flop_fit["measured_4096"]
print("\n  the document (doc 003 §8.3): the computation grows exponentially with sequence length")
print(f"  computed: the operation count grows as T^{flop_fit['power_slope']:.2f} (the power law's log-error is "
      f"{flop_fit['power_log_rms']:.1e}: the count is (4d + 5)·T², a pure T²; the exponential's is "
      f"{flop_fit['exp_log_rms']:.3f}); "
      f"its ratio per +256 positions falls from {flop_fit['step_ratios'][0]:.2f} to {flop_fit['step_ratios'][-1]:.2f} "
      f"instead of staying constant, and the exponential fitted up to {step_lengths[-1]} overestimates T = "
      f"{check_length} by {exp_overshoot:.0f}x.")
time_better = "power law" if time_fit["power_log_rms"] < time_fit["exp_log_rms"] else "exponential"
print(f"  measured time (this machine, this run): T^{time_fit['power_slope']:.2f}; inside the fitted range the "
      f"{time_better} has the smaller log-error ({time_fit['power_log_rms']:.3f} power, {time_fit['exp_log_rms']:.3f} "
      f"exponential; timings on a shared machine are noisy){', and' if time_better == 'power law' else ', but'} "
      f"at T = {check_length} the exponential predicts "
      f"{time_fit['exp_predicts_4096'] / time_fit['measured_4096']:.0f}x the measured time and the power law "
      f"{time_fit['power_predicts_4096'] / time_fit['measured_4096']:.2f}x.")
print("  Attention's cost is quadratic: "
"every query meets every key, T² pairs. That is expensive (sections 4 and 5 are about "
      "avoiding it), but polynomial.")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
lengths_all = np.array(step_lengths + [check_length])
for ax, (name, values) in zip(axes, growth.items()):
    f = fits[name]
    ax.plot(lengths_all, values, "ko", label="measured" if name == "seconds" else "counted")
    grid = np.linspace(step_lengths[0], check_length, 100)
    b_, c_ = np.polyfit(np.log(step_lengths), np.log(values[:-1]), 1)
    be_, ce_ = np.polyfit(step_lengths, np.log(values[:-1]), 1)
    ax.plot(grid, np.exp(c_ + b_ * np.log(grid)), "-", label=f"power law T^{f['power_slope']:.2f}")
    ax.plot(grid, np.exp(ce_ + be_ * grid), "--", label=f"exponential (x{f['exp_per_256']:.2f} per 256)")
    ax.axvline(step_lengths[-1], color="gray", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set(xlabel="sequence length T", ylabel=name + " (log scale)",
           title=f"dense attention forward, {name}:\nboth laws fitted up to T = {step_lengths[-1]}, then extrapolated")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
lesson.savefig(fig, "quadratic_not_exponential")

# %%
lesson.section("criterion")
lesson.record(online_softmax_error=online_error, online_lse_error=online_lse_error, online_trace=trace,
              agreement=agreement, timings=timings, slopes=slopes, reach=reach, strided_mask_exact_zero=strided_zero,
              long_T=16384, long_seconds=long_seconds, long_peak_MiB=long_peak, kernel=kernels.current(),
              growth_lengths=step_lengths + [check_length], growth=growth, growth_fits=fits)
lesson.check("T = 16,384 forward + backward under 256 MiB extra peak memory", long_peak < 256,
             f"{long_peak:.1f} MiB in {long_seconds:.1f} s (dense would need {dense_would_need:,.0f} MiB)")
lesson.check("the written-out online softmax equals the library's kernel", online_error <= 1e-12,
             f"max difference {online_error:.1e} (float64, 4 tiles)")
lesson.check("memory-efficient equals dense attention", agreement <= 1e-10, f"max difference {agreement:.1e} (float64)")
# Memory slopes are deterministic; time slopes depend on the machine and its load, so they are
# printed, never asserted.
lesson.check("memory slopes: dense ~2 (> 1.6), memory-efficient ~1 (< 1.3); time slopes printed",
             slopes["dense"]["memory"] > 1.6 and slopes["memory-efficient"]["memory"] < 1.3,
             ", ".join(f"{n}: memory {s['memory']:.2f}, time {s['time']:.2f}" for n, s in slopes.items()))
lesson.check("doc 003 §8.3's 'exponential' growth: the counted operations grow as a power ~2 (1.9-2.1), "
             "which fits where an exponential does not",
             1.9 <= flop_fit["power_slope"] <= 2.1 and flop_fit["power_log_rms"] < 0.01 < flop_fit["exp_log_rms"],
             f"slope {flop_fit['power_slope']:.2f}; log-error power {flop_fit['power_log_rms']:.1e}, "
             f"exponential {flop_fit['exp_log_rms']:.3f}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/long_sequences_sparse.py`.
# 1. Stack causal local-window layers with w = 8 at T = 64. After how many layers has position 63
#    received information from position 0? (Layer L's output depends on the product of L weight
#    matrices; count the layers until its entry [63, 0] is non-zero.)
# 2. Double the length: dense attention from 512 to 1024, memory-efficient from 2048 to 4096.
#    By what factor does each one's extra peak memory grow?
# 3. The strided pattern with s = √T = 32 at T = 1024: how many weights are non-zero, and what share
#    of the causal triangle is that? Derive the count row by row before you run it.
