"""Tensor: construction, dtype rules, factories and seeding, and the semantics of backward."""
from __future__ import annotations

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.autograd import Function, Tensor


# ---------------------------------------------------------------------- construction and dtypes
def test_default_dtype_is_float32_and_float64_is_kept_on_request():
    assert ta.tensor([1.0, 2.0]).dtype == np.float32
    assert ta.tensor(3.0).dtype == np.float32
    assert ta.tensor([1.0], dtype="float64").dtype == np.float64
    assert ta.tensor([1.0], dtype=ta.float64).dtype == np.float64


def test_numpy_arrays_and_scalars_keep_their_dtype():
    assert ta.tensor(np.arange(3.0)).dtype == np.float64
    assert ta.tensor(np.arange(3.0, dtype=np.float32)).dtype == np.float32
    assert ta.tensor(np.float64(1.5)).dtype == np.float64
    assert ta.tensor([1, 2]).dtype == np.int64
    assert ta.tensor([True, False]).dtype == np.bool_


def test_tensor_copies_its_data():
    a = np.zeros(3)
    t = ta.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 0


def test_tensor_of_a_list_of_tensors():
    t = ta.tensor([ta.tensor(1.0), ta.tensor(2.0)])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert t.dtype == np.float32


def test_python_and_numpy_scalars_do_not_upcast_float32():
    x = ta.tensor([1.0, 2.0])
    for y in (x + 2.5, 2.5 + x, x * np.float64(2), np.float64(2) * x, x - np.float32(1),
              x / 3, 2 ** x, x ** np.float64(2), ta.where(x > 1, x, 0.0)):
        assert y.dtype == np.float32


def test_float64_is_kept_through_every_kind_of_op():
    x = ta.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", requires_grad=True)
    outs = [x.sum(), x.mean(), x.max(), x[0, 1], x.var(), x.logsumexp(), x @ x, x * 2.5,
            ta.softmax(x), x.exp(), x.reshape(4)]
    for y in outs:
        assert y.dtype == np.float64, y
    x.sum().backward()
    assert x.grad.dtype == np.float64


def test_float64_array_operand_promotes_like_pytorch_would_not_but_numpy_does():
    # A float64 *array* operand is data, not a scalar: the result is float64 (NumPy's rule), as
    # documented; python and NumPy *scalars* never upcast.
    x = ta.tensor([1.0, 2.0])
    assert (x + np.ones(2)).dtype == np.float64
    assert (np.ones(2) + x).dtype == np.float64


def test_integer_inputs_give_the_default_float_dtype_as_in_pytorch():
    i = ta.arange(4)
    assert i.dtype == np.int64
    assert (i / 2).dtype == np.float32
    assert (i * 0.5).dtype == np.float32
    assert i.exp().dtype == np.float32
    assert (i + 1).dtype == np.int64
    assert (ta.tensor([1.0, 2.0]) + ta.arange(2)).dtype == np.float32


def test_requires_grad_needs_floating_point():
    with pytest.raises(TypeError, match="floating-point"):
        ta.tensor([1, 2], requires_grad=True)


def test_properties_and_conversions():
    t = ta.tensor([[1.0, 2.0, 3.0]])
    assert t.shape == (1, 3) and t.ndim == 2 and t.numel() == 3 and len(t) == 1
    assert isinstance(t.numpy(), np.ndarray)
    assert ta.tensor([2.5]).item() == 2.5 and float(ta.tensor(2.5)) == 2.5
    assert t.tolist() == [[1.0, 2.0, 3.0]]
    np.testing.assert_array_equal(np.asarray(t), [[1, 2, 3]])
    assert t.device == "cpu"
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    assert "tensor(" in repr(t) and "requires_grad=True" in repr(ta.tensor([1.0], requires_grad=True))


def test_float_double_clone_detach():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    c = x.clone()
    assert c.requires_grad and not c.is_leaf and c.array is not x.data
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.array, x.array)
    assert ta.tensor([True, False]).clone().dtype == np.bool_


