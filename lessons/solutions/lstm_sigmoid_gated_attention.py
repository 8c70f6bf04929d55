"""Solutions to the exercises of lesson 08 (an LSTM with sigmoid-gated attention; judging a loss)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F


def exercise_1():
    """Targets uniform on [0, 2) instead of [0, 1): the always-predict-the-mean MSE on 100 000 targets."""
    y = ta.tensor(2 * np.random.default_rng(0).random(100_000), dtype="float64")
    return F.mse_loss(ta.full_like(y, y.numpy().mean()), y).item()


def exercise_2():
    """Random targets on [0, 1): the best constant prediction (to 0.01) and its MSE on 100 000 fresh targets."""
    y = ta.tensor(np.random.default_rng(1).random(100_000), dtype="float64")
    constants = np.round(np.arange(0.0, 1.0001, 0.01), 2)
    losses = [F.mse_loss(ta.full_like(y, c), y).item() for c in constants]
    best = int(np.argmin(losses))
    return {"best_constant": float(constants[best]), "best_mse": losses[best]}


def exercise_3():
    """§3's summary Σ_t a_t x_t over 20 steps: variance that the 19 unmarked steps add to feature 1,
    with every gate at σ(-3) (the lesson's start) and at σ(0)."""
    rng = np.random.default_rng(2)
    x = ta.tensor(rng.uniform(-1.0, 1.0, (20_000, 19)), dtype="float64")   # feature 1 of the unmarked steps
    out = {}
    for bias in (-3.0, 0.0):
        gate = ta.sigmoid(ta.tensor(bias, dtype="float64"))
        out[bias] = float((x * gate).sum(axis=1).numpy().var())
    return out


if __name__ == "__main__":
    _setup.main(globals())
