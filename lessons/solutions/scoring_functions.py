"""Solutions to the exercises of lesson 05 (scoring functions, and the 1/√d_k scale)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn import attention as A

N_QUERIES, N_KEYS = 2000, 32


def draws(dk, seed=0):
    """Queries (N_QUERIES, 1, dk) and keys (N_KEYS, dk) with unit-variance entries, as in lesson 05 §3."""
    rng = np.random.default_rng([seed, dk])
    return rng.normal(size=(N_QUERIES, 1, dk)), rng.normal(size=(N_KEYS, dk))


def saturated_share(dk, scale=1.0, seed=0):
    """Share of queries whose largest softmax weight over the 32 keys is above 0.99."""
    q, k = draws(dk, seed)
    s = A.scaled_dot_score(ta.tensor(q, dtype="float64"), ta.tensor(k, dtype="float64"), scale=scale)
    return float((A.softmax(s).numpy().max(axis=-1) > 0.99).mean())


def exercise_1():
    """No scaling: the smallest d_k at which at least 10% of the rows saturate (largest weight > 0.99)."""
    for dk in range(1, 129):
        share = saturated_share(dk)
        if share >= 0.10:
            return {"d_k": dk, "share": share}
    return None


def exercise_2():
    """Entries with variance 4 (std 2) instead of 1: the std of the 1/√d_k-scaled scores for d_k = 16, 256."""
    rng = np.random.default_rng(0)
    out = {}
    for dk in (16, 256):
        q = ta.tensor(rng.normal(0, 2, size=(20000, 1, dk)), dtype="float64")
        k = ta.tensor(rng.normal(0, 2, size=(20000, 1, dk)), dtype="float64")
        out[dk] = float(A.scaled_dot_score(q, k).numpy().std())
    return out


if __name__ == "__main__":
    _setup.main(globals())
