"""Solutions to the exercises of lesson 09 (a recurrent encoder-decoder with attention: dates).

They use an untrained model of the lesson's sizes: what they ask about holds before training too.
They run the plain NumPy twins of the kernels (the answers do not depend on which provider runs),
so that nothing has to be compiled first.
"""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn import kernels
from tinyattn.models import AttentionSeq2Seq

SRC_VOCAB, TGT_VOCAB, EMBED, HIDDEN, PAD, BOS, T_OUT = 35, 12, 16, 32, 0, 0, 10


def model(score="dot", seed=0):
    ta.manual_seed(seed)
    return AttentionSeq2Seq(SRC_VOCAB, TGT_VOCAB, embedding_dim=EMBED, hidden_size=HIDDEN, score=score,
                            padding_idx=PAD)


def sources(width, lengths=(12, 17, 9), seed=0):
    """Random source rows of the given lengths, padded with PAD to `width`."""
    rng = np.random.default_rng(seed)
    src = np.full((len(lengths), width), PAD, dtype=np.int64)
    for i, n in enumerate(lengths):
        src[i, :n] = rng.integers(1, SRC_VOCAB, size=n)
    return src


@kernels.using("numpy")
def exercise_1():
    """Pad the same sources to 17 and to 30 characters: how much do the outputs and weights move?"""
    m = model()
    tokens17, w17 = m.greedy_decode(sources(17), BOS, T_OUT)
    tokens30, w30 = m.greedy_decode(sources(30), BOS, T_OUT)
    return {"same_tokens": bool(np.array_equal(tokens17.numpy(), tokens30.numpy())),
            "max_weight_change": float(np.abs(w30.numpy()[:, :, :17] - w17.numpy()).max()),
            "weights_17": w17.numpy().tolist(), "weights_30": w30.numpy().tolist()}


def exercise_2():
    """score='dot' -> score='additive': how many parameters does the model gain?"""
    count = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    return count(model("additive")) - count(model("dot"))


@kernels.using("numpy")
def exercise_3():
    """Teacher-force the decoder with its own greedy output shifted right: the logits' argmax and the weights."""
    m = model()
    src = sources(17)
    greedy, w_greedy = m.greedy_decode(src, BOS, T_OUT)
    g = greedy.numpy()
    tgt_in = np.concatenate([np.full((len(g), 1), BOS), g[:, :-1]], axis=1)
    with ta.no_grad():
        logits, w_forced = m(src, tgt_in)
    return {"greedy": g.tolist(), "forced_argmax": logits.numpy().argmax(axis=-1).tolist(),
            "max_weight_difference": float(np.abs(w_forced.numpy() - w_greedy.numpy()).max())}


if __name__ == "__main__":
    _setup.main(globals())
