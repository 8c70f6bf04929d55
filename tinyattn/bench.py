"""python -m tinyattn.bench: tinyattn's compiled path, its plain NumPy path and PyTorch CPU, timed on
the same fixed workloads in the same process, with the same number of threads.

    python -m tinyattn.bench                  # all five workloads, 2 threads
    python -m tinyattn.bench --threads 1 --workloads 1 3
    python -m tinyattn.bench --quick          # tiny sizes: checks the harness, not the speed

Workloads (float32):
  1 lstm         LSTM forward+backward: batch 32, 50 steps, input 32, hidden 128
  2 transformer  one training step of a toy Transformer (embeddings, 2 encoder + 2 decoder layers,
                 d_model 64, 4 heads, feed-forward 128, vocabulary 20, batch 64, length 12,
                 cross-entropy, Adam)
  3 attention    causal scaled-dot-product attention forward+backward: batch 4, 4 heads,
                 length 1024, head dim 64 (+ achieved GFLOP/s beside the measured matmul peak)
  4 long         one head, length 16384, head dim 64, causal, forward+backward: time and peak
                 memory growth (each provider in a fresh subprocess)
  5 overhead     a chain of 100 small elementwise ops on 16-element tensors, forward+backward

Each time is the median of ``--repeats`` runs after ``--warmup`` runs. Each provider is timed in a
fresh process of its own: in one process, the worker threads that OpenBLAS, Numba or PyTorch leave
spinning after their work slow down whichever library runs next (PyTorch's LSTM took 60 ms after
ours in the same process and 5 ms alone). ``--in-process`` times them in one process instead,
taking turns run by run. Writes ``bench.json`` and
``bench.png`` (a bar chart) into ``--out-dir`` and prints a table.

Thread counts must be fixed before NumPy loads its BLAS, so the command re-executes itself once
with OMP/OPENBLAS/MKL/NUMBA thread variables set to ``--threads``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_MARK = "TINYATTN_BENCH_THREADS"
WORKLOADS = {1: "lstm", 2: "transformer", 3: "attention", 4: "long", 5: "overhead"}
PROVIDERS = ("numba", "numpy", "torch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinyattn.bench",
                                description="Time tinyattn (numba and numpy paths) against PyTorch CPU.")
    p.add_argument("--threads", type=_positive_int, default=2,
                   help="threads for Numba, BLAS and PyTorch alike (default 2)")
    p.add_argument("--repeats", type=_positive_int, default=7, help="timed runs per provider (default 7)")
    p.add_argument("--warmup", type=_non_negative_int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--workloads", type=int, nargs="+", choices=sorted(WORKLOADS),
                   default=sorted(WORKLOADS), metavar="N", help="which workloads, 1-5 (default all)")
    p.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS),
                   help="which implementations (default: numba numpy torch)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 warm-up, 2 repeats: a smoke test")
    p.add_argument("--out-dir", default="bench_results", help="where bench.json / bench.png go")
    p.add_argument("--no-plot", action="store_true", help="skip the matplotlib chart")
    p.add_argument("--in-process", action="store_true",
                   help="time all providers in this one process, taking turns run by run (by "
                        "default each provider runs in a fresh process of its own: thread pools "
                        "left spinning by one library otherwise slow the next one down)")
    p.add_argument("--child", nargs=2, metavar=("PROVIDER", "LENGTH"), help=argparse.SUPPRESS)
    p.add_argument("--child-time", nargs=2, metavar=("WORKLOAD", "PROVIDER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
    return args


def _positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {s}")
    return v


def _non_negative_int(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {s}")
    return v


def _reexec_with_threads(args, argv):
    """Fix every library's thread count through the environment, then start over (once)."""
    if os.environ.get(_MARK) == str(args.threads):
        return
    env = dict(os.environ, **{v: str(args.threads) for v in _THREAD_VARS}, **{_MARK: str(args.threads)})
    cmd = [sys.executable, "-m", "tinyattn.bench", *argv]
    sys.stdout.flush()
    sys.exit(subprocess.call(cmd, env=env))


