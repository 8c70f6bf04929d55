"""Lesson 21 - the KV cache: why generating token t need not cost the whole prefix again.

What it teaches: a decoder-only Transformer writes text one token at a time, and each new token
attends to every earlier one. Run naively, step t pushes all t tokens through every layer again,
so writing T tokens costs 1 + 2 + ... + T = O(T²) token-passes. But causal attention never lets an
earlier token see a later one: the keys and values of tokens 0..t-1 are the same numbers at every
step. A KV cache keeps them. Each step then projects only the new token, appends its key and value,
and attends from its one query to everything kept: O(T) token-passes in total, for a memory that
grows by 2 · layers · kv_heads · head_dim numbers per token. We show the keys really do not change,
write the cache out by hand, check that the library's cache gives identical tokens (greedy and
sampled, for prompts of different lengths), time each generated token against its position with
and without the cache, compare a prompt's prefill (all tokens at once) with decoding it token by
token, and count the cache's bytes, for this toy model and for the published sizes of real ones.

The source articles (doc 000 .. doc 004, described in docs/sources.md) stop at the 2017 Transformer;
this lesson and lessons 22-25 build what models use since (issue 19). No number comes from them.
Criterion: with and without the cache the generated tokens are identical (greedy and top-k/top-p
sampling, a left-padded batch); prefill + one-token steps reproduce one full pass's logits to
1e-10 (float64), and one more token leaves the earlier keys and values exactly unchanged (their
logits to rounding, < 1e-13); the cache's bytes equal 2 · layers · batch · kv_heads · T · head_dim · itemsize
at every length. Times are measured and printed (they depend on the machine), never asserted.
"""
# %%
from _common import Lesson

import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.models import DecoderOnlyTransformer, generate, sample_next

lesson = Lesson(21, "the KV cache")
rng = lesson.rng
V = 48                                   # a toy vocabulary; the weights are random (untrained):
                                         # what the cache does does not depend on what was learnt


def make_model(dtype="float64", **kw):
    ta.manual_seed(lesson.seed)
    args = dict(d_model=64, num_layers=2, num_heads=4, max_len=512)
    args.update(kw)
    return DecoderOnlyTransformer(V, **args).to(dtype).eval()


model = make_model()
print(model)

# %% [markdown]
# ## 1. What step t recomputes
# Append one token to a sequence and run the model again: the outputs at the earlier positions do
# not move, because with a causal mask nothing at position i < t depends on token t. The keys and
# values at those positions come out bit for bit the same. The logits may differ in the last bit
# (~1e-16): the attention's weighted sum of values is a matrix product over all the keys of the
# tile, the masked ones entering as exact zeros, and the BLAS kernel may group the terms of a sum
# differently for a different number of terms (here: 11 terms, or the same 11 and a 12th that is
# exactly 0, differ in the last bit on some CPUs). Zero in exact arithmetic; at most a rounding
# error or two on a computer. Recomputing those positions is pure waste.

# %%
lesson.section("1. appending a token leaves every earlier position unchanged")
seq = rng.integers(0, V, (1, 12))
with ta.no_grad():
    before = model(seq[:, :11]).numpy()
    after = model(seq).numpy()
unchanged = float(np.abs(after[:, :11] - before).max())
print(f"max |logits of positions 0..10 with 12 tokens - with 11 tokens| = {unchanged:.1e}")
block = model.blocks[0]
with ta.no_grad():
    x11 = model.tok_emb(seq[:, :11]) + model.pos_emb(np.arange(11))
    x12 = model.tok_emb(seq) + model.pos_emb(np.arange(12))
    _, k11, v11 = block.attn.project(block.ln1(x11))
    _, k12, v12 = block.attn.project(block.ln1(x12))
same_kv = float(max(np.abs(k12.numpy()[:, :, :11] - k11.numpy()).max(),
                    np.abs(v12.numpy()[:, :, :11] - v11.numpy()).max()))
print(f"layer 0: keys and values of tokens 0..10, with 11 or 12 tokens in: max difference {same_kv:.1e}")

# %% [markdown]
# ## 2. The cache by hand
# One attention layer, written out. At each step: project only the new token to q, k, v; append
# k and v to two growing lists; attend from the new q to all kept keys (no mask is needed: every
# kept key is in the past). Then the same with the library's ``nn.KVCache``, and both against one
# causal pass over the whole sequence.

