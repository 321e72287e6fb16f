"""Protect many photos: walk folders, mirror the tree, resume, run workers, report progress.

    items = plan(["me.jpg", "holiday/"], "protected/")   # what to do, and what is wrong
    result = run(items, "protected/", config, on_event=print)

`plan` walks folders (symlinks followed, each real folder once), keeps files whose suffix is
in `io.IMAGE_SUFFIXES`, and sends `holiday/a/b.jpg` to `protected/holiday/a/b.jpg` and
`me.jpg` to `protected/me.jpg`. Problems it finds (missing paths, a photo named twice, an
output that would replace its input, symlink loops) become items that are already
`failed` or `skipped`, so one bad path never stops the rest. So do copies cloak protected
already (named, or found in a folder): their XMP carries cloak's note.

`run` keeps a manifest, `OUT/.cloak-manifest.json`, recording for each output the source's
size, mtime and sha256 and the settings fingerprint. A photo whose output is already there,
made from the same source with the same settings, is skipped; `force` redoes it. An output
that exists for any other reason is left alone unless `overwrite` (or `force`) is given.
Outputs are written atomically and the manifest is rewritten (atomically) after each photo,
so a run killed at any moment resumes where it stopped. Progress goes to `on_event`; the
library prints nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import errno
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import re
import signal
import stat
import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from .config import ProtectConfig, draws_at_random
from .errors import (
    Cancelled,
    CloakError,
    OutputError,
    UnsupportedImageError,
    is_gpu_out_of_memory,
    is_out_of_memory,
)
from .models.weights import DownloadProgress, sha256_of, stops_downloads
from .preview import PREVIEW_SUFFIX, preview_path
from .report import Report, plural

log = logging.getLogger(__name__)

MANIFEST_NAME = ".cloak-manifest.json"
LOCK_NAME = ".cloak-lock"  # held (flock) by the run writing to OUT
# said as "FOLDER: its 2 protected copies are skipped ...": the folder's other photos are
# still protected, so the line does not begin "skipped" as a skipped photo's does
OUTPUT_FOLDER_SKIPPED = (f"its {{copies}} skipped (a cloak output folder: it "
                         f"holds {MANIFEST_NAME}); the other photos in it are protected")
INSIDE_OUTPUT_FOLDER_SKIPPED = (f"its {{copies}} skipped (a folder inside a "
                                f"cloak output folder, whose {MANIFEST_NAME} lists them); "
                                "the other photos in it are protected")
A_RECORDED_COPY = ("a copy cloak protected already (the output folder's record lists it); "
                   "protecting it again would add a second layer of noise: give the original")
TEMP_GLOB = ".*.cloak-tmp-*"  # the temp files of atomic.write_atomic
ALREADY_DONE = "already protected with these settings"
NOT_A_PHOTO = "not a photo cloak reads"
PACKAGE_SKIPPED = ("a library or app package, not walked (export its photos first, or give "
                   "the package itself)")
FOLDER_TWICE = "folder already included (named twice)"
# A folder symlink the walk does not follow (a loop, or a folder walked already)
# --out inside an input folder, whose record can't be read: its files are left alone
# (cloak's copies without its note would be protected again)
OUTPUT_RECORD_UNREADABLE = (f"not searched: it is this run's output folder, and its "
                            f"{MANIFEST_NAME} is {{why}} (or a damaged one was set aside "
                            "there), so cloak's copies in it can't be told from your photos")
LINK_NOT_FOLLOWED = "symlink to a folder "
# Camera RAW files (a phone's ProRAW / Expert RAW DNG, a camera's own): named in the skip
# line, since the photo is there but needs developing (Pillow would read only a DNG's
# small preview)
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf",
                          ".pef", ".srw"})
RAW_WHY = ("not protected: a RAW must be developed first; export it as JPEG, HEIC or TIFF "
           "and protect that")
RAW_SKIPPED = "{n} camera RAW file(s) ({kinds}) " + RAW_WHY
# A file whose XMP carries cloak's note: protecting it again adds a second layer of noise.
A_PROTECTED_COPY = ("a copy cloak protected already (its metadata says so); protecting it "
                    "again would add a second layer of noise: give the original")
PROTECTED_COPIES_SKIPPED = ("copies cloak protected already (their metadata says so), not "
                            "protected again: {n}")
PREVIEW_SKIPPED = (f"{NOT_A_PHOTO}: a preview sheet cloak wrote beside a copy "
                   f"(*{PREVIEW_SUFFIX}); give the original photo")
PROTECTED, SKIPPED, FAILED, CANCELLED = "protected", "skipped", "failed", "cancelled"


@dataclass
class Item:
    """One input path and what happened to it. `dst` is None when there is no output."""

    src: Path
    dst: Path | None
    status: str = "pending"  # pending | protected | skipped | failed | cancelled
    message: str = ""  # why it was skipped, failed or not done
    report: Report | None = None
    replace: bool = False  # --overwrite or --force: files at dst and its sheet's name go
    # _stamp(dst) when the run itself judged that file its own to redo (not --overwrite):
    # if the file changes before its turn comes, or before the copy is written over it,
    # it is no longer that file. Likewise sheet_stamp for cloak's own preview sheet.
    ours_stamp: tuple | None = None
    sheet_stamp: tuple | None = None
    dst_before: tuple | None = None  # _stamp(dst) when its work began
    folder: tuple[str, str] | None = None  # (mirror name under OUT, input folder's real path)

    def to_dict(self) -> dict:
        return {"src": str(self.src), "dst": None if self.dst is None else str(self.dst),
                "status": self.status,
                "error": self.message if self.status == FAILED else None,
                "reason": self.message if self.status in (SKIPPED, CANCELLED) else None,
                "report": self.report.to_dict() if self.report else None}


@dataclass
class Event:
    """What `run` tells `on_event`: `download` (weights fetched on first use: `label` the
    file, `fraction` done, `total` bytes, 0 if unknown) while models load, `todo` (total
    photos to protect) once, then per photo `start`, `progress` (fraction in [0, 1]) and
    `done` (see item.status)."""

    kind: str
    item: Item | None = None
    fraction: float = 0.0
    total: int = 0
    label: str = ""
    done: int = 0  # `download`: bytes received so far


def download_event(name: str, done: int, total: int) -> Event:
    """The `download` event for a DownloadProgress callback's (file, bytes done, total)."""
    return Event("download", label=name, fraction=done / total if total else 0.0,
                 total=total, done=done)


@dataclass
class BatchResult:
    items: list[Item]
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    # The settings (ProtectConfig.fingerprint) the run protected with, and recorded its
    # copies with: as run, so faces off where they were asked for but the face detector
    # could not be found (faces_as_found); the config as given when no photo was looked at
    settings: dict | None = None

    def __post_init__(self) -> None:
        self.counts = {s: sum(i.status == s for i in self.items)
                       for s in (PROTECTED, SKIPPED, FAILED, CANCELLED)}

    def to_dict(self) -> dict:
        return {"interrupted": self.interrupted, "counts": self.counts,
                "files": [i.to_dict() for i in self.items]}

    @property
    def found_no_photos(self) -> bool:
        """Nothing given was a photo: no items, or only files skipped as non-photos, app
        packages not walked (a Mac's Pictures holding only its Photos library), folders
        named twice, folder symlinks not followed and camera RAW files."""
        return all(i.status == SKIPPED and (i.message.startswith((NOT_A_PHOTO,
                                                                  LINK_NOT_FOLLOWED))
                                            or i.message in (PACKAGE_SKIPPED, FOLDER_TWICE)
                                            or i.message.endswith(RAW_WHY))
                   for i in self.items)


# ---------------------------------------------------------------- planning


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _is_photo_name(path: Path, suffixes: Iterable[str]) -> bool:
    return path.suffix.lower() in suffixes


def _skip_own_outputs(folder: Path, skip: set[str], problems: list[Item]) -> None:
    """`folder` holds a cloak manifest (an earlier run's --out): add the outputs it lists
    that are still the files cloak wrote to `skip` (real paths), so its protected copies
    are not protected again while the user's own photos beside them (and in its mirror
    folders) still are; one SKIPPED item says how many."""
    copies = recorded_copies(folder)
    skip.update(copies)
    if copies:
        problems.append(Item(folder, None, SKIPPED,
                             OUTPUT_FOLDER_SKIPPED.format(copies=_protected_copies(len(copies)))))


def _protected_copies(count: int) -> str:
    """"1 protected copy is", "2 protected copies are" (OUTPUT_FOLDER_SKIPPED's words)."""
    return f"{plural(count, 'protected copy', 'protected copies')} {'is' if count == 1 else 'are'}"


