"""Lesson 07 - sequential versus parallel attention.

What it teaches: attention does not have to be computed one query at a time. A loop that takes
each query in turn (score it against every key, softmax, weighted sum) and one batched matrix
product softmax(Q Kᵀ) V compute the same numbers; the batched form is the one that is fast.
On the way we run the document's two PyTorch classes exactly as printed, see why every attention
weight they compute is exactly 1 (the normalisation runs over an axis of length 1), see where they
crash, and fix them.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 004 §4.1 (SequentialAttention, x of shape (3, 10)) and
§4.2 (ParallelAttention, x of shape (3, 10, 2)); §3.1-3.2 describe "sequential" and "parallel"
attention with the same formulas; §3.3's formulas (a_i = softmax(Σ_j α_ij s(i,j)),
y_i = Σ_j a_j s(i,j) x_j), computed as printed and beside the standard softmax_j(s(i,j)).
Criterion: the loop and the batched product agree to 1e-12 (float64); the document's bug is
reproduced (all weights exactly 1, then the shape errors) and explained; §3.3's formulas as printed
give weights whose rows do not sum to 1, and the standard form equals the library's call (1e-12).
"""
# %%
from _common import Lesson

import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import attention as A

lesson = Lesson(7, "sequential vs parallel attention")
rng = lesson.rng
input_dim, hidden_dim, output_dim = 10, 20, 5          # the document's sizes

# %% [markdown]
# ## 1. The document's SequentialAttention, as printed (§4.1)
#     h = tanh(linear1(x));  a = exp(attention(h));  a = a / sum(a, dim=1, keepdim=True)
#     y = sum(a * h, dim=1);  y = linear2(y)
# with x = randn(3, input_dim). Follow the shapes.

# %%
lesson.section("1. doc 004 §4.1 SequentialAttention as printed, x of shape (3, 10)")
linear1 = nn.Linear(input_dim, hidden_dim, dtype="float64")
linear2 = nn.Linear(hidden_dim, output_dim, dtype="float64")
attention = nn.Linear(hidden_dim, 1, dtype="float64")
x = ta.tensor(rng.normal(size=(3, input_dim)), dtype="float64")
h = ta.tanh(linear1(x))
a = ta.exp(attention(h))
print(f"h = tanh(linear1(x)): shape {h.shape};  a = exp(attention(h)): shape {a.shape}")
a = a / a.sum(axis=1, keepdims=True)                  # dim=1 has length 1: each a is divided by itself
print("a after 'normalising' over dim=1 =", a.numpy().ravel().tolist())
doc_all_ones = bool((a.numpy() == 1.0).all())
print(f"every weight exactly 1.0: {doc_all_ones}. Axis 1 of a (3, 1) array has one entry, so "
      "a / sum(a) = a / a = 1: the 3 positions are never compared with each other.")
y = (a * h).sum(axis=1)
print(f"y = sum(a * h, dim=1): shape {y.shape} - it summed the 20 hidden features, not the positions.")
seq_error = None
try:
    linear2(y)
except ValueError as exc:                              # PyTorch fails here too (mat1 and mat2 shapes)
    seq_error = str(exc)
print(f"linear2(y) fails: {seq_error}")

# %% [markdown]
# ## 2. The document's ParallelAttention, as printed (§4.2)
# Same layers, x = randn(3, input_dim, 2), and the sum over dim=2. A Linear layer acts on the
# *last* axis, which has length 2, not input_dim = 10: it fails at the first line.

# %%
lesson.section("2. doc 004 §4.2 ParallelAttention as printed, x of shape (3, 10, 2)")
x3 = ta.tensor(rng.normal(size=(3, input_dim, 2)), dtype="float64")
par_error = None
try:
    linear1(x3)
except ValueError as exc:
    par_error = str(exc)
print(f"linear1(x) fails: {par_error}")
print("Transposing to (3, 2, 10) would run, but the normalisation over dim=1 and the sum over dim=2 "
      "would then pick the wrong axes again; the shapes need to be fixed as a whole.")

# %% [markdown]
# ## 3. The corrected attention pooling
# Give the input a sequence axis: x of shape (batch, T, input_dim). Score each position, normalise
# over the positions (axis 1, length T), and take the weighted sum over the positions:
#     h = tanh(W1 x_t);  s_t = w·h_t;  a = softmax_t(s);  y = Σ_t a_t h_t;  out = W2 y

