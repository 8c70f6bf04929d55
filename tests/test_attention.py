"""Forward values of the attention primitives against hand computation, extremes, masks and errors.
(Gradients: tests/gradcases_attention.py, run by test_gradcheck_registry.py. PyTorch comparisons:
tests/test_attention_torch.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import attention as A


def t64(a, grad=False):
    return ta.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype="float64")


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


rng = np.random.default_rng(1234)


# ---------------------------------------------------------------------- doc 000 §4.3
X = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]


def test_doc000_example_scores_weights_and_sum_by_hand():
    x = t64(X)
    s = A.dot_score(x, x)
    expected = [[sum(a * b for a, b in zip(xi, xj)) for xj in X] for xi in X]
    assert expected[0] == [14.0, 32.0, 50.0]          # x1·x1 = 1 + 4 + 9, not the document's 1·1
    np.testing.assert_array_equal(s.numpy(), expected)
    w = A.sigmoid_weights(s)
    np.testing.assert_allclose(w.numpy(), [[sig(v) for v in row] for row in expected], rtol=1e-15)
    context, weights = A.attend(s, x, weights="sigmoid")
    by_hand = [[sum(sig(expected[i][j]) * X[j][c] for j in range(3)) for c in range(3)] for i in range(3)]
    np.testing.assert_allclose(context.numpy(), by_hand, rtol=1e-14)
    # The document's h adds all nine weighted vectors: Σ_i Σ_j a_ij x_j.
    h = context.numpy().sum(axis=0)
    np.testing.assert_allclose(h, [36.0, 45.0, 54.0], rtol=1e-5)   # every σ(s_ij) is within 1e-6 of 1
    assert not np.allclose(h, [4.38, 5.52, 6.46], atol=1.0)        # the document's value is not reachable


def test_doc000_weights_from_the_documents_own_scores():
    # The document multiplies first components only (s11 = 1·1 = 1, s12 = 4, ...); even then σ(1) = 0.731, not 0.63.
    s = t64([[1, 4, 7], [4, 16, 28], [7, 28, 49]])
    w = A.sigmoid_weights(s).numpy()
    assert w[0, 0] == pytest.approx(sig(1.0), rel=1e-15)
    assert round(w[0, 0], 2) == 0.73
    assert round(w[0, 1], 2) == 0.98 and round(w[1, 1], 2) == 1.0


def test_doc000_example_with_softmax_for_contrast():
    x = t64(X)
    ctx, w = A.attend(A.dot_score(x, x), x)
    s = np.array(X) @ np.array(X).T
    e = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(w.numpy(), e / e.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(ctx.numpy()[2], X[2], rtol=1e-12)     # x3 dominates its own row


# ---------------------------------------------------------------------- scores against loops
def _loop(f, Q, K):
    return np.array([[f(qi, kj) for kj in K] for qi in Q])


Q = rng.normal(size=(3, 4))
K = rng.normal(size=(5, 4))


def test_dot_and_scaled_dot_scores():
    np.testing.assert_allclose(A.dot_score(t64(Q), t64(K)).numpy(), _loop(np.dot, Q, K), rtol=1e-13)
    np.testing.assert_allclose(A.scaled_dot_score(t64(Q), t64(K)).numpy(),
                               _loop(lambda a, b: a @ b / 2.0, Q, K), rtol=1e-13)
    np.testing.assert_allclose(A.scaled_dot_score(t64(Q), t64(K), scale=0.1).numpy(),
                               _loop(lambda a, b: 0.1 * (a @ b), Q, K), rtol=1e-13)


def test_general_score_with_different_widths():
    K3 = rng.normal(size=(5, 3))
    W = rng.normal(size=(4, 3))
    np.testing.assert_allclose(A.general_score(t64(Q), t64(K3), t64(W)).numpy(),
                               _loop(lambda a, b: a @ W @ b, Q, K3), rtol=1e-13)


def test_additive_score_is_bahdanau():
    K3 = rng.normal(size=(5, 3))
    Wq, Wk, v, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=6)
    got = A.additive_score(t64(Q), t64(K3), t64(Wq), t64(Wk), t64(v), bias=t64(b)).numpy()
    np.testing.assert_allclose(got, _loop(lambda a, c: v @ np.tanh(Wq @ a + Wk @ c + b), Q, K3), rtol=1e-13)
    got = A.additive_score(t64(Q), t64(K3), t64(Wq), t64(Wk), t64(v)).numpy()
    np.testing.assert_allclose(got, _loop(lambda a, c: v @ np.tanh(Wq @ a + Wk @ c), Q, K3), rtol=1e-13)


def test_cosine_score():
    cos = _loop(lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b), Q, K)
    got = A.cosine_score(t64(Q), t64(K)).numpy()
    np.testing.assert_allclose(got, cos, rtol=1e-13)
    assert np.all(np.abs(got) <= 1 + 1e-15)
    # A zero vector scores 0 against everything instead of 0/0 = NaN.
    z = A.cosine_score(t64(np.zeros((1, 4))), t64(K)).numpy()
    assert np.all(z == 0)


def test_euclidean_score_squared_and_not():
    d2 = _loop(lambda a, b: np.sum((a - b) ** 2), Q, K)
    np.testing.assert_allclose(A.euclidean_score(t64(Q), t64(K)).numpy(), -d2, rtol=1e-12)
    np.testing.assert_allclose(A.euclidean_score(t64(Q), t64(K), squared=False).numpy(), -np.sqrt(d2), rtol=1e-12)
    # the nearest key gets the highest score
    best = A.euclidean_score(t64(K[2:3] + 1e-3), t64(K)).numpy().argmax()
    assert best == 2
    # a query equal to a key: distance 0 and a finite gradient
    q = t64(K[1:2], grad=True)
    s = A.euclidean_score(q, t64(K), squared=False)
    assert abs(s.numpy()[0, 1]) < 1e-5
    s.sum().backward()
    assert np.all(np.isfinite(q.grad.numpy()))


def test_concat_sigmoid_score_by_hand():
    V = rng.normal(size=(2, 4, 3))
    Wa, b = rng.normal(size=6), 0.3
    a = A.concat_sigmoid_score(t64(V), t64(Wa), t64(b))
    assert a.shape == (2, 1, 4)
    for n in range(2):
        for i in range(4):
            prev = V[n, i - 1] if i > 0 else np.zeros(3)              # v_{-1} = 0
            want = sig(Wa @ np.concatenate([V[n, i], prev]) + b)
            assert a.numpy()[n, 0, i] == pytest.approx(want, rel=1e-13)
    h = a @ t64(V)                                                   # h = Σ a_i v_i
    np.testing.assert_allclose(h.numpy()[:, 0], np.einsum("ni,nid->nd", a.numpy()[:, 0], V), rtol=1e-13)
    # a Linear(2d, 1) weight of shape (1, 2d) gives the same
    np.testing.assert_array_equal(A.concat_sigmoid_score(t64(V), t64(Wa[None]), 0.3).numpy(), a.numpy())


def test_scores_broadcast_batch_and_heads():
    q = rng.normal(size=(2, 3, 4, 5))       # (B, H, Tq, d)
    k = rng.normal(size=(2, 1, 6, 5))       # keys shared by all heads
    s = A.dot_score(t64(q), t64(k)).numpy()
    assert s.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(s[1, 2], q[1, 2] @ k[1, 0].T, rtol=1e-13)


# ---------------------------------------------------------------------- softmax
def test_softmax_float32_extreme_scores():
    s = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, -1e4, -1e4, -1e4 + 2.0]], dtype=np.float32)
    x = ta.tensor(s, requires_grad=True)
    w = A.softmax(x)
    assert w.dtype == np.float32
    e1 = math.exp(-1.0)
    np.testing.assert_allclose(w.numpy()[0], [1 / (1 + e1), 0, 0, e1 / (1 + e1)], rtol=1e-6)
    e2 = math.exp(-2.0)
    np.testing.assert_allclose(w.numpy()[1], [e2, e2, e2, 1.0] / np.float64(3 * e2 + 1), rtol=1e-6)
    (w * ta.tensor(np.arange(8, dtype=np.float32).reshape(2, 4))).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_softmax_all_masked_row_gives_zero_weights_and_zero_gradient():
    x = t64(rng.normal(size=(2, 3, 4)), grad=True)
    mask = np.ones((2, 3, 4), dtype=bool)
    mask[0, 1] = False
    mask[1, :, 2] = False
    w = A.softmax(x, mask=mask)
    assert np.all(w.numpy()[0, 1] == 0)
    assert np.all(w.numpy()[1, :, 2] == 0)
    np.testing.assert_allclose(w.numpy().sum(-1), np.where(mask.any(-1), 1.0, 0.0), rtol=1e-15)
    (w * t64(rng.normal(size=(2, 3, 4)))).sum().backward()
    assert np.all(x.grad.numpy()[0, 1] == 0) and np.all(x.grad.numpy()[1, :, 2] == 0)
    assert not np.any(np.isnan(x.grad.numpy()))


def test_softmax_temperature():
    s = rng.normal(size=(3, 5))
    for tau in (0.25, 1.0, 3.0):
        e = np.exp(s / tau - (s / tau).max(-1, keepdims=True))
        np.testing.assert_allclose(A.softmax(t64(s), temperature=tau).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-14)
    # low temperature -> argmax; high -> uniform
    cold = A.softmax(t64(s), temperature=1e-3).numpy()
    np.testing.assert_allclose(cold, np.eye(5)[s.argmax(-1)], atol=1e-12)
    hot = A.softmax(t64(s), temperature=1e6).numpy()
    np.testing.assert_allclose(hot, 0.2, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 4), (1, 4, 1), (4, 1)])
def test_tiny_shapes(shape):
    """Tq = 1, Tk = 1 and batch of 1 through every weighting."""
    s = t64(rng.normal(size=shape))
    v = t64(rng.normal(size=shape[:-2] + (shape[-1], 2)))
    for name in ("softmax", "sparsemax", "hard"):
        ctx, w = A.attend(s, v, weights=name)
        assert ctx.shape == shape[:-1] + (2,)
        np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-15)
    if shape[-1] == 1:                  # one key: it gets all the weight, the context is its value
        np.testing.assert_array_equal(A.softmax(s).numpy(), 1.0)
        np.testing.assert_allclose(A.attend(s, v)[0].numpy(), np.broadcast_to(v.numpy(), shape[:-1] + (2,)))


def test_sigmoid_weights_are_independent_gates():
    s = t64([[0.0, 2.0, -1.0]])
    w = A.sigmoid_weights(s, mask=np.array([[True, True, False]])).numpy()
    np.testing.assert_allclose(w, [[0.5, sig(2.0), 0.0]], rtol=1e-15)
    assert w.sum() != pytest.approx(1.0)
    # raising one score does not change the other weights (unlike softmax)
    w2 = A.sigmoid_weights(t64([[0.0, 5.0, -1.0]])).numpy()
    assert w2[0, 0] == w[0, 0]
    big = A.sigmoid_weights(ta.tensor(np.array([[1e4, -1e4]], dtype=np.float32))).numpy()
    np.testing.assert_array_equal(big, [[1.0, 0.0]])


# ---------------------------------------------------------------------- sparsemax
def _sparsemax_reference(z):
    """Projection onto the simplex by bisection on τ: Σ max(z - τ, 0) = 1."""
    lo, hi = z.max() - 1.0, z.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(z - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - (lo + hi) / 2, 0)


def test_sparsemax_hand_example():
    p = A.sparsemax(t64([0.9, 0.5, 0.1, -0.7])[None]).numpy()[0]
    # sorted 0.9, 0.5, 0.1: support {0.9, 0.5} since 1 + 3·0.1 = 1.3 < 1.5; τ = (1.4 - 1)/2 = 0.2
    np.testing.assert_allclose(p, [0.7, 0.3, 0.0, 0.0], atol=1e-15)


def test_sparsemax_matches_projection_and_is_sparse():
    z = rng.normal(scale=1.5, size=(6, 7))
    p = A.sparsemax(t64(z)).numpy()
    for row, zr in zip(p, z):
        np.testing.assert_allclose(row, _sparsemax_reference(zr), atol=1e-12)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-14)
    assert np.all(p >= 0) and np.any(p == 0)
    # ties and equal scores: uniform
    np.testing.assert_allclose(A.sparsemax(t64([[2.0, 2.0, 2.0]])).numpy(), 1 / 3, rtol=1e-15)
    # float32 ±1e4: the leader takes everything, no overflow
    big = A.sparsemax(ta.tensor(np.array([[1e4, -1e4, 0.0]], dtype=np.float32))).numpy()
    np.testing.assert_array_equal(big, [[1.0, 0.0, 0.0]])


def test_sparsemax_gradient_is_the_exact_jacobian():
    z = np.array([[0.9, 0.5, 0.1, -0.7], [0.2, 0.3, 0.25, 0.1]])
    x = t64(z, grad=True)
    g = rng.normal(size=z.shape)
    p = A.sparsemax(x)
    (p * t64(g)).sum().backward()
    for r in range(2):
        s = (p.numpy()[r] > 0).astype(float)
        J = np.diag(s) - np.outer(s, s) / s.sum()
        np.testing.assert_allclose(x.grad[r], J.T @ g[r], atol=1e-14)


def test_sparsemax_mask_and_empty_rows():
    m = np.array([[True, False, True], [False, False, False]])
    x = t64([[0.1, 5.0, 0.3], [1.0, 2.0, 3.0]], grad=True)
    p = A.sparsemax(x, mask=m)
    np.testing.assert_allclose(p.numpy(), [[0.4, 0.0, 0.6], [0, 0, 0]], atol=1e-15)
    p.sum().backward()
    assert np.all(x.grad.numpy()[1] == 0) and not np.any(np.isnan(x.grad.numpy()))


def test_sparsemax_along_another_axis():
    z = rng.normal(size=(4, 3))
    np.testing.assert_allclose(A.sparsemax(t64(z), axis=0).numpy(), A.sparsemax(t64(z.T)).numpy().T, atol=1e-15)


# ---------------------------------------------------------------------- hard attention
def test_hard_attention_one_hot_mask_ties_and_empty_rows():
    s = t64([[1.0, 3.0, 3.0, 0.0], [1.0, 3.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    m = np.array([[True, True, True, True], [True, False, True, True], [False, False, False, False]])
    w = A.hard_attention(s, mask=m).numpy()
    np.testing.assert_array_equal(w, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])   # first of a tie


def test_hard_attention_gradients():
    s = t64(rng.normal(size=(2, 3, 4)), grad=True)
    g = rng.normal(size=(2, 3, 4))
    (A.hard_attention(s) * t64(g)).sum().backward()
    np.testing.assert_array_equal(s.grad, 0.0)                      # the true gradient
    s2 = t64(s.numpy(), grad=True)
    (A.hard_attention(s2, gradient="straight_through", temperature=0.5) * t64(g)).sum().backward()
    s3 = t64(s.numpy(), grad=True)
    (A.softmax(s3, temperature=0.5) * t64(g)).sum().backward()
    np.testing.assert_allclose(s2.grad, s3.grad, rtol=1e-13)       # softmax's gradient
    assert np.abs(s2.grad.numpy()).max() > 0


def test_stochastic_hard_attention_frequencies_and_reproducibility():
    scores = np.array([0.5, -1.0, 1.5, 0.0])
    mask = np.array([True, True, True, False])
    n = 20000
    s = t64(np.broadcast_to(scores, (n, 1, 4)))
    ta.manual_seed(7)
    sample, log_prob = A.stochastic_hard_attention(s, mask=mask)
    assert sample.shape == (n, 1, 4) and log_prob.shape == (n, 1)
    np.testing.assert_array_equal(sample.numpy().sum(-1), 1.0)
    assert sample.numpy()[..., 3].sum() == 0                           # masked key never drawn
    p = A.softmax(t64(scores), mask=mask).numpy()
    freq = sample.numpy().mean(axis=(0, 1))
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / n).max() + 1e-12)
    np.testing.assert_allclose(log_prob.numpy()[:, 0], np.log(p[sample.numpy()[:, 0].argmax(-1)]), rtol=1e-12)
    ta.manual_seed(7)
    again, _ = A.stochastic_hard_attention(s, mask=mask)
    np.testing.assert_array_equal(again.numpy(), sample.numpy())
    empty, lp = A.stochastic_hard_attention(t64([[1.0, 2.0]]), mask=np.array([[False, False]]))
    assert np.all(empty.numpy() == 0) and lp.numpy()[0] == 0


@pytest.mark.parametrize("baseline", [0.0, 1.2])
def test_reinforce_expected_gradient_is_the_true_gradient(baseline):
    """E over samples of -∇ reinforce_loss equals ∇ E[R] = p ⊙ (r - p·r), for any baseline."""
    z = np.array([0.3, -0.4, 0.8])
    r = np.array([1.0, 3.0, -2.0])
    p = np.exp(z) / np.exp(z).sum()
    true_grad = p * (r - p @ r)
    n = 40000
    s = t64(z, grad=True)
    ta.manual_seed(11)
    sample, log_prob = A.stochastic_hard_attention(ta.broadcast_to(s, (n, 3)))
    reward = sample.numpy() @ r
    A.reinforce_loss(log_prob, reward, baseline).backward()
    # per-sample spread of the estimator bounds the Monte-Carlo error
    assert np.abs(-s.grad.numpy() - true_grad).max() < 0.05
    assert np.abs(true_grad).max() > 0.3                              # the test could fail


def test_reinforce_loss_value_and_constants():
    lp = t64([-0.5, -1.0, -2.0], grad=True)
    reward = ta.tensor([1.0, 0.0, 2.0], requires_grad=True, dtype="float64")
    loss = A.reinforce_loss(lp, reward, baseline=0.5)
    assert loss.item() == pytest.approx(-(0.5 * -0.5 + -0.5 * -1.0 + 1.5 * -2.0) / 3)
    loss.backward()
    np.testing.assert_allclose(lp.grad, [-0.5 / 3, 0.5 / 3, -1.5 / 3])
    assert reward.grad is None                                        # the reward is a constant
    assert A.reinforce_loss(lp, 1.0, reduction="sum").item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="reinforce_loss: reward.*without enlarging"):
        A.reinforce_loss(t64([[-0.5], [-1.0]]), np.array([1.0, 2.0]))   # (2, 1) with (2,) -> (2, 2)


# ---------------------------------------------------------------------- masks
def test_causal_mask():
    np.testing.assert_array_equal(A.causal_mask(3).numpy(), np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(A.causal_mask(2, 4).numpy(), [[1, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(A.causal_mask(4, 2).numpy(), [[1, 0], [1, 1], [1, 1], [1, 1]])
    assert A.causal_mask(3).dtype == np.bool_


def test_local_window_mask_and_combination():
    m = A.local_window_mask(5, window=1).numpy()
    i, j = np.indices((5, 5))
    np.testing.assert_array_equal(m, np.abs(i - j) <= 1)
    np.testing.assert_array_equal(A.local_window_mask(3, window=0).numpy(), np.eye(3, dtype=bool))
    assert A.local_window_mask(3, 6, window=10).numpy().all()          # wide window = global
    both = (A.causal_mask(5) & A.local_window_mask(5, window=2)).numpy()
    np.testing.assert_array_equal(both, (j <= i) & (i - j <= 2))


def test_padding_mask_from_lengths():
    m = A.padding_mask([2, 4, 1])
    assert m.shape == (3, 1, 4)
    np.testing.assert_array_equal(m.numpy()[:, 0], [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    m2 = A.padding_mask(np.array([1, 3]), 5, query_lengths=[2, 1], Tq=3).numpy()
    assert m2.shape == (2, 3, 5)
    np.testing.assert_array_equal(m2[0], [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(m2[1], [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])


def test_padded_batch_gives_the_same_context_as_each_sequence_alone():
    """Irregular sequences (doc 004 §5.2): padding must not change the real positions' results."""
    lengths = [2, 4]
    x = rng.normal(size=(2, 4, 3))
    x[0, 2:] = 99.0                                                   # garbage in the padding
    ctx, w = A.attend(A.scaled_dot_score(t64(x), t64(x)), t64(x), mask=A.padding_mask(lengths))
    for b, n in enumerate(lengths):
        alone, _ = A.attend(A.scaled_dot_score(t64(x[b, :n]), t64(x[b, :n])), t64(x[b, :n]))
        np.testing.assert_allclose(ctx.numpy()[b, :n], alone.numpy(), rtol=1e-13)
        assert np.all(w.numpy()[b, :, n:] == 0)


