"""nn.init against torch.nn.init: exact values for the deterministic initialisers and the gain
table; for the random ones, the bounds exactly and the spread statistically (the two libraries
draw from different generators, so the numbers themselves differ)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.nn import init

torch = pytest.importorskip("torch")

SHAPE = (300, 200)          # 60 000 samples: sample std within ~0.6% of the true one


def _pair(shape=SHAPE):
    return nn.Parameter(np.zeros(shape, dtype=np.float64)), torch.zeros(shape, dtype=torch.float64)


@pytest.mark.parametrize("name,args", [("constant_", (0.25,)), ("ones_", ()), ("zeros_", ())])
def test_deterministic_initialisers_equal_torchs(name, args):
    ours, theirs = _pair((3, 4))
    ours.array += 7.0
    theirs += 7.0
    assert getattr(init, name)(ours, *args) is ours
    getattr(torch.nn.init, name)(theirs, *args)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


GAINS = [("linear", None), ("conv1d", None), ("conv_transpose2d", None), ("sigmoid", None),
         ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
         ("leaky_relu", 3), ("selu", None)]


@pytest.mark.parametrize("nonlinearity,param", GAINS)
def test_calculate_gain_equals_torchs(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity,
                                                                                   param)


def test_calculate_gain_refuses_what_torch_refuses():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")


RANDOM = [
    ("uniform_", dict(a=-0.3, b=0.7)),
    ("normal_", dict(mean=0.5, std=0.2)),
    ("xavier_uniform_", dict(gain=1.5)),
    ("xavier_normal_", dict(gain=0.5)),
    ("kaiming_uniform_", dict(a=math.sqrt(5))),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_normal_", dict()),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu")),
    ("trunc_normal_", dict(mean=0.1, std=0.5, a=-0.5, b=0.9)),
    ("trunc_normal_", dict(std=0.02)),
]


@pytest.mark.parametrize("name,kwargs", RANDOM, ids=[f"{n}-{k}" for n, k in RANDOM])
def test_random_initialisers_follow_torchs_distribution(name, kwargs):
    ours, theirs = _pair()
    ta.manual_seed(0)
    torch.manual_seed(0)
    assert getattr(init, name)(ours, **kwargs) is ours
    getattr(torch.nn.init, name)(theirs, **kwargs)
    a, b = ours.numpy(), theirs.numpy()
    spread = b.std()
    assert abs(a.mean() - b.mean()) < 0.02 * spread + 1e-12
    assert abs(a.std() - spread) < 0.02 * spread
    # the support: the extremes agree to a small fraction of the spread
    assert abs(a.min() - b.min()) < 0.5 * spread and abs(a.max() - b.max()) < 0.5 * spread
    if name.endswith("uniform_") or name == "trunc_normal_":
        lo = kwargs.get("a", -2.0) if name == "trunc_normal_" else b.min() - 1e-3 * spread
        hi = kwargs.get("b", 2.0) if name == "trunc_normal_" else b.max() + 1e-3 * spread
        assert a.min() >= lo and a.max() <= hi


def test_initialisers_take_a_generator():
    a, b = nn.Parameter(np.zeros((4, 5))), nn.Parameter(np.zeros((4, 5)))
    init.kaiming_normal_(a, generator=ta.Generator().manual_seed(3))
    ta.manual_seed(99)
    init.kaiming_normal_(b, generator=ta.Generator().manual_seed(3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("shape,gain", [((5, 3), 1.0), ((3, 5), 2.0), ((4, 2, 3), 0.5)])
def test_orthogonal_gives_orthonormal_rows_or_columns_as_torch(shape, gain):
    ours, theirs = _pair(shape)
    init.orthogonal_(ours, gain=gain)
    torch.nn.init.orthogonal_(theirs, gain=gain)
    for w in (ours.numpy().reshape(shape[0], -1), theirs.numpy().reshape(shape[0], -1)):
        small = min(w.shape)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-12)


def test_init_errors_name_the_function():
    with pytest.raises(ValueError, match="kaiming_normal_: mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(nn.Parameter(np.zeros((2, 3))), mode="fanin")
    with pytest.raises(ValueError, match="orthogonal_: need a tensor with at least 2 dimensions"):
        init.orthogonal_(nn.Parameter(np.zeros(3)))
    with pytest.raises(ValueError, match="trunc_normal_: .*less than 0.01%"):
        init.trunc_normal_(nn.Parameter(np.zeros(3)), a=10.0, b=11.0)
