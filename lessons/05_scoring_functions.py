"""Lesson 05 - scoring functions, and why scaled dot products divide by √d_k.

What it teaches: a score function says how well a query matches a key. We compute six of them on
one small input and compare the weights they produce. Then we look at the most common one, the dot
product, as the vectors get longer: q·k of d independent unit-variance entries has variance d, so
its spread grows like √d and the softmax saturates - most weight on one key, and a smaller
gradient. Section 3 measures how much smaller: on average over all queries the gradient is reduced
a few times, not to "almost none"; only in the rows that have turned one-hot does it approach zero. Dividing by √d_k (the per-head dimension) keeps the spread at 1 for every d. The document
of §5.2 divides by √num_heads instead, which keeps growing with the head size.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 004 §3.1 (cosine and Euclidean similarity),
doc 001 §4.1 (the 1/√d written on the output, not on the scores) and §5.2
(scores divided by sqrt(num_heads)), doc 002 §4.1 (A = softmax(QKᵀ/√d_k)).
Criterion: the scaled scores' standard deviation is within 10% of 1 for d = 4 ... 512; the wrong
scale's saturation is shown with numbers (entropy, largest weight and gradient size at d = 512).
"""
# %%
from _common import Lesson

import matplotlib.pyplot as plt
import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import viz

lesson = Lesson(5, "scoring functions")
rng = lesson.rng

# %% [markdown]
# ## 1. Six score functions on one input
# 3 queries and 5 keys of size 4. Learnable scores (general, additive) get random weights here.

# %%
lesson.section("1. six scores on one input (3 queries, 5 keys, d = 4)")
d, h = 4, 8
q = ta.tensor(rng.normal(size=(3, d)), dtype="float64")
k = ta.tensor(rng.normal(size=(5, d)), dtype="float64")
W = ta.tensor(rng.normal(size=(d, d)) / np.sqrt(d), dtype="float64")
W_q, W_k = (ta.tensor(rng.normal(size=(h, d)) / np.sqrt(d), dtype="float64") for _ in range(2))
v = ta.tensor(rng.normal(size=(h,)), dtype="float64")
scores = {
    "dot  q.k": A.dot_score(q, k),
    "scaled dot  q.k/sqrt(d)": A.scaled_dot_score(q, k),
    "general  q W k": A.general_score(q, k, W),
    "additive  v.tanh(Wq q + Wk k)": A.additive_score(q, k, W_q, W_k, v),
    "cosine": A.cosine_score(q, k),
    "negative squared Euclidean": A.euclidean_score(q, k),
}
weights = {}
for name, s in scores.items():
    weights[name] = A.softmax(s)
    print(f"{name}:\n  scores  {np.array2string(s.numpy().round(2), prefix='  scores  ')}\n"
          f"  weights {np.array2string(weights[name].numpy().round(2), prefix='  weights ')}")
print("Cosine scores live in [-1, 1], so their softmax is always soft; dot and Euclidean scores grow "
      "with the vectors' lengths and are sharper.")
fig = viz.heatmap_grid(list(weights.values()), [f"q{i}" for i in range(3)], [f"k{j}" for j in range(5)],
                       titles=list(weights), ncols=3, annotate=True, vmin=0, vmax=1,
                       suptitle="softmax weights from six score functions on the same queries and keys")
lesson.savefig(fig, "six_scores")

# %% [markdown]
# ## 2. The spread of q·k as d grows
# Entries of q and k drawn independently with mean 0 and variance 1 (what a well-initialised
# projection produces). Then Var(q·k) = Σ_i Var(q_i k_i) = d, so std(q·k) = √d.
# Three scalings: none; 1/√d_k (correct, d_k = the per-head size); 1/√num_heads (doc 001 §5.2,
# which divides by sqrt(dim) with dim = num_heads), here with num_heads = 8.

# %%
lesson.section("2. standard deviation of the scores vs d")
dims = [4, 8, 16, 32, 64, 128, 256, 512]
num_heads = 8
n_pairs = 20000
scalings = {"none": lambda dk: 1.0, "1/sqrt(d_k)": lambda dk: 1 / np.sqrt(dk),
            "1/sqrt(num_heads)": lambda dk: 1 / np.sqrt(num_heads)}
spread = {name: [] for name in scalings}
print(f"{'d_k':>5} " + "".join(f"{name:>20}" for name in scalings) + "   (std of the score over "
      f"{n_pairs} random pairs)")
for dk in dims:
    qs = ta.tensor(rng.normal(size=(n_pairs, 1, dk)), dtype="float64")
    ks = ta.tensor(rng.normal(size=(n_pairs, 1, dk)), dtype="float64")
    row = []
    for name, scale in scalings.items():
        s = A.scaled_dot_score(qs, ks, scale=scale(dk)).numpy()     # (n_pairs, 1, 1)
        spread[name].append(float(s.std()))
        row.append(spread[name][-1])
    print(f"{dk:>5} " + "".join(f"{x:20.3f}" for x in row))
