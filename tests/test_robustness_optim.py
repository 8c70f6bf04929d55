"""Issue 17, optimisers, losses and state dicts: mistakes that used to write NaN into every
parameter, broadcast a wrong gradient onto a parameter, give an unweighted loss, or crash inside
Python with an unrelated message. Each is now an error naming the optimiser (or loss) and the
value; behaviour that PyTorch defines is compared with PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from test_robustness import assert_raised_by_tinyattn

NAN, INF = float("nan"), float("inf")
OPTIMISERS = {"SGD": ta.optim.SGD, "Adam": ta.optim.Adam, "AdamW": ta.optim.AdamW}


def _param():
    return nn.Parameter(ta.tensor([1.0, -2.0, 3.0]))


BAD_HYPERPARAMETERS = [
    ("SGD", dict(lr=NAN), ValueError, r"SGD: lr must be a finite number >= 0.0, got nan"),
    ("SGD", dict(lr=INF), ValueError, r"SGD: lr must be a finite number >= 0.0, got inf"),
    ("SGD", dict(lr=-0.1), ValueError, r"SGD: lr must be a finite number >= 0.0, got -0.1"),
    ("SGD", dict(lr="0.1"), TypeError, r"SGD: lr must be a real number \(a number, not the "
                                       r"string '0.1'\)"),
    ("SGD", dict(lr=None), TypeError, r"SGD: lr must be a real number, got None"),
    ("SGD", dict(lr=True), TypeError, r"SGD: lr must be a real number, got True"),
    ("SGD", dict(lr=0.1, momentum=NAN), ValueError, r"SGD: momentum must be a finite number"),
    ("SGD", dict(lr=0.1, momentum=-1), ValueError, r"SGD: momentum .* got -1"),
    ("SGD", dict(lr=0.1, dampening=INF), ValueError, r"SGD: dampening must be a finite number"),
    ("SGD", dict(lr=0.1, weight_decay=NAN), ValueError, r"SGD: weight_decay must be a finite"),
    ("SGD", dict(lr=0.1, momentum="0.9", nesterov=True), TypeError, r"SGD: momentum must be a "
                                                                      r"real number"),
    ("Adam", dict(lr=NAN), ValueError, r"Adam: lr must be a finite number >= 0.0, got nan"),
    ("Adam", dict(eps=NAN), ValueError, r"Adam: eps must be a finite number >= 0.0, got nan"),
    ("Adam", dict(eps=-1e-8), ValueError, r"Adam: eps must be a finite number >= 0.0"),
    ("Adam", dict(betas=(NAN, 0.999)), ValueError, r"Adam: betas\[0\] must be a finite number "
                                                   r">= 0.0 and < 1.0, got nan"),
    ("Adam", dict(betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] .* < 1.0, got 1.0"),
    ("Adam", dict(betas=0.9), TypeError, r"Adam: betas must be a pair of numbers"),
    ("Adam", dict(betas=("0.9", 0.99)), TypeError, r"Adam: betas\[0\] must be a real number"),
    ("Adam", dict(weight_decay=INF), ValueError, r"Adam: weight_decay must be a finite number"),
    ("AdamW", dict(lr=INF), ValueError, r"AdamW: lr must be a finite number >= 0.0, got inf"),
    ("AdamW", dict(weight_decay=-0.01), ValueError, r"AdamW: weight_decay .* got -0.01"),
]


@pytest.mark.parametrize("name, options, exc, pattern", BAD_HYPERPARAMETERS,
                         ids=[f"{b[0]} {b[1]}" for b in BAD_HYPERPARAMETERS])
def test_bad_hyperparameters_are_refused_naming_the_optimiser_and_the_value(name, options, exc,
                                                                            pattern):
    assert_raised_by_tinyattn(lambda: OPTIMISERS[name]([_param()], **options), exc, pattern)


def test_a_nan_lr_used_to_write_nan_into_every_parameter():
    p = _param()
    with pytest.raises(ValueError):
        opt = ta.optim.SGD([p], lr=NAN)
        p.grad = ta.ones(3)
        opt.step()
    assert np.isfinite(p.numpy()).all()


def test_hyperparameters_of_added_groups_and_loaded_state_are_checked_too():
    p, q = _param(), _param()
    opt = ta.optim.Adam([p], lr=0.01)
    with pytest.raises(ValueError, match=r"Adam: lr must be a finite number"):
        opt.add_param_group({"params": [q], "lr": NAN})
    state = opt.state_dict()
    state["param_groups"][0]["eps"] = NAN
    with pytest.raises(ValueError, match=r"Adam: eps must be a finite number"):
        opt.load_state_dict(state)
    assert opt.param_groups[0]["eps"] == 1e-8            # nothing changed


def test_a_zero_dim_tensor_is_a_valid_lr_as_in_pytorch():
    p = _param()
    assert ta.optim.SGD([p], lr=ta.tensor(0.5)).param_groups[0]["lr"] == 0.5
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.5))


def test_step_refuses_a_gradient_of_the_wrong_shape_naming_the_parameter():
    p = _param()
    p.name = "encoder.weight"
    opt = ta.optim.SGD([p], lr=0.1)
    p.grad = ta.ones(3)
    p.data = ta.zeros(1)                    # .data replaced after backward: the shapes differ
    assert_raised_by_tinyattn(opt.step, ValueError,
                              r"SGD.step: parameter 'encoder.weight' 0 of group 0 has shape \(1,\) "
                              r".*its .grad has shape \(3,\)")
    assert p.tolist() == [0.0]              # nothing was broadcast onto it


def test_a_tensor_of_the_wrong_shape_or_dtype_assigned_to_grad_is_refused():
    p = _param()
    assert_raised_by_tinyattn(lambda: setattr(p, "grad", ta.ones(1)), ValueError,
                              r"x.grad = value: the gradient has shape \(1,\) but x has shape \(3,\)")
    assert_raised_by_tinyattn(lambda: setattr(p, "grad", ta.ones(3).double()), TypeError,
                              r"gradient has dtype float64 but x has dtype float32")
    assert_raised_by_tinyattn(lambda: setattr(p, "grad", [1.0, 2.0, 3.0]), TypeError,
                              r"x.grad = value: a gradient must be a tensor")


# ------------------------------------------------------------------ state dicts
def test_a_model_state_dict_given_to_an_optimiser_is_named():
    m = nn.Linear(2, 2)
    opt = ta.optim.SGD(m.parameters(), lr=0.1)
    assert_raised_by_tinyattn(lambda: opt.load_state_dict(m.state_dict()), ValueError,
                              r"SGD.load_state_dict: expected an optimiser's state dict .*got a dict "
                              r"with keys \['bias', 'weight'\].*model.load_state_dict")
    assert_raised_by_tinyattn(lambda: opt.load_state_dict([1, 2]), ValueError, r"got a list")
    assert_raised_by_tinyattn(lambda: opt.load_state_dict({"state": {}, "param_groups": 3}),
                              ValueError, r"'param_groups' must be a list of dicts")


def test_an_optimiser_state_dict_given_to_a_model_is_named():
    m = nn.Linear(2, 2)
    opt = ta.optim.SGD(m.parameters(), lr=0.1)
    assert_raised_by_tinyattn(lambda: m.load_state_dict(opt.state_dict()), ValueError,
                              r"this is an optimiser's state dict.*optimizer.load_state_dict")


def test_load_state_dict_with_non_string_keys_says_so():
    m = nn.Linear(2, 2)
    assert_raised_by_tinyattn(lambda: m.load_state_dict({1: np.zeros(2), ("a",): np.zeros(2)}),
                              TypeError, r"keys must be strings .*got 1 \(int\), \('a',\) \(tuple\)")


# ------------------------------------------------------------------ losses
def _logp():
    return ta.log_softmax(ta.tensor(np.random.default_rng(0).standard_normal((4, 3))
                                    .astype(np.float32)), -1)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("loss", ["nll_loss", "cross_entropy"])
def test_a_class_weight_of_the_wrong_length_is_refused_as_in_pytorch(loss, n):
    x, target = _logp(), np.array([0, 1, 2, 0])
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 3 classes"):
        getattr(torch.nn.functional, loss)(torch.tensor(x.numpy()), torch.tensor(target),
                                           weight=torch.ones(n))
    assert_raised_by_tinyattn(lambda: getattr(F, loss)(x, target, weight=ta.ones(n)), ValueError,
                              rf"{loss}: weight has shape \({n},\).* 3 classes")


def test_probability_targets_with_a_class_weight_too_long_or_short_are_refused():
    x = _logp()
    q = np.full((4, 3), 1 / 3, np.float32)
    for n in (2, 4):
        with pytest.raises(RuntimeError, match="weight tensor should be defined"):
            torch.nn.functional.cross_entropy(torch.tensor(x.numpy()), torch.tensor(q),
                                              weight=torch.ones(n))
        assert_raised_by_tinyattn(lambda: F.cross_entropy(x, q, weight=ta.ones(n)), ValueError,
                                  rf"cross_entropy: weight has shape \({n},\)")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_probability_targets_with_a_class_weight_follow_pytorch(reduction, label_smoothing):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3)).astype(np.float32)
    q = rng.dirichlet(np.ones(3), 5).astype(np.float32)
    w = np.array([0.5, 2.0, 1.0], np.float32)
    x = ta.tensor(logits, requires_grad=True)
    out = F.cross_entropy(x, q, weight=w, reduction=reduction, label_smoothing=label_smoothing)
    xt = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(xt, torch.tensor(q), weight=torch.tensor(w),
                                             reduction=reduction, label_smoothing=label_smoothing)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-5)
    out.sum().backward()
    want.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("target_dtype", [np.float32, np.float64])
def test_cross_entropy_result_dtype_follows_pytorchs_promotion(target_dtype):
    """float32 logits with float64 probability *tensors* give float64 in PyTorch (tensors of one
    category promote to the wider); we follow it. A plain list of probabilities is float32."""
    logits = np.zeros((2, 3), np.float32)
    q = np.full((2, 3), 1 / 3, target_dtype)
    want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.from_numpy(q))
    got = F.cross_entropy(ta.tensor(logits), ta.tensor(q))
    assert str(got.dtype) == str(want.dtype).replace("torch.", "")
    assert F.cross_entropy(ta.tensor(logits), q.tolist()).dtype == np.float32
