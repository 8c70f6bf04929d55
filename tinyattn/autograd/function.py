"""Function and Context: how one op records itself in the graph.

An op is a subclass of ``Function`` with two static methods side by side::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):            # plain arrays in, plain array out
            y = xp.exp(x)
            ctx.save_for_backward(y)    # keep what backward needs
            return y

        @staticmethod
        def backward(ctx, grad):        # d(loss)/d(output) in, d(loss)/d(each input) out
            (y,) = ctx.saved
            return grad * y

``Exp.apply(t)`` unwraps tensors to arrays, runs ``forward``, and - only if some input requires a
gradient and grad mode is on - remembers the inputs and the context on the output tensor so that
``Tensor.backward`` can later call ``backward``. Static (non-differentiable) arguments such as an
axis or a shape are passed as keywords and arrive in ``forward`` as keywords; store on ``ctx``
whatever backward needs. Backward returns one gradient per positional input (None where there is
none); gradients for broadcast inputs may keep the broadcast shape: the engine sums them back to
the input's shape in one place (``tensor.sum_to_shape``).
"""
from __future__ import annotations

import itertools
import weakref

import numpy as np

from . import anomaly
from .grad_mode import _grad_mode, enable_grad, is_grad_enabled, no_grad  # noqa: F401 - re-exported
from .tensor import Tensor, as_array, get_default_dtype


_CREATION_ORDER = itertools.count()   # numbers the recorded ops in the order they were applied


class Context:
    """What one application of an op remembers between forward and backward."""

    __slots__ = ("fn", "inputs", "edges", "saved", "needs_input_grad", "n_outputs", "out_meta",
                 "released", "retained", "_saved_versions", "seq", "__dict__")

    def __init__(self, fn, inputs):
        self.fn = fn
        self.seq = next(_CREATION_ORDER)   # backward walks the ops newest first (a topological order)
        self.inputs = inputs = tuple(inputs)   # the Tensor inputs (None for numbers / constants)
        # the op and output index that made each input, fixed now: an in-place op recorded later
        # (x.mul_(2), x[i] = v) makes the *tensor* x point at a new node, but this op used the old
        if len(inputs) == 1:          # (the commonest case, without the loop)
            t = inputs[0]
            self.edges, self.needs_input_grad = ((t._ctx, t._idx),), (t.requires_grad,)
        else:
            edges, needs = [], []
            for t in inputs:          # one pass (this runs for every recorded op)
                if t is None:
                    edges.append(None)
                    needs.append(False)
                else:
                    edges.append((t._ctx, t._idx))
                    needs.append(t.requires_grad)
            self.edges, self.needs_input_grad = tuple(edges), tuple(needs)
        self.saved = ()
        self.n_outputs = 1
        self.out_meta = None          # (shape, dtype) per output of a multi-output op
        self.released = False
        self.retained = None          # {output index: Tensor} for tensors that called .retain_grad()
        self._saved_versions = ()

    def save_for_backward(self, *arrays):
        """Keep arrays for backward. If one of them is the array of an input or output tensor,
        in-place changes to that tensor are detected later (version counter) and reported
        instead of silently giving wrong gradients."""
        self.saved = arrays

    def _remember_versions(self, tensors):
        """Note the version of every tensor whose array was saved (called by ``apply``)."""
        saved, versions = self.saved, []
        for t in tensors:
            if t is None:
                continue
            arr = t.array
            for a in saved:
                if a is arr:
                    counter = t._versions
                    versions.append((counter, counter.value, a.shape, t.name))
                    break
        self._saved_versions = versions

    def check_versions(self):
        for counter, seen, shape, name in self._saved_versions:
            if counter.value != seen:
                # Name the tensor the user changed: MatMul saves W.T, a view of shape (in, out),
                # but the parameter modified in place is W, of shape (out, in).
                owner = counter.owner() if counter.owner is not None else None
                name = name or getattr(owner, "name", None)
                full = tuple(owner.shape) if owner is not None else tuple(shape)
                what = f"the tensor {name!r} (shape {full})" if name else f"a tensor of shape {full}"
                view = f" through its view of shape {shape}" if full != tuple(shape) else ""
                raise RuntimeError(
                    f"{self.fn.__name__}.backward: {what}, which this op saved{view} "
                    f"for its gradient, was modified in place after the forward pass (version "
                    f"{seen} -> {counter.value}). Gradients would be wrong. Use an out-of-place "
                    f"op (y = x + 1 instead of x += 1), or .clone() the tensor before changing it; "
                    f"if it is a parameter, call optimizer.step() only after loss.backward().")

    def release(self):
        """Free what backward needed, so memory is returned once the graph has been used."""
        self.saved = self.inputs = self.edges = self._saved_versions = ()
        if self.retained is not None:
            self.retained = None
        self.__dict__.clear()         # whatever else forward stored on ctx (indices, masks, ...)
        self.released = True


