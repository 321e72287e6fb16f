"""Pairing a folder of originals with the folder `cloak protect` wrote their copies to, for
`cloak verify ORIGINALS PROTECTED` on two folders. No pixels are read here.

`cloak protect holiday/ --out protected/` writes holiday/beach/a.jpg to
protected/holiday/beach/a.jpg (a folder given is mirrored under its own name), and a photo
given alone to protected/a.jpg. So a copy at PROTECTED/REL is paired with ORIGINALS/REL,
or, where REL starts with the originals folder's own name, with ORIGINALS/REST: the copy
of a photo in the folder that was given. A copy whose format changed (a format cloak can't
write back: GIF -> PNG, MPO or HEIC -> JPEG) is paired with the one photo there that cloak
writes under the copy's name, or else with the one photo of its name stem there (a copy
re-saved in another format since). A folder inside one that was given pairs with its part of
the mirror (`cloak verify holiday/beach protected/`). A copy still without an
original (its original renamed or moved within ORIGINALS since) is paired by the record
cloak protect keeps in PROTECTED (manifest.Manifest): the original's size and sha256.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import UnsupportedImageError
from .io import IMAGE_SUFFIXES, PACKAGE_SUFFIXES, SUFFIX_FORMAT, output_path_for, same_file
from .preview import PREVIEW_SUFFIX
from .same_path import fold, holds_as_spelt, same_folder_path


@dataclass(frozen=True)
class Pair:
    """A protected copy and its original (None where none was found); `name` is the
    copy's path relative to the protected folder, with `/` between folders."""

    name: str
    copy: Path
    original: Path | None
    note: str | None = None  # where the original is not the content cloak's record gives
    # where there is none: why its original's place could not be looked in (a folder the
    # user may not open, its `filename`), not "no original"
    unreachable: OSError | None = None
    # found by cloak's record (the content it keeps), not at the copy's own path: the
    # original is named on the copy's line
    by_record: bool = False


def is_photo_name(name: str) -> bool:
    """A visible file name with a suffix cloak reads (not a `--preview` sheet)."""
    return (not name.startswith(".") and not name.lower().endswith(PREVIEW_SUFFIX)
            and Path(name).suffix.lower() in IMAGE_SUFFIXES)


def photos_under(folder: Path, unreadable: list[OSError] | None = None) -> list[Path]:
    """Photos under `folder`, in sorted order (each folder's entries by name); hidden
    entries and library packages are not entered, links to folders are not followed,
    and only files (or links, a broken one then fails on its own) are photos: not a FIFO,
    which would block its reader. `unreadable` gets the OSError of each folder that can't
    be listed (otherwise passed over in silence)."""
    found = []
    on_error = unreadable.append if unreadable is not None else None
    for top, dirs, files in os.walk(folder, onerror=on_error):  # folder links not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and Path(d).suffix.lower() not in PACKAGE_SUFFIXES)
        found += [Path(top) / f for f in sorted(files) if is_photo_name(f) and (
            os.path.isfile(os.path.join(top, f)) or os.path.islink(os.path.join(top, f)))]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def find_original(originals: Path, name: PurePosixPath, own_name_first: bool = True,
                  listings: dict[Path, dict[str, list[Path]]] | None = None,
                  denied: list[OSError] | None = None) -> Path | None:
    """The original of the copy at PROTECTED/`name` in the folder `originals`, or None.
    `own_name_first`: a `name` that starts with the originals folder's own name (its real
    one: `.` or a link names another; in any letter case a disk that ignores case takes)
    is first looked for without it (the folder given to cloak protect, mirrored under its
    name). `listings`: a cache of each folder's photos by name stem, kept by the caller so
    a folder of renamed photos is listed once, not once per copy. `denied`: gets the
    PermissionError of a place it could not look in (a folder on the path that can't be
    searched), where it finds none."""
    tries = [name]
    real = Path(os.path.realpath(originals))
    if own_name_first and len(name.parts) > 1 and (
            name.parts[0] == real.name or (fold(name.parts[0]) == fold(real.name)
                                           and same_file(real.parent / name.parts[0], real))):
        tries.insert(0, PurePosixPath(*name.parts[1:]))
    for rel in tries:
        path = originals.joinpath(*rel.parts)
        if os.path.isfile(path):  # Path.is_file raises on EACCES/EPERM before Python 3.13
            return path
        if denied is not None:
            try:
                os.stat(path)
            except PermissionError as exc:
                denied.append(_locked_folder(originals, path, exc))
            except OSError:
                pass
    listings = {} if listings is None else listings
    for rel in tries:  # the same photo in a format cloak writes as another
        folder = originals.joinpath(*rel.parent.parts)
        if folder not in listings:
            listings[folder] = defaultdict(list)
            try:
                for entry in os.scandir(folder):
                    if is_photo_name(entry.name):
                        listings[folder][Path(entry.name).stem].append(Path(entry.path))
            except OSError:
                pass
        photos = [p for p in listings[folder].get(rel.stem, ()) if os.path.isfile(p)]
        same_stem = [p for p in photos if writes_as(p, rel.name)]
        if len(same_stem) == 1:
            return same_stem[0]
        if len(photos) == 1:  # the copy re-saved in another format since (a PNG as JPEG)
            return photos[0]
    return None


