"""Lesson 10 - self-attention and multi-head attention, built step by step.

What it teaches: in self-attention every token of one sequence is at once a query (what am I
looking for?), a key (what do I offer?) and a value (what do I pass on?), each made by its own
linear map of the token. One head computes softmax(Q Kᵀ / √d) V. Several heads do this in
parallel on narrow slices of the model width, each free to look for something different (the
same word, the previous word, ...); their outputs are concatenated and mixed by one more linear
map. We build one head by hand, then h heads as a loop, then all heads at once with a reshape,
check the three agree, and check them against the library's nn.MultiheadAttention. Finally we run
the document's SelfAttention exactly as printed and see what its scale does.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 001 §3.1-3.3 (A with rows summing to 1, Z = A X; the cost
claims) and §5.2 (PyTorch SelfAttention(d_model, num_heads), scores divided by sqrt(num_heads));
doc 002 §2.1 ("attention modules" combining attention mechanisms): concatenation vs averaged maps.
Criterion: the batched multi-head layer equals the loop of single heads to 1e-10 (outputs and
gradients, float64), and equals tinyattn.nn.MultiheadAttention loaded with the same weights.
"""
# %%
from _common import Lesson

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import viz

lesson = Lesson(10, "self-attention and multi-head")
rng = lesson.rng

# %% [markdown]
# ## 1. A sentence as vectors
# Six tokens. Each is the concatenation of a word vector (8 dims, one per distinct word, random
# unit vectors) and a one-hot position (8 dims), padded with zeros to the model width 32.
# Hand-made inputs let us hand-make heads whose behaviour we can predict, in section 3.

# %%
lesson.section("1. the input: word vectors + one-hot positions")
sentence = ["the", "cat", "sat", "on", "the", "mat"]
vocab = sorted(set(sentence))
T, d_model, num_heads = len(sentence), 32, 4
head_dim = d_model // num_heads                                  # 8
word_vectors = rng.normal(size=(len(vocab), 8))
word_vectors /= np.linalg.norm(word_vectors, axis=1, keepdims=True)
X_np = np.zeros((T, d_model))
for i, w in enumerate(sentence):
    X_np[i, :8] = word_vectors[vocab.index(w)]                  # dims 0-7: which word
    X_np[i, 8 + i] = 1.0                                        # dims 8-15: which position
X = ta.tensor(X_np, dtype="float64", requires_grad=True)
print(f"X: {T} tokens x d_model = {d_model}; {num_heads} heads of width {head_dim}")

# %% [markdown]
# ## 2. One head, step by step
#     Q = X W_qᵀ,  K = X W_kᵀ,  V = X W_vᵀ            (Linear layers: y = x Wᵀ, PyTorch's layout)
#     S = Q Kᵀ / √d_head                              (T x T: how well query i matches key j)
#     A = softmax(S) over each row                    (rows sum to 1: doc 001 §3.2)
#     Z = A V                                         (each output is a weighted average of values)


# %%
def one_head(X, W_q, W_k, W_v):
    """Single-head scaled dot-product self-attention. W_*: (d_head, d_model). Returns (Z, A)."""
    Q, K, V = X @ W_q.T, X @ W_k.T, X @ W_v.T               # (T, d_head) each
    S = Q @ K.T / np.sqrt(W_q.shape[0])                     # (T, T) scores
    A = ta.softmax(S, axis=-1)                              # (T, T) weights
    return A @ V, A                                         # (T, d_head), (T, T)


lesson.section("2. one head")
W_demo = [ta.tensor(rng.normal(size=(head_dim, d_model)) / np.sqrt(d_model), dtype="float64") for _ in range(3)]
Z_demo, A_demo = one_head(X, *W_demo)
print(f"Q, K, V: ({T}, {head_dim}); scores and weights A: {A_demo.shape}; output Z: {Z_demo.shape}")
print("row sums of A:", A_demo.numpy().sum(axis=1).round(12).tolist())

# %% [markdown]
# ## 3. Four heads with a purpose
# We set the projections by hand so that each head looks for one thing (a trained model finds
# such heads by itself; here we know what each should do, so the heatmaps can be checked by eye):
#   head 0 "same word":      q and k both read the word dims   -> the two "the" attend to each other
#   head 1 "previous token": q reads position i as i-1, k reads position j   -> attends to j = i-1
#   head 2 "next token":     q reads position i as i+1                       -> attends to j = i+1
#   head 3 random projections (what an untrained head looks like)
# Each W_q, W_k, W_v is (d_model x d_model); rows h·8 .. h·8+7 belong to head h.