# ---------------------------------------------------------------------- factories and seeding
def test_factories_shapes_and_dtypes():
    assert ta.zeros(2, 3).shape == (2, 3) and ta.zeros((2, 3)).dtype == np.float32
    np.testing.assert_array_equal(ta.ones(2).numpy(), [1, 1])
    assert ta.full((2, 2), 7.0).numpy().tolist() == [[7, 7], [7, 7]]
    assert ta.zeros(2, dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(ta.arange(5).numpy(), np.arange(5))
    np.testing.assert_allclose(ta.arange(0.0, 1.0, 0.25).numpy(), [0, 0.25, 0.5, 0.75])
    assert ta.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert ta.randn(3, 4).shape == (3, 4) and ta.randn(3, dtype="float64").dtype == np.float64
    r = ta.rand(1000)
    assert r.dtype == np.float32 and 0 <= r.numpy().min() and r.numpy().max() < 1
    assert ta.zeros(2, requires_grad=True).requires_grad
    assert ta.zeros_like(ta.ones(2, 3, dtype="float64")).dtype == np.float64
    r = ta.randint(0, 3, 50).numpy()
    assert r.shape == (50,) and r.dtype == np.int64 and set(r.tolist()) <= {0, 1, 2}


def test_same_seed_same_numbers_different_seed_different_numbers():
    ta.manual_seed(123)
    a = ta.randn(5).numpy(), ta.rand(5).numpy(), ta.randint(0, 10, (5,)).numpy()
    ta.manual_seed(123)
    b = ta.randn(5).numpy(), ta.rand(5).numpy(), ta.randint(0, 10, (5,)).numpy()
    ta.manual_seed(124)
    c = ta.randn(5).numpy()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c)
    assert np.abs(ta.randn(20000).numpy().mean()) < 0.05   # standard normal, roughly


def test_manual_seed_rejects_nonsense():
    with pytest.raises(ValueError, match="seed"):
        ta.manual_seed(-1)


# ---------------------------------------------------------------------- backward semantics
def test_gradient_accumulates_when_an_input_is_used_twice():
    x = ta.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_diamond_graph_orders_ops_correctly():
    # c feeds a both directly and through b: c's gradient must include both paths (1 + 3)
    x = ta.tensor(1.0, requires_grad=True)
    c = x * 2
    b = c * 3
    a = c + b
    a.backward()
    assert x.grad.item() == 8.0


def test_grads_accumulate_across_backward_calls_until_cleared():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [5, 5])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3])


def test_grad_is_written_on_leaves_only():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.sum().backward()
    assert y.grad is None and x.grad is not None
    assert isinstance(x.grad, ta.Tensor) and x.grad.dtype == np.float32 and not x.grad.requires_grad


def test_no_grad_input_gets_no_gradient():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    w = ta.tensor([3.0, 4.0])
    (x * w).sum().backward()
    assert w.grad is None


def test_backward_twice_without_retain_graph_is_a_clear_error():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_pass_and_accumulates():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_graph_is_freed_after_backward():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = y.sum()
    z.backward()
    assert z._ctx.released and y._ctx.released and y._ctx.saved == ()
    big = ta.tensor(np.arange(10.0), requires_grad=True)
    picked = big[np.array([1, 1, 3])]           # GetItem keeps its index on ctx
    picked.sum().backward()
    assert not hasattr(picked._ctx, "index") and picked._ctx.inputs == ()


def test_non_scalar_backward_needs_a_gradient():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match="gradient must be given"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 30.0])


def test_backward_gradient_of_wrong_shape_is_refused():
    y = ta.tensor([1.0, 2.0], requires_grad=True) * 3
    with pytest.raises(ValueError, match="does not match"):
        y.backward(np.ones(3))


def test_backward_on_tensor_without_graph_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ta.tensor([1.0]).sum().backward()


def test_backward_on_a_leaf():
    x = ta.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_no_grad_builds_no_graph_and_restores_the_mode():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    with ta.no_grad():
        y = x * 2
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    with ta.no_grad():
        with ta.enable_grad():
            assert (x * 2).requires_grad


def test_no_grad_as_a_decorator():
    @ta.no_grad()
    def f(t):
        return t * 2

    assert not f(ta.tensor([1.0], requires_grad=True)).requires_grad


def test_a_ten_thousand_step_chain_does_not_hit_the_recursion_limit():
    x = ta.tensor(1.0, requires_grad=True, dtype="float64")
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_multi_output_op_with_unused_outputs():
    x = ta.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    a, b = x.split(2)
    (b * 5).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 5, 5])


def test_broadcast_gradient_is_summed_to_the_input_shape():
    b = ta.tensor([[1.0], [2.0]], requires_grad=True)     # (2, 1) broadcast against (3, 2, 4)
    (ta.ones(3, 2, 4) * b).sum().backward()
    np.testing.assert_array_equal(b.grad, [[12.0], [12.0]])


def test_an_op_returning_a_misshaped_gradient_is_reported():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g.T          # (3, 2) for an input of shape (2, 3)

    x = ta.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape.backward returned a gradient of shape \(3, 2\)"):
        BadShape.apply(x).sum().backward()


