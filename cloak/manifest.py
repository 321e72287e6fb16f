"""The record of a batch run's copies: `OUT/.cloak-manifest.json`, and the lock on OUT.

For each copy it keeps the source's and the copy's identity (size, mtime, ctime, sha256)
and the settings fingerprint it was protected with, so a rerun skips what is done,
redoes what changed, and never takes a user's file for one of cloak's copies. Each
change to one photo's entry is appended to a journal beside it
(`OUT/.cloak-manifest.journal`, one JSON line each), which every reader folds in; the
record is rewritten whole, atomically, and the journal removed, when the journal has
grown as large as the record and when a run ends (rewriting it twice per photo made a
long run's saves grow with the square of its photos). `output_folder_lock` keeps a
second run out of the same OUT while one writes there.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath

from .config import draws_at_random
from .errors import CloakError, FolderInUseError, OutputError, OutputFolderGoneError
from .models.weights import sha256_of
from .same_path import PathSet, fold, inside, same_file

log = logging.getLogger(__name__)


MANIFEST_NAME = ".cloak-manifest.json"
JOURNAL_NAME = ".cloak-manifest.journal"  # changes since the record was last written
LOCK_NAME = ".cloak-lock"  # held (flock) by the run writing to OUT

# How long the app's record writes wait for the folder's lock (another window's write
# holds it for milliseconds; a `cloak protect` run, for its whole run) and how often
# they ask for it meanwhile.
RECORD_LOCK_WAIT_S = 2.0
LOCK_POLL_S = 0.02

JOURNAL_VERSION = 1


def read_record(path: Path):
    """The JSON a record file at `path` holds. FileNotFoundError where there is none;
    another OSError, or ValueError, where it can't be read: not a regular file (a FIFO
    would block the run forever; a folder), or not JSON (damaged, or nested too deep for
    the parser: RecursionError)."""
    return read_record_and_sha256(path)[0]


def read_record_and_sha256(path: Path) -> tuple[object, str]:
    """read_record, and the sha256 of the bytes it was read from (which a journal names)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()
    except RecursionError:
        raise ValueError("nested too deep to be a cloak record") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None


def journal_changes(out_dir: Path, record_sha256: str) -> list[tuple[str, dict | None]] | None:
    """The changes OUT's journal holds, in order: (name in the record, entry, or None where
    the entry was removed). None where there is no journal, or it is not one of the record
    whose sha256 is `record_sha256` (left from before the record was last rewritten, or
    brought from elsewhere: it is ignored). A line cut short by a kill, or damaged, is
    skipped; each change is on a line of its own."""
    path = Path(out_dir) / JOURNAL_NAME
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return None
    try:
        header = json.loads(lines[0])
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or header.get("journal") != JOURNAL_VERSION or \
            header.get("record_sha256") != record_sha256:
        return None
    changes = []
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            change = json.loads(line)
        except (ValueError, RecursionError):
            log.info("skipped a damaged line of %s", path)
            continue
        if not isinstance(change, dict) or not usable_name(change.get("name")):
            continue
        entry = change.get("entry")
        if entry is None:
            changes.append((change["name"], None))
        elif (sane := _sane_entry(entry)) is not None:  # (not an object: skipped)
            changes.append((change["name"], sane))
    return changes


def encodable(text: str) -> bool:
    """Whether `text` can be a path on this system: no NUL, which fails every path made of
    it, and no lone surrogate the file system's encoding refuses ("\\ud800", valid JSON;
    UnicodeEncodeError from every os call given it). A name read on Linux that is not
    UTF-8 (a surrogate-escaped byte) passes: it is the file's name."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return "\0" not in text


def usable_name(name: object) -> bool:
    """Whether `name`, a record's key, names a file inside the record's folder: a
    relative path, encodable, with no ".." (a foreign record's "../zz/a.png" or "/home/a"
    made cloak take a photo in another folder for a protected copy, and skip it)."""
    if not isinstance(name, str) or not name or not encodable(name):
        return False
    # as this system splits a path: "\\" is a separator on Windows, and a plain character
    # in a Linux or macOS name (a Windows zip's "\\photos\\IMG_1.png"), which cloak records
    return not (os.path.isabs(name) or ".." in PurePath(name).parts)


def apply_changes(entries: dict, changes: Iterable[tuple[str, dict | None]]) -> None:
    """Apply journal_changes to a record's photo entries, in place (None removes one)."""
    for name, entry in changes:
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry


def recorded_copies(folder: Path, record: Manifest | None = None) -> PathSet:
    """Real paths of the copies `folder`'s manifest (`record`, if read already) lists that
    are still the files cloak wrote: a new original that has since taken a listed name
    (another camera's IMG_0001.jpg) is the user's photo. A done copy renamed since, or
    copied under another name, in its own folder (a_insta.png beside a.png) is one too, by
    its recorded size and sha256: without cloak's note (a BMP, --no-ai-notice) it was
    protected again. Only files of a recorded size are hashed. A copy is found by its
    identity on disk too (PathSet): a folder's listing may spell it otherwise than the
    record (NFD on HFS+, another letter case)."""
    copies = PathSet()
    by_size: dict[Path, dict[int, list[dict]]] = {}  # folder -> size -> recorded copies
    for rel, entry in (record or Manifest(folder)).entries.items():
        path = folder / rel
        if (pending_may_be_ours(path, entry) if entry.get("state") == "pending"
                else matches_record(path, entry.get("dst"))):
            copies.add(os.path.realpath(path))
        ident = entry.get("dst")
        if entry.get("state") == "done" and isinstance(ident, dict) and \
                isinstance(ident.get("size"), int) and isinstance(ident.get("sha256"), str):
            by_size.setdefault(path.parent, {}).setdefault(ident["size"], []).append(ident)
    for place, sizes in by_size.items():
        copies.update(_same_contents_in(place, sizes, copies))
    return copies


