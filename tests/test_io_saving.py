"""tinyattn.save under faults: symlinks, read-only files and folders, a full disk, a file size
limit, and kill -9 at random moments - errors name the checkpoint, temp files never pile up."""
from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import tinyattn.atomic_write as atomic_write_module
from tinyattn.atomic_write import TEMP_TAG, stray_temp_files, temp_prefix
from tinyattn.io import load, save

try:
    import fcntl
except ImportError:                     # pragma: no cover - Windows
    fcntl = None

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions, signals, fork")


def _version(v, n=10):
    return {"w": np.full(n, float(v)), "version": v}


def _loads_as(path, v, n=10):
    back = load(path)
    assert back["version"] == v and np.array_equal(back["w"], np.full(n, float(v)))


def _no_temp_files(folder):
    return not [p for p in os.listdir(folder) if TEMP_TAG in p]


# ---------------------------------------------------------------------------- links, permissions
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_save_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    target, link = real_dir / "real.npz", tmp_path / "latest.npz"
    save(_version(1), target)
    link.symlink_to(target)
    save(_version(2), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    _loads_as(target, 2)
    _loads_as(link, 2)
    assert _no_temp_files(tmp_path) and _no_temp_files(real_dir)
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(real_dir / "not-yet.npz")     # as open(): a dangling link's target is made
    save(_version(3), dangling)
    assert dangling.is_symlink()
    _loads_as(real_dir / "not-yet.npz", 3)


@posix_only
def test_a_read_only_checkpoint_is_not_replaced(tmp_path):
    path = tmp_path / "keep.npz"
    save(_version(1), path)
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match=r"keep\.npz' is read-only, so it was not replaced") \
            as info:
        save(_version(2), path)
    assert info.value.errno == errno.EACCES and info.value.filename == str(path)
    _loads_as(path, 1)
    assert _no_temp_files(tmp_path)
    os.chmod(path, 0o644)
    save(_version(2), path)
    _loads_as(path, 2)


@posix_only
def test_a_replaced_checkpoint_keeps_its_permissions(tmp_path):
    path = tmp_path / "c.npz"
    save(_version(1), path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask      # what open() would give
    os.chmod(path, 0o640)
    save(_version(2), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def _check_names_the_checkpoint(exc, path, hint):
    text = str(exc)
    assert str(path) in text and hint in text, text
    assert TEMP_TAG not in text, f"the message names the temporary file: {text}"
    assert exc.filename == str(path)


@posix_only
def test_a_read_only_folder_is_an_error_naming_the_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "c.npz"
    save(_version(1), path)
    if os.geteuid() == 0:                                # root writes anywhere: simulate the refusal
        real_open = os.open

        def refusing_open(name, flags, *args):
            if TEMP_TAG in os.fspath(name) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
            return real_open(name, flags, *args)
        monkeypatch.setattr(atomic_write_module.os, "open", refusing_open)
    else:
        os.chmod(folder, 0o555)
    try:
        with pytest.raises(PermissionError) as info:
            save(_version(2), path)
    finally:
        os.chmod(folder, 0o755)
        monkeypatch.undo()
    _check_names_the_checkpoint(info.value, path, "needs write permission on the folder")
    _loads_as(path, 1)


class _FillsUp:
    """A file on a disk with ``room`` bytes left: then write() fails with ENOSPC."""

    def __init__(self, f, room):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_a_full_disk_is_an_error_naming_the_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save(_version(1, 5000), path)
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic_write_module.os, "fdopen",
                        lambda fd, mode: _FillsUp(real_fdopen(fd, mode), 10_000))
    with pytest.raises(OSError) as info:
        save(_version(2, 5000), path)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    _check_names_the_checkpoint(info.value, path, "The disk is full")
    _loads_as(path, 1, 5000)
    assert _no_temp_files(tmp_path)


@posix_only
def test_a_file_size_limit_is_an_error_naming_the_checkpoint(tmp_path):
    resource = pytest.importorskip("resource")
    path = tmp_path / "c.npz"
    save(_version(1), path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Python ignores SIGXFSZ, so passing the limit is an EFBIG from write()
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(OSError) as info:
            save(_version(2, 100_000), path)             # 800 kB
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert info.value.errno == errno.EFBIG
    _check_names_the_checkpoint(info.value, path, "larger than this file system or process allows")
    _loads_as(path, 1)
    assert _no_temp_files(tmp_path)


# ---------------------------------------------------------------------------- temporary files
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@posix_only
def test_the_next_save_removes_temp_files_of_dead_savers_only(tmp_path):
    path = tmp_path / "c.npz"
    dead = _dead_pid()
    prefix = temp_prefix(str(path))
    stale = [tmp_path / f"{prefix}{dead}-0000abcd", tmp_path / f"{prefix}{dead}-1234beef"]
    live = tmp_path / f"{prefix}{os.getpid()}-00000000"           # a save in progress here
    other = tmp_path / f"{temp_prefix(str(tmp_path / 'other.npz'))}{dead}-00000000"
    unrelated = tmp_path / ".c.npz.notes"
    for p in [*stale, live, other, unrelated]:
        p.write_bytes(b"half a checkpoint")
    locked = tmp_path / f"{prefix}{dead}-1111aaaa"     # dead pid but locked: another container's
    locked.write_bytes(b"being written")
    holder = open(locked, "rb+")
    if fcntl is not None:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        save(_version(1), path)
    finally:
        holder.close()
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists() and unrelated.exists()
    assert locked.exists() == (fcntl is not None)
    assert sorted(stray_temp_files(str(path))) == sorted(
        str(p) for p in [live] + ([locked] if fcntl is not None else []))
    _loads_as(path, 1)


def test_failed_saves_leave_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("numpy.lib.format.write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(_version(1), path)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_at_random_moments_never_damages_the_checkpoint_nor_piles_up_temp_files(tmp_path):
    """A child process saves a 4 MB checkpoint in a loop, alternating two versions; it is killed
    with SIGKILL at a random moment, ten times (more if none landed mid-write). After every kill the file is one complete version,
    and at most one temporary file (the killed save's) is there; the next save removes it."""
    n = 500_000
    path = tmp_path / "ckpt.npz"
    save(_version(0, n), path)
    rng = random.Random(0)
    strays_seen = []
    while len(strays_seen) < 10 or not any(strays_seen):  # ten kills, one at least mid-write
        assert len(strays_seen) < 40, "no kill landed mid-save: the test proved nothing"
        pid = os.fork()
        if pid == 0:                                      # the child: save until killed
            try:
                for i in range(1, 1000):
                    save(_version(1 + i % 2, n), path)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.005, 0.15))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        strays = stray_temp_files(str(path))
        assert len(strays) <= 1, f"temporary files pile up: {strays}"
        strays_seen.append(len(strays))
        back = load(path)
        assert back["version"] in (0, 1, 2)
        _loads_as(path, back["version"], n)
    save(_version(5, n), path)
    assert stray_temp_files(str(path)) == [] and _no_temp_files(tmp_path)
    _loads_as(path, 5, n)
