"""The fused ops against PyTorch (float64, to the last digits) and their error messages."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import kernels
from tinyattn.ops.cross_entropy import cross_entropy
from tinyattn.ops.embedding import embedding
from tinyattn.ops.layernorm import layer_norm
from tinyattn.ops.lstm import lstm_sequence

torch = pytest.importorskip("torch")
PROVIDERS = ["numpy", "numba"]


def t64(a, grad=True):
    return ta.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype="float64")


def close(ours, theirs, tol=1e-12):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = ours.numpy() if hasattr(ours, "numpy") else np.asarray(ours)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape,norm", [((3, 7), (7,)), ((2, 3, 4, 5), (4, 5)), ((5, 1), (1,)),
                                        ((1, 9), (9,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(provider, shape, norm, affine):
    rng = np.random.default_rng(1)
    a, g = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    wa, ba = rng.standard_normal(norm), rng.standard_normal(norm)
    x, w, b = t64(a), t64(wa), t64(ba)
    X, W, B = (torch.tensor(v, requires_grad=True) for v in (a, wa, ba))
    with kernels.using(provider):
        y = layer_norm(x, norm, w if affine else None, b if affine else None, eps=1e-5)
        y.backward(g)
    Y = torch.nn.functional.layer_norm(X, norm, W if affine else None, B if affine else None, 1e-5)
    Y.backward(torch.tensor(g))
    close(y, Y)
    close(x.grad, X.grad)
    if affine:
        close(w.grad, W.grad)
        close(b.grad, B.grad)


def test_layer_norm_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 3\) must end with"):
        layer_norm(t64(np.ones((2, 3))), 4)
    with pytest.raises(ValueError, match="weight has shape"):
        layer_norm(t64(np.ones((2, 3))), 3, weight=t64(np.ones(4)))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(provider, reduction, smoothing, weighted):
    rng = np.random.default_rng(2)
    n, c = 9, 6
    a = rng.standard_normal((n, c)) * 4
    target = rng.integers(0, c, n)
    target[[1, 5]] = 3          # ignored rows, with a class that also appears elsewhere
    target[7] = 3
    cw = rng.uniform(0.1, 2.0, c) if weighted else None
    x, X = t64(a), torch.tensor(a, requires_grad=True)
    with kernels.using(provider):
        y = cross_entropy(x, target, weight=cw, ignore_index=3, reduction=reduction,
                          label_smoothing=smoothing)
        g = rng.standard_normal(y.shape)
        y.backward(g)
    Y = torch.nn.functional.cross_entropy(X, torch.tensor(target),
                                          weight=None if cw is None else torch.tensor(cw),
                                          ignore_index=3, reduction=reduction,
                                          label_smoothing=smoothing)
    Y.backward(torch.tensor(g))
    close(y, Y)
    close(x.grad, X.grad)


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    x = t64(np.zeros((2, 3)))
    y = cross_entropy(x, np.array([-100, -100]))
    Y = torch.nn.functional.cross_entropy(torch.zeros(2, 3, dtype=torch.float64),
                                          torch.tensor([-100, -100]))
    assert np.isnan(y.item()) and torch.isnan(Y)


def test_cross_entropy_errors():
    x = t64(np.zeros((3, 4)))
    with pytest.raises(IndexError, match="target value 4 is out of range for 4 classes"):
        cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        cross_entropy(x, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"target has shape \(2,\)"):
        cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        cross_entropy(t64(np.zeros((2, 3, 4))), np.array([0, 1]))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(provider, padding_idx):
    rng = np.random.default_rng(3)
    wa = rng.standard_normal((7, 5))
    idx = rng.integers(0, 7, (4, 6))
    idx[0, :3] = 2                      # repeated, and the padding row
    idx[1, 0] = 6
    w, W = t64(wa), torch.tensor(wa, requires_grad=True)
    with kernels.using(provider):
        y = embedding(idx, w, padding_idx=padding_idx)
        g = rng.standard_normal(y.shape)
        y.backward(g)
    Y = torch.nn.functional.embedding(torch.tensor(idx), W, padding_idx=padding_idx)
    Y.backward(torch.tensor(g))
    close(y, Y)
    close(w.grad, W.grad)
    if padding_idx is not None:
        assert np.all(w.grad.numpy()[padding_idx] == 0)


def test_embedding_errors():
    w = t64(np.zeros((4, 2)))
    with pytest.raises(IndexError, match="index 4 is out of range for a table of 4 rows"):
        embedding(np.array([0, 4]), w)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        embedding(np.array([-1]), w)
    with pytest.raises(TypeError, match="indices must be integers"):
        embedding(np.array([0.0, 1.0]), w)


def _torch_lstm_reference(x, wih, whh, bih, bhh, h0, c0, lengths):
    """PyTorch's nn.LSTM run sequence by sequence (packing cannot take length 0)."""
    T, B, _ = x.shape
    H = whh.shape[1]
    m = torch.nn.LSTM(x.shape[2], H).double()
    with torch.no_grad():
        for p, v in ((m.weight_ih_l0, wih), (m.weight_hh_l0, whh), (m.bias_ih_l0, bih),
                     (m.bias_hh_l0, bhh)):
            p.copy_(torch.tensor(v))
    X = torch.tensor(x, requires_grad=True)
    H0, C0 = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    outs, hns, cns = [], [], []
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        hb, cb = H0[b:b + 1][None], C0[b:b + 1][None]
        if n == 0:
            outs.append(torch.zeros(T, 1, H, dtype=torch.float64))
            hns.append(hb[0])
            cns.append(cb[0])
            continue
        o, (hh, cc) = m(X[:n, b:b + 1], (hb, cb))
        outs.append(torch.cat([o, torch.zeros(T - n, 1, H, dtype=torch.float64)]))
        hns.append(hh[0])
        cns.append(cc[0])
    return m, X, H0, C0, torch.cat(outs, 1), torch.cat(hns), torch.cat(cns)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("lengths", [None, [5, 2, 1, 3], [5, 5, 5, 5]])