# %%
lesson.section("2. one attention layer: a hand-written cache = nn.KVCache = the full causal pass")
attn = nn.GroupedQueryAttention(16, 4).double()
xs = ta.tensor(rng.normal(size=(1, 9, 16)))
with ta.no_grad():
    full = attn(xs, is_causal=True).numpy()
    keys, values, by_hand = [], [], []
    for t in range(9):
        q, k, v = attn.project(xs[:, t:t + 1])                     # one token: (1, H, 1, D) each
        keys.append(k)
        values.append(v)
        K, Vv = ta.concatenate(keys, axis=2), ta.concatenate(values, axis=2)   # (1, H, t + 1, D)
        by_hand.append(attn.merge_heads(scaled_dot_product_attention(q, K, Vv)).numpy())
    cache = nn.KVCache()
    library = [attn(xs[:, :4], is_causal=True, cache=cache).numpy()]          # prefill 4 tokens
    library += [attn(xs[:, t:t + 1], is_causal=True, cache=cache).numpy() for t in range(4, 9)]
hand_err = float(np.abs(np.concatenate(by_hand, 1) - full).max())
lib_err = float(np.abs(np.concatenate(library, 1) - full).max())
print(f"hand-written cache vs full pass: {hand_err:.1e};  nn.KVCache (prefill 4, then 1 by 1) vs full pass: {lib_err:.1e}")
print(f"the cache now holds {cache}")

# %% [markdown]
# ## 3. The same tokens with and without the cache
# ``tinyattn.models.generate`` runs either way: with ``use_cache=True`` it feeds the prompt once
# (the prefill) and then one token per step; without, every step runs the whole sequence. Prompts
# of different lengths go in one batch, padded on the **left**, so that every row's next token
# lands in the same column (the padding keys are masked, and positions count real tokens only).
# Sampling draws one uniform number per row and step from a seeded ``Generator``, so both runs
# draw the same numbers and must pick the same tokens.

# %%
lesson.section("3. generated tokens: identical with and without the cache")
prompts = [list(rng.integers(0, V, n)) for n in (7, 3, 5)]
settings = {"greedy": dict(), "top-k 8, temperature 0.8": dict(do_sample=True, top_k=8, temperature=0.8),
            "top-p 0.9": dict(do_sample=True, top_p=0.9)}
identical = {}
for name, kw in settings.items():
    outs = []
    for use_cache in (True, False):
        tokens, padding = generate(model, prompts, 20, use_cache=use_cache,
                                   generator=ta.Generator().manual_seed(lesson.seed), **kw)
        outs.append(tokens)
    identical[name] = bool(np.array_equal(outs[0], outs[1]))
    print(f"  {name:<26} identical: {identical[name]};  row 1 (prompt of 3, left-padded): {outs[0][1].tolist()}")
batch, _ = generate(model, prompts, 20)
alone = [generate(model, [p], 20)[0][0, -20:] for p in prompts]
batch_equals_alone = all(np.array_equal(batch[i, -20:], alone[i]) for i in range(3))
print(f"the padded batch generates what each prompt generates alone: {batch_equals_alone}")

seq = rng.integers(0, V, (2, 40))
with ta.no_grad():
    whole = model(seq).numpy()
    cache = model.new_cache()
    steps = [model(seq[:, :16], cache=cache).numpy()] + [model(seq[:, t:t + 1], cache=cache).numpy()
                                                          for t in range(16, 40)]
logits_err = float(np.abs(np.concatenate(steps, 1) - whole).max())
print(f"prefill 16 + 24 single steps vs one pass over 40 tokens: max logit difference {logits_err:.1e}")

# %% [markdown]
# ## 4. Time per generated token, against its position
# A float32 model, one sequence, an 8-token prompt, 256 tokens generated, each step timed. Without
# the cache, step t runs t tokens through the layers (its projections grow like t, its attention
# like t²); with it, step t runs one token, and only its attention (one row of t scores) grows.

# %%
lesson.section("4. time per token vs position, with and without the cache")
fast = make_model("float32")
prompt, n_new = rng.integers(0, V, (1, 8)), 256


def timed_generation(use_cache):
    tokens, cache, seconds = prompt.copy(), fast.new_cache(), []
    with ta.no_grad():
        for step in range(n_new):
            start = time.perf_counter()
            if use_cache:
                logits = fast(tokens if step == 0 else tokens[:, -1:], cache=cache)
            else:
                logits = fast(tokens)
            nxt = sample_next(logits.array[:, -1])
            seconds.append(time.perf_counter() - start)
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
    return tokens, np.array(seconds), cache


timed_generation(True)                                    # warm-up (kernels, caches)
timing = {}
for use_cache in (True, False):
    tokens, seconds, cache = timed_generation(use_cache)
    timing["with cache" if use_cache else "without cache"] = {"tokens": tokens, "seconds": seconds}
