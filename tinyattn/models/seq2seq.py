"""Sequence-to-sequence models with attention.

``AttentionDecoder`` is the recurrent attention decoder of doc 003 §3.2. At every output step t:

    Q_t  = Linear([x_t ; y_{t-1}])           query from the current input and the previous output
    K    = Linear(X),  V = Linear(X)         keys and values from the encoder states X (once)
    s_ti = score(Q_t, K_i)                   additive (Bahdanau) or dot (Luong)
    w_ti = softmax_i(s_ti)                   padding positions of X get weight 0
    y_t  = Σ_i w_ti V_i                      the attention output ("context")
    logits_t = Linear([x_t ; y_t])           the next-token scores

``x_t`` is the embedding of the current input token, or, with ``rnn="lstm"``, the hidden state of
an LSTMCell fed [embedding ; y_{t-1}] (Luong's "input feeding"), which gives the decoder a memory
of everything it has emitted. Because Q_t needs y_{t-1}, the steps run one after another.

``AttentionSeq2Seq`` puts an LSTM encoder in front of it; ``TransformerSeq2Seq`` is the
embeddings + positional encoding + ``Transformer`` + output projection model of doc 003 §5.2, done
right (logits into cross-entropy, a real decoder, causal target mask). Both offer teacher-forced
training (``forward``) and ``greedy_decode``. Every model here is batch first: tokens (B, T).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, ops
from ..attention.attend import attend
from ..attention.scores import additive_score, dot_score, scaled_dot_score
from ..autograd.function import no_grad
from ..autograd.registry import register_op
from ..autograd.tensor import Tensor
from ..backend import active_module, get_array_module
from ..nn import init
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.kv_cache import DecoderCache
from ..nn.linear import Linear
from ..nn.lstm import LSTM, LSTMCell
from ..nn.module import Module, empty_parameter
from ..nn.positional import PositionalEncoding
from ..nn.transformer import Transformer, generate_square_subsequent_mask
from ..random import generator

__all__ = ["AttentionDecoder", "AttentionSeq2Seq", "TransformerSeq2Seq"]

SCORES = ("additive", "dot", "scaled_dot")


def _tokens(x, owner, what):
    """Integer token ids (B, T) as a plain array."""
    arr = x.array if isinstance(x, Tensor) else x
    if not hasattr(arr, "dtype"):
        arr = active_module().asarray(arr)          # a list: onto the active backend, once
    if arr.dtype.kind not in "iu" or arr.ndim != 2:
        raise ValueError(f"{owner}: {what} must be integer token ids of shape (B, T), got "
                         f"{getattr(arr, 'dtype', '?')} array of shape {tuple(arr.shape)}.")
    return arr


def _padding_mask(mask, batch, length, owner, what):
    """A (B, S) bool key padding mask, True = padding (PyTorch's convention), or None."""
    if mask is None:
        return None
    arr = mask.array if isinstance(mask, Tensor) else mask
    if not hasattr(arr, "dtype"):
        arr = active_module().asarray(arr)          # a list: onto the active backend, once
    if arr.dtype != bool or tuple(arr.shape) != (batch, length):
        raise ValueError(f"{owner}: {what} must be a bool array of shape (B, S) = "
                         f"{(batch, length)} with True at padding positions, got {arr.dtype} "
                         f"{tuple(arr.shape)}.")
    return arr


@register_op("models.AttentionDecoder")
class AttentionDecoder(Module):
    """A recurrent decoder that attends over encoder states at every step (doc 003 §3.2).

    num_embeddings: target vocabulary size; embedding_dim: token embedding size;
    memory_dim: width of the encoder states; attn_dim: width of Q, K, V and y (default
    memory_dim); hidden_size: the LSTMCell's size (default attn_dim; unused with ``rnn=None``);
    score: 'additive' (vᵀ tanh(W_q Q + W_k K)), 'dot' (Q·K) or 'scaled_dot' (Q·K/√attn_dim);
    rnn: 'lstm' or None (then x_t is the token embedding itself and y carries the recurrence).

    forward(tgt_in (B, T) ints, memory (B, S, memory_dim), memory_key_padding_mask (B, S) bool,
    True = padding, state=(h, c) or None, teacher_forcing=1.0)
        -> (logits (B, T, num_embeddings), weights (B, T, S))
    """

    def __init__(self, num_embeddings, embedding_dim, memory_dim, attn_dim=None, hidden_size=None,
                 score="additive", rnn="lstm", dropout=0.0, padding_idx=None, dtype=None):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"AttentionDecoder: score must be one of {SCORES}, got {score!r}.")
        if rnn not in ("lstm", None):
            raise ValueError(f"AttentionDecoder: rnn must be 'lstm' or None, got {rnn!r}.")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.memory_dim = int(memory_dim)
        self.attn_dim = int(attn_dim) if attn_dim is not None else self.memory_dim
        self.hidden_size = int(hidden_size) if hidden_size is not None else self.attn_dim
        self.score, self.rnn = score, rnn
        A = self.attn_dim
        self.embedding = Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx,
                                   dtype=dtype)
        if rnn == "lstm":
            self.cell = LSTMCell(embedding_dim + A, self.hidden_size, dtype=dtype)
            x_dim = self.hidden_size
        else:
            self.cell = None
            x_dim = self.embedding_dim
        self.query = Linear(x_dim + A, A, dtype=dtype)        # Q_t = Linear([x_t ; y_{t-1}])
        self.key = Linear(memory_dim, A, dtype=dtype)         # K = Linear(X)
        self.value = Linear(memory_dim, A, dtype=dtype)       # V = Linear(X)
        if score == "additive":
            self.score_wq = empty_parameter((A, A), dtype)
            self.score_wk = empty_parameter((A, A), dtype)
            self.score_v = empty_parameter((A,), dtype)
            init.xavier_uniform_(self.score_wq)
            init.xavier_uniform_(self.score_wk)
            bound = 1 / math.sqrt(A)
            init.uniform_(self.score_v, -bound, bound)
        self.dropout = Dropout(dropout)
        self.out = Linear(x_dim + A, num_embeddings, dtype=dtype)   # logits from [x_t ; y_t]

    # ------------------------------------------------------------------ pieces
    def keys_values(self, memory):
        """K and V for all encoder states, computed once per sequence: each (B, S, attn_dim)."""
        if not isinstance(memory, Tensor) or memory.ndim != 3 or memory.shape[-1] != self.memory_dim:
            raise ValueError(f"AttentionDecoder: memory must be a Tensor (B, S, memory_dim="
                             f"{self.memory_dim}), got {getattr(memory, 'shape', type(memory))}.")
        if memory.dtype != self.key.weight.dtype:
            raise TypeError(f"AttentionDecoder: memory is {memory.dtype} but the parameters are "
                            f"{self.key.weight.dtype}; convert one of them (memory.astype("
                            f"'{self.key.weight.dtype}'), or model.double() / model.float()).")
        return self.key(memory), self.value(memory)

    def initial_carry(self, batch, dtype, state=None):
        """(LSTM state or None, y_0 = 0)."""
        xp = get_array_module(self.query.weight.array)
        y0 = Tensor(xp.zeros((batch, self.attn_dim), dtype=dtype))
        if self.cell is None:
            return None, y0
        if state is None:
            zeros = Tensor(xp.zeros((batch, self.hidden_size), dtype=dtype))
            state = (zeros, zeros)
        return state, y0

    def step(self, tokens, carry, keys, values, keep=None):
        """One decoding step. tokens (B,) ints; carry from ``initial_carry`` or the last step;
        keep: (B, 1, S) bool, True = may attend. Returns (logits (B, V), weights (B, S), carry)."""
        state, y_prev = carry
        e = self.embedding(tokens)                                           # (B, embedding_dim)
        if self.cell is not None:
            state = self.cell(ops.concatenate([e, y_prev], axis=-1), state)   # input feeding
            x = state[0]
        else:
            x = e
        q = ops.unsqueeze(self.query(ops.concatenate([x, y_prev], axis=-1)), 1)   # (B, 1, A)
        if self.score == "additive":
            s = additive_score(q, keys, self.score_wq, self.score_wk, self.score_v)
        elif self.score == "dot":
            s = dot_score(q, keys)
        else:
            s = scaled_dot_score(q, keys)                                    # (B, 1, S)
        y, w = attend(s, values, mask=keep)                                 # (B, 1, A), (B, 1, S)
        y, w = ops.squeeze(y, 1), ops.squeeze(w, 1)
        logits = self.out(self.dropout(ops.concatenate([x, y], axis=-1)))
        return logits, w, (state, y)

    # ------------------------------------------------------------------ whole sequences
    def forward(self, tgt_in, memory, memory_key_padding_mask=None, state=None,
                teacher_forcing=1.0):
        """Teacher forcing: step t reads the given token tgt_in[:, t]. With teacher_forcing < 1,
        each step after the first instead reads the model's own previous prediction with
        probability 1 - teacher_forcing (scheduled sampling)."""
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"AttentionDecoder: teacher_forcing is the probability of reading the "
                             f"given token at each step and must lie in [0, 1], got "
                             f"{teacher_forcing!r} (1.0: always the given token; 0.0: always the "
                             f"model's own prediction).")
        tokens = _tokens(tgt_in, "AttentionDecoder", "tgt_in")
        B, T = tokens.shape
        if memory.shape[0] != B:
            raise ValueError(f"AttentionDecoder: tgt_in has batch {B} but memory has shape "
                             f"{tuple(memory.shape)} (batch first).")
        keys, values = self.keys_values(memory)
        pad = _padding_mask(memory_key_padding_mask, B, memory.shape[1], "AttentionDecoder",
                            "memory_key_padding_mask")
        keep = None if pad is None else ~pad[:, None, :]
        carry = self.initial_carry(B, memory.dtype, state)
        logits, weights = [], []
        current = tokens[:, 0]
        for t in range(T):
            if t > 0:
                current = tokens[:, t]
                if teacher_forcing < 1.0 and generator().random() >= teacher_forcing:
                    current = logits[-1].array.argmax(axis=-1)
            step_logits, w, carry = self.step(current, carry, keys, values, keep)
            logits.append(step_logits)
            weights.append(w)
        return ops.stack(logits, axis=1), ops.stack(weights, axis=1)

    def greedy_decode(self, memory, bos, max_len, memory_key_padding_mask=None, state=None,
                      eos=None):
        """Start from ``bos`` and feed back the most likely token, ``max_len`` times.
        Returns (tokens (B, max_len) int64, weights (B, max_len, S)): the alignment heatmap.
        After a sequence emits ``eos`` its remaining tokens are ``eos`` too."""
        with no_grad():
            B = memory.shape[0]
            keys, values = self.keys_values(memory)
            pad = _padding_mask(memory_key_padding_mask, B, memory.shape[1], "AttentionDecoder",
                                "memory_key_padding_mask")
            keep = None if pad is None else ~pad[:, None, :]
            xp = get_array_module(memory.array)
            carry = self.initial_carry(B, memory.dtype, state)
            current = xp.full((B,), bos, dtype=np.int64)
            done = xp.zeros((B,), dtype=bool)
            out, weights = [], []
            for _ in range(max_len):
                logits, w, carry = self.step(current, carry, keys, values, keep)
                current = logits.array.argmax(axis=-1)
                if eos is not None:
                    current = xp.where(done, eos, current)
                    done = done | (current == eos)
                out.append(current)
                weights.append(w.array)
            return Tensor(xp.stack(out, axis=1)), Tensor(xp.stack(weights, axis=1))

    def extra_repr(self):
        return (f"num_embeddings={self.num_embeddings}, attn_dim={self.attn_dim}, "
                f"score={self.score!r}, rnn={self.rnn!r}")


