"""Lesson 01 - tensors and autograd.

What it teaches: a tinyattn Tensor is an array plus a record of how it was made. Calling
``backward()`` walks that record from the output back to the inputs and fills ``.grad`` with the
derivative of the output with respect to every input. We build a small graph, check its gradients
against the chain rule worked out by hand, and then check every op the later lessons use against
finite differences: (f(x + eps) - f(x - eps)) / (2 eps), in float64.

Reproduces: no document section (this is the engine the other lessons stand on).
Criterion: for every op in the table, the relative error between autograd's gradient and the
finite-difference gradient is at most 1e-6 (float64), and tinyattn.gradcheck agrees.
"""
# %%
from _common import Lesson

import numpy as np

import tinyattn as ta

lesson = Lesson(1, "tensors and autograd")
rng = lesson.rng

# %% [markdown]
# ## 1. A small graph: one linear layer, tanh, mean of squares
# loss = mean( tanh(x @ W + b) ** 2 ).  Every line below records an op in the graph.

# %%
lesson.section("1. a small graph and its backward pass")
x = ta.tensor(rng.normal(size=(4, 3)), dtype="float64")                       # data: no gradient
W = ta.tensor(rng.normal(size=(3, 2)), dtype="float64", requires_grad=True)   # parameters
b = ta.tensor(rng.normal(size=(2,)), dtype="float64", requires_grad=True)
z = x @ W + b            # (4, 2); b is broadcast over the 4 rows
y = ta.tanh(z)
loss = (y ** 2).mean()
print("z = x @ W + b =\n", z.numpy().round(4))
print("loss =", round(loss.item(), 6))
loss.backward()
print("dloss/dW =\n", W.grad.numpy().round(6))
print("dloss/db =", b.grad.numpy().round(6))

# %% [markdown]
# The same gradients by hand, with the chain rule, in plain NumPy:
# dloss/dy = 2y/N, dy/dz = 1 - y^2, dz/dW = x^T (.), dz/db = sum over rows (undoing the broadcast).

# %%
xn, yn = x.numpy(), y.numpy()
g_z = (2 * yn / yn.size) * (1 - yn ** 2)
hand_W, hand_b = xn.T @ g_z, g_z.sum(axis=0)
gW, gb = W.grad.numpy(), b.grad.numpy()   # .grad is a Tensor; .numpy() brings it to the host
err_hand = max(np.abs(hand_W - gW).max(), np.abs(hand_b - gb).max())
print(f"largest difference from the hand-derived chain rule: {err_hand:.2e}")

# %% [markdown]
# ## 2. A value used twice gets the sum of both paths' gradients
# f(a) = a * a + a  ->  df/da = 2a + 1

# %%
lesson.section("2. gradients add up where a value is reused")
a = ta.tensor([1.5, -2.0], dtype="float64", requires_grad=True)
(a * a + a).sum().backward()
print("a =", a.numpy(), " grad =", a.grad, " expected 2a+1 =", 2 * a.numpy() + 1)
reuse_ok = np.allclose(a.grad.numpy(), 2 * a.numpy() + 1, rtol=0, atol=1e-15)

# %% [markdown]
# ## 3. Finite differences, op by op
# For each op f and a random weighting v of its outputs, L(x) = sum(v * f(x)). Autograd gives
# dL/dx; central differences give, for each element j, (L(x + eps e_j) - L(x - eps e_j)) / (2 eps).
# The relative error is max_j |autograd_j - numeric_j| / max_j |numeric_j|.

# %%
lesson.section("3. finite-difference table (float64, eps = 1e-6)")


def finite_difference(fn, inputs, v, eps=1e-6):
    """Numeric dL/dx for each input, perturbing one element at a time."""
    grads = []
    for t in inputs:
        flat = t.array.reshape(-1)      # a view: writing it changes t
        g = np.zeros(flat.size)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            plus = float((fn(*inputs).numpy() * v).sum())
            flat[j] = keep - eps
            minus = float((fn(*inputs).numpy() * v).sum())
            flat[j] = keep
            g[j] = (plus - minus) / (2 * eps)
        grads.append(g.reshape(t.shape))
    return grads


