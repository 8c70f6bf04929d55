"""Property tests: random shapes, broadcasts and values; every op's forward against NumPy and its
gradient against finite differences (ta.gradcheck), with inputs bounded and kept away from kinks."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyattn as ta

FAST = settings(max_examples=25, deadline=None)


def floats(lo=-2.0, hi=2.0):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def arrays(shape, lo=-2.0, hi=2.0):
    return hnp.arrays(np.float64, shape, elements=floats(lo, hi))


def leaf(a):
    return ta.tensor(np.array(a, dtype=np.float64), requires_grad=True, dtype="float64")


def off_grid(a):
    """Values on odd eighths (k/4 + 1/8): at least 1/8 away from any multiple of 1/4."""
    return np.round(np.asarray(a) * 4) / 4 + 0.125


def on_grid(a):
    """Values on multiples of 1/4 (so maximum(off_grid, on_grid) never ties)."""
    return np.round(np.asarray(a) * 4) / 4


two_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


@st.composite
def broadcast_pair(draw, lo=-2.0, hi=2.0):
    shapes = draw(two_shapes).input_shapes
    return draw(arrays(shapes[0], lo, hi)), draw(arrays(shapes[1], lo, hi))


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (ta.maximum, np.maximum),
    "minimum": (ta.minimum, np.minimum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(pair=broadcast_pair())
def test_binary_ops_with_random_broadcasting(name, pair):
    ours, ref = BINARY[name]
    a, b = pair
    if name in ("div", "pow"):
        b = np.where(np.abs(b) < 0.25, 0.25, b)        # denominators away from 0
    if name == "pow":
        a = np.abs(a) + 0.5                              # real powers need a positive base
    if name in ("maximum", "minimum"):
        a, b = off_grid(a), on_grid(b)                   # never a tie
    np.testing.assert_allclose(ours(leaf(a), leaf(b)).numpy(), ref(a, b), rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(ours, [leaf(a), leaf(b)])


UNARY = {
    "exp": (ta.exp, np.exp, (-2, 2)),
    "log": (ta.log, np.log, (0.2, 3)),
    "sqrt": (ta.sqrt, np.sqrt, (0.2, 3)),
    "tanh": (ta.tanh, np.tanh, (-3, 3)),
    "sigmoid": (ta.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-6, 6)),
    "softplus": (ta.softplus, lambda x: np.log1p(np.exp(x)), (-6, 6)),
    "abs": (ta.abs, np.abs, None),
    "relu": (ta.relu, lambda x: np.maximum(x, 0), None),
    "neg": (ta.neg, np.negative, (-2, 2)),
    "gelu": (ta.gelu, None, (-4, 4)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
def test_unary_ops(name, data, shape):
    ours, ref, bounds = UNARY[name]
    if bounds is None:                                   # abs, relu: stay off the kink at 0
        x = off_grid(data.draw(arrays(shape)))
    else:
        x = data.draw(arrays(shape, *bounds))
    if ref is not None:
        np.testing.assert_allclose(ours(leaf(x)).numpy(), ref(x), rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(ours, [leaf(x)])


@st.composite
def array_and_axis(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, max_side=4))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                                   unique=True).map(tuple)))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "var", "logsumexp", "amax", "amin"])
@FAST
@given(spec=array_and_axis(), seed=st.integers(0, 2 ** 16))
def test_reductions(name, spec, seed):
    shape, axis, keepdims = spec
    rng = np.random.default_rng(seed)
    if name in ("amax", "amin"):                         # distinct values: no ties
        x = (rng.permutation(int(np.prod(shape))) * 0.3 + rng.uniform(-0.05, 0.05)).reshape(shape)
    else:
        x = rng.uniform(-2, 2, shape)
    fn = getattr(ta, name)
    if name == "var":                                    # NumPy's ddof=0 (PyTorch's default is 1)
        fn = functools.partial(ta.var, correction=0)
    if name == "logsumexp":
        expected = np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))
    else:
        expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    out = fn(leaf(x), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(lambda a: fn(a, axis=axis, keepdims=keepdims), [leaf(x)])


@st.composite
def matmul_shapes(draw):
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)).input_shapes
    a_shape = draw(st.sampled_from([(k,), batch[0] + (m, k)]))
    b_shape = draw(st.sampled_from([(k,), batch[1] + (k, n)]))
    return a_shape, b_shape


@FAST
@given(shapes=matmul_shapes(), seed=st.integers(0, 2 ** 16))
def test_matmul_random_shapes(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, shapes[0]), rng.uniform(-1, 1, shapes[1])
    np.testing.assert_allclose((leaf(a) @ leaf(b)).numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-14)
    assert ta.gradcheck(lambda p, q: p @ q, [leaf(a), leaf(b)])


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), seed=st.integers(0, 2 ** 16))
def test_permute_and_reshape_random(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape)
    perm = tuple(int(i) for i in rng.permutation(len(shape)))
    np.testing.assert_array_equal(leaf(x).permute(perm).numpy(), x.transpose(perm))
    flat = (int(np.prod(shape)),)
    np.testing.assert_array_equal(leaf(x).reshape(-1).numpy(), x.reshape(flat))
    weights = rng.uniform(-1, 1, x.transpose(perm).shape)
    assert ta.gradcheck(lambda a: a.permute(perm) * weights, [leaf(x)])


@FAST
@given(n=st.integers(1, 5), idx=st.lists(st.integers(-5, 4), min_size=1, max_size=8),
       seed=st.integers(0, 2 ** 16))
def test_gather_backward_scatter_adds_repeated_indices(n, idx, seed):
    idx = np.array([i % n for i in idx])                 # valid, often repeated
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    g = rng.uniform(-1, 1, (len(idx), 2))
    t = leaf(x)
    out = t[ta.tensor(idx)]
    np.testing.assert_array_equal(out.numpy(), x[idx])
    out.backward(g)
    expected = np.zeros_like(x)
    np.add.at(expected, idx, g)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-15)


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=st.integers(0, 2 ** 16))
def test_masked_softmax_random(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, shape)
    mask = rng.uniform(size=shape) < 0.6
    y = ta.softmax(leaf(x), axis=-1, mask=mask).numpy()
    sums = y.sum(axis=-1)
    any_kept = mask.any(axis=-1)
    np.testing.assert_allclose(sums[any_kept], 1.0, rtol=1e-12)
    assert np.all(sums[~any_kept] == 0) and np.all(y[~mask] == 0) and np.all(np.isfinite(y))
    assert ta.gradcheck(lambda a: ta.softmax(a, axis=-1, mask=mask), [leaf(x)])


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=st.integers(0, 2 ** 16),
       n=st.integers(1, 3))
def test_concatenate_stack_split_roundtrip(shape, seed, n):
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, shape) for _ in range(n)]
    axis = int(rng.integers(-len(shape), len(shape)))
    cat = ta.concatenate([leaf(x) for x in xs], axis=axis)
    np.testing.assert_array_equal(cat.numpy(), np.concatenate(xs, axis=axis))
    parts = ta.tensor_split(cat, n, axis=axis)
    for p, x in zip(parts, xs):
        np.testing.assert_array_equal(p.numpy(), x)
    np.testing.assert_array_equal(ta.stack([leaf(x) for x in xs], axis=axis).numpy(),
                                  np.stack(xs, axis=axis))
    assert ta.gradcheck(lambda *ts: ta.tensor_split(ta.concatenate(list(ts), axis=axis), n, axis=axis)[0] * 2
                        + ta.stack(list(ts), axis=0).sum(axis=0), [leaf(x) for x in xs])


@FAST
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_where_with_random_broadcasting(shapes, seed):
    rng = np.random.default_rng(seed)
    s_cond, s_a, s_b = shapes.input_shapes
    cond = rng.uniform(size=s_cond) < 0.5
    a, b = rng.uniform(-1, 1, s_a), rng.uniform(-1, 1, s_b)
    np.testing.assert_array_equal(ta.where(cond, leaf(a), leaf(b)).numpy(), np.where(cond, a, b))
    assert ta.gradcheck(lambda p, q: ta.where(ta.tensor(cond), p, q), [leaf(a), leaf(b)])


@FAST
@given(x=arrays(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)),
       lo=st.sampled_from([None, -1.0, -0.5]), hi=st.sampled_from([None, 0.5, 1.0]))
def test_clip_random_bounds(x, lo, hi):
    x = off_grid(x)                    # odd eighths: never on a bound (bounds are quarter multiples)
    if lo is None and hi is None:      # PyTorch's clamp needs a bound
        with pytest.raises(ValueError, match="clamp: at least one of min and max"):
            ta.clip(leaf(x), lo, hi)
        return
    np.testing.assert_array_equal(ta.clip(leaf(x), lo, hi).numpy(), np.clip(x, lo, hi))
    assert ta.gradcheck(lambda a: ta.clip(a, lo, hi), [leaf(x)])


@FAST
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_basic_slicing_random(shape, data):
    x = np.random.default_rng(0).uniform(-1, 1, shape)
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    expected = x[index]
    out = leaf(x)[index]
    np.testing.assert_array_equal(out.numpy(), expected)
    if out.numel():
        assert ta.gradcheck(lambda a: a[index], [leaf(x)])


# Random graphs: every step combines earlier values (chosen at random, so values are reused and
# paths split and merge in diamonds), and the gradients of the leaves must match PyTorch's.
STEPS = {
    "add": (2, lambda L, a, b: a + b),
    "mul": (2, lambda L, a, b: a * b),
    "sub": (2, lambda L, a, b: a - b),
    "tanh": (1, lambda L, a: L.tanh(a)),
    "sigmoid": (1, lambda L, a: L.sigmoid(a)),
    "square": (1, lambda L, a: a * a * 0.5),
    "rowsum": (1, lambda L, a: a - L.rowsum(a) * 0.3),       # (3, 1) broadcast back to (3, 3)
    "matmul": (2, lambda L, a, b: L.matmul(a, b) * 0.3),     # (3, 3) @ (3, 3)
    "swap": (1, lambda L, a: L.swap(a)),
}


class _TinyattnLib:
    tanh, sigmoid, matmul = staticmethod(ta.tanh), staticmethod(ta.sigmoid), staticmethod(ta.matmul)
    const = staticmethod(lambda a: a)
    rowsum = staticmethod(lambda a: a.sum(axis=1, keepdims=True))
    swap = staticmethod(lambda a: a.T)


@FAST
@given(program=st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.integers(0, 10 ** 6),
                                   st.integers(0, 10 ** 6)), min_size=1, max_size=12),
       seed=st.integers(0, 2 ** 16))
def test_random_graphs_with_reuse_match_pytorch(program, seed):
    torch = pytest.importorskip("torch")

    class TorchLib:
        tanh, sigmoid, matmul = torch.tanh, torch.sigmoid, torch.matmul
        rowsum = staticmethod(lambda a: a.sum(dim=1, keepdim=True))
        swap = staticmethod(lambda a: a.T)
        const = staticmethod(torch.tensor)

    rng = np.random.default_rng(seed)
    leaves = [rng.uniform(-1, 1, (3, 3)) for _ in range(3)]
    weights = rng.uniform(-1, 1, (len(program) + 3, 3, 3))

    def run(lib, xs):
        values = list(xs)
        for name, i, j in program:
            arity, step = STEPS[name]
            picks = [values[i % len(values)], values[j % len(values)]][:arity]
            values.append(step(lib, *picks))
        return sum((v * lib.const(w)).sum() for v, w in zip(values, weights))

    ours = [ta.tensor(a, requires_grad=True, dtype="float64") for a in leaves]
    run(_TinyattnLib, ours).backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in leaves]
    run(TorchLib, theirs).backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)
