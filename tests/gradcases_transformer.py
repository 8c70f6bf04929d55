"""Gradient-check cases for the attention models: MultiheadAttention, positional encodings,
Transformer layers, stacks and the full Transformer, and the recurrent attention decoder.
Tiny sizes in float64; every parameter and every float input is checked. Outputs have more than
16 elements, so gradcheck checks every parameter element once instead of the full Jacobian row by
row (which would take minutes for a whole Transformer)."""
from __future__ import annotations

import numpy as np

import tinyattn as ta
from gradcases import GradCase
from module_gradcheck import module_case
from tinyattn.models import AttentionDecoder, AttentionSeq2Seq, TransformerSeq2Seq
from tinyattn.nn.multihead import MultiheadAttention
from tinyattn.nn.positional import LearnedPositionalEmbedding, PositionalEncoding
from tinyattn.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                     TransformerEncoder, TransformerEncoderLayer,
                                     generate_square_subsequent_mask)


def x64(*shape, seed=0):
    return ta.tensor(np.random.default_rng(seed).normal(size=shape), dtype="float64",
                     requires_grad=True)


def _case(op, make_module, make_inputs, call=None, label=""):
    fn, inputs = module_case(make_module, make_inputs, call=call)
    return GradCase(op, fn, inputs, label=label)


_PAD = np.array([[False, False, True], [False, False, False]])    # (N=2, S=3)

CASES = [
    _case("nn.MultiheadAttention", lambda: MultiheadAttention(4, 2),
          lambda: [x64(3, 2, 4), x64(3, 2, 4, seed=1), x64(3, 2, 4, seed=2)],
          call=lambda m, q, k, v: m(q, k, v, key_padding_mask=_PAD), label="cross,padding"),
    _case("nn.MultiheadAttention", lambda: MultiheadAttention(4, 2, kdim=3, vdim=2,
                                                              batch_first=True),
          lambda: [x64(2, 2, 4), x64(2, 3, 3, seed=1), x64(2, 3, 2, seed=2)],
          call=lambda m, q, k, v: m(q, k, v, average_attn_weights=False), label="kdim,vdim"),
    _case("nn.PositionalEncoding", lambda: PositionalEncoding(4, dropout=0.0, max_len=8),
          lambda: [x64(3, 2, 4)]),
    _case("nn.LearnedPositionalEmbedding",
          lambda: LearnedPositionalEmbedding(8, 4, batch_first=True), lambda: [x64(2, 3, 4)]),
    _case("nn.TransformerEncoderLayer",
          lambda: TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0),
          lambda: [x64(3, 2, 4)], call=lambda m, x: m(x, src_key_padding_mask=_PAD),
          label="post-norm,relu"),
    _case("nn.TransformerEncoderLayer",
          lambda: TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, activation="gelu",
                                          norm_first=True, batch_first=True),
          lambda: [x64(2, 3, 4)], label="pre-norm,gelu"),
    _case("nn.TransformerDecoderLayer",
          lambda: TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0),
          lambda: [x64(3, 2, 4), x64(3, 2, 4, seed=1)],
          call=lambda m, t, mem: m(t, mem, tgt_mask=generate_square_subsequent_mask(3, dtype="float64"),
                                   memory_key_padding_mask=_PAD)),
    _case("nn.TransformerEncoder",
          lambda: TransformerEncoder(TransformerEncoderLayer(4, 2, 6, 0.0, batch_first=True), 2,
                                     norm=ta.nn.LayerNorm(4)),
          lambda: [x64(2, 3, 4)]),
    _case("nn.TransformerDecoder",
          lambda: TransformerDecoder(TransformerDecoderLayer(4, 2, 6, 0.0, norm_first=True), 2,
                                     norm=ta.nn.LayerNorm(4)),
          lambda: [x64(3, 2, 4), x64(3, 2, 4, seed=1)]),
    _case("nn.Transformer",
          lambda: Transformer(4, 2, 1, 1, dim_feedforward=6, dropout=0.0, batch_first=True),
          lambda: [x64(2, 3, 4), x64(2, 3, 4, seed=1)],
          call=lambda m, s, t: m(s, t, tgt_mask=generate_square_subsequent_mask(3, dtype="float64"),
                                 src_key_padding_mask=_PAD, memory_key_padding_mask=_PAD)),
    _case("models.AttentionDecoder",
          lambda: AttentionDecoder(5, 3, memory_dim=4, attn_dim=3, hidden_size=4),
          lambda: [x64(2, 3, 4)],
          call=lambda m, mem: m(np.array([[1, 2, 3], [1, 4, 2]]), mem, memory_key_padding_mask=_PAD),
          label="additive,lstm"),
    _case("models.AttentionSeq2Seq",
          lambda: AttentionSeq2Seq(6, 5, embedding_dim=3, hidden_size=3, score="dot", padding_idx=0),
          lambda: [], call=lambda m: m(np.array([[2, 3, 0], [4, 5, 2]]), np.array([[1, 2, 3], [1, 4, 2]]))),
    _case("models.TransformerSeq2Seq",
          lambda: TransformerSeq2Seq(6, 5, d_model=4, nhead=2, num_encoder_layers=1,
                                     num_decoder_layers=1, dim_feedforward=4, dropout=0.0,
                                     padding_idx=0),
          lambda: [], call=lambda m: m(np.array([[2, 3, 0], [4, 5, 2]]), np.array([[1, 2, 3], [1, 4, 2]]))),
]
