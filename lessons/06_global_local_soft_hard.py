"""Lesson 06 - global, local, soft and hard attention on one task.

What it teaches: the four kinds of attention differ in *where* a query may look (global: every
position; local: a window) and *how* it looks (soft: a differentiable weighted average; hard: one
position, chosen by sampling, trained with REINFORCE because a choice has no gradient). We train
each kind on the same synthetic task and look at where each one attends.

The task: a sequence of 20 tokens, each with a value in 0..31; one position carries a marker.
Answer the value at the marked position. The attention score of a position comes from its token
(so the marker can be learnt), the context is the attended token, and a linear layer reads the
value from it.

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 000 §2.1 (global, local, soft and hard attention, defined
there in words only; here each is run and compared on the same input). The document defines global
attention as giving "every element the same degree of attention"; that is mean pooling, which we
also run: global attention in the usual sense (Luong et al., 2015) *may* look at every position,
with learnt weights.
Criterion: soft global attention reaches >= 99% test accuracy; the local window's accuracy is
within 5 points of the share of test targets inside its window; hard attention's slower learning
is shown (steps to 90% validation accuracy, soft vs hard, 12 seeds each: the mean paired gap is
more than two standard errors, hard slower in more pairs than faster; and hard's accuracy at the
step soft first reached 90%).
"""
# %%
from _common import Lesson, Progress

import matplotlib.pyplot as plt
import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import attention as A
from tinyattn import optim, viz

lesson = Lesson(6, "global, local, soft and hard attention")
rng = lesson.rng
T, C = 20, 32                      # sequence length, number of values
D_IN = C + 1                       # one-hot value + marker bit
CENTRE, WINDOW = 9, 3              # the local window: positions 6..12 (7 of 20)
LR = 0.02

# %% [markdown]
# ## 1. The data
# x[b, t] = [one-hot(value), marker]; the target is the value at the marked position. The
# marked position is also given to local-p as a coarse hint (its normalised position), the way
# a decoder state knows roughly where in the source it is; local-p must learn to turn that hint
# into the centre of its window.

# %%
lesson.section("1. data: retrieve the value at the marked position (length 20)")


def make_batch(n, gen=rng):
    values = gen.integers(0, C, size=(n, T))
    marked = gen.integers(0, T, size=n)
    x = np.zeros((n, T, D_IN), dtype=np.float32)
    x[np.arange(n)[:, None], np.arange(T)[None, :], values] = 1.0
    x[np.arange(n), marked, C] = 1.0
    hint = np.stack([2.0 * marked / (T - 1) - 1.0, np.ones(n)], axis=1).astype(np.float32)
    return ta.tensor(x), ta.tensor(hint[:, None, :]), values[np.arange(n), marked], marked


x_test, hint_test, y_test, marked_test = make_batch(2000)
share_inside = float((np.abs(marked_test - CENTRE) <= WINDOW).mean())
print(f"test set: 2000 sequences; {share_inside:.1%} of their marked positions fall in the local "
      f"window {CENTRE - WINDOW}..{CENTRE + WINDOW}; chance accuracy 1/{C} = {1 / C:.1%}")

# %% [markdown]
# ## 2. One model, four ways of attending
# score s_t = u·x_t + b (one number per position); weights w over positions; context Σ_t w_t x_t;
# logits = Linear(context). Each model must learn both where to look and how to read the value.

# %%
lesson.section("2. one model, four ways of attending")


