"""The executable spec of issue 16 (Tensor side): code written for PyTorch runs on tinyattn unchanged.

Every case is a function of the library, ``case(lib, *inputs)``: it runs once with ``torch`` (the
reference) and once with the library under test, on the same input values, and the two results
must agree in values, dtypes and shapes; where inputs require grad, the gradients of a random
weighted sum of the outputs (float64) must agree too.

``TA_API_SELFTEST=1`` runs the library-under-test side with torch itself: then every test must pass,
which checks the tests' own logic. Without it the side under test is tinyattn.
"""
from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SELFTEST = os.environ.get("TA_API_SELFTEST") == "1"


@pytest.fixture(params=["tinyattn"])
def lib(request):
    """The library under test: tinyattn, or torch itself in self-test mode."""
    if SELFTEST:
        return torch
    return importlib.import_module("tinyattn")


RNG = np.random.default_rng(0)


# --- inputs: always made as torch tensors; the library under test gets copies of their values ---

def randn(*shape, grad=True, dtype=torch.float64):
    return torch.tensor(RNG.standard_normal(shape), dtype=dtype, requires_grad=grad)


def positive(*shape, grad=True):
    """Values in [0.5, 2): for sqrt, log, rsqrt, reciprocal."""
    return torch.tensor(RNG.uniform(0.5, 2.0, shape), dtype=torch.float64, requires_grad=grad)


def ints(*shape, high=5):
    return torch.tensor(RNG.integers(0, high, shape), dtype=torch.int64)


def mirror(lib, t):
    """The library's tensor with t's values, dtype and requires_grad (a fresh leaf)."""
    if lib is torch:
        return t.detach().clone().requires_grad_(t.requires_grad)
    return lib.tensor(t.detach().numpy().copy(), requires_grad=t.requires_grad)


def is_tensor(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.ndarray)


def values(x):
    """A NumPy copy of a tensor of either library."""
    return np.array(x.detach().numpy()) if hasattr(x, "detach") else np.asarray(x)


_DTYPE_ALIASES = {"long": "int64", "int": "int32", "float": "float32", "double": "float64",
                  "half": "float16"}


def dtype_name(dtype):
    """'torch.float32', np.float32 and 'float32' all become 'float32'."""
    name = str(dtype).replace("torch.", "")
    if name.startswith("<class"):               # a NumPy scalar type
        name = np.dtype(dtype).name
    return _DTYPE_ALIASES.get(name, name)


def assert_same(ours, ref, what="result"):
    """ours (library under test) equals ref (torch) in structure, shape, dtype and values."""
    __tracebackhide__ = True       # the message says what differs; fewer frames keep the xfail run fast
    if isinstance(ref, torch.Tensor):
        assert is_tensor(ours), f"{what}: expected a tensor, got {type(ours).__name__}"
        assert tuple(ours.shape) == tuple(ref.shape), f"{what}: shape {tuple(ours.shape)} vs torch {tuple(ref.shape)}"
        assert dtype_name(ours.dtype) == dtype_name(ref.dtype), \
            f"{what}: dtype {dtype_name(ours.dtype)} vs torch {dtype_name(ref.dtype)}"
        expected = values(ref)
        if ref.dtype.is_floating_point:
            tol = 1e-12 if ref.dtype == torch.float64 else 1e-6
            np.testing.assert_allclose(values(ours), expected, rtol=tol, atol=tol, err_msg=what)
        else:
            np.testing.assert_array_equal(values(ours), expected, err_msg=what)
    elif isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)), f"{what}: expected a sequence, got {type(ours).__name__}"
        assert len(ours) == len(ref), f"{what}: {len(ours)} items vs torch {len(ref)}"
        for i, (o, r) in enumerate(zip(ours, ref)):
            assert_same(o, r, f"{what}[{i}]")
    elif isinstance(ref, float):
        assert isinstance(ours, float), f"{what}: expected a float, got {type(ours).__name__}"
        assert ours == pytest.approx(ref, rel=1e-12, abs=1e-12), what
    else:                                       # int, bool, None
        assert type(ours) is type(ref) and ours == ref, f"{what}: {ours!r} vs torch {ref!r}"


def float_outputs(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in float_outputs(o)]
    if is_tensor(out) and dtype_name(out.dtype).startswith("float") and out.requires_grad:
        return [out]
    return []


def check(lib, case, *inputs):
    """Run case on torch and on lib with the same inputs; compare outputs and input gradients."""
    __tracebackhide__ = True
    ours_in = [mirror(lib, t) for t in inputs]
    ref = case(torch, *inputs)
    ours = case(lib, *ours_in)
    assert_same(ours, ref)
    if not any(t.requires_grad for t in inputs):
        return
    ref_outs, our_outs = float_outputs(ref), float_outputs(ours)
    if not ref_outs:        # the case ran backward itself (or cut the graph): its outputs say it all
        return
    assert len(our_outs) == len(ref_outs), f"{len(our_outs)} differentiable outputs vs torch {len(ref_outs)}"
    weights = [torch.tensor(RNG.standard_normal(tuple(o.shape)), dtype=o.dtype) for o in ref_outs]
    sum((o * w).sum() for o, w in zip(ref_outs, weights)).backward()
    sum((o * mirror(lib, w)).sum() for o, w in zip(our_outs, weights)).backward()
    for i, (o, r) in enumerate(zip(ours_in, inputs)):
        if r.requires_grad:
            assert_same(o.grad, r.grad, f"grad of input {i}")


