"""ops.linalg.Linear computes x @ wᵀ two ways, by the number of rows (FEW_ROWS): both must give
PyTorch's F.linear for any number of leading axes, and the same gradients."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.ops import linalg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("lead", [(1,), (4,), (2, 1, 3), (linalg.FEW_ROWS,), (linalg.FEW_ROWS + 1,),
                                  (5, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_torch_on_both_sides_of_few_rows(lead, dtype):
    rng = np.random.default_rng(len(lead) + lead[0])
    x = rng.standard_normal((*lead, 24)).astype(dtype)
    w = rng.standard_normal((40, 24)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    g = rng.standard_normal((*lead, 40)).astype(dtype)
    xs, ws, bs = (ta.tensor(a, requires_grad=True) for a in (x, w, b))
    out = ta.nn.functional.linear(xs, ws, bs)
    assert out.shape == (*lead, 40) and out.array.flags.c_contiguous and out.dtype == dtype
    out.backward(ta.tensor(g))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = torch.nn.functional.linear(xt, wt, bt)
    ref.backward(torch.from_numpy(g))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.array, ref.detach().numpy(), rtol=tol, atol=tol)
    for ours, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(ours.grad.array, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_linear_sees_an_input_changed_in_place():
    x = ta.tensor(np.ones((2, 3, 4), np.float32), requires_grad=True)
    out = ta.nn.functional.linear(x, ta.tensor(np.ones((5, 4), np.float32), requires_grad=True))
    with ta.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()
