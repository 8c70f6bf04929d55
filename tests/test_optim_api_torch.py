"""PyTorch's optimiser API beyond one group: parameter groups with their own options, lr changes
and groups added mid-run, state dicts with groups, the StepLR / CosineAnnealingLR / LambdaLR
sequences, and gradient clipping called as tutorials call it (with a generator of parameters).
Each against torch, fed the same gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.optim as optim

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,), (2, 3), (5,)]
TOL = 1e-12


def _params(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    return ([nn.Parameter(a.copy()) for a in arrays],
            [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays])


def _feed(ours, theirs, step, as_tensor=False):
    rng = np.random.default_rng(1000 + step)
    for p, q in zip(ours, theirs):
        g = rng.standard_normal(p.shape) * (5.0 if step % 4 == 2 else 1.0)
        p.grad = ta.tensor(g.copy()) if as_tensor else g.copy()
        q.grad = torch.tensor(g.copy())


def _assert_same(ours, theirs, what):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=TOL,
                                   err_msg=f"{what}: parameter {i}")


def _groups(params, **second):
    return [{"params": params[:2]}, {"params": params[2:], **second}]


GROUPED = [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01),
     dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.0)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
     dict(momentum=0.0, dampening=0.3)),
    ("Adam", dict(lr=0.01, weight_decay=0.01), dict(lr=0.003, betas=(0.8, 0.99), amsgrad=True)),
    ("AdamW", dict(lr=0.01), dict(weight_decay=0.0, eps=1e-6)),
]


@pytest.mark.parametrize("name,defaults,second", GROUPED,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(GROUPED)])
def test_two_groups_with_their_own_options_follow_torch(name, defaults, second):
    ours, theirs = _params()
    opt = getattr(optim, name)(_groups(ours, **second), **defaults)
    topt = getattr(torch.optim, name)(_groups(theirs, **second), **defaults)
    for key in second:
        assert opt.param_groups[1][key] == topt.param_groups[1][key]
        assert opt.param_groups[0][key] == topt.param_groups[0][key]
    for t in range(8):
        if t == 4:                      # a learner's manual schedule: takes effect at once
            for o in (opt, topt):
                o.param_groups[0]["lr"] *= 0.5
                o.param_groups[1]["lr"] = 0.001
        _feed(ours, theirs, t, as_tensor=t % 2 == 1)      # p.grad as array or as Tensor
        opt.step()
        topt.step()
        _assert_same(ours, theirs, f"{name} step {t}")


def test_add_param_group_mid_run_follows_torch():
    ours, theirs = _params()
    opt = optim.SGD(ours[:2], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs[:2], lr=0.1, momentum=0.9)
    for t in range(6):
        if t == 3:
            opt.add_param_group({"params": ours[2:], "lr": 0.01, "nesterov": True})
            topt.add_param_group({"params": theirs[2:], "lr": 0.01, "nesterov": True})
            assert opt.param_groups[1]["momentum"] == 0.9       # the defaults fill in
        _feed(ours, theirs, t)
        if t < 3:
            for p in ours[2:]:
                p.grad = None
            for q in theirs[2:]:
                q.grad = None
        opt.step()
        topt.step()
        _assert_same(ours, theirs, f"step {t}")
    with pytest.raises(ValueError, match="more than one group"):
        opt.add_param_group({"params": [ours[0]]})


@pytest.mark.parametrize("name,defaults,second", GROUPED[::2],
                         ids=[n for n, _, _ in GROUPED[::2]])
def test_state_dict_with_groups_resumes_exactly_as_torch_runs_on(name, defaults, second):
    ours, theirs = _params()
    opt = getattr(optim, name)(_groups(ours, **second), **defaults)
    topt = getattr(torch.optim, name)(_groups(theirs, **second), **defaults)
    for t in range(3):
        _feed(ours, theirs, t)
        opt.step()
        topt.step()
    saved = opt.state_dict()
    ours_groups, theirs_groups = saved["param_groups"], topt.state_dict()["param_groups"]
    assert [g["params"] for g in ours_groups] == [g["params"] for g in theirs_groups]
    assert [g["lr"] for g in ours_groups] == [g["lr"] for g in theirs_groups]
    assert set(saved["state"]) == set(topt.state_dict()["state"])
    fresh = getattr(optim, name)(_groups(ours, lr=123.0), lr=5.0)   # options come from the dict
    fresh.load_state_dict(saved)
    for t in range(3, 6):
        _feed(ours, theirs, t)
        fresh.step()
        topt.step()
        _assert_same(ours, theirs, f"{name} step {t} after load_state_dict")


# ---------------------------------------------------------------------------- schedulers
SCHEDULES = [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=5)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda t: 0.95 ** t)),
]


def _scheduled(name, kwargs, lib):
    params = [lib.nn.Parameter(lib.zeros(2)), lib.nn.Parameter(lib.zeros(3))]
    opt = lib.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.3}], lr=0.1)
    return opt, getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[f"{n}-{k}" for n, k in SCHEDULES])
def test_schedules_give_torchs_lr_sequence(name, kwargs):
    opt, sched = _scheduled(name, kwargs, ta)
    topt, tsched = _scheduled(name, kwargs, torch)
    assert sched.get_last_lr() == tsched.get_last_lr()
    for t in range(1, 14):                              # past T_max: the cosine rises again
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.last_epoch == tsched.last_epoch == t
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-14, abs=1e-16)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    ours_state, theirs_state = sched.state_dict(), tsched.state_dict()
    for key in ("base_lrs", "last_epoch", "_step_count", *kwargs.keys() - {"lr_lambda"}):
        assert ours_state[key] == pytest.approx(theirs_state[key]), key
    assert "optimizer" not in ours_state


@pytest.mark.parametrize("name,kwargs", SCHEDULES[:4], ids=[n for n, _ in SCHEDULES[:4]])
def test_schedules_resumed_by_last_epoch_continue_as_torchs(name, kwargs):
    opt, sched = _scheduled(name, kwargs, ta)
    topt, tsched = _scheduled(name, kwargs, torch)
    for _ in range(3):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    opt2, _ = _scheduled(name, kwargs, ta)
    topt2, _ = _scheduled(name, kwargs, torch)
    opt2.load_state_dict(opt.state_dict())
    topt2.load_state_dict(topt.state_dict())
    resumed = getattr(optim.lr_scheduler, name)(opt2, last_epoch=2, **kwargs)
    tresumed = getattr(torch.optim.lr_scheduler, name)(topt2, last_epoch=2, **kwargs)
    for _ in range(4):
        assert resumed.get_last_lr() == pytest.approx(tresumed.get_last_lr(), rel=1e-14)
        opt2.step()
        topt2.step()
        resumed.step()
        tresumed.step()


def test_cosine_schedule_reaches_eta_min_at_t_max():
    opt, sched = _scheduled("CosineAnnealingLR", dict(T_max=6, eta_min=0.02), ta)
    lrs = []
    for _ in range(6):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[-1] == pytest.approx(0.02) and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_schedule_errors_name_the_schedule():
    opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive int"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max .* must be > 0"):
        optim.CosineAnnealingLR(opt, T_max=0)


# ---------------------------------------------------------------------------- clipping
def _model_pair():
    ours, theirs = nn.Linear(4, 3).double(), torch.nn.Linear(4, 3).double()
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 4))
    (ours(ta.tensor(x)) ** 2).sum().backward()
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf])
def test_clip_grad_norm_with_a_generator_scales_the_gradients_as_torch(norm_type):
    """Regression: with model.parameters() (a generator, consumed by measuring the norm) the
    gradients used to be left unscaled."""
    ours, theirs = _model_pair()
    total = nn.utils.clip_grad_norm_(ours.parameters(), max_norm=0.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm=0.5,
                                            norm_type=norm_type)
    assert isinstance(total, ta.Tensor) and float(total) == pytest.approx(float(ttotal), rel=1e-12)
    assert float(total) > 0.5                          # so clipping had something to do
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, err_msg=name)
    grads = np.concatenate([np.ravel(p.grad) for p in ours.parameters()])
    scaled = np.abs(grads).max() if norm_type == math.inf else \
        (np.abs(grads) ** norm_type).sum() ** (1 / norm_type)
    assert scaled == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_norm_refuses_a_nonfinite_norm_when_asked():
    ours, _ = _model_pair()
    ours.bias.grad = ours.bias.grad * np.inf
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm .* is inf"):
        nn.utils.clip_grad_norm_(ours.parameters(), 1.0, error_if_nonfinite=True)


def test_clip_grad_value_with_a_generator_clamps_as_torch():
    ours, theirs = _model_pair()
    assert nn.utils.clip_grad_value_(ours.parameters(), 0.3) is None
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.3)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    assert max(np.abs(p.grad.numpy()).max() for p in ours.parameters()) == 0.3


def test_clipping_keeps_a_tensor_gradient_a_tensor():
    p = nn.Parameter(np.array([3.0, 4.0]))
    p.grad = ta.tensor(np.array([3.0, 4.0]))
    assert float(nn.utils.clip_grad_norm_(iter([p]), 1.0)) == 5.0
    assert isinstance(p.grad, ta.Tensor)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-6)
