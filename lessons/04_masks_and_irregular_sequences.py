"""Lesson 04 - masks and irregular (variable-length) sequences.

What it teaches: real batches hold sequences of different lengths. We pad them to one length so
they fit in one array, and then a *mask* (True = may attend) tells the softmax which keys are real.
Masked keys get weight exactly 0, so padding cannot leak into the result: a padded sequence gives
the same output as the same sequence alone. A sequence of length 0 has nothing to attend to; its
rows come out all zero (never 0/0 = NaN). The *causal* mask lets position i see only positions
0..i, which is what makes a decoder unable to peek at the future: changing future tokens must
leave every earlier output unchanged, bit for bit.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 004 §5.2, challenge 2 ("irregular sequence data may prevent
attention from attending correctly"): the standard answer, padding plus masks, shown working.
Criterion: masked weights are exactly 0; length-0 rows are all zero with no NaN (weights, outputs
and gradients); changing future tokens leaves earlier causal outputs bit-identical.
"""
# %%
from _common import Lesson

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import viz

lesson = Lesson(4, "masks and irregular sequences")
rng = lesson.rng
d = 4

# %% [markdown]
# ## 1. Three sequences of lengths 6, 3 and 0, padded to length 6
# Padding positions hold zeros. The padding mask from the lengths is True for real positions.

# %%
lesson.section("1. a padded batch and its padding mask")
lengths = np.array([6, 3, 0])
T = int(lengths.max())
x = np.zeros((3, T, d))
for b, n in enumerate(lengths):
    x[b, :n] = rng.normal(size=(n, d))                       # real tokens; the rest stays 0 (padding)
X = ta.tensor(x, dtype="float64", requires_grad=True)
mask = A.padding_mask(lengths, T, query_lengths=lengths)     # (B, Tq, Tk): real query AND real key
print("lengths:", lengths.tolist())
print("mask for the length-3 sequence (rows: queries, columns: keys; 1 = may attend):\n",
      mask.numpy()[1].astype(int))

# %% [markdown]
# ## 2. Masked self-attention over the batch
# scores = x xᵀ / √d; masked softmax; context = weights @ x.

# %%
lesson.section("2. masked self-attention")
scores = A.scaled_dot_score(X, X)
context, weights = A.attend(scores, X, mask=mask)
w = weights.numpy()
masked_values = w[~mask.numpy()]
print(f"{masked_values.size} masked weights; largest absolute value among them: {np.abs(masked_values).max():.1e}")
print("row sums per sequence:\n", w.sum(axis=-1).round(12))

# The gradient must be clean too: backpropagate a random loss through everything.
(context * ta.tensor(rng.normal(size=context.shape), dtype="float64")).sum().backward()
grad = X.grad.numpy()
nan_free = not (np.isnan(w).any() or np.isnan(context.numpy()).any() or np.isnan(grad).any())
empty_rows_zero = bool((w[2] == 0).all() and (context.numpy()[2] == 0).all() and (grad[2] == 0).all())
print(f"length-0 sequence: weights all zero {bool((w[2] == 0).all())}, output all zero "
      f"{bool((context.numpy()[2] == 0).all())}, gradient all zero {bool((grad[2] == 0).all())}; "
      f"any NaN anywhere: {not nan_free}")

# What a plain softmax would have done with that row: 0 / 0.
with np.errstate(invalid="ignore"):
    e = np.where(mask.numpy()[2], np.exp(scores.numpy()[2]), 0.0)
    naive = e / e.sum(axis=-1, keepdims=True)
print(f"a naive masked softmax (exp, zero the masked, divide by the sum) gives NaN in "
      f"{int(np.isnan(naive).sum())} of {naive.size} entries of that row block.")

# %% [markdown]
# ## 3. Padding must not change the answer
# Run the length-3 sequence alone (no padding, no mask) and compare with its rows in the batch.
# Without the mask the padding positions (zeros, score 0) would take weight and shift the output.

