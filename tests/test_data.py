"""tinyattn.utils.data against torch.utils.data: the same batches for the deterministic cases,
and the same semantics where the order is random (PyTorch's random stream cannot be reproduced):
every index once per epoch, len(), drop_last, a generator making the order reproducible."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.utils.data import (DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                                 TensorDataset, default_collate, random_split)

torch = pytest.importorskip("torch")
tdata = torch.utils.data

X = np.arange(30, dtype=np.float32).reshape(10, 3)
Y = np.arange(10, dtype=np.int64) % 3


def _datasets():
    return (TensorDataset(ta.tensor(X), ta.tensor(Y)),
            tdata.TensorDataset(torch.tensor(X), torch.tensor(Y)))


def _numpy(batch):
    if isinstance(batch, (list, tuple)):
        return [_numpy(b) for b in batch]
    if isinstance(batch, dict):
        return {k: _numpy(v) for k, v in batch.items()}
    return batch.numpy() if hasattr(batch, "numpy") else batch


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (4, True),
                                                  (10, False), (12, False), (12, True)])
def test_sequential_batches_equal_torchs(batch_size, drop_last):
    ours, theirs = _datasets()
    a = DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    b = tdata.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert len(a) == len(b)
    got, want = [_numpy(x) for x in a], [_numpy(x) for x in b]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for gi, wi in zip(g, w):
            assert gi.dtype == wi.dtype
            np.testing.assert_array_equal(gi, wi)
    assert len(ours) == len(theirs) == 10
    for a, b in zip(_numpy(list(ours[4])), _numpy(list(theirs[4]))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_visits_every_index_once_per_epoch_in_a_new_order(drop_last):
    ours, _ = _datasets()
    loader = DataLoader(ours, batch_size=4, shuffle=True, drop_last=drop_last)
    epochs = []
    for _ in range(3):
        ys = [xb.numpy()[:, 0] / 3 for xb, _ in loader]     # sample i has x[0] = 3 i
        assert [len(y) for y in ys] == ([4, 4] if drop_last else [4, 4, 2])
        seen = np.concatenate(ys).astype(int)
        assert len(set(seen)) == len(seen)
        if not drop_last:
            assert sorted(seen) == list(range(10))
        epochs.append(seen.tolist())
    assert len(loader) == (2 if drop_last else 3)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_a_generator_makes_the_order_reproducible():
    ours, _ = _datasets()

    def order(seed):
        g = ta.Generator().manual_seed(seed)
        return [yb.numpy().tolist() for _, yb in DataLoader(ours, 3, shuffle=True, generator=g)]

    ta.manual_seed(5)
    first = order(0)
    ta.randn(100)                                  # the default stream moves on; g's does not
    assert order(0) == first and order(1) != first


def test_generator_api():
    g = ta.Generator()
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    assert ta.manual_seed(3) is ta.default_generator and ta.initial_seed() == 3
    a = ta.randn(3).numpy()
    ta.manual_seed(3)
    np.testing.assert_array_equal(ta.randn(3).numpy(), a)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        g.manual_seed(-1)


def test_samplers_as_torchs():
    data = list(range(7))
    assert list(SequentialSampler(data)) == list(tdata.SequentialSampler(data))
    s = RandomSampler(data, generator=ta.Generator().manual_seed(0))
    assert len(s) == len(tdata.RandomSampler(data)) == 7 and sorted(s) == data
    r = RandomSampler(data, replacement=True, num_samples=20)
    draws = list(r)
    assert len(r) == len(tdata.RandomSampler(data, replacement=True, num_samples=20)) == 20
    assert len(draws) == 20 and set(draws) <= set(data)
    loader = DataLoader(data, batch_size=3, sampler=SequentialSampler(data))
    assert [b.numpy().tolist() for b in loader] == [b.tolist() for b in
                                                   tdata.DataLoader(data, batch_size=3)]


class Pairs(Dataset):
    """A learner's own dataset: dicts, tuples, numbers and strings in each sample."""

    def __init__(self, lib):
        self.lib = lib

    def __len__(self):
        return 5

    def __getitem__(self, i):
        t = ta.tensor if self.lib is ta else torch.tensor
        return {"x": t(np.full(2, i, dtype=np.float32)), "y": i, "w": 0.5 * i,
                "pair": (i, float(i)), "name": f"s{i}", "flag": i % 2 == 0}


def test_default_collate_of_dicts_numbers_tuples_strings_equals_torchs():
    ours = next(iter(DataLoader(Pairs(ta), batch_size=3)))
    theirs = next(iter(tdata.DataLoader(Pairs(torch), batch_size=3)))
    assert set(ours) == set(theirs)
    for key in ("x", "y", "w", "flag"):
        assert ours[key].numpy().dtype == theirs[key].numpy().dtype, key
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy())
    assert type(ours["pair"]) is type(theirs["pair"]) is list
    for a, b in zip(ours["pair"], theirs["pair"]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert ours["name"] == theirs["name"] == ["s0", "s1", "s2"]
    Point = namedtuple("Point", "x y")
    batch = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(batch, Point) and batch.x.numpy().tolist() == [1, 3]


def test_collate_fn_and_unbatched_loading():
    ours, _ = _datasets()
    loader = DataLoader(ours, batch_size=4, collate_fn=lambda samples: len(samples))
    assert list(loader) == [4, 4, 2]
    one_by_one = list(DataLoader(ours, batch_size=None))
    assert len(one_by_one) == 10 and one_by_one[2][1].numpy() == 2


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.34, 0.33, 0.33], [10, 0]])
def test_random_split_sizes_equal_torchs_and_cover_the_dataset(lengths):
    data = list(range(10))
    ours = random_split(data, lengths, generator=ta.Generator().manual_seed(0))
    theirs = tdata.random_split(data, lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert all(isinstance(s, Subset) for s in ours)
    everything = [x for s in ours for x in s]
    assert sorted(everything) == data


def test_errors_name_the_problem_and_the_fix():
    ours, theirs = _datasets()
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ours, sampler=SequentialSampler(ours), shuffle=True)
    with pytest.raises(ValueError):
        tdata.DataLoader(theirs, sampler=tdata.SequentialSampler(theirs), shuffle=True)
    with pytest.raises(ValueError, match=r"random_split: the lengths \[3, 3\] sum to 6.*10"):
        random_split(list(range(10)), [3, 3])
    with pytest.raises(ValueError, match=r"TensorDataset: .*same size on its first axis"):
        TensorDataset(ta.zeros(3, 2), ta.zeros(4))
    with pytest.raises(RuntimeError, match="default_collate: stack expects each tensor"):
        default_collate([ta.zeros(2), ta.zeros(3)])
    with pytest.raises(ValueError, match="BatchSampler: batch_size must be a positive int"):
        DataLoader(ours, batch_size=0)
