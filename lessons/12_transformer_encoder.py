"""Lesson 12 - the Transformer encoder layer: residuals, LayerNorm, and where they go.

What it teaches: an encoder layer is two sub-layers, self-attention (tokens exchange information)
and a position-wise feed-forward net (each token thinks on its own). What makes a deep stack of
them trainable is the wiring around the sub-layers: a residual path x + sublayer(x) and a
LayerNorm. We first compute LayerNorm by hand on [1, 0, 0, 0], then build the document's
EncoderLayer exactly as printed next to the two standard layouts (post-norm, as in the 2017 paper,
and pre-norm, as in most modern models), look at how activations grow through a deep stack of
each, and train all three on a task that needs every token to look at every other: sorting.
Then we train the document's layer and the pre-norm layer at 2, 4, 8 and 16 layers and measure
how much gradient reaches the first layer and how well each stack trains.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 002 §5.2 (TensorFlow SelfAttention, EncoderLayer, Encoder).
Criterion: LayerNorm([1, 0, 0, 0]) = [1.732, -0.577, -0.577, -0.577]; the standard (post-norm)
encoder sorts held-out sequences of length 6 over 3 symbols with >= 99% sequence accuracy; the
gradient reaching the first layer of the document's stack at initialisation falls >= 100x from 2 to
16 layers while pre-norm's stays within 3x.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim, viz

lesson = Lesson(12, "the Transformer encoder")
rng = lesson.rng

# %% [markdown]
# ## 1. LayerNorm on one vector, by hand and by the library
# LayerNorm normalises each token's feature vector: subtract its mean, divide by its standard
# deviation (the *biased* one, dividing by n), then scale by γ and shift by β (1 and 0 at the start).
# For x = [1, 0, 0, 0]: mean 0.25, variance (0.75² + 3·0.25²)/4 = 0.1875, std 0.4330, so
# y = [0.75, -0.25, -0.25, -0.25] / 0.4330 = [√3, -1/√3, -1/√3, -1/√3].

# %%
lesson.section("1. LayerNorm of [1, 0, 0, 0]")
x = np.array([1.0, 0.0, 0.0, 0.0])
mean, var = x.mean(), ((x - x.mean()) ** 2).mean()
by_hand = (x - mean) / np.sqrt(var + 1e-5)
print(f"mean {mean}, biased variance {var}, std {np.sqrt(var):.4f}")
layer_norm = nn.LayerNorm(4, dtype="float64")
ln_out = layer_norm(ta.tensor(x, dtype="float64")).numpy()
exact = np.array([np.sqrt(3), -1 / np.sqrt(3), -1 / np.sqrt(3), -1 / np.sqrt(3)])
print("by hand        :", by_hand.round(6))
print("nn.LayerNorm(4):", ln_out.round(6))
print("exact (eps = 0):", exact.round(6))
ln_err = float(np.abs(ln_out - exact).max())
print(f"max |LayerNorm - exact| = {ln_err:.1e} (the eps = 1e-5 added to the variance moves the "
      "5th decimal; it is there so a constant vector does not divide by zero)")
print("with an unbiased variance (divide by n-1 = 3) it would be", ((x - mean) / x.std(ddof=1)).round(3),
      "- LayerNorm uses the biased one.")

# %% [markdown]
# ## 2. Three encoder layers
# The document's EncoderLayer (§5.2), as printed, computes
#     a = dropout(SelfAttention(x));  f = dropout(Dense_4h,relu(a));  out = linear2(linear1(f) + x)
# and the Encoder adds one LayerNorm after the whole stack. Notice:
#   * `num_heads` and `mask` are accepted and ignored (SelfAttention has one head and no mask);
#   * the residual skips both sub-layers at once and then passes through another Dense (linear2),
#     so there is no clean identity path x -> output: each layer multiplies the signal by linear2;
#   * there is no LayerNorm inside the layers.
# The standard layer (Vaswani et al. 2017, PyTorch's nn.TransformerEncoderLayer) wraps *each*
# sub-layer in a residual and a LayerNorm:
#     post-norm:  x = LN(x + SA(x));      x = LN(x + FF(x))
#     pre-norm:   x = x + SA(LN(x));      x = x + FF(LN(x))     (+ one final LN after the stack)

# %%
lesson.section("2. three encoder layers: the document's, post-norm, pre-norm")


class DocSelfAttention(nn.Module):
    """The document's SelfAttention: one head, scores / sqrt(hidden_size), no mask."""

    def __init__(self, hidden):
        super().__init__()
        self.w_q, self.w_k, self.w_v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.d_k = hidden ** 0.5

    def forward(self, x, mask=None):                     # mask accepted and ignored, as printed
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)
        attn = ta.softmax(q @ k.transpose(-1, -2) / self.d_k, axis=-1)
        return attn @ v


