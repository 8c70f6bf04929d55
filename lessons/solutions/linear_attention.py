"""Solutions to the exercises of the linear-attention lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.attention.linear_attention import linear_attention, linear_attention_step


def exercise_1(d=64, max_tokens=64):
    """The first length T at which a KV cache (one head, d = dv = 64, float32) outgrows S and z."""
    rng = np.random.default_rng(0)
    q, k, v = (ta.tensor(rng.normal(size=(1, 1, d)).astype(np.float32)) for _ in range(3))
    state = nn.LinearAttentionState()
    _, state.state = linear_attention_step(q, k, v)                  # S (1, 1, d, d), z (1, 1, d)
    cache, sizes = nn.KVCache(), []
    for _ in range(max_tokens):
        token = ta.tensor(rng.normal(size=(1, 1, 1, d)).astype(np.float32))
        cache.update(token, token)
        sizes.append(cache.nbytes)
    first = next(t for t, b in enumerate(sizes, start=1) if b > state.nbytes)
    return {"state_bytes": state.nbytes, "kv_bytes": sizes, "first_T_larger": first, "d": d}


def exercise_2(T=50, d=4, dv=3):
    """Do the outputs stay inside each column's range of values, with elu + 1 and with identity?"""
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(T, n)) for n in (d, d, dv))
    out = {}
    for kind in ("elu", "identity"):
        y = linear_attention(ta.tensor(q), ta.tensor(k), ta.tensor(v), causal=True, feature_map_kind=kind).numpy()
        lo, hi = np.minimum.accumulate(v, axis=0), np.maximum.accumulate(v, axis=0)   # values seen so far
        out[kind] = {"inside": bool(((y >= lo - 1e-5) & (y <= hi + 1e-5)).all()),     # eps shrinks a little
                     "largest_output": float(np.abs(y).max())}
    out["largest_value"] = float(np.abs(v).max())
    out["inputs"] = {"q": q, "k": k, "v": v}
    return out


def exercise_3(d=16, dv=32, n_random=32):
    """Read back n one-hot keys (n = d) exactly; 32 random unit keys in a 16 x dv state cannot be."""
    rng = np.random.default_rng(2)
    keys = np.eye(d)                                                    # d orthogonal keys
    values = rng.normal(size=(d, dv))
    back = linear_attention(ta.tensor(keys), ta.tensor(keys), ta.tensor(values), feature_map_kind="identity")
    onehot_error = float(np.abs(back.numpy() - values).max())
    keys = rng.normal(size=(n_random, d))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    values = rng.normal(size=(n_random, dv))
    back = linear_attention(ta.tensor(keys), ta.tensor(keys), ta.tensor(values), feature_map_kind="identity")
    relative = lambda y: float(np.linalg.norm(y - values) / np.linalg.norm(values))  # noqa: E731
    # the best any state could do: every read-out is a row of K S rescaled by its denominator, a
    # matrix of rank <= d, and the closest rank-d matrix to the values drops their smallest
    # dv - d singular directions (Eckart-Young)
    singular = np.linalg.svd(values, compute_uv=False)
    best = float(np.sqrt((singular[d:] ** 2).sum() / (singular ** 2).sum()))
    return {"onehot_error": onehot_error, "random_relative_error": relative(back.numpy()),
            "best_possible_relative_error": best, "keys": keys, "values": values, "d": d}


if __name__ == "__main__":
    _setup.main(globals())
