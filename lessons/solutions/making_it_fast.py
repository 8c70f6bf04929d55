"""Solutions to the exercises of the making-it-fast lesson. Memory and graph sizes, never timings:
those depend on the machine."""
import _setup  # noqa: F401  (the repository root on the path)

import tracemalloc

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import kernels


def exercise_1():
    """Extra peak memory (MiB) of the plain and the compiled softmax kernel on a (4096, 512) float32 array."""
    x = np.random.default_rng(0).normal(size=(4096, 512)).astype(np.float32)
    out = {"input_MiB": x.nbytes / 2 ** 20}
    for provider in ("numpy", "numba"):
        with kernels.using(provider):
            softmax = kernels.get("softmax_forward")
            softmax(x, -1)                                  # compile (Numba) before measuring
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            y = softmax(x, -1)
            out[provider] = (tracemalloc.get_traced_memory()[1] - before) / 2 ** 20
            tracemalloc.stop()
            del y
    return out


def count_ops(t):
    """The number of graph operations behind a tensor: the walk backward makes. (The op that made a
    tensor is kept in ``t._ctx``; the tensors it read in ``ctx.inputs``.)"""
    seen, stack = set(), [t._ctx]
    while stack:
        ctx = stack.pop()
        if ctx is None or id(ctx) in seen:
            continue
        seen.add(id(ctx))
        stack.extend(i._ctx for i in ctx.inputs if i is not None)
    return len(seen)


@kernels.using("numpy")     # the graph is the same whichever provider runs the op; nothing to compile
def exercise_2():
    """Graph operations recorded by an LSTMCell loop and by nn.LSTM for T = 1, 2 and 50 steps."""
    ta.manual_seed(0)
    cell, lstm = nn.LSTMCell(8, 16), nn.LSTM(8, 16)
    out = {"LSTMCell loop": {}, "nn.LSTM": {}}
    for T in (1, 2, 50):
        x = ta.tensor(np.random.default_rng(T).normal(size=(T, 4, 8)).astype(np.float32), requires_grad=True)
        state = None
        for t in range(T):
            state = cell(x[t], state)
        out["LSTMCell loop"][T] = count_ops(state[0])
        out["nn.LSTM"][T] = count_ops(lstm(x)[0])
    return out


if __name__ == "__main__":
    _setup.main(globals())
