"""More mistakes that must be reported clearly, by the op or module that received them (a second
table beside tests/test_robustness.py): dtype mismatches between an input and a layer's weights,
sizes that are not whole numbers >= 0, out-of-range hyper-parameters, and misuse of in-place writes.
Each entry failed before its fix, with NumPy's own message, a silent truncation, a silent dtype
promotion, or non-finite values."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn.models import AttentionDecoder, AttentionSeq2Seq
from tinyattn.ops.lstm import lstm_layer
from test_robustness import assert_raised_by_tinyattn


def _clip(max_norm):
    m = nn.Linear(2, 2)
    m(ta.randn(3, 2)).sum().backward()
    return ta.optim.clip_grad_norm_(m.parameters(), max_norm)


def _seq2seq(src, mask=None, **kw):
    ta.manual_seed(0)
    m = AttentionSeq2Seq(10, 10, embedding_dim=4, hidden_size=8, padding_idx=0)
    return m(np.array(src), np.array([[1, 2], [1, 3]]), src_key_padding_mask=mask, **kw)


ERRORS = [
    # (id, call, exception, pattern the message must contain)
    # ---- an input whose dtype differs from the weights' (PyTorch: "mat1 and mat2 must have the
    # same dtype"); it used to be promoted silently to float64
    ("Linear float64 input, float32 weight", lambda: nn.Linear(3, 2)(ta.randn(4, 3).double()),
     TypeError, r"linear: input has dtype float64 but the weight has dtype float32.*x\.astype\("
                r"'float32'\).*model\.double\(\)"),
    ("Linear NumPy float64 input", lambda: nn.Linear(3, 2)(np.ones((4, 3))), TypeError,
     r"linear: input has dtype float64 but the weight has dtype float32"),
    ("Linear float32 input, float64 weight", lambda: nn.Linear(3, 2, dtype="float64")(ta.randn(4, 3)),
     TypeError, r"linear: input has dtype float32 but the weight has dtype float64"),
    ("Linear integer input", lambda: nn.Linear(3, 2)(ta.tensor([[1, 2, 3]])), TypeError,
     r"linear: input has dtype int64 but the weight has dtype float32"),
    ("lstm_layer h0 of the wrong batch",
     lambda: lstm_layer(ta.randn(5, 3, 2), ta.randn(8, 2), ta.randn(8, 2), None, ta.randn(4, 2),
                        ta.randn(3, 2)), ValueError,
     r"lstm_layer: h0 has shape \(4, 2\), expected \(3, 2\) for x of shape \(5, 3, 2\)"),
    ("lstm_layer float64 bias, float32 weights",
     lambda: lstm_layer(ta.randn(5, 3, 2), ta.randn(8, 2), ta.randn(8, 2), ta.randn(8).double(),
                        ta.randn(3, 2), ta.randn(3, 2)), TypeError,
     r"lstm_layer: inputs have mixed dtypes \['float32', 'float64'\]"),
    ("lstm_layer lengths beyond T",
     lambda: lstm_layer(ta.randn(5, 3, 2), ta.randn(8, 2), ta.randn(8, 2), None, ta.randn(3, 2),
                        ta.randn(3, 2), [5, 6, 1]), ValueError,
     r"lstm_layer: lengths must lie in \[1, T=5\], got min 1 max 6"),
    ("F.linear bias of the wrong length", lambda: F.linear(ta.randn(4, 3), ta.randn(2, 3), ta.randn(3)),
     ValueError, r"linear: bias has shape \(3,\) but the weight has shape \(2, 3\).*\(2,\)"),
    ("F.linear float64 bias, float32 weight",
     lambda: F.linear(ta.randn(4, 3), ta.randn(2, 3), ta.randn(2).double()), TypeError,
     r"linear: bias has dtype float64 but the weight has dtype float32.*astype\('float32'\)"),
    ("MultiheadAttention float64 query", lambda: nn.MultiheadAttention(4, 2)(
        *(ta.randn(3, 2, 4).double(),) * 3), TypeError,
     r"MultiheadAttention: query is float64 but the parameters are float32.*model\.double\(\)"),
    ("AttentionDecoder float64 memory", lambda: AttentionDecoder(10, 4, 6)(
        np.array([[1, 2]]), ta.randn(1, 3, 6).double()), TypeError,
     r"AttentionDecoder: memory is float64 but the parameters are float32"),
    # ---- in-place writes and conditions
    ("__setitem__ shape mismatch", lambda: ta.zeros(4, 3).__setitem__(0, ta.ones(5)), ValueError,
     r"__setitem__: the value has shape \(5,\) but the target x\[index\] has shape \(3,\) \(x has "
     r"shape \(4, 3\)\)"),
    ("__setitem__ boolean mask, wrong count", lambda: ta.zeros(4).__setitem__(
        np.array([True, False, True, True]), ta.ones(2)), ValueError,
     r"__setitem__: the value has shape \(2,\) but the target x\[index\] has shape \(3,\)"),
    ("copy_ shape mismatch", lambda: ta.zeros(2, 3).copy_(np.ones((3, 2))), ValueError,
     r"copy_: the value has shape \(3, 2\) but the target x\[\.\.\.\] has shape \(2, 3\)"),
    ("where float condition", lambda: ta.where(ta.tensor([1.0, 0.0]), ta.ones(2), ta.zeros(2)),
     TypeError, r"where: cond must be a bool tensor or array.*got dtype float32.*where\(x > 0, a, b\)"),
    ("where integer condition", lambda: ta.where(np.array([1, 0]), ta.ones(2), 0.0), TypeError,
     r"where: cond must be a bool.*got dtype int64"),
    # ---- values that only NumPy used to complain about
    ("softplus beta=0", lambda: ta.softplus(ta.randn(3), beta=0), ValueError,
     r"softplus: beta must not be 0.*beta > 0"),
    ("astype unknown dtype", lambda: ta.randn(3).astype("floot32"), TypeError,
     r"astype: unknown dtype 'floot32'; use one of 'float32', 'float64'"),
    ("astype to strings", lambda: ta.randn(3).astype("U3"), TypeError,
     r"astype: dtype 'U3' \(<U3\) is not a number type"),
    ("Module.to unknown dtype", lambda: nn.Linear(2, 2).to("float17"), TypeError,
     r"Linear\.to: unknown dtype 'float17'; use one of 'float32', 'float64'"),
    ("layer dtype= unknown", lambda: nn.Linear(2, 2, dtype="flaot64"), TypeError,
     r"dtype argument: unknown dtype 'flaot64'"),
    ("LayerNorm float64 input, float32 weight", lambda: nn.LayerNorm(3)(ta.randn(2, 3).double()),
     TypeError, r"layer_norm: input has dtype float64 but the weight has dtype float32"),
    ("LSTM float64 input", lambda: nn.LSTM(3, 4)(ta.randn(5, 2, 3).double()), TypeError,
     r"LSTM: input is float64 but the parameters are float32"),
    # ---- layer sizes: whole numbers >= 0 (>= 1 where a zero makes no layer)
    ("Linear(2.5, 3)", lambda: nn.Linear(2.5, 3), TypeError,
     r"Linear: in_features must be a whole number, got 2\.5 \(float\)"),
    ("Linear(-1, 3)", lambda: nn.Linear(-1, 3), ValueError, r"Linear: in_features must be >= 0, got -1"),
    ("Linear(3, -2)", lambda: nn.Linear(3, -2), ValueError, r"Linear: out_features must be >= 0, got -2"),
    ("Embedding(-1, 3)", lambda: nn.Embedding(-1, 3), ValueError,
     r"Embedding: num_embeddings must be >= 0, got -1"),
    ("Embedding(5, 2.0)", lambda: nn.Embedding(5, 2.0), TypeError,
     r"Embedding: embedding_dim must be a whole number, got 2\.0"),
    ("LSTM(-1, 3)", lambda: nn.LSTM(-1, 3), ValueError, r"LSTM: input_size must be >= 0, got -1"),
    ("LSTM(3, 0)", lambda: nn.LSTM(3, 0), ValueError, r"LSTM: hidden_size must be >= 1, got 0"),
    ("LSTM(3, 2.5)", lambda: nn.LSTM(3, 2.5), TypeError, r"LSTM: hidden_size must be a whole number"),
    ("LSTMCell(3, -4)", lambda: nn.LSTMCell(3, -4), ValueError, r"LSTMCell: hidden_size must be >= 1"),
    ("LayerNorm(-1)", lambda: nn.LayerNorm(-1), ValueError, r"LayerNorm: normalized_shape must be >= 0"),
    ("LayerNorm(2.5)", lambda: nn.LayerNorm(2.5), TypeError,
     r"LayerNorm: normalized_shape must be an int or a tuple of ints.*got 2\.5"),
    ("MultiheadAttention(-4, 2)", lambda: nn.MultiheadAttention(-4, 2), ValueError,
     r"MultiheadAttention: embed_dim must be >= 1, got -4"),
    ("MultiheadAttention(8.0, 2)", lambda: nn.MultiheadAttention(8.0, 2), TypeError,
     r"MultiheadAttention: embed_dim must be a whole number"),
    ("MultiheadAttention kdim=-3", lambda: nn.MultiheadAttention(8, 2, kdim=-3), ValueError,
     r"MultiheadAttention: kdim must be >= 1"),
    ("Transformer nhead=2.0", lambda: nn.Transformer(8, 2.0, 1, 1, 16), TypeError,
     r"MultiheadAttention: num_heads must be a whole number"),
    ("TransformerEncoder num_layers=1.5", lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16), 1.5), TypeError,
     r"TransformerEncoder: num_layers must be a whole number, got 1\.5"),
    # ---- hyper-parameters out of range
    ("clip_grad_norm_ negative max_norm", lambda: _clip(-1.0), ValueError,
     r"clip_grad_norm_: max_norm must be >= 0.*got -1\.0"),
    ("clip_grad_norm_ nan max_norm", lambda: _clip(float("nan")), ValueError,
     r"clip_grad_norm_: max_norm must be >= 0"),
    ("clip_grad_value_ negative", lambda: ta.optim.clip_grad_value_(ta.randn(2), -0.5), ValueError,
     r"clip_grad_value_: clip_value must be >= 0"),
    ("seq2seq all-padding source (padding_idx)", lambda: _seq2seq([[3, 4, 0], [0, 0, 0]]), ValueError,
     r"AttentionSeq2Seq: source row\(s\) \[1\] are all padding \(padding_idx=0 marks every "
     r"position\).*at least one"),
    ("seq2seq all-padding source (mask)", lambda: _seq2seq(
        [[3, 4, 5], [6, 7, 8]], np.array([[False, False, True], [True, True, True]])), ValueError,
     r"AttentionSeq2Seq: source row\(s\) \[1\] are all padding \(src_key_padding_mask"),
    ("seq2seq teacher_forcing=1.5", lambda: _seq2seq([[3, 4, 5], [6, 7, 8]], teacher_forcing=1.5),
     ValueError, r"AttentionDecoder: teacher_forcing .* must lie in \[0, 1\], got 1\.5"),
]


@pytest.mark.parametrize("call, exc, pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_mistakes_are_reported_by_the_op_that_received_them(call, exc, pattern):
    assert_raised_by_tinyattn(call, exc, pattern)


def test_matching_dtypes_and_edge_sizes_still_work():
    """The checks refuse only what is wrong: float64 end to end, NumPy integer sizes, size-0
    layers and clipping to 0 all work as in PyTorch."""
    y = nn.Linear(3, 2, dtype="float64")(ta.randn(4, 3).double())
    assert y.dtype == np.float64
    m = nn.Linear(np.int64(3), np.int32(2)).double()
    assert m(np.ones((1, 3))).dtype == np.float64              # model.double() is the fix named
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):   # as PyTorch
        empty = nn.Linear(0, 2)
    assert empty(ta.zeros(5, 0)).shape == (5, 2)
    assert nn.LayerNorm((2, 3)).normalized_shape == (2, 3)
    assert float(_clip(0.0)) >= 0
    x = ta.zeros(4, 3)
    x[1:3] = ta.ones(3)                                         # broadcasting writes still work
    x[0] = 2.0
    assert x.numpy().sum() == 12.0
    assert ta.where([True, False], ta.ones(2), 0.0).tolist() == [1.0, 0.0]
    assert ta.randn(2).astype(np.float64).dtype == np.float64 and ta.randn(2).astype(bool).dtype == bool
    assert nn.Linear(2, 2).to(np.float64).weight.dtype == np.float64
    out = _seq2seq([[3, 4, 0], [5, 0, 0]])                      # short rows are fine
    assert out[0].shape == (2, 2, 10)


def test_var_without_degrees_of_freedom_warns_in_our_words_and_gives_torchs_values():
    """ddof >= n: PyTorch warns and returns inf (or nan for 0/0); we do the same, with a warning
    that names var, n and ddof, raised at the caller's line, and no NumPy warning besides."""
    import warnings
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = x.var(ddof=2)
        y.backward()
        z = ta.tensor([[1.0, 2.0]]).var(axis=0, ddof=1)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages
    assert all(m.startswith("var: ddof=") and "degrees of freedom" in m for m in messages)
    assert "n=2" in messages[0] and "n=1" in messages[1]
    assert all(w.filename == __file__ for w in caught)
    assert np.isposinf(y.item()) and np.isnan(z.numpy()).all()
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.tensor([1.0, 2.0]).var(correction=2).item() == y.item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # the ordinary case stays silent
        assert np.isclose(ta.tensor([1.0, 2.0, 4.0]).var(ddof=1).item(), 7 / 3)


