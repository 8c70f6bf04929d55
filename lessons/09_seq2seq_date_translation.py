"""Lesson 09 - a recurrent encoder-decoder with attention: translating dates.

What it teaches: in translation every output token depends on a few input tokens, and which ones
changes from step to step. An attention decoder builds, at each output step t, a query from what it
is reading now and what it produced last, scores it against every encoded source position, and
reads a weighted average of them. We translate human-written dates ("feb 10, 1993",
"10 february 1993", ...) into ISO format ("1993-02-10"), character by character, with and without
attention, and look at the alignments: section 7 measures where each year digit's attention peaks
relative to the source digit it copies (the result decides what the figure shows).

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 003 §3.1 (y_t = Σ_i w_ti x_i, w_ti = softmax_i(score(Q, K_i)))
and §3.2 (Q_t = Linear(x_t, y_{t-1}); K = Linear(X), V = Linear(X); y_t = Σ_i w_ti V_i), as
``tinyattn.models.AttentionSeq2Seq`` (LSTM encoder + ``AttentionDecoder``).
Criterion: with attention >= 95% exact match on 1,000 held-out dates; clearly better than the same
encoder-decoder without attention trained for the same number of steps.
"""
# %%
from _common import Lesson, Progress

import copy
import datetime
import re

import matplotlib.pyplot as plt
import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim, viz
from tinyattn.models import AttentionSeq2Seq

lesson = Lesson(9, "recurrent encoder-decoder with attention (dates)")
rng = lesson.rng

# %% [markdown]
# ## 1. Data: dates written by people, and the same dates in ISO format
# Python's `datetime` writes them, so every pair is correct by construction.

# %%
lesson.section("1. data")
FORMATS = ["%b %d, %Y", "%d %B %Y", "%B %d %Y", "%d %b %Y", "%Y %b %d"]   # feb 10, 1993 | 10 february 1993 | ...
FIRST, LAST = datetime.date(1950, 1, 1).toordinal(), datetime.date(2049, 12, 31).toordinal()


def random_dates(n, exclude=frozenset()):
    pairs = []
    while len(pairs) < n:
        day = datetime.date.fromordinal(int(rng.integers(FIRST, LAST + 1)))
        text = day.strftime(FORMATS[rng.integers(len(FORMATS))]).lower()
        if text not in exclude:
            pairs.append((text, day.isoformat()))
    return pairs


train_pairs = random_dates(20000)
test_pairs = random_dates(1000, exclude={s for s, _ in train_pairs})     # held out: never seen
SRC_CHARS = sorted(set("".join(s for s, _ in train_pairs + test_pairs)))
TGT_CHARS = list("0123456789-")
PAD, BOS = 0, 0                     # source index 0 = padding; target index 0 = start symbol
src_index = {c: i + 1 for i, c in enumerate(SRC_CHARS)}
tgt_index = {c: i + 1 for i, c in enumerate(TGT_CHARS)}
S = max(len(s) for s, _ in train_pairs + test_pairs)
T_OUT = 10                          # "yyyy-mm-dd"


def encode(pairs):
    src = np.full((len(pairs), S), PAD, dtype=np.int64)
    tgt = np.zeros((len(pairs), T_OUT), dtype=np.int64)
    for i, (s, t) in enumerate(pairs):
        src[i, :len(s)] = [src_index[c] for c in s]
        tgt[i] = [tgt_index[c] for c in t]
    return src, tgt


def decode_target(row):
    return "".join(TGT_CHARS[i - 1] if i > 0 else "?" for i in row)


src_train, tgt_train = encode(train_pairs)
src_test, tgt_test = encode(test_pairs)
print(f"{len(train_pairs)} training pairs, {len(test_pairs)} held-out pairs; source alphabet "
      f"{len(SRC_CHARS)} characters, padded to {S}; targets {T_OUT} characters")
for s, t in train_pairs[:4]:
    print(f"  {s!r:<22} -> {t}")

# %% [markdown]
# ## 2. Two models with the same encoder
# With attention: `AttentionSeq2Seq` (from tinyattn.models): an LSTM encoder, then at each step
# the decoder's LSTMCell reads [previous character ; previous context y_{t-1}], the query
# Q_t = Linear([x_t ; y_{t-1}]) scores every encoder state, and the logits come from [x_t ; y_t].
# Without attention: the encoder's final state is all the decoder ever sees of the source.

# %%
lesson.section("2. two models with the same encoder")