class DocEncoderLayer(nn.Module):
    """doc 002 §5.2 EncoderLayer, line for line (num_heads is ignored, as in the document)."""

    def __init__(self, hidden, num_heads, dropout):
        super().__init__()
        self.self_attn = DocSelfAttention(hidden)
        self.feed_forward = nn.Linear(hidden, 4 * hidden)
        self.linear1 = nn.Linear(4 * hidden, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        attn_output = self.dropout(self.self_attn(x, mask=mask))
        feed_forward_output = self.dropout(F.relu(self.feed_forward(attn_output)))
        return self.linear2(self.linear1(feed_forward_output) + x)


class DocEncoder(nn.Module):
    def __init__(self, num_layers, hidden, num_heads, dropout):
        super().__init__()
        self.layers = nn.ModuleList([DocEncoderLayer(hidden, num_heads, dropout) for _ in range(num_layers)])
        self.layer_norm = nn.LayerNorm(hidden)

    def forward(self, x, trace=None):
        for layer in self.layers:
            x = layer(x)
            if trace is not None:
                trace.append(float(np.sqrt((x.numpy() ** 2).mean())))
        return self.layer_norm(x)


def standard_encoder(num_layers, hidden, heads, norm_first, dropout=0.1):
    layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=4 * hidden, dropout=dropout,
                                       batch_first=True, norm_first=norm_first)
    # pre-norm leaves the residual stream un-normalised, so the stack ends with one LayerNorm
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(hidden) if norm_first else None)


def trace_standard(encoder, x):
    """RMS of the activations after each layer of a standard stack."""
    out = []
    for layer in encoder.layers:
        x = layer(x)
        out.append(float(np.sqrt((x.numpy() ** 2).mean())))
    return out


# %% [markdown]
# ## 3. Activations through a deep stack, at initialisation
# Feed the same random input (RMS 1) through 12 freshly initialised layers of each kind and print
# the RMS of the activations after each layer. Post-norm renormalises after every sub-layer; pre-norm
# lets the residual stream grow slowly (each layer adds something); the document's layer has no
# identity path, so the scale after a layer is whatever its Dense layers make of it, compounded.

# %%
lesson.section("3. activation size through 12 layers at initialisation")
hidden, depth = 32, 12
probe = ta.tensor(rng.normal(size=(8, 6, hidden)), dtype="float32")   # the models are float32
traces = {}
with ta.no_grad():
    doc_deep = DocEncoder(depth, hidden, num_heads=4, dropout=0.1).eval()
    trace = []
    doc_deep(probe, trace=trace)
    traces["document (no inner LayerNorm)"] = trace
    traces["post-norm (2017 paper)"] = trace_standard(standard_encoder(depth, hidden, 4, False).eval(), probe)
    traces["pre-norm"] = trace_standard(standard_encoder(depth, hidden, 4, True).eval(), probe)
for name, t in traces.items():
    print(f"  {name:<32} RMS after layers 1..12: " + " ".join(f"{v:.2f}" for v in t))
doc_trace = traces["document (no inner LayerNorm)"]
print(f"The document's stack has no identity path and no inner LayerNorm: the signal left after 12 "
      f"layers is {doc_trace[-1]:.2f} of the input's size (post-norm: {traces['post-norm (2017 paper)'][-1]:.2f}, "
      f"pre-norm: {traces['pre-norm'][-1]:.2f}). Its final LayerNorm rescales the output, but the "
      "gradients still travel back through every layer's Dense layers, with no shortcut.")

# %% [markdown]
# ## 4. A task for an encoder: sort a sequence
# Input: 6 tokens from {0, 1, 2}; target at position i: the i-th smallest token. To get position i
# right, a token must know how many 0s, 1s and 2s the whole sequence holds, and where it is
# itself: exactly what self-attention (counting) plus a position signal provide. There are
# 3^6 = 729 sequences; we train on 500 and test on the 229 the model never saw. Every model uses
# dropout 0.1 (the standard value): without it the post-norm model tends to miss one or two rare
# held-out sequences such as [2, 2, 2, 2, 2, 1] - it memorises more and generalises less.

