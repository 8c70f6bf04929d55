"""The layers and losses PyTorch tutorials use beyond the basics (RNN, GRU, their cells, Identity,
Flatten, Unflatten, LazyLinear, the KL / BCE / smooth-L1 / Huber losses), against PyTorch: same
weights (PyTorch's state dict loaded), same inputs, same outputs and gradients."""
from __future__ import annotations

import numpy as np
import pytest
from torch_parity import Const, Grad, assert_close, check_against_torch

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn

torch = pytest.importorskip("torch")

DTYPES = ["float64", "float32"]


def rnd(*shape, seed=0, lo=-1.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def _torch_module(cls, *args, **kwargs):
    torch.manual_seed(0)
    return getattr(torch.nn, cls)(*args, **kwargs)


RECURRENT = [
    ("RNN", dict(), "time-major, one layer"),
    ("RNN", dict(nonlinearity="relu", num_layers=2, batch_first=True), "relu, 2 layers, batch first"),
    ("RNN", dict(bidirectional=True, bias=False), "bidirectional, no bias"),
    ("GRU", dict(), "time-major, one layer"),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), "2 layers, bidirectional"),
    ("GRU", dict(bias=False, num_layers=3), "3 layers, no bias"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kwargs,label", RECURRENT, ids=[f"{c}-{l}" for c, _, l in RECURRENT])
def test_recurrent_layers_match_torch(cls, kwargs, label, dtype):
    ours = getattr(nn, cls)(3, 4, **kwargs)
    theirs = _torch_module(cls, 3, 4, **kwargs)
    shape = (2, 5, 3) if kwargs.get("batch_first") else (5, 2, 3)
    check_against_torch(ours, theirs, [Grad(rnd(*shape))], lambda m, x: m(x), dtype=dtype)


@pytest.mark.parametrize("cls", ["RNN", "GRU"])
def test_recurrent_layers_with_initial_state_and_unbatched_input(cls):
    layers = 2 * 2
    kwargs = dict(num_layers=2, bidirectional=True)
    check_against_torch(getattr(nn, cls)(3, 4, **kwargs), _torch_module(cls, 3, 4, **kwargs),
                        [Grad(rnd(5, 2, 3)), Grad(rnd(layers, 2, 4, seed=1))],
                        lambda m, x, h: m(x, h))
    check_against_torch(getattr(nn, cls)(3, 4, **kwargs), _torch_module(cls, 3, 4, **kwargs),
                        [Grad(rnd(5, 3, seed=2)), Grad(rnd(layers, 4, seed=3))],
                        lambda m, x, h: m(x, h))


CELLS = [("RNNCell", dict()), ("RNNCell", dict(nonlinearity="relu", bias=False)),
         ("GRUCell", dict()), ("GRUCell", dict(bias=False))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,kwargs", CELLS, ids=[f"{c}-{k}" for c, k in CELLS])
def test_cells_match_torch(cls, kwargs, dtype):
    check_against_torch(getattr(nn, cls)(3, 4, **kwargs), _torch_module(cls, 3, 4, **kwargs),
                        [Grad(rnd(2, 3)), Grad(rnd(2, 4, seed=1))], lambda m, x, h: m(x, h),
                        dtype=dtype)
    check_against_torch(getattr(nn, cls)(3, 4, **kwargs), _torch_module(cls, 3, 4, **kwargs),
                        [Grad(rnd(3, seed=2))], lambda m, x: m(x), dtype=dtype)


@pytest.mark.parametrize("cls", ["RNN", "GRU"])
def test_recurrent_parameter_layout_is_torchs(cls):
    ours = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=True)
    theirs = _torch_module(cls, 3, 4, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert a.shape == tuple(b.shape), k


def test_recurrent_dropout_is_applied_between_layers_in_training_only():
    m = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = ta.tensor(rnd(6, 2, 3).astype("float32"))
    ta.manual_seed(0)
    a = m(x)[0].numpy()
    ta.manual_seed(1)
    b = m(x)[0].numpy()
    assert not np.allclose(a, b)                     # the mask changed the second layer's input
    m.eval()
    np.testing.assert_array_equal(m(x)[0].numpy(), m(x)[0].numpy())


def test_recurrent_errors_name_the_layer_and_the_fix():
    with pytest.raises(ValueError, match=r"RNN: unknown nonlinearity 'sigmoid'.*'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"GRU: input must be \(T, B, input_size\).*input_size=3"):
        nn.GRU(3, 4)(ta.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"GRU: h_0 must have shape \(1, 2, 4\)"):
        nn.GRU(3, 4)(ta.randn(5, 2, 3), ta.randn(2, 4))
    with pytest.raises(ValueError, match=r"GRUCell: hx must have shape \(2, 4\)"):
        nn.GRUCell(3, 4)(ta.randn(2, 3), ta.randn(3, 4))
    with pytest.raises(TypeError, match=r"RNN: input is int64 .*float32.*nn.Embedding"):
        nn.RNN(3, 4)(ta.tensor(np.zeros((5, 2, 3), dtype=np.int64)))


# ---------------------------------------------------------------------------- shape layers
@pytest.mark.parametrize("make,call", [
    (lambda m: m.Identity(54, unused="x"), lambda m, x: m(x)),
    (lambda m: m.Flatten(), lambda m, x: m(x)),
    (lambda m: m.Flatten(0, 1), lambda m, x: m(x)),
    (lambda m: m.Flatten(-2), lambda m, x: m(x)),
    (lambda m: m.Unflatten(1, (2, 3)), lambda m, x: m(x.reshape(2, 6, 4))),
    (lambda m: m.Unflatten(-1, (2, -1)), lambda m, x: m(x)),
], ids=["Identity", "Flatten", "Flatten(0,1)", "Flatten(-2)", "Unflatten", "Unflatten(-1)"])
def test_shape_layers_match_torch(make, call):
    check_against_torch(make(nn), make(torch.nn), [Grad(rnd(2, 3, 2, 4))], call)


def test_lazy_linear_takes_in_features_from_the_first_input():
    m = nn.LazyLinear(5)
    assert m.has_uninitialized_params() and list(m.parameters()) == []
    x = ta.tensor(rnd(2, 3, 7).astype("float32"))
    y = m(x)
    assert y.shape == (2, 3, 5) and m.in_features == 7
    assert [tuple(p.shape) for p in m.parameters()] == [(5, 7), (5,)]
    bound = 1 / np.sqrt(7)                              # Linear's U(-1/√in, 1/√in)
    assert np.abs(m.weight.numpy()).max() <= bound and np.abs(m.bias.numpy()).max() <= bound
    theirs = torch.nn.Linear(7, 5).double()
    check_against_torch(m, theirs, [Grad(rnd(2, 3, 7, seed=1))], lambda mod, x: mod(x))
    assert nn.LazyLinear(3, bias=False)(x).shape == (2, 3, 3)


# ---------------------------------------------------------------------------- losses
def _probs(*shape, seed):
    return rnd(*shape, seed=seed, lo=0.05, hi=0.95)


def _log_probs(*shape, seed):
    z = rnd(*shape, seed=seed, lo=-2, hi=2)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _compare_loss(ours_fn, theirs_fn, grads, consts=(), dtype="float64"):
    tol = {"float64": 1e-10, "float32": 1e-5}[dtype]
    ta_in = [ta.tensor(a.astype(dtype), requires_grad=True) for a in grads]
    th_in = [torch.tensor(a.astype(dtype), requires_grad=True) for a in grads]
    ta_c = [ta.tensor(np.asarray(c).astype(dtype)) for c in consts]
    th_c = [torch.tensor(np.asarray(c).astype(dtype)) for c in consts]
    ours, theirs = ours_fn(*ta_in, *ta_c), theirs_fn(*th_in, *th_c)
    assert_close(ours.numpy(), theirs.detach().numpy(), tol, "loss")
    cot = rnd(*theirs.shape, seed=9)
    (ours * ta.tensor(cot.astype(dtype))).sum().backward()
    (theirs * torch.tensor(cot.astype(dtype))).sum().backward()
    for i, (a, b) in enumerate(zip(ta_in, th_in)):
        assert_close(a.grad, b.grad.numpy(), tol, f"gradient of input {i}")


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", [*REDUCTIONS, "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target, dtype):
    target = _log_probs(4, 5, seed=1) if log_target else np.exp(_log_probs(4, 5, seed=1))
    with pytest.warns(UserWarning) if reduction == "mean" else _no_warning():
        _compare_loss(lambda x, y: nn.KLDivLoss(reduction=reduction, log_target=log_target)(x, y),
                      lambda x, y: torch.nn.KLDivLoss(reduction=reduction,
                                                      log_target=log_target)(x, y),
                      [_log_probs(4, 5, seed=0), target], dtype=dtype)


def test_kl_div_counts_zero_targets_as_zero_as_torch():
    """0 · log 0 = 0 in the loss and the input's gradient, as in PyTorch (whose gradient with
    respect to such a target is nan; ours is finite, see the README's differences table)."""
    x, y = _log_probs(3, 4, seed=0), np.exp(_log_probs(3, 4, seed=1))
    y[0, 1] = 0.0
    _compare_loss(lambda a, b: F.kl_div(a, b, reduction="sum"),
                  lambda a, b: torch.nn.functional.kl_div(a, b, reduction="sum"), [x], consts=[y])
    t = ta.tensor(y, requires_grad=True)
    F.kl_div(ta.tensor(x), t, reduction="sum").backward()
    assert np.isfinite(t.grad.numpy()).all()


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(reduction, dtype):
    x, y, w = _probs(3, 4, seed=0), _probs(3, 4, seed=1), rnd(4, seed=2, lo=0.5, hi=2)
    _compare_loss(lambda p, t: nn.BCELoss(reduction=reduction)(p, t),
                  lambda p, t: torch.nn.BCELoss(reduction=reduction)(p, t), [x, y], dtype=dtype)
    _compare_loss(lambda p, t, w: F.binary_cross_entropy(p, t, weight=w, reduction=reduction),
                  lambda p, t, w: torch.nn.functional.binary_cross_entropy(
                      p, t, weight=w, reduction=reduction), [x, y], consts=[w], dtype=dtype)


def test_bce_clamps_its_logs_at_minus_100_as_torch():
    x, y = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    ours = F.binary_cross_entropy(ta.tensor(x), ta.tensor(y), reduction="none").numpy()
    theirs = torch.nn.functional.binary_cross_entropy(torch.tensor(x), torch.tensor(y),
                                                      reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs)
    assert ours[0] == 100.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(reduction, dtype):
    z, y = rnd(3, 4, seed=0, lo=-4, hi=4), _probs(3, 4, seed=1)
    w, pw = rnd(3, 4, seed=2, lo=0.5, hi=2), rnd(4, seed=3, lo=0.5, hi=3)
    _compare_loss(lambda a, b: nn.BCEWithLogitsLoss(reduction=reduction)(a, b),
                  lambda a, b: torch.nn.BCEWithLogitsLoss(reduction=reduction)(a, b), [z, y],
                  dtype=dtype)
    _compare_loss(lambda a, b, w, pw: F.binary_cross_entropy_with_logits(
                      a, b, weight=w, pos_weight=pw, reduction=reduction),
                  lambda a, b, w, pw: torch.nn.functional.binary_cross_entropy_with_logits(
                      a, b, weight=w, pos_weight=pw, reduction=reduction),
                  [z, y], consts=[w, pw], dtype=dtype)


def test_bce_with_logits_is_exact_for_huge_logits():
    """log(sigmoid(x)) would give inf/0 here; the softplus form gives PyTorch's finite values."""
    z, y = np.array([-200.0, 200.0, 50.0, -50.0]), np.array([1.0, 0.0, 1.0, 0.0])
    ours = F.binary_cross_entropy_with_logits(ta.tensor(z), ta.tensor(y), reduction="none")
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z), torch.tensor(y), reduction="none")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-15)
    assert np.isfinite(ours.numpy()).all() and ours.numpy()[0] == 200.0


