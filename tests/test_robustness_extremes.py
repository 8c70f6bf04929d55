"""Issue 17, numbers at the edges: NaN through every attention path, float32 extremes whose true
results are finite and bounded, and empty sizes (decided per case against PyTorch).

Each case failed before its fix: streaming attention turned a NaN query into zeros; cosine_score
of vectors ~1e20 gave 0; softmax([[3e38, 0]], temperature=0.5) gave NaN; the tanh-GELU gradient
at ±1e20 was NaN; layer_norm gave ±inf or NaN gradients on rows near 3e38; logsumexp over an
empty dim, sparsemax and hard attention without keys, attention with feature size 0 and
nn.LayerNorm(0) raised NumPy's errors.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import attention as A
from tinyattn import kernels
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention


# ------------------------------------------------------------------ NaN through attention
def _attention(path, q, k, v, causal):
    """Output and gradients of q, k, v through one path: 'plain' (the (L, S) matrix), or the
    streaming op on the compiled ('numba') or NumPy kernels."""
    ts = [ta.tensor(a, requires_grad=True) for a in (q, k, v)]
    provider = "numba" if path == "plain" else path
    with kernels.using(provider):
        if path == "plain":
            out = A.scaled_dot_product_attention(*ts, is_causal=causal, return_weights=True)[0]
        else:
            out = memory_efficient_attention(*ts, causal=causal)
        g = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
        (out * ta.tensor(g)).sum().backward()
    return out.numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("where", ["q", "k", "v"])
@pytest.mark.parametrize("path", ["numba", "numpy"])
def test_streaming_attention_propagates_nan_as_the_plain_path(path, where, causal):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 70, 8)).astype(np.float32) for _ in range(3))
    {"q": q, "k": k, "v": v}[where][1, 3, 2] = np.nan            # one NaN in sequence 1
    want, want_grads = _attention("plain", q, k, v, causal)
    got, got_grads = _attention(path, q, k, v, causal)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # the forward: exactly
    for g, w in zip(got_grads, want_grads):
        # backward: every NaN the streaming path gives, the plain path gives too; the plain path
        # may also spread NaN to keys a causal query never sees (0 · NaN in its masked entries)
        assert not (np.isnan(g) & ~np.isnan(w)).any()
        both = ~np.isnan(g) & ~np.isnan(w)
        np.testing.assert_allclose(g[both], w[both], rtol=2e-4, atol=2e-5)
        if not causal:
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    assert any(np.isnan(g[1]).any() for g in got_grads)          # the gradients see it too


def test_sdpa_takes_the_streaming_path_for_long_sequences_and_keeps_nan(monkeypatch):
    monkeypatch.setattr(sys.modules["tinyattn.attention.attend"], "STREAMING_MIN_SCORES", 1)
    q = np.ones((1, 4, 8), np.float32)
    q[0, 0] = np.nan                                             # a whole NaN query row
    k = v = np.ones((1, 5, 8), np.float32)
    out = A.scaled_dot_product_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v)).numpy()
    assert np.isnan(out[0, 0]).all() and np.isfinite(out[0, 1:]).all()   # not zeros


# ------------------------------------------------------------------ float32 extremes
def _quiet():
    """The results must be right without NumPy's overflow warnings reaching the user."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", RuntimeWarning)
    return ctx


def test_cosine_score_of_huge_and_tiny_vectors():
    q = ta.tensor([[1e20, 1e20], [3e38, -3e38], [1e-30, 0.0], [0.0, 0.0]])
    k = ta.tensor([[1e20, 1e20], [1e20, -1e20], [1.0, 0.0]])
    want = torch.nn.functional.cosine_similarity(torch.tensor(q.numpy(), dtype=torch.float64)[:, None],
                                                 torch.tensor(k.numpy(), dtype=torch.float64)[None],
                                                 dim=-1, eps=1e-8)
    got = A.cosine_score(q, k).numpy()
    np.testing.assert_allclose(got[:2], want.numpy()[:2], atol=1e-7)     # float32 rounding
    np.testing.assert_allclose(got[2:], want.numpy()[2:], rtol=1e-6)     # 1e-22: q / eps
    assert got[0, 0] == pytest.approx(1.0)