timed_identical = bool(np.array_equal(timing["with cache"]["tokens"], timing["without cache"]["tokens"]))
positions = prompt.shape[1] + np.arange(n_new)
summary = {}
for name, t in timing.items():
    s = t["seconds"][1:]                                  # step 0 is the prefill in both runs
    slope, intercept = np.polyfit(positions[1:], s, 1)
    summary[name] = {"total_s": float(t["seconds"].sum()), "first_ms": float(np.median(s[:16]) * 1e3),
                     "last_ms": float(np.median(s[-16:]) * 1e3), "us_per_position": float(slope * 1e6)}
    print(f"  {name:<14} total {summary[name]['total_s']:6.2f} s;  a step near position 10 "
          f"{summary[name]['first_ms']:6.2f} ms, near position {positions[-1]} {summary[name]['last_ms']:6.2f} ms; "
          f"fitted growth {summary[name]['us_per_position']:7.2f} µs per position")
w, wo = summary["with cache"], summary["without cache"]
speedup = wo["total_s"] / w["total_s"]
print(f"same tokens in the timed runs: {timed_identical}. Over {n_new} tokens the cache made generation "
      f"{speedup:.1f}x faster; without it the last steps took {wo['last_ms'] / wo['first_ms']:.1f}x as long as "
      f"the first, with it {w['last_ms'] / w['first_ms']:.1f}x.")
cum = {name: np.cumsum(t["seconds"]) for name, t in timing.items()}
half = n_new // 2
growth = {name: float(c[-1] / c[half - 1]) for name, c in cum.items()}
print(f"doubling the tokens generated ({half} -> {n_new}) multiplied the total time by "
      + ", ".join(f"{g:.2f} {name}" for name, g in growth.items())
      + " (O(T) gives 2, O(T²) gives 4; fixed per-step costs pull both towards 2)")

# %% [markdown]
# ## 5. Prefill versus decode
# A 256-token prompt can enter the cache in one call (prefill: a few large matrix products) or one
# token at a time (decode: many tiny ones). The cache ends up holding the same keys and values
# either way; the time does not end up the same.

# %%
lesson.section("5. prefill a 256-token prompt at once, or one token at a time")
long_prompt = rng.integers(0, V, (1, 256))
with ta.no_grad():
    fast(long_prompt[:, :8])                              # warm-up
    start = time.perf_counter()
    pre_cache = fast.new_cache()
    pre_logits = fast(long_prompt, cache=pre_cache)
    prefill_s = time.perf_counter() - start
    start = time.perf_counter()
    dec_cache = fast.new_cache()
    for t in range(256):
        dec_logits = fast(long_prompt[:, t:t + 1], cache=dec_cache)
    decode_s = time.perf_counter() - start
same_cache = float(max(np.abs(a.keys.numpy() - b.keys.numpy()).max()
                       for a, b in zip(pre_cache.self_attn, dec_cache.self_attn)))
same_last = float(np.abs(pre_logits.numpy()[:, -1] - dec_logits.numpy()[:, -1]).max())
print(f"  prefill: {prefill_s * 1e3:7.1f} ms = {256 / prefill_s:8.0f} tokens/s")
print(f"  decode : {decode_s * 1e3:7.1f} ms = {256 / decode_s:8.0f} tokens/s")
print(f"cached keys differ by at most {same_cache:.1e} (float32), the last logits by {same_last:.1e}; prefill was "
      f"{decode_s / prefill_s:.0f}x faster per token. That is why serving systems split the two phases: "
      "the prompt in one pass, then one token per step.")

# %% [markdown]
# ## 6. What the cache costs in memory
# Per token the cache keeps one key and one value vector per layer and key/value head:
# 2 · layers · kv_heads · head_dim numbers, times the batch, times the bytes per number. It grows
# linearly with the length, and for long contexts it, not the weights, fills the memory. The same
# formula for published model configurations (16-bit numbers, one sequence of 4,096 tokens):

# %%
lesson.section("6. cache memory: measured for our model, the formula for real ones")
mem_model = make_model("float64")
cache = mem_model.new_cache()
lengths, measured, formula = [], [], []
a0 = mem_model.blocks[0].attn
with ta.no_grad():
    mem_model(rng.integers(0, V, (3, 4)), cache=cache)
    for t in range(4, 200):
        if t % 20 == 0:
            lengths.append(t)
            measured.append(cache.nbytes)
            formula.append(2 * mem_model.num_layers * 3 * a0.num_kv_heads * t * a0.head_dim * 8)
        mem_model(rng.integers(0, V, (3, 1)), cache=cache)
memory_exact = measured == formula
per_token = measured[-1] / lengths[-1]
print(f"our model (2 layers, 4 heads of 16, batch 3, float64): {per_token:,.0f} bytes per token; measured = formula "
      f"at every length: {memory_exact}")