# ----------------------------------------------------------------------------------- timing
def _time_interleaved(runs: dict, warmup: int, repeats: int) -> dict:
    """{provider: fn} -> {provider: [seconds, ...]}: all warm up, then take turns."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _torch():
    try:
        import torch  # noqa: PLC0415 - optional, for comparison only
    except ImportError:
        return None
    return torch


# ----------------------------------------------------------------------------------- workloads
def lstm_workload(providers, quick):
    """1: nn.LSTM forward + backward of out.mean()."""
    import numpy as np  # noqa: PLC0415

    import tinyattn as ta  # noqa: PLC0415
    from tinyattn import kernels, nn  # noqa: PLC0415

    B, T, I, H = (4, 5, 3, 8) if quick else (32, 50, 32, 128)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    ta.manual_seed(0)
    ours = nn.LSTM(I, H)
    runs = {}

    def make(provider):
        def run():
            with kernels.using(provider):
                ours.zero_grad()
                xt = ta.tensor(x, requires_grad=True)
                out, (h, c) = ours(xt)
                out.mean().backward()
        return run

    for p in ("numba", "numpy"):
        if p in providers:
            runs[p] = make(p)
    torch = _torch()
    if torch is not None and "torch" in providers:
        theirs = torch.nn.LSTM(I, H)

        def run_torch():
            theirs.zero_grad()
            xt = torch.tensor(x, requires_grad=True)
            out, _ = theirs(xt)
            out.mean().backward()
        runs["torch"] = run_torch
    return runs, {"batch": B, "steps": T, "input": I, "hidden": H}


def transformer_workload(providers, quick):
    """2: embeddings -> nn.Transformer (2+2 layers) -> linear -> cross-entropy -> Adam step."""
    import numpy as np  # noqa: PLC0415

    import tinyattn as ta  # noqa: PLC0415
    from tinyattn import kernels, nn, optim  # noqa: PLC0415
    from tinyattn.ops.cross_entropy import cross_entropy  # noqa: PLC0415

    V, D, NH, FF, B, L = (20, 16, 2, 32, 4, 5) if quick else (20, 64, 4, 128, 64, 12)
    rng = np.random.default_rng(0)
    src = rng.integers(0, V, (B, L))
    tgt_in, tgt_out = rng.integers(0, V, (B, L)), rng.integers(0, V, (B, L))
    causal = np.triu(np.full((L, L), -np.inf, dtype=np.float32), 1)
    runs = {}

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed, self.tgt_embed = nn.Embedding(V, D), nn.Embedding(V, D)
            self.core = nn.Transformer(D, NH, 2, 2, FF, dropout=0.0, batch_first=True)
            self.head = nn.Linear(D, V)

        def forward(self, s, t):
            h = self.core(self.src_embed(s), self.tgt_embed(t), tgt_mask=ta.tensor(causal))
            return self.head(h)

    ta.manual_seed(0)
    ours = Toy()
    opt = optim.Adam(ours.parameters(), lr=1e-3)

    def make(provider):
        def run():
            with kernels.using(provider):
                opt.zero_grad()
                logits = ours(src, tgt_in)
                loss = cross_entropy(logits.reshape(B * L, V), tgt_out.reshape(-1))
                loss.backward()
                opt.step()
        return run

    for p in ("numba", "numpy"):
        if p in providers:
            runs[p] = make(p)
    torch = _torch()
    if torch is not None and "torch" in providers:
        tnn = torch.nn

        class TorchToy(tnn.Module):
            def __init__(self):
                super().__init__()
                self.src_embed, self.tgt_embed = tnn.Embedding(V, D), tnn.Embedding(V, D)
                self.core = tnn.Transformer(D, NH, 2, 2, FF, dropout=0.0, batch_first=True)
                self.head = tnn.Linear(D, V)

            def forward(self, s, t):
                h = self.core(self.src_embed(s), self.tgt_embed(t), tgt_mask=torch.tensor(causal))
                return self.head(h)

        torch.manual_seed(0)
        theirs = TorchToy()
        topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
        s_t, ti_t, to_t = (torch.tensor(a) for a in (src, tgt_in, tgt_out))

        def run_torch():
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(theirs(s_t, ti_t).reshape(B * L, V),
                                                     to_t.reshape(-1))
            loss.backward()
            topt.step()
        runs["torch"] = run_torch
    return runs, {"vocab": V, "d_model": D, "heads": NH, "ff": FF, "batch": B, "length": L,
                  "layers": "2 encoder + 2 decoder"}


def _attention_runs(providers, B, NH, T, D, seed=0):
    import numpy as np  # noqa: PLC0415

    import tinyattn as ta  # noqa: PLC0415
    from tinyattn import kernels  # noqa: PLC0415
    from tinyattn.ops.memory_efficient_attention import memory_efficient_attention  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    q, k, v, g = (rng.standard_normal((B, NH, T, D)).astype(np.float32) for _ in range(4))
    runs = {}

    def make(provider):
        def run():
            with kernels.using(provider):
                tq, tk, tv = (ta.tensor(a, requires_grad=True) for a in (q, k, v))
                memory_efficient_attention(tq, tk, tv, causal=True).backward(g)
        return run

    for p in ("numba", "numpy"):
        if p in providers:
            runs[p] = make(p)
    torch = _torch()
    if torch is not None and "torch" in providers:
        def run_torch():
            tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
            out.backward(torch.from_numpy(g))
        runs["torch"] = run_torch
    return runs


def attention_flops(B, NH, T, D):
    """Useful FLOPs of causal attention forward+backward: 6 matrix products of 2·T·T·D each
    (forward QKᵀ, PV; backward dV, dP, dQ, dK), halved by the causal mask. The recomputation of
    QKᵀ in the backward is overhead, not counted."""
    return 6 * 2 * B * NH * T * T * D / 2


def attention_workload(providers, quick):
    """3: causal sdpa forward+backward; ours is memory_efficient_attention."""
    B, NH, T, D = (2, 2, 128, 16) if quick else (4, 4, 1024, 64)
    return _attention_runs(providers, B, NH, T, D), {"batch": B, "heads": NH, "length": T,
                                                     "head_dim": D}


def overhead_workload(providers, quick):
    """5: 100 tiny elementwise ops, forward + backward: the cost of the engine, not the math."""
    import numpy as np  # noqa: PLC0415

    import tinyattn as ta  # noqa: PLC0415

    n_ops = 20 if quick else 100
    x0 = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    runs = {}

    def chain(x, tanh):
        for i in range(n_ops):
            kind = i % 4
            x = x * 0.9 if kind == 0 else x + 0.1 if kind == 1 else tanh(x) if kind == 2 else x - 0.05
        return x

    def run_ours():
        x = ta.tensor(x0, requires_grad=True)
        chain(x, ta.tanh).sum().backward()

    for p in ("numba", "numpy"):         # no kernels involved: both paths run the same engine code
        if p in providers:
            runs[p] = run_ours
    torch = _torch()
    if torch is not None and "torch" in providers:
        def run_torch():
            x = torch.tensor(x0, requires_grad=True)
            chain(x, torch.tanh).sum().backward()
        runs["torch"] = run_torch
    return runs, {"ops": n_ops, "elements": 16}


# ----------------------------------------------------------------------------------- workload 4
def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _long_child(provider, T):
    """In a fresh process: warm up on a small problem, reset the peak-RSS mark, then time one causal
    forward+backward of length T and report the growth of the peak resident memory."""
    import numpy as np  # noqa: PLC0415

    _attention_runs([provider], 1, 1, 256, 64)[provider]()        # compile / load, small
    runs = _attention_runs([provider], 1, 1, T, 64, seed=1)
    import gc  # noqa: PLC0415

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:   # resets VmHWM (the peak) to the current RSS
            f.write("5")
        method = "peak RSS (VmHWM) after reset, minus RSS before"
    except OSError:
        method = "peak RSS (VmHWM) minus RSS before (peak not resettable: upper bound)"
    before = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    runs[provider]()
    seconds = time.perf_counter() - t0
    growth = (_rss_kib("VmHWM") - before) / 1024
    print(json.dumps({"seconds": seconds, "peak_growth_mib": growth, "method": method,
                      "numpy": np.__version__}))


def long_workload(providers, quick, threads):
    T = 2048 if quick else 16384
    results = {}
    for p in providers:
        if p == "torch" and _torch() is None:
            continue
        cmd = [sys.executable, "-m", "tinyattn.bench", "--threads", str(threads), "--child", p, str(T)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if res.returncode != 0:
            results[p] = {"error": res.stderr.strip().splitlines()[-1:] or ["failed"]}
            continue
        results[p] = json.loads(res.stdout.strip().splitlines()[-1])
    naive = 3 * T * T * 4 / 2**20   # scores, probabilities and their gradient, float32
    return results, {"heads": 1, "length": T, "head_dim": 64, "causal": True,
                     "naive_full_matrix_estimate_mib": naive, "target_peak_growth_mib": 256}


# ----------------------------------------------------------------------------------- isolation
def _builders():
    return {1: lstm_workload, 2: transformer_workload, 3: attention_workload, 5: overhead_workload}


def _set_threads(threads):
    import numba  # noqa: PLC0415

    numba.set_num_threads(threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)


def _time_child(number, provider, args):
    """In a fresh process: build one provider's run of one workload, time it, print the times."""
    runs, params = _builders()[number]([provider], args.quick)
    times = _time_interleaved(runs, args.warmup, args.repeats)[provider]
    print(json.dumps({"times": times, "params": params}))


