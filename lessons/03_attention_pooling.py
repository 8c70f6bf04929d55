"""Lesson 03 - attention pooling: Nadaraya-Watson kernel regression.

What it teaches: the oldest attention mechanism is a smoother from 1964. To predict y at a new x
(the query), compare x with every training input x_i (the keys) by a similarity, turn similarities
into weights that sum to 1, and average the training outputs y_i (the values) with those weights:

    f(x) = Σ_i w_i(x) y_i,    w_i(x) = K((x - x_i) / σ) / Σ_j K((x - x_j) / σ)

With the Gaussian kernel K(u) = exp(-u²/2) the weights are exactly softmax(-(x - x_i)² / (2σ²)).
The width σ decides how local the attention is; we sweep it, then learn it by gradient descent on
the leave-one-out error (each training point predicted from all the others).

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 004 §3 (similarity, then softmax, then weighted average).
Criterion: every row of weights sums to 1 (rows with no training point inside a compact kernel's
window are all zeros, counted and reported, never NaN); test MSE with the Gaussian kernel at
σ = 0.5 is below half the MSE of the constant kernel (which predicts the mean of y everywhere);
the leave-one-out loss decreases while σ is learned.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
from tinyattn import viz

lesson = Lesson(3, "attention pooling (Nadaraya-Watson)")
rng = lesson.rng

# %% [markdown]
# ## 1. Data: 40 noisy samples of y = 2 sin x + x on [0, 5]

# %%
lesson.section("1. data")


def truth(x):
    return 2 * np.sin(x) + x


n_train = 40
x_train = np.sort(rng.uniform(0, 5, n_train))
y_train = truth(x_train) + rng.normal(0, 0.5, n_train)          # noise with standard deviation 0.5
x_test = np.linspace(0, 5, 50)                                 # queries
y_test = truth(x_test)                                         # we score against the noiseless curve
keys = ta.tensor(x_train, dtype="float64")
values = ta.tensor(y_train, dtype="float64")
queries = ta.tensor(x_test, dtype="float64")
print(f"{n_train} training points, {len(x_test)} test queries; noise std 0.5")

# %% [markdown]
# ## 2. Four kernels as four ways to turn distance into attention weights
# d_qi = x_q - x_i.  Each kernel gives unnormalised weights; dividing by the row sum makes them a
# distribution over the training points. The Gaussian one *is* a softmax of the score -d²/(2σ²).
# Boxcar and Epanechnikov are zero outside |d| <= σ, so a query far from every training point has
# nothing to attend to: its row stays all zeros (the masked softmax's rule), never 0/0 = NaN.

# %%
lesson.section("2. kernels and their weights")


def attention_weights(q, k, kernel, width):
    """(n_queries, n_keys) weights; each row sums to 1 (or is all zero if its window is empty)."""
    d = q.reshape(-1, 1) - k.reshape(1, -1)            # every query against every key
    if kernel == "gaussian":
        return ta.softmax(-(d * d) / (2 * width ** 2), axis=-1)
    if kernel == "boxcar":                             # equal weight inside the window
        return ta.softmax(d * 0.0, axis=-1, mask=np.abs(d.numpy()) <= width)
    if kernel == "epanechnikov":                       # K(u) = max(0, 1 - u²)
        k_u = ta.relu(1.0 - (d / width) ** 2)
        total = k_u.sum(axis=-1, keepdims=True)
        return k_u / ta.where(total.numpy() > 0, total, ta.ones_like(total, dtype="float64"))
    if kernel == "constant":                           # every key equally: the plain mean
        return ta.softmax(d * 0.0, axis=-1)
    raise ValueError(kernel)


def predict(q, kernel, width):
    w = attention_weights(q, keys, kernel, width)
    return w @ values, w                               # the weighted average of the y_i


kernels = ["gaussian", "boxcar", "epanechnikov", "constant"]
widths = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
mse = {k: [] for k in kernels}
worst_row_error, empty_rows, any_nan = 0.0, {}, False
for kernel in kernels:
    for width in widths:
        pred, w = predict(queries, kernel, width)
        sums = w.numpy().sum(axis=1)
        nonempty = sums > 0
        any_nan |= bool(np.isnan(w.numpy()).any())
        worst_row_error = max(worst_row_error, np.abs(sums[nonempty] - 1).max())
        empty_rows[f"{kernel} {width}"] = int((~nonempty).sum())
        mse[kernel].append(float(((pred.numpy() - y_test) ** 2).mean()))

print(f"{'kernel':<13}" + "".join(f"  σ={w:<5}" for w in widths) + "   (test MSE against the true curve)")
for kernel in kernels:
    print(f"{kernel:<13}" + "".join(f"  {m:7.3f}" for m in mse[kernel]))
print(f"largest |row sum - 1| over all non-empty rows: {worst_row_error:.1e}")
empty_report = {k: v for k, v in empty_rows.items() if v}
print("rows with an empty window (all-zero weights, prediction 0):", empty_report or "none")

mse_gauss_05 = mse["gaussian"][widths.index(0.5)]
mse_const = mse["constant"][0]
print(f"\nGaussian σ=0.5: MSE {mse_gauss_05:.3f}   constant kernel: MSE {mse_const:.3f}   "
      f"ratio {mse_gauss_05 / mse_const:.3f}")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
axes[0].plot(x_test, y_test, "k--", label="truth 2 sin x + x")
axes[0].plot(x_train, y_train, "o", color="gray", ms=4, label="training data")
for kernel in kernels:
    axes[0].plot(x_test, predict(queries, kernel, 0.5)[0].numpy(), label=f"{kernel}, σ=0.5")
axes[0].set(title="attention pooling with four kernels (σ = 0.5)", xlabel="x (query)", ylabel="y")
axes[0].legend(fontsize=8)
viz.plot_curves({k: (widths, mse[k]) for k in kernels}, ax=axes[1], xlabel="width σ",
                ylabel="test MSE", title="test error against kernel width", logy=True,
                styles={k: "o-" for k in kernels})
lesson.savefig(fig, "fits_and_widths")

fig, ax = plt.subplots(figsize=(7, 5.5))
viz.heatmap(attention_weights(queries, keys, "gaussian", 0.5), [f"{v:.1f}" for v in x_test],
            [f"{v:.1f}" for v in x_train], ax=ax, annotate=False,
            xlabel="training input x_i (key)", ylabel="test input x (query)",
            title="Gaussian attention weights, σ = 0.5: each query looks at nearby keys")
ax.set_yticks(range(0, len(x_test), 5))
ax.set_yticklabels([f"{v:.1f}" for v in x_test[::5]])
lesson.savefig(fig, "gaussian_weights")

# %% [markdown]
# ## 3. Learn the width: gradient descent on the leave-one-out loss
# Predicting a training point from the others (mask the diagonal) avoids the trivial answer σ -> 0,
# where each point would just copy itself. We learn log σ so that σ stays positive.

# %%
lesson.section("3. learning σ by leave-one-out")
log_width = ta.tensor(np.log(2.0), dtype="float64", requires_grad=True)   # start far too wide
not_self = ~np.eye(n_train, dtype=bool)
steps, lr = 60, 0.5
loo_losses, width_path = [], []
progress = Progress(steps, every=10)
for step in range(1, steps + 1):
    width = ta.exp(log_width)
    d = keys.reshape(-1, 1) - keys.reshape(1, -1)
    w = ta.softmax(-(d * d) / (2 * width * width), axis=-1, mask=not_self)
    loss = ((w @ values - values) ** 2).mean()
    log_width.grad = None
    loss.backward()
    with ta.no_grad():                      # plain gradient descent on log σ
        log_width -= lr * log_width.grad
    loo_losses.append(loss.item())
    width_path.append(width.item())
    progress(step, loss.item(), sigma=width.item())
learned = ta.exp(log_width).item()
mse_learned = float(((predict(queries, "gaussian", learned)[0].numpy() - y_test) ** 2).mean())
print(f"learned σ = {learned:.3f}; leave-one-out loss {loo_losses[0]:.3f} -> {loo_losses[-1]:.3f}; "
      f"test MSE at the learned σ {mse_learned:.3f}")
best_swept = widths[int(np.argmin(mse["gaussian"]))]
print(f"(the sweep's best Gaussian width on the test curve was σ = {best_swept}: leave-one-out found a "
      "good width from the training points alone, without looking at the test set)")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
viz.plot_curves({"leave-one-out MSE": loo_losses}, ax=axes[0], xlabel="gradient step",
                ylabel="mean squared error", title="leave-one-out loss while learning σ")
viz.plot_curves({"σ": width_path}, ax=axes[1], xlabel="gradient step", ylabel="σ",
                title="the width being learned")
lesson.savefig(fig, "learned_width")

# %%
lesson.section("criterion")
lesson.record(widths=widths, test_mse=mse, mse_gaussian_05=mse_gauss_05, mse_constant=mse_const,
              worst_row_sum_error=worst_row_error, empty_rows=empty_report, any_nan=any_nan,
              loo_losses=loo_losses, learned_width=learned, mse_learned=mse_learned)
lesson.check("rows sum to 1", worst_row_error <= 1e-12 and not any_nan,
             f"max |row sum - 1| = {worst_row_error:.1e}, no NaN, "
             f"{sum(empty_report.values())} empty-window rows all zero")
lesson.check("MSE(σ=0.5) < 0.5 x MSE(constant)", mse_gauss_05 < 0.5 * mse_const,
             f"{mse_gauss_05:.3f} < 0.5 x {mse_const:.3f}")
lesson.check("learned-width loss decreases", loo_losses[-1] < loo_losses[0] and
             all(b <= a + 1e-12 for a, b in zip(loo_losses, loo_losses[1:])),
             f"{loo_losses[0]:.3f} -> {loo_losses[-1]:.3f} (monotone), σ 2.0 -> {learned:.3f}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/attention_pooling.py`
# (it rebuilds the lesson's data from seed 0).
# 1. Use the boxcar kernel with σ = 0.05. How many of the 50 test queries have no training point
#    inside their window, and what does each of them predict? (Is that a good prediction?)
# 2. Use the Gaussian kernel with σ = 0.01. Which training point does each prediction copy?
#    Predict what the whole curve looks like; where could a prediction fall between two y values?
# 3. Use the Gaussian kernel with σ = 100. What does every prediction become, and which other kernel
#    of section 2 gives the same answer?
