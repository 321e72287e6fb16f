"""Write a file so that it is either whole at its name or not there at all.

    write_atomic(dst, lambda fp: fp.write(data))     # never replaces a file at dst
    write_atomic(dst, write, overwrite=True)          # replaces one

The bytes go to a hidden temp file beside dst (`.NAME.cloak-tmp-XXXXXXXX`), are flushed
and fsynced, and the file is then linked or renamed to dst in one step that fails if a
file appeared there meanwhile (unless `overwrite` allows replacing it). Any error removes
the temp file and leaves dst as it was; errors are OutputError (OutputExistsError where
dst exists).

Permissions: a new file is readable by no one its `private_like` file (the original
photo) is not readable by, as `cp` would make it (the umask applies as ever); a file
replaced at dst passes its own permissions on (a manifest the user made private stays
private), no wider than that.
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import CloakError, OutputError, OutputExistsError, raised_by_cloak

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def check_folder_writable(folder: str | os.PathLike[str], name: str | None = None) -> None:
    """Raise OutputError unless a file can be created in `folder`: a hidden probe file is
    made and removed (a read-only card or share fails here, before the minutes an attack
    takes; a full disk usually still takes an empty file, and fails on the photo's write,
    whose OutputError carries the errno). With `name` (the output's file name), a second
    probe bears the temp name that write_atomic will use for it: a name the disk refuses
    (`:` or `?` on a FAT or exFAT card or a Windows disk) or a path over Windows' length
    limit fails here too, said as such, not as an unwritable folder after the attack."""
    folder = Path(folder)
    try:
        temp, fd = _temp_file(folder, "write-check")
    except OSError as exc:
        raise OutputError(f"can't write in {folder} ({exc.strerror or exc})") from exc
    _remove_probe(temp, fd)
    if name is None:
        return
    try:
        temp, fd = _temp_file(folder, name)
    except OSError as exc:
        error = OutputError(
            f"can't write a file named {name} in {folder} ({exc.strerror or exc}), though "
            "the folder takes other files: this disk may not allow a character in the name "
            '(FAT, exFAT and Windows disks refuse : * ? " < > |) or a path this long; '
            "rename the photo, or choose a folder on another disk or a shorter path")
        error.errno = exc.errno
        raise error from exc
    _remove_probe(temp, fd)


def _remove_probe(temp: Path, fd: int) -> None:
    os.close(fd)
    with contextlib.suppress(OSError):
        temp.unlink()


def _temp_file(folder: Path, name: str, mode: int = 0o666) -> tuple[Path, int]:
    """Create a hidden, unique temp file next to the output, with `mode` (the umask
    applies as usual)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # cut in the bytes the disk stores, in the encoding names have here (ASCII under
        # PYTHONUTF8=0 LC_ALL=C: a UTF-8 cut made "café" a name it can't encode)
        short = os.fsencode(name)[:200].decode(sys.getfilesystemencoding(), "ignore")
        temp = folder / f".{short}.cloak-tmp-{secrets.token_hex(4)}"  # <= 255 bytes
        try:
            return temp, os.open(temp, flags, mode)
        except FileExistsError:
            continue
    raise OutputError(f"cannot create a temporary file in {folder}")


def _hold(fd: int) -> None:
    """Lock the temp file open at `fd` (flock, released when it is closed) where the
    system has flock: `in_use` then tells it from one a killed run left."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def in_use(temp: str | os.PathLike[str]) -> bool:
    """Whether the temp file `temp` is one a write_atomic, in this process or another
    (the desktop app writing into a folder a `cloak protect` run sweeps), is still
    writing: it holds its lock. False for one a killed run left, or where there is no
    flock (Windows: a file held open can't be removed there anyway)."""
    if fcntl is None:
        return False
    try:  # (not a FIFO of that name: opening one would wait for a writer forever)
        if not stat.S_ISREG(os.lstat(temp).st_mode):
            return False
        fd = os.open(temp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) |
                     getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def mode_like(original: str | os.PathLike[str] | None, dir_mode: bool = False) -> int:
    """The permission bits for a file (or, `dir_mode`, a folder) made from `original`:
    the owner's full use; group and others only where the original lets them read it.
    The umask then applies. None, or an original that can't be read: 0o666 (0o777)."""
    full = 0o777 if dir_mode else 0o666
    if original is None:
        return full
    try:
        bits = stat.S_IMODE(os.stat(original).st_mode)
    except (OSError, ValueError):
        return full
    mode = full & 0o700
    for reads, class_bits in ((stat.S_IRGRP, 0o070), (stat.S_IROTH, 0o007)):
        if bits & reads:
            mode |= full & class_bits
    return mode


def _keep_replaced_mode(fd: int, dst: Path, at_most: int) -> None:
    """Give the temp file (`fd`) the permissions of the regular file it will replace at
    `dst`, no wider than `at_most`. Nothing there, or no fchmod (Windows): as made."""
    if not hasattr(os, "fchmod"):
        return
    with contextlib.suppress(OSError):
        info = os.lstat(dst)
        if stat.S_ISREG(info.st_mode):
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & at_most & 0o777)


# Whether a write may replace a file already at its name: True, False, or a check asked
# about the file found there at the moment the write is published (see may_replace).
Overwrite = bool | Callable[[Path], bool]


def overwrite_flag(overwrite) -> Overwrite:
    """`overwrite` as write_atomic takes it: True or False (numpy's bools and 1 or 0 too,
    as plain bools) or a callable as it is. Anything else is a TypeError: a truthy "no"
    must not replace a file, and a check before the attack that reads it one way must not
    meet a write after it that reads it another."""
    if callable(overwrite):
        return overwrite
    return plain_flag(overwrite, "overwrite", " or a callable (path -> bool)")


def plain_flag(value, name: str, or_else: str = "") -> bool:
    """`value` as a bool where it is one (numpy's bools, 1 and 0 too); anything else
    (a truthy "no", 2, None) is a TypeError naming `name` (and what else it takes,
    `or_else`)."""
    if isinstance(value, str) or value not in (True, False):
        takes = f"True, False{or_else}" if or_else else "True or False"
        raise TypeError(f"{name} must be {takes}, got {value!r}")
    return bool(value)


def may_replace(overwrite: Overwrite, path: Path) -> bool:
    """Whether `overwrite` lets the file now at `path` be replaced. A check (a callable)
    is asked about that file as it is now: a batch run redoing its own copy replaces the
    file it wrote, not one a user put at that name while the photo was being protected."""
    return bool(overwrite(path)) if callable(overwrite) else bool(overwrite)


# Windows refuses to replace or rename a file another program holds open without
# delete sharing (antivirus scanning a new file, the search indexer, a sync client, another
# cloak reading the record): such holds last moments, so a rename is tried again there.
RENAME_TRIES = 5 if os.name == "nt" else 1
RENAME_RETRY_WAIT_S = 0.25


def _renaming(rename: Callable[[Path, Path], None], temp: Path, dst: Path) -> None:
    """rename(temp, dst), tried up to RENAME_TRIES times while it is refused with
    PermissionError (Windows: a file briefly held open elsewhere)."""
    for attempt in range(1, RENAME_TRIES + 1):
        try:
            rename(temp, dst)
            return
        except PermissionError:
            if attempt == RENAME_TRIES:
                raise
            time.sleep(RENAME_RETRY_WAIT_S)


# Windows refuses to replace a file marked read-only (a record restored from a disc or
# read-only media, a copy the user marked so) where POSIX replaces by the folder's
# permission alone: there the mark is taken off the file being replaced first, so a
# replace cloak may make succeeds on both.
REPLACE_CLEARS_READ_ONLY = os.name == "nt"


def _replace(temp: Path, dst: Path) -> None:
    """os.replace(temp, dst), over a file marked read-only too (REPLACE_CLEARS_READ_ONLY)."""
    if REPLACE_CLEARS_READ_ONLY:
        with contextlib.suppress(OSError):  # (nothing there: the replace says the rest)
            mode = os.lstat(dst).st_mode  # a link's own: its target, outside OUT, is kept
            if stat.S_ISREG(mode) and not mode & stat.S_IWRITE:
                os.chmod(dst, stat.S_IMODE(mode) | stat.S_IWRITE)
    os.replace(temp, dst)


def _publish(temp: Path, dst: Path, overwrite: Overwrite) -> None:
    """Move the finished temp file to dst. A file already there is replaced only where
    `overwrite` allows it (may_replace, asked once one is found)."""
    if overwrite is True:
        _renaming(_replace, temp, dst)
        return
    try:
        _publish_new(temp, dst)
    except OutputExistsError:
        if not callable(overwrite) or not may_replace(overwrite, dst):
            raise
        _renaming(_replace, temp, dst)  # (a file that appears between the check and
        # here is lost: the window is this line, not the attack's minutes before it)


def _publish_new(temp: Path, dst: Path) -> None:
    """Move the finished temp file to dst; never replace a file (OutputExistsError)."""
    if os.name == "nt":  # a rename never replaces there, and leaves no second name to
        _rename_no_replace(temp, dst)  # remove (which a program holding it open blocks)
        return
    try:
        os.link(temp, dst)  # atomic and fails if dst appeared meanwhile
    except FileExistsError:
        raise OutputExistsError(dst) from None
    except OSError:  # no hard links here (FAT, exFAT, some network shares)
        if _rename_no_replace(temp, dst):
            return
        if dst.exists():  # no atomic way here: check, then rename (a short window)
            raise OutputExistsError(dst) from None
        os.replace(temp, dst)
        return
    # dst is whole now: a temp name that can't be removed (held open elsewhere) must not
    # make the write look failed; a later run's sweep of stale temp files removes it
    with contextlib.suppress(OSError):
        os.unlink(temp)


def _rename_no_replace(temp: Path, dst: Path) -> bool:
    """Rename temp to dst in one step that fails if dst exists (Linux renameat2 with
    RENAME_NOREPLACE, macOS renamex_np with RENAME_EXCL, Windows' rename). Raises
    OutputExistsError if dst exists; False where the system or file system has no such
    rename (the caller falls back to check-then-rename)."""
    if os.name == "nt":
        try:
            _renaming(os.rename, temp, dst)  # never replaces on Windows
        except FileExistsError:
            raise OutputExistsError(dst) from None
        return True
    import errno

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):  # a Python built without ctypes: fall back
        return False
    src_b, dst_b = os.fsencode(temp), os.fsencode(dst)
    if hasattr(libc, "renameat2"):
        at_fdcwd, rename_noreplace = -100, 1
        result = libc.renameat2(at_fdcwd, src_b, at_fdcwd, dst_b, rename_noreplace)
    elif hasattr(libc, "renamex_np"):
        rename_excl = 0x4
        result = libc.renamex_np(src_b, dst_b, rename_excl)
    else:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        raise OutputExistsError(dst)
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this file system can't: fall back
    raise OSError(code, os.strerror(code), str(dst))


