"""Same weights in, same outputs and gradients out: every layer and functional against PyTorch.

PyTorch's state dict is loaded into our module (this also tests load_state_dict with torch tensors),
both run on the same inputs, and a random cotangent is backpropagated through every output. Outputs,
input gradients and parameter gradients (by state-dict name) must agree to 1e-10 (float64) or 1e-5
(float32), relative to the reference's magnitude.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from module_gradcheck import flatten_outputs

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-10, "float32": 1e-5}
DTYPES = ["float64", "float32"]


def close(ours, theirs, dtype, what):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs PyTorch {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    err = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    assert err <= TOL[dtype] * scale, f"{what}: max difference {err:.3g} ({dtype})"


def _torch_flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _torch_flat(o)]
    return []


def compare(ours, theirs, grad_inputs, dtype, call=None, torch_call=None, consts=()):
    """Load theirs' weights into ours, run both on the float inputs ``grad_inputs`` (NumPy arrays,
    differentiated) and ``consts`` (passed as they are), compare outputs and all gradients."""
    theirs = theirs.to(getattr(torch, dtype))
    ours.to(dtype)
    ours.load_state_dict(theirs.state_dict())
    ta_in = [ta.tensor(a.astype(dtype), requires_grad=True) for a in grad_inputs]
    th_in = [torch.tensor(a.astype(dtype), requires_grad=True) for a in grad_inputs]
    call = call or (lambda m, *xs: m(*xs))
    torch_call = torch_call or call
    outs = flatten_outputs(call(ours, *ta_in, *consts))
    touts = _torch_flat(torch_call(theirs, *th_in, *consts))
    assert len(outs) == len(touts)
    rng = np.random.default_rng(0)
    cots = [rng.standard_normal(t.shape) for t in touts]
    for i, (o, t) in enumerate(zip(outs, touts)):
        close(o.numpy(), t.detach().numpy(), dtype, f"output {i}")
    loss = sum((o * ta.tensor(c.astype(dtype))).sum() for o, c in zip(outs, cots))
    tloss = sum((t * torch.tensor(c.astype(dtype))).sum() for t, c in zip(touts, cots))
    loss.backward()
    tloss.backward()
    for i, (a, b) in enumerate(zip(ta_in, th_in)):
        close(a.grad, b.grad.numpy(), dtype, f"gradient of input {i}")
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        tp = theirs_params[name]
        if tp.grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), f"{name}: PyTorch has no gradient"
        else:
            close(p.grad, tp.grad.numpy(), dtype, f"gradient of {name}")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------- simple layers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,)])
def test_linear(dtype, bias, shape):
    compare(nn.Linear(3, 4, bias=bias), torch.nn.Linear(3, 4, bias=bias), [randn(*shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 0, -2])
def test_embedding(dtype, padding_idx):
    ids = np.array([[0, 3, 5], [4, 4, 0]])
    compare(nn.Embedding(6, 3, padding_idx=padding_idx),
            torch.nn.Embedding(6, 3, padding_idx=padding_idx), [], dtype,
            call=lambda m, i: m(i if isinstance(m, nn.Module) else torch.as_tensor(i)),
            consts=(ids,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False},
                                    {"eps": 1e-3}])
def test_layer_norm(dtype, kwargs):
    compare(nn.LayerNorm(4, **kwargs), torch.nn.LayerNorm(4, **kwargs), [randn(2, 3, 4)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_two_axes(dtype):
    compare(nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4)), [randn(2, 3, 4)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours, theirs", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.Tanh(), torch.nn.Tanh()),
    (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
], ids=lambda m: type(m).__name__)
def test_activations(dtype, ours, theirs):
    compare(ours, theirs, [randn(3, 5) * 3], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_and_eval_dropout(dtype):
    ours = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.5), nn.LayerNorm(6),
                         nn.Linear(6, 2)).eval()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                 torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    compare(ours, theirs, [randn(4, 3)], dtype)


# ---------------------------------------------------------------------------- LSTM
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell(dtype, bias):
    compare(nn.LSTMCell(3, 4, bias=bias), torch.nn.LSTMCell(3, 4, bias=bias), [randn(2, 3)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_with_state_and_unbatched(dtype):
    compare(nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4),
            [randn(2, 3), randn(2, 4, seed=1), randn(2, 4, seed=2)], dtype,
            call=lambda m, x, h, c: m(x, (h, c)))
    compare(nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4),
            [randn(3), randn(4, seed=1), randn(4, seed=2)], dtype,
            call=lambda m, x, h, c: m(x, (h, c)))


LSTM_CONFIGS = [
    dict(),
    dict(bias=False),
    dict(num_layers=2),
    dict(batch_first=True),
    dict(bidirectional=True),
    dict(num_layers=3, bidirectional=True, batch_first=True, dropout=0.4),   # compared in eval
    dict(num_layers=2, bidirectional=True, bias=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", LSTM_CONFIGS, ids=str)
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm(dtype, config, with_state):
    ours, theirs = nn.LSTM(3, 4, **config).eval(), torch.nn.LSTM(3, 4, **config).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = randn(2, 5, 3) if config.get("batch_first") else randn(5, 2, 3)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    if with_state:
        compare(ours, theirs, [x, randn(layers, 2, 4, seed=1), randn(layers, 2, 4, seed=2)], dtype,
                call=lambda m, x, h, c: m(x, (h, c)))
    else:
        compare(ours, theirs, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_unbatched(dtype):
    ours, theirs = nn.LSTM(3, 4, num_layers=2, bidirectional=True), \
        torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    compare(ours, theirs, [randn(5, 3)], dtype)
    compare(nn.LSTM(3, 4), torch.nn.LSTM(3, 4), [randn(5, 3), randn(1, 4, seed=1),
                                                  randn(1, 4, seed=2)], dtype,
            call=lambda m, x, h, c: m(x, (h, c)))


def _packed_torch_call(lengths, batch_first, total_length):
    def call(m, x, h=None, c=None):
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, (hn, cn) = m(packed, None if h is None else (h, c))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                        total_length=total_length)
        return out, (hn, cn)
    return call


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", [dict(), dict(bidirectional=True),
                                    dict(num_layers=2, bidirectional=True, batch_first=True),
                                    dict(num_layers=2, bias=False)], ids=str)
def test_lstm_variable_lengths_match_packed_sequences(dtype, config):
    lengths = np.array([3, 6, 1, 4])
    batch_first = config.get("batch_first", False)
    x = randn(4, 6, 3) if batch_first else randn(6, 4, 3)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    ours, theirs = nn.LSTM(3, 4, **config), torch.nn.LSTM(3, 4, **config)
    compare(ours, theirs, [x, randn(layers, 4, 4, seed=1), randn(layers, 4, 4, seed=2)], dtype,
            call=lambda m, x, h, c: m(x, (h, c), lengths=lengths),
            torch_call=_packed_torch_call(lengths, batch_first, 6))


# ---------------------------------------------------------------------------- functional
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.15},
    {"ignore_index": 2}, {"weight": [0.5, 2.0, 1.0, 0.1]},
    {"weight": [0.5, 2.0, 1.0, 0.1], "ignore_index": 1, "label_smoothing": 0.3},
    {"weight": [0.5, 2.0, 1.0, 0.1], "label_smoothing": 0.2, "reduction": "none"},
], ids=str)
def test_cross_entropy(dtype, kwargs):
    target = np.array([0, 2, 1, 3, 2])
    logits = randn(5, 4) * 2
    _compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, logits, target, kwargs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"reduction": "none"}, {"label_smoothing": 0.1}], ids=str)
def test_cross_entropy_classes_on_axis_one(dtype, kwargs):
    target = np.array([[0, 2, 1], [3, 3, -100]])
    _compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, randn(2, 4, 3), target,
                  kwargs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.2, "weight": [1.0, 2.0, 0.5]},
                                    {"reduction": "none"}], ids=str)
def test_cross_entropy_probability_targets(dtype, kwargs):
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=4)
    _compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, randn(4, 3), probs, kwargs,
                  dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                    {"weight": [0.5, 2.0, 1.0]}, {"ignore_index": 0},
                                    {"weight": [0.5, 2.0, 1.0], "ignore_index": 1}], ids=str)
def test_nll_loss(dtype, kwargs):
    _compare_loss(F.nll_loss, torch.nn.functional.nll_loss, randn(5, 3), np.array([0, 1, 2, 1, 0]),
                  kwargs, dtype)


def _compare_loss(ours_fn, torch_fn, x, target, kwargs, dtype):
    tkw = dict(kwargs)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(np.array(tkw["weight"], dtype=dtype))
        kwargs = dict(kwargs, weight=np.array(kwargs["weight"], dtype=dtype))
    a = ta.tensor(x.astype(dtype), requires_grad=True)
    b = torch.tensor(x.astype(dtype), requires_grad=True)
    tt = torch.as_tensor(target.astype(dtype) if target.dtype.kind == "f" else target)
    target = target.astype(dtype) if target.dtype.kind == "f" else target
    out, tout = ours_fn(a, target, **kwargs), torch_fn(b, tt, **tkw)
    close(out.numpy(), tout.detach().numpy(), dtype, "loss")
    cot = np.random.default_rng(2).standard_normal(tout.shape)
    (out * ta.tensor(cot.astype(dtype))).sum().backward()
    (tout * torch.tensor(cot.astype(dtype))).sum().backward()
    close(a.grad, b.grad.numpy(), dtype, "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(dtype, reduction):
    x, y = randn(3, 4), randn(3, 4, seed=1)
    a, b = (ta.tensor(v.astype(dtype), requires_grad=True) for v in (x, y))
    ta_, tb = (torch.tensor(v.astype(dtype), requires_grad=True) for v in (x, y))
    out = F.mse_loss(a, b, reduction=reduction)
    tout = torch.nn.functional.mse_loss(ta_, tb, reduction=reduction)
    close(out.numpy(), tout.detach().numpy(), dtype, "loss")
    out.sum().backward()
    tout.sum().backward()
    close(a.grad, ta_.grad.numpy(), dtype, "input gradient")
    close(b.grad, tb.grad.numpy(), dtype, "target gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_softmax_family_and_linear(dtype):
    x = randn(3, 4, 5)
    for ours, theirs in [(lambda t: F.softmax(t, dim=1), lambda t: torch.softmax(t, dim=1)),
                         (lambda t: F.log_softmax(t, dim=-1), lambda t: torch.log_softmax(t, -1)),
                         (F.relu, torch.relu),
                         (lambda t: F.gelu(t, approximate="tanh"),
                          lambda t: torch.nn.functional.gelu(t, approximate="tanh"))]:
        close(ours(ta.tensor(x.astype(dtype))).numpy(),
              theirs(torch.tensor(x.astype(dtype))).numpy(), dtype, "activation")
    w, b = randn(2, 5, seed=3), randn(2, seed=4)
    close(F.linear(ta.tensor(x.astype(dtype)), ta.tensor(w.astype(dtype)),
                   ta.tensor(b.astype(dtype))).numpy(),
          torch.nn.functional.linear(*(torch.tensor(v.astype(dtype)) for v in (x, w, b))).numpy(),
          dtype, "linear")