def autograd_gradient(fn, inputs, v):
    for t in inputs:
        t.grad = None
    (fn(*inputs) * ta.tensor(v, dtype="float64")).sum().backward()
    return [t.grad.numpy() for t in inputs]   # to the host, beside the numeric ones


def leaf(shape, lo=-1.0, hi=1.0):
    return ta.tensor(rng.uniform(lo, hi, size=shape), dtype="float64", requires_grad=True)


def away_from_ties(shape):
    """Distinct values, so that max/relu/abs are differentiable at every point we test."""
    vals = rng.permutation(np.linspace(-1, 1, int(np.prod(shape))) + 0.013)
    return ta.tensor(vals.reshape(shape), dtype="float64", requires_grad=True)


mask = rng.random((3, 5)) > 0.3
mask[:, 0] = True                       # every row keeps at least one key
OPS = [  # (name, function, input factory)
    ("add (broadcast)", lambda p, q: p + q, lambda: [leaf((3, 4)), leaf((4,))]),
    ("sub", lambda p, q: p - q, lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("mul (broadcast)", lambda p, q: p * q, lambda: [leaf((3, 4)), leaf((3, 1))]),
    ("div", lambda p, q: p / q, lambda: [leaf((3, 4)), leaf((3, 4), 0.5, 2.0)]),
    ("pow", lambda p: p ** 3, lambda: [leaf((3, 4))]),
    ("exp", ta.exp, lambda: [leaf((3, 4))]),
    ("log", ta.log, lambda: [leaf((3, 4), 0.2, 3.0)]),
    ("sqrt", ta.sqrt, lambda: [leaf((3, 4), 0.2, 3.0)]),
    ("tanh", ta.tanh, lambda: [leaf((3, 4), -2, 2)]),
    ("sigmoid", ta.sigmoid, lambda: [leaf((3, 4), -4, 4)]),
    ("relu", ta.relu, lambda: [away_from_ties((3, 4))]),
    ("abs", ta.abs, lambda: [away_from_ties((3, 4))]),
    ("matmul", lambda p, q: p @ q, lambda: [leaf((3, 4)), leaf((4, 2))]),
    ("batched matmul", lambda p, q: p @ q, lambda: [leaf((2, 3, 4)), leaf((2, 4, 5))]),
    ("sum (axis 1)", lambda p: p.sum(axis=1), lambda: [leaf((3, 4))]),
    ("mean", lambda p: p.mean(axis=0, keepdims=True), lambda: [leaf((3, 4))]),
    ("max (axis 1)", lambda p: p.amax(axis=1), lambda: [away_from_ties((3, 4))]),
    ("var", lambda p: p.var(axis=1, correction=0), lambda: [leaf((3, 4))]),
    ("logsumexp", lambda p: ta.logsumexp(p, axis=1), lambda: [leaf((3, 4), -3, 3)]),
    ("softmax", lambda p: ta.softmax(p, axis=-1), lambda: [leaf((3, 5), -3, 3)]),
    ("masked softmax", lambda p: ta.softmax(p, axis=-1, mask=mask), lambda: [leaf((3, 5), -3, 3)]),
    ("log_softmax", lambda p: ta.log_softmax(p, axis=-1), lambda: [leaf((3, 5), -3, 3)]),
    ("reshape", lambda p: p.reshape(4, 3), lambda: [leaf((3, 4))]),
    ("transpose", lambda p: p.T, lambda: [leaf((3, 4))]),
    ("getitem", lambda p: p[1:, ::2], lambda: [leaf((3, 4))]),
    ("concatenate", lambda p, q: ta.concatenate([p, q], axis=1), lambda: [leaf((3, 2)), leaf((3, 4))]),
    ("stack", lambda p, q: ta.stack([p, q], axis=0), lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("where", lambda p, q: ta.where(mask[:, :4], p, q), lambda: [leaf((3, 4)), leaf((3, 4))]),
    ("the small graph", lambda Wt, bt: (ta.tanh(x @ Wt + bt) ** 2).mean(), lambda: [leaf((3, 2)), leaf((2,))]),
]

print(f"  {'op':<17} {'inputs':<18} {'max |grad|':>10} {'max |diff|':>10} {'rel. error':>10}  gradcheck")
worst, rows, all_gradcheck = 0.0, {}, True
for name, fn, make in OPS:
    inputs = make()
    v = rng.uniform(0.5, 1.5, size=fn(*inputs).shape) * rng.choice([-1.0, 1.0], size=fn(*inputs).shape)
    exact = autograd_gradient(fn, inputs, v)
    numeric = finite_difference(fn, inputs, v)
    diff = max(np.abs(e - n).max() for e, n in zip(exact, numeric))
    scale = max(np.abs(n).max() for n in numeric)
    rel = diff / scale
    for k, t in enumerate(inputs):
        t.name = f"{name} input {k}"   # gradcheck names the failing input in its message
    checked = ta.gradcheck(fn, inputs, raise_exception=False)    # the library's own check
    all_gradcheck &= checked
    worst = max(worst, rel)
    rows[name] = rel
    shapes = " ".join("x".join(map(str, t.shape)) for t in inputs)
    print(f"  {name:<17} {shapes:<18} {scale:10.3g} {diff:10.2e} {rel:10.2e}  {'pass' if checked else 'FAIL'}")

# %% [markdown]
# Why the errors are around 1e-10 and not 0: central differences are exact only for polynomials of
# degree 2; for other functions they are off by about eps^2 * f''' / 6, and rounding adds about
# 1e-16 / eps. Both are far below 1e-6. A wrong backward formula would show errors near 1.

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(10, 4))
ax.bar(range(len(rows)), list(rows.values()), color="tab:blue")
ax.axhline(1e-6, color="red", ls="--", label="criterion: 1e-6")
ax.set_yscale("log")
ax.set_xticks(range(len(rows)), list(rows), rotation=70, ha="right")
ax.set(ylabel="relative error (log scale)", xlabel="op",
       title="autograd vs central finite differences, float64, per op")
ax.legend()
lesson.savefig(fig, "finite_difference_errors")

# %%
lesson.section("criterion")
lesson.record(per_op_relative_error=rows, worst_relative_error=worst, hand_chain_rule_error=err_hand,
              n_ops=len(OPS))
lesson.check("hand-derived chain rule matches backward", err_hand <= 1e-12, f"max diff {err_hand:.1e}")
lesson.check("reused value: gradients add", reuse_ok, f"grad {a.grad.tolist()}")
lesson.check(f"all {len(OPS)} ops: relative error <= 1e-6", worst <= 1e-6, f"worst {worst:.1e}")
lesson.check("tinyattn.gradcheck passes every op", all_gradcheck, f"{len(OPS)} ops checked")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/tensors_and_autograd.py`
# (run it with `python lessons/solutions/tensors_and_autograd.py`).
# 1. In section 2 use the value three times: f(a) = a*a*a + a*a. Write down df/da at a = [1.5, -2.0]
#    before running `backward()`. How many paths lead from a to f, and what does each add?
# 2. Replace `.mean()` by `.sum()` in the small graph of section 1. By what factor does dloss/dW
#    change, and is it the same factor for every entry? (Hint: how many elements does y have?)
# 3. Compute the central-difference gradient of tanh with eps = 1e-2, 1e-6 and 1e-12 and compare it
#    with autograd's. Which eps gives the smallest relative error, and roughly how large are the
#    other two? Predict them from the two error sources: truncation ~ eps² |f'''| / 6 and
#    rounding ~ 1e-16 / eps.