def test_lstm_sequence_matches_torch(provider, lengths):
    rng = np.random.default_rng(4)
    T, B, I, H = 5, 4, 3, 6
    x = rng.standard_normal((T, B, I))
    wih, whh = rng.standard_normal((4 * H, I)) * 0.5, rng.standard_normal((4 * H, H)) * 0.5
    bih, bhh = rng.standard_normal(4 * H) * 0.5, rng.standard_normal(4 * H) * 0.5
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    lengths = None if lengths is None else np.array(lengths)
    xproj = t64(x @ wih.T + bih + bhh)
    w, hh0, cc0 = t64(whh), t64(h0), t64(c0)
    with kernels.using(provider):
        out, hn, cn = lstm_sequence(xproj, w, hh0, cc0, lengths)
        go, gh, gc = (rng.standard_normal(o.shape) for o in (out, hn, cn))
        loss = (out * ta.tensor(go)).sum() + (hn * ta.tensor(gh)).sum() + (cn * ta.tensor(gc)).sum()
        loss.backward()
    m, X, H0, C0, O, HN, CN = _torch_lstm_reference(x, wih, whh, bih, bhh, h0, c0, lengths)
    ((O * torch.tensor(go)).sum() + (HN * torch.tensor(gh)).sum()
     + (CN * torch.tensor(gc)).sum()).backward()
    close(out, O)
    close(hn, HN)
    close(cn, CN)
    close(w.grad, m.weight_hh_l0.grad)
    close(hh0.grad, H0.grad)
    close(cc0.grad, C0.grad)
    close(xproj.grad.sum(axis=(0, 1)), m.bias_ih_l0.grad)
    close(np.einsum("tbg,tbi->gi", xproj.grad, x), m.weight_ih_l0.grad)
    if lengths is not None:   # no gradient leaks into padded steps
        for b, n in enumerate(lengths):
            assert np.all(xproj.grad.numpy()[n:, b] == 0)


def test_lstm_sequence_errors():
    x = t64(np.zeros((3, 2, 8)))
    w, h, c = t64(np.zeros((8, 2))), t64(np.zeros((2, 2))), t64(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"w_hh has shape \(8, 3\), expected \(8, 2\)"):
        lstm_sequence(x, t64(np.zeros((8, 3))), h, c)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=3\]"):
        lstm_sequence(x, w, h, c, lengths=np.array([4, 1]))
    with pytest.raises(ValueError, match="x_proj must be"):
        lstm_sequence(t64(np.zeros((3, 2, 7))), w, h, c)