# %%
lesson.section("3. padded + masked == alone")
alone = ta.tensor(x[1, :3], dtype="float64")
ctx_alone, _ = A.attend(A.scaled_dot_score(alone, alone), alone)
diff_masked = np.abs(context.numpy()[1, :3] - ctx_alone.numpy()).max()
ctx_nomask, w_nomask = A.attend(scores, X)
diff_unmasked = np.abs(ctx_nomask.numpy()[1, :3] - ctx_alone.numpy()).max()
print(f"max |batch - alone| with the mask: {diff_masked:.1e}; without the mask: {diff_unmasked:.3f} "
      f"(padding took {w_nomask.numpy()[1, :3, 3:].sum(axis=-1).mean():.0%} of each real query's weight)")

# %% [markdown]
# ## 4. The causal mask: no peeking at the future
# Position i may attend to keys 0..i. We run causal self-attention (with projections, as in a
# decoder), then change the tokens from position t on and rerun: outputs before t must not move.

# %%
lesson.section("4. causal mask")
T2, dm = 8, 6
Wq, Wk, Wv = (ta.tensor(rng.normal(size=(dm, dm)) / np.sqrt(dm), dtype="float64") for _ in range(3))


def causal_self_attention(tokens):
    q, k, v = tokens @ Wq, tokens @ Wk, tokens @ Wv
    return A.attend(A.scaled_dot_score(q, k), v, mask=A.causal_mask(tokens.shape[0]))


seq = rng.normal(size=(T2, dm))
out, w_causal = causal_self_attention(ta.tensor(seq, dtype="float64"))
print("causal weights (row i attends to keys 0..i):\n", w_causal.numpy().round(2))
bit_identical = []
for t in range(1, T2):
    changed = seq.copy()
    changed[t:] = rng.normal(size=(T2 - t, dm)) * 10          # rewrite the future, wildly
    out2, _ = causal_self_attention(ta.tensor(changed, dtype="float64"))
    same_past = np.array_equal(out.numpy()[:t], out2.numpy()[:t])       # exact, bit for bit
    future_moved = not np.allclose(out.numpy()[t:], out2.numpy()[t:])
    bit_identical.append(same_past)
    print(f"  change positions {t}..{T2 - 1}: outputs 0..{t - 1} bit-identical: {same_past}; "
          f"outputs {t}..{T2 - 1} changed: {future_moved}")

# %%
tokens = [[f"t{i}" for i in range(T)]] * 3 + [[f"t{i}" for i in range(T2)]]
fig = viz.heatmap_grid(list(w) + [w_causal.numpy()], tokens, tokens,
                       titles=["length 6 (no padding)", "length 3 (+3 padding)", "length 0 (all padding)",
                               "causal mask, length 8"],
                       suptitle="masked attention weights: padding keys and future keys get exactly 0",
                       ncols=4, vmin=0, vmax=1)
lesson.savefig(fig, "masked_weights")

# %%
lesson.section("criterion")
lesson.record(masked_weight_max=float(np.abs(masked_values).max()), n_masked=int(masked_values.size),
              length0_all_zero=empty_rows_zero, nan_free=nan_free, padded_vs_alone=float(diff_masked),
              padded_vs_alone_without_mask=float(diff_unmasked), causal_bit_identical=bit_identical)
lesson.check("masked weights exactly 0", masked_values.size > 0 and (masked_values == 0).all(),
             f"{masked_values.size} masked entries, max |w| = {np.abs(masked_values).max():g}")
lesson.check("length-0 rows all zero, no NaN", empty_rows_zero and nan_free,
             "weights, outputs and gradients of the empty sequence are 0; no NaN anywhere")
lesson.check("earlier causal outputs bit-identical when the future changes", all(bit_identical),
             f"{sum(bit_identical)}/{len(bit_identical)} cut points")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/masks_and_irregular_sequences.py`.
# 1. Fill the padding positions of the *values* with 100 instead of 0 (keep the mask). By how much do
#    the real tokens' outputs change? Exactly zero, or only approximately?
# 2. Fill them with NaN instead. Does the mask still protect the real tokens? (What is 0 × NaN?)
#    What does that tell you about which padding value to choose?
# 3. What share of a causal mask's weights is exactly zero at T = 8? At T = 100? Give the formula.
