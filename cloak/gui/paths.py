"""Which dropped files are photos, and where their protected copies go (no Qt here)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# the suffixes (compared case-insensitively); DecoderBusy: a header check that would wait
from cloak.io import IMAGE_SUFFIXES, PACKAGE_SUFFIXES, SUPPORTED, DecoderBusy
from cloak.manifest import JOURNAL_NAME, MANIFEST_NAME
from cloak.planning import (
    recorded_above,  # the copies a record above a file lists
    source_problem,  # why a named file can't be read, as the CLI says
)
from cloak.preview import PREVIEW_SUFFIX  # `cloak protect --preview`'s sheets
from cloak.report import plural
from cloak.same_path import PathSet, fitting_name, holds_as_spelt, same_folder_path

__all__ = ["IMAGE_SUFFIXES", "SUPPORTED", "common_folder", "default_output_dir",
           "expand_paths", "find_photos", "is_image_file", "is_raw_file", "not_added_note",
           "skipped_as_output", "unique_destination"]

OUTPUT_FOLDER_NAME = "protected"
# a folder under a cloak record that can't say which files are its copies (as the CLI's
# planning.EARLIER_RECORD_UNREADABLE): none is added, the user's photos beside them neither
RECORD_TROUBLE = ("holds a cloak record (.cloak-manifest.json) that is {why}, so cloak's "
                  "copies there can't be told from your photos: add the originals instead "
                  "(or move the record away once the copies are gone)")


def is_raw_file(path: Path) -> bool:
    """True for a camera RAW file by its suffix (cloak.planning.RAW_SUFFIXES): not a photo
    cloak reads, but one the user meant to add."""
    from cloak.planning import RAW_SUFFIXES

    return path.suffix.lower() in RAW_SUFFIXES


def not_added_note(paths: Iterable[str | Path], raw_in_folders: Iterable[Path] = (),
                   photos: Iterable[Path] = (), expanded: bool = False,
                   unreadable_folders: Iterable[tuple[Path, str]] = ()) -> str:
    """What among `paths` (given files; folders are walked, not counted) is not a photo
    cloak reads, in a few words: camera RAW files named as such, since they need
    developing first, `raw_in_folders` (found inside the walked folders) with them; ''
    when every file is one. A RAW file whose twin (the camera's JPEG or HEIC of the same
    name beside it) is among the given files or `photos` (those found) is not named: its
    photo is in the list. `expanded`: `photos` is all that expand_paths found among
    `paths`, so a given photo file not in it is a protected copy, named as such.
    `unreadable_folders`: the (folder, why) the walk could not read, named first (a folder
    the user may not open otherwise read as one with no photos in it)."""
    paths = [Path(p) for p in paths]
    photos = list(photos)
    unreadable_folders = list(unreadable_folders)
    found = {p.absolute() for p in photos}
    # a folder named for its record (RECORD_TROUBLE): the files under it are not copies
    troubled = [Path(f) for f, _ in unreadable_folders if os.path.isfile(Path(f) / MANIFEST_NAME)]
    copies = [p for p in paths if expanded and is_image_file(p) and p.absolute() not in found
              and not any(f in Path(os.path.realpath(p)).parents for f in troubled)]
    files = [p for p in paths if not os.path.isdir(p) and not is_image_file(p)]
    twins = {(os.path.abspath(p.parent), p.stem.casefold())
             for p in [*paths, *photos] if is_image_file(p)}
    raw = [p for p in files if is_raw_file(p)]
    # a photo's name, passed over as a hidden file or as a --preview sheet: said as such
    hidden = [p for p in files if p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
              and os.path.isfile(p)]
    sheets = [p for p in files if p.name.lower().endswith(PREVIEW_SUFFIX) and p not in hidden]
    other = [p for p in files if p not in raw and p not in hidden and p not in sheets]
    # named as a photo but no file that can be read (a link to nowhere, a pipe): why, in
    # the words `cloak protect` uses, not "not a photo cloak reads"
    broken = [(p, why) for p in other if p.suffix.lower() in IMAGE_SUFFIXES
              and (why := source_problem(p)) is not None]
    other = [p for p in other if p not in {b for b, _ in broken}]
    raw = [p for p in dict.fromkeys([*raw, *raw_in_folders])  # a folder dropped twice
           if (os.path.abspath(p.parent), p.stem.casefold()) not in twins]
    parts = [f"{folder.name or folder} {why}"  # each with its own reason
             for folder, why in dict(unreadable_folders).items() if folder in troubled]
    denied = list(dict.fromkeys(folder for folder, _ in unreadable_folders
                                if folder not in troubled))
    if denied:
        why = dict(unreadable_folders)[denied[0]]
        parts.append(f"can't read folder {denied[0].name or denied[0]}: {why}" if len(denied) == 1
                     else f"can't read {len(denied)} folders ({first_names(denied)}): {why}")
    if raw:
        kinds = ", ".join(sorted({p.suffix.upper().lstrip(".") for p in raw}))
        parts.append(f"{plural(len(raw), 'camera RAW file')} ({kinds}): develop "
                     f"{'it' if len(raw) == 1 else 'them'} first, export as JPEG, HEIC or "
                     "TIFF and add that")
    if other:
        names = first_names(other)
        parts.append(f"{plural(len(other), 'file')} that "
                     f"{'is not a photo' if len(other) == 1 else 'are not photos'} cloak "
                     f"reads ({names})")
    parts += [f"{p.name}: {why}" for p, why in broken[:2]]
    if len(broken) > 2:
        parts.append(f"{plural(len(broken) - 2, 'other file')} that can't be read")
    if hidden:
        names = first_names(hidden)
        parts.append(f"{plural(len(hidden), 'hidden file')} ({names}): a name starting "
                     "with a dot is passed over; rename it without the dot to add it")
    if sheets:
        names = first_names(sheets)
        parts.append(f"{plural(len(sheets), 'preview sheet')} ({names}): made by cloak "
                     "protect --preview; add the original photo instead")
    if copies:
        names = first_names(copies)
        parts.append(f"{plural(len(copies), 'protected copy', 'protected copies')} "
                     f"({names}): cloak's own output; add the original photo instead")
    return "not added: " + "; ".join(parts) if parts else ""


def first_names(paths: list[Path]) -> str:
    """The first two of `paths` by name, and "..." where there are more."""
    return ", ".join(p.name for p in paths[:2]) + (", ..." if len(paths) > 2 else "")


def is_image_file(path: Path) -> bool:
    """True for a visible file whose suffix is a photo format cloak reads (False for one
    that can't be looked at: Path.is_file raises on a folder that can't be entered), and
    not one of `cloak protect --preview`'s sheets (`a.jpg.preview.png`), as the CLI."""
    return os.path.isfile(path) and not path.name.startswith(".") and \
        path.suffix.lower() in IMAGE_SUFFIXES and \
        not path.name.lower().endswith(PREVIEW_SUFFIX)


