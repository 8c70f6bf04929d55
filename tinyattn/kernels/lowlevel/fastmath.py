"""exp, expm1, sigmoid and tanh that the compiler can vectorise, for the compiled kernels.

Why: inside a Numba loop ``math.exp(x)`` is a call into the C maths library, one number at a time,
and a call stops LLVM from turning the loop into SIMD code - so NumPy's own SIMD ``np.exp`` would
beat our "fast" loop. Written as plain arithmetic and inlined (``inline="always"``), the same
function lets the loop run 4-8 numbers per instruction.

How (the classic recipe): write x = n·ln2 + r with n an integer and |r| <= ln2 / 2, so that

    e^x = 2^n · e^r,

e^r comes from its Taylor series (|r| is small: 13 terms are exact to the last bit of float64),
and 2^n is built directly from its IEEE-754 bit pattern: exponent field n + 1023, mantissa 0.
ln2 is split into a high and a low part (Cody & Waite) so that n·ln2 is subtracted without
rounding error. Accuracy: within 1-2 units in the last place of float64 (the tests compare the
kernels with their NumPy twins at 1e-12). float32 is computed in float32 with a shorter series
(8 terms: the first one left out is < 2^-24 · e^r, below float32's last bit), twice as many
numbers per instruction and half the work of float64.

Conditionals are written as "compute both, then pick" so that LLVM emits a select, not a branch.
Under ``NUMBA_DISABLE_JIT=1`` these are ordinary Python functions (the bit cast falls back to
NumPy), so a kernel can still be stepped through line by line.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .cpu import HOST
from . import numba_cache

if numba.config.DISABLE_JIT:
    def _float64_from_bits(bits):
        """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
        return np.array(bits, dtype=np.int64).view(np.float64)[()]

    def _float32_from_bits(bits):
        return np.array(bits, dtype=np.int32).view(np.float32)[()]

    def wide_vectors():
        """(No compiled code under NUMBA_DISABLE_JIT: nothing to mark.)"""

    def _mul_add(a, b, c):
        return a * b + c
else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic

    @intrinsic
    def _float64_from_bits(typingctx, bits):
        """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (a free reinterpretation)."""
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return sig, codegen

    @intrinsic
    def wide_vectors(typingctx):
        """Let LLVM's loop vectoriser use the widest vectors this CPU has (``cpu.HOST``: 512 bits
        with AVX-512) in the function that calls this. Emits no code: it marks the calling function with LLVM's
        "prefer-vector-width" attribute (by default LLVM uses only 256 bits on Intel CPUs, to
        avoid the clock slowdown of 512-bit code on older ones)."""
        sig = types.void()

        def codegen(context, builder, signature, args):
            # llvmlite only lists LLVM's keyword attributes; a "key"="value" one is added as text
            set.add(builder.function.attributes, f'"prefer-vector-width"="{HOST.vector_bits}"')
            return context.get_dummy_value()
        return sig, codegen

    @intrinsic
    def _mul_add(typingctx, a, b, c):
        """a · b + c as LLVM's ``fmuladd``: one fused multiply-add (rounded once) where the CPU
        has one, a multiply and an add where it does not. a, b, c of one float type."""
        sig = a(a, a, a)

        def codegen(context, builder, signature, args):
            t = context.get_value_type(signature.args[0])
            name = f"llvm.fmuladd.f{signature.args[0].bitwidth}"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t] * 3), name)
            return builder.call(fn, args)
        return sig, codegen

    @intrinsic
    def _float32_from_bits(typingctx, bits):
        """The float32 whose IEEE-754 bit pattern is the int32 ``bits``."""
        sig = types.float32(types.int32)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return sig, codegen

_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10   # ln2 = HI + LO; n·HI is exact
_ROUND = 6755399441055744.0      # 1.5 · 2^52: (y + _ROUND) - _ROUND rounds y to an integer
_EXP_MAX = 709.782712893384      # above: e^x overflows to inf
_EXP_MIN = -708.0                # below: 0 (e^x would be subnormal; we flush it to zero)
_HALF_LN2 = 0.34657359027997264

_INV_FACTORIAL = (1.0, 1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880,
                  1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800)

_JIT = dict(inline="always", cache=numba_cache.ENABLED, fastmath=False, error_model="numpy")


@njit(**_JIT)
def _is_single(T):
    """Is T float32? (1 + 1e-10 rounds to 1 only in float32: a constant the compiler folds.)"""
    return T(1.0) + T(1e-10) == T(1.0)


@njit(**_JIT)
def _pow2(n, single):
    """2^n for a whole number n held as a float: its IEEE-754 bit pattern is exponent n + bias."""
    if single:
        return _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return _float64_from_bits((np.int64(n) + 1023) << 52)


