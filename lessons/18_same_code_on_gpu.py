"""Lesson 18 - the same code on a GPU.

What it teaches: nothing in a tinyattn model says "CPU". Every op asks its input arrays which
library owns them (tinyattn.get_array_module: NumPy or CuPy) and calls that library; CuPy copies
NumPy's interface, so the same line `xp.exp(x)` runs on the CPU or on an NVIDIA GPU. Choosing the
GPU is one switch, made before the model is built:

    tinyattn.set_backend("cupy")        # new tensors live on the GPU
    python lessons/13_encoder_decoder.py --backend cupy     # a lesson, unchanged

Here we (1) time dense attention forward + backward on the CPU and on the GPU for growing lengths,
checking both give the same numbers, and (2) run lesson 13 - the encoder-decoder Transformer,
trained and decoded - unchanged on each backend and compare time and accuracy. Expect the GPU to
win on big arrays and to gain little (or lose) on lesson 13's tiny model, where each operation is
so small that launching it costs more than computing it.

Criterion: where CuPy and a GPU are present, the GPU results agree with the CPU's (attention to
1e-3 relative in float32) and lesson 13 passes its own criterion on the GPU; CPU vs GPU times are
printed. Where they are not, the lesson says so, records the criterion as SKIPPED and exits 0.
"""
# %%
from _common import LESSONS_DIR, Lesson

import json
import os
import subprocess
import sys
import time

import numpy as np

import tinyattn as ta
from tinyattn import backend

lesson = Lesson(18, "the same code on a GPU")
rng = lesson.rng

# %% [markdown]
# ## 1. How one code base runs on two devices
# A tensor's data is a NumPy array on the CPU backend and a CuPy array on the GPU backend. Ops
# never import either library for their arithmetic: they ask the data.

# %%
lesson.section("1. the array decides")
x = ta.tensor([1.0, 2.0, 3.0])
print(f"backend '{ta.get_backend()}': tensor data is a {type(x.array).__module__}.{type(x.array).__name__}; "
      f"get_array_module(x) -> {ta.get_array_module(x).__name__}")
print("An op such as softmax runs xp = get_array_module(x); xp.exp(x - xp.max(x)) ... - the same line "
      "for both libraries. Fast paths are chosen the same way: kernels.get(name, x) returns the Numba "
      "kernel for NumPy arrays and the CuPy/array-module twin for GPU arrays.")

# %% [markdown]
# ## 2. Is there a GPU here?

# %%
lesson.section("2. looking for CuPy and a GPU")
try:
    backend.set_backend("cupy")
    gpu_error = None
except backend.BackendError as exc:
    gpu_error = str(exc)
finally:
    backend.set_backend("numpy")            # measurements below choose the backend explicitly
if gpu_error is not None:
    print("no GPU: this machine has no usable CuPy + CUDA GPU, so nothing in this lesson can run on a GPU.")
    print(f"  reason: {gpu_error}")
    print("On a machine with an NVIDIA GPU: pip install -e \".[gpu]\" (CuPy for CUDA 13; for a CUDA 12 "
          "driver, pip install cupy-cuda12x), then run this lesson again, or any lesson with "
          "--backend cupy.")
    lesson.record(gpu_available=False, reason=gpu_error)
    lesson.skip("no GPU (CuPy/CUDA not available): CPU vs GPU comparison not run")

import cupy  # noqa: E402  - only reached when CuPy and a GPU are present

device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
print(f"GPU: {device['name'].decode() if isinstance(device['name'], bytes) else device['name']}, "
      f"CuPy {cupy.__version__}")


# %% [markdown]
# ## 3. Dense attention, CPU vs GPU
# softmax(q kᵀ/√d) v forward + backward, batch 1, 4 heads, d = 64, float32. GPU work is queued
# asynchronously, so we synchronise before reading the clock.

# %%
def attention_step(q, k, v, g):
    scores = q @ ta.swapaxes(k, -1, -2) * (1.0 / np.sqrt(q.shape[-1]))
    out = ta.softmax(scores, axis=-1) @ v
    (out * g).sum().backward()
    return out


def timed_attention(name, arrays, repeats=3):
    backend.set_backend(name)
    q, k, v = (ta.tensor(a, requires_grad=True) for a in arrays[:3])
    g = ta.tensor(arrays[3])
    sync = cupy.cuda.Device().synchronize if name == "cupy" else (lambda: None)
    out = attention_step(q, k, v, g)                  # warm-up: CuPy compiles its kernels here
    sync()
    best = np.inf
    for _ in range(repeats):
        for t in (q, k, v):
            t.grad = None
        start = time.perf_counter()
        out = attention_step(q, k, v, g)
        sync()
        best = min(best, time.perf_counter() - start)
    result = out.numpy(), q.grad.numpy()
    backend.set_backend("numpy")
    return best, result