def _locked_folder(originals: Path, path: Path, exc: PermissionError) -> PermissionError:
    """`exc` (the PermissionError of reaching `path`, under `originals`) as the folder that
    can't be searched: the deepest one above `path` that can still be looked at (for
    `orig/locked/sub/a.jpg` with `locked` shut, `orig/locked`, not `orig/locked/sub`)."""
    folder = path.parent
    for above in reversed(path.relative_to(originals).parents[:-1]):  # top down
        try:
            os.stat(originals / above)
        except PermissionError:
            folder = (originals / above).parent
            break
        except OSError:
            break
    return PermissionError(exc.errno, exc.strerror, os.fspath(folder))


def writes_as(original: Path, copy_name: str) -> bool:
    """Whether cloak protect writes `original`'s copy under `copy_name` (its own name, or
    the suffix of the format it writes instead; an HEIC as .jpg where no HEVC encoder is)."""
    return (output_path_for(original, ".").name == copy_name
            or (SUFFIX_FORMAT.get(original.suffix.lower()) == "HEIF"
                and copy_name == original.stem + ".jpg"))


def recorded_mirrors(originals: Path, protected: Path, record=None
                     ) -> tuple[str | None, set[str], dict[str, PurePosixPath]]:
    """(the folder inside `protected` that its cloak record (manifest.Manifest; `record`, or
    read here) names as the mirror of `originals`, or of a folder `originals` is inside
    (then that mirror's matching subfolder, as "holiday/beach"), or None; the mirrors it
    records for other folders that are still there; of those, the ones whose folder is
    inside `originals`, with its path below `originals`). `cloak protect 2023/Camera
    2024/Camera` mirrors them as `Camera` and `Camera (2)`: with 2024/Camera moved,
    `Camera`'s copies are 2023's, not its; `cloak verify 2024 OUT` finds `Camera (2)`'s
    originals in 2024/Camera. Names a hand-edited record gives that are not one plain
    folder name are passed over (they could point outside `protected`)."""
    from .manifest import Manifest
    from .planning import is_plain_name

    record = record if record is not None else Manifest(protected)
    real = os.path.realpath(originals)
    mine, around, others = None, None, set()  # its own mirror, a mirror's subfolder
    below: dict[str, PurePosixPath] = {}  # another's mirror, of a folder in `originals`
    for name, folder in record.folders.items():
        if not is_plain_name(name) or "\0" in folder:
            continue
        recorded = os.path.realpath(folder)
        # below the recorded folder, its path perhaps spelt otherwise (macOS keeps the
        # letter case and Unicode form typed): relative to real's part at that depth
        depth = len(Path(recorded).parts)
        inside = os.path.relpath(real, str(Path(*Path(real).parts[:depth]))) if (
            len(Path(real).parts) > depth and holds_as_spelt(recorded, real)) else None
        if same_folder_path(recorded, real) and (protected / name).is_dir():
            mine = mine or name
        elif inside and (protected / name / inside).is_dir():
            around = around or PurePosixPath(name, *Path(inside).parts).as_posix()
        elif os.path.isdir(folder):
            others.add(name)
            depth = len(Path(real).parts)
            if len(Path(recorded).parts) > depth and holds_as_spelt(real, recorded):
                below[name] = PurePosixPath(*Path(recorded).parts[depth:])
    return mine or around, others, below


