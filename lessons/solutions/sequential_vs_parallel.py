"""Solutions to the exercises of lesson 07 (sequential vs parallel attention)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import attention as A


def exercise_1():
    """The document's §4.1 class normalising over dim=0 and summing over dim=0: weights and output shape."""
    ta.manual_seed(0)
    linear1, attention, linear2 = nn.Linear(10, 20, dtype="float64"), nn.Linear(20, 1, dtype="float64"), \
        nn.Linear(20, 5, dtype="float64")
    x = ta.tensor(np.random.default_rng(0).normal(size=(3, 10)), dtype="float64")
    h = ta.tanh(linear1(x))
    scores = attention(h)                              # (3, 1)
    a = ta.exp(scores)
    a = a / a.sum(axis=0, keepdims=True)               # over the 3 positions this time
    y = (a * h).sum(axis=0)                            # (20,): the weighted sum of the positions
    return {"scores": scores.numpy().ravel().tolist(), "weights": a.numpy().ravel().tolist(),
            "y_shape": list(y.shape), "output_shape": list(linear2(y).shape)}


def _qkv(n=12, d=8):
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, d)) for _ in range(3)]


def exercise_2():
    """Shuffle the keys and values together, then the queries: how does softmax(QKᵀ/√d)V change?"""
    Q, K, V = _qkv()
    perm = np.random.default_rng(1).permutation(len(K))
    t = lambda a: ta.tensor(a, dtype="float64")   # noqa: E731
    base = A.scaled_dot_product_attention(t(Q), t(K), t(V)).numpy()
    keys_shuffled = A.scaled_dot_product_attention(t(Q), t(K[perm]), t(V[perm])).numpy()
    queries_shuffled = A.scaled_dot_product_attention(t(Q[perm]), t(K), t(V)).numpy()
    return {"perm": perm.tolist(), "base": base.tolist(), "keys_shuffled": keys_shuffled.tolist(),
            "queries_shuffled": queries_shuffled.tolist()}


def exercise_3():
    """The query loop restricted to keys 0..i, beside the batched product with is_causal=True."""
    Q, K, V = (ta.tensor(a, dtype="float64") for a in _qkv())
    rows = []
    for i in range(Q.shape[0]):
        s = (K[: i + 1] @ Q[i]) / np.sqrt(Q.shape[-1])    # query i against keys 0..i only
        rows.append(ta.softmax(s, axis=-1) @ V[: i + 1])
    loop = ta.stack(rows, axis=0).numpy()
    batched = A.scaled_dot_product_attention(Q, K, V, is_causal=True).numpy()
    return {"loop": loop.tolist(), "batched": batched.tolist()}


if __name__ == "__main__":
    _setup.main(globals())
