"""The short paths that cut per-op Python cost (issue 20, op overhead and generation) compute what
the general paths compute: permute's direct transpose, chunk's direct cuts, layer_norm's check for
extreme rows by a loop over a few rows, and the view/version sharing of several outputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tinyattn as ta
import tinyattn.functional as F
from tinyattn.ops import layernorm


# ----------------------------------------------------------------------------------- permute
@pytest.mark.parametrize("axes", [(0, 2, 1, 3), (-1, 0, -2, 1), (3, 2, 1, 0), (0, 1, 2, 3)])
def test_permute_with_any_spelling_of_the_axes_matches_torch_forward_and_backward(axes):
    rng = np.random.default_rng(0)
    x0, g0 = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    x = ta.tensor(x0, requires_grad=True)
    y = x.permute(*axes)
    xt = torch.tensor(x0, requires_grad=True)
    yt = xt.permute(*axes)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    gy = np.ascontiguousarray(g0.transpose(tuple(a % 4 for a in axes)))
    y.backward(ta.tensor(gy))
    yt.backward(torch.tensor(gy))
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1), (0, 1, 2, 3)])
def test_permute_that_is_not_a_permutation_names_the_op(axes):
    x = ta.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="permute: .* is not a permutation"):
        x.permute(*axes)


def test_a_permuted_view_shares_the_version_counter_of_its_input():
    x = ta.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x * 1.0
    z = y * y                                    # saves y
    with ta.no_grad():
        y.permute(1, 0).mul_(2.0)                # changes y's numbers through the view
    with pytest.raises(RuntimeError, match="modified in place"):
        z.sum().backward()


# ----------------------------------------------------------------------------------- chunk
@pytest.mark.parametrize("n, chunks", [(9, 3), (10, 3), (2, 5), (1, 1), (7, 7), (12, 4)])
def test_chunk_matches_torch_and_split(n, chunks):
    x0 = np.arange(3.0 * n).reshape(3, n)
    ours = ta.chunk(ta.tensor(x0), chunks, dim=-1)
    theirs = torch.chunk(torch.tensor(x0), chunks, dim=-1)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    size = max(-(-n // chunks), 1)
    for a, b in zip(ours, ta.split(ta.tensor(x0), size, dim=1)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_chunk_gradient_lands_in_each_slice_and_views_share_versions():
    x = ta.tensor(np.arange(12.0).reshape(2, 6), requires_grad=True)
    a, b, c = ta.chunk(x, 3, dim=1)
    (a * 1.0 + b * 2.0 + c * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.repeat([[1.0, 2.0, 3.0]], 2, 0).repeat(2, 1))
    y = x * 1.0
    z = y * y
    parts = ta.chunk(y, 2, dim=1)
    with ta.no_grad():
        parts[1].mul_(2.0)                       # the second output is a view of y too
    with pytest.raises(RuntimeError, match="modified in place"):
        z.sum().backward()


# ----------------------------------------------------------------------------------- layer_norm
def _huge_rows(rows, bad_at):
    x = np.random.default_rng(3).standard_normal((rows, 4)).astype(np.float32)
    x[bad_at] = [3e38, -3e38, 3e38, 1.0]
    return x


@pytest.mark.parametrize("rows", [3, layernorm._FEW_ROWS, layernorm._FEW_ROWS + 1, 200])
def test_layer_norm_finds_an_extreme_row_on_both_sides_of_the_few_rows_loop(rows):
    x0 = _huge_rows(rows, rows // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = F.layer_norm(ta.tensor(x0), (4,)).numpy()
    want = torch.nn.functional.layer_norm(torch.tensor(x0.astype(np.float64)), (4,)).numpy()
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want.astype(np.float32), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("rows", [2, 100])
def test_layer_norm_of_a_nan_row_is_nan_there_only(rows):
    x0 = np.random.default_rng(4).standard_normal((rows, 4)).astype(np.float32)
    x0[1, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = F.layer_norm(ta.tensor(x0), (4,)).numpy()
    want = torch.nn.functional.layer_norm(torch.tensor(x0), (4,)).numpy()
    assert np.isnan(y[1]).all() and np.isnan(want[1]).all()
    keep = np.arange(rows) != 1
    np.testing.assert_allclose(y[keep], want[keep], rtol=1e-5, atol=1e-6)
