"""Solutions to the exercises of the grouped-query attention lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim
from tinyattn.models import DecoderOnlyTransformer


def exercise_1(layers=80, q_heads=64, kv_heads=8, head_dim=128, bytes_per_number=2):
    """Llama-2-70B's cache per token with its 8 KV heads, and with multi-head attention (64)."""
    # measured: one layer's KVCache holding one float16 token of that head layout, times 80 layers
    measured = {}
    for kv in (kv_heads, q_heads):
        cache = nn.KVCache()
        k = ta.zeros(1, kv, 1, head_dim, dtype="float16")
        cache.update(k, k)
        measured[kv] = cache.nbytes * layers
    return {"gqa_bytes": measured[kv_heads], "mha_bytes": measured[q_heads],
            "ratio": measured[q_heads] / measured[kv_heads]}


# The lesson's language and models, written again here (small, so that the solutions run alone).
V, D_MODEL, LAYERS, HEADS, LENGTH, NOISE, STEPS = 16, 32, 2, 8, 20, 0.1, 250
HEAD_DIM = D_MODEL // HEADS
TABLE = np.random.default_rng(0).integers(0, V, (V, V))


def _sample(generator, n):
    x = np.zeros((n, LENGTH), dtype=np.int64)
    x[:, :3] = generator.integers(0, V, (n, 3))
    for t in range(3, LENGTH):
        x[:, t] = TABLE[x[:, t - 1], x[:, t - 3]]
        noisy = generator.random(n) < NOISE
        x[noisy, t] = generator.integers(0, V, int(noisy.sum()))
    return x


HELD_OUT = _sample(np.random.default_rng(10_000), 500)


def _model(kv, ff):
    ta.manual_seed(0)
    return DecoderOnlyTransformer(V, d_model=D_MODEL, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=kv,
                                  dim_feedforward=ff, max_len=LENGTH)


def _loss(model):
    with ta.no_grad():
        logits = model(HELD_OUT[:, :-1])[:, 2:]
        return float(F.cross_entropy(logits.reshape(-1, V), ta.tensor(HELD_OUT[:, 3:].reshape(-1))).numpy())


def _train(model, steps=STEPS):
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    data = np.random.default_rng(1)
    for _ in range(steps):
        x = _sample(data, 32)
        loss = F.cross_entropy(model(x[:, :-1])[:, 2:].reshape(-1, V), ta.tensor(x[:, 3:].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _pooled(mha, kv):
    """Each group's key/value projection = the mean of its heads' (the lesson's pooled_from)."""
    groups = HEADS // kv
    state = mha.state_dict()
    for key, w in state.items():
        if ".attn.k_proj." in key or ".attn.v_proj." in key:
            state[key] = w.reshape(kv, groups, HEAD_DIM, *w.shape[1:]).mean(axis=1).reshape(kv * HEAD_DIM, *w.shape[1:])
    model = _model(kv, 4 * D_MODEL)
    model.load_state_dict(state)
    return model


_TRAINED = {}


def _mha():
    if "mha" not in _TRAINED:
        _TRAINED["mha"] = _train(_model(HEADS, 4 * D_MODEL))
    return _TRAINED["mha"]


def exercise_2():
    """Mean-pool a trained MHA model to 2 key/value heads and to 1 (MQA): the loss right after."""
    mha = _mha()
    return {"mha": _loss(mha), 2: _loss(_pooled(mha, 2)), 1: _loss(_pooled(mha, 1))}


def exercise_3():
    """MQA with MHA's feed-forward width (no compensation): parameters, and the loss after 250 steps."""
    plain = _train(_model(1, 4 * D_MODEL))
    return {"params_mha": _model(HEADS, 4 * D_MODEL).num_parameters(), "params_plain_mqa": plain.num_parameters(),
            "loss_plain_mqa": _loss(plain), "loss_mha": _loss(_mha()), "d": D_MODEL, "head_dim": HEAD_DIM,
            "layers": LAYERS, "heads": HEADS}


if __name__ == "__main__":
    _setup.main(globals())