configs = {"GPT-2 small (12 layers, 12 heads of 64)": (12, 12, 64),
           "Llama-2-7B (32 layers, 32 heads of 128)": (32, 32, 128),
           "Llama-2-70B (80 layers, 8 KV heads of 128, GQA)": (80, 8, 128)}
real = {}
for name, (layers, kv_heads, dim) in configs.items():
    real[name] = 2 * layers * kv_heads * dim * 2 * 4096
    print(f"  {name:<48} {2 * layers * kv_heads * dim * 2 / 2 ** 10:7.0f} KiB per token, "
          f"{real[name] / 2 ** 30:5.2f} GiB for 4,096 tokens")
big, small = real["Llama-2-70B (80 layers, 8 KV heads of 128, GQA)"], real["Llama-2-7B (32 layers, 32 heads of 128)"]
print(f"Llama-2-70B has 10x the parameters of the 7B model, yet its cache is {big / small:.2f}x the 7B's "
      f"({'smaller' if big < small else 'larger'}): its 64 query heads share 8 key/value heads "
      "(grouped-query attention, lesson 23).")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for name, t in timing.items():
    ms = t["seconds"][1:] * 1e3
    dots = axes[0].plot(positions[1:], ms, ".", ms=2, alpha=0.35)[0]
    running = [np.median(ms[max(0, i - 8):i + 9]) for i in range(len(ms))]    # robust to a busy machine
    axes[0].plot(positions[1:], running, color=dots.get_color(), label=f"{name} (running median)")
axes[0].set(xlabel="position of the generated token", ylabel="ms for that step", title="time per generated token")
axes[0].legend()
for name, c in cum.items():
    axes[1].loglog(np.arange(1, n_new + 1), c, label=f"{name} (x{growth[name]:.1f} from {half} to {n_new})")
ref = np.arange(1, n_new + 1)
axes[1].loglog(ref, cum["with cache"][-1] * (ref / n_new), "k:", lw=1, label="∝ T")
axes[1].loglog(ref, cum["without cache"][-1] * (ref / n_new) ** 2, "k--", lw=1, label="∝ T²")
axes[1].set(xlabel="tokens generated T", ylabel="total seconds", title="total time (log-log)")
axes[1].legend(fontsize=8)
axes[2].plot(lengths, np.array(measured) / 2 ** 10, "o-")
axes[2].set(xlabel="sequence length", ylabel="KiB", title="KV cache memory (batch 3, float64)")
fig.tight_layout()
lesson.savefig(fig, "kv_cache")

# %%
lesson.section("criterion")
lesson.record(unchanged_logits=unchanged, unchanged_kv=same_kv, hand_cache_err=hand_err, library_cache_err=lib_err,
              identical=identical, batch_equals_alone=batch_equals_alone, timed_identical=timed_identical,
              logits_err=logits_err, timing=summary, speedup=speedup, total_growth=growth,
              prefill_s=prefill_s, decode_s=decode_s, prefill_vs_decode_cache=same_cache,
              cache_lengths=lengths, cache_bytes=measured, cache_formula=formula, real_cache_bytes=real)
lesson.check("identical tokens with and without the cache (greedy, top-k, top-p; padded batch)",
             all(identical.values()) and batch_equals_alone and timed_identical,
             ", ".join(f"{k}: {v}" for k, v in identical.items()) + f"; batch = alone: {batch_equals_alone}")
lesson.check("cached steps reproduce one full pass (float64)",
             max(logits_err, hand_err, lib_err) < 1e-10 and unchanged < 1e-13 and same_kv == 0.0,
             f"logits {logits_err:.1e}, one layer by hand {hand_err:.1e}, nn.KVCache {lib_err:.1e}; "
             f"earlier positions with one more token: logits {unchanged:.1e}, keys/values {same_kv:.1e}")
lesson.check("cache bytes = 2 · layers · batch · kv_heads · T · head_dim · itemsize", memory_exact,
             f"{per_token:,.0f} bytes per token at every measured length")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/kv_cache.py`.
# 1. Without a cache, how many token-passes (tokens pushed through the model) does it take to
#    generate 100 tokens after a 10-token prompt, and how many with the cache? Count them by
#    wrapping the model's forward, then derive both numbers by hand.
# 2. Give the model `num_kv_heads=1` (multi-query attention). By what factor does the cache shrink,
#    and do the greedy tokens with and without the cache still agree?
# 3. A sliding-window cache `nn.KVCache(window=16, sinks=2)` on one attention layer: generate 100
#    steps and plot `nbytes` against the step. Where does it stop growing, and at how many bytes?
