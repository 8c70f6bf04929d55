"""LSTMCell and LSTM with PyTorch's parameters, gate order (i, f, g, o), shapes and return values.

One step of an LSTM (Hochreiter & Schmidhuber, 1997), as PyTorch writes it::

    i = σ(W_ii x + b_ii + W_hi h + b_hi)        input gate
    f = σ(W_if x + b_if + W_hf h + b_hf)        forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)     candidate cell
    o = σ(W_io x + b_io + W_ho h + b_ho)        output gate
    c' = f ⊙ c + i ⊙ g,    h' = o ⊙ tanh(c')

The four W_i* are stacked into ``weight_ih`` (4H, input_size) in the order i, f, g, o, and the W_h*
into ``weight_hh`` (4H, H). ``LSTMCell`` writes this step out in Tensor operations (read it to see
the equations). ``LSTM`` hands each layer and direction to one fused op, ``tinyattn.ops.lstm.lstm_layer``: the
input projections of all time steps in one matrix product, then the sequential part.
"""
from __future__ import annotations

from .. import functional as F
from .. import ops
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import get_array_module
from ..ops.lstm import check_lstm_lengths, lstm_layer
from .module import Module, check_sizes, empty_parameter
from .recurrent import RecurrentCell, _init_uniform


def _check_input_dtype(where, x, weight):
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: input has dtype {x.dtype}; an LSTM needs floating-point input "
                        f"(embed token ids first, or convert with .astype('float32')).")
    if x.dtype != weight.dtype:
        raise TypeError(f"{where}: input is {x.dtype} but the parameters are {weight.dtype}. "
                        f"Convert one of them: model.double() / model.float(), or x.astype(...).")


@register_op("nn.LSTMCell")
class LSTMCell(RecurrentCell):
    """One LSTM step. input (B, input_size) or (input_size,); hx = (h, c), each (B, H) or (H,),
    zeros when omitted -> (h', c'), each (B, H) (or (H,) for unbatched input)."""

    gates = 4     # i, f, g, o: the parameters are built by RecurrentCell, in PyTorch's layout

    def forward(self, input, hx=None):
        x = input if isinstance(input, Tensor) else Tensor(input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"LSTMCell: input must have shape (B, input_size={self.input_size}) or "
                             f"({self.input_size},), got {tuple(x.shape)}.")
        _check_input_dtype("LSTMCell", x, self.weight_ih)
        unbatched = x.ndim == 1
        if unbatched:
            x = x.reshape(1, -1)
        batch, hidden = x.shape[0], self.hidden_size
        if hx is None:
            xp = get_array_module(x.array)
            h = c = Tensor(xp.zeros((batch, hidden), dtype=x.dtype))
        else:
            h, c = (t if isinstance(t, Tensor) else Tensor(t) for t in hx)
            want = (hidden,) if unbatched else (batch, hidden)
            for name, t in (("h", h), ("c", c)):
                if tuple(t.shape) != want:
                    raise ValueError(f"LSTMCell: initial {name} must have shape {want} for input of "
                                     f"shape {tuple(input.shape)}, got {tuple(t.shape)}.")
            if unbatched:
                h, c = h.reshape(1, -1), c.reshape(1, -1)
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = ops.chunk(gates, 4, dim=1)
        c_next = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h_next = ops.sigmoid(o) * ops.tanh(c_next)
        if unbatched:
            return h_next.reshape(hidden), c_next.reshape(hidden)
        return h_next, c_next

