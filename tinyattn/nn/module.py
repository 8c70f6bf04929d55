"""Module and Parameter: containers of trainable tensors, named as PyTorch names them.

A Module registers every Parameter, buffer and sub-module assigned to it as an attribute, in order,
so ``state_dict()`` yields PyTorch's dotted names (``layers.0.self_attn.in_proj_weight``) and a
PyTorch state dict, converted to NumPy arrays, loads with ``load_state_dict``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .. import backend
from ..autograd.function import no_grad
from ..autograd.tensor import Tensor, as_array, get_default_dtype, resolve_dtype
from ..optim.grads import zero_grads


class Parameter(Tensor):
    """A tensor that a Module trains: a leaf with ``requires_grad=True``.

    ``Parameter(t)`` shares ``t``'s array (as in PyTorch); a list or number becomes the default
    dtype (float32)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.array
        arr = as_array(data)
        if not backend.is_array(arr):
            arr = backend.active_module().asarray(arr, dtype=get_default_dtype())
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer. Subclasses set attributes in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 "assigning attributes in __init__.")
        if name in self._buffers and (value is None or (isinstance(value, Tensor)
                                                         and not isinstance(value, Parameter))):
            self._buffers[name] = (value, self._buffers[name][1])    # still a buffer, as PyTorch
            object.__setattr__(self, name, value)
            return
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to "
                            f"parameter '{name}'; wrap it as nn.Parameter(...), or change the "
                            f"values in place with `with tinyattn.no_grad(): "
                            f"self.{name}.copy_(...)`.")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name, param):
        """Register ``param`` (or None, for an absent optional parameter such as a bias)."""
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not trained (e.g. positional encodings, a causal mask).
        ``persistent=False`` keeps it out of ``state_dict`` (derived data, rebuilt in __init__)."""
        owner = type(self).__name__
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{owner}.register_buffer: the name must be a non-empty string "
                           f"without '.', got {name!r}.")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{owner}.register_buffer: cannot register a "
                            f"{type(tensor).__name__} as buffer '{name}' (a Tensor or None is "
                            f"required); wrap it: tinyattn.tensor(value).")
        if isinstance(tensor, Parameter) or name in self._parameters or name in self._modules:
            raise KeyError(f"{owner}.register_buffer: '{name}' is already a parameter or a "
                           f"sub-module (or the tensor is a Parameter); a buffer is state that "
                           f"is not trained - pick another name or use register_parameter.")
        self._buffers[name] = (tensor, persistent)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        self._modules[name] = module
        object.__setattr__(self, name, module)

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        object.__delattr__(self, name)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every one below it, depth first; a module
        reachable under two names is listed once (the first), unless ``remove_duplicate`` is
        False (as PyTorch)."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                           remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def children(self):
        """The direct sub-modules, each once."""
        for _, m in self.named_children():
            yield m

    def named_children(self):
        """(name, module) for the direct sub-modules, each module once (as PyTorch)."""
        seen = set()
        for n, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield n, m

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix=""):
        for mprefix, m in self.named_modules(prefix=prefix):
            for name, (b, _) in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        """Training mode (dropout on) for this module and all below; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"{type(self).__name__}.train: mode must be True or False, got "
                             f"{mode!r}.")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients (PyTorch 2's default: set them to None; ``set_to_none=False``
        keeps zero-filled ones)."""
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module and then on this one (e.g. custom init)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def num_parameters(self, trainable_only=False):
        """How many numbers the model learns (each parameter counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    # ------------------------------------------------------------------ dtype
    def _cast(self, dtype):
        dtype = resolve_dtype(dtype, f"{type(self).__name__}.to")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.array.dtype.kind == "f":
                    p.array = p.array.astype(dtype)
                    if p.grad is not None:
                        p.grad.array = p.grad.array.astype(dtype)
            for name, (b, persistent) in list(m._buffers.items()):
                if b is not None and b.array.dtype.kind == "f":
                    b.array = b.array.astype(dtype)
        return self

    def double(self):
        """Convert floating parameters and buffers to float64, in place (as PyTorch)."""
        return self._cast(np.float64)

    def float(self):
        return self._cast(np.float32)

    def to(self, dtype=None, backend_name=None):
        """``to('float64')``, ``to(np.float32)``, or a device: ``to('cupy')`` / ``to('cuda')`` (GPU),
        ``to('numpy')`` / ``to('cpu')``. In place, returning the module, as in PyTorch."""
        if backend.device_backend(dtype) is not None:
            dtype, backend_name = None, backend.device_backend(dtype)
        if dtype is not None:
            self._cast(dtype)
        if backend_name is not None:
            for m in self.modules():
                for p in m._parameters.values():
                    if p is not None:
                        p.array = backend.to_backend(p.array, backend_name)
                        p.grad = None
                for b, _ in m._buffers.values():
                    if b is not None:
                        b.array = backend.to_backend(b.array, backend_name)
        return self

    # ------------------------------------------------------------------ state dicts
    def state_dict(self):
        """name -> NumPy array (a copy), parameters and persistent buffers, in PyTorch's order."""
        out = OrderedDict()
        self._collect_state(out, "")
        return out

    def _collect_state(self, out, prefix):
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = backend.to_numpy(p.array).copy()
        for name, (b, persistent) in self._buffers.items():
            if b is not None and persistent:
                out[prefix + name] = backend.to_numpy(b.array).copy()
        for name, m in self._modules.items():
            if m is not None:
                m._collect_state(out, prefix + name + ".")

    def _state_targets(self):
        targets = OrderedDict()
        # every name a shared sub-module has, as state_dict writes them all
        for mprefix, m in self.named_modules(remove_duplicate=False):
            pre = mprefix + "." if mprefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    targets[pre + name] = p
            for name, (b, persistent) in m._buffers.items():
                if b is not None and persistent:
                    targets[pre + name] = b
        return targets

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, CuPy, tinyattn tensors, or anything with ``.numpy()``, such as
        torch tensors) into this module's parameters and buffers, in the module's dtype.

        With ``strict`` (the default) every key must match and every shape agree; otherwise one
        error lists all missing, unexpected and mis-shaped keys. Returns (missing, unexpected).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of name -> array (another "
                            f"model's .state_dict() or tinyattn.load(path)), got "
                            f"{type(state_dict).__name__}.")
        odd = [k for k in state_dict if not isinstance(k, str)]
        if odd:
            shown = ", ".join(f"{k!r} ({type(k).__name__})" for k in odd[:3])
            raise TypeError(f"load_state_dict for {type(self).__name__}: keys must be strings "
                            f"(parameter names such as 'weight' or 'layers.0.bias'), got {shown}"
                            f"{' ...' if len(odd) > 3 else ''}. Use model.state_dict() or "
                            f"tinyattn.load(path) to get a state dict.")
        if set(state_dict) == {"state", "param_groups"}:
            raise ValueError(f"load_state_dict for {type(self).__name__}: this is an optimiser's "
                             f"state dict (keys 'state' and 'param_groups'); pass it to "
                             f"optimizer.load_state_dict, and the model's own state dict here.")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        arrays, misshaped, bad_dtypes = {}, [], []
        for k, v in state_dict.items():
            if k not in targets:
                continue
            arr = _to_numpy_array(v)
            if tuple(arr.shape) != tuple(targets[k].shape):
                misshaped.append(f"{k}: checkpoint {tuple(arr.shape)} vs model {tuple(targets[k].shape)}")
            if arr.dtype.kind not in "biuf" and not (arr.dtype.kind == "c" == targets[k].dtype.kind):
                bad_dtypes.append(f"{k}: checkpoint {arr.dtype} cannot become the model's "
                                  f"{targets[k].dtype}")
            arrays[k] = arr
        if misshaped or bad_dtypes or (strict and (missing or unexpected)):
            lines = [f"load_state_dict for {type(self).__name__}:"]
            if missing:
                lines.append("  missing keys: " + ", ".join(missing))
            if unexpected:
                lines.append("  unexpected keys: " + ", ".join(unexpected))
            if misshaped:
                lines.append("  shape mismatches: " + "; ".join(misshaped))
            if bad_dtypes:
                lines.append("  dtype mismatches (numbers only; complex only into complex): "
                             + "; ".join(bad_dtypes))
            lines.append("  (strict=False ignores missing/unexpected keys, never shape mismatches)")
            raise RuntimeError("\n".join(lines))
        with no_grad():
            for k, arr in arrays.items():
                t = targets[k]
                t.array = backend.to_backend(arr.astype(t.array.dtype, copy=True),
                                            backend.device_backend(t.device))
                t._version += 1
        return missing, unexpected

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def check_sizes(owner, minimum=0, **sizes):
    """A layer's sizes must be whole numbers >= ``minimum``: ``Linear(2.5, 3)`` would otherwise be
    truncated silently and ``Linear(-1, 3)`` fail deep in NumPy (PyTorch refuses both too)."""
    for name, n in sizes.items():
        if isinstance(n, bool) or not hasattr(n, "__index__"):
            raise TypeError(f"{owner}: {name} must be a whole number, got {n!r} "
                            f"({type(n).__name__}); pass an int, e.g. {name}=int({n!r}).")
        if n < minimum:
            raise ValueError(f"{owner}: {name} must be >= {minimum}, got {n}.")


def empty_parameter(shape, dtype=None, device=None):
    """A Parameter of ``shape`` (zeros until a layer's ``reset_parameters`` fills it) in ``dtype``
    (default: the default dtype, float32), on ``device`` ('cpu' / 'cuda'; default: the active
    backend). Layers take PyTorch's ``device=`` and ``dtype=`` keywords and pass them here."""
    dtype = get_default_dtype() if dtype is None else resolve_dtype(dtype, "dtype argument")
    if device is not None and backend.device_backend(device) is None:
        raise ValueError(f"device must be 'cpu' or 'cuda' (or None for the active backend), got "
                         f"{device!r}.")
    arr = backend.active_module().zeros(tuple(shape), dtype=dtype)
    if device is not None:
        arr = backend.to_backend(arr, backend.device_backend(device))
    return Parameter(arr)


def _to_numpy_array(v):
    if isinstance(v, Tensor):
        return backend.to_numpy(v.array)
    if backend.is_array(v):
        return backend.to_numpy(v)
    if hasattr(v, "detach") and hasattr(v, "numpy"):      # a torch tensor
        return v.detach().cpu().numpy()
    return np.asarray(v)
