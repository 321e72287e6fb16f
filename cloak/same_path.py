"""Paths and names: whether two paths are one file or folder, by the disk's identity
(device and inode, samefile), or as a case-insensitive, Unicode-normalising disk (macOS,
Windows, exFAT) compares names (`fold`, `spelt_as_one`); whether a name fits a disk
(`name_fits`, `name_too_long`); and the words for a path that can't be read. Used to plan
a batch, to check an output and to read a record; no I/O beyond stat, realpath, a
folder's listing and pathconf."""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

NUL_IN_NAME = "its name holds a NUL character, which no file name can"
LINK_LOOP = "is a link that leads back to itself (a loop of links)"
PATTERN_MATCHED_NOTHING = (
    "no such file or folder: no file matches this pattern (a shell passes one that "
    "matches nothing on as it is; check the name's letter case, or give the folder)")


def path_argument(value: object, function: str, argument: str) -> Path:
    """`value` as a Path, for the library's functions that take a file: a str or an
    os.PathLike that gives one. Anything else is a TypeError naming `function` and its
    `argument` (pathlib's own named neither, and said bytes were taken where they were
    not)."""
    if isinstance(value, str) or (isinstance(value, os.PathLike)
                                  and isinstance(os.fspath(value), str)):
        return Path(value)
    hint = "; decode it with os.fsdecode() first" if isinstance(value, bytes) else ""
    raise TypeError(f"{function}() takes {argument} as a path (a str or pathlib.Path), "
                    f"got {type(value).__name__}{hint}")


def looks_like_pattern(path: str | os.PathLike[str]) -> bool:
    """Whether the last part of `path` holds a shell pattern's `*`, `?` or `[`: a
    `cloak protect *.JPG` that matched nothing reaches cloak as it was typed."""
    return any(c in os.path.basename(os.fspath(path)) for c in "*?[")


def holds_nul(path: str | os.PathLike[str]) -> bool:
    """Whether `path` has a NUL character (from code, never a shell): every call on it
    raises a bare ValueError."""
    return "\0" in os.fspath(path)


def stat_key(path: Path) -> tuple[int, int]:
    """(device, inode) of the file or folder at `path`: its identity on this machine."""
    st = path.stat()
    return st.st_dev, st.st_ino


class PathSet:
    """Real paths of files and folders (a plan's outputs, a record's copies). A path is a
    member where its string is one, or where it is one of them on disk (device and inode,
    as each was when added): macOS keeps a path's spelling as typed, so a copy listed by
    its folder in NFD (HFS+) or in another letter case is not the string its record
    gives; nor is a folder reached through a bind mount. Such a copy was protected again,
    each run one folder deeper."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._paths: set[str] = set()
        self._keys: set[tuple[int, int]] = set()
        self.update(paths)

    def add(self, real: str) -> None:
        self._paths.add(real)
        try:
            self._keys.add(stat_key(Path(real)))
        except (OSError, ValueError):  # gone, or a NUL in it: its string alone
            pass

    def update(self, paths: Iterable[str]) -> None:
        if isinstance(paths, PathSet):
            self._paths |= paths._paths
            self._keys |= paths._keys
            return
        for real in paths:
            self.add(real)

    def __contains__(self, real: object) -> bool:
        if real in self._paths:
            return True
        if not self._keys or not isinstance(real, str):
            return False
        try:
            return stat_key(Path(real)) in self._keys
        except (OSError, ValueError):
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def holds(outer: str, inner: str) -> bool:
    """Whether real path `outer` is `inner` or a folder above it."""
    try:
        return os.path.commonpath([outer, inner]) == outer
    except ValueError:  # different drives (Windows)
        return False


def holds_as_spelt(outer: str, inner: str) -> bool:
    """holds(outer, inner), where `inner`'s folders may be spelt otherwise than `outer`'s
    (a record's NFC name for a folder HFS+ lists in NFD, or another letter case on a disk
    that ignores case): its part at `outer`'s depth is then asked whether it is `outer`'s
    folder on disk."""
    if holds(outer, inner):
        return True
    outer_parts, inner_parts = Path(outer).parts, Path(inner).parts
    if len(inner_parts) < len(outer_parts):
        return False
    head = str(Path(*inner_parts[:len(outer_parts)]))
    return fold(head) == fold(outer) and same_folder_path(outer, head)


def same_folder(a: Path, b: Path) -> bool:
    """Whether `a` and `b` both exist and are one folder (or file) on disk."""
    try:
        return a.exists() and b.exists() and (stat_key(a) == stat_key(b)
                                              or spelt_as_one(a, b))
    except OSError:
        return False


def spelt_as_one(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether `a` and `b`, both there, are one file or folder spelt in two letter cases
    (or Unicode forms) on a disk that ignores them, where the disk does not say so by its
    identity: FAT and exFAT through FUSE give each spelling its own inode number, and an
    `--out` typed `pics` for the card's `Pics` replaced the original photo. Each part
    that is spelt apart must be the only entry of its folder that folds to it (a disk
    that keeps case holds both), and the two must agree in device, size and mtime."""
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    if real_a == real_b or fold(real_a) != fold(real_b):
        return real_a == real_b
    try:
        st_a, st_b = os.stat(real_a), os.stat(real_b)
        if (st_a.st_dev, st_a.st_size, st_a.st_mtime_ns) != \
                (st_b.st_dev, st_b.st_size, st_b.st_mtime_ns):
            return False
        parts_a, parts_b = Path(real_a).parts, Path(real_b).parts
        for depth, (part_a, part_b) in enumerate(zip(parts_a, parts_b)):
            if part_a != part_b:
                folder = Path(*parts_a[:depth])
                if sum(fold(name) == fold(part_a) for name in os.listdir(folder)) != 1:
                    return False
    except (OSError, ValueError):
        return False
    return len(parts_a) == len(parts_b)


