"""Issue 16, part B: the new ops, dtypes, creation functions and namespaces, checked against
PyTorch where it defines the answer. (test_torch_api.py is the full spec; these tests also cover
what it cannot yet check while ``.grad`` is an array: gradients are compared as arrays here.)"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import tinyattn as ta

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(16)


def both(shape=(3, 4), grad=True):
    a = RNG.standard_normal(shape)
    return ta.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)


def same(ours, ref):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = ours.numpy() if isinstance(ours, ta.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["sin", "cos", "expm1", "erf", "frac", "sign", "floor", "ceil",
                                  "trunc", "round"])
def test_pointwise_functions_and_methods(name):
    x, t = both()
    same(getattr(ta, name)(x), getattr(torch, name)(t))
    same(getattr(x, name)(), getattr(t, name)())


@pytest.mark.parametrize("call", [
    lambda L, x: L.cumsum(x, 1), lambda L, x: x.cumprod(dim=0), lambda L, x: x.prod(1),
    lambda L, x: x.sort(dim=1, descending=True)[0], lambda L, x: x.topk(2)[1],
    lambda L, x: x.tril(-1), lambda L, x: L.triu(x, 1), lambda L, x: x.flip(0, 1),
    lambda L, x: x.roll(1, 0), lambda L, x: x.repeat(2, 1), lambda L, x: L.outer(x[0], x[1]),
    lambda L, x: L.mm(x, x.T), lambda L, x: L.einsum("ij,kj->ik", x, x),
    lambda L, x: x.masked_fill(x > 0, 0.5), lambda L, x: x.where(x > 0, x * 2),
])
def test_new_ops_values_and_gradients(call):
    x, t = both()
    out, ref = call(ta, x), call(torch, t)
    same(out, ref)
    w = RNG.standard_normal(tuple(ref.shape))
    if ref.dtype.is_floating_point:
        (out * ta.tensor(w)).sum().backward()
        (ref * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a, b", [([-7, 7, -7, 7], [2, 2, -2, -2]),
                                  ([-7.5, 7.5, -0.5, 3.0], [2.0, -2.0, 2.0, -1.5])])
def test_floor_divide_and_remainder_follow_python(a, b):
    x, y = ta.tensor(a), ta.tensor(b)
    tx, ty = torch.tensor(a), torch.tensor(b)
    same(x // y, tx // ty)
    same(x % y, tx % ty)
    same(x % 3, tx % 3)
    same(ta.remainder(x, y), torch.remainder(tx, ty))


def test_logical_and_comparison_functions_give_bools():
    a, b = ta.tensor([0, 1, 2, 0]), ta.tensor([1, 1, 0, 0])
    ta_, tb = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 0])
    for name in ("logical_and", "logical_or", "logical_xor", "eq", "ne", "lt", "le", "gt", "ge"):
        same(getattr(ta, name)(a, b), getattr(torch, name)(ta_, tb))
        same(getattr(a, name)(b), getattr(ta_, name)(tb))
    same(ta.logical_not(a), torch.logical_not(ta_))


def test_dtypes_are_numpy_dtype_objects():
    assert ta.tensor([1, 2]).dtype is ta.int64 is ta.long
    assert ta.tensor([1.0]).dtype is ta.float32
    assert ta.tensor([True]).dtype == ta.bool and ta.int == np.int32
    assert ta.zeros(2, dtype=ta.float16).dtype == np.float16
    x = ta.tensor([1.5, -2.5])
    assert x.long().dtype == ta.int64 and x.half().dtype == ta.float16
    assert x.type() == "torch.FloatTensor" and x.type(ta.int8).dtype == ta.int8
    assert ta.LongTensor([1, 2]).dtype == ta.int64 and ta.IntTensor([1]).dtype == ta.int32


@pytest.mark.parametrize("call", [
    lambda L: L.arange(5), lambda L: L.arange(1.0, 2.0, 0.25), lambda L: L.arange(end=3),
    lambda L: L.full((2,), 7), lambda L: L.full((2,), True), lambda L: L.full((1,), 0.5),
    lambda L: L.eye(2, 3, dtype=L.int64), lambda L: L.linspace(-1, 1, steps=5),
    lambda L: L.meshgrid(L.arange(3), L.arange(2), indexing="xy")[0],
    lambda L: L.meshgrid(L.arange(3), L.arange(2), indexing="ij")[1],
    lambda L: L.zeros(2, 3, dtype=L.float64, device="cpu"),
    lambda L: L.ones(2).new_tensor([1, 2]), lambda L: L.ones(2, dtype=L.int64).new_full((2,), 3),
    lambda L: L.full_like(L.ones(2), 4.0), lambda L: L.zeros(1).new_ones(2, 2),
])
def test_creation_matches_torch(call):
    same(call(ta), call(torch))


def test_from_numpy_shares_memory_and_as_tensor_does_not_copy():
    a = np.zeros(3)
    t = ta.from_numpy(a)
    a[1] = 5.0
    assert t.numpy()[1] == 5.0
    assert ta.as_tensor(t) is t
    assert ta.as_tensor([1, 2]).dtype == ta.int64


def test_random_creation_with_generators():
    g = ta.Generator().manual_seed(3)
    a = ta.randn(4, generator=g)
    assert np.array_equal(a.numpy(), ta.randn(4, generator=ta.Generator().manual_seed(3)).numpy())
    p = ta.randperm(9, generator=g)
    assert p.dtype == ta.int64 and sorted(p.tolist()) == list(range(9))
    r = ta.randint(2, 5, (50,), generator=g)
    assert r.dtype == ta.int64 and r.numpy().min() >= 2 and r.numpy().max() < 5
    probs = ta.tensor([[0.0, 1.0, 1.0, 0.0, 2.0]])
    picks = ta.multinomial(probs, 3, generator=g).numpy()
    assert sorted(picks[0].tolist()) == [1, 2, 4]            # without replacement: every non-zero
    with pytest.raises(ValueError, match="replacement=True"):
        ta.multinomial(probs, 4)


def test_cuda_device_is_refused_clearly_without_cupy():
    if ta.cuda.is_available():
        pytest.skip("a GPU is here")
    assert ta.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        ta.zeros(2, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        ta.device("tpu")
    assert ta.device("cuda:0").type == "cuda" and ta.device("cuda", 0).index == 0


def test_nn_functional_is_tinyattn_functional():
    F = importlib.import_module("tinyattn.nn.functional")
    assert F is ta.functional and ta.nn.functional is ta.functional


def test_num_threads_round_trip():
    before = ta.get_num_threads()
    try:
        ta.set_num_threads(1)
        assert ta.get_num_threads() == 1
    finally:
        ta.set_num_threads(before)
    with pytest.raises(ValueError, match="set_num_threads"):
        ta.set_num_threads(0)


def test_grad_modes_as_decorators_and_contexts():
    x = ta.tensor([1.0], requires_grad=True)

    @ta.no_grad
    def bare(v):
        return v * 2

    @ta.no_grad()
    def called(v):
        @ta.enable_grad()
        def inner(u):
            return u * 3
        return inner(v)

    assert not bare(x).requires_grad and called(x).requires_grad
    with ta.inference_mode():
        assert not (x * 2).requires_grad
    with ta.inference_mode(False):
        assert (x * 2).requires_grad


def test_autograd_grad_matches_torch_and_leaves_grad_alone():
    x, tx = both((2, 3))
    w, tw = both((3, 2))
    h = x @ w
    gx, gh = ta.autograd.grad((h.tanh() ** 2).sum(), [x, h])
    th = tx @ tw
    rx, rh = torch.autograd.grad((th.tanh() ** 2).sum(), [tx, th])
    same(gx, rx)
    same(gh, rh)
    assert x.grad is None and w.grad is None
    unused = ta.tensor([1.0], requires_grad=True)
    assert ta.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        ta.autograd.grad((x * 2).sum(), [unused])


def test_register_hook_replaces_gradients_like_torch():
    x, tx = both((2, 2))
    for L, v in ((ta, x), (torch, tx)):
        handle = v.register_hook(lambda g: g * 2)
        y = v * 3
        y.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
        handle.remove()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    (x * 1).sum().backward()                   # the removed hook no longer doubles
    np.testing.assert_allclose(x.grad - tx.grad.numpy(), 1.0)


def test_inplace_on_non_leaves_is_differentiated_like_torch():
    x, tx = both((3, 4))
    idx = np.array([[0, 1], [2, 0], [1, 3]])
    outs = []
    for L, v in ((ta, x), (torch, tx)):
        i = L.tensor(idx)
        y = v * 2
        y.add_(1).mul_(v).sub_(0.5).div_(2.0).clamp_(-1.0, 3.0)
        y.masked_fill_(v < -1, 0.25).index_fill_(1, L.tensor([2]), -1.0)
        y.scatter_(1, i, 0.5).scatter_add_(1, i, v[:, :2] * 3)
        y.sum().backward()
        outs.append(y)
    same(outs[0], outs[1])
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_detach_and_requires_grad_in_place():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert y.detach_() is y and y.is_leaf and not y.requires_grad
    assert y.requires_grad_() is y and y.requires_grad