def _base(a):
    """The array that owns the memory ``a`` looks at (``a`` itself unless it is a view)."""
    b = getattr(a, "base", None)
    while b is not None and hasattr(b, "base"):
        a, b = b, b.base
    return a


class Function:
    """Base class of every op. Subclasses define static ``forward`` and ``backward``.

    ``keeps_dtype`` (True): an op never turns float32 or integer inputs into float64 by NumPy's
    promotion rules (int / int, float32 + int64, float32 array * float64 0-d array, ...); like
    PyTorch, such results come out in the default dtype. Only ``Cast`` opts out, since changing
    dtype is its job.
    """

    keeps_dtype = True
    # The positions of the inputs this op defines on real numbers only (exp, softmax, a layer's
    # weights): integer and bool arrays there become the default float dtype before forward, as
    # torch.exp(int_tensor) is computed in float32. Computing them in their own dtype would be
    # silently wrong: NumPy takes uint8 to float16 (exp(12) = inf) and -|x| wraps around.
    # () keeps integers integer where PyTorch keeps them (add, max, indices, shapes).
    real_inputs = ()
    op_name = None            # the name in error messages (register_op sets it); else the class's

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **static):
        # 1. Unwrap: forward sees plain arrays; remember which arguments were Tensors.
        # (Every op runs through here, so it is written for speed: exact type checks first, and
        # an untracked call builds nothing it will not use.)
        tensors, arrays, wants_grad = [], [], False
        i = 0
        for a in args:
            if isinstance(a, Tensor):
                tensors.append(a)
                arr = a.array
                if a.requires_grad:
                    wants_grad = True
            else:                                    # an absent optional input stays None
                tensors.append(None)
                if a is None or type(a) is float or type(a) is int:   # nothing to admit
                    arrays.append(a)
                    i += 1
                    continue
                arr = as_array(a)
            if type(arr) is _NDARRAY:
                kind = arr.dtype.kind
            else:
                kind = getattr(getattr(arr, "dtype", None), "kind", "f")
            if kind != "f":                          # the op boundary's one dtype policy
                arr = _admitted(cls, i, arr, kind)
            arrays.append(arr)
            i += 1
        track = wants_grad and _grad_mode.enabled   # build the graph only if a gradient can flow
        ctx = Context(cls, tensors) if track else _untracked_context(cls)
        # 2. Compute.
        out = cls.forward(ctx, *arrays, **static)
        # 3. Wrap the result(s) as Tensors that point back at ctx.
        node = ctx if track else None
        keep = cls.keeps_dtype
        if type(out) is tuple:                       # an op with several outputs (split, LSTM, ...)
            outs = tuple([_wrap(_keep_dtype(o, arrays) if keep else o, node, j)
                          for j, o in enumerate(out)])
            result = outs
        else:
            if keep and (type(out) is not _NDARRAY or out.dtype is not _FLOAT32):
                out = _keep_dtype(out, arrays)       # (a float32 array needs no look)
            result = _wrap(out, node, 0)
            outs = (result,)
        if result is outs or result.array.base is not None:      # views only (the check's own test)
            _share_versions_with_views(outs, tensors)
        if anomaly.enabled:                          # with tinyattn.detect_anomaly(): NaN/Inf check
            anomaly.check_forward(cls, ctx, arrays, outs)
        if track:
            if result is outs:                       # to give unused outputs zero gradients
                ctx.n_outputs = len(outs)
                ctx.out_meta = [(o.shape, o.dtype) for o in outs]
            if ctx.saved:
                ctx._remember_versions(ctx.inputs + outs)
        return result


