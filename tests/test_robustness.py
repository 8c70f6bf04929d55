"""Issue 6, robustness: errors that teach, numerical extremes, empty and length-1 batches, safe
checkpoints and property tests. Where a bullet is already tested elsewhere the test is named
here rather than repeated:

- autograd misuse (backward on a non-scalar without a gradient, backward twice without
  retain_graph, in-place change of a saved array via the version counter, also through views):
  tests/test_tensor.py::test_non_scalar_backward_needs_a_gradient,
  ::test_backward_twice_without_retain_graph_is_a_clear_error,
  ::test_in_place_change_of_a_saved_tensor_is_detected (and the three tests after it);
- detect_anomaly: tests/test_anomaly.py;
- attention with all-masked rows: tests/test_attention.py::test_softmax_all_masked_row_gives_zero_
  weights_and_zero_gradient, ::test_every_weighting_survives_float32_scores_of_1e4,
  tests/test_multihead.py::test_fully_masked_rows_give_zeros_not_nan;
- atomic save killed mid-write, truncated and corrupt files, description mismatch:
  tests/test_io.py; shape mismatch in load_state_dict: tests/test_nn.py;
- property tests of elementwise ops, reductions, matmul, shapes, gather, masked softmax, where
  with three-way broadcasting: tests/test_properties.py and tests/test_attention_properties.py;
- command lines: tests/test_cli.py, tests/test_kernels_bench.py, tests/test_lessons.py.
"""
from __future__ import annotations

import os
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import attention as A
from tinyattn.attention import scaled_dot_product_attention as sdpa
from tinyattn.io import CheckpointError, load

PACKAGE = os.path.dirname(os.path.abspath(ta.__file__))


# ============================================================================ errors that teach
def _lstm():
    return nn.LSTM(3, 4)


