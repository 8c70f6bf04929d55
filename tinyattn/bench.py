"""python -m tinyattn.bench: tinyattn's compiled path, its plain NumPy path and PyTorch CPU, timed on
the same fixed workloads, with the same number of threads, each provider in a process of its own.

    python -m tinyattn.bench --rounds 3       # all workloads at 1 and 2 threads, 3 rounds
    python -m tinyattn.bench --threads 1 --workloads 1 3
    python -m tinyattn.bench --quick          # tiny sizes: checks the harness, not the speed

Workloads (float32; the builders are in bench_workloads.py):
  1 lstm               LSTM forward+backward: batch 32, 50 steps, input 32, hidden 128
  2 transformer        one training step of a toy Transformer (embeddings, 2 encoder + 2 decoder
                       layers, d_model 64, 4 heads, feed-forward 128, vocabulary 20, batch 64,
                       length 12, cross-entropy, Adam)
  3 attention          causal scaled-dot-product attention forward+backward: batch 4, 4 heads,
                       length 1024, head dim 64 (+ GFLOP/s and % of the matmul peak of the run)
  4 long               one head, length 16384, head dim 64, causal, forward+backward: time and
                       peak memory growth
  5 overhead           a chain of 100 small elementwise ops on 16-element tensors, fwd+bwd
  6 mha                multi-head self-attention block: batch 32, length 64, d 128, 8 heads, fwd+bwd
  7 generate_cached    greedy generation, small decoder-only Transformer, with a KV cache
  8 generate_uncached  the same without a cache (tokens per second for both)

Each time is the median of ``--repeats`` runs after ``--warmup`` runs, in a fresh process per
(round, thread count, workload, provider): in one process, the worker threads that OpenBLAS,
Numba or PyTorch leave spinning after their work slow down whichever library runs next
(PyTorch's LSTM took 60 ms after ours in the same process and 5 ms alone). ``--rounds N``
repeats everything N times, providers alternating in order from round to round, and reports the
median over rounds with the spread ((max - min) / median). ``--in-process`` times the providers
in one process instead, taking turns run by run (one thread count only).

Prints the table per thread count and the summary table of ratios (tinyattn numba / PyTorch,
below 1 is faster: workloads x thread counts), writes ``bench.json`` (with the CPU model, its
vector width, the thread counts and the spreads) and ``bench.png`` into ``--out-dir``.
Thread counts must be fixed before NumPy loads its BLAS, so every child process is started with
OMP/OPENBLAS/MKL/NUMBA thread variables set to its thread count.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from . import bench_workloads as bw

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_MARK = "TINYATTN_BENCH_THREADS"
WORKLOADS = {1: "lstm", 2: "transformer", 3: "attention", 4: "long", 5: "overhead", 6: "mha",
             7: "generate_cached", 8: "generate_uncached"}
TITLES = {1: "1 LSTM fwd+bwd", 2: "2 Transformer training step",
          3: "3 causal attention, 4x4 heads, length 1024", 4: "4 one head, length 16,384, causal",
          5: "5 op overhead, 100 tiny ops",
          6: "multi-head self-attention block (batch 32, length 64, d 128, 8 heads)",
          7: "7 generation with a KV cache (tokens/s)", 8: "8 generation without a cache (tokens/s)"}
PROVIDERS = ("numba", "numpy", "torch")
BUILDERS = {1: bw.lstm_workload, 2: bw.transformer_workload, 3: bw.attention_workload,
            5: bw.overhead_workload, 6: bw.mha_workload, 7: bw.generate_cached_workload,
            8: bw.generate_uncached_workload}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinyattn.bench",
                                description="Time tinyattn (numba and numpy paths) against PyTorch CPU.")
    p.add_argument("--threads", type=_positive_int, nargs="+", default=[1, 2],
                   help="thread counts for Numba, BLAS and PyTorch alike, each timed (default 1 2)")
    p.add_argument("--rounds", type=_positive_int, default=1,
                   help="repeat the whole benchmark N times, providers alternating; report the "
                        "median over rounds and the spread (default 1)")
    p.add_argument("--repeats", type=_positive_int, default=7, help="timed runs per provider (default 7)")
    p.add_argument("--warmup", type=_non_negative_int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--workloads", type=int, nargs="+", choices=sorted(WORKLOADS),
                   default=sorted(WORKLOADS), metavar="N", help="which workloads, 1-8 (default all)")
    p.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS),
                   help="which implementations (default: numba numpy torch)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 warm-up, 2 repeats: a smoke test")
    p.add_argument("--out-dir", default="bench_results", help="where bench.json / bench.png go")
    p.add_argument("--no-plot", action="store_true", help="skip the matplotlib chart")
    p.add_argument("--in-process", action="store_true",
                   help="time all providers in this one process, taking turns run by run (by "
                        "default each provider runs in a fresh process of its own: thread pools "
                        "left spinning by one library otherwise slow the next one down); one "
                        "--threads count only")
    p.add_argument("--from-json", metavar="FILE",
                   help="time nothing: print the README's benchmark tables from a bench.json "
                        "that an earlier run wrote")
    p.add_argument("--child", nargs=2, metavar=("KIND", "PROVIDER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.in_process and len(args.threads) != 1:
        p.error(f"--in-process times one thread count; got --threads {' '.join(map(str, args.threads))}")
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


def _thread_env(threads):
    return dict(os.environ, **{v: str(threads) for v in _THREAD_VARS}, **{_MARK: str(threads)})


def _reexec_with_threads(threads, argv):
    """--in-process: fix every library's thread count through the environment, then start over."""
    if os.environ.get(_MARK) == str(threads):
        return
    sys.stdout.flush()
    sys.exit(subprocess.call([sys.executable, "-m", "tinyattn.bench", *argv], env=_thread_env(threads)))


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


