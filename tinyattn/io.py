"""save / load: state dicts (and anything made of dicts, lists, numbers and arrays) as ``.npz``.

    tinyattn.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    ckpt = tinyattn.load(path)
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

Why not pickle: unpickling runs code stored in the file. Here a checkpoint is plain data, read
with ``numpy.load(allow_pickle=False)``; any NumPy installation can inspect it.

File format (``FORMAT``): a NumPy ``.npz`` archive.
  * every array is one entry, named by its path in the saved object with "/" between levels: a
    module state dict saved directly gives PyTorch's names (``layers.0.weight``); an optimiser
    state inside a checkpoint gives ``optimizer/state/0/exp_avg``. Tensors are saved as their
    arrays (and come back as NumPy arrays).
  * one extra entry, ``__tinyattn__``, holds a JSON text with the format name and the structure:
    dicts (with str or int keys), lists, tuples, numbers, bools, strings and None, and for each
    array its entry name, dtype and shape, which ``load`` checks.
A plain ``.npz`` without that entry (e.g. written by ``numpy.savez(path, **state_dict)``) loads as
a flat dict name -> array.

Saving is atomic: the archive is written to a temporary file in the same directory, flushed to
disk, and renamed over the destination (``os.replace``). A crash or kill mid-save leaves the
previous file untouched (and at worst a stray ``.<name>.*.tmp`` file beside it).
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import backend
from .autograd.tensor import Tensor

FORMAT = "tinyattn-checkpoint-1"
META_KEY = "__tinyattn__"
_ARRAY_KINDS = "biufc"      # bool, int, uint, float, complex: never objects or strings


class CheckpointError(ValueError):
    """A file that is not a valid tinyattn checkpoint (truncated, corrupt, or not one at all)."""


# ---------------------------------------------------------------------------- encoding
def _encode(obj, path, arrays, specs):
    """The JSON structure for ``obj``; its arrays go into ``arrays`` under names built from
    ``path`` (a list of keys)."""
    if isinstance(obj, Tensor):
        obj = obj.array
    if backend.is_array(obj) or isinstance(obj, np.generic):
        arr = np.asarray(backend.to_numpy(obj))
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"tinyattn.save: the array at {'/'.join(path) or 'top level'} has "
                            f"dtype {arr.dtype}; only numeric and bool arrays can be saved.")
        name = "/".join(path) or "array"
        while name in arrays or name == META_KEY:
            name += "_"
        arrays[name] = arr
        specs[name] = [arr.dtype.str, list(arr.shape)]
        return {"array": name}
    if obj is None:
        return {"none": None}
    if isinstance(obj, bool):
        return {"bool": obj}
    if isinstance(obj, int):
        return {"int": obj}
    if isinstance(obj, float):
        return {"float": obj}
    if isinstance(obj, str):
        return {"str": obj}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
                raise TypeError(f"tinyattn.save: dict keys must be str or int, got {k!r} at "
                                f"{'/'.join(path) or 'top level'}.")
            kind = "str" if isinstance(k, str) else "int"
            items.append([kind, str(k) if kind == "str" else int(k),
                          _encode(v, [*path, str(k)], arrays, specs)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, [*path, str(i)], arrays, specs) for i, v in enumerate(obj)]}
    hint = ""
    if hasattr(obj, "state_dict"):
        hint = f" Save its state dict instead: tinyattn.save(obj.state_dict(), path)."
    raise TypeError(f"tinyattn.save: cannot save an object of type {type(obj).__name__} at "
                    f"{'/'.join(path) or 'top level'}; checkpoints hold dicts, lists, tuples, "
                    f"numbers, strings, None and arrays.{hint}")


def _decode(node, arrays):
    (kind, value), = node.items()
    if kind == "array":
        return arrays[value]
    if kind in ("none", "bool", "int", "float", "str"):
        return value
    if kind == "dict":
        return {(k if t == "str" else int(k)): _decode(v, arrays) for t, k, v in value}
    if kind == "list":
        return [_decode(v, arrays) for v in value]
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in value)
    raise CheckpointError(f"unknown node kind {kind!r}")


# ---------------------------------------------------------------------------- save
def save(obj, path):
    """Write ``obj`` (a state dict, or a dict/list of them with numbers and arrays) to ``path`` as
    an .npz archive, atomically: the destination is either the old file or the complete new one."""
    arrays, specs = {}, {}
    tree = _encode(obj, [], arrays, specs)
    meta = json.dumps({"format": FORMAT, "tree": tree, "arrays": specs})
    arrays[META_KEY] = np.array(meta)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tinyattn.save: the folder {directory!r} does not exist; create "
                                f"it first (os.makedirs(folder, exist_ok=True)).")
    if os.path.isdir(path):
        raise IsADirectoryError(f"tinyattn.save: {path!r} is a folder; give a file name such as "
                                f"{os.path.join(path, 'checkpoint.npz')!r}.")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())          # the bytes are on disk before the name points at them
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)             # atomic on POSIX and Windows
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _default_file_mode():
    """What open() would have given (mkstemp makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- load
def load(path):
    """Read a checkpoint written by ``save`` (or any plain .npz of arrays) without pickle.

    Returns the saved structure with arrays as NumPy arrays. Raises ``CheckpointError`` naming the
    file for a truncated or corrupt archive or one whose contents do not match its description."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tinyattn.load: no such file {path!r}.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"tinyattn.load: {path!r} is a folder, not a checkpoint file.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}   # reads (and CRC-checks) everything
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise _unreadable(path, exc) from None
        raise CheckpointError(
            f"tinyattn.load: {path!r} holds a pickled Python object (an array of dtype object). "
            f"tinyattn never unpickles, since unpickling can run arbitrary code: re-save the "
            f"checkpoint with numeric arrays only (tinyattn.save does this).") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise _unreadable(path, exc) from None
    if META_KEY not in arrays:
        _check_kinds(path, arrays)
        return arrays                                  # a plain .npz: name -> array
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        specs = meta["arrays"]
        missing = sorted(set(specs) - set(arrays))
        extra = sorted(set(arrays) - set(specs))
        if missing or extra:
            raise CheckpointError(f"entries missing: {missing}, unexpected: {extra}")
        for name, (dtype, shape) in specs.items():
            a = arrays[name]
            if a.dtype.str != dtype or list(a.shape) != list(shape):
                raise CheckpointError(f"entry {name!r} is {a.dtype.str} {list(a.shape)}, the "
                                      f"description says {dtype} {shape}")
        _check_kinds(path, arrays)
        return _decode(meta["tree"], arrays)
    except CheckpointError as exc:
        raise CheckpointError(f"tinyattn.load: {path!r} is damaged or not a tinyattn "
                              f"checkpoint: {exc}.") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"tinyattn.load: {path!r} has an unreadable description entry "
                              f"{META_KEY!r} ({type(exc).__name__}: {exc}).") from None


def _unreadable(path, exc):
    return CheckpointError(
        f"tinyattn.load: {path!r} is not a readable checkpoint - the file is truncated or "
        f"corrupt ({type(exc).__name__}: {exc}). If a save was interrupted, this file is not "
        f"the one it was writing (saves are atomic); restore it from an earlier copy.")


def _check_kinds(path, arrays):
    for name, a in arrays.items():
        if a.dtype.kind not in _ARRAY_KINDS:
            raise CheckpointError(f"tinyattn.load: {path!r}: entry {name!r} has dtype {a.dtype}; "
                                  f"checkpoints hold numeric arrays only.")
