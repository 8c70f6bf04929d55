"""Lesson 25 - streaming attention: a sliding window, attention sinks, and text far past the training length.

What it teaches: a KV cache grows by one key and value per token (lesson 21), so a model that
must run for ever keeps only the last W tokens: a sliding window. Xiao et al. (2023, "Efficient
Streaming Language Models with Attention Sinks", StreamingLLM) found that large trained models
break as soon as the window slides past the *first* tokens, and that keeping those few tokens
("attention sinks") beside the window fixes it: softmax must put each query's weight somewhere,
and trained models park the weight they do not need on the first tokens. We write out which keys
each query sees and how the cache evicts, check both against the library, then train a small
decoder-only model (rotary positions, full attention) on sequences of 32 tokens and score
sequences 16 times as long: with full attention, with a window of 32 and no sinks, and with a
window of 28 plus 4 sinks (the same 32 cached keys), with the sinks at their absolute positions
(the library's default) and as StreamingLLM assigns them (positions inside the cache: the
library's ``sink_positions="cache"``, first written out by hand). Last, we
measure how much attention our model puts on the first token, which is what decides whether
sinks can matter.

The source articles (doc 000 .. doc 004, described in docs/sources.md) stop at the 2017 Transformer;
this lesson is part of issue 19's extension. No number comes from them.
Criterion: the written-out mask and the hand-written eviction equal the library's
(sliding_window_mask, nn.KVCache), whose size stops at sinks + window keys; a sliding-window
decoder's cached one-token steps reproduce one full pass, with either numbering of the sinks
(1e-10, float64); the hand-written model forward equals the library's with either numbering
(1e-10); the model learns the language at its training length (loss
within 0.1 nats of the best possible); with a window (no sinks) its loss far past the training
length (tokens 257-512) stays within 0.05 nats of its loss at the training length. How full
attention, sinks at absolute positions and sinks at cache positions do is measured and printed (and
the conclusions follow the numbers), not assumed.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim
from tinyattn.attention.rotary import rotary_embedding
from tinyattn.attention.sliding_window import sliding_window_mask
from tinyattn.models import DecoderOnlyTransformer

lesson = Lesson(25, "streaming attention with sinks")
rng = lesson.rng

# %% [markdown]
# ## 1. Which keys each query sees
# A causal query at position p sees keys 0..p. With a sliding window of W keys it sees only
# p-W+1..p (itself included); with s sinks also 0..s-1, however far back they are. Written out for
# 12 positions, W = 4, s = 2 ("#" = may attend), then the library's ``sliding_window_mask``.

# %%
lesson.section("1. the mask: the last W keys and the first s (W = 4, s = 2)")
T_SMALL, W_SMALL, S_SMALL = 12, 4, 2
p, j = np.arange(T_SMALL)[:, None], np.arange(T_SMALL)[None, :]
by_hand = (j <= p) & ((j > p - W_SMALL) | (j < S_SMALL))
for i, row in enumerate(by_hand):
    print(f"  query {i:>2}: " + "".join("#" if a else "." for a in row) + f"   {row.sum()} keys")
library_mask = sliding_window_mask(T_SMALL, window=W_SMALL, sinks=S_SMALL).numpy()
mask_equal = bool(np.array_equal(by_hand, library_mask))
print(f"written out = attention.sliding_window_mask: {mask_equal}; no query sees more than "
      f"{by_hand.sum(axis=1).max()} = W + s keys, however long the sequence")

# %% [markdown]
# ## 2. The cache that goes with it: evict everything but the sinks and the window
# Generating one token at a time, the cache appends each new key and value, the new query attends
# to what is kept, and then every key that no later query will see is dropped: all but the first
# s columns and the last W. By hand as a list of kept columns, against ``nn.KVCache(window=W,
# sinks=s)``. Then a whole decoder with attention='sliding' (random weights, float64): its cached
# one-token steps must give the logits of one pass over the whole sequence with the mask, with the
# sinks at their absolute positions and at their positions inside the cache (section 4).

# %%
lesson.section("2. eviction by hand = nn.KVCache(window, sinks); cached decoding = one pass")
kept, cache, same_columns, sizes = [], nn.KVCache(window=W_SMALL, sinks=S_SMALL), True, []
for t in range(T_SMALL):
    kept.append(t)
    kept = [c for c in kept if c < S_SMALL or c > t - W_SMALL]           # the next query is at t + 1
    k_new = ta.tensor(rng.normal(size=(1, 1, 1, 8)))
    cache.update(k_new, k_new)
    same_columns &= cache.positions.tolist() == kept
    sizes.append(len(cache))
print(f"after token {T_SMALL - 1} the cache keeps columns {kept}; hand-written = nn.KVCache at every step: "
      f"{same_columns}; keys kept after each step: {sizes}")

seq, cached_errs = rng.integers(0, 20, (2, 40)), {}
for sink_positions in ("absolute", "cache"):
    ta.manual_seed(lesson.seed)
    random_model = DecoderOnlyTransformer(20, d_model=32, num_layers=2, num_heads=4, positions="rope",
                                          attention="sliding", window=6, sinks=2,
                                          sink_positions=sink_positions).double().eval()
    with ta.no_grad():
        one_pass = random_model(seq).numpy()
        step_cache = random_model.new_cache()
        steps = [random_model(seq[:, t:t + 1], cache=step_cache).numpy() for t in range(40)]
    cached_errs[sink_positions] = float(np.abs(np.concatenate(steps, axis=1) - one_pass).max())
cached_err = max(cached_errs.values())
print(f"window 6 + 2 sinks, 40 tokens one at a time vs one pass: max logit difference "
      + ", ".join(f"{e:.1e} (sinks at {where} positions)" for where, e in cached_errs.items())
      + f"; the cache holds {len(step_cache.self_attn[0])} keys per layer")

# %% [markdown]
# ## 3. A small model, trained at 32 tokens
# The language of lesson 23 with a beginning-of-sequence token: BOS, three random tokens, then each
# token is a fixed random function of the tokens 1 and 3 places back, replaced by a random token
# with probability 0.1. The loss cannot go below the entropy of that noise. Two layers, four heads,
# rotary positions, ordinary (full) causal attention, sequences of 32 tokens: the setting of
# StreamingLLM, where models are trained with full attention on a fixed length and only at
# inference run with a window.

# %%
lesson.section("3. training a decoder (rotary positions, full attention) on 32-token sequences")
V, BOS, LENGTH, NOISE, STEPS, BATCH = 16, 16, 32, 0.1, 300, 32
table = rng.integers(0, V, (V, V))


def sample(generator, n, length):
    """n sequences of ``length`` tokens: BOS, 3 random, then table[x_(t-1), x_(t-3)] with noise."""
    x = np.zeros((n, length), dtype=np.int64)
    x[:, 0] = BOS
    x[:, 1:4] = generator.integers(0, V, (n, 3))
    for t in range(4, length):
        x[:, t] = table[x[:, t - 1], x[:, t - 3]]
        noisy = generator.random(n) < NOISE
        x[noisy, t] = generator.integers(0, V, int(noisy.sum()))
    return x


p_right = 1 - NOISE + NOISE / V
floor = float(-(p_right * np.log(p_right) + (V - 1) * (NOISE / V) * np.log(NOISE / V)))


def make(**attention):
    ta.manual_seed(lesson.seed)
    return DecoderOnlyTransformer(V + 1, d_model=32, num_layers=2, num_heads=4, positions="rope", **attention)


model = make()
opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
data = np.random.default_rng(lesson.seed + 1)
progress = Progress(STEPS, every=100, label="full attention, T = 32 ")
for step in range(1, STEPS + 1):
    x = sample(data, BATCH, LENGTH + 1)
    loss = F.cross_entropy(model(x[:, :-1])[:, 3:].reshape(-1, V + 1), ta.tensor(x[:, 4:].reshape(-1)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    progress(step, float(loss.numpy()))
print(f"noise floor: {floor:.4f} nats per predictable token")

# %% [markdown]
# ## 4. Far past the training length: 512 tokens
# 16 fresh sequences of 16 x 32 = 512 tokens, scored in one pass. We report the *excess* loss per
# position: the model's loss minus the best any model could do on those very tokens (-log 0.906
# where the rule held, -log(0.1/16) where noise replaced it), so that a stretch that happens to
# hold more noisy tokens does not look like a worse model. The same trained weights run as:
#  * full attention (every earlier token; the reference, at positions it never saw in training);
#  * a window of 32 keys, no sinks;
#  * a window of 28 keys + 4 sinks, the library's way: every key keeps its absolute position, so a
#    query at position 500 meets the sink keys rotated 500 positions away;
#  * the same window + sinks, StreamingLLM's way: positions counted inside the cache, so the sinks
#    always sit just before the window (at most 31 positions from the query). Numbered inside the
#    set it sees (sinks 0..3, window 4..31), the query is at 31 and a window key keeps its distance
#    to it, so only the sinks' scores change: they are scored as if the query stood at
#    min(p, 31). We write the model's forward out by hand that way, then use the library's switch,
#    ``DecoderOnlyTransformer(..., sink_positions="cache")`` (its cache keeps the keys unrotated
#    and turns them at attention time), checked equal to the hand version with both numberings.

# %%
lesson.section("4. scoring 512 tokens: full attention, window, window + sinks (absolute / cache positions)")
EVAL_T, WINDOW, SINKS = 16 * LENGTH, LENGTH, 4
evaluation = sample(np.random.default_rng(10_000 + lesson.seed), 16, EVAL_T + 1)
state = model.state_dict()


def load(**attention):
    m = make(**attention).double().eval()
    m.load_state_dict(state)
    return m


def by_hand(m, tokens, window, sinks, sink_positions):
    """The decoder's forward with the attention core in NumPy: rotary q and k, the sliding mask with
    sinks, softmax, values. sink_positions 'absolute' (the library's default) or 'cache' (StreamingLLM's:
    for query p the sinks are scored as if p were at min(p, window + sinks - 1))."""
    T = tokens.shape[1]
    pos = np.arange(T)
    allowed = sliding_window_mask(T, window=window, sinks=sinks).numpy()
    x = m.tok_emb(tokens)
    for block in m.blocks:
        a = block.attn
        q, k, v = a.project(block.ln1(x))                                   # (N, H, T, D)
        qr, kr = rotary_embedding(q, pos).numpy(), rotary_embedding(k, pos).numpy()
        scores = qr @ kr.swapaxes(-1, -2) / np.sqrt(a.head_dim)
        if sink_positions == "cache":
            q_at = rotary_embedding(q, np.minimum(pos, window + sinks - 1)).numpy()
            scores[..., :sinks] = q_at @ kr[..., :sinks, :].swapaxes(-1, -2) / np.sqrt(a.head_dim)
        scores = np.where(allowed, scores, -np.inf)
        w = np.exp(scores - scores.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        x = x + a.merge_heads(ta.tensor(w @ v.numpy()))
        x = x + block.ff(block.ln2(x))
    return m.lm_head(m.ln_f(x))


def loss_per_token(logits, tokens):
    """(N, T) loss of each next token."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