# ====================================== Namespaces ======================================

def test_nn_functional_is_a_module(lib):
    F = importlib.import_module(lib.__name__ + ".nn.functional")
    x = randn(2, 5)
    check(lib, lambda L, x: importlib.import_module(L.__name__ + ".nn.functional").softmax(x, dim=-1), x)
    assert callable(F.relu)


def test_utils_data_is_importable(lib):
    data = importlib.import_module(lib.__name__ + ".utils.data")
    for name in ("Dataset", "TensorDataset", "DataLoader", "RandomSampler", "SequentialSampler",
                 "random_split"):
        assert hasattr(data, name), name


def test_cuda_is_available_is_a_bool(lib):
    assert isinstance(lib.cuda.is_available(), bool)
    assert isinstance(lib.cuda.device_count(), int)


def test_device_objects(lib):
    d = lib.device("cpu")
    assert str(d) == "cpu" and d.type == "cpu"
    x = lib.zeros(2, device="cpu")
    assert x.device == lib.device("cpu")
    check(lib, lambda L, x: x.to("cpu"), randn(2, 3))
    check(lib, lambda L, x: x.to(L.device("cpu")), randn(2, 3))
    check(lib, lambda L, x: x.to(L.float32), randn(2, 3))
    check(lib, lambda L, x: x.to(device="cpu", dtype=L.float32), randn(2, 3))


def test_set_and_get_num_threads(lib):
    before = lib.get_num_threads()
    assert isinstance(before, int) and before >= 1
    try:
        lib.set_num_threads(1)
        assert lib.get_num_threads() == 1
    finally:
        lib.set_num_threads(before)


def test_no_grad_as_decorator(lib):
    @lib.no_grad()
    def called(x):
        return x * 2

    @lib.no_grad
    def bare(x):
        return x * 2

    x = mirror(lib, randn(3))
    assert not called(x).requires_grad and not bare(x).requires_grad
    assert (x * 2).requires_grad          # grad mode is back on afterwards


def test_inference_mode(lib):
    x = mirror(lib, randn(3))
    with lib.inference_mode():
        y = x * 2
    assert not y.requires_grad
    check(lib, lambda L, x: x * 2, randn(3, grad=False))


def test_manual_seed_returns_a_generator_and_reproduces(lib):
    g = lib.manual_seed(0)
    assert isinstance(g, lib.Generator)
    a = lib.rand(4)
    lib.manual_seed(0)
    np.testing.assert_array_equal(values(lib.rand(4)), values(a))


def test_generator_objects(lib):
    g = lib.Generator().manual_seed(0)
    assert isinstance(g, lib.Generator)
    a = lib.rand(3, generator=g)
    b = lib.randperm(6, generator=lib.Generator().manual_seed(1))
    g.manual_seed(0)
    np.testing.assert_array_equal(values(lib.rand(3, generator=g)), values(a))
    assert sorted(values(b).tolist()) == list(range(6))


# =================================== dtypes as objects ===================================

DTYPE_NAMES = ["float32", "float64", "float16", "int64", "long", "int32", "int", "bool", "uint8"]


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_objects(lib, name):
    ours, ref = getattr(lib, name), getattr(torch, name)
    assert dtype_name(ours) == dtype_name(ref)
    assert lib.zeros(2, dtype=ours).dtype == ours


def test_dtype_comparisons(lib):
    x = lib.tensor([1, 2])
    assert x.dtype == lib.int64 and x.dtype is lib.int64 and x.dtype == lib.long
    assert lib.float32 != lib.float64
    assert lib.tensor([1.0]).dtype == lib.float32
    assert lib.tensor([True]).dtype == lib.bool


@pytest.mark.parametrize("method", ["long", "int", "bool", "float", "double"])
def test_dtype_conversion_methods(lib, method):
    check(lib, lambda L, x: getattr(x, method)(), randn(2, 3, grad=False))


def test_type_and_type_as(lib):
    check(lib, lambda L, x: x.type(L.float32), randn(2, 3, grad=False))
    check(lib, lambda L, x: x.type(L.int64), randn(2, 3, grad=False))
    check(lib, lambda L, x, t: x.type_as(t), randn(2, 3, grad=False), ints(2))


@pytest.mark.parametrize("name, data", [("LongTensor", [1, 2]), ("FloatTensor", [1, 2.5]),
                                        ("BoolTensor", [True, False])])
def test_legacy_constructors(lib, name, data):
    check(lib, lambda L: getattr(L, name)(data))


def test_is_floating_point(lib):
    assert lib.tensor([1.0]).is_floating_point()
    assert not lib.tensor([1]).is_floating_point()
    assert not lib.tensor([True]).is_floating_point()


# ==================================== Shape and size ====================================

def test_size_is_a_tuple_equal_to_the_shape(lib):
    x = mirror(lib, randn(2, 3, 4, grad=False))
    s = x.size()
    assert isinstance(s, tuple) and s == (2, 3, 4) and s == x.shape
    assert x.size(1) == 3 and type(x.size(1)) is int and x.size(-1) == 4


@pytest.mark.parametrize("method", ["dim", "numel", "nelement"])
def test_dim_numel_nelement(lib, method):
    check(lib, lambda L, x: getattr(x, method)(), randn(2, 3, 4, grad=False))


