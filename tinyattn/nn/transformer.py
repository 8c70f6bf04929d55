"""The Transformer of "Attention Is All You Need", laid out exactly as PyTorch's ``torch.nn``:
``TransformerEncoderLayer``, ``TransformerDecoderLayer``, their stacks ``TransformerEncoder`` /
``TransformerDecoder``, and ``Transformer``, with the same sub-module names (``self_attn``,
``multihead_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1..3``, ``dropout1..3``,
``layers.{i}``, ``encoder.norm``, ...), so a PyTorch state dict loads into them unchanged.

One encoder layer (post-norm, the default; ``norm_first=True`` gives pre-norm)::

    x = norm1(x + dropout1(self_attn(x, x, x)))                # every token looks at every token
    x = norm2(x + dropout2(linear2(dropout(act(linear1(x))))))  # then thinks on its own

A decoder layer adds, between the two, attention from the target to the encoder's output
(``memory``): ``x = norm2(x + dropout2(multihead_attn(x, memory, memory)))``.

Masks are PyTorch's MultiheadAttention masks: bool True = may NOT attend, float = added.
"""
from __future__ import annotations

import copy

from .. import functional as F
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor, get_default_dtype
from ..backend import active_module, device_backend, to_backend
from . import init, pytorch_quirks
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .masks import causal_additive_mask
from .module import Module, check_sizes
from .multihead import MultiheadAttention
from .normalization import LayerNorm

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
           "TransformerDecoderLayer", "generate_square_subsequent_mask"]


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """The causal mask for a sequence of length ``sz``: a float (sz, sz) Tensor with 0 on and below
    the diagonal and -inf above it, so position i attends to positions 0..i only (as PyTorch;
    ``device`` is 'cpu', 'cuda' or None for the active backend)."""
    if int(sz) < 0:
        raise ValueError(f"generate_square_subsequent_mask: size must be >= 0, got {sz}.")
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"generate_square_subsequent_mask: device must be 'cpu', 'cuda' or None, "
                         f"got {device!r}.")
    xp = active_module()
    dtype = get_default_dtype() if dtype is None else dtype
    mask = causal_additive_mask(xp, sz, dtype)
    if device is not None:
        mask = to_backend(mask, device_backend(device))
    return Tensor(mask)


def _activation_fn(activation, owner):
    """'relu' | 'gelu' | any callable (a function or a Module such as nn.GELU('tanh'))."""
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"{owner}: activation should be 'relu' or 'gelu' (or a callable), "
                         f"not {activation!r}.")
    if callable(activation):
        return activation
    raise TypeError(f"{owner}: activation must be 'relu', 'gelu' or a callable, got "
                    f"{type(activation).__name__}.")


def _seq_len(x, batch_first):
    return x.shape[1] if (x.ndim == 3 and batch_first) else x.shape[0]


@register_op("nn.TransformerEncoderLayer")
class TransformerEncoderLayer(Module):
    """Self-attention then a position-wise feed-forward net, each with a residual and LayerNorm.

    src: (S, N, d_model), or (N, S, d_model) with ``batch_first``, or unbatched (S, d_model).
    src_mask: (S, S) or (N*nhead, S, S); src_key_padding_mask: (N, S).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation_fn(activation, "TransformerEncoderLayer")
        self.activation_relu_or_gelu = pytorch_quirks.relu_or_gelu(self.activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


@register_op("nn.TransformerDecoderLayer")
class TransformerDecoderLayer(Module):
    """Masked self-attention, attention over the encoder's output (``memory``), feed-forward;
    each with a residual and LayerNorm.

    tgt: (T, N, d_model), memory: (S, N, d_model) (batch first with ``batch_first``).
    tgt_mask (T, T), memory_mask (T, S), tgt_key_padding_mask (N, T),
    memory_key_padding_mask (N, S).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, device=device, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation_fn(activation, "TransformerDecoderLayer")

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False, *,
                cache=None):
        """``cache`` (tinyattn's addition, for decoding one token at a time): a pair
        (KVCache for the self-attention, KVCache(static=True) or None for the cross-attention),
        e.g. ``DecoderCache.layer(i)``. Then ``tgt`` holds only the new target tokens; pass
        ``tgt_is_causal=True`` without ``tgt_mask`` (causal at the cache's offset)."""
        self_cache, cross_cache = (None, None) if cache is None else cache
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal,
                                   self_cache)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal, cross_cache)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal,
                                              self_cache))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal, cross_cache))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, cache=None):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal, cache=cache)[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal, cache=None):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal, cache=cache)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _clones(layer, n, owner):
    if not isinstance(layer, Module):
        raise TypeError(f"{owner}: expected a layer Module to copy, got {type(layer).__name__}.")
    check_sizes(owner, minimum=1, num_layers=n)
    # Deep copies, as PyTorch: every layer starts with the same weights as the one given.
    return ModuleList([copy.deepcopy(layer) for _ in range(int(n))])