_NDARRAY = np.ndarray


_wrap = Tensor._output


def _untracked_context(cls):
    """The context of an op applied without recording (no_grad, or no input requires a gradient):
    forward stores on it as usual; nothing reads it afterwards, so it keeps no inputs."""
    ctx = _new_object(Context)
    ctx.fn, ctx.inputs, ctx.edges, ctx.saved, ctx.needs_input_grad = cls, (), (), (), ()
    ctx.n_outputs, ctx.out_meta, ctx.released, ctx.retained, ctx._saved_versions = \
        1, None, False, None, ()
    return ctx


_new_object = object.__new__


_FLOAT64 = np.dtype(np.float64)
_FLOAT32 = np.dtype(np.float32)
_KIND_NAMES = {"c": "complex numbers", "O": "Python objects", "U": "strings", "S": "bytes",
               "V": "raw records", "M": "dates", "m": "time spans"}


def _admitted(cls, i, arr, kind):
    """Input ``i`` of op ``cls`` (not floating point): integers and bools as they are, or as the
    default float dtype where the op needs real numbers; any other dtype is a TypeError."""
    if kind in "biu":
        return arr.astype(get_default_dtype()) if i in cls.real_inputs else arr
    name = cls.op_name or cls.__name__.lower()
    fix = {"c": "There are no complex tensors: pass the real part (x.real), or the real and "
                "imaginary parts as two real tensors",
           "O": "An object array usually holds None or mixed types: replace those and convert "
                "with np.asarray(x, dtype=np.float32)",
           "U": "Convert text to numbers first (e.g. tokens to integer ids with a vocabulary)"}
    raise TypeError(f"{name}: input {i} has dtype {arr.dtype} ({_KIND_NAMES.get(kind, kind)}); "
                    f"ops take floating-point, integer or bool arrays (integers and bools become "
                    f"{get_default_dtype()} where an op needs real numbers). "
                    f"{fix.get(kind, fix['U'] if kind == 'S' else 'Convert it to a number type')}.")


def _keep_dtype(out, arrays):
    """float64 only comes out of an op as PyTorch would produce it (see Function.keeps_dtype):
    some input must be float64, and a 0-d float64 input (a number held in a tensor, such as a
    full sum) does not upcast float32 arrays with axes, just as a Python number does not."""
    if getattr(out, "dtype", None) != _FLOAT64:
        return out
    wide = [a for a in arrays if getattr(a, "dtype", None) == np.float64]
    if not wide:
        return out.astype(get_default_dtype(), copy=False)
    if all(a.ndim == 0 for a in wide):
        narrow = [a.dtype for a in arrays if getattr(a, "ndim", 0) > 0 and a.dtype.kind == "f"]
        if narrow:
            return out.astype(narrow[0], copy=False)
    return out


def _share_versions_with_views(outs, tensors):
    """An output that is a view of an input (reshape, transpose, x[1:]) shares its version
    counter, so an in-place change through either is seen by ops that saved the other."""
    for o in outs:
        direct = o.array.base
        if direct is None:
            continue
        base = None                                  # the memory's owner, found only if needed
        for t in tensors:
            if t is None:
                continue
            arr = t.array
            if direct is not arr:                    # the usual case (a view of the input itself)
                if base is None:                     # needs no walk along .base
                    base = _base(o.array)
                if _base(arr) is not base:
                    continue
            o._versions = t._versions
            if t._versions.owner is None:            # t owns the memory the views look at
                t._versions.owner = weakref.ref(t)
            break
