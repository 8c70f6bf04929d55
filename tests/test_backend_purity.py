"""The Chainer habit, enforced: op and module code asks the array for its module, and a training step
never moves data between host and device unless the user asks (``.numpy()``, printing, saving).

Three checks, all runnable without a GPU:

1. On the NumPy backend, every host-conversion helper (``backend.to_numpy``, ``Tensor.numpy``,
   ``.item``, ``.tolist``, ``np.asarray(tensor)``) is counted during full training steps
   (embedding, positional encoding, Transformer encoder with causal and padding masks, LSTM with
   lengths, memory-efficient attention, dropout, LayerNorm, cross-entropy, backward,
   clip_grad_norm_, AdamW / SGD, a schedule): the count must be zero.
2. The same steps run on ``fakecupy``: arrays that refuse NumPy (no implicit conversion, no
   ``numpy.*`` functions, no mixing with host arrays), like CuPy's. The step must run, give the
   same numbers as the NumPy backend, make no array transfer, and read scalars back only in input
   validation. Every kernel's xp twin runs on these arrays too.
3. A static scan: no ``np.<function>(...)`` in ops (which hold the reference
   kernels)/attention/nn/optim/functional.py except an explicit, commented allow-list.

What this cannot show: that CuPy's kernels and CUDA give these numbers. tests/test_cupy_backend.py
does that where a GPU is present.
"""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import traceback

import numpy as np
import pytest

import fakecupy
import kernel_cases
import tinyattn as ta
from tinyattn import backend, kernels, nn, optim
from tinyattn import functional as F
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.autograd.tensor import Tensor
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention

PACKAGE = pathlib.Path(ta.__file__).parent
V, D, NH, FF, B, T = 13, 16, 2, 32, 3, 6


# ------------------------------------------------------------------------------ a training step
def _model():
    ta.manual_seed(0)
    return nn.ModuleDict({
        "emb": nn.Embedding(V, D, padding_idx=0),
        "pos": nn.PositionalEncoding(D, dropout=0.1, batch_first=True),
        "enc": nn.TransformerEncoder(nn.TransformerEncoderLayer(
            D, NH, FF, dropout=0.1, activation="gelu", batch_first=True), 2),
        "lstm": nn.LSTM(D, D // 2, batch_first=True, bidirectional=True),
        "norm": nn.LayerNorm(D),
        "head": nn.Linear(D, V),
    })


def _data():
    """Token ids padded with 0 after each length, on the active backend."""
    lengths = [6, 4, 1]
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, V, (B, T))
    for b, n in enumerate(lengths):
        tokens[b, n:] = 0
    targets = np.roll(tokens, -1, axis=1)
    return ta.tensor(tokens), ta.tensor(targets), ta.tensor(lengths)


