"""Issue 17, dtypes: one policy at the op boundary (``Function.apply``) and at ``tensor()``.

Integer and bool inputs of ops defined on real numbers are computed in the default float dtype,
as PyTorch does (they used to be computed in float16 for uint8/int8/bool, where ``-|x|`` wraps
and exp(12) is inf); ops that keep integers in PyTorch keep them here. Complex, object, string
and other dtypes are a TypeError naming the op and the dtype (complex used to give real
nonsense, objects to fail later inside NumPy). Also: backward(gradient) is validated, and
in-place changes of a leaf that requires grad are refused as in PyTorch.

Every case here failed before the fix. The property-based sweep over dtypes is at the end.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyattn as ta
import tinyattn.functional as F
from tinyattn import attention as A
from test_robustness import assert_raised_by_tinyattn


# ------------------------------------------------------------------ integers and bools
@pytest.mark.parametrize("op", ["sigmoid", "exp", "tanh", "log1p", "sqrt", "sin", "erf"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.bool_])
def test_small_integer_and_bool_inputs_are_computed_in_the_default_float_dtype(op, dtype):
    x = np.array([1, 3, 100, 0], dtype=np.int64).astype(dtype)     # uint8: -|x| used to wrap
    got = getattr(ta, op)(x)
    want = getattr(torch, op)(torch.from_numpy(x))
    assert got.dtype == np.float32 and want.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_the_issues_examples():
    np.testing.assert_allclose(ta.sigmoid(np.array([1, 3, 200], np.uint8)).numpy(),
                               [0.7310586, 0.9525741, 1.0], rtol=1e-6)
    assert ta.exp(np.array([12], np.uint8)).item() == pytest.approx(np.exp(12.0), rel=1e-6)
    assert ta.sigmoid(np.array([True])).item() == pytest.approx(0.7310586)


@pytest.mark.parametrize("name, call", [
    ("softmax", lambda x: ta.softmax(x, -1)),
    ("log_softmax", lambda x: ta.log_softmax(x, -1)),
    ("logsumexp", lambda x: ta.logsumexp(x, -1)),
    ("mean", lambda x: ta.mean(x, -1)),
    ("gelu", lambda x: ta.gelu(x)),
    ("layer_norm", lambda x: F.layer_norm(x, (4,))),
    ("div", lambda x: x / x),
])
def test_uint8_into_real_ops_equals_the_float32_result(name, call):
    x = np.array([[1, 2, 200, 3], [4, 250, 6, 7]], np.uint8)
    got, want = call(ta.tensor(x)), call(ta.tensor(x.astype(np.float32)))
    assert got.dtype == np.float32, name
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, call, torch_call", [
    ("add", lambda x: x + x, lambda x: x + x),
    ("relu", ta.relu, torch.relu),
    ("sum", lambda x: x.sum(), lambda x: x.sum()),
    ("max", lambda x: x.max(), lambda x: x.max()),
    ("matmul", lambda x: x @ x, lambda x: x @ x),
    ("indexing", lambda x: x[1:], lambda x: x[1:]),
    ("comparison", lambda x: x > 1, lambda x: x > 1),
    ("argmax", lambda x: x.argmax(), lambda x: x.argmax()),
])
def test_ops_that_keep_integers_in_pytorch_keep_them(name, call, torch_call):
    x = np.array([1, 2, 3], np.int64)
    got, want = call(ta.tensor(x)), torch_call(torch.from_numpy(x))
    assert str(got.dtype) == str(want.dtype).replace("torch.", ""), name
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_list_of_ints_is_int64_as_in_pytorch():
    assert ta.tensor([1, 2]).dtype == np.int64 == np.dtype(str(torch.tensor([1, 2]).dtype)[6:])


# ------------------------------------------------------------------ refused dtypes
REFUSED = [
    ("complex", np.array([1 + 2j]), r"complex128 \(complex numbers\).*x\.real"),
    ("object", np.array([1.0, None]), r"object \(Python objects\).*None"),
    ("string", np.array(["a"]), r"<U1 \(strings\).*integer ids"),
    ("bytes", np.array([b"a"]), r"\|S1 \(bytes\)"),
    ("datetime", np.array(["2024-01-01"], dtype="datetime64[D]"), r"datetime64\[D\] \(dates\)"),
]


@pytest.mark.parametrize("op", ["sigmoid", "exp", "relu", "abs", "neg"])
@pytest.mark.parametrize("what, x, pattern", REFUSED, ids=[r[0] for r in REFUSED])
def test_other_dtypes_are_a_type_error_naming_the_op_and_the_dtype(op, what, x, pattern):
    assert_raised_by_tinyattn(lambda: getattr(ta, op)(x), TypeError, rf"^{op}: input 0 .*{pattern}")


@pytest.mark.parametrize("call, name", [
    (lambda x: ta.add(ta.ones(1), x), "add"),
    (lambda x: ta.matmul(ta.ones(1), x), "matmul"),
    (lambda x: A.softmax(x), "softmax"),
    (lambda x: ta.where(np.array([True]), x, 0.0), "where"),
])
def test_refused_dtypes_in_other_positions_and_ops(call, name):
    assert_raised_by_tinyattn(lambda: call(np.array([1 + 2j])), TypeError,
                              rf"^{name}: (input \d has dtype|scores: .*dtype) complex128")


def test_tensor_refuses_complex_numbers():
    assert_raised_by_tinyattn(lambda: ta.tensor([1 + 2j]), TypeError, r"no complex tensors")
    assert_raised_by_tinyattn(lambda: ta.tensor(np.array([1j])), TypeError, r"no complex tensors")
    assert_raised_by_tinyattn(lambda: ta.zeros(2, dtype="complex64"), TypeError,
                              r"is a complex type \(tinyattn has no complex tensors\)")


def test_complex_never_reaches_a_compiled_kernel():
    for call in (lambda: ta.softmax(np.ones((2, 3), np.complex64), -1),
                 lambda: F.layer_norm(np.ones((2, 3), np.complex64), (3,)),
                 lambda: F.cross_entropy(np.ones((2, 3), np.complex64), np.array([0, 1]))):
        with pytest.raises(TypeError, match=r"complex64 \(complex numbers\)|no complex tensors"):
            call()


# ------------------------------------------------------------------ backward(gradient)
def _doubled():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    return x, x * 2


@pytest.mark.parametrize("grad, pattern", [
    (np.array([1.0, None]), r"dtype object \(an object array: is there a None"),
    (np.array([1 + 1j, 2]), r"dtype complex128"),
    (np.array(["a", "b"]), r"dtype <U1"),
    (np.ones(3), r"gradient of shape \(3,\) does not match the output's shape \(2,\)"),
])
def test_backward_refuses_a_gradient_that_is_not_real_numbers_of_the_outputs_shape(grad, pattern):
    x, y = _doubled()
    with pytest.raises((TypeError, ValueError), match=pattern):
        y.backward(grad)
    assert x.grad is None                                    # not a NaN gradient


@pytest.mark.parametrize("grad", [np.array([1, 1]), np.array([True, False]),
                                  np.array([1.0, 1.0]), ta.tensor([1.0, 1.0]).double()])
def test_backward_accepts_int_bool_and_other_float_gradients_as_pytorch(grad):
    x, y = _doubled()
    y.backward(grad)
    xt = torch.ones(2, requires_grad=True)
    (xt * 2).backward(torch.tensor(np.asarray(grad)))
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    assert x.grad.dtype == np.float32


# ------------------------------------------------------------------ in-place on a leaf
INPLACE = [
    ("x += 1", lambda w: w.__iadd__(1)), ("x -= 1", lambda w: w.__isub__(1)),
    ("x *= 2", lambda w: w.__imul__(2)), ("x /= 2", lambda w: w.__itruediv__(2)),
    ("add_", lambda w: w.add_(1)), ("mul_", lambda w: w.mul_(2)), ("fill_", lambda w: w.fill_(0)),
    ("__setitem__", lambda w: w.__setitem__(0, 3.0)), ("clamp_", lambda w: w.clamp_(0, 1)),
    ("copy_", lambda w: w.copy_(ta.zeros(2))),
]


@pytest.mark.parametrize("op, call", INPLACE, ids=[i[0] for i in INPLACE])
def test_in_place_ops_on_a_leaf_that_requires_grad_raise_as_in_pytorch(op, call):
    w = ta.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        call(w)
    assert w.is_leaf and w.tolist() == [1.0, 2.0]
    wt = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        wt += 1


def test_in_place_on_a_leaf_is_allowed_under_no_grad_and_keeps_it_a_leaf():
    w = ta.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with ta.no_grad():
        w -= 0.5 * w.grad                                     # a hand-written SGD step
    assert w.is_leaf and w.requires_grad and w.tolist() == [0.0, 0.0]


# ------------------------------------------------------------------ property-based sweep
# Every unary op here either gives the float result of the same numbers (within float32's
# rounding of the inputs) or a TypeError that names the op: never a silent float16, a wrapped
# integer or a NumPy error.
UNARY = {
    "exp": np.exp, "log1p": lambda a: np.log1p(np.abs(a)), "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "sqrt": lambda a: np.sqrt(np.abs(a)),
    "softmax": lambda a: np.exp(a - a.max()) / np.exp(a - a.max()).sum(),
    "logsumexp": lambda a: np.log(np.exp(a - a.max()).sum()) + a.max(),
    "mean": np.mean, "gelu": None, "erf": None, "relu": lambda a: np.maximum(a, 0),
    "abs": np.abs, "neg": np.negative,
}
_ARGS = {"softmax": dict(dim=-1), "logsumexp": dict(dim=-1)}
_POSITIVE = {"log1p", "sqrt"}            # their inputs are made >= 0 first
_KEEP_INTS = {"relu", "abs", "neg"}      # integer in, integer out; bool refused (PyTorch)
DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_, np.float16, np.float32,
          np.float64, np.complex64, np.complex128, np.object_, np.str_]


def _value(dtype):
    if dtype is np.object_:
        return st.just(np.array([1.0, None], dtype=object))
    if dtype is np.str_:
        return st.just(np.array(["1", "2"]))
    elements = (st.integers(-8, 8) if np.dtype(dtype).kind in "iuc" and dtype is not np.uint8
                else st.integers(0, 8) if dtype is np.uint8 else None)
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
                      elements=elements)


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(sorted(UNARY)), x=st.sampled_from(DTYPES).flatmap(_value))
def test_every_dtype_gives_the_float_result_or_a_type_error_naming_the_op(op, x):
    if op in _POSITIVE and x.dtype.kind in "iuf":
        x = np.abs(x)
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        return                                    # non-finite values: test_robustness_extremes.py
    call = lambda: getattr(ta, op)(x, **_ARGS.get(op, {}))                       # noqa: E731
    if x.dtype.kind not in "biuf" or (op in _KEEP_INTS and x.dtype == np.bool_):
        with pytest.raises(TypeError, match=rf"^{op}: "):
            call()
        return
    out = call()
    if op in _KEEP_INTS and x.dtype.kind in "iu":      # integer arithmetic, wrapping as PyTorch's
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out.numpy(), getattr(torch, op)(torch.from_numpy(x)).numpy())
        return
    if x.dtype.kind in "biu":
        assert out.dtype == np.float32            # the default float dtype, never float16
    else:
        assert out.dtype == x.dtype
    a = x.astype(np.float64)
    reference = UNARY[op]
    if reference is None:                         # erf and exact GELU: against PyTorch
        t = torch.from_numpy(a)
        want = (torch.erf(t) if op == "erf" else torch.nn.functional.gelu(t)).numpy()
    else:
        want = reference(a) if op not in _ARGS else np.apply_along_axis(reference, -1, a)
        want = np.asarray(want)
    if out.dtype.kind == "f" and np.any(np.abs(want) > np.finfo(out.dtype).max):
        return                                    # the true result overflows float16 (inf in PyTorch too)
    tol = 2e-3 if x.dtype == np.float16 else 1e-5
    np.testing.assert_allclose(out.numpy().astype(np.float64), want.reshape(out.shape),
                               rtol=tol, atol=tol)


def test_neg_of_a_bool_tensor_is_refused_as_in_pytorch():
    with pytest.raises(RuntimeError, match="Negation"):
        -torch.tensor([True])
    assert_raised_by_tinyattn(lambda: -ta.tensor([True]), TypeError, r"^neg: .*bool.*~x")