SHAPE_CASES = {
    "contiguous": (lambda L, x: x.transpose(0, 1).contiguous(), lambda: [randn(2, 3)]),
    "view(-1)": (lambda L, x: x.view(-1), lambda: [randn(2, 3)]),
    "view(3, -1)": (lambda L, x: x.view(3, -1), lambda: [randn(2, 3)]),
    "reshape": (lambda L, x: x.reshape(3, 2), lambda: [randn(2, 3)]),
    "t()": (lambda L, x: x.t(), lambda: [randn(2, 3)]),
    "mT": (lambda L, x: x.mT, lambda: [randn(4, 2, 3)]),
    "repeat": (lambda L, x: x.repeat(2, 1, 3), lambda: [randn(2, 3)]),
    "repeat_interleave(dim)": (lambda L, x: x.repeat_interleave(2, dim=1), lambda: [randn(2, 3)]),
    "repeat_interleave flat": (lambda L, x: x.repeat_interleave(2), lambda: [randn(2, 3)]),
    "expand(-1, 4)": (lambda L, x: x.expand(-1, 4), lambda: [randn(3, 1)]),
    "expand(2, 3, 4)": (lambda L, x: x.expand(2, 3, 4), lambda: [randn(3, 1)]),
    "expand_as": (lambda L, x, y: x.expand_as(y), lambda: [randn(3, 1), randn(3, 4, grad=False)]),
    "flatten()": (lambda L, x: x.flatten(), lambda: [randn(2, 3, 4)]),
    "flatten(1)": (lambda L, x: x.flatten(1), lambda: [randn(2, 3, 4)]),
    "flatten(0, 1)": (lambda L, x: x.flatten(0, 1), lambda: [randn(2, 3, 4)]),
    "torch.flatten": (lambda L, x: L.flatten(x, 1), lambda: [randn(2, 3, 4)]),
    "unflatten(1, (2, 3))": (lambda L, x: x.unflatten(1, (2, 3)), lambda: [randn(4, 6)]),
    "chunk(3, dim=1)": (lambda L, x: x.chunk(3, dim=1), lambda: [randn(2, 7)]),
    "torch.chunk": (lambda L, x: L.chunk(x, 2), lambda: [randn(5, 2)]),
    "split(2, dim=1)": (lambda L, x: x.split(2, dim=1), lambda: [randn(3, 5)]),
    "split([1, 3], dim=1)": (lambda L, x: x.split([1, 3], dim=1), lambda: [randn(3, 4)]),
    "torch.split": (lambda L, x: L.split(x, 2), lambda: [randn(5, 2)]),
    "cat dim=1": (lambda L, x, y: L.cat([x, y], dim=1), lambda: [randn(2, 3), randn(2, 1)]),
    "cat default dim": (lambda L, x, y: L.cat((x, y)), lambda: [randn(2, 3), randn(1, 3)]),
    "concatenate": (lambda L, x, y: L.concatenate([x, y], dim=0), lambda: [randn(2, 3), randn(1, 3)]),
    "stack dim=1": (lambda L, x, y: L.stack([x, y], dim=1), lambda: [randn(2, 3), randn(2, 3)]),
    "squeeze(0)": (lambda L, x: x.squeeze(0), lambda: [randn(1, 3, 1)]),
    "squeeze()": (lambda L, x: x.squeeze(), lambda: [randn(1, 3, 1)]),
    "squeeze non-1 dim is a no-op": (lambda L, x: x.squeeze(1), lambda: [randn(1, 3, 1)]),
    "unsqueeze(-1)": (lambda L, x: x.unsqueeze(-1), lambda: [randn(2, 3)]),
    "torch.unsqueeze": (lambda L, x: L.unsqueeze(x, 0), lambda: [randn(2, 3)]),
    "transpose(0, 1)": (lambda L, x: x.transpose(0, 1), lambda: [randn(2, 3, 4)]),
    "transpose(-1, -2)": (lambda L, x: x.transpose(-1, -2), lambda: [randn(2, 3, 4)]),
    "permute(2, 0, 1)": (lambda L, x: x.permute(2, 0, 1), lambda: [randn(2, 3, 4)]),
    "permute((2, 0, 1))": (lambda L, x: x.permute((2, 0, 1)), lambda: [randn(2, 3, 4)]),
    "torch.permute": (lambda L, x: L.permute(x, (1, 2, 0)), lambda: [randn(2, 3, 4)]),
    "movedim": (lambda L, x: x.movedim(0, -1), lambda: [randn(2, 3, 4)]),
    "torch.movedim": (lambda L, x: L.movedim(x, (0, 1), (2, 0)), lambda: [randn(2, 3, 4)]),
}


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_shape(lib, name):
    case, make = SHAPE_CASES[name]
    check(lib, case, *make())


def test_split_sizes_are_pytorchs(lib):
    """split(2) means chunks of size 2 (the last smaller), not 2 parts."""
    parts = mirror(lib, randn(3, 5, grad=False)).split(2, dim=1)
    assert [p.shape[1] for p in parts] == [2, 2, 1]


# ======================================= Creation =======================================

