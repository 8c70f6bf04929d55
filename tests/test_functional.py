"""tinyattn.functional on its own terms: argument conventions, edge cases, error messages."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F


def test_dim_keyword_and_numpy_inputs():
    x = np.random.default_rng(0).standard_normal((2, 3))
    s = F.softmax(x, dim=0).numpy()
    assert np.allclose(s.sum(axis=0), 1.0)
    assert np.allclose(F.log_softmax(ta.tensor(x), dim=1).numpy(),
                       np.log(F.softmax(x, dim=1).numpy()), atol=1e-6)
    assert F.softmax(x.astype(np.float32), dim=1, dtype="float64").dtype == np.float64
    with pytest.warns(UserWarning, match="dim"):
        assert np.allclose(F.softmax(ta.tensor(x)).numpy().sum(axis=1), 1.0)   # legacy: dim 1


def test_cross_entropy_equals_nll_of_log_softmax_and_accepts_tensor_targets():
    rng = np.random.default_rng(1)
    logits = ta.tensor(rng.standard_normal((6, 4)), dtype="float64")
    target = np.array([0, 3, 1, 1, 2, 3])
    a = F.cross_entropy(logits, target, ignore_index=1)
    b = F.nll_loss(F.log_softmax(logits, dim=1), ta.tensor(target), ignore_index=1)
    assert abs(float(a) - float(b)) < 1e-12
    by_hand = -np.mean([F.log_softmax(logits, dim=1).numpy()[i, t]
                        for i, t in enumerate(target) if t != 1])
    assert abs(float(a) - by_hand) < 1e-12


def test_sequence_losses_with_classes_on_axis_one():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 5, 3))                 # (N, C, T)
    target = rng.integers(0, 5, (2, 3))
    per_step = F.cross_entropy(ta.tensor(logits), target, reduction="none")
    assert per_step.shape == (2, 3)
    flat = F.cross_entropy(ta.tensor(logits.transpose(0, 2, 1).reshape(-1, 5)), target.reshape(-1),
                           reduction="none")
    assert np.allclose(per_step.numpy().reshape(-1), flat.numpy())


def test_all_targets_ignored_gives_nan_as_pytorch():
    logits = ta.tensor(np.zeros((2, 3)))
    assert np.isnan(float(F.nll_loss(F.log_softmax(logits, dim=1), np.array([-100, -100]))))


def test_loss_errors_name_the_problem():
    logits = ta.randn(4, 3)
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        F.nll_loss(logits, np.array([0, 1, 3, 0]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.nll_loss(logits, np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="probability targets must have the input's shape"):
        F.cross_entropy(logits, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, np.array([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="target must have shape"):
        F.cross_entropy(ta.randn(2, 3, 4), np.zeros((2, 5), dtype=np.int64))
    with pytest.warns(UserWarning, match="broadcast"):           # as PyTorch: warn, broadcast
        assert F.mse_loss(ta.randn(3, 1), ta.randn(3), reduction="none").shape == (3, 3)
    with pytest.raises(ValueError, match="in_features=2"):
        F.linear(ta.randn(3, 4), ta.randn(5, 2))


def test_mse_loss_reductions():
    x, y = ta.tensor([1.0, 2.0, 4.0]), ta.tensor([1.0, 0.0, 1.0])
    assert float(F.mse_loss(x, y)) == pytest.approx(13 / 3)
    assert float(F.mse_loss(x, y, reduction="sum")) == pytest.approx(13)
    assert F.mse_loss(x, y, reduction="none").numpy().tolist() == [0, 4, 9]


def test_linear_keeps_leading_axes():
    x, w, b = ta.randn(2, 3, 4), ta.randn(5, 4), ta.randn(5)
    out = F.linear(x, w, b).numpy()
    assert out.shape == (2, 3, 5)
    assert np.allclose(out, x.numpy() @ w.numpy().T + b.numpy(), atol=1e-5)
