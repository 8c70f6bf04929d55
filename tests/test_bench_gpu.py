"""The benchmark's GPU column (tinyattn/bench_gpu.py): without a GPU it says so and exits 0; its
timing harness runs on NumPy and, through tests/fakecupy.py, down the CuPy path (tiny sizes: these
check the harness, never the speed)."""
from __future__ import annotations

import pytest

import fakecupy
from tinyattn import bench_gpu

TINY = dict(batch=2, length=4, d_model=8, nhead=2, vocab=7, steps=1, warmup=1)


@pytest.mark.skipif(bench_gpu.gpu_present(), reason="a GPU is present: the real run is in test_cupy_backend")
def test_without_a_gpu_it_prints_skipped_and_exits_0(capsys):
    assert bench_gpu.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: no GPU") and "CuPy" in out and "PyTorch" in out


def test_the_numpy_row_is_timed_and_the_gpu_rows_say_why_not():
    rows = bench_gpu.run(**TINY)
    by = {r["backend"]: r for r in rows}
    assert list(by) == ["numpy", "cupy", "torch-cuda"]
    assert by["numpy"]["ms_per_step"] > 0 and by["numpy"]["steps"] == 1
    if not bench_gpu.gpu_present():
        assert by["cupy"]["ms_per_step"] is None and by["cupy"]["note"].startswith("skipped: no GPU")
    text = bench_gpu.table(rows)
    assert "batch 2, length 4, d_model 8" in text and "numpy" in text


def test_the_cupy_row_runs_on_device_arrays(monkeypatch):
    fakecupy.install(monkeypatch)
    rows = bench_gpu.run(**TINY, skip=("numpy", "torch-cuda"))
    cupy_row = rows[1]
    assert cupy_row["backend"] == "cupy" and cupy_row["ms_per_step"] > 0, cupy_row
    assert fakecupy.ledger.get("d2h", 0) == 0
