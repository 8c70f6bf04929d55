"""Solutions to the exercises of lesson 11 (positional encoding)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import kernels, optim

L, V, HIDDEN, MAX_POSITIONS = 12, 40, 64, 16


def exercise_1():
    """The sinusoidal table (d = 64) far beyond the lesson's 64 rows: PE[i]·PE[i+5] for i up to 10 000."""
    table = nn.sinusoidal_table(10_010, 64, dtype="float64")
    dots = (table[:-5] * table[5:]).sum(axis=1)[:10_000]
    return {"min": float(dots.min()), "max": float(dots.max())}


class LearnedReverser(nn.Module):
    """The lesson's Reverser with a learned position table (an Embedding of 16 rows) instead of sinusoids."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, HIDDEN)
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)
        layer = nn.TransformerEncoderLayer(HIDDEN, 4, dim_feedforward=2 * HIDDEN, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.classify = nn.Linear(HIDDEN, V)

    def forward(self, tokens):
        positions = ta.tensor(np.arange(tokens.shape[1]))
        return self.classify(self.encoder(self.embed(ta.tensor(tokens)) * 0.5 + self.position(positions) * 0.5))


@kernels.using("numpy")     # the plain twins: as fast for this small model, and nothing to compile
def exercise_2(steps=200, seed=0):
    """Learned positions trained to reverse length 12: token accuracy at length 12 and at length 16."""
    ta.manual_seed(seed)
    model = LearnedReverser()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    data = np.random.default_rng(seed)
    for _ in range(steps):
        xb = data.integers(0, V, (64, L))
        loss = F.cross_entropy(model(xb).reshape(-1, V), ta.tensor(xb[:, ::-1].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = np.random.default_rng(10_000 + seed)
    out = {}
    with ta.no_grad():
        for n in (L, MAX_POSITIONS):
            xs = test.integers(0, V, (500, n))
            out[n] = float((model(xs).numpy().argmax(-1) == xs[:, ::-1]).mean())
    return out


def exercise_3():
    """The learned table has 16 rows: what happens at length 17?"""
    ta.manual_seed(0)
    model = LearnedReverser()
    try:
        model(np.zeros((1, MAX_POSITIONS + 1), dtype=np.int64))
    except (IndexError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":
    _setup.main(globals())