def _set_threads(threads, providers=PROVIDERS):
    """Each library's thread count, set only in the processes that time it. PyTorch's process
    must not start Numba's thread pool: with both OpenMP pools on 2 cores, PyTorch's multi-head
    block at 2 threads took ~2 s instead of ~17 ms (their threads spin waiting for each other)."""
    if any(p != "torch" for p in providers):
        import numba  # noqa: PLC0415

        numba.set_num_threads(threads)
    torch = bw._torch() if "torch" in providers else None
    if torch is not None:
        torch.set_num_threads(threads)


def _tune_memory_for(providers):
    """tinyattn's providers are timed with freed memory kept and a huge-page heap (memory.tune():
    0 instead of ~3,200 page faults per LSTM step, no slow-process lottery); PyTorch's process is
    left as the user would have it."""
    if any(p != "torch" for p in providers):
        from tinyattn import memory  # noqa: PLC0415

        memory.tune()


def _child_result(kind, provider, args):
    """What one child process measures: 'peak' (the matmul peak), workload 4 (one long run and its
    memory) or a timed workload ({"times": [...], "params": {...}})."""
    if kind == "peak":
        return bw.matmul_peak(args.quick)
    number = int(kind)
    if number == 4:
        out = bw.long_child(provider, bw.long_length(args.quick))
        out["params"] = bw.long_params(args.quick)
        return out
    runs, params = BUILDERS[number]([provider], args.quick)
    return {"times": _time_interleaved(runs, args.warmup, args.repeats)[provider], "params": params}


def _measure(kind, provider, threads, args):
    """Run ``_child_result`` in a fresh process with ``threads`` threads; {"error": ...} if it fails."""
    cmd = [sys.executable, "-m", "tinyattn.bench", "--threads", str(threads), "--repeats",
           str(args.repeats), "--warmup", str(args.warmup), "--child", str(kind), provider]
    cmd += ["--quick"] if args.quick else []
    res = subprocess.run(cmd, capture_output=True, text=True, env=_thread_env(threads))
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-3:] or ["failed"]
        print(f"[bench] {kind} on {provider} at {threads} thread(s) failed:\n  " + "\n  ".join(tail),
              file=sys.stderr, flush=True)
        return {"error": tail}
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- summary
def _spread(values):
    """(max - min) / median: 0.05 means the values lay within 5% of their median."""
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else 0.0


