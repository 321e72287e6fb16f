"""What a batch run is asked to do: walk the inputs, mirror their tree under OUT, and
turn every problem found on the way into an Item already failed or skipped.

    items = plan(["me.jpg", "holiday/"], "protected/")

`plan` walks folders (symlinks followed, each real folder once), keeps files whose suffix
is in `io.IMAGE_SUFFIXES`, and sends `holiday/a/b.jpg` to `protected/holiday/a/b.jpg` and
`me.jpg` to `protected/me.jpg`. Missing paths, a photo named twice, an output that would
replace its input, symlink loops, cloak's own copies (listed in an output folder's record,
or carrying cloak's note in their XMP) and camera RAW files become items that are
already `failed` or `skipped`, so one bad path never stops the rest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import Cancelled, OutputError
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    apply_changes,
    encodable,
    journal_changes,
    matches_record,
    new_run_of_warnings,
    read_record_and_sha256,
    recorded_copies,
)
from .preview import PREVIEW_SUFFIX, preview_path
from .report import Report, plural
from .same_path import (
    LINK_LOOP,
    NUL_IN_NAME,
    PATTERN_MATCHED_NOTHING,
    PathSet,
    fitting_name,
    fold,
    holds,
    holds_as_spelt,
    holds_nul,
    looks_like_pattern,
    name_fits,
    only_spelt_apart,
    output_reason,
    same_folder_path,
    stat_key,
)

# said as "FOLDER: its 2 protected copies are skipped ...": the folder's other photos are
# still protected, so the line does not begin "skipped" as a skipped photo's does
OUTPUT_FOLDER_SKIPPED = (f"its {{copies}} skipped (a cloak output folder: it "
                         f"holds {MANIFEST_NAME}); the other photos in it are protected")
INSIDE_OUTPUT_FOLDER_SKIPPED = (f"its {{copies}} skipped (a folder inside a "
                                f"cloak output folder, whose {MANIFEST_NAME} lists them); "
                                "the other photos in it are protected")
A_RECORDED_COPY = ("a copy cloak protected already (the output folder's record lists it); "
                   "protecting it again would add a second layer of noise: give the original")
NOT_A_PHOTO = "not a photo cloak reads"
PACKAGE_SKIPPED = ("a library or app package, not walked (export its photos first, or give "
                   "the package itself)")
FOLDER_TWICE = "folder already included (named twice)"
# --out inside an input folder, whose record can't be read: its files are left alone
# (cloak's copies without its note would be protected again)
OUTPUT_RECORD_UNREADABLE = (f"not searched: it is this run's output folder, and its "
                            f"{MANIFEST_NAME} is {{why}} (or a damaged one was set aside "
                            "there), so cloak's copies in it can't be told from your photos")
EARLIER_RECORD_UNREADABLE = (f"not searched: it is a cloak output folder whose "
                             f"{MANIFEST_NAME} is {{why}}, so cloak's copies in it can't be "
                             "told from your photos; protect the originals instead (or "
                             "move the record away, once the copies are gone)")
INSIDE_RECORD_UNREADABLE = (f"inside a cloak output folder whose {MANIFEST_NAME} is "
                            "{why}, so it can't be told from cloak's copies; protect the "
                            "original instead")
# A folder symlink the walk does not follow (a loop, or a folder walked already)
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


log = logging.getLogger(__name__)

@dataclass
class Item:
    """One input path and what happened to it. `dst` is None when there is no output."""

    src: Path
    dst: Path | None
    status: str = "pending"  # pending | protected | skipped | failed | cancelled
    message: str = ""  # why it was skipped, failed or not done
    report: Report | None = None
    replace: bool = False  # --overwrite or --force: files at dst and its sheet's name go
    # file_stamp(dst) when the run itself judged that file its own to redo (not --overwrite):
    # if the file changes before its turn comes, or before the copy is written over it,
    # it is no longer that file. Likewise sheet_stamp for cloak's own preview sheet.
    ours_stamp: tuple | None = None
    sheet_stamp: tuple | None = None
    dst_before: tuple | None = None  # file_stamp(dst) when its work began
    written_stamp: tuple | None = None  # file_stamp(dst) as this run wrote its copy
    begun_ns: int | None = None  # time.time_ns() as its work began (_begin)
    folder: tuple[str, str] | None = None  # (mirror name under OUT, input folder's real path)
    # the folders under OUT its work made for its copy (deepest first): a run that writes
    # no copy into them removes them again where they are still empty
    made_folders: tuple[Path, ...] = ()
    # refused as another input's output name (`2023/a.jpg`, `2024/a.jpg` into one OUT):
    # its copy may be the desktop app's `a (1).jpg` beside it, done (batch)
    shares_output: bool = False

    def failure(self) -> str:
        """The message of a failed photo, naming it: the library's own messages about a
        file start with its name, and the batch's ("output X exists ...") get it here."""
        if names_path(self.message, self.src):
            return self.message
        return f"{self.src}: {self.message}"

    def to_dict(self) -> dict:
        return {"src": str(self.src), "dst": None if self.dst is None else str(self.dst),
                "status": self.status,
                "error": self.failure() if self.status == FAILED else None,
                "reason": self.message if self.status in (SKIPPED, CANCELLED) else None,
                "report": self.report.to_dict() if self.report else None}