scaled_std = np.array(spread["1/sqrt(d_k)"])
print(f"scaled by 1/sqrt(d_k): std between {scaled_std.min():.3f} and {scaled_std.max():.3f} for every d")

# %% [markdown]
# ## 3. What a large spread does to the softmax
# 32 keys per query. For each d and each scaling: the entropy of the weights (as a fraction of
# log 32, the entropy of uniform weights), the largest weight, and the size of the gradient that
# reaches the scores, |d(Σ g·w)/ds| for a random upstream g. A saturated softmax (one weight ~1)
# has Jacobian diag(w) - w wᵀ ~ 0: learning through it stalls.

# %%
lesson.section("3. softmax entropy, largest weight and gradient size vs d")
n_queries, n_keys = 256, 32
stats = {name: {"entropy": [], "max_weight": [], "grad": [], "saturated": [], "grad_saturated": []}
         for name in scalings}
for dk in dims:
    qs = rng.normal(size=(n_queries, 1, dk))
    ks = ta.tensor(rng.normal(size=(n_keys, dk)), dtype="float64")
    upstream = ta.tensor(rng.normal(size=(n_queries, 1, n_keys)), dtype="float64")
    for name, scale in scalings.items():
        s = A.scaled_dot_score(ta.tensor(qs, dtype="float64"), ks, scale=scale(dk)).detach()
        s.requires_grad_(True)
        w = A.softmax(s)
        (w * upstream).sum().backward()
        wn = w.numpy()
        entropy = -(wn * np.log(np.where(wn > 0, wn, 1))).sum(axis=-1) / np.log(n_keys)
        stats[name]["entropy"].append(float(entropy.mean()))
        stats[name]["max_weight"].append(float(wn.max(axis=-1).mean()))
        stats[name]["grad"].append(float(np.linalg.norm(s.grad.numpy(), axis=-1).mean()))
        stats[name]["saturated"].append(float((wn.max(axis=-1) > 0.99).mean()))   # share of one-hot rows
        one_hot = wn.max(axis=-1)[:, 0] > 0.99                                      # gradient in those rows only
        row_grad = np.linalg.norm(s.grad.numpy(), axis=-1)[:, 0]
        stats[name]["grad_saturated"].append(float(row_grad[one_hot].mean()) if one_hot.any() else float("nan"))
print("H = entropy / log 32; max w = mean largest weight; sat = share of queries with a weight > 0.99;"
      " |g| = mean gradient norm at the scores")
print(f"{'':>5}  " + "  ".join(f"{name:^28}    " for name in scalings))
print(f"{'d_k':>5}  " + "  ".join(f"{'H':>6} {'max w':>6} {'sat':>6} {'|g|':>7}    " for _ in scalings))
for i, dk in enumerate(dims):
    print(f"{dk:>5}  " + "  ".join(
        f"{stats[n]['entropy'][i]:6.3f} {stats[n]['max_weight'][i]:6.3f} {stats[n]['saturated'][i]:6.1%} "
        f"{stats[n]['grad'][i]:7.4f}    " for n in scalings))

last = len(dims) - 1
right, wrong, none = stats["1/sqrt(d_k)"], stats["1/sqrt(num_heads)"], stats["none"]
print(f"\nAt d_k = {dims[last]} (e.g. d_model = {dims[last] * num_heads} split into {num_heads} heads):")
print(f"  1/sqrt(d_k):       scores std {spread['1/sqrt(d_k)'][last]:.2f}, entropy {right['entropy'][last]:.2f} of "
      f"uniform, largest weight {right['max_weight'][last]:.2f}, {right['saturated'][last]:.0%} of queries one-hot, "
      f"gradient {right['grad'][last]:.3f}")
print(f"  1/sqrt(num_heads): scores std {spread['1/sqrt(num_heads)'][last]:.2f}, entropy {wrong['entropy'][last]:.2f} of "
      f"uniform, largest weight {wrong['max_weight'][last]:.2f}, {wrong['saturated'][last]:.0%} of queries one-hot, "
      f"gradient {wrong['grad'][last]:.3f} ({right['grad'][last] / max(wrong['grad'][last], 1e-300):.1f}x smaller)")
print(f"  no scaling:        scores std {spread['none'][last]:.2f}, entropy {none['entropy'][last]:.2f}, largest weight "
      f"{none['max_weight'][last]:.2f}, {none['saturated'][last]:.0%} one-hot, gradient {none['grad'][last]:.3f} "
      f"({right['grad'][last] / max(none['grad'][last], 1e-300):.1f}x smaller)")
none_ratio = right['grad'][last] / none['grad'][last]
doc_ratio = right['grad'][last] / wrong['grad'][last]
sat_ratio = right['grad'][last] / none['grad_saturated'][last]
print(f"How much is 'almost no gradient'? On average over all queries the gradient at d_k = {dims[last]} is "
      f"{none_ratio:.1f}x smaller unscaled and {doc_ratio:.1f}x smaller with the document's scale: reduced, "
      f"not gone. In the {none['saturated'][last]:.0%} of unscaled rows that are one-hot (weight > 0.99) it is "
      f"{none['grad_saturated'][last]:.4f}, {sat_ratio:.0f}x smaller than the scaled average: there, and only "
      f"there, almost none.")
