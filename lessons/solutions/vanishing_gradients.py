"""Solutions to the exercises of the vanishing-gradients lesson."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
from tinyattn.optim.grads import grad_array
from tinyattn import attention as A

T, D = 64, 8


def _grad_norms(forward, seed=0):
    rng = np.random.default_rng(seed)
    x = ta.tensor(rng.normal(size=(T, D)), dtype="float64", requires_grad=True)
    readout = ta.tensor(rng.normal(size=D), dtype="float64")
    (forward(x) * readout).sum().backward()
    return np.linalg.norm(np.asarray(grad_array(x)), axis=1), np.linalg.norm(readout.numpy())


def exercise_1():
    """A linear RNN h_t = x_t + ρ h_{t-1} (no tanh): ||dy/dx_0|| / ||dy/dx_63|| for ρ = 0.9, 1.0, 1.1."""
    out = {}
    for rho in (0.9, 1.0, 1.1):
        def forward(x, rho=rho):
            h = ta.zeros(D, dtype="float64")
            for t in range(T):
                h = x[t] + h * rho
            return h
        norms, _ = _grad_norms(forward)
        out[rho] = float(norms[0] / norms[-1])
    return out


def exercise_2():
    """Attention pooling with a zero query (every score 0): ||dy/dx_t|| for every t, and ||readout||."""
    def forward(x):
        q = ta.zeros((1, D), dtype="float64")
        return A.scaled_dot_product_attention(q, x, x)[0]
    norms, readout_norm = _grad_norms(forward)
    return {"norms": norms.tolist(), "readout_norm": float(readout_norm)}


if __name__ == "__main__":
    _setup.main(globals())
