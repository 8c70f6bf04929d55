"""Behaviour that exists only to match how PyTorch's implementation happens to work, in one place.

None of this is part of the maths of attention or of the Transformer: each function reproduces a
detail of PyTorch's code (a flag it insists on, a fast path it takes) so that our layers give the
same numbers and errors as ``torch.nn`` in the situations the docstring names. The layers call them
at one marked line each; a reader of the layers can skip this file.
"""
from __future__ import annotations

from .. import functional as F
from ..autograd.function import is_grad_enabled
from ..autograd.tensor import Tensor, get_default_dtype, unwrap
from ..backend import get_array_module
from .activation import GELU, ReLU
from .masks import as_additive_mask, causal_additive_mask

__all__ = ["causal_hint_replaces_attn_mask", "check_is_causal_has_mask", "detect_is_causal_mask",
           "nested_tensor_keep_mask", "nested_tensor_possible", "relu_or_gelu",
           "zero_padded_positions"]


# ---------------------------------------------------------------- is_causal in MultiheadAttention
def check_is_causal_has_mask(is_causal, attn_mask, length):
    """Why: PyTorch's MultiheadAttention treats ``is_causal`` as a hint about ``attn_mask``, not as
    a mask of its own, and refuses ``is_causal=True`` without one. Fires on exactly that call."""
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "MultiheadAttention: is_causal=True is only a hint that attn_mask is the causal "
            "mask; pass the mask too, e.g. attn_mask=Transformer.generate_square_subsequent_mask"
            f"({length}), as in PyTorch.")


def causal_hint_replaces_attn_mask(is_causal, key_padding_mask, need_weights):
    """Why: when nobody asks for the weights and there is no padding mask, PyTorch's
    MultiheadAttention drops ``attn_mask`` and attends causally because ``is_causal`` says so,
    whatever the mask holds. Fires then (True = use the causal mask instead of attn_mask)."""
    return bool(is_causal) and key_padding_mask is None and not need_weights


def detect_is_causal_mask(mask, is_causal, size):
    """Why: PyTorch's ``_detect_is_causal_mask``, which the Transformer stacks call: an explicit
    ``is_causal`` wins; if it is None, the mask is compared with the causal mask of ``size``. Fires
    in every TransformerEncoder / TransformerDecoder call; its answer only matters through
    ``causal_hint_replaces_attn_mask`` (the numbers are the same either way for a causal mask)."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    arr = unwrap(as_additive_mask(mask, "mask", get_default_dtype(), owner="Transformer"))
    if tuple(arr.shape) != (size, size):
        return False
    xp = get_array_module(arr)                 # compared where the mask lives: one bool comes back
    return bool(xp.array_equal(arr, causal_additive_mask(xp, size, arr.dtype)))


# ---------------------------------------------------------------- nested tensors in the encoder
def relu_or_gelu(activation):
    """Why: PyTorch's encoder layer keeps ``activation_relu_or_gelu`` (1 ReLU, 2 GELU, 0 other)
    for its fast-path test below. Fires when a TransformerEncoderLayer is built."""
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    if activation is F.gelu or isinstance(activation, GELU):
        return 2
    return 0


def nested_tensor_possible(layer):
    """Why: PyTorch's ``use_nested_tensor`` test on the TransformerEncoderLayer handed to
    TransformerEncoder: batch_first post-norm layers with biases, ReLU/GELU, equal norm eps and an
    even number of heads. Fires when a TransformerEncoder is built (``enable_nested_tensor``)."""
    attn = layer.self_attn
    return (not layer.norm_first and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None and layer.activation_relu_or_gelu != 0
            and layer.norm1.eps == layer.norm2.eps and attn.num_heads % 2 == 0)


def nested_tensor_keep_mask(encoder, src, mask, src_key_padding_mask):
    """Why: in inference (eval mode, no gradient wanted), PyTorch's encoder packs the sequences
    into a nested tensor, skips the padding, and returns zeros at padded positions (before the
    final norm). Only the padded positions differ from the plain computation, but a decoder that
    reads them (no memory_key_padding_mask) sees the difference, so we reproduce it.
    Fires when ``encoder.use_nested_tensor`` holds, the layers are in eval mode, no gradient is
    wanted, the input is batched, there is a padding mask (at the end of each sequence only) and no
    src mask. Returns the (N, S) keep-mask (True = a real token), or None when it does not fire."""
    layer = encoder.layers[0]
    if (not encoder.use_nested_tensor or layer.training or src.ndim != 3
            or src_key_padding_mask is None or mask is not None):
        return None
    if is_grad_enabled() and (src.requires_grad or any(
            p.requires_grad for p in layer.parameters())):
        return None
    pad = as_additive_mask(src_key_padding_mask, "src_key_padding_mask", src.dtype,
                           owner="TransformerEncoder", like=src.array)
    keep = unwrap(pad) == 0
    if not bool((keep[:, 1:] <= keep[:, :-1]).all()):     # padding not only at the end
        return None
    return keep


def zero_padded_positions(output, keep):
    """The encoder's output with the padded positions set to 0 (see ``nested_tensor_keep_mask``)."""
    return output * Tensor(keep[..., None].astype(output.dtype))