@njit(**_JIT)
def exp(x):
    """e^x, in the precision of x: float64, or float32 (twice as many numbers per instruction)."""
    T = type(x)                                  # float64 or float32: constants follow it
    single = _is_single(T)
    # ln2 = HI + LO with few bits in HI, so that n·HI is exact in the working precision
    hi = T(0.693359375) if single else T(_LN2_HI)
    lo = T(-2.12194440e-4) if single else T(_LN2_LO)
    big_round = T(12582912.0) if single else T(_ROUND)      # 1.5 · 2^(mantissa bits)
    top = T(88.7) if single else T(709.0)
    bottom = T(-87.3) if single else T(_EXP_MIN)
    y = min(max(x, bottom), top)
    n = (y * T(_LOG2E) + big_round) - big_round
    r = _mul_add(n, -lo, _mul_add(n, -hi, y))    # n·hi is exact: fusing changes nothing there
    # e^r = Σ_k r^k / k!, k <= 12 (float32: k <= 7): the first term left out is < 2e-16 (float32:
    # < 6e-9) for |r| <= ln2 / 2
    last = 7 if single else 12
    p = T(_INV_FACTORIAL[last])
    for k in range(last - 1, -1, -1):            # Horner, unrolled by the compiler; fused
        p = _mul_add(p, r, T(_INV_FACTORIAL[k]))  # multiply-adds: ~20% faster, rounded once
    e = p * T(_pow2(n, single))      # T(): _pow2 is typed float64 for both branches
    e = T(np.inf) if x > (T(88.72283) if single else T(_EXP_MAX)) else e
    return T(0.0) if x < bottom else e


@njit(**_JIT)
def expm1(x):
    """e^x - 1, also accurate for tiny x, where exp(x) - 1 would lose every digit: there the
    series of e^x - 1 itself is used."""
    T = type(x)
    single = _is_single(T)
    half_ln2 = T(_HALF_LN2)
    s = min(max(x, -half_ln2), half_ln2)        # keep the unused series finite
    last = 8 if single else 13
    p = T(_INV_FACTORIAL[last])
    for k in range(last - 1, 0, -1):
        p = p * s + T(_INV_FACTORIAL[k])
    small = p * s
    big = exp(x) - T(1.0)
    return small if abs(x) < half_ln2 else big


@njit(**_JIT)
def sigmoid(z):
    """1 / (1 + e^-z) from e = e^-|z| <= 1: never overflows (the engine's formula)."""
    T = type(z)
    e = exp(-abs(z))
    positive = T(1.0) / (T(1.0) + e)        # one division; e / (1 + e) is then e · positive
    return positive if z >= T(0.0) else e * positive


@njit(**_JIT)
def tanh(x):
    """tanh|x| = -u / (2 + u) with u = expm1(-2|x|) in (-1, 0], then the sign of x."""
    two = type(x)(2.0)
    u = expm1(-two * abs(x))
    t = -u / (two + u)
    return t if x >= type(x)(0.0) else -t


# ----- the largest number of a row, on the numbers' bit patterns
# LLVM vectorises a float maximum over a loop only under fastmath (a float max reduction may
# not be reordered when NaN can occur); an integer maximum it always vectorises. Read as a
# signed integer, the bit pattern of a non-negative float orders like the float; for a negative
# one (sign bit set) flipping every bit but the sign makes it order like the float too. So the
# maximum of those keys, mapped back (the map is its own inverse), is the float maximum:
# ~0.4 -> ~0.1 ns per float32 number on an AMD EPYC (znver4), in the attention kernels' loop.
# NaN: a NaN with the sign bit clear orders above +inf (the maximum is then NaN); one with it set
# orders below -inf (it is skipped): callers that must give NaN for a row with NaN in it get it
# from exp(NaN - m) = NaN either way.
@njit(**_JIT)
def _ordered32(bits):
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(**_JIT)
def _ordered64(bits):
    return bits ^ ((bits >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))


@njit(**_JIT)
def _row_max32(row, n):
    keys = row.view(np.int32)
    m = np.int32(-2**31)
    for c in range(n):
        key = _ordered32(keys[c])
        m = key if key > m else m
    return _float32_from_bits(_ordered32(m))


@njit(**_JIT)
def _row_max64(row, n):
    keys = row.view(np.int64)
    m = np.int64(-2**63)
    for c in range(n):
        key = _ordered64(keys[c])
        m = key if key > m else m
    return _float64_from_bits(_ordered64(m))


def row_max(row, n):
    """max(row[:n]) of a contiguous float32 or float64 row, vectorised; -inf for n = 0 (the
    smallest key maps back to a NaN with the sign set, so an empty row is handled here)."""
    if n == 0:
        return row.dtype.type(-np.inf)
    if row.dtype == np.float32:
        return _row_max32(row, n)
    return _row_max64(row, n)


if not numba.config.DISABLE_JIT:
    from numba.extending import overload

    @overload(row_max, inline="always")
    def _row_max_typed(row, n):
        """Compiled: the bit width is chosen from the row's dtype at compile time."""
        body = _row_max32 if row.dtype == types.float32 else _row_max64

        def impl(row, n):
            if n == 0:
                return row.dtype.type(-np.inf)
            return body(row, n)
        return impl
