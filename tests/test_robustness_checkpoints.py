"""Issue 17, checkpoints: each bullet of the issue against the code and the tests.

Already covered where checkpoint format 2 landed (so not repeated here):
- a manifest of every entry (shape, dtype, SHA-256), verified on load; every single-byte flip
  loads exactly or raises CheckpointError; a zip directory hiding entries is detected:
  tests/test_io_integrity.py (test_every_single_byte_flip_..., test_a_directory_that_hides_...);
- malformed files (zip compression, broken .npy headers, huge declared shapes refused before
  allocating, absurd nesting, plain .npy, members that are not arrays, short and random files):
  tests/test_io_integrity.py;
- ta.save through a symlink writes its target and keeps the link (dangling links too); a
  read-only file is refused, not replaced; read-only folder, full disk and file-size limit are
  errors naming the checkpoint, not the temporary file; kill -9 mid-save in a loop leaves the
  checkpoint whole and no temporary files piling up: tests/test_io_saving.py.

What this file adds: the remaining ways a path can be wrong, each an error that names the path
the user gave and says what is wrong with it (they used to say "No such file or directory"
about the temporary file's folder).
"""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.atomic_write import TEMP_TAG

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX symlinks")


def _state():
    return {"w": np.arange(4.0)}


@posix_only
def test_a_symlink_into_a_missing_folder_is_named_as_such(tmp_path):
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "gone" / "ckpt.npz")
    with pytest.raises(FileNotFoundError, match=r"latest.npz' is a symbolic link to .*gone/ckpt.npz"
                                                r"', whose folder does not exist") as err:
        ta.save(_state(), link)
    assert err.value.errno == errno.ENOENT and err.value.filename == str(link)
    assert link.is_symlink() and not (tmp_path / "gone").exists()


def test_a_file_where_the_folder_should_be_is_named_as_such(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=r"runs' is a file, not a folder"):
        ta.save(_state(), tmp_path / "runs" / "ckpt.npz")
    assert (tmp_path / "runs").read_text() == "not a folder"


@posix_only
def test_a_symlink_loop_is_an_error_naming_the_checkpoint(tmp_path):
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match=r"tinyattn.save: could not write '.*loop.npz'.*symbolic "
                                      r"links.*unchanged") as err:
        ta.save(_state(), loop)
    assert err.value.filename == str(loop)
    assert not [p for p in os.listdir(tmp_path) if TEMP_TAG in p]


def test_load_names_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"tinyattn.load: .* is a folder, not a checkpoint"):
        ta.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"tinyattn.load: no such file '.*nope.npz'"):
        ta.load(tmp_path / "nope.npz")