class PlainSeq2Seq(nn.Module):
    """LSTM encoder -> final (h, c) -> LSTM decoder -> Linear. No attention."""

    def __init__(self, src_vocab, tgt_vocab, embedding_dim, hidden):
        super().__init__()
        self.src_embedding = nn.Embedding(src_vocab, embedding_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embedding_dim)
        self.decoder = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def encode(self, src):
        lengths = (src != PAD).sum(axis=1)
        _, state = self.encoder(self.src_embedding(src), lengths=lengths)
        return state

    def forward(self, src, tgt_in):
        out, _ = self.decoder(self.tgt_embedding(tgt_in), self.encode(src))
        return self.out(out), None

    def greedy_decode(self, src, bos, max_len):
        with ta.no_grad():
            state = self.encode(src)
            current = np.full((len(src), 1), bos, dtype=np.int64)
            tokens = []
            for _ in range(max_len):
                out, state = self.decoder(self.tgt_embedding(current), state)
                current = self.out(out).numpy().argmax(axis=-1)           # (B, 1)
                tokens.append(current[:, 0])
            return ta.tensor(np.stack(tokens, axis=1)), None


EMBED, HIDDEN, BATCH, STEPS, LR = 16, 32, 64, 300, 0.01
print(f"both models: character embeddings of size {EMBED}, an LSTM encoder and decoder of width {HIDDEN}; "
      "only the attention model's decoder looks back at every encoder state")


def exact_match(model, src, tgt):
    tokens, _ = model.greedy_decode(src, BOS, T_OUT)
    return float((tokens.numpy() == tgt).all(axis=1).mean()), tokens.numpy()


# %% [markdown]
# ## 3. Training: teacher forcing, cross-entropy, Adam
# The decoder reads the correct previous character (shifted right, starting with BOS) and learns to
# predict the next one. At test time it reads its own predictions (greedy decoding).

# %%
lesson.section(f"3. training both models: {STEPS} steps, batch {BATCH}, Adam lr {LR} -> {LR / 10}")
models = {
    "with attention": lambda: AttentionSeq2Seq(len(SRC_CHARS) + 1, len(TGT_CHARS) + 1,
                                               embedding_dim=EMBED, hidden_size=HIDDEN,
                                               score="dot", padding_idx=PAD),
    "without attention": lambda: PlainSeq2Seq(len(SRC_CHARS) + 1, len(TGT_CHARS) + 1, EMBED, HIDDEN),
}
results = {}
for name, build in models.items():
    ta.manual_seed(lesson.seed)
    model = build()
    opt = optim.Adam(model.parameters(), lr=LR)
    # lr falls linearly to a tenth: big steps to find the alignment, small ones to settle it
    schedule = optim.LambdaLR(opt, lambda t: 1.0 - 0.9 * t / STEPS)
    batches = np.random.default_rng(lesson.seed + 1)       # the same batches for both models
    curve = {"step": [], "loss": [], "acc": [], "acc_step": []}
    progress = Progress(STEPS, every=50, label=f"{name:<18}")
    for step in range(1, STEPS + 1):
        idx = batches.integers(0, len(src_train), size=BATCH)
        src, tgt = src_train[idx], tgt_train[idx]
        tgt_in = np.concatenate([np.full((BATCH, 1), BOS), tgt[:, :-1]], axis=1)
        logits, _ = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        curve["step"].append(step)
        curve["loss"].append(loss.item())
        if step % 50 == 0:
            acc, _ = exact_match(model, src_test[:200], tgt_test[:200])       # a quick look
            curve["acc"].append(acc)
            curve["acc_step"].append(step)
            progress(step, loss.item(), acc)
    acc, predictions = exact_match(model, src_test, tgt_test)
    results[name] = {"model": model, "curve": curve, "exact_match": acc, "predictions": predictions}

# %% [markdown]
# ## 4. Held-out exact match

# %%
lesson.section("4. held-out exact match (1,000 dates never seen in training)")
for name, r in results.items():
    per_char = float((r["predictions"] == tgt_test).mean())
    r["char_accuracy"] = per_char
    print(f"  {name:<18} exact match {r['exact_match']:6.1%}   characters right {per_char:6.1%}")
print("(Both models had the same steps, batches and learning rates. Without attention the decoder must "
      "rebuild all ten characters from one 32-number summary of the source; with attention it can "
      "look up the year, month and day characters directly at each step.)")
