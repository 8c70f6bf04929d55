"""npz_archive: read every array of an ``.npz`` file without trusting a byte of it.

``numpy.load`` trusts the file: a damaged zip directory can hide entries, a header can declare an
array of terabytes (allocated before anything is checked), random bytes are reported as "pickled
data", and the errors are zipfile's or NumPy's own. ``read_members`` checks, in this order, and
raises ``CheckpointError`` saying what is wrong:

1. the first bytes: empty, a plain ``.npy``, a pickle or not a zip at all;
2. the zip directory: every member an uncompressed (``numpy.savez``) or deflated
   (``numpy.savez_compressed``) ``.npy``, not encrypted, listed once, stored inside the file;
3. each member's ``.npy`` header: version, dtype (numeric or bool; an object dtype would need
   unpickling, which can run code), shape, and that ``shape x itemsize`` is exactly the size the
   zip directory gives for the member - *before* any memory is allocated for it;
4. its bytes: zip's CRC-32, checked by ``zipfile`` at the member's end, and a SHA-256 computed
   here for the caller to compare with a manifest.
"""
from __future__ import annotations

import hashlib
import math
import zipfile

import numpy as np
import numpy.lib.format as npy_format

NUMERIC_KINDS = "biufc"          # bool, int, uint, float, complex: never objects or strings
_DEFLATE_MAX_RATIO = 1032        # deflate cannot expand data more than ~1032:1
_CHUNK = 16 << 20                # read members in 16 MiB pieces (no second full-size copy)
_MAX_NDIM = 64                   # NumPy's limit


class CheckpointError(ValueError):
    """A file that is not a valid tinyattn checkpoint (truncated, corrupt, or not one at all)."""


class _Bad(Exception):
    """What is wrong, before the file's name is put in front of it."""


def read_members(path, *, who, text_members=()):
    """``[(name, array, sha256_hex)]`` for every member of the archive at ``path``, in archive
    order (names without ``.npy``). Members named in ``text_members`` may also hold a str array.

    Raises ``CheckpointError`` (naming ``path``) for anything malformed; ``OSError`` from opening
    the file (missing, no permission) passes through unchanged."""
    with open(path, "rb") as f:
        try:
            return _read(f, text_members)
        except _Bad as exc:
            raise CheckpointError(f"{who}: {path!r} is not a valid checkpoint: {exc}") from None


def _read(f, text_members):
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    head = f.read(8)
    _check_start(head, size)
    try:
        zf = zipfile.ZipFile(f)
    except Exception as exc:   # noqa: BLE001 - any failure to parse these bytes is a broken file
        raise _Bad(f"its zip structure is broken ({_describe(exc)}). {_DAMAGED}") from None
    with zf:
        infos = zf.infolist()
        _check_directory(infos, size)
        out = []
        for info in infos:
            name = info.filename[:-len(".npy")]
            array, digest = _read_member(zf, info, allow_text=name in text_members)
            out.append((name, array, digest))
        return out


_DAMAGED = ("The file is truncated or corrupt; if a save was interrupted, this is not the file it "
            "was writing (saves are atomic): restore it from an earlier copy.")


def _check_start(head, size):
    if size == 0:
        raise _Bad("the file is empty (0 bytes). " + _DAMAGED)
    if head.startswith(npy_format.MAGIC_PREFIX):
        raise _Bad("it is a plain .npy file (one array, as numpy.save writes), not a checkpoint "
                   "archive. Read it with numpy.load(path); to make it a checkpoint, "
                   "tinyattn.save({'name': array}, path).")
    if head[:1] == b"\x80":
        raise _Bad("it looks like a pickle (pickle.dump, or torch.save's legacy format). "
                   "tinyattn never unpickles, since unpickling can run arbitrary code; in the "
                   "program that made it, save its arrays with tinyattn.save instead.")
    if not head.startswith(b"PK"):
        raise _Bad(f"it is not a zip archive (a checkpoint or .npz starts with b'PK'; this file "
                   f"is {size} bytes starting with {head[:8]!r}). {_DAMAGED}")
    if size < 22:                              # the smallest zip: an end-of-directory record
        raise _Bad(f"it is only {size} bytes, too short for a zip archive. {_DAMAGED}")