# %%
lesson.section("3. four hand-made heads")
sharp = 4.0 * np.sqrt(head_dim)                # after the 1/√8 scale the matching score is ~4-5
W_q, W_k = np.zeros((d_model, d_model)), np.zeros((d_model, d_model))
rows = lambda h: slice(h * head_dim, (h + 1) * head_dim)   # noqa: E731 - the rows of head h
W_q[rows(0), 0:8] = sharp * np.eye(8)                      # head 0: word . word
W_k[rows(0), 0:8] = np.eye(8)
W_q[rows(1), 8:16] = sharp * np.eye(8, k=1)                # head 1: position i -> one-hot of i-1
W_k[rows(1), 8:16] = np.eye(8)
W_q[rows(2), 8:16] = sharp * np.eye(8, k=-1)               # head 2: position i -> one-hot of i+1
W_k[rows(2), 8:16] = np.eye(8)
W_q[rows(3)] = rng.normal(size=(head_dim, d_model))
W_k[rows(3)] = rng.normal(size=(head_dim, d_model))
W_v = rng.normal(size=(d_model, d_model)) / np.sqrt(d_model)
W_o = rng.normal(size=(d_model, d_model)) / np.sqrt(d_model)
b_o = rng.normal(size=d_model) * 0.1
Wq_t, Wk_t, Wv_t, Wo_t, bo_t = (ta.tensor(a, dtype="float64", requires_grad=True) for a in (W_q, W_k, W_v, W_o, b_o))
params = [X, Wq_t, Wk_t, Wv_t, Wo_t, bo_t]


# %% [markdown]
# ### 3a. Multi-head as a loop of single heads
# head_h = one_head(X, rows h of W_q, W_k, W_v);  output = concat(head_0 .. head_3) W_oᵀ + b_o

# %%
lesson.section("3a. multi-head as a loop of single heads")


def multihead_loop(X, W_q, W_k, W_v, W_o, b_o):
    heads, weights = [], []
    for h in range(num_heads):
        Z_h, A_h = one_head(X, W_q[rows(h)], W_k[rows(h)], W_v[rows(h)])
        heads.append(Z_h)
        weights.append(A_h)
    return ta.concatenate(heads, axis=-1) @ W_o.T + b_o, ta.stack(weights, axis=0)


with ta.no_grad():
    out_shape, weights_shape = (tuple(t.shape) for t in multihead_loop(*params))
print(f"{num_heads} heads of width {head_dim}: each head's output is ({T}, {head_dim}); concatenated "
      f"and projected by W_o: {out_shape}; the weights of all heads stacked: {weights_shape}")


# %% [markdown]
# ### 3b. All heads at once
# Project once with the full (d_model x d_model) matrices, then reshape (T, d_model) into
# (T, heads, d_head) and move the head axis first: (heads, T, d_head). One batched matrix product
# then scores every head; reshaping back is the concatenation.

# %%
lesson.section("3b. all heads at once, compared with the loop")


def multihead_batched(X, W_q, W_k, W_v, W_o, b_o):
    split = lambda M: ta.permute(ta.reshape(M, (T, num_heads, head_dim)), (1, 0, 2))  # noqa: E731
    Q, K, V = split(X @ W_q.T), split(X @ W_k.T), split(X @ W_v.T)      # (heads, T, d_head)
    A = ta.softmax(Q @ ta.swapaxes(K, -1, -2) / np.sqrt(head_dim), axis=-1)   # (heads, T, T)
    Z = ta.reshape(ta.permute(A @ V, (1, 0, 2)), (T, d_model))         # concat heads
    return Z @ W_o.T + b_o, A


def output_and_grads(fn):
    for p in params:
        p.grad = None
    out, A = fn(*params)
    (out * ta.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape), dtype="float64")).sum().backward()
    return out.numpy(), A.numpy(), [p.grad.numpy().copy() for p in params]


out_loop, A_loop, g_loop = output_and_grads(multihead_loop)
out_batch, A_batch, g_batch = output_and_grads(multihead_batched)
loop_vs_batched = float(np.abs(out_loop - out_batch).max())
grad_loop_vs_batched = max(float(np.abs(a - b).max()) for a, b in zip(g_loop, g_batch))
print(f"max |loop - batched|: outputs {loop_vs_batched:.1e}, weights {np.abs(A_loop - A_batch).max():.1e}, "
      f"gradients (X and all weights) {grad_loop_vs_batched:.1e}")
for h, name in enumerate(["same word", "previous token", "next token", "random"]):
    picks = [sentence[j] + f"@{j}" for j in A_batch[h].argmax(axis=1)]
    print(f"  head {h} ({name:<14}): each query's strongest key: {picks}")

