"""Generation: greedy and sampled decoding give the same tokens with and without the KV cache;
the sampling filters (temperature, top-k, top-p) keep the right tokens and draw with the right
frequencies, reproducibly from a Generator; beam search with length normalisation finds what an
exhaustive search over a tiny vocabulary finds."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.models import (DecoderOnlyTransformer, TransformerSeq2Seq, beam_search, filter_logits,
                             generate, sample_next, sequence_log_prob)


def _lm(kv=2, positions="learned", seed=0, **kw):
    ta.manual_seed(seed)
    return DecoderOnlyTransformer(17, d_model=16, num_layers=2, num_heads=4, num_kv_heads=kv,
                                  max_len=40, positions=positions, **kw).double().eval()


PROMPTS = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
SAMPLING = {"greedy": dict(),
            "temperature": dict(do_sample=True, temperature=1.3),
            "top_k": dict(do_sample=True, top_k=4),
            "top_p": dict(do_sample=True, top_p=0.8, temperature=0.9),
            "top_k+top_p": dict(do_sample=True, top_k=6, top_p=0.7)}


MODELS = {"learned-MHA": (4, "learned", {}), "sinusoid-GQA": (2, "sinusoid", {}),
          "learned-MQA": (1, "learned", {}), "rope-GQA": (2, "rope", {}), "alibi-MHA": (4, "alibi", {}),
          "rope-sliding": (2, "rope", dict(attention="sliding", window=4, sinks=2)),
          "alibi-sliding": (1, "alibi", dict(attention="sliding", window=5, sinks=0)),
          "rope-linear": (2, "rope", dict(attention="linear"))}


@pytest.mark.parametrize("mode", list(SAMPLING))
@pytest.mark.parametrize("config", list(MODELS))
def test_identical_tokens_with_and_without_cache(mode, config):
    kv, positions, kw = MODELS[config]
    m = _lm(kv, positions, **kw)
    runs = []
    for use_cache in (True, False):
        g = ta.Generator().manual_seed(11)
        runs.append(generate(m, PROMPTS, 12, use_cache=use_cache, generator=g, **SAMPLING[mode]))
    (a, pad_a), (b, pad_b) = runs
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pad_a, pad_b)
    assert a.shape == (3, 5 + 12)
    np.testing.assert_array_equal(a[1, :5], [0, 0, 0, 6, 7])              # left padding kept
    np.testing.assert_array_equal(pad_a[:, :5].sum(1), [0, 3, 2])


@pytest.mark.parametrize("config", list(MODELS))
def test_padded_batch_generates_what_each_prompt_generates_alone(config):
    kv, positions, kw = MODELS[config]
    m = _lm(kv, positions, **kw)
    batch, _ = generate(m, PROMPTS, 6)
    for i, p in enumerate(PROMPTS):
        alone, _ = generate(m, [p], 6)
        np.testing.assert_array_equal(batch[i, -6:], alone[0, -6:])


def test_sampling_is_reproducible_with_a_generator_and_varies_without():
    m = _lm()
    kw = dict(do_sample=True, temperature=1.5)
    a, _ = generate(m, PROMPTS, 10, generator=ta.Generator().manual_seed(5), **kw)
    b, _ = generate(m, PROMPTS, 10, generator=ta.Generator().manual_seed(5), **kw)
    c, _ = generate(m, PROMPTS, 10, generator=ta.Generator().manual_seed(6), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_eos_repeats_after_it_is_emitted():
    m = _lm()
    greedy, _ = generate(m, [[1, 2]], 6)
    eos = int(greedy[0, 3])                                   # the second generated token
    out, _ = generate(m, [[1, 2]], 6, eos_token_id=eos)
    assert out[0, 3] == eos and np.all(out[0, 3:] == eos)
    np.testing.assert_array_equal(out[0, :3], greedy[0, :3])


def test_top_k_one_and_tiny_top_p_are_greedy():
    m = _lm()
    greedy, _ = generate(m, PROMPTS, 8)
    for kw in (dict(top_k=1), dict(top_p=1e-9)):
        s, _ = generate(m, PROMPTS, 8, do_sample=True, temperature=2.0,
                        generator=ta.Generator().manual_seed(0), **kw)
        np.testing.assert_array_equal(s, greedy)


def _reference_filter(logits, temperature, top_k, top_p):
    """The kept set, token by token in plain Python."""
    x = np.asarray(logits, float) / temperature
    order = sorted(range(len(x)), key=lambda i: (-x[i], i))
    kept = order[:top_k] if top_k else order
    if top_p is not None:
        p = np.exp(x[kept] - x[kept].max())
        p /= p.sum()
        mass, nucleus = 0.0, []
        for tok, pi in zip(kept, p):
            if mass >= top_p:
                break
            nucleus.append(tok)
            mass += pi
        kept = nucleus
    return set(kept)


@pytest.mark.parametrize("top_k,top_p,temperature", [(3, None, 1.0), (None, 0.5, 1.0), (None, 0.9, 0.5),
                                                     (5, 0.6, 2.0), (None, 1.0, 1.0)])
def test_filter_logits_keeps_the_right_tokens(top_k, top_p, temperature):
    logits = np.random.default_rng(0).normal(size=(6, 10)) * 2
    out = filter_logits(logits, temperature, top_k, top_p)
    for row, o in zip(logits, out):
        kept = set(np.flatnonzero(np.isfinite(o)))
        assert kept == _reference_filter(row, temperature, top_k, top_p)
        np.testing.assert_allclose(o[list(kept)], row[list(kept)] / temperature)


def test_samples_follow_the_filtered_distribution():
    logits = np.log(np.array([[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]]))
    rows = np.repeat(logits, 40000, axis=0)
    for kw, expect in ((dict(), [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]),
                       (dict(top_k=2), [0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0]),
                       (dict(top_p=0.7), [0.4 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0]),
                       (dict(temperature=0.5), np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]) ** 2
                        / np.sum(np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]) ** 2))):
        picks = sample_next(rows, do_sample=True, generator=ta.Generator().manual_seed(1), **kw)
        freq = np.bincount(picks, minlength=6) / len(picks)
        np.testing.assert_allclose(freq, expect, atol=0.01)


@pytest.mark.parametrize("kw,match", [(dict(temperature=0.0), "temperature"), (dict(top_k=0), "top_k"),
                                      (dict(top_p=1.5), "top_p")])
def test_bad_sampling_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        generate(_lm(), PROMPTS, 2, do_sample=True, **kw)


# ----------------------------------------------------------------------------------- beam search
BOS, EOS, V, MAX = 1, 2, 4, 4


def _seq2seq(seed):
    ta.manual_seed(seed)
    return TransformerSeq2Seq(6, V, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                              dim_feedforward=8, dropout=0.0).double().eval()


def _exhaustive(model, src, alpha):
    """Every output of up to MAX tokens (ending at its first EOS, or MAX tokens long), each
    scored with one teacher-forced pass: the best by log p / length^alpha."""
    best = None
    for n in range(1, MAX + 1):
        for seq in itertools.product(range(V), repeat=n):
            if EOS in seq[:-1] or (n < MAX and seq[-1] != EOS):
                continue
            score = sequence_log_prob(model, src, list(seq), BOS) / n ** alpha
            if best is None or score > best[0]:
                best = (score, list(seq))
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_beam_search_with_a_wide_beam_is_exhaustive_search(seed, alpha):
    m = _seq2seq(seed)
    src = np.random.default_rng(seed).integers(3, 6, 4)
    score, tokens = _exhaustive(m, src, alpha)
    found, found_score = beam_search(m, src, BOS, EOS, beam_size=V ** MAX, max_len=MAX,
                                     length_penalty=alpha)
    assert found == tokens
    assert found_score == pytest.approx(score, abs=1e-10)


def test_narrow_beams_lie_between_greedy_and_the_exhaustive_best():
    """Beam 1 keeps the greedy path alive (a finished hypothesis does not take the beam's place),
    so greedy's output is among its candidates: its score is at least greedy's. No beam beats the
    exhaustive optimum."""
    wins = 0
    for seed in range(6):
        m = _seq2seq(seed)
        src = np.random.default_rng(seed).integers(3, 6, 4)
        best, _ = _exhaustive(m, src, 1.0)
        greedy = m.greedy_decode(src[None], BOS, MAX, eos=EOS).numpy()[0].tolist()
        greedy = greedy[:greedy.index(EOS) + 1] if EOS in greedy else greedy
        greedy_score = sequence_log_prob(m, src, greedy, BOS) / len(greedy)
        one, one_score = beam_search(m, src, BOS, EOS, beam_size=1, max_len=MAX, length_penalty=1.0)
        assert one_score >= greedy_score - 1e-12
        for k in (2, 3):
            _, s = beam_search(m, src, BOS, EOS, beam_size=k, max_len=MAX, length_penalty=1.0)
            assert s <= best + 1e-12
            wins += s > greedy_score + 1e-12
    assert wins > 0          # somewhere a wider beam finds a better output than greedy


def test_length_penalty_changes_what_wins():
    """alpha = 0 ranks by the plain total log p, which favours short outputs; alpha = 1 by the
    mean per token. The two exhaustive optima differ for some model here, and beam search follows."""
    differs = 0
    for seed in range(8):
        m = _seq2seq(seed)
        src = np.random.default_rng(seed).integers(3, 6, 4)
        plain, normed = _exhaustive(m, src, 0.0)[1], _exhaustive(m, src, 1.0)[1]
        if plain != normed:
            differs += 1
            assert len(plain) <= len(normed)
            assert beam_search(m, src, BOS, EOS, beam_size=64, max_len=MAX, length_penalty=0.0)[0] == plain
            assert beam_search(m, src, BOS, EOS, beam_size=64, max_len=MAX, length_penalty=1.0)[0] == normed
    assert differs > 0


def test_beam_search_errors_are_named():
    m = _seq2seq(0)
    with pytest.raises(ValueError, match="one source at a time"):
        beam_search(m, np.array([[3, 4], [4, 5]]), BOS, EOS)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(m, np.array([3, 4]), BOS, EOS, beam_size=0)


def test_generation_and_beam_search_run_on_device_arrays(monkeypatch):
    """On CuPy-like arrays (tests/fakecupy.py): the cache, sampling and beam search never fall
    back to NumPy or mix host and device arrays, and give the NumPy backend's tokens."""
    import fakecupy  # noqa: PLC0415

    host_lm, host_s2s = _lm(), _seq2seq(1)
    expect = generate(host_lm, PROMPTS, 5, do_sample=True, top_p=0.9,
                      generator=ta.Generator().manual_seed(2))[0]
    expect_beam = beam_search(host_s2s, np.array([3, 4, 5]), BOS, EOS, beam_size=3, max_len=MAX)
    fake = fakecupy.install(monkeypatch)
    lm, s2s = host_lm.to("cuda"), host_s2s.to("cuda")
    tokens, _ = generate(lm, PROMPTS, 5, do_sample=True, top_p=0.9,
                         generator=ta.Generator().manual_seed(2))
    assert isinstance(tokens, fakecupy.DeviceArray)
    # the same uniform draws: fakecupy's generator is NumPy's underneath
    np.testing.assert_array_equal(fake.asnumpy(tokens), expect)
    found = beam_search(s2s, fake.asarray(np.array([3, 4, 5])), BOS, EOS, beam_size=3, max_len=MAX)
    assert found[0] == expect_beam[0] and found[1] == pytest.approx(expect_beam[1], abs=1e-12)
