"""Lesson 15 - vanishing gradients: how much does the first token matter to the last output?

What it teaches: to learn from a long sequence, the loss at the end must send gradient back to the
early tokens. In a recurrent network that gradient is a product of one Jacobian per step,
dh_T/dx_0 = (dh_T/dh_{T-1}) ... (dh_1/dh_0)(dh_0/dx_0), and a product of many factors smaller than
1 shrinks geometrically: the gradient *vanishes* and the first tokens stop being learned from.
An LSTM's additive cell path (c_t = f_t c_{t-1} + ...) slows the decay; attention removes the chain
altogether - the last output reads every token directly, one step away, so the gradient to the
first token is about as large as to any other. We measure ||dL/dx_t|| for every position t in a
plain RNN, an LSTM and a self-attention layer, all built with tinyattn and run in float64.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 003 §3.3 and §8.3, which list "vanishing gradients ... caused
by the dynamic weight allocation" as a weakness of attention. We measure it: attention's gradient
reaches the first position undiminished; what can starve a position of gradient is attention that
looks elsewhere (a saturated softmax), shown at the end.
Criterion: with 64 positions, attention's gradient to the first position is orders of magnitude
(>= 1000x) above the plain RNN's; the ratio is printed.
"""
# %%
from _common import Lesson

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import viz

lesson = Lesson(15, "vanishing gradients")
rng = lesson.rng
T, d_in, hidden, n_draws = 64, 8, 32, 5

# %% [markdown]
# ## 1. Three models, one question
# Each reads a sequence x_0 .. x_{T-1} and predicts one number from its state at the last step,
# y = w · state_T. The "loss" is y itself (any loss at the end has the same chain of Jacobians);
# we backpropagate once and read ||dy/dx_t|| for every t.
#   plain RNN (Elman):  h_t = tanh(W x_t + U h_{t-1} + b)           built here from tinyattn ops
#   LSTM:               tinyattn.nn.LSTM                              gates and an additive cell
#   attention:          e = Linear(x); out = MultiheadAttention(e_T, e, e)   the last token's query reads all


# %%
lesson.section(f"1. three models, one question: sequences of T = {T}, {hidden} hidden units")


class PlainRNN(nn.Module):
    """h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b), PyTorch's nn.RNN initialisation (U(±1/√H))."""

    def __init__(self, d_in, hidden):
        super().__init__()
        self.input_map = nn.Linear(d_in, hidden, dtype="float64")
        self.recurrent_map = nn.Linear(hidden, hidden, dtype="float64")
        for p in self.parameters():
            nn.init.uniform_(p, -hidden ** -0.5, hidden ** -0.5)

    def forward(self, x):                                   # x (T, d_in) -> last h (hidden,)
        h = ta.zeros(self.recurrent_map.weight.shape[0], dtype="float64")
        for t in range(x.shape[0]):                         # one step at a time: the chain
            h = ta.tanh(self.input_map(x[t]) + self.recurrent_map(h))
        return h


class LSTMLast(nn.Module):
    def __init__(self, d_in, hidden):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, dtype="float64")

    def forward(self, x):
        output, _ = self.lstm(x)                            # (T, hidden) for unbatched input
        return output[-1]


class AttentionLast(nn.Module):
    def __init__(self, d_in, hidden):
        super().__init__()
        self.embed = nn.Linear(d_in, hidden, dtype="float64")
        self.attention = nn.MultiheadAttention(hidden, 4, dtype="float64")

    def forward(self, x, score_scale=1.0):
        e = self.embed(x)                                   # (T, hidden)
        query = e[-1:] * score_scale                        # the last token asks; scale sharpens it
        out, self.weights = self.attention(query, e, e)     # (1, hidden), weights (1, T)
        return out[0]


def gradient_per_position(model, x_np, readout, **kwargs):
    x = ta.tensor(x_np, dtype="float64", requires_grad=True)
    y = (model(x, **kwargs) * readout).sum()
    y.backward()
    return np.linalg.norm(x.grad.numpy(), axis=1)   # ||dy/dx_t||, t = 0..T-1 (on the host)


print(f"each model reads {T} steps of {d_in} features and returns its state at the last step; "
      f"y = w · state, backpropagated once per draw ({n_draws} draws)")


# %% [markdown]
# ## 2. Gradient norm at every position
# Five random draws of weights and inputs; we average the norms (on a log scale they vary little).

# %%
lesson.section(f"2. ||dy/dx_t|| for t = 0..{T - 1}, mean of {n_draws} draws")
makers = {"plain RNN": PlainRNN, "LSTM": LSTMLast, "attention": AttentionLast}
norms = {name: [] for name in makers}
for draw in range(n_draws):
    ta.manual_seed(lesson.seed * 100 + draw)
    x_np = rng.normal(size=(T, d_in))
    readout = ta.tensor(rng.normal(size=hidden), dtype="float64")
    for name, make in makers.items():
        norms[name].append(gradient_per_position(make(d_in, hidden), x_np, readout))
geo_mean = {name: np.exp(np.log(np.array(v)).mean(axis=0)) for name, v in norms.items()}
print(f"{'position t':>12} " + " ".join(f"{name:>12}" for name in makers))
for t in (0, 1, 2, 4, 8, 16, 32, 48, 56, 60, 62, 63):
    print(f"{t:>12} " + " ".join(f"{geo_mean[name][t]:12.3e}" for name in makers))