def names_path(message: str, path: Path) -> bool:
    """Whether `message` names `path` itself, not just a longer path ending in it
    (`../x/IMG_1.jpg` does not name `IMG_1.jpg`)."""
    return re.search(rf"(?<![\w/\\.-]){re.escape(str(path))}(?![\w/\\-])", message) is not None


def _is_photo_name(path: Path, suffixes: Iterable[str]) -> bool:
    return path.suffix.lower() in suffixes


def record_trouble(found: tuple[str, object] | None) -> str | None:
    """Why a record whose Manifest.found is `found` can't say which files in its folder
    are cloak's copies ("unreadable", "from a newer cloak"), or None."""
    if found is None:
        return None
    return "from a newer cloak" if found[0] == "newer" else "unreadable"


def copies_or_trouble(folder: Path) -> set[str] | str:
    """recorded_copies of `folder` (a record file there), or record_trouble's reason,
    reading the record once. A damaged record a run has set aside, with a good one
    written since, is no trouble here: that folder is searched (its later record lists
    the copies made since)."""
    record = Manifest(folder)
    return record_trouble(record.found) or recorded_copies(folder, record)


def _skip_own_outputs(folder: Path, skip: PathSet, problems: list[Item]) -> bool:
    """`folder` holds a cloak manifest (an earlier run's --out): add the outputs it lists
    that are still the files cloak wrote to `skip` (real paths), so its protected copies
    are not protected again while the user's own photos beside them (and in its mirror
    folders) still are; one SKIPPED item says how many. False (and a SKIPPED item saying
    why) where its record can't tell its copies from the user's photos: the folder is not
    searched then, as a copy without cloak's note (a BMP, --no-ai-notice) would be
    protected again."""
    copies = copies_or_trouble(folder)
    if isinstance(copies, str):
        problems.append(Item(folder, None, SKIPPED,
                             EARLIER_RECORD_UNREADABLE.format(why=copies)))
        return False
    skip.update(copies)
    if copies:
        problems.append(Item(folder, None, SKIPPED,
                             OUTPUT_FOLDER_SKIPPED.format(copies=_protected_copies(len(copies)))))
    return True


def _protected_copies(count: int) -> str:
    """"1 protected copy is", "2 protected copies are" (OUTPUT_FOLDER_SKIPPED's words)."""
    return f"{plural(count, 'protected copy', 'protected copies')} {'is' if count == 1 else 'are'}"