def pair_folders(originals: Path, protected: Path,
                 unreadable: list[OSError] | None = None,
                 left_out: list[Path] | None = None) -> list[Pair]:
    """Every photo under `protected` with its original under `originals` (see the module
    docstring); only the photos in the mirror of `originals` where `protected`'s record
    names one (recorded_mirrors): the others are appended to `left_out` (a copy made by
    another run, such as one photo protected alone into the same folder). A copy that is
    its own original pairs with none. `unreadable`: see photos_under.
    UnsupportedImageError where the two are one folder, or there is no photo to pair."""
    from .manifest import Manifest

    if same_folder_path(os.path.realpath(originals), os.path.realpath(protected)):
        raise UnsupportedImageError(
            f"{originals} was given twice: give the folder of originals first, then the "
            "folder cloak protect wrote their copies to")

    record = Manifest(protected)
    mirror, others, below = recorded_mirrors(originals, protected, record)
    root = protected / mirror if mirror else protected
    unreadable = [] if unreadable is None else unreadable
    copies = photos_under(root, unreadable)
    if not copies:
        why = f" ({unreadable[0].strerror or unreadable[0]})" if unreadable else ""
        raise UnsupportedImageError(f"no photos in {root} (looked in its subfolders "
                                    f"too){why}: give the folder cloak protect wrote to")
    pairs, listings = [], {}
    for copy in copies:
        within = PurePosixPath(*copy.relative_to(root).parts)
        name = PurePosixPath(mirror, within) if mirror else within
        denied: list[OSError] = []
        top = name.parts[0]
        if mirror:
            original = find_original(originals, within, False, listings, denied)
        elif top in below and len(name.parts) > 1:  # the mirror of a folder in ORIGINALS
            # (`verify 2024 OUT`, 2024/Camera mirrored as `Camera (2)`): there, not at
            # 2024/Camera (2), nor at 2024/Camera for `Camera`, another folder's mirror
            original = find_original(originals, PurePosixPath(*below[top].parts,
                                                              *name.parts[1:]),
                                     False, listings, denied)
        elif top in others:  # the mirror of another folder, still there: a photo here
            # is its copy's original only where it holds the content the record gives
            # (`verify B/holiday OUT`, B/holiday a copy of the recorded A/holiday), not
            # another photo of the same name
            original = find_original(originals, name, True, listings, denied)
            if original is not None and not _made_from(original, record.entries.get(
                    str(name))):
                original = None
        else:
            original = find_original(originals, name, True, listings, denied)
        if original is not None and same_file(original, copy):  # PROTECTED holds ORIGINALS
            original = None
        pairs.append(Pair(str(name), copy, original,
                          unreachable=denied[0] if original is None and denied else None))
    if mirror and left_out is not None:
        # strays only: photos outside every mirror the record names (a photo protected
        # alone lands at the top); the rest of a mirror verified in part, and other
        # folders' mirrors, are copies of their own originals, and are not walked again
        mirrors = {PurePosixPath(name).parts[0]
                   for name in record.folders if PurePosixPath(name).parts}
        by_fold = {fold(name): name for name in mirrors}
        try:
            entries = sorted(os.scandir(protected), key=lambda e: e.name)
        except OSError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name in mirrors or (
                    fold(entry.name) in by_fold and same_folder_path(
                        entry.path, os.path.join(protected, by_fold[fold(entry.name)]))):
                continue  # a mirror (listed in NFD by HFS+, recorded as typed)
            if entry.is_dir():
                left_out.extend(photos_under(Path(entry.path), []))
            elif is_photo_name(entry.name):
                left_out.append(Path(entry.path))
    if record.path.is_file():
        entries = every = record.entries
    else:
        entries, every = entries_above(protected)
    return pair_by_record(pairs, originals, entries, unreadable, every)