# ---------------------------------------------------------------------- in-place changes
def test_in_place_change_of_a_saved_tensor_is_detected():
    w = ta.tensor([1.0, 2.0])
    x = ta.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    w.add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_setitem_after_an_op_saved_the_tensor_is_detected():
    w = ta.tensor([1.0, 2.0])
    x = ta.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    w[0] = 10.0
    with pytest.raises(RuntimeError, match="Mul.backward.*modified in place"):
        y.backward()


def test_in_place_change_of_a_saved_output_is_detected():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()                    # Exp saves its output
    with ta.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="Exp.backward"):
        y.sum().backward()


def test_in_place_change_through_a_view_or_a_detached_copy_is_detected():
    w = ta.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = ta.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w[0]).sum()           # Mul saved a view of w
    w.add_(1)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    p = ta.tensor([1.0, 2.0], requires_grad=True)
    z = (p * p).sum()
    p.detach().add_(1)             # shares memory with p
    with pytest.raises(RuntimeError, match="modified in place"):
        z.backward()


def test_optimizer_style_update_under_no_grad_is_allowed_after_backward():
    p = ta.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    with ta.no_grad():
        p.add_(p.grad, alpha=-0.1)
    np.testing.assert_allclose(p.numpy(), [0.8, 1.6])


def test_in_place_on_tensors_in_the_graph_is_refused_with_grad_on():
    p = ta.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        p.add_(1)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        p[0] = 0.0
    h = p * 2
    h[0] = 0.0                                 # a tensor in the graph: recorded, as in PyTorch
    buf = ta.zeros(2)
    buf[1] = p[0] * 3                          # a value that needs grad: buf joins the graph
    (h.sum() + buf.sum()).backward()
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 2.0])


def test_in_place_ops_change_values():
    t = ta.zeros(3)
    t[1] = 2.0
    t.add_(1).mul_(2)
    np.testing.assert_array_equal(t.numpy(), [2, 6, 2])
    t[ta.tensor([0, 2])] = 5.0
    np.testing.assert_array_equal(t.numpy(), [5, 6, 5])
    t.fill_(1.5)
    assert t.tolist() == [1.5, 1.5, 1.5]
    t.zero_()
    t.copy_(np.array([1.0, 2.0, 3.0]))
    assert t.tolist() == [1, 2, 3]


# ---------------------------------------------------------------------- comparisons
def test_comparisons_return_bool_tensors_without_graph():
    x = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for m in (x > 2, x >= 2, x < 2, x <= 2, x == 2, x != 2, 2 < x, np.ones(3) < x,
              x > ta.tensor([0.0, 5.0, 0.0])):
        assert isinstance(m, Tensor) and m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    np.testing.assert_array_equal(((x > 1.5) & (x < 2.5)).numpy(), [False, True, False])
    np.testing.assert_array_equal(((x < 1.5) | (x > 2.5)).numpy(), [True, False, True])
    np.testing.assert_array_equal((~(x > 1.5)).numpy(), [True, False, False])
    np.testing.assert_array_equal((x > 1.5).any().numpy(), True)
    np.testing.assert_array_equal((x > 1.5).all().numpy(), False)


def test_indexing_with_int_tensors_and_bool_tensor_masks():
    x = ta.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    np.testing.assert_array_equal(x[ta.tensor([2, 0, 2])].numpy(), [[5, 6], [1, 2], [5, 6]])
    np.testing.assert_array_equal(x[x > 3.5].numpy(), [4, 5, 6])
    x[ta.tensor([2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0], [0, 0], [2, 2]])
    assert x[ta.tensor(1)].shape == (2,)


def test_iterating_a_single_number_is_an_error_not_an_empty_loop():
    with pytest.raises(TypeError, match="0-d tensor"):
        list(ta.tensor(1.0))


def test_max_of_an_empty_tensor_is_a_clear_error():
    with pytest.raises(ValueError, match="max: the tensor of shape \\(0,\\) is empty"):
        ta.zeros(0).max()


def test_format_spec_on_a_one_element_tensor():
    assert f"{ta.tensor(0.123456):.3f}" == "0.123"
    assert f"{ta.tensor([2.0]):.1f}" == "2.0"
    assert "tensor(" in f"{ta.tensor([1.0, 2.0])}"


