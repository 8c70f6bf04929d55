"""Grouped-query and multi-query attention against PyTorch: nn.GroupedQueryAttention equals the same
weights run through torch's Linear layers and ``scaled_dot_product_attention(..., enable_gqa=True)``,
outputs and gradients (inputs and every parameter), for MHA, GQA and MQA, with and without masks."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.attention import scaled_dot_product_attention

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _torch_gqa(m, x, attn_mask=None, is_causal=False):
    """The same module written in PyTorch: the shared weights, sdpa with enable_gqa."""
    params = {name: torch.tensor(p.numpy(), requires_grad=True) for name, p in m.named_parameters()}
    N, L, E = x.shape
    H, Hkv, D = m.num_heads, m.num_kv_heads, m.head_dim

    def proj(name, heads):
        y = TF.linear(x, params[f"{name}.weight"], params[f"{name}.bias"])
        return y.reshape(N, L, heads, D).permute(0, 2, 1, 3)

    q, k, v = proj("q_proj", H), proj("k_proj", Hkv), proj("v_proj", Hkv)
    a = TF.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                        enable_gqa=True)
    out = TF.linear(a.permute(0, 2, 1, 3).reshape(N, L, E), params["out_proj.weight"],
                    params["out_proj.bias"])
    return out, params


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
@pytest.mark.parametrize("masking", ["none", "causal", "bool", "float"])
def test_gqa_module_matches_torch_sdpa_enable_gqa(kv_heads, masking):
    rng = np.random.default_rng(kv_heads)
    N, L, E, H = 2, 5, 16, 4
    x0 = rng.normal(size=(N, L, E))
    g0 = rng.normal(size=(N, L, E))
    ta.manual_seed(0)
    m = nn.GroupedQueryAttention(E, H, num_kv_heads=kv_heads).double()
    mask = {"none": None, "causal": None, "bool": rng.random((N, 1, L, L)) > 0.3,
            "float": rng.normal(size=(1, H, L, L))}[masking]
    if masking == "bool":
        mask[..., 0] = True                            # every query keeps at least one key
    causal = masking == "causal"

    x = ta.tensor(x0, requires_grad=True)
    out = m(x, attn_mask=mask, is_causal=causal)
    out.backward(ta.tensor(g0))

    xt = torch.tensor(x0, requires_grad=True)
    out_t, params = _torch_gqa(m, xt, None if mask is None else torch.tensor(mask), causal)
    out_t.backward(torch.tensor(g0))

    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), params[name].grad.numpy(), atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("hq,hkv", [(4, 2), (6, 3), (4, 1)])
def test_sdpa_enable_gqa_outputs_and_gradients_match_torch(hq, hkv):
    rng = np.random.default_rng(hq + hkv)
    q0, k0, v0 = rng.normal(size=(2, hq, 3, 8)), rng.normal(size=(2, hkv, 5, 8)), rng.normal(size=(2, hkv, 5, 6))
    g0 = rng.normal(size=(2, hq, 3, 6))
    ours = [ta.tensor(a, requires_grad=True) for a in (q0, k0, v0)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q0, k0, v0)]
    scaled_dot_product_attention(*ours, enable_gqa=True).backward(ta.tensor(g0))
    TF.scaled_dot_product_attention(*theirs, enable_gqa=True).backward(torch.tensor(g0))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-12)


def test_parameter_counts_and_shapes():
    m = nn.GroupedQueryAttention(32, 8, num_kv_heads=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"q_proj.weight": (32, 32), "q_proj.bias": (32,), "k_proj.weight": (8, 32),
                      "k_proj.bias": (8,), "v_proj.weight": (8, 32), "v_proj.bias": (8,),
                      "out_proj.weight": (32, 32), "out_proj.bias": (32,)}
    assert m.groups == 4


def test_mqa_heads_share_keys():
    """Multi-query: the queries differ per head, but every head reads one set of keys and values,
    so heads whose queries are equal give equal outputs."""
    ta.manual_seed(1)
    m = nn.GroupedQueryAttention(8, 4, num_kv_heads=1).double()
    W = m.q_proj.weight.numpy().copy()
    W[2:4] = W[0:2]                                     # head 1 asks the same question as head 0
    m.q_proj.weight.array[...] = W
    m.q_proj.bias.array[2:4] = m.q_proj.bias.array[0:2]
    x = ta.tensor(np.random.default_rng(0).normal(size=(1, 4, 8)))
    q, k, v = m.project(x)
    heads = m.attend(q, k, v).numpy()
    np.testing.assert_allclose(heads[:, 0], heads[:, 1], atol=1e-14)
    assert not np.allclose(heads[:, 0], heads[:, 2])


@pytest.mark.parametrize("kwargs,match", [
    (dict(embed_dim=12, num_heads=5), "not divisible by num_heads"),
    (dict(embed_dim=12, num_heads=4, num_kv_heads=3), "not a multiple of num_kv_heads"),
    (dict(embed_dim=12, num_heads=4, num_kv_heads=0), "num_kv_heads must be >= 1"),
])
def test_bad_sizes_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.GroupedQueryAttention(**kwargs)


def test_bad_input_is_named():
    m = nn.GroupedQueryAttention(8, 2)
    with pytest.raises(ValueError, match=r"GroupedQueryAttention: x must be a Tensor \(N, L, embed_dim=8\)"):
        m(ta.zeros(3, 8))
    with pytest.raises(ValueError, match="key_padding_mask must be"):
        m(ta.zeros(2, 3, 8), key_padding_mask=np.zeros((2, 4), bool))
