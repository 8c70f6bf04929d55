"""gradcheck itself: it must catch wrong gradients, say where, and refuse checks it cannot do."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.autograd import Function, GradcheckError, gradcheck
from tinyattn.autograd.gradcheck import FULL_ROWS_MAX_OUTPUTS

from gradcases import rnd


class SquareWrongAtOneElement(Function):
    """y = x², with a backward that is right except at flat index 4, where it is off by 0.5,
    and slightly off (by 1e-3) at flat index 1: the report must name index 4, the worst."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        d = 2 * x
        d.ravel()[4] += 0.5
        d.ravel()[1] += 1e-3
        return g * d


class ForgetsTheFactorTwo(Function):
    """y = x², backward says x instead of 2x: wrong everywhere."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * x


class WrongOnlyInAJacobianRow(Function):
    """Two outputs (x, x) whose backward swaps the output gradients' roles wrongly: it returns
    2*g0 for an op whose true gradient is g0 + g1. A cotangent with g0 == g1 would not see this;
    gradcheck's random cotangent and its Jacobian rows do."""

    @staticmethod
    def forward(ctx, x):
        return x.copy(), x.copy()

    @staticmethod
    def backward(ctx, g0, g1):
        return 2 * g0


def test_passes_a_correct_op():
    assert gradcheck(lambda a, b: (a * b).sum(axis=0), [rnd(3, 2), rnd(2, seed=1)])


def test_reports_the_worst_element_not_the_first():
    x = rnd(2, 3)
    with pytest.raises(GradcheckError) as err:
        gradcheck(SquareWrongAtOneElement.apply, [x])
    msg = str(err.value)
    assert "input 0" in msg
    assert "element (1, 1)" in msg          # flat index 4 of shape (2, 3)
    assert "element (0, 1)" not in msg      # the smaller error at flat index 1 is not the one named
    analytic, numeric = map(float, re.search(r"analytic (\S+) vs numeric (\S+)", msg).groups())
    assert abs(analytic - numeric) > 0.1
    assert "atol" in msg and "rtol" in msg


def test_catches_a_wrong_backward_everywhere_and_counts_failures():
    with pytest.raises(GradcheckError, match=r"\d+ of \d+ checks failed"):
        gradcheck(ForgetsTheFactorTwo.apply, [rnd(4)])


def test_raise_exception_false_returns_false():
    assert gradcheck(ForgetsTheFactorTwo.apply, [rnd(4)], raise_exception=False) is False


def test_catches_an_error_that_only_a_nonuniform_cotangent_reveals():
    with pytest.raises(GradcheckError):
        gradcheck(WrongOnlyInAJacobianRow.apply, [rnd(3)])


def test_large_inputs_use_random_directions_and_still_catch_errors():
    x = rnd(20, 20)                               # 400 elements > FULL_JACOBIAN_MAX_ELEMENTS
    assert gradcheck(lambda a: (a * a).sum(axis=1), [x])
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(ForgetsTheFactorTwo.apply, [x])


def test_names_the_input_that_fails_by_position_and_by_name():
    a, b = rnd(3), rnd(3, seed=1)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda p, q: p * 2 + ForgetsTheFactorTwo.apply(q), [a, b])
    b.name = "keys"
    with pytest.raises(GradcheckError, match="keys"):
        gradcheck(lambda p, q: p * 2 + ForgetsTheFactorTwo.apply(q), [a, b])


def test_float32_input_is_rejected():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [x])


def test_float32_output_from_float64_inputs_is_rejected():
    x = rnd(3)
    with pytest.raises(TypeError, match="output 0 has dtype float32"):
        gradcheck(lambda a: a.astype("float32") * 2, [x])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda a: a * 2, [ta.tensor([1.0], dtype="float64")])


def test_zero_cotangent_must_give_zero_gradient():
    class LeaksAConstant(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, g):
            return g * 3 + 1e-3 * (g == 0)     # right unless the incoming gradient is exactly 0

    # too many outputs for Jacobian rows (whose one-hot cotangents would also expose it)
    with pytest.raises(GradcheckError, match="zero output gradient"):
        gradcheck(LeaksAConstant.apply, [rnd(FULL_ROWS_MAX_OUTPUTS + 1)])


def test_two_backward_passes_must_agree():
    calls = {"n": 0}

    class DriftsBetweenCalls(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            calls["n"] += 1
            # off by a tiny amount that grows with every call: invisible to finite differences,
            # not to a comparison of two passes
            return g * 2 * (1 + 1e-9 * calls["n"])

    with pytest.raises(GradcheckError, match="two backward passes"):
        gradcheck(DriftsBetweenCalls.apply, [rnd(20, 20)])


def test_inputs_are_restored_and_grads_cleared():
    x = rnd(2, 3)
    before = x.numpy().copy()
    gradcheck(lambda a: a.exp().sum(), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None


def test_non_tensor_inputs_and_multiple_outputs_are_fine():
    w = np.arange(6.0).reshape(2, 3)
    assert gradcheck(lambda a, m: (a * m, a.sum(axis=0), a > 0), [rnd(2, 3), w])


def test_jacobian_rows_report_the_output_element():
    class CrossTalk(Function):
        """y_i = x_i, but backward leaks 0.5 * g_1 into every input: only a Jacobian row with a
        one-hot cotangent pins it to output element 1."""

        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, g):
            return g + 0.5 * g[1]

    with pytest.raises(GradcheckError, match=r"Jacobian entry d out0\[1\] / d element \((0|2),\)"):
        gradcheck(CrossTalk.apply, [rnd(3)])


def test_tolerances_are_honoured():
    # an error of 1e-4 in every gradient element passes with atol 1e-3 and fails with 1e-6
    class SlightlyOff(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return g * (1 + 1e-4)

    assert gradcheck(SlightlyOff.apply, [rnd(3)], atol=1e-3, rtol=0)
    assert not gradcheck(SlightlyOff.apply, [rnd(3)], atol=1e-6, rtol=0, raise_exception=False)
