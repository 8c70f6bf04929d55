"""Solutions to the exercises of the long-sequences lesson (memory-efficient and sparse attention)."""
import _setup  # noqa: F401  (the repository root on the path)

import tracemalloc

import numpy as np

import tinyattn as ta
from tinyattn import attention as A
from tinyattn import kernels
from tinyattn.ops.memory_efficient_attention import memory_efficient_attention


def _weights(mask, seed=0):
    """Attention weights (T, T) of random queries and keys under a boolean mask (True = may attend)."""
    rng = np.random.default_rng(seed)
    q, k, v = (ta.tensor(rng.normal(size=(1, len(mask), 8)), dtype="float64") for _ in range(3))
    return A.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)[1].numpy()[0]


def exercise_1(T=64, w=8):
    """Local causal window w = 8: how many stacked layers until position 63 has heard from position 0?"""
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    W = _weights((j <= i) & (i - j <= w))
    reach, layers = W, 1
    while reach[T - 1, 0] == 0:          # layer L's output mixes the weights of L layers: W^L
        reach, layers = reach @ W, layers + 1
    return layers


def exercise_2():
    """Extra peak memory (MiB) of forward + backward at two lengths: dense at 512 and 1024,
    memory-efficient at 2048 and 4096 (one head, d = 64, float32; the plain NumPy paths)."""
    def dense(q, k, v):
        return ta.softmax(q @ ta.swapaxes(k, -1, -2) * (1 / 8.0), axis=-1) @ v

    def peak(fn, T):
        rng = np.random.default_rng(T)
        q, k, v = (ta.tensor(rng.normal(size=(1, T, 64)).astype(np.float32), requires_grad=True) for _ in range(3))
        g = ta.tensor(rng.normal(size=(1, T, 64)).astype(np.float32))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        (fn(q, k, v) * g).sum().backward()
        used = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        return used / 2 ** 20

    # The plain NumPy twin of the streaming kernel: the same O(T) memory, and nothing to compile.
    with kernels.using("numpy"):
        peak(dense, 64), peak(memory_efficient_attention, 64)   # first calls: one-time imports and caches
        return {"dense": {T: peak(dense, T) for T in (512, 1024)},
                "memory-efficient": {T: peak(memory_efficient_attention, T) for T in (2048, 4096)}}


def exercise_3(T=1024, s=32):
    """Strided causal pattern with s = √T = 32 at T = 1024: how many weights are non-zero, against causal?"""
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    W = _weights((j <= i) & ((i - j < s) | ((i - j) % s == 0)))
    return {"nonzero_weights": int((W > 0).sum()), "causal_pairs": T * (T + 1) // 2}


if __name__ == "__main__":
    _setup.main(globals())