lesson.section("3. dense attention forward + backward: CPU vs GPU")
attention_rows, worst_relative = [], 0.0
for T in (256, 1024, 4096):
    arrays = [rng.normal(size=(1, 4, T, 64)).astype(np.float32) for _ in range(4)]
    cpu_s, (cpu_out, cpu_dq) = timed_attention("numpy", arrays)
    gpu_s, (gpu_out, gpu_dq) = timed_attention("cupy", arrays)
    relative = max(float(np.abs(cpu_out - gpu_out).max() / np.abs(cpu_out).max()),
                   float(np.abs(cpu_dq - gpu_dq).max() / np.abs(cpu_dq).max()))
    worst_relative = max(worst_relative, relative)
    attention_rows.append({"T": T, "cpu_s": cpu_s, "gpu_s": gpu_s, "relative_difference": relative})
    print(f"  T = {T:>5}: CPU {1e3 * cpu_s:9.1f} ms   GPU {1e3 * gpu_s:8.2f} ms   GPU speed-up "
          f"{cpu_s / gpu_s:6.1f}x   max relative difference {relative:.1e}")

# %% [markdown]
# ## 4. Lesson 13, unchanged, on each backend
# Each run is a separate process: `python lessons/13_encoder_decoder.py --backend numpy|cupy`.

# %%
lesson.section("4. lesson 13 (encoder-decoder training + greedy decoding) on CPU and GPU")
lesson13 = os.path.join(LESSONS_DIR, "13_encoder_decoder.py")     # a notebook kernel knows no script path
runs = {}
for name in ("numpy", "cupy"):
    out_dir = os.path.join(lesson.out, f"lesson13_{name}")
    proc = subprocess.run([sys.executable, lesson13, "--backend", name, "--seed", str(lesson.seed),
                           "--out", out_dir], capture_output=True, text=True, timeout=600)
    result_path = os.path.join(out_dir, "result.json")
    result = json.load(open(result_path, encoding="utf-8")) if os.path.exists(result_path) else None
    runs[name] = {"exit": proc.returncode, "seconds": result["seconds"] if result else None,
                  "passed": bool(result and result["passed"]),
                  "results": result["values"]["results"] if result else None}
    if proc.returncode != 0:
        print(proc.stdout[-2000:] + proc.stderr[-2000:])
    print(f"  {name:<6} exit {proc.returncode}, {runs[name]['seconds'] or '-'} s, criterion "
          f"{'PASS' if runs[name]['passed'] else 'FAIL'}: " +
          (", ".join(f"{t} {r['token_accuracy']:.1%}/{r['exact_sequences']:.0%}" for t, r in runs[name]["results"].items())
           if runs[name]["results"] else "no result"))
if runs["numpy"]["seconds"] and runs["cupy"]["seconds"]:
    print(f"lesson 13 wall time: CPU {runs['numpy']['seconds']:.1f} s, GPU {runs['cupy']['seconds']:.1f} s "
          f"({runs['numpy']['seconds'] / runs['cupy']['seconds']:.2f}x). Its arrays are tiny (batch 128 x 9 tokens x 64), "
          "so the GPU spends its time launching kernels, not computing.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 4))
Ts = [r["T"] for r in attention_rows]
ax.plot(Ts, [r["cpu_s"] for r in attention_rows], "o-", label="CPU (NumPy)")
ax.plot(Ts, [r["gpu_s"] for r in attention_rows], "s-", label="GPU (CuPy)")
ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="seconds, forward + backward",
       title="dense attention, 4 heads, d = 64: same code, two devices")
ax.grid(alpha=0.3)
ax.legend()
lesson.savefig(fig, "cpu_vs_gpu_attention")

# %%
lesson.section("criterion")
lesson.record(gpu_available=True, attention=attention_rows, lesson13=runs)
lesson.check("GPU attention agrees with CPU (relative <= 1e-3, float32)", worst_relative <= 1e-3,
             f"worst relative difference {worst_relative:.1e}; speed-up at T = 4096: "
             f"{attention_rows[-1]['cpu_s'] / attention_rows[-1]['gpu_s']:.1f}x")
seconds = lambda run: "no result" if run["seconds"] is None else f"{run['seconds']:.1f} s"  # noqa: E731
lesson.check("lesson 13 passes its criterion on the GPU", runs["cupy"]["passed"],
             f"GPU {seconds(runs['cupy'])} vs CPU {seconds(runs['numpy'])}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/same_code_on_gpu.py`
# (both run on the CPU, so they need no GPU; exercise 2 uses `tests/fakecupy.py`, a CPU stand-in
# for CuPy that counts every crossing between host and device).
# 1. Section 3 accepts a relative difference of 1e-3 between CPU and GPU. Compute attention at
#    T = 1024 in float32 and in float64 on the CPU: how large is the float32 rounding alone? Is
#    1e-3 a loose or a tight tolerance?
# 2. On a GPU, copying an array to the host or reading one number from it (`loss.item()`) waits for
#    the device. Predict the host-device crossings of one attention forward + backward on device
#    arrays, and of three training steps that each read `loss.item()`. Where would a progress line
#    that prints the loss every step cost you time?
