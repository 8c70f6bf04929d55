"""Solutions to the exercises of the decoder-only lesson (2-digit addition)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn

PLUS, EQUALS, VOCAB, LENGTH = 10, 11, 12, 9


def problems():
    """All 10,000 problems as the lesson writes them: a1 a0 + b1 b0 = c0 c1 c2 (the sum reversed)."""
    a, b = (g.ravel() for g in np.meshgrid(np.arange(100), np.arange(100), indexing="ij"))
    s = a + b
    return np.stack([a // 10, a % 10, np.full_like(a, PLUS), b // 10, b % 10, np.full_like(a, EQUALS),
                     s % 10, s // 10 % 10, s // 100], axis=1)


def exercise_1():
    """Over all 10,000 problems: the share with a carry out of the ones digit, and the share whose
    leading answer digit in the usual order (hundreds first) changes with that carry."""
    p = ta.tensor(problems())
    a1, a0, b1, b0 = p[:, 0], p[:, 1], p[:, 3], p[:, 4]
    carry = ((a0 + b0) >= 10).numpy()
    # hundreds first, the first digit is 1 or 0: the carry changes it when it lifts a1 + b1 from 9 to 10
    hundreds_without, hundreds_with = ((a1 + b1) >= 10).numpy(), ((a1 + b1 + 1) >= 10).numpy()
    return {"carry_share": float(carry.mean()),
            "first_digit_needs_carry_share": float((carry & (hundreds_without != hundreds_with)).mean())}


class TinyGPT(nn.Module):
    """The lesson's model: embeddings, 2 pre-norm layers with the causal mask, next-token logits."""

    def __init__(self, width=64, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.LearnedPositionalEmbedding(LENGTH, width, batch_first=True)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width))
        self.next_token = nn.Linear(width, VOCAB)

    def forward(self, tokens, causal=True):
        mask = nn.generate_square_subsequent_mask(tokens.shape[1]) if causal else None
        h = self.blocks(self.position(self.embed(ta.tensor(tokens))), mask=mask, is_causal=causal)
        return self.next_token(h)


def exercise_2():
    """Untrained TinyGPT: change the three answer tokens; how much do the logits at positions 0..5 move,
    with the causal mask and without it?"""
    ta.manual_seed(0)
    gpt = TinyGPT().eval()
    rows = problems()[[123, 4567, 8910], :-1]
    changed = rows.copy()
    changed[:, 6:] = (changed[:, 6:] + 3) % 10
    out = {}
    with ta.no_grad():
        for causal in (True, False):
            a, b = gpt(rows, causal).numpy(), gpt(changed, causal).numpy()
            out["causal" if causal else "no mask"] = float(np.abs(a[:, :6] - b[:, :6]).max())
    return out


def exercise_3():
    """The training loss of the untrained model on 500 problems (answer tokens only)."""
    ta.manual_seed(0)
    gpt = TinyGPT()
    batch = problems()[np.random.default_rng(0).integers(0, 10_000, 500)]
    with ta.no_grad():
        logits = gpt(batch[:, :-1])[:, 5:]
        return float(F.cross_entropy(logits.reshape(-1, VOCAB), ta.tensor(batch[:, 6:].reshape(-1))).numpy())


if __name__ == "__main__":
    _setup.main(globals())
