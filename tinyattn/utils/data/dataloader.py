"""DataLoader: iterate over a dataset in (shuffled) batches, as torch.utils.data.DataLoader."""
from __future__ import annotations

from .collate import default_collate
from .sampler import BatchSampler, RandomSampler, SequentialSampler


class DataLoader:
    """``for batch in DataLoader(dataset, batch_size=32, shuffle=True): ...``

    Each epoch (each ``iter``) visits every index of ``sampler`` once (a new permutation when
    ``shuffle``, drawn from ``generator`` or the default generator), in batches of
    ``batch_size``; ``drop_last`` drops a short final batch. ``collate_fn`` turns a list of
    samples into a batch (``default_collate``: stacked tensors). ``batch_size=None`` yields
    the samples one by one, unbatched. ``num_workers``, ``pin_memory`` and the other worker
    options are accepted so PyTorch code runs unchanged; loading always happens in this process.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, generator=None, *, prefetch_factor=None,
                 persistent_workers=False, pin_memory_device=""):
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle; "
                             "shuffle inside the sampler (e.g. RandomSampler) instead.")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                             "batch_size, shuffle, sampler, and drop_last.")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None (no batching) is incompatible with "
                             "drop_last.")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}.")
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self._auto_collation = batch_sampler is not None
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else _unchanged)

    def __iter__(self):
        if not self._auto_collation:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])
            return
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self):
        return len(self.batch_sampler if self._auto_collation else self.sampler)


def _unchanged(sample):
    return sample