inputs = evaluation[:, :-1]
sliding = {where: load(attention="sliding", window=WINDOW - SINKS, sinks=SINKS, sink_positions=where)
           for where in ("absolute", "cache")}
with ta.no_grad():
    check_in = inputs[:4, :128]
    hand_errs = {where: float(np.abs(by_hand(m, check_in, WINDOW - SINKS, SINKS, where).numpy()
                                     - m(check_in).numpy()).max()) for where, m in sliding.items()}
    logits = {"full attention": load()(inputs).numpy(),
              f"window {WINDOW}, no sinks": load(attention="sliding", window=WINDOW)(inputs).numpy(),
              f"window {WINDOW - SINKS} + {SINKS} sinks (absolute positions)": sliding["absolute"](inputs).numpy(),
              f"window {WINDOW - SINKS} + {SINKS} sinks (cache positions)": sliding["cache"](inputs).numpy()}
hand_err = max(hand_errs.values())
print("hand-written forward vs the library (window + sinks): max logit difference "
      + ", ".join(f"{e:.1e} (sink_positions={where!r})" for where, e in hand_errs.items()))
# the best any model can do on these very tokens: -log p_right where the rule was kept, -log(NOISE / V)
# where noise replaced it (so a span with more noisy tokens by chance does not look like a worse model)
rule = table[evaluation[:, 3:-1], evaluation[:, 1:-3]]
oracle = np.where(evaluation[:, 4:] == rule, -np.log(p_right), -np.log(NOISE / V))
per_token = {name: loss_per_token(lg, evaluation)[:, 3:] - oracle for name, lg in logits.items()}
losses = {name: e.mean(axis=0) for name, e in per_token.items()}       # excess loss per position
SPANS = [(0, LENGTH - 3), (LENGTH - 3, 2 * LENGTH - 3), (2 * LENGTH - 3, 4 * LENGTH - 3),
         (4 * LENGTH - 3, 8 * LENGTH - 3), (8 * LENGTH - 3, EVAL_T - 3)]
