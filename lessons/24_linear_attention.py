"""Lesson 24 - linear attention: O(T) cost, a fixed-size state, and what it forgets.

What it teaches: softmax attention weighs key j for query i by exp(q_i·k_j), so every query meets
every key: T² work for T tokens. Linear attention (Katharopoulos et al., 2020, "Transformers are
RNNs") replaces exp(q·k) by a product of feature maps φ(q)·φ(k) (here φ(x) = elu(x) + 1 > 0). The
sum can then be reordered, φ(q_i)ᵀ(Σ_j φ(k_j) v_jᵀ), and the (T, T) matrix never exists: the keys
and values are folded into one d x dv matrix S and one d-vector z. Causal attention keeps running
sums S_i, z_i, which is an RNN: one token costs O(d·dv) whatever the position, and the "cache" is
S and z, not the keys. We write both forms out in NumPy and show them equal to the quadratic form
with the same feature map and to the library; measure time against length for softmax and linear
attention (log-log slopes); then train small models on associative recall (a list of key -> value
pairs, then a key: answer its value) with softmax and with linear attention as the list grows,
and look at why linear attention loses: n pairs must share one d x dv state.

The source articles (doc 000 .. doc 004, described in docs/sources.md) stop at the 2017 Transformer;
this lesson is part of issue 19's extension. No number comes from them.
Criterion: the reordered, prefix-sum and recurrent forms equal the quadratic form with the same
feature map and the library's linear_attention / linear_attention_step (to 1e-12, float64); the
fitted log-log time slopes are near 2 for softmax and near 1 for linear attention (forward and
backward; broad ranges, since times depend on the machine); softmax recalls >= 95% at every list
length; linear attention loses accuracy as the list grows (at 64 pairs it is >= 20 points below
softmax) and a larger state (d = 8, 16, 32) recalls more.
"""
# %%
from _common import Lesson, Progress

import time

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim
from tinyattn.attention import scaled_dot_product_attention
from tinyattn.attention.linear_attention import feature_map, linear_attention, linear_attention_step
from tinyattn.models import DecoderOnlyTransformer

lesson = Lesson(24, "linear attention")
rng = lesson.rng

# %% [markdown]
# ## 1. The quadratic form with a feature map, and the same sum reordered
# Softmax attention: out_i = Σ_j w_ij v_j with w_ij = exp(q_i·k_j) / Σ_l exp(q_i·k_l). Any
# non-negative similarity works in that formula. Take sim(q, k) = φ(q)·φ(k): the weight matrix is
# A = φ(Q) φ(K)ᵀ, each row divided by its sum, and out = A V. That is still T x T. But
# (φ(Q) φ(K)ᵀ) V = φ(Q) (φ(K)ᵀ V): computed right to left, φ(K)ᵀV is a d x dv matrix S and the row
# sums are φ(Q) z with z = Σ_j φ(k_j). Cost O(T·d·dv) instead of O(T²·d).

# %%
lesson.section("1. quadratic form with phi = elu + 1, and the reordered sum (NumPy)")
T, d, dv = 7, 4, 3
Q, K, Vals = rng.normal(size=(T, d)), rng.normal(size=(T, d)), rng.normal(size=(T, dv))


