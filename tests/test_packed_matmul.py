"""kernels/lowlevel/packed_matmul.py: the register-tile product the LSTM's per-step h @ W uses equals a @ b
(its twin) on odd shapes, strided operands and both precisions; and fastmath.wide_vectors really
lets the compiler use the widest vectors."""
import numba
import numpy as np
import pytest

from tinyattn.kernels.lowlevel import fastmath as fm
from tinyattn.kernels.lowlevel.packed_matmul import TILE_ROWS, VECTOR_BITS, pack_panels, packed_matmul, panel_width

SHAPES = [(1, 1, 1), (TILE_ROWS, 7, 3), (TILE_ROWS + 1, 5, 20), (17, 300, 33), (16, 128, 512),
          (3, 513, 70), (9, 0, 4), (40, 64, 2 * 32 + 1)]
TOL = {np.float32: 2e-6, np.float64: 1e-13}


def _relative_error(got, want):
    return np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_packed_matmul_equals_the_numpy_product(dtype, M, K, N):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    out = np.full((M, N + 3), 7.0, dtype=dtype)          # columns past n must stay untouched
    packed_matmul(a, pack_panels(b), N, out, False)
    assert _relative_error(out[:, :N], a @ b) < TOL[dtype]
    assert (out[:, N:] == 7.0).all()
    packed_matmul(a, pack_panels(b), N, out, True)       # accumulate: out += a @ b
    assert _relative_error(out[:, :N], 2 * (a @ b)) < 2 * TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_operands_transposes_and_slices(dtype):
    rng = np.random.default_rng(1)
    at = rng.standard_normal((300, 19)).astype(dtype)      # a = at.T: columns contiguous
    big = rng.standard_normal((40, 300, 50)).astype(dtype)
    b = big[3, :, 5:42]                                     # a strided slice as B
    out = np.empty((19, 37), dtype=dtype)
    packed_matmul(at.T, pack_panels(b), 37, out, False)
    assert _relative_error(out, at.T @ b) < TOL[dtype]
    out2 = np.empty((19, 37), dtype=dtype)
    packed_matmul(at.T, pack_panels(np.ascontiguousarray(b.T).T), 37, out2, False)
    np.testing.assert_array_equal(out, out2)               # packing forgets B's layout


def test_pack_panels_layout_and_zero_padding():
    b = np.arange(5 * 37, dtype=np.float32).reshape(5, 37)
    nr = panel_width(np.float32)
    panels = pack_panels(b)
    assert panels.shape == (-(-37 // nr), 5, nr)
    for p in range(panels.shape[0]):
        cols = b[:, p * nr:(p + 1) * nr]
        np.testing.assert_array_equal(panels[p, :, :cols.shape[1]], cols)
        assert (panels[p, :, cols.shape[1]:] == 0).all()
    assert 2 * panel_width(np.float64) == panel_width(np.float32) == 2 * VECTOR_BITS // 32   # two registers


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiled code under NUMBA_DISABLE_JIT")
@pytest.mark.skipif(VECTOR_BITS != 512, reason="needs a CPU with AVX-512")
def test_wide_vectors_makes_the_loop_use_512_bit_registers():
    def saxpy(a, x, y):
        for i in range(x.shape[0]):
            y[i] += a * x[i]

    def saxpy_wide(a, x, y):
        fm.wide_vectors()
        for i in range(x.shape[0]):
            y[i] += a * x[i]

    x, y = np.ones(256, np.float32), np.ones(256, np.float32)
    asm = {}
    for f in (saxpy, saxpy_wide):
        jitted = numba.njit(cache=False)(f)
        jitted(np.float32(2), x, y)
        asm[f.__name__] = next(iter(jitted.inspect_asm().values()))
    assert "zmm" not in asm["saxpy"]          # LLVM's default on these CPUs: 256-bit vectors
    assert "zmm" in asm["saxpy_wide"]
    np.testing.assert_array_equal(y, np.full(256, 5.0, np.float32))