def test_an_in_place_change_names_the_changed_tensor_not_the_view_an_op_saved():
    """x @ W.T saves the view W.T, of shape (in, out); the error must name W's own shape (out, in)
    and its .name where one is set, not only the transposed view's."""
    ta.manual_seed(0)
    m = nn.Linear(3, 1)
    x = ta.randn(5, 3)
    loss = ((x @ m.weight.T) ** 2).sum()
    with ta.no_grad():
        m.weight += 1.0                                     # what an optimiser step does
    with pytest.raises(RuntimeError, match=r"MatMul.backward: a tensor of shape \(1, 3\), which this "
                                           r"op saved through its view of shape \(3, 1\) for its "
                                           r"gradient, was modified in place"):
        loss.backward()
    m.weight.name = "fc.weight"
    loss = ((x @ m.weight.T) ** 2).sum()
    with ta.no_grad():
        m.weight += 1.0
    with pytest.raises(RuntimeError, match=r"the tensor 'fc.weight' \(shape \(1, 3\)\), which this op "
                                           r"saved through its view"):
        loss.backward()
    a, b = ta.randn(3, requires_grad=True), ta.randn(3)     # no view: the message is unchanged
    y = (a * b).sum()
    b.add_(1.0)
    with pytest.raises(RuntimeError, match=r"Mul.backward: a tensor of shape \(3,\), which this op "
                                           r"saved for its gradient, was modified in place"):
        y.backward()
