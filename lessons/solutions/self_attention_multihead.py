"""Solutions to the exercises of lesson 10 (self-attention and multi-head attention)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import attention as A


def exercise_1():
    """nn.MultiheadAttention(32, h) for h = 1, 2, 4, 8, 16, 32: the number of parameters."""
    return {h: nn.MultiheadAttention(32, h).num_parameters() for h in (1, 2, 4, 8, 16, 32)}


def exercise_2():
    """Head 1 of section 3 ("previous token"): the weights of query 0, which has no previous token, and of query 3."""
    T, d_model, head_dim = 6, 32, 8
    X = np.zeros((T, d_model))
    X[:, :8] = np.random.default_rng(0).normal(size=(T, 8))      # word dims: head 1 ignores them
    X[np.arange(T), 8 + np.arange(T)] = 1.0                        # one-hot positions
    W_q, W_k = np.zeros((head_dim, d_model)), np.zeros((head_dim, d_model))
    W_q[:, 8:16] = 4.0 * np.sqrt(head_dim) * np.eye(8, k=1)        # the lesson's head-1 rows
    W_k[:, 8:16] = np.eye(8)
    Xt = ta.tensor(X, dtype="float64")
    S = (Xt @ ta.tensor(W_q, dtype="float64").T) @ (Xt @ ta.tensor(W_k, dtype="float64").T).T / np.sqrt(head_dim)
    w = ta.softmax(S, axis=-1).numpy()
    return {"query_0": w[0].tolist(), "query_3": w[3].tolist()}


def exercise_3():
    """d_model = 64: for which numbers of heads does the document's 1/√heads scale give the right weights?"""
    rng = np.random.default_rng(0)
    right = []
    for h in (1, 2, 4, 8, 16, 32, 64):
        q, k, v = (ta.tensor(rng.normal(size=(1, h, 5, 64 // h)), dtype="float64") for _ in range(3))
        correct = A.scaled_dot_product_attention(q, k, v).numpy()                 # 1 / √(head width)
        doc = A.scaled_dot_product_attention(q, k, v, scale=1 / np.sqrt(h)).numpy()
        if np.allclose(doc, correct, rtol=0, atol=1e-12):
            right.append(h)
    return right


if __name__ == "__main__":
    _setup.main(globals())
