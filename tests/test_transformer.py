"""Transformer layers, stacks and the full model: PyTorch parity (outputs, input and parameter
gradients) for every constructor option, masks, gradchecks, structure, and errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
from tinyattn.nn.activation import GELU
from tinyattn.nn.normalization import LayerNorm
from module_gradcheck import gradcheck_module
from tinyattn.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                     TransformerEncoder, TransformerEncoderLayer,
                                     generate_square_subsequent_mask)

D, NH, FF = 8, 2, 12          # d_model, nhead, dim_feedforward
S, T, N = 5, 4, 3             # source length, target length, batch


def _x(length, batch_first, seed, batched=True):
    rng = np.random.default_rng(seed)
    if not batched:
        return rng.normal(size=(length, D))
    return rng.normal(size=(N, length, D) if batch_first else (length, N, D))


def _padding(length, seed=0):
    kpm = np.zeros((N, length), dtype=bool)
    kpm[0, -2:] = True
    kpm[2, -1] = True
    return kpm


def _causal(n):
    return generate_square_subsequent_mask(n, dtype="float64").numpy()


def _torch_activation(act):
    import torch
    return {"relu": "relu", "gelu": "gelu", "F.gelu": torch.nn.functional.gelu,
            "GELU(tanh)": torch.nn.GELU(approximate="tanh")}[act]


def _our_activation(act):
    return {"relu": "relu", "gelu": "gelu", "F.gelu": F.gelu, "GELU(tanh)": GELU("tanh")}[act]


layer_cfgs = [
    dict(), dict(batch_first=True), dict(norm_first=True), dict(activation="gelu"),
    dict(activation="gelu", norm_first=True, batch_first=True), dict(bias=False),
    dict(layer_norm_eps=1e-3, activation="F.gelu"), dict(activation="GELU(tanh)", batch_first=True),
    dict(bias=False, norm_first=True, batch_first=True),
]


def _cid(c):
    return ",".join(f"{k}={v}" for k, v in c.items()) or "default"


def _split_cfg(cfg):
    ours, theirs = dict(cfg), dict(cfg)
    if "activation" in cfg:
        ours["activation"] = _our_activation(cfg["activation"])
        theirs["activation"] = _torch_activation(cfg["activation"])
    return ours, theirs


@pytest.mark.parametrize("masks", ["none", "causal+padding", "bool"])
@pytest.mark.parametrize("cfg", layer_cfgs, ids=_cid)
def test_encoder_layer_matches_torch(cfg, masks):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    ours_cfg, theirs_cfg = _split_cfg(cfg)
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(D, NH, FF, dropout=0.1, **theirs_cfg)
    ours = TransformerEncoderLayer(D, NH, FF, dropout=0.1, **ours_cfg)
    bf = cfg.get("batch_first", False)
    mask = kpm = None
    if masks == "causal+padding":
        mask, kpm = _causal(S), _padding(S)
    elif masks == "bool":
        mask = np.random.default_rng(1).random((S, S)) < 0.3
        np.fill_diagonal(mask, False)
    check_against_torch(ours, theirs, [Grad(_x(S, bf, 0)), Const(mask), Const(kpm)],
                        lambda m, x, a, p: m(x, src_mask=a, src_key_padding_mask=p))


@pytest.mark.parametrize("masks", ["none", "all"])
@pytest.mark.parametrize("cfg", layer_cfgs, ids=_cid)
def test_decoder_layer_matches_torch(cfg, masks):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    ours_cfg, theirs_cfg = _split_cfg(cfg)
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoderLayer(D, NH, FF, dropout=0.1, **theirs_cfg)
    ours = TransformerDecoderLayer(D, NH, FF, dropout=0.1, **ours_cfg)
    bf = cfg.get("batch_first", False)
    m_mask = np.random.default_rng(2).normal(size=(T, S)) if masks == "all" else None
    args = [Grad(_x(T, bf, 0)), Grad(_x(S, bf, 1))]
    if masks == "all":
        args += [Const(_causal(T)), Const(m_mask), Const(_padding(T)), Const(_padding(S))]
    else:
        args += [Const(None)] * 4
    check_against_torch(ours, theirs, args, lambda m, t, mem, tm, mm, tp, mp: m(
        t, mem, tgt_mask=tm, memory_mask=mm, tgt_key_padding_mask=tp, memory_key_padding_mask=mp))


@pytest.mark.parametrize("final_norm", [False, True])
@pytest.mark.parametrize("cfg", [dict(), dict(batch_first=True, norm_first=True, activation="gelu")],
                         ids=_cid)
def test_encoder_stack_matches_torch(cfg, final_norm):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(D, NH, FF, **cfg)
    theirs = torch.nn.TransformerEncoder(layer, 3, norm=torch.nn.LayerNorm(D) if final_norm else None,
                                         enable_nested_tensor=False)
    ours = TransformerEncoder(TransformerEncoderLayer(D, NH, FF, **cfg), 3,
                              norm=LayerNorm(D) if final_norm else None)
    bf = cfg.get("batch_first", False)
    check_against_torch(ours, theirs, [Grad(_x(S, bf, 0)), Const(_causal(S)), Const(_padding(S))],
                        lambda m, x, a, p: m(x, mask=a, src_key_padding_mask=p))


@pytest.mark.parametrize("final_norm", [False, True])
@pytest.mark.parametrize("cfg", [dict(), dict(batch_first=True, norm_first=True, bias=False)],
                         ids=_cid)
def test_decoder_stack_matches_torch(cfg, final_norm):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(D, NH, FF, **cfg)
    theirs = torch.nn.TransformerDecoder(layer, 2, norm=torch.nn.LayerNorm(D) if final_norm else None)
    ours = TransformerDecoder(TransformerDecoderLayer(D, NH, FF, **cfg), 2,
                              norm=LayerNorm(D) if final_norm else None)
    bf = cfg.get("batch_first", False)
    check_against_torch(
        ours, theirs, [Grad(_x(T, bf, 0)), Grad(_x(S, bf, 1)), Const(_causal(T)),
                       Const(_padding(S))],
        lambda m, t, mem, tm, mp: m(t, mem, tgt_mask=tm, memory_key_padding_mask=mp))


transformer_cfgs = [
    dict(), dict(batch_first=True), dict(norm_first=True, activation="gelu"),
    dict(bias=False, batch_first=True, layer_norm_eps=1e-4),
    dict(num_encoder_layers=1, num_decoder_layers=3, norm_first=True, batch_first=True),
]


@pytest.mark.parametrize("cfg", transformer_cfgs, ids=_cid)
def test_transformer_matches_torch(cfg):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    cfg = {"num_encoder_layers": 2, "num_decoder_layers": 2, **cfg}
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(D, NH, dim_feedforward=FF, **cfg)
    ours = Transformer(D, NH, dim_feedforward=FF, **cfg)
    bf = cfg.get("batch_first", False)
    src_mask = np.random.default_rng(3).normal(size=(S, S)) * 0.5
    check_against_torch(
        ours, theirs,
        [Grad(_x(S, bf, 0)), Grad(_x(T, bf, 1)), Const(src_mask), Const(_causal(T)),
         Const(_padding(S)), Const(_padding(T)), Const(_padding(S))],
        lambda m, s, t, sm, tm, sp, tp, mp: m(
            s, t, src_mask=sm, tgt_mask=tm, src_key_padding_mask=sp, tgt_key_padding_mask=tp,
            memory_key_padding_mask=mp))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transformer_causal_flags_and_unbatched_match_torch(dtype):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(D, NH, 1, 2, FF)
    ours = Transformer(D, NH, 1, 2, FF)
    check_against_torch(
        ours, theirs, [Grad(_x(S, False, 0, batched=False)), Grad(_x(T, False, 1, batched=False)),
                       Const(_causal(T))],
        lambda m, s, t, tm: m(s, t, tgt_mask=tm, tgt_is_causal=True), dtype=dtype)


def test_float32_layers_match_torch():
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoderLayer(D, NH, FF, batch_first=True, activation="gelu")
    ours = TransformerDecoderLayer(D, NH, FF, batch_first=True, activation="gelu")
    check_against_torch(ours, theirs, [Grad(_x(T, True, 0)), Grad(_x(S, True, 1)),
                                       Const(_causal(T))],
                        lambda m, t, mem, tm: m(t, mem, tgt_mask=tm), dtype="float32")


# ---------------------------------------------------------------------- structure
def test_state_dict_names_match_torch():
    torch = pytest.importorskip("torch")
    for cfg in (dict(), dict(bias=False), dict(norm_first=True)):
        theirs = torch.nn.Transformer(D, NH, 2, 1, FF, **cfg).state_dict()
        ours = Transformer(D, NH, 2, 1, FF, **cfg).state_dict()
        assert list(ours) == list(theirs)
        assert all(ours[k].shape == tuple(theirs[k].shape) for k in ours)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, FF), 2,
                                         enable_nested_tensor=False).state_dict()
    ours = TransformerEncoder(TransformerEncoderLayer(D, NH, FF), 2).state_dict()
    assert list(ours) == list(theirs)          # no final norm by default


def test_stack_layers_are_independent_copies():
    layer = TransformerEncoderLayer(D, NH, FF)
    enc = TransformerEncoder(layer, 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a is not layer and a is not b
    assert np.array_equal(a.linear1.weight.numpy(), b.linear1.weight.numpy())   # cloned, as PyTorch
    assert a.linear1.weight is not b.linear1.weight
    assert len(list(enc.parameters())) == 2 * len(list(layer.parameters()))


def test_transformer_init_is_xavier_and_layers_differ():
    ta.manual_seed(0)
    m = Transformer(16, 2, 2, 2, 32)
    w0 = m.encoder.layers[0].linear1.weight.numpy()
    w1 = m.encoder.layers[1].linear1.weight.numpy()
    bound = np.sqrt(6 / (16 + 32))
    assert not np.array_equal(w0, w1)
    assert np.abs(w0).max() <= bound and np.abs(w0).max() > 0.9 * bound
    assert isinstance(m.encoder.norm, LayerNorm) and isinstance(m.decoder.norm, LayerNorm)


def test_generate_square_subsequent_mask():
    m = Transformer.generate_square_subsequent_mask(3)
    expected = np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]], dtype=np.float32)
    assert m.dtype == np.float32 and np.array_equal(m.numpy(), expected)
    assert generate_square_subsequent_mask(2, dtype="float64").dtype == np.float64


def test_custom_encoder_and_decoder_are_used():
    enc = TransformerEncoder(TransformerEncoderLayer(D, NH, FF), 1)
    dec = TransformerDecoder(TransformerDecoderLayer(D, NH, FF), 1)
    m = Transformer(D, NH, custom_encoder=enc, custom_decoder=dec)
    assert m.encoder is enc and m.decoder is dec
    assert enc.norm is None


# ---------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_transformer_every_mask(norm_first):
    ta.manual_seed(0)
    m = Transformer(4, 2, 1, 1, dim_feedforward=6, dropout=0.0, norm_first=norm_first,
                    activation="gelu")
    rng = np.random.default_rng(4)
    src = ta.tensor(rng.normal(size=(3, 2, 4)), dtype="float64", requires_grad=True)
    tgt = ta.tensor(rng.normal(size=(3, 2, 4)), dtype="float64", requires_grad=True)  # > 16 outputs
    pad = np.array([[False, False, True], [False, False, False]])
    src_mask = rng.normal(size=(3, 3))
    gradcheck_module(m, src, tgt, call=lambda m, s, t: m(
        s, t, src_mask=src_mask, tgt_mask=generate_square_subsequent_mask(3, dtype="float64"),
        src_key_padding_mask=pad, tgt_key_padding_mask=np.array([[False, True, True]] + [[False] * 3]),
        memory_key_padding_mask=pad, memory_mask=np.array([[False, True, False]] * 3)))


def test_gradcheck_encoder_layer_in_training_mode():
    """Dropout on: the seeded masks repeat across calls, so the gradient still checks."""
    ta.manual_seed(0)
    m = TransformerEncoderLayer(4, 2, 6, dropout=0.2, batch_first=True).train()
    x = ta.tensor(np.random.default_rng(5).normal(size=(2, 3, 4)), dtype="float64",
                  requires_grad=True)
    gradcheck_module(m, x)


# ---------------------------------------------------------------------- errors
def test_errors_name_the_problem_and_fix():
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        TransformerEncoderLayer(D, NH, activation="tanh")
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        TransformerDecoderLayer(D, 3)
    m = Transformer(D, NH, 1, 1, FF)
    with pytest.raises(ValueError, match="batch sizes of src"):
        m(ta.tensor(np.zeros((S, 2, D))), ta.tensor(np.zeros((T, 3, D))))
    with pytest.raises(ValueError, match="must equal d_model=8"):
        m(ta.tensor(np.zeros((S, 2, 6))), ta.tensor(np.zeros((T, 2, 6))))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 4\)"):
        m(ta.zeros(S, 2, D), ta.zeros(T, 2, D),          # float32, as the model's weights
          tgt_mask=generate_square_subsequent_mask(S))
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        TransformerEncoder(TransformerEncoderLayer(D, NH), 0)


# ---------------------------------------------------------------------- inference (no_grad) parity
def _left_padding():
    kpm = np.zeros((N, S), dtype=bool)
    kpm[0, -2:] = True
    kpm[1, 1:] = True
    return kpm


@pytest.mark.parametrize("pad_kind", ["end", "middle", "none"])
@pytest.mark.parametrize("cfg", [dict(batch_first=True), dict(batch_first=True, activation="gelu"),
                                 dict(batch_first=True, norm_first=True), dict()], ids=_cid)
def test_encoder_inference_matches_torch_fast_path(cfg, pad_kind):
    """Under no_grad in eval mode PyTorch's encoder returns zeros at padded positions (its nested
    tensor fast path) when the layers allow it; we reproduce exactly when, and what."""
    torch = pytest.importorskip("torch")
    from torch_parity import Const, check_inference_against_torch
    kpm = {"end": _left_padding(), "none": None}.get(pad_kind)
    if pad_kind == "middle":
        kpm = np.zeros((N, S), dtype=bool)
        kpm[0, 1] = True
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, FF, **cfg), 2,
                                         norm=torch.nn.LayerNorm(D))
    ours = TransformerEncoder(TransformerEncoderLayer(D, NH, FF, **cfg), 2, norm=LayerNorm(D))
    out = check_inference_against_torch(ours, theirs, [Const(_x(S, cfg.get("batch_first"), 0)),
                                                       Const(kpm)],
                                        lambda m, x, p: m(x, src_key_padding_mask=p))[0]
    if pad_kind == "end" and cfg == dict(batch_first=True):
        bias = ours.norm.bias.numpy()
        assert np.allclose(out.numpy()[0, -2:], bias)       # zeros through the final norm


@pytest.mark.parametrize("bf", [False, True])
def test_transformer_inference_matches_torch(bf):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, check_inference_against_torch
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(D, NH, 2, 2, FF, batch_first=bf)
    ours = Transformer(D, NH, 2, 2, FF, batch_first=bf)
    check_inference_against_torch(
        ours, theirs, [Const(_x(S, bf, 0)), Const(_x(T, bf, 1)), Const(_left_padding()),
                       Const(_causal(T))],
        lambda m, s, t, p, tm: m(s, t, src_key_padding_mask=p, tgt_mask=tm))


@pytest.mark.parametrize("need_weights", [False, True])
def test_layers_and_attention_inference_match_torch(need_weights):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, check_inference_against_torch
    from tinyattn.nn.multihead import MultiheadAttention
    torch.manual_seed(0)
    x = _x(S, True, 0)
    check_inference_against_torch(
        MultiheadAttention(D, NH, batch_first=True), torch.nn.MultiheadAttention(D, NH, batch_first=True),
        [Const(x), Const(_left_padding())],
        lambda m, x, p: m(x, x, x, key_padding_mask=p, need_weights=need_weights))
    check_inference_against_torch(
        TransformerEncoderLayer(D, NH, FF, batch_first=True),
        torch.nn.TransformerEncoderLayer(D, NH, FF, batch_first=True),
        [Const(x), Const(_left_padding())], lambda m, x, p: m(x, src_key_padding_mask=p))
    check_inference_against_torch(
        TransformerDecoderLayer(D, NH, FF, batch_first=True),
        torch.nn.TransformerDecoderLayer(D, NH, FF, batch_first=True),
        [Const(_x(T, True, 1)), Const(x), Const(_left_padding()), Const(_causal(T))],
        lambda m, t, mem, p, tm: m(t, mem, tgt_mask=tm, memory_key_padding_mask=p))


def test_padded_positions_are_computed_normally_when_gradients_are_wanted():
    ta.manual_seed(0)
    enc = TransformerEncoder(TransformerEncoderLayer(D, NH, FF, batch_first=True), 1).eval()
    x = ta.tensor(_x(S, True, 0), dtype="float32", requires_grad=True)
    out = enc(x, src_key_padding_mask=_left_padding())
    assert np.all(np.abs(out.numpy()[0, -2:]).sum(-1) > 0)
    with ta.no_grad():
        out = enc(ta.tensor(_x(S, True, 0), dtype="float32"), src_key_padding_mask=_left_padding())
    assert np.all(out.numpy()[0, -2:] == 0)


def test_custom_encoder_decoder_match_torch():
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    t_enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, FF, norm_first=True),
                                        2, norm=torch.nn.LayerNorm(D), enable_nested_tensor=False)
    t_dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, NH, FF, activation="gelu"), 1)
    theirs = torch.nn.Transformer(D, NH, custom_encoder=t_enc, custom_decoder=t_dec)
    ours = Transformer(D, NH, custom_encoder=TransformerEncoder(
        TransformerEncoderLayer(D, NH, FF, norm_first=True), 2, norm=LayerNorm(D)),
        custom_decoder=TransformerDecoder(TransformerDecoderLayer(D, NH, FF, activation="gelu"), 1))
    check_against_torch(ours, theirs, [Grad(_x(S, False, 0)), Grad(_x(T, False, 1)),
                                       Const(_causal(T)), Const(_padding(S))],
                        lambda m, s, t, tm, p: m(s, t, tgt_mask=tm, src_key_padding_mask=p,
                                                 memory_key_padding_mask=p))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unbatched_stacks_match_torch(dtype):
    torch = pytest.importorskip("torch")
    from torch_parity import Const, Grad, check_against_torch
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, NH, FF, batch_first=True),
                                         2, norm=torch.nn.LayerNorm(D))
    ours = TransformerDecoder(TransformerDecoderLayer(D, NH, FF, batch_first=True), 2,
                              norm=LayerNorm(D))
    kpm = np.array([False, False, False, True, True])
    check_against_torch(ours, theirs, [Grad(_x(T, True, 0, batched=False)),
                                       Grad(_x(S, True, 1, batched=False)), Const(_causal(T)),
                                       Const(kpm)],
                        lambda m, t, mem, tm, p: m(t, mem, tgt_mask=tm, memory_key_padding_mask=p),
                        dtype=dtype)