@register_op("nn.TransformerEncoder")
class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given (None by
    default; ``Transformer`` passes a LayerNorm, which pre-norm layers need).
    ``enable_nested_tensor`` and ``mask_check`` are PyTorch's switches for its inference fast path;
    here ``enable_nested_tensor`` only decides whether padded outputs are zeroed in inference as
    that path does (``pytorch_quirks.nested_tensor_keep_mask``)."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = int(num_layers)
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check
        self.use_nested_tensor = (bool(enable_nested_tensor)
                                  and isinstance(encoder_layer, TransformerEncoderLayer)
                                  and pytorch_quirks.nested_tensor_possible(encoder_layer))

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        first = self.layers[0]
        batch_first = getattr(getattr(first, "self_attn", None), "batch_first", False)
        is_causal = pytorch_quirks.detect_is_causal_mask(mask, is_causal,
                                                         _seq_len(src, batch_first))
        keep = pytorch_quirks.nested_tensor_keep_mask(self, src, mask, src_key_padding_mask)
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal,
                           src_key_padding_mask=src_key_padding_mask)
        if keep is not None:                  # PyTorch's nested-tensor inference path
            output = pytorch_quirks.zero_padded_positions(output, keep)
        if self.norm is not None:
            output = self.norm(output)
        return output

@register_op("nn.TransformerDecoder")
class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn, then ``norm`` if given."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False, *,
                cache=None):
        """``cache``: a ``DecoderCache(num_layers, cross=True)`` for decoding one token at a time
        (tinyattn's addition; see TransformerDecoderLayer.forward)."""
        first = self.layers[0]
        batch_first = getattr(getattr(first, "self_attn", None), "batch_first", False)
        tgt_is_causal = pytorch_quirks.detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                                             _seq_len(tgt, batch_first))
        if cache is not None and len(cache) != len(self.layers):
            raise ValueError(f"TransformerDecoder: the cache has {len(cache)} layers but the "
                             f"decoder {len(self.layers)}; build DecoderCache({len(self.layers)}, "
                             f"cross=True).")
        output = tgt
        for i, layer in enumerate(self.layers):
            extra = {} if cache is None else {"cache": cache.layer(i)}
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal, **extra)
        if self.norm is not None:
            output = self.norm(output)
        return output


@register_op("nn.Transformer")
class Transformer(Module):
    """Encoder-decoder Transformer: ``encoder`` (a TransformerEncoder with a final LayerNorm) reads
    ``src``; ``decoder`` (a TransformerDecoder with a final LayerNorm) reads ``tgt`` and attends to
    the encoder's output. Embeddings, positions and the output projection are the caller's, as in
    PyTorch. Every weight matrix starts Xavier-uniform.

    src: (S, N, d_model), tgt: (T, N, d_model) (batch first with ``batch_first``) -> (T, N, d_model).
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                            layer_norm_eps, batch_first, norm_first, bias,
                                            device=device, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                            layer_norm_eps, batch_first, norm_first, bias,
                                            device=device, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = int(d_model), int(nhead), bool(batch_first)

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batched = src.ndim == 3
        if src.ndim != tgt.ndim:
            raise ValueError(f"Transformer: src and tgt must both be batched (3-D) or both "
                             f"unbatched (2-D); got src {tuple(src.shape)}, tgt {tuple(tgt.shape)}.")
        batch_ax = 0 if self.batch_first else 1
        if batched and src.shape[batch_ax] != tgt.shape[batch_ax]:
            raise ValueError(f"Transformer: the batch sizes of src {tuple(src.shape)} and tgt "
                             f"{tuple(tgt.shape)} differ (batch axis {batch_ax}, batch_first="
                             f"{self.batch_first}).")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: the feature size of src {tuple(src.shape)} and tgt "
                             f"{tuple(tgt.shape)} must equal d_model={self.d_model}; embed the "
                             f"tokens to d_model first.")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The causal (sz, sz) float mask: 0 on/below the diagonal, -inf above (as PyTorch)."""
        return generate_square_subsequent_mask(sz, device=device, dtype=dtype)