def recorded_copies(folder: Path) -> set[str]:
    """Real paths of the copies `folder`'s manifest lists that are still the files cloak
    wrote: a new original that has since taken a listed name (another camera's
    IMG_0001.jpg) is the user's photo."""
    copies = set()
    for rel, entry in Manifest(folder).entries.items():
        path = folder / rel
        if (_pending_is_ours(path, entry) if entry.get("state") == "pending"
                else matches_record(path, entry.get("dst"))):
            copies.add(os.path.realpath(path))
    return copies


def _recorded_above(real: str, cache: dict[str, set[str] | None]) -> set[str]:
    """recorded_copies of the nearest output folder above real path `real` (a cloak
    manifest in a folder that holds it, not `real` itself), or an empty set. `cache`:
    folder -> its copies (None: no manifest), shared by one plan()."""
    for parent in Path(real).parents:
        folder = str(parent)
        if folder not in cache:
            cache[folder] = (recorded_copies(parent)
                             if os.path.isfile(parent / MANIFEST_NAME) else None)
        if cache[folder] is not None:
            return cache[folder]
    return set()


def _set_aside_record(folder: Path) -> bool:
    """Whether `folder` holds a damaged manifest an earlier run set aside
    (MANIFEST_NAME.unreadable-TIME): the copies it listed are not in the new record."""
    try:
        return any(name.startswith(f"{MANIFEST_NAME}.unreadable-") for name in os.listdir(folder))
    except OSError:
        return False


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped while looking for photos")


def _walk(folder: Path, rel: Path, skip: set[str], suffixes: Sequence[str],
          seen_dirs: set, found: list[tuple[Path, Path]], problems: list[Item],
          should_stop: Callable[[], bool] | None = None, out_real: str | None = None
          ) -> None:
    """Depth-first, sorted walk. Hidden entries (.*) are ignored; each real folder is
    entered once, so symlink loops end; paths in `skip` (outputs: folders, and the copies
    an earlier run's manifest lists) are never taken; library and app packages are not
    entered (io.PACKAGE_SUFFIXES). `out_real`: the run's --out (real path), met inside
    the input: its recorded copies are skipped without a line (as its mirror of this
    folder is), and the user's own photos in it are taken, as when it is named; where its
    manifest is unreadable or a newer cloak's, it is not entered (one SKIPPED item)."""
    from .io import PACKAGE_SUFFIXES

    _check_stop(should_stop)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(Item(folder, None, FAILED, f"can't read folder: {exc.strerror or exc}"))
        return
    raws: list[str] = []  # suffixes of the camera RAW files here
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir and path.suffix.lower() in PACKAGE_SUFFIXES:
            problems.append(Item(path, None, SKIPPED, PACKAGE_SKIPPED))
            continue
        if is_dir:
            try:
                key, real = _stat_key(path), os.path.realpath(path)
            except OSError as exc:
                problems.append(Item(path, None, FAILED, f"can't read folder: {exc}"))
                continue
            if real in skip:
                continue
            if entry.is_symlink() and _holds(real, os.path.realpath(folder)):
                # a link up to the folder it sits in, or above (`up -> ..`, `/`, `~`):
                # followed, it would take photos outside the folder named
                problems.append(Item(path, None, SKIPPED,
                                     f"{LINK_NOT_FOLLOWED}that holds it ({real}); not followed"))
                continue
            if key in seen_dirs:
                if entry.is_symlink():
                    problems.append(Item(path, None, SKIPPED,
                                         f"{LINK_NOT_FOLLOWED}already walked ({real}); "
                                         "not followed"))
                continue
            seen_dirs.add(key)
            # os.path, not Path.is_file: that raises PermissionError in a folder that
            # can't be searched, which would fail the whole input, not this folder
            if real == out_real:
                record = Manifest(path).found or (
                    ("unreadable", "set aside") if _set_aside_record(path) else None)
                if record is not None:  # it can't tell cloak's copies from the user's photos
                    problems.append(Item(path, None, SKIPPED, OUTPUT_RECORD_UNREADABLE.format(
                        why="from a newer cloak" if record[0] == "newer" else "unreadable")))
                    continue
                skip.update(recorded_copies(path))
            elif os.path.isfile(path / MANIFEST_NAME):  # an earlier run's output folder
                _skip_own_outputs(path, skip, problems)
            _walk(path, rel / entry.name, skip, suffixes, seen_dirs, found, problems,
                  should_stop, out_real)
        elif _is_photo_name(path, suffixes) and not path.name.lower().endswith(PREVIEW_SUFFIX) \
                and os.path.realpath(path) not in skip:
            found.append((path, rel))
        elif path.suffix.lower() in RAW_SUFFIXES:
            raws.append(path.suffix[1:].upper())
    if raws:  # one line for the folder: the photos are there, but need developing
        problems.append(Item(folder, None, SKIPPED, RAW_SKIPPED.format(
            n=len(raws), kinds=", ".join(sorted(set(raws))))))


def _holds(outer: str, inner: str) -> bool:
    """Whether real path `outer` is `inner` or a folder above it."""
    try:
        return os.path.commonpath([outer, inner]) == outer
    except ValueError:  # different drives (Windows)
        return False


def _check_source(path: Path) -> str | None:
    """Why `path` can't be read as a photo file, or None."""
    try:
        st = path.stat()
    except OSError as exc:
        if os.path.islink(path):  # never raises (Path.is_symlink can, with EACCES)
            return f"broken or looping symlink ({exc.strerror or exc})"
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return "no such file or folder"
        return f"can't read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and _stat_key(a) == _stat_key(b)
    except OSError:
        return False


def _fold(path: str) -> str:
    """A path as a case-insensitive, normalising disk (macOS, Windows, exFAT) compares it."""
    return unicodedata.normalize("NFC", path).casefold()


