"""Compare a tinyattn module with its PyTorch twin: same weights in, same outputs and gradients out.

    check_against_torch(ours, theirs, [Grad(x), Grad(y), Const(mask)], call, dtype="float64")

``theirs``' state dict is loaded (as NumPy arrays) into ``ours``; both run in eval mode (dropout
off) on the same inputs; every output, the gradient of every ``Grad`` input and of every parameter
(by its state-dict name) must agree to 1e-10 (float64) or 1e-5 (float32), relative to the size of
the reference array. ``call(module, *inputs)`` is used for both libraries: our keyword names are
PyTorch's, so one lambda serves both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinyattn as ta
from module_gradcheck import flatten_outputs

TOL = {"float64": 1e-10, "float32": 1e-5}


@dataclass
class Grad:
    """A float input whose gradient is compared."""
    array: np.ndarray


@dataclass
class Const:
    """An input passed as is (a mask or indices); None is allowed."""
    array: object


def _torch_outputs(out):
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _torch_outputs(o)]
    return []


def assert_close(ours, theirs, tol, what):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs PyTorch {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    err = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    assert err <= tol * scale, f"{what}: max abs difference {err:.3g} > {tol:g} * {scale:.3g}"


def load_torch_state(ours, theirs):
    """Copy a PyTorch module's parameters and buffers into ours, by name."""
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in theirs.state_dict().items()})


def check_against_torch(ours, theirs, inputs, call, dtype="float64", seed=0):
    import torch
    tol = TOL[dtype]
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    theirs = theirs.to(tdtype).eval()
    load_torch_state(ours, theirs)
    ours.to(dtype).eval()
    assert set(ours.state_dict()) == set(theirs.state_dict())

    ta_in, th_in = [], []
    for item in inputs:
        a = item.array
        if isinstance(item, Grad):
            ta_in.append(ta.tensor(np.asarray(a, dtype=dtype), requires_grad=True))
            th_in.append(torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True))
        elif a is None:
            ta_in.append(None)
            th_in.append(None)
        else:
            a = np.asarray(a)
            if a.dtype.kind == "f":
                a = a.astype(dtype)
            ta_in.append(ta.tensor(a))
            th_in.append(torch.from_numpy(a.copy()))

    ours_out = flatten_outputs(call(ours, *ta_in))
    theirs_out = _torch_outputs(call(theirs, *th_in))
    assert len(ours_out) == len(theirs_out), \
        f"{len(ours_out)} outputs vs PyTorch's {len(theirs_out)}"
    rng = np.random.default_rng(seed)
    ours_loss, theirs_loss = None, None
    for i, (o, t) in enumerate(zip(ours_out, theirs_out)):
        assert_close(o.numpy(), t.detach().numpy(), tol, f"output {i}")
        cot = rng.uniform(-1, 1, t.shape)
        lo = (o * ta.tensor(cot.astype(dtype))).sum()
        lt = (t * torch.tensor(cot.astype(dtype))).sum()
        ours_loss = lo if ours_loss is None else ours_loss + lo
        theirs_loss = lt if theirs_loss is None else theirs_loss + lt
    ours_loss.backward()
    theirs_loss.backward()
    for i, (a, b) in enumerate(zip(ta_in, th_in)):
        if isinstance(inputs[i], Grad):
            assert a.grad is not None, f"input {i} got no gradient"
            assert_close(a.grad, b.grad.numpy(), tol, f"gradient of input {i}")
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        q = theirs_params[name]
        if q.grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), f"{name}: PyTorch has no gradient"
            continue
        assert p.grad is not None, f"parameter {name} got no gradient"
        assert_close(p.grad, q.grad.numpy(), tol, f"gradient of {name}")
    return ours_out


def check_inference_against_torch(ours, theirs, inputs, call, dtype="float64"):
    """Outputs only, with gradients off on both sides (``torch.no_grad()`` / ``ta.no_grad()``):
    the setting in which PyTorch takes its inference fast paths."""
    import torch
    tol = TOL[dtype]
    theirs = theirs.to(torch.float64 if dtype == "float64" else torch.float32).eval()
    load_torch_state(ours, theirs)
    ours.to(dtype).eval()
    ta_in, th_in = [], []
    for item in inputs:
        a = item.array
        if a is None:
            ta_in.append(None)
            th_in.append(None)
            continue
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        ta_in.append(ta.tensor(a))
        th_in.append(torch.from_numpy(a.copy()))
    with torch.no_grad():
        theirs_out = _torch_outputs(call(theirs, *th_in))
    with ta.no_grad():
        ours_out = flatten_outputs(call(ours, *ta_in))
    assert len(ours_out) == len(theirs_out)
    for i, (o, t) in enumerate(zip(ours_out, theirs_out)):
        assert_close(o.numpy(), t.numpy(), tol, f"output {i} (inference)")
    return ours_out