# %% [markdown]
# ## 4. The library's nn.MultiheadAttention with the same weights
# PyTorch's layout packs W_q, W_k, W_v into in_proj_weight (3·d_model x d_model) and the output
# map into out_proj. It takes (T, batch, d_model) by default; we use batch_first and a batch of 1.

# %%
lesson.section("4. the same numbers from tinyattn.nn.MultiheadAttention")
mha = nn.MultiheadAttention(d_model, num_heads, batch_first=True, dtype="float64")
mha.load_state_dict({"in_proj_weight": np.concatenate([W_q, W_k, W_v]), "in_proj_bias": np.zeros(3 * d_model),
                     "out_proj.weight": W_o, "out_proj.bias": b_o})
X_batch = ta.tensor(X_np[None], dtype="float64")
out_mha, A_mha = mha(X_batch, X_batch, X_batch, need_weights=True, average_attn_weights=False)
mha_vs_ours = float(np.abs(out_mha.numpy()[0] - out_batch).max())
mha_weights_vs_ours = float(np.abs(A_mha.numpy()[0] - A_batch).max())
print(f"max |MultiheadAttention - ours|: outputs {mha_vs_ours:.1e}, per-head weights {mha_weights_vs_ours:.1e}")

# %% [markdown]
# ## 5. The document's SelfAttention, as printed (doc 001 §5.2)
# It splits into heads correctly but divides the scores by `torch.sqrt(torch.tensor(dim))` with
# `dim = self.num_heads`: √(number of heads) instead of √(head width). The two agree only when
# num_heads == d_model / num_heads. The code itself runs as printed: we ran the document's class
# with PyTorch 2.13 (CPU), and `torch.sqrt(torch.tensor(4))` on the integer tensor returns
# `tensor(2.)` in float32 (PyTorch promotes integer inputs of sqrt to the default float dtype), so
# `SelfAttention(16, 4)` maps a (2, 6, 16) input to a (2, 6, 16) output without complaint. Its one
# error is the scale, which nothing warns about. We run it below with our weights.


# %%
class DocSelfAttention(nn.Module):
    """doc 001 §5.2 line for line: query/key/value/fc Linear layers, scale 1/sqrt(num_heads)."""

    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads, self.d_model, self.depth = num_heads, d_model, d_model // num_heads
        self.query, self.key, self.value = (nn.Linear(d_model, d_model, dtype="float64") for _ in range(3))
        self.fc = nn.Linear(d_model, d_model, dtype="float64")

    def forward(self, x):
        m, dim = self.depth, self.num_heads
        b, t, _ = x.shape
        q = ta.permute(ta.reshape(self.query(x), (b, t, dim, m)), (0, 2, 1, 3))
        k = ta.permute(ta.reshape(self.key(x), (b, t, dim, m)), (0, 2, 1, 3))
        v = ta.permute(ta.reshape(self.value(x), (b, t, dim, m)), (0, 2, 1, 3))
        score = q @ ta.permute(k, (0, 1, 3, 2)) / np.sqrt(dim)          # the document's scale
        self.attention_weights = ta.softmax(score, axis=-1)
        output = ta.reshape(ta.permute(self.attention_weights @ v, (0, 2, 1, 3)), (b, t, self.d_model))
        return self.fc(output)


lesson.section("5. doc 001 §5.2 SelfAttention as printed")
doc_layer = DocSelfAttention(d_model, num_heads)
zeros = np.zeros(d_model)
doc_layer.load_state_dict({"query.weight": W_q, "query.bias": zeros, "key.weight": W_k, "key.bias": zeros,
                           "value.weight": W_v, "value.bias": zeros, "fc.weight": W_o, "fc.bias": b_o})
out_doc = doc_layer(X_batch).numpy()[0]
A_doc = doc_layer.attention_weights.numpy()[0]
doc_diff = float(np.abs(out_doc - out_batch).max())


def entropy(A):
    return float(-(A * np.log(np.clip(A, 1e-300, None))).sum(-1).mean())


lesson.claim("score scale", ours=1 / np.sqrt(head_dim), doc=1 / np.sqrt(num_heads),
             note=f"the document divides by sqrt(num_heads) = sqrt({num_heads}); scaled dot-product attention "
                  f"divides by sqrt(head width) = sqrt({head_dim}), so the variance of the scores stays ~1")
print(f"the document's scores are {np.sqrt(head_dim / num_heads):.2f}x too large here")
print(f"max |document - correct| output: {doc_diff:.3f}; mean weight entropy: correct "
      f"{entropy(A_batch):.3f} nats, document {entropy(A_doc):.3f} nats (sharper, closer to one-hot)")