# %%
lesson.section("3. corrected: weights over the T positions of each sequence")


class AttentionPooling(nn.Module):
    """The document's layers with the axes fixed: (batch, T, input_dim) -> (batch, output_dim)."""

    def __init__(self, linear1, attention, linear2):
        super().__init__()
        self.linear1, self.attention, self.linear2 = linear1, attention, linear2

    def forward(self, x):
        h = ta.tanh(self.linear1(x))                        # (B, T, hidden)
        s = self.attention(h)                               # (B, T, 1): one score per position
        a = ta.softmax(s, axis=1)                           # normalise over the positions
        y = (a * h).sum(axis=1)                             # (B, hidden): weighted sum of positions
        return self.linear2(y), a[..., 0]


pool = AttentionPooling(linear1, attention, linear2)
T = 7
xs = ta.tensor(rng.normal(size=(3, T, input_dim)), dtype="float64")
out, weights = pool(xs)
print(f"x {xs.shape} -> output {out.shape}; weights {weights.shape}, each row sums to "
      f"{weights.numpy().sum(axis=1).round(12).tolist()}")
print("weights of sequence 0 over its 7 positions:", weights.numpy()[0].round(3).tolist())

# %% [markdown]
# ## 4. A loop over queries versus one batched product
# "Sequential" attention computes one query at a time; "parallel" attention all at once:
#     loop:    for each i: s = K q_i;  w = softmax(s);  out_i = w V
#     batched: softmax(Q Kᵀ / √d) V
# Same arithmetic, same numbers (to rounding); the batched version hands the work to one big
# matrix product instead of n small ones.

# %%
lesson.section("4. loop over queries vs one batched product")


def attention_loop(Q, K, V):
    scale = 1.0 / np.sqrt(Q.shape[-1])
    rows = []
    for i in range(Q.shape[0]):                    # one query at a time
        s = (K @ Q[i]) * scale                     # (n_keys,) scores of query i
        w = ta.softmax(s, axis=-1)
        rows.append(w @ V)                         # (d_v,)
    return ta.stack(rows, axis=0)


def attention_batched(Q, K, V):
    return A.scaled_dot_product_attention(Q, K, V)


def best_time(fn, *args, repeats=3):
    """The fastest of a few runs (after one warm-up run, which may compile kernels)."""
    fn(*args)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return result, best


worst = 0.0
timings = []
for n, dk in [(16, 8), (128, 32), (512, 64)]:
    Q, K, V = (ta.tensor(rng.normal(size=(n, dk)), dtype="float64") for _ in range(3))
    loop_out, t_loop = best_time(attention_loop, Q, K, V)
    batch_out, t_batch = best_time(attention_batched, Q, K, V)
    diff = float(np.abs(loop_out.numpy() - batch_out.numpy()).max())
    worst = max(worst, diff)
    timings.append({"n": n, "d": dk, "loop_s": t_loop, "batched_s": t_batch, "max_diff": diff})
    print(f"  n = {n:>3} queries/keys, d = {dk:>2}: max |loop - batched| = {diff:.1e};  loop "
          f"{1e3 * t_loop:7.2f} ms, batched {1e3 * t_batch:6.2f} ms ({t_loop / t_batch:5.1f}x)")

# The gradients agree too: backpropagate the same loss through both.
Q, K, V = (ta.tensor(rng.normal(size=(32, 16)), dtype="float64", requires_grad=True) for _ in range(3))
g = ta.tensor(rng.normal(size=(32, 16)), dtype="float64")
(attention_loop(Q, K, V) * g).sum().backward()
grads_loop = [t.grad.numpy().copy() for t in (Q, K, V)]
for t in (Q, K, V):
    t.grad = None
(attention_batched(Q, K, V) * g).sum().backward()
grad_diff = max(float(np.abs(a_ - t.grad.numpy()).max()) for a_, t in zip(grads_loop, (Q, K, V)))
print(f"gradients w.r.t. Q, K, V: max |loop - batched| = {grad_diff:.1e}")
print("(Best of 3 runs on this machine, so they vary from run to run; the loop pays Python's "
      "overhead once per query, so its cost grows with n even when each query is cheap.)")

# %%
import matplotlib.pyplot as plt  # noqa: E402

