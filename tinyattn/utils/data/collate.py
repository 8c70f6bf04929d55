"""default_collate: a list of samples -> one batch, as torch.utils.data.default_collate.

Tensors and arrays are stacked on a new first axis; Python floats become a float64 Tensor, ints an
int64 one, bools a bool one; strings stay a list; dicts, tuples and lists are collated field by
field (a tuple comes back as a list, named tuples as their own type, as in PyTorch).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ... import ops
from ...autograd.tensor import Tensor
from ...backend import active_module, is_array


def default_collate(batch):
    elem = batch[0]
    if isinstance(elem, Tensor):
        _check_same_shape(batch)
        return ops.stack(list(batch), axis=0)
    if is_array(elem) or isinstance(elem, np.ndarray):
        _check_same_shape(batch)
        return Tensor(active_module().stack([active_module().asarray(a) for a in batch]))
    if isinstance(elem, (bool, np.bool_)):
        return Tensor(active_module().asarray(batch, dtype=bool))
    if isinstance(elem, (int, np.integer)):
        return Tensor(active_module().asarray(batch, dtype=np.int64))
    if isinstance(elem, (float, np.floating)):
        return Tensor(active_module().asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):        # a named tuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError(f"default_collate: each element in the batch should be of equal "
                               f"size, got lengths {[len(s) for s in batch]}; pad the samples "
                               f"or pass a collate_fn.")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: cannot batch samples of type {type(elem).__name__}; "
                    f"samples must hold tensors, NumPy arrays, numbers, strings, dicts, tuples "
                    f"or lists - pass collate_fn= to batch anything else.")


def _check_same_shape(batch):
    shapes = {tuple(a.shape) for a in batch}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got "
                           f"shapes {sorted(shapes)} in one batch; pad the samples to one "
                           f"length or pass a collate_fn that does.")