def _time_isolated(number, providers, args):
    """{provider: [seconds, ...]} with every provider timed in its own process; and the params."""
    times, params = {}, None
    for p in providers:
        cmd = [sys.executable, "-m", "tinyattn.bench", "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--child-time", str(number), p] + (["--quick"] if args.quick else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if res.returncode != 0:
            raise RuntimeError(f"bench: workload {number} on {p} failed in its subprocess:\n"
                               f"{res.stderr.strip()}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        times[p], params = out["times"], out["params"]
    return times, params


# ----------------------------------------------------------------------------------- peak GFLOP/s
def matmul_peak(threads, quick):
    """The machine's float32 matrix-product speed: best of a few 2048² products (NumPy's BLAS and
    PyTorch), in GFLOP/s."""
    import numpy as np  # noqa: PLC0415

    n = 512 if quick else 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = {}
    times = _time_interleaved({"numpy": lambda: a @ a}, 1, 3 if quick else 5)["numpy"]
    out["numpy_blas"] = 2 * n**3 / min(times) / 1e9
    torch = _torch()
    if torch is not None:
        ta_ = torch.from_numpy(a)
        times = _time_interleaved({"torch": lambda: ta_ @ ta_}, 1, 3 if quick else 5)["torch"]
        out["torch"] = 2 * n**3 / min(times) / 1e9
    out["peak"] = max(out.values())
    return out


# ----------------------------------------------------------------------------------- report
def _summary(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def _ratios(entry):
    med = {p: v["median_s"] for p, v in entry["results"].items() if "median_s" in v}
    if "torch" in med:
        for p in ("numba", "numpy"):
            if p in med:
                entry[f"ratio_{p}_to_torch"] = med[p] / med["torch"]


def _table(report):
    lines = [f"{'workload':<14}{'numba':>12}{'numpy':>12}{'torch':>12}{'numba/torch':>13}"
             f"{'numpy/torch':>13}  notes"]
    for name, entry in report["workloads"].items():
        res = entry["results"]
        cells = []
        for p in PROVIDERS:
            v = res.get(p, {})
            t = v.get("median_s", v.get("seconds"))
            cells.append(f"{t * 1e3:>10.2f}ms" if t is not None else f"{'-':>12}")
        ratios = [f"{entry[k]:>12.2f}x" if k in entry else f"{'-':>13}"
                  for k in ("ratio_numba_to_torch", "ratio_numpy_to_torch")]
        note = entry.get("note", "")
        lines.append(f"{name:<14}{''.join(cells)}{''.join(ratios)}  {note}")
    return "\n".join(lines)


def _plot(report, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(report["workloads"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for k, p in enumerate(PROVIDERS):
        vals = []
        for n in names:
            v = report["workloads"][n]["results"].get(p, {})
            vals.append(v.get("median_s", v.get("seconds", float("nan"))) * 1e3)
        ax.bar([i + (k - 1) * width for i in range(len(names))], vals, width, label=p)
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (ms, log scale)")
    ax.set_title(f"tinyattn vs PyTorch CPU, {report['threads']} thread(s), float32")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args):
    import numba  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    _set_threads(args.threads)
    torch = _torch()
    providers = [p for p in args.providers if p != "torch" or torch is not None]
    report = {"threads": args.threads, "quick": args.quick, "repeats": args.repeats,
              "warmup": args.warmup, "dtype": "float32", "providers": providers,
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "python": platform.python_version(),
                          "numpy": np.__version__, "numba": numba.__version__,
                          "torch": None if torch is None else torch.__version__,
                          # other programs' load skews every timing; recorded to judge the numbers
                          "load_average_at_start": os.getloadavg()},
              "workloads": {}}
    report["isolated"] = not args.in_process
    for number in args.workloads:
        name = WORKLOADS[number]
        print(f"[bench] workload {number}: {name} ...", flush=True)
        if number == 4:
            results, params = long_workload(providers, args.quick, args.threads)
            entry = {"params": params, "results": results}
            growth = {p: r.get("peak_growth_mib") for p, r in results.items()}
            entry["note"] = "peak growth MiB: " + ", ".join(
                f"{p} {g:.0f}" for p, g in growth.items() if g is not None)
            med = {p: r["seconds"] for p, r in results.items() if "seconds" in r}
            if "torch" in med:
                for p in ("numba", "numpy"):
                    if p in med:
                        entry[f"ratio_{p}_to_torch"] = med[p] / med["torch"]
        else:
            if args.in_process:
                runs, params = _builders()[number](providers, args.quick)
                times = _time_interleaved(runs, args.warmup, args.repeats)
            else:
                times, params = _time_isolated(number, providers, args)
            entry = {"params": params, "results": {p: _summary(t) for p, t in times.items()}}
            _ratios(entry)
            if number == 3:
                flops = attention_flops(params["batch"], params["heads"], params["length"],
                                        params["head_dim"])
                peak = matmul_peak(args.threads, args.quick)
                entry["flops"] = flops
                entry["gflops_per_s"] = {p: flops / r["median_s"] / 1e9
                                         for p, r in entry["results"].items()}
                entry["matmul_peak_gflops_per_s"] = peak
                entry["note"] = "GFLOP/s: " + ", ".join(
                    f"{p} {g:.1f}" for p, g in entry["gflops_per_s"].items()) + \
                    f" (matmul peak {peak['peak']:.1f})"
        report["workloads"][name] = entry
    # The GPU column: the toy Transformer step at a GPU-sized configuration, CuPy vs NumPy (vs
    # PyTorch CUDA when present). Only where CuPy sees a GPU; elsewhere the report says so.
    from . import bench_gpu  # noqa: PLC0415

    if bench_gpu.gpu_present():
        quick = dict(batch=8, length=16, d_model=32, nhead=2, vocab=50, steps=2, warmup=1)
        report["gpu"] = bench_gpu.run(**quick) if args.quick else bench_gpu.run()
        print(bench_gpu.table(report["gpu"]))
    else:
        report["gpu"] = "skipped: no CuPy-visible GPU on this machine"
        print("[bench] GPU column: skipped (no CuPy-visible GPU); see python -m tinyattn.bench_gpu")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "bench.json")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
    print(_table(report))
    print(f"[bench] load average (1/5/15 min) at start {report['machine']['load_average_at_start']}, "
          f"at end {report['machine']['load_average_at_end']} on {os.cpu_count()} CPUs")
    print(f"[bench] wrote {json_path}")
    if not args.no_plot:
        png = os.path.join(args.out_dir, "bench.png")
        _plot(report, png)
        print(f"[bench] wrote {png}")
    return report


def _tune_memory_for(providers):
    """tinyattn's providers are timed with freed memory kept and a huge-page heap (memory.tune():
    0 instead of ~3,200 page faults per LSTM step, no slow-process lottery); PyTorch's process is
    left as the user would have it."""
    if any(p != "torch" for p in providers):
        from tinyattn import memory  # noqa: PLC0415

        memory.tune()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    _reexec_with_threads(args, argv)
    if args.child:
        _set_threads(args.threads)
        provider, length = args.child
        _tune_memory_for([provider])
        _long_child(provider, int(length))
        return 0
    if args.child_time:
        _set_threads(args.threads)
        number, provider = args.child_time
        _tune_memory_for([provider])
        _time_child(int(number), provider, args)
        return 0
    if args.in_process:
        _tune_memory_for(args.providers)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
