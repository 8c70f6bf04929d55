"""Positional encodings: the sinusoid formula, layouts, the relative-offset property, learned
positions, and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.nn.positional import LearnedPositionalEmbedding, PositionalEncoding, sinusoidal_table


@pytest.mark.parametrize("d_model", [6, 7])
def test_table_follows_the_formula(d_model):
    table = sinusoidal_table(20, d_model, dtype=np.float64)
    for pos in range(20):
        for col in range(d_model):
            i = col // 2
            angle = pos / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert table[pos, col] == pytest.approx(expected, abs=1e-12)


def test_a_fixed_offset_is_one_linear_map():
    """PE[p + k] = PE[p] M_k for one matrix M_k and every p: each (sin, cos) pair rotates."""
    table = sinusoidal_table(64, 8, dtype=np.float64)
    k = 5
    M, *_ = np.linalg.lstsq(table[:-k], table[k:], rcond=None)
    assert np.allclose(table[:-k] @ M, table[k:], atol=1e-9)


@pytest.mark.parametrize("batch_first", [False, True])
def test_encoding_is_added_per_position(batch_first):
    pe = PositionalEncoding(8, dropout=0.5, max_len=10, batch_first=batch_first).eval()
    x = np.random.default_rng(0).normal(size=(2, 4, 8) if batch_first else (4, 2, 8))
    out = pe(ta.tensor(x, dtype="float64")).numpy()
    table = sinusoidal_table(10, 8, dtype=np.float64)[:4]
    expected = x + (table[None] if batch_first else table[:, None])
    assert np.allclose(out, expected, atol=1e-6)
    unbatched = pe(ta.tensor(x[0] if batch_first else x[:, 0], dtype="float64")).numpy()
    assert np.allclose(unbatched, expected[0] if batch_first else expected[:, 0], atol=1e-6)


def test_buffer_layout_and_dropout_in_training():
    pe = PositionalEncoding(8, dropout=0.5, max_len=10)
    sd = pe.state_dict()
    assert list(sd) == ["pe"] and sd["pe"].shape == (10, 1, 8)     # the PyTorch tutorial's layout
    assert not list(pe.parameters())
    ta.manual_seed(0)
    out = pe(ta.tensor(np.ones((4, 2, 8)))).numpy()
    assert np.mean(out == 0) > 0.3                                  # dropout acts while training


def test_learned_positions_train_only_the_rows_used():
    ta.manual_seed(0)
    m = LearnedPositionalEmbedding(6, 4)
    x = ta.tensor(np.zeros((3, 2, 4)), requires_grad=True)
    out = m(x)
    assert np.allclose(out.numpy()[:, 0], m.weight.numpy()[:3])
    out.sum().backward()
    assert np.all(m.weight.grad.numpy()[:3] == 2) and np.all(m.weight.grad.numpy()[3:] == 0)
    assert abs(float(LearnedPositionalEmbedding(400, 16).weight.numpy().std()) - 1) < 0.05


def test_too_long_and_wrong_width_are_explained():
    pe = PositionalEncoding(8, max_len=4)
    with pytest.raises(ValueError, match=r"positions 0\.\.4 exceed max_len=4"):
        pe(ta.tensor(np.zeros((5, 1, 8))))
    with pytest.raises(ValueError, match="input has 6 features"):
        pe(ta.tensor(np.zeros((3, 1, 6))))
    with pytest.raises(ValueError, match="exceed max_len=4"):
        LearnedPositionalEmbedding(4, 8, batch_first=True)(ta.tensor(np.zeros((1, 5, 8))))