# %%
lesson.section("4. sorting: 500 training sequences, 229 held out")
L, V = 6, 3
every_sequence = np.stack(np.meshgrid(*[np.arange(V)] * L, indexing="ij"), axis=-1).reshape(-1, L)
order = rng.permutation(len(every_sequence))
train_x, test_x = every_sequence[order[:500]], every_sequence[order[500:]]
print(f"example: {train_x[0].tolist()} -> {np.sort(train_x[0]).tolist()}")


class Sorter(nn.Module):
    """token embedding + learned position embedding -> encoder -> a classifier per position."""

    def __init__(self, encoder, hidden):
        super().__init__()
        self.embed = nn.Embedding(V, hidden)
        self.position = nn.LearnedPositionalEmbedding(L, hidden, batch_first=True)
        self.encoder = encoder
        self.classify = nn.Linear(hidden, V)

    def forward(self, tokens):
        return self.classify(self.encoder(self.position(self.embed(ta.tensor(tokens)))))


def sequence_accuracy(model, xs):
    with ta.no_grad():
        predicted = model.eval()(xs).numpy().argmax(-1)
    model.train()
    return float((predicted == np.sort(xs, axis=1)).all(axis=1).mean())


def train_sorter(name, encoder, steps=500, batch=64, width=None):
    ta.manual_seed(lesson.seed)
    model = Sorter(encoder, width or hidden)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    progress = Progress(steps, every=100, label=f"{name:<10} ")
    data_rng = np.random.default_rng(lesson.seed)
    losses = []
    for step in range(1, steps + 1):
        xb = train_x[data_rng.integers(0, len(train_x), batch)]
        logits = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, V), ta.tensor(np.sort(xb, axis=1).reshape(-1)))
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.numpy()))
        if step % 100 == 0 or step == steps:
            progress(step, losses[-1], sequence_accuracy(model, test_x))
    return model, losses


ta.manual_seed(lesson.seed)
models, histories, accuracies = {}, {}, {}
for name, make in [("post-norm", lambda: standard_encoder(2, hidden, 4, False)),
                   ("pre-norm", lambda: standard_encoder(2, hidden, 4, True)),
                   ("document", lambda: DocEncoder(2, hidden, 4, dropout=0.1))]:
    models[name], histories[name] = train_sorter(name, make())
    accuracies[name] = sequence_accuracy(models[name], test_x)
print()
for name, acc in accuracies.items():
    print(f"  {name:<10} held-out sequence accuracy {acc:7.2%}   final training loss {histories[name][-1]:.4f}")
print(f"With 2 layers every layout learns the task (held-out accuracy {min(accuracies.values()):.1%} to "
      f"{max(accuracies.values()):.1%}); whether the document's layer keeps up in deeper stacks is section 5's question.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
viz.plot_curves({k: (np.arange(1, depth + 1), v) for k, v in traces.items()}, ax=axes[0], logy=True,
                xlabel="layer", ylabel="activation RMS (log scale)",
                title="12 layers at initialisation: activation size", styles={k: "o-" for k in traces})
viz.plot_curves({k: v for k, v in histories.items()}, ax=axes[1], logy=True, xlabel="training step",
                ylabel="cross-entropy (log scale)", title="sorting 6 tokens: training loss, 2 layers")
lesson.savefig(fig, "encoder_layers_compared")

# The post-norm sorter's attention in its first layer for one held-out sequence: each position
# spreads its attention over the tokens it has to count.
example = test_x[:1]
sorter = models["post-norm"].eval()
with ta.no_grad():
    h = sorter.position(sorter.embed(ta.tensor(example)))
    _, w = sorter.encoder.layers[0].self_attn(h, h, h, need_weights=True, average_attn_weights=False)
rows = [f"{t}@{i}" for i, t in enumerate(example[0])]
cols = [f"{t}\n@{i}" for i, t in enumerate(example[0])]          # two lines: narrow columns
fig = viz.heatmap_grid(w.numpy()[0], rows, cols, titles=[f"layer 1, head {i}" for i in range(4)],
                       suptitle=f"post-norm sorter, input {example[0].tolist()} -> "
                                f"{np.sort(example[0]).tolist()}: self-attention per head",
                       xlabel="key (token@position)", ylabel="query (token@position)", ncols=4)
lesson.savefig(fig, "sorter_attention")

# %% [markdown]
# ## 5. Deeper stacks: 2, 4, 8 and 16 layers
# Section 3 showed the document's stack shrinking the signal layer after layer. Does that stop it
# from *training* as the stack deepens? We train the document's encoder and the standard one at
# 2, 4, 8 and 16 layers on the same sorting task and the same batches. The standard layer here is
# the **pre-norm** one (x + SA(LN(x)), x + FF(LN(x)), one LayerNorm after the stack), the layout
# deep models use; post-norm was compared at 2 layers in section 4. To keep the lesson fast the
# models are narrow (width 16, 2 heads) and train for 200 steps of 32 sequences. For each depth:
#   * the gradient norm of the first layer's parameters at initialisation (one batch of 64): how
#     much of the training signal reaches the bottom of the stack;
#   * the final training loss (the mean of the last 25 steps) and the held-out sequence accuracy.

# %%
DEPTHS, NARROW, DEPTH_STEPS = (2, 4, 8, 16), 16, 200
lesson.section(f"5. the document's layer vs pre-norm at {', '.join(map(str, DEPTHS))} layers (width {NARROW})")


def first_layer_grad_norm(model):
    """||d loss / d (first encoder layer's parameters)|| on one fixed batch, dropout off."""
    xb = train_x[:64]
    model.eval()
    loss = F.cross_entropy(model(xb).reshape(-1, V), ta.tensor(np.sort(xb, axis=1).reshape(-1)))
    model.zero_grad()
    loss.backward()
    norm = float(np.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum()
                             for p in model.encoder.layers[0].parameters())))
    model.zero_grad()
    model.train()
    return norm


