"""Solutions to the exercises of lesson 03 (attention pooling, Nadaraya-Watson)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta


def lesson_data(seed=0):
    """The lesson's data, drawn in the lesson's order from its seed: (x_train, y_train, x_test)."""
    rng = np.random.default_rng(seed)
    x_train = np.sort(rng.uniform(0, 5, 40))
    y_train = 2 * np.sin(x_train) + x_train + rng.normal(0, 0.5, 40)
    return x_train, y_train, np.linspace(0, 5, 50)


def _distances(x_test, x_train):
    return ta.tensor(x_test, dtype="float64").reshape(-1, 1) - ta.tensor(x_train, dtype="float64").reshape(1, -1)


def exercise_1():
    """Boxcar kernel at σ = 0.05: how many of the 50 test queries have an empty window?"""
    x_train, y_train, x_test = lesson_data()
    d = _distances(x_test, x_train)
    w = ta.softmax(d * 0.0, axis=-1, mask=np.abs(d.numpy()) <= 0.05)
    pred = (w @ ta.tensor(y_train, dtype="float64")).numpy()
    empty = w.numpy().sum(axis=1) == 0
    return {"empty_rows": int(empty.sum()), "predictions_of_empty_rows": pred[empty].tolist()}


def _gaussian_prediction(width):
    x_train, y_train, x_test = lesson_data()
    d = _distances(x_test, x_train)
    w = ta.softmax(-(d * d) / (2 * width ** 2), axis=-1)
    return (w @ ta.tensor(y_train, dtype="float64")).numpy()


def exercise_2():
    """Gaussian kernel at σ = 0.01: the 50 test predictions (what do they copy?)."""
    return _gaussian_prediction(0.01).tolist()


def exercise_3():
    """Gaussian kernel at σ = 100: the 50 test predictions (what do they become?)."""
    return _gaussian_prediction(100.0).tolist()


if __name__ == "__main__":
    _setup.main(globals())
