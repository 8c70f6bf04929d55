"""Lesson 08 - an LSTM with sigmoid-gated attention, and how to judge a loss.

What it teaches: a loss number means nothing without a baseline. The document trains an LSTM with
sigmoid attention gates on *random* inputs and *random* targets, reports a loss of 0.0766 and calls
it good. Random targets uniform on [0, 1) have variance 1/12 = 0.0833: a model that ignores its
input and always predicts the mean already scores about that. We build the model the document
intends, train it exactly as described, and compare honestly. Then we give the same kind of model
a task with real signal - the target is a value at one marked time step - where attention gates
(pick the right step, ignore the rest) beat a plain LSTM that must carry the value to the end.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 000 §5.2-5.4 (Keras model: input -> LSTM -> per-step
Dense(1, sigmoid) attention -> input x attention -> per-step Dense(units); Adam, MSE; X (100, 3, 10)
and y (100, 3, 1) uniform random, 10 epochs, batch 10; "Model loss: 0.0766"), and §3.2's
h = Σ_i a_i v_i with sigmoid weights.
Criterion: an honest verdict on 0.0766 is printed (against the always-predict-the-mean loss); on
the signal task the gated model's test MSE beats the LSTM without attention.
"""
# %%
from _common import Lesson, Progress

import matplotlib.pyplot as plt
import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim, viz

lesson = Lesson(8, "LSTM and sigmoid-gated attention")
rng = lesson.rng
DOC_LOSS = 0.07656483520646667                     # "Model loss: 0.07656483520646667" (§5.4)

# %% [markdown]
# ## 1. The printed code does not run
# We ran the document's code with the library it was written for (TensorFlow 2.21 with Keras
# 3.15, CPU). What happens, in order:
# - As printed it stops at the first model line: `NameError: name 'timesteps' is not defined`. The
#   sizes are only set later, in §5.4 (the text uses names before defining them).
# - With §5.4's sizes moved to the top and nothing else changed, `Embedding(100, 5)` does *not*
#   reject the float input: Keras casts it to integers by truncation, so every value of
#   `np.random.rand` (all in [0, 1)) looks up row 0, and the output has shape (None, 3, 10, 5).
#   The error comes one layer later: the LSTM receives 4-D input ("expected ndim=3, found ndim=4").
# - Without the Embedding, `LSTM(units)` returns only its last state (batch, units), which the
#   per-time-step `TimeDistributed` layer cannot use (it needs 3-D input) and which cannot
#   multiply the (batch, 3, 10) input step by step.
#
# PyTorch's `nn.Embedding` (and ours, below) refuses float indices outright rather than truncating
# them, so the same mistake is an error at the Embedding itself.

# %%
lesson.section("1. the document's code as printed")
timesteps, features, units = 3, 10, 1               # the document's values (§5.4)
X_doc = ta.tensor(rng.random((4, timesteps, features)), dtype="float32")
try:
    nn.Embedding(100, 5)(X_doc)
    embedding_error = None
except TypeError as exc:
    embedding_error = str(exc)
print(f"Our Embedding (like PyTorch's) on the float input: {embedding_error}")
_, (h_last, _) = nn.LSTM(features, units, batch_first=True)(X_doc)
print(f"LSTM(units) without return_sequences gives one state per sequence: shape {h_last.shape[1:]} "
      f"(batch, units), not one per time step (batch, {timesteps}, units) - so the per-step attention "
      "and input * attention cannot be formed.")
print("The model the text describes: drop the Embedding (the input already has features) and let "
      "the LSTM return every step (return_sequences=True).")

# %% [markdown]
# ## 2. The intended model, trained as described
#     h_t = LSTM(x)_t;  a_t = σ(w·h_t + b)  (one gate per step);  z_t = a_t x_t;  ŷ_t = W z_t + c

# %%
lesson.section("2. the intended model on random data: 10 epochs, batch 10, Adam, MSE")


class GatedLSTM(nn.Module):
    """Doc 000 §5.2 as intended: per-step sigmoid attention gates on the input."""

    def __init__(self, features, units, out_units):
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True)
        self.gate = nn.Linear(units, 1)
        self.out = nn.Linear(features, out_units)

    def forward(self, x):
        h, _ = self.lstm(x)                        # (B, T, units), every step
        a = ta.sigmoid(self.gate(h))               # (B, T, 1): attention gates in (0, 1)
        return self.out(x * a), a                  # (B, T, out_units)


X = ta.tensor(rng.random((100, timesteps, features)), dtype="float32")   # np.random.rand(100, 3, 10)
y = ta.tensor(rng.random((100, timesteps, units)), dtype="float32")      # np.random.rand(100, 3, 1)