CREATION_CASES = {
    "zeros(2, 3)": lambda L: L.zeros(2, 3),
    "zeros((2, 3))": lambda L: L.zeros((2, 3)),
    "zeros dtype device": lambda L: L.zeros(2, 3, dtype=L.float64, device="cpu"),
    "ones": lambda L: L.ones(2, 3),
    "ones int64": lambda L: L.ones(3, dtype=L.int64, device="cpu"),
    "full float": lambda L: L.full((2, 3), 1.5),
    "full int": lambda L: L.full((2,), 7),
    "full bool": lambda L: L.full((2,), True),
    "full dtype device": lambda L: L.full((2, 2), 3, dtype=L.float32, device="cpu"),
    "arange(5)": lambda L: L.arange(5),
    "arange(2, 9, 3)": lambda L: L.arange(2, 9, 3),
    "arange(1., 4.)": lambda L: L.arange(1.0, 4.0),
    "arange(0, 1, 0.25)": lambda L: L.arange(0, 1, 0.25),
    "arange dtype device": lambda L: L.arange(0, 5, dtype=L.float64, device="cpu"),
    "arange end=": lambda L: L.arange(end=4),
    "linspace": lambda L: L.linspace(0, 1, 5),
    "linspace dtype": lambda L: L.linspace(-1, 1, steps=4, dtype=L.float64),
    "eye(3)": lambda L: L.eye(3),
    "eye(2, 3)": lambda L: L.eye(2, 3, dtype=L.int64, device="cpu"),
    "tensor ints is int64": lambda L: L.tensor([1, 2]),
    "tensor floats is float32": lambda L: L.tensor([1.0, 2.0]),
    "tensor bools": lambda L: L.tensor([True, False]),
    "tensor scalar": lambda L: L.tensor(3.5),
    "tensor dtype device": lambda L: L.tensor([1, 2], dtype=L.float64, device="cpu"),
    "meshgrid ij": lambda L: L.meshgrid(L.arange(3), L.arange(2), indexing="ij"),
    "meshgrid ij list": lambda L: L.meshgrid([L.arange(2.0), L.arange(3.0)], indexing="ij"),
    "meshgrid xy": lambda L: L.meshgrid(L.arange(3), L.arange(2), indexing="xy"),
}


@pytest.mark.parametrize("name", list(CREATION_CASES))
def test_creation(lib, name):
    check(lib, CREATION_CASES[name])


TRIANGLE_CASES = {
    "tril": lambda L, x: L.tril(x),
    "tril(diagonal=-1)": lambda L, x: L.tril(x, diagonal=-1),
    "triu(diagonal=1)": lambda L, x: L.triu(x, diagonal=1),
    "x.tril(1)": lambda L, x: x.tril(1),
    "x.triu()": lambda L, x: x.triu(),
    "x.triu(diagonal=-1) batched": lambda L, x: x.unsqueeze(0).triu(diagonal=-1),
}


@pytest.mark.parametrize("name", list(TRIANGLE_CASES))
def test_tril_triu(lib, name):
    check(lib, TRIANGLE_CASES[name], randn(3, 4))


def test_empty_shape_and_dtype(lib):
    for x, shape, dtype in [(lib.empty(2, 3), (2, 3), "float32"),
                            (lib.empty((4,), dtype=lib.int64, device="cpu"), (4,), "int64")]:
        assert tuple(x.shape) == shape and dtype_name(x.dtype) == dtype


LIKE_CASES = {
    "zeros_like": lambda L, x: L.zeros_like(x),
    "ones_like": lambda L, x: L.ones_like(x),
    "ones_like dtype": lambda L, x: L.ones_like(x, dtype=L.int64),
    "full_like": lambda L, x: L.full_like(x, 2.5),
    "new_zeros": lambda L, x: x.new_zeros(2, 3),
    "new_zeros tuple": lambda L, x: x.new_zeros((4,)),
    "new_ones": lambda L, x: x.new_ones((2,)),
    "new_full": lambda L, x: x.new_full((2, 2), 7.0),
    "new_tensor": lambda L, x: x.new_tensor([1.0, 2.0]),
    "new_tensor ints": lambda L, x: x.new_tensor([1, 2]),
}


@pytest.mark.parametrize("name", list(LIKE_CASES))
def test_like_and_new(lib, name):
    check(lib, LIKE_CASES[name], randn(3, 2, grad=False))


def test_random_like_shape_and_dtype(lib):
    x = mirror(lib, randn(3, 2, grad=False))
    for fn in (lib.rand_like, lib.randn_like, lib.empty_like):
        y = fn(x)
        assert tuple(y.shape) == (3, 2) and dtype_name(y.dtype) == "float64"
    y = lib.randint_like(x, 0, 5)
    assert tuple(y.shape) == (3, 2) and ((values(y) >= 0) & (values(y) < 5)).all()


def test_from_numpy_shares_memory(lib):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = lib.from_numpy(a)
    assert dtype_name(t.dtype) == "float64" and tuple(t.shape) == (2, 3)
    a[0, 0] = 42.0
    assert values(t)[0, 0] == 42.0


def test_as_tensor(lib):
    check(lib, lambda L: L.as_tensor([1, 2, 3]))
    check(lib, lambda L: L.as_tensor(np.arange(3, dtype=np.int32)))
    check(lib, lambda L: L.as_tensor([1, 2], dtype=L.float64, device="cpu"))
    check(lib, lambda L, x: L.as_tensor(x), randn(2, grad=False))