def find_photos(paths: Iterable[str | Path], output_dir: Path | None = None,
                should_stop: Callable[[], bool] | None = None,
                folders_stop: Callable[[], bool] | None = None
                ) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """expand_paths' photos, the camera RAW files it passed over inside the folders it
    walked (not_added_note names them: a folder of RAW files otherwise adds nothing and
    says only that), and the folders it could not read, with why (named too: a folder
    the user may not open read as one with no photos in it)."""
    raw: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    return expand_paths(paths, output_dir, should_stop, raw_found=raw,
                        folders_stop=folders_stop, unreadable=unreadable), raw, unreadable


def expand_paths(paths: Iterable[str | Path], output_dir: Path | None = None,
                 should_stop: Callable[[], bool] | None = None, wait: bool = True,
                 raw_found: list[Path] | None = None,
                 folders_stop: Callable[[], bool] | None = None,
                 unreadable: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Photos among `paths`, folders expanded recursively, in order, without duplicates.

    Hidden files and earlier outputs are skipped: inside folders, anything in a folder
    named `protected` (the default Save-to folder) or in `output_dir` (the chosen one,
    where it lies inside the dropped folder); a dropped `protected` folder, unless it is
    the Save-to folder (skipped_as_output says why, for the status bar); the copies
    the manifest of an output folder at or above a file records (in a dropped
    `output_dir`, or in an output folder renamed since), and every file inside one whose
    manifest can't be read; any file that says it is a protected copy (is_protected_copy,
    which reads its header: call this off the main thread for many files). So protected
    copies are not protected again, while a Save-to folder that holds originals still
    takes photos chosen from it, and a folder dropped from inside the Save-to folder still
    gives its photos. `should_stop` (asked before each file) ends a long walk early,
    returning what it found so far. `wait` False: io.DecoderBusy where a header check
    would wait for another thread's decode, or a record lies above a file (telling its
    copies may hash each): the main thread then walks on the pool instead. `raw_found`: a
    list that gets the camera RAW files met inside the walked folders (not skipped
    outputs).
    `folders_stop` (asked before each file inside a folder: the app's Cancel) stops the
    search of folders only: the photos then are the files given among `paths`, none
    from any folder. `unreadable`: a list that gets each folder that could not be read
    (listed, or its photos looked at), with why."""
    found: dict[Path, None] = {}
    picked: set[Path] = set()  # found as given, not inside a folder
    folders_stopped = False
    outputs = Path(os.path.realpath(output_dir)) if output_dir else None
    records: dict[str, PathSet | str | None] = {}  # recorded_above's, for this call

    def inside_outputs(path: Path) -> bool:  # (as spelt on disk: NFD on HFS+, any case)
        return bool(outputs) and holds_as_spelt(str(outputs), os.path.realpath(path))

    def recorded_copy(path: Path) -> bool:
        """Listed as a copy by the record of a cloak output folder above `path` (a BMP
        copy carries no note; its folder renamed, or the file dropped alone), or inside
        one whose record can't tell copies from photos (that folder is appended to
        `unreadable`, with why): not protected again, as the CLI. `wait` False: DecoderBusy
        where a record lies above (telling its copies may hash every one of them)."""
        real = os.path.realpath(path)
        if not wait and any(os.path.isfile(folder / MANIFEST_NAME)
                            for folder in Path(real).parents):
            raise DecoderBusy(real)
        above = recorded_above(real, records, str(outputs) if outputs else None)
        if isinstance(above, str):
            folder = next((f for f in Path(real).parents
                           if os.path.isfile(f / MANIFEST_NAME)), None)  # (moved since)
            if unreadable is not None and folder is not None and \
                    folder not in {f for f, _ in unreadable}:
                unreadable.append((folder, RECORD_TROUBLE.format(why=above)))
            return True
        return real in above

    for path in map(Path, paths):
        is_folder = os.path.isdir(path)
        if not is_folder and should_stop is not None and should_stop():  # thousands of
            return list(found)  # files dropped (a folder asks before each of its files)
        real = Path(os.path.realpath(path))
        if is_folder and path.name == OUTPUT_FOLDER_NAME and not (
                outputs and same_folder_path(str(real), str(outputs))):
            continue  # a dropped `protected` folder (not the Save-to folder: see below)
        if is_folder and folders_stopped:
            continue
        if is_folder:
            # The Save-to folder's copies are skipped where it lies inside the dropped
            # folder. A dropped folder inside the Save-to folder (Save-to ~/Pictures, drop
            # ~/Pictures/Holiday) holds originals: the app writes flat into Save-to. The
            # Save-to folder dropped itself gives its originals, not the copies its
            # manifest records (nor those whose header says so).
            skip_outputs = bool(outputs) and holds_as_spelt(str(real), str(outputs)) \
                and not same_folder_path(str(real), str(outputs))  # (above it, not it)
            for child in walk_files(path, unreadable):
                if should_stop is not None and should_stop():
                    return list(found)
                if folders_stop is not None and folders_stop():
                    folders_stopped = True
                    break
                if skip_outputs and inside_outputs(child) or \
                        child.name.lower().endswith(PREVIEW_SUFFIX):  # --preview's sheets
                    continue
                if is_image_file(child) and not is_protected_copy(child, wait) and \
                        not recorded_copy(child):
                    found.setdefault(child.absolute(), None)
                elif unreadable is not None and child.suffix.lower() in IMAGE_SUFFIXES \
                        and (why := folder_denies(child)) is not None:
                    # a folder that can be listed but not entered: no file in it opens
                    if not unreadable or unreadable[-1][0] != child.parent:
                        unreadable.append((child.parent, why))
                elif raw_found is not None and is_raw_file(child) and \
                        not child.name.startswith("."):
                    raw_found.append(child)
        elif is_image_file(path) and not is_protected_copy(path, wait) and \
                not recorded_copy(path):
            found.setdefault(path.absolute(), None)
            picked.add(path.absolute())
    return [p for p in found if p in picked] if folders_stopped else list(found)


def skipped_as_output(folder: Path, output_dir: Path | None = None) -> str | None:
    """Why a dropped `folder` that gave no photos may yet hold some, or None: it is named
    `protected` (taken for an earlier session's copies, and skipped, unless it is the
    Save-to folder `output_dir`), or holds a folder so named, which was skipped. One
    holding cloak's record is said to hold copies; one without, to be taken for that."""
    def has_record(place: Path) -> bool:
        return any(os.path.isfile(place / name) for name in (MANIFEST_NAME, JOURNAL_NAME))

    if folder.name == OUTPUT_FOLDER_NAME and not (
            output_dir and same_folder_path(os.path.realpath(folder),
                                            os.path.realpath(output_dir))):
        if has_record(folder):
            return "it holds cloak's copies; add the original photos instead"
        return (f"a folder named {OUTPUT_FOLDER_NAME} is taken for cloak's copies and "
                "skipped; select the photos in it, or rename it, to add them")
    inner = folder / OUTPUT_FOLDER_NAME
    if os.path.isdir(inner) and not has_record(inner):
        return (f"its {OUTPUT_FOLDER_NAME} folder is taken for cloak's copies and "
                "skipped; select the photos in it, or rename it, to add them")
    return None


