"""A checkpoint proves it is whole: every load gives exactly what was saved or a CheckpointError.

Damaged files (every single-byte flip of a small checkpoint, a zip directory that hides entries,
bytes that no longer match the manifest's SHA-256) and malformed ones (not a zip, a plain .npy,
random bytes, unsupported compression, broken .npy headers, shapes too large to allocate, absurd
nesting, members that are not arrays), each reported as what it is.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zipfile

import numpy as np
import numpy.lib.format as npy_format
import pytest

import tinyattn as ta
from tinyattn.io import FORMAT, META_KEY, MAX_DEPTH, CheckpointError, load, save


def _same(a, b):
    """Exactly equal: same types, same structure, arrays with the same dtype, shape and bytes."""
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _npy(arr):
    buf = io.BytesIO()
    npy_format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _manifest(meta):
    return _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def _raises(path, pattern):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load(path)
    assert str(path) in str(info.value)                 # every message names the file
    return str(info.value)


SMALL = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], np.int64),
         "step": 3, "groups": [{"lr": 0.5, "betas": (0.9, 0.99), "name": None}]}


# ---------------------------------------------------------------------------- round trips
def test_every_kind_of_array_comes_back_exactly(tmp_path):
    obj = {"f16": np.array([1.5, -0.0, np.inf], np.float16), "c": np.array([1 + 2j]),
           "big_endian": np.arange(3, dtype=">i4"), "bool": np.array([True, False]),
           "scalar0d": np.array(2.5), "empty": np.zeros((0, 3), np.uint8),
           "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
           "strided": np.arange(10.0)[::3], "tensor": ta.tensor([1.0, 2.0]),
           "nan": float("nan"), "big": 2 ** 100, "keys": {0: "zero", "0": "string zero"}}
    save(obj, tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    expected = dict(obj, fortran=np.ascontiguousarray(obj["fortran"]),
                    strided=np.ascontiguousarray(obj["strided"]), tensor=obj["tensor"].numpy())
    assert _same(back, expected)
    assert back["big_endian"].dtype.str == ">i4"
    back["w"] = None                                    # a plain, writable result
    back["fortran"][0, 0] = 7.0


def test_the_manifest_is_first_and_readable_with_plain_numpy(tmp_path):
    save(SMALL, tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        assert zf.namelist()[0] == META_KEY + ".npy"
    with np.load(tmp_path / "c.npz", allow_pickle=False) as raw:
        meta = json.loads(raw[META_KEY].tobytes())
        assert meta["format"] == FORMAT
        assert meta["entries"]["w"]["shape"] == [2, 3] and meta["entries"]["w"]["dtype"] == "<f4"
        assert len(meta["entries"]["w"]["sha256"]) == 64
        assert np.array_equal(raw["w"], SMALL["w"])


# ---------------------------------------------------------------------------- integrity
def test_every_single_byte_flip_loads_exactly_or_raises_checkpoint_error(tmp_path):
    path, flipped = tmp_path / "c.npz", tmp_path / "flipped.npz"
    save(SMALL, path)
    data = path.read_bytes()
    assert _same(load(path), SMALL)
    rng = np.random.default_rng(0)
    outcomes = {"same": 0, "refused": 0}
    flips = [(offset, 0xFF) for offset in range(len(data))]       # every bit of every byte,
    flips += [(int(o), int(m)) for o, m in zip(rng.integers(0, len(data), 300),  # and patterns
                                               rng.integers(1, 255, 300))]
    for offset, mask in flips:
        damaged = bytearray(data)
        damaged[offset] ^= mask
        flipped.write_bytes(bytes(damaged))
        try:
            back = load(flipped)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        assert _same(back, SMALL), f"a flip at byte {offset} (^{mask:#x}) loaded other data"
        outcomes["same"] += 1
    # most flips hit the arrays' or the manifest's bytes; the harmless ones hit dates, unused
    # fields and the local headers' copies of the sizes
    assert outcomes["refused"] > outcomes["same"] > 0


def _hide_first_directory_record(data):
    """The archive with its zip directory starting one record later: the first member (the
    manifest) is no longer listed, the others still are - the damage that used to load a
    checkpoint incomplete without an error."""
    eocd = data.rindex(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HIIxx", data[eocd + 10:eocd + 22])[0:3]
    name_len, extra_len, comment_len = struct.unpack("<HHH", data[offset + 28:offset + 34])
    first = 46 + name_len + extra_len + comment_len
    record = struct.pack("<HHII", count - 1, count - 1, size - first, offset + first)
    return data[:eocd + 8] + record + data[eocd + 20:]


def test_a_directory_that_hides_the_manifest_is_detected(tmp_path):
    path = tmp_path / "c.npz"
    save(SMALL, path)
    path.write_bytes(_hide_first_directory_record(path.read_bytes()))
    with zipfile.ZipFile(path) as zf:                   # zip itself sees a valid, smaller archive
        assert META_KEY + ".npy" not in zf.namelist() and "w.npy" in zf.namelist()
    _raises(path, "manifest .* no longer lists")


def test_a_directory_that_hides_an_array_is_detected(tmp_path):
    path = tmp_path / "c.npz"
    save({"a": np.ones(2), "b": np.zeros(3)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    del members["b.npy"]                                # a directory without the last entry
    _zip(path, members)
    _raises(path, r"entries missing: \['b'\]")


def test_bytes_that_do_not_match_the_manifest_checksum_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    save({"w": np.arange(4.0)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["w.npy"] = _npy(np.array([0.0, 1.0, 2.0, 3.5]))   # same shape, fresh zip CRC-32
    _zip(path, members)
    _raises(path, "do not match the SHA-256")


def test_a_manifest_that_disagrees_with_the_archive_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    entry = {"dtype": "<f8", "shape": [3], "sha256": "0" * 64}
    tree = {"dict": [["str", "w", {"array": "w"}]]}
    _zip(path, {META_KEY + ".npy": _manifest({"format": FORMAT, "entries": {"w": entry},
                                               "tree": tree}), "w.npy": _npy(np.ones(4))})
    _raises(path, r"entry 'w' is <f8 \[4\], the description says <f8 \[3\]")
    _zip(path, {META_KEY + ".npy": _manifest({"format": "tinyattn-checkpoint-9", "tree": tree}),
                "w.npy": _npy(np.ones(4))})
    _raises(path, "tinyattn-checkpoint-9.*upgrade")
    _zip(path, {META_KEY + ".npy": b"\x93NUMPY" + b"\x00" * 10})
    _raises(path, "header of member '__tinyattn__' is broken|version")
    _zip(path, {META_KEY + ".npy": _npy(np.frombuffer(b"{not json", np.uint8))})
    _raises(path, "manifest is not valid JSON")


def test_format_1_files_from_before_the_checksums_still_load(tmp_path):
    """What tinyattn.save wrote before the manifest had checksums (description last, as str)."""
    path = tmp_path / "old.npz"
    meta = {"format": "tinyattn-checkpoint-1",
            "tree": {"dict": [["str", "w", {"array": "w"}], ["str", "epoch", {"int": 3}],
                              ["str", "betas", {"tuple": [{"float": 0.9}, {"float": 0.99}]}]]},
            "arrays": {"w": ["<f4", [2, 2]]}}
    np.savez(path, w=np.eye(2, dtype=np.float32), __tinyattn__=np.array(json.dumps(meta)))
    back = load(path)
    assert _same(back, {"w": np.eye(2, dtype=np.float32), "epoch": 3, "betas": (0.9, 0.99)})
    save(back, path)                                    # saving again upgrades it
    assert _same(load(path), back)
    with np.load(path) as raw:
        assert json.loads(raw[META_KEY].tobytes())["format"] == FORMAT


def test_a_format_1_file_whose_directory_hides_its_description_is_detected(tmp_path):
    """The flip that used to load a checkpoint incomplete without an error: the comment length of
    the second-to-last directory record grows to swallow the last record (format 1 put its
    description last), so zip lists every member but the description."""
    path = tmp_path / "old.npz"
    meta = {"format": "tinyattn-checkpoint-1",
            "tree": {"dict": [["str", "w", {"array": "w"}], ["str", "epoch", {"int": 3}]]},
            "arrays": {"w": ["<f8", [2]]}}
    np.savez(path, w=np.ones(2), __tinyattn__=np.array(json.dumps(meta)))
    assert load(path)["epoch"] == 3
    data = bytearray(path.read_bytes())
    records = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"]
    last_size = data.rindex(b"PK\x05\x06") - records[-1]
    data[records[-2] + 32:records[-2] + 34] = struct.pack("<H", last_size)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["w.npy"]
    _raises(path, "manifest .* no longer lists")


def test_plain_npz_files_load_compressed_or_not(tmp_path):
    np.savez_compressed(tmp_path / "z.npz", a=np.arange(1000), b=np.ones((2, 2), np.float32))
    back = load(tmp_path / "z.npz")
    assert list(back) == ["a", "b"] and np.array_equal(back["a"], np.arange(1000))


# ---------------------------------------------------------------------------- malformed files
def test_short_random_and_foreign_files_say_what_they_are(tmp_path):
    path = tmp_path / "c.npz"
    cases = {b"": "empty", b"P": "not a zip", b"PK": "too short", b"PK\x03\x04": "too short",
             b"PK\x03\x04" + b"\x00" * 40: "zip structure is broken",
             b"\x93NUMPY\x01\x00": "plain .npy", pickle.dumps({"w": [1.0]}): "looks like a pickle",
             b"hello world, I am text": "not a zip archive"}
    rng = np.random.default_rng(1)
    for n in range(40):                                 # random bytes, some with a zip signature
        noise = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        cases[(b"PK\x03\x04" if n % 2 else b"") + noise] = "not a valid checkpoint"
    for data, pattern in cases.items():
        path.write_bytes(data)
        message = _raises(path, pattern)
        if not data.startswith(b"\x80"):
            assert "pickled" not in message and "pickle" not in message, message


def test_a_plain_npy_file(tmp_path):
    np.save(tmp_path / "w.npy", np.ones(3))
    _raises(tmp_path / "w.npy", r"plain \.npy file .*numpy\.load")


def test_unsupported_zip_compression(tmp_path):
    _zip(tmp_path / "c.npz", {"w.npy": _npy(np.ones(3))}, zipfile.ZIP_BZIP2)
    _raises(tmp_path / "c.npz", "compression method 12, which tinyattn does not read")


def test_members_that_are_not_arrays(tmp_path):
    path = tmp_path / "c.npz"
    _zip(path, {"w.npy": _npy(np.ones(3)), "notes.txt": b"hello"})
    _raises(path, r"member 'notes.txt' is not a NumPy array \(\.npy\)")
    _zip(path, {"archive/data.pkl": b"\x80\x02", "archive/version": b"3"})
    _raises(path, "PyTorch file")
    _zip(path, {"w.npy": b"just some text, no header"})
    _raises(path, r"member 'w' is not a NumPy array: it does not start with the \.npy signature")
    np.savez(path, s=np.array(["text"]))
    _raises(path, "member 's' has dtype <U4; a checkpoint holds numeric and bool arrays only")
    np.savez(path, o=np.array([{"a": 1}], dtype=object))
    _raises(path, "holds a pickled Python object")


def test_broken_npy_headers(tmp_path):
    path = tmp_path / "c.npz"
    magic = npy_format.magic(1, 0)
    broken = {
        "syntax": b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,)",
        "not a dict": b"[1, 2, 3]",
        "bad dtype": b"{'descr': 'nonsense', 'fortran_order': False, 'shape': (3,)}",
        "bad shape": b"{'descr': '<f8', 'fortran_order': False, 'shape': 'three'}",
        "deep": b"(" * 3000 + b")" * 3000,
    }
    for why, header in broken.items():
        header = header.ljust(((len(header) + 10) // 64 + 1) * 64 - 10) + b"\n"
        _zip(path, {"w.npy": magic + struct.pack("<H", len(header)) + header + b"\x00" * 24})
        _raises(path, r"the \.npy header of member 'w' is broken")
    _zip(path, {"w.npy": magic + b"\xff\x00"})           # header longer than the member
    _raises(path, r"the \.npy header of member 'w' is broken")
    _zip(path, {"w.npy": npy_format.magic(7, 0) + b"\x00" * 60})
    _raises(path, r"\.npy format version 7\.0")


def _header(shape, descr="<f8"):
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                             "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(2 ** 40,), (2 ** 62, 4), (10 ** 30,), (1000,), (2,), (-3,)])
def test_a_declared_shape_is_checked_against_the_stored_size_before_allocating(tmp_path, shape):
    path = tmp_path / "c.npz"
    _zip(path, {"w.npy": _header(shape) + np.arange(10.0).tobytes()})   # holds 10 values
    if shape == (-3,):
        _raises(path, r"impossible shape \(-3,\)")
    else:
        _raises(path, rf"declares shape \({shape[0]},.*but the archive holds 80 bytes .*refused "
                      rf"before allocating")


def test_a_deflated_member_claiming_more_than_deflate_can_produce(tmp_path):
    path = tmp_path / "z.npz"
    np.savez_compressed(path, w=np.zeros(100))
    data = bytearray(path.read_bytes())
    record = data.rindex(b"PK\x01\x02")
    data[record + 24:record + 28] = struct.pack("<I", 2 ** 31)    # the directory's full size
    path.write_bytes(bytes(data))
    _raises(path, "more than deflate can produce")


def test_absurd_nesting(tmp_path):
    deep = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} levels"):
        save({"x": deep}, tmp_path / "c.npz")
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="contain itself"):
        save(cycle, tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())

    path = tmp_path / "c.npz"
    tree = {"none": None}
    for _ in range(MAX_DEPTH + 5):
        tree = {"list": [tree]}
    _zip(path, {META_KEY + ".npy": _manifest({"format": FORMAT, "entries": {}, "tree": tree})})
    _raises(path, f"nested more than {MAX_DEPTH} levels deep")
    text = b'{"format": "' + FORMAT.encode() + b'", "entries": {}, "tree": ' + b"[" * 100_000
    _zip(path, {META_KEY + ".npy": _npy(np.frombuffer(text, np.uint8))})
    _raises(path, "nested absurdly deep|not valid JSON")


def test_a_malformed_structure_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    entry = {"dtype": "<f8", "shape": [1], "sha256": hashlib.sha256(np.ones(1)).hexdigest()}
    for tree, pattern in [({"int": "3"}, "int node"), ({"array": "missing"}, "does not hold"),
                          ({"list": [{"array": "w"}, {"array": "w"}]}, "twice"),
                          ({"set": []}, "unknown node kind"), ({"none": None}, "not in its structure"),
                          ({"dict": [["str", 1, {"none": None}]]}, "malformed dict item")]:
        _zip(path, {META_KEY + ".npy": _manifest({"format": FORMAT, "entries": {"w": entry},
                                                   "tree": tree}),
                    "w.npy": _npy(np.ones(1))})
        _raises(path, pattern)
