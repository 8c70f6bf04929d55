"""Solutions to the exercises of the rotary and ALiBi positions lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

from tinyattn.attention.alibi import alibi_bias, alibi_slopes
from tinyattn.attention.rotary import rotary_angles
from tinyattn.models import DecoderOnlyTransformer


def exercise_1(head_dim=8, bases=(10000.0, 500.0), offset=6):
    """RoPE pairs of a head of 8: positions per full turn for two bases, and the angle over 6 positions."""
    out = {}
    for base in bases:
        per_position = rotary_angles(np.array([1]), head_dim, base)[0]          # θ_m, radians per position
        over_offset = rotary_angles(np.array([offset]), head_dim, base)[0]      # the angle over 6 positions
        out[base] = {"positions_per_turn": (2 * np.pi / per_position).tolist(),
                     "angle_over_offset": over_offset.tolist(),
                     # how far apart the pair's rotation puts positions 0 and 6: |e^{i·angle} - 1|
                     "separation": np.abs(np.exp(1j * over_offset) - 1).tolist()}
    return out


def exercise_2(num_heads=12, distance=10):
    """ALiBi with 12 heads: the slopes, and each head's penalty for a key 10 tokens back."""
    slopes = alibi_slopes(num_heads)
    bias = alibi_bias(num_heads, np.array([distance]), np.arange(distance + 1), dtype=np.float64).numpy()
    penalty = -bias[:, 0, 0]                                                     # key 0 seen from query 10
    return {"slopes": slopes, "penalty": penalty.tolist(), "steepest_head": int(penalty.argmax()),
            "largest_penalty": float(penalty.max())}


def exercise_3(train_len=16):
    """A learned-position model with max_len = 16 given 32 tokens: the error it raises."""
    model = DecoderOnlyTransformer(16, d_model=32, num_layers=2, num_heads=4, max_len=train_len,
                                   positions="learned")
    try:
        model(np.zeros((1, 2 * train_len), dtype=np.int64))
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":
    _setup.main(globals())