def _summarise(number, per_round):
    """[child result per round] -> the provider's entry: median over rounds and the spread."""
    ok = [r for r in per_round if "error" not in r]
    if not ok:
        return {"error": per_round[-1]["error"]}
    if number == 4:
        secs = [r["seconds"] for r in ok]
        return {"median_s": statistics.median(secs), "rounds_s": secs, "spread": _spread(secs),
                "peak_growth_mib": max(r["peak_growth_mib"] for r in ok), "method": ok[0]["method"]}
    medians = [statistics.median(r["times"]) for r in ok]
    runs = [t for r in ok for t in r["times"]]
    many = len(medians) > 1
    return {"median_s": statistics.median(medians), "min_s": min(runs), "runs_s": runs,
            "rounds_median_s": medians, "spread": _spread(medians if many else runs),
            "spread_over": "rounds" if many else "runs"}


def _entry(number, per_provider, peak, params):
    """The report of one workload at one thread count."""
    res = {p: _summarise(number, rounds) for p, rounds in per_provider.items()}
    entry = {"results": res}
    med = {p: v["median_s"] for p, v in res.items() if "median_s" in v}
    if "torch" in med:
        for p in ("numba", "numpy"):
            if p in med:
                entry[f"ratio_{p}_to_torch"] = med[p] / med["torch"]
                # the ratio round by round, where both providers have the same rounds
                mine, theirs = res[p].get("rounds_median_s", res[p].get("rounds_s")), \
                    res["torch"].get("rounds_median_s", res["torch"].get("rounds_s"))
                if mine and theirs and len(mine) == len(theirs) and len(mine) > 1:
                    ratios = [a / b for a, b in zip(mine, theirs)]
                    entry[f"ratio_{p}_to_torch_rounds"] = ratios
                    entry[f"ratio_{p}_to_torch_spread"] = max(ratios) - min(ratios)
    notes = []
    if number == 3 and params:
        flops = bw.attention_flops(params["batch"], params["heads"], params["length"],
                                   params["head_dim"])
        entry["flops"] = flops
        entry["gflops_per_s"] = {p: flops / m / 1e9 for p, m in med.items()}
        if peak:
            entry["matmul_peak_gflops_per_s"] = peak
            entry["percent_of_peak"] = {p: 100 * g / peak["peak"]
                                        for p, g in entry["gflops_per_s"].items()}
            notes.append("% of matmul peak: " + ", ".join(
                f"{p} {v:.0f}" for p, v in entry["percent_of_peak"].items())
                + f" (peak {peak['peak']:.1f} GFLOP/s)")
    if number == 4:
        notes.append("peak growth MiB: " + ", ".join(
            f"{p} {v['peak_growth_mib']:.0f}" for p, v in res.items() if "peak_growth_mib" in v))
    if number in (7, 8) and params:
        entry["tokens_per_s"] = {p: params["tokens"] / m for p, m in med.items()}
        notes.append("tokens/s: " + ", ".join(f"{p} {v:.0f}" for p, v in entry["tokens_per_s"].items()))
    entry["note"] = "; ".join(notes)
    return entry


def _params_of(per_provider):
    for rounds in per_provider.values():
        for r in rounds:
            if "params" in r:
                return r["params"]
    return None


# ----------------------------------------------------------------------------------- report
def _table(report, threads):
    lines = [f"{threads} thread(s):",
             f"{'workload':<19}{'numba':>12}{'numpy':>12}{'torch':>12}{'numba/torch':>13}"
             f"{'numpy/torch':>13}{'spread':>8}  notes"]
    for name, w in report["workloads"].items():
        entry = w["threads"].get(str(threads))
        if entry is None:
            continue
        res = entry["results"]
        cells = []
        for p in PROVIDERS:
            v = res.get(p, {})
            t = v.get("median_s")
            cells.append(f"{t * 1e3:>10.2f}ms" if t is not None else
                         f"{'error' if 'error' in v else '-':>12}")
        ratios = [f"{entry[k]:>12.2f}x" if k in entry else f"{'-':>13}"
                  for k in ("ratio_numba_to_torch", "ratio_numpy_to_torch")]
        spread = max((v.get("spread", 0.0) for v in res.values()), default=0.0)
        lines.append(f"{name:<19}{''.join(cells)}{''.join(ratios)}{spread * 100:>7.0f}%  "
                     f"{entry.get('note', '')}")
    return "\n".join(lines)