def _only_spelt_apart(a: str, b: str) -> str:
    """Why two output paths that _fold makes one are one file, as a clause ("" when they
    are the same string): they differ only in letter case (IMG_1.JPG, img_1.jpg), or in
    how an accented letter is encoded (NFC, NFD)."""
    if a == b:
        return ""
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        how = "how accented letters are encoded"
    elif a.casefold() == b.casefold():
        how = "letter case"
    else:
        how = "letter case and how accented letters are encoded"
    return (f" (the names differ only in {how}, and are one file on macOS and Windows "
            "disks)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _same_folder_path(a: str, b: str) -> bool:
    """Whether real paths `a` and `b` name one folder: the same string, or (on a disk that
    ignores case or Unicode form, as macOS's does, where realpath keeps the case typed)
    the same folder on disk."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class Mirrors:
    """Which input folder each folder name under OUT mirrors. Recorded in OUT's manifest,
    so a later run keeps each folder in its own mirror whatever else it is given:
    `2023/Camera 2024/Camera` -> `Camera`, `Camera (2)`, and a later run of 2024/Camera
    alone goes to `Camera (2)` again, not into 2023's copies."""

    def __init__(self, recorded: dict[str, str], out_dir: Path | None = None):
        self.owner = {name.casefold(): real for name, real in recorded.items()}
        self.names = {real: name for name, real in recorded.items()}
        self.used: set[str] = set()  # taken in this run, case-folded
        self.out_dir = out_dir

    def name_for(self, real: str) -> str:
        """The mirror name for the input folder at real path `real`: the one recorded for
        it, else its own name, or `name (2)`, ... when that is taken by another folder
        (case-folded, so two folders never share a mirror on a case-insensitive disk), or
        by something already in OUT that no run recorded (the user's own `DCIM`, or a
        subfolder of the very folder being protected: copies never mix with originals)."""
        recorded = next((name for owner, name in self.names.items()
                         if _same_folder_path(owner, real)), None)
        if recorded is not None and recorded.casefold() not in self.used:
            candidate = recorded
        else:
            name = root_mirror_name(real)
            candidate, n = name, 1
            while candidate.casefold() in self.used or \
                    not _same_folder_path(self.owner.get(candidate.casefold(), real), real) or \
                    (candidate.casefold() not in self.owner and self._in_use(candidate)):
                n += 1
                candidate = f"{name} ({n})"
        self.used.add(candidate.casefold())
        return candidate

    def _in_use(self, name: str) -> bool:
        """Whether OUT/name is something other than nothing or an empty folder."""
        if self.out_dir is None:
            return False
        path = self.out_dir / name
        try:
            with os.scandir(path) as entries:
                return next(entries, None) is not None
        except OSError:  # a file at OUT/name is in use; a file above OUT is not (no loop)
            return os.path.lexists(path)


def root_mirror_name(real: str | PurePath) -> str:
    """A folder's own name, or, for a drive or share root that has none (E:\\,
    \\\\server\\share, /), one from its drive letter or share ("E", "server-share"), else
    "root": a mirror name of one plain component, so the next run finds it recorded."""
    path = real if isinstance(real, PurePath) else PurePath(real)
    if path.name:
        return path.name
    drive = "-".join(part for part in re.split(r"[\\/:?]+", path.drive)
                     if part and part.upper() not in ("UNC", "GLOBALROOT"))
    return drive or "root"


def _recorded_mirrors(out_dir: Path) -> dict[str, str]:
    """The mirror names OUT's manifest records (none if it has no manifest yet). Only
    names of one folder directly inside OUT count: a manifest edited or brought from
    elsewhere ("../backup", "/home/u") can't send outputs outside OUT."""
    try:
        data = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        folders = data.get("folders", {}) if isinstance(data, dict) else {}
        return {k: v for k, v in folders.items()
                if isinstance(k, str) and isinstance(v, str) and _is_plain_name(k)}
    except (OSError, ValueError, AttributeError):
        return {}


def _is_plain_name(name: str) -> bool:
    """Whether `name` is one path component of its own: not empty, ".", ".." or absolute,
    and without a separator."""
    return name not in ("", ".", "..") and Path(name).name == name and \
        not any(sep in name for sep in ("/", "\\", os.sep)) and "\0" not in name


def plan(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
         should_stop: Callable[[], bool] | None = None) -> list[Item]:
    """Turn files and folders into items (see module docstring), in input order.

    Items are `pending`, or already `failed`/`skipped` with a one-line message.
    `should_stop` (asked for each folder entered and each file's header read) raises
    Cancelled: a Ctrl-C need not wait for the walk of a whole share."""
    from . import io

    out_dir = Path(out_dir)
    suffixes = tuple(s.lower() for s in io.IMAGE_SUFFIXES)
    items: list[Item] = []
    seen_dirs: set = set()
    mirrors = Mirrors(_recorded_mirrors(out_dir), out_dir)
    recorded: dict[str, set[str] | None] = {}  # output folders above the inputs
    for raw in inputs:
        src = Path(raw)
        try:
            _plan_one(src, out_dir, suffixes, seen_dirs, mirrors, items, should_stop,
                      recorded)
        except OSError as exc:  # e.g. a folder on the way that may not be searched
            items.append(Item(src, None, FAILED, f"can't read: {exc.strerror or exc}"))
    _mark_clashes(items, out_dir)
    return items


def _plan_one(src: Path, out_dir: Path, suffixes: Sequence[str], seen_dirs: set,
              mirrors: Mirrors, items: list[Item],
              should_stop: Callable[[], bool] | None = None,
              recorded: dict[str, set[str] | None] | None = None) -> None:
    """plan() for one input path: append its items. `recorded`: _recorded_above's cache
    (the copies an output folder above an input lists are skipped, as in that folder)."""
    from . import io

    def says_protected(path: Path) -> bool:
        _check_stop(should_stop)
        return io.says_protected_file(path)

    if src.is_dir():
        if _stat_key(src) in seen_dirs:
            items.append(Item(src, None, SKIPPED, FOLDER_TWICE))
            return
        seen_dirs.add(_stat_key(src))
        real = os.path.realpath(src)
        name = mirrors.name_for(real)
        # Never walk this folder's mirror inside OUT (its copies). OUT itself, met
        # inside this folder, is walked for the user's own photos, as when it is named.
        skip = {os.path.realpath(out_dir / name)}
        found: list[tuple[Path, Path]] = []
        problems: list[Item] = []
        if os.path.isfile(src / MANIFEST_NAME):  # an earlier run's output folder, or OUT
            # itself named as an input (`cloak protect * --out protected`, run again):
            # the copies it lists are never protected again, with or without cloak's note
            _skip_own_outputs(src, skip, problems)
        inside = {c for c in _recorded_above(real, recorded if recorded is not None else {})
                  if _holds(real, c)}  # a subfolder of an output folder (`protected/trip`)
        if inside:
            skip.update(inside)
            problems.append(Item(src, None, SKIPPED,
                                 INSIDE_OUTPUT_FOLDER_SKIPPED.format(
                                     copies=_protected_copies(len(inside)))))
        _walk(src, Path(name), skip, suffixes, seen_dirs, found, problems, should_stop,
              os.path.realpath(out_dir))
        copies = {p for p, _ in found if says_protected(p)}  # moved out of an OUT
        if copies:
            found = [(p, rel) for p, rel in found if p not in copies]
            problems.append(Item(src, None, SKIPPED,
                                 PROTECTED_COPIES_SKIPPED.format(n=len(copies))))
        items.extend(problems)
        items.extend(Item(p, io.output_path_for(p, out_dir / rel), folder=(name, real))
                     for p, rel in found)
    elif (why := _check_source(src)) is not None:
        items.append(Item(src, None, FAILED, why))
    elif not _is_photo_name(src, suffixes):  # a phone export's .MOV or .AAE beside
        raw = (f"; a camera RAW ({src.suffix[1:].upper()}) must be developed first: export "
               "it as JPEG, HEIC or TIFF and protect that"
               if src.suffix.lower() in RAW_SUFFIXES else "")
        items.append(Item(src, None, SKIPPED,
                          f"{NOT_A_PHOTO} (" + (f"suffix {src.suffix!r}" if src.suffix
                                                else "no suffix such as .jpg") + "); "
                          f"supported: {io.SUPPORTED}{raw}"))
    elif src.name.lower().endswith(PREVIEW_SUFFIX):  # skipped in folders too
        items.append(Item(src, None, SKIPPED, PREVIEW_SKIPPED))
    elif says_protected(src):
        items.append(Item(src, None, SKIPPED, A_PROTECTED_COPY))
    elif os.path.realpath(src) in _recorded_above(
            os.path.realpath(src), recorded if recorded is not None else {}):
        items.append(Item(src, None, SKIPPED, A_RECORDED_COPY))  # one without the note
    else:
        items.append(Item(src, io.output_path_for(src, out_dir)))


def _mark_clashes(items: list[Item], out_dir: Path | None = None) -> None:
    """Fail or skip items that would read the same photo twice, write one output twice,
    or write over their own input or another one (a.gif's output a.png beside a.png).
    Of two photos for one output, the one `out_dir`'s record gives it to keeps it, else
    the one that keeps its name (a.png over a.gif)."""
    inputs_by_path: dict[str, Path] = {}  # every readable input file, by real path
    inputs_by_key: dict[tuple[int, int], Path] = {}  # and by (device, inode): hard links
    for item in items:
        # a protected copy named as a file is not read, so its own earlier photo's output
        # may be it (`cloak protect shoot/* --out shoot`: a.gif, and a.png, its copy)
        if item.message not in (A_PROTECTED_COPY, A_RECORDED_COPY) and \
                _check_source(item.src) is None:
            inputs_by_path[os.path.realpath(item.src)] = item.src
            with contextlib.suppress(OSError):
                inputs_by_key[_stat_key(item.src)] = item.src
    sources: dict[tuple[int, int], Item] = {}
    outputs: dict[str, Item] = {}  # by folded real path
    # A photo that keeps its name claims it before one whose format change lands on it
    # (a.png's copy is a.png; a.gif's would be too): else a.png failed in every --out.
    # Where OUT's record already gives that output to one of them, that one keeps it (an
    # OUT made by a cloak that let a.gif claim it: its copy is not redone for a.png).
    claims: dict[str, int] = {}
    for item in items:
        if item.status == "pending" and item.dst is not None:
            key = _fold(os.path.realpath(item.dst))
            claims[key] = claims.get(key, 0) + 1
    record = Manifest(out_dir) if out_dir is not None and any(
        n > 1 for n in claims.values()) else None

    def order(item: Item) -> tuple[bool, bool]:
        if item.dst is None:
            return True, True
        entry = (record.get(item.dst) if record is not None
                 and claims.get(_fold(os.path.realpath(item.dst)), 0) > 1 else None)
        recorded = bool(entry) and matches_record(item.src, entry.get("src"))
        return not recorded, item.dst.name.lower() != item.src.name.lower()

    for item in sorted(items, key=order):
        if item.status != "pending":
            continue
        try:
            _check_clash(item, inputs_by_path, inputs_by_key, sources, outputs)
        except OSError as exc:  # the output folder may not be searched (EACCES)
            item.status = FAILED
            item.message = f"can't check output {item.dst}: {exc.strerror or exc}"


def _unreadable_anyway(src: Path) -> str | None:
    """For a photo whose output clashes: the reason it would be refused in any --out
    folder (an animated GIF beside its still's PNG), which the user needs to hear first:
    protecting it alone, as the clash advises, would fail for that."""
    from . import io

    return io.frames_problem(src)


def _check_clash(item: Item, inputs_by_path: dict, inputs_by_key: dict, sources: dict,
                 outputs: dict) -> None:
    """_mark_clashes for one pending item."""
    why = _check_source(item.src)
    if why is not None:
        item.status, item.message = FAILED, why
        return
    key = _stat_key(item.src)
    if key in sources:
        item.status = SKIPPED
        item.message = f"same photo as {sources[key].src} (named twice); protected once"
        return
    dst_real = os.path.realpath(item.dst)
    if dst_real == os.path.realpath(item.src) or (
            item.dst.exists() and _stat_key(item.dst) == key):
        item.status = FAILED
        item.message = (f"output {item.dst} would replace the original; "
                        "choose another --out folder")
        return
    other = inputs_by_path.get(dst_real) or (
        inputs_by_key.get(_stat_key(item.dst)) if item.dst.exists() else None)
    if other is not None:
        item.status = FAILED
        item.message = (_unreadable_anyway(item.src) or
                        f"output {item.dst} would replace the original {other}; "
                        "choose another --out folder")
        return
    if _fold(dst_real) in outputs:  # also IMG_1.JPG against img_1.jpg
        first = outputs[_fold(dst_real)]
        item.status = FAILED
        item.message = (_unreadable_anyway(item.src) or
                        f"output {item.dst} is also the output of {first.src}"
                        f"{_only_spelt_apart(os.path.realpath(first.dst), dst_real)}; "
                        "protect this one alone into another --out folder")
        return
    # only a path that will be protected stands for its photo: one refused above leaves
    # another path to the same file its own chance (not "protected once", never done)
    sources[key] = item
    outputs[_fold(dst_real)] = item


# ---------------------------------------------------------------- manifest


def _identity(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "sha256": sha256_of(path)}


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
    except OSError:
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
ENTRY_OBJECTS = ("src", "dst", "preview", "earlier_preview", "settings")


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


class Manifest:
    """`OUT/.cloak-manifest.json`: output path (relative to OUT) -> how it was made."""

    VERSION = 1

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        self.folders: dict[str, str] = {}  # mirror name -> input folder (Mirrors)
        # What was there, if save() must not simply replace it: ("newer", version) for a
        # newer cloak's record (refused), ("unreadable", why) for a damaged one (set aside)
        self.found: tuple[str, object] | None = None
        self._by_fold: dict[str, str] | None = None  # _fold(key) -> key, built when needed
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            version = data.get("version")
            if version == self.VERSION:
                self.entries = {k: entry for k, v in data.get("photos", {}).items()
                                if (entry := _sane_entry(v)) is not None}
                self.folders = {k: v for k, v in data.get("folders", {}).items()
                                if isinstance(v, str)}
            elif isinstance(version, int) and version > self.VERSION:
                self.found = ("newer", version)
            else:
                self.found = ("unreadable", f"record version {version!r}")
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable %s (%s)", self.path, exc)
            self.found = ("unreadable", str(exc))

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
            self._by_fold = {_fold(key): key for key in self.entries}
        recorded = self._by_fold.get(_fold(rel))
        if recorded is not None and recorded in self.entries and os.path.lexists(dst) \
                and _same_file(self.out_dir / recorded, dst):
            return recorded
        return rel

    def get(self, dst: Path) -> dict | None:
        return self.entries.get(self.key(dst))

    def set(self, dst: Path, entry: dict | None) -> None:
        key = self.key(dst)
        if entry is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = entry
            if self._by_fold is not None:
                self._by_fold[_fold(key)] = key
        self.save()

    def save(self) -> None:
        """Write atomically, as photos are written. OSError/OutputError if it can't, or if
        the record there is a newer cloak's. A damaged record is first set aside (kept as
        `.cloak-manifest.json.unreadable-TIME`), not replaced."""
        from .atomic import write_atomic

        if self.found is not None:
            kind, detail = self.found
            if kind == "newer":
                raise OutputError(
                    f"{self.path} was written by a newer cloak (record version {detail}); "
                    "use that cloak for this folder, or choose another --out")
            stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
            aside = self.path.with_name(f"{MANIFEST_NAME}.unreadable-{stamp}")
            while aside.exists():
                n += 1
                aside = self.path.with_name(f"{MANIFEST_NAME}.unreadable-{stamp}-{n}")
            if self.path.exists():
                os.replace(self.path, aside)
                log.warning("%s could not be read (%s); kept as %s, and a new record "
                            "started (copies made before it count as not made by cloak)",
                            self.path, detail, aside.name)
            self.found = None
        data = {"version": self.VERSION, "photos": self.entries}
        if self.folders:
            data["folders"] = self.folders
        # Compact: rewritten twice per photo, and 5,000 photos' entries took 0.20 s to
        # encode indented, 0.06 s so (a 3.7 MB file instead of 4.9 MB).
        text = json.dumps(data, separators=(",", ":"))
        write_atomic(self.path, lambda fp: fp.write(text.encode("utf-8")), overwrite=True)


def earlier_copy(src: Path, out_dir: Path, settings: dict, also: dict | None = None,
                 skip: Iterable[Path] = ()) -> Path | None:
    """A copy of `src` that cloak wrote into `out_dir` (or a folder in it) before, with
    `settings` (ProtectConfig.fingerprint) or `also` (settings_to_accept), both files
    still as they were then, as the folder's manifest records; None if there is none. The
    desktop app asks this, so a photo it protected in an earlier session is not protected
    again. `skip`: copies not to offer (the app's own run wrote them from another photo
    with the same bytes). Of several, the one named after `src` is offered first."""
    try:
        size = os.stat(src).st_size
    except OSError:
        return None  # no record matches a photo that can't be read
    skipped = {os.path.abspath(path) for path in skip}
    manifest = Manifest(out_dir)
    found = []
    for key, entry in manifest.entries.items():
        # the size first: a record of thousands of copies is read for every photo of a
        # dropped folder, and only the records of a photo this size can be its copy's
        recorded = entry.get("src")
        if (not isinstance(recorded, dict) or recorded.get("size") != size
                or entry.get("state") != "done"
                or not _same_settings(entry.get("settings"), settings, also)):
            continue
        dst = out_dir / key
        if (os.path.abspath(dst) not in skipped and matches_record(src, entry.get("src"))
                and _inside(dst.parent, out_dir) and matches_record(dst, entry.get("dst"))):
            stem = PurePath(key).stem
            if stem == src.stem or re.fullmatch(re.escape(src.stem) + r" \(\d+\)", stem):
                return dst  # its own name, or the app's "name (1)"
            found.append(dst)
    return found[0] if found else None


def record_copy(src: Path, dst: Path, settings: dict, verdict: str | None = None,
                entry: dict | None = None) -> dict | None:
    """Record in the manifest of `dst`'s folder that cloak wrote `dst` from `src` with
    `settings` (the desktop app's copies, for earlier_copy), and the `verdict` (verify's
    word) its protection was given, where known. `entry`: what an earlier call returned,
    recorded again with the verdict (neither file is read again). Returns the entry
    recorded; None, and nothing recorded, when a `cloak protect` run holds the folder or
    the manifest can't be written: the copy is then simply protected again next time."""
    try:
        entry = dict(entry) if entry else {"state": "done", "src": _identity(src),
                                           "settings": settings, "dst": _identity(dst)}
        if verdict:
            entry["verdict"] = verdict
        with output_folder_lock(dst.parent):
            manifest = Manifest(dst.parent)
            manifest.set(dst, entry)
        return entry
    except (OSError, CloakError) as exc:
        log.info("did not record %s in its folder's manifest: %s", dst, exc)
        return None


# Fingerprint keys that name a setting without changing it: the mask's path as typed
# (`m.png`, `./m.png`, from another folder); its sha256 is what counts.
NOT_COMPARED = frozenset({"mask"})


def _same_settings(old: dict | None, new: dict, also: dict | None = None) -> bool:
    """Whether a copy made with `old` settings counts as made with `new` (or `also`)."""
    if old is None:
        return False
    if also is not None and _same_settings(old, also):
        return True
    old = _seed_as_recorded_now(old, new)
    return ({k: v for k, v in old.items() if k not in NOT_COMPARED}
            == {k: v for k, v in new.items() if k not in NOT_COMPARED})


def _seed_as_recorded_now(old: dict, new: dict) -> dict:
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


def _settings_change(old: dict, new: dict) -> str:
    """What differs between the settings a copy was made with and this run's, in a few
    words: "--strength medium -> high", "the mask changed", "metadata options changed"
    (named only when not the default, so a key may be on one side only), in terms of the
    options (a preset's inner tuning is not named key by key)."""
    old = _seed_as_recorded_now(old, new)
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
                           "face priority off (no face detector)")
        else:
            option = SETTING_OPTIONS.get(key, key)
            changed.append(f"{option} {_shown_setting(old.get(key))} -> "
                           f"{_shown_setting(new.get(key))}")
    if tuned and old.get("strength") == new.get("strength"):
        changed.append(f"the {new.get('strength')} preset as another cloak version tuned it")
    return ", ".join(changed[:3]) or "other settings"


