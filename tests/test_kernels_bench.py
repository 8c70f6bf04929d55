"""The benchmark's command line: usage, rejected arguments, the report a quick run writes, its
summary (median over rounds, spread, ratios, the issue's table) and the workloads themselves (each
runs; generation with a KV cache gives the same tokens as without one and as PyTorch).
(Nothing here is timed; --quick only checks that the harness works end to end.)"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tinyattn import bench, bench_workloads as bw

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_bench(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "tinyattn.bench", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def test_help_lists_the_options():
    res = run_bench("--help")
    assert res.returncode == 0
    for flag in ("--threads", "--rounds", "--repeats", "--workloads", "--quick", "--out-dir"):
        assert flag in res.stdout


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threads", "two"], ["--workloads", "9"],
                                  ["--repeats", "-1"], ["--rounds", "0"], ["--providers", "jax"],
                                  ["--bogus"], ["--in-process", "--threads", "1", "2"]])
def test_bad_arguments_exit_2_with_usage(args):
    with pytest.raises(SystemExit) as e:      # argparse itself, in-process: no subprocess needed
        bench.parse_args(args)
    assert e.value.code == 2


def test_bad_arguments_exit_2_from_the_command_line():
    res = run_bench("--rounds", "0")
    assert res.returncode == 2
    assert "usage: python -m tinyattn.bench" in res.stderr


def test_quick_run_writes_a_report_with_the_expected_keys(tmp_path):
    # one provider, two rounds: two child processes (the ratios are checked on made-up rounds below)
    res = run_bench("--quick", "--threads", "1", "--rounds", "2", "--workloads", "5",
                    "--providers", "numba", "--out-dir", str(tmp_path), "--no-plot")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["threads"] == [1] and report["rounds"] == 2 and report["quick"] is True
    assert report["dtype"] == "float32"
    cpu = report["machine"]["cpu"]
    assert cpu["vector_bits"] in (128, 256, 512) and cpu["model"]
    assert set(report["workloads"]) == {"overhead"}
    entry = report["workloads"]["overhead"]["threads"]["1"]
    assert set(entry["results"]) == {"numba"}
    res_p = entry["results"]["numba"]
    assert len(res_p["runs_s"]) == 4 and len(res_p["rounds_median_s"]) == 2
    assert res_p["median_s"] > 0 and res_p["spread_over"] == "rounds"
    assert "| 5 op overhead, 100 tiny ops | - |" in res.stdout     # no torch: no ratio
    assert "| workload | 1 thread |" in res.stdout and report["issue_table"] in res.stdout


def _child(times, **extra):
    return dict({"times": times, "params": {"batch": 1, "heads": 2, "length": 4, "head_dim": 8}},
                **extra)


def test_summary_is_the_median_over_rounds_with_its_spread():
    per_provider = {"numba": [_child([1.0, 3.0, 2.0]), _child([4.0, 4.0, 4.0]), _child([6.0])],
                    "torch": [_child([2.0]), _child([2.0]), _child([2.0])]}
    entry = bench._entry(3, per_provider, {"peak": 10.0}, per_provider["numba"][0]["params"])
    numba = entry["results"]["numba"]
    assert numba["rounds_median_s"] == [2.0, 4.0, 6.0] and numba["median_s"] == 4.0
    assert numba["spread"] == pytest.approx((6.0 - 2.0) / 4.0) and numba["min_s"] == 1.0
    assert entry["ratio_numba_to_torch"] == 2.0
    assert entry["ratio_numba_to_torch_rounds"] == [1.0, 2.0, 3.0]
    flops = 7 * 1 * 2 * 4 * 4 * 8                     # 7·T²·d per head
    assert entry["flops"] == flops
    assert entry["percent_of_peak"]["numba"] == pytest.approx(100 * flops / 4.0 / 1e9 / 10.0)


def test_a_failed_child_is_reported_not_hidden():
    entry = bench._entry(5, {"numba": [{"error": ["boom"]}], "torch": [_child([1.0])]}, None, None)
    assert entry["results"]["numba"] == {"error": ["boom"]}
    assert "ratio_numba_to_torch" not in entry


def test_issue_table_has_a_row_per_workload_and_a_column_per_thread_count():
    report = {"threads": [1, 2], "rounds": 3,
              "machine": {"torch": "2.x", "cpu": {"model": "CPU", "llvm_cpu": "x", "vector_bits": 256,
                                                  "cpus": 2}},
              "workloads": {}}
    for n, t1, t2 in ((1, 0.5, 1.5), (3, 2.0, 1.0)):
        w = {"number": n, "title": bench.TITLES[n], "threads": {}}
        for t, ratio in ((1, t1), (2, t2)):
            e = {"ratio_numba_to_torch": ratio, "ratio_numba_to_torch_spread": 0.1, "results": {}}
            if n == 3:
                e["percent_of_peak"] = {"numba": 42.0}
            w["threads"][str(t)] = e
        report["workloads"][bench.WORKLOADS[n]] = w
    table = bench.issue_table(report)
    assert "| workload | 1 thread | 2 threads |" in table
    assert "| 1 LSTM fwd+bwd | 0.50 | 1.50 |" in table
    assert "| 3 causal attention, 4x4 heads, length 1024 | 2.00 (42% of sgemm peak) | 1.00 (42% of sgemm peak) |" in table
    assert "±0.05" in table and "256-bit" in table


@pytest.mark.parametrize("number", sorted(bench.BUILDERS))
def test_every_workload_runs_for_every_provider(number):
    providers = ["numba", "numpy"] + (["torch"] if bw._torch() is not None else [])
    runs, params = bench.BUILDERS[number](providers, True)
    assert set(runs) == set(providers) and params
    for fn in runs.values():
        fn()


def test_generation_with_a_kv_cache_gives_the_tokens_of_the_full_recomputation():
    import tinyattn as ta
    import tinyattn.nn.functional as F
    from tinyattn import kernels

    P, sizes, prompt, n_new = bw.generation_setup(True)
    ours = {k: ta.tensor(v.astype(np.float64)) for k, v in P.items()}
    with kernels.using("numpy"):
        cached = bw.generate(ta, F, ours, sizes, prompt, n_new, True)
        full = bw.generate(ta, F, ours, sizes, prompt, n_new, False)
    assert cached.shape == (prompt.shape[0], prompt.shape[1] + n_new)
    np.testing.assert_array_equal(cached[:, :prompt.shape[1]], prompt)
    np.testing.assert_array_equal(cached, full)
    # the same logits as one full forward pass, step by step (not just the same argmax)
    caches = bw._new_caches(ta, sizes["layers"])          # tinyattn's nn.KVCache, one per layer
    step = bw._decoder_forward(ta, F, ours, cached[:, :-1][:, :prompt.shape[1]], 0, caches,
                               sizes["layers"], sizes["heads"])
    whole = bw._decoder_forward(ta, F, ours, cached[:, :-1], 0, None, sizes["layers"], sizes["heads"])
    np.testing.assert_allclose(step.numpy(), whole.numpy()[:, :prompt.shape[1]], atol=1e-12)
    t0 = prompt.shape[1]
    for i in range(t0, cached.shape[1] - 1):
        one = bw._decoder_forward(ta, F, ours, cached[:, i:i + 1], i, caches, sizes["layers"],
                                  sizes["heads"])
        np.testing.assert_allclose(one.numpy()[:, 0], whole.numpy()[:, i], atol=1e-12)
    torch = pytest.importorskip("torch")
    theirs = {k: torch.from_numpy(v.astype(np.float64)) for k, v in P.items()}
    np.testing.assert_array_equal(bw.generate(torch, torch.nn.functional, theirs, sizes, prompt,
                                              n_new, True), cached)


def test_readme_section_is_regenerated_from_a_bench_json(tmp_path):
    report = {"threads": [1, 2], "rounds": 3,
              "machine": {"torch": "2.x", "numpy": "2.4", "numba": "0.68",
                          "load_average_at_start": [0.1, 0.1, 0.1], "load_average_at_end": [1.2, 1, 1],
                          "cpu": {"model": "Some CPU", "llvm_cpu": "x", "vector_bits": 512, "cpus": 2}},
              "workloads": {}}
    w = {"number": 1, "title": bench.TITLES[1], "threads": {}}
    for t, (ours, theirs) in ((1, (0.002, 0.004)), (2, (1.5, 1.0))):
        w["threads"][str(t)] = {"ratio_numba_to_torch": ours / theirs, "ratio_numba_to_torch_spread": 0.2,
                                "results": {"numba": {"median_s": ours}, "torch": {"median_s": theirs}}}
    report["workloads"][bench.WORKLOADS[1]] = w
    text = bench.readme_section(report)
    assert "Some CPU (x, 512-bit vectors, 2 CPUs)" in text and "--rounds 3`" in text
    assert "| 1 LSTM fwd+bwd | 1 | 2 ms | - | 4 ms | **0.50x** | ±0.10 |" in text
    assert "| 1 LSTM fwd+bwd | 2 | 1.50 s | - | 1.00 s | **1.50x** | ±0.10 |" in text
    assert bench.issue_table(report) in text and "0.1 at the start, 1.2 at the end" in text
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report))
    res = run_bench("--from-json", str(path))
    assert res.returncode == 0 and res.stdout.strip() == text.strip()


def test_pytorchs_process_never_starts_numbas_thread_pool(monkeypatch):
    """Two OpenMP pools in PyTorch's process (its own and Numba's) made its 2-thread runs ~100x
    slower: the torch child sets PyTorch's threads only, ours set Numba's."""
    numba = pytest.importorskip("numba")
    torch = pytest.importorskip("torch")
    calls = []
    monkeypatch.setattr(numba, "set_num_threads", lambda n: calls.append(("numba", n)))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("torch", n)))
    bench._set_threads(2, ["torch"])
    assert calls == [("torch", 2)]
    calls.clear()
    bench._set_threads(1, ["numba"])
    assert calls == [("numba", 1)]