def train_epochs(model, X, y, epochs, batch_size=10, lr=1e-3):
    """Keras's model.fit: shuffle each epoch, mini-batches, Adam (Keras's default lr 0.001)."""
    opt = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            loss = F.mse_loss(model(X[idx])[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with ta.no_grad():
            losses.append(F.mse_loss(model(X)[0], y).item())
    return losses


ta.manual_seed(lesson.seed)
doc_model = GatedLSTM(features, units, units)
losses_10 = train_epochs(doc_model, X, y, epochs=10)
loss_doc_setup = losses_10[-1]
mean_loss = float(((y.numpy() - y.numpy().mean()) ** 2).mean())     # always predict the mean of y
print(f"after 10 epochs (model.evaluate on the training data): {loss_doc_setup:.4f}")
print(f"always predicting the mean of y on the same data:       {mean_loss:.4f}")
print(f"variance of uniform [0, 1) targets, 1/12:                {1 / 12:.4f}")
print(f"the document's reported loss:                            {DOC_LOSS:.4f}")

# With a much longer run the model can memorise a little noise of its 300 training targets, but on
# fresh random data nothing can beat the mean: there is no signal to learn.
ta.manual_seed(lesson.seed)
long_model = GatedLSTM(features, units, units)
losses_long = train_epochs(long_model, X, y, epochs=150, lr=1e-2)
X_new = ta.tensor(rng.random((1000, timesteps, features)), dtype="float32")
y_new = ta.tensor(rng.random((1000, timesteps, units)), dtype="float32")
with ta.no_grad():
    fresh_loss = F.mse_loss(long_model(X_new)[0], y_new).item()
print(f"150 epochs at lr 0.01: training loss {losses_long[-1]:.4f}; on 1000 fresh random sequences "
      f"{fresh_loss:.4f} (the mean predictor there: {float(((y_new.numpy() - y.numpy().mean()) ** 2).mean()):.4f})")

verdict = (f"VERDICT: the document's 0.0766 is not evidence of a good model. Its targets are random, so "
           f"the best possible loss on new data is the variance of y, 1/12 = 0.083; predicting the mean "
           f"of its own 300 targets gives {mean_loss:.4f} here, and a slightly lower number on the training "
           f"data is just memorised noise (on fresh data: {fresh_loss:.4f}). With the setup as described "
           f"(Adam at 0.001 for 100 steps) our model reaches {loss_doc_setup:.4f}: "
           + ("it has not even learnt the mean yet." if loss_doc_setup > mean_loss + 0.005 else
              "about the mean predictor's loss."))
print("\n" + verdict)

# %% [markdown]
# ## 3. A task with real signal
# Sequences of 20 steps with 10 features (uniform in [-1, 1)); feature 0 marks one step (1 there, 0 elsewhere); the
# target is feature 1 at the marked step. The gated model (§3.2: h = Σ_t a_t x_t, a_t = σ(w·LSTM_t))
# can open its gate at the marked step only; a plain LSTM must notice the marker, store the value,
# and keep it until the last step, where its final state is read out.

# %%
lesson.section("3. a task with signal: the target is a value at one marked step")
T_SIG, HIDDEN = 20, 16


def marked_value_data(n):
    x = rng.uniform(-1.0, 1.0, (n, T_SIG, features))          # centred, so unmarked steps add no offset
    x[:, :, 0] = 0.0
    marked = rng.integers(0, T_SIG, size=n)
    x[np.arange(n), marked, 0] = 1.0
    return ta.tensor(x.astype(np.float32)), ta.tensor(x[np.arange(n), marked, 1:2].astype(np.float32))


class GatedSummary(nn.Module):
    """h = Σ_t σ(w·LSTM(x)_t + b) x_t, then a Linear read-out (doc 000 §3.2 with an LSTM scorer)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(features, HIDDEN, batch_first=True)
        self.gate = nn.Linear(HIDDEN, 1)
        self.out = nn.Linear(features, 1)
        # Gates start nearly closed (σ(-3) = 0.05). Half-open gates (σ(0) = 0.5) would add 19
        # irrelevant steps to the one that matters, and the model would first have to learn to
        # shut them all: with unnormalised gates nothing makes them compete, as softmax would.
        with ta.no_grad():
            self.gate.bias.fill_(-3.0)

    def forward(self, x):
        h, _ = self.lstm(x)
        a = ta.sigmoid(self.gate(h))                 # (B, T, 1), unnormalised gates
        return self.out((a * x).sum(axis=1)), a[..., 0]


class PlainLSTM(nn.Module):
    """The same LSTM, read out from its last state only: no attention."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(features, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, 1)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.out(h_n[0]), None


X_train, y_train = marked_value_data(2000)
X_test, y_test = marked_value_data(1000)
STEPS, BATCH, LR = 400, 32, 0.02
signal = {}
for name, cls in (("gated attention", GatedSummary), ("LSTM, no attention", PlainLSTM)):
    ta.manual_seed(lesson.seed)
    model = cls()
    opt = optim.Adam(model.parameters(), lr=LR)
    curve = {"step": [], "loss": []}
    progress = Progress(STEPS, every=100, label=f"{name:<19}")
    for step in range(1, STEPS + 1):
        idx = rng.integers(0, len(X_train), size=BATCH)
        loss = F.mse_loss(model(X_train[idx])[0], y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            with ta.no_grad():
                test_loss = F.mse_loss(model(X_test)[0], y_test).item()
            curve["step"].append(step)
            curve["loss"].append(test_loss)
            progress(step, test_loss)
    signal[name] = {"model": model, "curve": curve, "test_mse": curve["loss"][-1]}
baseline_signal = float(((y_test.numpy() - y_train.numpy().mean()) ** 2).mean())
print(f"test MSE after {STEPS} steps (batch {BATCH}, Adam lr {LR}):")
for name, r in signal.items():
    print(f"  {name:<19} {r['test_mse']:.5f}")
print(f"  {'predict the mean':<19} {baseline_signal:.5f}")
mid = {n: r["curve"]["loss"][r["curve"]["step"].index(STEPS // 2)] for n, r in signal.items()}
print(f"half-way (step {STEPS // 2}) the test MSEs were {mid['gated attention']:.4f} (gated) and "
      f"{mid['LSTM, no attention']:.4f} (plain). Once the gates open at the mark and nowhere else, the "
      "answer is read directly from the marked step instead of from a memory carried through up to "
      "19 LSTM updates.")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 4), gridspec_kw={"wspace": 0.35})
viz.plot_curves({"gated LSTM, lr 0.001 (doc setup)": losses_10}, ax=axes[0], xlabel="epoch",
                ylabel="training MSE", title="doc 000 §5.4 on random data (10 epochs)")
axes[0].axhline(mean_loss, color="gray", ls="--", label=f"predict the mean ({mean_loss:.4f})")
axes[0].axhline(DOC_LOSS, color="red", ls=":", label=f"document's loss ({DOC_LOSS:.4f})")
axes[0].legend(fontsize=8)
viz.plot_curves({n: (r["curve"]["step"], r["curve"]["loss"]) for n, r in signal.items()}, ax=axes[1],
                xlabel="training step", ylabel="test MSE", logy=True,
                title="marked-value task: test error")
axes[1].axhline(baseline_signal, color="gray", ls="--", label="predict the mean")
axes[1].legend(fontsize=8)
with ta.no_grad():
    _, gates = signal["gated attention"]["model"](X_test[:8])
marks = X_test.numpy()[:8, :, 0].argmax(axis=1)
viz.heatmap(gates, [f"mark@{m}" for m in marks], [str(t) for t in range(T_SIG)],
            ax=axes[2], vmin=0, vmax=1, annotate=False, xlabel="time step", ylabel="test sequence (its marked step)",
            title="learnt sigmoid gates a_t: open at the mark")
lesson.savefig(fig, "random_vs_signal")

# %%
lesson.section("criterion")
gated, plain = signal["gated attention"]["test_mse"], signal["LSTM, no attention"]["test_mse"]
gate_open = float(gates.numpy()[np.arange(8), marks].mean())
gate_closed = float((gates.numpy().sum(axis=1) - gates.numpy()[np.arange(8), marks]).mean() / (T_SIG - 1))
print(f"gates on the marked step {gate_open:.2f} on average, elsewhere {gate_closed:.3f}")
lesson.record(doc_setup_loss=loss_doc_setup, mean_predictor_loss=mean_loss, doc_loss=DOC_LOSS,
              long_train_loss=losses_long[-1], fresh_data_loss=fresh_loss, verdict=verdict,
              embedding_error=embedding_error, signal_test_mse={"gated": gated, "plain": plain},
              signal_mean_predictor=baseline_signal, gate_on_mark=gate_open, gate_elsewhere=gate_closed)
lesson.check("honest verdict on the document's 0.0766", "not evidence" in verdict and fresh_loss >= 0.9 / 12,
             f"mean predictor {mean_loss:.4f}, document {DOC_LOSS:.4f}, ours {loss_doc_setup:.4f}, fresh data {fresh_loss:.4f}")
lesson.check("gated model beats the LSTM without attention", gated < plain,
             f"test MSE {gated:.5f} vs {plain:.5f} (mean predictor {baseline_signal:.4f})")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/lstm_sigmoid_gated_attention.py`.
# 1. Make the random targets uniform on [0, 2) instead of [0, 1). What loss does always predicting
#    the mean get now? Would the document's 0.0766 then look good, bad or meaningless?
# 2. For random targets on [0, 1), which single constant prediction has the lowest MSE on fresh
#    data, and what is that MSE? (Minimise E[(y - c)²] over c.)
# 3. Section 3 starts its gates nearly closed, σ(-3). With every gate at σ(-3), and then at σ(0),
#    how much variance do the 19 unmarked steps (feature 1 uniform on [-1, 1)) add to the summary
#    Σ_t a_t x_t? Compare it with the variance of the value you want to read, 1/3.