def test_mask_errors_are_clear():
    with pytest.raises(ValueError, match="padding_mask.*exceed"):
        A.padding_mask([2, 5], 4)
    with pytest.raises(ValueError, match="window"):
        A.local_window_mask(3, window=-1)
    with pytest.raises(ValueError, match="Tq"):
        A.causal_mask(0)
    s = t64(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="softmax: mask must be boolean"):
        A.softmax(s, mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"mask\[:, None, :\]"):
        A.softmax(s, mask=np.ones((2, 4), dtype=bool))                # (B, Tk) would pair batch with query
    with pytest.raises(ValueError, match="temperature"):
        A.softmax(s, temperature=0)


# ---------------------------------------------------------------------- local-p
def test_local_p_positions_formula_and_range():
    h = rng.normal(size=(2, 3, 4))
    W, v = rng.normal(size=(5, 4)), rng.normal(size=5)
    p = A.local_p_positions(t64(h), t64(W), t64(v), 7).numpy()
    want = 7 / (1 + np.exp(-(np.tanh(h @ W.T) @ v)))
    np.testing.assert_allclose(p, want, rtol=1e-13)
    per_seq = A.local_p_positions(t64(h), t64(W), t64(v), [7, 3]).numpy()
    np.testing.assert_allclose(per_seq[1], want[1] * 3 / 7, rtol=1e-13)
    assert np.all((per_seq > 0) & (per_seq < np.array([7, 3])[:, None]))