@register_op("models.AttentionSeq2Seq")
class AttentionSeq2Seq(Module):
    """LSTM encoder + ``AttentionDecoder``: the classic attention translation model.

    The encoder's last (h, c) starts the decoder's LSTMCell. Padding: pass
    ``src_key_padding_mask`` (B, S) bool, True = padding, or set ``padding_idx`` to derive it from
    the source tokens; the encoder then stops at each sequence's true length and the decoder
    gives padding zero attention.
    """

    def __init__(self, src_vocab, tgt_vocab, embedding_dim=32, hidden_size=64, score="additive",
                 dropout=0.0, padding_idx=None, dtype=None):
        super().__init__()
        self.padding_idx = padding_idx
        self.src_embedding = Embedding(src_vocab, embedding_dim, padding_idx=padding_idx,
                                       dtype=dtype)
        self.encoder = LSTM(embedding_dim, hidden_size, batch_first=True, dtype=dtype)
        self.decoder = AttentionDecoder(tgt_vocab, embedding_dim, memory_dim=hidden_size,
                                        attn_dim=hidden_size, hidden_size=hidden_size,
                                        score=score, rnn="lstm", dropout=dropout,
                                        padding_idx=padding_idx, dtype=dtype)

    def encode(self, src, src_key_padding_mask=None):
        """-> (memory (B, S, hidden), (h, c) each (B, hidden), padding mask or None)."""
        tokens = _tokens(src, "AttentionSeq2Seq", "src")
        pad = _padding_mask(src_key_padding_mask, *tokens.shape, "AttentionSeq2Seq",
                            "src_key_padding_mask")
        if pad is None and self.padding_idx is not None:
            pad = tokens == self.padding_idx
        lengths = None if pad is None else (~pad).sum(axis=1)
        if lengths is not None and bool((lengths == 0).any()):
            rows = [int(i) for i in backend.to_numpy(lengths == 0).nonzero()[0]]
            source = ("src_key_padding_mask" if src_key_padding_mask is not None
                      else f"padding_idx={self.padding_idx}")
            raise ValueError(f"AttentionSeq2Seq: source row(s) {rows} are all padding ({source} "
                             f"marks every position), but the LSTM encoder needs at least one "
                             f"real token per sequence. Drop those rows from the batch, or give "
                             f"each source at least one token (e.g. an end-of-sequence token).")
        memory, (h, c) = self.encoder(self.src_embedding(tokens), lengths=lengths)
        return memory, (h[0], c[0]), pad

    def forward(self, src, tgt_in, src_key_padding_mask=None, teacher_forcing=1.0):
        memory, state, pad = self.encode(src, src_key_padding_mask)
        return self.decoder(tgt_in, memory, pad, state, teacher_forcing)

    def greedy_decode(self, src, bos, max_len, src_key_padding_mask=None, eos=None):
        with no_grad():
            memory, state, pad = self.encode(src, src_key_padding_mask)
            return self.decoder.greedy_decode(memory, bos, max_len, pad, state, eos)