def recorded_above(real: str, cache: dict[str, PathSet | str | None],
                   out_real: str | None = None) -> PathSet | str:
    """recorded_copies of the nearest output folder above real path `real` (a cloak
    manifest in a folder that holds it, not `real` itself), or an empty set; where that
    folder's record can't tell its copies from the user's photos, why (record_trouble),
    unless it is this run's output folder (`out_real`), whose damaged record the run sets
    aside (an empty set then, as its copies are not known). `cache`: folder -> its copies
    or trouble (None: no manifest), shared by one plan()."""
    for parent in Path(real).parents:
        folder = str(parent)
        if folder not in cache:
            cache[folder] = (copies_or_trouble(parent)
                             if os.path.isfile(parent / MANIFEST_NAME) else None)
        if isinstance(cache[folder], str) and out_real is not None and \
                same_folder_path(folder, out_real):
            return PathSet()
        if cache[folder] is not None:
            return cache[folder]
    return PathSet()


def set_aside_record(folder: Path) -> bool:
    """Whether `folder` holds a damaged manifest an earlier run set aside
    (MANIFEST_NAME.unreadable-TIME): the copies it listed are not in the new record."""
    return set_aside_time(folder) is not None


def set_aside_time(folder: Path) -> int | None:
    """When (ctime, ns) the last damaged manifest in `folder` was set aside
    (MANIFEST_NAME.unreadable-TIME: renamed then), or None where none was. A file there
    last changed after it can't be one of the copies it listed."""
    times = []
    try:
        for name in os.listdir(folder):
            if name.startswith(f"{MANIFEST_NAME}.unreadable-"):
                with contextlib.suppress(OSError):
                    times.append(os.lstat(os.path.join(folder, name)).st_ctime_ns)
    except OSError:
        return None
    return max(times, default=None)


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped while looking for photos")