ERRORS = [
    # (id, call, exception, pattern the message must contain)
    ("matmul inner dims", lambda: ta.randn(2, 3) @ ta.randn(4, 5), ValueError,
     r"matmul: inner dimensions differ: a has shape \(2, 3\).*b has shape \(4, 5\).*a @ b\.T"),
    ("matmul batch axes", lambda: ta.randn(2, 3, 4) @ ta.randn(3, 4, 5), ValueError,
     r"matmul: the batch axes of a \(2, 3, 4\) and b \(3, 4, 5\) cannot be broadcast"),
    ("unsqueeze out of range", lambda: ta.randn(2, 3).unsqueeze(5), ValueError,
     r"unsqueeze: axis 5 is out of range for a tensor of shape \(2, 3\).* -3 \.\. 2"),
    ("unknown dtype", lambda: ta.tensor([1.0], dtype="f33"), TypeError, r"tensor: unknown dtype 'f33'"),
    ("randint empty range", lambda: ta.randint(5, 2, (3,)), ValueError,
     r"randint: low must be < high.*low=5, high=2"),
    ("arange step 0", lambda: ta.arange(0, 5, 0), ValueError, r"arange: step must not be 0"),
    ("broadcast", lambda: ta.randn(2, 3) + ta.randn(4), ValueError,
     r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast.*unsqueeze"),
    ("attention q/k head dims", lambda: sdpa(ta.randn(2, 3, 4), ta.randn(2, 3, 5), ta.randn(2, 3, 5)),
     ValueError, r"scaled_dot_product_attention: queries have feature size d=4.*keys have d=5"),
    ("attention mask shape", lambda: sdpa(ta.randn(2, 3, 4), ta.randn(2, 5, 4), ta.randn(2, 5, 4),
                                          attn_mask=np.ones((3, 4), bool)),
     ValueError, r"mask of shape \(3, 4\) does not broadcast to the scores' shape \(2, 3, 5\)"),
    ("attention on 1-d vectors", lambda: sdpa(ta.randn(4), ta.randn(4), ta.randn(4)), ValueError,
     r"scaled_dot_product_attention: query must have at least 2 dims.*got shape \(4,\)"),
    ("softmax mask shape", lambda: A.softmax(ta.randn(2, 3), mask=np.ones(4, bool)), ValueError,
     r"softmax: mask of shape \(4,\) does not broadcast"),
    ("MHA key_padding_mask shape", lambda: nn.MultiheadAttention(4, 2, batch_first=True)(
        ta.randn(2, 3, 4), ta.randn(2, 3, 4), ta.randn(2, 3, 4), key_padding_mask=np.ones((3, 2), bool)),
     ValueError, r"MultiheadAttention: key_padding_mask"),
    ("LSTM rank", lambda: _lstm()(ta.randn(3)), ValueError,
     r"LSTM: input must have rank 3, \(T, B, input_size\), or rank 2.*got shape \(3,\)"),
    ("LSTM features", lambda: _lstm()(ta.randn(5, 2, 4)), ValueError,
     r"LSTM: input has 4 features.*input_size=3"),
    ("LSTMCell features", lambda: nn.LSTMCell(3, 4)(ta.randn(2, 4)), ValueError,
     r"LSTMCell: input must have shape \(B, input_size=3\)"),
    ("embedding index too large", lambda: nn.Embedding(5, 3)(np.array([1, 5])), IndexError,
     r"embedding: index 5 is out of range for a table of 5 rows; indices must lie in \[0, 4\]"),
    ("embedding negative index", lambda: nn.Embedding(5, 3)(np.array([-1])), IndexError,
     r"embedding: index -1 is out of range"),
    ("embedding float indices", lambda: nn.Embedding(5, 3)(np.array([1.0])), TypeError,
     r"embedding: indices must be integers, got dtype float64.*astype\('int64'\)"),
    ("integer tensor asks for grad", lambda: ta.tensor([1, 2], requires_grad=True), TypeError,
     r"only floating-point tensors can require gradients, got dtype int64"),
    ("requires_grad_ on integers", lambda: ta.tensor([1, 2]).requires_grad_(), TypeError,
     r"requires_grad_: dtype int64 cannot require gradients"),
    ("Linear features", lambda: nn.Linear(3, 4)(ta.randn(2, 5)), ValueError,
     r"linear: input has shape \(2, 5\).*in_features=3"),
    ("cross_entropy target range", lambda: F.cross_entropy(ta.randn(3, 4), np.array([0, 1, 4])),
     IndexError, r"cross_entropy: target value 4 is out of range for 4 classes"),
    ("softmax axis", lambda: ta.softmax(ta.randn(2, 3), axis=2), ValueError,
     r"softmax: axis 2 is not an axis of a tensor of shape \(2, 3\)"),
    ("log_softmax axis", lambda: F.log_softmax(ta.randn(2, 3), dim=-3), ValueError,
     r"log_softmax: axis -3"),
    ("reshape", lambda: ta.randn(2, 3).reshape(4, 2), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    ("string data", lambda: ta.tensor("abc"), TypeError,
     r"tensor: cannot make a tensor from str 'abc' \(NumPy dtype <U3\)"),
    ("string operand", lambda: ta.randn(2) + "a", TypeError, r"cannot make a tensor from str 'a'"),
    ("ragged list", lambda: ta.tensor([[1, 2], [3]]), ValueError,
     r"tensor: cannot make an array of numbers from list \[\[1, 2\], \[3\]\].*rectangular"),
    ("object data", lambda: ta.tensor([1.0, None]), TypeError, r"NumPy dtype object"),
    ("optimizer given the model", lambda: ta.optim.SGD(nn.Linear(3, 2), lr=0.1), TypeError,
     r"SGD: params must be an iterable of parameters, got a Linear. Pass model.parameters\(\)"),
    ("load_state_dict given the model", lambda: nn.Linear(3, 2).load_state_dict(nn.Linear(3, 2)),
     TypeError, r"load_state_dict: expected a dict of name -> array.*got Linear"),
    ("save into a missing folder", lambda: ta.save({"w": np.ones(2)}, "/nonexistent-folder-xyz/m.npz"),
     FileNotFoundError, r"tinyattn.save: the folder '/nonexistent-folder-xyz' does not exist"),
    ("load a folder", lambda: ta.load(PACKAGE), IsADirectoryError,
     r"tinyattn.load: .* is a folder, not a checkpoint file"),
    ("negative size", lambda: ta.randn(2, -1), ValueError,
     r"a tensor's shape must be whole numbers >= 0, got \(2, -1\)"),
    ("load_state_dict dtype", lambda: nn.Linear(3, 2).load_state_dict(
        {"weight": np.full((2, 3), "w"), "bias": np.zeros(2)}), RuntimeError,
     r"dtype mismatches.*weight: checkpoint <U1 cannot become the model's float32"),
]


def assert_raised_by_tinyattn(call, exc, pattern):
    """call() raises exc with a message matching pattern, raised by tinyattn itself (not deep
    inside NumPy) and with nothing chained below it. Shared with test_robustness_more.py."""
    with pytest.raises(exc, match=pattern) as err:
        call()
    last = traceback.extract_tb(err.value.__traceback__)[-1]
    assert os.path.abspath(last.filename).startswith(PACKAGE), last
    assert err.value.__cause__ is None


@pytest.mark.parametrize("call, exc, pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_mistakes_are_reported_by_the_op_that_received_them(call, exc, pattern):
    assert_raised_by_tinyattn(call, exc, pattern)


def test_an_optimizer_step_between_forward_and_backward_is_caught():
    """The optimizer changes parameters in place; a graph built before the step saved the old
    values, so its backward would give gradients for weights that no longer exist."""
    ta.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = ta.optim.SGD(model.parameters(), lr=0.1)
    x = ta.randn(5, 3)
    model(x).sum().backward()
    loss = (model(x) ** 2).sum()          # built with the current weights
    opt.step()                            # ... which this changes in place
    with pytest.raises(RuntimeError, match=r"Linear.backward: a tensor of shape \(1, 4\), which "
                                           r"this op saved for its gradient, was modified in place.*"
                                           r"optimizer.step\(\) "
                                           r"only after loss.backward\(\)"):
        loss.backward()


# ============================================================================ numerical extremes
EXTREME = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [0.5, -1e4, 3.0]])

EXTREME_OPS = {
    # name: (ours, torch's): each maps a (4, 3) tensor to a tensor
    "sigmoid": (ta.sigmoid, "sigmoid"),
    "tanh": (ta.tanh, "tanh"),
    "softplus": (ta.softplus, "nn.functional.softplus"),
    "softmax": (lambda x: ta.softmax(x, axis=-1), lambda T, x: T.softmax(x, -1)),
    "log_softmax": (lambda x: ta.log_softmax(x, axis=-1), lambda T, x: T.log_softmax(x, -1)),
    "logsumexp": (lambda x: ta.logsumexp(x, axis=-1), lambda T, x: T.logsumexp(x, -1)),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([0, 2, 1, 1])),
                      lambda T, x: T.nn.functional.cross_entropy(x, T.tensor([0, 2, 1, 1]))),
}


