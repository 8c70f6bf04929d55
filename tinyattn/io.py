"""save / load: state dicts (and anything made of dicts, lists, numbers and arrays) as ``.npz``.

    tinyattn.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    ckpt = tinyattn.load(path)
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

Why not pickle: unpickling runs code stored in the file. Here a checkpoint is plain data, read
without pickle; any NumPy installation can inspect it (``numpy.load(path)``).

File format (``FORMAT``, "tinyattn-checkpoint-2"): a zip archive of ``.npy`` members, as
``numpy.savez`` writes (uncompressed).
  * every array is one member, named by its path in the saved object with "/" between levels: a
    module state dict saved directly gives PyTorch's names (``layers.0.weight``); an optimiser
    state inside a checkpoint gives ``optimizer/state/0/exp_avg``. Tensors are saved as their
    arrays (and come back as NumPy arrays).
  * the first member, ``__tinyattn__``, is the manifest: UTF-8 JSON (as a uint8 array; read it
    with ``json.loads(np.load(path)["__tinyattn__"].tobytes())``) holding the format name, every
    entry's dtype, shape and SHA-256 of its bytes, and the structure (dicts with str or int keys,
    lists, tuples, numbers, bools, strings, None and, for each array, its entry's name).

How a checkpoint proves it is whole: ``load`` reads every member through
``npz_archive.read_members`` (which refuses a malformed archive before allocating anything),
then requires the manifest's list of entries to be exactly the archive's, and each entry's dtype,
shape and SHA-256 to match; the manifest itself is covered by zip's CRC-32, and a manifest that
a damaged zip directory no longer lists is found by its name in the file's bytes. So the result is
exactly what was saved, or a ``CheckpointError`` that says what is wrong.

Older files still load: format 1 (tinyattn before the manifest had checksums: names, dtypes and
shapes, checked as before, with zip's CRC-32 for the bytes; saving again upgrades the file), and a
plain ``.npz`` without a manifest (e.g. ``numpy.savez(path, **state_dict)``), which loads as a
flat dict name -> array and can prove no more than zip's CRC-32 does. Refusing them would strand
every checkpoint saved so far for no gain in safety: both are read without pickle either way.

Saving is atomic (``atomic_write``): the archive is written to a temporary file beside the
destination, flushed to disk, and renamed over it; a symlink is written through, a read-only
file is refused, errors name the checkpoint, and temporary files of killed saves are removed by
the next save.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import zipfile

import numpy as np
import numpy.lib.format as npy_format

from . import backend
from .atomic_write import atomic_write
from .autograd.tensor import Tensor
from .npz_archive import NUMERIC_KINDS, CheckpointError, mentions, read_members

__all__ = ["CheckpointError", "FORMAT", "load", "save"]

FORMAT = "tinyattn-checkpoint-2"
FORMAT_1 = "tinyattn-checkpoint-1"          # names, dtypes and shapes; no checksums
META_KEY = "__tinyattn__"
MAX_DEPTH = 100                             # a state dict is ~5 levels deep; 100 means a cycle


class _Invalid(Exception):
    """What is wrong with a manifest, before the file's name is put in front of it."""


# ---------------------------------------------------------------------------- encoding
def _where(path):
    text = "/".join(path) or "top level"
    return text if len(text) <= 80 else "..." + text[-77:]