def fold(path: str) -> str:
    """A path as a case-insensitive, normalising disk (macOS, Windows, exFAT) compares it:
    NFC, then each letter to its one-letter capital. A letter whose capital is two
    (ß -> SS, the ligature ﬁ -> FI) stays as it is, as such disks keep it: Straße.jpg and
    Strasse.jpg are two files there."""
    nfc = unicodedata.normalize("NFC", path)
    capitals = nfc.upper()  # at once where no letter's capital is two (nearly every name)
    return capitals if len(capitals) == len(nfc) else "".join(map(_capital, nfc))


def _capital(letter: str) -> str:
    capital = letter.upper()
    return capital if len(capital) == 1 else letter


def only_spelt_apart(a: str, b: str) -> str:
    """Why two output paths that fold makes one are one file, as a clause ("" when they
    are the same string): they differ only in letter case (IMG_1.JPG, img_1.jpg), or in
    how an accented letter is encoded (NFC, NFD)."""
    if a == b:
        return ""
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        how = "how accented letters are encoded"
    elif "".join(map(_capital, a)) == "".join(map(_capital, b)):
        return (" (the names differ only in letter case, and are one file on macOS and "
                "Windows disks and on memory cards)")
    else:
        how = "letter case and how accented letters are encoded"
    # Windows and memory cards keep either encoding apart (NTFS and FAT compare names
    # as stored); macOS's disks take them as one
    return f" (the names differ only in {how}, and are one file on macOS disks)"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (a hard link, another letter case on a
    case-insensitive disk); False when either can't be looked at."""
    try:
        return os.path.samefile(a, b) or spelt_as_one(a, b)
    except OSError:
        return False


def same_folder_path(a: str, b: str) -> bool:
    """Whether real paths `a` and `b` name one folder: the same string, or (on a disk that
    ignores case or Unicode form, as macOS's does, where realpath keeps the case typed)
    the same folder on disk."""
    if a == b:
        return True
    try:  # fold first: a plan asks this of each input folder against every recorded one
        return os.path.samefile(a, b) or (fold(a) == fold(b) and spelt_as_one(a, b))
    except OSError:
        return False


def inside(folder: Path, out_dir: Path) -> bool:
    """Whether `folder` (existing or not) lies inside OUT once links are followed."""
    out = os.path.realpath(out_dir)
    try:
        return os.path.commonpath([os.path.realpath(folder), out]) == out
    except ValueError:  # Windows: another drive
        return False


NAME_MAX = 255  # bytes in one file name on the common disks (ext4, APFS, NTFS in UTF-16)


def name_fits(name: str) -> bool:
    """Whether `name` fits one file name on the common disks: NAME_MAX bytes as stored
    (UTF-8), or, on Windows, as many UTF-16 units (NTFS)."""
    if os.name == "nt":
        return len(name.encode("utf-16-le", "surrogatepass")) // 2 <= NAME_MAX
    return len(os.fsencode(name)) <= NAME_MAX


def fitting_name(stem: str, tail: str) -> str:
    """`stem + tail`, the stem cut (whole characters) so the name fits NAME_MAX bytes as
    the disk stores it (UTF-8; a name's undecodable bytes kept as they were)."""
    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogateescape"))

    while stem and size(stem + tail) > NAME_MAX:
        stem = stem[:-1]
    return (stem.rstrip() or stem) + tail  # not "name  (1).jpg" where the cut left a space


NAME_TOO_LONG_ADVICE = ("give the photo a shorter name, or choose another --out folder "
                        "with a shorter path")


def output_reason(exc: OSError) -> str:
    """Why an output path failed, in words: the system's (`exc.strerror`), with what to do
    where the name or path is too long for the disk (ENAMETOOLONG)."""
    reason = exc.strerror or str(exc)
    return (f"{reason}; {NAME_TOO_LONG_ADVICE}" if exc.errno == errno.ENAMETOOLONG
            else reason)


def name_too_long(path: str | os.PathLike[str]) -> bool:
    """Whether `path` (existing or not) has a part longer than its disk allows, or is as a
    whole longer than the system's path limit: what stat says (ENAMETOOLONG) only where
    its folder exists; a folder yet to be made said it after the attack's minutes. The
    limits are the nearest existing folder's, and the whole path is measured as given (a
    relative one from a deep current folder is short to the system). Where the system
    can't say (Windows: no pathconf), a part may hold 255 UTF-16 units (NTFS), and the
    whole path is not measured."""
    given = os.fsencode(path)
    path = Path(os.path.abspath(path))
    base = next((folder for folder in path.parents if os.path.isdir(folder)), None)
    below = path.relative_to(base).parts if base is not None else path.parts
    if not hasattr(os, "pathconf"):
        return any(len(part.encode("utf-16-le", "surrogatepass")) // 2 > NAME_MAX
                   for part in below)
    name_max, path_max = NAME_MAX, None
    if base is not None:
        try:  # -1: no limit that the system knows
            name_max = os.pathconf(base, "PC_NAME_MAX")
            path_max = os.pathconf(base, "PC_PATH_MAX")
        except (OSError, ValueError):
            pass
    name_max = name_max if name_max > 0 else NAME_MAX
    if any(len(os.fsencode(part)) > name_max for part in below):
        return True
    return path_max is not None and 0 < path_max <= len(given)