print("The gradient is largest in between: a softmax that is partly peaked passes more gradient than a "
      "flat one, but as rows turn one-hot it falls towards 0 (Jacobian diag(w) - w wT -> 0).")
print("The document's scale is right only when d_k = num_heads (here d_k = 8); for larger heads "
      "the scores spread like sqrt(d_k / num_heads) and the softmax saturates.")

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
styles = {name: "o-" for name in scalings}
viz.plot_curves({n: (dims, spread[n]) for n in scalings}, ax=axes[0], xlabel="d_k (log scale)",
                ylabel="std of scores", title="spread of q.k under three scalings", logy=True,
                styles=styles)
viz.plot_curves({n: (dims, stats[n]["entropy"]) for n in scalings}, ax=axes[1], xlabel="d_k (log scale)",
                ylabel="entropy / log(32)", title="softmax entropy (1 = uniform, 0 = one-hot)", styles=styles)
viz.plot_curves({n: (dims, stats[n]["grad"]) for n in scalings}, ax=axes[2], xlabel="d_k (log scale)",
                ylabel="mean |dL/dscores|", title="gradient reaching the scores", logy=True, styles=styles)
for ax in axes:
    ax.set_xscale("log", base=2)
lesson.savefig(fig, "scaling_vs_dimension")

# %% [markdown]
# ## 4. Doc 001 §4.1: the 1/√d written on the output
# z = (1/√d) Σ_j A_ij x_j multiplies the result after the softmax: the weights A are exactly the
# unscaled, possibly saturated ones; only the output shrinks. The scale must act on the scores.

# %%
lesson.section("4. scaling the output (doc 001 §4.1) vs scaling the scores")
dk = 256
qx = ta.tensor(rng.normal(size=(6, dk)), dtype="float64")      # 6 queries
kx = ta.tensor(rng.normal(size=(10, dk)), dtype="float64")     # 10 keys, also the values
A_unscaled = A.softmax(A.dot_score(qx, kx))
z_doc = (A_unscaled @ kx) / np.sqrt(dk)
A_scaled = A.softmax(A.scaled_dot_score(qx, kx))
print(f"d = {dk}: the document's formula uses the unscaled softmax; largest weight per query "
      f"{A_unscaled.numpy().max(axis=-1).round(2).tolist()}")
print(f"        with the scale on the scores instead:       largest weight per query "
      f"{A_scaled.numpy().max(axis=-1).round(2).tolist()}")
print(f"the document's z is (A x) / {np.sqrt(dk):.0f}: its std is {z_doc.numpy().std():.3f} instead of "
      f"{(A_unscaled @ kx).numpy().std():.3f}, and it still copies (almost) one key per query.")

# %%
lesson.section("criterion")
within = np.abs(scaled_std - 1) <= 0.10
lesson.record(dims=dims, score_std=spread, softmax_stats=stats, num_heads=num_heads,
              grad_ratio_unscaled=none_ratio, grad_ratio_doc=doc_ratio, grad_ratio_saturated_rows=sat_ratio)
lesson.check("'almost no gradient' holds only for one-hot rows: mean gradient reduced < 5x, one-hot rows > 10x",
             none_ratio < 5 and doc_ratio < 5 and sat_ratio > 10,
             f"mean {none_ratio:.1f}x (unscaled), {doc_ratio:.1f}x (document), one-hot rows {sat_ratio:.0f}x")
lesson.check("scaled scores' std within 10% of 1 for d = 4..512", within.all(),
             f"std in [{scaled_std.min():.3f}, {scaled_std.max():.3f}]")
saturates = (wrong["max_weight"][last] > 0.5 and wrong["entropy"][last] < 0.5 * right["entropy"][last]
             and wrong["grad"][last] < right["grad"][last])
lesson.check("wrong scale 1/sqrt(num_heads) saturates at d_k = 512", saturates,
             f"entropy {wrong['entropy'][last]:.2f} vs {right['entropy'][last]:.2f}, largest weight "
             f"{wrong['max_weight'][last]:.2f} vs {right['max_weight'][last]:.2f}, one-hot rows "
             f"{wrong['saturated'][last]:.0%} vs {right['saturated'][last]:.0%}, gradient "
             f"{wrong['grad'][last]:.3f} vs {right['grad'][last]:.3f}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/scoring_functions.py`.
# 1. Without any scaling, at which d_k do 10% of the rows saturate (largest of 32 weights > 0.99)?
#    Use the table of section 3 to bracket it, then sweep every d_k in between.
# 2. Draw the entries of q and k with standard deviation 2 instead of 1 (a badly initialised
#    projection), and keep the 1/√d_k scale. Predict the std of the scaled scores at d_k = 16 and
#    256. Does 1/√d_k still bring them to 1? What would?
