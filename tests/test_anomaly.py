"""detect_anomaly(): the first op whose forward or backward makes NaN/Inf is named, with its
inputs' shapes and the learner's line; deliberate infinities (-inf masks) are not reported."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.autograd import (AnomalyError, detect_anomaly, is_anomaly_enabled,
                               set_detect_anomaly)
from tinyattn.autograd import anomaly


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with warnings.catch_warnings():            # log(0), sqrt(-1): the NumPy warnings are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
    assert not is_anomaly_enabled()            # no test leaves the flag on


def t64(a, grad=True):
    return ta.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_forward_names_the_op_the_count_the_shapes_and_the_line():
    x = t64([[1.0, 0.0, 2.0], [-1.0, 3.0, 4.0]])
    with pytest.raises(AnomalyError) as err, detect_anomaly():
        y = x * 2.0
        z = y.log()                            # log(0) = -inf, log(-2) = NaN: the culprit
        z.sum()
    msg = str(err.value)
    assert msg.startswith("detect_anomaly: Log.forward produced NaN/Inf (2 of 6 values: "
                          "1 NaN, 1 -inf) from finite input of shape (2, 3) float64")
    assert "test_anomaly.py" in msg and "z = y.log()" in msg
    assert isinstance(err.value, RuntimeError)


def test_without_the_context_the_nan_is_silent_and_the_flag_is_restored_after_an_error():
    x = t64([0.0, -1.0])
    assert np.isnan(x.log().numpy()).any()     # off by default: no check, no error
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            assert is_anomaly_enabled()
            x.log()
    assert not is_anomaly_enabled()


def test_backward_names_the_op_and_where_it_was_called():
    x = t64([0.0, 4.0])
    with pytest.raises(AnomalyError) as err, detect_anomaly():
        r = x.sqrt()                           # finite forward; d sqrt/dx at 0 is +inf
        loss = (r * 3.0).sum()
        loss.backward()
    msg = str(err.value)
    assert msg.startswith("detect_anomaly: Sqrt.backward produced NaN/Inf in the gradient of "
                          "input 0 (1 of 2 values: 1 +inf) from finite output gradients")
    assert "input of shape (2,) float64" in msg and "r = x.sqrt()" in msg
    assert x.grad is None                      # stopped before anything was accumulated


def test_only_the_first_bad_op_is_blamed():
    x = ta.tensor([1.0, 0.0, 2.0])
    with pytest.raises(AnomalyError, match=r"^detect_anomaly: Div\.forward produced"):
        with detect_anomaly():
            y = 1.0 / x                        # inf here first
            (y * 0.0).sum()                    # 0 * inf = NaN would come later


def test_float32_exp_overflow_is_caught_at_exp():
    x = ta.tensor([1.0, 100.0], requires_grad=True)
    with pytest.raises(AnomalyError, match=r"Exp.forward produced NaN/Inf \(1 of 2 values: "
                                           r"1 \+inf\) from finite input of shape \(2,\) float32"):
        with detect_anomaly():
            (x.exp() / x.exp().sum()).sum()


def test_infinities_turned_into_nan_are_blamed_on_the_op_that_did_it():
    a = ta.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(AnomalyError, match="Sub.forward turned infinite inputs into NaN"):
        with detect_anomaly():
            a - a                              # inf - inf


def test_nan_in_the_data_is_reported_at_the_first_op_that_receives_it():
    data = np.array([[1.0, np.nan]])
    w = t64([[1.0], [2.0]])
    with pytest.raises(AnomalyError, match=r"MatMul.forward received NaN in input 0 \(\(1, 2\) "
                                           r"float64: 1 NaN\).*your data"):
        with detect_anomaly():
            ta.tensor(data) @ w


def test_a_nonfinite_gradient_passed_to_backward_is_reported_as_received():
    x = t64([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(AnomalyError, match="Mul.backward received a gradient holding 1 NaN"):
        with detect_anomaly():
            y.backward(np.array([np.nan, 1.0]))


def test_deliberate_minus_inf_masks_and_fully_masked_rows_are_not_anomalies():
    """-inf added to scores, bool masks, rows with no key at all: correct code must pass."""
    ta.manual_seed(0)
    q = ta.randn(2, 3, 4, requires_grad=True)
    additive = np.where(np.tril(np.ones((3, 3), bool)), 0.0, -np.inf).astype(np.float32)
    boolean = np.ones((2, 3, 3), bool)
    boolean[1] = False                          # batch 1: every query row fully masked
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    padding = np.zeros((2, 3), bool)
    padding[1] = True                           # batch 1: every key is padding
    outs = []
    for check in (False, True):
        set_detect_anomaly(check)
        try:
            a = scaled_dot_product_attention(q, q, q, attn_mask=additive)
            b = scaled_dot_product_attention(q, q, q, attn_mask=boolean)
            c, _ = mha(q, q, q, key_padding_mask=padding)
            (a.sum() + b.sum() + c.sum()).backward()
        finally:
            set_detect_anomaly(False)
        outs.append((a.numpy(), b.numpy(), c.numpy(), q.grad.numpy().copy()))
        q.grad = None
    for plain, checked in zip(*outs):
        np.testing.assert_array_equal(plain, checked)
        assert np.isfinite(checked).all()


def test_decorator_nesting_and_the_engine_flag():
    @detect_anomaly()
    def step(x):
        assert anomaly.enabled
        with detect_anomaly():
            pass
        assert anomaly.enabled                 # the inner block restored the outer state
        return x.log()

    with pytest.raises(AnomalyError, match="Log.forward"):
        step(t64([0.0]))
    assert not anomaly.enabled
    set_detect_anomaly(True)
    assert is_anomaly_enabled()
    set_detect_anomaly(False)
    assert not is_anomaly_enabled()


def test_multi_output_op_names_the_output():
    from tinyattn.autograd import Function

    class HalfBad(Function):                    # a toy two-output op: the second one overflows
        @staticmethod
        def forward(ctx, x):
            return x * 1.0, x * np.float64(1e308) * 10.0

        @staticmethod
        def backward(ctx, g1, g2):
            return g1

    with pytest.raises(AnomalyError, match=r"HalfBad.forward produced NaN/Inf in output 1 "):
        with detect_anomaly(), np.errstate(over="ignore"):
            HalfBad.apply(t64([1.0, 2.0]))
