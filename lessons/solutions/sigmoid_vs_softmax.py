"""Solutions to the exercises of lesson 02 (sigmoid vs softmax scoring, weighted sum)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta


def exercise_1():
    """x3 = [7, 8, 10]: the per-query outputs H = sigmoid(X Xᵀ) X and the steps inside each row."""
    X = ta.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 10.]], dtype="float64")
    A = ta.sigmoid(X @ X.T)
    H = (A @ X).numpy()
    return {"weights": A.numpy().tolist(), "H": H.tolist(), "steps": np.diff(H, axis=1).tolist()}


def exercise_2():
    """All inputs divided by 10: the largest softmax weight of each query's row."""
    X = ta.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]], dtype="float64") / 10
    A = ta.softmax(X @ X.T, axis=-1)
    return {"weights": A.numpy().tolist(), "largest_weight_per_row": A.numpy().max(axis=1).tolist()}


def exercise_3():
    """The smallest scale c (to 0.01) at which softmax((cX)(cX)ᵀ) gives x1's query weight >= 0.9 on x3."""
    X = ta.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]], dtype="float64")
    for c in np.arange(0.01, 1.0001, 0.01):
        w = ta.softmax((X * c) @ (X * c).T, axis=-1).numpy()
        if w[0, 2] >= 0.9:
            return round(float(c), 2)
    return None


if __name__ == "__main__":
    _setup.main(globals())