def test_random_creation_shapes_dtypes_and_ranges(lib):
    lib.manual_seed(0)
    r = values(lib.rand(2, 3))
    assert r.shape == (2, 3) and r.dtype == np.float32 and ((r >= 0) & (r < 1)).all()
    assert dtype_name(lib.rand(2, dtype=lib.float64, device="cpu").dtype) == "float64"
    n = lib.randn((400,))
    assert tuple(n.shape) == (400,) and dtype_name(n.dtype) == "float32"
    assert abs(values(n).mean()) < 0.3 and 0.7 < values(n).std() < 1.3
    i = lib.randint(3, 10, (4, 5))
    assert tuple(i.shape) == (4, 5) and dtype_name(i.dtype) == "int64"
    assert ((values(i) >= 3) & (values(i) < 10)).all()
    assert tuple(lib.randint(5, (3,)).shape) == (3,)
    m = lib.normal(2.0, 0.5, size=(300,))
    assert tuple(m.shape) == (300,) and abs(values(m).mean() - 2.0) < 0.2
    p = lib.randperm(7)
    assert dtype_name(p.dtype) == "int64" and sorted(values(p).tolist()) == list(range(7))


def test_multinomial_is_valid(lib):
    probs = lib.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.5, 0.5, 0.0]])
    picks = lib.multinomial(probs, 2)
    v = values(picks)
    assert tuple(picks.shape) == (2, 2) and dtype_name(picks.dtype) == "int64"
    assert all(len(set(row)) == 2 for row in v.tolist())             # without replacement: distinct
    assert (values(probs)[np.arange(2)[:, None], v] > 0).all()      # never a zero-probability index
    many = values(lib.multinomial(probs, 20, replacement=True))
    assert many.shape == (2, 20) and (values(probs)[np.arange(2)[:, None], many] > 0).all()


# ================================= Maths and reductions =================================

MATH_CASES = {
    "sum": (lambda L, x: x.sum(), lambda: [randn(2, 3, 4)]),
    "sum(dim=(0, 2), keepdim=True)": (lambda L, x: x.sum(dim=(0, 2), keepdim=True), lambda: [randn(2, 3, 4)]),
    "torch.sum dim": (lambda L, x: L.sum(x, 1), lambda: [randn(2, 3, 4)]),
    "sum of ints is int64": (lambda L, x: x.sum(), lambda: [ints(3, 4)]),
    "mean(-1)": (lambda L, x: x.mean(-1), lambda: [randn(2, 3, 4)]),
    "mean(dim, keepdim)": (lambda L, x: x.mean(dim=1, keepdim=True), lambda: [randn(2, 3, 4)]),
    "var default correction 1": (lambda L, x: x.var(), lambda: [randn(3, 4)]),
    "var(dim)": (lambda L, x: x.var(1), lambda: [randn(3, 4)]),
    "var(unbiased=False)": (lambda L, x: x.var(dim=1, unbiased=False), lambda: [randn(3, 4)]),
    "var(correction=0)": (lambda L, x: x.var(dim=0, correction=0, keepdim=True), lambda: [randn(3, 4)]),
    "std default correction 1": (lambda L, x: x.std(), lambda: [randn(3, 4)]),
    "std(dim)": (lambda L, x: x.std(-1), lambda: [randn(3, 4)]),
    "std(unbiased=False)": (lambda L, x: x.std(dim=1, unbiased=False), lambda: [randn(3, 4)]),
    "std(correction=0)": (lambda L, x: L.std(x, dim=0, correction=0), lambda: [randn(3, 4)]),
    "torch.max(x) full": (lambda L, x: L.max(x), lambda: [randn(3, 4)]),
    "x.max() full": (lambda L, x: x.max(), lambda: [randn(3, 4)]),
    "torch.max(a, b) elementwise": (lambda L, a, b: L.max(a, b), lambda: [randn(3, 4), randn(3, 4)]),
    "torch.min(a, b) elementwise": (lambda L, a, b: L.min(a, b), lambda: [randn(3, 4), randn(3, 4)]),
    "x.max(dim=1)": (lambda L, x: tuple(x.max(dim=1)), lambda: [randn(3, 4)]),
    "x.min(0, keepdim=True)": (lambda L, x: tuple(x.min(0, keepdim=True)), lambda: [randn(3, 4)]),
    "torch.max(x, 1)": (lambda L, x: tuple(L.max(x, 1)), lambda: [randn(3, 4)]),
    "maximum": (lambda L, a, b: L.maximum(a, b), lambda: [randn(3, 4), randn(3, 4)]),
    "amax": (lambda L, x: x.amax(dim=(0, 1)), lambda: [randn(2, 3, 4)]),
    "amin keepdim": (lambda L, x: L.amin(x, dim=-1, keepdim=True), lambda: [randn(2, 3, 4)]),
    "argmax": (lambda L, x: x.argmax(), lambda: [randn(3, 4, grad=False)]),
    "argmax(dim)": (lambda L, x: x.argmax(dim=1), lambda: [randn(3, 4, grad=False)]),
    "argmin(dim, keepdim)": (lambda L, x: L.argmin(x, dim=0, keepdim=True), lambda: [randn(3, 4, grad=False)]),
    "prod": (lambda L, x: x.prod(), lambda: [randn(2, 3)]),
    "prod(dim)": (lambda L, x: x.prod(dim=1), lambda: [randn(2, 3)]),
    "cumsum": (lambda L, x: x.cumsum(dim=1), lambda: [randn(2, 4)]),
    "norm": (lambda L, x: x.norm(), lambda: [randn(2, 4)]),
    "norm(dim)": (lambda L, x: x.norm(dim=-1, keepdim=True), lambda: [randn(2, 4)]),
    "norm(p=1)": (lambda L, x: L.norm(x, p=1, dim=1), lambda: [randn(2, 4)]),
    "logsumexp": (lambda L, x: x.logsumexp(dim=-1), lambda: [randn(2, 4)]),
    "torch.logsumexp keepdim": (lambda L, x: L.logsumexp(x, dim=0, keepdim=True), lambda: [randn(2, 4)]),
    "topk": (lambda L, x: tuple(x.topk(2, dim=-1)), lambda: [randn(3, 5)]),
    "topk smallest": (lambda L, x: tuple(L.topk(x, 2, dim=0, largest=False)), lambda: [randn(3, 5)]),
    "sort": (lambda L, x: tuple(x.sort(dim=-1)), lambda: [randn(3, 5)]),
    "sort descending": (lambda L, x: tuple(L.sort(x, dim=0, descending=True)), lambda: [randn(3, 5)]),
    "argsort": (lambda L, x: x.argsort(dim=-1), lambda: [randn(3, 5, grad=False)]),
    "argsort descending": (lambda L, x: L.argsort(x, descending=True), lambda: [randn(3, 5, grad=False)]),
    "unique": (lambda L, x: L.unique(x), lambda: [ints(4, 5)]),
    "unique return_counts": (lambda L, x: x.unique(return_counts=True), lambda: [ints(4, 5)]),
    "bmm": (lambda L, a, b: L.bmm(a, b), lambda: [randn(2, 3, 4), randn(2, 4, 5)]),
    "x.bmm": (lambda L, a, b: a.bmm(b), lambda: [randn(2, 3, 4), randn(2, 4, 5)]),
    "mm": (lambda L, a, b: L.mm(a, b), lambda: [randn(3, 4), randn(4, 2)]),
    "matmul": (lambda L, a, b: L.matmul(a, b), lambda: [randn(2, 3, 4), randn(4, 2)]),
    "einsum": (lambda L, a, b: L.einsum("bij,bjk->bik", a, b), lambda: [randn(2, 3, 4), randn(2, 4, 5)]),
    "einsum list operands": (lambda L, a, b: L.einsum("ij,j->i", [a, b]), lambda: [randn(3, 4), randn(4)]),
    "outer": (lambda L, a, b: L.outer(a, b), lambda: [randn(3), randn(4)]),
    "baddbmm": (lambda L, c, a, b: L.baddbmm(c, a, b, beta=0.5, alpha=2.0),
                lambda: [randn(2, 3, 5), randn(2, 3, 4), randn(2, 4, 5)]),
    "clamp": (lambda L, x: x.clamp(-0.5, 0.5), lambda: [randn(3, 4)]),
    "clamp(min=)": (lambda L, x: L.clamp(x, min=0.0), lambda: [randn(3, 4)]),
    "clip(max=)": (lambda L, x: x.clip(max=0.2), lambda: [randn(3, 4)]),
    "round(decimals)": (lambda L, x: x.round(decimals=1), lambda: [randn(3, 4)]),
}

