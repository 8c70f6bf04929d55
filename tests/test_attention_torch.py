"""tinyattn.attention against PyTorch in float64: scaled_dot_product_attention outputs and
gradients (bool mask, float mask, causal, scale, Tq != Tk, grouped heads), and the scores/softmax
that PyTorch also has."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import attention as A

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-10, 1e-13
rng = np.random.default_rng(99)


def _pair(a, grad=True):
    """The same float64 numbers as a tinyattn Tensor and a torch tensor."""
    return (ta.tensor(a, requires_grad=grad, dtype="float64"),
            torch.tensor(a, dtype=torch.float64, requires_grad=grad))


def _close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=RTOL, atol=ATOL)


def _compare_sdpa(shapes, mask=None, float_mask_grad=False, **kw):
    arrays = [rng.normal(size=s) for s in shapes]
    (q, tq), (k, tk), (v, tv) = (_pair(a) for a in arrays)
    mask_ours = mask_torch = None
    if mask is not None:
        if mask.dtype == np.bool_:
            mask_ours, mask_torch = mask, torch.tensor(mask)
        else:
            mask_ours, mask_torch = _pair(mask, grad=float_mask_grad)
    out = A.scaled_dot_product_attention(q, k, v, attn_mask=mask_ours, **kw)
    ref = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask_torch, **kw)
    _close(out.numpy(), ref)
    g = rng.normal(size=ref.shape)
    out.backward(ta.tensor(g, dtype="float64"))
    ref.backward(torch.tensor(g))
    for ours, theirs in ((q, tq), (k, tk), (v, tv)):
        _close(ours.grad, theirs.grad)
    if float_mask_grad:
        _close(mask_ours.grad, mask_torch.grad)


def test_sdpa_no_mask_tq_ne_tk():
    _compare_sdpa([(2, 3, 4), (2, 5, 4), (2, 5, 6)])


def test_sdpa_heads_and_scale():
    _compare_sdpa([(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)], scale=0.37)


def test_sdpa_bool_mask_broadcast():
    mask = rng.random((3, 5)) < 0.7
    mask[:, 0] = True                                   # no empty rows here: PyTorch would give NaN
    _compare_sdpa([(2, 3, 4), (2, 5, 4), (2, 5, 2)], mask=mask)
    mask4 = rng.random((2, 1, 3, 5)) < 0.6
    mask4[..., 1] = True
    _compare_sdpa([(2, 4, 3, 4), (2, 4, 5, 4), (2, 4, 5, 2)], mask=mask4)


def test_sdpa_float_mask_with_gradient():
    bias = rng.normal(size=(2, 1, 3, 5))
    bias[0, 0, 1, 2] = -np.inf                         # -inf forbids a key, as in PyTorch
    _compare_sdpa([(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)], mask=bias, float_mask_grad=True)


@pytest.mark.parametrize("L,S", [(4, 4), (3, 6), (6, 3)])
def test_sdpa_causal(L, S):
    _compare_sdpa([(2, L, 4), (2, S, 4), (2, S, 3)], is_causal=True)


def test_sdpa_grouped_query_heads():
    _compare_sdpa([(1, 6, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3)], enable_gqa=True)


@pytest.mark.parametrize("shapes", [[(1, 1, 4), (1, 1, 4), (1, 1, 2)],      # Tq = Tk = 1, batch 1
                                    [(1, 1, 4), (1, 7, 4), (1, 7, 2)],      # one query
                                    [(5, 4), (1, 4), (1, 3)]])              # one key, no batch
def test_sdpa_tiny_shapes(shapes):
    _compare_sdpa(shapes)


def test_sdpa_all_masked_row_gives_zeros_like_current_pytorch():
    """Our promise: a query with no allowed key gets output 0 and zero gradient. PyTorch's sdpa
    agrees since 2.5 (a "safe" softmax); older versions, and torch.softmax itself, give NaN."""
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    out, w = A.scaled_dot_product_attention(*(ta.tensor(rng.normal(size=s), dtype="float64") for s in
                                              [(2, 3, 4), (2, 4, 4), (2, 4, 2)]), attn_mask=mask,
                                            return_weights=True)
    assert np.all(out.numpy()[:, 1] == 0) and np.all(w.numpy()[:, 1] == 0)
    _compare_sdpa([(2, 3, 4), (2, 4, 4), (2, 4, 2)], mask=mask)
    bias = np.zeros((3, 4))
    bias[2] = -np.inf                                   # the same through an additive -inf mask
    _compare_sdpa([(2, 3, 4), (2, 4, 4), (2, 4, 2)], mask=bias, float_mask_grad=True)


def test_sdpa_weights_for_plotting():
    (q, _), (k, _), (v, _) = (_pair(rng.normal(size=s)) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 2)])
    out, w = A.scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
    assert w.shape == (2, 3, 5)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-14)
    assert np.all(np.triu(w.numpy()[0], 1) == 0)
    np.testing.assert_allclose(out.numpy(), w.numpy() @ v.numpy(), rtol=1e-14)


def test_sdpa_mask_and_causal_together_is_an_error_as_in_pytorch():
    q = rng.normal(size=(1, 2, 4))
    mask = np.ones((2, 2), dtype=bool)
    with pytest.raises(Exception):
        F.scaled_dot_product_attention(*(torch.tensor(q),) * 3, attn_mask=torch.tensor(mask), is_causal=True)
    with pytest.raises(ValueError, match="attn_mask and is_causal"):
        A.scaled_dot_product_attention(*(ta.tensor(q),) * 3, attn_mask=mask, is_causal=True)


def test_sdpa_dropout_is_seeded_and_scales_survivors():
    (q, _), (k, _), (v, _) = (_pair(rng.normal(size=s), grad=False) for s in [(4, 8, 4), (4, 16, 4), (4, 16, 2)])
    _, w0 = A.scaled_dot_product_attention(q, k, v, return_weights=True)
    ta.manual_seed(5)
    out1, w1 = A.scaled_dot_product_attention(q, k, v, dropout_p=0.25, return_weights=True)
    ta.manual_seed(5)
    out2 = A.scaled_dot_product_attention(q, k, v, dropout_p=0.25)
    np.testing.assert_array_equal(out1.numpy(), out2.numpy())
    kept = w1.numpy() != 0
    assert 0.65 < kept.mean() < 0.85                                     # about 1 - p survive
    np.testing.assert_allclose(w1.numpy()[kept], w0.numpy()[kept] / 0.75, rtol=1e-14)
    np.testing.assert_allclose(out1.numpy(), w1.numpy() @ v.numpy(), rtol=1e-13)
    with pytest.raises(TypeError, match="attn_mask has dtype int64"):
        A.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((8, 16), dtype=np.int64))
    with pytest.raises(ValueError, match="dropout_p"):
        A.scaled_dot_product_attention(q, k, v, dropout_p=1.0)


def test_sdpa_float32_stays_float32():
    q = ta.tensor(rng.normal(size=(2, 3, 4)).astype(np.float32))
    out = A.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert out.dtype == np.float32
    ref = F.scaled_dot_product_attention(*(torch.tensor(q.numpy()),) * 3, is_causal=True)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- other torch twins
def test_masked_softmax_matches_torch():
    s = rng.normal(size=(2, 3, 5))
    mask = rng.random((2, 3, 5)) < 0.6
    mask[..., 0] = True
    ours, theirs = _pair(s)
    w = A.softmax(ours, mask=mask, temperature=0.7)
    ref = torch.softmax(theirs.masked_fill(~torch.tensor(mask), float("-inf")) / 0.7, dim=-1)
    _close(w.numpy(), ref)
    g = rng.normal(size=s.shape)
    w.backward(ta.tensor(g, dtype="float64"))
    ref.backward(torch.tensor(g))
    _close(ours.grad, theirs.grad)


def test_cosine_and_euclidean_match_torch():
    q, k = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    cos = F.cosine_similarity(torch.tensor(q)[:, :, None], torch.tensor(k)[:, None], dim=-1)
    _close(A.cosine_score(ta.tensor(q), ta.tensor(k)).numpy(), cos)
    dist = torch.cdist(torch.tensor(q), torch.tensor(k))
    np.testing.assert_allclose(A.euclidean_score(ta.tensor(q), ta.tensor(k), squared=False).numpy(),
                               -dist.numpy(), rtol=1e-12)


def test_general_score_matches_torch_bilinear():
    q, k, W = rng.normal(size=(3, 4)), rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    ref = F.bilinear(torch.tensor(q)[:, None].expand(3, 5, 4), torch.tensor(k)[None].expand(3, 5, 2),
                     torch.tensor(W)[None])[..., 0]
    _close(A.general_score(ta.tensor(q), ta.tensor(k), ta.tensor(W)).numpy(), ref)


def test_sdpa_hands_long_sequences_to_the_streaming_kernel(monkeypatch):
    """Above the size threshold (lowered here) sdpa calls memory_efficient_attention: same values
    and gradients, unless weights, a mask or dropout are asked for."""
    flash = pytest.importorskip("tinyattn.ops.memory_efficient_attention")
    attend_module = importlib.import_module("tinyattn.attention.attend")   # the module, not the function

    calls = []
    real = flash.apply_checked           # the op, applied without checking again what sdpa checked
    monkeypatch.setattr(flash, "apply_checked", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    monkeypatch.setattr(attend_module, "STREAMING_MIN_SCORES", 16)
    with ta.kernels.using("numpy"):     # the hand-over is under test here, not the compiled kernel
        _compare_sdpa([(2, 2, 6, 4), (2, 2, 5, 4), (2, 2, 5, 3)], is_causal=True)
        _compare_sdpa([(2, 6, 4), (2, 5, 4), (2, 5, 3)], scale=0.5)
    assert [c["causal"] for c in calls] == [True, False]
    q = ta.tensor(rng.normal(size=(2, 6, 4)))
    A.scaled_dot_product_attention(q, q, q, return_weights=True)
    A.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((6, 6), dtype=bool))
    A.scaled_dot_product_attention(q, q, q[:1])                                # broadcast leading axes
    assert len(calls) == 2


def test_sdpa_causal_recording_goes_streaming_from_a_smaller_size(monkeypatch):
    """Causal attention with gradients is handed to the streaming kernel from
    CAUSAL_STREAMING_MIN_SCORES on (it skips the masked tiles); without the causal mask only from
    STREAMING_MIN_SCORES. Both paths agree with PyTorch."""
    flash = pytest.importorskip("tinyattn.ops.memory_efficient_attention")
    attend_module = importlib.import_module("tinyattn.attention.attend")
    calls = []
    real = flash.apply_checked
    monkeypatch.setattr(flash, "apply_checked", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    monkeypatch.setattr(attend_module, "CAUSAL_STREAMING_MIN_SCORES", 30)   # 6 x 5 scores and up
    _compare_sdpa([(2, 2, 6, 4), (2, 2, 5, 4), (2, 2, 5, 3)], is_causal=True)   # 30: streams
    _compare_sdpa([(2, 2, 6, 4), (2, 2, 5, 4), (2, 2, 5, 3)])                   # not causal: no
    _compare_sdpa([(2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 3)], is_causal=True)   # 25 < 30: no
    assert [c["causal"] for c in calls] == [True]
