"""Gradient-check cases for the PyTorch-API ops (ops/pointwise, scan, sorting, gather_scatter,
products, statistics): float64, with broadcasting, repeated indices, inputs reused along two
paths, zeros in products, and inputs kept away from kinks and ties (rounding steps, equal values
in sort/max), where a derivative does not exist."""
from __future__ import annotations

import numpy as np

import tinyattn as ta
from tinyattn.ops import gather_scatter as gs
from tinyattn.ops import indexing as ix
from tinyattn.ops import pointwise as pw
from tinyattn.ops import products as pr
from tinyattn.ops import scan, sorting
from tinyattn.ops import statistics as st

from gradcases import GradCase, rnd
from gradcases_engine import distinct, pos


def off_steps(*shape, seed=0):
    """Values between the integers and away from the half-way points (floor, round, ... are flat
    there, so the gradient 0 is what finite differences see)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-3, 3, shape) + rng.choice([0.2, 0.3, 0.7, 0.8], shape)
    return ta.tensor(base, requires_grad=True, dtype="float64")


def with_zeros(*shape, zeros=(), seed=0):
    """Random values with exact zeros at the given flat positions (for prod/cumprod)."""
    t = rnd(*shape, seed=seed)
    flat = t.array.reshape(-1)
    flat[list(zeros)] = 0.0
    return t


def idx(*rows):
    return np.array(rows, dtype=np.int64)


CASES = [
    # ---------------------------------------------------------------- pointwise
    GradCase("sin", pw.sin, lambda: [rnd(2, 3, lo=-3, hi=3)]),
    GradCase("sin", lambda a: pw.sin(a) * pw.cos(a), lambda: [rnd(4)], "reused with cos"),
    GradCase("cos", lambda a: pw.cos(a.T), lambda: [rnd(3, 2, lo=-3, hi=3)], "non-contiguous"),
    GradCase("log1p", pw.log1p, lambda: [rnd(2, 3, lo=-0.5, hi=2)]),
    GradCase("expm1", pw.expm1, lambda: [rnd(2, 3, lo=-2, hi=2)]),
    GradCase("rsqrt", pw.rsqrt, lambda: [pos(5)]),
    GradCase("reciprocal", pw.reciprocal, lambda: [pos(2, 3)]),
    GradCase("reciprocal", lambda a: pw.reciprocal(-a) + a, lambda: [pos(3)], "reused"),
    GradCase("erf", pw.erf, lambda: [rnd(2, 4, lo=-2, hi=2)]),
    GradCase("frac", pw.frac, lambda: [off_steps(2, 3)]),
    GradCase("sign", lambda a: pw.sign(a) * a, lambda: [rnd(6, away_from=0.0)], "times x"),
    GradCase("floor", lambda a: pw.floor(a) + a * a, lambda: [off_steps(3, 2)]),
    GradCase("ceil", lambda a: pw.ceil(a) * a, lambda: [off_steps(4)]),
    GradCase("trunc", lambda a: pw.trunc(a) - a, lambda: [off_steps(2, 2)]),
    GradCase("round", lambda a: pw.round(a) * a, lambda: [off_steps(5)]),
    GradCase("round", lambda a: pw.round(a * 10, decimals=-1) + a,
             lambda: [off_steps(3, seed=2)], "decimals=-1"),
    # ---------------------------------------------------------------- scan
    GradCase("prod", scan.prod, lambda: [rnd(2, 3, lo=0.5, hi=1.5)], "all elements"),
    GradCase("prod", lambda a: scan.prod(a, 1), lambda: [rnd(3, 4)], "along dim"),
    GradCase("prod", lambda a: scan.prod(a, 0, keepdim=True), lambda: [with_zeros(3, 4, zeros=(1,))],
             "one zero in a column"),
    GradCase("prod", lambda a: scan.prod(a, 1), lambda: [with_zeros(2, 3, zeros=(0, 1, 5))],
             "two zeros in a row, one in another"),
    GradCase("prod", lambda a: scan.prod(a * a, -1) + scan.prod(a), lambda: [rnd(2, 2)], "reused"),
    GradCase("cumsum", lambda a: scan.cumsum(a, 1), lambda: [rnd(3, 4)]),
    GradCase("cumsum", lambda a: scan.cumsum(a.T, 0) * a.T, lambda: [rnd(3, 2)], "reused, view"),
    GradCase("cumprod", lambda a: scan.cumprod(a, -1), lambda: [rnd(2, 4)], "no zeros"),
    GradCase("cumprod", lambda a: scan.cumprod(a, 0), lambda: [with_zeros(4, 2, zeros=(2, 3, 5))],
             "zeros, two in one column"),
    # ---------------------------------------------------------------- gather / scatter / indexing
    GradCase("gather", lambda a: gs.gather(a, 1, idx([0, 0, 2], [1, 2, 1])), lambda: [rnd(2, 3)],
             "repeated indices"),
    GradCase("gather", lambda a: gs.gather(a, 0, idx([2, 0], [2, 2])), lambda: [rnd(3, 4)],
             "index smaller than input"),
    GradCase("gather", lambda a: gs.take_along_dim(a, idx([[1], [0]]), 1), lambda: [rnd(1, 3, 2)],
             "take_along_dim broadcasting the input"),
    GradCase("gather", lambda a: gs.take_along_dim(a, idx(5, 0, 5)), lambda: [rnd(2, 3)],
             "take_along_dim flattened"),
    GradCase("scatter", lambda a, s: gs.scatter(a, 1, idx([2, 0], [1, 2]), s),
             lambda: [rnd(2, 3), rnd(2, 4, seed=1)], "src larger than index"),
    GradCase("scatter", lambda a: gs.scatter(a, 0, idx([1, 0, 1]), value=2.0),
             lambda: [rnd(2, 3)], "value"),
    GradCase("scatter_add", lambda a, s: gs.scatter_add(a, 0, idx([0, 1, 0], [0, 0, 1]), s),
             lambda: [rnd(2, 3), rnd(2, 3, seed=1)], "repeated indices"),
    GradCase("scatter_add", lambda a: gs.scatter_add(a, 1, idx([0, 0], [1, 1]), a * 2),
             lambda: [rnd(2, 2)], "src is the input, reused"),
    GradCase("index_select", lambda a: gs.index_select(a, 1, idx(2, 0, 2, 2)), lambda: [rnd(2, 3)],
             "repeats"),
    GradCase("index_select", lambda a: gs.repeat_interleave(a, idx(2, 0, 1), dim=0),
             lambda: [rnd(3, 2)], "repeat_interleave with counts"),
    GradCase("index_select", lambda a: gs.repeat_interleave(a, 3), lambda: [rnd(2, 2)],
             "repeat_interleave flattened"),
    GradCase("masked_fill", lambda a: gs.masked_fill(a, np.array([True, False, True]), -1.0),
             lambda: [rnd(2, 3)], "broadcast mask"),
    GradCase("masked_fill", lambda a, v: gs.masked_fill(a, np.array([[True], [False]]), v),
             lambda: [rnd(2, 3), rnd(seed=3)], "0-d tensor value"),
    GradCase("setitem", lambda a, v: ix.setitem(a, (slice(None), 1), v), lambda: [rnd(3, 4), rnd(3)],
             "a column, value per row"),
    GradCase("setitem", lambda a, v: ix.setitem(a, np.array([[True, False], [False, True]]), v) * a,
             lambda: [rnd(2, 2), rnd(1)], "boolean mask, broadcast value, reused"),
    GradCase("setitem", lambda a: ix.setitem(a, (idx(0, 2), slice(1, 3)), 5.0), lambda: [rnd(3, 4)],
             "integer rows, a number"),
    GradCase("index_fill", lambda a: gs.index_fill(a, 1, idx(0, 2), 5.0), lambda: [rnd(2, 3)]),
    GradCase("tril", lambda a: gs.tril(a), lambda: [rnd(3, 3)]),
    GradCase("tril", lambda a: gs.tril(a, -1) * a, lambda: [rnd(2, 3, 4)], "batched, reused"),
    GradCase("triu", lambda a: gs.triu(a, 1), lambda: [rnd(3, 4)]),
    GradCase("repeat", lambda a: gs.repeat(a, 2, 3), lambda: [rnd(2, 2)]),
    GradCase("repeat", lambda a: gs.repeat(a, (2, 1, 2)), lambda: [rnd(3)], "more sizes than dims"),
    GradCase("roll", lambda a: gs.roll(a, 1, 0), lambda: [rnd(3, 2)]),
    GradCase("roll", lambda a: gs.roll(a, (1, -2), (0, 1)) * a, lambda: [rnd(2, 3)], "two dims"),
    GradCase("roll", lambda a: gs.roll(a, 4), lambda: [rnd(2, 3)], "flattened"),
    GradCase("flip", lambda a: gs.flip(a, (0, 1)) + a, lambda: [rnd(2, 3)], "reused"),
    # ---------------------------------------------------------------- sorting
    GradCase("sort", lambda a: sorting.sort(a, 1), lambda: [distinct(3, 4)]),
    GradCase("sort", lambda a: sorting.sort(a, 0, descending=True).values * a,
             lambda: [distinct(3, 2)], "descending, reused"),
    GradCase("topk", lambda a: sorting.topk(a, 2), lambda: [distinct(3, 4)]),
    GradCase("topk", lambda a: sorting.topk(a, 2, dim=0, largest=False), lambda: [distinct(4, 2)],
             "smallest"),
    GradCase("kthvalue", lambda a: sorting.kthvalue(a, 2, 1), lambda: [distinct(3, 4)]),
    GradCase("median", lambda a: sorting.median(a), lambda: [distinct(3, 4)], "all elements"),
    GradCase("median", lambda a: sorting.median(a, 0, keepdim=True), lambda: [distinct(4, 3)],
             "along dim"),
    # ---------------------------------------------------------------- products
    GradCase("einsum", lambda a, b: pr.einsum("ij,jk->ik", a, b), lambda: [rnd(2, 3), rnd(3, 4)]),
    GradCase("einsum", lambda a, b: pr.einsum("bij,bkj", a, b), lambda: [rnd(2, 2, 3), rnd(2, 4, 3)],
             "implicit output"),
    GradCase("einsum", lambda a, b: pr.einsum("...ij,...j->...i", a, b),
             lambda: [rnd(2, 1, 3, 4), rnd(5, 4)], "ellipsis broadcasting"),
    GradCase("einsum", lambda a: pr.einsum("ij->", a), lambda: [rnd(2, 3)], "full sum"),
    GradCase("einsum", lambda a, b: pr.einsum("ij,k->ik", a, b), lambda: [rnd(2, 3), rnd(4)],
             "letter summed in one operand only"),
    GradCase("einsum", lambda a: pr.einsum("ij,ij->i", a, a), lambda: [rnd(3, 2)], "reused"),
    GradCase("einsum", lambda a, b, c: pr.einsum("i,ij,j", [a, b, c]),
             lambda: [rnd(2), rnd(2, 3), rnd(3)], "three operands as a list"),
    GradCase("vector_norm", lambda a: st.norm(a), lambda: [rnd(3, 4)], "p=2, all"),
    GradCase("vector_norm", lambda a: st.norm(a, 3, dim=1, keepdim=True), lambda: [rnd(3, 4)],
             "p=3, dim"),
    GradCase("vector_norm", lambda a: st.norm(a, 1, dim=(0, 2)), lambda: [rnd(2, 3, 2, away_from=0.0)],
             "p=1, two dims"),
    GradCase("vector_norm", lambda a: st.norm(a, 0.5, dim=0) + st.norm(a, "fro"),
             lambda: [rnd(3, 2, away_from=0.0)], "p=0.5 and fro, reused"),
]