UNARY = ["sin", "cos", "exp", "log", "log1p", "expm1", "rsqrt", "sqrt", "abs", "sign", "floor",
         "ceil", "round", "reciprocal", "tanh", "sigmoid", "neg"]
for _name in UNARY:
    _make = (lambda: [positive(3, 4)]) if _name in ("log", "rsqrt", "sqrt", "reciprocal") else (lambda: [randn(3, 4)])
    MATH_CASES[f"torch.{_name}"] = ((lambda n: lambda L, x: getattr(L, n)(x))(_name), _make)
    MATH_CASES[f"x.{_name}()"] = ((lambda n: lambda L, x: getattr(x, n)())(_name), _make)


@pytest.mark.parametrize("name", list(MATH_CASES))
def test_maths(lib, name):
    case, make = MATH_CASES[name]
    check(lib, case, *make())


def test_max_dim_is_a_named_tuple(lib):
    x_ref = randn(3, 4, grad=False)
    x = mirror(lib, x_ref)
    r, ref = x.max(dim=1), x_ref.max(dim=1)
    assert_same(r.values, ref.values, "values")
    assert_same(r.indices, ref.indices, "indices")
    v, i = r
    assert_same(v, ref.values, "unpacked values")
    assert_same(r[1], ref.indices, "r[1]")
    assert_same(lib.min(x, dim=0).indices, x_ref.min(dim=0).indices, "min indices")


def test_numpy_aliases_equal_the_dim_form(lib):
    """axis=/keepdims= stay as aliases beside dim=/keepdim= (the issue keeps NumPy's spellings)."""
    x = mirror(lib, randn(2, 3, 4, grad=False))
    assert_same(x.sum(axis=(0, 2), keepdims=True), torch.tensor(values(x.sum(dim=(0, 2), keepdim=True))))
    assert_same(x.mean(axis=1), torch.tensor(values(x.mean(dim=1))))
    assert_same(lib.sum(x, axis=0), torch.tensor(values(lib.sum(x, dim=0))))


ARITH_CASES = {
    "float //": lambda L, a, b: a // b,
    "float %": lambda L, a, b: a % b,
    "float // scalar": lambda L, a, b: a // 2,
    "float % scalar": lambda L, a, b: a % 2,
    "floor_divide": lambda L, a, b: L.floor_divide(a, b),
    "remainder": lambda L, a, b: L.remainder(a, b),
    "rsub scalar": lambda L, a, b: 1 - a,
    "rtruediv scalar": lambda L, a, b: 1 / b,
    "pow": lambda L, a, b: a ** 2,
    "<": lambda L, a, b: a < b,
    "<=": lambda L, a, b: a <= b,
    ">": lambda L, a, b: a > 0,
    ">=": lambda L, a, b: a >= b,
    "==": lambda L, a, b: a == b,
    "!=": lambda L, a, b: a != b,
    "torch.eq": lambda L, a, b: L.eq(a, b),
    "torch.gt": lambda L, a, b: L.gt(a, b),
    "x.lt": lambda L, a, b: a.lt(0.5),
}
NEGATIVES = [-7.0, 7.0, -7.5, 3.0, 7.0, -1.0]
DIVISORS = [2.0, -2.0, 2.0, -0.5, 7.0, 3.0]