def _decide(item: Item, entry: dict | None, settings: dict, force: bool,
            overwrite: bool, preview: bool = False, also: dict | None = None) -> None:
    """Skip, refuse or clear an item for work, from its output and manifest entry.
    `preview`: previews are asked for, so a done photo without one is done again. A copy
    made with `also` (settings_to_accept) counts as made with `settings`."""
    sheet = preview_path(item.dst)
    if (preview and (force or overwrite) and sheet.exists()
            and _same_folder(item.dst.parent, item.src.parent)
            and not matches_record(sheet, (entry or {}).get("preview"))):
        # --out is the photo's own folder, and a file there has the preview's name
        item.status = FAILED
        item.message = (f"{sheet} exists beside the original and is not a preview cloak "
                        "wrote there, so it is not replaced even with --overwrite; move it "
                        "away or choose another --out folder")
        return
    if not item.dst.exists():
        # may still replace a file beside it: a preview, asked for with --overwrite, or
        # the sheet cloak wrote for a copy since deleted
        item.replace = force or overwrite
        if preview and not item.replace:
            _note_own_sheet(item, sheet, (entry or {}).get("preview"))
        return
    pending = entry is not None and entry.get("state") == "pending"
    # The file at dst is the one cloak wrote there (the entry alone does not say so: a
    # user may have put their own file at a name a manifest lists).
    made_here = entry is not None and (
        _pending_is_ours(item.dst, entry) if pending
        else matches_record(item.dst, entry.get("dst"), refresh=True))
    ours = (made_here and _same_settings(entry.get("settings"), settings, also)
            and matches_record(item.src, entry.get("src"), refresh=True))
    if ours and pending:  # an interrupted run's file: redone
        item.replace, item.ours_stamp = force or overwrite, _stamp(item.dst)
        if preview:  # a sheet there is replaced only where it is one cloak recorded
            _note_own_sheet(item, sheet, entry.get("preview") or entry.get("earlier_preview"))
        return
    if ours and not force:
        if preview and (not sheet.exists() or _older_sheet(sheet, entry)):
            # ours, same settings: redone to write the missing (or a stale) preview
            item.replace, item.ours_stamp = overwrite, _stamp(item.dst)
            _note_own_sheet(item, sheet, entry.get("earlier_preview"))
            return
        if preview and not matches_record(sheet, entry.get("preview")):
            # a file at the sheet's name that is not the sheet cloak wrote (replaced or
            # changed since): not counted as this photo's preview
            if overwrite:  # made again, the file there replaced
                item.replace, item.ours_stamp = True, _stamp(item.dst)
                return
            item.status = FAILED
            item.message = (f"{sheet} exists and is not the preview sheet cloak wrote there "
                            "(it was changed or replaced since); move it away, or pass "
                            "--overwrite to replace it")
            return
        item.status, item.message = SKIPPED, ALREADY_DONE
        return
    if (force or overwrite) and not made_here and _same_folder(item.dst.parent,
                                                                item.src.parent):
        # a.gif's output a.png beside an a.png cloak never made: another original
        item.status = FAILED
        item.message = (f"output {item.dst} exists beside the original and is not a file "
                        "cloak wrote there (it may be another original, or an edit of "
                        "cloak's copy), so it is not replaced even with --overwrite; move "
                        "it away or choose another --out folder")
        return
    if force or overwrite:
        item.replace = True
        return
    # --overwrite would not replace it either (above): it is no advice there
    beside = not made_here and _same_folder(item.dst.parent, item.src.parent)
    remedy = ("move it away or choose another --out folder" if beside
              else "pass --overwrite to replace it")
    if entry is None:  # perhaps a photo of the user's own: another folder is the advice
        item.status = FAILED
        item.message = (f"output {item.dst} exists and was not made by cloak (it may be a "
                        "photo of yours); choose another --out folder"
                        + ("" if beside else ", or pass --overwrite to replace it"))
        return
    if pending and not made_here and not entry.get("dst"):
        why = ("may not be cloak's: a run that was stopped before it finished left no "
               "record of writing it")
    elif not made_here:
        why = "is not the file cloak wrote there (it was changed or replaced since)"
    elif not _same_settings(entry.get("settings"), settings, also):
        why = (f"was made with other settings "
               f"({_settings_change(entry.get('settings') or {}, settings)})")
    else:  # the manifest keeps the photo's size, times and hash, not its path
        why = "was made from another photo of that name, or an earlier version of this one"
    item.status = FAILED
    item.message = f"output {item.dst} exists and {why}; {remedy}"


