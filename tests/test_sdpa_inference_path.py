"""scaled_dot_product_attention without a recorded graph (no_grad, or no input requiring a
gradient) runs the fused memory_efficient_attention op: it must give the numbers of the plain path
(the graph-recording one) and of PyTorch, for every case it takes, and leave the others alone."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.nn import functional as F

torch = pytest.importorskip("torch")


def _qkv(shape_q, shape_k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(shape_q).astype(dtype)
    k = rng.standard_normal(shape_k).astype(dtype)
    v = rng.standard_normal(shape_k).astype(dtype)
    return q, k, v


@pytest.mark.parametrize("shape_q, shape_k, causal", [
    ((4, 4, 1, 32), (4, 4, 40, 32), False),        # one decoding step against a cache
    ((2, 3, 16, 8), (2, 3, 16, 8), True),          # a prefill
    ((2, 5, 7, 8), (2, 5, 3, 8), True),            # causal with L > S (top-left aligned)
    ((6, 9, 4), (6, 11, 4), False),                # one leading axis
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_untracked_sdpa_equals_the_recorded_path_and_torch(shape_q, shape_k, causal, dtype):
    q, k, v = _qkv(shape_q, shape_k, dtype)
    with ta.no_grad():
        fused = F.scaled_dot_product_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v),
                                               is_causal=causal)
    tq = ta.tensor(q, requires_grad=True)          # recorded: the plain five-op path
    plain = F.scaled_dot_product_attention(tq, ta.tensor(k), ta.tensor(v), is_causal=causal)
    assert plain._ctx is not None and fused._ctx is None
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), is_causal=causal).numpy()
    tol = 2e-6 if dtype == np.float32 else 1e-12
    assert fused.dtype == dtype and fused.shape == plain.shape
    np.testing.assert_allclose(fused.array, plain.array, rtol=tol, atol=tol)
    np.testing.assert_allclose(fused.array, theirs, rtol=tol * 10, atol=tol * 10)


def test_untracked_sdpa_with_a_mask_keeps_the_plain_path():
    q, k, v = _qkv((2, 2, 3, 4), (2, 2, 5, 4), np.float64)
    mask = np.random.default_rng(1).random((3, 5)) > 0.3
    mask[:, 0] = True
    with ta.no_grad():
        ours = F.scaled_dot_product_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v),
                                              attn_mask=ta.tensor(mask))
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
        attn_mask=torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(ours.array, theirs, rtol=1e-12, atol=1e-12)