@register_op("nn.LSTM")
class LSTM(Module):
    """A multi-layer, optionally bidirectional LSTM over whole sequences, as ``torch.nn.LSTM``.

    forward(input, hx=None, lengths=None) -> (output, (h_n, c_n))

    input: (T, B, input_size), or (B, T, input_size) with ``batch_first``, or (T, input_size)
    unbatched. hx = (h_0, c_0), each (num_layers * num_directions, B, H) (no B when unbatched),
    zeros when omitted. lengths: optional (B,) ints, the true length of each padded sequence (what
    PyTorch expresses with ``pack_padded_sequence``): steps t >= lengths[b] neither change the state
    nor receive gradient, their outputs are zero, h_n/c_n hold each sequence's last valid state,
    and the reverse direction reads each sequence backwards *within its own length*.

    output: (T, B, num_directions * H) (batch first if ``batch_first``) - the last layer's h at
    every step, forward and reverse halves concatenated; h_n, c_n: (num_layers * num_directions,
    B, H), ordered layer 0 forward, layer 0 reverse, layer 1 forward, ...

    Parameters per layer k (and ``..._reverse`` for the reverse direction): ``weight_ih_l{k}``
    (4H, input_size for k = 0 else num_directions * H), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (4H,). ``dropout`` is applied to each layer's output except the last, in
    training mode only.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM: proj_size (projected LSTM) is not implemented; use "
                                      "proj_size=0 and a Linear layer on the output.")
        check_sizes("LSTM", input_size=input_size)
        check_sizes("LSTM", minimum=1, hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"LSTM: dropout must be a probability in [0, 1], got {dropout}.")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.num_directions = 2 if bidirectional else 1
        H = self.hidden_size
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else H * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                setattr(self, f"weight_ih_l{k}{suffix}", empty_parameter((4 * H, layer_in), dtype, device))
                setattr(self, f"weight_hh_l{k}{suffix}", empty_parameter((4 * H, H), dtype, device))
                if bias:
                    setattr(self, f"bias_ih_l{k}{suffix}", empty_parameter((4 * H,), dtype, device))
                    setattr(self, f"bias_hh_l{k}{suffix}", empty_parameter((4 * H,), dtype, device))
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self, self.hidden_size)

    def flatten_parameters(self):
        """PyTorch compacts weights for cuDNN here; nothing to do in tinyattn (kept so that code
        written for PyTorch runs unchanged)."""

    # ------------------------------------------------------------------ checks
    def _time_major(self, input):
        """input as a (T, B, I) Tensor, and whether it was unbatched."""
        x = input if isinstance(input, Tensor) else Tensor(input)
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.ndim not in (2, 3):
            raise ValueError(f"LSTM: input must have rank 3, {layout}, or rank 2, (T, input_size) "
                             f"unbatched; got shape {tuple(x.shape)}.")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"LSTM: input has {x.shape[-1]} features on its last axis (shape "
                             f"{tuple(x.shape)}) but input_size={self.input_size}; expected "
                             f"{layout} with input_size={self.input_size}.")
        _check_input_dtype("LSTM", x, self.weight_ih_l0)
        if x.ndim == 2:
            return x.reshape(x.shape[0], 1, x.shape[1]), True
        return (x.permute(1, 0, 2) if self.batch_first else x), False

    def _initial_state(self, hx, batch, unbatched, x):
        L, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            zeros = Tensor(get_array_module(x.array).zeros((L, batch, H), dtype=x.dtype))
            return zeros, zeros
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("LSTM: hx must be a pair (h_0, c_0).")
        h0, c0 = (t if isinstance(t, Tensor) else Tensor(t) for t in hx)
        want = (L, H) if unbatched else (L, batch, H)
        for name, t in (("h_0", h0), ("c_0", c0)):
            if tuple(t.shape) != want:
                raise ValueError(f"LSTM: {name} must have shape {want} (num_layers * num_directions"
                                 f" = {L}{'' if unbatched else f', batch = {batch}'}, hidden_size ="
                                 f" {H}), got {tuple(t.shape)}.")
        if unbatched:
            h0, c0 = h0.reshape(L, 1, H), c0.reshape(L, 1, H)
        return h0, c0

    @staticmethod
    def _lengths(lengths, T, B, xp):
        """The lengths as an int64 array beside the input (a list is copied there once); checked
        on the device, so only one bool comes back to the host."""
        return check_lstm_lengths("LSTM", lengths, T, B, xp)

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None, lengths=None):
        x, unbatched = self._time_major(input)
        T, B, _ = x.shape
        xp = get_array_module(x.array)
        h0, c0 = self._initial_state(hx, B, unbatched, x)
        reverse_index = None
        if lengths is not None:
            if unbatched:
                raise ValueError("LSTM: lengths needs batched input (T, B, input_size).")
            lengths = self._lengths(lengths, T, B, xp)
            if self.bidirectional:
                # reverse each sequence within its own length; padded steps map to themselves
                t = xp.arange(T)[:, None]
                rev = xp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
                reverse_index = (rev, xp.broadcast_to(xp.arange(B), (T, B)))
        h_n, c_n = [], []
        layer_input = x
        for k in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:self.num_directions]):
                w_ih = getattr(self, f"weight_ih_l{k}{suffix}")
                w_hh = getattr(self, f"weight_hh_l{k}{suffix}")
                bias = None
                if self.bias:
                    bias = getattr(self, f"bias_ih_l{k}{suffix}") + getattr(self, f"bias_hh_l{k}{suffix}")
                seq = layer_input
                if d == 1:
                    seq = seq[::-1] if reverse_index is None else seq[reverse_index]
                s = k * self.num_directions + d
                # one op: x @ w_ih.T + bias for all steps (one product), then the recurrence
                out, h, c = lstm_layer(seq, w_ih, w_hh, bias, h0[s], c0[s], lengths)
                if d == 1:
                    out = out[::-1] if reverse_index is None else out[reverse_index]
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=2)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output = layer_input
        h_n, c_n = ops.stack(h_n, axis=0), ops.stack(c_n, axis=0)
        if unbatched:
            L, H = h_n.shape[0], self.hidden_size
            return output.reshape(T, -1), (h_n.reshape(L, H), c_n.reshape(L, H))
        if self.batch_first:
            output = output.permute(1, 0, 2)
        return output, (h_n, c_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s