def _torch_fn(spec):
    if callable(spec):
        return spec
    def call(T, x):
        fn = T
        for part in spec.split("."):
            fn = getattr(fn, part)
        return fn(x)
    return call


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXTREME_OPS))
def test_inputs_of_plus_minus_1e4_give_finite_values_and_gradients_equal_to_torch(name, dtype):
    torch = pytest.importorskip("torch")
    ours, theirs = EXTREME_OPS[name]
    x = ta.tensor(EXTREME.astype(dtype), requires_grad=True)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # no overflow warning either
        y = ours(x)
        g = rng.uniform(0.5, 1.5, y.shape).astype(dtype)
        y.backward(g)
    xt = torch.tensor(EXTREME.astype(dtype), requires_grad=True)
    yt = _torch_fn(theirs)(torch, xt)
    yt.backward(torch.tensor(g))
    assert y.dtype == np.dtype(dtype) and x.grad.dtype == np.dtype(dtype)
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_lstm_over_2000_steps_neither_overflows_nor_drifts_from_torch(dtype):
    """Inputs of size ~10 saturate every gate; the cell state must stay bounded and the
    gradients through 2,000 steps finite and equal to PyTorch's."""
    torch = pytest.importorskip("torch")
    ta.manual_seed(0)
    m = nn.LSTM(4, 8)
    if dtype == "float64":
        m = m.double()
    x_np = (np.random.default_rng(0).standard_normal((2000, 2, 4)) * 10).astype(dtype)
    x = ta.tensor(x_np, requires_grad=True)
    y, (h, c) = m(x)
    (y.sum() + c.sum()).backward()
    tm = torch.nn.LSTM(4, 8).to(getattr(torch, dtype))
    tm.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in m.state_dict().items()})
    xt = torch.tensor(x_np, requires_grad=True)
    yt, (ht, ct) = tm(xt)
    (yt.sum() + ct.sum()).backward()
    for ours in (y.numpy(), c.numpy(), x.grad, m.weight_hh_l0.grad):
        assert np.isfinite(np.asarray(ours)).all()
    assert np.abs(y.numpy()).max() < 1                    # h = o * tanh(c)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(c.numpy(), ct.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(m.weight_hh_l0.grad, tm.weight_hh_l0.grad.numpy(),
                               rtol=tol["rtol"], atol=tol["atol"] * 100)