def test_cosine_score_gradient_is_finite_for_huge_and_zero_vectors():
    q = ta.tensor([[1e20, 2e20], [0.0, 0.0]], requires_grad=True)
    k = ta.tensor([[1e20, -1e20], [3.0, 4.0]], requires_grad=True)
    A.cosine_score(q, k).sum().backward()
    assert np.isfinite(q.grad.numpy()).all() and np.isfinite(k.grad.numpy()).all()


@pytest.mark.parametrize("temperature", [0.5, 0.01, 2.0])
def test_softmax_with_a_temperature_on_scores_near_the_float32_limit(temperature):
    s = ta.tensor([[3e38, 0.0], [-3e38, 3e38], [1.0, 2.0]], requires_grad=True)
    ctx = _quiet()
    w = A.softmax(s, temperature=temperature)
    w.sum().backward()
    ctx.__exit__(None, None, None)
    want = torch.softmax(torch.tensor(s.numpy(), dtype=torch.float64) / temperature, -1)
    np.testing.assert_allclose(w.numpy(), want.numpy(), rtol=1e-6, atol=1e-30)
    assert np.isfinite(s.grad.numpy()).all()


def test_softmax_temperature_with_a_mask_ignores_the_masked_maximum():
    s = ta.tensor([[3e38, 0.0, 1.0]])
    w = A.softmax(s, mask=np.array([False, True, True]), temperature=0.5)
    np.testing.assert_allclose(w.numpy(), [[0.0, 1 / (1 + np.e ** 2), 1 / (1 + np.e ** -2)]],
                               rtol=1e-6)


def test_tanh_gelu_at_plus_minus_1e20_has_the_exact_limits():
    x = ta.tensor([1e20, -1e20, 3e38, -3e38, 150.0, -150.0], requires_grad=True)
    ctx = _quiet()
    y = F.gelu(x, approximate="tanh")
    y.sum().backward()
    ctx.__exit__(None, None, None)
    np.testing.assert_array_equal(y.numpy(), np.float32([1e20, 0.0, 3e38, 0.0, 150.0, 0.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [1, 0, 1, 0, 1, 0])


def test_tanh_gelu_clipping_changes_nothing_where_it_is_finite():
    """Against PyTorch's own tanh GELU in float64 on moderate inputs (up to 1e4, where its x³
    does not overflow): the clip at |x| = 100 is invisible."""
    x = np.concatenate([np.linspace(-200, 200, 801), [-1e4, 1e4, -99.9, 100.1]])
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate="tanh")
    yt.sum().backward()
    t = ta.tensor(x, requires_grad=True)
    y = F.gelu(t, approximate="tanh")
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(t.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


HUGE_ROWS = np.array([[3e38, 3e38, -3e38, 1.0], [3e38, 2e38, 1e38, 0.0],
                      [-3e38, -3e38, -3e38, 3e38], [3.4e38, -3.4e38, 3.4e38, -3.4e38],
                      [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]], np.float32)


@pytest.mark.parametrize("provider", ["numba", "numpy"])
def test_layer_norm_rows_near_the_float32_limit_match_float64(provider):
    rng = np.random.default_rng(2)
    g = rng.standard_normal(HUGE_ROWS.shape).astype(np.float32)
    w0, b0 = np.array([1.0, -1.0, 2.0, 0.5], np.float32), np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    x, w, b = (ta.tensor(a, requires_grad=True) for a in (HUGE_ROWS, w0, b0))
    with kernels.using(provider):
        ctx = _quiet()
        y = F.layer_norm(x, (4,), w, b)
        (y * ta.tensor(g)).sum().backward()
        ctx.__exit__(None, None, None)
    x64, w64, b64 = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (HUGE_ROWS, w0, b0))
    y64 = torch.nn.functional.layer_norm(x64, (4,), w64, b64)
    (y64 * torch.tensor(g, dtype=torch.float64)).sum().backward()
    for got, want in ((y, y64), (x.grad, x64.grad), (w.grad, w64.grad), (b.grad, b64.grad)):
        assert np.isfinite(got.numpy()).all()
        # x's gradient on the huge rows is ~1e-39: float32 holds it as a subnormal number
        np.testing.assert_allclose(got.numpy(), want.detach().numpy().astype(np.float32),
                                   rtol=2e-4, atol=1e-44)


def test_the_scaled_rows_path_of_layer_norm_is_a_gradient(monkeypatch):
    """The path huge rows take, on every row (flagged by force), against central differences:
    float64 numbers of ordinary size, so that finite differences mean something."""
    layernorm = sys.modules["tinyattn.ops.layernorm"]
    monkeypatch.setattr(layernorm, "_extreme_rows", lambda mean, rstd: mean == mean)
    rng = np.random.default_rng(3)
    x, w, b = (ta.tensor(rng.standard_normal(shape), dtype="float64", requires_grad=True)
               for shape in ((3, 5), (5,), (5,)))
    assert ta.gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b) * ta.tensor(np.arange(5.0)),
                        (x, w, b))
    got = F.layer_norm(x, (5,), w, b).numpy()
    monkeypatch.undo()
    np.testing.assert_allclose(got, F.layer_norm(x, (5,), w, b).numpy(), rtol=1e-13)