def folder_denies(path: Path) -> str | None:
    """Why the file at `path` can't be reached through its folder (a folder that can be
    listed but not entered: Permission denied), or None. Not followed where it is a link
    (one into a folder elsewhere is not its own folder's problem)."""
    try:
        os.lstat(path)
    except PermissionError as exc:
        return exc.strerror or str(exc)
    except OSError:  # gone meanwhile: not a permission
        pass
    return None


def walk_files(folder: Path, unreadable: list[tuple[Path, str]] | None = None
               ) -> Iterator[Path]:
    """Files under `folder`, one folder at a time (nothing listed ahead, so a walk that is
    stopped stops at once), in sorted order: each folder's entries by name, a subfolder's
    files where its name falls. Hidden entries, folders named `protected` and library or
    app packages (io.PACKAGE_SUFFIXES) are not entered; links to folders are not followed
    (a link can loop); unreadable folders give nothing, and are appended to `unreadable`
    (with why) where it is given."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        if unreadable is not None:
            unreadable.append((folder, exc.strerror or str(exc)))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_folder = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_folder:
            if entry.name != OUTPUT_FOLDER_NAME and \
                    Path(entry.name).suffix.lower() not in PACKAGE_SUFFIXES:
                yield from walk_files(Path(entry.path), unreadable)
        else:
            yield Path(entry.path)


def is_protected_copy(path: Path, wait: bool = True) -> bool:
    """True for a file cloak wrote (its XMP carries cloak's note): picking one from the
    Save-to folder would protect a protected copy. Unreadable files are not (they fail on
    their own row, with the reason). `wait`: see io.says_protected_file."""
    from cloak.io import says_protected_file

    return says_protected_file(path, wait)


def default_output_dir(src: Path) -> Path:
    """The default destination folder: `protected/` next to the original."""
    return src.parent / OUTPUT_FOLDER_NAME


def unique_destination(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (1).ext`, `name (2).ext`, ... if that already exists (a link
    counts, even one whose target is gone).

    The app never overwrites: neither originals nor earlier protected copies. A name
    that the " (n)" would make longer than a disk allows (255 bytes) has its stem cut."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while os.path.lexists(candidate):
        candidate = folder / fitting_name(stem, f" ({n}){suffix}")
        n += 1
    return candidate


def common_folder(folders: Iterable[Path], latest: Path) -> Path:
    """The folder to open after a batch: the one folder every output went to, or the
    deepest folder holding them all; `latest` where they share only the filesystem root
    (or a drive)."""
    folders = {Path(f) for f in folders} or {latest}
    if len(folders) == 1:
        return next(iter(folders))
    try:
        shared = Path(os.path.commonpath([str(f) for f in folders]))
    except ValueError:  # different drives
        return latest
    return latest if shared == Path(shared.anchor) else shared
