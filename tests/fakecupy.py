"""A stand-in for CuPy that runs on the CPU, so the suite can prove "no NumPy fallback" without a GPU.

``FakeCupy`` is a module named ``cupy`` whose functions are NumPy's, but whose arrays
(``DeviceArray``) behave like CuPy arrays where it matters for tinyattn:

* they are *not* ``numpy.ndarray`` (``isinstance(x, np.ndarray)`` is False, as for CuPy);
* ``np.asarray(x)`` / ``np.array(x)`` raise ``TypeError`` (CuPy refuses implicit conversion);
* mixing one with a NumPy array in an operator or a ``cupy.*`` call raises ``TypeError``, as CuPy does
  (NumPy *scalars* and Python numbers are fine);
* a ``numpy.*`` array function (``np.concatenate(x)``, ``np.where(x, ...)``) raises: stricter than
  CuPy, which would dispatch some of them, but it is exactly the Chainer habit the code promises
  (ask the array for ``xp``); NumPy *ufuncs* applied to device arrays are dispatched, as CuPy does;
* reductions return 0-d device arrays, not NumPy scalars (CuPy's behaviour).

Every crossing of the "device" boundary is counted in ``ledger``:
  ``d2h``  whole arrays copied to the host (``cupy.asnumpy``, ``.get()``, ``.tolist()``, printing);
  ``h2d``  NumPy arrays copied to the device (``cupy.asarray(numpy_array)``);
  ``sync`` scalars read on the host (``bool(x)``, ``float(x)``, ``int(x)``, ``.item()``).

Use ``install(monkeypatch)`` to make tinyattn's backend believe CuPy is present and active.
It is a test tool, not a simulator: no streams, no kernels, no memory pools.
"""
from __future__ import annotations

import collections
import operator
import sys
import types

import numpy as np

ledger: collections.Counter = collections.Counter()
# where each event happened (a short stack summary), for error messages
where: dict[str, list[str]] = collections.defaultdict(list)


def _note(kind: str) -> None:
    ledger[kind] += 1
    frames, f = [], sys._getframe(1)
    while f is not None and len(frames) < 4:            # cheap: no source lines are read
        if "fakecupy" not in f.f_code.co_filename:
            frames.append(f"{_short(f.f_code.co_filename)}:{f.f_lineno}")
        f = f.f_back
    # innermost first: "tinyattn/ops/embedding.py:53 <- ... <- caller"
    where[kind].append(" <- ".join(frames))


def _short(filename):
    return "tinyattn/" + filename.rsplit("/tinyattn/", 1)[1] if "/tinyattn/" in filename \
        else filename.rsplit("/", 1)[-1]


class ForeignArrayError(TypeError):
    """A NumPy array met a device array, or NumPy was asked to compute on a device array."""


def _unwrap(x, *, allow_numpy_arrays=False, fn=""):
    """Device arrays -> their NumPy payload, recursively through tuples/lists/dicts."""
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, np.ndarray):
        if not allow_numpy_arrays:
            raise ForeignArrayError(
                f"cupy.{fn}: got a numpy.ndarray {x.shape} {x.dtype}; CuPy functions do not take "
                f"host arrays (move it with cupy.asarray first).")
        return x
    if isinstance(x, tuple):
        return tuple(_unwrap(v, allow_numpy_arrays=allow_numpy_arrays, fn=fn) for v in x)
    if isinstance(x, list):
        return [_unwrap(v, allow_numpy_arrays=allow_numpy_arrays, fn=fn) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v, allow_numpy_arrays=allow_numpy_arrays, fn=fn) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return DeviceArray(x)
    if isinstance(x, np.generic):                    # CuPy reductions give 0-d arrays
        return DeviceArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list) and x and all(isinstance(v, np.ndarray) for v in x):
        return [_wrap(v) for v in x]
    return x


def _operand(other, op):
    if isinstance(other, DeviceArray):
        return other._a
    if isinstance(other, np.ndarray):
        raise ForeignArrayError(
            f"device array {op} numpy.ndarray {other.shape} {other.dtype}: CuPy does not mix device "
            f"and host arrays; build the other operand with xp (the array's module).")
    return other


def _binary(name):
    op = getattr(operator, name)

    def fwd(self, other):
        return _wrap(op(self._a, _operand(other, name)))

    def rev(self, other):
        return _wrap(op(_operand(other, name), self._a))

    def inplace(self, other):
        getattr(self._a, f"__i{name.strip('_')}__")(_operand(other, name))
        return self

    return fwd, rev, inplace


