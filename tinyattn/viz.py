"""Plot helpers for lessons: attention heatmaps with token labels, grids of heads/layers, curves.

Everything draws with matplotlib's non-interactive Agg backend (set before pyplot is imported), so
figures are written to files and no window ever opens. Every function accepts tinyattn Tensors or
arrays (NumPy or CuPy) and returns the matplotlib Figure (or Axes) it drew on; saving is the
caller's choice (``fig.savefig(path)``, or ``Lesson.savefig`` in the lessons).
"""
from __future__ import annotations

import os

import numpy as np

from . import backend

os.environ.setdefault("MPLBACKEND", "Agg")


def _plt():
    import matplotlib  # noqa: PLC0415 - matplotlib is imported only when a figure is drawn

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def to_numpy(x) -> np.ndarray:
    """A NumPy array from a Tensor, a CuPy array or anything array-like."""
    x = getattr(x, "array", x) if not isinstance(x, np.ndarray) else x
    return np.asarray(backend.to_numpy(x))


def heatmap(weights, row_labels=None, col_labels=None, *, ax=None, title=None, xlabel="key",
            ylabel="query", colorbar=True, annotate=None, vmin=0.0, vmax=None, cmap="viridis",
            fmt="{:.2f}"):
    """Draw a 2-D matrix of attention weights: rows are queries, columns keys.

    Ticks are labelled with the given tokens (or positions 0..n-1). ``annotate`` writes each value
    in its cell (default: when the matrix is at most 12 x 12). ``vmin=0`` because weights are
    non-negative; pass ``vmin=None`` for scores that can be negative. Returns the Axes.
    """
    plt = _plt()
    w = to_numpy(weights).astype(float)
    if w.ndim != 2:
        raise ValueError(f"heatmap: expected a 2-D matrix (queries x keys), got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.45 * max(4, w.shape[1]), 0.8 + 0.4 * max(3, w.shape[0])))
    image = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    n_rows, n_cols = w.shape
    ax.set_xticks(range(n_cols))
    ax.set_yticks(range(n_rows))
    ax.set_xticklabels([str(s) for s in (col_labels if col_labels is not None else range(n_cols))],
                       rotation=90 if n_cols > 8 else 0)
    ax.set_yticklabels([str(s) for s in (row_labels if row_labels is not None else range(n_rows))])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if annotate is None:
        annotate = n_rows <= 12 and n_cols <= 12
    if annotate:
        lo, hi = image.get_clim()
        middle = (lo + hi) / 2
        for i in range(n_rows):
            for j in range(n_cols):
                ax.text(j, i, fmt.format(w[i, j]), ha="center", va="center", fontsize=8,
                        color="black" if w[i, j] > middle else "white")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight" if vmin == 0 else "value")
    return ax


def heatmap_grid(maps, row_labels=None, col_labels=None, *, titles=None, suptitle=None,
                 ncols=None, xlabel="key", ylabel="query", vmin=0.0, vmax=None, annotate=False,
                 cmap="viridis"):
    """Several attention maps side by side: heads of a layer, layers of a model, or methods.

    ``maps`` is a list of 2-D matrices, an array (k, n, m), or (layers, heads, n, m) (one row of the
    grid per layer). Each panel gets its own title (``titles``) and colour bar. ``row_labels`` and
    ``col_labels`` are one list of tokens shared by every panel, or a list of such lists (one per
    panel, for maps of different sizes). Returns the Figure.
    """
    plt = _plt()
    if isinstance(maps, (list, tuple)):
        arrays = [to_numpy(m) for m in maps]
        layout = None
    else:
        a = to_numpy(maps)
        if a.ndim == 4:
            layout = a.shape[:2]
            arrays = [a[i, j] for i in range(a.shape[0]) for j in range(a.shape[1])]
        elif a.ndim == 3:
            layout, arrays = None, list(a)
        else:
            raise ValueError(f"heatmap_grid: expected (k, n, m) or (layers, heads, n, m), got {a.shape}")
    k = len(arrays)
    if layout is not None:
        nrows, ncols = layout
        if titles is None:
            titles = [f"layer {i}, head {j}" for i in range(nrows) for j in range(ncols)]
    else:
        ncols = ncols or min(k, 4)
        nrows = -(-k // ncols)
    if titles is None:
        titles = [f"map {i}" for i in range(k)]
    def per_panel(labels):
        if labels is not None and len(labels) and isinstance(labels[0], (list, tuple)):
            return list(labels)
        return [labels] * k

    rows_each, cols_each = per_panel(row_labels), per_panel(col_labels)
    n = max(a.shape[0] for a in arrays)
    m = max(a.shape[1] for a in arrays)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ncols * (1.6 + 0.3 * max(4, m)), nrows * (1.6 + 0.35 * max(3, n))))
    for idx, ax in enumerate(axes.ravel()):
        if idx >= k:
            ax.axis("off")
            continue
        heatmap(arrays[idx], rows_each[idx], cols_each[idx], ax=ax, title=titles[idx], xlabel=xlabel,
                ylabel=ylabel, vmin=vmin, vmax=vmax, annotate=annotate, cmap=cmap)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(curves, *, ax=None, title=None, xlabel="step", ylabel="loss", logy=False,
                styles=None):
    """Line plot of several named series: ``{"name": ys}`` or ``{"name": (xs, ys)}``. Returns the Axes."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for i, (name, series) in enumerate(curves.items()):
        if isinstance(series, tuple) and len(series) == 2:
            xs, ys = to_numpy(series[0]), to_numpy(series[1])
        else:
            ys = to_numpy(series)
            xs = np.arange(1, len(ys) + 1)
        style = (styles or {}).get(name, "-")
        ax.plot(xs, ys, style, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def training_curves(history, *, title=None, xlabel="step"):
    """Loss (left) and accuracy (right) panels from ``{"model": {"loss": [...], "acc": [...]}}``
    (``"step"`` optional: the x values). Returns the Figure."""
    plt = _plt()
    has_acc = any("acc" in h for h in history.values())
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    loss_ax = axes[0, 0]
    for name, h in history.items():
        xs = h.get("step", np.arange(1, len(h["loss"]) + 1))
        loss_ax.plot(xs, h["loss"], label=name)
    loss_ax.set(xlabel=xlabel, ylabel="loss", title="loss")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()
    if has_acc:
        acc_ax = axes[0, 1]
        for name, h in history.items():
            if "acc" in h:
                xs = h.get("acc_step", h.get("step", np.arange(1, len(h["acc"]) + 1)))
                acc_ax.plot(xs, 100 * np.asarray(h["acc"], dtype=float), label=name)
        acc_ax.set(xlabel=xlabel, ylabel="accuracy (%)", title="accuracy", ylim=(0, 101))
        acc_ax.grid(alpha=0.3)
        acc_ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