def phi(x):
    """elu(x) + 1: x + 1 above zero, exp(x) below; always > 0, so every weight is >= 0."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


EPS = 1e-6                                       # the library adds it to every denominator
A = phi(Q) @ phi(K).T                            # (T, T) similarities
quadratic = (A / (A.sum(axis=1, keepdims=True) + EPS)) @ Vals
S, z = phi(K).T @ Vals, phi(K).sum(axis=0)       # (d, dv) and (d,): all that is kept of K and V
reordered = (phi(Q) @ S) / (phi(Q) @ z + EPS)[:, None]
library = linear_attention(ta.tensor(Q), ta.tensor(K), ta.tensor(Vals)).numpy()
reorder_err = float(np.abs(quadratic - reordered).max())
library_err = float(np.abs(library - quadratic).max())
print(f"A is {A.shape}; S is {S.shape}, z is {z.shape}: {S.size + z.size} numbers for {T} keys and values")
print(f"max |reordered - quadratic| = {reorder_err:.1e};  "
      f"max |attention.linear_attention - quadratic| = {library_err:.1e}")

# %% [markdown]
# ## 2. Causal: prefix sums, that is, an RNN
# With a causal mask query i may only see keys 0..i, so the quadratic form keeps the lower triangle
# of A. Reordered, query i needs S_i = Σ_{j<=i} φ(k_j) v_jᵀ and z_i = Σ_{j<=i} φ(k_j): running
# sums. Written as a loop it is a recurrent network whose state is (S, z):
#     S_i = S_{i-1} + φ(k_i) v_iᵀ,   z_i = z_{i-1} + φ(k_i),   out_i = φ(q_i)ᵀ S_i / φ(q_i)ᵀ z_i.
# The library computes all S_i at once with ``cumsum`` (training), and one step at a time with
# ``linear_attention_step`` (generation); a decoder with attention='linear' keeps (S, z) per layer
# as its cache.

# %%
lesson.section("2. causal: the masked quadratic form = prefix sums = the recurrence = the library")
causal_quadratic = np.tril(A)
causal_quadratic = (causal_quadratic / (causal_quadratic.sum(axis=1, keepdims=True) + EPS)) @ Vals
S_run, z_run, recurrent = np.zeros((d, dv)), np.zeros(d), []
for i in range(T):
    S_run = S_run + np.outer(phi(K[i]), Vals[i])
    z_run = z_run + phi(K[i])
    recurrent.append(phi(Q[i]) @ S_run / (phi(Q[i]) @ z_run + EPS))
recurrent = np.array(recurrent)
lib_causal = linear_attention(ta.tensor(Q), ta.tensor(K), ta.tensor(Vals), causal=True).numpy()
state, lib_steps = None, []
for i in range(T):
    out, state = linear_attention_step(ta.tensor(Q[i]), ta.tensor(K[i]), ta.tensor(Vals[i]), state)
    lib_steps.append(out.numpy())
causal_errs = {"recurrence vs masked quadratic": float(np.abs(recurrent - causal_quadratic).max()),
               "linear_attention(causal=True)": float(np.abs(lib_causal - causal_quadratic).max()),
               "linear_attention_step, one by one": float(np.abs(np.array(lib_steps) - causal_quadratic).max()),
               "final state S": float(np.abs(state[0].numpy() - S_run).max())}
for name, err in causal_errs.items():
    print(f"  {name:<36} max difference {err:.1e}")

# a whole decoder with linear attention: its cache is a fixed-size state, a full decoder's grows
cache_bytes = {}
for attention in ("full", "linear"):
    ta.manual_seed(lesson.seed)
    model = DecoderOnlyTransformer(32, d_model=32, num_layers=2, num_heads=4, max_len=300,
                                   attention=attention).double().eval()
    seq, cache, sizes = rng.integers(0, 32, (1, 256)), model.new_cache(), {}
    with ta.no_grad():
        model(seq[:, :1], cache=cache)
        for t in range(1, 256):
            model(seq[:, t:t + 1], cache=cache)
            if t + 1 in (16, 64, 256):
                sizes[t + 1] = cache.nbytes
    cache_bytes[attention] = sizes
    print(f"  decoder cache, attention={attention!r:<9} after 16 / 64 / 256 tokens: "
          + " / ".join(f"{b:,}" for b in sizes.values()) + " bytes")
print(f"The linear decoder's cache stays {cache_bytes['linear'][256]:,} bytes (2 layers x 4 heads x (8 x 8 + 8) "
      f"float64 numbers); the softmax decoder's grows by {cache_bytes['full'][256] // 256:,} bytes per token.")

# %% [markdown]
# ## 3. Time against length
# One head of size d = 16, causal, float32, lengths 1,024 .. 8,192 (below that, fixed per-call costs
# hide how the work grows); every case timed in five rounds and the fastest kept (the machine is
# shared: the minimum is the least disturbed). Softmax attention
# is the library's ``scaled_dot_product_attention`` (its compiled kernel streams over tiles, so
# memory stays O(T), but it still compares every query with every earlier key: O(T²·d) work).
# Linear attention's causal form builds the prefix sums S_i, a (T, d, dv) array: O(T·d·dv) work
# and memory. Which one is faster at a given T depends on d (T·d against d²); the slope of
# log(time) against log(T) does not: ~2 for softmax, ~1 for linear.

# %%
lesson.section("3. forward and forward + backward time against T, d = 16")
D_HEAD, LENGTHS, ROUNDS = 16, [1024, 2048, 4096, 8192], 5
kinds = {"softmax": lambda q, k, v: scaled_dot_product_attention(q, k, v, is_causal=True),
         "linear": lambda q, k, v: linear_attention(q, k, v, causal=True)}
qkv_of_length = {T: [ta.tensor(rng.normal(size=(1, T, D_HEAD)).astype(np.float32), requires_grad=True)
                     for _ in range(3)]
                 for T in LENGTHS}


def seconds(fn, T, backward):
    q, k, v = qkv_of_length[T]
    start = time.perf_counter()
    if backward:
        fn(q, k, v).sum().backward()
    else:
        with ta.no_grad():
            fn(q, k, v)
    return time.perf_counter() - start


for fn in kinds.values():                             # warm-up: kernels compiled / loaded
    seconds(fn, LENGTHS[0], True)
labels = {f"{name}, {'forward + backward' if backward else 'forward'}": (fn, backward)
          for name, fn in kinds.items() for backward in (False, True)}
# every round times every case once, so a burst of load from elsewhere hits all lengths alike;
# each case keeps its fastest round
runs = {label: {T: [] for T in LENGTHS} for label in labels}
for _ in range(ROUNDS):
    for label, (fn, backward) in labels.items():
        for T in LENGTHS:
            runs[label][T].append(seconds(fn, T, backward))
timings = {label: [min(runs[label][T]) for T in LENGTHS] for label in labels}
slopes = {label: float(np.polyfit(np.log(LENGTHS), np.log(t), 1)[0]) for label, t in timings.items()}
for label, t in timings.items():
    print(f"  {label:<30} " + "  ".join(f"{s * 1e3:7.1f}" for s in t) + f"  ms   slope {slopes[label]:.2f}")
print(f"  {'T =':<30} " + "  ".join(f"{T:>7}" for T in LENGTHS))
ratio = {T: timings["softmax, forward"][i] / timings["linear, forward"][i] for i, T in enumerate(LENGTHS)}
faster_from = next((T for T in LENGTHS if ratio[T] > 1), None)
print(f"Doubling T multiplied softmax's forward time by {2 ** slopes['softmax, forward']:.1f} and linear's by "
      f"{2 ** slopes['linear, forward']:.1f} (the fitted slopes). "
      + (f"Linear attention was the faster one from T = {faster_from} (softmax / linear at T = {LENGTHS[-1]}: "
         f"{ratio[LENGTHS[-1]]:.1f}x)." if faster_from else
         f"At these lengths softmax was still faster (its kernel is compiled; linear pays d·dv per token)."))

# %% [markdown]
# ## 4. Associative recall: what a fixed-size state costs
# A sequence is n key -> value pairs (n distinct keys out of 64, values out of 16), then one of
# its keys again; the answer is that key's value. Each pair is one input vector (key embedding +
# value embedding), the query is the key's embedding, and one attention layer reads the pairs:
#     q = W_q e(key),  k_j = W_k x_j,  v_j = W_v x_j  (queries and keys of size d),  logits = W_o attn(q, k, v).
# (One vector per pair keeps the task to one attention layer; with key and value as separate tokens
# a model would first need a layer that moves each key into its value's position.)
# The same model with softmax attention (``scaled_dot_product_attention``) or linear attention
# (``linear_attention``), trained on lists of 2 .. 64 pairs (each batch one length, in turn), then
# tested on 1,000 fresh lists per length. Linear attention is trained with d = 8, 16 and 32.

# %%
lesson.section("4. associative recall: softmax vs linear attention as the list grows")
N_KEYS, N_VALUES, WIDTH, PAIRS, STEPS, BATCH = 64, 16, 64, [2, 4, 8, 16, 32, 64], 1000, 64


class Recall(nn.Module):
    """n (key, value) pairs and a query key -> logits over the values, through one attention."""

    def __init__(self, attention, d):
        super().__init__()
        self.attention = attention
        self.key_emb, self.val_emb = nn.Embedding(N_KEYS, WIDTH), nn.Embedding(N_VALUES, WIDTH)
        self.q_proj, self.k_proj = nn.Linear(WIDTH, d), nn.Linear(WIDTH, d)
        self.v_proj, self.out = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, N_VALUES)

    def qkv(self, keys, values, query):
        x = self.key_emb(keys) + self.val_emb(values)                     # (N, n, WIDTH)
        return self.q_proj(self.key_emb(query[:, None])), self.k_proj(x), self.v_proj(x)

    def forward(self, keys, values, query):
        q, k, v = self.qkv(keys, values, query)
        attend = scaled_dot_product_attention if self.attention == "softmax" else linear_attention
        return self.out(attend(q, k, v)[:, 0])


def recall_batch(generator, size, n):
    keys = np.argsort(generator.random((size, N_KEYS)), axis=1)[:, :n]  # n distinct keys per list
    values = generator.integers(0, N_VALUES, (size, n))
    asked = generator.integers(0, n, size)
    rows = np.arange(size)
    return keys, values, keys[rows, asked], values[rows, asked], asked


def train_recall(attention, d):
    ta.manual_seed(lesson.seed)
    model = Recall(attention, d)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    data = np.random.default_rng(lesson.seed + 1)
    progress = Progress(STEPS, every=STEPS // 2, label=f"{attention:>7}, d = {d:<2} ")
    for step in range(1, STEPS + 1):
        keys, values, query, answer, _ = recall_batch(data, BATCH, PAIRS[step % len(PAIRS)])
        loss = F.cross_entropy(model(keys, values, query), ta.tensor(answer))
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress(step, float(loss.numpy()))
    return model


test_sets = {n: recall_batch(np.random.default_rng(10_000 + lesson.seed + n), 1000, n) for n in PAIRS}


def accuracy(model):
    with ta.no_grad():
        return {n: float((model(k, v, q).numpy().argmax(-1) == y).mean()) for n, (k, v, q, y, _) in test_sets.items()}


VARIANTS = {"softmax, d = 16": ("softmax", 16), "linear, d = 8": ("linear", 8),
            "linear, d = 16": ("linear", 16), "linear, d = 32": ("linear", 32)}
recall_models = {name: train_recall(*spec) for name, spec in VARIANTS.items()}
recall = {name: accuracy(m) for name, m in recall_models.items()}
print(f"  {'accuracy, n pairs =':<20}" + "".join(f"{n:>7}" for n in PAIRS))
for name, acc in recall.items():
    print(f"  {name:<20}" + "".join(f"{acc[n]:7.1%}" for n in PAIRS))
soft, lin = recall["softmax, d = 16"], recall["linear, d = 16"]
first_drop = next((n for n in PAIRS if soft[n] - lin[n] > 0.05), None)
print(f"Softmax recalls at least {min(soft.values()):.1%} at every length. Linear attention of the same size "
      f"(d = 16) falls from {lin[PAIRS[0]]:.1%} at {PAIRS[0]} pairs to {lin[PAIRS[-1]]:.1%} at {PAIRS[-1]}"
      + (f", more than 5 points behind softmax from {first_drop} pairs on." if first_drop else "."))

# %% [markdown]
# ## 5. Why: n pairs in one d x dv state
# Softmax can give one key almost all the weight: exp(q·k) grows exponentially with the score, so a
# key that matches by a margin beats any number of others. Linear attention's weight on pair j is
# φ(q)·φ(k_j) / Σ_l φ(q)·φ(k_l), a plain ratio: every other key adds its own similarity to the
# denominator, and in d dimensions at most d keys can be orthogonal to each other. Put differently,
# everything the query can read is S = Σ_j φ(k_j) v_jᵀ: n outer products summed into one d x dv
# matrix, which cannot keep many of them apart once n exceeds d. Measured inside the trained models:
# the weight the query puts on the pair it asked for, and the accuracy against n / d.

# %%
lesson.section("5. why: the weight on the right pair, and accuracy against pairs per dimension")


def weight_on_answer(model, n):
    """Mean attention weight of the query on the asked pair (softmax or φ-normalised)."""
    keys, values, query, _, asked = test_sets[n]
    with ta.no_grad():
        q, k, _ = (t.numpy() for t in model.qkv(keys, values, query))
    if model.attention == "softmax":
        s = (q @ k.transpose(0, 2, 1))[:, 0] / np.sqrt(q.shape[-1])
        w = np.exp(s - s.max(axis=1, keepdims=True))
    else:
        w = (feature_map(ta.tensor(q)).numpy() @ feature_map(ta.tensor(k)).numpy().transpose(0, 2, 1))[:, 0]
    w = w / w.sum(axis=1, keepdims=True)
    return float(w[np.arange(len(asked)), asked].mean())


weights = {name: {n: weight_on_answer(m, n) for n in PAIRS} for name, m in recall_models.items()}
print(f"  {'weight on the asked pair':<26}" + "".join(f"{n:>7}" for n in PAIRS))
for name, w in weights.items():
    print(f"  {name:<26}" + "".join(f"{w[n]:7.3f}" for n in PAIRS))
lin_names = [name for name in VARIANTS if name.startswith("linear")]
per_dim = {name: {n / VARIANTS[name][1]: recall[name][n] for n in PAIRS} for name in lin_names}
shared = sorted(set.intersection(*(set(p) for p in per_dim.values())))
spread = {r: max(p[r] for p in per_dim.values()) - min(p[r] for p in per_dim.values()) for r in shared}
by_length = {n: max(recall[name][n] for name in lin_names) - min(recall[name][n] for name in lin_names)
             for n in PAIRS}
w_soft, w_lin = weights["softmax, d = 16"], weights["linear, d = 16"]
print(f"At {PAIRS[-1]} pairs softmax still puts {w_soft[PAIRS[-1]]:.2f} of its weight on the asked pair, linear "
      f"attention (d = 16) {w_lin[PAIRS[-1]]:.3f} (uniform would be {1 / PAIRS[-1]:.3f}): the right value is "
      f"a small part of what it reads back.")
print(f"At equal pairs per dimension n / d ({', '.join(f'{r:g}' for r in shared)}) the three linear models' "
      f"accuracies differ by at most {max(spread.values()):.1%}; at equal n by up to {max(by_length.values()):.1%}. "
      f"What a linear-attention state can recall is set by n / d, the load per dimension of the state.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
for label, t in timings.items():
    axes[0].loglog(LENGTHS, t, "o-" if "backward" in label else "s--", label=f"{label} (slope {slopes[label]:.2f})")
axes[0].set(xlabel="sequence length T", ylabel=f"seconds (fastest of {ROUNDS})",
            title=f"causal attention, one head, d = {D_HEAD}")
axes[0].legend(fontsize=8)
colour = {name: f"C{i}" for i, name in enumerate(VARIANTS)}        # the same model, the same colour
for name, acc in recall.items():
    axes[1].semilogx(PAIRS, [acc[n] for n in PAIRS], "o-", label=name, base=2, color=colour[name])
axes[1].axhline(1 / N_VALUES, color="gray", ls=":", lw=1)
axes[1].set(xlabel="pairs in the list n", ylabel="recall accuracy", title="associative recall", ylim=(0, 1.05))
axes[1].legend(fontsize=8)
for name in lin_names:
    r = sorted(per_dim[name])
    axes[2].semilogx(r, [per_dim[name][x] for x in r], "o-", label=name, base=2, color=colour[name])
axes[2].set(xlabel="pairs per state dimension n / d", ylabel="recall accuracy",
            title="linear attention: accuracy is set by n / d", ylim=(0, 1.05))
axes[2].legend(fontsize=8)
fig.tight_layout()
lesson.savefig(fig, "linear_attention")

# %%
lesson.section("criterion")
forms_err = max(reorder_err, library_err, *causal_errs.values())
lesson.record(reorder_err=reorder_err, library_err=library_err, causal_errs=causal_errs, cache_bytes=cache_bytes,
              lengths=LENGTHS, timings=timings, slopes=slopes, speed_ratio=ratio, recall=recall,
              weight_on_answer=weights, per_dim=per_dim, per_dim_spread=spread, by_length_spread=by_length)
lesson.check("every written-out form = the quadratic form = the library (float64)", forms_err < 1e-12,
             f"max difference {forms_err:.1e}")
soft_slopes = [slopes["softmax, forward"], slopes["softmax, forward + backward"]]
lin_slopes = [slopes["linear, forward"], slopes["linear, forward + backward"]]
# Times depend on the machine and its load, so the slopes are printed, not part of the criterion.
print("  time slopes (measured, not checked): softmax " + ", ".join(f"{s:.2f}" for s in soft_slopes)
      + "; linear " + ", ".join(f"{s:.2f}" for s in lin_slopes))
lesson.check("softmax recalls at every length (>= 95%)", min(soft.values()) >= 0.95, f"lowest {min(soft.values()):.1%}")
lin_at_end = {name: recall[name][PAIRS[-1]] for name in lin_names}
lesson.check(f"linear attention loses recall at {PAIRS[-1]} pairs (>= 20 points), less with a larger state",
             soft[PAIRS[-1]] - lin[PAIRS[-1]] >= 0.20 and list(lin_at_end.values()) == sorted(lin_at_end.values()),
             ", ".join(f"{name} {a:.1%}" for name, a in lin_at_end.items()) + f" vs softmax {soft[PAIRS[-1]]:.1%}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/linear_attention.py`.
# 1. One layer with one head of d = dv = 64, float32: from how many tokens on does a KV cache
#    (2 · T · 64 numbers) take more bytes than linear attention's state S, z (64 · 64 + 64 numbers)?
#    Derive it, then measure both with `nn.KVCache` and `nn.LinearAttentionState` filled by hand.
# 2. Call `linear_attention` with `feature_map_kind="identity"` on random inputs (T = 50, d = 4).
#    With elu + 1 every output lies between the smallest and largest value of its column (a
#    weighted mean with weights >= 0); does that still hold with the identity? Why not?
# 3. Store n one-hot keys (n <= d = 16, identity feature map) with random values in S and read each
#    back with its own key: how large is the error? Then store 32 random unit keys in the same
#    16 x dv state: can any choice of 32 keys be read back exactly, and why not?