PIECEWISE = [("SmoothL1Loss", "beta", 1.0), ("SmoothL1Loss", "beta", 0.3),
             ("SmoothL1Loss", "beta", 0.0), ("HuberLoss", "delta", 1.0),
             ("HuberLoss", "delta", 0.4), ("HuberLoss", "delta", 2.5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cls,key,value", PIECEWISE, ids=[f"{c}-{v}" for c, _, v in PIECEWISE])
def test_smooth_l1_and_huber_match_torch(cls, key, value, reduction, dtype):
    kwargs = {key: value, "reduction": reduction}
    _compare_loss(lambda a, b: getattr(nn, cls)(**kwargs)(a, b),
                  lambda a, b: getattr(torch.nn, cls)(**kwargs)(a, b),
                  [rnd(4, 5, seed=0, lo=-3, hi=3), rnd(4, 5, seed=1)], dtype=dtype)


def test_loss_errors_name_the_loss_and_the_fix():
    p = ta.tensor(_probs(3, 1, seed=0))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: target has shape \(3,\).*\(3, 1\)"):
        F.binary_cross_entropy(p, ta.tensor(_probs(3, seed=1)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: .*\[0, 1\].*with_logits"):
        F.binary_cross_entropy(ta.tensor([1.5, 0.5]), ta.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"kl_div: reduction must be one of"):
        F.kl_div(p, p, reduction="avg")
    with pytest.raises(ValueError, match=r"huber_loss: delta must be > 0"):
        F.huber_loss(p, p, delta=0.0)
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must be >= 0"):
        F.smooth_l1_loss(p, p, beta=-1.0)