def test_local_p_weights_by_hand():
    s = rng.normal(size=(2, 6))
    p = np.array([1.3, 4.6])
    D = 2
    w = A.local_p_weights(t64(s), t64(p), window=D).numpy()
    for t in range(2):
        inside = np.abs(np.arange(6) - p[t]) <= D
        e = np.where(inside, np.exp(s[t] - s[t].max()), 0)
        want = e / e.sum() * np.exp(-((np.arange(6) - p[t]) ** 2) / (2 * (D / 2) ** 2))
        np.testing.assert_allclose(w[t], want, rtol=1e-13)
        assert np.all(w[t][~inside] == 0)
    # the centre is learnable: d(weights)/d(p) is not zero
    pt = t64(p, grad=True)
    (A.local_p_weights(t64(s), pt, window=D) * t64(np.arange(6.0))).sum().backward()
    assert np.all(np.abs(pt.grad.numpy()) > 1e-3)


# ---------------------------------------------------------------------- attend
def test_attend_returns_context_and_weights():
    s, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))
    ctx, w = A.attend(t64(s), t64(v), weights="sparsemax")
    np.testing.assert_allclose(ctx.numpy(), w.numpy() @ v, rtol=1e-14)
    ctx2, w2 = A.attend(t64(s), t64(v), weights=lambda x, mask=None: A.softmax(x, mask, temperature=2.0))
    np.testing.assert_allclose(w2.numpy(), A.softmax(t64(s / 2)).numpy(), rtol=1e-14)
    _, w3 = A.attend(t64(s), t64(v), weights="hard", gradient="straight_through")
    np.testing.assert_array_equal(w3.numpy().sum(-1), 1.0)
    with pytest.raises(ValueError, match="unknown weights"):
        A.attend(t64(s), t64(v), weights="max")
    with pytest.raises(ValueError, match="attend.*Tk=4.*values have 3 rows"):
        A.attend(t64(s), t64(v[:, :3]))