def _encode(obj, path, arrays):
    """The JSON structure for ``obj``; its arrays go into ``arrays`` under names built from
    ``path`` (a list of keys)."""
    if len(path) > MAX_DEPTH:
        raise ValueError(f"tinyattn.save: the object is nested more than {MAX_DEPTH} levels deep "
                         f"(at {_where(path)}); a checkpoint is a shallow tree of dicts and lists. "
                         f"Does a list or dict contain itself?")
    if isinstance(obj, Tensor):
        obj = obj.array
    if backend.is_array(obj) or isinstance(obj, np.generic):
        arr = np.asarray(backend.to_numpy(obj))
        if arr.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"tinyattn.save: the array at {_where(path)} has dtype {arr.dtype}; "
                            f"only numeric and bool arrays can be saved.")
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")         # the bytes the manifest's checksum is taken over
        # zipfile would cut a name at NUL and turn "\" into "/" on Windows: keep names stable
        name = ("/".join(path) or "array").replace("\x00", "_").replace("\\", "_")
        while name in arrays or name == META_KEY:
            name += "_"
        arrays[name] = arr
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
                                f"{_where(path)}.")
            kind = "str" if isinstance(k, str) else "int"
            items.append([kind, str(k) if kind == "str" else int(k),
                          _encode(v, [*path, str(k)], arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, [*path, str(i)], arrays) for i, v in enumerate(obj)]}
    hint = ""
    if hasattr(obj, "state_dict"):
        hint = " Save its state dict instead: tinyattn.save(obj.state_dict(), path)."
    raise TypeError(f"tinyattn.save: cannot save an object of type {type(obj).__name__} at "
                    f"{_where(path)}; checkpoints hold dicts, lists, tuples, numbers, strings, "
                    f"None and arrays.{hint}")


def _sha256(arr):
    return hashlib.sha256(arr.reshape(-1).view(np.uint8)).hexdigest()


# ---------------------------------------------------------------------------- save
def save(obj, path):
    """Write ``obj`` (a state dict, or a dict/list of them with numbers and arrays) to ``path``,
    atomically: the destination is either the old file or the complete new one. A symlink is
    written through; a read-only file is refused; errors name ``path``."""
    arrays = {}
    tree = _encode(obj, [], arrays)
    entries = {name: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _sha256(a)}
               for name, a in arrays.items()}
    manifest = json.dumps({"format": FORMAT, "entries": entries, "tree": tree}).encode("utf-8")
    members = [(META_KEY, np.frombuffer(manifest, np.uint8)), *arrays.items()]
    with atomic_write(path, who="tinyattn.save") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in members:
                # force_zip64: a member may pass 4 GiB (numpy.savez does the same)
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    npy_format.write_array(member, arr, allow_pickle=False)


