"""Solutions to the exercises of lesson 06 (global, local, soft and hard attention)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn.optim.grads import grad_array
from tinyattn import attention as A

T, C, CENTRE = 20, 32, 9


def lesson_test_marks(seed=0):
    """The marked positions of the lesson's 2000 test sequences (its first draws from its seed)."""
    rng = np.random.default_rng(seed)
    rng.integers(0, C, size=(2000, T))             # the values, drawn first
    return rng.integers(0, T, size=2000)


def exercise_1():
    """Local window widened to D = 5: share of test targets inside it, and the accuracy ceiling."""
    inside = A.local_window_mask(T, window=5).numpy()[CENTRE]      # (T,) True inside the window
    share = float(inside[lesson_test_marks()].mean())
    return {"window_positions": np.flatnonzero(inside).tolist(), "share_inside": share,
            "accuracy_ceiling": share + (1 - share) / C}             # right inside, chance outside


def exercise_2():
    """Local-p with equal scores, centre p = 9, D = 3: the weights, and w[12] / w[9]."""
    scores = ta.zeros((1, T), dtype="float64")
    w = A.local_p_weights(scores, ta.tensor([9.0], dtype="float64"), window=3).numpy()[0]
    return {"weights": w.tolist(), "ratio_12_to_9": float(w[12] / w[9]), "row_sum": float(w.sum())}


def exercise_3():
    """REINFORCE on one query: d loss / d scores when the reward beats the baseline by 1, and when it ties."""
    scores0 = np.linspace(-1.0, 1.0, 5)
    out = {"scores": scores0.tolist()}
    for name, reward in (("advantage_1", 1.5), ("advantage_0", 0.5)):
        s = ta.tensor(scores0[None, :], dtype="float64", requires_grad=True)
        sample, log_prob = A.stochastic_hard_attention(s, generator=np.random.default_rng(3))
        A.reinforce_loss(log_prob, reward, baseline=0.5).backward()
        out[name] = {"sampled": int(sample.numpy()[0].argmax()), "grad": np.asarray(grad_array(s))[0].tolist()}
    return out


if __name__ == "__main__":
    _setup.main(globals())
