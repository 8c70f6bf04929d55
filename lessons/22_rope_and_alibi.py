"""Lesson 22 - rotary and ALiBi positions: attention that knows distances, trained short, tested long.

What it teaches: lesson 11 added a vector per position to each token (sinusoids or a learned table):
an *absolute* position. Many tasks only care how far back something is, and a model that learnt
"position 12 looks at position 11" has learnt nothing about position 40. Two schemes put the
*distance* into attention itself. Rotary embedding (RoPE; Su et al., 2021) turns each pair of query
and key features by an angle proportional to the position, so q·k depends on the positions only
through i - j. ALiBi (Press et al., 2022) adds no position vector at all: each head subtracts
slope × distance from its scores. We write both out in NumPy and show them equal to the library,
then train four small decoder-only models (learned, sinusoid, RoPE, ALiBi; same size, steps, data
and seed) on a task that needs relative position - output the token K places back - at length 16,
and test them at 16, 32 and 64. ALiBi's paper title is its claim: "Train Short, Test Long". Here
the claim is measured, for ALiBi and for the others, and where a scheme fails the lesson says so.

The source articles (doc 000 .. doc 004, described in docs/sources.md) stop at the 2017 Transformer;
this lesson is part of issue 19's extension. No number comes from them.
Criterion: the NumPy RoPE equals attention.rotary_embedding (to 1e-12) and its q·k is the same for
every pair (i, j) with the same i - j (to 1e-12); the written-out ALiBi slopes and bias equal
alibi_slopes / alibi_bias exactly; every scheme learns K = 1 at the training length (>= 95%
accuracy); the absolute schemes fall to <= 50% at 4x the training length while ALiBi keeps >= 90%
there on K = 1; learned positions are right at the trained positions (>= 95%) and near chance at the
untrained rows (<= 30%). Everything else (RoPE at 4x, ALiBi on K = 3) is measured and printed.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
from tinyattn import optim
from tinyattn.attention.alibi import alibi_bias, alibi_slopes
from tinyattn.attention.rotary import rotary_embedding
from tinyattn.models import DecoderOnlyTransformer

lesson = Lesson(22, "rotary and ALiBi positions")
rng = lesson.rng

# %% [markdown]
# ## 1. RoPE, written out: rotate pairs of features
# A head of d = 8 features (the head size of the models trained below) is cut into d/2 = 4 pairs:
# pair m is (x[m], x[m + 4]) (the "halves" pairing of GPT-NeoX and Llama; the paper pairs
# neighbours, the same rotation up to a fixed reordering of the features). At position p, pair m turns by the angle p·θ_m, θ_m = base^(-2m/d):
#
#     x'[m] = x[m] cos(pθ_m) - x[m+4] sin(pθ_m),   x'[m+4] = x[m+4] cos(pθ_m) + x[m] sin(pθ_m)
#
# A rotation keeps lengths, and turning q by iθ and k by jθ leaves q'·k' = q·R((j - i)θ)k: a
# function of j - i only. We check both on random vectors, then the library's ``rotary_embedding``.

# %%
lesson.section("1. RoPE by hand: rotate pairs, q·k depends only on i - j")
d, base, T = 8, 10000.0, 12
theta = base ** (-np.arange(0, d, 2) / d)                 # (d/2,) the pairs' speeds, radians per position


def rope_by_hand(x, positions):
    """x (T, d): turn pair m of row t by positions[t]·θ_m."""
    angle = positions[:, None] * theta                    # (T, d/2)
    x1, x2 = x[:, :d // 2], x[:, d // 2:]
    return np.concatenate([x1 * np.cos(angle) - x2 * np.sin(angle), x2 * np.cos(angle) + x1 * np.sin(angle)], axis=1)


positions = np.arange(T)
print("θ_m = " + ", ".join(f"{t:.4g}" for t in theta) + " rad per position; the periods are "
      + ", ".join(f"{2 * np.pi / t:,.0f}" for t in theta) + " positions")
# the same query vector and the same key vector placed at every position
q_vec, k_vec = rng.normal(size=d), rng.normal(size=d)
q_rot, k_rot = rope_by_hand(np.tile(q_vec, (T, 1)), positions), rope_by_hand(np.tile(k_vec, (T, 1)), positions)
norm_change = float(np.abs(np.linalg.norm(q_rot, axis=1) - np.linalg.norm(q_vec)).max())
scores = q_rot @ k_rot.T                                  # scores[i, j] = q at i · k at j
by_offset = {off: [scores[i, i - off] for i in range(off, T)] for off in range(T)}
offset_spread = float(max(np.ptp(v) for v in by_offset.values()))
print(f"lengths after rotating: changed by at most {norm_change:.1e}")
print("q·k by offset i - j (the same q and k at every position): "
      + ", ".join(f"{off}: {v[0]:+.3f}" for off, v in list(by_offset.items())[:6]) + ", ...")
print(f"largest spread of q·k among pairs with the same offset: {offset_spread:.1e} "
      f"(while across offsets it ranges over {min(v[0] for v in by_offset.values()):+.2f} .. "
      f"{max(v[0] for v in by_offset.values()):+.2f})")
far = rope_by_hand(np.stack([q_vec, k_vec]), np.array([1003, 1000]))
print(f"shift both by 1000 positions: q at 1003 · k at 1000 = {far[0] @ far[1]:+.6f}, "
      f"q at 3 · k at 0 = {scores[3, 0]:+.6f}")
x = rng.normal(size=(2, 3, T, d))                          # (batch, heads, T, d)
library = rotary_embedding(ta.tensor(x), positions, base=base).numpy()
rope_err = float(max(np.abs(library[b, h] - rope_by_hand(x[b, h], positions)).max()
                     for b in range(2) for h in range(3)))
print(f"max |rope_by_hand - attention.rotary_embedding| over a (2, 3, {T}, {d}) batch: {rope_err:.1e}")

# %% [markdown]
# ## 2. ALiBi, written out: a penalty on the distance, one slope per head
# No position vector at all. Head h adds -m_h·(i - j) to the score of query i for key j ≤ i. The
# slopes are fixed, a geometric sequence: for n heads (n a power of two) m_h = 2^(-8(h+1)/n), so
# 8 heads get 1/2, 1/4, ..., 1/256. A steep head sees almost only the last few tokens; a shallow one
# averages over a long past. For other head counts the paper takes the slopes of the next-lower
# power of two c and fills up with every other slope of 2c. Nothing here is learnt.

# %%
lesson.section("2. ALiBi by hand: the slopes and the bias matrix")


def slopes_by_hand(n):
    c = 2 ** int(np.floor(np.log2(n)))
    own = [2.0 ** (-8 * (h + 1) / c) for h in range(c)]
    return own + [2.0 ** (-8 * (h + 1) / (2 * c)) for h in range(0, 2 * c, 2)][: n - c]


for n in (4, 8, 6):
    print(f"  {n} heads: slopes " + ", ".join(f"{s:.4g}" for s in slopes_by_hand(n)))
slopes_equal = all(slopes_by_hand(n) == alibi_slopes(n) for n in range(1, 33))
H_demo, T_demo = 4, 6
i, j = np.arange(T_demo)[:, None], np.arange(T_demo)[None, :]
bias_by_hand = -np.array(slopes_by_hand(H_demo))[:, None, None] * (i - j)[None]
bias_by_hand = np.where(j <= i, bias_by_hand, -np.inf)       # the causal mask, as -inf
lib_bias = alibi_bias(H_demo, T_demo, dtype=np.float64).numpy()
lib_bias = np.where(j <= i, lib_bias, -np.inf)
bias_equal = bool(np.array_equal(bias_by_hand, lib_bias))
print(f"head 0 (slope {slopes_by_hand(H_demo)[0]}) adds to the scores of {T_demo} tokens:")
print(np.array2string(bias_by_hand[0], precision=2, suppress_small=True))
print(f"slopes by hand = alibi_slopes for 1..32 heads: {slopes_equal}; "
      f"bias by hand = alibi_bias (causal part) exactly: {bias_equal}")
weights = np.exp(bias_by_hand[:, -1])                          # equal content scores: only the bias speaks
weights /= weights.sum(axis=1, keepdims=True)
print(f"with equal content scores, the last query's weights per head (keys 0..{T_demo - 1}):")
for h in range(H_demo):
    print(f"  slope {slopes_by_hand(H_demo)[h]:<9.4g} " + " ".join(f"{w:.3f}" for w in weights[h]))
print("The weights depend on the distance i - j only, and they fall with it: ALiBi knows *how far*, "
      "and prefers *near*.")

# %% [markdown]
# ## 3. A task that needs relative position: the token K places back
# Sequences of 16 random tokens from 16 symbols; at position t >= K the model must output the token
# at t - K (positions before K have no target). The rule is the same at every position: it is a
# statement about a distance. We train with K = 1 and, separately, with K = 3, at length 16, and
# test at 16, 32 and 64. A random guess is right 1/16 = 6.25% of the time.
#
# The models: decoder-only Transformers (lesson 20's), 2 layers, d_model 32, 4 heads, the same seed
# for the initialisation and the same batches, differing only in ``positions=``. The absolute
# schemes need a table row per position: we build them with ``max_len = 64`` (4x), so they *can*
# run at length 64, but rows 16..63 are never used in training. A learned row never used stays at
# its random initial value; a sinusoid row is a pattern the network never saw. (With max_len = 16
# the model refuses longer input, with a message naming max_len: exercise 3.)

# %%
lesson.section("3. the task: output the token K places back")
V, TRAIN_LEN, TEST_MULTIPLES = 16, 16, (1, 2, 4)
D_MODEL, LAYERS, HEADS, STEPS, BATCH, LR = 32, 2, 4, 240, 32, 3e-3
SCHEMES = ("learned", "sinusoid", "rope", "alibi")
OFFSETS = (1, 3)
MAX_LEN = TRAIN_LEN * max(TEST_MULTIPLES)
chance = 1 / V


def targets(x, K):
    """Positions K.. of x predict x[t - K]."""
    return x[:, :-K]


example = rng.integers(0, V, TRAIN_LEN)
print(f"a sequence:         {example.tolist()}")
print(f"its targets, K = 3: {['-'] * 3 + targets(example[None], 3)[0].tolist()}")
tests = {m: np.random.default_rng(10_000 + lesson.seed + m).integers(0, V, (200, m * TRAIN_LEN))
         for m in TEST_MULTIPLES}


def make(scheme):
    ta.manual_seed(lesson.seed)
    return DecoderOnlyTransformer(V, d_model=D_MODEL, num_layers=LAYERS, num_heads=HEADS, max_len=MAX_LEN,
                                  positions=scheme)


def evaluate(model, x, K):
    """(T - K,) accuracy at positions K..T-1 over the sequences x, and the mean loss (nats)."""
    with ta.no_grad():
        logits = model(x)[:, K:]
        loss = F.cross_entropy(logits.reshape(-1, V), ta.tensor(targets(x, K).reshape(-1)))
    return (logits.numpy().argmax(-1) == targets(x, K)).mean(axis=0), float(loss.numpy())


print(f"models: {make('rope').num_parameters():,} parameters with rope or alibi, "
      f"{make('learned').num_parameters():,} with learned positions ({MAX_LEN} rows x {D_MODEL})")

# %% [markdown]
# ## 4. Training the four schemes
# 240 steps of AdamW, batches of 32 sequences of length 16, the same batches for every model.

# %%
lesson.section("4. training: four position schemes, K = 1 and K = 3")


def train(scheme, K):
    model = make(scheme)
    opt = optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    data = np.random.default_rng(lesson.seed + K)
    progress = Progress(STEPS, every=STEPS, label=f"K={K} {scheme:<9}")
    for step in range(1, STEPS + 1):
        x = data.integers(0, V, (BATCH, TRAIN_LEN))
        logits = model(x)[:, K:]
        loss = F.cross_entropy(logits.reshape(-1, V), ta.tensor(targets(x, K).reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress(step, float(loss.numpy()))
    return model.eval()


accuracy, per_position, held_out_loss, trained = {}, {}, {}, {}
for K in OFFSETS:
    for scheme in SCHEMES:
        name = f"K={K} {scheme}"
        trained[name] = model = train(scheme, K)
        evaluated = {m: evaluate(model, tests[m], K) for m in TEST_MULTIPLES}
        per_position[name] = {m: acc for m, (acc, _) in evaluated.items()}
        accuracy[name] = {m: float(acc.mean()) for m, acc in per_position[name].items()}
        held_out_loss[name] = {m: nats for m, (_, nats) in evaluated.items()}

# %% [markdown]
# ## 5. Trained at 16, tested at 16, 32 and 64
# Accuracy and cross-entropy loss over all positions with a target, on 200 fresh sequences per
# length. This is one seed;
# ``--seed S`` reruns everything (initial weights, batches, test sequences) with another.

# %%
lesson.section("5. accuracy at 1x, 2x and 4x the training length")
print(f"{'accuracy':<16}" + "".join(f"{f'{m}x = {m * TRAIN_LEN}':>12}" for m in TEST_MULTIPLES)
      + f"{'loss (nats)':>16}" + "".join(f"{f'{m}x':>8}" for m in TEST_MULTIPLES))
for name, acc in accuracy.items():
    print(f"{name:<16}" + "".join(f"{acc[m]:>12.1%}" for m in TEST_MULTIPLES) + " " * 16
          + "".join(f"{held_out_loss[name][m]:>8.3f}" for m in TEST_MULTIPLES))
print(f"(a uniform guess scores ln {V} = {np.log(V):.3f} nats)")
learned_4x = per_position["K=1 learned"][4]                        # index t - K for position t
trained_rows = float(learned_4x[:TRAIN_LEN - 1].mean())            # positions 1..15: trained rows
untrained_rows = float(learned_4x[TRAIN_LEN - 1:].mean())          # positions 16..63: rows never trained
print(f"learned positions (K = 1) at length 64: {trained_rows:.1%} at positions 1..{TRAIN_LEN - 1} (trained rows), "
      f"{untrained_rows:.1%} at positions {TRAIN_LEN}..{MAX_LEN - 1} (rows still at their random "
      f"initial values; chance is {chance:.1%})")


def holds_until(acc_by_position, K, level=0.9):
    """The last position before the accuracy first drops below ``level``."""
    below = np.nonzero(acc_by_position < level)[0]
    return K + (int(below[0]) if below.size else len(acc_by_position)) - 1


reach = {name: holds_until(pp[4], int(name[2])) for name, pp in per_position.items()}
for name, r in reach.items():
    print(f"  {name:<14} is right >= 90% of the time at every position up to {r} "
          f"= {(r + 1) / TRAIN_LEN:.1f}x the training length")

# %% [markdown]
# ## 6. Where the attention goes at unseen distances
# A guess to test: at length 64 a query meets keys at distances 16..63, which it never met in
# training. For RoPE those scores are whatever the rotation makes of them; for ALiBi they carry a
# penalty that grows with the distance. To look, we record each layer's attention weights: each
# block's ``attend`` is wrapped, for one forward pass, by a function that computes
# softmax(q kᵀ/√D + mask) from the q and k it is given (the same formula as section 1's scores)
# before calling the real one. Measured: the share of attention that queries at positions 48..63 (at
# length 64) and 16..31 (at length 32) put on keys 16 or more places back, the distances never seen,
# for every head; printed: the largest share among the heads of each layer.

# %%
lesson.section("6. attention on never-seen distances")


def attention_maps(model, tokens):
    """Each layer's attention weights (N, H, T, T) for one forward pass of ``tokens``; also checks
    that weights @ v is what the real ``attend`` returned (the largest difference goes in ``map_err``)."""
    maps = []
    for block in model.blocks:
        real = block.attn.attend

        def recording(q, k, v, attn_mask=None, is_causal=False, real=real):
            s = q.numpy() @ np.swapaxes(k.numpy(), -1, -2) / np.sqrt(q.shape[-1])
            if attn_mask is not None:                 # ALiBi: a float mask, bias and -inf together
                s = s + attn_mask.numpy()
            if is_causal:
                s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
            w = np.exp(s - s.max(axis=-1, keepdims=True))
            maps.append(w / w.sum(axis=-1, keepdims=True))
            out = real(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
            map_err.append(float(np.abs(maps[-1] @ v.numpy() - out.numpy()).max()))
            return out
        block.attn.attend = recording                  # an instance attribute: shadows the method
    try:
        with ta.no_grad():
            model(tokens)
    finally:
        for block in model.blocks:
            del block.attn.attend                      # the class's method again
    return maps


def far_share(model, m):
    """Per layer and head: the mean weight that the queries of the last 16 positions at length
    m * 16 put on keys at distance >= 16."""
    T = m * TRAIN_LEN
    far = (np.arange(T)[:, None] - np.arange(T)[None, :]) >= TRAIN_LEN       # (T, T) query - key
    shares = []
    for w in attention_maps(model, tests[m][:50]):
        per_head = (w * far).sum(axis=-1)[:, :, T - TRAIN_LEN:].mean(axis=(0, 2))   # (H,)
        shares.append(per_head.tolist())
    return shares


# attending evenly to the keys 0..t, a query at t puts (t - 15) / (t + 1) of its weight 16 or more back
uniform_far = {m: float(np.mean([(t - TRAIN_LEN + 1) / (t + 1) for t in range((m - 1) * TRAIN_LEN, m * TRAIN_LEN)]))
               for m in (2, 4)}
print(f"attending evenly would put {uniform_far[2]:.1%} there at length 32 and {uniform_far[4]:.1%} at length 64")
map_err = []
far_attention = {f"K={K} {s}": {m: far_share(trained[f"K={K} {s}"], m) for m in (2, 4)}
                 for K in OFFSETS for s in ("rope", "alibi")}
for name, by_m in far_attention.items():
    print(f"  {name:<11} share on distances >= {TRAIN_LEN}, most-affected head per layer: "
          + ";  ".join(f"at {m * TRAIN_LEN}: " + ", ".join(f"{max(h):.1%}" for h in shares) for m, shares in by_m.items()))
print(f"(the recorded weights times v reproduce what attention returned to {max(map_err):.1e}: float32)")

# %% [markdown]
# ## 7. What the numbers say
# The conclusions below are computed from the tables above, not written in advance.

# %%
lesson.section("7. what the numbers say")
absolute = [f"K={K} {s}" for K in OFFSETS for s in ("learned", "sinusoid")]
worst_abs_4x = max(accuracy[n][4] for n in absolute)
sin4, learn4 = accuracy["K=1 sinusoid"][4], accuracy["K=1 learned"][4]
at_1x = list(dict.fromkeys(f"{a:.1%}" for a in sorted(accuracy[n][1] for n in absolute)))   # lowest, highest
print(f"Absolute positions: the learned and sinusoid models are right {' to '.join(at_1x[::max(1, len(at_1x) - 1)])} "
      f"of the time at length {TRAIN_LEN} and at most {worst_abs_4x:.1%} right at length {MAX_LEN}: what they learnt is "
      f"tied to positions 0..{TRAIN_LEN - 1} (the first {TRAIN_LEN - 1} of {MAX_LEN - 1} targets are "
      f"{(TRAIN_LEN - 1) / (MAX_LEN - 1):.0%} of a length-64 sequence). A sinusoid row for position 40 exists, "
      f"but the network never saw it: K = 1 at 4x, sinusoid {sin4:.1%} against {learn4:.1%} for learned rows that "
      f"were never trained, {abs(sin4 - learn4):.1%} apart.")
for K in OFFSETS:
    rope, alibi = accuracy[f"K={K} rope"], accuracy[f"K={K} alibi"]
    better = "ALiBi" if alibi[4] > rope[4] else "RoPE"
    print(f"K = {K}: RoPE {rope[1]:.1%} / {rope[2]:.1%} / {rope[4]:.1%} and ALiBi {alibi[1]:.1%} / {alibi[2]:.1%} / "
          f"{alibi[4]:.1%} at 1x / 2x / 4x; {better} is ahead at 4x.")
rope1, alibi1, alibi3 = accuracy["K=1 rope"], accuracy["K=1 alibi"], accuracy["K=3 alibi"]
# per layer: the head most drawn to the unseen distances, and the most local head
rope_far = {m: [max(h) for h in by_layer] for m, by_layer in far_attention["K=1 rope"].items()}
alibi_far = {m: [max(h) for h in by_layer] for m, by_layer in far_attention["K=1 alibi"].items()}
alibi_local = [min(h) for h in far_attention["K=1 alibi"][4]]
if rope1[2] >= 0.95 and rope1[4] < 0.9:
    print(f"RoPE extrapolated to 2x but not to 4x (K = 1: {rope1[4]:.1%} at 4x; right at every position up to "
          f"{reach['K=1 rope']} only). This is a known finding: relative is not the same as length-robust.")
else:
    print(f"RoPE (K = 1) reached {rope1[2]:.1%} at 2x and {rope1[4]:.1%} at 4x in this run.")
layer = int(np.argmax(rope_far[4]))                 # the RoPE layer most drawn to unseen distances at 4x
if rope_far[4][layer] > uniform_far[4] and rope_far[2][layer] < uniform_far[2]:
    print(f"Section 6 shows why: at length 64 a head of RoPE's layer {layer + 1} puts {rope_far[4][layer]:.1%} of its "
          f"attention on distances it never met in training - more than the {uniform_far[4]:.1%} that attending "
          f"evenly would - while at length 32 no head of that layer put more than {rope_far[2][layer]:.1%} there "
          f"(evenly: {uniform_far[2]:.1%}). Its scores depend only on i - j, but nothing in training shaped them "
          f"for i - j >= {TRAIN_LEN}, and far enough out some of those keys score high by accident. (Long-context "
          "models rescale RoPE's angles for this: position interpolation, 'NTK' base scaling.)")
else:
    print(f"Section 6 did not show a RoPE layer turning to unseen distances at 4x in this run (layer {layer + 1}: "
          f"{rope_far[2][layer]:.1%} at length 32, {rope_far[4][layer]:.1%} at 64; attending evenly "
          f"{uniform_far[2]:.1%} and {uniform_far[4]:.1%}).")
if alibi1[4] >= 0.9:
    print(f"ALiBi kept {alibi1[4]:.1%} at 4x on K = 1. No head of it put more than {max(alibi_far[4]):.1%} of its "
          f"attention on the unseen distances at length 64 ({'less than' if max(alibi_far[4]) < uniform_far[4] else 'against'} "
          f"the {uniform_far[4]:.1%} of attending evenly: its shallowest heads average broadly by design), and its most "
          f"local head in each layer put only " + " and ".join(f"{x:.1%}" for x in alibi_local) + " there: the "
          "penalty that grows with the distance keeps the steep heads on the near keys however many far keys are added.")
if alibi3[1] < 0.9:
    print(f"But ALiBi learnt K = 3 poorly even at the training length ({alibi3[1]:.1%}, chance "
          f"{chance:.1%}): its only position signal is 'nearer is better'. Picking the token exactly 3 back, and "
          f"not 2 or 4, needs the model to build position information itself (from the causal mask, over "
          f"layers); {LAYERS} layers and {STEPS} steps were not enough here. RoPE, which can aim a head at one "
          f"offset, got K = 3 {accuracy['K=3 rope'][1]:.1%} right.")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
lengths = [m * TRAIN_LEN for m in TEST_MULTIPLES]
for ax, K in zip(axes[:2], OFFSETS):
    for scheme in SCHEMES:
        ax.plot(lengths, [accuracy[f"K={K} {scheme}"][m] for m in TEST_MULTIPLES], "o-", label=scheme)
    ax.axvline(TRAIN_LEN, color="gray", ls=":", lw=1)
    ax.axhline(chance, color="gray", ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set(xticks=lengths, xticklabels=[str(n) for n in lengths], ylim=(0, 1.05),
           xlabel="test length (trained at 16)", ylabel="accuracy", title=f"output the token {K} back")
    ax.text(lengths[-1], chance, "chance ", ha="right", va="bottom", color="gray", fontsize=8)
    ax.legend()
for scheme in SCHEMES:
    axes[2].plot(np.arange(1, MAX_LEN), per_position[f"K=1 {scheme}"][4], label=scheme)
axes[2].axvspan(TRAIN_LEN - 0.5, MAX_LEN, color="gray", alpha=0.12, lw=0)
axes[2].text(TRAIN_LEN, 0.5, " beyond the training length", color="gray", fontsize=8)
axes[2].set(xlabel="position in a sequence of 64", ylabel="accuracy over 200 sequences", ylim=(0, 1.05),
            title="K = 1, per position, at 4x the training length")
axes[2].legend()
fig.tight_layout()
lesson.savefig(fig, "positions_extrapolation")

# %%
lesson.section("criterion")
lesson.record(loss=held_out_loss, rope_err=rope_err, offset_spread=offset_spread, norm_change=norm_change, slopes_equal=slopes_equal,
              bias_equal=bias_equal, accuracy=accuracy, learned_trained_rows=trained_rows,
              learned_untrained_rows=untrained_rows, reach=reach, chance=chance, far_attention=far_attention,
              uniform_far=uniform_far, map_err=max(map_err),
              per_position_4x={n: pp[4] for n, pp in per_position.items()})
lesson.check("RoPE by hand = rotary_embedding; q·k depends only on i - j",
             rope_err < 1e-12 and offset_spread < 1e-12, f"{rope_err:.1e}, spread within an offset {offset_spread:.1e}")
lesson.check("ALiBi slopes and bias by hand = the library (exactly)", slopes_equal and bias_equal,
             f"slopes {slopes_equal}, bias {bias_equal}")
lesson.check("every scheme learns K = 1 at the training length (>= 95%)",
             all(accuracy[f"K=1 {s}"][1] >= 0.95 for s in SCHEMES),
             ", ".join(f"{s} {accuracy[f'K=1 {s}'][1]:.1%}" for s in SCHEMES))
lesson.check("absolute positions <= 50% at 4x, ALiBi >= 90% at 4x (K = 1)",
             worst_abs_4x <= 0.5 and alibi1[4] >= 0.9,
             f"absolute at most {worst_abs_4x:.1%}, ALiBi {alibi1[4]:.1%}")
lesson.check("learned positions: trained rows >= 95%, untrained rows <= 30%",
             trained_rows >= 0.95 and untrained_rows <= 0.3, f"{trained_rows:.1%} / {untrained_rows:.1%}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/rope_and_alibi.py`.
# 1. RoPE with head size 8 and base 10,000: how many positions does each pair need for one full
#    turn? With base 500 instead? Over 6 positions each pair turns by an angle a; it puts positions
#    0 and 6 apart by |e^(ia) - 1| (for a unit pair). Predict which pair separates them best - is it
#    the fastest? - and which can hardly tell them apart.
# 2. ALiBi with 12 heads (not a power of two): predict the 12 slopes by the paper's rule before
#    calling `alibi_slopes(12)`. Which head gives a key 10 tokens back the largest penalty, and how
#    large is it?
# 3. Build the learned-position model with `max_len=16` (the training length) and give it 32 tokens.
#    What happens, and what does the message tell you to do?
