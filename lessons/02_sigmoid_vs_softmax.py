"""Lesson 02 - sigmoid versus softmax scoring, and the weighted sum.

What it teaches: attention is three steps - score every pair (here a dot product), turn scores into
weights, and take the weighted sum of the vectors. The weights can be independent gates
(a sigmoid of each score: they need not sum to 1) or a distribution (a softmax over each row: they
sum to 1). We redo the document's worked example with every intermediate printed beside the
document's own number, find which of its numbers cannot be right and why, then redo it with softmax.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 000 §3.2 (sigmoid gating weights, h = Σ a_i v_i) and
§4.2-4.3 (the worked example x1 = [1,2,3], x2 = [4,5,6], x3 = [7,8,9]: nine scores s_ij, nine
sigmoid weights a_ij to two decimals, and the document's final h = [4.38, 5.52, 6.46]).
Criterion: every value is computed by tinyattn, and every document number that cannot be right is
identified with the reason.
"""
# %%
from _common import Lesson

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import viz

lesson = Lesson(2, "sigmoid vs softmax scoring, weighted sum")

# %% [markdown]
# ## 1. The inputs and all nine dot-product scores s_ij = x_i . x_j
# One matrix product computes all nine at once: S = X X^T.

# %%
lesson.section("1. scores s_ij = x_i . x_j")
X = ta.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]], dtype="float64")   # rows x1, x2, x3
S = X @ X.T
print("S = X @ X.T =\n", S.numpy())

# The document's §4.3 values, typed in from the text (to compare with, never to compute from).
DOC_S = np.array([[1, 4, 7], [4, 16, 28], [7, 28, 49]], dtype=float)
DOC_A = np.array([[0.63, 0.92, 0.99], [0.92, 0.96, 0.98], [0.99, 0.98, 0.99]])
DOC_H = np.array([4.38, 5.52, 6.46])

