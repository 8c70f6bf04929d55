"""Named tuples for ops that return values and indices (``torch.return_types``): ``out.values``,
``out.indices``, ``out[0]`` and ``values, indices = out`` all work, as in PyTorch."""
from __future__ import annotations

from collections import namedtuple

max = namedtuple("max", ["values", "indices"])            # noqa: A001 - PyTorch's names
min = namedtuple("min", ["values", "indices"])            # noqa: A001
sort = namedtuple("sort", ["values", "indices"])
topk = namedtuple("topk", ["values", "indices"])
kthvalue = namedtuple("kthvalue", ["values", "indices"])
median = namedtuple("median", ["values", "indices"])
aminmax = namedtuple("aminmax", ["min", "max"])