INTEGER_INPUT_OPS = {
    "softmax": lambda x: ta.softmax(x, axis=-1),
    "log_softmax": lambda x: ta.log_softmax(x, axis=-1),
    "layer_norm": lambda x: F.layer_norm(x, (4,)),
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 1, 3]), reduction="none"),
}


@pytest.mark.parametrize("name", sorted(INTEGER_INPUT_OPS))
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_and_bool_inputs_are_computed_as_floats_not_truncated(name, dtype):
    """softmax of int64 [0, 1, 2, 3] came out as int64 zeros; now the default float dtype, with
    the values of the float computation (as exp, sigmoid and the other elementwise ops do)."""
    fn = INTEGER_INPUT_OPS[name]
    x = (np.arange(12).reshape(3, 4) % 5 > 1) if dtype == "bool" else np.arange(12).reshape(3, 4)
    out = fn(ta.tensor(x.astype(dtype)))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), fn(ta.tensor(x.astype(np.float32))).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(INTEGER_INPUT_OPS))
def test_float16_inputs_run_and_keep_their_dtype(name):
    """Numba kernels are compiled for float32/float64; float16 takes the NumPy twin instead of
    failing inside Numba."""
    x = np.random.default_rng(0).uniform(-2, 2, (3, 4))
    t = ta.tensor(x.astype(np.float16), requires_grad=True)
    out = INTEGER_INPUT_OPS[name](t)
    out.backward(np.ones(out.shape, np.float16))
    assert out.dtype == np.float16 and t.grad.dtype == np.float16
    np.testing.assert_allclose(out.numpy(), INTEGER_INPUT_OPS[name](ta.tensor(x)).numpy(),
                               rtol=5e-3, atol=5e-3)


# ============================================================================ empty and length-1 batches
def _layers():
    ta.manual_seed(0)
    lin, lstm, emb, norm = nn.Linear(3, 2), nn.LSTM(3, 2, batch_first=True), nn.Embedding(5, 3), nn.LayerNorm(3)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    return {
        # name: a function of a (B, 3, 4) batch
        "softmax": lambda x: ta.softmax(x[:, 0], axis=-1),
        "log_softmax": lambda x: ta.log_softmax(x[:, 0], axis=-1),
        "cross_entropy_none": lambda x: F.cross_entropy(x[:, 0], np.zeros(len(x), np.int64),
                                                        reduction="none"),
        "cross_entropy_sum": lambda x: F.cross_entropy(x[:, 0], np.zeros(len(x), np.int64),
                                                       reduction="sum") * ta.ones(1),
        "Linear": lambda x: lin(x[..., :3]),
        "LayerNorm": lambda x: norm(x[..., :3]),
        "LSTM": lambda x: lstm(x[..., :3])[0],
        "Embedding": lambda x: emb(np.zeros(x.shape[:2], np.int64)) * x[..., :3],
        "MultiheadAttention": lambda x: mha(x, x, x)[0],
        "sdpa": lambda x: sdpa(x, x, x, attn_mask=np.tril(np.ones((3, 3), bool))),
    }