def test_score_errors_are_clear():
    with pytest.raises(ValueError, match="dot_score: queries have feature size d=4.*keys have d=3"):
        A.dot_score(t64(np.zeros((2, 4))), t64(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="at least 2 dims"):
        A.scaled_dot_score(t64(np.zeros(4)), t64(np.zeros((2, 4))))
    with pytest.raises(ValueError, match="general_score: W must have shape"):
        A.general_score(t64(np.zeros((2, 4))), t64(np.zeros((2, 3))), t64(np.zeros((3, 4))))
    with pytest.raises(ValueError, match="additive_score.*PyTorch Linear"):
        A.additive_score(t64(np.zeros((2, 4))), t64(np.zeros((2, 3))), t64(np.zeros((4, 6))),
                         t64(np.zeros((6, 3))), t64(np.zeros(6)))
    with pytest.raises(ValueError, match="batch axes"):
        A.dot_score(t64(np.zeros((2, 3, 4))), t64(np.zeros((3, 3, 4))))


def test_float32_in_float32_out_for_every_function():
    r = np.random.default_rng(0)

    def f(*shape):
        return ta.tensor(r.normal(size=shape).astype(np.float32), requires_grad=True)

    q, k, v = f(2, 3, 4), f(2, 5, 4), f(2, 5, 3)
    s = f(2, 3, 5)                       # a leaf, so each output below has its own graph
    outs = [A.dot_score(q, k), A.scaled_dot_score(q, k), A.general_score(q, k, f(4, 4)),
            A.additive_score(q, k, f(6, 4), f(6, 4), f(6), f(6)), A.cosine_score(q, k),
            A.euclidean_score(q, k, squared=False), A.concat_sigmoid_score(v, f(6), 0.2),
            A.softmax(s, temperature=0.5), A.sigmoid_weights(s), A.sparsemax(s),
            A.hard_attention(s, gradient="straight_through"),
            A.reinforce_loss(A.stochastic_hard_attention(s)[1], [1.0, 2.0, 3.0]),
            A.local_p_weights(s, A.local_p_positions(q, f(3, 4), f(3), [5, 4]), window=1.5),
            A.attend(s, v)[0], A.scaled_dot_product_attention(q, k, v, dropout_p=0.1),
            A.scaled_dot_product_attention(q, k, v, attn_mask=np.zeros((3, 5)))]   # float64 mask
    for out in outs:
        assert out.dtype == np.float32
        out.sum().backward()
    assert q.grad.dtype == np.float32 and np.all(np.isfinite(q.grad.numpy()))


@pytest.mark.parametrize("weights", ["softmax", "sigmoid", "sparsemax", "hard"])
def test_every_weighting_survives_float32_scores_of_1e4(weights):
    s = np.array([[[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + 0.5], [1e4, 1e4, -1e4]]], dtype=np.float32)
    x = ta.tensor(s, requires_grad=True)
    v = ta.tensor(np.arange(6, dtype=np.float32).reshape(1, 3, 2))
    mask = np.array([[True, True, True], [True, True, True], [False, False, False]])
    ctx, w = A.attend(x, v, mask=mask, weights=weights)
    ctx.sum().backward()
    assert np.all(np.isfinite(w.numpy())) and np.all(np.isfinite(x.grad.numpy()))
    assert np.all(w.numpy()[0, 2] == 0) and np.all(ctx.numpy()[0, 2] == 0)   # the all-masked row
    if weights != "sigmoid":
        np.testing.assert_array_equal(w.numpy()[0, 0], [1.0, 0.0, 0.0])     # the 1e4 key wins outright


def test_sdpa_float32_queries_and_keys_with_huge_scores():
    q = ta.tensor(np.array([[[100.0, 0.0], [-100.0, 0.0]]], dtype=np.float32), requires_grad=True)
    k = ta.tensor(np.array([[[141.0, 0.0], [-141.0, 0.0], [0.0, 1.0]]], dtype=np.float32))
    v = ta.tensor(np.array([[[1.0], [2.0], [3.0]]], dtype=np.float32))
    out, w = A.scaled_dot_product_attention(q, k, v, return_weights=True)   # scores ≈ ±1e4
    np.testing.assert_array_equal(out.numpy()[0, :, 0], [1.0, 2.0])
    out.sum().backward()
    assert np.all(np.isfinite(q.grad.numpy()))