def _check_directory(infos, size):
    seen = set()
    for info in infos:
        name = info.filename
        if name in seen:
            raise _Bad(f"the zip directory lists {name!r} twice. {_DAMAGED}")
        seen.add(name)
        if not name.endswith(".npy"):
            hint = (" It looks like a PyTorch file (torch.save): convert it in PyTorch with "
                    "tinyattn.save({k: v.numpy() for k, v in state_dict.items()}, path)."
                    if name.endswith(".pkl") else "")
            raise _Bad(f"its member {name!r} is not a NumPy array (.npy); a checkpoint holds "
                       f"only arrays.{hint}")
        if info.flag_bits & 0x61:              # 0x1 encrypted, 0x20 patched data, 0x40 strong
            raise _Bad(f"its member {name!r} is encrypted (zip flags {info.flag_bits:#x}), "
                       f"which a checkpoint never is. {_DAMAGED}")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise _Bad(f"its member {name!r} is stored uncompressed but the zip directory "
                           f"gives two sizes ({info.compress_size} and {info.file_size} bytes). "
                           f"{_DAMAGED}")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024:
                raise _Bad(f"its member {name!r} claims {info.file_size} bytes from "
                           f"{info.compress_size} compressed ones, more than deflate can produce. "
                           f"{_DAMAGED}")
        else:
            raise _Bad(f"its member {name!r} uses zip compression method {info.compress_type}, "
                       f"which tinyattn does not read: only stored (numpy.savez) and deflated "
                       f"(numpy.savez_compressed) members. Re-save it with numpy.savez.")
        if info.header_offset + info.compress_size > size:
            raise _Bad(f"its member {name!r} would end at byte "
                       f"{info.header_offset + info.compress_size} of a {size}-byte file. "
                       f"{_DAMAGED}")


def _read_member(zf, info, allow_text):
    name = info.filename[:-len(".npy")]
    try:
        m = zf.open(info)
    except Exception as exc:  # noqa: BLE001
        raise _Bad(f"its member {name!r} cannot be opened ({_describe(exc)}). {_DAMAGED}") from None
    with m:
        shape, fortran, dtype, header_size = _read_header(m, name)
        kinds = NUMERIC_KINDS + ("U" if allow_text else "")
        if dtype.kind not in kinds:
            raise _Bad(f"its member {name!r} has dtype {dtype}; a checkpoint holds numeric and "
                       f"bool arrays only.")
        nbytes = math.prod(shape) * dtype.itemsize
        if header_size + nbytes != info.file_size:
            raise _Bad(f"the header of member {name!r} declares shape {shape} of {dtype} "
                       f"({nbytes} bytes of data) but the archive holds "
                       f"{info.file_size - header_size} bytes for it; refused before allocating "
                       f"anything. {_DAMAGED}")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        sha = hashlib.sha256()
        try:
            done = 0
            while done < nbytes:
                piece = m.read(min(_CHUNK, nbytes - done))
                if not piece:
                    raise EOFError(f"{nbytes - done} bytes missing")
                view[done:done + len(piece)] = piece
                sha.update(piece)
                done += len(piece)
            if m.read(1):                      # also makes zipfile check the CRC-32 at the end
                raise EOFError("data after the array")
        except Exception as exc:  # noqa: BLE001
            raise _damaged_data(name, exc) from None
    if nbytes == 0:                            # frombuffer refuses empty buffers of 0-size items
        return np.empty(shape, dtype), sha.hexdigest()
    array = np.frombuffer(buf, dtype=dtype)
    array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    return array, sha.hexdigest()


def _read_header(m, name):
    try:
        version = npy_format.read_magic(m)
    except zipfile.BadZipFile as exc:          # zipfile reads ahead: a bad CRC-32 shows up here
        raise _damaged_data(name, exc) from None
    except Exception:  # noqa: BLE001
        raise _Bad(f"its member {name!r} is not a NumPy array: it does not start with the .npy "
                   f"signature b'\\x93NUMPY'.") from None
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    if version not in readers:
        raise _Bad(f"its member {name!r} has .npy format version {version[0]}.{version[1]}, "
                   f"which tinyattn does not read (1.0 and 2.0 hold every numeric array). "
                   f"{_DAMAGED}")
    try:
        shape, fortran, dtype = readers[version](m)
    except zipfile.BadZipFile as exc:
        raise _damaged_data(name, exc) from None
    except Exception as exc:  # noqa: BLE001 - NumPy's parser of a header it did not write
        raise _Bad(f"the .npy header of member {name!r} is broken ({_describe(exc)}). "
                   f"{_DAMAGED}") from None
    if dtype.hasobject:
        raise _Bad(f"its member {name!r} holds a pickled Python object (an array of dtype "
                   f"object). tinyattn never unpickles, since unpickling can run arbitrary code: "
                   f"re-save the checkpoint with numeric arrays only (tinyattn.save does this).")
    if len(shape) > _MAX_NDIM or any(d < 0 for d in shape):
        raise _Bad(f"the .npy header of member {name!r} declares the impossible shape "
                   f"{shape[:8]}{'...' if len(shape) > 8 else ''} ({len(shape)} dimensions). "
                   f"{_DAMAGED}")
    return tuple(shape), fortran, dtype, m.tell()


def _damaged_data(name, exc):
    return _Bad(f"the bytes of member {name!r} are damaged ({_describe(exc)}). {_DAMAGED}")


def _describe(exc):
    text = str(exc)
    text = text if len(text) <= 200 else text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def mentions(path, marker):
    """Whether the bytes ``marker`` occur anywhere in the file (a member's name survives in its
    local header even when a damaged zip directory no longer lists it)."""
    import mmap
    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return mm.find(marker) >= 0
        except (ValueError, OSError):          # empty file, or no mmap here: read in pieces
            f.seek(0)
            tail = b""
            while piece := f.read(_CHUNK):
                if marker in tail + piece:
                    return True
                tail = piece[-len(marker):]
            return False
