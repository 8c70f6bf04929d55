"""Optimisers, schedules and clipping take the same steps as PyTorch's, fed the same gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.optim as optim

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-10, "float32": 1e-5}
SHAPES = [(3, 4), (4,), (2, 2, 3)]
STEPS = 12


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(a.copy()) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
    return ours, theirs


def _grads(step, dtype):
    rng = np.random.default_rng(100 + step)
    # occasionally large gradients, so that clipping and amsgrad's max matter
    scale = 10.0 if step % 5 == 3 else 1.0
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]


def _run(ours_opt, theirs_opt, ours, theirs, dtype, steps=STEPS, ours_sched=None, theirs_sched=None,
         clip=None):
    for t in range(steps):
        for p, q, g in zip(ours, theirs, _grads(t, dtype)):
            p.grad = g.copy()
            q.grad = torch.tensor(g.copy())
        if clip is not None:
            n1 = optim.clip_grad_norm_(ours, **clip)
            n2 = torch.nn.utils.clip_grad_norm_(theirs, **clip)
            assert abs(float(n1) - float(n2)) <= TOL[dtype] * max(1.0, float(n2))
        ours_opt.step()
        theirs_opt.step()
        if ours_sched is not None:
            ours_sched.step()
            theirs_sched.step()
            assert ours_sched.get_last_lr() == pytest.approx(theirs_sched.get_last_lr(), rel=1e-15)
        for p, q in zip(ours, theirs):
            ref = q.detach().numpy()
            err = np.abs(p.numpy().astype(np.float64) - ref).max()
            assert err <= TOL[dtype] * max(1.0, np.abs(ref).max()), \
                f"step {t}: parameter differs from PyTorch by {err:.3g}"


OPTIMISERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, kwargs", OPTIMISERS, ids=lambda v: str(v))
def test_optimiser_matches_torch(dtype, name, kwargs):
    ours, theirs = _params(dtype)
    _run(getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs),
         ours, theirs, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_param_groups_with_own_options(dtype):
    ours, theirs = _params(dtype)
    o = optim.Adam([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.1, "weight_decay": 0.2}],
                   lr=0.01)
    t = torch.optim.Adam([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.1,
                                                   "weight_decay": 0.2}], lr=0.01)
    _run(o, t, ours, theirs, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("clip", [dict(max_norm=1.0), dict(max_norm=2.0, norm_type=1.0),
                                  dict(max_norm=0.5, norm_type=math.inf)], ids=str)
def test_clip_grad_norm_matches_torch(dtype, clip):
    ours, theirs = _params(dtype)
    _run(optim.SGD(ours, lr=0.1, momentum=0.9), torch.optim.SGD(theirs, lr=0.1, momentum=0.9),
         ours, theirs, dtype, clip=clip)


def test_clip_grad_norm_scales_only_when_needed():
    p = nn.Parameter(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    total = optim.clip_grad_norm_([p], max_norm=10.0)
    assert float(total) == 5.0 and np.array_equal(p.grad, [3.0, 4.0])
    optim.clip_grad_norm_([p], max_norm=1.0)
    assert np.allclose(np.linalg.norm(p.grad), 1.0, rtol=1e-5)
    p.grad = np.array([np.nan, 1.0])
    with pytest.raises(RuntimeError, match="nan"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    p = nn.Parameter(np.zeros(3))
    p.grad = np.array([-5.0, 0.5, 7.0])
    optim.clip_grad_value_([p], 1.0)
    assert p.grad.tolist() == [-1.0, 0.5, 1.0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lambda_lr_matches_torch(dtype):
    ours, theirs = _params(dtype)
    o, t = optim.Adam(ours, lr=0.05), torch.optim.Adam(theirs, lr=0.05)
    fn = lambda step: 0.9 ** step  # noqa: E731
    _run(o, t, ours, theirs, dtype, ours_sched=optim.LambdaLR(o, fn),
         theirs_sched=torch.optim.lr_scheduler.LambdaLR(t, fn))


@pytest.mark.parametrize("dtype", ["float64"])
def test_noam_matches_torch_lambda_lr_with_the_paper_formula(dtype):
    ours, theirs = _params(dtype)
    o, t = optim.AdamW(ours, lr=1.0, betas=(0.9, 0.98), eps=1e-9), \
        torch.optim.AdamW(theirs, lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    d_model, warmup = 16, 4

    def paper(step):       # Vaswani et al. §5.3, with the step number counted from 1
        s = step + 1
        return d_model ** -0.5 * min(s ** -0.5, s * warmup ** -1.5)
    _run(o, t, ours, theirs, dtype, ours_sched=optim.NoamLR(o, d_model, warmup),
         theirs_sched=torch.optim.lr_scheduler.LambdaLR(t, paper))


def test_noam_rises_then_decays():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.NoamLR(opt, d_model=64, warmup_steps=10)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    peak = int(np.argmax(lrs))
    assert peak == 9                       # update number 10 = warmup_steps
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1:]))
    assert lrs[peak] == pytest.approx(optim.lr_scheduler.peak_noam_lr(64, 10))


def test_end_to_end_training_matches_torch():
    """Gradients from each library's own backward, fed to each library's Adam: same weights."""
    ta.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 1)).double()
    ours.load_state_dict(theirs.state_dict())
    o, t = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    for _ in range(20):
        o.zero_grad()
        t.zero_grad()
        ta.functional.mse_loss(ours(ta.tensor(x)), ta.tensor(y)).backward()
        torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        o.step()
        t.step()
    for name, v in theirs.state_dict().items():
        assert np.allclose(ours.state_dict()[name], v.numpy(), rtol=1e-10, atol=1e-12), name