# ------------------------------------------------------------------ empty sizes
def test_logsumexp_over_an_empty_dim_is_minus_inf_as_in_pytorch():
    for shape, dim in (((2, 0), 1), ((2, 0, 3), (1, 2)), ((0,), 0)):
        x = ta.zeros(*shape, requires_grad=True)
        y = ta.logsumexp(x, dim=dim)
        want = torch.logsumexp(torch.zeros(shape), dim=dim)
        np.testing.assert_array_equal(y.numpy(), want.numpy())
        y.sum().backward()
        assert x.grad.shape == x.shape


@pytest.mark.parametrize("weights", [A.softmax, A.sparsemax, A.hard_attention])
def test_weights_over_no_keys_are_an_empty_row_like_an_all_masked_one(weights):
    """Decided as rows whose keys are all masked already are: no keys, no weight (PyTorch has
    neither sparsemax nor hard attention; its softmax over an empty dim is empty too)."""
    s = ta.zeros(2, 3, 0, requires_grad=True)
    w = weights(s)
    assert w.shape == (2, 3, 0)
    w.sum().backward()
    assert s.grad.shape == (2, 3, 0)


def test_attention_with_feature_size_0_averages_the_values_as_pytorch():
    q, k = np.zeros((2, 3, 0), np.float32), np.zeros((2, 4, 0), np.float32)
    v = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    want = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)))
    got = A.scaled_dot_product_attention(*map(ta.tensor, (q, k, v)))
    np.testing.assert_allclose(got.numpy(), want.numpy())
    np.testing.assert_array_equal(A.scaled_dot_score(ta.tensor(q), ta.tensor(k)).numpy(), 0)
    with kernels.using("numpy"):
        np.testing.assert_allclose(memory_efficient_attention(*map(ta.tensor, (q, k, v))).numpy(),
                                   want.numpy())


def test_attention_with_no_keys_gives_zeros_as_pytorch():
    q, k, v = np.ones((1, 2, 4), np.float32), np.zeros((1, 0, 4), np.float32), np.zeros((1, 0, 3), np.float32)
    want = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)))
    got = A.scaled_dot_product_attention(*map(ta.tensor, (q, k, v)))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_layernorm_of_size_0_as_pytorch():
    x = ta.zeros(2, 0, requires_grad=True)
    y = nn.LayerNorm(0)(x)
    assert y.shape == tuple(torch.nn.LayerNorm(0)(torch.zeros(2, 0)).shape) == (2, 0)
    y.sum().backward()
    assert x.grad.shape == (2, 0)


def test_the_compiled_kernels_and_their_twins_agree_on_non_finite_rows():
    """The NaN cases of tests/kernel_cases.py (also run on the emulated and real GPU kernels),
    compiled against NumPy twin: NaN and inf in the same places, the rest equal."""
    import kernel_cases
    odd = [(n, args) for n, label, args in kernel_cases.cases("float64")
           if "NaN" in label or "inf" in label]
    assert len(odd) == 4
    for name, args in odd:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # the twins' inf - inf
            plain = kernels.implementation(name, "numpy")(*args)
            fast = kernels.implementation(name, "numba")(*args)
        plain, fast = (plain, fast) if isinstance(plain, tuple) else ((plain,), (fast,))
        assert any(np.isnan(a).any() for a in plain), name
        for a, b in zip(plain, fast):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=name)
