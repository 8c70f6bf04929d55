"""Solutions to the exercises of the lesson on the Noam schedule and label smoothing."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim

V = 18


def exercise_1():
    """NoamLR with d_model 64, factor 0.5 and warm-up 400 instead of 100: the peak lr and its step."""
    p = nn.Parameter(ta.zeros(1))
    opt = optim.Adam([p], lr=0.5)
    schedule = optim.NoamLR(opt, 64, warmup_steps=400)
    lrs = []
    for _ in range(1500):
        lrs.append(opt.param_groups[0]["lr"])   # the lr of update 1, 2, ...
        schedule.step()
    best = int(np.argmax(lrs))
    return {"peak_lr": lrs[best], "peak_step": best + 1, "lr_at_1500": lrs[-1]}


def exercise_2():
    """Label smoothing ε = 0.2 over 18 tokens: the loss at the best logits (the smoothed target's
    log-probabilities) and at very confident, correct logits."""
    smoothed = np.full(V, 0.2 / V)
    smoothed[7] += 0.8
    best = F.cross_entropy(ta.tensor(np.log(smoothed)[None], dtype="float64"), ta.tensor([7]), label_smoothing=0.2)
    confident = F.cross_entropy(ta.tensor(np.eye(V)[[7]] * 20.0, dtype="float64"), ta.tensor([7]), label_smoothing=0.2)
    return {"at_best_logits": float(best.numpy()), "confident": float(confident.numpy())}


def exercise_3(epsilon=0.1, steps=300):
    """Train free logits with label smoothing ε = 0.1 by Adam: what probability ends up on the right token?"""
    logits = nn.Parameter(ta.zeros((1, V), dtype="float64"))
    opt = optim.Adam([logits], lr=0.1)
    for _ in range(steps):
        loss = F.cross_entropy(logits, ta.tensor([7]), label_smoothing=epsilon)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = ta.softmax(logits, axis=-1).numpy()[0]
    return {"p_right": float(p[7]), "p_other": float(np.delete(p, 7).mean()), "loss": float(loss.numpy())}


if __name__ == "__main__":
    _setup.main(globals())