ratio_first = geo_mean["attention"][0] / geo_mean["plain RNN"][0]
ratio_first_lstm = geo_mean["LSTM"][0] / geo_mean["plain RNN"][0]
decay = {name: float(np.exp(np.polyfit(np.arange(T // 2), np.log(geo_mean[name][T // 2:][::-1]), 1)[0]))
         for name in ("plain RNN", "LSTM")}
print(f"\nat the first position: attention / plain RNN = {ratio_first:.2e}, LSTM / plain RNN = {ratio_first_lstm:.2e}")
print(f"per step back in time the gradient is multiplied by about {decay['plain RNN']:.2f} (RNN) and "
      f"{decay['LSTM']:.2f} (LSTM, forget gate ~ sigmoid(0) = 0.5 at initialisation); attention's "
      f"first-to-last ratio is {geo_mean['attention'][0] / geo_mean['attention'][-1]:.2f}: no decay.")

# %% [markdown]
# ## 3. How the gap grows with the sequence length
# Gradient to the first position as T grows: the RNN's falls geometrically with T; attention's
# only like 1/T (its weights spread over more tokens).

# %%
lesson.section("3. gradient to position 0 as the sequence grows")
lengths = [4, 8, 16, 32, 64, 128]
first_vs_length = {name: [] for name in makers}
for length in lengths:
    ta.manual_seed(lesson.seed)
    x_np = rng.normal(size=(length, d_in))
    readout = ta.tensor(rng.normal(size=hidden), dtype="float64")
    for name, make in makers.items():
        first_vs_length[name].append(float(gradient_per_position(make(d_in, hidden), x_np, readout)[0]))
for i, length in enumerate(lengths):
    print(f"  T = {length:>3}: " + "  ".join(f"{name} {first_vs_length[name][i]:.2e}" for name in makers))

# %% [markdown]
# ## 4. When *can* attention starve a position of gradient?
# The gradient reaching x_0 through attention passes through its weight a_0: the value path gives
# d out / d v_0 = a_0, and the key path a_0 times the (scaled) query minus the average. If the
# softmax saturates on other keys (very large scores: no 1/√d scaling, or a query that has learned
# to look elsewhere), a_0 -> 0 exponentially fast and the gradient goes with it. (At moderate
# scales the larger query first compensates through the key path; then a_0 wins.)
# That is the real concern behind the document's remark: it is about *where* attention looks,
# not about distance. Scale the query up and watch the first position's share.

# %%
lesson.section("4. a saturated softmax starves the positions it ignores")
ta.manual_seed(lesson.seed)
x_np = rng.normal(size=(T, d_in))
readout = ta.tensor(rng.normal(size=hidden), dtype="float64")
attention_model = AttentionLast(d_in, hidden)
saturation = []
for scale in (1.0, 4.0, 16.0, 64.0):
    g = gradient_per_position(attention_model, x_np, readout, score_scale=scale)
    w = attention_model.weights.numpy()[0]
    saturation.append({"scale": scale, "grad_first": float(g[0]), "weight_first": float(w[0]),
                       "max_weight": float(w.max())})
    print(f"  query x{scale:>4.0f}: largest weight {w.max():.3f}, weight on x_0 {w[0]:.2e}, ||dy/dx_0|| {g[0]:.2e}")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(13, 4.3))
viz.plot_curves({name: (np.arange(T), geo_mean[name]) for name in makers}, ax=axes[0], logy=True,
                xlabel="input position t (the output is read at t = 63)", ylabel="||dy/dx_t|| (log scale)",
                title=f"gradient reaching each input position (T = {T}, mean of {n_draws} draws)")
viz.plot_curves({name: (lengths, first_vs_length[name]) for name in makers}, ax=axes[1], logy=True,
                xlabel="sequence length T", ylabel="||dy/dx_0|| (log scale)",
                title="gradient to the first position vs length", styles={n: "o-" for n in makers})
axes[1].set_xscale("log", base=2)
lesson.savefig(fig, "gradient_per_position")

# %%
lesson.section("criterion")
lesson.record(grad_norm_per_position={k: v for k, v in geo_mean.items()}, ratio_attention_over_rnn_first=ratio_first,
              ratio_lstm_over_rnn_first=ratio_first_lstm, decay_per_step=decay, lengths=lengths,
              first_vs_length=first_vs_length, saturation=saturation)
lesson.check("attention's gradient to position 0 >= 1000x the plain RNN's", ratio_first >= 1e3,
             f"ratio {ratio_first:.2e} (attention {geo_mean['attention'][0]:.2e}, RNN {geo_mean['plain RNN'][0]:.2e}, "
             f"LSTM {geo_mean['LSTM'][0]:.2e})")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/vanishing_gradients.py`.
# 1. Strip the RNN down to a linear recurrence h_t = x_t + ρ h_{t-1} (no weights, no tanh) with
#    T = 64. Predict ||dy/dx_0|| / ||dy/dx_63|| for ρ = 0.9, 1.0 and 1.1 before running it. Which
#    one vanishes, which one explodes?
# 2. Pool with attention whose query is all zeros (every score 0, so every weight is 1/64). Predict
#    ||dy/dx_t|| at every position in terms of the read-out vector. Why does the key path add nothing?