print("examples (source -> with attention | without attention | truth):")
for i in range(6):
    print(f"  {test_pairs[i][0]!r:<22} -> {decode_target(results['with attention']['predictions'][i])} | "
          f"{decode_target(results['without attention']['predictions'][i])} | {test_pairs[i][1]}")
wrong = [i for i in range(len(test_pairs))
         if not (results["with attention"]["predictions"][i] == tgt_test[i]).all()]
if wrong:
    print(f"some of the {len(wrong)} dates the attention model gets wrong:")
    for i in wrong[:4]:
        print(f"  {test_pairs[i][0]!r:<22} -> {decode_target(results['with attention']['predictions'][i])} "
              f"(truth {test_pairs[i][1]})")

# %% [markdown]
# ## 5. Alignments
# Row t of a heatmap is w_t: where output character t looked in the source. Whether a digit's
# peak is on the very character it copies, or near it, is measured in section 7 below.

# %%
lesson.section("5. alignments on three held-out dates")
model = results["with attention"]["model"]
picks = [next(i for i, (s, _) in enumerate(test_pairs) if s[0].isalpha()),
         next(i for i, (s, _) in enumerate(test_pairs) if s[0].isdigit() and s[4] == " "),
         next(i for i, (s, _) in enumerate(test_pairs) if s[:2].isdigit() and not s[2].isdigit())]
maps, rows, cols, titles = [], [], [], []
for i in picks:
    tokens, weights = model.greedy_decode(src_test[i:i + 1], BOS, T_OUT)
    n = len(test_pairs[i][0])
    maps.append(weights.numpy()[0, :, :n])
    rows.append(list(decode_target(tokens.numpy()[0])))
    cols.append([c if c != " " else "␣" for c in test_pairs[i][0]])
    titles.append(f"{test_pairs[i][0]!r} -> {decode_target(tokens.numpy()[0])}")
fig = viz.heatmap_grid(maps, rows, cols, titles=titles, ncols=3, xlabel="source character",
                       ylabel="output character", suptitle="attention alignments on held-out dates")
lesson.savefig(fig, "alignments")

# %% [markdown]
# ## 6. One decoder step written out, and equal to the library's
# Step t of `AttentionDecoder.step` with score="dot": the LSTMCell reads [embedding of the previous
# character ; previous context y_{t-1}] and gives x_t; the query is q_t = W_q [x_t ; y_{t-1}] + b_q;
# keys and values are K = W_k H + b_k, V = W_v H + b_v over the encoder states H; scores
# s_ti = q_t · K_i (padding gets -inf); w_t = softmax(s_t); context y_t = Σ_i w_ti V_i; logits =
# W_out [x_t ; y_t] + b_out. We run it in NumPy with the trained weights, for the first held-out
# date, teacher-forced on its true target, and compare with the library's forward pass.

# %%
lesson.section("6. one decoder step written out vs AttentionDecoder")
model64 = copy.deepcopy(model).double()          # a float64 copy, so the comparison is exact to 1e-12
dec = model64.decoder
par = {name: p.numpy() for name, p in dec.named_parameters()}
with ta.no_grad():
    one_src = src_test[:1]
    memory, (h0, c0), pad = model64.encode(one_src)
    tgt_in_one = np.concatenate([[[BOS]], tgt_test[:1, :-1]], axis=1)
    lib_logits, lib_weights = model64(one_src, tgt_in_one)
    H = memory.numpy()[0]                                              # (S, hidden)
    K = H @ par["key.weight"].T + par["key.bias"]
    V = H @ par["value.weight"].T + par["value.bias"]
    real = one_src[0] != PAD
    state, y_prev = (h0, c0), np.zeros(dec.attn_dim)
    hand_logits, hand_weights = [], []
    for t in range(T_OUT):
        e = par["embedding.weight"][tgt_in_one[0, t]]
        state = dec.cell(ta.tensor(np.concatenate([e, y_prev])[None]), state)   # the LSTM cell (lesson 08)
        x_t = state[0].numpy()[0]
        q = par["query.weight"] @ np.concatenate([x_t, y_prev]) + par["query.bias"]
        scores = np.where(real, K @ q, -np.inf)
        w = np.exp(scores - scores.max())
        w /= w.sum()
        y_prev = w @ V
        hand_logits.append(par["out.weight"] @ np.concatenate([x_t, y_prev]) + par["out.bias"])
        hand_weights.append(w)
