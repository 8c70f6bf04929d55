"""Where things live: Tensor's methods in autograd/tensor.py, ops/__init__ a list of functions."""
import inspect
import types

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import backend
from tinyattn.autograd import Function
from tinyattn.autograd.tensor import Tensor, unwrap


def _defined_here(obj):
    fn = obj.fget if isinstance(obj, property) else obj
    return fn.__module__ == "tinyattn.autograd.tensor" and fn.__qualname__.startswith("Tensor.")


def test_every_tensor_method_and_operator_is_written_in_tensor_py():
    own = {name: obj for name, obj in vars(Tensor).items()
           if inspect.isfunction(obj) or isinstance(obj, property)}
    assert {"__add__", "__getitem__", "__eq__", "exp", "sum", "reshape", "T", "astype"} <= set(own)
    elsewhere = sorted(name for name, obj in own.items() if not _defined_here(obj))
    assert elsewhere == [], f"Tensor attributes defined outside tensor.py: {elsewhere}"


def test_importing_the_ops_again_sets_nothing_on_tensor():
    import importlib

    import tinyattn.ops

    before = dict(vars(Tensor))
    importlib.reload(tinyattn.ops)
    assert dict(vars(Tensor)) == before


def test_ops_all_lists_only_functions_no_classes_no_modules():
    names = ta.ops.__all__
    assert len(names) == len(set(names))
    for name in names:
        obj = getattr(ta.ops, name)
        assert not isinstance(obj, (type, types.ModuleType)), name
        assert inspect.isfunction(obj), f"{name} is {type(obj).__name__}, not a function"
        assert obj.__module__.startswith("tinyattn.ops."), f"{name} comes from {obj.__module__}"
    assert not any(isinstance(getattr(ta.ops, n), type) and issubclass(getattr(ta.ops, n), Function)
                   for n in names)
    assert "numbers" not in names


def test_the_top_level_functions_are_the_ops_functions():
    for name in ("add", "exp", "sum", "reshape", "transpose", "squeeze", "matmul", "softmax"):
        assert getattr(ta, name) is getattr(ta.ops, name)


def test_a_method_and_its_function_give_the_same_tensor():
    x = ta.tensor(np.arange(6.0).reshape(2, 3))
    assert np.array_equal(x.transpose(0, 1).numpy(), ta.transpose(x, 0, 1).numpy())
    assert np.array_equal(x.sum(axis=1, keepdims=True).numpy(), ta.sum(x, 1, True).numpy())
    assert np.array_equal((x > 2).numpy(), ta.ops.gt(x, 2).numpy())


def test_unwrap_looks_through_tensors_and_leaves_the_rest():
    arr = np.arange(3)
    assert unwrap(ta.tensor(arr)) is not None and np.array_equal(unwrap(ta.tensor(arr)), arr)
    idx = unwrap((ta.tensor([0, 1]), slice(None), None))
    assert isinstance(idx[0], np.ndarray) and idx[1] == slice(None) and idx[2] is None
    for plain in (arr, 2.5, None, [1, 2], Ellipsis):
        assert unwrap(plain) is plain


@pytest.mark.parametrize("name, expected", [("cpu", "numpy"), ("numpy", "numpy"), ("cuda", "cupy"),
                                            ("cupy", "cupy"), ("gpu", "cupy"), ("float32", None),
                                            (np.float64, None)])
def test_one_table_maps_device_names_to_backends(name, expected):
    assert backend.device_backend(name) == expected


def test_tensor_to_a_device_or_a_dtype():
    x = ta.tensor([1.0, 2.0])
    assert x.to("cpu") is x and x.to("numpy") is x
    assert x.to("float64").dtype == np.float64
    with pytest.raises(ValueError, match="give a device"):
        x.to("tpu")