layouts = {"document": lambda n: DocEncoder(n, NARROW, 2, dropout=0.1),
           "pre-norm": lambda n: standard_encoder(n, NARROW, 2, True)}
depth_study = {name: {"grad_at_init": [], "final_loss": [], "accuracy": []} for name in layouts}
depth_curves = {}
for n_layers in DEPTHS:
    for name, make in layouts.items():
        ta.manual_seed(lesson.seed)
        encoder = make(n_layers)
        grad0 = first_layer_grad_norm(Sorter(encoder, NARROW))    # the encoder train_sorter will train
        model, losses = train_sorter(f"{name} x{n_layers}", encoder, steps=DEPTH_STEPS, batch=32, width=NARROW)
        row = depth_study[name]
        row["grad_at_init"].append(grad0)
        row["final_loss"].append(float(np.mean(losses[-25:])))
        row["accuracy"].append(sequence_accuracy(model, test_x))
        depth_curves[f"{name}, {n_layers} layers"] = losses
print()
print(f"  {'layers':>6} | {'first-layer gradient at init':^29} | {'final training loss':^21} | {'held-out accuracy':^19}")
print(f"  {'':>6} | {'document':>13} {'pre-norm':>15} | {'document':>10} {'pre-norm':>10} | {'document':>9} {'pre-norm':>9}")
doc_row, pre_row = depth_study["document"], depth_study["pre-norm"]
for i, n_layers in enumerate(DEPTHS):
    print(f"  {n_layers:>6} | {doc_row['grad_at_init'][i]:13.2e} {pre_row['grad_at_init'][i]:15.2e} | "
          f"{doc_row['final_loss'][i]:10.4f} {pre_row['final_loss'][i]:10.4f} | "
          f"{doc_row['accuracy'][i]:9.1%} {pre_row['accuracy'][i]:9.1%}")

doc_grad_drop = doc_row["grad_at_init"][0] / doc_row["grad_at_init"][-1]
pre_grad_change = pre_row["grad_at_init"][-1] / pre_row["grad_at_init"][0]
per_layer = doc_grad_drop ** (1 / (DEPTHS[-1] - DEPTHS[0]))
doc_worse = [n for i, n in enumerate(DEPTHS) if doc_row["final_loss"][i] > pre_row["final_loss"][i]]
loss_growth = doc_row["final_loss"][-1] / doc_row["final_loss"][0]
print(f"\nGradient reaching the first layer: the document's stack loses a factor {doc_grad_drop:,.0f} "
      f"from {DEPTHS[0]} to {DEPTHS[-1]} layers (about {per_layer:.2f}x per added layer: each layer passes "
      f"the signal through linear2 with no identity path); pre-norm's changes by a factor {pre_grad_change:.2f}.")