@register_op("models.TransformerSeq2Seq")
class TransformerSeq2Seq(Module):
    """Token embeddings (×√d_model) + sinusoidal positions + ``Transformer`` + a Linear to logits.

    forward(src (B, S) ints, tgt_in (B, T) ints) -> logits (B, T, tgt_vocab); the target gets the
    causal mask, so position t sees tgt_in[:, :t+1] only. Padding masks come from ``padding_idx``
    (or are passed explicitly, True = padding).
    """

    def __init__(self, src_vocab, tgt_vocab, d_model=32, nhead=4, num_encoder_layers=2,
                 num_decoder_layers=2, dim_feedforward=64, dropout=0.1, max_len=512,
                 padding_idx=None, norm_first=False, scale_embedding=False, dtype=None):
        super().__init__()
        self.d_model, self.padding_idx = int(d_model), padding_idx
        # Vaswani et al. multiply embeddings by √d_model because theirs start with std 1/√d_model.
        # Ours start N(0, 1) (PyTorch's Embedding), already as large as the positional signal;
        # scaling them further drowns the positions, and a copy task then learns far slower.
        self.embed_scale = math.sqrt(d_model) if scale_embedding else 1.0
        self.src_embedding = Embedding(src_vocab, d_model, padding_idx=padding_idx, dtype=dtype)
        self.tgt_embedding = Embedding(tgt_vocab, d_model, padding_idx=padding_idx, dtype=dtype)
        self.positional = PositionalEncoding(d_model, dropout=dropout, max_len=max_len,
                                             batch_first=True)
        self.transformer = Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                       dim_feedforward, dropout, batch_first=True,
                                       norm_first=norm_first, dtype=dtype)
        self.generator = Linear(d_model, tgt_vocab, dtype=dtype)

    def _embed(self, embedding, tokens, offset=0):
        emb = embedding(tokens)
        return self.positional(emb * self.embed_scale if self.embed_scale != 1.0 else emb, offset)

    def _pad(self, tokens, given, what):
        pad = _padding_mask(given, *tokens.shape, "TransformerSeq2Seq", what)
        if pad is None and self.padding_idx is not None:
            pad = tokens == self.padding_idx
            if not pad.any():
                pad = None
        return pad

    def encode(self, src, src_key_padding_mask=None):
        tokens = _tokens(src, "TransformerSeq2Seq", "src")
        pad = self._pad(tokens, src_key_padding_mask, "src_key_padding_mask")
        memory = self.transformer.encoder(self._embed(self.src_embedding, tokens),
                                          src_key_padding_mask=pad)
        return memory, pad

    def decode(self, tgt_in, memory, memory_key_padding_mask=None, tgt_key_padding_mask=None):
        tokens = _tokens(tgt_in, "TransformerSeq2Seq", "tgt_in")
        T = tokens.shape[1]
        causal = generate_square_subsequent_mask(T, dtype=memory.dtype)
        out = self.transformer.decoder(
            self._embed(self.tgt_embedding, tokens), memory, tgt_mask=causal,
            tgt_key_padding_mask=self._pad(tokens, tgt_key_padding_mask, "tgt_key_padding_mask"),
            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=True)
        return self.generator(out)

    def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None):
        memory, pad = self.encode(src, src_key_padding_mask)
        return self.decode(tgt_in, memory, pad, tgt_key_padding_mask)

    def new_cache(self):
        """An empty cache for ``decode_step``: per decoder layer, the target's keys and values and
        the (once computed) keys and values of the encoder's output."""
        return DecoderCache(len(self.transformer.decoder.layers), cross=True)

    def decode_step(self, tgt_new, memory, cache, memory_key_padding_mask=None):
        """Logits (B, T_new, tgt_vocab) for the next target tokens ``tgt_new`` (B, T_new), which
        follow the ``cache.offset`` tokens already in ``cache``: their keys and values are
        appended, so each step costs one token's work, not the whole prefix again."""
        tokens = _tokens(tgt_new, "TransformerSeq2Seq", "tgt_new")
        out = self.transformer.decoder(
            self._embed(self.tgt_embedding, tokens, cache.offset), memory,
            tgt_key_padding_mask=self._pad(tokens, None, "tgt_key_padding_mask"),
            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=True, cache=cache)
        return self.generator(out)

    def greedy_decode(self, src, bos, max_len, src_key_padding_mask=None, eos=None,
                      use_cache=False):
        """Decode ``max_len`` tokens after ``bos``: re-running the decoder on the growing prefix,
        or with ``use_cache`` one token per step through ``decode_step`` (the same tokens).
        Returns tokens (B, max_len) int64."""
        with no_grad():
            memory, pad = self.encode(src, src_key_padding_mask)
            xp = get_array_module(memory.array)
            B = memory.shape[0]
            ys = xp.full((B, 1), bos, dtype=np.int64)
            done = xp.zeros((B,), dtype=bool)
            cache = self.new_cache() if use_cache else None
            for _ in range(max_len):
                if use_cache:
                    logits = self.decode_step(ys[:, -1:], memory, cache, pad)
                else:
                    logits = self.decode(ys, memory, pad)
                nxt = logits.array[:, -1].argmax(axis=-1)
                if eos is not None:
                    nxt = xp.where(done, eos, nxt)
                    done = done | (nxt == eos)
                ys = xp.concatenate([ys, nxt[:, None]], axis=1)
            return Tensor(ys[:, 1:])