# ---------------------------------------------------------------- running


def _decide_or_fail(item: Item, entry: dict | None, settings: dict, force: bool,
                    overwrite: bool, preview: bool, also: dict | None) -> None:
    """_decide, where an output that can't be looked at (a name too long for its
    preview) fails its own photo alone."""
    try:
        _decide(item, entry, settings, force, overwrite, preview, also)
    except OSError as exc:
        item.status = FAILED
        item.message = f"can't check its output {item.dst}: {exc.strerror or exc}"


def _after_another_run(manifest: Manifest, theirs: Manifest, todo: list[Item],
                       settings: dict, force: bool, overwrite: bool, preview: bool,
                       also: dict | None, emit: Callable[[Event], None]) -> list[Item]:
    """This run's `todo`, decided again once OUT is locked, where another run made OUT
    and wrote into it after this one planned (`theirs`: OUT's manifest now; merged into
    `manifest`): a copy the other run made as asked is done, not "already exists".
    CloakError where the other run mirrors another folder under a name this run uses."""
    mine_by_fold = {name.casefold(): folder for name, folder in manifest.folders.items()}
    for name, folder in theirs.folders.items():  # (one mirror on a disk that ignores case)
        mine = mine_by_fold.get(name.casefold())
        if mine is not None and not _same_folder_path(os.path.realpath(mine),
                                                      os.path.realpath(folder)):
            raise CloakError(f"another cloak protect run wrote to {manifest.out_dir} as this "
                             f"one started, mirroring {folder} there as {name}; run this "
                             "command again")
    manifest.merge(theirs)  # (a newer cloak's manifest: saving it is refused next)
    if not theirs.entries:
        return todo
    left = []
    for item in todo:
        item.replace, item.ours_stamp, item.sheet_stamp = False, None, None
        _decide_or_fail(item, manifest.get(item.dst), settings, force, overwrite, preview,
                        also)
        if item.status == "pending":
            left.append(item)
        else:
            emit(Event("done", item))
    return left


def _note_own_sheet(item: Item, sheet: Path, record: dict | None) -> None:
    """Let the item's redo replace the preview sheet at `sheet` if it is the one cloak
    recorded (`record`), as it is now: one that changes before it is written over is
    kept (and the photo fails, naming it)."""
    if matches_record(sheet, record):
        item.sheet_stamp = _stamp(sheet)


def _older_sheet(sheet: Path, entry: dict) -> bool:
    """Whether the preview `sheet` is cloak's sheet of an earlier copy: the entry records
    none of its own (the copy was redone without --preview since) but the one it left,
    and that is the file there (not the user's own file of that name)."""
    return not entry.get("preview") and matches_record(sheet, entry.get("earlier_preview"))


def _pending_is_ours(dst: Path, entry: dict) -> bool:
    """Whether the file at `dst`, named by an unfinished (`pending`) entry, is the one the
    stopped run wrote: the file it recorded (when it stopped, or an earlier run's copy a
    redo was about to replace), or, for a run killed before it could record one (or a
    redo killed once it had replaced that copy), a file that carries cloak's note. A file
    put there by someone else after the run stopped is neither. Copies that carry no note
    (BMP, or notices turned off) can't be told apart: there the entry is trusted, as
    before such checks."""
    if not dst.is_file():
        return False
    from .io import says_protected_file

    if entry.get("dst") and matches_record(dst, entry["dst"], refresh=True):
        return True
    if says_protected_file(dst):  # also a redo killed once it replaced that copy
        return True
    metadata = (entry.get("settings") or {}).get("metadata") or {}
    return dst.suffix.lower() in (".bmp", ".dib") or metadata.get("cloak_note") is False


def _remove_temp_files(folder: Path, older_than: float | None = None) -> None:
    """Remove the temp files (photos and manifest) that a killed run left in `folder`;
    with `older_than` (seconds), only those last written that long ago (where no lock
    says that no other run is writing there: the desktop app's Save-to folder)."""
    cutoff = None if older_than is None else time.time() - older_than
    for path in folder.glob(TEMP_GLOB):
        try:
            if cutoff is not None and path.lstat().st_mtime > cutoff:
                continue
            path.unlink()
            log.info("removed stale temp file %s", path)
        except OSError:
            pass


