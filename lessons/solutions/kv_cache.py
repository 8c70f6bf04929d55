"""Solutions to the exercises of the KV-cache lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.models import DecoderOnlyTransformer, generate

V = 48


def _model(**kw):
    ta.manual_seed(0)
    args = dict(d_model=32, num_layers=2, num_heads=4, max_len=256)
    args.update(kw)
    return DecoderOnlyTransformer(V, **args).double().eval()


class _Counting:
    """Wraps a model and counts the tokens pushed through it (batch 1)."""

    def __init__(self, model):
        self.model, self.tokens = model, 0

    def __call__(self, tokens, padding=None, cache=None):
        self.tokens += tokens.shape[1]
        return self.model(tokens, padding=padding, cache=cache)

    def new_cache(self):
        return self.model.new_cache()


def exercise_1(prompt_len=10, n_new=100):
    """Token-passes to generate 100 tokens after a 10-token prompt, without and with the cache."""
    model = _model()
    prompt = [list(np.random.default_rng(0).integers(0, V, prompt_len))]
    counts = {}
    for use_cache in (False, True):
        counted = _Counting(model)
        generate(counted, prompt, n_new, use_cache=use_cache)
        counts["with cache" if use_cache else "without cache"] = counted.tokens
    return {"prompt": prompt_len, "new": n_new, **counts}


def exercise_2():
    """Multi-query attention: the cache's size against multi-head, and cache/no-cache agreement."""
    prompt = [list(np.random.default_rng(1).integers(0, V, 6))]
    out = {}
    for kv in (4, 1):
        model = _model(num_kv_heads=kv)
        cache = model.new_cache()
        with ta.no_grad():
            model(np.array(prompt), cache=cache)
        a, _ = generate(model, prompt, 15, use_cache=True)
        b, _ = generate(model, prompt, 15, use_cache=False)
        out[kv] = {"bytes_per_token": cache.nbytes / 6, "identical": bool(np.array_equal(a, b))}
    out["shrink"] = out[4]["bytes_per_token"] / out[1]["bytes_per_token"]
    return out


def exercise_3(window=16, sinks=2, steps=100):
    """A sliding-window cache on one attention layer: nbytes after each of 100 one-token steps."""
    ta.manual_seed(0)
    attn = nn.GroupedQueryAttention(16, 4).double()
    cache = nn.KVCache(window=window, sinks=sinks)
    x = ta.tensor(np.random.default_rng(2).normal(size=(1, steps, 16)))
    sizes = []
    with ta.no_grad():
        for t in range(steps):
            attn(x[:, t:t + 1], is_causal=True, cache=cache)
            sizes.append(cache.nbytes)
    return {"nbytes": sizes, "head_dim": attn.head_dim, "heads": attn.num_kv_heads}


if __name__ == "__main__":
    _setup.main(globals())
