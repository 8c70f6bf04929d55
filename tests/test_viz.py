"""Plot helpers: figures carry the labels a reader needs (titles, axis labels, token ticks, colour bars)."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
matplotlib = pytest.importorskip("matplotlib")

import tinyattn as ta  # noqa: E402
from tinyattn import viz  # noqa: E402


def _tick_texts(labels):
    return [t.get_text() for t in labels]


def test_heatmap_labels_ticks_colorbar_and_values():
    w = ta.softmax(ta.tensor(np.arange(12.0).reshape(3, 4)), axis=-1)
    ax = viz.heatmap(w, ["a", "b", "c"], ["w", "x", "y", "z"], title="weights")
    assert ax.get_title() == "weights"
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert _tick_texts(ax.get_xticklabels()) == ["w", "x", "y", "z"]
    assert _tick_texts(ax.get_yticklabels()) == ["a", "b", "c"]
    assert len(ax.figure.axes) == 2                      # the image and its colour bar
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy())
    texts = [t.get_text() for t in ax.texts]             # small matrices are annotated
    assert len(texts) == 12 and texts[3] == f"{w.numpy()[0, 3]:.2f}"
    matplotlib.pyplot.close(ax.figure)


def test_heatmap_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        viz.heatmap(np.zeros((2, 2, 2)))


def test_heatmap_grid_layers_by_heads():
    maps = np.random.default_rng(0).random((2, 3, 4, 5))            # 2 layers x 3 heads
    fig = viz.heatmap_grid(maps, list("abcd"), list("vwxyz"), suptitle="all heads")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    assert panels[4].get_title() == "layer 1, head 1"
    assert _tick_texts(panels[0].get_xticklabels()) == list("vwxyz")
    assert fig._suptitle.get_text() == "all heads"
    matplotlib.pyplot.close(fig)


def test_heatmap_grid_per_panel_labels_and_sizes():
    fig = viz.heatmap_grid([np.eye(2), np.eye(3)], [["p", "q"], ["r", "s", "t"]], [["p", "q"], ["r", "s", "t"]],
                           titles=["two", "three"])
    panels = [ax for ax in fig.axes if ax.images]
    assert _tick_texts(panels[1].get_yticklabels()) == ["r", "s", "t"]
    assert [p.get_title() for p in panels] == ["two", "three"]
    matplotlib.pyplot.close(fig)


def test_curves_and_training_curves():
    ax = viz.plot_curves({"train": [3, 2, 1], "test": ([1, 2, 3], [4, 3, 2.5])}, title="loss")
    assert [line.get_label() for line in ax.lines] == ["train", "test"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [4, 3, 2.5])
    assert ax.get_xlabel() == "step" and ax.get_title() == "loss"
    matplotlib.pyplot.close(ax.figure)
    fig = viz.training_curves({"model": {"loss": [1.0, 0.5], "acc": [0.5, 0.9]}}, title="run")
    loss_ax, acc_ax = fig.axes
    assert acc_ax.get_ylabel() == "accuracy (%)"
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [50, 90])
    matplotlib.pyplot.close(fig)
