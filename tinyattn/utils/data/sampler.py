"""Samplers: which dataset indices a DataLoader visits, in which order, in which batches."""
from __future__ import annotations

from ...random import default_generator


class Sampler:
    """Base class: iterate over dataset indices; ``len()`` is how many."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):  # pragma: no cover - abstract
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation each epoch (each index once); with ``replacement``,
    ``num_samples`` independent draws. Numbers come from ``generator`` (the default generator
    when None)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not replacement and num_samples is not None and num_samples != len(data_source):
            # PyTorch allows it (truncating/repeating permutations); kept simple and explicit here
            raise ValueError(f"RandomSampler: num_samples={num_samples} without replacement must "
                             f"equal len(data_source)={len(data_source)}; pass "
                             f"replacement=True to draw a different number of samples.")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive int, got "
                             f"{num_samples!r}.")
        self.data_source, self.replacement = data_source, replacement
        self._num_samples, self.generator = num_samples, generator

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        rng = (self.generator or default_generator).backend_rng("numpy")
        n = len(self.data_source)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        return iter(rng.permutation(n).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one shorter,
    unless ``drop_last``)."""

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got "
                             f"{batch_size!r}.")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
