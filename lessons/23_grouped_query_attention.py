"""Lesson 23 - grouped-query and multi-query attention: a smaller KV cache, and what it costs.

What it teaches: lesson 21's cache keeps, per token and layer, one key and one value vector per
head. Grouped-query attention (GQA; Ainslie et al., 2023) keeps all H query heads but gives them
only H_kv key/value heads: the query heads come in groups of H / H_kv, and a group reads one shared
key/value head. H_kv = H is ordinary multi-head attention (MHA), H_kv = 1 is multi-query attention
(MQA; Shazeer, 2019). The cache shrinks by H / H_kv exactly; the question is what quality that
costs. We write the grouping out by hand and check it against ``scaled_dot_product_attention(...,
enable_gqa=True)``, count parameters and cache bytes, then train MHA, GQA and MQA decoders with
the same parameter budget (the weights saved in the key/value projections go to a wider
feed-forward layer) on the same toy language, and put cache memory against held-out loss. Last,
the paper's recipe for making a GQA model from a trained MHA one: average the key/value heads of
each group, then train briefly ("uptraining").

The source articles (doc 000 .. doc 004, described in docs/sources.md) stop at the 2017 Transformer;
this lesson is part of issue 19's extension. No number comes from them.
Criterion: the hand-written grouping equals sdpa's enable_gqa (to 1e-12); the measured cache bytes
of MHA : GQA : MQA are 8 : 2 : 1; the three models' parameter counts agree within 1%; every model
learns the language (held-out accuracy on the predictable tokens >= 95%); mean-pooled GQA after
uptraining for 100 steps is back above 95% accuracy (whether that beats training GQA from
scratch for as many steps is measured and printed, not assumed).
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
from tinyattn import optim
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.models import DecoderOnlyTransformer

lesson = Lesson(23, "grouped-query attention")
rng = lesson.rng

# %% [markdown]
# ## 1. The grouping, written out
# Eight query heads, two key/value heads: query heads 0-3 read key/value head 0, heads 4-7 read
# head 1 (query head i reads key/value head i // (H / H_kv)). By hand: loop over the query heads
# and pick each one's key/value head. Then the library: sdpa with ``enable_gqa=True``, the switch
# PyTorch added for this.

# %%
lesson.section("1. query head i reads key/value head i // (H / H_kv)")
H, H_kv, T, D = 8, 2, 6, 4
q = ta.tensor(rng.normal(size=(1, H, T, D)))
k, v = (ta.tensor(rng.normal(size=(1, H_kv, T, D))) for _ in range(2))
group = H // H_kv
by_hand = []
for i in range(H):
    g = i // group
    w = ta.softmax(q[:, i] @ ta.swapaxes(k[:, g], -1, -2) / np.sqrt(D)
                   + ta.tensor(np.triu(np.full((T, T), -np.inf), 1)), axis=-1)
    by_hand.append(w @ v[:, g])
by_hand = ta.stack(by_hand, axis=1)
library = scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
grouping_err = float(np.abs(by_hand.numpy() - library.numpy()).max())
print(f"{H} query heads in {H_kv} groups of {group}: max |by hand - sdpa(enable_gqa=True)| = {grouping_err:.1e}")

# %% [markdown]
# ## 2. What shrinks: the key/value projections and the cache
# For width d and H heads of size D = d / H, one layer's key and value projections hold
# 2 · (d · H_kv · D + H_kv · D) numbers, and its cache 2 · H_kv · D numbers per token. The query
# and output projections do not change. To compare at an equal parameter budget, the weights a
# model saves there go to its feed-forward layer (each hidden unit costs 2d + 1 numbers).

# %%
lesson.section("2. parameters and cache per token, at an equal parameter budget")
V, d, LAYERS, HEADS, LENGTH = 16, 32, 2, 8, 20
head_dim = d // HEADS
VARIANTS = {"MHA": 8, "GQA": 2, "MQA": 1}


def kv_params(kv):
    return 2 * (d * kv * head_dim + kv * head_dim)


def ff_width(kv):
    """4d for MHA, plus the key/value weights saved, spent on feed-forward units."""
    return 4 * d + round((kv_params(HEADS) - kv_params(kv)) / (2 * d + 1))


def make(kv, seed=None):
    ta.manual_seed(lesson.seed if seed is None else seed)
    return DecoderOnlyTransformer(V, d_model=d, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=kv,
                                  dim_feedforward=ff_width(kv), max_len=LENGTH)


params = {}
for name, kv in VARIANTS.items():
    params[name] = make(kv).num_parameters()
    print(f"  {name}: {HEADS} query heads, {kv} key/value heads; k/v projections {kv_params(kv):5,} per layer, "
          f"feed-forward width {ff_width(kv)}, {params[name]:,} parameters; cache "
          f"{2 * LAYERS * kv * head_dim} numbers per token")
budget_spread = (max(params.values()) - min(params.values())) / params["MHA"]
print(f"parameter counts differ by at most {budget_spread:.2%}")

# %% [markdown]
# ## 3. A toy language
# Tokens 0..15. The first three tokens of a sequence are random; after that, token t is a fixed
# (random, unknown to the model) function of tokens t-1 and t-3, except that with probability 0.1
# it is replaced by a random token. A model must find the two earlier positions by attention and
# learn the 256-entry table. The noise sets a floor: no model can beat the entropy of the next
# token, which we compute exactly.

# %%
lesson.section("3. the language: x_t = table[x_(t-1), x_(t-3)], 10% noise")
NOISE = 0.1
table = rng.integers(0, V, (V, V))


def sample(generator, n):
    x = np.zeros((n, LENGTH), dtype=np.int64)
    x[:, :3] = generator.integers(0, V, (n, 3))
    for t in range(3, LENGTH):
        x[:, t] = table[x[:, t - 1], x[:, t - 3]]
        noisy = generator.random(n) < NOISE
        x[noisy, t] = generator.integers(0, V, int(noisy.sum()))
    return x


p_right = 1 - NOISE + NOISE / V
floor = float(-(p_right * np.log(p_right) + (V - 1) * (NOISE / V) * np.log(NOISE / V)))
held_out = sample(np.random.default_rng(10_000 + lesson.seed), 500)
print(f"lowest possible loss on the predictable tokens: {floor:.4f} nats; e.g. {held_out[0].tolist()}")


def evaluate(model):
    """Held-out loss on tokens 3.. and accuracy of the argmax against the rule (noise removed)."""
    with ta.no_grad():
        logits = model(held_out[:, :-1])[:, 2:]
        loss = float(F.cross_entropy(logits.reshape(-1, V), ta.tensor(held_out[:, 3:].reshape(-1))).numpy())
        rule = table[held_out[:, 2:-1], held_out[:, :-3]]
        acc = float((logits.numpy().argmax(-1) == rule).mean())
    return loss, acc


# %% [markdown]
# ## 4. Training MHA, GQA and MQA on the same batches
# Same seed, same initialisation scheme, same 250 batches of 32 sequences, AdamW. We evaluate on
# held-out sequences every 50 steps.

# %%
lesson.section("4. training the three variants")
STEPS, BATCH, EVERY = 250, 32, 50


def train(model, steps, seed, lr=1e-2, label=""):
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    data = np.random.default_rng(seed)
    progress = Progress(steps, every=steps, label=label)
    curve = []
    for step in range(1, steps + 1):
        x = sample(data, BATCH)
        logits = model(x[:, :-1])[:, 2:]
        loss = F.cross_entropy(logits.reshape(-1, V), ta.tensor(x[:, 3:].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVERY == 0:
            curve.append((step, *evaluate(model)))
        progress(step, float(loss.numpy()))
    return curve


models, curves = {}, {}
for name, kv in VARIANTS.items():
    models[name] = make(kv)
    curves[name] = train(models[name], STEPS, seed=lesson.seed + 1, label=f"{name:>4} ")
results = {name: {"loss": c[-1][1], "excess": c[-1][1] - floor, "accuracy": c[-1][2]} for name, c in curves.items()}
for name, r in results.items():
    print(f"  {name}: held-out loss {r['loss']:.4f} ({r['excess']:.4f} above the floor), accuracy against the rule "
          f"{r['accuracy']:.2%}")

# %% [markdown]
# ## 5. Cache memory against quality
# Each trained model generates 40 tokens for a batch of 4 prompts with its KV cache; the cache's
# bytes are read from the cache itself (float32).

# %%
lesson.section("5. cache memory against quality")
cache_bytes = {}
prompt = held_out[:4, :3]
for name, model in models.items():
    cache = model.new_cache()
    tokens = prompt
    with ta.no_grad():
        logits = model(tokens, cache=cache)
        for _ in range(16):
            nxt = logits.numpy()[:, -1].argmax(-1)[:, None]
            tokens = np.concatenate([tokens, nxt], axis=1)
            logits = model(nxt, cache=cache)
    cache_bytes[name] = cache.nbytes / (4 * tokens.shape[1])             # per token of one sequence
ratio = {name: cache_bytes[name] / cache_bytes["MQA"] for name in VARIANTS}
mha = results["MHA"]
for name in VARIANTS:
    r = results[name]
    print(f"  {name}: {cache_bytes[name]:5.0f} bytes per token ({ratio[name]:.0f}x MQA's), held-out loss "
          f"{r['loss']:.4f} ({r['excess'] - mha['excess']:+.4f} against MHA)")
order = sorted(VARIANTS, key=lambda n: results[n]["loss"])
print(f"Ranked by held-out loss: {' < '.join(order)}. Cutting the cache from {cache_bytes['MHA']:.0f} to "
      f"{cache_bytes['GQA']:.0f} bytes per token (GQA) changed the loss by "
      f"{results['GQA']['loss'] - mha['loss']:+.4f} nats, to {cache_bytes['MQA']:.0f} (MQA) by "
      f"{results['MQA']['loss'] - mha['loss']:+.4f}.")
for name in ("GQA", "MQA"):
    gaps = [(c[1] - m[1], c[0]) for c, m in zip(curves[name], curves["MHA"])]
    widest, at = max(gaps)
    print(f"  {name} against MHA during training: widest gap {widest:+.4f} nats at step {at}, "
          f"{gaps[-1][0]:+.4f} at the end ({'narrowing' if gaps[-1][0] < widest else 'not narrowing'})")

# %% [markdown]
# ## 6. From a trained MHA model to GQA: mean-pool, then uptrain
# Ainslie et al. make GQA models from MHA checkpoints: the key (and value) projection of each
# group becomes the mean of its heads' projections, then the model trains for a few percent of its
# original steps. We pool our trained MHA model's 8 key/value heads into 2, look at the loss right
# after pooling, and after 50 and 100 more steps, against a GQA model trained from scratch for the
# same number of steps (section 4's curve): does starting from the pooled checkpoint pay?

# %%
lesson.section("6. mean-pooling MHA's key/value heads into GQA, then uptraining")


def pooled_from(mha_model, kv):
    """A GQA model whose key/value projection for each group is the mean of the group's MHA heads
    (weights and biases); every other weight is the MHA model's, so its feed-forward layer keeps
    MHA's width (this model is not on the equal budget of section 4; it is a converted checkpoint)."""
    groups = HEADS // kv
    state = mha_model.state_dict()
    for key, w in state.items():
        if ".attn.k_proj." in key or ".attn.v_proj." in key:       # rows: head by head, D each
            state[key] = w.reshape(kv, groups, head_dim, *w.shape[1:]).mean(axis=1).reshape(
                kv * head_dim, *w.shape[1:])
    ta.manual_seed(lesson.seed)
    pooled = DecoderOnlyTransformer(V, d_model=d, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=kv,
                                    dim_feedforward=ff_width(HEADS), max_len=LENGTH)
    pooled.load_state_dict(state)
    return pooled