@pytest.mark.parametrize("name", sorted(_layers()))
def test_empty_and_length_one_batches_agree_with_the_full_batch(name):
    """A batch of size 0 or 1 gives exactly the matching rows of a batch of 3: no NumPy error or
    warning, no NaN, a gradient of the right shape."""
    fn = _layers()[name]
    full = np.random.default_rng(1).uniform(-2, 2, (3, 3, 4)).astype(np.float32)
    results = {}
    for n in (3, 1, 0):
        x = ta.tensor(full[:n], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = fn(x)
            y.backward(np.ones(y.shape, np.float32))
        assert x.grad.shape == x.shape and np.isfinite(x.grad.numpy()).all()
        assert np.isfinite(y.numpy()).all()
        results[n] = (y.numpy(), x.grad)
    if name == "cross_entropy_sum":
        assert results[0][0].item() == 0.0              # the sum of no terms
        return
    for n in (1, 0):
        assert results[n][0].shape == (n,) + results[3][0].shape[1:]
        np.testing.assert_allclose(results[n][0], results[3][0][:n], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(results[n][1], results[3][1][:n], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cosine_score_of_an_all_zero_query_has_torchs_finite_gradient(dtype):
    """A zero vector (e.g. a padding embedding) has cosine score 0; its gradient must be finite
    (it was 0 * inf = NaN through sqrt at 0) and equal PyTorch's cosine_similarity's."""
    torch = pytest.importorskip("torch")
    q_np = np.zeros((2, 3), dtype)
    q_np[1] = [1.0, 2.0, 3.0]
    k_np = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    q, k = ta.tensor(q_np, requires_grad=True), ta.tensor(k_np, requires_grad=True)
    s = A.cosine_score(q, k)
    s.sum().backward()
    qt, kt = torch.tensor(q_np, requires_grad=True), torch.tensor(k_np, requires_grad=True)
    st = torch.nn.functional.cosine_similarity(qt[:, None, :], kt[None], dim=-1, eps=1e-8)
    st.sum().backward()
    assert np.isfinite(q.grad.numpy()).all() and np.isfinite(k.grad.numpy()).all()
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(s.numpy(), st.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(q.grad, qt.grad.numpy(), rtol=rtol)
    np.testing.assert_allclose(k.grad, kt.grad.numpy(), rtol=rtol, atol=rtol)


def test_attention_over_zero_keys_gives_zeros_as_torch():
    """A query with no key at all (Tk = 0) attends to nothing: a zero context, zero gradient."""
    q = ta.tensor(np.ones((2, 3, 4), np.float32), requires_grad=True)
    k = ta.tensor(np.ones((2, 0, 4), np.float32), requires_grad=True)
    out = sdpa(q, k, k)
    out.sum().backward()
    assert out.shape == (2, 3, 4) and not out.numpy().any() and not q.grad.any()
    torch = pytest.importorskip("torch")
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.ones(2, 3, 4), torch.ones(2, 0, 4), torch.ones(2, 0, 4))
    np.testing.assert_array_equal(out.numpy(), theirs.numpy())
    w = ta.softmax(ta.zeros(2, 0), axis=-1)
    assert w.shape == (2, 0)


def test_mean_cross_entropy_of_an_empty_batch_is_nan_as_in_torch_without_a_warning():
    """The mean of no terms is 0/0: PyTorch returns NaN, and so do we (silently, as PyTorch);
    'sum' and 'none' are the reductions that make sense for a batch that may be empty."""
    torch = pytest.importorskip("torch")
    x = ta.zeros(0, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, np.zeros(0, np.int64))
        loss.backward()
    expected = torch.nn.functional.cross_entropy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    assert x.grad.shape == (0, 4)


def test_mean_and_mse_of_nothing_are_nan_as_torch_and_warn_nothing():
    torch = pytest.importorskip("torch")
    x = ta.zeros(0, 3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # NumPy's "Mean of empty slice" used to leak
        full, per_column = x.mean(), x.mean(axis=0)
        (full + per_column.sum()).backward()
        mse = F.mse_loss(ta.zeros(0), ta.zeros(0))
    assert np.isnan(full.item()) and np.isnan(per_column.numpy()).all() and per_column.shape == (3,)
    assert x.grad.shape == (0, 3)
    assert np.isnan(mse.item()) and np.isnan(torch.nn.functional.mse_loss(torch.zeros(0), torch.zeros(0)).item())


# ============================================================================ checkpoints
class _Payload:
    """Unpickling this would create a file: the proof that load() never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_never_unpickles_even_a_file_that_asks_for_it(tmp_path):
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.npz"
    np.savez(evil, weight=np.array([_Payload(str(marker))], dtype=object))
    with pytest.raises(CheckpointError, match=r"holds a pickled Python object.*never unpickles"):
        load(evil)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="pickled"):
        ta.load(evil)                                    # the top-level spelling too


def test_a_checkpoint_with_a_misshaped_entry_loads_nothing(tmp_path):
    ta.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    sd = {k: np.array(v) + 1 for k, v in before.items()}
    sd["1.weight"] = np.zeros((4, 2))                    # transposed: a classic mistake
    ta.save(sd, tmp_path / "m.npz")
    with pytest.raises(RuntimeError, match=r"1\.weight: checkpoint \(4, 2\) vs model \(2, 4\)"):
        model.load_state_dict(ta.load(tmp_path / "m.npz"))
    for k, v in model.state_dict().items():              # all or nothing: 0.weight unchanged
        np.testing.assert_array_equal(np.asarray(v), before[k])


# ============================================================================ property tests
PROPS = settings(max_examples=20, deadline=None)


def _leaf(a):
    return ta.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


def _np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@PROPS
@given(spec=shape_and_axis(), seed=st.integers(0, 2 ** 16), scale=st.sampled_from([1.0, 30.0]))
def test_softmax_and_log_softmax_along_any_axis(spec, seed, scale):
    shape, axis = spec
    x = np.random.default_rng(seed).uniform(-1, 1, shape) * scale
    expected = _np_log_softmax(x, axis)
    np.testing.assert_allclose(ta.log_softmax(_leaf(x), axis=axis).numpy(), expected,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ta.softmax(_leaf(x), axis=axis).numpy(), np.exp(expected),
                               rtol=1e-12, atol=1e-15)
    w = np.random.default_rng(seed + 1).uniform(-1, 1, shape)
    assert ta.gradcheck(lambda a: ta.softmax(a, axis=axis) * w, [_leaf(x / scale)])
    assert ta.gradcheck(lambda a: ta.log_softmax(a, axis=axis) * w, [_leaf(x / scale)])


@PROPS
@given(n=st.integers(1, 5), c=st.integers(1, 5), seed=st.integers(0, 2 ** 16),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_random_batches(n, c, seed, reduction):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n, c))
    target = rng.integers(0, c, n)
    per_row = -_np_log_softmax(x, 1)[np.arange(n), target]
    expected = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    np.testing.assert_allclose(F.cross_entropy(_leaf(x), target, reduction=reduction).numpy(),
                               expected, rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(lambda a: F.cross_entropy(a, target, reduction=reduction), [_leaf(x)])


@PROPS
@given(scale=st.floats(1.0, 1e4), seed=st.integers(0, 2 ** 16), n=st.integers(1, 4),
       c=st.integers(2, 6))
def test_float32_log_softmax_and_cross_entropy_at_any_scale(scale, seed, n, c):
    """Logits up to ±1e4 in float32: finite, and as close to the float64 answer as float32's
    spacing at that size allows."""
    rng = np.random.default_rng(seed)
    x64 = rng.uniform(-1, 1, (n, c)) * scale
    target = rng.integers(0, c, n)
    x = ta.tensor(x64.astype(np.float32), requires_grad=True)
    lsm = ta.log_softmax(x, axis=-1).numpy()
    loss = F.cross_entropy(x, target, reduction="sum")
    loss.backward()
    ref = _np_log_softmax(x64.astype(np.float32).astype(np.float64), 1)
    slack = 4 * np.spacing(np.float32(2 * scale))        # a few float32 steps at that size
    assert np.isfinite(lsm).all() and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(lsm, ref, rtol=0, atol=slack)
    np.testing.assert_allclose(loss.item(), -ref[np.arange(n), target].sum(), rtol=0, atol=n * slack)
    assert np.all(np.abs(x.grad.numpy().sum(axis=-1)) < 1e-5)      # softmax - one_hot sums to 0 per row


@PROPS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=st.integers(0, 2 ** 16),
       k=st.integers(1, 2))
def test_layer_norm_over_random_trailing_axes(shape, seed, k):
    k = min(k, len(shape))
    norm_shape = shape[len(shape) - k:]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, shape)
    w, b = rng.uniform(0.5, 1.5, norm_shape), rng.uniform(-1, 1, norm_shape)
    axes = tuple(range(len(shape) - k, len(shape)))
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * w + b
    out = F.layer_norm(_leaf(x), norm_shape, _leaf(w), _leaf(b))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert ta.gradcheck(lambda p, q, r: F.layer_norm(p, norm_shape, q, r), [_leaf(x), _leaf(w), _leaf(b)])


@st.composite
def attention_problem(draw):
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=2))
    L, S, E, Ev = (draw(st.integers(1, 4)) for _ in range(4))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    q, k, v = (rng.uniform(-1, 1, batch + shape) for shape in ((L, E), (S, E), (S, Ev)))
    mask_shape = draw(st.sampled_from([None, (L, S), (1, S), batch + (L, S)]))
    mask = None if mask_shape is None else rng.uniform(size=mask_shape) < 0.7
    return q, k, v, mask


@PROPS
@given(problem=attention_problem())
def test_sdpa_random_shapes_and_masks_against_numpy(problem):
    """Random batch axes, lengths, widths and boolean masks (rows with no key included): the
    output equals the textbook formula, rows with no key give 0, and the gradient checks."""
    q, k, v, mask = problem
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.where(np.isfinite(top), np.exp(scores - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    w = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    out = sdpa(_leaf(q), _leaf(k), _leaf(v), attn_mask=mask)
    np.testing.assert_allclose(out.numpy(), w @ v, rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(lambda a, b, c: sdpa(a, b, c, attn_mask=mask), [_leaf(q), _leaf(k), _leaf(v)])
