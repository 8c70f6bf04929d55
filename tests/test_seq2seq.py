"""Seq2seq models: the recurrent attention decoder of doc 003 §3.2 (gradchecks, the equations
re-done in PyTorch, padding, greedy decoding), and smoke trainings that must learn."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
from tinyattn.models import AttentionDecoder, AttentionSeq2Seq, TransformerSeq2Seq
from module_gradcheck import gradcheck_module
from tinyattn.optim import Adam

V, EMB, MEM, A = 6, 3, 4, 4
B, S, T = 2, 3, 3
TOKENS = np.array([[1, 2, 3], [1, 4, 5]])
PAD = np.array([[False, False, True], [False, False, False]])


def _memory(seed=0, dtype="float64", grad=True):
    return ta.tensor(np.random.default_rng(seed).normal(size=(B, S, MEM)), dtype=dtype,
                     requires_grad=grad)


# ---------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("score", ["additive", "dot", "scaled_dot"])
@pytest.mark.parametrize("rnn", ["lstm", None])
def test_gradcheck_attention_decoder(score, rnn):
    ta.manual_seed(0)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A, hidden_size=5, score=score, rnn=rnn)
    gradcheck_module(m, _memory(), call=lambda m, mem: m(TOKENS, mem, memory_key_padding_mask=PAD))


def test_gradcheck_attention_decoder_with_initial_state():
    ta.manual_seed(0)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A, hidden_size=5)
    rng = np.random.default_rng(1)
    h = ta.tensor(rng.normal(size=(B, 5)), dtype="float64", requires_grad=True)
    c = ta.tensor(rng.normal(size=(B, 5)), dtype="float64", requires_grad=True)
    gradcheck_module(m, _memory(), h, c, call=lambda m, mem, h, c: m(TOKENS, mem, state=(h, c)))


def test_gradcheck_attention_seq2seq_with_padding():
    ta.manual_seed(0)
    m = AttentionSeq2Seq(V, V, embedding_dim=3, hidden_size=4, score="dot", padding_idx=0)
    src = np.array([[2, 3, 0], [4, 5, 2]])
    gradcheck_module(m, call=lambda m: m(src, TOKENS))


def test_gradcheck_transformer_seq2seq():
    ta.manual_seed(0)
    m = TransformerSeq2Seq(V, V, d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=6, dropout=0.0, padding_idx=0)
    src = np.array([[2, 3, 0], [4, 5, 2]])
    gradcheck_module(m, call=lambda m: m(src, TOKENS))


# ---------------------------------------------------------------------- the equations, in PyTorch
@pytest.mark.parametrize("score,rnn", [("additive", "lstm"), ("dot", None), ("scaled_dot", "lstm")])
def test_decoder_equations_match_a_pytorch_rewrite(score, rnn):
    """Doc 003 §3.2 written out directly in PyTorch with our weights: same logits, weights and
    gradients (memory and every parameter)."""
    torch = pytest.importorskip("torch")
    from torch_parity import assert_close
    ta.manual_seed(0)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A, hidden_size=5, score=score, rnn=rnn).double()
    mem = _memory()
    logits, weights = m(TOKENS, mem, memory_key_padding_mask=PAD)
    rng = np.random.default_rng(2)
    cot_l, cot_w = rng.normal(size=logits.shape), rng.normal(size=weights.shape)
    ((logits * ta.tensor(cot_l)).sum() + (weights * ta.tensor(cot_w)).sum()).backward()

    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.state_dict().items()}
    X = torch.tensor(mem.numpy(), requires_grad=True)
    lin = lambda x, name: x @ P[name + ".weight"].T + P[name + ".bias"]   # noqa: E731
    K, Vv = lin(X, "key"), lin(X, "value")
    y = torch.zeros(B, A, dtype=torch.float64)
    h = c = torch.zeros(B, 5, dtype=torch.float64)
    out_l, out_w = [], []
    for t in range(T):
        e = P["embedding.weight"][torch.tensor(TOKENS[:, t])]
        if rnn == "lstm":
            gates = (torch.cat([e, y], -1) @ P["cell.weight_ih"].T + P["cell.bias_ih"]
                     + h @ P["cell.weight_hh"].T + P["cell.bias_hh"])
            i, f, g, o = gates.chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            x = h
        else:
            x = e
        q = lin(torch.cat([x, y], -1), "query")                                    # (B, A)
        if score == "additive":
            s = torch.tanh((q @ P["score_wq"].T)[:, None, :] + K @ P["score_wk"].T) @ P["score_v"]
        else:
            s = torch.einsum("ba,bsa->bs", q, K) / (np.sqrt(A) if score == "scaled_dot" else 1.0)
        w = torch.softmax(s.masked_fill(torch.tensor(PAD), float("-inf")), -1)
        y = torch.einsum("bs,bsa->ba", w, Vv)
        out_l.append(lin(torch.cat([x, y], -1), "out"))
        out_w.append(w)
    tl, tw = torch.stack(out_l, 1), torch.stack(out_w, 1)
    assert_close(logits.numpy(), tl.detach().numpy(), 1e-10, "logits")
    assert_close(weights.numpy(), tw.detach().numpy(), 1e-10, "weights")
    ((tl * torch.tensor(cot_l)).sum() + (tw * torch.tensor(cot_w)).sum()).backward()
    assert_close(mem.grad, X.grad.numpy(), 1e-10, "memory gradient")
    for name, p in m.named_parameters():
        assert_close(p.grad, P[name].grad.numpy(), 1e-10, f"gradient of {name}")


# ---------------------------------------------------------------------- behaviour
def test_padding_gets_no_attention_and_weights_are_distributions():
    ta.manual_seed(0)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A)
    logits, w = m(TOKENS, _memory(dtype="float32", grad=False), memory_key_padding_mask=PAD)
    assert logits.shape == (B, T, V) and w.shape == (B, T, S)
    assert np.all(w.numpy()[0, :, 2] == 0)
    assert np.allclose(w.numpy().sum(-1), 1, atol=1e-6)


def test_greedy_decode_agrees_with_teacher_forcing_on_its_own_output():
    ta.manual_seed(0)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A).eval()
    mem = _memory(dtype="float32", grad=False)
    tokens, w = m.greedy_decode(mem, bos=1, max_len=4, memory_key_padding_mask=PAD)
    assert tokens.shape == (B, 4) and tokens.dtype == np.int64 and w.shape == (B, 4, S)
    fed = np.concatenate([np.ones((B, 1), dtype=np.int64), tokens.numpy()[:, :-1]], axis=1)
    logits, w_tf = m(fed, mem, memory_key_padding_mask=PAD)
    assert np.array_equal(logits.numpy().argmax(-1), tokens.numpy())
    assert np.allclose(w_tf.numpy(), w.numpy(), atol=1e-6)
    # teacher_forcing=0 feeds back the model's own predictions: the greedy path again
    logits0, _ = m(fed[:, :1].repeat(4, axis=1), mem, memory_key_padding_mask=PAD,
                   teacher_forcing=0.0)
    assert np.array_equal(logits0.numpy().argmax(-1), tokens.numpy())


def test_greedy_decode_stops_at_eos():
    ta.manual_seed(3)
    m = AttentionDecoder(V, EMB, MEM, attn_dim=A).eval()
    mem = _memory(dtype="float32", grad=False)
    free, _ = m.greedy_decode(mem, bos=1, max_len=6)
    eos = int(free.numpy()[0, 1])                      # a token the model does emit
    tokens, _ = m.greedy_decode(mem, bos=1, max_len=6, eos=eos)
    for row in tokens.numpy():
        hits = np.flatnonzero(row == eos)
        if hits.size:
            assert np.all(row[hits[0]:] == eos)


def test_encoder_padding_does_not_change_the_result():
    """A padded source in a batch decodes exactly as the short source alone."""
    ta.manual_seed(0)
    for model in (AttentionSeq2Seq(8, 8, 6, 8, padding_idx=0),
                  TransformerSeq2Seq(8, 8, d_model=8, nhead=2, num_encoder_layers=1,
                                     num_decoder_layers=1, dim_feedforward=12, dropout=0.0,
                                     padding_idx=0)):
        model.eval()
        src = np.array([[3, 4, 5, 0, 0], [2, 3, 4, 5, 6]])
        tgt = np.array([[1, 3, 4], [1, 2, 2]])
        out = model(src, tgt)
        out = out[0] if isinstance(out, tuple) else out
        alone = model(src[:1, :3], tgt[:1])
        alone = alone[0] if isinstance(alone, tuple) else alone
        assert np.allclose(out.numpy()[:1], alone.numpy(), atol=1e-5), type(model).__name__


def test_errors_are_explained():
    with pytest.raises(ValueError, match="score must be one of"):
        AttentionDecoder(V, EMB, MEM, score="cosine")
    m = AttentionDecoder(V, EMB, MEM)
    with pytest.raises(ValueError, match="memory_dim=4"):
        m(TOKENS, ta.tensor(np.zeros((B, S, 3))))
    with pytest.raises(ValueError, match="integer token ids"):
        m(np.zeros((B, T)), _memory(grad=False))
    with pytest.raises(ValueError, match=r"memory_key_padding_mask must be a bool array of shape \(B, S\) = \(2, 3\)"):
        m(TOKENS, _memory(dtype="float32", grad=False), memory_key_padding_mask=np.zeros((B, S + 1), dtype=bool))


# ---------------------------------------------------------------------- they learn
def _copy_batches(seed, vocab, length, reverse=False):
    rng = np.random.default_rng(seed)

    def batch(n):
        src = rng.integers(2, vocab, size=(n, length))
        tgt = src[:, ::-1] if reverse else src
        tgt_in = np.concatenate([np.ones((n, 1), dtype=src.dtype), tgt[:, :-1]], axis=1)
        return src, tgt_in, tgt
    return batch


def _train(model, batch, steps, lr, vocab):
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        src, tgt_in, tgt = batch(32)
        out = model(src, tgt_in)
        logits = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.array)


def test_small_transformer_learns_to_copy():
    ta.manual_seed(0)
    vocab, length = 10, 6
    model = TransformerSeq2Seq(vocab, vocab, d_model=32, nhead=4, num_encoder_layers=1,
                               num_decoder_layers=1, dim_feedforward=64, dropout=0.0)
    batch = _copy_batches(0, vocab, length)
    loss = _train(model, batch, 150, 5e-3, vocab)
    src, _, tgt = batch(64)
    pred = model.greedy_decode(src, bos=1, max_len=length).numpy()
    assert loss < 0.2
    assert (pred == tgt).mean() > 0.95


def test_recurrent_attention_seq2seq_learns_to_reverse():
    ta.manual_seed(0)
    vocab, length = 8, 5
    model = AttentionSeq2Seq(vocab, vocab, embedding_dim=16, hidden_size=32, score="additive")
    batch = _copy_batches(1, vocab, length, reverse=True)
    # 200 steps, not 120: at 120 the accuracy sat near the bound (0.997, or 0.89 after a change in
    # the last bits of one kernel); at 200 it is 1.0 either way
    _train(model, batch, 200, 1e-2, vocab)
    src, _, tgt = batch(64)
    pred, weights = model.greedy_decode(src, bos=1, max_len=length)
    assert (pred.numpy() == tgt).mean() > 0.9
    # Reversing: output step t needs source position length-1-t, so the attended position (the
    # weights' mean position) must move from the end of the source towards its start.
    where = (weights.numpy() * np.arange(length)).sum(-1).mean(0)          # (length,)
    assert np.all(np.diff(where) < 0), where
    assert where[0] > length - 1.5 and where[0] - where[-1] > 2, where
