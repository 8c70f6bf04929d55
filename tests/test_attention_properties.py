"""Properties that must hold for any input (hypothesis): what each weighting promises, whatever
the scores and masks."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinyattn as ta
from tinyattn import attention as A

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6))
finite = st.floats(-50, 50, allow_nan=False, width=64)


@st.composite
def scores_and_mask(draw):
    shape = draw(shapes)
    s = draw(arrays(np.float64, shape, elements=finite))
    m = draw(arrays(np.bool_, shape))
    return s, m


def t64(a):
    return ta.tensor(a, dtype="float64")


@settings(max_examples=25, deadline=None)
@given(scores_and_mask())
def test_softmax_rows_are_distributions_over_allowed_keys(sm):
    s, m = sm
    w = A.softmax(t64(s), mask=m).numpy()
    assert np.all(w >= 0) and np.all(w[~m] == 0)
    np.testing.assert_allclose(w.sum(-1), np.where(m.any(-1), 1.0, 0.0), atol=1e-12)
    # masked scores have no influence, and adding a constant per row changes nothing
    noise = np.where(m, 0.0, 1e3)
    np.testing.assert_allclose(A.softmax(t64(s + noise + 7.0), mask=m).numpy(), w, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(scores_and_mask())
def test_sparsemax_is_the_projection_onto_the_allowed_simplex(sm):
    s, m = sm
    p = A.sparsemax(t64(s), mask=m).numpy()
    assert np.all(p >= 0) and np.all(p[~m] == 0)
    np.testing.assert_allclose(p.sum(-1), np.where(m.any(-1), 1.0, 0.0), atol=1e-12)
    # optimality (KKT): on the support z - p is one constant τ; off it (allowed keys) z <= τ
    for idx in np.ndindex(s.shape[:-1]):
        z, pr, mr = s[idx], p[idx], m[idx]
        if not mr.any():
            continue
        tau = (z - pr)[pr > 0]
        assert tau.size >= 1 and np.ptp(tau) < 1e-9
        assert np.all(z[mr & (pr == 0)] <= tau[0] + 1e-9)
    np.testing.assert_allclose(A.sparsemax(t64(s - 3.0), mask=m).numpy(), p, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(scores_and_mask(), st.integers(0, 2**32 - 1))
def test_attention_is_equivariant_to_reordering_the_keys(sm, seed):
    """Attention is a set operation over keys: permuting keys and values together changes nothing."""
    s, m = sm
    rng = np.random.default_rng(seed)
    v = rng.normal(size=s.shape[:-2] + (s.shape[-1], 2))
    perm = rng.permutation(s.shape[-1])
    for weights in ("softmax", "sparsemax", "sigmoid"):
        ctx, _ = A.attend(t64(s), t64(v), mask=m, weights=weights)
        ctx_p, _ = A.attend(t64(s[..., perm]), t64(v[..., perm, :]), mask=m[..., perm], weights=weights)
        np.testing.assert_allclose(ctx_p.numpy(), ctx.numpy(), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(scores_and_mask())
def test_hard_attention_picks_an_allowed_maximum(sm):
    s, m = sm
    w = A.hard_attention(t64(s), mask=m).numpy()
    np.testing.assert_array_equal(w.sum(-1), m.any(-1).astype(float))
    best = np.where(m, s, -np.inf).max(-1)
    chosen = np.where(w == 1, s, -np.inf).max(-1)
    np.testing.assert_array_equal(chosen[m.any(-1)], best[m.any(-1)])
    assert np.all(w[~m] == 0)