def remove_stale_temp_files(folder: Path) -> None:
    """Remove temp files a killed or force-quit run left in `folder` a day or more ago: no
    write of one photo takes that long, so none of them belongs to a run still going."""
    _remove_temp_files(folder, older_than=24 * 3600)


def preload_models(config: ProtectConfig, progress: DownloadProgress | None = None) -> bool:
    """Load (and verify, or download) every model, and the face detector when faces are
    on, now: a ModelError here costs no work. `progress(file, bytes done, bytes total)`
    follows each download. Returns False when faces are on but the face detector could not
    be found or fetched (face priority is off; a warning is logged), else True."""
    from .device import pick_device
    from .models import load_autoencoders
    from .models.weights import resolve_face_detector

    load_autoencoders(config.models, config.model_dir, pick_device(config.device),
                      config.allow_download, progress)
    if config.faces:
        return resolve_face_detector(config.model_dir, config.allow_download,
                                     progress) is not None
    return True


def faces_as_found(config: ProtectConfig, progress: DownloadProgress | None = None,
                   allow_download: bool = True) -> ProtectConfig:
    """`config` as it will run: with faces off where they are on but the face detector
    can't be found (or, where allowed, fetched; a failure is logged). Copies are recorded
    with the settings that made them, so a copy made without face priority is not taken,
    once the detector is there, for one made with it."""
    from .models.weights import resolve_face_detector

    if config.faces and resolve_face_detector(
            config.model_dir, config.allow_download and allow_download, progress) is None:
        return dataclasses.replace(config, faces=False)
    return config


