"""End to end against PyTorch: one computation that uses most engine ops, with inputs reused
along several paths, broadcasting and batched matmul; every leaf's gradient must match."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta

torch = pytest.importorskip("torch")


def _program(lib, x, w, b, mask, idx):
    """The same program written once, for tinyattn (lib='ta') or torch (lib='torch')."""
    if lib == "ta":
        F = dict(softmax=lambda s, m: ta.softmax(s, axis=-1, mask=m),
                 lse=lambda s: ta.logsumexp(s, axis=-1),
                 gelu=ta.gelu, softplus=ta.softplus, where=ta.where, clip=ta.clip,
                 cat=ta.concatenate, stack=ta.stack, split=lambda t: ta.chunk(t, 2, dim=-1),
                 maximum=ta.maximum, var=lambda t: t.var(axis=0, correction=0),
                 amax=lambda t: t.amax(axis=-1), swap=lambda t: t.transpose(-2, -1),
                 tanh=ta.tanh, sigmoid=ta.sigmoid)
    else:
        F = dict(softmax=lambda s, m: torch.softmax(s.masked_fill(~m, float("-inf")), dim=-1),
                 lse=lambda s: torch.logsumexp(s, dim=-1),
                 gelu=torch.nn.functional.gelu, softplus=torch.nn.functional.softplus,
                 where=torch.where, clip=lambda t, lo, hi: torch.clamp(t, lo, hi),
                 cat=lambda ts, axis: torch.cat(ts, dim=axis),
                 stack=lambda ts, axis: torch.stack(ts, dim=axis),
                 split=lambda t: list(torch.split(t, t.shape[-1] // 2, dim=-1)),
                 maximum=torch.maximum, var=lambda t: t.var(dim=0, unbiased=False),
                 amax=lambda t: t.amax(dim=-1), swap=lambda t: t.transpose(-2, -1),
                 tanh=torch.tanh, sigmoid=torch.sigmoid)
    h = F["gelu"](x @ w + b)                          # (2, 3, 4) @ (4, 4) + (4,)
    scores = h @ F["swap"](h) / 2.0                   # batched, h used twice
    attn = F["softmax"](scores, mask)                 # (2, 3, 3), no fully-masked row here
    ctx = attn @ h + x                                # residual: x reused
    left, right = F["split"](ctx)
    mixed = F["cat"]([F["tanh"](left) * right, F["sigmoid"](right)], 2)
    gathered = mixed[:, idx]                          # repeated rows -> scatter-add
    stats = F["lse"](gathered) + F["amax"](mixed).sum() * 0.1 + F["var"](x).sum()
    gated = F["where"](x > 0.1, F["softplus"](x), F["clip"](x, -0.5, 0.05))
    pair = F["stack"]([F["maximum"](gated, b * 0.3), gated ** 2], 0)
    return stats.sum() + pair.mean() * 3 + (w * w).sum() * 0.01


def test_a_whole_program_matches_pytorch_gradients():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3, 4))
    x[np.abs(x - 0.1) < 0.05] += 0.1                  # away from the where() threshold
    x[np.abs(x + 0.5) < 0.05] += 0.1                  # ... and the clip bounds
    x[np.abs(x - 0.05) < 0.03] += 0.1
    w, b = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4,))
    mask = np.tril(np.ones((3, 3), bool))             # causal: every row keeps something
    idx = np.array([0, 2, 0, 0])

    ours = [ta.tensor(a, requires_grad=True, dtype="float64") for a in (x, w, b)]
    loss = _program("ta", *ours, mask, idx)
    loss.backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    tloss = _program("torch", *theirs, torch.tensor(mask), torch.tensor(idx))
    tloss.backward()

    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for name, o, t in zip("xwb", ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_same_program_passes_gradcheck():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 3, 4))
    for bad in (0.1, -0.5, 0.05):
        x[np.abs(x - bad) < 0.05] += 0.12
    w, b = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4,))
    inputs = [ta.tensor(a, requires_grad=True, dtype="float64") for a in (x, w, b)]
    mask = np.tril(np.ones((3, 3), bool))
    idx = np.array([0, 2, 0, 0])
    assert ta.gradcheck(lambda p, q, r: _program("ta", p, q, r, mask, idx), inputs)
