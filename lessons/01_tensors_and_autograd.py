"""Lesson 01 - tensors and autograd.

What it teaches: a tinyattn Tensor is an array plus a record of how it was made. Calling
``backward()`` walks that record from the output back to the inputs and fills ``.grad`` with the
derivative of the output with respect to every input. We build a small graph, check its gradients
against the chain rule worked out by hand, then write the backward pass itself out - a tiny
engine of our own, micrograd-style: the graph's nodes in topological order, one loop over them in
reverse, each node adding its share to its parents' gradients - and show that it gives what the
library's ``backward()`` gives. Last, the independent check every op of tinyattn must pass:
central finite differences, (f(x + eps) - f(x - eps)) / (2 eps), in float64.

Reproduces: no document section (this is the engine the other lessons stand on).
Criterion: the hand-derived chain rule and the written-out backward loop both equal
``backward()`` to 1e-12; a reused value gets the sum of its paths' gradients (in tinyattn and in
our loop); on the small graph the relative error between autograd and central differences is at
most 1e-6 (float64), and tinyattn.gradcheck agrees.
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
# ## 2. The backward loop, written out
# What does ``backward()`` do? Every op it recorded knows its inputs (its "parents") and its local
# rule: given d(loss)/d(output), the d(loss)/d(input) for each parent. Backpropagation is then:
# 1. put the nodes in topological order (every node after the nodes it was computed from), by a
#    depth-first search from the loss;
# 2. set d(loss)/d(loss) = 1 and visit the nodes in *reverse* order, so that a node is visited
#    only after every node that uses it has handed it its gradient;
# 3. at each node apply the local rule and ADD (+=) the results to the parents' gradients: a value
#    used by two ops receives a contribution from each.
# Below is a whole engine of that kind in plain NumPy, with only the ops the small graph needs
# (the idea of Karpathy's micrograd, on arrays instead of scalars). tinyattn's
# ``Tensor.backward`` is the same loop, with one local rule per op class in ``tinyattn/ops/``;
# it gets its order another way: every op is numbered when it is applied, and an op is always
# applied after the ops that made its inputs, so "newest first" is also a reverse topological
# order. A heap of the ops that have received a gradient hands them out newest first, which
# saves the separate search over the graph (PyTorch's engine orders its work the same way).


# %%
class Node:
    """A value, the nodes it was made from, and how to send a gradient back to them."""

    def __init__(self, value, parents=(), op="leaf"):
        self.value, self.parents, self.op = np.asarray(value, dtype=float), parents, op
        self.grad = np.zeros_like(self.value)
        self.local_backward = lambda: None          # set by the op that made this node

    def __matmul__(self, other):
        out = Node(self.value @ other.value, (self, other), "matmul")

        def local_backward():
            self.grad += out.grad @ other.value.T
            other.grad += self.value.T @ out.grad
        out.local_backward = local_backward
        return out

    def __add__(self, other):                       # other may be broadcast over rows (a bias)
        out = Node(self.value + other.value, (self, other), "add")

        def local_backward():
            self.grad += out.grad
            other.grad += out.grad.sum(axis=0) if other.value.ndim < out.value.ndim else out.grad
        out.local_backward = local_backward
        return out

    def __mul__(self, other):
        out = Node(self.value * other.value, (self, other), "mul")

        def local_backward():
            self.grad += out.grad * other.value
            other.grad += out.grad * self.value
        out.local_backward = local_backward
        return out

    def tanh(self):
        out = Node(np.tanh(self.value), (self,), "tanh")

        def local_backward():
            self.grad += out.grad * (1 - out.value ** 2)
        out.local_backward = local_backward
        return out

    def square(self):
        out = Node(self.value ** 2, (self,), "square")

        def local_backward():
            self.grad += out.grad * 2 * self.value
        out.local_backward = local_backward
        return out

    def mean(self):
        out = Node(self.value.mean(), (self,), "mean")

        def local_backward():
            self.grad += np.full_like(self.value, out.grad / self.value.size)
        out.local_backward = local_backward
        return out


def topological_order(output):
    """Every node after all the nodes it was computed from (depth-first search, post-order)."""
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)
    visit(output)
    return order


def backward(output, output_grad=1.0):
    output.grad = np.ones_like(output.value) * output_grad       # d(output)/d(output) = 1
    for node in reversed(topological_order(output)):
        node.local_backward()                                     # adds into its parents' .grad


# %%
lesson.section("2. the backward loop, written out")
xh, Wh, bh = Node(x.numpy()), Node(W.numpy()), Node(b.numpy())
loss_h = (xh @ Wh + bh).tanh().square().mean()
label = {id(xh): "x", id(Wh): "W", id(bh): "b"}
order = topological_order(loss_h)
print("topological order:", " -> ".join(label.get(id(n), n.op) for n in order))
print("backward visits:  ", " -> ".join(label.get(id(n), n.op) for n in reversed(order)))
backward(loss_h)
loop_error = max(abs(float(loss_h.value) - loss.item()), np.abs(Wh.grad - gW).max(), np.abs(bh.grad - gb).max())
print(f"our loop vs tinyattn's backward(): the loss and both gradients agree to {loop_error:.1e} (our loop also "
      "fills x.grad; tinyattn skips x, which was made without requires_grad)")
print("dloss/db from our loop:", bh.grad.round(6), "(b was broadcast over 4 rows, so the add node summed "
      "its 4 row gradients)")

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(11, 3.2))
position = {id(n): (k, 0.0 if n.parents or label.get(id(n)) == "x" else 1.0) for k, n in enumerate(order)}
visit_number = {id(n): k + 1 for k, n in enumerate(reversed(order))}
for n in order:
    for parent in n.parents:                         # forward arrows: parent -> node
        ax.annotate("", xy=position[id(n)], xytext=position[id(parent)],
                    arrowprops=dict(arrowstyle="->", color="gray", shrinkA=22, shrinkB=22))
for n in order:
    px, py = position[id(n)]
    name = label.get(id(n), n.op)
    shape = "x".join(map(str, n.value.shape)) or "scalar"
    ax.text(px, py, f"{name}\n{shape}", ha="center", va="center", fontsize=10,
            bbox=dict(boxstyle="round", fc="tab:orange" if not n.parents else "tab:blue", alpha=0.35))
    ax.text(px, py - 0.42, f"backward #{visit_number[id(n)]}", ha="center", fontsize=8, color="tab:red")
ax.set_xlim(-0.6, len(order) - 0.4)
ax.set_ylim(-0.7, 1.4)
ax.axis("off")
ax.set_title("the small graph in topological order (left to right); the backward loop visits it right "
             "to left (red numbers)")
lesson.savefig(fig, "backward_loop")

# %% [markdown]
# ## 3. A value used twice gets the sum of both paths' gradients
# f(a) = a * a + a  ->  df/da = 2a + 1. a is used three times: as both inputs of the product, and
# in the sum. The ``+=`` in every local rule is what adds the three contributions up; with ``=``
# each use would overwrite the one before. We ask tinyattn and our loop.

# %%
lesson.section("3. gradients add up where a value is reused")
a = ta.tensor([1.5, -2.0], dtype="float64", requires_grad=True)
(a * a + a).sum().backward()
print("a =", a.numpy(), " grad =", a.grad, " expected 2a+1 =", 2 * a.numpy() + 1)
reuse_ok = np.allclose(a.grad.numpy(), 2 * a.numpy() + 1, rtol=0, atol=1e-15)
ah = Node([1.5, -2.0])
f_h = ah * ah + ah
backward(f_h)                                       # the .sum(): every element's gradient is 1
reuse_loop_ok = bool(np.array_equal(ah.grad, a.grad.numpy()))
print(f"our loop: grad {ah.grad} ({'equal to' if reuse_loop_ok else 'DIFFERENT from'} tinyattn's): "
      f"a ({ah.value}) from each side of the product, plus 1 from the sum")

# %% [markdown]
# ## 4. Finite differences: the check every op must pass
# Autograd can be consistently wrong: a wrong local rule gives a wrong gradient every time, and
# our loop above would copy it. The independent check needs no derivative at all: for each input
# element j, (loss(x + eps e_j) - loss(x - eps e_j)) / (2 eps). The relative error is
# max_j |autograd_j - numeric_j| / max_j |numeric_j|. We do it for the small graph here;
# `tests/test_autograd_table.py` does the same for 29 ops the lessons use, and
# `tests/test_gradcheck_registry.py` fails for any op of tinyattn that has no such check.

# %%
lesson.section("4. finite differences on the small graph (float64, eps = 1e-6)")


def finite_difference(fn, inputs, eps=1e-6):
    """Numeric d fn/dx for each input (fn returns a scalar), perturbing one element at a time."""
    grads = []
    for t in inputs:
        flat = t.array.reshape(-1)      # a view: writing it changes t
        g = np.zeros(flat.size)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            plus = fn(*inputs).item()
            flat[j] = keep - eps
            minus = fn(*inputs).item()
            flat[j] = keep
            g[j] = (plus - minus) / (2 * eps)
        grads.append(g.reshape(t.shape))
    return grads


small_graph = lambda Wt, bt: (ta.tanh(x @ Wt + bt) ** 2).mean()  # noqa: E731
numeric_W, numeric_b = finite_difference(small_graph, [W, b])
scale = max(np.abs(numeric_W).max(), np.abs(numeric_b).max())
fd_error = float(max(np.abs(numeric_W - gW).max(), np.abs(numeric_b - gb).max()) / scale)
W.name, b.name = "W", "b"                   # gradcheck names the failing input in its message
gradcheck_ok = ta.gradcheck(small_graph, [W, b], raise_exception=False)    # the library's own check
print(f"relative error, autograd vs central differences: {fd_error:.1e}; tinyattn.gradcheck: "
      f"{'pass' if gradcheck_ok else 'FAIL'}")

# %% [markdown]
# Why the error is around 1e-10 and not 0: central differences are exact only for polynomials of
# degree 2; for other functions they are off by about eps^2 * f''' / 6, and rounding adds about
# 1e-16 / eps. Both are far below 1e-6. A wrong backward formula would show errors near 1.

# %%
lesson.section("criterion")
lesson.record(hand_chain_rule_error=err_hand, backward_loop_error=loop_error,
              topological_order=[label.get(id(n), n.op) for n in order], reuse_grad=ah.grad,
              finite_difference_error=fd_error)
lesson.check("hand-derived chain rule matches backward", err_hand <= 1e-12, f"max diff {err_hand:.1e}")
lesson.check("written-out backward loop matches backward", loop_error <= 1e-12, f"max diff {loop_error:.1e}")
lesson.check("reused value: gradients add", reuse_ok and reuse_loop_ok, f"grad {a.grad.tolist()}")
lesson.check("central differences: relative error <= 1e-6, gradcheck passes", fd_error <= 1e-6 and gradcheck_ok,
             f"{fd_error:.1e}")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/tensors_and_autograd.py`
# (run it with `python lessons/solutions/tensors_and_autograd.py`).
# 1. In section 3 use the value more often: f(a) = a*a*a + a*a. Write down df/da at a = [1.5, -2.0]
#    before running `backward()`. How many paths lead from a to f, and what does each add?
# 2. Replace `.mean()` by `.sum()` in the small graph of section 1. By what factor does dloss/dW
#    change, and is it the same factor for every entry? (Hint: how many elements does y have?)
# 3. Compute the central-difference gradient of tanh with eps = 1e-2, 1e-6 and 1e-12 and compare it
#    with autograd's. Which eps gives the smallest relative error, and roughly how large are the
#    other two? Predict them from the two error sources: truncation ~ eps² |f'''| / 6 and
#    rounding ~ 1e-16 / eps.
