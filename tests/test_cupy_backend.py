"""The same library on CuPy: kernels, ops, gradients, modules, optimisers, a lesson and the GPU
benchmark, each compared with the NumPy backend. Runs only where CuPy imports and sees a GPU;
elsewhere every test here is skipped with the reason (CI has no GPU).

Without a GPU the same promises are checked as far as they can be: tests/test_backend_purity.py
(no host transfers, no NumPy fallback, on CuPy-like arrays) and tests/test_cupy_kernels_emulated.py
(the GPU kernels' arithmetic, on the CPU).
"""
from __future__ import annotations

import copy
import importlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import kernel_cases
import tinyattn as ta
from tinyattn import backend, kernels, nn, optim
from tinyattn import functional as F

requires_gpu = pytest.mark.skipif(not backend.cupy_available(),
                                  reason="needs CuPy and a visible GPU (pip install -e '.[gpu]')")
pytestmark = [requires_gpu, pytest.mark.gpu]

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def cp():
    import cupy  # noqa: PLC0415

    yield cupy
    backend.set_backend("numpy")
    ta.set_default_dtype("float32")


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if str(dtype) == "float32" else dict(rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------ kernels
KCASES = [(n, lab, dt, args) for dt in ("float32", "float64")
          for n, lab, args in kernel_cases.cases(dt)]


@pytest.mark.parametrize("name,label,dtype,args", KCASES,
                         ids=[f"{n}-{lab}-{dt}" for n, lab, dt, _ in KCASES])
def test_cupy_kernel_matches_its_numpy_twin(cp, name, label, dtype, args):
    expected = kernel_cases.host(kernels.implementation(name, "numpy")(*copy.deepcopy(args)), np.asarray)
    dev = kernel_cases.move(args, cp.asarray)
    impl = kernels.get(name, *[a for a in dev if isinstance(a, cp.ndarray)][:1])
    if name != "embedding_backward":          # its GPU path is the twin's cupyx.scatter_add
        assert impl is kernels.implementation(name, "cupy"), f"{name}: CuPy arrays must get the CuPy kernel"
    got = impl(*dev)
    got_host = kernel_cases.host(got, cp.asnumpy)
    if not isinstance(expected, list):
        expected, got_host = [expected], [got_host]
    for g, e in zip(got_host, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, **_tol(dtype))


# ------------------------------------------------------------------------------ gradients
def _registry_cases():
    import test_gradcheck_registry as reg  # noqa: PLC0415

    return reg.CASES


@pytest.mark.parametrize("case", _registry_cases(), ids=lambda c: c.id)
def test_every_registered_op_passes_gradcheck_on_cupy(cp, case):
    backend.set_backend("cupy")
    inputs = case.inputs()
    assert any(isinstance(getattr(t, "array", None), cp.ndarray) for t in inputs)
    assert ta.gradcheck(case.fn, inputs, **case.kwargs)


# ------------------------------------------------------------------------------ a training step
def _step_model():
    return nn.ModuleDict({
        "emb": nn.Embedding(11, 16, padding_idx=0),
        "enc": nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0,
                                                                batch_first=True), 2),
        "lstm": nn.LSTM(16, 8, batch_first=True, bidirectional=True),
        "head": nn.Linear(16, 11),
    })


def _train(m, tokens, lengths, steps=3):
    opt = optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        h = m["enc"](m["emb"](tokens), mask=nn.generate_square_subsequent_mask(tokens.shape[1]),
                     src_key_padding_mask=tokens == 0)
        out, _ = m["lstm"](h, lengths=lengths)
        loss = F.cross_entropy(ta.reshape(m["head"](out), (-1, 11)), ta.reshape(tokens, (-1,)),
                               ignore_index=0)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
    return losses


def test_a_training_step_on_cupy_matches_numpy_and_makes_no_transfers(cp, monkeypatch):
    ta.manual_seed(0)
    m_np = _step_model()
    m_cp = copy.deepcopy(m_np).to("cuda")
    tok = np.array([[3, 4, 5, 6, 7], [2, 9, 3, 0, 0], [5, 0, 0, 0, 0]])
    lengths = [5, 3, 1]
    ref = _train(m_np, ta.tensor(tok), ta.tensor(lengths))
    backend.set_backend("cupy")
    tokens, lens = ta.tensor(tok), ta.tensor(lengths)
    assert isinstance(tokens.array, cp.ndarray)
    # count every device->host array copy while training (float(loss) is a scalar read, allowed):
    # cupy.asnumpy and tinyattn's to_numpy, wherever it was imported
    copies = []
    real_asnumpy, real_to_numpy = cp.asnumpy, backend.to_numpy

    def counted(fn, name):
        return lambda *a, **k: copies.append(name) or fn(*a, **k)

    monkeypatch.setattr(cp, "asnumpy", counted(real_asnumpy, "cupy.asnumpy"))
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("tinyattn") and getattr(mod, "to_numpy", None) is real_to_numpy:
            monkeypatch.setattr(mod, "to_numpy", counted(real_to_numpy, f"{mod_name}.to_numpy"))
    got = _train(m_cp, tokens, lens)
    monkeypatch.undo()
    assert copies == []
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    for (name, p_np), (_, p_cp) in zip(m_np.named_parameters(), m_cp.named_parameters()):
        assert isinstance(p_cp.array, cp.ndarray), name
        np.testing.assert_allclose(cp.asnumpy(p_cp.array), p_np.array, rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_memory_efficient_attention_and_dropout_run_on_cupy(cp):
    from tinyattn.ops.memory_efficient_attention import memory_efficient_attention  # noqa: PLC0415

    backend.set_backend("cupy")
    ta.manual_seed(0)
    q = ta.randn(2, 2, 300, 8, requires_grad=True)
    out = memory_efficient_attention(q, q, q, causal=True, key_lengths=[300, 17])
    out.sum().backward()
    assert isinstance(out.array, cp.ndarray) and isinstance(q.grad, cp.ndarray)
    backend.set_backend("numpy")
    q_np = ta.tensor(cp.asnumpy(q.array))
    ref = memory_efficient_attention(q_np, q_np, q_np, causal=True, key_lengths=[300, 17])
    np.testing.assert_allclose(cp.asnumpy(out.array), ref.numpy(), rtol=1e-4, atol=1e-5)
    backend.set_backend("cupy")
    d = F.dropout(ta.ones(1000), 0.5)
    assert isinstance(d.array, cp.ndarray) and 300 < int((d.array == 0).sum()) < 700


# ------------------------------------------------------------------------------ lessons, benchmark
def test_a_lesson_runs_with_backend_cupy(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "lessons" / "12_transformer_encoder.py"),
                           "--backend", "cupy", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CRITERION: PASS" in proc.stdout


def test_the_gpu_benchmark_runs_at_a_small_size(cp):
    bench_gpu = importlib.import_module("tinyattn.bench_gpu")
    rows = bench_gpu.run(batch=4, length=16, d_model=32, nhead=2, steps=2, warmup=1)
    names = [r["backend"] for r in rows]
    assert "numpy" in names and "cupy" in names
    assert all(r["ms_per_step"] > 0 for r in rows if r.get("ms_per_step") is not None)