from tinyattn import viz  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 2.6], "wspace": 0.45})
viz.heatmap(a.numpy().reshape(3, 1), [f"position {i}" for i in range(3)], ["weight"], ax=axes[0],
            vmin=0, vmax=1, title="doc §4.1 as printed:\nsoftmax over an axis of length 1",
            xlabel="(nothing to compare)", ylabel="")
viz.heatmap(weights, [f"seq {b}" for b in range(3)], [f"t{t}" for t in range(T)], ax=axes[1],
            title="corrected: softmax over the 7 positions of each sequence",
            xlabel="position (key)", ylabel="sequence")
lesson.savefig(fig, "doc_vs_corrected_weights")

# %% [markdown]
# ## 5. The document's formulas (§3.3), as printed
# doc 004 §3.3 prints the same three formulas for "sequential" (§3.3.1) and "parallel" (§3.3.2)
# attention:
#     s(i, j) = sim(x_i, x_j)
#     a_i     = softmax( Σ_j α_ij s(i, j) )        α_ij: "the weight between x_i and x_j", never defined
#     y_i     = Σ_j a_j s(i, j) x_j
# Follow the indices. Σ_j α_ij s(i, j) is one number c_i per element i, whatever α is, so the
# softmax runs over the n elements and gives one vector a of n weights, the same for every query.
# In y_i the weight of x_j is then a_j · s(i, j): a global importance of x_j times its similarity
# to x_i, with nothing that makes these weights sum to 1. The standard formula normalises over the
# keys of each query instead:   y_i = Σ_j softmax_j(s(i, j)) x_j.
# We take sim = cosine (§3.1 names it) and α_ij = 1, write both out in NumPy on four vectors in
# R³ (doc 000's [1,2,3], [4,5,6], [7,8,9], and [-3,-1,1], which points away from them), and
# compare the standard one with the library's `scaled_dot_product_attention`.

# %%
lesson.section("5. doc 004 §3.3's formulas as printed vs the standard softmax_j(s(i, j))")
x_small = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [-3.0, -1.0, 1.0]])
n_small = len(x_small)
unit = x_small / np.linalg.norm(x_small, axis=1, keepdims=True)
sim = unit @ unit.T                                        # s(i, j) = cos(x_i, x_j), (n, n)
alpha = np.ones((n_small, n_small))                        # the document never defines α_ij
c = (alpha * sim).sum(axis=1)                              # Σ_j α_ij s(i, j): one number per i, (n,)
a_doc = np.exp(c - c.max()) / np.exp(c - c.max()).sum()    # a_i = softmax over i, (n,)
y_doc = np.einsum("j,ij,jd->id", a_doc, sim, x_small)      # y_i = Σ_j a_j s(i, j) x_j, as printed
w_doc = a_doc[None, :] * sim                               # the weight x_j gets in y_i
w_std = np.exp(sim - sim.max(axis=1, keepdims=True))
w_std /= w_std.sum(axis=1, keepdims=True)                  # softmax over j, for each i
y_std = w_std @ x_small
alpha_random = rng.normal(size=(n_small, n_small))         # any α: still one number per i
print(f"x: {n_small} vectors in R^3;  s(i, j): {sim.shape};  Σ_j α_ij s(i, j): {c.shape} "
      f"(with a random α too: {(alpha_random * sim).sum(axis=1).shape})")
print(f"a = softmax(c) = {a_doc.round(4).tolist()} (sums to {a_doc.sum():.12g}): one weight per element, "
      "shared by every query")
print("the weights a_j s(i, j) each y_i gives the x_j (rows: i):")
print(np.array2string(w_doc, precision=3, suppress_small=True))
doc_row_sums = w_doc.sum(axis=1)
n_negative = int((w_doc < 0).sum())
print(f"their row sums: {doc_row_sums.round(4).tolist()}; negative weights: {n_negative} of {w_doc.size}"
      + (" (a negative cosine times a_j: that x_j is subtracted)" if n_negative else ""))
print("the standard weights softmax_j(s(i, j)), rows sum to", w_std.sum(axis=1).round(12).tolist())

q_lib = ta.tensor(unit, dtype="float64")
y_library = A.scaled_dot_product_attention(q_lib, q_lib, ta.tensor(x_small, dtype="float64"), scale=1.0).numpy()
std_vs_library = float(np.abs(y_std - y_library).max())
doc_vs_std = float(np.abs(y_doc - y_std).max())
print(f"standard, written out vs A.scaled_dot_product_attention(x̂, x̂, x, scale=1): max difference {std_vs_library:.1e}")
print(f"y as printed vs the standard y: max difference {doc_vs_std:.3f} (the vectors x have entries of "
      f"size ~{np.abs(x_small).mean():.2f})")
