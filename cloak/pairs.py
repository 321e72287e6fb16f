"""Pairing a folder of originals with the folder `cloak protect` wrote their copies to, for
`cloak verify ORIGINALS PROTECTED` on two folders. No pixels are read here.

`cloak protect holiday/ --out protected/` writes holiday/beach/a.jpg to
protected/holiday/beach/a.jpg (a folder given is mirrored under its own name), and a photo
given alone to protected/a.jpg. So a copy at PROTECTED/REL is paired with ORIGINALS/REL,
or, where REL starts with the originals folder's own name, with ORIGINALS/REST: the copy
of a photo in the folder that was given. A copy whose format changed (a format cloak can't
write back) is paired with the one photo of its name stem there. A copy still without an
original (its original renamed or moved within ORIGINALS since) is paired by the record
cloak protect keeps in PROTECTED (batch.Manifest): the original's size and sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import UnsupportedImageError
from .io import IMAGE_SUFFIXES, PACKAGE_SUFFIXES, same_file
from .preview import PREVIEW_SUFFIX


@dataclass(frozen=True)
class Pair:
    """A protected copy and its original (None where none was found); `name` is the
    copy's path relative to the protected folder, with `/` between folders."""

    name: str
    copy: Path
    original: Path | None
    note: str | None = None  # where the original is not the content cloak's record gives


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


def find_original(originals: Path, name: PurePosixPath, own_name_first: bool = True
                  ) -> Path | None:
    """The original of the copy at PROTECTED/`name` in the folder `originals`, or None.
    `own_name_first`: a `name` that starts with the originals folder's own name (its real
    one: `.` or a link names another) is first looked for without it (the folder given to
    cloak protect, mirrored under its name)."""
    tries = [name]
    own = Path(os.path.realpath(originals)).name
    if own_name_first and len(name.parts) > 1 and name.parts[0] == own:
        tries.insert(0, PurePosixPath(*name.parts[1:]))
    for rel in tries:
        path = originals.joinpath(*rel.parts)
        if path.is_file():
            return path
    for rel in tries:  # the same photo in another format
        folder = originals.joinpath(*rel.parent.parts)
        try:
            same_stem = [p for p in folder.iterdir() if p.stem == rel.stem and p.is_file()
                         and is_photo_name(p.name)]
        except OSError:
            continue
        if len(same_stem) == 1:
            return same_stem[0]
    return None


def recorded_mirrors(originals: Path, protected: Path, record=None
                     ) -> tuple[str | None, set[str]]:
    """(the folder inside `protected` that its cloak record (batch.Manifest; `record`, or
    read here) names as the mirror of `originals`, or None; the mirrors it records for
    other folders that are still there). `cloak protect 2023/Camera 2024/Camera` mirrors
    them as `Camera` and `Camera (2)`: with 2024/Camera moved, `Camera`'s copies are
    2023's, not its."""
    from .batch import Manifest

    record = record if record is not None else Manifest(protected)
    real = os.path.realpath(originals)
    mine, others = None, set()
    for name, folder in record.folders.items():
        if os.path.realpath(folder) == real and (protected / name).is_dir():
            mine = mine or name
        elif os.path.isdir(folder):
            others.add(name)
    return mine, others


def pair_folders(originals: Path, protected: Path,
                 unreadable: list[OSError] | None = None) -> list[Pair]:
    """Every photo under `protected` with its original under `originals` (see the module
    docstring); only the photos in the mirror of `originals` where `protected`'s record
    names one (recorded_mirrors). A copy that is its own original pairs with none.
    `unreadable`: see photos_under. UnsupportedImageError where the two are one folder, or
    there is no photo to pair."""
    if os.path.realpath(originals) == os.path.realpath(protected):
        raise UnsupportedImageError(
            f"{originals} was given twice: give the folder of originals first, then the "
            "folder cloak protect wrote their copies to")
    from .batch import Manifest

    record = Manifest(protected)
    mirror, others = recorded_mirrors(originals, protected, record)
    root = protected / mirror if mirror else protected
    copies = photos_under(root, unreadable)
    if not copies:
        raise UnsupportedImageError(f"no photos in {root} (looked in its subfolders too): "
                                    "give the folder cloak protect wrote to")
    pairs = []
    for copy in copies:
        within = PurePosixPath(*copy.relative_to(root).parts)
        name = PurePosixPath(mirror, within) if mirror else within
        if mirror:
            original = find_original(originals, within, own_name_first=False)
        else:  # not below a mirror the record gives to another folder that is still there
            original = find_original(originals, name, own_name_first=name.parts[0] not in
                                     others)
        if original is not None and same_file(original, copy):  # PROTECTED holds ORIGINALS
            original = None
        pairs.append(Pair(str(name), copy, original))
    return pair_by_record(pairs, originals, record.entries)


def pair_by_record(pairs: list[Pair], originals: Path, entries: dict[str, dict]
                   ) -> list[Pair]:
    """`pairs` checked against cloak's record (`entries`: copy name -> batch.Manifest
    entry, which gives each original's size and sha256). A copy with no original, or whose
    original by path is not the recorded content (edited since, or another photo of that
    name), is paired with the photo under `originals` of the recorded content that is not
    already paired (renamed or moved there since). Where there is none, a changed original
    stays, with a note. Only photos of a recorded size are hashed, each once."""
    from .batch import matches_record
    from .models.weights import sha256_of

    hashes: dict[Path, str | None] = {}

    def content(path: Path) -> str | None:
        if path not in hashes:
            try:
                hashes[path] = sha256_of(path)
            except OSError:
                hashes[path] = None
        return hashes[path]

    originals_by_name = {pair.name: pair.original for pair in pairs}
    recorded = {pair.name: entries[pair.name]["src"] for pair in pairs
                if entries.get(pair.name, {}).get("state") == "done"  # not a redo cut short
                and isinstance(entries[pair.name].get("src"), dict)}
    wanted = {name: ident for name, ident in recorded.items()
              if (original := originals_by_name[name]) is None
              or not matches_record(original, ident, sha256=content)}
    if not wanted:
        return pairs
    taken = {os.path.realpath(pair.original) for pair in pairs
             if pair.original and pair.name not in wanted}
    sizes = {ident.get("size") for ident in wanted.values()}
    candidates: list[tuple[Path, int]] = []  # (photo, its size)
    for path in photos_under(originals):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size in sizes and os.path.realpath(path) not in taken:
            candidates.append((path, size))
    paired, claimed = [], set()
    for pair in pairs:
        if pair.name in wanted:
            ident = wanted[pair.name]
            match = next((c for c in candidates if c[1] == ident.get("size")
                          and content(c[0]) == ident.get("sha256")
                          and not same_file(c[0], pair.copy)), None)
            if match is not None:
                candidates.remove(match)
                claimed.add(os.path.realpath(match[0]))
                pair = Pair(pair.name, pair.copy, match[0])
            elif pair.original is not None:
                pair = Pair(pair.name, pair.copy, pair.original, note=(
                    f"{pair.original} is not the file this copy was made from (its size or "
                    "sha256 differs from cloak's record): edited since, or another photo "
                    "of that name, so the figures compare two different files"))
        paired.append(pair)
    # a changed original that the record shows is another copy's (moved onto this name)
    return [Pair(p.name, p.copy, None) if p.note and os.path.realpath(p.original) in claimed
            else p for p in paired]
