"""Every lesson's exercises have solutions, and every solution's answer is right.

The solutions live in lessons/solutions/<slug>.py (the lesson's file name without its number) and
compute their answers with tinyattn. Each test here calls them and checks the answer by another
route: a property the answer must have, a formula, or a recomputation in plain NumPy. No number is
copied from a solution's output.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = os.path.join(ROOT, "lessons")
SOLUTIONS = os.path.join(LESSONS, "solutions")


def load(slug):
    """Import lessons/solutions/<slug>.py as a module."""
    if SOLUTIONS not in sys.path:
        sys.path.insert(0, SOLUTIONS)
    spec = importlib.util.spec_from_file_location(f"solution_{slug}", os.path.join(SOLUTIONS, f"{slug}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lesson_files():
    return sorted(f for f in os.listdir(LESSONS) if re.match(r"\d\d_.*\.py$", f))


def solution_slugs():
    return sorted(f[:-3] for f in os.listdir(SOLUTIONS) if f.endswith(".py") and not f.startswith("_"))


# --------------------------------------------------------------------------- the wiring
def test_every_lesson_ends_with_exercises_that_name_existing_solutions():
    referenced = set()
    for name in lesson_files():
        with open(os.path.join(LESSONS, name), encoding="utf-8") as f:
            text = f.read()
        cells = text.split("# %%")
        last = cells[-1]
        assert last.startswith(" [markdown]") and "Exercises" in last, \
            f"{name}: the last cell must be the markdown 'Exercises' cell"
        slugs = re.findall(r"lessons/solutions/(\w+)\.py", last)
        assert slugs, f"{name}: its exercises name no solution file"
        for slug in slugs:
            assert os.path.exists(os.path.join(SOLUTIONS, f"{slug}.py")), f"{name} names a missing solution {slug}"
        referenced.update(slugs)
    assert set(solution_slugs()) <= referenced, "solution files no lesson names: " \
        f"{sorted(set(solution_slugs()) - referenced)}"


def test_every_solution_has_a_test_and_every_exercise_is_tested():
    with open(__file__, encoding="utf-8") as f:
        me = f.read()
    for slug in solution_slugs():
        module = load(slug)
        exercises = sorted(n for n in dir(module) if re.fullmatch(r"exercise_\d+", n))
        assert 2 <= len(exercises) <= 3, f"{slug}: {len(exercises)} exercises (two or three per lesson)"
        for n in exercises:
            assert f"def test_{slug}_{n}(" in me, f"no test_{slug}_{n} in tests/test_solutions.py"


def test_a_solution_runs_as_a_script_and_prints_its_answers():
    import subprocess
    proc = subprocess.run([sys.executable, os.path.join(SOLUTIONS, "sigmoid_vs_softmax.py")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("exercise_")] == \
        ["exercise_1", "exercise_2", "exercise_3"]
    assert proc.stdout.count("  answer: ") == 3


# --------------------------------------------------------------------------- lesson 01
def test_tensors_and_autograd_exercise_1():
    r = load("tensors_and_autograd").exercise_1()
    a = np.array(r["a"])
    np.testing.assert_allclose(r["grad"], 3 * a ** 2 + 2 * a, rtol=0, atol=1e-12)


def test_tensors_and_autograd_exercise_2():
    r = load("tensors_and_autograd").exercise_2()
    # sum = N * mean, so every gradient entry scales by the number of elements of y (4 x 2)
    assert r["elements_of_y"] == 4 * 2
    assert r["ratio_min"] == pytest.approx(8, rel=1e-12) and r["ratio_max"] == pytest.approx(8, rel=1e-12)


def test_tensors_and_autograd_exercise_3():
    err = load("tensors_and_autograd").exercise_3()
    assert min(err, key=err.get) == 1e-6                      # the sweet spot between the two errors
    # truncation: eps² |f'''| / 6 with |f'''| <= 2 for tanh -> at most ~3e-5 relative at eps = 1e-2
    assert 1e-6 < err[1e-2] < 1e-3
    # rounding: ~1e-16 / eps, i.e. ~1e-4 at eps = 1e-12
    assert 1e-7 < err[1e-12] < 1e-2
    assert err[1e-6] < 1e-8


# --------------------------------------------------------------------------- lesson 02
def test_sigmoid_vs_softmax_exercise_1():
    r = load("sigmoid_vs_softmax").exercise_1()
    A, steps = np.array(r["weights"]), np.array(r["steps"])
    # step 1 is the total weight of the row; step 2 adds the weight of x3 once more (its extra 1)
    np.testing.assert_allclose(steps[:, 0], A.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(steps[:, 1] - steps[:, 0], A[:, 2], rtol=1e-12)
    assert (steps[:, 1] > steps[:, 0]).all()                   # no longer equal steps
    X = np.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 10.]])
    np.testing.assert_allclose(A, 1 / (1 + np.exp(-(X @ X.T))), rtol=1e-12)


def test_sigmoid_vs_softmax_exercise_2():
    r = load("sigmoid_vs_softmax").exercise_2()
    X = np.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]]) / 10
    S = X @ X.T
    e = np.exp(S - S.max(axis=1, keepdims=True))
    np.testing.assert_allclose(r["largest_weight_per_row"], (e / e.sum(axis=1, keepdims=True)).max(axis=1), rtol=1e-12)
    assert max(r["largest_weight_per_row"]) < 0.9                 # no longer one-hot


def test_sigmoid_vs_softmax_exercise_3():
    c = load("sigmoid_vs_softmax").exercise_3()
    X = np.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]])

    def w13(c):   # x1's weight on x3 in closed form: scores c² (x1.x_j) = c² [14, 32, 50]
        s = c * c * (X @ X[0])
        return np.exp(s[2]) / np.exp(s).sum()
    assert w13(c) >= 0.9 and w13(c - 0.01) < 0.9


# --------------------------------------------------------------------------- lesson 03
def test_attention_pooling_exercise_1():
    sol = load("attention_pooling")
    r = sol.exercise_1()
    x_train, _, x_test = sol.lesson_data()
    no_neighbour = (np.abs(x_test[:, None] - x_train[None, :]) <= 0.05).sum(axis=1) == 0
    assert r["empty_rows"] == int(no_neighbour.sum()) > 0
    assert r["predictions_of_empty_rows"] == [0.0] * r["empty_rows"]      # all-zero weights, never NaN


def test_attention_pooling_exercise_2():
    sol = load("attention_pooling")
    pred = np.array(sol.exercise_2())
    x_train, y_train, x_test = sol.lesson_data()
    d2 = np.sort((x_test[:, None] - x_train[None, :]) ** 2, axis=1)
    order = np.argsort((x_test[:, None] - x_train[None, :]) ** 2, axis=1)
    nearest = y_train[order[:, 0]]
    clear = (d2[:, 1] - d2[:, 0]) / (2 * 0.01 ** 2) > 20          # the runner-up gets < e^-20 of the weight
    assert clear.sum() >= 20
    np.testing.assert_allclose(pred[clear], nearest[clear], atol=1e-6)
    two = np.sort(np.stack([y_train[order[:, 0]], y_train[order[:, 1]]]), axis=0)
    far = d2[:, 2] - d2[:, 0] > 2 * 0.01 ** 2 * 40                # elsewhere: between the two nearest y
    assert ((pred[far] >= two[0, far] - 1e-9) & (pred[far] <= two[1, far] + 1e-9)).all()


def test_attention_pooling_exercise_3():
    sol = load("attention_pooling")
    pred = np.array(sol.exercise_3())
    _, y_train, _ = sol.lesson_data()
    np.testing.assert_allclose(pred, y_train.mean(), atol=5e-3)   # the constant kernel's answer


# --------------------------------------------------------------------------- lesson 04
def test_masks_and_irregular_sequences_exercise_1():
    # masked weights are exactly 0 and 0 * 100 = 0: the outputs must not move at all
    assert load("masks_and_irregular_sequences").exercise_1() == 0.0


def test_masks_and_irregular_sequences_exercise_2():
    r = load("masks_and_irregular_sequences").exercise_2()
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.float64(0.0) * np.nan)              # IEEE: a zero weight does not cancel NaN
    assert r["all_finite"] is False and r["nan_entries"] == 3 * 4   # every output entry of every real token


def test_masks_and_irregular_sequences_exercise_3():
    shares = load("masks_and_irregular_sequences").exercise_3()
    for T, share in shares.items():
        assert share == pytest.approx(T * (T - 1) / 2 / T ** 2, abs=1e-15)


# --------------------------------------------------------------------------- lesson 05
def _numpy_saturated_share(q, k):
    s = (q @ k.T)[:, 0, :]
    w = np.exp(s - s.max(axis=1, keepdims=True))
    return float(((w / w.sum(axis=1, keepdims=True)).max(axis=1) > 0.99).mean())


def test_scoring_functions_exercise_1():
    sol = load("scoring_functions")
    r = sol.exercise_1()
    dk = r["d_k"]
    assert _numpy_saturated_share(*sol.draws(dk)) >= 0.10
    assert all(_numpy_saturated_share(*sol.draws(d)) < 0.10 for d in range(max(1, dk - 3), dk))
    assert 8 < dk < 64                       # between the lesson's table rows that bracket 10%


def test_scoring_functions_exercise_2():
    r = load("scoring_functions").exercise_2()
    # Var(q_i k_i) = Var(q_i) Var(k_i) = 16, so std(q.k / sqrt(d)) = 4 whatever d is
    for std in r.values():
        assert std == pytest.approx(4.0, rel=0.05)


# --------------------------------------------------------------------------- lesson 06
def test_global_local_soft_hard_exercise_1():
    sol = load("global_local_soft_hard")
    r = sol.exercise_1()
    assert r["window_positions"] == list(range(4, 15))
    marks = sol.lesson_test_marks()
    share = float((np.abs(marks - 9) <= 5).mean())
    assert r["share_inside"] == pytest.approx(share, abs=1e-12)
    assert abs(share - 11 / 20) < 0.04                         # 11 of 20 uniform positions, 2000 draws
    assert r["accuracy_ceiling"] == pytest.approx(share + (1 - share) / 32, abs=1e-12)


def test_global_local_soft_hard_exercise_2():
    r = load("global_local_soft_hard").exercise_2()
    s = np.arange(20)
    inside = np.abs(s - 9) <= 3
    expected = np.where(inside, 1 / 7 * np.exp(-(s - 9) ** 2 / (2 * 1.5 ** 2)), 0.0)
    np.testing.assert_allclose(r["weights"], expected, rtol=1e-12, atol=0)
    assert r["ratio_12_to_9"] == pytest.approx(np.exp(-2), rel=1e-12)
    assert r["row_sum"] < 1                                     # the Gaussian is not renormalised


def test_global_local_soft_hard_exercise_3():
    r = load("global_local_soft_hard").exercise_3()
    s = np.array(r["scores"])
    p = np.exp(s) / np.exp(s).sum()
    for name, advantage in (("advantage_1", 1.0), ("advantage_0", 0.0)):
        onehot = np.eye(5)[r[name]["sampled"]]
        # loss = -(R - b) log p_j  ->  d loss / d s = -(R - b) (onehot_j - p)
        np.testing.assert_allclose(r[name]["grad"], -advantage * (onehot - p), atol=1e-12)
    g = np.array(r["advantage_1"]["grad"])
    assert g[r["advantage_1"]["sampled"]] < 0 and (np.delete(g, r["advantage_1"]["sampled"]) > 0).all()


# --------------------------------------------------------------------------- lesson 07
def test_sequential_vs_parallel_exercise_1():
    r = load("sequential_vs_parallel").exercise_1()
    s = np.array(r["scores"])
    np.testing.assert_allclose(r["weights"], np.exp(s) / np.exp(s).sum(), rtol=1e-12)
    assert r["y_shape"] == [20] and r["output_shape"] == [5]


def _numpy_attention(Q, K, V, causal=False):
    S = Q @ K.T / np.sqrt(Q.shape[-1])
    if causal:
        S = np.where(np.tril(np.ones(S.shape, dtype=bool)), S, -np.inf)
    W = np.exp(S - S.max(axis=1, keepdims=True))
    return (W / W.sum(axis=1, keepdims=True)) @ V


def test_sequential_vs_parallel_exercise_2():
    r = load("sequential_vs_parallel").exercise_2()
    perm, base = np.array(r["perm"]), np.array(r["base"])
    np.testing.assert_allclose(r["keys_shuffled"], base, atol=1e-12)      # a set of keys, not a sequence
    np.testing.assert_allclose(r["queries_shuffled"], base[perm], atol=1e-12)   # rows follow the queries
    rng = np.random.default_rng(0)
    Q, K, V = (rng.normal(size=(12, 8)) for _ in range(3))
    np.testing.assert_allclose(base, _numpy_attention(Q, K, V), atol=1e-12)


def test_sequential_vs_parallel_exercise_3():
    r = load("sequential_vs_parallel").exercise_3()
    rng = np.random.default_rng(0)
    Q, K, V = (rng.normal(size=(12, 8)) for _ in range(3))
    expected = _numpy_attention(Q, K, V, causal=True)
    np.testing.assert_allclose(r["loop"], expected, atol=1e-12)
    np.testing.assert_allclose(r["batched"], expected, atol=1e-12)


# --------------------------------------------------------------------------- lesson 08
def test_lstm_sigmoid_gated_attention_exercise_1():
    mse = load("lstm_sigmoid_gated_attention").exercise_1()
    assert mse == pytest.approx(2 ** 2 / 12, rel=0.02)          # variance of U[0, w) is w²/12


def test_lstm_sigmoid_gated_attention_exercise_2():
    r = load("lstm_sigmoid_gated_attention").exercise_2()
    assert r["best_constant"] == pytest.approx(0.5, abs=0.015)   # E[(y - c)²] is smallest at c = E[y]
    assert r["best_mse"] == pytest.approx(1 / 12, rel=0.02)


def test_lstm_sigmoid_gated_attention_exercise_3():
    r = load("lstm_sigmoid_gated_attention").exercise_3()
    for bias, var in r.items():
        gate = 1 / (1 + np.exp(-bias))
        assert var == pytest.approx(19 * gate ** 2 / 3, rel=0.05)   # 19 independent terms, each a² / 3


# --------------------------------------------------------------------------- lesson 09
def test_seq2seq_date_translation_exercise_1():
    sol = load("seq2seq_date_translation")
    r = sol.exercise_1()
    assert r["same_tokens"] and r["max_weight_change"] <= 1e-6
    w30 = np.array(r["weights_30"])
    lengths = (sol.sources(30) != sol.PAD).sum(axis=1)
    for b, n in enumerate(lengths):
        assert (w30[b, :, n:] == 0).all()                        # padding gets exactly no weight
    np.testing.assert_allclose(w30.sum(axis=-1), 1, atol=1e-5)


def test_seq2seq_date_translation_exercise_2():
    sol = load("seq2seq_date_translation")
    # additive adds W_q and W_k (hidden x hidden each) and v (hidden); dot has no parameters
    assert sol.exercise_2() == 2 * sol.HIDDEN ** 2 + sol.HIDDEN


def test_seq2seq_date_translation_exercise_3():
    r = load("seq2seq_date_translation").exercise_3()
    assert r["forced_argmax"] == r["greedy"]     # the same inputs at every step give the same logits
    assert r["max_weight_difference"] <= 1e-6


# --------------------------------------------------------------------------- lesson 10
def test_self_attention_multihead_exercise_1():
    counts = load("self_attention_multihead").exercise_1()
    assert set(counts.values()) == {4 * 32 ** 2 + 4 * 32}       # heads split the width; they add nothing


def test_self_attention_multihead_exercise_2():
    r = load("self_attention_multihead").exercise_2()
    np.testing.assert_allclose(r["query_0"], np.full(6, 1 / 6), rtol=0, atol=1e-15)   # all scores 0
    expected = np.full(6, 1.0)
    expected[2] = np.exp(4.0)
    np.testing.assert_allclose(r["query_3"], expected / expected.sum(), rtol=1e-12)


def test_self_attention_multihead_exercise_3():
    # 1/√h equals 1/√(64/h) exactly when h² = 64
    assert load("self_attention_multihead").exercise_3() == [h for h in (1, 2, 4, 8, 16, 32, 64) if h * h == 64]


# --------------------------------------------------------------------------- lesson 11
def test_positional_encoding_exercise_1():
    r = load("positional_encoding").exercise_1()
    omega = 1.0 / 10000 ** (np.arange(0, 64, 2) / 64)
    expected = np.cos(5 * omega).sum()       # sin a sin b + cos a cos b = cos(a - b), per column pair
    assert r["min"] == pytest.approx(expected, abs=1e-9) and r["max"] == pytest.approx(expected, abs=1e-9)


def test_positional_encoding_exercise_2():
    acc = load("positional_encoding").exercise_2()
    assert acc[12] >= 0.95                   # learned positions work at the trained length
    assert acc[16] < 0.5 * acc[12]           # rows 12..15 never received a gradient


def test_positional_encoding_exercise_3():
    message = load("positional_encoding").exercise_3()
    assert message is not None and "16" in message and "out of range" in message


# --------------------------------------------------------------------------- lesson 12
def test_transformer_encoder_exercise_1():
    for n, y in load("transformer_encoder").exercise_1().items():
        m = n - 1            # mean 1/n, biased variance (n - 1)/n², so y = [√(n-1), -1/√(n-1), ...]
        expected = np.array([np.sqrt(m)] + [-1 / np.sqrt(m)] * m)
        np.testing.assert_allclose(y, expected, rtol=2e-4 * n)   # eps = 1e-5 moves it by ~eps n²/2


def test_transformer_encoder_exercise_2():
    r = load("transformer_encoder").exercise_2()
    for c, y in r.items():
        x = np.array([c, 0, 0, 0])
        np.testing.assert_allclose(y, (x - x.mean()) / np.sqrt(x.var() + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(r[1000.0], [np.sqrt(3)] + [-1 / np.sqrt(3)] * 3, rtol=1e-9)  # invariant
    assert r[0.001][0] < 0.25                                       # ... until eps dominates the variance


def test_transformer_encoder_exercise_3():
    r = load("transformer_encoder").exercise_3()
    out, x = r["output"].astype(np.float64), r["input"].astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=-1), 0, atol=1e-5)       # the last LayerNorm: mean 0 ...
    np.testing.assert_allclose(out.std(axis=-1), 1, atol=1e-4)        # ... and RMS 1, whatever the input

    def within_cosine(a):
        u = a / np.linalg.norm(a, axis=-1, keepdims=True)
        c = np.einsum("bid,bjd->bij", u, u)
        return c[:, ~np.eye(a.shape[1], dtype=bool)].mean()
    assert abs(within_cosine(x)) < 0.1 and within_cosine(out) > 0.9     # the tokens collapse together


# --------------------------------------------------------------------------- encoder-decoder (masks, decoding)
def test_encoder_decoder_exercise_1():
    r = load("encoder_decoder").exercise_1()
    assert r["with causal mask"] == 0.0            # masked weights are exactly 0: the past cannot move
    assert r["without causal mask"] > 1e-3


def test_encoder_decoder_exercise_2():
    r = load("encoder_decoder").exercise_2()
    assert r["with padding masks"] <= 1e-5          # only rounding: padding keys get weight 0
    assert r["without padding masks"] > 1e-3


def test_encoder_decoder_exercise_3():
    for n, loss in load("encoder_decoder").exercise_3().items():
        # cross_entropy of probabilities p = one-hot: -log(e / (e + n - 1)) = ln(e + n - 1) - 1
        assert loss == pytest.approx(np.log(np.e + n - 1) - 1, rel=1e-9)


# --------------------------------------------------------------------------- Noam schedule and label smoothing
def test_noam_and_label_smoothing_exercise_1():
    r = load("noam_and_label_smoothing").exercise_1()
    assert r["peak_step"] == 400
    assert r["peak_lr"] == pytest.approx(0.5 * 64 ** -0.5 * 400 ** -0.5, rel=1e-12)
    assert r["lr_at_1500"] == pytest.approx(0.5 * 64 ** -0.5 * 1500 ** -0.5, rel=1e-12)


def test_noam_and_label_smoothing_exercise_2():
    r = load("noam_and_label_smoothing").exercise_2()
    q = np.full(18, 0.2 / 18)
    q[7] += 0.8
    assert r["at_best_logits"] == pytest.approx(-(q * np.log(q)).sum(), rel=1e-10)   # the target's entropy
    assert r["confident"] > r["at_best_logits"] + 1


def test_noam_and_label_smoothing_exercise_3():
    r = load("noam_and_label_smoothing").exercise_3()
    assert r["p_right"] == pytest.approx(0.9 + 0.1 / 18, abs=1e-3)   # 1 - ε + ε/V: the smoothed target
    assert r["p_other"] == pytest.approx(0.1 / 18, abs=1e-4)


# --------------------------------------------------------------------------- vanishing gradients
def test_vanishing_gradients_exercise_1():
    for rho, ratio in load("vanishing_gradients").exercise_1().items():
        assert ratio == pytest.approx(rho ** 63, rel=1e-9)       # dh_63/dx_0 = ρ^63 I


def test_vanishing_gradients_exercise_2():
    r = load("vanishing_gradients").exercise_2()
    # y = r · mean_t(x_t): dy/dx_t = r / T for every t; the key path is multiplied by the zero query
    np.testing.assert_allclose(r["norms"], np.full(64, r["readout_norm"] / 64), rtol=1e-12)


# --------------------------------------------------------------------------- making it fast
def test_making_it_fast_exercise_1():
    r = load("making_it_fast").exercise_1()
    size = r["input_MiB"]
    assert r["numba"] == pytest.approx(size, rel=0.05)          # fused: nothing but the output
    assert r["numpy"] >= 1.9 * size                              # plain: at least one full temporary more


def test_making_it_fast_exercise_2():
    r = load("making_it_fast").exercise_2()
    cell, layer = r["LSTMCell loop"], r["nn.LSTM"]
    assert cell[2] == 2 * cell[1] and cell[50] == 50 * cell[1] and cell[1] > 5   # ops per step, every step
    assert layer[1] == layer[2] == layer[50] <= 3                                # one op for the whole sequence


# --------------------------------------------------------------------------- long sequences, sparse
def test_long_sequences_sparse_exercise_1():
    assert load("long_sequences_sparse").exercise_1() == int(np.ceil(63 / 8))   # each layer reaches 8 further back


def test_long_sequences_sparse_exercise_2():
    r = load("long_sequences_sparse").exercise_2()
    dense, streaming = r["dense"], r["memory-efficient"]
    assert dense[1024] / dense[512] > 3.3                              # the T x T matrices: ~4x
    assert 1.7 < streaming[4096] / streaming[2048] < 2.3               # one number per query: ~2x


def test_long_sequences_sparse_exercise_3():
    r = load("long_sequences_sparse").exercise_3()
    T, s = 1024, 32
    # row i: the s most recent keys (fewer at the start), plus every s-th key further back
    expected = sum(min(i + 1, s) + (max(0, i - s) // s + 1 if i >= s else 0) for i in range(T))
    assert r["nonzero_weights"] == expected
    assert r["causal_pairs"] == T * (T + 1) // 2 and r["nonzero_weights"] < 0.1 * r["causal_pairs"]


# --------------------------------------------------------------------------- same code on a GPU (run on the CPU)
def test_same_code_on_gpu_exercise_1():
    relative = load("same_code_on_gpu").exercise_1()
    eps32 = np.finfo(np.float32).eps
    assert eps32 / 10 < relative < 1e3 * eps32 < 1e-3              # float32 rounding, far inside 1e-3


def test_same_code_on_gpu_exercise_2():
    import tinyattn as ta
    r = load("same_code_on_gpu").exercise_2(steps=3)
    attention, training = r["attention forward + backward"], r["3 training steps with loss.item()"]
    assert attention.get("sync", 0) == 0 and attention.get("d2h", 0) == 0   # no hidden waits
    assert attention.get("h2d", 0) == 3                                     # q, k and v uploaded once
    assert training.get("sync", 0) == 3 and training.get("d2h", 0) == 0     # exactly one per .item()
    assert ta.get_backend() == "numpy"                                      # the stand-in was removed


# --------------------------------------------------------------------------- ViT
def test_attention_over_images_exercise_1():
    for patch, r in load("attention_over_images").exercise_1().items():
        assert r["tokens_with_cls"] == (16 // patch) ** 2 + 1
        assert r["pixels_per_patch"] == patch * patch
        assert r["patch_embed_parameters"] == patch * patch * 32 + 32     # weight and bias


def test_attention_over_images_exercise_2():
    r = load("attention_over_images").exercise_2()
    assert r["without positions"] <= 1e-12      # [CLS] pools a set: the order of the patches is invisible
    assert r["with positions"] > 1e-3


# --------------------------------------------------------------------------- decoder-only model
def test_decoder_only_exercise_1():
    r = load("decoder_only").exercise_1()
    pairs = [(a, b) for a in range(100) for b in range(100)]
    carry = sum(a % 10 + b % 10 >= 10 for a, b in pairs) / len(pairs)
    # the hundreds digit of a + b, against what it would be if the ones digits were ignored
    first = sum((a + b) // 100 != (10 * (a // 10 + b // 10)) // 100 for a, b in pairs) / len(pairs)
    assert r["carry_share"] == pytest.approx(carry, abs=1e-12)
    assert r["first_digit_needs_carry_share"] == pytest.approx(first, abs=1e-12)
    assert r["first_digit_needs_carry_share"] > 0               # so hundreds-first needs look-ahead


def test_decoder_only_exercise_2():
    r = load("decoder_only").exercise_2()
    assert r["causal"] == 0.0 and r["no mask"] > 1e-3


def test_decoder_only_exercise_3():
    loss = load("decoder_only").exercise_3()
    assert abs(loss - np.log(12)) < 0.25          # near-uniform predictions over the 12 tokens


# --------------------------------------------------------------------------- the KV cache (lesson 21)
def test_kv_cache_exercise_1():
    r = load("kv_cache").exercise_1()
    P, n = r["prompt"], r["new"]
    assert r["without cache"] == sum(range(P, P + n))        # step t reruns all P + t tokens
    assert r["with cache"] == P + n - 1                      # the prompt once, then one per step


def test_kv_cache_exercise_2():
    r = load("kv_cache").exercise_2()
    assert r["shrink"] == 4                                  # 4 key/value heads -> 1
    # 2 layers x (k, v) x 1 head x 8 features x 8 bytes for multi-query
    assert r[1]["bytes_per_token"] == 2 * 2 * 1 * 8 * 8
    assert r[4]["identical"] and r[1]["identical"]


def test_kv_cache_exercise_3():
    r = load("kv_cache").exercise_3()
    per_key = 2 * r["heads"] * r["head_dim"] * 8
    sizes = np.array(r["nbytes"]) // per_key
    np.testing.assert_array_equal(sizes, np.minimum(np.arange(1, 101), 2 + 16))   # sinks + window


# --------------------------------------------------------------------------- grouped-query attention (lesson 23)
def test_grouped_query_attention_exercise_1():
    r = load("grouped_query_attention").exercise_1()
    assert r["gqa_bytes"] == 2 * 80 * 8 * 128 * 2 and r["mha_bytes"] == 2 * 80 * 64 * 128 * 2
    assert r["ratio"] == 64 / 8


def test_grouped_query_attention_exercise_2():
    r = load("grouped_query_attention").exercise_2()
    # averaging heads that were trained apart destroys what they did: far worse than the parent,
    # and worse the more heads are averaged into one
    assert r[2] > r["mha"] + 1.0 and r[1] > r[2]
    assert r["mha"] < 0.7


def test_grouped_query_attention_exercise_3():
    r = load("grouped_query_attention").exercise_3()
    d, D, L, H = r["d"], r["head_dim"], r["layers"], r["heads"]
    kv_weights = lambda kv: 2 * (d * kv * D + kv * D)                      # noqa: E731
    assert r["params_mha"] - r["params_plain_mqa"] == L * (kv_weights(H) - kv_weights(1))
    assert np.isfinite(r["loss_plain_mqa"]) and r["loss_plain_mqa"] > 0.565   # above the noise floor


# --------------------------------------------------------------------------- rotary and ALiBi positions (lesson 22)
def test_rope_and_alibi_exercise_1():
    r = load("rope_and_alibi").exercise_1()
    for base, pairs in r.items():
        theta = base ** (-np.arange(0, 8, 2) / 8)                       # θ_m = base^(-2m/d), d = 8
        np.testing.assert_allclose(pairs["positions_per_turn"], 2 * np.pi / theta, rtol=1e-12)
        np.testing.assert_allclose(pairs["angle_over_offset"], 6 * theta, rtol=1e-12)
        np.testing.assert_allclose(pairs["separation"], 2 * np.abs(np.sin(3 * theta)), rtol=1e-9)  # |e^{ia} - 1|
    # the fastest pair turns 6 rad over 6 positions, almost a full turn: it is not the one that
    # separates positions 0 and 6 best (pair 1 is, at 0.6 rad); the slowest pair barely moves
    sep = r[10000.0]["separation"]
    assert int(np.argmax(sep)) == 1 and sep[0] < sep[1] and sep[3] < 0.01


def test_rope_and_alibi_exercise_2():
    r = load("rope_and_alibi").exercise_2()
    # the paper's rule for 12 heads: the 8 slopes of 8 heads, then every other slope of 16 heads
    expected = [2.0 ** -(h + 1) for h in range(8)] + [2.0 ** -(0.5 * (2 * j + 1)) for j in range(4)]
    np.testing.assert_allclose(r["slopes"], expected, rtol=1e-12)
    np.testing.assert_allclose(r["penalty"], 10 * np.array(expected), rtol=1e-12)
    assert r["steepest_head"] == 8 and r["largest_penalty"] == pytest.approx(10 / np.sqrt(2), rel=1e-12)


def test_rope_and_alibi_exercise_3():
    message = load("rope_and_alibi").exercise_3()
    assert message is not None and message.startswith("ValueError")
    assert "max_len=16" in message and "position 31" in message and "larger max_len" in message


# --------------------------------------------------------------------------- linear attention (lesson 24)
def test_linear_attention_exercise_1():
    r = load("linear_attention").exercise_1()
    d = r["d"]
    assert r["state_bytes"] == (d * d + d) * 4                         # S and z, float32
    np.testing.assert_array_equal(r["kv_bytes"], 2 * np.arange(1, 65) * d * 4)   # k and v per token
    assert r["first_T_larger"] == (d * d + d) // (2 * d) + 1 == 33     # 2·T·64 > 4160 from T = 33


def test_linear_attention_exercise_2():
    r = load("linear_attention").exercise_2()
    q, k, v = (np.asarray(r["inputs"][n]) for n in ("q", "k", "v"))
    # the identity map's weights q_i·k_j, recomputed in NumPy: some are negative, and some row sums
    # (the denominators) come close to zero, which is what throws outputs out of range
    A = np.tril(q @ k.T)
    assert (A < 0).any() and np.abs(A.sum(axis=1)).min() < 0.5
    y = (A @ v) / (A.sum(axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(r["identity"]["largest_output"], np.abs(y).max(), rtol=1e-9)
    assert r["elu"]["inside"] is True and r["identity"]["inside"] is False
    assert r["elu"]["largest_output"] <= r["largest_value"] < r["identity"]["largest_output"]


def test_linear_attention_exercise_3():
    r = load("linear_attention").exercise_3()
    assert r["onehot_error"] < 1e-5                 # S = Σ e_j v_jᵀ: e_iᵀ S = v_i; only eps remains
    keys, values, d = np.asarray(r["keys"]), np.asarray(r["values"]), r["d"]
    assert np.linalg.matrix_rank(keys) == d < len(keys)               # 32 keys in 16 dimensions
    s = np.linalg.svd(values, compute_uv=False)
    assert r["best_possible_relative_error"] == pytest.approx(np.sqrt((s[d:] ** 2).sum() / (s ** 2).sum()))
    assert r["best_possible_relative_error"] > 0.2
    assert r["random_relative_error"] >= r["best_possible_relative_error"]


# --------------------------------------------------------------------------- streaming attention with sinks (lesson 25)
def test_streaming_attention_sinks_exercise_1():
    r = load("streaming_attention_sinks").exercise_1()
    per_token = 2 * 32 * 8 * 128 * 2                         # k and v, layers, heads, features, float16
    assert r["streaming_keys"] == 4092 + 4
    assert r["streaming_bytes"] == per_token * 4096 == 512 * 2 ** 20
    assert r["full_bytes"] == per_token * r["tokens"]        # 13.1 GB: 25x the streaming cache


def test_streaming_attention_sinks_exercise_2():
    r = load("streaming_attention_sinks").exercise_2()
    # each layer reaches W - 1 further back: the last token sees T-1-L(W-1) .. T-1 and nothing before
    first = r["T"] - 1 - r["layers"] * (r["window"] - 1)
    assert r["earliest"] == first
    assert r["moved"] == [j >= first for j in range(r["T"])]


def test_streaming_attention_sinks_exercise_3():
    r = load("streaming_attention_sinks").exercise_3()
    assert r["kept_tokens"] == 7
    assert r["rope"] < 1e-12            # rotary scores depend on offsets only: the absolute start is invisible
    assert r["learned"] > 1e-3          # learned positions: the same tokens at other positions
