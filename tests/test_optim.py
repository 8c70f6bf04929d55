"""Optimiser bookkeeping on its own terms (the update rules are checked against PyTorch in
test_optim_torch.py)."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.optim as optim
from tinyattn.io import load, save


def test_state_is_kept_per_parameter_and_only_for_those_with_gradients():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()
    assert opt.state[a]["step"] == 1 and b not in opt.state
    assert np.array_equal(b.numpy(), np.ones(3))              # no gradient: untouched
    assert np.allclose(opt.state[a]["exp_avg"], 0.1 * 2.0)


def test_bad_parameter_lists_are_refused():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))


def test_zero_grad():
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(2)
    opt.zero_grad(set_to_none=False)
    assert np.array_equal(p.grad, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_a_step_invalidates_graphs_that_saved_the_old_weights():
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    y = (p * p).sum()                    # saves p for its gradient
    (p * 3).sum().backward()
    opt.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_state_dict_survives_save_and_load(tmp_path):
    ta.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.Adam([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}],
                     lr=0.01, amsgrad=True)
    model(ta.randn(4, 3)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    save(sd, tmp_path / "opt.npz")
    back = load(tmp_path / "opt.npz")
    assert back["param_groups"][1]["lr"] == 0.5 and back["param_groups"][0]["betas"] == (0.9, 0.999)
    other = optim.Adam([{"params": [model.weight]}, {"params": [model.bias]}], lr=1.0)
    other.load_state_dict(back)
    assert other.param_groups[1]["lr"] == 0.5 and other.param_groups[0]["amsgrad"] is True
    assert np.array_equal(other.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])
    assert other.state[model.weight]["exp_avg"] is not opt.state[model.weight]["exp_avg"]


def test_scheduler_state_round_trip_and_resume_by_last_epoch():
    p = nn.Parameter(np.ones(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.LambdaLR(opt, lambda t: 1 / (t + 1))
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 4)
    state = sched.state_dict()
    assert state["last_epoch"] == 3 and state["base_lrs"] == [1.0]
    opt2 = optim.SGD([p], lr=123.0)
    opt2.load_state_dict(opt.state_dict())
    sched2 = optim.LambdaLR(opt2, lambda t: 1 / (t + 1), last_epoch=2)   # resume: next is t = 3
    assert sched2.get_last_lr() == pytest.approx([1 / 4])
    with pytest.raises(KeyError, match="initial_lr"):
        optim.LambdaLR(optim.SGD([p], lr=1.0), lambda t: 1.0, last_epoch=5)
