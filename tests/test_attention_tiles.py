"""The compiled attention kernels with every tile size and work split they can take, against the
NumPy twin: the tile sizes are chosen at run time from the CPU's cache (kernels/numba/
memory_efficient_attention.py, ``tile_sizes``), so a test forces small and uneven ones to walk
many tiles - partial edge tiles, diagonal tiles, windows narrower than a tile - on small inputs."""
from __future__ import annotations

import numpy as np
import pytest

from tinyattn import kernels

numba = pytest.importorskip("numba")

from test_kernels import assert_twins_agree, rng_for  # noqa: E402

from tinyattn.kernels.lowlevel import cpu  # noqa: E402
from tinyattn.kernels.numba import memory_efficient_attention as fast  # noqa: E402


@pytest.fixture
def tiles(monkeypatch):
    def use(query_tile, key_tile):
        monkeypatch.setattr(fast, "_tile_override", (query_tile, key_tile))
    return use


@pytest.fixture(params=["one thread", "all threads"])
def threads(request, monkeypatch):
    # "all threads" really splits these small cases (the forward keeps small work on one thread)
    monkeypatch.setattr(fast, "TILES_WORK_PER_THREAD", 1)
    before = numba.get_num_threads()
    numba.set_num_threads(1 if request.param == "one thread" else numba.config.NUMBA_NUM_THREADS)
    yield
    numba.set_num_threads(before)


def _case(bh, tq, tk, d, causal, window, lengths):
    rng = rng_for("tiles", bh, tq, tk, d, causal, window, lengths)
    q, k = rng.standard_normal((bh, tq, d)), rng.standard_normal((bh, tk, d))
    v, g = rng.standard_normal((bh, tk, d)), rng.standard_normal((bh, tq, d))
    key_lengths = np.full(bh, tk) if lengths is None else np.asarray(lengths)
    return q, k, v, g, (key_lengths, causal, 0.41, window)


@pytest.mark.parametrize("query_tile,key_tile", [(16, 16), (8, 24), (32, 8)])
@pytest.mark.parametrize("bh,tq,tk,lengths", [(1, 70, 70, None), (3, 50, 61, [61, 17, 0]),
                                              (2, 40, 90, [90, 33])])
@pytest.mark.parametrize("causal,window", [(False, None), (True, None), (True, 5), (False, 11)])
def test_forward_and_backward_agree_with_the_twin_for_any_tiles(tiles, threads, query_tile,
                                                                key_tile, bh, tq, tk, lengths,
                                                                causal, window):
    tiles(query_tile, key_tile)
    q, k, v, g, args = _case(bh, tq, tk, 3, causal, window, lengths)
    assert_twins_agree("attention_forward", q, k, v, *args)
    out, lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
    assert_twins_agree("attention_backward", g, q, k, v, out, lse, *args)


@pytest.mark.parametrize("private_dq", [True, False])
def test_one_sequence_on_all_threads_takes_either_split_and_agrees(tiles, monkeypatch, private_dq):
    """Fewer sequences than threads: key tiles with a private dq per thread, or - where those
    copies would take too much memory - the two-pass split (dk, dv by key tile, dq by query tile)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only: the by-sequence split is the only one")
    tiles(16, 16)
    if not private_dq:
        monkeypatch.setattr(fast, "PRIVATE_DQ_BYTES", 0)
    calls = []
    for name in ("_attention_backward_by_key_tile", "_attention_backward_dk_dv",
                 "_attention_backward_dq"):
        kernel = getattr(fast, name)
        monkeypatch.setattr(fast, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a)))
    q, k, v, g, args = _case(1, 100, 100, 4, True, None, None)
    out, lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        assert_twins_agree("attention_backward", g, q, k, v, out, lse, *args)
    finally:
        numba.set_num_threads(before)
    expected = {"_attention_backward_by_key_tile"} if private_dq else {
        "_attention_backward_dk_dv", "_attention_backward_dq"}
    assert set(calls) == expected


def test_the_largest_tiles_on_a_long_sequence(tiles):
    """The tile a CPU with a large cache gets (256 x 256), with partial last tiles."""
    tiles(fast.LARGEST_TILE, fast.LARGEST_TILE)
    q, k, v, g, args = _case(1, 600, 600, 2, True, None, [590])
    assert_twins_agree("attention_forward", q, k, v, *args)
    out, lse = kernels.implementation("attention_forward", "numpy")(q, k, v, *args)
    assert_twins_agree("attention_backward", g, q, k, v, out, lse, *args)


def test_tile_sizes_follow_the_cache(monkeypatch):
    """The long side from the cache, the short side half of it; the backward takes them swapped."""
    monkeypatch.setattr(cpu, "l2_cache_bytes", lambda: 1024 * 1024)
    assert fast.tile_sizes(4) == (128, 256)     # 256 x 256 float32 scores: a quarter of L2
    assert fast.backward_tiles(4) == (256, 128)
    assert fast.tile_sizes(8) == (64, 128)      # float64: 256 x 256 would be half of L2
    monkeypatch.setattr(cpu, "l2_cache_bytes", lambda: 256 * 1024)
    assert fast.tile_sizes(4) == (64, 128)      # a smaller cache: smaller tiles
    monkeypatch.setattr(cpu, "l2_cache_bytes", lambda: 1024)
    assert fast.tile_sizes(4) == (fast.SMALLEST_TILE // 2, fast.SMALLEST_TILE)  # never below


@pytest.mark.parametrize("tile", [None, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_appending_a_token_leaves_earlier_outputs_unchanged_to_rounding(tiles, tile, dtype):
    """Causal decoding (lesson 21) compares logits with and without one more token: nothing may
    depend on the sequence length beyond rounding - not the tiles, not the masking. Not exactly:
    a tile's weighted sum of values is one BLAS product over the tile's keys, the masked ones
    entering as zeros, and OpenBLAS may order a sum of n + 1 terms (the last an exact 0) unlike one
    of n (seen for odd n on AMD EPYC / AVX-512). Odd and even lengths, one and several tiles."""
    if tile is not None:
        tiles(tile, tile)
    rng = rng_for("append", tile, dtype)
    eps = np.finfo(dtype).eps
    for t in (11, 18, 31, 64, 257, 258, 300):
        q, k, v = (rng.standard_normal((2, t + 1, 8)).astype(dtype) for _ in range(3))
        forward = kernels.implementation("attention_forward", "numba")
        longer, _ = forward(q, k, v, np.full(2, t + 1), True, 0.35, None)
        shorter, _ = forward(*(a[:, :t].copy() for a in (q, k, v)), np.full(2, t), True, 0.35, None)
        np.testing.assert_allclose(longer[:, :t], shorter, rtol=0, atol=16 * eps, err_msg=str(t))


def test_l2_cache_size_is_read_or_defaulted():
    size = cpu.l2_cache_bytes()
    assert isinstance(size, int) and size >= 16 * 1024      # no CPU we run on has less