for i in range(n_small):
    print(f"  y_{i}: as printed {y_doc[i].round(3).tolist()!s:<26} standard {y_std[i].round(3).tolist()}")
outlier = int(np.argmin(a_doc))
others = np.delete(x_small, outlier, axis=0).mean(axis=0)
cosine_to_others = {name: float(y[outlier] @ others / np.linalg.norm(y[outlier]) / np.linalg.norm(others))
                    for name, y in (("as printed", y_doc), ("standard", y_std))}
print(f"x_{outlier} points away from the others (cosines {np.delete(sim[outlier], outlier).round(2).tolist()}), so "
      f"c_{outlier} is the smallest and a_{outlier} = {a_doc[outlier]:.3f}: as printed, x_{outlier} hardly counts in "
      f"any output, even its own, and y_{outlier} is the other vectors with negative weights: cos(y_{outlier}, mean of "
      f"the others) = {cosine_to_others['as printed']:+.2f}. The standard y_{outlier} is a weighted average, inside "
      f"the inputs' convex hull: cos = {cosine_to_others['standard']:+.2f}.")
lesson.claim("row sums of y's weights", ours=doc_row_sums, doc=np.ones(n_small), tol=1e-9,
             note="§3.1 calls the output a weighted average, but as printed the weights a_j·s(i,j) are "
                  "normalised over the wrong index (a over i, after summing s over j), so each y_i's "
                  "weights do not sum to 1" + (f" and {n_negative} of them are negative" if n_negative else ""))
doc_average_error = float(np.abs(doc_row_sums - 1).max())

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
labels, outputs = [f"x{i}" for i in range(n_small)], [f"y{i}" for i in range(n_small)]
largest = float(np.abs(w_doc).max())
viz.heatmap(w_doc, outputs, labels, ax=axes[0], vmin=-largest, vmax=largest, cmap="RdBu_r",
            title=f"doc 004 §3.3 as printed: a_j·s(i,j)\n(row sums {', '.join(f'{v:.2f}' for v in doc_row_sums)})",
            xlabel="x_j", ylabel="y_i")
viz.heatmap(w_std, outputs, labels, ax=axes[1], vmin=0, vmax=1,
            title="standard: softmax_j(s(i,j))\n(rows sum to 1)", xlabel="x_j", ylabel="y_i")
fig.tight_layout()
lesson.savefig(fig, "doc_334_weights")

# %%
lesson.section("criterion")
lesson.record(doc_weights=a.numpy().ravel(), doc_all_ones=doc_all_ones, sequential_error=seq_error,
              parallel_error=par_error, loop_vs_batched_max_diff=worst, grad_max_diff=grad_diff,
              timings=timings, doc334_x=x_small, doc334_a=a_doc, doc334_y=y_doc, doc334_row_sums=doc_row_sums,
              doc334_vs_standard=doc_vs_std, doc334_cosine_to_others=cosine_to_others, doc334_standard_vs_library=std_vs_library)
lesson.check("loop and batched product agree to 1e-12", worst <= 1e-12 and grad_diff <= 1e-12,
             f"outputs {worst:.1e}, gradients {grad_diff:.1e}")
lesson.check("document's bug reproduced and explained",
             doc_all_ones and seq_error is not None and par_error is not None,
             "all 3 weights exactly 1.0 (softmax over a length-1 axis); linear2 and linear1 shape errors")
lesson.check("doc 004 §3.3 as printed: its weights are no weighted average; the standard form equals the library",
             doc_average_error > 1e-3 and std_vs_library <= 1e-12,
             f"max |row sum - 1| {doc_average_error:.3f} (document), standard vs library {std_vs_library:.1e}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/sequential_vs_parallel.py`.
# 1. In the document's SequentialAttention (section 1) normalise over dim=0 and sum over dim=0
#    instead of dim=1. Do the weights now compare the 3 positions? What shape does y have, and does
#    `linear2(y)` run?
# 2. Shuffle the keys and the values with the same permutation and rerun the batched product. Does
#    the output change? Then shuffle the queries instead: what happens to the output's rows?
# 3. Change `attention_loop` so that query i sees only keys 0..i. Which argument of
#    `A.scaled_dot_product_attention` gives the same numbers in one batched call?