def _step(m, opt, sched, tokens, targets, lengths):
    x = m["pos"](m["emb"](tokens))
    h = m["enc"](x, mask=nn.generate_square_subsequent_mask(T),
                 src_key_padding_mask=tokens == 0)
    out, _ = m["lstm"](h, lengths=lengths)
    q = ta.reshape(out, (B, T, NH, D // NH)).transpose(0, 2, 1, 3)           # (B, NH, T, d)
    att = memory_efficient_attention(q, q, q, causal=True, key_lengths=lengths)
    att = att + scaled_dot_product_attention(q, q, q, is_causal=True, dropout_p=0.1)
    y = out + ta.reshape(att.transpose(0, 2, 1, 3), (B, T, D))
    logits = m["head"](m["norm"](y))
    loss = F.cross_entropy(ta.reshape(logits, (B * T, V)), ta.reshape(targets, (B * T,)),
                           ignore_index=0, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    optim.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss


def _run(n_steps=2, watch=None):
    """Build, then take n_steps steps (the window ``watch`` is a context manager around them).
    Returns the losses (as arrays of the backend) and the model."""
    m = _model()
    m.train()
    tokens, targets, lengths = _data()
    params = list(m.parameters())
    opt = optim.AdamW([{"params": params[:5]}, {"params": params[5:]}], lr=1e-2, weight_decay=0.01)
    sched = optim.LambdaLR(opt, lambda k: 1.0 / (k + 1))
    losses = []
    with (watch() if watch else _null()):
        for _ in range(n_steps):
            losses.append(_step(m, opt, sched, tokens, targets, lengths).array)
        sgd = optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
        loss = _step(m, sgd, optim.LambdaLR(sgd, lambda k: 1.0), tokens, targets, lengths)
        losses.append(loss.array)
    return losses, m


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------ 1. NumPy backend
class _HostCalls:
    """Counts every call of the host-conversion helpers while active, with where it came from."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.mp = monkeypatch
        self.active = False

    def _wrap(self, name, fn):
        def counted(*args, **kwargs):
            if self.active:
                stack = [f for f in traceback.extract_stack()[:-1] if "tinyattn" in f.filename]
                self.calls.append(f"{name} from " + " <- ".join(
                    f"{f.filename.rsplit('tinyattn/', 1)[-1]}:{f.lineno}" for f in stack[-3:][::-1]))
            return fn(*args, **kwargs)
        return counted

    def install(self):
        # backend.to_numpy and every module that imported it by name
        original = backend.to_numpy
        wrapped = self._wrap("to_numpy", original)
        for name, mod in list(sys.modules.items()):
            if name.startswith("tinyattn") and getattr(mod, "to_numpy", None) is original:
                self.mp.setattr(mod, "to_numpy", wrapped)
        for meth in ("numpy", "item", "tolist", "__array__"):
            self.mp.setattr(Tensor, meth, self._wrap(f"Tensor.{meth}", getattr(Tensor, meth)))
        return self

    def __call__(self):
        outer = self

        class Window:
            def __enter__(self):
                outer.active = True

            def __exit__(self, *exc):
                outer.active = False
                return False
        return Window()


def test_a_training_step_makes_no_host_conversions_on_numpy(monkeypatch):
    host = _HostCalls(monkeypatch).install()
    with kernels.using("numpy"):
        losses, m = _run(watch=host)
    assert host.calls == [], "host conversions inside a training step:\n  " + "\n  ".join(host.calls)
    assert all(np.isfinite(loss) for loss in losses)
    # the counter is live: a user's .numpy() and float() are seen (and allowed outside the window)
    with host():
        float(Tensor(losses[-1]))
        m["head"].weight.numpy()
    assert {"Tensor.item", "Tensor.numpy", "to_numpy"} == {c.split()[0] for c in host.calls}


# ------------------------------------------------------------------------------ 2. foreign arrays
@pytest.fixture
def fake(monkeypatch):
    return fakecupy.install(monkeypatch)


def test_the_fake_device_arrays_refuse_numpy(fake):
    x = fake.asarray(np.arange(3.0))
    assert fakecupy.ledger["h2d"] == 1
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="numpy.concatenate"):
        np.concatenate([x, x])
    with pytest.raises(TypeError, match="does not mix"):
        x + np.ones(3)
    with pytest.raises(TypeError, match="host arrays"):
        fake.where(np.ones(3, bool), x, 0)
    assert isinstance(x.sum(), fakecupy.DeviceArray)          # reductions stay on the device
    assert backend.get_array_module(x) is fake and backend.get_array_module(Tensor(x)) is fake
    assert ta.zeros(2).array.__class__ is fakecupy.DeviceArray  # the active backend is the fake
    assert fakecupy.ledger["d2h"] == 0
    backend.to_numpy(x)
    assert fakecupy.ledger["d2h"] == 1


def test_moving_a_tensor_lands_on_the_asked_backend_whatever_the_active_one(fake, monkeypatch):
    monkeypatch.setattr(backend, "_ACTIVE", "numpy")
    x = ta.ones(2, requires_grad=True)
    on_gpu = x.cuda()
    assert isinstance(on_gpu.array, fakecupy.DeviceArray) and on_gpu.device == "cuda"
    assert on_gpu.requires_grad and on_gpu.is_leaf
    assert isinstance(x.to("cuda").cpu().array, np.ndarray)
    monkeypatch.setattr(backend, "_ACTIVE", "cupy")
    y = ta.ones(2)
    assert isinstance(y.array, fakecupy.DeviceArray) and isinstance(y.cpu().array, np.ndarray)


# where a scalar may be read back during a step: input validation only (each is one bool, or the
# numbers for an error message that is about to be raised)
VALIDATION_SITES = ("ops/embedding.py", "ops/cross_entropy.py", "ops/lstm.py", "nn/lstm.py",
                    "ops/memory_efficient_attention.py", "nn/transformer.py")


def test_a_training_step_runs_on_device_arrays_without_transfers(fake, monkeypatch):
    fakecupy.ledger.clear()
    fakecupy.where.clear()
    m_holder = {}

    class Window:
        def __enter__(self):
            fakecupy.ledger.clear()
            fakecupy.where.clear()

        def __exit__(self, *exc):
            m_holder["ledger"] = dict(fakecupy.ledger)
            m_holder["where"] = {k: list(v) for k, v in fakecupy.where.items()}
            return False

    losses, m = _run(watch=Window)
    ledger, where = m_holder["ledger"], m_holder["where"]
    assert ledger.get("d2h", 0) == 0, "device->host copies in a step:\n  " + "\n  ".join(where["d2h"])
    assert ledger.get("h2d", 0) == 0, "host->device copies in a step:\n  " + "\n  ".join(where["h2d"])
    stray = [w for w in where.get("sync", [])
             if not w.startswith(tuple("tinyattn/" + s for s in VALIDATION_SITES))]
    assert not stray, "scalar reads outside input validation:\n  " + "\n  ".join(stray)
    assert 0 < ledger.get("sync", 0) <= 3 * 8          # three steps: 6 checks each today
    for name, p in m.named_parameters():
        assert isinstance(p.array, fakecupy.DeviceArray), name
        assert isinstance(p.grad.array, fakecupy.DeviceArray), name

    # the same numbers as the NumPy backend (same seeds, same generator stream, same twins)
    fake_losses = [backend.to_numpy(v) for v in losses]
    fake_head = backend.to_numpy(m["head"].weight.array)
    monkeypatch.setattr(backend, "_ACTIVE", "numpy")
    with kernels.using("numpy"):
        np_losses, m_np = _run()
    np.testing.assert_allclose(fake_losses, np_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fake_head, m_np["head"].weight.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,label,args", list(kernel_cases.cases()),
                         ids=[f"{n}-{lab}" for n, lab, _ in kernel_cases.cases()])
def test_every_kernel_twin_runs_on_device_arrays(fake, name, label, args):
    expected = kernel_cases.host(kernels.implementation(name, "numpy")(*args), np.asarray)
    impl = kernels.get(name, *[a for a in args if isinstance(a, np.ndarray)][:1])
    assert impl is kernels._KERNELS[name]["numba" if kernels.current() == "numba" and
                                          "numba" in kernels.available(name) else "numpy"]
    dev_args = kernel_cases.move(args, fake.asarray)
    assert kernels.get(name, *dev_args) is kernels.implementation(name, "numpy")   # xp twin for device
    fakecupy.ledger.clear()
    got = kernels.get(name, *dev_args)(*dev_args)
    assert fakecupy.ledger.get("d2h", 0) == 0 and fakecupy.ledger.get("h2d", 0) == 0
    for g, e in zip(kernel_cases.host(got, backend.to_numpy), expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def _registry_cases():
    import test_gradcheck_registry as reg  # noqa: PLC0415

    return reg.CASES


@pytest.mark.parametrize("case", _registry_cases(), ids=lambda c: c.id)
def test_every_registered_op_passes_gradcheck_on_device_arrays(fake, case):
    """The whole op registry (each op's float64 gradient check) on CuPy-like arrays: no op falls
    back to NumPy, none mixes host and device arrays (masks and indices given as NumPy arrays are
    moved over once, as tensor() moves them)."""
    inputs = case.inputs()
    assert any(isinstance(getattr(t, "array", None), fakecupy.DeviceArray) for t in inputs)
    assert ta.gradcheck(case.fn, inputs, **case.kwargs)


def test_gradcheck_and_module_moves_work_with_device_arrays(fake):
    ta.set_default_dtype("float64")
    try:
        ta.manual_seed(0)
        x = ta.randn(3, 5, requires_grad=True)
        w = ta.randn(5, requires_grad=True)
        assert isinstance(x.array, fakecupy.DeviceArray)
        assert ta.gradcheck(lambda a, b: F.layer_norm(a, (5,), weight=b).sum(), [x, w])
        assert ta.gradcheck(lambda a: F.gelu(a) * ta.softmax(a, axis=-1), [x])
    finally:
        ta.set_default_dtype("float32")
    lin = nn.Linear(4, 2)
    assert isinstance(lin.weight.array, fakecupy.DeviceArray)
    state = lin.state_dict()                          # saving is an explicit copy to the host
    assert isinstance(state["weight"], np.ndarray)
    lin.to("cpu")
    assert isinstance(lin.weight.array, np.ndarray)
    lin.to("cuda")
    assert isinstance(lin.weight.array, fakecupy.DeviceArray)


# ------------------------------------------------------------------------------ 3. static scan
# np.<name>(...) calls allowed anywhere: they read or build dtypes/shapes, never array data
METADATA = {"dtype", "errstate", "broadcast_shapes", "result_type", "finfo", "iinfo", "issubdtype",
            "promote_types", "can_cast"}
# per file: calls on host data that is not (yet) a tensor's array, each with its reason
ALLOWED = {
    # the sinusoid table is computed once, on the host in float64, at construction, then moved to
    # the active backend in one copy (PositionalEncoding.__init__)
    "nn/positional.py": {"arange", "exp", "zeros", "sin", "cos"},
    # erf for NumPy arrays only (Numba ufunc or np.vectorize); CuPy arrays take cupyx's erf
    "ops/special.py": {"zeros", "vectorize"},
    # normalises the static pad_width argument (Python ints), not array data
    "ops/shape.py": {"asarray", "broadcast_to"},
    # the dtype of an attn_mask given as a Python list
    "attention/attend.py": {"asarray"},
    # load_state_dict: values from outside (lists, torch tensors) copied in on the user's request
    "nn/module.py": {"asarray"},
}
SCANNED = ("ops", "attention", "nn", "models", "optim", "functional.py",
           "kernels/cupy_gpu.py")


def _numpy_calls(path):
    tree = ast.parse(path.read_text())
    names = {"np", "numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            while isinstance(base, ast.Attribute):      # np.random.default_rng(...) -> np
                base = base.value
            if isinstance(base, ast.Name) and base.id in names:
                yield node.lineno, ast.unparse(node.func)


def test_op_and_module_code_asks_the_array_for_its_module():
    files = []
    for part in SCANNED:
        p = PACKAGE / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert len(files) > 30
    bad = []
    for f in files:
        rel = f.relative_to(PACKAGE).as_posix()
        for line, func in _numpy_calls(f):
            short = func.split(".", 1)[1]
            if short in METADATA or short in ALLOWED.get(rel, set()):
                continue
            bad.append(f"{rel}:{line}: {func}(...)")
    assert not bad, ("NumPy called directly on what may be a CuPy array; use xp = "
                     "get_array_module(x) (or add a commented entry to ALLOWED):\n  " + "\n  ".join(bad))


def _xp_names():
    """Every ``xp.<name>`` / ``cp.<name>`` (and ``xp.<a>.<b>``) the package uses."""
    used = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("xp", "cp"):
                used.setdefault(node.attr, f.relative_to(PACKAGE).as_posix())
            elif (isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
                  and node.value.value.id in ("xp", "cp")):
                used.setdefault(f"{node.value.attr}.{node.attr}", f.relative_to(PACKAGE).as_posix())
    return used


def test_xp_functions_used_by_the_package_exist_in_cupy():
    """CuPy has most of NumPy's namespace, not all of it (no errstate, no vectorize). Checked
    against CuPy itself where it is installed (a GPU is not needed to import it), else against
    fakecupy's list of NumPy-only names."""
    used = _xp_names()
    assert {"where", "exp", "zeros"} <= set(used)
    try:
        import cupy  # noqa: PLC0415
    except Exception:  # noqa: BLE001
        cupy = None
    missing = []
    for name, where_used in sorted(used.items()):
        if cupy is not None:
            obj = cupy
            try:
                for part in name.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                missing.append(f"{where_used}: xp.{name}")
        elif name.split(".")[0] in fakecupy.NOT_IN_CUPY:
            missing.append(f"{where_used}: xp.{name}")
    assert not missing, "NumPy-only names used through xp (they fail on CuPy):\n  " + "\n  ".join(missing)


def test_the_static_scan_sees_a_violation(tmp_path):
    f = tmp_path / "op.py"
    f.write_text("import numpy as np\ndef f(x):\n    return np.exp(x) + np.random.rand(2)\n")
    assert [c for _, c in _numpy_calls(f)] == ["np.exp", "np.random.rand"]


# ------------------------------------------------------------------------------ 4. lessons
@pytest.mark.slow
@pytest.mark.parametrize("lesson", ["01_tensors_and_autograd", "04_masks_and_irregular_sequences",
                                    "07_sequential_vs_parallel"])
def test_a_lesson_runs_with_backend_cupy_on_device_arrays(lesson, tmp_path):
    """A learner's one-flag switch, ``--backend cupy``, with fakecupy standing in for CuPy: the
    lesson must pass without ever mixing host and device arrays (quick lessons; every lesson was
    run this way by hand: python tests/run_with_fakecupy.py lessons/NN_x.py --backend cupy)."""
    root = PACKAGE.parent
    proc = subprocess.run([sys.executable, str(root / "tests" / "run_with_fakecupy.py"),
                           str(root / "lessons" / f"{lesson}.py"), "--backend", "cupy",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "CRITERION: PASS" in proc.stdout
    assert "backend cupy" in proc.stdout
