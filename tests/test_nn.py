"""The module system and the layers on their own terms (PyTorch parity is in test_nn_torch.py)."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
import tinyattn.optim as optim
from module_gradcheck import gradcheck_module


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4, bias=False)])
        self.norm = nn.LayerNorm(4)
        self.register_buffer("scale", ta.tensor([2.0]))
        self.register_buffer("cache", ta.zeros(2), persistent=False)

    def forward(self, x):
        x = self.proj(x)
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.norm(x) * self.scale


# ---------------------------------------------------------------------------- Module
def test_names_follow_pytorch_and_buffers_are_state():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["proj.weight", "proj.bias", "layers.0.weight", "layers.0.bias",
                     "layers.1.weight", "norm.weight", "norm.bias"]
    assert list(m.state_dict()) == ["scale", "proj.weight", "proj.bias", "layers.0.weight",
                                    "layers.0.bias", "layers.1.weight", "norm.weight", "norm.bias"]
    assert m.num_parameters() == 12 + 4 + 20 + 16 + 8
    m.scale = ta.tensor([3.0])                       # reassigning a buffer keeps it a buffer
    assert m.state_dict()["scale"].tolist() == [3.0]


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_zero_grad_train_eval_and_apply():
    m = Block()
    m(ta.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Block" and seen.count("Linear") == 3


def test_load_state_dict_lists_every_problem():
    m = Block()
    sd = m.state_dict()
    sd.pop("norm.bias")
    sd["extra.weight"] = np.zeros(1)
    sd["proj.weight"] = np.zeros((5, 3))
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert "missing keys: norm.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "proj.weight: checkpoint (5, 3) vs model (4, 3)" in msg
    sd["proj.weight"] = np.ones((4, 3))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["norm.bias"] and unexpected == ["extra.weight"]
    assert np.array_equal(m.proj.weight.numpy(), np.ones((4, 3)))


def test_dtype_conversion_keeps_parameter_identity():
    m = Block()
    w = m.proj.weight
    m(ta.randn(2, 3)).sum().backward()
    m.double()
    assert m.proj.weight is w and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert m.scale.dtype == np.float64
    out = m(ta.randn(2, 3, dtype="float64"))
    assert out.dtype == np.float64
    m.to("float32")
    assert w.dtype == np.float32
    m.to(np.float64)
    assert w.dtype == np.float64
    m.float()
    m.load_state_dict({k: v.astype(np.float64) for k, v in m.state_dict().items()})
    assert w.dtype == np.float32                     # loading copies into the module's dtype


def test_parameter_construction():
    t = ta.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p.requires_grad and p.array is t.array
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    assert nn.Parameter(np.zeros(2)).dtype == np.float64
    assert "Parameter containing" in repr(p)


# ---------------------------------------------------------------------------- initialisation
def test_initialisation_follows_pytorch_and_the_seed():
    ta.manual_seed(3)
    a = nn.Linear(400, 300)
    ta.manual_seed(3)
    b = nn.Linear(400, 300)
    assert np.array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(a.weight.numpy(), nn.Linear(400, 300).weight.numpy())
    bound = 1 / np.sqrt(400)
    for p in (a.weight, a.bias):
        v = p.numpy()
        assert v.dtype == np.float32 and np.abs(v).max() <= bound and np.abs(v).max() > 0.95 * bound
    assert np.std(a.weight.numpy()) == pytest.approx(bound / np.sqrt(3), rel=0.02)
    e = nn.Embedding(1000, 64, padding_idx=3).weight.numpy()
    assert abs(e.mean()) < 0.02 and e.std() == pytest.approx(1.0, rel=0.02)
    assert not e[3].any()
    lstm = nn.LSTM(10, 25, num_layers=2, bidirectional=True)
    for p in lstm.parameters():
        assert np.abs(p.numpy()).max() <= 1 / 5 and p.numpy().std() > 0.1
    ln = nn.LayerNorm(5)
    assert ln.weight.numpy().tolist() == [1.0] * 5 and not ln.bias.numpy().any()


# ---------------------------------------------------------------------------- layers
def test_linear_rejects_wrong_feature_size():
    with pytest.raises(ValueError, match="in_features=3"):
        nn.Linear(3, 2)(ta.randn(4, 5))


def test_embedding_indices_padding_and_errors():
    emb = nn.Embedding(5, 3, padding_idx=0)
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    out = emb(ids)
    assert out.shape == (2, 3, 3)
    assert np.array_equal(out.numpy(), emb(ta.tensor(ids)).numpy())
    (out * ta.tensor(np.arange(18.0).reshape(2, 3, 3))).sum().backward()
    g = emb.weight.grad
    assert not g[0].any() and not g[3].any() and g[2].any()
    assert np.allclose(g[2], np.arange(3, 6) + np.arange(6, 9))      # repeated ids add up
    with pytest.raises(IndexError, match="out of range"):
        emb(np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)
    pre = nn.Embedding.from_pretrained(np.eye(3), freeze=True)
    assert not pre.weight.requires_grad and pre(np.array([1])).numpy().tolist() == [[0, 1, 0]]


def test_dropout_train_and_eval():
    x = ta.ones(200, 100)
    drop = nn.Dropout(0.3)
    ta.manual_seed(0)
    y = drop(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert np.allclose(y[kept], 1 / 0.7)
    ta.manual_seed(0)
    assert np.array_equal(drop(x).numpy(), y)          # the seed fixes the mask
    assert drop.eval()(x) is x
    assert not F.dropout(x, 1.0).numpy().any()
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert list(seq[:2].state_dict()) == ["0.weight", "0.bias"]
    assert seq(ta.randn(4, 2)).shape == (4, 1)
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 2))
    ml.insert(0, nn.Linear(1, 3))
    assert [m.out_features for m in ml] == [3, 1, 2]
    assert list(ml.state_dict())[:2] == ["0.weight", "0.bias"]
    md = nn.ModuleDict({"enc": nn.Linear(1, 1)})
    assert "enc" in md and list(md.state_dict()) == ["enc.weight", "enc.bias"]
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(lambda x: x)


def test_every_layer_gradchecks_in_float64():
    x = ta.randn(2, 2, dtype="float64", requires_grad=True)
    gradcheck_module(nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.LayerNorm(3),
                                   nn.Dropout(0.2), nn.Linear(3, 2)), x)
    broken = nn.Linear(2, 2).double()
    broken.forward = lambda inp: F.linear(inp, broken.weight.detach(), broken.bias)
    with pytest.raises(ta.GradcheckError, match="parameter weight"):
        gradcheck_module(broken, x)


# ---------------------------------------------------------------------------- LSTM
def test_lstm_shapes_and_bad_input_messages():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    out, (h, c) = lstm(ta.randn(5, 2, 3))
    assert out.shape == (5, 2, 8) and h.shape == c.shape == (4, 2, 4)
    with pytest.raises(ValueError, match=r"rank 3, \(T, B, input_size\)"):
        lstm(ta.randn(5, 2, 3, 1))
    with pytest.raises(ValueError, match="input_size=3"):
        lstm(ta.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(4, 2, 4\)"):
        lstm(ta.randn(5, 2, 3), (ta.zeros(2, 2, 4), ta.zeros(4, 2, 4)))
    with pytest.raises(TypeError, match="double"):
        lstm(ta.randn(5, 2, 3, dtype="float64"))
    with pytest.raises(TypeError, match="floating-point"):
        lstm(ta.tensor(np.zeros((5, 2, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match="lengths must lie"):
        lstm(ta.randn(5, 2, 3), lengths=np.array([6, 2]))
    with pytest.raises(ValueError, match="2 integers"):
        lstm(ta.randn(5, 2, 3), lengths=np.array([5, 2, 1]))
    with pytest.raises(TypeError, match="floating-point"):
        ta.tensor([1, 2], requires_grad=True)


def test_lstm_cell_unrolled_equals_lstm():
    ta.manual_seed(0)
    lstm, cell = nn.LSTM(3, 4).double(), nn.LSTMCell(3, 4).double()
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = ta.randn(6, 2, 3, dtype="float64")
    out, (h_n, c_n) = lstm(x)
    h = c = ta.zeros(2, 4, dtype="float64")
    for t in range(6):
        h, c = cell(x[t], (h, c))
        assert np.allclose(out.numpy()[t], h.numpy(), rtol=1e-12, atol=1e-14)
    assert np.allclose(h_n.numpy()[0], h.numpy()) and np.allclose(c_n.numpy()[0], c.numpy())


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_leaks_into_states_or_gradients(bidirectional):
    """A padded batch with lengths gives, for every sequence, exactly what running that sequence
    alone gives; the padded steps get zero output and zero gradient, whatever they contain."""
    ta.manual_seed(0)
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    lengths = np.array([5, 2, 4])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2))
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3 * rng.standard_normal((5 - n, 2))      # garbage in the padding
    xt = ta.tensor(x, requires_grad=True)
    out, (h_n, c_n) = lstm(xt, lengths=lengths)
    (out.sum() + h_n.sum() + c_n.sum()).backward()
    grad_batch = xt.grad.numpy().copy()
    for b, n in enumerate(lengths):
        single = ta.tensor(x[b:b + 1, :n], requires_grad=True)
        o, (h, c) = lstm(single)
        assert np.allclose(out.numpy()[b, :n], o.numpy()[0], rtol=1e-12, atol=1e-14)
        assert not out.numpy()[b, n:].any()
        assert np.allclose(h_n.numpy()[:, b], h.numpy()[:, 0], rtol=1e-12, atol=1e-14)
        assert np.allclose(c_n.numpy()[:, b], c.numpy()[:, 0], rtol=1e-12, atol=1e-14)
        (o.sum() + h.sum() + c.sum()).backward()
        assert np.allclose(grad_batch[b, :n], single.grad[0], rtol=1e-10, atol=1e-12)
        assert not grad_batch[b, n:].any()


def test_lstm_dropout_only_between_layers_and_only_in_training():
    ta.manual_seed(0)
    lstm = nn.LSTM(2, 3, num_layers=2, dropout=0.5)
    x = ta.randn(4, 2, 2)
    ta.manual_seed(1)
    a = lstm(x)[0].numpy()
    ta.manual_seed(2)
    b = lstm(x)[0].numpy()
    assert not np.allclose(a, b)
    lstm.eval()
    assert np.array_equal(lstm(x)[0].numpy(), lstm(x)[0].numpy())
    single = nn.LSTM(2, 3, dropout=0.5)                   # one layer: nothing to drop between
    assert np.array_equal(single(x)[0].numpy(), single(x)[0].numpy())


def test_lstm_learns_a_running_sum():
    """Smoke training: y_t = x_1 + ... + x_t, which needs the cell state as an accumulator."""
    ta.manual_seed(0)

    class Summer(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 16, batch_first=True)
            self.head = nn.Linear(16, 1)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    model = Summer()
    opt = optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)

    def batch():
        x = rng.uniform(-1, 1, (32, 8, 1)).astype(np.float32)
        return ta.tensor(x), ta.tensor(np.cumsum(x, axis=1))

    x_test, y_test = batch()
    with ta.no_grad():
        before = float(F.mse_loss(model(x_test), y_test))
    for _ in range(150):
        x, y = batch()
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with ta.no_grad():
        after = float(F.mse_loss(model(x_test), y_test))
    assert after < 0.05 * before, f"loss {before:.3f} -> {after:.3f}"


def test_pytorch_constructor_keywords_and_assignment_errors():
    lin = nn.Linear(2, 3, device="cpu", dtype="float64")
    assert lin.weight.dtype == np.float64 and lin.weight.device == "cpu"
    assert nn.LSTM(2, 3, device=None, dtype=np.float64).weight_hh_l0.dtype == np.float64
    assert lin.to("cpu") is lin
    with pytest.raises(ValueError, match="device"):
        nn.LayerNorm(3, device="tpu")
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=1.0)
    with pytest.raises(TypeError, match="nn.Parameter"):
        lin.weight = ta.zeros(3, 2)
    lin.weight = nn.Parameter(np.zeros((3, 2)))          # a Parameter replaces it, registered
    assert dict(lin.named_parameters())["weight"] is lin.weight


def test_deepcopy_gives_independent_parameters():
    import copy

    m = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight and isinstance(c[0].weight, nn.Parameter)
    assert np.array_equal(c[0].weight.numpy(), m[0].weight.numpy())
    c[0](ta.randn(1, 2)).sum().backward()
    assert c[0].weight.grad is not None and m[0].weight.grad is None
