"""Solutions to the exercises of the streaming-attention (sliding window + sinks) lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.models import DecoderOnlyTransformer


def exercise_1(layers=32, kv_heads=8, head_dim=128, window=4092, sinks=4, tokens=100_000, chunk=1000):
    """Cache bytes after 100,000 tokens: streaming (window + sinks) and a full KV cache."""
    k = ta.zeros(1, kv_heads, chunk, head_dim, dtype="float16")
    streaming, full = nn.KVCache(window=window, sinks=sinks), nn.KVCache()
    for _ in range(tokens // chunk):
        streaming.update(k, k)
    full.update(k, k)                                   # one chunk: the full cache grows linearly
    return {"streaming_bytes": streaming.nbytes * layers, "streaming_keys": len(streaming),
            "full_bytes": full.nbytes * layers * (tokens // chunk), "tokens": tokens}


def _model(positions, window=4, T=20):
    ta.manual_seed(0)
    return DecoderOnlyTransformer(12, d_model=16, num_layers=2, num_heads=2, positions=positions,
                                  attention="sliding", window=window, max_len=T).double().eval()


def exercise_2(window=4, T=20):
    """The earliest position whose token changes the last logits of a 2-layer sliding-window model."""
    model = _model("rope", window, T)
    tokens = np.random.default_rng(0).integers(0, 12, (1, T))
    with ta.no_grad():
        base = model(tokens).numpy()[0, -1]
        moved = []
        for j in range(T):
            changed = tokens.copy()
            changed[0, j] = (changed[0, j] + 1) % 12
            moved.append(bool(np.abs(model(changed).numpy()[0, -1] - base).max() > 1e-12))
    return {"earliest": moved.index(True), "moved": moved, "T": T, "window": window, "layers": 2}


def exercise_3(window=4, T=20):
    """The last logits from the last 2·(W-1)+1 tokens alone (positions from 0) vs the whole sequence."""
    tokens = np.random.default_rng(1).integers(0, 12, (1, T))
    keep = 2 * (window - 1) + 1
    out = {"kept_tokens": keep}
    for positions in ("rope", "learned"):
        model = _model(positions, window, T)
        with ta.no_grad():
            whole = model(tokens).numpy()[0, -1]
            tail = model(tokens[:, -keep:]).numpy()[0, -1]
        out[positions] = float(np.abs(whole - tail).max())
    return out


if __name__ == "__main__":
    _setup.main(globals())
