"""Solutions to the exercises of lesson 01 (tensors and autograd)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn.optim.grads import grad_array


def exercise_1():
    """A value used three times: the gradient of f(a) = a*a*a + a*a at a = [1.5, -2.0]."""
    a = ta.tensor([1.5, -2.0], dtype="float64", requires_grad=True)
    (a * a * a + a * a).sum().backward()
    return {"a": a.numpy().tolist(), "grad": np.asarray(grad_array(a)).tolist()}


def _small_graph(reduce):
    rng = np.random.default_rng(0)
    x = ta.tensor(rng.normal(size=(4, 3)), dtype="float64")
    W = ta.tensor(rng.normal(size=(3, 2)), dtype="float64", requires_grad=True)
    b = ta.tensor(rng.normal(size=(2,)), dtype="float64", requires_grad=True)
    y = ta.tanh(x @ W + b)
    loss = (y ** 2).sum() if reduce == "sum" else (y ** 2).mean()
    loss.backward()
    return np.asarray(grad_array(W)), y.numpy().size


def exercise_2():
    """The small graph with .sum() instead of .mean(): by what factor does dloss/dW change?"""
    g_mean, n = _small_graph("mean")
    g_sum, _ = _small_graph("sum")
    ratio = g_sum / g_mean
    return {"ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()), "elements_of_y": n}


def exercise_3():
    """Central differences for tanh at eps = 1e-2, 1e-6, 1e-12: the relative error of each."""
    rng = np.random.default_rng(0)
    x = ta.tensor(rng.uniform(-2, 2, size=(3, 4)), dtype="float64", requires_grad=True)
    ta.tanh(x).sum().backward()
    exact = np.asarray(grad_array(x))
    errors = {}
    for eps in (1e-2, 1e-6, 1e-12):
        plus = ta.tanh(ta.tensor(x.numpy() + eps, dtype="float64")).numpy()
        minus = ta.tanh(ta.tensor(x.numpy() - eps, dtype="float64")).numpy()
        numeric = (plus - minus) / (2 * eps)      # tanh is elementwise: one perturbation per element
        errors[eps] = float(np.abs(numeric - exact).max() / np.abs(exact).max())
    return errors


if __name__ == "__main__":
    _setup.main(globals())