span_of = lambda a, b: f"{a + 4}-{b + 3}"                           # noqa: E731 - positions of the tokens
span_loss = {name: {span_of(a, b): float(e[a:b].mean()) for a, b in SPANS} for name, e in losses.items()}
print(f"  {'excess loss over the best possible, tokens':<48}"
      + "".join(f"{s:>10}" for s in span_loss["full attention"]))
for name, spans in span_loss.items():
    print(f"  {name:<48}" + "".join(f"{v:10.3f}" for v in spans.values()))
inside, far = span_of(*SPANS[0]), span_of(*SPANS[-1])
names = list(losses)
drift = {name: spans[far] - spans[inside] for name, spans in span_loss.items()}
for name in names:
    verdict = "holds" if drift[name] < 0.05 else "breaks down"
    print(f"  {name}: {drift[name]:+.3f} nats from the training length to tokens {far}: {verdict}")


# %% [markdown]
# ## 5. Where the attention goes, and why sinks did (or did not) matter here
# StreamingLLM's argument: a query that needs nothing in particular still has to spend its
# softmax weight, and trained models learn to spend it on the first tokens (visible to every
# query). Take those away and the weight lands on tokens that do matter, disturbing the output.
# So the question for our model is how much weight its heads put on position 0, against the
# 1/(p + 1) that uniform attention would give it. Measured at positions 8..31 of the held-out
# sequences, for each layer and head (full attention, inside the training length).

