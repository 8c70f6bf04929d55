"""Run ``cupy.ElementwiseKernel`` code on the CPU: the kernel's CUDA C body compiled with the host C++
compiler and called once per element, so the GPU kernels in ``tinyattn/kernels/cupy_gpu.py`` can be
checked for their *logic and C syntax* on a machine without a GPU.

The emulation follows CuPy's rules for what the kernels here use: ``T``-style type placeholders
resolved from the array arguments; non-raw arguments (arrays and scalars) broadcast together, the
loop runs over the broadcast shape with ``i`` the flat C-order index; ``raw`` arguments are
indexed by the body itself (``x[k]``, C-order); outputs may be given (views included) or are
allocated. It does not emulate CUDA: no threads, no ``__shared__``, no device-only functions.
Which means a kernel that passes here can still fail to compile under NVRTC or misbehave on a GPU;
tests/test_cupy_backend.py checks that on a GPU.

``numpy_backed_cupy()`` gives a module to stand in for ``cupy`` (NumPy's functions plus this
ElementwiseKernel) under which cupy_gpu.py can be imported and run.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import types

import numpy as np

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
           np.dtype(np.int64): "long long", np.dtype(np.int32): "int", np.dtype(np.bool_): "bool"}
_NAMED = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
          "bool": np.bool_}
_CACHE = os.path.join(tempfile.gettempdir(), "tinyattn_elementwise_emulator")


def compiler():
    """The host C++ compiler, or None."""
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _parse(params):
    out = []
    for part in params.split(","):
        words = part.split()
        raw = words[0] == "raw"
        if raw:
            words = words[1:]
        ctype, name = words
        out.append((ctype, name, raw))
    return out


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", **kwargs):
        self.ins, self.outs = _parse(in_params), _parse(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble
        for _, pname, _ in self.ins + self.outs:
            if pname in ("i", "n") or pname.startswith("_"):
                raise ValueError(f"{name}: parameter name {pname!r} is reserved by CuPy")
        if re.search(r"\b(?:ptrdiff_t|int|long|T|bool|auto)\s+(n|i)\b\s*[=;,]", operation):
            raise ValueError(f"{name}: the body declares n or i, which CuPy reserves")
        self._libs = {}

    # -- type resolution ------------------------------------------------------------------------
    def _resolve(self, args):
        placeholders = {}
        for (ctype, pname, _), a in zip(self.ins + self.outs, args):
            if ctype not in _NAMED and isinstance(a, np.ndarray):
                if placeholders.setdefault(ctype, a.dtype) != a.dtype:
                    raise TypeError(f"{self.name}: {ctype} is both {placeholders[ctype]} and {a.dtype}")
        for (ctype, pname, _), a in zip(self.ins, args):
            if ctype not in _NAMED and ctype not in placeholders and a is not None:
                placeholders[ctype] = np.asarray(a).dtype
        return placeholders

    def _dtype(self, ctype, placeholders):
        return np.dtype(_NAMED[ctype]) if ctype in _NAMED else placeholders[ctype]

    # -- the call ----------------------------------------------------------------------------------
    def __call__(self, *args):
        n_in = len(self.ins)
        if len(args) not in (n_in, n_in + len(self.outs)):
            raise TypeError(f"{self.name}: takes {n_in} inputs (+ {len(self.outs)} outputs), "
                            f"got {len(args)} arguments")
        ph = self._resolve(args)
        shapes = [np.shape(a) for (_, _, raw), a in zip(self.ins, args[:n_in]) if not raw]
        given = list(args[n_in:])
        shapes += [o.shape for o in given]
        shape = np.broadcast_shapes(*shapes)
        for o in given:
            if o.shape != shape:
                raise ValueError(f"{self.name}: output of shape {o.shape}, loop shape {shape}")
        size = int(np.prod(shape))
        bufs, sig = [], []
        for (ctype, pname, raw), a in zip(self.ins, args[:n_in]):
            dt = self._dtype(ctype, ph)
            if raw:
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{self.name}: raw argument {pname} must be an array")
                if a.dtype != dt:
                    raise TypeError(f"{self.name}: raw {pname} is {a.dtype}, declared {dt}")
                bufs.append(np.ascontiguousarray(a))
            else:
                bufs.append(np.ascontiguousarray(np.broadcast_to(np.asarray(a).astype(dt), shape)))
            sig.append(str(dt))
        outs = []
        for k, (ctype, pname, raw) in enumerate(self.outs):
            dt = self._dtype(ctype, ph)
            outs.append(np.empty(shape, dtype=dt))
            sig.append(str(dt))
        lib = self._lib(tuple(sig))
        ptrs = (ctypes.c_void_p * (len(bufs) + len(outs)))(
            *[b.ctypes.data for b in bufs], *[o.ctypes.data for o in outs])
        lib.run(ptrs, ctypes.c_longlong(size))
        results = []
        for k, o in enumerate(outs):
            if k < len(given):
                given[k][...] = o
                results.append(given[k])
            else:
                results.append(o)
        return results[0] if len(results) == 1 else tuple(results)

    # -- compile -----------------------------------------------------------------------------------
    def _source(self, sig):
        params = self.ins + self.outs
        typedefs = {}
        for (ctype, _, _), dt in zip(params, sig):
            if ctype not in _NAMED:
                typedefs[ctype] = _CTYPES[np.dtype(dt)]
        lines = []
        for k, ((ctype, pname, raw), dt) in enumerate(zip(params, sig)):
            c = _CTYPES[np.dtype(dt)]
            if k < len(self.ins):
                if raw:
                    lines.append(f"    Raw<{c}> {pname}{{({c}*)_p[{k}]}};")
                else:
                    lines.append(f"    const {c} {pname} = (({c}*)_p[{k}])[i];")
            else:
                lines.append(f"    {c}& {pname} = (({c}*)_p[{k}])[i];")
        td = "\n".join(f"typedef {c} {name};" for name, c in typedefs.items())
        return f"""#include <cmath>
#include <cstddef>
#include <cstdlib>
using namespace std;
#define __device__
template <typename U> struct Raw {{ U* p; U& operator[](ptrdiff_t k) const {{ return p[k]; }} }};
{td}
{self.preamble}
extern "C" void run(void** _p, long long _size) {{
  for (ptrdiff_t i = 0; i < (ptrdiff_t)_size; ++i) {{
{chr(10).join(lines)}
    {{
{self.operation};
    }}
  }}
}}
"""

    def _lib(self, sig):
        if sig in self._libs:
            return self._libs[sig]
        src = self._source(sig)
        key = hashlib.sha1(src.encode()).hexdigest()[:16]
        os.makedirs(_CACHE, exist_ok=True)
        so = os.path.join(_CACHE, f"{self.name}_{key}.so")
        if not os.path.exists(so):
            cpp = so[:-3] + ".cpp"
            with open(cpp, "w") as f:
                f.write(src)
            tmp = so + f".{os.getpid()}.tmp"
            proc = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-std=c++14",
                                   "-Wall", "-Werror=return-type", cpp, "-o", tmp],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{self.name}: the kernel body does not compile:\n{proc.stderr}")
            os.replace(tmp, so)
        lib = ctypes.CDLL(so)
        lib.run.argtypes = [ctypes.c_void_p, ctypes.c_longlong]
        self._libs[sig] = lib
        return lib


def numpy_backed_cupy():
    """A module to stand in for ``cupy`` while importing cupy_gpu.py: NumPy + the emulator."""
    mod = types.ModuleType("cupy")
    mod.__getattr__ = lambda name: getattr(np, name)
    mod.ElementwiseKernel = ElementwiseKernel
    return mod
