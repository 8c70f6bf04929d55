"""Lessons 10-20 (the file keeps its first name): each lesson's criterion, asserted on the numbers it wrote to result.json.

Same scheme as tests/test_lessons.py: run the script once in a subprocess (as a learner would),
then check the exit status, the CRITERION line and the measured values themselves.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lessons import assert_passed, run_lesson  # noqa: E402

pytestmark = pytest.mark.slow


def test_12_transformer_encoder(tmp_path):
    proc, r = run_lesson("12_transformer_encoder", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    np.testing.assert_allclose(v["layernorm_1000"], [3 ** 0.5, -(3 ** -0.5), -(3 ** -0.5), -(3 ** -0.5)], atol=1e-4)
    assert v["sort_sequence_accuracy"]["post-norm"] >= 0.99 and v["n_test"] == 229
    rms = v["activation_rms"]
    assert max(abs(x - 1) for x in rms["post-norm (2017 paper)"]) < 0.05      # LayerNorm after every layer
    assert rms["pre-norm"][-1] > rms["pre-norm"][0]                             # residual stream grows
    assert len(r["figures"]) == 3
    # section 5, the depth study: doc 002's layer loses the gradient at the first layer as the stack
    # deepens (no identity path), pre-norm keeps it; the printed comparison is the recorded one
    study, depths = v["depth_study"], v["depths"]
    assert depths == [2, 4, 8, 16]
    doc, pre = study["document"], study["pre-norm"]
    assert all(len(row[k]) == len(depths) for row in (doc, pre) for k in ("grad_at_init", "final_loss", "accuracy"))
    assert all(a > b for a, b in zip(doc["grad_at_init"], doc["grad_at_init"][1:]))   # falls at every step
    assert v["doc_grad_drop"] == doc["grad_at_init"][0] / doc["grad_at_init"][-1] >= 100
    assert 1 / 3 <= v["pre_grad_change"] == pre["grad_at_init"][-1] / pre["grad_at_init"][0] <= 3
    assert v["doc_worse_at"] == [n for n, d, p in zip(depths, doc["final_loss"], pre["final_loss"]) if d > p]
    assert 16 in v["doc_worse_at"] and pre["accuracy"][-1] > doc["accuracy"][-1]      # at 16 layers it trails


def test_10_self_attention_multihead(tmp_path):
    proc, r = run_lesson("10_self_attention_multihead", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["loop_vs_batched"] <= 1e-10 and v["grad_loop_vs_batched"] <= 1e-10
    assert v["mha_vs_ours"] <= 1e-10 and v["mha_weights_vs_ours"] <= 1e-10
    # the hand-made heads do what they were built for: previous / next token
    assert v["strongest_key"]["1"][1:] == [0, 1, 2, 3, 4]
    assert v["strongest_key"]["2"][:5] == [1, 2, 3, 4, 5]
    # the document's scale (1/sqrt(4) instead of 1/sqrt(8)) changes the output and sharpens the softmax
    assert v["doc_vs_correct"] > 1e-3 and v["entropy_doc"] < v["entropy_correct"]
    assert v["doc_scale_factor"]["16/4"] == 1.0 and abs(v["doc_scale_factor"]["512/8"] - 8 ** 0.5) < 1e-12
    assert v["n_parameters"] == 4 * 32 * 32 + 4 * 32
    # §7, doc 002 §2.1's combination of maps: the average of the heads' maps (what need_weights returns)
    # has rows summing to 1, cannot tell previous from next, and does not give the layer's output
    A_mean = np.array(v["averaged_map"])
    np.testing.assert_allclose(A_mean.sum(axis=1), 1, atol=1e-12)
    assert v["averaged_map_vs_library"] <= 1e-12 and v["averaged_output_vs_concat"] > 0.05
    gap = v["side_gap"]
    inner = np.arange(1, 5)
    assert abs(gap["averaged map Ā"] - np.abs(A_mean[inner, inner - 1] - A_mean[inner, inner + 1]).mean()) < 1e-12
    assert gap["head 1 (previous)"] > 0.8 and gap["head 2 (next)"] > 0.8 and gap["averaged map Ā"] < 0.2
    n, d, h = 1024, 32, 4                                    # 4 heads concatenated vs one head of width 32
    assert abs(v["combine_cost_ratio"] - (4 * n * d * d + 2 * n * n * d + h * n * n) / (4 * n * d * d + 2 * n * n * d + n * n)) < 1e-12


def test_11_positional_encoding(tmp_path):
    proc, r = run_lesson("11_positional_encoding", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["n_test"] == 2000
    assert v["accuracy_without_positions"] <= 0.20 and v["accuracy_with_positions"] >= 0.99
    # no position-blind model can beat the counting ceiling (small slack for sampling noise)
    assert v["accuracy_without_positions"] <= v["ceiling_without_positions"] + 0.02 < 0.20
    assert v["equivariance_error"] <= 1e-12 and v["distance_only_spread"] <= 1e-9
    assert v["anti_diagonal_mass"] > 0.3                       # it attends to the mirrored position
    # doc 002 Q4 says positional encoding reduces computation: it adds n·d additions to one layer's
    # 4nd² (projections) + 2n²d (scores, mix) + 2nd·d_ff (feed-forward) multiply-adds (n 12, d 64, d_ff 128)
    n, d = 12, 64
    assert abs(v["pe_cost_share"] - n * d / (4 * n * d * d + 2 * n * n * d + 2 * n * d * 2 * d)) < 1e-15


def test_15_vanishing_gradients(tmp_path):
    proc, r = run_lesson("15_vanishing_gradients", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    g = v["grad_norm_per_position"]
    assert len(g["plain RNN"]) == 64
    assert v["ratio_attention_over_rnn_first"] >= 1e3
    # the RNN's gradient decays geometrically going back in time; attention's does not
    assert g["plain RNN"][0] < 1e-6 * g["plain RNN"][-1]
    assert g["attention"][0] > 0.05 * g["attention"][-1]
    assert 0 < v["decay_per_step"]["plain RNN"] < 0.9
    # a saturated softmax starves the ignored position: the largest query scale kills its gradient
    s = v["saturation"]
    assert s[-1]["weight_first"] < 1e-4 and s[-1]["grad_first"] < 1e-3 * s[0]["grad_first"]


def test_13_encoder_decoder(tmp_path):
    proc, r = run_lesson("13_encoder_decoder", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert set(v["results"]) == {"copy", "shift", "rev"}
    for task in v["results"].values():
        assert task["token_accuracy"] >= 0.98 and task["exact_sequences"] >= 0.90
    assert abs(v["doc_data_loss_floor"] - np.log(3)) < 1e-9           # one source, three targets
    assert abs(v["double_softmax_floor"] - (np.log(np.e + 17) - 1)) < 1e-9
    assert abs(v["doc_metric_best"] - 4 / 3) < 1e-12 and v["doc_metric_perfect"] == 4.0   # tokens / pairs
    # the causal mask: a changed last target token moves no earlier step's logits; without it, all do
    assert v["causal_leak"] == 0.0 and v["open_leak"] > 1e-3
    # label smoothing 0.1 over 18 tokens: the loss levels off above its floor, the smoothed target's entropy
    assert 0.58 < v["final_loss"] < 0.7
    assert v["inside_error"] <= 1e-12 and v["cross_attention_anti_diagonal"] > 0.5
    assert v["hello_reversed"] == "! world , hello"
    # the explorers hold every head; their mean is the weights the lesson measured above
    assert r["explorers"] == ["attention_encoder_self_attention.html", "attention_cross_attention.html"]
    cross = json.load(open(tmp_path / "attention_cross_attention.json"))
    w = np.array(cross["weights"])                                  # (1 layer, 4 heads, 5 targets, 5 sources)
    assert w.shape == (1, 4, 5, 5) and cross["tokens_k"][1:] == ["hello", ",", "world", "!"]
    mean = w[0].mean(axis=0)
    assert abs(np.mean([mean[t, 4 - t] for t in range(4)]) - v["cross_attention_anti_diagonal"]) < 1e-4


def test_14_noam_and_label_smoothing(tmp_path):
    proc, r = run_lesson("14_noam_and_label_smoothing", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["noam_error"] <= 1e-12 and v["smoothing_loss_error"] <= 1e-12 and v["smoothing_grad_error"] <= 1e-12
    lrs = np.array(v["lrs"])
    assert v["peak_step"] == 100 and np.argmax(lrs) == 99 and lrs[0] < lrs.max() / 50   # warm-up to step 100
    np.testing.assert_allclose(lrs[99], 0.3 * (64 * 100) ** -0.5, rtol=1e-12)     # factor 0.3
    eps, V = 0.1, 18
    q = np.full(V, eps / V)
    q[0] += 1 - eps
    assert abs(v["smoothing_floor"] + (q * np.log(q)).sum()) < 1e-12 and abs(v["smoothed_right"] - q[0]) < 1e-12
    smoothed, plain = v["runs"]["noam + smoothing"], v["runs"]["constant lr, one-hot"]
    # label smoothing: the training loss approaches, but cannot go below, the smoothed target's entropy
    assert v["smoothing_floor"] <= smoothed["final_loss"] < v["smoothing_floor"] + 0.1
    assert abs(smoothed["p_right"] - q[0]) <= 0.03 and smoothed["token_accuracy"] >= 0.99
    assert plain["final_loss"] < 0.1 and plain["p_right"] > smoothed["p_right"]   # one-hot: more confident
    assert len(r["figures"]) == 1


def test_19_attention_over_images(tmp_path):
    proc, r = run_lesson("19_attention_over_images", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    assert v["n_test"] == 500 and v["test_accuracy"] >= 0.95
    # [CLS] looks at the square: far above uniform, and well above the equally bright distractor
    assert v["mean_attention_on_object"] >= 5 / 16 and v["argmax_on_object"] >= 0.75
    assert v["mean_attention_on_object"] > 3 * v["mean_attention_on_distractor"]
    # the explorer: [CLS] over the 4 x 4 patches, per head; its head-mean peaks at each image's square
    vit = json.load(open(tmp_path / "attention_vit_cls_attention.json"))
    w = np.array(vit["weights"])                                    # (layers, 2 heads, 8 images, 16 patches)
    assert r["explorers"] == ["attention_vit_cls_attention.html"] and vit["grid"] == [4, 4]
    assert w.shape[1:] == (2, 8, 16) and np.all(w.sum(axis=-1) <= 1 + 1e-4)     # the rest goes to [CLS]
    squares = [q.split("■ ")[1].split(",")[0] for q in vit["tokens_q"]]
    peaks = [vit["tokens_k"][j] for j in w[-1].mean(axis=0).argmax(axis=-1)]
    assert sum(p == s for p, s in zip(peaks, squares)) >= 6


def test_20_decoder_only(tmp_path):
    proc, r = run_lesson("20_decoder_only", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    # the decoder-only model adds 2-digit numbers it never saw
    assert v["n_held_out_additions"] == 500 and v["addition_accuracy"] >= 0.99
    assert min(v["addition_digit_accuracy"]) >= 0.99
    assert 0 <= v["ones_attention_on_digits"] <= 1 and len(r["figures"]) == 1


def test_17_long_sequences_sparse(tmp_path):
    proc, r = run_lesson("17_long_sequences_sparse", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    # the online softmax written out in NumPy: the same output as the library, and the same lse
    assert v["online_softmax_error"] <= 1e-12 and v["online_lse_error"] <= 1e-12
    trace = v["online_trace"]
    assert [row["tile"] for row in trace] == [0, 1, 2, 3]
    running = np.maximum.accumulate([row["tile_max"] for row in trace])
    np.testing.assert_allclose([row["running_max"] for row in trace], running, rtol=0, atol=1e-12)
    for before, row in zip(trace, trace[1:]):          # the correction rescales by exp(m_old - m_new)
        assert abs(row["correction"] - np.exp(before["running_max"] - row["running_max"])) < 1e-12
        assert row["normaliser"] >= before["normaliser"] * row["correction"]
    assert trace[2]["correction"] < 0.5                # the planted key in tile 2 raised the maximum
    assert v["long_T"] == 16384 and v["long_peak_MiB"] < 256
    assert v["timings"]["memory-efficient"]["T"][-1] == 16384
    assert v["agreement"] <= 1e-10
    assert v["slopes"]["dense"]["memory"] > 1.6 and v["slopes"]["memory-efficient"]["memory"] < 1.3
    # dense memory at 4096 is at least ~4x its 2048 value (the T x T matrices)
    dense = v["timings"]["dense"]["MiB"]
    assert dense[-1] > 3 * dense[-2]
    # sparse patterns: the strided one covers every causal pair within two layers, the window does not
    reach = v["reach"]
    assert reach["strided (s = 8)"]["two_layer_coverage"] == 1.0
    assert reach["local window (w = 8)"]["two_layer_coverage"] < 1.0
    assert reach["strided (s = 8)"]["fraction"] < 0.5 and v["strided_mask_exact_zero"] is True
    # §6, doc 003 §8.3's "exponential" growth: dense attention's operation count, (4d + 5)·T² at d = 64,
    # is exactly quadratic; its ratio per equal step of length falls (an exponential's would be constant)
    lengths, fits = v["growth_lengths"], v["growth_fits"]
    assert lengths == list(range(256, 2049, 256)) + [4096]
    np.testing.assert_allclose(v["growth"]["FLOPs"], [(4 * 64 + 5) * T * T for T in lengths], rtol=1e-12)
    flops = fits["FLOPs"]
    assert abs(flops["power_slope"] - 2) < 1e-9 and flops["power_log_rms"] < 1e-9 < 0.1 < flops["exp_log_rms"]
    assert all(a > b for a, b in zip(flops["step_ratios"], flops["step_ratios"][1:]))
    np.testing.assert_allclose(flops["power_predicts_4096"], flops["measured_4096"], rtol=1e-9)
    assert flops["exp_predicts_4096"] > 10 * flops["measured_4096"]
    assert len(v["growth"]["seconds"]) == len(lengths) and min(v["growth"]["seconds"]) > 0   # timed, not asserted


def test_16_making_it_fast(tmp_path):
    proc, r = run_lesson("16_making_it_fast", tmp_path)
    assert_passed(proc, r)
    v = r["values"]
    # agreement of every fast path with its plain twin (timings are printed, never asserted)
    # float32, the precision timed (relative to the reference; float64 twins: tests/test_kernels.py)
    assert len(v["agreement"]) == 6 and max(v["agreement"].values()) <= 1e-4
    assert set(v["numba_speedup_over_plain"]) == {"LSTM", "softmax", "LayerNorm", "cross-entropy", "attention"}
    assert all(t["seconds"] > 0 and t["MiB"] > 0 for t in v["timings"])
    # fusion needs fewer temporaries: the compiled LayerNorm's peak memory is below the plain twin's
    ln = {t["path"]: t["MiB"] for t in v["timings"] if t["task"] == "LayerNorm"}
    assert ln["Numba kernel"] < ln["plain twin"]
    # the prose's ratios are computed from the timings it printed (not typed in)
    seconds = {(t["task"], t["path"]): t["seconds"] for t in v["timings"]}
    assert abs(v["fused_gain"] - seconds["LSTM", "LSTMCell loop (graph)"] / seconds["LSTM", "nn.LSTM, plain twin"]) < 1e-12
    assert abs(v["compiled_gain"] - v["numba_speedup_over_plain"]["LSTM"]) < 1e-12
    assert set(v["row_speedups"]) == {"softmax", "LayerNorm", "cross-entropy"}
    assert v["compiled_in_this_run"] is None or v["compiled_in_this_run"] >= 0
    said = "compiled nothing" if v["compiled_in_this_run"] == 0 else "kernel specialisations (a first run"
    assert said in proc.stdout


def _gpu_present():
    try:
        import tinyattn.backend as backend
        return backend.cupy_available()
    except Exception:  # noqa: BLE001 - any failure to find CuPy means no GPU for this test
        return False


def test_18_same_code_on_gpu(tmp_path):
    proc, r = run_lesson("18_same_code_on_gpu", tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if not _gpu_present():
        # no GPU here: a clear message, a skipped (not passed) criterion, exit 0
        assert "no GPU" in proc.stdout and "CRITERION: SKIP" in proc.stdout
        assert r["skipped"] is True and r["passed"] is None and r["values"]["gpu_available"] is False
        assert "CRITERION: PASS" not in proc.stdout
        return
    assert_passed(proc, r)
    v = r["values"]
    assert all(row["relative_difference"] <= 1e-3 for row in v["attention"])
    assert v["lesson13"]["cupy"]["passed"] is True
    for task in v["lesson13"]["cupy"]["results"].values():
        assert task["token_accuracy"] >= 0.98 and task["exact_sequences"] >= 0.90
