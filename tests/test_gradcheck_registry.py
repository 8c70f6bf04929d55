"""Walk the op registry: every differentiable op has a float64 gradient check, and all pass."""
from __future__ import annotations

import importlib
import pathlib

import pytest

import tinyattn as ta

_HERE = pathlib.Path(__file__).parent


def _import_everything():
    """Import every tinyattn submodule so every op has registered itself."""
    import pkgutil

    for info in pkgutil.walk_packages(ta.__path__, "tinyattn."):
        if info.name.split(".")[-1] in ("bench", "__main__", "cupy_gpu"):   # cupy_gpu needs CuPy
            continue
        importlib.import_module(info.name)


_import_everything()


def _all_cases():
    cases = []
    for path in sorted(_HERE.glob("gradcases_*.py")):
        mod = importlib.import_module(path.stem)
        cases.extend(mod.CASES)
    return cases


CASES = _all_cases()


def test_every_registered_op_has_a_gradcheck_case():
    covered = {c.op for c in CASES}
    missing = sorted(set(ta.registered_ops()) - covered)
    assert not missing, f"ops registered without a gradcheck case in tests/gradcases_*.py: {missing}"


def test_cases_name_real_ops():
    unknown = sorted({c.op for c in CASES} - set(ta.registered_ops()))
    assert not unknown, f"gradcheck cases for ops that are not registered: {unknown}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case):
    assert ta.gradcheck(case.fn, case.inputs(), **case.kwargs)
