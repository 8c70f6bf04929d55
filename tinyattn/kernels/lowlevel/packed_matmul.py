"""A matrix product for many small products against the same matrix: the LSTM's per-step h @ W.

Why: BLAS is built for big products. Every call first copies ("packs") the right-hand matrix into
the order its inner loop reads. For an LSTM step, (16 x 128) @ (128 x 512), copying the 256 KiB
weight matrix costs about as much as the arithmetic, and BLAS repeats it at every step. Here the
weights are packed once per layer call and each step runs only the inner loop: 2.2x faster per
step on the benchmark machine (27 µs -> 12 µs float32; README, "The LSTM gap, measured").

How (the register-blocking idea of GotoBLAS/BLIS, reduced to its core):
  * B (K x N) is cut into panels of NR columns, each stored k-major and zero-padded past column N:
    ``panels[p, k, :] = B[k, p·NR : (p+1)·NR]`` (``pack_panels``);
  * an MR x NR tile of the result stays in vector registers while k runs over K: per k, the
    panel's row is two vector loads, MR numbers of A are each broadcast to a vector, and 2·MR
    fused multiply-adds update the tile. Nothing of C is read or written inside that loop.
  * MR and NR follow the vector registers the CPU reports (``cpu.py`` chooses; nothing is
    assumed): with AVX-512 (32 registers of 512 bits) MR = 8 and a row of the tile is two
    registers, NR = 32 float32 / 16 float64 numbers: 16 registers hold the tile. With AVX2 256-bit
    vectors and MR = 6 (12 of 16 registers); elsewhere 128-bit vectors, MR = 4, and LLVM's
    ``fmuladd`` instead of ``fma`` (a multiply and an add where the CPU has no fused one).
    ``packed_matmul`` runs the host's variant; ``packed_matmul_with`` takes one explicitly (the
    tests run every variant against ``a @ b``: LLVM splits vectors wider than the CPU's).
LLVM does not write such a loop from Python-level code by itself (its loop vectoriser prefers
256-bit vectors on these CPUs and keeps no 2-D tile in registers), so that inner loop, and only
it, is emitted as LLVM IR with explicit vector types (``_tile_product``); the rest is plain Numba.
Under ``NUMBA_DISABLE_JIT=1`` the tile is computed with NumPy, so the callers can still be
stepped through.

Rounding: each element of a tile is summed in the order k = 0, 1, ..., K-1 with fused
multiply-adds - not the order of NumPy's BLAS, so results agree with ``a @ b`` to rounding (the
tests: float64 to 1e-13 relative).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import literally, njit


from .cpu import HOST
from . import numba_cache

VECTOR_BITS = HOST.vector_bits
TILE_ROWS = HOST.tile_rows      # MR: 2·MR accumulators + 2 loads + 1 broadcast fit the registers
FUSED = int(HOST.fused)         # 1: llvm.fma; 0: llvm.fmuladd (fused only where the CPU can)
K_BLOCK = 256       # k-range per pass: one panel's slice (256 x NR numbers, 32 KiB) stays in L1

_JIT = dict(cache=numba_cache.ENABLED, fastmath=False, error_model="numpy", nogil=True)


def panel_width(dtype, variant=HOST) -> int:
    """NR: numbers per tile row (two vector registers) for float32 or float64."""
    return variant.panel_width(np.dtype(dtype).itemsize)


if numba.config.DISABLE_JIT:
    def _tile_product(a, r0, r_last, panels, p, tile, vector_bits, tile_rows, fused):
        """tile[i, :] = sum over k of a[min(r0 + i, r_last), k] * panels[p, k, :]."""
        rows = np.minimum(np.arange(r0, r0 + tile.shape[0]), r_last)
        tile[:] = a[rows] @ panels[p]
else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.core.extending import intrinsic

    @intrinsic
    def _tile_product(typingctx, a, r0, r_last, panels, p, tile, vector_bits, tile_rows, fused):
        """tile[i, :] = sum over k of a[min(r0 + i, r_last), k] * panels[p, k, :], for the MR rows
        i of the (MR, NR) tile; K = a.shape[1] = panels.shape[1]. ``a`` and ``panels`` may have any
        strides (a transposed view, a k-slice); rows past ``r_last`` repeat it, so a last, partial
        block of rows needs no padded copy. The tile is C-contiguous. ``vector_bits``,
        ``tile_rows`` (MR) and ``fused`` are compile-time constants: the variant to emit."""
        dtypes = {a.dtype, panels.dtype, tile.dtype}
        if len(dtypes) != 1 or a.dtype not in (types.float32, types.float64) or a.ndim != 2 \
                or panels.ndim != 3 or tile.ndim != 2:
            raise TypingError(f"_tile_product: float32/float64 arrays a (2-D), panels (3-D), tile "
                              f"(2-D) of one dtype, got {a}, {panels}, {tile}")
        if not all(isinstance(t, types.IntegerLiteral) for t in (vector_bits, tile_rows, fused)):
            raise TypingError(f"_tile_product: vector_bits, tile_rows, fused must be constants, "
                              f"got {vector_bits}, {tile_rows}, {fused}")
        bits, rows, fuse = (t.literal_value for t in (vector_bits, tile_rows, fused))
        sig = types.void(a, r0, r_last, panels, p, tile, vector_bits, tile_rows, fused)

        def codegen(context, builder, signature, args):
            a_v, _, _, panels_v, _, tile_v = args[:6]
            a_ty, _, _, panels_ty, _, tile_ty = signature.args[:6]
            i64 = ir.IntType(64)
            def as_int64(position):                 # the integer arguments, whatever their type
                return context.cast(builder, args[position], signature.args[position], types.int64)
            r0_v, r_last_v, p_v = (as_int64(i) for i in (1, 2, 4))
            elem = context.get_value_type(a_ty.dtype)
            lanes = bits // a_ty.dtype.bitwidth
            vec = ir.VectorType(elem, lanes)
            const = lambda n: ir.Constant(i64, n)       # noqa: E731
            a_arr = context.make_array(a_ty)(context, builder, a_v)
            pan = context.make_array(panels_ty)(context, builder, panels_v)
            til = context.make_array(tile_ty)(context, builder, tile_v)
            size = const(a_ty.dtype.bitwidth // 8)
            row_stride, col_stride = (builder.sdiv(s, size) for s in cgutils.unpack_tuple(builder, a_arr.strides, 2))
            n_k = cgutils.unpack_tuple(builder, a_arr.shape, 2)[1]
            panel_stride, k_stride, _ = (builder.sdiv(s, size) for s in cgutils.unpack_tuple(builder, pan.strides, 3))
            # where each of the MR rows of A starts (rows past r_last repeat it)
            row_starts = []
            for i in range(rows):
                r = builder.add(r0_v, const(i))
                r = builder.select(builder.icmp_signed("<", r, r_last_v), r, r_last_v)
                row_starts.append(builder.gep(a_arr.data, [builder.mul(r, row_stride)]))
            panel = builder.gep(pan.data, [builder.mul(p_v, panel_stride)])
            # fmuladd: LLVM fuses it where the CPU has FMA and splits it where not (fma itself
            # would become a slow library call there)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                                 f"llvm.{'fma' if fuse else 'fmuladd'}"
                                                 f".v{lanes}f{a_ty.dtype.bitwidth}")
            zero = ir.Constant(vec, None)
            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", n_k, const(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), entry)
            acc = []
            for _ in range(2 * rows):
                phi = builder.phi(vec)
                phi.add_incoming(zero, entry)
                acc.append(phi)
            b_row = builder.gep(panel, [builder.mul(k, k_stride)])
            b_lo = builder.load(builder.bitcast(b_row, vec.as_pointer()), align=a_ty.dtype.bitwidth // 8)
            b_hi = builder.load(builder.bitcast(builder.gep(b_row, [const(lanes)]), vec.as_pointer()),
                                align=a_ty.dtype.bitwidth // 8)
            a_off = builder.mul(k, col_stride)
            new = []
            for i in range(rows):
                s = builder.load(builder.gep(row_starts[i], [a_off]))
                v = builder.insert_element(ir.Constant(vec, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
                v = builder.shuffle_vector(v, ir.Constant(vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(ir.IntType(32), lanes), None))
                new.append(builder.call(fma, [v, b_lo, acc[2 * i]]))
                new.append(builder.call(fma, [v, b_hi, acc[2 * i + 1]]))
            k_next = builder.add(k, const(1))
            body = builder.block
            k.add_incoming(k_next, body)
            for phi, value in zip(acc, new):
                phi.add_incoming(value, body)
            builder.cbranch(builder.icmp_signed("<", k_next, n_k), loop, done)

            builder.position_at_end(done)
            results = []
            for j in range(2 * rows):          # (phi nodes first: LLVM requires them on top)
                result = builder.phi(vec)
                result.add_incoming(zero, entry)
                result.add_incoming(new[j], body)
                results.append(result)
            for j, result in enumerate(results):
                dst = builder.bitcast(builder.gep(til.data, [const(j * lanes)]), vec.as_pointer())
                builder.store(result, dst, align=a_ty.dtype.bitwidth // 8)
            return context.get_dummy_value()
        return sig, codegen


@njit(**_JIT)
def pack_panels_with(b, vector_bits):
    """B (K, N), any strides -> panels (ceil(N / NR), K, NR) for tiles of ``vector_bits`` vectors:
    column block p of B, row by row, zeros past column N."""
    K, N = b.shape
    nr = 2 * vector_bits // (8 * b.itemsize)
    n_panels = (N + nr - 1) // nr
    panels = np.zeros((n_panels, K, nr), dtype=b.dtype)
    for p in range(n_panels):
        c0 = p * nr
        c1 = min(N, c0 + nr)
        for k in range(K):
            row = panels[p, k]
            for j in range(c0, c1):
                row[j - c0] = b[k, j]
    return panels


@njit(**_JIT)
def pack_panels(b):
    """pack_panels_with(b, ...) for this CPU's vectors."""
    return pack_panels_with(b, VECTOR_BITS)