def _walk(folder: Path, rel: Path, skip: PathSet, suffixes: Sequence[str],
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
                key, real = stat_key(path), os.path.realpath(path)
            except OSError as exc:
                problems.append(Item(path, None, FAILED, f"can't read folder: {exc}"))
                continue
            if real in skip:
                continue
            if entry.is_symlink() and holds(real, os.path.realpath(folder)):
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
            if out_real is not None and same_folder_path(real, out_real):  # (spelt
                # otherwise on a macOS disk, or reached through a bind mount)
                record = Manifest(path)
                trouble = record_trouble(record.found) or (
                    "unreadable" if set_aside_record(path) else None)
                if trouble is not None:  # it can't tell cloak's copies from the user's photos
                    problems.append(Item(path, None, SKIPPED,
                                         OUTPUT_RECORD_UNREADABLE.format(why=trouble)))
                    continue
                skip.update(recorded_copies(path, record))
            elif os.path.isfile(path / MANIFEST_NAME) and not _skip_own_outputs(
                    path, skip, problems):  # an earlier run's output folder
                continue
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


def source_problem(path: Path) -> str | None:
    """Why `path` can't be read as a photo file, or None."""
    if holds_nul(path):
        return NUL_IN_NAME
    try:
        st = path.stat()
    except OSError as exc:
        if os.path.islink(path):  # never raises (Path.is_symlink can, with EACCES)
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                try:
                    return f"is a link to {os.readlink(path)}, which does not exist"
                except OSError:
                    pass
            if exc.errno == errno.ELOOP:
                return LINK_LOOP
            return f"is a link that can't be followed ({exc.strerror or exc})"
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            if looks_like_pattern(path):
                return PATTERN_MATCHED_NOTHING
            return "no such file or folder"
        return f"can't read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


class Mirrors:
    """Which input folder each folder name under OUT mirrors. Recorded in OUT's manifest,
    so a later run keeps each folder in its own mirror whatever else it is given:
    `2023/Camera 2024/Camera` -> `Camera`, `Camera (2)`, and a later run of 2024/Camera
    alone goes to `Camera (2)` again, not into 2023's copies."""

    def __init__(self, recorded: dict[str, str], out_dir: Path | None = None,
                 unrecorded: dict[str, list[tuple[str, dict]]] | None = None,
                 copies: dict[str, list[tuple[str, dict]]] | None = None):
        self.owner = {fold(name): real for name, real in recorded.items()}
        self.names = {real: name for name, real in recorded.items()}
        self.used: set[str] = set()  # taken in this run, folded (same_path.fold)
        self.out_dir = out_dir
        # a record from before mirrors were recorded: folder name -> its copies' entries
        self.unrecorded = {fold(name): copies for name, copies in (unrecorded or {}).items()}
        # the recorded mirrors' copies, the same way: a mirror whose folder is gone from
        # its recorded place (a drive mounted elsewhere, E: become F:) is found again
        self.copies = {fold(name): listed for name, listed in (copies or {}).items()}

    def name_for(self, real: str) -> str:
        """The mirror name for the input folder at real path `real`: the one recorded for
        it, else its own name, or `name (2)`, ... when that is taken by another folder
        (case-folded and NFC-normalised, so two folders never share a mirror on a disk that
        folds case or accents' encoding), or
        by something already in OUT that no run recorded (the user's own `DCIM`, or a
        subfolder of the very folder being protected: copies never mix with originals)."""
        recorded = next((name for owner, name in self.names.items()
                         if same_folder_path(owner, real)), None)
        if recorded is None:
            recorded = self._renamed_from(real)
        if recorded is not None and fold(recorded) not in self.used:
            candidate = recorded
        else:
            name = root_mirror_name(real)
            candidate, n = name, 1
            while True:
                key = fold(candidate)
                if key not in self.used and key not in self.owner and \
                        _made_from(self.unrecorded.get(key, []), real):
                    self.owner[key], self.names[real] = real, candidate
                elif key not in self.used and key in self.owner and \
                        not os.path.isdir(self.owner[key]) and \
                        _made_from(self.copies.get(key, []), real):
                    # its folder moved here: the mirror is this folder's from now on
                    self.names.pop(self.owner[key], None)
                    self.owner[key], self.names[real] = real, candidate
                if key not in self.used and \
                        same_folder_path(self.owner.get(key, real), real) and \
                        (key in self.owner or not self._in_use(candidate)):
                    break
                n += 1  # a 253-byte folder name's "(2)" would not fit the disk
                candidate = fitting_name(name, f" ({n})")
        self.used.add(fold(candidate))
        return candidate

    def _renamed_from(self, real: str) -> str | None:
        """The recorded mirror of a folder gone from its recorded place whose copies were
        made from the photos at the same places in `real`: the folder was renamed
        (`Trip` become `Trip 2026`), or moved and renamed. Its photos were protected
        again into a new mirror, hours for a large folder, and every copy kept twice.
        Every copy looked at must have its photo at the same place in `real` (a folder
        holding one photo of a gone or offline one, a selection copied from it, is not
        it), and only one gone mirror may fit (two folders of the same photos, both
        renamed, can't be told apart). The mirror is `real`'s from now on (said where its
        name is not `real`'s); None where there is no such mirror."""
        fits = [(key, owner) for key, owner in self.owner.items()
                if key not in self.used and owner in self.names
                and _made_from(self.copies.get(key, []), real, every=True)
                and not os.path.isdir(owner)]  # (looked at last: a share may be offline)
        if len(fits) != 1:
            return None
        [(key, owner)] = fits
        name = self.names.pop(owner)
        self.owner[key], self.names[real] = real, name
        if key != fold(root_mirror_name(real)):
            log.warning("%s: protected before as %s (renamed or moved since); its copies "
                        "are in %s, and its new photos go there too", real, owner,
                        self.out_dir / name if self.out_dir is not None else name)
        return name

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


def _made_from(copies: list[tuple[str, dict]], real: str, every: bool = False) -> bool:
    """Whether a mirror whose record lists `copies` ([(the copy's path below the mirror,
    its photo's recorded identity)]) is the mirror of the folder `real`: one of them (of
    the first few; `every`: each of them) was made from the photo at the same place in
    `real`, by its recorded size and times, else sha256. A mirror a cloak from before
    mirrors were recorded made, or whose folder has moved since, was taken for another
    folder's, and every photo protected again into `name (2)`."""
    if every:
        return bool(copies) and all(_made_from([copy], real) for copy in copies[:5])
    for below, source in copies[:5]:
        rel = PurePath(below)
        folder = Path(real, *rel.parts[:-1])
        try:
            with os.scandir(folder) as entries:
                sources = [Path(e.path) for e in entries
                           if Path(e.name).stem == rel.stem and e.is_file()]
        except OSError:
            continue
        if any(matches_record(path, source) for path in sources):
            return True
    return False


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


def _read_out_record(out_dir: Path) -> dict:
    """OUT's manifest as read, for its mirrors ({} if it has none or can't be read):
    read once a plan."""
    try:
        data, sha = read_record_and_sha256(out_dir / MANIFEST_NAME)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    photos = data.get("photos")
    if isinstance(photos, dict):  # with the changes its journal holds
        apply_changes(photos, journal_changes(out_dir, sha) or ())
    return data


def _recorded_mirrors(data: dict) -> dict[str, str]:
    """The mirror names OUT's manifest (`data`, as read) records. Only names of one
    folder directly inside OUT count: a manifest edited or brought from elsewhere
    ("../backup", "/home/u") can't send outputs outside OUT."""
    folders = data.get("folders", {})
    if not isinstance(folders, dict):
        return {}
    return {k: v for k, v in folders.items()  # a NUL in a value: every call on it raises
            if isinstance(k, str) and isinstance(v, str) and is_plain_name(k)
            and not holds_nul(v)}


def _mirror_copies(data: dict, recorded: bool = False) -> dict[str, list[tuple[str, dict]]]:
    """The mirrors OUT's manifest (`data`, as read) lists copies in but names no folder
    for (made by a cloak from before mirror folders were recorded, whether or not a later
    run recorded others since): each such folder directly inside OUT -> [(the copy's
    path below it, its photo's recorded identity)]. `recorded`: the mirrors it names a
    folder for instead, the same way."""
    if not isinstance(data.get("photos"), dict):
        return {}
    folders = data.get("folders")
    named = {fold(k) for k in folders if isinstance(k, str)} if isinstance(
        folders, dict) else set()
    found: dict[str, list[tuple[str, dict]]] = {}
    for key, entry in data["photos"].items():
        first, _, below = key.partition("/") if isinstance(key, str) else ("", "", "")
        if below and is_plain_name(first) and (fold(first) in named) == recorded and \
                encodable(below) and isinstance(entry, dict) and \
                isinstance(entry.get("src"), dict):
            found.setdefault(first, []).append((below, entry["src"]))
    return found


def is_plain_name(name: str) -> bool:
    """Whether `name` is one path component of its own on this system: not empty, ".",
    ".." or absolute, and without a separator ("/", and "\\" on Windows: elsewhere a
    folder may be named `Trip\\2024`, whose mirror was not found again, so each run
    protected it into a new `Trip\\2024 (2)`), and short enough for a disk (a record naming
    a 300-byte mirror failed every run into its OUT)."""
    return name not in ("", ".", "..") and Path(name).name == name and \
        not any(sep in name for sep in ("/", os.sep, os.altsep) if sep) and \
        encodable(name) and name_fits(name)  # (no NUL, no lone surrogate: "\\ud800")


def output_folder(out_dir: str | os.PathLike) -> Path:
    """`out_dir` as a Path; OutputError where no folder can have its name (a NUL in it,
    which only code can pass, and on which every call raises a bare ValueError)."""
    if holds_nul(out_dir):
        raise OutputError(f"can't use the output folder {os.fspath(out_dir)!r}: "
                          f"{NUL_IN_NAME}")
    return Path(out_dir)


def plan(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
         should_stop: Callable[[], bool] | None = None) -> list[Item]:
    """Turn files and folders into items (see module docstring), in input order.

    Items are `pending`, or already `failed`/`skipped` with a one-line message.
    `should_stop` (asked for each folder entered and each file's header read) raises
    Cancelled: a Ctrl-C need not wait for the walk of a whole share."""
    from . import io

    if isinstance(inputs, (str, os.PathLike)):  # one path: not its letters ("." among
        inputs = [inputs]  # them walked the current folder, "/" the whole disk)
    out_dir = output_folder(out_dir)
    suffixes = tuple(s.lower() for s in io.IMAGE_SUFFIXES)
    items: list[Item] = []
    seen_dirs: set = set()
    new_run_of_warnings()  # a damaged record is said once a run (plan, then run, read it)
    record = _read_out_record(out_dir)
    mirrors = Mirrors(_recorded_mirrors(record), out_dir, _mirror_copies(record),
                      _mirror_copies(record, recorded=True))
    recorded: dict[str, PathSet | str | None] = {}  # output folders above the inputs
    for raw in inputs:
        src = Path(raw)
        if holds_nul(src):
            items.append(Item(src, None, FAILED, f"can't read: {NUL_IN_NAME}"))
            continue
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
              recorded: dict[str, PathSet | str | None] | None = None) -> None:
    """plan() for one input path: append its items. `recorded`: recorded_above's cache
    (the copies an output folder above an input lists are skipped, as in that folder)."""
    from . import io

    def says_protected(path: Path) -> bool:
        _check_stop(should_stop)
        return io.says_protected_file(path)

    if src.is_dir():
        if stat_key(src) in seen_dirs:
            items.append(Item(src, None, SKIPPED, FOLDER_TWICE))
            return
        seen_dirs.add(stat_key(src))
        real = os.path.realpath(src)
        name = mirrors.name_for(real)
        # Never walk this folder's mirror inside OUT (its copies). OUT itself, met
        # inside this folder, is walked for the user's own photos, as when it is named.
        skip = PathSet([os.path.realpath(out_dir / name)])
        found: list[tuple[Path, Path]] = []
        problems: list[Item] = []
        if os.path.isfile(src / MANIFEST_NAME) and not _skip_own_outputs(
                src, skip, problems):  # an earlier run's output folder, or OUT itself
            # named as an input (`cloak protect * --out protected`, run again): the
            # copies it lists are never protected again, with or without cloak's note;
            # where its record can't be read, the folder is not searched
            items.extend(problems)
            return
        above = recorded_above(real, recorded if recorded is not None else {},
                               os.path.realpath(out_dir))
        if isinstance(above, str):  # inside an output folder whose record can't be read
            items.append(Item(src, None, SKIPPED, INSIDE_RECORD_UNREADABLE.format(why=above)))
            return
        # a subfolder of an output folder (its name perhaps spelt as the record does not)
        inside = {c for c in above if holds_as_spelt(real, c)}
        if inside:  # (`protected/trip`)
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
    elif (why := source_problem(src)) is not None:
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
    elif isinstance(above := recorded_above(
            os.path.realpath(src), recorded if recorded is not None else {},
            os.path.realpath(out_dir)), str):
        items.append(Item(src, None, SKIPPED, INSIDE_RECORD_UNREADABLE.format(why=above)))
    elif os.path.realpath(src) in above:
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
                source_problem(item.src) is None:
            inputs_by_path[os.path.realpath(item.src)] = item.src
            with contextlib.suppress(OSError):
                inputs_by_key[stat_key(item.src)] = item.src
    sources: dict[tuple[int, int], Item] = {}
    outputs: dict[str, Item] = {}  # by folded real path
    # A photo that keeps its name claims it before one whose format change lands on it
    # (a.png's copy is a.png; a.gif's would be too): else a.png failed in every --out.
    # Where OUT's record already gives that output to one of them, that one keeps it (an
    # OUT made by a cloak that let a.gif claim it: its copy is not redone for a.png).
    claims: dict[str, int] = {}
    for item in items:
        if item.status == "pending" and item.dst is not None:
            key = fold(os.path.realpath(item.dst))
            claims[key] = claims.get(key, 0) + 1
    record = Manifest(out_dir) if out_dir is not None and any(
        n > 1 for n in claims.values()) else None

    def order(item: Item) -> tuple[bool, bool]:
        if item.dst is None:
            return True, True
        entry = (record.get(item.dst) if record is not None
                 and claims.get(fold(os.path.realpath(item.dst)), 0) > 1 else None)
        recorded = bool(entry) and matches_record(item.src, entry.get("src"))
        return not recorded, item.dst.name.lower() != item.src.name.lower()

    for item in sorted(items, key=order):
        if item.status != "pending":
            continue
        try:
            _check_clash(item, inputs_by_path, inputs_by_key, sources, outputs)
        except OSError as exc:  # the output folder may not be searched (EACCES)
            item.status = FAILED
            item.message = f"can't check output {item.dst}: {output_reason(exc)}"


