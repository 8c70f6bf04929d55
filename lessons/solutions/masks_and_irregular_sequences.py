"""Solutions to the exercises of lesson 04 (masks and irregular sequences)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn import attention as A


def _padded_context(pad_value, length=3, T=6, d=4):
    """Masked self-attention of one sequence of `length` real tokens padded to T with pad_value."""
    rng = np.random.default_rng(0)
    x = np.full((1, T, d), pad_value, dtype=float)
    x[0, :length] = rng.normal(size=(length, d))
    clean = x.copy()
    clean[0, length:] = 0.0                        # scores from the clean copy: only the values change
    mask = A.padding_mask(np.array([length]), T)
    scores = A.scaled_dot_score(ta.tensor(clean, dtype="float64"), ta.tensor(clean, dtype="float64"))
    context, _ = A.attend(scores, ta.tensor(x, dtype="float64"), mask=mask)
    return context.numpy()[0, :length]


def exercise_1():
    """Padding values 100 instead of 0 (with the mask): max |change| of the real tokens' outputs."""
    return float(np.abs(_padded_context(100.0) - _padded_context(0.0)).max())


def exercise_2():
    """Padding values NaN (with the mask): do the real tokens' outputs stay finite?"""
    with np.errstate(invalid="ignore"):
        out = _padded_context(np.nan)
    return {"all_finite": bool(np.isfinite(out).all()), "nan_entries": int(np.isnan(out).sum())}


def exercise_3():
    """The causal mask at T = 8 and T = 100: what share of the weights is exactly zero?"""
    rng = np.random.default_rng(0)
    shares = {}
    for T in (8, 100):
        x = ta.tensor(rng.normal(size=(T, 4)), dtype="float64")
        _, w = A.attend(A.scaled_dot_score(x, x), x, mask=A.causal_mask(T))
        shares[T] = float((w.numpy() == 0).mean())
    return shares


if __name__ == "__main__":
    _setup.main(globals())