# ---------------------------------------------------------------------------- load
def load(path):
    """Read a checkpoint written by ``save`` (or any plain .npz of arrays) without pickle.

    Returns the saved structure with arrays as NumPy arrays, exactly as saved; raises
    ``CheckpointError`` naming the file and what is wrong for anything else (truncated, corrupt,
    not an archive, an entry that does not match the manifest)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"tinyattn.load: no such file {path!r}.", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"tinyattn.load: {path!r} is a folder, not a "
                                f"checkpoint file.", path)
    members = read_members(path, who="tinyattn.load", text_members=(META_KEY,))
    arrays = {name: a for name, a, _ in members}
    if META_KEY not in arrays:
        if mentions(path, META_KEY.encode()):
            raise CheckpointError(
                f"tinyattn.load: {path!r} is damaged: its bytes hold a tinyattn manifest "
                f"({META_KEY!r}) that its zip directory no longer lists, so entries may be "
                f"missing. Restore the file from an earlier copy.")
        return arrays                                  # a plain .npz: name -> array
    try:
        return _restore(arrays, {name: d for name, _, d in members})
    except _Invalid as exc:
        raise CheckpointError(f"tinyattn.load: {path!r} is damaged or not a tinyattn "
                              f"checkpoint: {exc}.") from None


def _restore(arrays, digests):
    meta = _read_manifest(arrays.pop(META_KEY))
    fmt = meta.get("format")
    if fmt == FORMAT:
        _check_entries(meta.get("entries"), arrays, digests, checksums=True)
    elif fmt == FORMAT_1:
        specs = meta.get("arrays")
        _expect(isinstance(specs, dict), "its description lists no arrays")
        _check_entries({n: {"dtype": s[0], "shape": s[1]} if isinstance(s, list) and len(s) == 2
                        else s for n, s in specs.items()}, arrays, digests, checksums=False)
    else:
        raise _Invalid(f"its format is {fmt!r}; this tinyattn reads {FORMAT!r} and {FORMAT_1!r} "
                       f"(a newer tinyattn may have written it: upgrade)")
    used = set()
    result = _decode(meta.get("tree"), arrays, used, 0)
    _expect(used == set(arrays), f"entries {sorted(set(arrays) - used)[:5]} are not in its "
                                 f"structure")
    return result


def _read_manifest(raw):
    try:
        if raw.dtype == np.uint8 and raw.ndim == 1:
            text = raw.tobytes().decode("utf-8")       # format 2
        elif raw.dtype.kind == "U" and raw.ndim == 0:
            text = str(raw[()])                         # format 1
        else:
            raise _Invalid(f"its manifest {META_KEY!r} is a {raw.dtype} array of shape "
                           f"{raw.shape}, not JSON text")
        meta = json.loads(text)
    except RecursionError:
        raise _Invalid(f"its manifest is nested absurdly deep (a checkpoint is at most "
                       f"{MAX_DEPTH} levels)") from None
    except ValueError as exc:                           # JSONDecodeError, UnicodeDecodeError
        raise _Invalid(f"its manifest is not valid JSON ({type(exc).__name__}: "
                       f"{str(exc)[:200]})") from None
    _expect(isinstance(meta, dict), "its manifest is not a JSON object")
    return meta


def _check_entries(entries, arrays, digests, checksums):
    _expect(isinstance(entries, dict), "its manifest lists no entries")
    missing = sorted(set(entries) - set(arrays))
    extra = sorted(set(arrays) - set(entries))
    _expect(not missing and not extra, f"entries missing: {missing[:5]}, unexpected: {extra[:5]} "
                                       f"(the manifest lists {len(entries)}, the archive holds "
                                       f"{len(arrays)})")
    for name, spec in entries.items():
        _expect(isinstance(spec, dict), f"the manifest's record of {name!r} is malformed")
        a = arrays[name]
        if a.dtype.str != spec.get("dtype") or list(a.shape) != spec.get("shape"):
            raise _Invalid(f"entry {name!r} is {a.dtype.str} {list(a.shape)}, the description "
                           f"says {spec.get('dtype')} {spec.get('shape')}")
        if checksums and digests[name] != spec.get("sha256"):
            raise _Invalid(f"the bytes of entry {name!r} do not match the SHA-256 in its manifest")


def _decode(node, arrays, used, depth):
    _expect(depth <= MAX_DEPTH, f"its structure is nested more than {MAX_DEPTH} levels deep")
    _expect(isinstance(node, dict) and len(node) == 1, f"its structure has a malformed node "
                                                       f"{str(node)[:80]}")
    (kind, value), = node.items()
    if kind == "array":
        _expect(isinstance(value, str) and value in arrays, f"its structure names an entry "
                                                            f"{str(value)[:80]!r} it does not hold")
        _expect(value not in used, f"its structure uses entry {value!r} twice")
        used.add(value)
        return arrays[value]
    scalar_types = {"none": type(None), "bool": bool, "int": int, "float": (float, int), "str": str}
    if kind in scalar_types:
        _expect(isinstance(value, scalar_types[kind]) and (kind == "bool") == isinstance(value, bool),
                f"its structure has a {kind} node holding {str(value)[:80]}")
        return float(value) if kind == "float" else value
    _expect(isinstance(value, list), f"its structure has a {kind} node that is not a list")
    if kind == "dict":
        out = {}
        for item in value:
            _expect(isinstance(item, list) and len(item) == 3 and item[0] in ("str", "int")
                    and isinstance(item[1], str if item[0] == "str" else int)
                    and not isinstance(item[1], bool), "its structure has a malformed dict item")
            out[item[1]] = _decode(item[2], arrays, used, depth + 1)
        return out
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays, used, depth + 1) for v in value]
        return items if kind == "list" else tuple(items)
    raise _Invalid(f"its structure has an unknown node kind {str(kind)[:40]!r}")


def _expect(condition, message):
    if not condition:
        raise _Invalid(message)