def test_sum_to_shape_handles_rank_and_length_one_axes_and_refuses_the_rest():
    from tinyattn.autograd import sum_to_shape

    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(sum_to_shape(g, (3, 4)), g.sum(axis=0))
    np.testing.assert_array_equal(sum_to_shape(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(sum_to_shape(g, (1, 1, 4)), g.sum(axis=(0, 1), keepdims=True))
    assert sum_to_shape(g, ()) == g.sum()
    assert sum_to_shape(g, (2, 3, 4)) is g
    with pytest.raises(ValueError, match="cannot be summed down"):
        sum_to_shape(g, (4, 3))


def test_to_moves_between_devices_and_dtypes():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x and x.to("float32") is x
    y = x.to("float64")
    assert y.dtype == np.float64 and y.requires_grad and not y.is_leaf
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="give a device"):
        x.to("tpu")


def test_retain_grad_fills_grad_of_a_non_leaf():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    y = (h * h).sum() + h.sum()
    y.backward()
    np.testing.assert_array_equal(h.grad, 2 * np.array([3.0, 6.0]) + 1)
    np.testing.assert_array_equal(x.grad, 3 * h.grad)
    a, b = x.split(1)          # chunks of length 1 (PyTorch's split)
    b.retain_grad()
    (b * 5).sum().backward()
    np.testing.assert_array_equal(b.grad, [5.0])
    assert a.grad is None


def test_set_default_dtype_changes_what_python_floats_become():
    ta.set_default_dtype("float64")
    try:
        assert ta.tensor([1.0]).dtype == np.float64 and ta.randn(2).dtype == np.float64
        assert (ta.arange(3) / 2).dtype == np.float64
    finally:
        ta.set_default_dtype("float32")
    assert ta.tensor([1.0]).dtype == np.float32 and ta.get_default_dtype() == np.float32


def test_a_zero_dim_float64_tensor_does_not_upcast_float32_like_in_pytorch():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    s = ta.tensor([3.0, 4.0], dtype="float64", requires_grad=True).sum()     # 0-d float64
    y = x * s
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert (ta.arange(3) * s).dtype == np.float64          # no float32 array: float64 stays
    assert (s * 2).dtype == np.float64


def test_augmented_assignment_updates_parameters_in_place_under_no_grad():
    p = ta.tensor([1.0, 2.0], requires_grad=True)
    alias = p
    (p * p).sum().backward()
    with ta.no_grad():
        p -= 0.1 * p.grad                      # a hand-written SGD step
    assert p is alias and p.is_leaf and p.requires_grad
    np.testing.assert_allclose(p.numpy(), [0.8, 1.6])
    assert p._version == 1


def test_augmented_assignment_in_the_graph_is_recorded_in_place():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    before = h
    h += x                                     # recorded: gradient 3 per element, same object
    assert h is before and not h.is_leaf
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    buf = ta.zeros(2)
    same = buf
    buf += 1
    buf *= 3
    assert buf is same and buf.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="in place"):
        buf += np.ones((2, 2))


def test_grad_and_data_are_tensors_sharing_the_parameters_memory():
    w = ta.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    g = w.grad
    assert isinstance(g, ta.Tensor) and not g.requires_grad and g.tolist() == [2.0, 4.0]
    (w * w).sum().backward()                     # accumulation updates the same Tensor object
    assert w.grad is g and g.tolist() == [4.0, 8.0]
    d = w.data
    assert isinstance(d, ta.Tensor) and not d.requires_grad and d.is_leaf
    d.add_(w.grad, alpha=-0.5)                   # allowed in grad mode: .data is outside the graph
    assert w.tolist() == [-1.0, -2.0] and w.requires_grad
    w.data = ta.zeros(3)                         # replace the values, any shape
    assert w.shape == (3,) and w.requires_grad
    with pytest.raises(TypeError, match="must be a tensor"):
        w.grad = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="shape"):
        w.grad = ta.zeros(2)
    with pytest.raises(TypeError, match="dtype"):
        w.grad = ta.zeros(3, dtype=ta.float64)


def test_augmented_assignment_on_a_leaf_that_requires_grad_is_refused():
    w = ta.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1
    with ta.no_grad():                           # the hand-written SGD step
        w -= 0.5
    assert w.is_leaf and w.tolist() == [0.5, 0.5]


def test_in_place_ops_recorded_later_do_not_change_earlier_uses():
    x0 = ta.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", requires_grad=True)
    x = x0 * 1
    y = x * 3                                    # uses x as it was
    x.mul_(5)                                    # x is now a new node; y's op still sees the old x
    x[:, 0] = x[:, 0] * 2                        # recorded too, reading the current x
    (y.sum() + x.sum()).backward()
    np.testing.assert_array_equal(x0.grad.numpy(), [[3 + 10, 3 + 5], [3 + 10, 3 + 5]])