@pytest.mark.parametrize("name", list(ARITH_CASES))
def test_arithmetic_and_comparisons(lib, name):
    a = torch.tensor(NEGATIVES, dtype=torch.float64)
    b = torch.tensor(DIVISORS, dtype=torch.float64)
    check(lib, ARITH_CASES[name], a, b)


@pytest.mark.parametrize("op", ["//", "%"])
def test_integer_floor_division_and_modulo(lib, op):
    a = torch.tensor([-7, 7, -7, 6, 0], dtype=torch.int64)
    b = torch.tensor([2, -2, -3, 4, 5], dtype=torch.int64)
    if op == "//":
        check(lib, lambda L, a, b: (a // b, a // 3, -7 // b), a, b)
    else:
        check(lib, lambda L, a, b: (a % b, a % 3), a, b)


LOGICAL_CASES = {
    "logical_and": lambda L, m, n: L.logical_and(m, n),
    "logical_or": lambda L, m, n: L.logical_or(m, n),
    "logical_xor": lambda L, m, n: L.logical_xor(m, n),
    "logical_not": lambda L, m, n: L.logical_not(m),
    "&": lambda L, m, n: m & n,
    "|": lambda L, m, n: m | n,
    "^": lambda L, m, n: m ^ n,
    "~": lambda L, m, n: ~m,
    "any": lambda L, m, n: (m.any(), m.any(dim=1)),
    "all": lambda L, m, n: (m.all(), L.all(n, dim=0)),
}


@pytest.mark.parametrize("name", list(LOGICAL_CASES))
def test_logical(lib, name):
    m = torch.tensor([[True, False, True], [False, False, True]])
    n = torch.tensor([[True, True, False], [False, True, True]])
    check(lib, LOGICAL_CASES[name], m, n)


# ================================ Indexing and masking ================================

IDX = torch.tensor([[0, 2, 1, 0], [3, 3, 0, 1], [1, 0, 2, 3]])           # for dim=1 of a (3, 4)
COL_IDX = torch.tensor([2, 0])

INDEX_CASES = {
    "masked_fill": (lambda L, x: x.masked_fill(x > 0, 0.0), lambda: [randn(3, 4)]),
    "masked_fill -inf mask": (lambda L, x, m: x.masked_fill(m, float("-inf")).softmax(-1),
                              lambda: [randn(3, 4), torch.tensor([False, False, True, True])]),
    "masked_fill_ non-leaf": (lambda L, x: (x * 1).masked_fill_(x < 0, 1.5), lambda: [randn(3, 4)]),
    "torch.masked_fill": (lambda L, x: L.masked_fill(x, x < 0, -1.0), lambda: [randn(3, 4)]),
    "where(cond, a, b)": (lambda L, a, b: L.where(a > b, a, b), lambda: [randn(3, 4), randn(3, 4)]),
    "where scalar": (lambda L, a: L.where(a > 0, a, 0.0), lambda: [randn(3, 4)]),
    "x.where": (lambda L, a, b: a.where(a > 0, b), lambda: [randn(3, 4), randn(3, 4)]),
    "where(cond)": (lambda L, a: L.where(a > 0), lambda: [randn(3, 4, grad=False)]),
    "gather": (lambda L, x, i: x.gather(1, i), lambda: [randn(3, 4), IDX[:, :2]]),
    "torch.gather": (lambda L, x, i: L.gather(x, 1, i), lambda: [randn(3, 4), IDX]),
    "scatter": (lambda L, x, i, s: x.scatter(1, i, s), lambda: [randn(3, 4), IDX[:, :1], randn(3, 1)]),
    "scatter_ non-leaf": (lambda L, x, i: (x * 1).scatter_(1, i, 0.0), lambda: [randn(3, 4), IDX[:, :2]]),
    "scatter_add": (lambda L, x, i, s: x.scatter_add(1, i, s), lambda: [randn(3, 4), IDX, randn(3, 4)]),
    "scatter_add_ non-leaf": (lambda L, x, i, s: (x * 1).scatter_add_(1, i, s),
                              lambda: [randn(3, 4), IDX, randn(3, 4)]),
    "index_select": (lambda L, x, i: x.index_select(1, i), lambda: [randn(3, 4), COL_IDX]),
    "torch.index_select": (lambda L, x, i: L.index_select(x, 0, i), lambda: [randn(3, 4), COL_IDX]),
    "index_fill_ non-leaf": (lambda L, x, i: (x * 1).index_fill_(1, i, -1.0), lambda: [randn(3, 4), COL_IDX]),
    "nonzero": (lambda L, x: (x > 0).nonzero(), lambda: [randn(3, 4, grad=False)]),
    "torch.nonzero as_tuple": (lambda L, x: L.nonzero(x > 0, as_tuple=True), lambda: [randn(3, 4, grad=False)]),
    "take_along_dim": (lambda L, x, i: L.take_along_dim(x, i, dim=1), lambda: [randn(3, 4), IDX]),
    "x.take_along_dim argsort": (lambda L, x: x.take_along_dim(x.argsort(dim=1), dim=1), lambda: [randn(3, 4)]),
    "x[mask] read": (lambda L, x: x[x > 0], lambda: [randn(3, 4)]),
    "x[tensor] read": (lambda L, x, i: x[i], lambda: [randn(3, 4), COL_IDX]),
    "x[:, tensor] read": (lambda L, x, i: x[:, i], lambda: [randn(3, 4), COL_IDX]),
    "x[tensor, tensor] read": (lambda L, x, i: x[i, i], lambda: [randn(3, 4), COL_IDX]),
}


@pytest.mark.parametrize("name", list(INDEX_CASES))
def test_indexing(lib, name):
    case, make = INDEX_CASES[name]
    check(lib, case, *make())


def _masked_assignment(L, x):
    x = x.clone()
    with L.no_grad():
        x[x < 0] = 0
    return x


def _tensor_setitem(L, x, i, v):
    x = x.clone()
    x[i] = 5.0
    x[i, 1] = v
    x[:, i] = x[:, i] * 2
    return x


def test_boolean_mask_assignment_under_no_grad(lib):
    check(lib, _masked_assignment, randn(3, 4, grad=False))
    p = mirror(lib, randn(3, 4))
    with lib.no_grad():
        p[p > 0] = 0.0
    assert (values(p) <= 0).all() and p.requires_grad


def test_setitem_with_tensor_indices(lib):
    check(lib, _tensor_setitem, randn(3, 4, grad=False), COL_IDX, randn(2, grad=False))
    check(lib, lambda L, x, v: _tensor_setitem(L, x * 1, COL_IDX if L is torch else L.tensor(COL_IDX.numpy()), v),
          randn(3, 4), randn(2))


# ================================== Autograd surface ==================================

def test_grad_is_a_tensor(lib):
    def case(L, p):
        (p * p).sum().backward()
        norm = p.grad.norm()
        assert isinstance(p.grad, L.Tensor)
        before = p.grad.clone()
        p.grad.zero_()
        return before, norm, p.grad
    check(lib, case, randn(3, 2))


def test_data_is_a_tensor(lib):
    def case(L, p):
        (p * 3).sum().backward()
        assert isinstance(p.data, L.Tensor)
        copy = p.data.clone()
        p.data.add_(p.grad, alpha=-0.1)           # changes p itself
        return copy, p.detach().clone(), p.data.clone()
    check(lib, case, randn(3, 2))


def test_hand_written_sgd_loop(lib):
    def case(L, p, x, y):
        for _ in range(3):
            loss = ((L.tanh(x @ p) - y) ** 2).mean()
            loss.backward()
            with L.no_grad():
                p -= 0.5 * p.grad
                p.grad.zero_()
        return p.detach().clone(), loss.detach()
    check(lib, case, randn(3, 2), randn(5, 3, grad=False), randn(5, 2, grad=False))


def test_requires_grad_(lib):
    def case(L, x):
        y = x.clone()
        assert not y.requires_grad
        assert y.requires_grad_() is y and y.requires_grad
        y.requires_grad_(False)
        assert not y.requires_grad
        return y
    check(lib, case, randn(3, grad=False))


def test_detach_(lib):
    def case(L, x):
        y = x * 2
        assert y.detach_() is y and not y.requires_grad
        return y
    check(lib, case, randn(3))      # x requires grad but y cut the graph: no differentiable output


def test_retain_grad(lib):
    def case(L, x):
        y = x * 2
        y.retain_grad()
        (y * y).sum().backward()
        return y.grad
    check(lib, case, randn(2, 3))


def test_register_hook_doubles_the_gradient(lib):
    def case(L, x):
        h = x.register_hook(lambda g: g * 2)
        y = x * 3
        y.register_hook(lambda g: g + 1)
        return y, h is not None
    check(lib, case, randn(2, 3))


def test_autograd_grad(lib):
    def case(L, x, w):
        out = (L.tanh(x @ w) ** 2).sum()
        gx, gw = L.autograd.grad(out, [x, w])
        assert x.grad is None and w.grad is None
        return gx, gw
    check(lib, case, randn(2, 3), randn(3, 4))


def test_autograd_grad_with_grad_outputs(lib):
    def case(L, x, v):
        y = x.sin()
        (g,) = L.autograd.grad(y, x, grad_outputs=v)
        return g
    check(lib, case, randn(2, 3), randn(2, 3, grad=False))


def test_inplace_on_a_non_leaf(lib):
    def case(L, x):
        y = x * 2
        y.add_(1)
        y.mul_(x)
        y.sub_(0.5).div_(2.0)
        return y
    check(lib, case, randn(2, 3))
    x = mirror(lib, randn(2, 3))
    y = x * 2
    y.add_(1)
    y.sum().backward()
    np.testing.assert_allclose(values(x.grad), 2.0)


@pytest.mark.parametrize("inplace", [lambda p: p.add_(1), lambda p: p.mul_(2), lambda p: p.zero_()],
                         ids=["add_", "mul_", "zero_"])
def test_inplace_on_a_leaf_requiring_grad_is_an_error(lib, inplace):
    p = mirror(lib, randn(3))
    with pytest.raises(RuntimeError, match="leaf"):
        inplace(p)
    with lib.no_grad():                   # ...and allowed outside the graph
        inplace(p)