step_logit_diff = float(np.abs(np.array(hand_logits) - lib_logits.numpy()[0]).max())
step_weight_diff = float(np.abs(np.array(hand_weights) - lib_weights.numpy()[0]).max())
print(f"{test_pairs[0][0]!r}: max |hand - library| logits {step_logit_diff:.1e}, weights {step_weight_diff:.1e}")

# %% [markdown]
# ## 7. What the alignments really show
# Is the largest weight of an output digit on the source character it copies? Year and day digits
# are written as digits in the source, so we know which position holds each one; month digits
# copy nothing (the source spells the month), so for them we ask whether the peak is inside the
# month word. Over all 1,000 held-out dates:

# %%
lesson.section("7. where each output digit's attention peaks")
_, all_weights = model.greedy_decode(src_test, BOS, T_OUT)
all_weights = all_weights.numpy()
fields = {"year": (range(0, 4), []), "month": (range(5, 7), []), "day": (range(8, 10), [])}
for i, (text, iso) in enumerate(test_pairs):
    spans = {}
    for m in re.finditer(r"[a-z]+|[0-9]+", text):
        kind = "month" if m.group().isalpha() else ("year" if len(m.group()) == 4 else "day")
        spans[kind] = m.start()
    for field, (steps, hits) in fields.items():
        for k, t in enumerate(steps):
            peak = int(all_weights[i, t].argmax())
            if field == "month":
                word = re.search(r"[a-z]+", text)
                hits.append(word.start() <= peak < word.end())
            else:
                hits.append(peak == spans[field] + k)
share = {field: float(np.mean(hits)) for field, (_, hits) in fields.items()}
print(f"year digits: peak on the copied digit {share['year']:.1%}")
print(f"day digits:  peak on the copied digit {share['day']:.1%}")
print(f"month digits (copy nothing): peak inside the month word {share['month']:.1%}")
copied_fields = [f for f in ("year", "day") if share[f] >= 0.5]
other_fields = [f for f in ("year", "day") if share[f] < 0.5]
print(f"So 'each output digit attends to the character it copies' holds for most "
      f"{' and '.join(copied_fields) or 'no'} digits" +
      (f", not for {' and '.join(other_fields)} digits" if other_fields else "") +
      ", and cannot hold for the month digits, which have no character to copy: they "
      + ("look at the month word" if share["month"] >= 0.5 else "mostly look elsewhere than the month word")
      + f" ({share['month']:.0%}). An encoder state is an LSTM state that summarises what was read so "
      "far, so a peak next to the digit can carry it as well; the heatmaps above show these regions.")

# %%
lesson.section("criterion")
with_att, without = results["with attention"]["exact_match"], results["without attention"]["exact_match"]
lesson.record(exact_match={n: r["exact_match"] for n, r in results.items()},
              char_accuracy={n: r["char_accuracy"] for n, r in results.items()},
              n_test=len(test_pairs), steps=STEPS, batch=BATCH, hidden=HIDDEN,
              train_test_overlap=len({s for s, _ in train_pairs} & {s for s, _ in test_pairs}),
              step_logit_diff=step_logit_diff, step_weight_diff=step_weight_diff,
              peak_share=share)
lesson.check("decoder step written out equals AttentionDecoder (1e-9)",
             step_logit_diff < 1e-9 and step_weight_diff < 1e-9,
             f"logits {step_logit_diff:.1e}, weights {step_weight_diff:.1e}")
lesson.check("with attention >= 95% exact match on 1,000 held-out dates", with_att >= 0.95,
             f"{with_att:.1%}")
lesson.check("clearly better than without attention (same steps)", with_att >= without + 0.10,
             f"{with_att:.1%} vs {without:.1%} after {STEPS} steps")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/seq2seq_date_translation.py`
# (an untrained model of the lesson's sizes is enough for all three).
# 1. Pad the same sources to 30 characters instead of 17. Do the greedy outputs change? Do the
#    attention weights on the real characters change, and what weight do the 13 extra padding
#    positions get? (Two things make this work: the encoder and the decoder. Which?)
# 2. Replace `score="dot"` by `score="additive"` (Bahdanau's vᵀ tanh(W_q q + W_k k)). How many
#    parameters does the model gain, as a formula in the hidden size, and as a number for 32?
# 3. Decode greedily, then feed the model its own output shifted right (BOS first) as if it were
#    the teacher-forcing target. Does the argmax of the teacher-forced logits reproduce the greedy
#    output, and are the attention weights the same? Why must they be?