class _WritesChecked:
    """A file whose bytes all go through its write(): it has no fileno(). Pillow's C
    encoders write a file descriptor directly and take a short write as success, so a
    full disk left a truncated JPEG that looked written; Python's buffered write() goes on
    after a short write and raises when the disk is full."""

    def __init__(self, fp: IO[bytes]):
        self._fp = fp

    def fileno(self) -> int:
        raise _io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def write_atomic(dst: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *,
                 overwrite: Overwrite = False, make_folders: bool = True,
                 private_like: str | os.PathLike[str] | None = None) -> Path:
    """Run `write(fp)` into a hidden temp file in dst's folder, fsync, then move it to
    dst (replacing a file there only where `overwrite` allows: see may_replace). On any
    error the temp file is removed and dst is left as it was. `make_folders` False: dst's
    folder must be there (an app's chosen Save-to folder, which is never made again: one
    deleted or unmounted since is an OutputError with errno ENOENT or ENOTDIR).
    `private_like`: the file dst is made from (the original photo), for its permissions
    (see mode_like); a file replaced at dst passes on its own, no wider."""
    overwrite = overwrite_flag(overwrite)
    dst = Path(dst)
    folder = dst.parent
    if not make_folders and not folder.is_dir():
        gone = not os.path.lexists(folder)
        error = OutputError(f"the folder {folder} is " + (
            "no longer there" if gone else "not a folder"))
        error.errno = errno.ENOENT if gone else errno.ENOTDIR
        raise error
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
    try:
        mode = mode_like(private_like)
        temp, fd = _temp_file(folder, dst.name, mode)
    except OSError as exc:
        error = OutputError(f"cannot write in {folder}: {exc.strerror or exc}")
        error.errno = exc.errno
        raise error from None
    try:
        _hold(fd)  # until published: another run's sweep of temp files passes it over
        _keep_replaced_mode(fd, dst, mode)  # before a byte is written
        with os.fdopen(fd, "wb") as fp:
            write(_WritesChecked(fp))
            fp.flush()
            os.fsync(fp.fileno())
            if os.name == "nt":  # a file held open can't be renamed there
                fp.close()
            _publish(temp, dst, overwrite)
    except CloakError:
        temp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        temp.unlink(missing_ok=True)
        error = OutputError(f"could not write {dst}: {exc.strerror or exc}")
        error.errno = exc.errno
        raise error from None
    except Exception as exc:  # encoders raise many types: report them, and clean up
        temp.unlink(missing_ok=True)
        if isinstance(exc, MemoryError) or raised_by_cloak(exc):
            raise  # said as out of memory, or as cloak's bug, by the caller
        raise OutputError(f"could not encode {dst.name}: {exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        _fsync_folder(folder)
    except BaseException as exc:  # a second Ctrl-C here: dst is written, and said so
        exc.written = str(dst)  # (batch keeps its record of it as cloak's own)
        raise
    return dst


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
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