def _ratio_cell(number, entry):
    r = entry.get("ratio_numba_to_torch") if entry else None
    if r is None:
        return "-"
    cell = f"{r:.2f}"
    if number == 3 and "percent_of_peak" in entry and "numba" in entry["percent_of_peak"]:
        cell += f" ({entry['percent_of_peak']['numba']:.0f}% of sgemm peak)"
    if number == 4:
        mib = entry["results"].get("numba", {}).get("peak_growth_mib")
        if mib is not None:
            cell += f" ({mib:.0f} MiB)"
    if number in (7, 8) and "numba" in entry.get("tokens_per_s", {}):
        cell += f" ({entry['tokens_per_s']['numba']:.0f} tokens/s)"
    return cell


def issue_table(report):
    """The summary: ratio = tinyattn (numba) / PyTorch CPU per workload and thread count, below 1
    is faster; a second table gives each ratio's spread over the rounds."""
    threads = report["threads"]
    heads = [f"{t} thread" + ("s" if t != 1 else "") for t in threads]
    rows = ["| workload | " + " | ".join(heads) + " |", "|---|" + "---|" * len(threads)]
    spreads = list(rows)
    for name, w in report["workloads"].items():
        n = w["number"]
        cells = [_ratio_cell(n, w["threads"].get(str(t))) for t in threads]
        rows.append(f"| {w['title']} | " + " | ".join(cells) + " |")
        sp = []
        for t in threads:
            e = w["threads"].get(str(t)) or {}
            s = e.get("ratio_numba_to_torch_spread")
            sp.append("-" if s is None else f"±{s / 2:.2f}")
        spreads.append(f"| {w['title']} | " + " | ".join(sp) + " |")
    cpu = report["machine"]["cpu"]
    head = (f"ratio = tinyattn / PyTorch {report['machine'].get('torch') or '-'} CPU, below 1 is "
            f"faster; median of {report['rounds']} round(s), each provider in its own process "
            f"({cpu['model']}, {cpu['llvm_cpu']}, {cpu['vector_bits']}-bit vectors, "
            f"{cpu['cpus']} CPUs)")
    out = head + "\n\n" + "\n".join(rows)
    if report["rounds"] > 1:
        out += "\n\nspread of each ratio over the rounds, ±(max - min) / 2:\n\n" + "\n".join(spreads)
    return out


def _time_cell(seconds):
    return "-" if seconds is None else (f"{seconds:.2f} s" if seconds >= 1 else
                                        f"{seconds * 1e3:.3g} ms")


def readme_section(report):
    """The README's benchmark tables, regenerated from a bench.json: which CPU, versions and load,
    then per workload and thread count the median times, the ratio and its spread over the rounds,
    then the issue's summary table."""
    m, cpu = report["machine"], report["machine"]["cpu"]
    load = (m.get("load_average_at_start"), m.get("load_average_at_end"))
    lines = [f"Measured on {cpu['model']} ({cpu['llvm_cpu']}, {cpu['vector_bits']}-bit vectors, "
             f"{cpu['cpus']} CPUs), NumPy {m.get('numpy')}, Numba {m.get('numba')}, PyTorch "
             f"{m.get('torch') or '-'} CPU; `python -m tinyattn.bench --rounds {report['rounds']}"
             f"{' --threads ' + ' '.join(map(str, report['threads'])) if report['threads'] != [1, 2] else ''}`"
             f", median of {report['rounds']} round(s); load average (1 min) "
             f"{f'{load[0][0]:.1f}' if load[0] else '-'} at the start, "
             f"{f'{load[1][0]:.1f}' if load[1] else '-'} at the end.",
             "", "| workload | threads | numba | numpy | torch | numba / torch | spread |",
             "|---|---|---|---|---|---|---|"]
    for w in report["workloads"].values():
        for t in report["threads"]:
            e = w["threads"].get(str(t))
            if e is None:
                continue
            res = e["results"]
            times = [_time_cell(res.get(p, {}).get("median_s")) for p in PROVIDERS]
            r, sp = e.get("ratio_numba_to_torch"), e.get("ratio_numba_to_torch_spread")
            ratio = "-" if r is None else f"**{r:.2f}x**"
            if e.get("note"):
                ratio += f" ({e['note']})"
            lines.append(f"| {w['title']} | {t} | " + " | ".join(times) + f" | {ratio} | "
                         + ("-" if sp is None else f"±{sp / 2:.2f}") + " |")
    return "\n".join(lines) + "\n\n" + issue_table(report)


