"""detect_anomaly: the first op that makes NaN/Inf is named, in forward and in backward."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.autograd import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly


def test_off_by_default_and_restored_after_the_block():
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)


def test_forward_names_the_op_and_the_line():
    x = ta.tensor([1.0, 0.0, 2.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        with pytest.raises(AnomalyError, match=r"Log\.forward produced NaN/Inf.*-inf.*test_anomaly\.py"):
            with detect_anomaly():
                (x * 2).log().sum()                      # Mul is fine; log(0) = -inf is not


def test_forward_blames_the_first_bad_op_only():
    x = ta.tensor([1.0, 0.0, 2.0])
    with np.errstate(divide="ignore"), pytest.raises(AnomalyError, match=r"Div\.forward produced"):
        with detect_anomaly():
            y = 1.0 / x                                  # inf here first
            (y * 0.0).sum()                              # 0 * inf = NaN would come later


def test_backward_names_the_op_whose_gradient_blew_up():
    x = ta.tensor([1.0, 0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        with pytest.raises(AnomalyError, match=r"Sqrt\.backward produced NaN/Inf.*called at"):
            with detect_anomaly():
                x.sqrt().sum().backward()


def test_deliberate_infinities_from_inputs_are_not_reported():
    scores = ta.tensor([[1.0, 2.0, 3.0]])
    with detect_anomaly():
        w = ta.softmax(scores + np.array([[0.0, -np.inf, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(w.numpy()[0, 1], 0.0)


def test_nan_in_the_data_is_reported_as_coming_from_outside():
    x = ta.tensor([1.0, np.nan])
    with pytest.raises(AnomalyError, match="came from your data"):
        with detect_anomaly():
            x * 2


def test_without_the_block_nothing_is_checked():
    x = ta.tensor([0.0])
    with np.errstate(divide="ignore"):
        assert ta.log(x).item() == -np.inf
