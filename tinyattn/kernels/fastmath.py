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
kernels with their NumPy twins at 1e-12). float32 inputs are computed in float64 and rounded.

Conditionals are written as "compute both, then pick" so that LLVM emits a select, not a branch.
Under ``NUMBA_DISABLE_JIT=1`` these are ordinary Python functions (the bit cast falls back to
NumPy), so a kernel can still be stepped through line by line.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

if numba.config.DISABLE_JIT:
    def _float64_from_bits(bits):
        """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
        return np.array(bits, dtype=np.int64).view(np.float64)[()]
else:
    from llvmlite import ir
    from numba import types
    from numba.core.extending import intrinsic

    @intrinsic
    def _float64_from_bits(typingctx, bits):
        """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (a free reinterpretation)."""
        sig = types.float64(types.int64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return sig, codegen

_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 0.6931471803691238, 1.9082149292705877e-10   # ln2 = HI + LO; n·HI is exact
_ROUND = 6755399441055744.0      # 1.5 · 2^52: (y + _ROUND) - _ROUND rounds y to an integer
_EXP_MAX = 709.782712893384      # above: e^x overflows to inf
_EXP_MIN = -708.0                # below: 0 (e^x would be subnormal; we flush it to zero)
_HALF_LN2 = 0.34657359027997264

_JIT = dict(inline="always", cache=True, fastmath=False, error_model="numpy")


@njit(**_JIT)
def exp(x):
    """e^x for a float64 (or float32, computed in float64)."""
    y = min(max(x, _EXP_MIN), 709.0)
    n = (y * _LOG2E + _ROUND) - _ROUND
    r = (y - n * _LN2_HI) - n * _LN2_LO
    # e^r = Σ_k r^k / k!, k <= 12: the first term left out is < 2e-16 for |r| <= ln2 / 2
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (
            1 / 3628800 + r * (1 / 39916800 + r * (1 / 479001600))))))))))))
    e = p * _float64_from_bits((np.int64(n) + 1023) << 52)
    e = np.inf if x > _EXP_MAX else e
    return 0.0 if x < _EXP_MIN else e


@njit(**_JIT)
def expm1(x):
    """e^x - 1, also accurate for tiny x, where exp(x) - 1 would lose every digit: there the
    series of e^x - 1 itself is used."""
    s = min(max(x, -_HALF_LN2), _HALF_LN2)      # keep the unused series finite
    small = s * (1.0 + s * (1 / 2 + s * (1 / 6 + s * (1 / 24 + s * (1 / 120 + s * (
        1 / 720 + s * (1 / 5040 + s * (1 / 40320 + s * (1 / 362880 + s * (
            1 / 3628800 + s * (1 / 39916800 + s * (1 / 479001600 + s * (1 / 6227020800)))))))))))))
    big = exp(x) - 1.0
    return small if abs(x) < _HALF_LN2 else big


@njit(**_JIT)
def sigmoid(z):
    """1 / (1 + e^-z) from e = e^-|z| <= 1: never overflows (the engine's formula)."""
    e = exp(-abs(z))
    positive, negative = 1.0 / (1.0 + e), e / (1.0 + e)
    return positive if z >= 0 else negative


@njit(**_JIT)
def tanh(x):
    """tanh|x| = -u / (2 + u) with u = expm1(-2|x|) in (-1, 0], then the sign of x."""
    u = expm1(-2.0 * abs(x))
    t = -u / (2.0 + u)
    return t if x >= 0 else -t
