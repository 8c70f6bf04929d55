"""Lesson 11 - positional encoding: telling attention where each token is.

What it teaches: attention compares every token with every other token, but nothing in
softmax(Q Kᵀ/√d) V knows which token came first. Shuffle the input and the output is shuffled the
same way, nothing else changes: to attention a sequence is a bag of tokens. Tasks that depend on
order are then impossible. The fix is to add a position signal to every token vector. We look at
the sinusoidal encoding of "Attention Is All You Need" (a heatmap and a few of its columns as
curves), check the property that makes it useful (the similarity of two positions depends only on
their distance), and train the same small Transformer to reverse a sequence with and without it.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 002 §2.1 ("position attention": using the position of the
input to capture more information) and its Q4 / §8 mention of positional encoding.
Criterion: reversing sequences of 12 tokens (40 symbols): without positions <= 20% token accuracy,
with sinusoidal positions >= 99%, on 2,000 held-out sequences.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim, viz

lesson = Lesson(11, "positional encoding")
rng = lesson.rng

# %% [markdown]
# ## 1. Attention alone does not see order
# Run a self-attention layer on a sequence, then on the same sequence shuffled by a permutation P.
# If attention ignores order, attn(P x) = P attn(x): the outputs are the same vectors, shuffled.

# %%
lesson.section("1. self-attention is permutation-equivariant")
mha = nn.MultiheadAttention(16, 4, batch_first=True, dtype="float64")
x = rng.normal(size=(1, 7, 16))
perm = rng.permutation(7)
with ta.no_grad():
    out = mha(*(ta.tensor(x),) * 3)[0].numpy()
    out_shuffled = mha(*(ta.tensor(x[:, perm]),) * 3)[0].numpy()
equivariance_error = float(np.abs(out_shuffled - out[:, perm]).max())
print(f"permutation {perm.tolist()}: max |attn(P x) - P attn(x)| = {equivariance_error:.1e}")
print("So a token's output depends on *which* tokens are around, never on *where* they are.")

# %% [markdown]
# ## 2. The sinusoidal encoding
#     PE[pos, 2i]   = sin(pos / 10000^(2i/d)),     PE[pos, 2i+1] = cos(pos / 10000^(2i/d))
# Column pair i is a clock hand turning at its own speed: the first pairs turn fast (period 2π
# positions), the last ones very slowly (period up to 2π·10000). Every position gets a different
# pattern, values stay in [-1, 1], and the table needs no training. Because each pair is a rotation,
# PE[pos + k] is a fixed linear map of PE[pos], and the dot product PE[i]·PE[j] depends only on i - j.

# %%
lesson.section("2. the sinusoidal table")
d_model, n_positions = 64, 64
table = nn.sinusoidal_table(n_positions, d_model, dtype="float64")
print(f"table {table.shape}; value range [{table.min():.3f}, {table.max():.3f}]")
freq = 1.0 / 10000 ** (np.arange(0, d_model, 2) / d_model)
print("periods of the column pairs (positions): " + ", ".join(f"{p:.1f}" for p in (2 * np.pi / freq)[[0, 1, 2, 8, 16, 31]])
      + " (pairs 0, 1, 2, 8, 16, 31)")
print(f"recomputed by hand, max difference from the library's table: "
      f"{np.abs(np.sin(np.arange(n_positions)[:, None] * freq) - table[:, 0::2]).max():.1e} (sines), "
      f"{np.abs(np.cos(np.arange(n_positions)[:, None] * freq) - table[:, 1::2]).max():.1e} (cosines)")
gram = table @ table.T                                           # similarity of every pair of positions
same_distance = [gram[i, i + 5] for i in range(n_positions - 5)]
print(f"PE[i]·PE[i+5] for every i: min {min(same_distance):.6f}, max {max(same_distance):.6f} "
      "(the same for all i: it depends only on the distance)")
distance_only_error = float(np.ptp(same_distance))

# %% [markdown]
# ## 3. A task that needs positions: reverse a sequence
# Input 12 tokens from 40 symbols; target at position i: the input token at position 11 - i.
# The model: token embedding (+ positional encoding, or not) -> 1 Transformer encoder layer
# -> a classifier at every position. Without positions, position i cannot know it is i, so the
# best any model can do is guess a token that appears in the sequence (the most frequent one).
# We compute that ceiling by counting, before training anything.

# %%
lesson.section("3. reversing 12 tokens: the ceiling without positions")
L, V, hidden = 12, 40, 64
test_x = np.random.default_rng(10_000 + lesson.seed).integers(0, V, (2000, L))
ceiling = []
for i in range(L):                              # guess the most frequent token among the others
    others = np.delete(test_x, i, axis=1)
    counts = (others[:, :, None] == np.arange(V)).sum(axis=1)
    ceiling.append(np.mean(counts.argmax(axis=1) == test_x[:, L - 1 - i]))
ceiling = float(np.mean(ceiling))
print(f"best possible token accuracy for a position-blind model on these sequences: about {ceiling:.1%}")


class Reverser(nn.Module):
    def __init__(self, use_positions):
        super().__init__()
        self.use_positions = use_positions
        self.embed = nn.Embedding(V, hidden)
        self.position = nn.PositionalEncoding(hidden, dropout=0.0, max_len=L, batch_first=True)
        layer = nn.TransformerEncoderLayer(hidden, 4, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.classify = nn.Linear(hidden, V)

    def forward(self, tokens):
        # Embedding rows start N(0, 1); scale them to about the size of the encoding's entries
        h = self.embed(ta.tensor(tokens)) * 0.5
        if self.use_positions:
            h = self.position(h)                       # h + PE[:L]
        return self.classify(self.encoder(h))


def token_accuracy(model, xs):
    with ta.no_grad():
        predicted = model.eval()(xs).numpy().argmax(-1)
    model.train()
    return float((predicted == xs[:, ::-1]).mean())


def train(use_positions, steps):
    ta.manual_seed(lesson.seed)
    model = Reverser(use_positions)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    data = np.random.default_rng(lesson.seed)
    progress = Progress(steps, every=100, label="with positions    " if use_positions else "without positions ")
    history = {"loss": [], "acc": [], "acc_step": []}
    for step in range(1, steps + 1):
        xb = data.integers(0, V, (64, L))
        loss = F.cross_entropy(model(xb).reshape(-1, V), ta.tensor(xb[:, ::-1].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(float(loss.numpy()))
        if step % 50 == 0:
            history["acc"].append(token_accuracy(model, test_x[:500]))
            history["acc_step"].append(step)
            progress(step, history["loss"][-1], history["acc"][-1])
    return model, history


# %% [markdown]
# ### 3b. Training, with and without positional encoding
# The same model, seed and batches, once with the sinusoidal table added to the embeddings and
# once without; token accuracy on the 2000 held-out sequences is measured every 50 steps.

# %%
lesson.section("3b. training, with and without positional encoding")
model_pos, hist_pos = train(True, steps=400)
model_nopos, hist_nopos = train(False, steps=300)
acc_pos, acc_nopos = token_accuracy(model_pos, test_x), token_accuracy(model_nopos, test_x)
print(f"\nheld-out token accuracy on {len(test_x)} sequences: with positions {acc_pos:.2%}, "
      f"without {acc_nopos:.2%} (ceiling without positions ~{ceiling:.1%}; chance 1/{V} = {1 / V:.1%})")

# %% [markdown]
# ## 4. What the model with positions learned to look at
# Average the 4 heads' weights for one held-out sequence: query i should look at key 11 - i, an
# anti-diagonal. (With sinusoids this is easy: PE[11 - i] is a fixed linear map of PE[i].)

# %%
lesson.section("4. where the trained reverser looks")
example = test_x[:1]
with ta.no_grad():
    model_pos.eval()
    h = model_pos.position(model_pos.embed(ta.tensor(example)) * 0.5)
    _, w = model_pos.encoder.layers[0].self_attn(h, h, h, need_weights=True)
w = w.numpy()[0]
anti_diagonal_mass = float(np.mean([w[i, L - 1 - i] for i in range(L)]))
print(f"mean weight on the mirrored position 11 - i: {anti_diagonal_mass:.2f}")

# %% [markdown]
# ## 5. One claim to correct
# doc 002's answer to its Q4 says positional encoding "reduces computational complexity". It does not:
# it adds one (n x d) table to the input, O(n·d) work, and attention still costs O(n²·d).
# We count the multiply-adds of one forward pass of the reverser's encoder layer at our sizes, with
# and without the encoding.

# %%
lesson.section("5. doc 002 Q4: does positional encoding reduce computation?")
d_ff = 2 * hidden                                                # the reverser's feed-forward width
add_encoding = L * hidden                                        # one addition per entry of the table
projections = 4 * L * hidden * hidden                            # Q, K, V and the output projection
scores_and_mix = 2 * L * L * hidden                              # QKᵀ and weights @ V, all heads together
feed_forward = 2 * L * hidden * d_ff
layer_cost = projections + scores_and_mix + feed_forward
print(f"one encoder layer at n = {L}, d = {hidden}: {layer_cost:,} multiply-adds without positions, "
      f"{layer_cost + add_encoding:,} with the encoding added ({add_encoding:,} more, "
      f"+{add_encoding / layer_cost:.2%})")
pe_cost_share = add_encoding / layer_cost
verdict = "reduces" if pe_cost_share < 0 else "adds to"
print("  the document (doc 002, answer to Q4): positional encoding reduces the computational complexity")
print(f"  computed: the encoding {verdict} the work ({add_encoding:,} additions, {pe_cost_share:+.2%}); the "
      f"attention's n²·d term is {scores_and_mix:,} multiply-adds with or without it, so the order O(n²·d) "
      f"is unchanged. What it buys is order (section 3: {acc_pos:.0%} token accuracy with it, {acc_nopos:.0%} "
      "without), not speed.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
image = axes[0].imshow(table, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
axes[0].set(xlabel="encoding dimension", ylabel="position", title="sinusoidal positional encoding (64 x 64)")
fig.colorbar(image, ax=axes[0], label="value")
positions = np.arange(n_positions)
for col in (0, 1, 10, 20, 40):
    axes[1].plot(positions, table[:, col], label=f"dim {col} ({'sin' if col % 2 == 0 else 'cos'})")
axes[1].set(xlabel="position", ylabel="PE[position, dim]", title="a few columns: fast to slow clocks")
axes[1].legend(fontsize=8, ncol=2)
axes[1].grid(alpha=0.3)
image = axes[2].imshow(gram, cmap="viridis")
axes[2].set(xlabel="position j", ylabel="position i", title="PE[i]·PE[j]: depends only on i - j")
fig.colorbar(image, ax=axes[2], label="dot product")
fig.tight_layout()
lesson.savefig(fig, "sinusoidal_encoding")

fig = viz.training_curves({"with positional encoding": hist_pos, "without positions": hist_nopos},
                          title="reversing 12 tokens: token accuracy on held-out sequences")
fig.axes[1].axhline(100 * ceiling, color="gray", ls="--", lw=1)
fig.axes[1].text(200, 100 * ceiling + 3, "best possible without positions", color="gray", fontsize=8)
lesson.savefig(fig, "reverse_training")

tok = [str(t) for t in example[0]]
ax = viz.heatmap(w, [f"{t}@{i}" for i, t in enumerate(tok)], [f"{t}@{i}" for i, t in enumerate(tok)],
                 title="trained reverser, attention (mean of 4 heads): query i looks at key 11 - i",
                 xlabel="key (token@position)", ylabel="query (token@position)", annotate=False)
lesson.savefig(ax.figure, "reverse_attention")

# %%
lesson.section("criterion")
lesson.record(equivariance_error=equivariance_error, distance_only_spread=distance_only_error,
              ceiling_without_positions=ceiling, accuracy_with_positions=acc_pos,
              accuracy_without_positions=acc_nopos, anti_diagonal_mass=anti_diagonal_mass,
              pe_cost_share=pe_cost_share, n_test=len(test_x))
lesson.check("without positions <= 20% token accuracy", acc_nopos <= 0.20, f"{acc_nopos:.2%}")
lesson.check("with positions >= 99% token accuracy", acc_pos >= 0.99, f"{acc_pos:.2%}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/positional_encoding.py`.
# 1. Extend the sinusoidal table to 10 010 positions. Is PE[i]·PE[i+5] still the same for every
#    i up to 10 000? Predict its value from the formula Σ_k cos(5 ω_k) (one term per column pair).
# 2. Replace the sinusoids by a *learned* position table (`nn.Embedding(16, 64)`), train the
#    reverser on length 12 as in section 3 (200 steps suffice), then test it on length 16. Predict
#    both token accuracies. What did rows 12..15 of the table learn during training?
# 3. Give that learned model a sequence of length 17. What happens, and why can the sinusoidal
#    encoding not fail this way?
