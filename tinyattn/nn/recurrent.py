"""What RNN, GRU (and their cells) share: PyTorch's parameter layout, the checks on the input and
the initial state, and the loop over layers, directions and time steps.

Each layer k and direction has ``weight_ih_l{k}`` (G·H, input), ``weight_hh_l{k}`` (G·H, H),
``bias_ih_l{k}``, ``bias_hh_l{k}`` (G·H,) (``..._reverse`` for the reverse direction), with G
stacked gate blocks (1 for RNN, 3 for GRU). A subclass supplies ``_step(xw_t, h, w_hh, b_hh)``:
the next hidden state from the input's projection ``x_t W_ihᵀ + b_ih`` (made for all steps in one
matrix product) and the previous state. Everything is composed of differentiable Tensor
operations, so autograd writes the backward pass through time.
"""
from __future__ import annotations

import math

from .. import functional as F
from .. import ops
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from . import init
from .module import Module, check_sizes, empty_parameter


def _init_uniform(module, hidden_size):
    """PyTorch's RNN initialisation: every weight and bias U(-1/√H, 1/√H)."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_input_dtype(where, x, weight):
    if x.dtype != weight.dtype:
        hint = ("embed token ids first (nn.Embedding)" if x.dtype.kind != "f" else
                "model.double() / model.float(), or x.astype(...)")
        raise TypeError(f"{where}: input is {x.dtype} but the parameters are {weight.dtype}; "
                        f"convert one of them: {hint}.")


class RecurrentCell(Module):
    """One step of a recurrent layer: forward(input, hx=None) -> h'. input (B, input_size) or
    (input_size,); hx (B, H) or (H,), zeros when omitted."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_sizes(name, input_size=input_size)
        check_sizes(name, minimum=1, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bias
        G, H = self.gates, self.hidden_size
        self.weight_ih = empty_parameter((G * H, self.input_size), dtype, device)
        self.weight_hh = empty_parameter((G * H, H), dtype, device)
        if bias:
            self.bias_ih = empty_parameter((G * H,), dtype, device)
            self.bias_hh = empty_parameter((G * H,), dtype, device)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self, self.hidden_size)

    def _step(self, xw, h, w_hh, b_hh):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, input, hx=None):
        name, H = type(self).__name__, self.hidden_size
        x = _as_tensor(input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must have shape (B, input_size={self.input_size}) "
                             f"or ({self.input_size},), got {tuple(x.shape)}.")
        _check_input_dtype(name, x, self.weight_ih)
        unbatched = x.ndim == 1
        x = x.reshape(1, -1) if unbatched else x
        if hx is None:
            h = Tensor(get_array_module(x.array).zeros((x.shape[0], H), dtype=x.dtype))
        else:
            h = _as_tensor(hx)
            want = (H,) if unbatched else (x.shape[0], H)
            if tuple(h.shape) != want:
                raise ValueError(f"{name}: hx must have shape {want} for input of shape "
                                 f"{tuple(input.shape)}, got {tuple(h.shape)}.")
            h = h.reshape(1, -1) if unbatched else h
        h = self._step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h.reshape(H) if unbatched else h

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class StackedRecurrence(Module):
    """A multi-layer, optionally bidirectional recurrent layer over whole sequences, as
    torch.nn.RNN / GRU: forward(input, hx=None) -> (output, h_n).

    input (T, B, input_size), (B, T, input_size) with ``batch_first``, or (T, input_size)
    unbatched; hx (num_layers · num_directions, B, H) (no B unbatched), zeros when omitted.
    output: the last layer's h at every step (forward and reverse halves concatenated);
    h_n: every layer's and direction's last state, ordered layer 0 forward, layer 0 reverse, ...
    ``dropout`` applies to each layer's output but the last, in training mode."""

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_sizes(name, input_size=input_size)
        check_sizes(name, minimum=1, hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout}.")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.num_directions = 2 if bidirectional else 1
        GH = self.gates * self.hidden_size
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for sfx in self._suffixes():
                setattr(self, f"weight_ih_l{k}{sfx}", empty_parameter((GH, layer_in), dtype, device))
                setattr(self, f"weight_hh_l{k}{sfx}",
                        empty_parameter((GH, self.hidden_size), dtype, device))
                if bias:
                    setattr(self, f"bias_ih_l{k}{sfx}", empty_parameter((GH,), dtype, device))
                    setattr(self, f"bias_hh_l{k}{sfx}", empty_parameter((GH,), dtype, device))
        self.reset_parameters()

    def _suffixes(self):
        return ("", "_reverse")[:self.num_directions]

    def reset_parameters(self):
        _init_uniform(self, self.hidden_size)

    def flatten_parameters(self):
        """A cuDNN detail in PyTorch; nothing to do here (kept so PyTorch code runs)."""

    def _step(self, xw, h, w_hh, b_hh):  # pragma: no cover - abstract
        raise NotImplementedError

    def _inputs(self, input, hx):
        """input as (T, B, I), h_0 as (L·D, B, H), and whether the input was unbatched."""
        name, H, L = type(self).__name__, self.hidden_size, self.num_layers * self.num_directions
        x = _as_tensor(input)
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be {layout} or (T, input_size) unbatched, with "
                             f"input_size={self.input_size}; got shape {tuple(x.shape)}.")
        _check_input_dtype(name, x, self.weight_ih_l0)
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        elif self.batch_first:
            x = x.permute(1, 0, 2)
        B = x.shape[1]
        if hx is None:
            return x, Tensor(get_array_module(x.array).zeros((L, B, H), dtype=x.dtype)), unbatched
        h0 = _as_tensor(hx)
        want = (L, H) if unbatched else (L, B, H)
        if tuple(h0.shape) != want:
            raise ValueError(f"{name}: h_0 must have shape {want} (num_layers * num_directions = "
                             f"{L}{'' if unbatched else f', batch = {B}'}, hidden_size = {H}), "
                             f"got {tuple(h0.shape)}.")
        return x, (h0.reshape(L, 1, H) if unbatched else h0), unbatched

    def _run_direction(self, seq, h, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = seq.shape
        xw = F.linear(seq.reshape(T * B, -1), w_ih, b_ih).reshape(T, B, -1)
        outs = []
        for t in range(T):
            h = self._step(xw[t], h, w_hh, b_hh)
            outs.append(h)
        return ops.stack(outs, axis=0), h

    def forward(self, input, hx=None):
        x, h0, unbatched = self._inputs(input, hx)
        layer_input, h_n = x, []
        for k in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self._suffixes()):
                weights = [getattr(self, f"{w}_l{k}{sfx}", None)     # None: no bias
                           for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                seq = layer_input[::-1] if d else layer_input
                out, h = self._run_direction(seq, h0[k * self.num_directions + d], *weights)
                outs.append(out[::-1] if d else out)
                h_n.append(h)
            layer_input = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=2)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        h_n = ops.stack(h_n, axis=0)
        if unbatched:
            return layer_input.reshape(x.shape[0], -1), h_n.reshape(h_n.shape[0], -1)
        return (layer_input.permute(1, 0, 2) if self.batch_first else layer_input), h_n

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        for key, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                             ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        return s
