"""Solutions to the exercises of the encoder-decoder lesson (masks and greedy translation).

They use an untrained Translator of the lesson's sizes: masks work the same before training.
"""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn

V, PAD, BOS, MAX_LEN, D_MODEL = 18, 0, 1, 8, 64


class Translator(nn.Module):
    """The lesson's model: embedding + sinusoidal positions -> nn.Transformer (1 + 1 layers) -> logits."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, D_MODEL)
        self.position = nn.PositionalEncoding(D_MODEL, dropout=0.0, max_len=MAX_LEN + 1, batch_first=True)
        self.transformer = nn.Transformer(D_MODEL, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=2 * D_MODEL, dropout=0.0, batch_first=True)
        self.generator = nn.Linear(D_MODEL, V)

    def forward(self, src, tgt_in, causal=True, padding_masks=True):
        tokens = lambda t: self.position(self.embed(ta.tensor(t)))   # noqa: E731
        masks = {}
        if causal:
            masks["tgt_mask"] = nn.generate_square_subsequent_mask(tgt_in.shape[1])
        if padding_masks:
            masks.update(src_key_padding_mask=ta.tensor(src == PAD), memory_key_padding_mask=ta.tensor(src == PAD),
                         tgt_key_padding_mask=ta.tensor(tgt_in == PAD))
        with ta.no_grad():
            return self.generator(self.transformer(tokens(src), tokens(tgt_in), **masks)).numpy()


def model(seed=0):
    ta.manual_seed(seed)
    return Translator().eval()


def exercise_1():
    """Change the last two target tokens: how much do the logits at the earlier steps move,
    with and without the causal mask?"""
    m = model()
    rng = np.random.default_rng(0)
    src = np.concatenate([[[3]], rng.integers(6, V, (1, 6))], axis=1)
    tgt = np.concatenate([[[BOS]], rng.integers(6, V, (1, 6))], axis=1)
    changed = tgt.copy()
    changed[0, -2:] = (changed[0, -2:] - 6 + 5) % 12 + 6         # two other content tokens
    out = {}
    for causal in (True, False):
        a, b = m(src, tgt, causal=causal), m(src, changed, causal=causal)
        out["with causal mask" if causal else "without causal mask"] = float(np.abs(a[0, :5] - b[0, :5]).max())
    return out


def exercise_2():
    """One source of 5 tokens, alone (width 5) and padded to 9: how much do the logits move,
    with and without padding masks?"""
    m = model()
    rng = np.random.default_rng(1)
    src5 = np.concatenate([[[4]], rng.integers(6, V, (1, 4))], axis=1)
    src9 = np.concatenate([src5, np.full((1, 4), PAD)], axis=1)
    tgt = np.concatenate([[[BOS]], rng.integers(6, V, (1, 4))], axis=1)
    out = {}
    for masked in (True, False):
        a, b = m(src5, tgt, padding_masks=masked), m(src9, tgt, padding_masks=masked)
        out["with padding masks" if masked else "without padding masks"] = float(np.abs(a - b).max())
    return out


def exercise_3():
    """The document's softmax before cross_entropy: the loss of a perfect one-hot prediction
    over V = 2, 18 and 1000 tokens."""
    out = {}
    for n in (2, 18, 1000):
        probabilities = ta.softmax(ta.tensor(np.eye(n)[[0]] * 50.0, dtype="float64"), axis=-1)  # ~ one-hot
        out[n] = float(F.cross_entropy(probabilities, ta.tensor([0])).numpy())
    return out


if __name__ == "__main__":
    _setup.main(globals())