class Retriever(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.score = nn.Linear(D_IN, 1)
        self.read = nn.Linear(D_IN, C)
        if kind == "local-p":          # p = T·σ(v_pᵀ tanh(W_p h)) from the 2-number hint h
            self.W_p = nn.Parameter(ta.randn(8, 2) * 0.5)
            self.v_p = nn.Parameter(ta.randn(8) * 0.5)

    def weights(self, x, hint, sample=False):
        s = self.score(x)[..., 0][:, None, :]                        # (B, 1, T): one query
        if self.kind == "uniform":                                   # the document's wording
            return A.softmax(s * 0.0), None                          # every position 1/T
        if self.kind == "soft global":
            return A.softmax(s), None
        if self.kind == "local window":
            window = A.local_window_mask(T, window=WINDOW).numpy()[CENTRE]   # (T,) True inside
            return A.softmax(s, mask=window), None
        if self.kind == "local-p":
            p = A.local_p_positions(hint, self.W_p, self.v_p, T - 1)      # (B, 1) centre in (0, T-1)
            return A.local_p_weights(s, p, window=WINDOW), None
        if self.kind == "hard":
            if sample:                                               # training: sample a position
                return A.stochastic_hard_attention(s)
            return A.hard_attention(s), None                         # testing: the most likely one
        raise ValueError(self.kind)

    def forward(self, x, hint, sample=False):
        w, log_prob = self.weights(x, hint, sample)
        context = (w @ x)[:, 0, :]                                   # (B, D_IN)
        return self.read(context), w[:, 0, :], log_prob


def weight_on_target(model, x, hint, marked):
    """Mean attention on the marked position. For hard attention: the probability that its
    sampling policy softmax(s) picks the marked position (what REINFORCE trains)."""
    with ta.no_grad():
        if model.kind == "hard":
            w = A.softmax(model.score(x)[..., 0])
        else:
            w = model.weights(x, hint)[0][:, 0, :]
    return float(w.numpy()[np.arange(len(marked)), marked].mean())


def accuracy(model, x, hint, y):
    with ta.no_grad():
        logits, _, _ = model(x, hint)
    return float((logits.numpy().argmax(axis=1) == y).mean())


for kind in ("uniform", "soft global", "local window", "local-p", "hard"):
    n_params = sum(p.numel() for p in Retriever(kind).parameters())
    print(f"  {kind:<12} {n_params:4d} parameters")

# %% [markdown]
# ## 3. Training
# Soft and local models: cross-entropy, Adam. Hard attention: the sampled position has no
# gradient, so the scorer learns from REINFORCE: raise log p(sampled position) in proportion to
# (reward - baseline), reward = -cross-entropy of the answer, baseline = its running mean.

# %%
lesson.section(f"3. training (batch 64, Adam lr {LR})")
STEPS = {"uniform": 200, "soft global": 200, "local window": 200, "local-p": 200, "hard": 300}
x_val, hint_val, y_val, marked_val = make_batch(500)


def train(kind, n_steps, seed, verbose=True):
    """Train one model; return it, its validation curve, and the step it first reached 90%."""
    ta.manual_seed(seed)
    batches = np.random.default_rng(seed + 1)        # each run its own stream: same seed, same batches
    model = Retriever(kind)
    opt = optim.Adam(model.parameters(), lr=LR)
    baseline, reached_90 = None, None
    curve = {"step": [], "acc": [], "loss": [], "on_target": []}
    progress = Progress(n_steps, every=50, label=f"{kind:<12} ")
    for step in range(1, n_steps + 1):
        x, hint, y, _ = make_batch(64, batches)
        logits, _, log_prob = model(x, hint, sample=(kind == "hard"))
        ce = F.cross_entropy(logits, y, reduction="none")
        loss = ce.mean()
        if kind == "hard":
            reward = -ce.numpy()
            baseline = reward.mean() if baseline is None else 0.9 * baseline + 0.1 * reward.mean()
            loss = loss + A.reinforce_loss(log_prob[:, 0], reward, baseline)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0 or step == n_steps:
            acc = accuracy(model, x_val, hint_val, y_val)
            curve["step"].append(step)
            curve["acc"].append(acc)
            curve["loss"].append(float(ce.numpy().mean()))
            curve["on_target"].append(weight_on_target(model, x_val, hint_val, marked_val))
            if acc >= 0.9 and reached_90 is None:
                reached_90 = step
            if verbose:
                progress(step, float(ce.numpy().mean()), acc, weight_on_marked=curve["on_target"][-1])
    return model, curve, reached_90


history, models, steps_to_90 = {}, {}, {}
for kind, n_steps in STEPS.items():
    models[kind], history[kind], reached = train(kind, n_steps, lesson.seed)
    if reached is not None:
        steps_to_90[kind] = reached

# %% [markdown]
# ## 3b. Soft vs hard over many seeds
# One run can be lucky, and three runs can tie. Soft and hard attention are trained from N_SEEDS
# seeds each (other initial weights and other batches; N_SEEDS keeps the lesson under 60 s on two
# cores), and we compare how many steps each needed to reach 90%: mean, spread, and how many of
# the paired runs hard was slower, tied or faster.

# %%
N_SEEDS = 12
lesson.section(f"3b. soft vs hard, {N_SEEDS} seeds each: steps to 90% validation accuracy")
repeats = {"soft global": [steps_to_90.get("soft global")], "hard": [steps_to_90.get("hard")]}
for extra in range(1, N_SEEDS):
    for kind in repeats:
        repeats[kind].append(train(kind, STEPS[kind], lesson.seed + 1000 * extra, verbose=False)[2])
for kind, runs in repeats.items():
    print(f"  {kind:<12} {runs}")
never = STEPS["hard"] + 1                                   # "did not reach 90%" counts as slower
soft_runs = [r if r is not None else never for r in repeats["soft global"]]
hard_runs = [r if r is not None else never for r in repeats["hard"]]
pairs_slower = sum(h > s_ for h, s_ in zip(hard_runs, soft_runs))
pairs_tied = sum(h == s_ for h, s_ in zip(hard_runs, soft_runs))
pairs_faster = N_SEEDS - pairs_slower - pairs_tied
for kind, runs in (("soft global", soft_runs), ("hard", hard_runs)):
    print(f"  {kind:<12} mean {np.mean(runs):6.1f} steps, std {np.std(runs, ddof=1):5.1f}, "
          f"range {min(runs)}..{max(runs)}")
paired_gap = np.array(hard_runs, float) - np.array(soft_runs, float)
gap_se = paired_gap.std(ddof=1) / np.sqrt(N_SEEDS)
print(f"  paired: hard slower in {pairs_slower}, tied in {pairs_tied}, faster in {pairs_faster} of {N_SEEDS}; "
      f"mean gap {paired_gap.mean():+.1f} steps (standard error {gap_se:.1f})")
if paired_gap.mean() > 2 * gap_se and pairs_slower > pairs_faster:
    print(f"  The gap is more than two standard errors: on this task hard attention does learn more slowly "
          f"(about {paired_gap.mean():.0f} steps, {paired_gap.mean() / np.mean(soft_runs):.0%} more).")
else:
    print("  The gap is within two standard errors: these seeds do not show hard attention learning "
          "more slowly on this task.")

# %% [markdown]
# ## 3c. The two mechanisms written out, and equal to the library's
# REINFORCE. The scorer gives s (one number per position); a position j is sampled from
# π = softmax(s); the loss is L = -(1/B) Σ_b (R_b - baseline) log π_b(j_b). Its gradient in the
# scores is dL/ds_b = -(R_b - baseline)/B · (onehot(j_b) - π_b): raise the sampled position's score
# when the answer beat the baseline, lower it when it did worse.
# Local-p. The centre is p = (T-1)·σ(v_pᵀ tanh(W_p h)); the weights are the softmax of the scores
# over the window |t - p| <= D, times a Gaussian exp(-(t - p)² / (2 (D/2)²)) around p.

# %%
lesson.section("3c. REINFORCE gradient and local-p weights by hand vs the library")
x_m, hint_m, y_m, _ = make_batch(32, np.random.default_rng(lesson.seed + 7))
hard_model = models["hard"]
with ta.no_grad():
    s_hard = hard_model.score(x_m)[..., 0]                         # (B, T)
s_leaf = s_hard.detach()
s_leaf.requires_grad_(True)
ta.manual_seed(lesson.seed + 8)
sample, log_prob = A.stochastic_hard_attention(s_leaf)
reward = rng.normal(size=len(y_m))                                 # any reward: the formula is the same
baseline_m = float(reward.mean())
A.reinforce_loss(log_prob, reward, baseline_m).backward()
pi = np.exp(s_hard.numpy() - s_hard.numpy().max(-1, keepdims=True))
pi /= pi.sum(-1, keepdims=True)
hand_grad = -(reward - baseline_m)[:, None] / len(y_m) * (sample.numpy() - pi)
reinforce_diff = float(np.abs(hand_grad - s_leaf.grad.numpy()).max())
print(f"REINFORCE: max |hand dL/ds - library| = {reinforce_diff:.1e}")

lp = models["local-p"]
with ta.no_grad():
    w_lib = lp.weights(x_m, hint_m)[0].numpy()                    # (B, 1, T)
    s_lp = lp.score(x_m)[..., 0].numpy()[:, None, :]              # (B, 1, T)
h = hint_m.numpy()
p_hand = (T - 1) / (1 + np.exp(-(np.tanh(h @ lp.W_p.numpy().T) @ lp.v_p.numpy())))   # (B, 1)
t_pos = np.arange(T)
inside = np.abs(t_pos - p_hand[..., None]) <= WINDOW
z = np.where(inside, s_lp, -np.inf)
align = np.exp(z - z.max(-1, keepdims=True))
align /= align.sum(-1, keepdims=True)
w_hand = align * np.exp(-(t_pos - p_hand[..., None]) ** 2 / (2 * (WINDOW / 2) ** 2))
local_p_diff = float(np.abs(w_hand - w_lib).max())
print(f"local-p: centres of the first 4 queries {[round(float(c), 2) for c in p_hand[:4, 0]]}; "
      f"max |hand weights - library| = {local_p_diff:.1e}")

# %% [markdown]
# ## 4. Test accuracy

# %%
lesson.section("4. test accuracy (2000 sequences)")
test_acc = {kind: accuracy(m, x_test, hint_test, y_test) for kind, m in models.items()}
for kind, acc in test_acc.items():
    note = ""
    if kind == "local window":
        note = (f"  (share of targets inside the window: {share_inside:.1%}; with chance on the rest: "
                f"{share_inside + (1 - share_inside) / C:.1%})")
    reached = f"after {steps_to_90[kind]} steps" if kind in steps_to_90 else "never"
    print(f"  {kind:<13} accuracy {acc:7.1%};  90% validation accuracy {reached}; final weight on the marked position {history[kind]['on_target'][-1]:.2f}{note}")
soft_90 = steps_to_90.get("soft global", STEPS["soft global"])
hard_at_soft_90 = next(a for s_, a in zip(history["hard"]["step"], history["hard"]["acc"]) if s_ >= soft_90)
print(f"when soft global first reached 90% (step {soft_90}), hard attention was at {hard_at_soft_90:.1%}.")
print(f"The document's 'global attention' (the same weight on every element) reaches {test_acc['uniform']:.1%}: "
      "averaging all 20 tokens buries the marked one, so only answers that happen to be the most "
      "frequent value in the sequence come out right. Global attention must be able to look "
      "everywhere, not look everywhere equally.")
print("Soft attention gets an exact gradient through every weight. Hard attention gets only a REINFORCE "
      "estimate from one sampled position per example, and its reward says little until the read-out "
      "layer has learnt to decode values, so it needs more steps. (Hard attention is tested by its "
      "argmax, which needs the marked position only to score highest: that is why its final weight on "
      "the marked position can exceed soft attention's, which stops sharpening once the answer is right.)")

# %%
fig = viz.training_curves({k: {"step": h["step"], "loss": h["loss"], "acc": h["acc"]} for k, h in history.items()},
                          title="retrieve the marked value: four kinds of attention")
lesson.savefig(fig, "training_curves")
fig, ax = plt.subplots(figsize=(6.5, 4))
viz.plot_curves({k: (h["step"], h["on_target"]) for k, h in history.items()}, ax=ax, xlabel="training step",
                ylabel="mean weight on the marked position",
                title="how fast each kind learns where to look")
ax.axhline(0.9, color="gray", ls=":")
lesson.savefig(fig, "learning_where_to_look")

example = slice(0, 1)
rows, labels = [], []
for kind, m in models.items():
    with ta.no_grad():
        _, w, _ = m(x_test[example], hint_test[example])
    rows.append(w.numpy()[0])
    labels.append(kind)
k0 = int(marked_test[0])
cols = [f"{t}*" if t == k0 else str(t) for t in range(T)]
fig, ax = plt.subplots(figsize=(11, 3.2))
viz.heatmap(np.array(rows), labels, cols, ax=ax, annotate=False, vmin=0, vmax=1,
            xlabel=f"position (the marked one is {k0}*)", ylabel="kind of attention",
            title="where each kind looks on one test sequence")
lesson.savefig(fig, "where_each_looks")

# %%
lesson.section("criterion")
lesson.record(test_accuracy=test_acc, share_inside_window=share_inside, steps_to_90=steps_to_90,
              history=history, steps=STEPS, hard_at_soft_90=hard_at_soft_90,
              steps_to_90_seeds={"soft global": soft_runs, "hard": hard_runs},
              paired_gap_mean=float(paired_gap.mean()), paired_gap_se=float(gap_se),
              reinforce_grad_diff=reinforce_diff, local_p_weight_diff=local_p_diff)
lesson.check("REINFORCE gradient and local-p weights written out equal the library's (1e-6)",
             reinforce_diff < 1e-6 and local_p_diff < 1e-6,
             f"REINFORCE {reinforce_diff:.1e}, local-p {local_p_diff:.1e}")
lesson.check("soft global >= 99%", test_acc["soft global"] >= 0.99,
             f"{test_acc['soft global']:.1%} (uniform weights, the document's wording: {test_acc['uniform']:.1%})")
gap = abs(test_acc["local window"] - share_inside)
lesson.check("local window within 5 points of the share inside it", gap <= 0.05,
             f"{test_acc['local window']:.1%} vs {share_inside:.1%} ({100 * gap:.1f} points)")
slower = paired_gap.mean() > 2 * gap_se and pairs_slower > pairs_faster
lesson.check("hard attention learns more slowly (mean paired gap > 2 standard errors)", slower,
             f"steps to 90% over {N_SEEDS} seeds: gap {paired_gap.mean():+.1f} +- {gap_se:.1f}; "
             f"hard slower/tied/faster {pairs_slower}/{pairs_tied}/{pairs_faster}; hard at "
             f"{hard_at_soft_90:.1%} when soft first got there")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/global_local_soft_hard.py`
# (none of them needs training).
# 1. Widen the local window from D = 3 to D = 5 (positions 4..14). What share of the test targets
#    falls inside it, and what accuracy can the local-window model reach at best? (Inside the window
#    it can be right; outside it can only guess one of 32 values.)
# 2. Give local-p equal scores everywhere and a centre p = 9 with D = 3. Predict its seven non-zero
#    weights, the ratio w[12] / w[9] (σ = D / 2), and whether the row sums to 1.
# 3. REINFORCE for one query with scores [-1, -0.5, 0, 0.5, 1]: sample a position, and take the
#    gradient of `reinforce_loss` with reward 1.5 and baseline 0.5. Which scores does gradient
#    descent raise, which does it lower? What is the gradient when the reward equals the baseline?