class DeviceArray:
    """An array that lives "on the device": NumPy inside, CuPy's manners outside."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a):
        self._a = a

    # -- refusing NumPy --------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise ForeignArrayError("Implicit conversion to a NumPy array is not allowed (this is a "
                                "device array); use backend.to_numpy / cupy.asnumpy explicitly.")

    def __array_function__(self, func, types_, args, kwargs):
        raise ForeignArrayError(f"numpy.{func.__name__} called on a device array: op code must use "
                                f"xp = get_array_module(x), not numpy "
                                f"(argument types {[type(a).__name__ for a in args]}).")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(_operand(v, ufunc.__name__) for v in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_operand(v, ufunc.__name__) for v in kwargs["out"])
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    # -- attributes and methods ------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: DeviceArray(self._a.T))
    real = property(lambda self: DeviceArray(self._a.real))
    imag = property(lambda self: DeviceArray(self._a.imag))
    base = property(lambda self: None if self._a.base is None else DeviceArray(self._a.base))

    def __getattr__(self, name):
        if name.startswith("__"):       # no __array_interface__ / __array_struct__: NumPy must not
            raise AttributeError(name)  # find a way to read the data behind the array's back
        if name in ("tolist",):
            _note("d2h")
            return self._a.tolist
        if name == "item":
            _note("sync")
            return self._a.item
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, fn=name), **_unwrap(kwargs, fn=name)))

        return method

    def get(self):
        """cupy.ndarray.get(): the explicit copy to the host."""
        _note("d2h")
        return self._a.copy()

    # -- host reads ------------------------------------------------------------------------------
    def __bool__(self):
        _note("sync")
        return bool(self._a)

    def __float__(self):
        _note("sync")
        return float(self._a)

    def __int__(self):
        _note("sync")
        return int(self._a)

    def __index__(self):
        _note("sync")
        return operator.index(self._a)

    def __complex__(self):
        _note("sync")
        return complex(self._a)

    def __repr__(self):
        _note("d2h")
        return "device_" + repr(self._a)

    def __str__(self):
        _note("d2h")
        return str(self._a)

    def __format__(self, spec):
        _note("d2h")
        return format(self._a, spec)

    # -- containers ------------------------------------------------------------------------------
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (DeviceArray(np.asarray(v)) for v in self._a)

    def __getitem__(self, idx):
        return _wrap(self._a[_index(idx)])

    def __setitem__(self, idx, value):
        self._a[_index(idx)] = _operand(value, "setitem")

    def __copy__(self):
        return DeviceArray(self._a.copy())

    def __deepcopy__(self, memo):
        return DeviceArray(self._a.copy())

    def __reduce__(self):
        return (DeviceArray, (self._a,))

    # -- unary operators -------------------------------------------------------------------------
    def __neg__(self):
        return DeviceArray(-self._a)

    def __pos__(self):
        return DeviceArray(+self._a)

    def __abs__(self):
        return DeviceArray(abs(self._a))

    def __invert__(self):
        return DeviceArray(~self._a)

    __hash__ = None


def _index(idx):
    if isinstance(idx, DeviceArray):
        return idx._a
    if isinstance(idx, np.ndarray):
        raise ForeignArrayError(f"indexing a device array with a numpy.ndarray {idx.shape}: build the "
                                f"index with xp.")
    if isinstance(idx, tuple):
        return tuple(_index(i) for i in idx)
    if isinstance(idx, list):
        return [_index(i) for i in idx]
    return idx


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift"):
    _f, _r, _i = _binary(f"__{_name}__")
    setattr(DeviceArray, f"__{_name}__", _f)
    setattr(DeviceArray, f"__r{_name}__", _r)
    setattr(DeviceArray, f"__i{_name}__", _i)
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(DeviceArray, f"__{_name}__", _binary(f"__{_name}__")[0])


# ------------------------------------------------------------------------------------ the module
class FakeGenerator:
    """cupy.random.Generator's methods that exist in CuPy (random, uniform, integers,
    standard_normal): anything else is an AttributeError here too."""

    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return DeviceArray(np.asarray(self._g.random(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return DeviceArray(np.asarray(self._g.uniform(low, high, size)).astype(dtype))

    def standard_normal(self, size=None, dtype=np.float64):
        return DeviceArray(np.asarray(self._g.standard_normal(size, dtype=dtype)))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return DeviceArray(np.asarray(self._g.integers(low, high, size, dtype=dtype,
                                                       endpoint=endpoint)))


_HOST_IN = {"asarray", "array", "ascontiguousarray", "asanyarray"}   # may take host data (h2d)
# NumPy names CuPy does not have (checked against CuPy 14): xp.<one of these> fails on a GPU
NOT_IN_CUPY = {"errstate", "seterr", "geterr", "seterrcall", "vectorize", "frompyfunc",
               "printoptions", "set_printoptions", "ndenumerate", "nditer", "array2string",
               "array_repr", "array_str", "save", "savez", "load", "loadtxt", "genfromtxt",
               "memmap", "broadcast_shapes", "testing", "ma", "char", "rec", "polynomial"}


class FakeCupy(types.ModuleType):
    """``import cupy`` for the tests: NumPy's functions behind CuPy's array rules."""

    ndarray = DeviceArray

    def __init__(self):
        super().__init__("cupy")
        self.__file__ = "<tests/fakecupy.py>"
        self.random = types.SimpleNamespace(default_rng=FakeGenerator)
        self.__version__ = "0+fakecupy"
        runtime = types.SimpleNamespace(
            getDeviceCount=lambda: 1,
            getDeviceProperties=lambda i: {"name": b"fakecupy (NumPy on the CPU)",
                                           "totalGlobalMem": 0})
        self.cuda = types.SimpleNamespace(
            runtime=runtime,
            Device=lambda *a: types.SimpleNamespace(id=0, synchronize=lambda: None),
            get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None))

    def asnumpy(self, a, *args, **kwargs):
        _note("d2h")
        return a._a.copy() if isinstance(a, DeviceArray) else np.asarray(a)

    def get_array_module(self, *xs):
        return self if any(isinstance(x, DeviceArray) for x in xs) else np

    def __getattr__(self, name):
        if name in NOT_IN_CUPY:
            raise AttributeError(f"module 'cupy' has no attribute {name!r} (NumPy has it; CuPy "
                                 f"does not: use numpy's for metadata/warnings, or another way)")
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr                              # dtypes (cupy.float32), constants (inf, pi)
        host_ok = name in _HOST_IN

        def fn(*args, **kwargs):
            if host_ok and args and (isinstance(args[0], np.ndarray) or not _has_device(args[0])):
                if isinstance(args[0], np.ndarray) or _has_array(args[0]):
                    _note("h2d")
            out = attr(*_unwrap(args, allow_numpy_arrays=host_ok, fn=name),
                       **_unwrap(kwargs, fn=name))
            return _wrap(out) if not (host_ok and isinstance(out, np.ndarray)) else DeviceArray(out)

        fn.__name__ = name
        return fn


def _has_device(x):
    if isinstance(x, DeviceArray):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_device(v) for v in x)
    return False


def _has_array(x):
    if isinstance(x, np.ndarray):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_array(v) for v in x)
    return False


def _scatter_add(a, slices, value):
    np.add.at(a._a, _index(slices), _operand(value, "scatter_add"))


def _erf(x):
    import math  # noqa: PLC0415

    a = _operand(x, "erf")
    return DeviceArray(np.vectorize(math.erf, otypes=[np.float64])(a).astype(a.dtype))


def install(monkeypatch):
    """Make tinyattn see ``FakeCupy`` as an installed, active CuPy. Returns the module.

    Real CuPy kernels registered by ``kernels/cupy_gpu.py`` (only where CuPy is installed) are
    hidden, so the xp twins run on the fake arrays."""
    from tinyattn import backend, kernels  # noqa: PLC0415
    from tinyattn import random as ta_random  # noqa: PLC0415

    kernels._load_gpu_kernels()     # now, so real CuPy kernels cannot appear later and be hidden too late
    fake = FakeCupy()
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    scipy = types.ModuleType("cupyx.scipy")
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _erf
    cupyx.scipy, scipy.special = scipy, special
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", special)
    monkeypatch.setattr(backend, "_cupy", fake)
    monkeypatch.setattr(backend, "_ACTIVE", "cupy")
    monkeypatch.setattr(ta_random, "_generators", {})
    for impls in kernels._KERNELS.values():
        if "cupy" in impls:
            monkeypatch.delitem(impls, "cupy")
    ledger.clear()
    where.clear()
    return fake