@njit(inline="always", **_JIT)
def _store_tile(out, tile, r0, rows, c0, cols, add):
    """out[r0:r0+rows, c0:c0+cols] (+)= the tile's top-left corner."""
    for i in range(rows):
        dst, src = out[r0 + i], tile[i]
        if add:
            for j in range(cols):
                dst[c0 + j] += src[j]
        else:
            for j in range(cols):
                dst[c0 + j] = src[j]


@njit(**_JIT)
def packed_matmul_with(a, panels, n, out, accumulate, vector_bits, tile_rows, fused):
    """packed_matmul with the variant given: ``vector_bits`` wide vectors, ``tile_rows`` rows per
    tile, ``fused`` 1 (llvm.fma) or 0 (llvm.fmuladd); panels = pack_panels_with(B, vector_bits).
    Each distinct variant is compiled once (they are constants of the machine code)."""
    literally(vector_bits)
    literally(tile_rows)
    literally(fused)
    M, K = a.shape
    n_panels, _, nr = panels.shape
    tile = np.empty((tile_rows, nr), dtype=a.dtype)
    if K == 0 and not accumulate:
        out[:, :n] = 0.0
    for k0 in range(0, K, K_BLOCK):
        k1 = min(K, k0 + K_BLOCK)
        add = accumulate or k0 > 0
        a_k, panels_k = a[:, k0:k1], panels[:, k0:k1]
        for p in range(n_panels):      # the panel's k-block stays in L1 over all rows of a
            for r0 in range(0, M, tile_rows):
                _tile_product(a_k, r0, M - 1, panels_k, p, tile, vector_bits, tile_rows, fused)
                _store_tile(out, tile, r0, min(tile_rows, M - r0), p * nr,
                            min(n, (p + 1) * nr) - p * nr, add)


@njit(**_JIT)
def packed_matmul(a, panels, n, out, accumulate):
    """out[:, :n] = a @ B (``accumulate``: +=), where panels = pack_panels(B) and n = B.shape[1].
    a (M, K) may have any strides (fastest with contiguous rows: for a transposed a, e.g. a weight
    gradient dzᵀ @ h, BLAS was faster); out is (M, >= n). Serial: callers split rows over threads.
    This CPU's variant (``cpu.HOST``)."""
    packed_matmul_with(a, panels, n, out, accumulate, VECTOR_BITS, TILE_ROWS, FUSED)