def settings_to_accept(config: ProtectConfig) -> tuple[ProtectConfig, dict | None]:
    """The config a rerun decides with (faces off where the face detector is not on disk:
    nothing is downloaded, or warned about, just to decide), and the settings asked for
    when that turned faces off. A copy recorded with those (made with face priority, or by
    a version that recorded what was asked) is as good as what this run would make, so it
    counts as done."""
    local = faces_as_found(config, allow_download=False)
    return local, (config.fingerprint() if local is not config else None)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(items: list[Item], out_dir: str | os.PathLike, config: ProtectConfig, *,
        jobs: int = 1, force: bool = False, overwrite: bool = False,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> BatchResult:
    """Protect the pending items (see module docstring).

    `jobs` > 1 runs photos in that many processes with `usable_cores() // jobs` torch
    threads each. `should_stop` (or Ctrl-C) stops the run cleanly: the photo in progress is
    dropped without leaving a file, and the rest are marked `cancelled`.
    Raises CloakError only before any photo is processed (bad output folder, missing
    weights)."""
    out_dir = Path(out_dir)
    emit = on_event or (lambda event: None)
    stop = should_stop or (lambda: False)
    with contextlib.ExitStack() as held:
        locked, unwritable = out_dir.is_dir(), None
        if locked:  # before the manifest is read: no other run may change it
            try:
                held.enter_context(output_folder_lock(out_dir))
            except OutputError as exc:  # a read-only OUT (a backup drive): nothing can
                # write there, so a rerun with nothing to do says so; with work, the
                # lock taken before the first write refuses it
                if getattr(exc.__cause__, "errno", None) not in (errno.EACCES, errno.EPERM,
                                                                 errno.EROFS):
                    raise
                locked, unwritable = False, exc
        return _run_locked(items, out_dir, config, held, jobs, force, overwrite, emit, stop,
                           locked, unwritable)


def _run_locked(items: list[Item], out_dir: Path, config: ProtectConfig,
                held: contextlib.ExitStack, jobs: int, force: bool, overwrite: bool,
                emit: Callable[[Event], None], stop: Callable[[], bool],
                locked: bool = True, unwritable: OutputError | None = None) -> BatchResult:
    """run() once OUT is locked, or does not exist yet (`locked` False: `held` takes its
    lock before the first write, and what a run that got there first wrote is kept).
    `unwritable`: OUT can't be written (read-only): refused where there is work, before
    any model is loaded or fetched."""
    manifest = Manifest(out_dir)
    if manifest.found is not None and manifest.found[0] == "newer":
        manifest.save()  # refused, naming the version, before any photo's own verdict
        # (each existing copy would read "not made by cloak ... pass --overwrite")
    for item in items:  # saved with the manifest: later runs keep these mirrors
        if item.folder is not None:
            manifest.folders.setdefault(*item.folder)
    asked = config
    if any(item.status == "pending" for item in items):
        config, also_done = settings_to_accept(config)
    else:
        also_done = None
    settings = config.fingerprint()
    todo: list[Item] = []
    interrupted = False
    identities = json.dumps(manifest.entries, sort_keys=True)
    if config.mask_path:  # a bad mask fails now, before any photo, and before a missing
        # one reads as a change of settings against the outputs made with it
        from .budget import load_user_mask

        load_user_mask(config.mask_path, 8, 8, check_aspect=False)
    try:
        for item in items:
            if item.status == "pending":
                if stop():
                    raise KeyboardInterrupt
                _decide_or_fail(item, manifest.get(item.dst), settings, force, overwrite,
                                config.preview, also_done)
            if item.status == "pending":
                todo.append(item)
            else:
                emit(Event("done", item))
        if locked and json.dumps(manifest.entries, sort_keys=True) != identities:
            with contextlib.suppress(OSError, OutputError):  # times brought up to date
                manifest.save()  # (matches_record refresh); a failure only costs a rehash
        if todo and unwritable is not None:
            raise CloakError(str(unwritable)) from unwritable
        if todo:
            def fetched(*download) -> None:
                if stop():  # a Ctrl-C or SIGTERM: no download goes on (fetch removes
                    raise KeyboardInterrupt  # the file in flight), none starts
                emit(download_event(*download))

            # With --jobs the workers load their own models: this process only checks
            # and fetches, on the CPU (not a GPU's memory and context it would never use).
            # One photo to do runs here, on the device (pooled as decided below). The
            # autoencoders first: one missing ends the run before a word on faces.
            pooled = jobs > 1 and len(todo) > 1

            def stop_here() -> None:  # a stop while a server has not answered yet
                if stop():
                    raise KeyboardInterrupt

            with stops_downloads(stop_here):
                preload_models(dataclasses.replace(
                    config, faces=False, device="cpu" if pooled else config.device), fetched)
                if also_done is not None:  # the face detector is not on disk: fetched
                    # now, where allowed, as the models are, since there is work to do
                    config = faces_as_found(asked, fetched)
                settings = config.fingerprint()
            # Everything is fetched, or known missing and reported: the photos (and the
            # --jobs workers, new processes) only look, so nothing is retried per photo.
            config = dataclasses.replace(config, allow_download=False)
            try:  # fail now, not after the first photo, if OUT is not writable
                if not locked:
                    # OUT did not exist when this run began; another run may have made it
                    # and written its manifest meanwhile: lock, then keep its entries.
                    out_dir.mkdir(parents=True, exist_ok=True)
                    held.enter_context(output_folder_lock(out_dir))
                    locked = True
                    todo = _after_another_run(manifest, Manifest(out_dir), todo, settings,
                                              force, overwrite, config.preview, also_done,
                                              emit)
                manifest.save()
            except OSError as exc:
                raise CloakError(f"can't write to output folder {out_dir}: "
                                 f"{exc.strerror or exc}") from exc
            except OutputError as exc:  # the lock's own words say the folder already
                raise CloakError(str(exc) if str(exc).startswith("can't write to output")
                                 else f"can't write to output folder {out_dir}: {exc}"
                                 ) from exc
        emit(Event("todo", total=len(todo)))
        for folder in {out_dir} | {item.dst.parent for item in todo}:
            # under OUT's lock: no other run's temp files (and none outside OUT)
            if todo and folder.is_dir() and _inside(folder, out_dir):
                _remove_temp_files(folder)
        if not (jobs > 1 and len(todo) > 1):  # as `pooled` above
            _run_here(todo, manifest, config, emit, stop)
        else:
            _run_pool(todo, manifest, config, jobs, emit, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for item in items:  # Ctrl-C may come before an item was even looked at
            if item.status == "pending":
                item.status, item.message = CANCELLED, "not done (interrupted)"
        # Temp files an earlier run left (killed while it wrote a copy or the manifest)
        # go too, even when this run had nothing to do: in OUT, the folders of this
        # run's photos and of the photos a run left unfinished (pending), whether named
        # again or not. Each folder once: 4,900 photos in one folder are one scan.
        left_over = {out_dir} | {item.dst.parent for item in items if item.dst is not None}
        left_over |= {(out_dir / key).parent for key, entry in manifest.entries.items()
                      if isinstance(entry, dict) and entry.get("state") == "pending"}
        for folder in left_over if locked else ():  # a run refused by the lock (another
            # run holds OUT) must not touch that run's temp files
            if folder.is_dir() and _inside(folder, out_dir):
                _remove_temp_files(folder)
    # A stop asked during the last photo may cut only its figures (a JPEG is kept,
    # measured or not, once saved): the run was interrupted all the same.
    interrupted = interrupted or any(i.status == CANCELLED for i in items) or (
        bool(todo) and stop())
    return BatchResult(items, interrupted, settings=settings)


@contextlib.contextmanager
def output_folder_lock(out_dir: Path):
    """Hold `OUT/.cloak-lock` for a run: a second `cloak protect` writing to the same
    folder at the same time would delete the first one's temp files and lose its manifest
    entries, so it is refused (OutputError). The lock goes with the process, even when
    it is killed; the lock file is removed when the run ends (a killed run leaves it,
    empty, for the next one to reuse)."""
    path = out_dir / LOCK_NAME
    for _ in range(3):  # the file may be removed by the run that held it, between steps
        try:
            # O_NOFOLLOW: a lock "file" that is a link pointing elsewhere is not followed
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise OutputError(f"can't write to output folder {out_dir}: "
                              f"{exc.strerror or exc}") from exc
        if not _try_lock(fd):
            os.close(fd)
            raise OutputError(f"another cloak protect is writing to {out_dir}; wait for "
                              "it to finish, or choose another --out folder")
        try:  # locked the file that is still there, not one its holder just removed
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise OutputError(f"another cloak protect is writing to {out_dir}; wait for it "
                          "to finish, or choose another --out folder")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a run that opened it retries (above)
        os.close(fd)


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


def _inside(folder: Path, out_dir: Path) -> bool:
    """Whether `folder` (existing or not) lies inside OUT once links are followed."""
    out = os.path.realpath(out_dir)
    try:
        return os.path.commonpath([os.path.realpath(folder), out]) == out
    except ValueError:  # Windows: another drive
        return False


def _stamp(path: Path) -> tuple | None:
    """(inode, size, mtime) of the file at `path`, or None: tells whether it was written."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _begin(item: Item, manifest: Manifest, settings: dict) -> None:
    """Create the output folder and mark the item pending in the manifest."""
    item.dst_before = _stamp(item.dst)
    if (item.ours_stamp is not None and not item.replace  # (--overwrite: replaced anyway)
            and item.dst_before != item.ours_stamp):
        raise OutputError(f"output {item.dst} was changed while this run was busy with "
                          "other photos; pass --overwrite to replace it")
    if not _inside(item.dst.parent, manifest.out_dir):
        # a folder under OUT that is a link to elsewhere: copies are written under OUT only
        raise OutputError(f"folder {item.dst.parent} is a link to outside {manifest.out_dir}; "
                          "cloak writes only inside the output folder")
    try:
        item.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"can't create folder {item.dst.parent}: "
                          f"{exc.strerror or exc}") from exc
    entry = {"state": "pending", "src": _identity(item.src), "settings": settings}
    previous = manifest.get(item.dst)
    if previous and previous.get("dst") and matches_record(item.dst, previous["dst"]):
        # a redo (--force, a missing preview): until it writes, the file there is still
        # the copy cloak wrote before, and a killed redo must find it so
        entry["dst"] = previous["dst"]
    earlier_sheet = (previous or {}).get("preview") or (previous or {}).get("earlier_preview")
    if earlier_sheet:  # a redo without --preview leaves cloak's sheet of the earlier copy
        entry["earlier_preview"] = earlier_sheet
    manifest.set(item.dst, entry)


def _finish(item: Item, manifest: Manifest, previous: dict | None, outcome) -> None:
    """Record an outcome: a Report, or an exception."""
    if isinstance(outcome, Report):
        item.status, item.report = PROTECTED, outcome
        entry = manifest.get(item.dst)
        entry.update(state="done", dst=_identity(item.dst))
        if (verdict := outcome.to_dict()["verdict"]) is not None:  # as saved
            entry["verdict"] = verdict
        if outcome.preview and os.path.isfile(outcome.preview):  # its sheet is cloak's too
            entry["preview"] = _identity(Path(outcome.preview))
            entry.pop("earlier_preview", None)
        manifest.set(item.dst, entry)
        return
    _abandon(item, manifest, previous, outcome)
    if isinstance(outcome, Cancelled):
        item.status, item.message = CANCELLED, "not done (interrupted)"
    else:
        item.status, item.message = FAILED, _describe(outcome)


# A copy that could not be written for these reasons stops the run: every later photo
# would run its whole attack only to fail the same way at its save.
FOLDER_STOPS = {errno.ENOSPC: "is full", getattr(errno, "EDQUOT", errno.ENOSPC): "is full",
                errno.EROFS: "is read-only"}


def _record(item: Item, manifest: Manifest, previous: dict | None, outcome) -> str | None:
    """_finish; then why the run must start no more photos, or None. The manifest can't
    be written (a full disk, OUT made read-only): the item then fails saying so. Or the
    copy itself could not be written for lack of space (or a read-only disk). A photo
    written before that keeps its file and its `pending` entry, so the next run redoes
    it."""
    try:
        _finish(item, manifest, previous, outcome)
    except (OSError, CloakError) as exc:
        why = getattr(exc, "strerror", None) or exc
        done = "protected, but " if isinstance(outcome, Report) else ""
        item.status, item.message = FAILED, (
            f"{done}can't update {manifest.path} ({why}); the run stopped here")
        return f"{manifest.path} can't be updated"
    if isinstance(outcome, OutputError) and outcome.errno in FOLDER_STOPS:  # a write
        return (f"the disk holding {item.dst.parent} {FOLDER_STOPS[outcome.errno]} (free "
                "some space, or choose another --out, and run again to do the rest)")
    return None


def _not_started(items: Iterable[Item], why: str, emit: Callable[[Event], None]) -> None:
    for item in items:
        item.status = FAILED
        item.message = f"not started: {why}"
        emit(Event("done", item))


def _abandon(item: Item, manifest: Manifest, previous: dict | None,
             outcome: BaseException | None = None) -> None:
    """Undo `_begin` for an item whose work failed or was interrupted. If cloak had
    already written the photo (a failure or a second Ctrl-C while its saved copy was
    measured or previewed: the outcome carries `written`, see api.protect_file), its
    `pending` entry stays, with the file's identity, so the next run knows the file is
    cloak's and redoes it rather than refusing it as "not made by cloak". Any other file
    at dst (one that appeared during the work) is not cloak's: the entry goes back to
    what it was."""
    written = getattr(outcome, "written", None)
    if isinstance(outcome, (WorkerDied, WorkerStopped)) and \
            _stamp(item.dst) not in (None, item.dst_before):
        # it may have died after writing its copy (the pool ends every worker when one
        # dies; a stop sent to the whole process group ends them all): the entry stays
        # pending, and the next run tells by cloak's note whether the file there is
        # cloak's, as after a killed run
        entry = manifest.get(item.dst)
        if entry is not None:
            entry.pop("dst", None)
            manifest.set(item.dst, entry)
        return
    if not (written and os.path.abspath(written) == os.path.abspath(item.dst)) or \
            _stamp(item.dst) is None:
        manifest.set(item.dst, previous)
        return
    entry = manifest.get(item.dst)
    if entry is not None:
        try:
            entry["dst"] = _identity(item.dst)
        except OSError:
            return
        manifest.set(item.dst, entry)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CloakError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"can't read or write{where}: {exc.strerror or exc}"
    if is_out_of_memory(exc):
        # every preset but high attacks at 512 px: a lower one needs no less memory
        if is_gpu_out_of_memory(exc):
            return ("not enough GPU memory to protect this photo; close other programs "
                    "using the GPU, or use --device cpu")
        return ("not enough memory to protect this photo; close other programs, or protect "
                "a smaller copy (--strength high needs the most)")
    return f"unexpected error ({type(exc).__name__}: {exc}); please report it"


def _protect_one(item: Item, config: ProtectConfig, progress, should_stop) -> Report:
    from .api import protect_file

    return protect_file(item.src, item.dst, config, overwrite=_may_replace(item),
                        progress=progress, should_stop=should_stop)


def _may_replace(item: Item):
    """What protect_file may replace for `item`: anything at its names with --overwrite
    or --force; else only the files this run judged cloak's own (its earlier copy, its
    sheet), and only while each is still that file: a file a user puts at either name
    while the photo is protected is kept (the photo then fails, naming it)."""
    if item.replace:
        return True
    own = {item.dst: item.ours_stamp, preview_path(item.dst): item.sheet_stamp}

    def still_ours(path: Path) -> bool:
        stamp = own.get(Path(path))
        return stamp is not None and _stamp(Path(path)) == stamp

    return still_ours


@contextlib.contextmanager
def _warnings_naming(photo: Path | None):
    """Python warnings raised while `photo` is protected here (Pillow's "Corrupt EXIF
    data"), logged as one line naming the photo (None: not named, as a --jobs worker's
    handler names it), not as Python's two lines naming Pillow's source file. None are
    logged for a photo that turns out unreadable: its failure says what is wrong (a text
    file named .tif gave "Corrupt EXIF data" above "not an image cloak can read"). A
    filter that turns a warning into an error (decoding_limit's) still does."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        except UnsupportedImageError:
            caught.clear()  # its failure line says it all
            raise
        finally:
            for warning in caught:
                text = str(warning.message).strip()
                text = text.splitlines()[0] if text else warning.category.__name__
                if photo is None:
                    log.warning("%s", text)
                else:
                    log.warning("%s: %s", photo, text)


def _run_here(todo: list[Item], manifest: Manifest, config: ProtectConfig,
              emit: Callable[[Event], None], stop: Callable[[], bool]) -> None:
    settings = config.fingerprint()
    for position, item in enumerate(todo):
        if stop():
            return
        emit(Event("start", item))
        previous = manifest.get(item.dst)
        try:
            _begin(item, manifest, settings)
            with _warnings_naming(item.src):
                outcome = _protect_one(
                    item, config, lambda f, _m, item=item: emit(Event("progress", item, f)),
                    stop)
        except KeyboardInterrupt as exc:
            _abandon(item, manifest, previous, exc)
            raise
        except Exception as exc:  # one bad photo must not end the batch
            log.debug("%s failed", item.src, exc_info=True)
            outcome = exc
        stop_here = _record(item, manifest, previous, outcome)
        emit(Event("done", item))
        if stop_here:
            _not_started(todo[position + 1:], stop_here, emit)
            return


# Worker-process state, set by _init_worker.
_worker_stop = None
_worker_queue = None


def _exit_with_parent() -> None:
    """In a worker: end this process as soon as the parent is gone (killed with -9, or
    by `timeout`), instead of finishing its photo into an output folder no run holds any
    more and then waiting forever for work."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # its temp file, if any, is swept by the next run under the lock

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


_worker_photo = ""  # in a worker: the photo it protects now, named in its log lines


class _NamePhoto(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.photo = _worker_photo
        return True


class _ToParent(logging.Handler):
    """In a worker: a log record goes to the parent through the progress queue, as
    (None, level, "PHOTO: message"); _drain logs it there."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # one line, as the parent prints it (a captured warning adds its source line)
            text = (record.getMessage().strip().splitlines() or [""])[0]
            _worker_queue.put((None, record.levelno, f"{record.photo}: {text}"))
        except Exception:  # noqa: BLE001 - logging must never raise (handleError reports it)
            self.handleError(record)


def _init_worker(threads: int, stop_event, progress_queue) -> None:
    global _worker_stop, _worker_queue
    # The parent decides when to stop. (SIGTERM keeps its default: the pool ends a
    # broken pool's other workers with it, and a service manager's stop of the whole
    # group ends them while the parent stops the run.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    _worker_stop, _worker_queue = stop_event, progress_queue
    # Warnings (EXIF, faces...) go to the parent, which prints them as its own (above its
    # progress bar, names escaped); each names its photo, as several workers interleave.
    handler = _ToParent()
    handler.addFilter(_NamePhoto())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Pillow's "Corrupt EXIF data" too, with its photo
    import torch

    from .allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(threads)


def _work(index: int, item: Item, config: ProtectConfig):
    """Runs in a worker: returns a Report or the exception (never raises)."""
    global _worker_photo
    _worker_photo = str(item.src)
    last = [0.0]

    def progress(fraction: float, _message: str) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1:
            last[0] = fraction
            _worker_queue.put((index, fraction))

    try:
        with _warnings_naming(None):  # _NamePhoto names it
            return _protect_one(item, config, progress, _worker_stop.is_set)
    except Exception as exc:
        log.debug("%s failed", item.src, exc_info=True)
        # Only our own exceptions are sure to pickle back to the parent.
        if isinstance(exc, (CloakError, OSError)):
            return exc
        plain = CloakError(_describe(exc))
        plain.__dict__.update(exc.__dict__)  # `written` (api.protect_file), if it was
        return plain


def _run_pool(todo: list[Item], manifest: Manifest, config: ProtectConfig, jobs: int,
              emit: Callable[[Event], None], stop: Callable[[], bool]) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    stop_event, progress_queue = ctx.Event(), ctx.Queue()
    threads = max(1, usable_cores() // jobs)
    settings = config.fingerprint()

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                      initargs=(threads, stop_event, progress_queue))

    pool = new_pool()
    running: dict[cf.Future, tuple[Item, dict | None]] = {}
    waiting = list(enumerate(todo))

    def record(item: Item, previous: dict | None, outcome) -> None:
        stop_here = _record(item, manifest, previous, outcome)
        emit(Event("done", item))
        if stop_here:
            _not_started([item for _, item in waiting], stop_here, emit)
            waiting.clear()  # the photos running now still finish (and are recorded)

    try:
        while waiting or running:
            while waiting and len(running) < jobs and not stop():
                index, item = waiting.pop(0)
                emit(Event("start", item))
                previous = manifest.get(item.dst)
                try:
                    _begin(item, manifest, settings)
                except (CloakError, OSError) as exc:
                    record(item, previous, exc)
                    continue
                try:
                    with _children_ignore_ctrl_c():  # workers start in submit
                        future = pool.submit(_work, index, item, config)
                except cf.BrokenExecutor:
                    # A worker died (out of memory, a crash in a decoder): the photos it
                    # took down have failed; the rest go on in a fresh pool.
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = new_pool()
                    with _children_ignore_ctrl_c():
                        future = pool.submit(_work, index, item, config)
                running[future] = (item, previous)
            if stop():
                stop_event.set()
                waiting.clear()
            if not running:
                break
            finished, _ = cf.wait(running, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            _drain(progress_queue, todo, emit)
            for future in finished:
                item, previous = running.pop(future)
                try:
                    outcome = future.result()
                except (cf.BrokenExecutor, cf.CancelledError) as exc:
                    outcome = _lost_worker(exc, stop_event, stop)
                record(item, previous, outcome)
    except KeyboardInterrupt:
        stop_event.set()
        for future, (item, previous) in running.items():
            try:
                outcome = future.result()  # stops within one attack step
            except (cf.BrokenExecutor, cf.CancelledError) as exc:
                outcome = _lost_worker(exc, stop_event)
            _record(item, manifest, previous, outcome)
        raise
    finally:
        stop_event.set()
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(progress_queue, todo, emit, logs_only=True)  # the last photos' warnings


class WorkerDied(CloakError):
    """The worker process protecting a photo died (killed by the system, out of memory)."""


class WorkerStopped(Cancelled):
    """A worker process that died while the run was stopping (Ctrl-C, or a stop sent to
    the whole process group): its photo is cancelled, and may have been written."""


def _lost_worker(exc: BaseException, stop_event, stop: Callable[[], bool] = lambda: False
                 ) -> CloakError:
    """A worker that died while stopping (e.g. Ctrl-C reached it while it started) only
    cancelled its photo; otherwise the photo failed. `stop`: the run's own flag, which a
    Ctrl-C sets before the loop passes it on to `stop_event`."""
    if stop_event.is_set() or stop():
        return WorkerStopped("cancelled")
    return WorkerDied(f"worker process died ({exc})")


@contextlib.contextmanager
def _children_ignore_ctrl_c():
    """While worker processes are started: Ctrl-C ignored, which a spawned child inherits
    through exec, so it is never interrupted while it imports torch, before _init_worker
    ignores it itself (it printed "Interrupted" and died, breaking the pool). A Ctrl-C
    in these milliseconds is lost; the next one stops the run. Outside the main thread,
    where handlers can't change, as it is."""
    try:
        saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


def _drain(progress_queue, todo: list[Item], emit: Callable[[Event], None],
           logs_only: bool = False) -> None:
    """What the workers sent: progress reports (index, fraction) become `progress`
    events (not with `logs_only`: the run is over), and their log records (None, level,
    message) are logged here, where the CLI prints them."""
    while True:
        try:
            message = progress_queue.get_nowait()
        except (queue.Empty, OSError, ValueError):  # empty, or closed with the pool
            return
        if message[0] is None:
            log.log(message[1], "%s", message[2])
        elif not logs_only:
            emit(Event("progress", todo[message[0]], message[1]))
