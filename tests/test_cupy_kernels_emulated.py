"""The GPU kernels of tinyattn/kernels/cupy_gpu.py, run on the CPU and compared with their NumPy twins.

cupy_gpu.py is imported with ``cupy`` replaced by NumPy plus an ElementwiseKernel that compiles
each kernel's CUDA C body with the host C++ compiler (tests/elementwise_emulator.py). That checks
the kernels' arithmetic, masking, indexing and C syntax on every kernel case, without a GPU. It
does not check NVRTC compilation, CUDA behaviour or speed: tests/test_cupy_backend.py does, on a
GPU.
"""
from __future__ import annotations

import copy
import importlib.util
import sys

import numpy as np
import pytest

import elementwise_emulator
import kernel_cases
import tinyattn  # noqa: F401
from tinyattn import kernels

pytestmark = pytest.mark.skipif(elementwise_emulator.compiler() is None,
                                reason="needs a host C++ compiler (g++/clang++) to run the kernels")

# embedding_backward has no kernel of its own on the GPU: its twin calls cupyx.scatter_add
CASES = [(n, lab, dt, args) for dt in ("float32", "float64")
         for n, lab, args in kernel_cases.cases(dt) if n != "embedding_backward"]


@pytest.fixture(scope="module")
def gpu():
    """cupy_gpu.py loaded against the NumPy-backed stand-in; its registrations go to a copy of the
    registry, so the real one is untouched."""
    kernels._load_gpu_kernels()     # the real providers first: none may load while cupy is the stand-in
    saved_cupy = sys.modules.get("cupy")
    saved_registry = kernels._KERNELS
    sys.modules["cupy"] = elementwise_emulator.numpy_backed_cupy()
    kernels._KERNELS = copy.deepcopy(saved_registry)
    try:
        path = kernels.__file__.replace("__init__.py", "cupy_gpu.py")
        spec = importlib.util.spec_from_file_location("tinyattn.kernels._cupy_gpu_emulated", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        kernels._KERNELS = saved_registry
        if saved_cupy is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved_cupy
    return mod


def _tolerance(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-12)


def test_every_kernel_has_a_gpu_counterpart_or_a_reason(gpu):
    # embedding_backward is a scatter-add: the twin already calls cupyx.scatter_add on the GPU;
    # gelu_forward's and gelu_backward's compiled kernels save NumPy's per-call overhead and the
    # temporaries of its whole-array steps on the CPU: on the GPU the twins' elementwise steps
    # (cupyx erf, exp) already run as device kernels; relu's
    # compiled kernels replace NumPy's slow masked where() on the CPU: CuPy's where is one device
    # kernel already
    have = {n for n in kernels.names() if hasattr(gpu, n)}
    assert set(kernels.names()) - have == {"embedding_backward", "gelu_forward", "gelu_backward",
                                           "relu_forward", "relu_backward"}


@pytest.mark.parametrize("name,label,dtype,args", CASES,
                         ids=[f"{n}-{lab}-{dt}" for n, lab, dt, _ in CASES])
def test_gpu_kernel_matches_its_twin(gpu, name, label, dtype, args):
    twin = kernels.implementation(name, "numpy")
    args_twin = copy.deepcopy(args)
    expected = kernel_cases.host(twin(*args_twin), np.asarray)
    got = kernel_cases.host(getattr(gpu, name)(*copy.deepcopy(args)), np.asarray)
    if not isinstance(expected, list):
        expected, got = [expected], [got]
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape and g.dtype == e.dtype, (k, g.shape, e.shape, g.dtype, e.dtype)
        np.testing.assert_allclose(g, e, err_msg=f"output {k}", **_tolerance(dtype))


def test_gpu_kernels_do_not_modify_their_inputs(gpu):
    for name, _, args in kernel_cases.cases("float64"):
        before = copy.deepcopy(args)
        getattr(gpu, name)(*args) if hasattr(gpu, name) else None
        for a, b in zip(args, before):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=name)


def test_the_emulator_catches_reserved_names_and_bad_c():
    with pytest.raises(ValueError, match="reserve"):
        elementwise_emulator.ElementwiseKernel("T x", "T y", "ptrdiff_t n = 2; y = x;", "bad")
    k = elementwise_emulator.ElementwiseKernel("T x", "T y", "y = x +* 2;", "bad_syntax")
    with pytest.raises(RuntimeError, match="does not compile"):
        k(np.ones(3))
    add = elementwise_emulator.ElementwiseKernel("T x, T y", "T z", "z = x + y", "add")
    np.testing.assert_array_equal(add(np.ones((2, 3)), np.arange(3.0)), np.ones((2, 3)) + np.arange(3))
