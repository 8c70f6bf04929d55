"""Solutions to the exercises of lesson 12 (the Transformer encoder layer)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn


def exercise_1():
    """LayerNorm of the one-hot vectors [1, 0, ..., 0] of length 4, 8 and 64."""
    out = {}
    for n in (4, 8, 64):
        x = np.zeros(n)
        x[0] = 1.0
        out[n] = nn.LayerNorm(n, dtype="float64")(ta.tensor(x, dtype="float64")).numpy().tolist()
    return out


def exercise_2():
    """LayerNorm of c·[1, 0, 0, 0] for c = 1000, 1 and 0.001: is it scale-invariant?"""
    ln = nn.LayerNorm(4, dtype="float64")
    return {c: ln(ta.tensor([c, 0.0, 0.0, 0.0], dtype="float64")).numpy().tolist() for c in (1000.0, 1.0, 0.001)}


def exercise_3():
    """A 24-layer post-norm stack at initialisation, input of RMS 5: the input and the output (8 x 6 tokens of 32)."""
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=128, dropout=0.1, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 24).eval()
    x = ta.tensor(5 * np.random.default_rng(0).normal(size=(8, 6, 32)), dtype="float32")
    with ta.no_grad():
        return {"input": x.numpy(), "output": encoder(x).numpy()}


if __name__ == "__main__":
    _setup.main(globals())
