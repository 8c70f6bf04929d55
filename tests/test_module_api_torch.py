"""Module's PyTorch API: traversal (named_modules, children, named_children, apply), buffers
(persistent or not), zero_grad(set_to_none), train()/eval()/requires_grad_() returning self -
the same names, orders and results as torch.nn.Module on the same model."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn

torch = pytest.importorskip("torch")


def _build(lib, tensor):
    class Block(lib.nn.Module):
        def __init__(self, shared):
            super().__init__()
            self.proj = lib.nn.Linear(4, 4)
            self.shared = shared
            self.act = lib.nn.ReLU()
            self.register_buffer("scale", tensor([2.0]))
            self.register_buffer("cache", tensor([0.0, 0.0]), persistent=False)

        def forward(self, x):
            return self.shared(self.act(self.proj(x))) * self.scale

    shared = lib.nn.Linear(4, 4)
    model = lib.nn.Sequential(Block(shared), Block(shared), lib.nn.Flatten(), lib.nn.Identity())
    return model


@pytest.fixture
def models():
    theirs = _build(torch, lambda v: torch.tensor(v, dtype=torch.float32))
    ours = _build(ta, lambda v: ta.tensor(np.asarray(v, dtype=np.float32)))
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def test_traversal_names_and_orders_equal_torchs(models):
    ours, theirs = models
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ([n for n, _ in ours.named_modules(remove_duplicate=False)]
            == [n for n, _ in theirs.named_modules(remove_duplicate=False)])
    assert ([n for n, _ in ours.named_modules(prefix="model")]
            == [n for n, _ in theirs.named_modules(prefix="model")])
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert ([type(m).__name__ for m in ours[0].children()]
            == [type(m).__name__ for m in theirs[0].children()])
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]


def test_apply_visits_children_first_and_returns_self(models):
    ours, theirs = models
    seen, tseen = [], []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: tseen.append(type(m).__name__))
    assert seen == tseen


def test_apply_for_custom_initialisation(models):
    ours, _ = models

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)

    ours.apply(init_weights)
    assert all(float(p.numpy().sum()) == 0.5 * p.numel() for n, p in ours.named_parameters()
               if n.endswith("weight"))


def test_non_persistent_buffers_stay_out_of_the_state_dict(models):
    ours, theirs = models
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "0.cache" not in ours.state_dict() and "0.scale" in ours.state_dict()
    ours.load_state_dict(theirs.state_dict())            # the shared weights under both names


def test_zero_grad_set_to_none_or_zeros_as_torch(models):
    ours, theirs = models
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    for set_to_none in (True, False):
        ours(ta.tensor(x)).sum().backward()
        theirs(torch.tensor(x)).sum().backward()
        ours.zero_grad(set_to_none=set_to_none)
        theirs.zero_grad(set_to_none=set_to_none)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert (p.grad is None) == (q.grad is None)
            if q.grad is not None:
                np.testing.assert_array_equal(p.grad, q.grad.numpy())
    ours(ta.tensor(x)).sum().backward()
    ours.zero_grad()                                     # PyTorch 2's default: None
    assert all(p.grad is None for p in ours.parameters())


def test_modes_and_requires_grad_return_self(models):
    ours, theirs = models
    assert ours.eval() is ours and not any(m.training for m in ours.modules())
    assert ours.train() is ours and all(m.training for m in ours.modules())
    assert ours.requires_grad_(False) is ours
    assert not any(p.requires_grad for p in ours.parameters())
    theirs.requires_grad_(False)
    with pytest.raises(ValueError, match="train: mode must be True or False"):
        ours.train("eval")


def test_register_buffer_errors_say_what_is_needed():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"register_buffer: cannot register a list .*tinyattn.tensor"):
        m.register_buffer("table", [1.0, 2.0])
    with pytest.raises(KeyError, match="already a parameter"):
        m.register_buffer("weight", ta.zeros(2))
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", ta.zeros(2))
    m.register_buffer("empty", None)
    assert "empty" not in m.state_dict()
