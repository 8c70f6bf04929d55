"""The PyTorch-API ops against PyTorch: same inputs (float32 and float64, ints and bools where
torch takes them), same outputs and dtypes, same gradients of a random weighted sum of the
outputs, and errors for bad dims or shapes that name the op."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
from module_gradcheck import flatten_outputs
from tinyattn.ops import gather_scatter as gs
from tinyattn.ops import pointwise as pw
from tinyattn.ops import products as pr
from tinyattn.ops import scan, sorting
from tinyattn.ops import statistics as st
from tinyattn.ops._args import dims

from torch_parity import TOL, Const, Grad, _torch_outputs, assert_close

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)


def r(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape)


def spread(*shape):
    """Distinct values, well apart: no ties for sort/max/topk indices to disagree on."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


def close(ours, theirs, tol, what):
    """assert_close, where NaN and ±inf must sit at the same places with the same signs."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs PyTorch {theirs.shape}"
    odd = ~np.isfinite(theirs)
    np.testing.assert_array_equal(ours[odd], theirs[odd], err_msg=f"{what}: NaN/inf differ")
    assert_close(np.where(odd, 0, ours), np.where(odd, 0, theirs), tol, what)


def check(ours, theirs, inputs, dtype="float64", grad=True):
    """ours(*ta inputs) and theirs(*torch inputs): outputs (values and dtypes) and the gradients
    of every Grad input must agree."""
    ta_in, th_in = [], []
    for item in inputs:
        a = np.asarray(item.array)
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        needs = isinstance(item, Grad) and grad
        ta_in.append(ta.tensor(a, requires_grad=needs))
        th_in.append(torch.tensor(a, requires_grad=needs))
    outs, touts = flatten_outputs(ours(*ta_in)), _torch_outputs(theirs(*th_in))
    assert len(outs) == len(touts), f"{len(outs)} outputs vs PyTorch's {len(touts)}"
    loss = tloss = None
    for i, (o, t) in enumerate(zip(outs, touts)):
        assert str(o.dtype) == str(t.dtype).replace("torch.", ""), \
            f"output {i}: dtype {o.dtype} vs PyTorch {t.dtype}"
        # a float32 result (e.g. sin of an int tensor) is compared at float32's tolerance
        close(o.numpy(), t.detach().numpy(), TOL.get(str(o.dtype), TOL[dtype]), f"output {i}")
        if t.requires_grad:
            w = rng.uniform(-1, 1, t.shape).astype(dtype)
            lo, lt = (o * ta.tensor(w)).sum(), (t * torch.tensor(w)).sum()
            loss, tloss = (lo, lt) if loss is None else (loss + lo, tloss + lt)
    if loss is None:
        return
    loss.backward()
    tloss.backward()
    for i, (a, b, item) in enumerate(zip(ta_in, th_in, inputs)):
        if isinstance(item, Grad):
            got = np.zeros(a.shape) if a.grad is None else a.grad
            want = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
            close(got, want, TOL[dtype], f"gradient of input {i}")


T = torch  # the cases below read like the torch code they compare against
CASES = [
    # ------------------------------------------------------------------ pointwise
    ("sin", pw.sin, T.sin, [Grad(r(3, 4, lo=-4, hi=4))]),
    ("cos", pw.cos, T.cos, [Grad(r(3, 4, lo=-4, hi=4))]),
    ("log1p", pw.log1p, T.log1p, [Grad(r(5, lo=-0.9, hi=3))]),
    ("expm1", pw.expm1, T.expm1, [Grad(r(2, 3) * 1e-3)]),
    ("rsqrt", pw.rsqrt, T.rsqrt, [Grad(r(4, lo=0.1, hi=3))]),
    ("reciprocal", pw.reciprocal, T.reciprocal, [Grad(r(4, lo=0.5, hi=3))]),
    ("erf", pw.erf, T.erf, [Grad(r(3, 3))]),
    ("frac", pw.frac, T.frac, [Grad(r(6, lo=-5, hi=5))]),
    ("sign", pw.sign, T.sign, [Grad(np.array([-2.0, 0.0, 3.0, -0.5]))]),
    ("floor", pw.floor, T.floor, [Grad(r(5, lo=-5, hi=5))]),
    ("ceil", pw.ceil, T.ceil, [Grad(r(5, lo=-5, hi=5))]),
    ("trunc", pw.trunc, T.trunc, [Grad(r(5, lo=-5, hi=5))]),
    ("round half to even", pw.round, T.round,
     [Grad(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6]))]),
    ("round decimals", lambda x: pw.round(x, decimals=2), lambda x: T.round(x, decimals=2),
     [Grad(np.array([1.234, -5.678, 0.125, 3.0]))]),
    ("sin int", pw.sin, T.sin, [Const(np.array([0, 1, 2]))]),
    ("floor int", pw.floor, T.floor, [Const(np.array([-3, 1, 2]))]),
    ("sign int", pw.sign, T.sign, [Const(np.array([-3, 0, 2]))]),
    ("sign bool", pw.sign, T.sign, [Const(np.array([True, False]))]),
    # ------------------------------------------------------------------ scan
    ("prod all", scan.prod, T.prod, [Grad(r(3, 4, lo=0.5, hi=1.5))]),
    ("prod dim", lambda x: scan.prod(x, 1, keepdim=True), lambda x: T.prod(x, 1, keepdim=True),
     [Grad(r(3, 4))]),
    ("prod zeros", lambda x: scan.prod(x, 0), lambda x: T.prod(x, 0),
     [Grad(np.array([[0.0, 0.0, 2.0], [3.0, 0.0, 0.5], [0.0, 1.5, 4.0]]))]),
    ("prod int", scan.prod, T.prod, [Const(np.array([[1, 2], [3, 4]]))]),
    ("cumsum", lambda x: scan.cumsum(x, 1), lambda x: T.cumsum(x, 1), [Grad(r(3, 4))]),
    ("cumsum int", lambda x: scan.cumsum(x, 0), lambda x: T.cumsum(x, 0),
     [Const(np.array([1, 2, 3]))]),
    ("cumprod", lambda x: scan.cumprod(x, -1), lambda x: T.cumprod(x, -1), [Grad(r(2, 5))]),
    ("cumprod zeros", lambda x: scan.cumprod(x, 0), lambda x: T.cumprod(x, 0),
     [Grad(np.array([[2.0, 0.0], [0.0, 3.0], [1.5, 0.0], [0.5, 2.0]]))]),
    # ------------------------------------------------------------------ sorting
    ("sort", lambda x: sorting.sort(x, 1), lambda x: T.sort(x, 1), [Grad(spread(3, 5))]),
    ("sort descending", lambda x: sorting.sort(x, 0, descending=True),
     lambda x: T.sort(x, 0, descending=True), [Grad(spread(4, 3))]),
    ("sort stable ties", lambda x: sorting.sort(x, stable=True, descending=True),
     lambda x: T.sort(x, stable=True, descending=True),
     [Grad(np.array([1.0, 3.0, 1.0, 2.0, 3.0, 1.0]))]),
    ("sort ints", lambda x: sorting.sort(x, stable=True), lambda x: T.sort(x, stable=True),
     [Const(np.array([3, 1, 2, 1]))]),
    ("argsort", lambda x: sorting.argsort(x, 1, descending=True),
     lambda x: T.argsort(x, 1, descending=True), [Const(spread(3, 4))]),
    ("topk", lambda x: sorting.topk(x, 3), lambda x: T.topk(x, 3), [Grad(spread(2, 6))]),
    ("topk smallest dim 0", lambda x: sorting.topk(x, 2, dim=0, largest=False),
     lambda x: T.topk(x, 2, dim=0, largest=False), [Grad(spread(5, 3))]),
    ("kthvalue", lambda x: sorting.kthvalue(x, 2, 0, keepdim=True),
     lambda x: T.kthvalue(x, 2, 0, keepdim=True), [Grad(spread(4, 3))]),
    ("median all", sorting.median, T.median, [Grad(spread(4, 3))]),
    ("median dim", lambda x: sorting.median(x, 1), lambda x: T.median(x, 1), [Grad(spread(3, 4))]),
    ("median nan", lambda x: sorting.median(x, 0).values, lambda x: T.median(x, 0).values,
     [Const(np.array([[1.0, 2.0], [np.nan, 0.5], [3.0, 1.0]]))]),
    ("unique", lambda x: sorting.unique(x, return_inverse=True, return_counts=True),
     lambda x: T.unique(x, return_inverse=True, return_counts=True),
     [Const(np.array([[3, 1, 2], [1, 3, 3]]))]),
    ("unique floats", sorting.unique, T.unique, [Const(np.array([2.5, -1.0, 2.5]))]),
    ("unique dim", lambda x: sorting.unique(x, dim=0), lambda x: T.unique(x, dim=0),
     [Const(np.array([[1, 2], [0, 1], [1, 2]]))]),
    # ------------------------------------------------------------------ gather / scatter
    ("gather", lambda x, i: gs.gather(x, 1, i), lambda x, i: T.gather(x, 1, i),
     [Grad(r(3, 4)), Const(np.array([[0, 0], [3, 1], [2, 2]]))]),
    ("gather dim 0, negative dim", lambda x, i: gs.gather(x, -2, i),
     lambda x, i: T.gather(x, -2, i), [Grad(r(3, 4)), Const(np.array([[2, 0, 1, 2]]))]),
    ("scatter src", lambda x, i, s: gs.scatter(x, 1, i, s), lambda x, i, s: T.scatter(x, 1, i, s),
     [Grad(r(2, 4)), Const(np.array([[3, 0], [1, 2]])), Grad(r(2, 2))]),
    ("scatter value", lambda x, i: gs.scatter(x, 0, i, 1.5), lambda x, i: T.scatter(x, 0, i, 1.5),
     [Grad(r(3, 2)), Const(np.array([[2, 0]]))]),
    ("scatter_add repeats", lambda x, i, s: gs.scatter_add(x, 0, i, s),
     lambda x, i, s: T.scatter_add(x, 0, i, s),
     [Grad(r(3, 2)), Const(np.array([[0, 0], [0, 2], [0, 2]])), Grad(r(3, 2))]),
    ("index_select", lambda x, i: gs.index_select(x, 1, i), lambda x, i: T.index_select(x, 1, i),
     [Grad(r(2, 4)), Const(np.array([3, 0, 3]))]),
    ("take_along_dim", lambda x, i: gs.take_along_dim(x, i, 1),
     lambda x, i: T.take_along_dim(x, i, 1), [Grad(r(1, 4)), Const(np.array([[0, 3], [1, 1]]))]),
    ("take_along_dim flat", lambda x, i: gs.take_along_dim(x, i),
     lambda x, i: T.take_along_dim(x, i), [Grad(r(3, 2)), Const(np.array([5, 0, 5]))]),
    ("masked_fill", lambda x, m: gs.masked_fill(x, m, -1e9),
     lambda x, m: x.masked_fill(m, -1e9),
     [Grad(r(2, 3)), Const(np.array([[True, False, True]]))]),
    ("masked_fill int", lambda x, m: gs.masked_fill(x, m, 7), lambda x, m: x.masked_fill(m, 7),
     [Const(np.array([1, 2, 3])), Const(np.array([False, True, True]))]),
    ("index_fill", lambda x, i: gs.index_fill(x, 0, i, -2.0),
     lambda x, i: x.index_fill(0, i, -2.0), [Grad(r(3, 2)), Const(np.array([2, 0]))]),
    ("nonzero", gs.nonzero, T.nonzero, [Const(np.array([[0, 1.5], [2.0, 0]]))]),
    ("nonzero as_tuple", lambda x: gs.nonzero(x, as_tuple=True),
     lambda x: T.nonzero(x, as_tuple=True), [Const(np.array([[0, 1], [1, 1]]))]),
    ("tril", lambda x: gs.tril(x, -1), lambda x: T.tril(x, -1), [Grad(r(2, 3, 4))]),
    ("triu", lambda x: gs.triu(x, 1), lambda x: T.triu(x, 1), [Grad(r(4, 3))]),
    ("triu bool", gs.triu, T.triu, [Const(np.ones((3, 3), dtype=bool))]),
    ("repeat", lambda x: gs.repeat(x, 2, 1, 3), lambda x: x.repeat(2, 1, 3), [Grad(r(2, 2))]),
    ("repeat_interleave int", lambda x: gs.repeat_interleave(x, 2, dim=1),
     lambda x: T.repeat_interleave(x, 2, dim=1), [Grad(r(2, 3))]),
    ("repeat_interleave counts", lambda x, c: gs.repeat_interleave(x, c, dim=0),
     lambda x, c: T.repeat_interleave(x, c, dim=0), [Grad(r(3, 2)), Const(np.array([1, 0, 3]))]),
    ("repeat_interleave flat", lambda x: gs.repeat_interleave(x, 2),
     lambda x: T.repeat_interleave(x, 2), [Grad(r(2, 2))]),
    ("roll", lambda x: gs.roll(x, (1, -1), (0, 1)), lambda x: T.roll(x, (1, -1), (0, 1)),
     [Grad(r(3, 4))]),
    ("roll flat", lambda x: gs.roll(x, 2), lambda x: T.roll(x, 2), [Grad(r(3, 2))]),
    ("flip", lambda x: gs.flip(x, [0, 2]), lambda x: T.flip(x, [0, 2]), [Grad(r(2, 3, 2))]),
    # ------------------------------------------------------------------ products
    ("einsum matmul", lambda a, b: pr.einsum("ij,jk->ik", a, b),
     lambda a, b: T.einsum("ij,jk->ik", a, b), [Grad(r(2, 3)), Grad(r(3, 4))]),
    ("einsum attention", lambda q, k: pr.einsum("bhqd,bhkd->bhqk", q, k),
     lambda q, k: T.einsum("bhqd,bhkd->bhqk", q, k), [Grad(r(2, 2, 3, 4)), Grad(r(2, 2, 5, 4))]),
    ("einsum implicit", lambda a, b: pr.einsum("ij,kj", a, b), lambda a, b: T.einsum("ij,kj", a, b),
     [Grad(r(2, 3)), Grad(r(4, 3))]),
    ("einsum ellipsis", lambda a, b: pr.einsum("...ij,...j->...i", a, b),
     lambda a, b: T.einsum("...ij,...j->...i", a, b), [Grad(r(2, 1, 3, 4)), Grad(r(5, 4))]),
    ("einsum list", lambda a, b: pr.einsum("i,i->", [a, b]), lambda a, b: T.einsum("i,i->", [a, b]),
     [Grad(r(4)), Grad(r(4))]),
    ("einsum trace no grad", lambda a: pr.einsum("ii", a), lambda a: T.einsum("ii", a),
     [Const(r(3, 3))]),
    ("mm", pr.mm, T.mm, [Grad(r(2, 3)), Grad(r(3, 4))]),
    ("bmm", pr.bmm, T.bmm, [Grad(r(2, 3, 4)), Grad(r(2, 4, 2))]),
    ("dot", pr.dot, T.dot, [Grad(r(5)), Grad(r(5))]),
    ("outer", pr.outer, T.outer, [Grad(r(3)), Grad(r(4))]),
    ("addmm", lambda i, a, b: pr.addmm(i, a, b, beta=0.5, alpha=2.0),
     lambda i, a, b: T.addmm(i, a, b, beta=0.5, alpha=2.0), [Grad(r(4)), Grad(r(2, 3)), Grad(r(3, 4))]),
    ("addmm beta 0 ignores nan", lambda i, a, b: pr.addmm(i, a, b, beta=0),
     lambda i, a, b: T.addmm(i, a, b, beta=0),
     [Const(np.full((2, 4), np.nan)), Grad(r(2, 3)), Grad(r(3, 4))]),
    ("baddbmm", lambda i, a, b: pr.baddbmm(i, a, b, alpha=0.25),
     lambda i, a, b: T.baddbmm(i, a, b, alpha=0.25),
     [Grad(r(1, 3, 2)), Grad(r(2, 3, 4)), Grad(r(2, 4, 2))]),
    # ------------------------------------------------------------------ statistics
    ("var default correction", lambda x: st.var(x, 1), lambda x: T.var(x, 1), [Grad(r(3, 5))]),
    ("var unbiased False", lambda x: st.var(x, unbiased=False), lambda x: T.var(x, unbiased=False),
     [Grad(r(3, 5))]),
    ("var correction dims", lambda x: st.var(x, (0, 2), correction=2, keepdim=True),
     lambda x: T.var(x, (0, 2), correction=2, keepdim=True), [Grad(r(3, 2, 4))]),
    ("std", lambda x: st.std(x, 0), lambda x: T.std(x, 0), [Grad(r(4, 3))]),
    ("std all", st.std, T.std, [Grad(r(4, 3))]),
    ("amax ties", lambda x: st.amax(x, 1), lambda x: T.amax(x, 1),
     [Grad(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))]),
    ("amin dims", lambda x: st.amin(x, (0, 1), keepdim=True),
     lambda x: T.amin(x, (0, 1), keepdim=True), [Grad(r(2, 3, 2))]),
    ("max dim", lambda x: st.max(x, 1), lambda x: T.max(x, 1), [Grad(spread(3, 4))]),
    ("max dim ties: one index", lambda x: st.max(x, 1, keepdim=True),
     lambda x: T.max(x, 1, keepdim=True), [Grad(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]))]),
    ("min dim", lambda x: st.min(x, 0), lambda x: T.min(x, 0), [Grad(spread(3, 4))]),
    ("max all ties", st.max, T.max, [Grad(np.array([[1.0, 3.0], [3.0, 0.0]]))]),
    ("max elementwise", st.max, T.max, [Grad(r(2, 3)), Grad(r(3))]),
    ("min elementwise", st.min, T.min, [Grad(r(2, 3)), Grad(r(2, 1))]),
    ("max int dim", lambda x: st.max(x, 0), lambda x: T.max(x, 0), [Const(np.array([[1, 5], [4, 2]]))]),
    ("argmax", st.argmax, T.argmax, [Const(spread(3, 4))]),
    ("argmax dim keepdim", lambda x: st.argmax(x, 1, keepdim=True),
     lambda x: T.argmax(x, 1, keepdim=True), [Const(spread(3, 4))]),
    ("argmin dim", lambda x: st.argmin(x, 0), lambda x: T.argmin(x, 0), [Const(spread(3, 4))]),
    ("argmax ties first", lambda x: st.argmax(x, 1), lambda x: T.argmax(x, 1),
     [Const(np.array([[1, 3, 3], [2, 2, 2]]))]),
    ("aminmax", lambda x: st.aminmax(x, dim=1), lambda x: T.aminmax(x, dim=1), [Grad(spread(2, 3))]),
    ("norm", st.norm, T.norm, [Grad(r(3, 4))]),
    ("norm p=3 dim", lambda x: st.norm(x, 3, dim=1, keepdim=True),
     lambda x: T.norm(x, 3, dim=1, keepdim=True), [Grad(r(3, 4))]),
    ("norm p=1", lambda x: st.norm(x, 1, dim=0), lambda x: T.norm(x, 1, dim=0), [Grad(r(3, 4))]),
    ("norm inf", lambda x: st.norm(x, math.inf, dim=1), lambda x: T.norm(x, math.inf, dim=1),
     [Grad(np.array([[1.0, -3.0, 3.0], [2.0, 0.5, -1.0]]))]),
    ("norm -inf", lambda x: st.norm(x, -math.inf), lambda x: T.norm(x, -math.inf), [Grad(r(2, 3))]),
    ("norm p=0", lambda x: st.norm(x, 0), lambda x: T.norm(x, 0),
     [Grad(np.array([1.0, 0.0, -2.0]))]),
    ("norm fro", lambda x: st.norm(x, "fro", dim=(0, 1)), lambda x: T.norm(x, "fro", dim=(0, 1)),
     [Grad(r(2, 3, 2))]),
    ("norm at zero: zero gradient", lambda x: st.norm(x, dim=1), lambda x: T.norm(x, dim=1),
     [Grad(np.array([[0.0, 0.0], [3.0, 4.0]]))]),
    ("logsumexp", lambda x: st.logsumexp(x, 1), lambda x: T.logsumexp(x, 1), [Grad(r(3, 4))]),
    ("logsumexp keepdim", lambda x: st.logsumexp(x, (0, 1), keepdim=True),
     lambda x: T.logsumexp(x, (0, 1), keepdim=True), [Grad(r(2, 3) * 30)]),
    ("clamp numbers", lambda x: st.clamp(x, -0.5, 0.5), lambda x: T.clamp(x, -0.5, 0.5),
     [Grad(r(3, 4))]),
    ("clamp min only", lambda x: st.clamp(x, min=0.0), lambda x: T.clamp(x, min=0.0),
     [Grad(r(3, 4))]),
    ("clamp tensors", lambda x, lo, hi: st.clamp(x, lo, hi), lambda x, lo, hi: T.clamp(x, lo, hi),
     [Grad(r(3, 4)), Const(r(4) - 1), Const(r(3, 1) + 1)]),
    ("clamp int", lambda x: st.clamp(x, 0, 2), lambda x: T.clamp(x, 0, 2),
     [Const(np.array([-1, 1, 3]))]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, ours, theirs, inputs", CASES, ids=[c[0] for c in CASES])
def test_against_torch(name, ours, theirs, inputs, dtype):
    check(ours, theirs, inputs, dtype)


def test_named_tuples_unpack_like_torch():
    x = ta.tensor(spread(3, 4), requires_grad=True)
    out = st.max(x, 1)
    values, indices = out
    assert out.values is values and out[1] is indices
    assert type(out).__name__ == "max" and out._fields == ("values", "indices")
    assert sorting.sort(x).indices.dtype == np.int64
    assert st.aminmax(x).min.item() == x.numpy().min()


def test_max_dim_gradient_goes_to_one_index_only():
    x = ta.tensor([[2.0, 2.0, 1.0]], requires_grad=True)
    st.max(x, 1).values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0, 0.0]])
    y = ta.tensor([[2.0, 2.0, 1.0]], requires_grad=True)
    st.amax(y, 1).sum().backward()                       # amax shares evenly
    np.testing.assert_array_equal(y.grad, [[0.5, 0.5, 0.0]])


def test_numpy_spellings_beside_pytorch_ones():
    x = r(3, 4)
    np.testing.assert_allclose(st.var(x, axis=1, keepdims=True, ddof=0).numpy(),
                               x.var(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(scan.cumsum(x, axis=0).numpy(), x.cumsum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(st.norm(x, ord=1, axis=0).numpy(), np.abs(x).sum(0), rtol=1e-6)
    assert dims("op", axis=2, keepdims=True) == (2, True)
    with pytest.raises(TypeError, match="op: got dim=1 and axis=2"):
        dims("op", dim=1, axis=2)
    with pytest.raises(TypeError, match="give only one of correction=, unbiased="):
        st.var(x, unbiased=True, correction=0)


def test_einsum_trace_with_grad_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="einsum: a subscript repeated within one"):
        pr.einsum("ii->i", ta.tensor(r(3, 3), requires_grad=True))


ERRORS = [
    (lambda: st.max(r(2, 3), 2), IndexError, r"max: dim 2 is out of range .* \[-2, 1\]"),
    (lambda: sorting.sort(r(2, 3), dim=-3), IndexError, "sort: dim -3 is out of range"),
    (lambda: sorting.topk(r(2, 3), 4), ValueError, "topk: k=4 is out of range for dim 1 of size 3"),
    (lambda: sorting.kthvalue(r(3), 0), ValueError, "kthvalue: k=0 is out of range"),
    (lambda: scan.cumsum(r(3)), TypeError, r"cumsum: dim is required"),
    (lambda: scan.prod(r(2, 3), (0, 1)), TypeError, "prod: dim must be one int"),
    (lambda: gs.gather(r(2, 3), 1, np.array([[0, 3]])), IndexError,
     r"gather: index values must lie in \[-3, 2\]"),
    (lambda: gs.gather(r(2, 3), 1, np.array([0, 1])), ValueError, "gather: index has 1 dims but"),
    (lambda: gs.gather(r(2, 3), 0, np.array([[0.0]])), TypeError, "gather: index must hold integers"),
    (lambda: gs.scatter(r(2, 3), 0, np.array([[0]])), TypeError, "scatter: give src"),
    (lambda: gs.index_select(r(2, 3), 0, np.array([[0]])), ValueError, "index_select: index must be 1-D"),
    (lambda: gs.masked_fill(r(2, 3), np.array([1, 0, 1]), 0.0), TypeError,
     "masked_fill: mask must be a bool tensor"),
    (lambda: gs.masked_fill(r(3), np.ones((2, 3), bool), 0.0), ValueError,
     r"masked_fill: mask of shape \(2, 3\) cannot be broadcast to the input's shape \(3,\)"),
    (lambda: gs.repeat(r(2, 3), 2), ValueError, r"repeat: 1 repeat counts \(2,\) for a tensor with 2"),
    (lambda: gs.repeat_interleave(r(3), np.array([1, 2])), ValueError,
     "repeat_interleave: repeats must be an int or 1-D integers with one count per slice"),
    (lambda: gs.tril(r(3)), ValueError, "tril: input must have at least 2 dims"),
    (lambda: pr.mm(r(2, 3), r(2, 3)), ValueError, r"mm: shapes \(2, 3\) and \(2, 3\) cannot be"),
    (lambda: pr.mm(r(2, 3, 4), r(4, 3)), ValueError, r"mm: input must be 2-D, got shape \(2, 3, 4\)"),
    (lambda: pr.bmm(r(2, 3, 4), r(3, 4, 5)), ValueError, "bmm: shapes .* same batch size"),
    (lambda: pr.dot(r(3), r(4)), ValueError, "dot: the vectors have lengths 3 and 4"),
    (lambda: pr.outer(r(3, 1), r(4)), ValueError, "outer: input must be 1-D"),
    (lambda: pr.einsum("ij,jk", r(2, 3)), ValueError, "einsum: the equation 'ij,jk' has 2 operand"),
    (lambda: pr.einsum("ijk", r(2, 3)), ValueError, "einsum: term 'ijk' names 3 dims"),
    (lambda: pr.addmm(r(3), r(2, 3), r(3, 4)), ValueError, r"addmm: input of shape \(3,\) does not"),
    (lambda: st.norm(r(3), "nuc"), ValueError, "norm: p='nuc' is not supported"),
    (lambda: st.clamp(r(3)), ValueError, "clamp: at least one of min and max"),
    (lambda: st.var(r(2, 3), (1, 1)), ValueError, "var: dim .* names the same dimension twice"),
]


@pytest.mark.parametrize("call, exc, message", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_bad_arguments_name_the_op(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_masked_fill_with_minus_inf_then_softmax_like_attention():
    scores, mask = r(2, 3), np.array([[False, True, False], [True, False, False]])
    ours = ta.softmax(gs.masked_fill(ta.tensor(scores), mask, -math.inf), axis=-1)
    theirs = torch.softmax(torch.tensor(scores).masked_fill(torch.tensor(mask), -math.inf), -1)
    close(ours.numpy(), theirs.numpy(), 1e-6, "softmax of the filled scores")


def test_scatter_of_a_0d_src_sends_it_everywhere():
    x = ta.tensor(r(2, 3), requires_grad=True, dtype="float64")
    s = ta.tensor(1.5, requires_grad=True, dtype="float64")
    x_t = torch.tensor(x.numpy(), requires_grad=True)
    s_t = torch.tensor(1.5, requires_grad=True, dtype=torch.float64)
    index = np.array([[0, 2], [1, 1]])
    w = r(2, 3)
    (gs.scatter(x, 1, index, s) * ta.tensor(w)).sum().backward()
    full = torch.tensor(index)
    (torch.scatter(x_t, 1, full, s_t.expand(2, 2)) * torch.tensor(w)).sum().backward()
    close(x.grad, x_t.grad.numpy(), 1e-6, "input gradient")
    close(s.grad, s_t.grad.numpy(), 1e-6, "src gradient")


def test_numpy_bounds_and_counts_work_with_device_tensors(monkeypatch):
    """clamp's tensor bounds and repeat_interleave's counts are not op inputs (no gradient), so
    they are moved to the tensor's backend here rather than by Function.apply."""
    import fakecupy  # noqa: PLC0415

    fakecupy.install(monkeypatch)
    ta.set_backend("cupy")
    try:
        x = ta.tensor(r(2, 3))
        lo, hi = np.full(3, -0.5), np.full((2, 1), 0.5)
        np.testing.assert_allclose(st.clamp(x, lo, hi).numpy(), np.clip(x.numpy(), lo, hi))
        out = gs.repeat_interleave(x, np.array([2, 1]), dim=0)
        np.testing.assert_allclose(out.numpy(), np.repeat(x.numpy(), [2, 1], axis=0))
    finally:
        ta.set_backend("numpy")
