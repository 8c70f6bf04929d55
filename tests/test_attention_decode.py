"""The few-query forward kernel (kernels/numba/memory_efficient_attention.py,
``_attention_forward_rows``: up to DECODE_MAX_QUERIES queries per sequence, read in place from
strided views such as a KV cache's buffer) against the NumPy twin, for every mask it takes, and
the decoding path through sdpa and nn.KVCache against the plain (recorded) path and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import kernels
from tinyattn.nn import functional as F
from tinyattn.nn.kv_cache import KVCache

pytest.importorskip("numba")
from tinyattn.kernels.numba import memory_efficient_attention as fast  # noqa: E402


def _strided(rng, shape, dtype, spare=3):
    """A (BH, T, D) view of a larger (BH, T + spare, D) buffer: not contiguous, as a cache's."""
    bh, t, d = shape
    return rng.standard_normal((bh, t + spare, d)).astype(dtype)[:, 1:t + 1]


def _close(dtype):
    return dict(rtol=3e-6, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bh, tq, tk, d, dv", [
    (16, 1, 40, 32, 32),      # one decoding step, batch 4 x 4 heads
    (3, 4, 7, 5, 3),          # the most queries the kernel takes
    (2, 2, 1, 8, 8),          # one key
    (5, 3, 300, 17, 9),       # more keys than a tile
])
@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (True, 2), (False, 0)])
def test_rows_kernel_equals_the_twin_on_strided_views(dtype, bh, tq, tk, d, dv, causal, window):
    rng = np.random.default_rng([bh, tq, tk, d, dv, int(causal), 9 if window is None else window])
    q = rng.standard_normal((bh, 2 * tq, d)).astype(dtype)[:, ::2]        # strided queries too
    k, v = _strided(rng, (bh, tk, d), dtype), _strided(rng, (bh, tk, dv), dtype)
    assert not (q.flags.c_contiguous or k.flags.c_contiguous or v.flags.c_contiguous)
    lengths = rng.integers(0, tk + 1, bh)
    assert tq <= fast.DECODE_MAX_QUERIES
    ours, lse = kernels.implementation("attention_forward", "numba")(q, k, v, lengths, causal,
                                                                      0.3, window)
    ref, ref_lse = kernels.implementation("attention_forward", "numpy")(q, k, v, lengths, causal,
                                                                         0.3, window)
    assert ours.dtype == lse.dtype == dtype
    np.testing.assert_allclose(ours, ref, **_close(dtype))
    np.testing.assert_allclose(lse, ref_lse, **_close(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_kernel_edge_rows(dtype):
    """A sequence with no key (length 0) gives 0 and lse -inf; a NaN query gives NaN, as the twin;
    D = 0 gives uniform weights; Dv = 0 an empty output."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((3, 2, 4)).astype(dtype), _strided(rng, (3, 6, 4), dtype),
               _strided(rng, (3, 6, 4), dtype))
    q[1, 0] = np.nan
    lengths = np.array([0, 6, 3])
    args = (lengths, False, 0.5, None)
    ours, lse = kernels.implementation("attention_forward", "numba")(q, k, v, *args)
    ref, ref_lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
    assert np.all(ours[0] == 0) and np.all(lse[0] == -np.inf)
    assert np.all(np.isnan(ours[1, 0])) and np.isnan(lse[1, 0])
    np.testing.assert_allclose(ours, ref, **_close(dtype))
    np.testing.assert_allclose(lse, ref_lse, **_close(dtype))
    for q0, k0, v0 in ((q[..., :0], k[..., :0], v), (q, k, v[..., :0])):
        ours, lse = kernels.implementation("attention_forward", "numba")(q0, k0, v0, *args)
        ref, ref_lse = kernels.implementation("attention_forward", "numpy")(q0, k0, v0, *args)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(np.nan_to_num(ours), np.nan_to_num(ref), **_close(dtype))
        np.testing.assert_allclose(lse, ref_lse, **_close(dtype))


def test_more_queries_keep_the_tiled_kernel_bit_for_bit():
    """Above DECODE_MAX_QUERIES the op's kernel is the tiled one, unchanged."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((4, fast.DECODE_MAX_QUERIES + 1, 8)).astype(np.float32)
               for _ in range(3))
    lengths = np.full(4, q.shape[1])
    ours, _ = kernels.implementation("attention_forward", "numba")(q, k, v, lengths, True, 0.3, None)
    out = np.empty_like(q)
    lse = np.empty(q.shape[:2], dtype=q.dtype)
    tq, tk = fast.tile_sizes(4)
    fast._attention_forward_tiles(q, k, v, lengths, True, np.float32(0.3), -1, tq, tk, out, lse, 0, 1)
    assert np.array_equal(ours, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decoding_over_a_kv_cache_equals_the_plain_path_and_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    cache = KVCache()
    for t in (5, 1, 1, 2, 4):       # a prefill, then steps of 1-4 tokens (views of a larger buffer)
        q, k, v = (ta.tensor(rng.standard_normal((2, 3, t, 8)).astype(dtype)) for _ in range(3))
        with ta.no_grad():
            keys, values = cache.update(k, v)
            fused = F.scaled_dot_product_attention(q, keys, values)
        plain_q = ta.tensor(q.array, requires_grad=True)        # recorded: the five-op path
        plain = F.scaled_dot_product_attention(plain_q, ta.tensor(keys.array.copy()),
                                               ta.tensor(values.array.copy()))
        theirs = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(np.ascontiguousarray(a.array)) for a in (q, keys, values))).numpy()
        np.testing.assert_allclose(fused.array, plain.array, **_close(dtype))
        np.testing.assert_allclose(fused.array, theirs, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
