"""Writing text with a trained model: greedy and sampled decoding, and beam search.

A language model gives, for every prefix, scores (logits) for the next token. Generation turns
them into tokens one at a time and feeds each back in:

  * greedy: the most likely token, every time (deterministic);
  * sampling: a random token drawn from softmax(logits / temperature), optionally restricted to
    the ``top_k`` most likely tokens and/or to the smallest set whose probabilities add up to
    ``top_p`` (nucleus sampling). Temperature < 1 sharpens the distribution, > 1 flattens it;
  * beam search (encoder-decoder): keep the ``beam_size`` best partial translations by total
    log-probability, extend each by every token, keep the best again; a finished hypothesis is
    scored by log p / length^length_penalty, since the sum of log-probabilities alone favours
    short outputs (every extra token can only lower it).

``generate`` works for any model with ``model(tokens, padding=None, cache=None) -> logits`` and
``model.new_cache()`` (``DecoderOnlyTransformer``). With ``use_cache=True`` each step feeds only the
new token; without, each step runs the whole sequence again. Both give the same tokens, since they
compute the same logits and draw the same random numbers (one uniform number per row and step).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd.function import no_grad
from ..autograd.tensor import Tensor, unwrap
from ..backend import active_module, get_array_module, to_numpy
from ..nn.kv_cache import left_pad
from ..random import default_generator

__all__ = ["generate", "filter_logits", "sample_next", "beam_search", "sequence_log_prob"]


def _check_sampling(temperature, top_k, top_p):
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"generate: temperature must be a number > 0, got {temperature!r} (for "
                         f"the most likely token every time use do_sample=False).")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise ValueError(f"generate: top_k must be a whole number >= 1 or None, got {top_k!r}.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"generate: top_p must lie in (0, 1] or be None, got {top_p!r}.")


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None):
    """The sampling distribution's logits (N, V), float64: logits / temperature, with -inf for the
    tokens that top_k / top_p rule out. top_k keeps the k highest (the lower index wins a tie);
    top_p keeps, in order of probability, every token whose more probable predecessors add up to
    less than top_p (so the most likely token always stays, and the kept set is the smallest
    whose probabilities reach top_p)."""
    _check_sampling(temperature, top_k, top_p)
    x = unwrap(logits).astype(np.float64) / float(temperature)
    xp = get_array_module(x)
    order = xp.argsort(-x, axis=-1, kind="stable")               # most likely first
    rank = xp.argsort(order, axis=-1)                            # each token's place in that order
    keep = xp.ones(x.shape, dtype=bool)
    if top_k is not None:
        keep &= rank < int(top_k)
    if top_p is not None:
        masked = xp.where(keep, x, -xp.inf)
        p = xp.exp(masked - masked.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        p_sorted = xp.take_along_axis(p, order, axis=-1)
        before = xp.cumsum(p_sorted, axis=-1) - p_sorted          # mass of the more likely ones
        keep_sorted = before < top_p
        keep &= xp.take_along_axis(keep_sorted, rank, axis=-1)
    return xp.where(keep, x, -xp.inf)


def sample_next(logits, do_sample=False, temperature=1.0, top_k=None, top_p=None, generator=None):
    """The next token of each row (N,) int64 from its logits (N, V): argmax, or a draw from the
    filtered distribution by inverse CDF with one uniform number per row from ``generator``
    (a ``tinyattn.Generator``; default: the global one, reseeded by ``tinyattn.manual_seed``)."""
    arr = unwrap(logits)
    xp = get_array_module(arr)
    if not do_sample:
        return arr.argmax(axis=-1).astype(np.int64)
    x = filter_logits(arr, temperature, top_k, top_p)
    p = xp.exp(x - x.max(axis=-1, keepdims=True))
    cdf = xp.cumsum(p, axis=-1)
    u = xp.asarray((generator or default_generator).backend_rng().random(x.shape[0]))
    picks = (cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1)      # first index with cdf >= u·total
    return xp.minimum(picks, x.shape[-1] - 1).astype(np.int64)


def generate(model, prompts, max_new_tokens, *, use_cache=True, do_sample=False, temperature=1.0,
             top_k=None, top_p=None, generator=None, eos_token_id=None, pad_token_id=0):
    """Continue each prompt by ``max_new_tokens`` tokens.

    prompts: (N, T) int array, or a list of 1-D token sequences of different lengths (they are
        left-padded with ``pad_token_id``, and the padding is masked).
    do_sample=False: greedy; True: sampled with temperature / top_k / top_p from ``generator``.
    eos_token_id: a row that emits it keeps emitting it (its later tokens are ignored).
    use_cache: feed one token per step with the model's KV cache, or rerun the whole sequence.
    Returns (tokens (N, T_max + max_new_tokens) int64 on the model's backend, padding (N, same)
    bool, True where a prompt was padded).
    """
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be a whole number >= 0, got "
                         f"{max_new_tokens!r}.")
    if do_sample:
        _check_sampling(temperature, top_k, top_p)
    tokens, padding = left_pad(prompts, pad_token_id)
    xp = get_array_module(tokens)
    N = tokens.shape[0]
    done = xp.zeros(N, dtype=bool)
    cache = model.new_cache() if use_cache else None
    with no_grad():
        for step in range(int(max_new_tokens)):
            if use_cache:
                new = tokens if step == 0 else tokens[:, -1:]
                logits = model(new, padding=padding if step == 0 else None, cache=cache)
            else:
                logits = model(tokens, padding=padding)
            nxt = sample_next(logits.array[:, -1], do_sample, temperature, top_k, top_p, generator)
            if eos_token_id is not None:
                nxt = xp.where(done, eos_token_id, nxt)
                done = done | (nxt == eos_token_id)
            tokens = xp.concatenate([tokens, nxt[:, None]], axis=1)
            padding = xp.concatenate([padding, xp.zeros((N, 1), dtype=bool)], axis=1)
    return tokens, padding


# ----------------------------------------------------------------------------------- beam search
def _log_softmax_rows(logits):
    arr = unwrap(logits).astype(np.float64)
    xp = get_array_module(arr)
    m = arr.max(axis=-1, keepdims=True)
    return arr - m - xp.log(xp.exp(arr - m).sum(axis=-1, keepdims=True))


def _normalised(log_prob, length, length_penalty):
    return log_prob / (length ** length_penalty)


def _one_source(src):
    """(S,) or (1, S) token ids -> a (1, S) array on the active backend."""
    arr = unwrap(src)
    arr = arr if hasattr(arr, "ndim") else active_module().asarray(arr)
    return arr[None] if arr.ndim == 1 else arr


def beam_search(model, src, bos, eos, beam_size=4, max_len=20, length_penalty=1.0,
                src_key_padding_mask=None):
    """The most likely translation of ONE source sentence by beam search (TransformerSeq2Seq).

    src: (S,) or (1, S) token ids. Every step extends each live hypothesis by every token and
    keeps the ``beam_size`` best by total log-probability; one that emits ``eos`` is finished
    (scored log p / length^length_penalty, length counting the eos); at ``max_len`` tokens the
    live ones are finished as they are. length_penalty 0: the plain total; 1: the mean per token.
    A finished hypothesis leaves the beam without taking a place in it (the search goes on with
    the best unfinished ones), so beam_size=1 is greedy decoding that also considers, at every
    step, stopping there: its output scores at least as well as greedy's.
    The decoder runs one token per step with its KV cache, reordered to follow the beams.
    Returns (tokens: a list of ints without bos, including eos if emitted; its normalised score).
    """
    if isinstance(beam_size, bool) or int(beam_size) != beam_size or beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be a whole number >= 1, got {beam_size!r}.")
    if max_len < 1:
        raise ValueError(f"beam_search: max_len must be >= 1, got {max_len!r}.")
    src_arr = _one_source(src)
    if src_arr.shape[0] != 1:
        raise ValueError(f"beam_search: one source at a time, shape (S,) or (1, S); got "
                         f"{tuple(src_arr.shape)}. Loop over the sentences of a batch.")
    with no_grad():
        memory, pad = model.encode(src_arr, src_key_padding_mask)
        xp = get_array_module(memory.array)
        cache = model.new_cache()
        hyps = [[]]                                  # the live hypotheses' tokens
        scores = xp.zeros(1)                         # their total log-probabilities
        finished = []                                # (normalised score, tokens)
        for t in range(max_len):
            rows = xp.zeros(len(hyps), dtype=np.int64)
            last = xp.asarray([[h[-1] if h else bos] for h in hyps], dtype=np.int64)
            logits = model.decode_step(last, Tensor(memory.array[rows]), cache,
                                       None if pad is None else pad[rows])
            total = scores[:, None] + _log_softmax_rows(logits.array[:, -1])     # (B, V)
            V = total.shape[1]
            order = (-to_numpy(total).ravel()).argsort(kind="stable")     # on the host: a loop reads it
            keep_rows, keep_tokens, keep_scores = [], [], []
            for flat in order:
                b, tok = divmod(int(flat), V)
                score = float(total[b, tok])
                if tok == eos or t == max_len - 1:
                    finished.append((_normalised(score, t + 1, length_penalty), hyps[b] + [tok]))
                    continue
                keep_rows.append(b)
                keep_tokens.append(tok)
                keep_scores.append(score)
                if len(keep_rows) == beam_size:
                    break
            if not keep_rows:
                break
            cache.reorder(keep_rows)
            hyps = [hyps[b] + [tok] for b, tok in zip(keep_rows, keep_tokens)]
            scores = xp.asarray(keep_scores)
        best = max(finished, key=lambda f: f[0])
        return best[1], best[0]


def sequence_log_prob(model, src, tgt, bos, src_key_padding_mask=None):
    """log p(tgt | src) under a TransformerSeq2Seq, by one teacher-forced pass (no cache): the sum
    over t of log p(tgt[t] | bos, tgt[:t], src). src (S,) or (1, S); tgt a list of ints."""
    src_arr = _one_source(src)
    with no_grad():
        xp = get_array_module(model.generator.weight.array)
        tgt_in = xp.asarray([[bos] + list(tgt[:-1])], dtype=np.int64)
        logp = _log_softmax_rows(ops.squeeze(model(src_arr, tgt_in, src_key_padding_mask), 0).array)
        return float(logp[xp.arange(len(tgt)), xp.asarray(tgt)].sum())
