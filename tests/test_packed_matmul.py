"""kernels/lowlevel/packed_matmul.py: the register-tile product the LSTM's per-step h @ W uses equals a @ b
(its twin) on odd shapes, strided operands and both precisions, in every variant (AVX-512, AVX2,
portable: LLVM splits vectors wider than this CPU's, so each runs here); the variant is chosen
from the CPU's features; and fastmath.wide_vectors really lets the compiler use the widest vectors."""
import numba
import numpy as np
import pytest

from tinyattn.kernels.lowlevel import cpu, fastmath as fm
from tinyattn.kernels.lowlevel.packed_matmul import (TILE_ROWS, VECTOR_BITS, pack_panels,
                                                     pack_panels_with, packed_matmul,
                                                     packed_matmul_with, panel_width)

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
def test_wide_vectors_asks_for_this_cpus_vector_width():
    def saxpy(a, x, y):
        for i in range(x.shape[0]):
            y[i] += a * x[i]

    def saxpy_wide(a, x, y):
        fm.wide_vectors()
        for i in range(x.shape[0]):
            y[i] += a * x[i]

    x, y = np.ones(256, np.float32), np.ones(256, np.float32)
    asm, ir = {}, {}
    for f in (saxpy, saxpy_wide):
        jitted = numba.njit(cache=False)(f)
        jitted(np.float32(2), x, y)
        asm[f.__name__] = next(iter(jitted.inspect_asm().values()))
        ir[f.__name__] = next(iter(jitted.inspect_llvm().values()))
    attribute = f'"prefer-vector-width"="{VECTOR_BITS}"'
    assert attribute in ir["saxpy_wide"] and attribute not in ir["saxpy"]
    if VECTOR_BITS == 512:      # (LLVM's default width differs by CPU: only the marked one is sure)
        assert "zmm" in asm["saxpy_wide"]
    np.testing.assert_array_equal(y, np.full(256, 5.0, np.float32))

@pytest.mark.parametrize("features,name", [
    ({"avx512f": True, "avx2": True, "fma": True}, "avx512"),
    ({"avx2": True, "fma": True, "avx": True}, "avx2"),
    ({"avx2": True}, "portable"),                   # no fused multiply-add: not the AVX2 tile
    ({"sse2": True}, "portable"),
    ({"neon": True}, "portable"),
    ({}, "portable")])                              # LLVM could not tell: the safe choice
def test_the_variant_follows_the_cpu_features(features, name):
    v = cpu.choose(features)
    assert v is cpu.VARIANTS[name]
    # the tile's accumulators, the two panel loads and the broadcast fit the vector registers
    registers = 32 if name == "avx512" else 16
    assert 2 * v.tile_rows + 3 <= registers


def test_the_variant_follows_numbas_target_where_the_user_sets_one(monkeypatch):
    """NUMBA_CPU_NAME / NUMBA_CPU_FEATURES make Numba compile for another CPU (a cache shared by
    machines): the tile and vector width must be that CPU's, not this one's."""
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "haswell")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx,+avx2,+fma,-avx512f,+sse4.2")
    assert cpu.choose(cpu.host_features()) is cpu.AVX2
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx512f,+avx2,+fma")
    assert cpu.choose(cpu.host_features()) is cpu.AVX512
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    assert cpu.choose(cpu.host_features()) is cpu.PORTABLE   # a name alone: only the baseline


def test_the_host_variant_is_the_one_the_kernels_use():
    assert cpu.HOST is cpu.choose(cpu.host_features())
    assert (VECTOR_BITS, TILE_ROWS) == (cpu.HOST.vector_bits, cpu.HOST.tile_rows)
    assert pack_panels(np.ones((3, 5), np.float32)).shape[2] == cpu.HOST.panel_width(4)


@pytest.mark.parametrize("variant", sorted(cpu.VARIANTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_variant_equals_the_numpy_product(variant, dtype):
    v = cpu.VARIANTS[variant]
    rng = np.random.default_rng(7)
    for M, K, N in ((v.tile_rows + 1, 300, 2 * v.panel_width(np.dtype(dtype).itemsize) + 3),
                    (1, 1, 1), (5, 0, 4)):
        a = rng.standard_normal((K, M)).astype(dtype).T        # strided a
        b = rng.standard_normal((K, N)).astype(dtype)
        panels = pack_panels_with(b, v.vector_bits)
        assert panels.shape[2] == v.panel_width(np.dtype(dtype).itemsize)
        out = np.full((M, N + 2), 7.0, dtype=dtype)
        packed_matmul_with(a, panels, N, out, False, v.vector_bits, v.tile_rows, int(v.fused))
        assert _relative_error(out[:, :N], a @ b) < TOL[dtype] if K else (out[:, :N] == 0).all()
        assert (out[:, N:] == 7.0).all()
        packed_matmul_with(a, panels, N, out, True, v.vector_bits, v.tile_rows, int(v.fused))
        assert _relative_error(out[:, :N], 2 * (a @ b)) < 2 * TOL[dtype] if K else True