agree_when_equal = {}
for dm, h in [(16, 4), (32, 4), (64, 4), (64, 8), (512, 8)]:
    factor = np.sqrt((dm // h) / h)
    agree_when_equal[f"{dm}/{h}"] = float(factor)
    print(f"  d_model {dm:>3}, heads {h}: head width {dm // h:>2}; the document's scores are "
          f"{factor:5.2f}x the correct ones" + ("  (identical: heads == head width)" if factor == 1 else ""))
print("As the head width grows the document's softmax saturates (lesson 05 measures entropy and "
      "gradient size against d).")

# %% [markdown]
# ## 6. What the document says about cost (§3.3)
# It says the cost is O(n²) "and independent of the sequence length" (it cannot be both), and that
# self-attention has "many parameters". Count: the parameters are 4·d_model² + 4·d_model whatever
# the length n; what grows with n² is the weight matrix A, one per head.

# %%
lesson.section("6. parameters vs activations as the sequence grows")
n_params = mha.num_parameters()
for n in (6, 600, 6000):
    print(f"  n = {n:>5}: parameters {n_params} (= 4·{d_model}² + 4·{d_model}); attention weights "
          f"{num_heads}·n² = {num_heads * n * n:,} numbers")

# %%
tokens = [f"{w}@{i}" for i, w in enumerate(sentence)]
key_labels = [f"{w}\n@{i}" for i, w in enumerate(sentence)]      # two lines: columns are narrow
titles = ["head 0: same word", "head 1: previous token", "head 2: next token", "head 3: random"]
fig = viz.heatmap_grid(np.concatenate([A_batch, A_doc]), tokens, key_labels,
                       titles=[t + " (correct √d_head)" for t in titles] + [t + " (doc: √heads)" for t in titles],
                       suptitle="multi-head self-attention on 'the cat sat on the mat': per-head weights, "
                                "correct scale (top) vs the document's scale (bottom)",
                       ncols=4, vmin=0, vmax=1, annotate=True)
lesson.savefig(fig, "per_head_weights")

# %% [markdown]
# ## 7. Combining attention maps (doc 002 §2.1)
# doc 002 §2.1 lists, after self-, multi-head and position attention, "attention modules" that
# combine different attention mechanisms "for more efficient information filtering and
# processing" (§3.2 repeats it as steps 5-7: combine multi-head, combine position, combine
# modules). It never says how maps are combined. Two ways for our four heads:
#   concatenate, then project (what multi-head attention does, sections 3-4):
#       out = concat_h(A_h V_h) W_oᵀ + b_o          each head's result keeps its own 8 columns
#   average the maps first:
#       Ā = (1/H) Σ_h A_h,   out = Ā (X W_vᵀ) W_oᵀ + b_o      one map for all 32 columns
# PyTorch's `need_weights=True` returns Ā by default (average_attn_weights=True), but only to look
# at: its output is the concatenation. What each combination keeps, and what it costs:

# %%
lesson.section("7. combining the four heads: concatenation vs averaged maps")
A_mean = A_batch.mean(axis=0)                                     # Ā, (T, T)
_, A_mha_mean = mha(X_batch, X_batch, X_batch, need_weights=True)   # average_attn_weights=True
mean_vs_library = float(np.abs(A_mha_mean.numpy()[0] - A_mean).max())
out_averaged = A_mean @ (X_np @ W_v.T) @ W_o.T + b_o
averaged_vs_concat = float(np.abs(out_averaged - out_mha.numpy()[0]).max())
print(f"Ā written out vs MultiheadAttention(need_weights=True)'s averaged weights: max difference {mean_vs_library:.1e}")
print(f"output from Ā vs the library's output (the concatenation): max difference {averaged_vs_concat:.3f} "
      f"(outputs of size ~{np.abs(out_batch).mean():.2f})")
inner = np.arange(1, T - 1)                                       # queries with a token on each side
gap = {"head 1 (previous)": A_batch[1][inner, inner - 1] - A_batch[1][inner, inner + 1],
       "head 2 (next)": A_batch[2][inner, inner - 1] - A_batch[2][inner, inner + 1],
       "averaged map Ā": A_mean[inner, inner - 1] - A_mean[inner, inner + 1]}
print("weight on the previous token minus weight on the next token, queries 1..4:")
for name, g in gap.items():
    print(f"  {name:<18} {np.array2string(g, precision=3, suppress_small=True)}")
side_gap = {name: float(np.abs(g).mean()) for name, g in gap.items()}
print(f"Concatenated, the output of token i holds the previous token's value in head 1's columns and the "
      f"next token's in head 2's (mean |gap| {side_gap['head 1 (previous)']:.3f} and "
      f"{side_gap['head 2 (next)']:.3f}); averaged, the two cancel to a mean |gap| of "
      f"{side_gap['averaged map Ā']:.3f}: Ā looks {'equally' if side_gap['averaged map Ā'] < 0.05 else 'almost equally'} "
      "left and right, so whatever follows cannot tell the previous word from the next one.")
n_ = 1024                                                           # the cost, counted at a longer length
wide_head = {"projections": 4 * n_ * d_model * d_model, "scores and mix": 2 * n_ * n_ * d_model, "exp": n_ * n_}
concat_heads = {"projections": 4 * n_ * d_model * d_model,
                "scores and mix": num_heads * 2 * n_ * n_ * head_dim, "exp": num_heads * n_ * n_}
averaged_maps = dict(concat_heads, **{"average the maps": num_heads * n_ * n_})
for name, cost in (("one head of width 32", wide_head), (f"{num_heads} heads, concatenated", concat_heads),
                   (f"{num_heads} heads, maps averaged", averaged_maps)):
    print(f"  n = {n_}: {name:<28} " + ", ".join(f"{k} {v:,}" for k, v in cost.items())
          + f"  -> total {sum(cost.values()):,}")
combine_cost_ratio = sum(concat_heads.values()) / sum(wide_head.values())
print(f"doc 002 says combining attention mechanisms makes the processing more efficient. Counted: "
      f"{num_heads} heads combined by concatenation cost {combine_cost_ratio:.3f}x one head of the full width "
      f"(the same matrix products, {num_heads}x the exponentials), and averaging their maps adds work, "
      f"{sum(averaged_maps.values()) / sum(wide_head.values()):.3f}x. What combining buys is several "
      "patterns at once (sections 3 and 7), not fewer operations.")

fig = viz.heatmap_grid([A_batch[1], A_batch[2], A_mean], tokens, key_labels,
                       titles=["head 1: previous token", "head 2: next token", "Ā: the four heads averaged"],
                       suptitle="combining maps: each head keeps its own pattern; the average blurs "
                                "previous and next together", ncols=3, vmin=0, vmax=1, annotate=True)
lesson.savefig(fig, "combined_maps")

# %%
lesson.section("criterion")
lesson.record(loop_vs_batched=loop_vs_batched, grad_loop_vs_batched=grad_loop_vs_batched,
              mha_vs_ours=mha_vs_ours, mha_weights_vs_ours=mha_weights_vs_ours, doc_vs_correct=doc_diff,
              entropy_correct=entropy(A_batch), entropy_doc=entropy(A_doc), doc_scale_factor=agree_when_equal,
              strongest_key={h: A_batch[h].argmax(axis=1) for h in range(num_heads)}, n_parameters=n_params,
              averaged_map=A_mean, averaged_map_vs_library=mean_vs_library, averaged_output_vs_concat=averaged_vs_concat,
              side_gap=side_gap, combine_cost_ratio=combine_cost_ratio)
lesson.check("multi-head equals a loop of single heads to 1e-10",
             loop_vs_batched <= 1e-10 and grad_loop_vs_batched <= 1e-10,
             f"outputs {loop_vs_batched:.1e}, gradients {grad_loop_vs_batched:.1e}")
lesson.check("equals nn.MultiheadAttention with the same weights",
             mha_vs_ours <= 1e-10 and mha_weights_vs_ours <= 1e-10,
             f"outputs {mha_vs_ours:.1e}, weights {mha_weights_vs_ours:.1e}")
lesson.check("averaged maps = the library's need_weights average; averaging loses previous vs next",
             mean_vs_library <= 1e-12 and side_gap["averaged map Ā"] < side_gap["head 1 (previous)"] / 4,
             f"library {mean_vs_library:.1e}; |previous - next| {side_gap['head 1 (previous)']:.3f} (head 1) vs "
             f"{side_gap['averaged map Ā']:.3f} (Ā)")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/self_attention_multihead.py`.
# 1. Build `nn.MultiheadAttention(32, h)` for h = 1, 2, 4, 8, 16 and 32. How does the number of
#    parameters change with the number of heads? (Section 6 has the formula.)
# 2. In section 3, head 1 ("previous token") is built so that query i matches key i - 1. Query 0
#    has no previous token: predict its six weights. Then predict query 3's largest weight
#    exactly (its matching score after the 1/√8 scale is 4, every other score is 0).
# 3. With d_model = 64, for which number of heads is the document's 1/√num_heads scale the
#    correct 1/√(head width)? Check it by comparing the two scales' outputs for every divisor of 64.
