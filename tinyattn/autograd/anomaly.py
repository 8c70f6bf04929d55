"""detect_anomaly: find the first op whose forward or backward made a NaN or an infinity.

A NaN in a loss is a symptom; the cause is usually one op many steps earlier (a log of 0, an exp
that overflowed, a 0/0, a sqrt of a negative number). Inside ``with detect_anomaly():`` every op
checks what it produced, and the first one that turns finite numbers into NaN/Inf stops the
program with an ``AnomalyError`` that names it::

    with tinyattn.autograd.detect_anomaly():
        loss = model(x).log().sum()
    AnomalyError: detect_anomaly: Log.forward produced NaN/Inf (2 of 6 values: 1 NaN, 1 -inf)
    from finite input of shape (2, 3) float64 (called at train.py:12: loss = model(x).log().sum())
    ...

Run once over the attention, nn, transformer and functional test files with the flag forced on,
it reported only the deliberate NaNs (a mean over zero targets, as PyTorch returns): masks of
-inf, fully masked rows and padding are not false alarms.

For a backward failure the message also says where the op was called in the forward pass, since
that is the line to look at. Checking costs a pass over every array, so it is off by default; the
engine asks a single module-level flag (``anomaly.enabled``) and does nothing more when it is off.

Rules, so that deliberate infinities (a float mask of -inf added to scores) are not reported:
an op is blamed when its output has NaN/Inf although all its inputs were finite; and NaN arriving
from outside any op (in the data, or in a tensor made before the block) is reported at the first
op that receives it.
"""
from __future__ import annotations

import contextlib
import linecache
import os
import sys

import numpy as np

from .. import backend

enabled = False     # read by Function.apply and Tensor.backward; set by detect_anomaly()

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf under ``detect_anomaly()``."""


@contextlib.contextmanager
def detect_anomaly():
    """Within this block (or function, used as a decorator) every op checks its outputs and
    every backward its gradients, and the first to produce NaN/Inf raises ``AnomalyError``."""
    global enabled
    prev = enabled
    enabled = True
    try:
        yield
    finally:
        enabled = prev


def set_detect_anomaly(mode: bool) -> None:
    """Switch anomaly detection on or off for the rest of the program (see detect_anomaly)."""
    global enabled
    enabled = bool(mode)


def is_anomaly_enabled() -> bool:
    return enabled


# ----------------------------------------------------------------------------- the checks
def _bad_count(a):
    """(number of non-finite values, short breakdown) of a float array; (0, '') otherwise."""
    if isinstance(a, (bool, int)):
        return 0, ""
    if isinstance(a, float):
        return (0, "") if np.isfinite(a) else (1, str(a))
    kind = getattr(getattr(a, "dtype", None), "kind", None)
    if kind not in ("f", "c"):
        return 0, ""
    finite = backend.get_array_module(a).isfinite(a)
    if bool(finite.all()):
        return 0, ""
    a = backend.to_numpy(a)
    nan = int(np.isnan(a).sum())
    pos = int(np.isposinf(a).sum()) if kind == "f" else 0
    neg = int(np.isneginf(a).sum()) if kind == "f" else 0
    parts = [f"{n} {w}" for n, w in ((nan, "NaN"), (pos, "+inf"), (neg, "-inf")) if n]
    total = int(a.size - np.isfinite(a).sum())
    return total, ", ".join(parts)


def _describe(a):
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return f"{tuple(a.shape)} {a.dtype}"
    return f"scalar {a!r}"


def _describe_all(arrays):
    if not arrays:
        return "no inputs"
    shapes = ", ".join(_describe(a) for a in arrays)
    return f"inputs of shape {shapes}" if len(arrays) > 1 else f"input of shape {shapes}"


def call_site():
    """(file, line) of the innermost frame outside the tinyattn package: the line of the
    learner's code that called the op. Walking frames is cheap; the text is looked up only
    when an error is raised (_format_site)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def _format_site(site):
    if site is None:
        return None
    filename, lineno = site
    line = linecache.getline(filename, lineno).strip()
    if len(line) > 80:
        line = line[:77] + "..."
    return f"{os.path.basename(filename)}:{lineno}" + (f": {line}" if line else "")