def _same_contents_in(folder: Path, sizes: dict[int, list[dict]], known: PathSet
                      ) -> set[str]:
    """Real paths of the files directly in `folder`, not in `known`, whose size and
    sha256 are a recorded copy's (`sizes`: size -> those copies' identities)."""
    found = set()
    try:
        with os.scandir(folder) as listing:
            entries = [e for e in listing
                       if e.is_file(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        return found
    for entry in entries:
        path = Path(entry.path)
        try:  # (one gone meanwhile costs itself only)
            size = entry.stat().st_size
            if size not in sizes or (real := os.path.realpath(path)) in known:
                continue
            content = sha256_of(path)
        except OSError:
            continue
        if any(ident["sha256"] == content for ident in sizes[size]):
            found.add(real)
    return found


def identity(path: Path, known: dict | None = None) -> dict:
    """What the record keeps of the file at `path`: size, mtime, ctime (ns) and sha256.
    OSError where it is not a regular file (hashing a FIFO would wait for a writer).
    `known`: an identity taken earlier, whose sha256 is reused where size and times say
    the file is unchanged (a copy recorded as written, recorded again as done)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    times = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    if isinstance(known, dict) and isinstance(known.get("sha256"), str) and \
            all(known.get(key) == value for key, value in times.items()):
        return {**times, "sha256": known["sha256"]}
    return {**times, "sha256": sha256_of(path)}


def matches_record(path: Path, ident: dict | None, refresh: bool = False,
                   sha256: Callable[[Path], str | None] | None = None) -> bool:
    """Is `path` the file `ident` (a Manifest entry's record of a file) describes? size,
    mtime and ctime, else sha256 (copies, touch; an in-place edit that keeps size and
    mtime, as `exiftool -P` does, still moves the ctime). Entries written before ctime was
    recorded match on size and mtime. `sha256`: how a file is hashed (a caller's cache;
    None: sha256_of).

    `refresh`: when the file matches, bring `ident`'s times up to date in place (a folder
    restored from a backup, or chmod-ed, is hashed once, not on every later run)."""
    if not ident:
        return False
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return False
    if st.st_size != ident.get("size"):
        return False
    if st.st_mtime_ns == ident.get("mtime_ns") and \
            ident.get("ctime_ns", st.st_ctime_ns) == st.st_ctime_ns:
        same = True
    else:
        try:
            same = (sha256 or sha256_of)(path) == ident.get("sha256")
        except OSError:
            return False
    if same and refresh:
        ident.update(mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
    return same


# A manifest entry's fields that must be JSON objects when present (file identities and
# settings, read with .get); its other fields are compared, never read into.
ENTRY_OBJECTS = ("src", "dst", "preview", "earlier_preview", "settings", "before")
# A redo's pending entry keeps the done entry of the copy it replaces ("before"), until
# the new copy is written: a redo killed before that (SIGKILL, a crash, a power cut) left
# the earlier copy, untouched, recorded as made with the redo's settings (see as_settled)
BEFORE = "before"
# An entry's mark that the cloak writing it records every sheet it writes ("preview"): a
# file at the sheet's name of an entry so marked that the entry does not list is not
# cloak's. Entries without it (written before 7 Dec, among them those of the cloaks
# before 1 Dec that recorded no sheet) are judged by the file's times.
SHEETS_RECORDED = "sheets_recorded"


def as_settled(entry: dict | None, dst: Path) -> dict | None:
    """`entry` (dst's, as recorded), or, where it is a redo's pending entry and the file at
    `dst` is still the copy the redo was to replace (killed before it wrote), the done
    entry of that copy: what the file there is."""
    if not entry or entry.get("state") != "pending":
        return entry
    before = _sane_entry(entry.get(BEFORE))
    if before and before.get("state") == "done" and matches_record(dst, before.get("dst")):
        return before
    return entry


def _sane_entry(entry: object) -> dict | None:
    """A manifest entry as read, None if it is not an object; fields of the wrong type (a
    hand-edited or sync-merged record: "src": "x") are dropped, so the entry matches no
    file and its copy is treated as not made by cloak, where it raised before."""
    if not isinstance(entry, dict):
        return None
    sane = {k: v for k, v in entry.items() if k not in ENTRY_OBJECTS or isinstance(v, dict)}
    settings = sane.get("settings")
    if settings is not None and not isinstance(settings.get("metadata", {}), dict):
        sane["settings"] = {k: v for k, v in settings.items() if k != "metadata"}
    return sane


# the unreadable records warned about (Manifest._unreadable) in this run: each once as
# it is (batch.plan reads OUT's record, then run reads it again)
_UNREADABLE_SAID: set[tuple] = set()
_UNREADABLE_LOCK = threading.Lock()


def new_run_of_warnings() -> None:
    """A new run begins (planning.plan): its damaged records are said again."""
    with _UNREADABLE_LOCK:
        _UNREADABLE_SAID.clear()


class Manifest:
    """`OUT/.cloak-manifest.json`: output path (relative to OUT) -> how it was made."""

    # A record as a run or an app session leaves it, whole: the version every cloak reads.
    # While a journal may extend it (a run or session going on, or killed), it is written
    # as JOURNALED_VERSION, which a cloak from before the journal refuses as a newer
    # cloak's record rather than reading it without the journal's copies.
    VERSION = 1
    JOURNALED_VERSION = 2

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        self.folders: dict[str, str] = {}  # mirror name -> input folder (Mirrors)
        # What was there, if save() must not simply replace it: ("newer", version) for a
        # newer cloak's record (refused), ("unreadable", why) for a damaged one (set aside)
        self.found: tuple[str, object] | None = None
        self._by_fold: dict[str, str] | None = None  # fold(key) -> key, built when needed
        # The sha256 of the record on disk as this object last read or wrote it (None:
        # none yet), and whether the journal there is this record's, to append to.
        self._record_sha256: str | None = None
        self._journal_open = False
        self._journal_bytes = 0  # appended since the record was last written
        self._record_bytes = 0
        self._version_on_disk: int | None = None
        # (device, inode) of the folder a run locked (hold): the record is written only
        # while that folder is still at out_dir, never into one made there since
        self.held: tuple[int, int] | None = None
        try:
            data, sha = read_record_and_sha256(self.path)
            version = data.get("version")
            if version in (self.VERSION, self.JOURNALED_VERSION):
                self.entries = {k: entry for k, v in data.get("photos", {}).items()
                                if usable_name(k) and (entry := _sane_entry(v)) is not None}
                self.folders = {k: v for k, v in data.get("folders", {}).items()
                                if isinstance(v, str) and encodable(k) and encodable(v)}
                self._record_sha256 = sha
                self._record_bytes = os.stat(self.path).st_size
                self._version_on_disk = version
                self._fold_in_journal()
            elif isinstance(version, int) and version > self.JOURNALED_VERSION:
                self.found = ("newer", version)
            else:
                self._unreadable(f"record version {version!r}")
        except (FileNotFoundError, NotADirectoryError):
            pass
        except json.JSONDecodeError:
            self._unreadable("not valid JSON: damaged, or cut off")
        except OSError as exc:
            self._unreadable(exc.strerror or str(exc))
        except (ValueError, AttributeError) as exc:
            self._unreadable(str(exc) if isinstance(exc, ValueError) else "not a cloak record")

    def _unreadable(self, why: str) -> None:
        try:  # said once for the record as it is (a run reads it to plan, then to run)
            found = os.stat(self.path)
            said = (os.path.abspath(self.path), why, found.st_size, found.st_mtime_ns)
        except OSError:
            said = (os.path.abspath(self.path), why)
        with _UNREADABLE_LOCK:
            first = said not in _UNREADABLE_SAID
            _UNREADABLE_SAID.add(said)
        if first:
            log.warning("cloak's record %s can't be read (%s); the copies already in that "
                        "folder can't be recognised as cloak's", self.path, why)
        self.found = ("unreadable", why)

    def _fold_in_journal(self) -> None:
        changes = journal_changes(self.out_dir, self._record_sha256)
        if changes is None:
            return
        apply_changes(self.entries, changes)
        self._journal_open = True
        with contextlib.suppress(OSError):
            self._journal_bytes = os.stat(self.out_dir / JOURNAL_NAME).st_size

    def merge(self, other: Manifest) -> None:
        """Add `other`'s entries and mirror names that this one lacks (this run's own
        stay as they are)."""
        for key, entry in other.entries.items():
            self.entries.setdefault(key, entry)
        self._by_fold = None
        for name, folder in other.folders.items():
            self.folders.setdefault(name, folder)
        if other.found is not None and other.found[0] == "newer":  # never replaced
            self.found = other.found

    def key(self, dst: Path) -> str:
        """`dst`'s name in the record: its path relative to OUT, or the name it was
        recorded under where that is the same file named in another letter case or
        Unicode form (`img_1.jpg` typed for `IMG_1.JPG` on a macOS or Windows disk)."""
        rel = Path(os.path.relpath(os.path.abspath(dst), os.path.abspath(self.out_dir)))
        rel = rel.as_posix()
        if rel in self.entries:
            return rel
        if self._by_fold is None:
            self._by_fold = {fold(key): key for key in self.entries}
        recorded = self._by_fold.get(fold(rel))
        if recorded is not None and recorded in self.entries and os.path.lexists(dst) \
                and same_file(self.out_dir / recorded, dst):
            return recorded
        return rel

    def get(self, dst: Path) -> dict | None:
        return self.entries.get(self.key(dst))

    def set(self, dst: Path, entry: dict | None) -> None:
        """Record `entry` for the copy at `dst` (None: forget it), on disk before this
        returns: appended to the journal, or the record rewritten (see save) where there
        is none on disk yet or it is not JOURNALED_VERSION, or the journal has grown as
        large as the record. Raises as save does."""
        key = self.key(dst)
        if entry is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = entry
            if self._by_fold is not None:
                self._by_fold[fold(key)] = key
        # a record on disk as VERSION (a finished run's, for the app's first copy) is
        # first rewritten as JOURNALED_VERSION: a cloak from before the journal would read
        # it without the journal's copies, then replace it, and those copies were lost
        if self.found is not None or self._version_on_disk != self.JOURNALED_VERSION or \
                self._journal_bytes > max(self._record_bytes, JOURNAL_MIN_BYTES):
            self.save()
        else:
            self._append({"name": key, "entry": entry})

    def hold(self) -> None:
        """Mark out_dir, as it is now, as the folder this object's run has locked:
        check_held refuses it from then on once another folder (or none) is there."""
        try:
            st = os.stat(self.out_dir)
            self.held = (st.st_dev, st.st_ino)
        except OSError:  # gone already: nothing is written there
            self.held = (-1, -1)

    def still_held(self) -> bool:
        """Whether check_held passes."""
        try:
            self.check_held()
        except OutputFolderGoneError:
            return False
        return True

    def check_held(self) -> None:
        """OutputFolderGoneError where hold() was called and out_dir is no longer that
        folder (removed, moved away, or made again by another run, whose lock is then
        not this run's)."""
        if self.held is None:
            return
        try:
            st = os.stat(self.out_dir)
            same = (st.st_dev, st.st_ino) == self.held
        except OSError:
            same = False
        if not same:
            raise OutputFolderGoneError(
                f"the output folder {self.out_dir} was removed, moved or replaced during "
                "this run; nothing more is written there (run again to do what is not "
                "done)")

    def _append(self, change: dict) -> None:
        """Append `change` to the journal, made (with its header) where this object has
        not written it since the record: one OS write, then fsync. Where the journal this
        object appended to is gone, the record is written whole instead."""
        self.check_held()
        path = self.out_dir / JOURNAL_NAME
        line = ("\n" + json.dumps(change, separators=(",", ":"))).encode("utf-8")
        # not following a link at its name, nor waiting for a reader of a FIFO there
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | \
            getattr(os, "O_NONBLOCK", 0)
        if not self._journal_open:
            header = {"journal": JOURNAL_VERSION, "record_sha256": self._record_sha256}
            line = json.dumps(header, separators=(",", ":")).encode("utf-8") + line
            # a new file, not the one at the name truncated: that may be a hard link (a
            # `cp -al` backup of OUT, or a user's file linked there), whose other names
            # were written through
            with contextlib.suppress(OSError):  # (a link, a FIFO, a folder: kept, and
                if stat.S_ISREG(os.lstat(path).st_mode):  # the record written whole)
                    os.unlink(path)
            flags |= os.O_EXCL
        try:  # the record's readers and writers (a group's shared folder), and its owner
            mode = stat.S_IMODE(os.stat(self.path).st_mode) | 0o600  # (a 0444 record)
        except OSError:
            mode = 0o644
        if self._journal_open:
            flags &= ~os.O_CREAT
        try:
            fd = os.open(path, flags, mode)
        except OSError:  # another writer folded it into the record since; another
            # user's journal (a shared folder) this one can't write; a folder, a FIFO
            # (ENXIO) or a link at its name: the record is replaced whole, as before
            # there was a journal
            self.save()
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OutputError(f"{path} is not a regular file")
            if st.st_nlink > 1:  # linked elsewhere since this object made it: not
                os.close(fd)  # written through; the record is replaced whole instead
                fd = -1
                self.save()
                return
            if not self._journal_open and st.st_uid == _uid() and hasattr(os, "fchmod"):
                # as the record, whatever the umask took away; a FAT card's driver may
                # refuse any chmod (ENOSYS: every photo of the run failed on it), and
                # Windows has no fchmod before Python 3.13
                with contextlib.suppress(OSError):
                    os.fchmod(fd, mode)
            _write_all(fd, line, st.st_size if self._journal_open else 0)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        self._journal_open = True
        self._journal_bytes += len(line)

    def save(self, final: bool = False) -> None:
        """Write the whole record atomically, and remove the journal it now holds: as
        JOURNALED_VERSION, or, `final` (compact: a run or session ending), as VERSION.
        OSError/OutputError if it can't, or if the record there is a newer cloak's. A
        damaged record is first set aside (kept as `.cloak-manifest.json.unreadable-TIME`,
        TIME in UTC), not replaced."""
        from .atomic import write_atomic

        self.check_held()
        if self.found is not None:
            kind, detail = self.found
            if kind == "newer":
                raise OutputError(
                    f"{self.path} was written by a newer cloak (record version {detail}); "
                    "use that cloak for this folder, or choose another --out")
            # UTC, said so (Z): names set aside under two time zones sort in order
            stamp, n = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), 1
            aside = self.path.with_name(f"{MANIFEST_NAME}.unreadable-{stamp}")
            while aside.exists():
                n += 1
                aside = self.path.with_name(f"{MANIFEST_NAME}.unreadable-{stamp}-{n}")
            if self.path.exists():
                os.replace(self.path, aside)
                log.warning("%s could not be read (%s); kept as %s, and a new record "
                            "started (copies made before it can't be recognised as cloak's)",
                            self.path, detail, aside.name)
            self.found = None
        version = self.VERSION if final else self.JOURNALED_VERSION
        data = {"version": version, "photos": self.entries}
        if self.folders:
            data["folders"] = self.folders
        # Compact: 5,000 photos' entries took 0.20 s to encode indented, 0.06 s so (a
        # 3.7 MB file instead of 4.9 MB).
        raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
        write_atomic(self.path, lambda fp: fp.write(raw), overwrite=True)
        self._record_sha256 = hashlib.sha256(raw).hexdigest()
        self._record_bytes = len(raw)
        self._journal_open, self._journal_bytes = False, 0
        self._version_on_disk = version
        # the journal left is ignored from now on (it names the record before this one),
        # and truncated by the next append where it can't be removed (a folder at its
        # name, a file made immutable: the record is then written whole each time)
        with contextlib.suppress(OSError):
            (self.out_dir / JOURNAL_NAME).unlink()

    def compact(self) -> None:
        """Fold the journal into the record and write it as VERSION (save), where this
        object wrote or read a journal, or the record on disk may have one."""
        if self._journal_open or self._version_on_disk == self.JOURNALED_VERSION:
            self.save(final=True)


JOURNAL_MIN_BYTES = 256 * 1024  # a journal smaller than this is not folded in mid-run


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _write_all(fd: int, data: bytes, size_before: int) -> None:
    """Write all of `data` at the end of the file `fd`; on a short write (a disk that
    fills mid-line) cut the file back to `size_before` and raise OSError (ENOSPC)."""
    done = 0
    try:
        while done < len(data):
            written = os.write(fd, data[done:])
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise


def read_only(out_dir: Path) -> Manifest:
    """OUT's manifest, for reading only: parsed again only when the file changed (its
    device, inode, size and times, and those of its journal; save() replaces it whole).
    The app asks for each photo of a dropped folder whether it was protected before:
    parsing a 3,000-entry record two or three times per photo took 402 s to reopen a
    folder of 3,000 protected photos."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        st = os.stat(path)
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        stamp = None
    try:  # appended to since (the journal)
        st = os.stat(Path(out_dir) / JOURNAL_NAME)
        stamp = stamp and (*stamp, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        pass
    key = os.path.abspath(path)
    with _read_lock:
        cached = _read_cache.get(key)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
    manifest = Manifest(Path(out_dir))
    if stamp is not None:
        with _read_lock:
            _read_cache.pop(key, None)
            _read_cache[key] = (stamp, manifest)
            while len(_read_cache) > READ_CACHE_FOLDERS:
                _read_cache.pop(next(iter(_read_cache)))
    return manifest


READ_CACHE_FOLDERS = 16  # the records last read, by folder
_read_cache: dict[str, tuple[tuple, Manifest]] = {}
_read_lock = threading.Lock()


def earlier_copy(src: Path, out_dir: Path, settings: dict, also: dict | None = None,
                 skip: Iterable[Path] = ()) -> Path | None:
    """A copy of `src` that cloak wrote into `out_dir` (or a folder in it) before, with
    `settings` (ProtectConfig.fingerprint) or `also` (settings_to_accept), both files
    still as they were then, as the folder's manifest records; None if there is none. The
    desktop app asks this, so a photo it protected in an earlier session is not protected
    again. `skip`: copies not to offer (the app's own run wrote them from another photo
    with the same bytes; a set of absolute path strings is used as it is). Of several, the
    one named after `src` is offered first."""
    try:
        size = os.stat(src).st_size
    except OSError:
        return None  # no record matches a photo that can't be read
    skipped = skip if isinstance(skip, (set, frozenset)) else {
        os.path.abspath(path) for path in skip}
    found = []
    for base, entries, under in _records_reaching(out_dir):
        for key, entry in entries:
            # the size first: a record of thousands of copies is read for every photo of
            # a dropped folder, and only the records of a photo this size can be its copy's
            recorded = entry.get("src")
            if not isinstance(recorded, dict) or recorded.get("size") != size or \
                    not under(key):
                continue
            if entry.get("state") == "pending" and isinstance(entry.get(BEFORE), dict):
                entry = as_settled(entry, base / key)  # a redo killed before it wrote
                recorded = entry.get("src")
            if (not isinstance(recorded, dict) or recorded.get("size") != size
                    or entry.get("state") != "done"
                    or not same_settings(entry.get("settings"), settings, also)):
                continue
            dst = base / key
            if (os.path.abspath(dst) not in skipped
                    and matches_record(src, entry.get("src"))
                    and inside(dst.parent, out_dir)
                    and matches_record(dst, entry.get("dst"))):
                if named_after(key, src):
                    return dst  # its own name, or the app's "name (1)"
                found.append(dst)
    return found[0] if found else None


def entry_above(dst: Path, out_dir: Path) -> tuple[Path, dict] | None:
    """Where `out_dir` is a folder inside another output folder (a `cloak protect` run's
    OUT, `out_dir` one of its mirror folders, OUT/holiday): the nearest such folder whose
    record has an entry for the copy at `dst` (in `out_dir`), and that entry; None where
    there is none."""
    real_dst = Path(os.path.realpath(dst.parent)) / dst.name
    for base, _entries, _under in _records_reaching(out_dir):
        if base is not out_dir and (entry := read_only(base).get(real_dst)) is not None:
            return base, entry
    return None


def _records_reaching(out_dir: Path) -> Iterator[
        tuple[Path, Iterable[tuple[str, dict]], Callable[[str], bool]]]:
    """The records that may list copies in `out_dir`, as (the folder its keys are under,
    its entries, whether a key is under `out_dir`): `out_dir`'s own, then each record
    above it, nearest first (a `cloak protect` run's OUT, where `out_dir` is one of its
    mirror folders, OUT/holiday)."""
    yield out_dir, read_only(out_dir).entries.items(), lambda key: True
    # each record above (the app's Save-to OUT/holiday may hold one of its own between OUT
    # and a folder below it)
    for parent, below in records_above(out_dir):
        yield parent, read_only(parent).entries.items(), \
            lambda key, below=below: key_below(key, below) is not None


def records_above(folder: Path) -> Iterator[tuple[Path, list[str]]]:
    """Each folder above `folder` (by its real path) that holds a cloak record, nearest
    first, with `folder`'s path below it as folded parts (for key_below)."""
    real = Path(os.path.realpath(folder))
    for parent in real.parents:
        if os.path.isfile(parent / MANIFEST_NAME):
            yield parent, [fold(part) for part in real.relative_to(parent).parts]


def key_below(key: str, below: list[str]) -> str | None:
    """A record's `key`, named from the folder `below` (records_above's parts) where the
    copy it names is in that folder or one inside it, else None."""
    parts = PurePath(key).parts
    if len(parts) > len(below) and [fold(part) for part in parts[:len(below)]] == below:
        return PurePath(*parts[len(below):]).as_posix()
    return None


def named_after(key: str, src: Path) -> bool:
    """Whether the copy a record names `key` is named after the photo `src`: its own stem,
    or the app's `stem (1)`, `stem (2)`, ..."""
    stem = PurePath(key).stem
    return stem == src.stem or bool(re.fullmatch(re.escape(src.stem) + r" \(\d+\)", stem))


def unfinished_copy(src: Path, out_dir: Path, settings: dict, also: dict | None = None,
                    skip: Iterable[Path] = ()) -> Path | None:
    """A copy of `src` in `out_dir` itself that an earlier session wrote with `settings`
    (or `also`) and never recorded as done: the app or a `cloak protect` run was killed (a
    logout, a crash) while it was measured. The file there must still be the one written,
    by its recorded identity (not one edited in place since, though it still carries
    cloak's note); the desktop app then protects the photo again to that name rather
    than beside it as `name (1)`. None when there is none, while a `cloak protect` run
    holds the folder, or while the app session that wrote it may still be running
    (writer_may_be_alive: its entries are its work in progress). `skip`: as for
    earlier_copy."""
    try:
        size = os.stat(src).st_size
    except OSError:
        return None
    skipped = skip if isinstance(skip, (set, frozenset)) else {
        os.path.abspath(path) for path in skip}
    for key, entry in read_only(out_dir).entries.items():
        recorded, dst = entry.get("src"), out_dir / key
        if (entry.get("state") != "pending" or not isinstance(recorded, dict)
                or recorded.get("size") != size or dst.parent != out_dir
                or os.path.abspath(dst) in skipped
                or not same_settings(entry.get("settings"), settings, also)):
            continue
        # the very file written (its identity: not a copy edited in place since, which
        # still carries cloak's note), by a session no longer running
        if named_after(key, src) and matches_record(src, recorded) \
                and isinstance(entry.get("dst"), dict) \
                and matches_record(dst, entry["dst"]) and not writer_may_be_alive(entry):
            try:  # not a run's work in progress: no run holds the folder
                with output_folder_lock(out_dir):
                    return dst
            except (OSError, CloakError) as exc:
                log.debug("%s is left to the run writing to %s: %s", dst, out_dir, exc)
                return None
    return None


# An unfinished entry's note of the process that wrote it (the desktop app's): a session
# still running (another window measuring its copy) is not taken for a killed one.
WRITER = "writer"


def this_writer() -> dict:
    """This process, as an unfinished entry records its writer: its pid and host, and on
    Linux its pid namespace (a sandbox's pid 1 is not another's) and start time (a pid
    reused since is not it)."""
    writer = {"pid": os.getpid(), "host": socket.gethostname()}
    if (namespace := _pid_namespace()) is not None:
        writer["ns"] = namespace
    if (started := _start_time(os.getpid())) is not None:
        writer["started"] = started
    return writer


def _pid_namespace() -> int | None:
    """This process's pid namespace (Linux), or None."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


ON_WINDOWS = os.name == "nt"


def _windows_process(pid: int) -> tuple[bool, int] | None:
    """(whether process `pid` is running, when it was created: 100 ns ticks since 1601)
    as Windows says; (False, 0) where no process has that id, None where Windows can't
    be asked (a protected process, or not Windows). os.kill(pid, 0) would end it there."""
    try:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE,
                                                ctypes.POINTER(wintypes.DWORD))
        kernel32.GetProcessTimes.argtypes = ((wintypes.HANDLE,)
                                             + (ctypes.POINTER(wintypes.FILETIME),) * 4)
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:  # ERROR_INVALID_PARAMETER: no such process (else: access denied)
            return (False, 0) if ctypes.get_last_error() == 87 else None
        try:
            code, times = wintypes.DWORD(), [wintypes.FILETIME() for _ in range(4)]
            if not (kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
                    and kernel32.GetProcessTimes(handle, *map(ctypes.byref, times))):
                return None
            created = times[0].dwHighDateTime << 32 | times[0].dwLowDateTime
            return code.value == 259, created  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None


def _start_time(pid: int) -> int | None:
    """When process `pid` started: in clock ticks since boot (Linux /proc), 100 ns ticks
    since 1601 (Windows); None where that can't be found."""
    if ON_WINDOWS:
        found = _windows_process(pid)
        return found[1] if found is not None and found[0] else None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # starttime, the stat's 22nd field
    except (OSError, IndexError, ValueError):
        return None


def writer_may_be_alive(entry: dict) -> bool:
    """Whether the process that wrote an unfinished `entry` may still be running (so its
    copy is its work in progress): True for one of another host (a shared folder) or
    another pid namespace, or where the system can't tell; False for an entry
    that names none (a `cloak protect` run's: that one holds the folder's lock while it
    runs), for this process's own (one batch at a time: one left unfinished was given
    up), and for a pid that is gone or now another process's (its start time differs)."""
    writer = entry.get(WRITER)
    if not isinstance(writer, dict):
        return False
    pid = writer.get("pid")
    if writer.get("host") != socket.gethostname() or \
            not isinstance(pid, int) or pid <= 0 or \
            writer.get("ns", _pid_namespace()) != _pid_namespace():
        return True
    if pid == os.getpid() or pid >= 2 ** 32:  # (no system's process ids reach 2**32: a
        return False  # made-up record's, which os.kill refused with an OverflowError)
    started = writer.get("started")
    if ON_WINDOWS:  # (an app killed there left its copy "being made" for every later run)
        found = _windows_process(pid)
        if found is None:  # can't tell
            return True
        running, created = found
        return running and not (isinstance(started, int) and created != started)
    try:
        os.kill(pid, 0)  # (signal 0: asks only whether it exists)
    except (ProcessLookupError, OverflowError):  # (over pid_t's range: none such)
        return False
    except OSError:  # another user's process: it exists
        pass
    return not (isinstance(started, int) and _start_time(pid) not in (None, started))


def record_written(src: Path, dst: Path, settings: dict, src_identity: dict | None = None,
                   wait_s: float = RECORD_LOCK_WAIT_S) -> dict | None:
    """Record in `dst`'s folder that the copy `dst` of `src` was just written, before it
    is measured (an unfinished, `pending` entry holding its identity): an app killed
    before record_copy is redone to that name next session (unfinished_copy), and any
    reader knows the file is cloak's. Returns the entry; None where it can't be recorded
    (a `cloak protect` run holds the folder past `wait_s`, the record can't be written)."""
    try:
        entry = {"state": "pending", "src": src_identity or identity(src),
                 "settings": settings, "dst": identity(dst), SHEETS_RECORDED: True,
                 WRITER: this_writer()}
        with output_folder_lock(dst.parent, wait_s):
            Manifest(dst.parent).set(dst, entry)
        return entry
    except (OSError, CloakError) as exc:
        log.info("did not record %s as written in its folder's manifest: %s", dst, exc)
        return None


def give_up_unfinished(dst: Path, wait_s: float = RECORD_LOCK_WAIT_S) -> None:
    """Drop this process's name from `dst`'s unfinished entry (record_written's) as the app
    session that wrote it stops working on it unfinished (its measuring failed, a cancel,
    the batch's end): the copy is then a killed session's to a later session or a
    `cloak protect` run, which redo it, not one in progress that they must leave alone.
    Best effort."""
    try:
        with output_folder_lock(dst.parent, wait_s):
            manifest = Manifest(dst.parent)
            entry = manifest.get(dst)
            if entry and entry.get("state") == "pending" and \
                    entry.get(WRITER) == this_writer():
                entry.pop(WRITER)
                manifest.set(dst, entry)
    except (OSError, CloakError) as exc:
        log.info("left %s's record as it is: %s", dst, exc)


def record_copy(src: Path, dst: Path, settings: dict, verdict: str | None = None,
                entry: dict | None = None, src_identity: dict | None = None,
                written: dict | None = None, wait_s: float = RECORD_LOCK_WAIT_S
                ) -> dict | None:
    """Record in the manifest of `dst`'s folder that cloak wrote `dst` from `src` with
    `settings` (the desktop app's copies, for earlier_copy), and the `verdict` (verify's
    word) its protection was given, where known. `src_identity`: `identity(src)` as it
    was read before the copy was made (a photo edited during the attack is then not
    taken for the one the copy was made from); None: read now. `entry`: what an earlier
    call returned, recorded again with the verdict (neither file is read again).
    `written`: the copy's identity as record_written took it (its sha256 is reused where
    the file is unchanged). Returns
    the entry recorded; None, and nothing recorded, when a `cloak protect` run holds the
    folder (past `wait_s`: another app window's record holds it for milliseconds) or the
    manifest can't be written: the copy is then simply protected again next time."""
    try:
        entry = dict(entry) if entry else {"state": "done",
                                           "src": src_identity or identity(src),
                                           "settings": settings,
                                           "dst": identity(dst, written),
                                           SHEETS_RECORDED: True}
        if verdict:
            entry["verdict"] = verdict
        with output_folder_lock(dst.parent, wait_s):
            manifest = Manifest(dst.parent)
            manifest.set(dst, entry)
        return entry
    except (OSError, CloakError) as exc:
        log.info("did not record %s in its folder's manifest: %s", dst, exc)
        return None


def fold_journal(out_dir: Path, wait_s: float = RECORD_LOCK_WAIT_S) -> None:
    """Take OUT's journal into its record (Manifest.compact), as a writer that recorded
    copies one at a time (the desktop app) ends: OUT is left with its record alone. Nothing
    where a `cloak protect` run holds OUT (it folds it as it ends) or the record can't be
    written (every reader takes the journal in all the same)."""
    try:
        with output_folder_lock(out_dir, wait_s):
            Manifest(out_dir).compact()
    except (OSError, CloakError) as exc:
        log.info("left the journal of %s as it is: %s", out_dir, exc)


def folder_in_use(out_dir: Path) -> bool:
    """Whether another cloak holds `out_dir`'s lock now (a `cloak protect` run writing
    there); False where it is free or can't be locked at all."""
    try:
        with output_folder_lock(out_dir):
            return False
    except FolderInUseError:
        return True
    except (OSError, CloakError):
        return False


# Fingerprint keys that name a setting without changing it: the mask's path as typed
# (`m.png`, `./m.png`, from another folder); its sha256 is what counts.
NOT_COMPARED = frozenset({"mask"})


def same_settings(old: dict | None, new: dict, also: dict | None = None) -> bool:
    """Whether a copy made with `old` settings counts as made with `new` (or `also`)."""
    if old is None:
        return False
    if also is not None and same_settings(old, also):
        return True
    old = seed_as_recorded_now(old, new)
    return ({k: v for k, v in old.items() if k not in NOT_COMPARED}
            == {k: v for k, v in new.items() if k not in NOT_COMPARED})


def seed_as_recorded_now(old: dict, new: dict) -> dict:
    """`old` with its seed as settings are recorded now: where `new` draws nothing at
    random (its seed recorded as 0, ProtectConfig.fingerprint), a copy made by an earlier
    version with another seed (`--seed 7`, which changed nothing) is the same copy."""
    if "seed" in old and not draws_at_random(new.get("robust"), new.get("eot_share"),
                                             new.get("objective")):
        return {**old, "seed": 0}
    return old


# Settings a preset decides that no option sets: named in a change only as the preset's
# own ("strength fast -> medium" says it; the same strength: a cloak version that tuned it)
PRESET_TUNING = frozenset({"working_size", "eot_share", "perceptual_weight", "flat_floor",
                           "contrast_ref", "step_start", "both_roundings", "naive_downscale"})


# a recorded setting by the option that sets it, as a message names it
SETTING_OPTIONS = {"strength": "--strength", "eps255": "--eps", "steps": "--steps",
                   "models": "--models", "view_sizes": "--editor-sizes",
                   "objective": "--objective", "robust": "--robust", "seed": "--seed",
                   "mask": "--mask"}


def _shown_setting(value) -> str:
    """A recorded setting as typed: 8.0 as 8, a list as "a,b"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_change(old: dict, new: dict) -> str:
    """What differs between the settings a copy was made with and this run's, in a few
    words: "--strength medium -> high", "the mask changed", "metadata options changed"
    (named only when not the default, so a key may be on one side only), in terms of the
    options (a preset's inner tuning is not named key by key)."""
    old = seed_as_recorded_now(old, new)
    changed = []
    tuned = False
    sized = old.get("view_sizes") != new.get("view_sizes")  # --editor-sizes, named itself
    for key in [*new, *(k for k in old if k not in new)]:
        if key in NOT_COMPARED or old.get(key) == new.get(key):
            continue
        if key == "working_size" and sized:  # the largest editing size: follows from them
            continue
        if key in PRESET_TUNING:
            tuned = True
        elif key == "mask_sha256":
            changed.append("the mask changed" if old.get(key) and new.get(key)
                           else "a mask added" if new.get(key) else "the mask left out")
        elif key == "metadata":  # a policy of many options: which ones is --json's to say
            changed.append("metadata options (--keep-gps, --strip-exif...) changed")
        elif key == "faces":  # off only where the face detector could not be found
            changed.append("face priority on" if new.get(key) else
                           "face priority off (its detector missing or failing)")
        elif key not in old:  # an option the cloak that made the copy did not have:
            tuned = True  # its version's tuning, not a change the user made
        else:
            option = SETTING_OPTIONS.get(key, key)
            changed.append(f"{option} {_shown_setting(old.get(key))} -> "
                           f"{_shown_setting(new.get(key))}")
    if tuned and old.get("strength") == new.get("strength"):
        changed.append(f"the {new.get('strength')} preset as another cloak version tuned it")
    return ", ".join(changed[:3]) or "other settings"


def pending_is_ours(dst: Path, entry: dict) -> bool:
    """Whether the file at `dst`, named by an unfinished (`pending`) entry, is the one the
    stopped run wrote: the file it recorded (when it stopped, or an earlier run's copy a
    redo was about to replace), or, for a run killed before it could record one (or a
    redo killed once it had replaced that copy), a file that carries cloak's note. A file
    put there by someone else after the run stopped is neither. A copy that carries no
    note (BMP, or notices turned off) is recorded the moment it is written (before it is
    measured or its sheet made: batch._record_written); one killed in the instant between
    its rename and that record can't be told from a user's file put there since: it is
    not taken for cloak's (the entry was trusted, and a user's BMP at that name replaced
    without --overwrite)."""
    if not dst.is_file():
        return False
    from .io import says_protected_file

    if entry.get("dst") and matches_record(dst, entry["dst"], refresh=True):
        return True
    return says_protected_file(dst)  # also a redo killed once it replaced that copy


def pending_may_be_ours(dst: Path, entry: dict) -> bool:
    """pending_is_ours, for skipping rather than replacing: a copy without cloak's note
    (BMP, or notices turned off) at the name is taken for cloak's too, so it is never
    protected again (two layers of noise); a user's file there is then left alone, not
    replaced (pending_is_ours decides that)."""
    if pending_is_ours(dst, entry):
        return True
    metadata = (entry.get("settings") or {}).get("metadata") or {}
    return dst.is_file() and (dst.suffix.lower() in (".bmp", ".dib")
                              or metadata.get("cloak_note") is False)


@contextlib.contextmanager
def output_folder_lock(out_dir: Path, wait_s: float = 0.0):
    """Hold `OUT/.cloak-lock` for a run: a second `cloak protect` writing to the same
    folder at the same time would delete the first one's temp files and lose its manifest
    entries, so it is refused (OutputError). The lock goes with the process, even when
    it is killed; the lock file is removed when the run ends (a killed run leaves it,
    empty, for the next one to reuse). `wait_s`: how long a lock held elsewhere is waited
    for (the desktop app's writers each hold it for one entry, milliseconds)."""
    path = out_dir / LOCK_NAME
    deadline = time.monotonic() + wait_s
    for _ in range(3):  # the file may be removed by the run that held it, between steps
        try:
            # O_NOFOLLOW: a lock "file" that is a link pointing elsewhere is not followed
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.ELOOP):  # a folder or a link at its name:
                # the folder is writable, the lock's name is taken
                raise OutputError(f"can't write to output folder {out_dir}: its lock file "
                                  f"{path} is a {'folder' if exc.errno == errno.EISDIR else 'symlink'}"
                                  "; remove it (no cloak run is using it)") from exc
            raise OutputError(f"can't write to output folder {out_dir}: "
                              f"{exc.strerror or exc}") from exc
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise FolderInUseError(f"another cloak protect is writing to {out_dir}; wait "
                                  "for it to finish, or choose another --out folder")
            time.sleep(LOCK_POLL_S)
        try:  # locked the file that is still there, not one its holder just removed
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise FolderInUseError(f"another cloak protect is writing to {out_dir}; wait for it "
                          "to finish, or choose another --out folder")
    try:
        yield
    finally:
        _release_lock(path, fd)


# Whether a file still open can be removed (POSIX); Windows refuses, so there the lock is
# closed first and then removed, which fails (harmlessly) where another run opened it since.
REMOVES_OPEN_FILES = os.name != "nt"


def _release_lock(path: Path, fd: int) -> None:
    """Remove the lock file and let go of it (its lock goes with the descriptor)."""
    if REMOVES_OPEN_FILES:
        with contextlib.suppress(OSError):
            st, held = os.stat(path), os.fstat(fd)
            # only this lock's file: where OUT was removed and made again meanwhile, the
            # file at its name is another run's lock, which would then guard nothing
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                path.unlink()  # while still locked: a run that opened it retries (above)
        os.close(fd)
        return
    os.close(fd)
    with contextlib.suppress(OSError):
        path.unlink()


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file `fd` without waiting; False if held."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # a filesystem without locks (some network shares): go on
        log.debug("can't lock %s: %s", fd, exc)
    return True


def file_stamp(path: Path) -> tuple | None:
    """(inode, size, mtime, ctime) of the file at `path`, or None: tells whether it was
    written (compare two with same_stamp)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def same_stamp(a: tuple | None, b: tuple | None) -> bool:
    """Whether two file_stamps are of one unchanged file: the same size, mtime and ctime
    (an in-place edit that keeps size and mtime, as `exiftool -P` does, moves the ctime).
    The inode number is not compared: FAT and exFAT through FUSE give a file a new one
    once the kernel's cache lets it go (a rerun refused cloak's own copies as "changed
    while this run was busy"). None matches only None."""
    if a is None or b is None:
        return a is b
    return a[1:] == b[1:]