# %%
lesson.section("5. attention weight on position 0, per layer and head")
full_model = load()
probe = evaluation[:, :LENGTH]
pos = np.arange(LENGTH)
mass, uniform = {}, float(np.mean(1.0 / (np.arange(8, LENGTH) + 1)))
with ta.no_grad():
    x = full_model.tok_emb(probe)
    for layer, block in enumerate(full_model.blocks):
        a = block.attn
        q, k, _ = a.project(block.ln1(x))
        s = rotary_embedding(q, pos).numpy() @ rotary_embedding(k, pos).numpy().swapaxes(-1, -2) / np.sqrt(a.head_dim)
        s = np.where(np.tril(np.ones((LENGTH, LENGTH), dtype=bool)), s, -np.inf)
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        mass[f"layer {layer}"] = w[:, :, 8:, 0].mean(axis=(0, 2)).tolist()           # per head
        x = block(x, np.broadcast_to(pos, probe.shape))
for name, per_head in mass.items():
    print(f"  {name}: " + "  ".join(f"head {h} {m:.3f}" for h, m in enumerate(per_head))
          + f"   (uniform {uniform:.3f})")
top = max((m, name, h) for name, per_head in mass.items() for h, m in enumerate(per_head))
has_sink = top[0] > 3 * uniform                   # a head giving position 0 over 3x its uniform share
print(f"The head that leans most on position 0 ({top[1]}, head {top[2]}) gives it {top[0]:.1%} of its weight, "
      f"{top[0] / uniform:.1f}x uniform: this model has {'a sink head' if has_sink else 'no clear sink'}.")