def check_forward(fn, ctx, arrays, outs):
    """After ``fn.forward``: raise if an output holds NaN/Inf (see the module's rules).
    Also remembers on ``ctx`` where the op was called, for a later backward report."""
    ctx.anomaly_site = call_site()
    for i, o in enumerate(outs):
        bad, detail = _bad_count(o.array)
        if not bad:
            continue
        site = _format_site(ctx.anomaly_site)
        where = f" (called at {site})" if site else ""
        in_bad = [(j, _bad_count(a)) for j, a in enumerate(arrays)]
        in_bad = [(j, d) for j, (n, d) in in_bad if n]
        name = f" in output {i}" if len(outs) > 1 else ""
        if not in_bad:
            raise AnomalyError(
                f"detect_anomaly: {fn.__name__}.forward produced NaN/Inf{name} "
                f"({bad} of {o.array.size} values: {detail}) from finite {_describe_all(arrays)}"
                f"{where}. Typical causes: log or division of 0, sqrt of a negative number, exp "
                f"of a large number; clamp the input (x.clip(1e-12, None)) or use the stable op "
                f"(log_softmax, cross_entropy, softplus).")
        if "NaN" in detail and not any("NaN" in d for _, d in in_bad):
            raise AnomalyError(
                f"detect_anomaly: {fn.__name__}.forward turned infinite inputs into NaN{name} "
                f"({bad} of {o.array.size} values: {detail}); {_describe_all(arrays)}, "
                f"input {in_bad[0][0]} holds {in_bad[0][1]}{where}. inf - inf, 0 * inf and "
                f"inf / inf are NaN: keep infinities out (use a large finite value or a bool mask).")
        nan_in = [(j, d) for j, d in in_bad if "NaN" in d]
        if "NaN" in detail and nan_in:
            # An op inside the block would already have been blamed: this NaN came from outside.
            j, d = nan_in[0]
            raise AnomalyError(
                f"detect_anomaly: {fn.__name__}.forward received NaN in input {j} "
                f"({_describe(arrays[j])}: {d}) that no op made inside detect_anomaly(): it "
                f"came from your data or from a tensor computed before the block{where}. "
                f"Check the inputs with np.isnan(t.numpy()).any().")


def check_backward(ctx, out_grads, in_grads):
    """After ``ctx.fn.backward``: raise if a gradient it returned holds NaN/Inf although the
    gradients it received were finite."""
    name = ctx.fn.__name__
    for i, g in enumerate(in_grads):
        if g is None:
            continue
        bad, detail = _bad_count(g)
        if not bad:
            continue
        site = _format_site(getattr(ctx, "anomaly_site", None))
        where = f" The op was called at {site}." if site else ""
        got = [(k, _bad_count(og)) for k, og in enumerate(out_grads)]
        got = [(k, d) for k, (n, d) in got if n]
        inputs = [t.array if t is not None else None for t in ctx.inputs]
        shapes = _describe_all([a for a in inputs if a is not None])
        if got:
            raise AnomalyError(
                f"detect_anomaly: {name}.backward received a gradient holding {got[0][1]} "
                f"(output {got[0][0]}) that no op made inside detect_anomaly(): it was passed "
                f"to backward() or came from a backward run outside the block.{where}")
        raise AnomalyError(
            f"detect_anomaly: {name}.backward produced NaN/Inf in the gradient of input {i} "
            f"({bad} of {getattr(g, 'size', 1)} values: {detail}) from finite output gradients; "
            f"the op had {shapes}.{where} Typical causes: the derivative of sqrt or log at 0, "
            f"of abs/max at a tie, or an output that overflowed in forward; clamp the input away "
            f"from the bad point (x.clip(1e-12, None)).")
