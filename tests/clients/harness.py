"""Run one client program (tests/clients/*_style.py) in two libraries on the same weights.

The reference is always PyTorch; the other side is tinyattn, or PyTorch again when
TINYATTN_CLIENTS_OTHER=torch (a self-check of the programs and of this harness).
"""
import contextlib
import importlib
import os

import numpy as np

TOL = 1e-10  # float64 on both sides


def other_lib():
    return importlib.import_module(os.environ.get("TINYATTN_CLIENTS_OTHER", "tinyattn"))


@contextlib.contextmanager
def float64(lib):
    """Default dtype float64 while building and running, restored afterwards."""
    old = lib.get_default_dtype()
    lib.set_default_dtype(lib.float64)
    try:
        yield
    finally:
        lib.set_default_dtype(old)


def to_numpy(t):
    return np.asarray(t.detach().numpy())


def copy_weights(src_model, dst_model):
    """PyTorch's state_dict into the other model, as NumPy arrays (both libraries accept them
    through load_state_dict after the conversion on the torch side)."""
    state = {k: to_numpy(v) for k, v in src_model.state_dict().items()}
    try:
        import torch
        if isinstance(next(iter(dst_model.state_dict().values())), torch.Tensor):
            state = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    except ImportError:
        pass
    dst_model.load_state_dict(state)


def assert_close(ours, theirs, what, tol=TOL):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs PyTorch {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    err = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    assert err <= tol * scale, f"{what}: max abs difference {err:.3g} > {tol:g} * {scale:.3g}"


def assert_same_params(ours, theirs, what):
    mine = dict(ours.named_parameters())
    for name, q in theirs.named_parameters():
        assert_close(to_numpy(mine[name]), to_numpy(q), f"{what}: {name}")


def assert_same_grads(ours, theirs):
    mine = dict(ours.named_parameters())
    for name, q in theirs.named_parameters():
        p = mine[name]
        if q.grad is None:
            assert p.grad is None or not np.any(to_numpy(p.grad)), f"{name}: PyTorch has no gradient"
            continue
        assert p.grad is not None, f"parameter {name} got no gradient"
        assert_close(to_numpy(p.grad), to_numpy(q.grad), f"gradient of {name}")
