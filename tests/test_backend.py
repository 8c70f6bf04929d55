"""Backends: NumPy always; CuPy only where it is installed and a GPU is visible."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import backend


@pytest.fixture(autouse=True)
def _restore_backend():
    yield
    backend.set_backend("numpy")


def test_numpy_is_the_default_backend():
    assert ta.get_backend() == "numpy"
    assert backend.active_module() is np
    assert isinstance(ta.zeros(2).array, np.ndarray)


def test_get_array_module_answers_numpy_for_numpy_arrays_and_tensors():
    assert ta.get_array_module(np.ones(2)) is np
    assert ta.get_array_module(ta.ones(2), np.ones(1), 3.0) is np
    assert ta.get_array_module() is np


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        ta.set_backend("jax")
    assert ta.get_backend() == "numpy"


@pytest.mark.skipif(backend.cupy_available(), reason="CuPy and a GPU are present here")
def test_cupy_without_cupy_or_gpu_is_one_clear_error():
    with pytest.raises(backend.BackendError, match=r"set_backend\('cupy'\)") as err:
        ta.set_backend("cupy")
    assert "numpy" in str(err.value)          # says what to do instead
    assert ta.get_backend() == "numpy"         # and nothing changed
    with pytest.raises(backend.BackendError):
        ta.ones(2).to_backend("cupy")
    with pytest.raises(backend.BackendError):
        ta.ones(2).cuda()


def test_moving_to_numpy_is_a_copy_that_is_a_new_leaf():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).to_backend("numpy")
    assert y.is_leaf and y.requires_grad and y.device == "cpu"
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    assert x.cpu() is x


def test_to_numpy_and_scatter_add_helpers():
    a = np.arange(3.0)
    assert backend.to_numpy(a) is a
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])
    target = np.zeros(3)
    backend.scatter_add(target, np.array([0, 0, 2]), np.array([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(target, [3.0, 0.0, 5.0])


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a GPU")
def test_cupy_backend_end_to_end():
    import cupy  # noqa: PLC0415

    ta.set_backend("cupy")
    x = ta.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True, dtype="float64")
    assert isinstance(x.array, cupy.ndarray) and x.device == "cuda"
    y = (ta.softmax(x @ x.T, axis=-1) * ta.gelu(x).sum(axis=0)).sum() + x[ta.tensor([0, 0])].sum()
    y.backward()
    assert isinstance(x.grad, cupy.ndarray)
    g_gpu = cupy.asnumpy(x.grad)
    ta.set_backend("numpy")
    xc = ta.tensor(x.numpy(), requires_grad=True, dtype="float64")
    yc = (ta.softmax(xc @ xc.T, axis=-1) * ta.gelu(xc).sum(axis=0)).sum() + xc[ta.tensor([0, 0])].sum()
    yc.backward()
    np.testing.assert_allclose(g_gpu, xc.grad, rtol=1e-10)
    np.testing.assert_allclose(y.item(), yc.item(), rtol=1e-12)
    assert xc.cuda().device == "cuda" and xc.cuda().cpu().device == "cpu"
