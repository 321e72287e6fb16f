"""Protect many photos: plan the work, then run it, resumable, in worker processes.

    items = plan(["me.jpg", "holiday/"], "protected/")   # what to do, and what is wrong
    result = run(items, "protected/", config, on_event=print)

`plan` (cloak.planning) walks the inputs and mirrors their tree under OUT; problems found
on the way are items already failed or skipped. `run` keeps OUT's record
(cloak.manifest, `OUT/.cloak-manifest.json`): a photo whose output is already there,
made from the same source with the same settings, is skipped; `force` redoes it. An
output that exists for any other reason is left alone unless `overwrite` (or `force`) is
given. Outputs are written atomically and each photo's entry is appended to the record's
journal (`OUT/.cloak-manifest.journal`, folded into the record as the run ends), so a run
killed at any moment resumes where it stopped. With jobs > 1 each
photo runs in a worker process. Progress goes to `on_event`; the library prints nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import json
import logging
import multiprocessing
import multiprocessing.connection
import numbers
import os
import queue
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import in_use, mode_like, plain_flag
from .config import ProtectConfig, config_or_default
from .errors import (
    Cancelled,
    CloakError,
    OutputError,
    OutputExistsError,
    OutputFolderGoneError,
    is_out_of_memory,
    out_of_memory_message,
)
from .manifest import (
    BEFORE,
    JOURNAL_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    SHEETS_RECORDED,
    Manifest,
    as_settled,
    file_stamp,
    identity,
    matches_record,
    named_after,
    output_folder_lock,
    pending_is_ours,
    read_only,
    same_settings,
    same_stamp,
    settings_change,
    writer_may_be_alive,
)
from .models.fetch import DownloadProgress, stops_downloads
from .naming import name_photos, naming
from .planning import (
    CANCELLED,
    FAILED,
    FOLDER_TWICE,
    LINK_NOT_FOLLOWED,
    NOT_A_PHOTO,
    PACKAGE_SKIPPED,
    PROTECTED,
    RAW_WHY,
    SKIPPED,
    Item,
    mark_sheet_clashes,
    output_folder,
    plan,  # noqa: F401 - batch's API is plan(), then run()
    set_aside_time,
)
from .preview import PREVIEW_SUFFIX, is_cloak_sheet, preview_path
from .report import Report
from .same_path import fold, holds, inside, output_reason, same_folder, same_folder_path

log = logging.getLogger(__name__)
TEMP_GLOB = ".*.cloak-tmp-*"  # the temp files of atomic.write_atomic
ALREADY_DONE = "already protected with these settings"
THE_MASK = "the --mask file, not a photo to protect"


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
    # OUT was removed, moved or replaced while the run wrote to it: the run stopped
    # writing there (OutputFolderGoneError), and left the folder at that name alone
    out_folder_gone: bool = False

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


def _decide(item: Item, entry: dict | None, settings: dict, force: bool,
            overwrite: bool, preview: bool = False, also: dict | None = None,
            record_unreadable: bool = False) -> None:
    """Skip, refuse or clear an item for work, from its output and manifest entry.
    `preview`: previews are asked for, so a done photo without one is done again. A copy
    made with `also` (settings_to_accept) counts as made with `settings`."""
    sheet = preview_path(item.dst)
    beside_sheet = preview and sheet.exists() and same_folder(item.dst.parent,
                                                               item.src.parent)
    if beside_sheet and entry is not None and isinstance(entry.get("dst"), dict):
        # the copy's times as they are now, where it is the copy recorded (a folder
        # copied with its times kept, `cp -a`): what an older sheet is judged by
        matches_record(item.dst, entry["dst"], refresh=True)
    if (beside_sheet
            and not any(matches_record(sheet, (entry or {}).get(key))
                        for key in ("preview", "earlier_preview"))
            and not (entry is not None and _unrecorded_own_sheet(sheet, entry))):
        # --out is the photo's own folder, and a file there has the preview's name: said
        # so with or without --overwrite (the generic "pass --overwrite" would be refused)
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
        pending_is_ours(item.dst, entry) if pending
        else matches_record(item.dst, entry.get("dst"), refresh=True))
    ours = (made_here and same_settings(entry.get("settings"), settings, also)
            and matches_record(item.src, entry.get("src"), refresh=True))
    if ours and pending and not (force or overwrite) and writer_may_be_alive(entry):
        # the app's, still measuring it (or so it seems: a pid reused, a host renamed)
        writer = entry.get("writer") or {}
        item.status = FAILED
        item.message = (f"output {item.dst} is being made by a cloak app session that may "
                        f"still be running (process {writer.get('pid')} on "
                        f"{writer.get('host')}); wait for it to finish, or pass --overwrite "
                        "to make it again if that session is not running")
        return
    if ours and pending:  # an interrupted run's file: redone
        item.replace, item.ours_stamp = force or overwrite, file_stamp(item.dst)
        if preview:  # a sheet there is replaced only where it is one cloak recorded, or
            # one a run killed before recording it wrote (it carries cloak's mark)
            _note_own_sheet(item, sheet, entry.get("preview") or entry.get("earlier_preview"))
            if item.sheet_stamp is None and is_cloak_sheet(sheet):
                item.sheet_stamp = file_stamp(sheet)
        return
    if ours and not force:
        if preview and (not sheet.exists() or _older_sheet(sheet, entry)):
            # ours, same settings: redone to write the missing (or a stale) preview
            item.replace, item.ours_stamp = overwrite, file_stamp(item.dst)
            _note_own_sheet(item, sheet, entry.get("earlier_preview"))
            return
        if preview and _unrecorded_own_sheet(sheet, entry):
            # recorded from now on, as taken by its times alone: counted as this copy's
            # sheet, never replaced or removed unasked (a user's file may fit the times)
            entry["preview"] = {**identity(sheet), ADOPTED: True}
        if preview and not matches_record(sheet, entry.get("preview")):
            # a file at the sheet's name that is not the sheet cloak wrote (replaced or
            # changed since): not counted as this photo's preview
            if overwrite:  # made again, the file there replaced
                item.replace, item.ours_stamp = True, file_stamp(item.dst)
                return
            item.status = FAILED
            item.message = (f"{sheet} exists and is not the preview sheet cloak wrote there "
                            "(it was changed or replaced since); move it away, or pass "
                            "--overwrite to replace it")
            return
        item.status, item.message = SKIPPED, ALREADY_DONE
        return
    if (force or overwrite) and not made_here and same_folder(item.dst.parent,
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
    beside = not made_here and same_folder(item.dst.parent, item.src.parent)
    remedy = ("move it away or choose another --out folder" if beside
              else "pass --overwrite to replace it")
    if entry is None and record_unreadable:  # cloak's record of OUT can't be read (or
        # an earlier one could not, and was set aside)
        item.status = FAILED
        item.message = (f"output {item.dst} exists, and cloak's record of that folder "
                        f"({MANIFEST_NAME}) can't be read, or an earlier one could not "
                        f"(kept as {MANIFEST_NAME}.unreadable-TIME), so cloak can't tell "
                        "whether it made it; " + (remedy if beside else
                                                  f"{remedy}, or choose another --out folder"))
        return
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
    elif not same_settings(entry.get("settings"), settings, also):
        why = (f"was made with other settings "
               f"({settings_change(entry.get('settings') or {}, settings)})")
    else:  # the manifest keeps the photo's size, times and hash, not its path
        why = "was made from another photo of that name, or an earlier version of this one"
    item.status = FAILED
    item.message = f"output {item.dst} exists and {why}; {remedy}"


def _recorded_above(item: Item, manifest: Manifest) -> tuple[Path, dict] | None:
    """For an output OUT's own record does not list, where a file is at its name: the
    output folder above OUT whose record does (OUT one of its mirror folders, as the
    desktop app's Save-to or `--out OUT/holiday`), and that entry as it stands."""
    from .manifest import entry_above

    try:
        if item.dst is None or not item.dst.exists():
            return None
    except OSError:
        return None
    found = entry_above(item.dst, manifest.out_dir)
    return None if found is None else (found[0], as_settled(found[1], item.dst))


def _sheet_for(dst: Path, manifest: Manifest) -> Path | None:
    """The copy in OUT whose --preview sheet is the file at `dst` (the copy of a photo
    named `a.jpg.preview.gif` is `a.jpg.preview.png`, a.jpg's sheet): listed as that
    copy's sheet in OUT's record, or carrying cloak's sheet mark beside that copy. It was
    called "not made by cloak (it may be a photo of yours)", and --overwrite, as advised,
    replaced the sheet. None for any other file, or none there."""
    if not dst.name.endswith(PREVIEW_SUFFIX) or not dst.exists():
        return None
    copy = dst.with_name(dst.name.removesuffix(PREVIEW_SUFFIX))
    entry = manifest.get(copy) or {}
    if any(matches_record(dst, entry.get(key)) for key in ("preview", "earlier_preview")):
        return copy
    return copy if os.path.isfile(copy) and is_cloak_sheet(dst) else None


def _is_a_copy(path: Path, manifest: Manifest) -> bool:
    """Whether the file at `path` is a copy OUT's record lists, as written (a photo named
    `a.jpg.preview.gif` protected before: its copy has a.jpg's --preview sheet's name)."""
    entry = manifest.get(path)
    return entry is not None and matches_record(path, entry.get("dst"))


def _made_again_above(dst: Path, base: Path, entry: dict, settings: dict,
                      also: dict | None) -> str:
    """Why the copy at `dst`, listed in the record of the output folder `base` above
    OUT, is not made again here (made with other settings than `settings`, or a redo
    asked for), and the command that makes it again there: its folder into `--out
    base` (the photo alone into `--out base` would go to base/NAME, not to its mirror)."""
    listed = f"listed in the record of {base}, a cloak output folder above this one"
    other = not same_settings(entry.get("settings"), settings, also)
    if other:  # refused there too, unless --overwrite
        why = (f"output {dst} exists and was made with other settings "
               f"({settings_change(entry.get('settings') or {}, settings)}); it is a "
               f"copy {listed}")
    else:
        why = f"output {dst} is a copy {listed}, made again only there"
    try:
        mirror = Path(os.path.realpath(dst.parent)).relative_to(base).parts[0]
    except (ValueError, IndexError):
        mirror = None
    folder = read_only(base).folders.get(mirror) if mirror else None
    asked = " with --overwrite" if other else ""
    again = (f"protect {folder} into --out {base}{asked} to make it again there" if folder
             else f"run the command that made it again, with --out {base}{asked}")
    return f"{why}: {again}, or pass --overwrite to replace it here"


def _done_under_another_name(item: Item, manifest: Manifest, settings: dict,
                             also: dict | None, force: bool, overwrite: bool,
                             preview: bool, items: list[Item]) -> None:
    """Where the file at `item`'s output name is not a copy of this photo (another photo
    of that name's, or a user's), and OUT's record holds a copy of this photo with these
    settings beside it under the desktop app's name for it (`a (1).jpg`), still as
    written: that copy is the photo's output, decided again there (done, so skipped; a
    missing --preview sheet or --force redo it there). Before, the photo was refused with
    advice to pass --overwrite, which replaced the other photo's copy with a second copy
    of this one. Not where another photo of this run is to be written at that name."""
    from .manifest import earlier_copy

    if item.status not in ("pending", FAILED) or item.dst is None:
        return
    entry = manifest.get(item.dst)
    try:
        if not item.dst.exists() or (entry is not None and matches_record(
                item.src, entry.get("src"))):
            return
    except OSError:
        return
    copy = earlier_copy(item.src, manifest.out_dir, settings, also,
                        skip={os.path.abspath(item.dst)})
    if copy is None or not same_folder(copy.parent, item.dst.parent) \
            or not named_after(copy.name, item.src):
        return
    taken = fold(os.path.realpath(copy))
    if any(other is not item and other.dst is not None  # whatever it was decided: one
           and fold(os.path.realpath(other.dst)) == taken for other in items):
        return  # told to pass --overwrite for that name is not to find it done
    named = item.dst.with_name(copy.name)  # as OUT's record names it, under OUT
    if manifest.get(named) is None:  # listed by a record above OUT (OUT one of its
        # mirror folders): done there; any work on it belongs to that record
        if not (force or preview):
            item.dst, item.status, item.message = named, SKIPPED, ALREADY_DONE
        return
    item.dst = named
    item.status, item.message = "pending", ""
    item.replace, item.ours_stamp, item.sheet_stamp = False, None, None
    _decide_or_fail(item, as_settled(manifest.get(item.dst), item.dst), settings, force,
                    overwrite, preview, also)


def _changed_before(path: Path, when_ns: int) -> bool:
    """Whether the file at `path` was last changed (ctime) at or before `when_ns`."""
    try:
        return os.lstat(path).st_ctime_ns <= when_ns
    except (OSError, ValueError):
        return False


def _decide_or_fail(item: Item, entry: dict | None, settings: dict, force: bool,
                    overwrite: bool, preview: bool, also: dict | None,
                    record_unreadable: bool = False) -> None:
    """_decide, where an output that can't be looked at (a name too long for its
    preview) fails its own photo alone."""
    try:
        _decide(item, entry, settings, force, overwrite, preview, also, record_unreadable)
        if item.status == "pending" and item.replace and _beside(item):
            # --out the photo's own folder: --overwrite or --force replace only what was
            # judged here, as it is now; a file that comes meanwhile may be another
            # original (a sync client, a camera import), never replaced
            item.replace = False
            item.ours_stamp = file_stamp(item.dst)
            item.sheet_stamp = file_stamp(preview_path(item.dst)) if preview else None
    except OSError as exc:  # named as the call named it: the sheet, not the copy
        item.status = FAILED
        named = Path(exc.filename) if isinstance(exc.filename, str) else item.dst
        item.message = f"can't check its output {named}: {output_reason(exc)}"


def _beside(item: Item) -> bool:
    """Whether `item`'s copy goes into its original's own folder (--out that folder)."""
    return same_folder(item.dst.parent, item.src.parent)


def came_beside(path: Path) -> str:
    """The failure of a photo whose output name `path`, beside the original, holds a file
    that came (or changed) while the run was busy."""
    return (f"{path} exists beside the original and came or changed while this run was "
            "busy, so it is not replaced even with --overwrite (it may be another "
            "original); move it away or choose another --out folder")


def _after_another_run(manifest: Manifest, theirs: Manifest, todo: list[Item],
                       settings: dict, force: bool, overwrite: bool, preview: bool,
                       also: dict | None, emit: Callable[[Event], None]) -> list[Item]:
    """This run's `todo`, decided again once OUT is locked, where another run made OUT
    and wrote into it after this one planned (`theirs`: OUT's manifest now; merged into
    `manifest`): a copy the other run made as asked is done, not "already exists".
    CloakError where the other run mirrors another folder under a name this run uses."""
    mine_by_fold = {fold(name): folder for name, folder in manifest.folders.items()}
    for name, folder in theirs.folders.items():  # (one mirror on a disk that folds names)
        mine = mine_by_fold.get(fold(name))
        if mine is not None and not same_folder_path(os.path.realpath(mine),
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
    if matches_record(sheet, record) and not record.get(ADOPTED):
        item.sheet_stamp = file_stamp(sheet)


def _older_sheet(sheet: Path, entry: dict) -> bool:
    """Whether the preview `sheet` is cloak's sheet of an earlier copy: the entry records
    none of its own (the copy was redone without --preview since) but the one it left,
    and that is the file there (not the user's own file of that name)."""
    return not entry.get("preview") and matches_record(sheet, entry.get("earlier_preview"))


# A cloak from before 1 Dec 2026 recorded no preview sheet; the one it wrote followed
# its copy within this long (the saved copy of a large photo measured first).
UNRECORDED_SHEET_WINDOW_NS = 15 * 60 * 10**9
ADOPTED = "adopted"  # a sheet's record made from its times alone (_unrecorded_own_sheet)


def _unrecorded_own_sheet(sheet: Path, entry: dict) -> bool:
    """Whether `sheet` is the preview that a cloak from before sheets were recorded
    wrote with the entry's copy: the entry records no sheet at all, was written by such
    a cloak (no SHEETS_RECORDED mark: this one's entry without a sheet has none, and a
    user's file at the name made within minutes was taken for it), and the file there
    was written within minutes of the copy (either side: `cp -r` writes both anew, in
    either order), and last changed (its ctime: a file put there later, even by `cp -p`,
    has a later one) within minutes of the copy's writing, or of the copy's own last
    change where that is late too (the folder copied with its times kept, `cp -a`, or
    restored from a backup: the entry's times are brought up to date by matches_record
    first)."""
    if "preview" in entry or "earlier_preview" in entry or entry.get(SHEETS_RECORDED):
        return False  # recorded, or this cloak's entry, which records every sheet
    copy = entry.get("dst") if isinstance(entry.get("dst"), dict) else {}
    made = copy.get("mtime_ns")
    try:
        st = sheet.stat()
    except OSError:
        return False
    if not isinstance(made, int) or not stat.S_ISREG(st.st_mode):
        return False
    window = UNRECORDED_SHEET_WINDOW_NS
    if not made - window <= st.st_mtime_ns <= made + window:
        return False
    changed = copy.get("ctime_ns")  # the copy's, as it is now
    return st.st_ctime_ns <= made + window or (
        isinstance(changed, int) and changed > made + window
        and abs(st.st_ctime_ns - changed) <= window)


def _remove_temp_files(folder: Path, older_than: float | None = None) -> None:
    """Remove the temp files (photos and manifest) that a killed run left in `folder`;
    with `older_than` (seconds), only those last written that long ago (where no lock
    says that no other run is writing there: the desktop app's Save-to folder)."""
    cutoff = None if older_than is None else time.time() - older_than
    for path in folder.glob(TEMP_GLOB):
        try:
            if cutoff is not None and path.lstat().st_mtime > cutoff:
                continue
            if in_use(path):  # being written (the desktop app saving into this folder)
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
    can't be found (or, where allowed, fetched; a failure is logged) or can't run here
    (OpenCV missing, or one that can't run YuNet: logged where `allow_download`). Copies
    are recorded with the settings that made them, so a copy made without face priority
    is not taken, once the detector is there and runs, for one made with it."""
    from .budget import face_detection_fails
    from .models.weights import _warn_once, resolve_face_detector

    if not config.faces:
        return config
    detector = resolve_face_detector(config.model_dir,
                                     config.allow_download and allow_download, progress)
    if detector is None:
        return config.replace(faces=False)
    why = face_detection_fails(detector)
    if why is not None:
        if allow_download:  # not a rerun only deciding what is done
            _warn_once(f"{why}; face priority is off")  # once a process, as the others
        return config.replace(faces=False)
    return config


def settings_to_accept(config: ProtectConfig) -> tuple[ProtectConfig, dict | None]:
    """The config a rerun decides with (faces off where the face detector is not on disk:
    nothing is downloaded, or warned about, just to decide), and the settings asked for
    when that turned faces off. A copy recorded with those (made with face priority, or by
    a version that recorded what was asked) is as good as what this run would make, so it
    counts as done."""
    local = faces_as_found(config, allow_download=False)
    return local, (config.fingerprint() if local is not config else None)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """torch's CPU thread count set to `threads` (None: left as it is) while held."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_per_job(jobs: int) -> int:
    """Torch threads for each photo of a `jobs`-wide run: the usable cores shared out."""
    return max(1, usable_cores() // jobs)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Python's process pool takes at most this many workers on Windows (ValueError above)
WINDOWS_MAX_JOBS = 61


def max_jobs() -> int:
    """The most `jobs` worth running here: the usable cores (each job a process holding
    the models: more only costs memory), and on Windows at most WINDOWS_MAX_JOBS."""
    cores = usable_cores()
    return min(cores, WINDOWS_MAX_JOBS) if sys.platform == "win32" else cores


def run(items: list[Item], out_dir: str | os.PathLike, config: ProtectConfig, *,
        jobs: int = 1, force: bool = False, overwrite: bool = False,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> BatchResult:
    """Protect the pending items (see module docstring). `items`: what plan() made for
    this `out_dir` (any iterable), not run before: to resume, plan again (ValueError
    otherwise; TypeError for arguments of the wrong kind).

    `jobs` > 1 runs photos in that many processes with `usable_cores() // jobs` torch
    threads each. `should_stop` (or Ctrl-C) stops the run cleanly: the photo in progress is
    dropped without leaving a file, and the rest are marked `cancelled`.
    Raises CloakError only before any photo is processed (bad output folder, missing
    weights). An exception `on_event` raises ends the run and reaches the caller as it
    is (the photo in progress dropped as at a Ctrl-C, the photos done kept)."""
    force, overwrite = plain_flag(force, "force"), plain_flag(overwrite, "overwrite")
    config = config_or_default(config)
    out_dir = output_folder(out_dir)
    items = _items_to_run(items, out_dir)
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise TypeError(f"jobs must be a whole number of at least 1, got {jobs!r}")
    for name, given in (("on_event", on_event), ("should_stop", should_stop)):
        if given is not None and not callable(given):
            raise TypeError(f"{name} must be a function or None, got {type(given).__name__}")
    if config.preview:  # a copy named as another's sheet: refused before any work
        mark_sheet_clashes(items)
    emit = on_event or (lambda event: None)
    stop = should_stop or (lambda: False)
    made = _folders_to_make(out_dir)
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
        # read under OUT's lock where OUT exists (where it does not, there is no record,
        # and one another run writes meanwhile is taken in by _after_another_run)
        had_record = os.path.lexists(out_dir / MANIFEST_NAME)
        result = _run_locked(items, out_dir, config, held, jobs, force, overwrite, emit,
                             stop, locked, unwritable)
        # still under OUT's lock; `made` names OUT by its absolute path, which must be
        # the folder the run wrote to (not so for `new/../x` with `new` missing); not a
        # folder made at OUT's name by another run since this one's went
        made_out = bool(made) and same_folder(out_dir, made[0])
        emptied = not result.out_folder_gone and (made_out or not had_record) and \
            _forget_empty_record(out_dir, made_out)
    if emptied and made_out:  # the lock file is gone now too
        _remove_made_folders(made)
    return result


def _items_to_run(items: Iterable[Item], out_dir: Path) -> list[Item]:
    """`items` as a list (a generator was used up by the first look at it, and the run
    did nothing, said as success), checked: plan()'s items, none run before (a second
    run of a list reported the first's counts as its own, and its cancelled photos were
    never resumed: plan again), each going into `out_dir` (planned for another OUT, each
    failed as "a link to outside")."""
    if isinstance(items, (str, os.PathLike)) or not isinstance(items, Iterable):
        raise TypeError(f"run() takes the items batch.plan() made, got "
                        f"{type(items).__name__}: run(plan(inputs, out), out, config)")
    items = list(items)
    for item in items:
        if not isinstance(item, Item):
            raise TypeError(f"run() takes the items batch.plan() made, got a "
                            f"{type(item).__name__} among them: run(plan(inputs, out), "
                            "out, config)")
        if item.status in (PROTECTED, CANCELLED):
            raise ValueError("these items were run before: plan them again to run them "
                             "again (batch.plan; the photos done are skipped, the rest "
                             "protected)")
        # as typed or as real (same_path.inside, real paths alone, took an item whose
        # folder under OUT is a link to elsewhere for another OUT's: that photo is refused
        # by the run itself, "not written through", not the whole run here)
        if item.dst is not None and not any(
                holds(spelt(out_dir), spelt(item.dst)) for spelt in (os.path.abspath,
                                                                     os.path.realpath)):
            raise ValueError(f"these items were planned for another output folder "
                             f"({item.dst} is not in {out_dir}): plan them for this one "
                             "(batch.plan(inputs, out))")
    return items


def _folders_to_make(out_dir: Path) -> list[Path]:
    """OUT and the folders above it that do not exist yet (a run makes them), deepest
    first, by their absolute paths (`..` taken as written)."""
    missing = []
    out_dir = Path(os.path.abspath(out_dir))
    for folder in (out_dir, *out_dir.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    return missing


def _forget_empty_record(out_dir: Path, made_out: bool) -> bool:
    """Remove the record this run wrote in OUT where it wrote no copy (every photo
    failed, or the run was stopped before the first copy): the record lists no copy, and
    where the run made OUT (`made_out`), OUT holds nothing else. Call with OUT's lock
    held, and only where OUT had no record before the run. True when it was removed."""
    try:
        names = set(os.listdir(out_dir))
    except OSError:
        return False
    record = Manifest(out_dir)
    if (made_out and names - {MANIFEST_NAME, JOURNAL_NAME, LOCK_NAME}) or record.entries \
            or record.found is not None:
        return False
    try:
        (out_dir / JOURNAL_NAME).unlink(missing_ok=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    except OSError:
        return False
    return True


def _remove_made_folders(made: list[Path]) -> None:
    """Remove the folders a run made (deepest first) where they are still empty: a file
    that another process put in one since keeps it, and the folders above it."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


def _run_locked(items: list[Item], out_dir: Path, config: ProtectConfig,
                held: contextlib.ExitStack, jobs: int, force: bool, overwrite: bool,
                emit: Callable[[Event], None], stop: Callable[[], bool],
                locked: bool = True, unwritable: OutputError | None = None) -> BatchResult:
    """run() once OUT is locked, or does not exist yet (`locked` False: `held` takes its
    lock before the first write, and what a run that got there first wrote is kept).
    `unwritable`: OUT can't be written (read-only): refused where there is work, before
    any model is loaded or fetched."""
    manifest = Manifest(out_dir)
    if locked:  # the folder this run's lock guards: nothing is written in another
        manifest.hold()
    if manifest.found is not None and manifest.found[0] == "newer":
        manifest.save()  # refused, naming the version, before any photo's own verdict
        # (each existing copy would read "not made by cloak ... pass --overwrite")
    folders = dict(manifest.folders)
    for item in items:  # saved with the manifest: later runs keep these mirrors
        if item.folder is not None:
            name, real = item.folder
            if not os.path.isdir(manifest.folders.get(name, "")):
                # new, or its folder gone from the place recorded and found here
                # (planning.Mirrors): recorded at its new place
                manifest.folders[name] = real
    if config.mask_path:
        _leave_out_the_mask(items, config.mask_path)
        _spare_the_mask(items, config.mask_path, config.preview)
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
        todo = _decide_all(items, manifest, settings, force, overwrite, config.preview,
                           also_done, emit, stop)
        if locked and (json.dumps(manifest.entries, sort_keys=True) != identities
                       or any(manifest.folders[name] != folder  # a mirror's folder moved
                              for name, folder in folders.items())):
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
                preload_models(config.replace(
                    faces=False, device="cpu" if pooled else config.device), fetched)
                if also_done is not None:  # the face detector is not on disk: fetched
                    # now, where allowed, as the models are, since there is work to do
                    config = faces_as_found(asked, fetched)
                settings = config.fingerprint()
            # Everything is fetched, or known missing and reported: the photos (and the
            # --jobs workers, new processes) only look, so nothing is retried per photo.
            config = config.replace(allow_download=False)
            try:  # fail now, not after the first photo, if OUT is not writable
                if not locked:
                    # OUT did not exist when this run began; another run may have made it
                    # and written its manifest meanwhile: lock, then keep its entries.
                    out_dir.mkdir(parents=True, exist_ok=True)
                    held.enter_context(output_folder_lock(out_dir))
                    manifest.hold()
                    locked = True
                    todo = _after_another_run(manifest, Manifest(out_dir), todo, settings,
                                              force, overwrite, config.preview, also_done,
                                              emit)
                manifest.save()
            except OSError as exc:
                raise _output_error(f"can't write to output folder {out_dir}: "
                                    f"{exc.strerror or exc}", exc.errno) from exc
            except OutputError as exc:  # the lock's own words say the folder already
                # (an OutputError as when OUT existed: one `except` catches both)
                raise _output_error(
                    str(exc) if str(exc).startswith("can't write to output")
                    else f"can't write to output folder {out_dir}: {exc}", exc.errno
                ) from exc
        emit(Event("todo", total=len(todo)))
        for folder in {out_dir} | {item.dst.parent for item in todo}:
            # under OUT's lock: no other run's temp files (and none outside OUT)
            if todo and os.path.isdir(folder) and inside(folder, out_dir):
                _remove_temp_files(folder)
        if not (jobs > 1 and len(todo) > 1):  # as `pooled` above
            # a last photo of a --jobs N run (one left, or resumed with one left) gets
            # a worker's cores/N threads, so its copy is the one the pool would make
            with _torch_threads(threads_per_job(jobs) if jobs > 1 else None):
                _run_here(todo, manifest, config, emit, stop)
        else:
            _run_pool(todo, manifest, config, jobs, emit, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _clean_up_after_run(items, manifest, out_dir, locked)
    # A stop asked during the last photo may cut only its figures (a JPEG is kept,
    # measured or not, once saved): the run was interrupted all the same.
    interrupted = interrupted or any(i.status == CANCELLED for i in items) or (
        bool(todo) and stop())
    return BatchResult(items, interrupted, settings=settings,
                       out_folder_gone=not manifest.still_held())


def _leave_out_the_mask(items: list[Item], mask_path: str) -> None:
    """The --mask file met among the photos (it sits in a folder given): skipped, not
    protected as a photo (it matches its own shape, so it was, into OUT)."""
    from .io import same_file

    for item in items:
        if item.status == "pending" and same_file(item.src, mask_path):
            item.status, item.message = SKIPPED, THE_MASK


def _spare_the_mask(items: list[Item], mask_path: str, preview: bool) -> None:
    """Fail a photo whose copy (or its --preview sheet) would be written over the --mask
    file: the mask is read by the run, never replaced, whatever --overwrite or --force
    allow (it was, and the run's later photos were protected with the copy as their
    mask, recorded as made with the mask)."""
    from .io import same_file

    for item in items:
        if item.status != "pending" or item.dst is None:
            continue
        for what, path in (("output", item.dst),
                           ("preview sheet", preview_path(item.dst) if preview else None)):
            if path is not None and same_file(path, mask_path):
                item.status = FAILED
                item.message = (f"its {what} {path} would replace the --mask file; "
                                "choose another --out folder, or keep the mask elsewhere")
                break


def _output_error(message: str, code: int | None) -> OutputError:
    error = OutputError(message)
    error.errno = code
    return error


def _decide_all(items: list[Item], manifest: Manifest, settings: dict, force: bool,
                overwrite: bool, preview: bool, also: dict | None,
                emit: Callable[[Event], None], stop: Callable[[], bool]) -> list[Item]:
    """The pending items still to protect, each decided against OUT's record and files
    (see _decide); the others are said done. A stop raises KeyboardInterrupt."""
    todo = []
    # OUT's record can't be read, or one that could not was set aside by an earlier run:
    # a copy there that the record does not list may still be cloak's (if it was there
    # before the record was set aside)
    unreadable = manifest.found is not None and manifest.found[0] == "unreadable"
    set_aside_at = None if unreadable else set_aside_time(manifest.out_dir)
    for item in items:
        if item.status == "pending":
            if stop():
                raise KeyboardInterrupt
            # (a redo killed before it wrote: the copy there as it was, done)
            entry = as_settled(manifest.get(item.dst), item.dst)
            if entry is None and (copy := _sheet_for(item.dst, manifest)) is not None:
                item.status = FAILED
                item.message = (f"output {item.dst} is the preview sheet cloak made for "
                                f"the copy {copy}, so it is not replaced even with "
                                "--overwrite; protect this photo into another --out "
                                "folder, or rename it")
                emit(Event("done", item))
                continue
            above = (_recorded_above(item, manifest) if entry is None
                     and not (force or overwrite) else None)
            _decide_or_fail(item, entry if above is None else above[1], settings,
                            force, overwrite,
                            preview, also, record_unreadable=unreadable or (
                                set_aside_at is not None
                                and _changed_before(item.dst, set_aside_at)))
            if preview and item.status == "pending" and _is_a_copy(
                    sheet := preview_path(item.dst), manifest):
                item.status = FAILED
                item.message = (f"its preview sheet's name, {sheet}, is another photo's "
                                "protected copy, so it is not replaced even with "
                                "--overwrite; protect this photo without --preview, or into "
                                "another --out folder")
            if above is not None and item.status != SKIPPED and matches_record(
                    item.dst, above[1].get("dst")) and (item.status == "pending" or not
                                                        same_settings(above[1].get(
                                                            "settings"), settings, also)):
                # cloak's copy there, other settings (or a redo asked for, to write its
                # --preview sheet): any work on it belongs to that folder's record, not
                # begun from here (a file changed since, or another photo's copy, keeps
                # _decide's words)
                item.status = FAILED
                item.message = _made_again_above(item.dst, *above, settings, also)
            if item.status != SKIPPED:
                _done_under_another_name(item, manifest, settings, also, force,
                                         overwrite, preview, items)
        elif item.shares_output:  # its copy may be the app's `a (1).jpg`, done
            _done_under_another_name(item, manifest, settings, also, force, overwrite,
                                     preview, items)
        if item.status == "pending":
            todo.append(item)
        else:
            emit(Event("done", item))
    return todo


def _clean_up_after_run(items: list[Item], manifest: Manifest, out_dir: Path,
                        locked: bool) -> None:
    """After a run, however it ended: items never reached are cancelled, stale temp
    files in OUT go (only under OUT's lock), and folders made for copies never written
    go where still empty."""
    for item in items:  # Ctrl-C may come before an item was even looked at
        if item.status == "pending":
            item.status, item.message = CANCELLED, "not done (interrupted)"
    # Temp files an earlier run left (killed while it wrote a copy or the manifest)
    # go too, even when this run had nothing to do: in OUT, the folders of this
    # run's photos and of the photos a run left unfinished (pending), whether named
    # again or not. Each folder once: 4,900 photos in one folder are one scan.
    if locked and not manifest.still_held():  # OUT went (another run's folder may be
        return  # at its name now): nothing there is this run's to remove or rewrite
    left_over = {out_dir} | {item.dst.parent for item in items if item.dst is not None}
    left_over |= {(out_dir / key).parent for key, entry in manifest.entries.items()
                  if isinstance(entry, dict) and entry.get("state") == "pending"}
    for folder in left_over if locked else ():  # a run refused by the lock (another
        # run holds OUT) must not touch that run's temp files
        if os.path.isdir(folder) and inside(folder, out_dir):
            _remove_temp_files(folder)
    # the folders made for copies that were not written (failed, stopped), where
    # still empty: a folder input's mirror is made before its first photo's attack
    made = {folder for item in items for folder in item.made_folders}
    for folder in sorted(made, key=lambda f: len(f.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: a copy, or another's file
            folder.rmdir()
            _forget_mirror(manifest, folder)
    if locked:  # last, after any save above: a finished run leaves the record whole, as
        # every cloak reads it (version 1), its journal folded in
        with contextlib.suppress(OSError, CloakError):  # (what fails stays in the journal)
            manifest.compact()


def _forget_mirror(manifest: Manifest, folder: Path) -> None:
    """After `folder`, a mirror's top folder (OUT/name) that a run made and removed again
    (no copy went in), the record gives up the name where it lists no copy under it: a
    folder of the user's made there later is theirs, not taken for cloak's mirror."""
    name = folder.name
    if folder.parent != manifest.out_dir or name not in manifest.folders:
        return
    if any(key == name or key.startswith(name + "/") for key in manifest.entries):
        return
    del manifest.folders[name]
    manifest.save()


def _folders_made_for(folder: Path, out_dir: Path) -> list[Path]:
    """`folder` (a copy's, under `out_dir`) and its parents below `out_dir` that do not
    exist yet, deepest first, as written (not made absolute: `link/../out` is not `out`
    where `link` leads elsewhere)."""
    missing = []
    for each in (folder, *folder.parents):
        if each == out_dir or os.path.lexists(each):
            break
        missing.append(each)
    return missing


def _make_folders_like(made: tuple[Path, ...], source: Path) -> None:
    """Make the folders `made` (a copy's folder and its missing parents, deepest first),
    each readable by no one its counterpart in the mirrored tree (`source`, the photo's
    folder, and its parents) is not readable by (atomic.mode_like): a private folder's
    mirror is private too. The umask applies."""
    sources = [source, *source.parents]
    for depth in reversed(range(len(made))):
        like = sources[depth] if depth < len(sources) else None
        made[depth].mkdir(mode=mode_like(like, dir_mode=True), exist_ok=True)


def _begin(item: Item, manifest: Manifest, settings: dict) -> None:
    """Create the output folder and mark the item pending in the manifest
    (OutputFolderGoneError where OUT is no longer the folder the run locked)."""
    manifest.check_held()
    item.begun_ns = time.time_ns()
    item.dst_before = file_stamp(item.dst)
    if (item.ours_stamp is not None and not item.replace  # (--overwrite: replaced anyway)
            and not same_stamp(item.dst_before, item.ours_stamp)):
        recorded = (manifest.get(item.dst) or {}).get("dst")
        if item.dst_before is None:  # deleted meanwhile: nothing there to keep
            item.ours_stamp = None
        elif isinstance(recorded, dict) and matches_record(item.dst, recorded):
            item.ours_stamp = item.dst_before  # still cloak's copy (chmod-ed, touched)
        elif _beside(item):
            raise OutputError(came_beside(item.dst))
        else:
            raise OutputError(f"output {item.dst} was changed while this run was busy "
                              "with other photos; pass --overwrite to replace it")
    if not inside(item.dst.parent, manifest.out_dir):
        # a folder under OUT that is a link to elsewhere: copies are written under OUT only
        raise OutputError(f"folder {item.dst.parent} is a link to outside {manifest.out_dir}; "
                          "cloak writes only inside the output folder")
    from .io import check_can_open

    # a photo the user may not read, said as protect_file says it (its identity below
    # read it first: "can't read or write", and its folders made for nothing)
    check_can_open(item.src)
    item.made_folders = tuple(_folders_made_for(item.dst.parent, manifest.out_dir))
    try:
        _make_folders_like(item.made_folders, item.src.parent)
        item.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"can't create folder {item.dst.parent}: "
                          f"{exc.strerror or exc}") from exc
    entry = {"state": "pending", "src": identity(item.src), "settings": settings,
             SHEETS_RECORDED: True}
    previous = manifest.get(item.dst)
    if previous and previous.get("dst") and matches_record(item.dst, previous["dst"]):
        # a redo (--force, a missing preview): until it writes, the file there is still
        # the copy cloak wrote before, and a killed redo must find it so
        entry["dst"] = previous["dst"]
        done = as_settled(previous, item.dst)  # (a redo of a redo killed before it wrote)
        if done is not None and done.get("state") == "done":
            # what that copy is, kept till the new copy is written: a redo killed before
            # then leaves it as it was, still done with its own settings (as_settled)
            entry[BEFORE] = {k: v for k, v in done.items() if k != BEFORE}
    earlier_sheet = (previous or {}).get("preview") or (previous or {}).get("earlier_preview")
    if earlier_sheet and not earlier_sheet.get(ADOPTED):  # cloak's sheet of the earlier
        # copy, removed once the new copy is written without one (kept if this redo
        # fails: the earlier copy stays too)
        entry["earlier_preview"] = earlier_sheet
    manifest.set(item.dst, entry)


def _finish(item: Item, manifest: Manifest, previous: dict | None, outcome) -> None:
    """Record an outcome: a Report, or an exception."""
    if isinstance(outcome, Report):
        item.status, item.report = PROTECTED, outcome
        entry = manifest.get(item.dst)  # (hashed once: as written, _record_written)
        entry.pop(BEFORE, None)
        entry.update(state="done", dst=identity(item.dst, entry.get("dst")))
        if (verdict := outcome.to_dict()["verdict"]) is not None:  # as saved
            entry["verdict"] = verdict
        if outcome.preview and os.path.isfile(outcome.preview):  # its sheet is cloak's too
            entry["preview"] = identity(Path(outcome.preview))
            entry.pop("earlier_preview", None)
        elif _older_sheet(sheet := preview_path(item.dst), entry):
            # redone without --preview: the sheet of the copy just replaced (its change
            # and budget map, other settings) would stand beside this one as its own
            try:
                sheet.unlink(missing_ok=True)
                entry.pop("earlier_preview", None)
            except OSError as exc:  # still recorded: a later --preview run replaces it
                log.info("could not remove %s, the earlier copy's sheet: %s", sheet, exc)
        manifest.set(item.dst, entry)
        return
    _abandon(item, manifest, previous, outcome)
    if isinstance(outcome, Cancelled):
        item.status, item.message = CANCELLED, "not done (interrupted)"
    elif isinstance(outcome, OutputExistsError) and _beside(item):
        # not "pass --overwrite": beside the original, that would not replace it either
        item.status, item.message = FAILED, came_beside(Path(outcome.path))
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
    except OutputFolderGoneError as exc:
        item.status, item.message = FAILED, str(exc)
        _take_back_stray_copy(item, outcome)
        return (f"the output folder {manifest.out_dir} was removed, moved or replaced "
                "during the run")
    except (OSError, CloakError) as exc:
        why = getattr(exc, "strerror", None) or exc
        done = "protected, but " if isinstance(outcome, Report) else ""
        item.status, item.message = FAILED, (
            f"{done}can't update {manifest.path} ({why}); the run stopped here")
        return f"{manifest.path} can't be updated"
    if isinstance(outcome, OutputFolderGoneError):  # _begin's, or the copy's save
        return (f"the output folder {manifest.out_dir} was removed, moved or replaced "
                "during the run")
    if isinstance(outcome, OutputError) and outcome.errno in FOLDER_STOPS:  # a write
        return (f"the disk holding {item.dst.parent} {FOLDER_STOPS[outcome.errno]} (free "
                "some space, or choose another --out, and run again to do the rest)")
    return None


def _take_back_stray_copy(item: Item, outcome=None) -> None:
    """Remove the copy this run wrote for `item` into a folder at OUT's name that is no
    longer the one it locked (made again there, by another run, during the attack): not
    left for that run to refuse as "not made by cloak". Only while it is that very file;
    and its preview sheet (a Report's `preview`), where it is cloak's and was written
    since the photo began."""
    if item.written_stamp is None or not same_stamp(file_stamp(item.dst),
                                                    item.written_stamp):
        return
    with contextlib.suppress(OSError):
        item.dst.unlink()
    sheet = getattr(outcome, "preview", None)
    if sheet and item.begun_ns is not None:
        with contextlib.suppress(OSError):
            if os.lstat(sheet).st_ctime_ns >= item.begun_ns and is_cloak_sheet(Path(sheet)):
                os.unlink(sheet)


def _not_started(items: Iterable[Item], why: str, emit: Callable[[Event], None]) -> None:
    for item in items:
        item.status = FAILED
        item.message = f"not started: {why}"
        emit(Event("done", item))


def _abandon_unless_gone(item: Item, manifest: Manifest, previous: dict | None,
                         outcome: BaseException) -> None:
    """_abandon on the way out of a run (a Ctrl-C, the caller's exception), which goes on
    out as it was: OUT gone meanwhile (nothing more is written there) does not replace it
    with OutputFolderGoneError. The copy written, if any, is taken back as _record does."""
    try:
        _abandon(item, manifest, previous, outcome)
    except OutputFolderGoneError:
        _take_back_stray_copy(item)


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
            (now := file_stamp(item.dst)) is not None and not same_stamp(now, item.dst_before):
        # it may have died after writing its copy (the pool ends every worker when one
        # dies; a stop sent to the whole process group ends them all): the entry stays
        # pending, and the next run tells by cloak's note whether the file there is
        # cloak's, as after a killed run
        entry = manifest.get(item.dst)
        if entry is not None and not (isinstance(entry.get("dst"), dict) and
                                      matches_record(item.dst, entry["dst"])):
            # (kept where it is the copy now there: recorded as it was written)
            entry.pop("dst", None)
            manifest.set(item.dst, entry)
        return
    if not (written and os.path.abspath(written) == os.path.abspath(item.dst)) or \
            file_stamp(item.dst) is None:
        manifest.set(item.dst, previous)
        return
    entry = manifest.get(item.dst)
    if entry is not None:
        try:
            entry["dst"] = identity(item.dst)
        except OSError:
            return
        manifest.set(item.dst, entry)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CloakError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"can't read or write{where}: {output_reason(exc)}"
    if is_out_of_memory(exc):
        # every preset but high attacks at 512 px: a lower one needs no less memory
        return out_of_memory_message(exc, "to protect this photo", "protect a smaller copy "
                                     "(--strength high needs the most)")
    return f"unexpected error ({type(exc).__name__}: {exc}); please report it"


def _protect_one(item: Item, config: ProtectConfig, progress, should_stop,
                 on_written: Callable[[Path], None] | None = None) -> Report:
    from .api import protect_file

    # its folder was made by _begin: one removed during the attack is not made again
    # (OUT with it, as a folder no lock of this run's guards)
    return protect_file(item.src, item.dst, config, overwrite=_may_replace(item),
                        progress=progress, should_stop=should_stop, on_written=on_written,
                        make_folders=False)


def _record_written(item: Item, manifest: Manifest, path: str | Path) -> None:
    """Give `item`'s pending entry the identity of its copy the moment it is written,
    before it is measured and its sheet made (seconds): a run killed meanwhile left a copy
    without cloak's note (a BMP, --no-ai-notice) that the next run could not tell from a
    user's file, and refused ("pass --overwrite"). Best effort: _record says a record that
    can't be written."""
    if os.path.abspath(path) == os.path.abspath(item.dst):
        item.written_stamp = file_stamp(item.dst)
    entry = manifest.get(item.dst)
    if not entry or entry.get("state") != "pending":
        return
    try:  # the copy it replaced is gone: its entry too
        manifest.set(item.dst, {**{k: v for k, v in entry.items() if k != BEFORE},
                                "dst": identity(Path(path))})
    except (OSError, CloakError) as exc:
        log.debug("could not record %s as written: %s", path, exc)


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
        return stamp is not None and same_stamp(file_stamp(Path(path)), stamp)

    return still_ours


def _run_here(todo: list[Item], manifest: Manifest, config: ProtectConfig,
              emit: Callable[[Event], None], stop: Callable[[], bool]) -> None:
    settings = config.fingerprint()
    for position, item in enumerate(todo):
        if stop():
            return
        emit(Event("start", item))
        previous = manifest.get(item.dst)
        raised_by_caller: list[BaseException] = []

        def progress(fraction: float, _message: str, item: Item = item,
                     raised_by_caller: list[BaseException] = raised_by_caller) -> None:
            try:
                emit(Event("progress", item, fraction))
            except BaseException as exc:
                raised_by_caller.append(exc)
                raise

        try:
            _begin(item, manifest, settings)
            with naming(item.src):
                outcome = _protect_one(
                    item, config, progress, stop,
                    lambda path, item=item: _record_written(item, manifest, path))
        except KeyboardInterrupt as exc:
            _abandon_unless_gone(item, manifest, previous, exc)
            raise
        except Exception as exc:  # one bad photo must not end the batch
            if any(exc is theirs for theirs in raised_by_caller):
                # the caller's on_event raised: their error to see, not this photo's
                # failure (nor cloak's bug to report); the photo is dropped as at Ctrl-C
                _abandon_unless_gone(item, manifest, previous, exc)
                raise
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


class _ToParent(logging.Handler):
    """In a worker: a log record goes to the parent through the progress queue, as
    (None, level, "PHOTO: message", named by NamePhoto); _drain logs it there."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # one line, as the parent prints it (escaped there): a captured warning's
            # source line left off, not the rest of a message a name with a newline cut
            text = record.getMessage().strip()
            if record.name == "py.warnings":
                text = (text.splitlines() or [""])[0]
            _worker_queue.put((None, record.levelno, text))
        except Exception:  # noqa: BLE001 - logging must never raise (handleError reports it)
            self.handleError(record)


def _init_worker(threads: int, stop_event, progress_queue) -> None:
    global _worker_stop, _worker_queue
    # The parent decides when to stop. (SIGTERM keeps its default: the pool ends a
    # broken pool's other workers with it, and a service manager's stop of the whole
    # group ends them while the parent stops the run.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):  # the terminal closed: the parent stops the run too
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _exit_with_parent()
    _worker_stop, _worker_queue = stop_event, progress_queue
    # Warnings (EXIF, faces...) go to the parent, which prints them as its own (above its
    # progress bar, names escaped); each names its photo, as several workers interleave.
    logging.getLogger().addHandler(name_photos(_ToParent()))
    logging.getLogger().setLevel(logging.WARNING)
    from .io import pixel_limit

    io_log = logging.getLogger("cloak.io")  # a bad CLOAK_MAX_PIXELS: the parent said so
    io_log.disabled = True  # once; each worker's first read of it (cached) is silent
    try:
        pixel_limit()
    finally:
        io_log.disabled = False
    logging.captureWarnings(True)  # Pillow's "Corrupt EXIF data" too, with its photo
    import torch

    from .allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(threads)


def _work(index: int, item: Item, config: ProtectConfig):
    """Runs in a worker: returns a Report or the exception (never raises)."""
    last = [0.0]

    def progress(fraction: float, _message: str) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1:
            last[0] = fraction
            _worker_queue.put((index, fraction))

    try:
        with naming(item.src):
            return _protect_one(item, config, progress, _worker_stop.is_set,
                                lambda path: _worker_queue.put((index, "written", str(path))))
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
    if sys.platform == "win32":  # (a caller's jobs over it: the pool would refuse them)
        jobs = min(jobs, WINDOWS_MAX_JOBS)
    ctx = multiprocessing.get_context("spawn")  # fork after torch has threads is unsafe
    stop_event, progress_queue = ctx.Event(), ctx.Queue()
    threads = threads_per_job(jobs)
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
            _drain(progress_queue, todo, emit,
                   written=lambda item, path: _record_written(item, manifest, path))
            for future in finished:
                item, previous = running.pop(future)
                try:
                    outcome = future.result()
                except (cf.BrokenExecutor, cf.CancelledError) as exc:
                    outcome = _lost_worker(exc, stop_event, stop)
                record(item, previous, outcome)
    except BaseException:  # a Ctrl-C, or an exception the caller's on_event raised:
        # the photos running stop, each recorded as it ends (dropped, or done if written)
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
           logs_only: bool = False,
           written: Callable[[Item, str], None] | None = None) -> None:
    """What the workers sent: progress reports (index, fraction) become `progress`
    events (not with `logs_only`: the run is over), a copy written (index, "written",
    path) goes to `written`, and their log records (None, level, message) are logged
    here, where the CLI prints them."""
    while True:
        try:
            message = progress_queue.get_nowait()
        except (queue.Empty, OSError, ValueError):  # empty, or closed with the pool
            return
        if message[0] is None:
            log.log(message[1], "%s", message[2])
        elif len(message) == 3:
            if written is not None:
                written(todo[message[0]], message[2])
        elif not logs_only:
            emit(Event("progress", todo[message[0]], message[1]))