if doc_worse:
    print(f"Training loss: the document's layer ends above pre-norm at {', '.join(map(str, doc_worse))} layers; "
          f"its own loss is {loss_growth:.1f}x higher at {DEPTHS[-1]} layers than at {DEPTHS[0]}"
          + (f", and at {DEPTHS[0]} layers it is the lower one ({doc_row['final_loss'][0]:.4f} vs "
             f"{pre_row['final_loss'][0]:.4f})." if DEPTHS[0] not in doc_worse else "."))
else:
    print(f"Training loss: the document's layer ends at or below pre-norm at every depth tried (up to "
          f"{DEPTHS[-1]} layers), although its first-layer gradient shrank {doc_grad_drop:,.0f}x.")
print(f"Held-out accuracy at {DEPTHS[-1]} layers: document {doc_row['accuracy'][-1]:.1%}, pre-norm "
      f"{pre_row['accuracy'][-1]:.1%}; at {DEPTHS[0]} layers: {doc_row['accuracy'][0]:.1%} and {pre_row['accuracy'][0]:.1%}.")
print("Why a tiny gradient need not stop training: Adam divides each parameter's step by the running size "
      "of that parameter's own gradient, so a gradient that is small but consistent still moves the first "
      "layer by about the learning rate per step.")

fig, axes = plt.subplots(1, 3, figsize=(17, 4))
viz.plot_curves({k: (np.array(DEPTHS), v["grad_at_init"]) for k, v in depth_study.items()}, ax=axes[0],
                logy=True, xlabel="layers", ylabel="||grad|| of layer 1 (log scale)",
                title="gradient reaching the first layer, at initialisation", styles={k: "o-" for k in depth_study})
viz.plot_curves({k: (np.array(DEPTHS), v["final_loss"]) for k, v in depth_study.items()}, ax=axes[1],
                logy=True, xlabel="layers", ylabel="final training loss (log scale)",
                title=f"after {DEPTH_STEPS} steps (mean of the last 25)", styles={k: "o-" for k in depth_study})
viz.plot_curves({k: v for k, v in depth_curves.items() if k.endswith(f" {DEPTHS[-1]} layers")}, ax=axes[2],
                logy=True, xlabel="training step", ylabel="cross-entropy (log scale)",
                title=f"training loss, {DEPTHS[-1]} layers")
for ax in axes[:2]:
    ax.set_xscale("log", base=2)
    ax.set_xticks(DEPTHS, [str(n) for n in DEPTHS])
fig.tight_layout()
lesson.savefig(fig, "depth_study")

# %%
lesson.section("criterion")
lesson.record(layernorm_1000=ln_out, layernorm_error=ln_err, activation_rms=traces,
              sort_sequence_accuracy=accuracies, final_loss={k: v[-1] for k, v in histories.items()},
              n_test=len(test_x), depths=list(DEPTHS), depth_study=depth_study, doc_grad_drop=doc_grad_drop,
              pre_grad_change=pre_grad_change, doc_worse_at=doc_worse)
lesson.check("LayerNorm([1,0,0,0]) = [1.732, -0.577, -0.577, -0.577]",
             np.allclose(ln_out, [1.732, -0.577, -0.577, -0.577], atol=5e-4),
             "got [" + ", ".join(f"{v:.3f}" for v in ln_out) + "]")
lesson.check("post-norm encoder sorts held-out sequences >= 99%", accuracies["post-norm"] >= 0.99,
             f"{accuracies['post-norm']:.2%} of {len(test_x)} (pre-norm {accuracies['pre-norm']:.2%}, "
             f"document's layer {accuracies['document']:.2%})")
lesson.check(f"doc 002's layer: first-layer gradient at init falls >= 100x from {DEPTHS[0]} to {DEPTHS[-1]} "
             "layers, pre-norm's stays within 3x", doc_grad_drop >= 100 and 1 / 3 <= pre_grad_change <= 3,
             f"document / {doc_grad_drop:,.0f}, pre-norm x {pre_grad_change:.2f}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/transformer_encoder.py`.
# 1. Redo section 1 for the one-hot vectors of length 8 and 64. Find the general formula for
#    LayerNorm([1, 0, ..., 0]) of length n (eps aside).
# 2. Feed c·[1, 0, 0, 0] for c = 1000, 1 and 0.001. LayerNorm divides by the standard deviation,
#    so is its output the same for every c? What does eps = 1e-5 do when c is small?
# 3. Stack 24 freshly initialised post-norm layers and feed an input of RMS 5. Predict the mean and
#    the RMS of every output token vector. Then look at the 6 tokens of one sequence: are they still
#    as different from each other as the random input tokens were? (Compare their cosine similarity.)
