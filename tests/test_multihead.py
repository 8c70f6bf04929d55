"""MultiheadAttention: PyTorch parity (outputs, input and parameter gradients) for every option and
mask kind, float64 gradchecks, initialisation, the fully-masked-row promise, and clear errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.nn.multihead import MultiheadAttention
from module_gradcheck import gradcheck_module
from tinyattn.nn.transformer import generate_square_subsequent_mask

L, S, N, E, H = 4, 5, 3, 8, 2


def _rng(seed=0):
    return np.random.default_rng(seed)


def _qkv(batch_first=False, kdim=E, vdim=E, batched=True, seed=0, self_attn=False):
    rng = _rng(seed)

    def make(length, width):
        if not batched:
            return rng.normal(size=(length, width))
        return rng.normal(size=(N, length, width) if batch_first else (length, N, width))
    q = make(L, E)
    if self_attn:
        return q, q, q
    return q, make(S, kdim), make(S, vdim)


def _masks(kind, length=L, src=S, seed=1):
    """(attn_mask, key_padding_mask) of one kind; no row is fully blocked."""
    rng = _rng(seed)
    attn, kpm = None, None
    if kind in ("bool", "bool+kpm"):
        attn = rng.random((length, src)) < 0.4
        attn[:, 0] = False
    if kind == "float":
        attn = rng.normal(size=(length, src))
        attn[rng.random((length, src)) < 0.3] = -np.inf
        attn[:, 0] = 0.0
    if kind == "3d":
        attn = rng.random((N * H, length, src)) < 0.4
        attn[..., 0] = False
    if kind == "3d-float":
        attn = rng.normal(size=(N * H, length, src))
    if kind in ("kpm", "bool+kpm", "kpm-float"):
        kpm = np.zeros((N, src), dtype=bool)
        kpm[0, -2:] = True
        kpm[1, -1] = True
        if kind == "kpm-float":
            kpm = np.where(kpm, -np.inf, 0.0) + rng.normal(size=(N, src)) * 0.1
    return attn, kpm


# ---------------------------------------------------------------------- PyTorch parity
torch_cases = []
for bf in (False, True):
    for kind in ("none", "bool", "float", "3d", "3d-float", "kpm", "kpm-float", "bool+kpm"):
        torch_cases.append(dict(batch_first=bf, masks=kind))
torch_cases += [
    dict(bias=False), dict(kdim=6, vdim=3), dict(kdim=6, vdim=3, batch_first=True, masks="bool+kpm"),
    dict(self_attn=True), dict(self_attn=True, batch_first=True, masks="kpm"),
    dict(add_bias_kv=True, masks="bool+kpm"), dict(add_zero_attn=True, masks="float"),
    dict(add_bias_kv=True, add_zero_attn=True, batch_first=True, masks="kpm"),
    dict(kdim=6, vdim=3, bias=False, add_bias_kv=True),
]


def _case_id(c):
    return ",".join(f"{k}={v}" for k, v in c.items()) or "default"


@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("cfg", torch_cases, ids=[_case_id(c) for c in torch_cases])
def test_matches_torch(cfg, need_weights, average):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    cfg = dict(cfg)
    masks = cfg.pop("masks", "none")
    self_attn = cfg.pop("self_attn", False)
    bf = cfg.get("batch_first", False)
    q, k, v = _qkv(bf, cfg.get("kdim", E), cfg.get("vdim", E), self_attn=self_attn)
    attn, kpm = _masks(masks, src=L if self_attn else S)
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, **cfg)
    ours = MultiheadAttention(E, H, **cfg)

    def call(m, q, k, v, attn, kpm):
        return m(q, k, v, key_padding_mask=kpm, attn_mask=attn, need_weights=need_weights,
                 average_attn_weights=average)
    if self_attn:      # the same tensor three times: the packed-projection path
        inputs = [Grad(q), Const(attn), Const(kpm)]

        def call3(m, x, attn, kpm):
            return call(m, x, x, x, attn, kpm)
        check_against_torch(ours, theirs, inputs, call3)
    else:
        check_against_torch(ours, theirs, [Grad(q), Grad(k), Grad(v), Const(attn), Const(kpm)],
                            call)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_key_is_value_matches_torch(dtype, batch_first):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    q, mem, _ = _qkv(batch_first)
    _, kpm = _masks("kpm")
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first)
    ours = MultiheadAttention(E, H, batch_first=batch_first)
    check_against_torch(ours, theirs, [Grad(q), Grad(mem), Const(kpm)],
                        lambda m, q, mem, kpm: m(q, mem, mem, key_padding_mask=kpm), dtype=dtype)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("with_kpm", [False, True])
def test_is_causal_matches_torch(need_weights, with_kpm):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    x, _, _ = _qkv(True, self_attn=True)
    mask = generate_square_subsequent_mask(L, dtype="float64").numpy()
    _, kpm = _masks("kpm", src=L) if with_kpm else (None, None)
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = MultiheadAttention(E, H, batch_first=True)
    check_against_torch(
        ours, theirs, [Grad(x), Const(mask), Const(kpm)],
        lambda m, x, mask, kpm: m(x, x, x, attn_mask=mask, key_padding_mask=kpm,
                                  need_weights=need_weights, is_causal=True))


@pytest.mark.parametrize("kind", ["none", "bool", "3d", "kpm"])
@pytest.mark.parametrize("average", [True, False])
def test_unbatched_matches_torch(kind, average):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    q, k, v = _qkv(batched=False)
    attn, kpm = _masks(kind)
    if attn is not None and attn.ndim == 3:
        attn = attn[:H]                        # (num_heads, L, S) when there is no batch
    if kpm is not None:
        kpm = kpm[0]                           # (S,)
    torch.manual_seed(3)
    theirs = torch.nn.MultiheadAttention(E, H)
    ours = MultiheadAttention(E, H)
    check_against_torch(ours, theirs, [Grad(q), Grad(k), Grad(v), Const(attn), Const(kpm)],
                        lambda m, q, k, v, a, p: m(q, k, v, attn_mask=a, key_padding_mask=p,
                                                   average_attn_weights=average))


@pytest.mark.parametrize("cfg", [{}, dict(kdim=6, vdim=3, bias=False), dict(add_bias_kv=True)],
                         ids=_case_id)
def test_float32_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    q, k, v = _qkv(True, cfg.get("kdim", E), cfg.get("vdim", E))
    attn, kpm = _masks("bool+kpm")
    torch.manual_seed(4)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True, **cfg)
    ours = MultiheadAttention(E, H, batch_first=True, **cfg)
    check_against_torch(ours, theirs, [Grad(q), Grad(k), Grad(v), Const(attn), Const(kpm)],
                        lambda m, q, k, v, a, p: m(q, k, v, attn_mask=a, key_padding_mask=p),
                        dtype="float32")


def test_state_dict_names_and_shapes_match_torch():
    torch = pytest.importorskip("torch")
    for cfg in ({}, dict(bias=False), dict(kdim=6, vdim=3), dict(add_bias_kv=True),
                dict(kdim=6, vdim=3, bias=False, add_bias_kv=True)):
        theirs = {k: tuple(v.shape) for k, v in torch.nn.MultiheadAttention(E, H, **cfg).state_dict().items()}
        ours = {k: v.shape for k, v in MultiheadAttention(E, H, **cfg).state_dict().items()}
        assert list(ours) == list(theirs), cfg
        assert ours == theirs, cfg


# ---------------------------------------------------------------------- gradient checks (float64)
@pytest.mark.parametrize("cfg,masks", [
    ({}, "bool+kpm"), (dict(batch_first=True), "float"), (dict(kdim=3, vdim=5), "3d"),
    (dict(bias=False, add_bias_kv=True, add_zero_attn=True), "kpm"),
], ids=["default", "batch_first-float", "kdim-vdim-3d", "bias_kv-zero_attn"])
def test_gradcheck(cfg, masks):
    ta.manual_seed(0)
    m = MultiheadAttention(4, 2, **cfg)
    rng = _rng(5)
    bf = cfg.get("batch_first", False)
    l, s, n = 2, 3, 2

    def t(length, width):
        shape = (n, length, width) if bf else (length, n, width)
        return ta.tensor(rng.normal(size=shape), dtype="float64", requires_grad=True)
    q, k, v = t(l, 4), t(s, cfg.get("kdim", 4)), t(s, cfg.get("vdim", 4))
    attn = kpm = None
    if masks == "bool+kpm":
        attn = np.array([[False, True, False], [False, False, True]])
        kpm = np.array([[False, False, True], [False, False, False]])
    elif masks == "float":
        attn = rng.normal(size=(l, s))
    elif masks == "3d":
        attn = rng.random((n * 2, l, s)) < 0.3
        attn[..., 0] = False
    elif masks == "kpm":
        kpm = np.array([[False, True, False], [False, False, True]])
    gradcheck_module(m, q, k, v, call=lambda m, q, k, v: m(
        q, k, v, attn_mask=attn, key_padding_mask=kpm, average_attn_weights=False))


def test_gradcheck_learned_float_mask():
    """A float attn_mask that requires grad (a learned bias) gets its gradient."""
    ta.manual_seed(0)
    m = MultiheadAttention(4, 2, batch_first=True)
    rng = _rng(6)
    x = ta.tensor(rng.normal(size=(2, 3, 4)), dtype="float64", requires_grad=True)
    bias = ta.tensor(rng.normal(size=(3, 3)), dtype="float64", requires_grad=True)
    gradcheck_module(m, x, bias, call=lambda m, x, b: m(x, x, x, attn_mask=b))


def test_gradcheck_training_dropout():
    """With dropout on (training), the same seed gives the same mask, so gradients check too."""
    ta.manual_seed(0)
    m = MultiheadAttention(4, 2, dropout=0.3, batch_first=True).train()
    x = ta.tensor(_rng(7).normal(size=(2, 3, 4)), dtype="float64", requires_grad=True)
    gradcheck_module(m, x, call=lambda m, x: m(x, x, x))


def test_dropout_is_applied_in_training_and_returned_weights_show_it():
    ta.manual_seed(0)
    m = MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = ta.tensor(_rng(8).normal(size=(2, 6, 8)), dtype="float32")
    _, w_train = m(x, x, x, average_attn_weights=False)
    m.eval()
    _, w_eval = m(x, x, x, average_attn_weights=False)
    assert np.allclose(w_eval.numpy().sum(-1), 1.0)
    dropped = w_train.numpy() == 0
    assert dropped.mean() > 0.2
    kept = ~dropped
    assert np.allclose(w_train.numpy()[kept], 2 * w_eval.numpy()[kept], rtol=1e-5)


# ---------------------------------------------------------------------- semantics
def test_bool_mask_blocks_where_true_and_float_mask_adds():
    ta.manual_seed(0)
    m = MultiheadAttention(E, H, batch_first=True).eval()
    x = ta.tensor(_rng(9).normal(size=(2, L, E)), dtype="float32")
    blocked = np.zeros((L, L), dtype=bool)
    blocked[:, 2] = True
    _, w = m(x, x, x, attn_mask=blocked)
    assert np.all(w.numpy()[:, :, 2] == 0)
    _, w_float = m(x, x, x, attn_mask=np.where(blocked, -np.inf, 0.0).astype(np.float32))
    assert np.allclose(w.numpy(), w_float.numpy())
    _, w_none = m(x, x, x)
    _, w_bias = m(x, x, x, attn_mask=np.full((L, L), 3.0, dtype=np.float32))
    assert np.allclose(w_none.numpy(), w_bias.numpy(), atol=1e-6)    # a constant shift changes nothing


def test_fully_masked_rows_give_zeros_not_nan():
    ta.manual_seed(0)
    m = MultiheadAttention(E, H, batch_first=True).eval()
    x = ta.tensor(_rng(10).normal(size=(2, L, E)), dtype="float32", requires_grad=True)
    kpm = np.zeros((2, L), dtype=bool)
    kpm[1] = True                                      # every key of example 1 is padding
    out, w = m(x, x, x, key_padding_mask=kpm)
    assert np.all(w.numpy()[1] == 0) and np.allclose(w.numpy()[0].sum(-1), 1)
    assert np.allclose(out.numpy()[1], m.out_proj.bias.numpy())
    out.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy())) and np.all(np.isfinite(m.in_proj_weight.grad.numpy()))


def test_causal_mask_means_no_looking_ahead():
    ta.manual_seed(0)
    m = MultiheadAttention(E, H, batch_first=True).eval()
    rng = _rng(11)
    x = rng.normal(size=(1, L, E)).astype(np.float32)
    mask = generate_square_subsequent_mask(L)
    y1, w = m(ta.tensor(x), ta.tensor(x), ta.tensor(x), attn_mask=mask)
    x2 = x.copy()
    x2[:, -1] += 5.0                                   # change only the last position
    y2, _ = m(ta.tensor(x2), ta.tensor(x2), ta.tensor(x2), attn_mask=mask)
    assert np.allclose(y1.numpy()[:, :-1], y2.numpy()[:, :-1], atol=1e-6)
    assert not np.allclose(y1.numpy()[:, -1], y2.numpy()[:, -1])
    assert np.all(np.triu(w.numpy()[0], 1) == 0)


def test_need_weights_false_returns_none_and_same_output():
    ta.manual_seed(0)
    m = MultiheadAttention(E, H).eval()
    q, k, v = (ta.tensor(a, dtype="float32") for a in _qkv())
    out1, w = m(q, k, v, need_weights=False)
    out2, _ = m(q, k, v)
    assert w is None
    assert np.allclose(out1.numpy(), out2.numpy())


def test_average_weights_is_mean_of_per_head_weights():
    ta.manual_seed(0)
    m = MultiheadAttention(E, H, batch_first=True).eval()
    q, k, v = (ta.tensor(a, dtype="float32") for a in _qkv(True))
    _, avg = m(q, k, v)
    _, per_head = m(q, k, v, average_attn_weights=False)
    assert per_head.shape == (N, H, L, S) and avg.shape == (N, L, S)
    assert np.allclose(avg.numpy(), per_head.numpy().mean(1))


def test_initialisation_as_pytorch():
    ta.manual_seed(0)
    m = MultiheadAttention(64, 4, add_bias_kv=True)
    w = m.in_proj_weight.numpy()
    bound = math.sqrt(6 / (64 + 3 * 64))               # xavier_uniform on (3E, E)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert not np.any(m.in_proj_bias.numpy()) and not np.any(m.out_proj.bias.numpy())
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / math.sqrt(64)     # Linear's own init
    assert abs(m.bias_k.numpy().std() - math.sqrt(1 / 64)) < 0.05    # xavier_normal on (1, 1, E)
    sep = MultiheadAttention(64, 4, kdim=16, vdim=32)
    assert np.abs(sep.k_proj_weight.numpy()).max() <= math.sqrt(6 / (64 + 16))
    assert sep.in_proj_weight is None
    assert m.in_proj_weight.dtype == np.float32


# ---------------------------------------------------------------------- errors
def test_embed_dim_not_divisible_names_the_fix():
    with pytest.raises(ValueError, match=r"embed_dim=10 is not divisible by num_heads=4.*\[1, 2, 5, 10\]"):
        MultiheadAttention(10, 4)


def test_bad_mask_shapes_and_dtypes_are_explained():
    m = MultiheadAttention(E, H)
    q, k, v = (ta.tensor(a, dtype="float32") for a in _qkv())
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 5\)"):
        m(q, k, v, attn_mask=np.zeros((5, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"attn_mask.*\(N\*num_heads, L, S\) = \(6, 4, 5\)"):
        m(q, k, v, attn_mask=np.zeros((N, L, S), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(3, 5\)"):
        m(q, k, v, key_padding_mask=np.zeros((S, N), dtype=bool))
    with pytest.raises(TypeError, match="only bool masks"):
        m(q, k, v, attn_mask=np.zeros((L, S), dtype=np.int64))
    with pytest.raises(RuntimeError, match="is_causal=True.*pass the mask too"):
        m(q, k, v, is_causal=True)


def test_bad_input_shapes_are_explained():
    m = MultiheadAttention(E, H)
    q, k, v = (ta.tensor(a, dtype="float32") for a in _qkv())
    with pytest.raises(ValueError, match="key has feature size 6.*kdim=6"):
        m(q, ta.tensor(np.zeros((S, N, 6))), v)
    with pytest.raises(ValueError, match="same sequence length"):
        m(q, k, ta.tensor(np.zeros((S + 1, N, E))))
    with pytest.raises(ValueError, match="different batch sizes"):
        m(q, ta.tensor(np.zeros((S, N + 1, E))), ta.tensor(np.zeros((S, N + 1, E))))
    with pytest.raises(ValueError, match="unbatched 2-D"):
        m(ta.tensor(np.zeros((1, L, N, E))), k, v)
    with pytest.raises(TypeError, match="Wrap it with tinyattn.tensor"):
        m(np.zeros((L, N, E)), k, v)


def test_record_attention_keeps_every_layers_weights_without_changing_outputs():
    from tinyattn.nn.multihead import record_attention
    from tinyattn.nn.transformer import Transformer
    ta.manual_seed(0)
    m = Transformer(8, 2, 1, 2, 16, batch_first=True).eval()
    rng = _rng(12)
    src, tgt = (ta.tensor(rng.normal(size=s), dtype="float32") for s in ((2, 5, 8), (2, 3, 8)))
    mask = generate_square_subsequent_mask(3)
    plain = m(src, tgt, tgt_mask=mask).numpy()
    with record_attention(m) as maps:
        recorded = m(src, tgt, tgt_mask=mask).numpy()
    assert np.allclose(plain, recorded, atol=1e-6)
    assert sorted(maps) == ["decoder.layers.0.multihead_attn", "decoder.layers.0.self_attn",
                            "decoder.layers.1.multihead_attn", "decoder.layers.1.self_attn",
                            "encoder.layers.0.self_attn"]
    self_w = maps["decoder.layers.1.self_attn"][0].numpy()
    cross_w = maps["decoder.layers.0.multihead_attn"][0].numpy()
    assert self_w.shape == (2, 2, 3, 3) and cross_w.shape == (2, 2, 3, 5)
    assert np.all(np.triu(self_w, 1) == 0) and np.allclose(cross_w.sum(-1), 1, atol=1e-6)
    m(src, tgt)                                        # outside the block nothing is recorded
    assert len(maps["encoder.layers.0.self_attn"]) == 1
    with pytest.raises(ValueError, match="contains no MultiheadAttention"):
        with record_attention(ta.nn.Linear(2, 2)):
            pass