flagged = {}   # document number -> why it cannot be right
names = [f"{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)]
for (i, j), name in zip(np.ndindex(3, 3), names):
    ok = lesson.claim(f"s_{name}", S.numpy()[i, j], DOC_S[i, j],
                      note=f"x{i+1}.x{j+1} sums three products; the document kept only the first, "
                           f"{X.numpy()[i, 0]:g}*{X.numpy()[j, 0]:g} = {DOC_S[i, j]:g}.")
    if not ok:
        flagged[f"s_{name}"] = (f"document {DOC_S[i, j]:g}, true {S.numpy()[i, j]:g}: only the first "
                                "components were multiplied")
only_first = np.allclose(DOC_S, np.outer(X.numpy()[:, 0], X.numpy()[:, 0]))
print(f"every document score equals x_i[0] * x_j[0]: {only_first}")

# %% [markdown]
# ## 2. Sigmoid weights a_ij = σ(s_ij), to two decimals
# σ(s) = 1 / (1 + e^{-s}) is increasing, and a value that rounds to a given two-decimal number
# pins s to a narrow interval: s = log(a / (1 - a)) for a = that number ± 0.005. So we can say
# exactly which scores each of the document's weights would need.

# %%
lesson.section("2. sigmoid weights a_ij = sigmoid(s_ij)")
A_sig = ta.sigmoid(S)
print("a = sigmoid(S) =\n", A_sig.numpy())
print("to two decimals:\n", A_sig.numpy().round(2))
A_from_doc_scores = ta.sigmoid(ta.tensor(DOC_S, dtype="float64")).numpy()


def score_interval(a2):
    """The scores s whose sigmoid rounds to the two-decimal value a2."""
    lo, hi = a2 - 0.005, min(a2 + 0.005, 1.0)
    logit = lambda p: np.inf if p >= 1 else np.log(p / (1 - p))  # noqa: E731
    return logit(lo), logit(hi)


for (i, j), name in zip(np.ndindex(3, 3), names):
    lo, hi = score_interval(DOC_A[i, j])
    why = (f"sigmoid of the true score {S.numpy()[i, j]:g} is {A_sig.numpy()[i, j]:.7f}; even from the "
           f"document's own score {DOC_S[i, j]:g} it is {A_from_doc_scores[i, j]:.4f}. "
           f"{DOC_A[i, j]:.2f} needs s in [{lo:.2f}, {hi:.2f}).")
    if not lesson.claim(f"a_{name}", A_sig.numpy()[i, j].round(2), DOC_A[i, j], note=why):
        flagged[f"a_{name}"] = why

# Monotonicity alone convicts the document: a larger score can never get a smaller weight.
doc_pairs = [(DOC_S.flat[p], DOC_A.flat[p], DOC_S.flat[q], DOC_A.flat[q])
             for p in range(9) for q in range(9) if DOC_S.flat[p] > DOC_S.flat[q] and DOC_A.flat[p] < DOC_A.flat[q]]
if doc_pairs:
    s1, a1, s2, a2 = doc_pairs[0]
    print(f"\nThe document's own table contradicts itself {len(doc_pairs)} times: for example it gives "
          f"score {s1:g} the weight {a1:.2f} but the smaller score {s2:g} the larger weight {a2:.2f}, "
          f"and sigmoid is increasing.")
print(f"(The document's a_11 = 0.63 is 1 - e^-1 = {1 - np.exp(-1):.3f}, not 1 / (1 + e^-1) = "
      f"{A_from_doc_scores[0, 0]:.3f}: it looks like the wrong formula was evaluated.)")

# %% [markdown]
# ## 3. The weighted sum
# Attention gives one output per query: h_i = Σ_j a_ij x_j, i.e. H = A X. The document instead adds
# all nine terms into one vector (its first line), and in its second line substitutes x2 where its
# first line has a21·x1. We compute each reading.

# %%
lesson.section("3. weighted sums")
H_sig = A_sig @ X                                  # one output per query
h_total = H_sig.sum(axis=0)                        # the document's nine-term sum, correct weights
print("per-query outputs H = A X (sigmoid weights, all ~1) =\n", H_sig.numpy().round(4))
print("nine-term total (document's formula, true weights) =", h_total.numpy().round(4))

# The document's second line, with its own weights and its own choice of vectors:
doc_terms = [(0.63, 0), (0.92, 1), (0.99, 2), (0.92, 1), (0.96, 1), (0.98, 2), (0.99, 0), (0.98, 1), (0.99, 2)]
doc_w = ta.tensor([w for w, _ in doc_terms], dtype="float64")
doc_vecs = X[[k for _, k in doc_terms]]          # rows of X picked as the document picked them
h_doc_line = (doc_w.reshape(9, 1) * doc_vecs).sum(axis=0)
h_doc_normalised = h_doc_line / doc_w.sum()
print("the document's second line, evaluated       =", h_doc_line.numpy().round(4))
print("... divided by its total weight (normalised) =", h_doc_normalised.numpy().round(4))

# Any weighted sum of x1, x2, x3 is [p, p + W, p + 2W] with W the sum of the weights, because each
# x_j = [c, c+1, c+2]. So its components rise in equal steps, whatever the weights are.
steps = np.diff(DOC_H)
print(f"the document's h = {DOC_H.tolist()} rises by {steps[0]:.2f} then {steps[1]:.2f}: unequal steps, "
      "so no weights, normalised or not, can produce it.")
lesson.claim("h (total)", h_total.numpy().round(2), DOC_H,
             note="with every weight ~1 the nine-term sum is ~3(x1+x2+x3) = [36, 45, 54]; and "
                  "[4.38, 5.52, 6.46] has unequal steps, so it is not a weighted sum of x1..x3 at all.")
lesson.claim("h (normalised)", h_doc_normalised.numpy().round(2), DOC_H,
             note="normalising the document's own sum gives [4.48, 5.48, 6.48]: close, but the "
                  "stated vector is still not of the form [p, p+W, p+2W].")
flagged["h"] = (f"steps {steps[0]:.2f} and {steps[1]:.2f} are unequal, but every weighted sum of x1, x2, x3 "
                "has equal steps; the true nine-term sum is ~[36, 45, 54]")
flagged["h line 2"] = "the term a21*x1 is written as 0.92*[4, 5, 6] (x2 instead of x1)"
print("also: the document's second line writes a21*x1 as 0.92*[4, 5, 6], i.e. x2 instead of x1.")

# %% [markdown]
# ## 4. The same example with softmax weights
# softmax over each row makes the weights of one query sum to 1, so h_i is a weighted *average*.
# With scores as large as these (gaps of 18 and more) the softmax is practically one-hot: every
# query copies x3. Dividing by sqrt(d) (lesson 05) softens it only a little here.

# %%
lesson.section("4. softmax weights")
A_soft = ta.softmax(S, axis=-1)
H_soft = A_soft @ X
A_soft_scaled = ta.softmax(S / np.sqrt(3.0), axis=-1)
print("softmax(S) =\n", A_soft.numpy().round(8))
print("rows sum to", A_soft.numpy().sum(axis=1))
print("H = softmax(S) X =\n", H_soft.numpy().round(4))
print("softmax(S / sqrt(3)) =\n", A_soft_scaled.numpy().round(6))
print("sigmoid weights normalised per row (a / row sum) give H =\n",
      ((A_sig / A_sig.sum(axis=1, keepdims=True)) @ X).numpy().round(4), "  (~the plain mean [4, 5, 6])")

# %% [markdown]
# ## 5. §3.2's gate from a concatenation: a_i = σ(W_a [v_i ; v_{i-1}])
# Here the weight of position i comes from the position and its predecessor (v_0 = 0 for the
# first), through a learnt W_a rather than a dot product. W_a below is an illustrative choice
# (the document gives none): 0.1 x (sum of v_i - sum of v_{i-1}), i.e. how much v_i grew. The gates are
# independent numbers in (0, 1); h = Σ_i a_i v_i is again a sum, not an average.

# %%
lesson.section("5. doc 000 §3.2: sigmoid gate of [v_i ; v_(i-1)]")
W_a = ta.tensor([0.1, 0.1, 0.1, -0.1, -0.1, -0.1], dtype="float64")    # (2d,): a Linear(2d, 1) weight
gates = A.concat_sigmoid_score(X, W_a)                                   # (1, 3)
h_concat = gates @ X                                                     # (1, 3): h = Σ a_i v_i
for i in range(3):
    prev = "0" if i == 0 else f"x{i}"
    print(f"  a_{i + 1} = sigmoid(W_a . [x{i + 1} ; {prev}]) = {gates.numpy()[0, i]:.4f}")
print(f"  gates sum to {gates.numpy().sum():.4f} (not 1); h = Σ a_i x_i = {h_concat.numpy()[0].round(4).tolist()}")

# %%
tokens = ["x1", "x2", "x3"]
fig = viz.heatmap_grid([DOC_A, A_sig, A_soft, A_soft_scaled], tokens, tokens,
                       titles=["document's a_ij (as printed)", "tinyattn: sigmoid(x_i.x_j)",
                               "tinyattn: softmax(x_i.x_j)", "tinyattn: softmax(x_i.x_j/sqrt(3))"],
                       suptitle="doc 000 §4.3: attention weights, query (row) x key (column)",
                       annotate=True, vmin=0, vmax=1, ncols=4)
lesson.savefig(fig, "weights_sigmoid_vs_softmax")

# %%
lesson.section("criterion")
print("document numbers that cannot be right:")
for k, why in flagged.items():
    print(f"  {k:<9} {why}")
lesson.record(scores=S, sigmoid_weights=A_sig, H_sigmoid=H_sig, h_total=h_total,
              softmax_weights=A_soft, H_softmax=H_soft, doc_line2_value=h_doc_line,
              doc_line2_normalised=h_doc_normalised, doc_scores_are_first_components=only_first,
              flagged=flagged, monotonicity_violations=len(doc_pairs), concat_gates=gates,
              h_concat=h_concat)
n_doc_numbers = DOC_S.size + DOC_A.size + 1
n_wrong = sum(not np.isclose(S.numpy().flat[k], DOC_S.flat[k]) for k in range(9)) + \
    sum(not np.isclose(A_sig.numpy().round(2).flat[k], DOC_A.flat[k]) for k in range(9)) + 1
lesson.check("scores computed by tinyattn", np.array_equal(S.numpy(), X.numpy() @ X.numpy().T),
             f"s_11={S.numpy()[0, 0]:g}, s_33={S.numpy()[2, 2]:g}")
lesson.check("softmax rows sum to 1", np.allclose(A_soft.numpy().sum(axis=1), 1, atol=1e-12),
             "3 rows")
lesson.check("every wrong document number identified with a reason",
             all(f"s_{n}" in flagged and f"a_{n}" in flagged for n in names) and "h" in flagged
             and n_wrong == len([k for k in flagged if k != "h line 2"]),
             f"{n_wrong} of {n_doc_numbers} document numbers wrong (9 scores, 9 weights, h), all explained")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/sigmoid_vs_softmax.py`.
# 1. Make x3 = [7, 8, 10]. Section 3 proved that every weighted sum of x1, x2, x3 rises in equal
#    steps. Does the proof still hold? Predict the two steps inside each row of H = sigmoid(X Xᵀ) X,
#    and how much larger the second step is than the first (hint: which weight multiplies the extra 1?).
# 2. Divide all three inputs by 10 before scoring. Is the softmax still practically one-hot?
#    Predict roughly the largest weight in each row (the score gaps shrink by a factor of 100).
# 3. Scale the inputs by c instead. What is the smallest c (to 0.01) at which query x1 puts at least
#    90% of its softmax weight on x3? (Write the row's weights as a function of c² first.)
