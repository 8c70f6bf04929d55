"""Dataset (anything with ``__getitem__`` and ``__len__``), TensorDataset, Subset, random_split."""
from __future__ import annotations

import math

from ...autograd.tensor import Tensor
from ...random import default_generator


class Dataset:
    """Base class of map-style datasets: define ``__getitem__(i)`` and ``__len__()``."""

    def __getitem__(self, index):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __add__(self, other):
        raise NotImplementedError("Dataset: concatenating datasets (ConcatDataset) is not "
                                  "implemented in tinyattn; build one TensorDataset instead.")


class TensorDataset(Dataset):
    """Sample i is ``(t[i] for t in tensors)``; every tensor must have the same first size."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor.")
        tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: every tensor must have the same size on its first "
                             f"axis (one entry per sample), got shapes {shapes}.")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def _split_lengths(lengths, n):
    """Whole lengths summing to ``n``; fractions are floored, and the remainder handed out one by
    one from the first split on (PyTorch's rule)."""
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1.0:
        if any(not 0.0 <= f <= 1.0 for f in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {lengths}.")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    if any(isinstance(x, bool) or not hasattr(x, "__index__") or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints, or fractions summing "
                         f"to 1, got {lengths}.")
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the "
                         f"dataset has {n} samples; make them sum to {n} (or pass fractions "
                         f"such as [0.8, 0.2]).")
    return [int(x) for x in lengths]


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping Subsets of the given lengths (ints summing to
    len(dataset), or fractions summing to 1), after one random permutation drawn from
    ``generator`` (the default generator when None)."""
    n = len(dataset)
    counts = _split_lengths(lengths, n)
    order = (generator or default_generator).backend_rng("numpy").permutation(n).tolist()
    subsets, start = [], 0
    for c in counts:
        subsets.append(Subset(dataset, order[start:start + c]))
        start += c
    return subsets