def _plot(report, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(report["workloads"])
    threads = report["threads"]
    fig, axes = plt.subplots(len(threads), 1, figsize=(10, 3.8 * len(threads)), squeeze=False)
    width = 0.27
    for ax, t in zip(axes[:, 0], threads):
        for k, p in enumerate(PROVIDERS):
            vals = []
            for n in names:
                e = report["workloads"][n]["threads"].get(str(t), {})
                vals.append(e.get("results", {}).get(p, {}).get("median_s", float("nan")) * 1e3)
            ax.bar([i + (k - 1) * width for i in range(len(names))], vals, width, label=p)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(f"tinyattn vs PyTorch CPU, {t} thread(s), float32")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _machine():
    import numpy as np  # noqa: PLC0415

    from .kernels.lowlevel import cpu  # noqa: PLC0415

    numba_spec = importlib.util.find_spec("numba")
    torch_version = None
    if importlib.util.find_spec("torch") is not None:
        from importlib.metadata import version  # noqa: PLC0415

        torch_version = version("torch")
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "cpu": cpu.describe(), "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": None if numba_spec is None else __import__("numba").__version__,
            "torch": torch_version,
            # other programs' load skews every timing; recorded to judge the numbers
            "load_average_at_start": os.getloadavg()}


def run(args):
    machine = _machine()
    have_torch = machine["torch"] is not None
    providers = [p for p in args.providers if p != "torch" or have_torch]
    report = {"threads": list(args.threads), "rounds": args.rounds, "quick": args.quick,
              "repeats": args.repeats, "warmup": args.warmup, "dtype": "float32",
              "providers": providers, "isolated": not args.in_process, "machine": machine,
              "workloads": {}, "matmul_peak": {}}
    # data[threads][workload][provider] = [child result per round]
    data = {t: {n: {p: [] for p in providers} for n in args.workloads} for t in args.threads}
    peaks = {t: [] for t in args.threads}
    for r in range(args.rounds):
        order = providers if r % 2 == 0 else providers[::-1]      # alternate who goes first
        for t in args.threads:
            if 3 in args.workloads:
                peaks[t].append(bw.matmul_peak(args.quick) if args.in_process
                                else _measure("peak", "numpy", t, args))
            for n in args.workloads:
                print(f"[bench] round {r + 1}/{args.rounds}, {t} thread(s), workload {n}: "
                      f"{WORKLOADS[n]} ...", flush=True)
                if args.in_process and n != 4:
                    runs, params = BUILDERS[n](order, args.quick)
                    times = _time_interleaved(runs, args.warmup, args.repeats)
                    for p in order:
                        data[t][n][p].append({"times": times[p], "params": params})
                    continue
                for p in order:
                    data[t][n][p].append(_measure(n, p, t, args))
    for t in args.threads:
        ok = [p for p in peaks[t] if "peak" in p]
        peak = None
        if ok:
            peak = {"peak": max(p["peak"] for p in ok), "rounds": ok}
        report["matmul_peak"][str(t)] = peak
        for n in args.workloads:
            params = _params_of(data[t][n])
            w = report["workloads"].setdefault(WORKLOADS[n], {"number": n, "title": TITLES[n],
                                                              "params": params, "threads": {}})
            w["threads"][str(t)] = _entry(n, data[t][n], peak, params)
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
    report["issue_table"] = issue_table(report)
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "bench.json")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
    for t in args.threads:
        print(_table(report, t))
        print()
    print(report["issue_table"])
    print(f"[bench] load average (1/5/15 min) at start {machine['load_average_at_start']}, "
          f"at end {report['machine']['load_average_at_end']} on {os.cpu_count()} CPUs")
    print(f"[bench] wrote {json_path}")
    if not args.no_plot:
        png = os.path.join(args.out_dir, "bench.png")
        _plot(report, png)
        print(f"[bench] wrote {png}")
    return report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            print(readme_section(json.load(f)))
        return 0
    if args.child:
        kind, provider = args.child
        _set_threads(args.threads[0], [provider] if kind != "peak" else ["torch"])
        if kind != "peak":
            _tune_memory_for([provider])
        print(json.dumps(_child_result(kind, provider, args)))
        return 0
    if args.in_process:
        _reexec_with_threads(args.threads[0], argv)
        _set_threads(args.threads[0], args.providers)
        _tune_memory_for(args.providers)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