def paired(a_name, b_name):
    """Mean over the far tokens of loss(a) - loss(b), and its standard error across the sequences
    (the same tokens for both, so only the models' difference is left)."""
    lo = SPANS[-1][0]
    d = (per_token[a_name][:, lo:] - per_token[b_name][:, lo:]).mean(axis=1)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


full_name, window_name, abs_name, cache_name = names
sink_gain, sink_se = paired(window_name, cache_name)        # > 0: the sinks (cache positions) helped
abs_cost, abs_se = paired(abs_name, window_name)            # > 0: absolute-position sinks hurt
sinks_helped = sink_gain > 2 * sink_se
print(f"Tokens {far}, excess loss: no sinks {span_loss[window_name][far]:.3f}, sinks at cache positions "
      f"{span_loss[cache_name][far]:.3f}, sinks at absolute positions {span_loss[abs_name][far]:.3f} nats.")
print(f"  sinks at cache positions against no sinks: {sink_gain:+.3f} ± {sink_se:.3f} nats better "
      + (f"- keeping the first tokens visible helped: it removed {sink_gain / span_loss[window_name][far]:.0%} of "
         f"the no-sink model's excess loss there." if sinks_helped else
         "- within twice its standard error: on this model keeping the sinks did not measurably help. "
         + ("Its sink head parks weight on position 0, but what the model predicts needs only the tokens 1 "
            "and 3 back, well inside the window; when position 0 is gone that weight spreads over the "
            "window without disturbing the prediction. " if has_sink else
            "No head gives position 0 much more than its uniform share, so there is little for the sinks "
            "to keep. ")
         + f"StreamingLLM's collapse comes from large models whose many sink heads put most of their weight "
           f"there; a 2-layer model trained {STEPS} steps is not one."))
print(f"  sinks at absolute positions against no sinks: {abs_cost:+.3f} ± {abs_se:.3f} nats worse"
      + (f": a query at position {EVAL_T - 1} meets the sink keys rotated {EVAL_T - 1} positions away, a distance "
         f"never seen in training (at most {LENGTH - 1}). StreamingLLM counts positions inside the cache for this "
         f"reason, and so does the library with sink_positions='cache' (its default, 'absolute', caches the keys "
         f"already rotated)."
         if abs_cost > 2 * abs_se else "; no measurable harm here."))
if abs_cost > 2 * abs_se:              # where do the failures fall? the dominant period of the excess curve
    tail = losses[abs_name][LENGTH:]
    spectrum = np.abs(np.fft.rfft(tail - tail.mean()))
    period = len(tail) / (1 + int(np.argmax(spectrum[1:])))
    head_dim = full_model.blocks[0].attn.head_dim
    turns = 2 * np.pi / (10000.0 ** (-np.arange(0, head_dim, 2) / head_dim))      # full turn of each pair
    nearest = float(turns[np.argmin(np.abs(turns - period))])
    print(f"  the absolute-position sinks fail in bursts that repeat every {period:.0f} positions (the strongest "
          f"period of their excess loss); the rotary pairs of a head of {head_dim} features turn full circle every "
          + ", ".join(f"{t:,.0f}" for t in turns) + f" positions: the nearest, {nearest:.0f}, "
          + ("matches" if abs(nearest - period) / period < 0.15 else "does not match")
          + " (consistent with the sinks' scores looking like training's again each time their rotation "
          "comes back round).")
    record_period = (period, nearest)
else:
    record_period = None
