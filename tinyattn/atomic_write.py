"""atomic_write: replace a file so that readers see either the old file or the whole new one.

    with atomic_write("runs/ckpt.npz", who="tinyattn.save") as f:
        f.write(data)

The bytes go to a temporary file beside the destination (same folder, hence same file system),
are flushed to disk, and the temporary file is renamed over the destination (``os.replace``,
atomic on POSIX and Windows). What this adds to that classic recipe:

* a symbolic link is followed: its target is replaced and the link stays a link, as ``open(path,
  "wb")`` would write through it. An existing file keeps its permission bits (and, where we may,
  its owner).
* a read-only destination is refused (``PermissionError`` naming it), as ``open()`` refuses it;
  a file without any write bit (``chmod a-w``) counts as read-only even for root, who could write
  it anyway: in containers and notebooks everyone is root, and the bit is how a user says "keep".
* every ``OSError`` while writing (read-only folder, disk full, file too large, ...) is re-raised
  as the same type and errno, naming the destination and the likely fix - never the temporary
  file, which the user never asked for and which is gone by then.
* temporary files are named recognisably, ``.<name>.tinyattn-tmp-<pid>-<random>``, and hold an
  advisory lock while being written. A process killed mid-write (``kill -9``) cannot remove its
  own, so the next write to the same destination removes every such file whose process is gone
  and whose lock is free: strays never accumulate. (Both tests are needed: a pid alone is not
  proof across containers sharing a folder, and the lock is taken a moment after the file is
  created.)
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

try:                                    # POSIX advisory locks; absent on Windows
    import fcntl
except ImportError:                     # pragma: no cover - Windows
    fcntl = None

TEMP_TAG = ".tinyattn-tmp-"
_NAME_ROOM = 120                        # characters of the destination's name kept in a temp name

_HINTS = {
    errno.ENOSPC: "The disk is full: free some space or save elsewhere, then save again.",
    errno.EFBIG: "The file is larger than this file system or process allows (see `ulimit -f`; "
                 "FAT32 stops at 4 GiB): save to another file system or save less.",
    errno.EROFS: "The file system is mounted read-only: save somewhere else.",
    errno.EACCES: "Saving writes a temporary file in the checkpoint's folder and renames it over "
                  "the checkpoint (so a crash never leaves half a file); that needs write "
                  "permission on the folder {folder!r}.",
}
_HINTS[errno.EPERM] = _HINTS[errno.EACCES]
if hasattr(errno, "EDQUOT"):
    _HINTS[errno.EDQUOT] = "The disk quota is used up: free some space or save elsewhere."


def temp_prefix(target):
    """The start of every temporary file's name for writes to ``target``."""
    return f".{os.path.basename(target)[:_NAME_ROOM]}{TEMP_TAG}"


def stray_temp_files(target):
    """Temporary files of writes to ``target`` still in its folder (live or abandoned)."""
    folder, prefix = os.path.dirname(os.path.abspath(target)), temp_prefix(target)
    try:
        return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(prefix))
    except OSError:
        return []


@contextlib.contextmanager
def atomic_write(path, who):
    """Yield a binary file whose contents replace ``path`` when the block ends without an error.

    ``who`` (e.g. ``"tinyattn.save"``) starts every error message. On any error the destination is
    left as it was and the temporary file is removed."""
    shown = os.fspath(path)
    folder_shown = os.path.dirname(os.path.abspath(shown))
    if not os.path.isdir(folder_shown):
        if os.path.exists(folder_shown):
            raise NotADirectoryError(errno.ENOTDIR, f"{who}: {folder_shown!r} is a file, not a "
                                     f"folder, so {shown!r} cannot be created in it.", shown)
        raise FileNotFoundError(errno.ENOENT, f"{who}: the folder {folder_shown!r} does not exist; "
                                f"create it first (os.makedirs(folder, exist_ok=True)).", shown)
    target = os.path.realpath(shown)          # through symlinks, as open() writes
    folder = os.path.dirname(target)
    if target != os.path.abspath(shown) and not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"{who}: {shown!r} is a symbolic link to {target!r}, "
                                f"whose folder does not exist; create it or fix the link.", shown)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise _named(exc, shown, who, "reading the existing file's permissions", folder) from None
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"{who}: {shown!r} is a folder; give a file name such "
                                f"as {os.path.join(shown, 'checkpoint.npz')!r}.", shown)
    if old is not None and (not old.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise PermissionError(errno.EACCES, f"{who}: {shown!r} is read-only, so it was not "
                              f"replaced. Make it writable (chmod u+w) or save under another "
                              f"name.", shown)
    remove_stale_temp_files(target)
    try:
        fd, tmp = _create_temp(target)
    except OSError as exc:
        raise _named(exc, shown, who, "creating its temporary file", folder) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno())
            yield f
            f.flush()
            os.fsync(f.fileno())              # the bytes are on disk before the name points at them
        if old is not None:
            _keep_permissions(tmp, old)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, shown, who, "writing", folder) from None
        raise
    _fsync_folder(folder)


def remove_stale_temp_files(target):
    """Remove the temporary files that killed writers to ``target`` left behind."""
    for name in stray_temp_files(target):
        pid_text, sep, _ = name.rpartition(TEMP_TAG)[2].partition("-")
        if sep and pid_text.isdigit() and not _process_alive(int(pid_text)) \
                and not _locked(name):
            with contextlib.suppress(OSError):
                os.unlink(name)


def _create_temp(target):
    folder, prefix = os.path.dirname(target), temp_prefix(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f"{prefix}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            # 0o666 less the umask: the mode open() would give a new file
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", target)


def _lock(fd):
    if fcntl is not None:
        with contextlib.suppress(OSError):    # no locks on this file system: the pid test remains
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _locked(name):
    """Whether a live writer holds ``name``'s lock. On Windows an open file cannot be removed
    anyway, so there the unlink that follows is the test."""
    if fcntl is None:
        return False
    try:
        fd = os.open(name, os.O_RDWR)
    except OSError:
        return True                            # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False                           # locks unsupported here: the pid test decides
    finally:
        os.close(fd)


def _process_alive(pid):
    if pid == os.getpid():
        return True
    if os.name == "nt":                        # os.kill would terminate it; see _locked
        return False
    try:
        os.kill(pid, 0)                        # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True                            # exists, owned by someone else
    return True


def _keep_permissions(tmp, old):
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
    if hasattr(os, "chown") and hasattr(os, "geteuid") and old.st_uid != os.geteuid():
        with contextlib.suppress(OSError):     # only root may give a file away
            os.chown(tmp, old.st_uid, old.st_gid)


def _named(exc, shown, who, doing, folder):
    """``exc`` again (same type and errno), saying which checkpoint failed and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _HINTS.get(exc.errno, "").format(folder=folder)
    message = (f"{who}: could not write {shown!r} ({doing}: {reason}). "
               f"{hint + ' ' if hint else ''}Any previous file at that path is unchanged.")
    try:
        if exc.errno is None:
            return type(exc)(message)
        return type(exc)(exc.errno, message, shown)
    except TypeError:                          # an OSError subclass with its own signature
        return OSError(exc.errno, message, shown)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