def mark_sheet_clashes(items: list[Item]) -> None:
    """With --preview: fail a pending item whose copy would take another's preview sheet
    name (a.jpg.preview.gif's copy, a.jpg.preview.png, is a.jpg's sheet): one would
    replace the other within the run. The photo the sheet is for keeps its sheet."""
    sheets = {fold(os.path.realpath(preview_path(item.dst))): item for item in items
              if item.status == "pending" and item.dst is not None}
    for item in items:
        if item.status != "pending" or item.dst is None:
            continue
        owner = sheets.get(fold(os.path.realpath(item.dst)))
        if owner is not None and owner is not item:
            item.status = FAILED
            item.message = (f"output {item.dst} is also the name of the preview sheet of "
                            f"{owner.src} (--preview); protect this one into another --out "
                            "folder, or rename it")


def _unreadable_anyway(src: Path) -> str | None:
    """For a photo whose output clashes: the reason it would be refused in any --out
    folder (an animated GIF beside its still's PNG), which the user needs to hear first:
    protecting it alone, as the clash advises, would fail for that."""
    from . import io

    return io.frames_problem(src)


def _check_clash(item: Item, inputs_by_path: dict, inputs_by_key: dict, sources: dict,
                 outputs: dict) -> None:
    """_mark_clashes for one pending item."""
    why = source_problem(item.src)
    if why is not None:
        item.status, item.message = FAILED, why
        return
    key = stat_key(item.src)
    if key in sources:
        first = sources[key]
        # its own output is never written (None, as for a folder named twice); the
        # message says which copy the photo is taken for (whether that is written, the
        # first path's own line says), and by which other path where it was named by
        # another (a file named alone and in its folder: the same path)
        item.status, item.dst = SKIPPED, None
        same = ("named twice" if str(first.src) == str(item.src)
                else f"the same photo as {first.src}")
        item.message = f"{same}; taken once, for {first.dst}"
        return
    dst_real = os.path.realpath(item.dst)
    if dst_real == os.path.realpath(item.src) or (
            item.dst.exists() and stat_key(item.dst) == key):
        item.status = FAILED
        item.message = (f"output {item.dst} would replace the original; "
                        "choose another --out folder")
        return
    other = inputs_by_path.get(dst_real) or (
        inputs_by_key.get(stat_key(item.dst)) if item.dst.exists() else None)
    if other is not None:
        item.status = FAILED
        item.message = (_unreadable_anyway(item.src) or
                        f"output {item.dst} would replace the original {other}; "
                        "choose another --out folder")
        return
    if fold(dst_real) in outputs:  # also IMG_1.JPG against img_1.jpg
        first = outputs[fold(dst_real)]
        item.status = FAILED
        item.shares_output = True
        item.message = (_unreadable_anyway(item.src) or
                        f"output {item.dst} is also the output of {first.src}"
                        f"{only_spelt_apart(os.path.realpath(first.dst), dst_real)}; "
                        "protect this one alone into another --out folder")
        return
    # only a path that will be protected stands for its photo: one refused above leaves
    # another path to the same file its own chance (not "protected once", never done)
    sources[key] = item
    outputs[fold(dst_real)] = item