print(f"  full attention, the reference: {drift[full_name]:+.3f} nats from the training length to tokens {far}: "
      f"rotary positions at distances up to {EVAL_T - 1}, after training at distances up to {LENGTH - 1}.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(14, 4.3), gridspec_kw={"width_ratios": [2.2, 1]})
kernel = np.ones(16) / 16                                       # a running mean over 16 positions
for name, excess in losses.items():
    smooth = np.convolve(excess, kernel, mode="valid")
    axes[0].plot(np.arange(len(smooth)) + 4 + 7.5, smooth, label=name)
axes[0].axvline(LENGTH, color="gray", ls="--", lw=1)
axes[0].text(LENGTH, 0.9 * axes[0].get_ylim()[1], " training length", va="top", color="gray", fontsize=8)
axes[0].axhline(0, color="gray", ls=":", lw=1)
axes[0].set(xlabel="position of the predicted token",
            ylabel="excess loss (nats; running mean over 16)", title="scoring 16x the training length")
axes[0].legend(fontsize=8)
heads = np.array([mass[f"layer {i}"] for i in range(len(mass))])
im = axes[1].imshow(heads, cmap="viridis", vmin=0, vmax=max(heads.max(), uniform))
axes[1].set(xticks=range(heads.shape[1]), yticks=range(heads.shape[0]), xlabel="head", ylabel="layer",
            title=f"weight on position 0 (uniform {uniform:.3f})")
for (r, c), m in np.ndenumerate(heads):
    axes[1].text(c, r, f"{m:.2f}", ha="center", va="center", color="w" if m < heads.max() / 2 else "k")
fig.colorbar(im, ax=axes[1])
fig.tight_layout()
lesson.savefig(fig, "streaming")

# %%
lesson.section("criterion")
lesson.record(mask_equal=mask_equal, same_columns=same_columns, cache_sizes=sizes, cached_err=cached_err,
              cached_errs=cached_errs, hand_err=hand_err, hand_errs=hand_errs, floor=floor, span_loss=span_loss, drift=drift, mass_on_first=mass,
              uniform_mass=uniform, excess_per_position=losses, sink_gain=[sink_gain, sink_se],
              absolute_sink_cost=[abs_cost, abs_se], sinks_helped=sinks_helped,
              absolute_sink_period=record_period, has_sink=has_sink)
lesson.check("mask and eviction written out = the library's; the cache stops at sinks + window",
             mask_equal and same_columns and max(sizes) == W_SMALL + S_SMALL,
             f"mask {mask_equal}, columns {same_columns}, at most {max(sizes)} keys")
lesson.check("cached sliding-window decoding and the hand-written forward = one library pass (float64)",
             max(cached_err, hand_err) < 1e-10, f"cached {cached_err:.1e}, by hand {hand_err:.1e}")
trained_excess = span_loss[full_name][inside]
lesson.check("the model learns the language (excess loss at the training length < 0.1 nats)",
             trained_excess < 0.1, f"{trained_excess:.3f}")
lesson.check(f"with a window its loss far past the training length (tokens {far}) holds (within 0.05 nats)",
             drift[window_name] < 0.05, f"{drift[window_name]:+.3f} nats")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/streaming_attention_sinks.py`.
# 1. A model with 32 layers and 8 key/value heads of 128 features (float16) streams with a window
#    of 4,092 tokens and 4 sinks. How many bytes does its cache hold after 100,000 tokens, and how
#    many would a full KV cache hold? Measure one layer with `nn.KVCache(window=4092, sinks=4)`
#    (feed the tokens 1,000 at a time) and multiply by the layers.
# 2. With a window of W keys and no sinks, how far back can a token influence the last token's
#    logits through 2 layers? Change one early token of a 2-layer model with W = 4 and find the
#    earliest position whose change moves the last logits.
# 3. With rotary positions and a window, score only the last tokens of a sequence (as many as the
#    answer to 2), starting again from position 0: are the last logits the same as those of the
#    whole sequence? And with learned positions?