pooled = pooled_from(models["MHA"], VARIANTS["GQA"])
after_pooling = evaluate(pooled)
uptrain_curve = train(pooled, 100, seed=lesson.seed + 2, label="uptrain ")
scratch = {s: loss for s, loss, _ in curves["GQA"]}
print(f"  MHA parent (250 steps): held-out loss {results['MHA']['loss']:.4f}")
print(f"  pooled to 2 KV heads:   {after_pooling[0]:.4f} (accuracy {after_pooling[1]:.2%})")
pooling_vs_scratch = {}
for s, loss, acc in uptrain_curve:
    pooling_vs_scratch[s] = loss - scratch[s]
    print(f"  after {s:>3} steps: pooled start {loss:.4f} (accuracy {acc:.2%}), GQA from scratch {scratch[s]:.4f}: "
          f"{'pooled start ahead' if loss < scratch[s] else 'scratch ahead'} by {abs(loss - scratch[s]):.4f}")
uptrained = uptrain_curve[-1][1]
print(f"Pooling alone cost {after_pooling[0] - results['MHA']['loss']:+.4f} nats (the heads of a group were trained "
      f"apart, so their mean is not any of them); after 100 steps the gap to the parent was "
      f"{uptrained - results['MHA']['loss']:+.4f}.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for name, c in curves.items():
    steps_, losses = [s for s, _, _ in c], [loss - floor for _, loss, _ in c]
    axes[0].plot(steps_, losses, "o-", label=f"{name} ({VARIANTS[name]} KV heads)")
axes[0].set(xlabel="training step", ylabel="held-out loss above the floor (nats)", yscale="log",
            title="learning curves, equal parameter budget")
axes[0].legend()
for name in VARIANTS:
    axes[1].scatter(cache_bytes[name], results[name]["loss"], s=60)
    axes[1].annotate(f"  {name}", (cache_bytes[name], results[name]["loss"]))
axes[1].scatter([cache_bytes["GQA"]], [uptrained], marker="x", color="k")
axes[1].annotate("  GQA pooled from MHA\n  + 100 steps", (cache_bytes["GQA"], uptrained), fontsize=8)
axes[1].axhline(floor, color="gray", ls="--", lw=1)
axes[1].text(cache_bytes["MQA"], floor, " noise floor", va="bottom", color="gray", fontsize=8)
axes[1].set(xscale="log", xlabel="KV cache bytes per token (float32, 2 layers)", ylabel="held-out loss (nats)",
            title="cache memory against quality")
fig.tight_layout()
lesson.savefig(fig, "gqa_memory_vs_quality")

# %%
lesson.section("criterion")
lesson.record(grouping_err=grouping_err, params=params, budget_spread=budget_spread, floor=floor, results=results,
              curves=curves, cache_bytes_per_token=cache_bytes, cache_ratio=ratio, after_pooling=after_pooling,
              uptrain_curve=uptrain_curve, pooling_vs_scratch=pooling_vs_scratch)
lesson.check("hand-written grouping = sdpa(enable_gqa=True)", grouping_err < 1e-12, f"{grouping_err:.1e}")
lesson.check("cache bytes MHA : GQA : MQA = 8 : 2 : 1",
             [ratio[n] for n in VARIANTS] == [8.0, 2.0, 1.0], " : ".join(f"{ratio[n]:.0f}" for n in VARIANTS))
lesson.check("equal parameter budget (within 1%)", budget_spread < 0.01, f"spread {budget_spread:.2%}")
lesson.check("every variant learns the language (accuracy >= 95%)",
             all(r["accuracy"] >= 0.95 for r in results.values()),
             ", ".join(f"{n} {r['accuracy']:.1%}" for n, r in results.items()))
lesson.check("uptraining recovers the pooled model (>= 95% accuracy after 100 steps)", uptrain_curve[-1][2] >= 0.95,
             f"{after_pooling[1]:.1%} after pooling, {uptrain_curve[-1][2]:.1%} after 100 steps")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/grouped_query_attention.py`.
# 1. Llama-2-70B has 80 layers and 64 query heads of size 128 sharing 8 key/value heads. How many
#    bytes does its cache take per token in 16-bit numbers, and how many would the same model take
#    with multi-head attention? Compute both with `2 · layers · kv_heads · head_dim · 2`.
# 2. Mean-pool the trained MHA model all the way to one key/value head (MQA) instead of two. Is the
#    loss right after pooling worse or better than for two heads, and why?
# 3. Give every variant the same feed-forward width (no compensation): how many parameters does MQA
#    then have fewer than MHA, and does its held-out loss after 250 steps change?
