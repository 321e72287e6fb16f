"""Which dropped files are photos, and where their protected copies go (no Qt here)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cloak.io import IMAGE_SUFFIXES, SUPPORTED  # what cloak reads, case-insensitive

__all__ = ["IMAGE_SUFFIXES", "SUPPORTED", "common_folder", "default_output_dir",
           "expand_paths", "is_image_file", "unique_destination"]

OUTPUT_FOLDER_NAME = "protected"


def is_image_file(path: Path) -> bool:
    """True for a visible file whose suffix is a photo format cloak reads."""
    return path.is_file() and not path.name.startswith(".") and \
        path.suffix.lower() in IMAGE_SUFFIXES


def expand_paths(paths: Iterable[str | Path], output_dir: Path | None = None) -> list[Path]:
    """Photos among `paths`, folders expanded recursively, in order, without duplicates.

    Hidden files and earlier outputs (folders named `protected`, and `output_dir`, the
    chosen "Save to" folder) are skipped, so dropping the same folder twice never
    protects a protected copy."""
    found: dict[Path, None] = {}
    outputs = Path(os.path.realpath(output_dir)) if output_dir else None
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                parts = child.relative_to(path).parts
                if OUTPUT_FOLDER_NAME in parts[:-1] or any(p.startswith(".") for p in parts):
                    continue
                if outputs and outputs in Path(os.path.realpath(child)).parents:
                    continue
                if is_image_file(child):
                    found.setdefault(child.absolute(), None)
        elif is_image_file(path):
            found.setdefault(path.absolute(), None)
    return list(found)


def default_output_dir(src: Path) -> Path:
    """The default destination folder: `protected/` next to the original."""
    return src.parent / OUTPUT_FOLDER_NAME


def unique_destination(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (1).ext`, `name (2).ext`, ... if that already exists.

    The app never overwrites: neither originals nor earlier protected copies."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while candidate.exists():
        candidate = folder / f"{stem} ({n}){suffix}"
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