def entries_above(folder: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """The entries of the nearest cloak record above `folder` (`folder` inside an output
    folder: OUT/holiday given as PROTECTED) that name copies in `folder`, keyed as the
    copies are named from `folder`, and all that record's entries (a copy moved in from
    another of its folders is found by its contents among them); ({}, {}) where no
    record is above it."""
    from .manifest import Manifest, key_below, records_above

    for parent, below in records_above(folder):
        every = Manifest(parent).entries
        entries = {}
        for key, entry in every.items():
            if (name := key_below(key, below)) is not None:
                entries[name] = entry
        return entries, every
    return {}, {}


def pair_by_record(pairs: list[Pair], originals: Path, entries: dict[str, dict],
                   unreadable: list[OSError] | None = None,
                   every: dict[str, dict] | None = None) -> list[Pair]:
    """`pairs` checked against cloak's record (`entries`: copy name -> manifest.Manifest
    entry, which gives each original's size and sha256). A copy with no original, or whose
    original by path is not the recorded content (edited since, or another photo of that
    name), is paired with the photo under `originals` of the recorded content that is not
    already paired (renamed or moved there since). Where there is none, a changed original
    stays, with a note. Only photos of a recorded size are hashed, each once. A record
    that no longer describes the copy (another size than cloak wrote: replaced since) or
    that is not well formed is not used. A copy with no original and no entry of its name
    (renamed since), or whose name's entry is not of it (renamed onto another copy's
    name, two copies' names swapped), is looked up in the record by its own size and
    sha256; so is one with no entry of its name but an original by path (moved into
    another folder holding a photo of its name or stem), among `every` entry of the
    record (default `entries`: a copy moved in from a folder of the record above
    PROTECTED). `unreadable`
    (see photos_under) gets the folders under `originals` that could not be searched,
    where a copy is left without its original (once each)."""
    from .manifest import matches_record
    from .models.weights import sha256_of

    hashes: dict[Path, str | None] = {}

    def content(path: Path) -> str | None:
        if path not in hashes:
            try:
                hashes[path] = sha256_of(path)
            except OSError:
                hashes[path] = None
        return hashes[path]

    by_fold: dict[str, str] = {}

    def entry_of(pair: Pair) -> dict:
        """The record's entry of the copy, by its name, or by the name in another letter
        case or Unicode form (HFS+ lists `Été` in NFD, the record keeps it as typed) where
        that entry is of this very file."""
        entry = entries.get(pair.name)
        if entry is not None:
            return entry
        if not by_fold:
            by_fold.update((fold(key), key) for key in entries)
        entry = entries.get(by_fold.get(fold(pair.name), ""))
        return entry if isinstance(entry, dict) and _describes(entry, pair.copy) and \
            matches_record(pair.copy, entry["dst"], sha256=content) else {}

    originals_by_name = {pair.name: pair.original for pair in pairs}
    # the entry of its name, where it is of this very file (size, times, else sha256: two
    # copies of one size swapped are not each other's; by size alone where the record
    # keeps no sha256 of it)
    recorded = {pair.name: entry["src"] for pair in pairs
                if _describes(entry := entry_of(pair), pair.copy)
                and (not isinstance(entry["dst"].get("sha256"), str)
                     or matches_record(pair.copy, entry["dst"], sha256=content))}
    # a copy renamed since (IMG_1_insta.jpg) has no entry by its name: its own content does
    by_copy_size: dict[int, list[dict]] = defaultdict(list)
    for entry in (entries if every is None else every).values():
        dst = entry.get("dst") if isinstance(entry, dict) else None
        if isinstance(dst, dict) and isinstance(dst.get("sha256"), str) and isinstance(
                dst.get("size"), int):
            by_copy_size[dst["size"]].append(entry)
    for pair in pairs:
        # (one with an original by path too: a copy renamed onto another copy's name, two
        # swapped, or moved beside another photo of its name; only copies of a recorded
        # copy's size are hashed)
        if pair.name in recorded:
            continue
        try:
            size = os.stat(pair.copy).st_size
        except OSError:
            continue
        entry = next((e for e in by_copy_size.get(size, ())
                      if e["dst"]["sha256"] == content(pair.copy)
                      and _describes(e, pair.copy)), None)
        if entry is not None:
            recorded[pair.name] = entry["src"]
    wanted = {name: ident for name, ident in recorded.items()
              if (original := originals_by_name[name]) is None
              or not matches_record(original, ident, sha256=content)}
    if not wanted:
        return pairs
    taken = {os.path.realpath(pair.original) for pair in pairs
             if pair.original and pair.name not in wanted}
    sizes = {ident["size"] for ident in wanted.values()}
    candidates: dict[int, list[Path]] = defaultdict(list)  # by size, in walk order
    everyone: dict[int, list[Path]] = defaultdict(list)  # the same, taken ones too
    searched: list[OSError] = []  # folders it could not look in
    for path in photos_under(originals, searched):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size in sizes:
            everyone[size].append(path)
            if os.path.realpath(path) not in taken:
                candidates[size].append(path)
    paired, claimed = [], set()

    def the_original(among: list[Path], ident: dict, copy: Path) -> Path | None:
        return next((c for c in among if content(c) == ident["sha256"]
                     and not same_file(c, copy)), None)

    for pair in pairs:
        if pair.name in wanted:
            ident = wanted[pair.name]
            same_size = candidates[ident["size"]]
            match = the_original(same_size, ident, pair.copy)
            if match is not None:
                same_size.remove(match)
            else:  # none left unpaired: the one another copy of it has (a second copy,
                # a_insta.png beside a.png; a copy renamed, then made again): the very
                # contents cloak's record keeps, so it is this copy's original too
                match = the_original(everyone[ident["size"]], ident, pair.copy)
            if match is not None:
                claimed.add(os.path.realpath(match))
                pair = Pair(pair.name, pair.copy, match, by_record=not (
                    pair.original is not None and same_file(match, pair.original)))
            elif pair.original is not None:  # (one unreachable keeps why: `pair` as it is)
                pair = Pair(pair.name, pair.copy, pair.original, note=(
                    f"{pair.original} is not the file this copy was made from (its size or "
                    "sha256 differs from cloak's record): edited since, or another photo "
                    "of that name, so the figures compare two different files"))
        paired.append(pair)
    # a changed original that the record shows is another copy's (moved onto this name)
    paired = [Pair(p.name, p.copy, None) if p.note and os.path.realpath(p.original) in claimed
              else p for p in paired]
    if unreadable is not None and any(p.name in wanted and p.original is None
                                      for p in paired):  # where it could have been
        # (not the folders a copy's line names already, as its original's place)
        known = {e.filename for e in unreadable} | {
            p.unreachable.filename for p in paired
            if p.original is None and p.unreachable is not None}
        unreadable += [e for e in searched if e.filename not in known]
    return paired


def _made_from(original: Path, entry) -> bool:
    """Whether a Manifest `entry` records `original`'s content (size and sha256) as its
    copy's source."""
    from .manifest import matches_record

    src = entry.get("src") if isinstance(entry, dict) else None
    return isinstance(src, dict) and isinstance(src.get("sha256"), str) and \
        matches_record(original, src)


def _describes(entry: dict, copy: Path) -> bool:
    """Whether a Manifest `entry` is a finished record (not a redo cut short) of the file
    now at `copy`, with a well-formed record of its source (size and sha256)."""
    src, dst = entry.get("src"), entry.get("dst")
    if (entry.get("state") != "done" or not isinstance(src, dict) or not isinstance(dst, dict)
            or not isinstance(src.get("size"), int) or not isinstance(src.get("sha256"), str)):
        return False
    try:
        return os.stat(copy).st_size == dst.get("size")
    except OSError:
        return False
