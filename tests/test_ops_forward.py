"""Forward values of every engine op against NumPy, in every spelling: operator, reflected
operator (number or array on the left), Tensor method and ``tinyattn.<name>`` function."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.autograd import Tensor
from tinyattn.ops import flatten

RNG = np.random.default_rng(0)
A = RNG.uniform(-2, 2, (3, 4))
B = RNG.uniform(-2, 2, (4,))
P = RNG.uniform(0.5, 2, (3, 4))          # positive: log, sqrt, power bases
X3 = RNG.uniform(-2, 2, (2, 3, 4))


def t(a, **kw):
    return ta.tensor(a, dtype="float64", **kw)


def same(tensor, expected):
    assert isinstance(tensor, Tensor)
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert tensor.shape == np.shape(expected)


# ---------------------------------------------------------------------- binary arithmetic
BINARY = [
    ("add", np.add, lambda a, b: a + b),
    ("sub", np.subtract, lambda a, b: a - b),
    ("mul", np.multiply, lambda a, b: a * b),
    ("div", np.divide, lambda a, b: a / b),
    ("pow", np.power, lambda a, b: a ** b),
    ("maximum", np.maximum, None),
    ("minimum", np.minimum, None),
]


@pytest.mark.parametrize("name, ref, operator", BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops_in_every_spelling(name, ref, operator):
    a, b = (P, B * 0.5) if name == "pow" else (A, B)
    fn = getattr(ta, name)
    same(fn(t(a), t(b)), ref(a, b))                 # tinyattn.<name>, broadcasting (3,4) with (4,)
    same(fn(t(a), 1.5), ref(a, 1.5))                # Python number
    same(fn(1.5, t(np.abs(a) + 0.5)), ref(1.5, np.abs(a) + 0.5))   # number first
    same(fn(a, t(b)), ref(a, b))                    # NumPy array first
    if operator is not None:
        same(operator(t(a), t(b)), ref(a, b))       # a + b
        same(operator(t(a), b), ref(a, b))          # tensor + array
        same(operator(a, t(b)), ref(a, b))          # array + tensor (reflected)
        same(operator(2.0, t(P)), ref(2.0, P))      # number + tensor (reflected)
        same(operator(t(P), np.float64(2.0)), ref(P, 2.0))
    same(getattr(t(a), name)(t(b)), ref(a, b))      # method spelling: x.pow(2), x.add(y), ...


def test_neg_and_unary_plus():
    same(-t(A), -A)
    same(ta.neg(t(A)), -A)
    same(+t(A), A)


def test_matmul_all_shapes():
    cases = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
             ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]
    for sa, sb in cases:
        a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
        same(t(a) @ t(b), np.matmul(a, b))
        same(ta.matmul(t(a), t(b)), np.matmul(a, b))
        same(t(a).matmul(t(b)), np.matmul(a, b))
        same(a @ t(b), np.matmul(a, b))


def test_matmul_errors_are_clear():
    with pytest.raises(ValueError, match="inner dimensions differ.*transpose"):
        t(A) @ t(A)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ta.matmul(t(2.0), t(A))


def test_broadcast_error_names_the_op_and_the_shapes():
    with pytest.raises(ValueError, match=r"mul: shapes \(3, 4\) and \(3,\) cannot be broadcast"):
        t(A) * t(np.ones(3))
    with pytest.raises(ValueError, match="add: shapes"):
        t(A) + np.ones(5)


# ---------------------------------------------------------------------- unary functions
def _gelu_exact(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = [
    ("exp", np.exp, A), ("log", np.log, P), ("sqrt", np.sqrt, P), ("abs", np.abs, A),
    ("tanh", np.tanh, A), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), A),
    ("relu", lambda x: np.maximum(x, 0), A), ("gelu", _gelu_exact, A),
    ("softplus", lambda x: np.log1p(np.exp(x)), A),
]


@pytest.mark.parametrize("name, ref, x", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_function_and_method(name, ref, x):
    same(getattr(ta, name)(t(x)), ref(x))
    same(getattr(t(x), name)(), ref(x))


def test_gelu_tanh_softplus_options_and_clip():
    same(ta.gelu(t(A), approximate="tanh"), _gelu_tanh(A))
    with pytest.raises(ValueError, match="approximate"):
        ta.gelu(t(A), approximate="fast")
    x = np.array([-30.0, -1.0, 0.5, 4.0, 30.0])
    beta, threshold = 2.0, 5.0
    expected = np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)
    same(ta.softplus(t(x), beta=beta, threshold=threshold), expected)
    same(ta.clip(t(A), -0.5, 0.7), np.clip(A, -0.5, 0.7))
    same(t(A).clip(-0.5), np.clip(A, -0.5, None))
    same(ta.clip(t(A), max=0.1), np.clip(A, None, 0.1))
    lo = np.linspace(-1, 0, 4)
    same(ta.clip(t(A), ta.tensor(lo), 0.5), np.clip(A, lo, 0.5))   # tensor bounds
    same(abs(t(A)), np.abs(A))


def test_sigmoid_and_softplus_do_not_overflow():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ta.sigmoid(t(x)).numpy()
        sp = ta.softplus(t(x)).numpy()
    assert np.all(np.isfinite(s)) and s[0] == 0 and s[-1] == 1 and s[2] == 0.5
    assert sp[-1] == 1000.0 and sp[0] == 0.0


def test_where_with_every_kind_of_condition():
    cond = A > 0
    same(ta.where(cond, t(A), t(B)), np.where(cond, A, B))
    same(ta.where(t(A) > 0, t(A), 0.0), np.where(cond, A, 0.0))
    same(ta.where(cond, 1.0, t(A)), np.where(cond, 1.0, A))
    with pytest.raises(ValueError, match="where: cond, a and b"):
        ta.where(np.ones((2, 2), bool), t(A), 0.0)


# ---------------------------------------------------------------------- reductions
AXES = [None, 0, -1, (0, 2), (1,)]


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var"])
def test_reductions_match_numpy(name, axis, keepdims):
    expected = getattr(np, name)(X3, axis=axis, keepdims=keepdims)
    extra = {"correction": 0} if name == "var" else {}    # NumPy's ddof=0; PyTorch's default is 1
    same(getattr(ta, name)(t(X3), axis=axis, keepdims=keepdims, **extra), expected)
    same(getattr(t(X3), name)(axis=axis, keepdims=keepdims, **extra), expected)


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_the_definition(axis, keepdims):
    expected = np.log(np.sum(np.exp(X3), axis=axis, keepdims=keepdims))
    same(ta.logsumexp(t(X3), axis=axis, keepdims=keepdims), expected)
    same(t(X3).logsumexp(axis=axis, keepdims=keepdims), expected)


def test_reduction_details():
    same(t(X3).sum(0), X3.sum(0))                             # positional axis
    same(t(X3).sum(axis=[0, 2]), X3.sum(axis=(0, 2)))          # a list of axes works too
    same(ta.amax(t(X3), axis=[2, 1]), X3.max(axis=(1, 2)))
    with pytest.raises(ValueError, match="same axis twice"):
        t(X3).mean(axis=(0, -3))
    same(t(A).var(axis=1, ddof=1), A.var(axis=1, ddof=1))
    big = np.array([[1000.0, 1000.0], [-np.inf, -np.inf]])
    out = ta.logsumexp(t(big), axis=1).numpy()
    assert out[0] == pytest.approx(1000 + math.log(2)) and out[1] == -np.inf
    with pytest.raises(ValueError, match="sum: axis 3 is out of range"):
        t(X3).sum(axis=3)


def test_softmax_and_log_softmax():
    e = np.exp(A - A.max(axis=-1, keepdims=True))
    soft = e / e.sum(axis=-1, keepdims=True)
    same(ta.softmax(t(A)), soft)
    same(t(A).softmax(axis=-1), soft)
    same(ta.log_softmax(t(A)), np.log(soft))
    e0 = np.exp(A - A.max(axis=0))
    same(ta.softmax(t(A), axis=0), e0 / e0.sum(axis=0))
    same(t(A).log_softmax(axis=0), np.log(e0 / e0.sum(axis=0)))


def test_masked_softmax_zeroes_masked_entries_and_fully_masked_rows():
    mask = np.array([[True, False, True, True], [False] * 4, [True, True, True, True]])
    x = A.copy()
    out = ta.softmax(t(x), mask=mask).numpy()
    assert np.all(out[~mask] == 0) and np.all(out[1] == 0)
    ref = np.exp(x[0, [0, 2, 3]]) / np.exp(x[0, [0, 2, 3]]).sum()
    np.testing.assert_allclose(out[0, [0, 2, 3]], ref, rtol=1e-12)
    np.testing.assert_allclose(out[2], np.exp(x[2]) / np.exp(x[2]).sum(), rtol=1e-12)
    same(ta.softmax(t(x), mask=ta.tensor(mask)), out)                 # a bool Tensor mask
    same(ta.softmax(t(x), mask=mask[None, 2]), ta.softmax(t(x)).numpy())   # broadcast mask


def test_softmax_axis_must_exist():
    with pytest.raises(ValueError, match="softmax: axis 2 is not an axis"):
        ta.softmax(t(A), axis=2)
    with pytest.raises(ValueError, match="log_softmax: axis"):
        ta.log_softmax(t(A), axis=(0, 1))


def test_softmax_mask_must_be_boolean_and_broadcastable():
    with pytest.raises(TypeError, match="mask must be a boolean"):
        ta.softmax(t(A), mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        ta.softmax(t(A), mask=np.ones((2, 4), bool))


# ---------------------------------------------------------------------- shapes
def test_reshape_and_view_spellings():
    for y in (t(X3).reshape(6, 4), t(X3).reshape((6, 4)), t(X3).reshape(-1, 4),
              ta.reshape(t(X3), 6, 4), ta.reshape(t(X3), (6, -1)), t(X3).view(6, 4)):
        same(y, X3.reshape(6, 4))
    with pytest.raises(ValueError, match="cannot reshape a tensor of shape"):
        t(X3).reshape(5, 5)


def test_transpose_permute_swapaxes_T():
    same(t(X3).T, X3.T)
    same(t(X3).transpose(), X3.transpose())
    same(ta.transpose(t(X3)), X3.transpose())
    same(t(X3).transpose(2, 0, 1), X3.transpose(2, 0, 1))           # a permutation (NumPy)
    same(ta.transpose(t(X3), (2, 0, 1)), X3.transpose(2, 0, 1))
    same(t(X3).transpose(-2, -1), np.swapaxes(X3, -2, -1))        # two ints: swap (PyTorch)
    same(t(A).transpose(0, 1), A.T)
    same(t(A).transpose(np.int64(0), np.int64(1)), A.T)         # NumPy ints count as ints
    same(t(X3).permute(1, 2, 0), X3.transpose(1, 2, 0))
    same(ta.permute(t(X3), (1, 2, 0)), X3.transpose(1, 2, 0))
    same(t(X3).swapaxes(0, 2), np.swapaxes(X3, 0, 2))
    same(ta.swapaxes(t(X3), 0, -1), np.swapaxes(X3, 0, -1))
    with pytest.raises(ValueError, match="not a permutation"):
        t(X3).permute(0, 0, 1)


def test_broadcast_expand_squeeze_unsqueeze():
    col = A[:, :1]
    same(ta.broadcast_to(t(col), (2, 3, 4)), np.broadcast_to(col, (2, 3, 4)))
    same(t(col).broadcast_to((3, 5)), np.broadcast_to(col, (3, 5)))
    same(t(col).expand(-1, 4), np.broadcast_to(col, (3, 4)))
    same(ta.expand(t(col), 2, 3, 4), np.broadcast_to(col, (2, 3, 4)))
    with pytest.raises(ValueError, match="expand: cannot expand"):
        t(col).expand(-1, -1, 4)
    with pytest.raises(ValueError, match="expand: cannot expand"):
        t(col).expand(4)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        ta.broadcast_to(t(A), (3, 5))
    x = X3[:, :1, None]
    same(t(x).squeeze(), np.squeeze(x))
    same(ta.squeeze(t(x), 1), np.squeeze(x, 1))
    same(t(x).squeeze((1, 2)), np.squeeze(x, (1, 2)))
    assert t(x).squeeze(0).shape == x.shape          # PyTorch: a dim of length 2 is left alone
    with pytest.raises(ValueError, match="squeeze: axis 4 is out of range"):
        t(x).squeeze(4)
    same(t(X3).flatten(), X3.reshape(-1))
    same(flatten(t(X3), 1), X3.reshape(2, 12))      # tinyattn.ops.flatten (not yet exported)
    same(t(X3).flatten(0, 1), X3.reshape(6, 4))
    same(t(A).unsqueeze(0), A[None])
    same(ta.unsqueeze(t(A), -1), A[..., None])


def test_concatenate_stack_split():
    same(ta.concatenate([t(A), t(P)], axis=0), np.concatenate([A, P], axis=0))
    same(ta.concatenate([t(A), P], axis=-1), np.concatenate([A, P], axis=-1))
    same(ta.stack([t(A), t(P)]), np.stack([A, P]))
    same(ta.stack([t(A), t(P)], axis=-1), np.stack([A, P], axis=-1))
    for sections in (2, [1, 3]):
        parts = ta.tensor_split(t(A), sections, axis=1)
        expected = np.split(A, sections, axis=1)
        assert isinstance(parts, list) and len(parts) == len(expected)
        for p, e in zip(parts, expected):
            same(p, e)
    for p, e in zip(t(A).tensor_split(3), np.split(A, 3)):
        same(p, e)
    with pytest.raises(ValueError, match="concatenate: cannot join"):
        ta.concatenate([t(A), t(B)])
    with pytest.raises(ValueError, match="stack: cannot stack"):
        ta.stack([t(A), t(B)])
    with pytest.raises(ValueError, match="split: the sizes .* tensor_split"):
        ta.split(t(A), [1, 1], axis=1)        # PyTorch's split takes sizes; these miss some


def test_pad_follows_numpy_pad_width_rules():
    for width in (1, (1, 2), ((1, 2),), ((1, 0), (0, 3))):
        same(ta.pad(t(A), width), np.pad(A, width))
    same(t(B).pad((2, 1), value=-1.0), np.pad(B, (2, 1), constant_values=-1.0))
    with pytest.raises(ValueError, match="pad: pad_width"):
        ta.pad(t(A), ((1, 1), (1, 1), (1, 1)))


# ---------------------------------------------------------------------- indexing
INDEXES = [
    (1,), (slice(1, None), slice(None, None, 2)), (Ellipsis, 1), (None, 0),
    (np.array([1, 0, 1]),), (np.array([[0, 1], [1, 1]]), np.array([2, 0])),
    (slice(None), np.array([2, 2, 0])), (-1, -2), (slice(None), None, np.array([2, 2]), 1),
]


@pytest.mark.parametrize("index", INDEXES, ids=lambda i: repr(i).replace(" ", ""))
def test_getitem_matches_numpy(index):
    same(t(X3)[index], X3[index])


def test_getitem_with_masks_lists_and_tensors():
    mask = X3 > 0.3
    same(t(X3)[mask], X3[mask])
    same(t(X3)[ta.tensor(mask)], X3[mask])
    same(t(X3)[t(X3) > 0.3], X3[mask])
    same(t(A)[[0, 0, 2]], A[[0, 0, 2]])
    same(t(A)[[0, 2], [1, 1]], A[[0, 2], [1, 1]])
    same(t(A)[ta.tensor([1, 2]), ta.tensor([0, 3])], A[[1, 2], [0, 3]])
    with pytest.raises(IndexError, match=r"getitem: cannot index a tensor of shape \(3, 4\)"):
        t(A)[7]


def test_iteration_yields_rows():
    rows = list(t(A))
    assert len(rows) == 3
    same(rows[1], A[1])


# ---------------------------------------------------------------------- against PyTorch
def test_activations_and_reductions_match_pytorch():
    torch = pytest.importorskip("torch")
    x = RNG.uniform(-6, 6, (5, 7))
    tx = torch.tensor(x)
    pairs = [
        (ta.gelu(t(x)), torch.nn.functional.gelu(tx)),
        (ta.gelu(t(x), approximate="tanh"), torch.nn.functional.gelu(tx, approximate="tanh")),
        (ta.softplus(t(x), beta=1.5, threshold=4.0),
         torch.nn.functional.softplus(tx, beta=1.5, threshold=4.0)),
        (ta.sigmoid(t(x)), torch.sigmoid(tx)),
        (ta.logsumexp(t(x), axis=1), torch.logsumexp(tx, dim=1)),
        (ta.var(t(x), axis=0, ddof=1), torch.var(tx, dim=0)),
        (ta.softmax(t(x), axis=0), torch.softmax(tx, dim=0)),
        (ta.log_softmax(t(x)), torch.log_softmax(tx, dim=-1)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-15)


def test_gradients_at_kinks_and_ties_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, 0.0, 0.0, 2.0, 2.0])
    checks = [
        (lambda a: ta.relu(a), torch.relu),
        (lambda a: ta.abs(a), torch.abs),
        (lambda a: ta.maximum(a, ta.tensor(np.array([0.0, 0.0, 1.0, 2.0, 3.0]), dtype="float64")),
         lambda a: torch.maximum(a, torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0], dtype=torch.float64))),
        (lambda a: ta.clip(a, 0.0, 2.0), lambda a: torch.clamp(a, 0.0, 2.0)),
        (lambda a: a.max(), lambda a: a.max()),
        (lambda a: a.min(), lambda a: a.min()),
    ]
    for ours, theirs in checks:
        a = t(x, requires_grad=True)
        ours(a).sum().backward()
        ta_ = torch.tensor(x, requires_grad=True)
        theirs(ta_).sum().backward()
        np.testing.assert_allclose(a.grad, ta_.grad.numpy(), rtol=0, atol=0)


def test_relu_gives_plain_zeros_not_negative_zeros():
    out = ta.relu(ta.tensor([-1.0, 2.0, -0.5])).numpy()
    assert not np.signbit(out).any()
    assert ta.relu(ta.tensor([-1.0])).dtype == np.float32


def test_masking_gradients_are_plain_zeros_and_keep_float32():
    x = ta.tensor([-1.0, 2.0, 3.0], requires_grad=True)
    g = np.array([-1.0, -1.0, -1.0])
    for f in (ta.relu, lambda a: ta.clip(a, 0.0, 2.5), lambda a: ta.maximum(a, 0.0),
              lambda a: ta.where(a > 0, a, 0.0), lambda a: a.amax(axis=0, keepdims=True) * np.ones(3)):
        x.grad = None
        f(x).backward(g)
        assert x.grad.dtype == np.float32
        assert not np.signbit(x.grad.numpy()[x.grad.numpy() == 0]).any()
