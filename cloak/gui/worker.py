"""The background worker: a QObject moved to a QThread that calls `cloak.protect_file`.

It reports only through signals, so the window never blocks and never touches a tensor.
Cancel with `cancel()` (thread-safe): the photo in progress stops at its next attack step,
nothing is written for it, and the photos after it are reported as cancelled.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal, Slot

from cloak import Cancelled, CloakError, OutputError, ProtectConfig, Report
from cloak.atomic import check_folder_writable, mode_like
from cloak.batch import FOLDER_STOPS  # a full or read-only disk: the folder fails
from cloak.errors import (
    ModelError,
    OutputExistsError,
    is_out_of_memory,
    out_of_memory_message,
)
from cloak.io import output_path_for
from cloak.manifest import fold_journal, give_up_unfinished
from cloak.naming import about
from cloak.report import VERDICTS, verdict_for
from cloak.same_path import stat_key

from .paths import unique_destination
from .photo_notes import about_the_photo, photo_notes
from .signals import emit
from .wording import for_the_app

log = logging.getLogger(__name__)

NAME_ATTEMPTS = 3  # free names tried when another program takes each one meanwhile
# copies written and not yet done with by any worker of this process (absolute paths): an
# unfinished entry names this process as its writer, so another window's worker would
# take a copy still being measured for a killed session's (unfinished_copy)
IN_HAND: set[str] = set()
IN_HAND_LOCK = threading.Lock()
# true whatever is chosen later: the status bar says when a setting chosen since differs
ALREADY_PROTECTED = "already protected earlier, with the settings chosen then"
PROTECTION_LOST = "protection mostly lost"  # describe()'s words for a "none" verdict
FACES_OFF_NOTICE = ("Face priority is off: the face detector could not be found, "
                    "downloaded or run, so faces get no extra protection")
WEIGHTS_MISSING_NOTICE = "No photo can be protected until the models are there: "


def faces_off_notice() -> str:
    """FACES_OFF_NOTICE, with where the log that says why is (a desktop user was sent to
    "the log" with no word of where it is)."""
    where = log_file()
    return FACES_OFF_NOTICE + (f" (why: see {where})" if where else
                               " (run cloak gui from a terminal to see why)")


@dataclass(frozen=True)
class Job:
    """One photo to protect: its index in the window's list, source and output folder."""

    index: int
    src: Path
    out_dir: Path
    chosen: bool = False  # out_dir is the user's Save-to folder: it must be there, never made
    # the mount point the chosen folder was on when it was chosen ("" for the system
    # disk's): unmounted since (after Protect was clicked), the empty folder left at its
    # place is not written to: the copies would go, hidden, to the disk below
    mount: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the window shows for a protected photo."""

    src: Path
    dst: Path
    report: Report | None  # None: the copy was written, measuring it then failed
    status: str
    config: ProtectConfig | None = None  # what it was protected with (its budget map)
    src_stamp: tuple[int, int, int] | None = None  # source_stamp of the photo it was made from
    # an earlier session's copy: the verdict its folder's record keeps (None: none kept)
    recorded_verdict: str | None = None
    # what the copy could not keep, as cloak warned while making it (photo_notes)
    notes: tuple[str, ...] = ()

    @property
    def protection_lost(self) -> bool:
        """Whether the copy carries little protection: verify's "none" (under 0.5 dB on
        the weakest model) as saved, after Instagram-style posting, or as recorded."""
        weakest = self.report.min_damage_db if self.report is not None else None
        return (PROTECTION_LOST in self.status or self.recorded_verdict == "none"
                or (weakest is not None and verdict_for(weakest) == "none"))


def no_longer_there(folder: Path) -> str:
    return f"the Save-to folder {folder} is no longer there; choose it again"


def not_a_folder(folder: Path) -> str:
    return f"the Save-to folder {folder} is a file, not a folder; choose a Save-to folder"


def moved_during_the_run(folder: Path) -> str:
    return (f"the Save-to folder {folder} was moved, renamed or unmounted during the run "
            "(the folder at its name now is another one); choose it again")


def not_connected(folder: Path, mount: str) -> str:
    return (f"the Save-to folder {folder} can't be reached (its disk or share, {mount}, is "
            "not connected): connect it, or choose it again")


def _folder_id(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of `folder`, or None where it is not there."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def recorded_verdict(copy: Path, out_dir: Path) -> str | None:
    """The verdict (verify's word) that `out_dir`'s manifest keeps for the earlier copy
    `copy` (earlier_copy's), or None where it keeps none."""
    from cloak.manifest import read_only

    verdict = (read_only(out_dir).get(copy) or {}).get("verdict")
    return verdict if verdict in (*(name for name, _ in VERDICTS), "none") else None


def gone_or_unreadable(path: Path) -> str | None:
    """Why a listed photo can't be protected now, found before any work: gone (moved,
    renamed, its disk unplugged), or its folder no longer searchable (a permission that
    changed since it was listed, said as such, not as gone); None where it is there."""
    try:
        os.lstat(path)
    except PermissionError:
        return ("permission denied (a folder on its path can't be searched); allow "
                "reading it, or move the photo, and add it again")
    except (OSError, ValueError):
        return "no longer there (moved, renamed or its disk unplugged); add it again"
    return None


def _identity_or_none(path: Path) -> dict | None:
    """manifest.identity(path), or None where it can't be read (protect_file says why)."""
    from cloak.manifest import identity

    try:
        return identity(path)
    except OSError:
        return None


def source_stamp(path: Path) -> tuple[int, int, int] | None:
    """(size, modification time, change time; in ns) of the photo at `path`, or None where
    it can't be read: whether it was edited (cropped, say) since its copy was made. The
    change time moves with an edit in place that keeps the size and the modification
    time (`exiftool -P`); a chmod moves it too, and the earlier copy is then found again
    by its sha256 (earlier_copy), not protected twice."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


# Share of a photo's progress bar at which its posting check starts (seconds of work on a
# CPU without native bf16: the bar is not left full meanwhile).
POSTING_CHECK_FROM = 0.9


def posting_damage(report: Report, config: ProtectConfig | None = None,
                   should_stop: Callable[[], bool] | None = None) -> float | None:
    """The weakest model's damage (dB) on the protected copy after Instagram-style posting,
    as `cloak.verify` measures it, or None when protection was not measured (the run used
    `measure=False`). The models come from `config`'s weights folder and device, as the
    protection's did. `should_stop` (asked between models) raises Cancelled."""
    if not report.damage_db or not report.src or not report.dst:
        return None
    from .. import io
    from ..verify import photo_image, verify_images

    def as_image(path: str):  # a PIL image, RGBA when it has alpha: see apply_channel
        return photo_image(io.load_photo(path))

    config = config or ProtectConfig()
    result = verify_images(as_image(report.src), as_image(report.dst),
                           channels=("instagram",), models=tuple(report.damage_db),
                           model_dir=config.model_dir, device=config.device,
                           figures=False, should_stop=should_stop)
    return result.worst.min_damage_db


def copy_verdict(report: Report, posted_db: float | None) -> str | None:
    """verify's word for the copy's weakest model, as saved or after Instagram-style
    posting (`posted_db`), whichever is lower; None when protection was not measured."""
    measured = [db for db in (report.min_damage_db, posted_db) if db is not None]
    return verdict_for(min(measured)) if measured else None


def describe(report: Report, posted_db: float | None = None) -> str:
    """The one-line status of a protected photo: its weakest model's damage as saved and,
    given `posted_db` (posting_damage's), after Instagram-style posting with verify's
    verdict on it."""
    from ..report import shown_db, verdict_for

    weakest = report.min_damage_db
    if weakest is None:
        return f"protected — PSNR {report.psnr:.1f} dB ({report.seconds:.1f} s)"
    posted = ""
    if posted_db is not None:
        verdict = verdict_for(posted_db)
        posted = (f"; after Instagram-style posting {shown_db(posted_db, places=1)} dB, "
                  + (PROTECTION_LOST if verdict == "none" else verdict))
    if verdict_for(weakest) == "none":  # as saved: why the row is amber (a trial)
        posted = f" ({PROTECTION_LOST} as saved)" + posted
    return (f"protected — damage {shown_db(weakest, places=1)} dB on weakest model{posted}, "
            f"PSNR {report.psnr:.1f} dB ({report.seconds:.1f} s)")


def plain_message(exc: Exception) -> str:
    """A short, plain-words reason for a failed photo."""
    if isinstance(exc, CloakError):
        return for_the_app(str(exc))
    if is_out_of_memory(exc):
        return out_of_memory_message(exc, "for this photo", "protect a smaller copy "
                                     "(strength High needs the most)",
                                     "set CLOAK_DEVICE=cpu before starting the app")
    if isinstance(exc, OSError) and exc.strerror:
        return f"could not read or write the file ({exc.strerror})"
    where = log_file()
    return (f"unexpected error ({type(exc).__name__}); details are in "
            f"{where or 'the log (run cloak gui from a terminal to see it)'}")


def log_file() -> str | None:
    """The file the app logs to (app.log_to_file), if any."""
    from .app import LOG_HANDLER_NAME

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.get_name() == LOG_HANDLER_NAME:
            return handler.baseFilename
    return None


class ProtectWorker(QObject):
    """Protects `jobs` one after another with `config`; never overwrites a file."""

    started = Signal(int)                  # index: this photo is now being protected
    progress = Signal(int, float, object)  # index, fraction in [0, 1], what is happening
    protected = Signal(int, object)        # index, Outcome
    failed = Signal(int, object)           # index, message in plain words
    cancelled = Signal(int)                # index: not protected because of cancel
    finished = Signal()                    # the whole batch is over (done or cancelled)
    notice = Signal(object)                # something the user should know about the run

    def __init__(self, jobs: list[Job], config: ProtectConfig) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self.config = config
        self._stop = threading.Event()
        self._current = -1
        self._weights_error: str | None = None  # weights missing: the same for every photo
        self._asked: ProtectConfig | None = None  # config as asked (faces on or off)
        self._also_done: dict | None = None  # settings_to_accept: copies made as asked
        self._faces_fetched = False  # the face detector fetched (or tried) this run
        self._gpu_told = False  # and the one for a GPU this torch build can't run
        self._folder_errors: dict[Path, str] = {}  # output folders found not writable
        # each output folder as first found (device, inode): one renamed, deleted or
        # unmounted during the run is not taken for the folder made again at its name
        self._folder_ids: dict[Path, tuple[int, int]] = {}
        # and held open for the run: a FAT or exFAT card's driver gives a folder a new
        # inode number once the kernel's cache lets it go (each photo then failed as
        # "moved during the run", its copy removed); one held keeps its number
        self._held: list[int] = []
        self._swept: set[Path] = set()  # Save-to folders cleared of stale temp files
        # copies this run wrote or showed: a later photo with the same bytes (a duplicate
        # from another folder) gets its own copy, not "protected in an earlier session"
        # with the first one's
        self._made: set[str] = set()  # absolute paths of this run's copies
        self._written: dict[Path, tuple[int, int]] = {}  # each copy's identity as written
        self._identities: dict[Path, dict] = {}  # and as recorded then (its sha256)
        self._recorded_in: set[Path] = set()  # folders whose record this run appended to
        # folders a `cloak protect` run was found writing to: its copies there are not
        # recorded (said once); later records there do not wait for the lock
        self._run_holds: set[Path] = set()
        self._in_hand: set[str] = set()  # this photo's copy, while in IN_HAND

    def cancel(self) -> None:
        """Ask the run to stop at the next attack step. Safe from any thread."""
        self._stop.set()

    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    @Slot()
    def run(self) -> None:
        """Protect every job (runs in the worker thread)."""
        created: list[Path] = []
        try:
            for job in self.jobs:
                if self._stop.is_set():
                    emit(self.cancelled, job.index)
                    continue
                try:
                    with about(job.src):  # its warnings name it, in the app's log
                        self._protect_one(job, created)
                except Exception as exc:  # a failure in its own error handling (an odd
                    # path that can't even be checked): that photo fails, the rest go on
                    log.exception("protecting %s failed", job.src)
                    emit(self.failed, job.index, plain_message(exc))
        finally:
            for folder in reversed(created):  # leave no empty output folder behind
                try:
                    folder.rmdir()
                except OSError:
                    pass
            for copy in list(self._identities):  # copies recorded as written and not
                # as done (measuring failed, a cancel): no longer this session's work
                give_up_unfinished(copy, self._lock_wait(copy.parent))
            for folder in self._recorded_in:  # each copy's entry was appended: the
                # folder is left with its record alone
                fold_journal(folder, self._lock_wait(folder))
            while self._held:
                os.close(self._held.pop())
            emit(self.finished)

    def _protect_one(self, job: Job, created: list[Path]) -> None:
        """_protect_photo; the copy it wrote is in hand (IN_HAND) until it ends."""
        try:
            self._protect_photo(job, created)
        finally:
            with IN_HAND_LOCK:
                IN_HAND.difference_update(self._in_hand)
            self._in_hand.clear()

    def _protect_photo(self, job: Job, created: list[Path]) -> None:
        """Protect one photo to a free name in its folder, telling its row: protected
        (or already, in an earlier session), failed, or cancelled."""
        self._current = job.index
        emit(self.started, job.index)
        stamp = source_stamp(job.src)  # the photo as this copy is made from it
        settings: dict = {}
        source: dict | None = None
        notes: list[str] = []
        try:
            from cloak.batch import settings_to_accept
            from cloak.manifest import earlier_copy

            if self._asked is None:  # once a run: faces as the face detector on disk allows
                self._asked = self.config
                self.config, self._also_done = settings_to_accept(self.config)
            settings = self.config.fingerprint()
            earlier = earlier_copy(job.src, job.out_dir, settings, self._also_done,
                                   skip=self._made)
            if earlier is not None:  # protected in an earlier session, with these settings
                # a photo with the same bytes: not this copy
                self._made.add(os.path.abspath(earlier))
                emit(self.protected, job.index, Outcome(
                    job.src, earlier, None, ALREADY_PROTECTED, self.config, stamp,
                    recorded_verdict(earlier, job.out_dir)))
                return
            if self._weights_error is not None:  # no download attempt (and wait) per photo
                emit(self.failed, job.index, self._weights_error)
                return
            if (gone := gone_or_unreadable(job.src)) is not None:  # not its protected/
                emit(self.failed, job.index, f"{job.src}: {gone}")  # folder made for nothing
                return
            self._make_folder(job.out_dir, created, make=not job.chosen, mount=job.mount)
            settings = self._prepare_models()
            source = _identity_or_none(job.src)  # the photo the copy is made from, as
            # recorded: one edited during the attack is not this copy's (the CLI too)
            with photo_notes(notes):  # said on its row, not only in the log
                report, dst = self._protect_to_free_name(job, settings, source)
        except Cancelled:
            emit(self.cancelled, job.index)
        except Exception as exc:  # noqa: BLE001 - every failure belongs on its photo's
            # row (_failed logs any not cloak's)
            self._failed(job, exc, settings, stamp, source)
        else:
            self._finished(job, dst, report, settings, stamp, source,
                           tuple(about_the_photo(note, job.src) for note in notes))

    def _prepare_models(self) -> dict:
        """Fetch what the run needs (the face detector once a batch, where it is not on
        disk; the autoencoders on first use, their progress on the photo's row) and say
        once that a GPU too old for this torch build is passed over. Returns the settings
        the copies are made and recorded with."""
        from cloak.batch import faces_as_found, preload_models
        from cloak.models.fetch import stops_downloads

        faces_off = False  # no face detector: said once the models are there
        # the batch's, not the photo's: its log lines (the face detector's) name no photo
        with about(None), stops_downloads(self._stop_if_cancelled):
            if self._also_done is not None and not self._faces_fetched:
                # not on disk: fetched now, where allowed, as there is a photo to
                # protect; copies record whether face priority ran
                from cloak.models.weights import retry_face_detector_download

                self._faces_fetched = True
                retry_face_detector_download()  # once a batch: the network may be back
                self.config = faces_as_found(self._asked, self._on_download)
                faces_off = not self.config.faces
            try:
                preload_models(self.config, self._on_download)
            except ModelError as exc:
                # the batch's one blocker, said for the window (each row says it too),
                # not the face detector's absence, which then changes nothing
                self._weights_error = plain_message(exc)
                emit(self.notice, WEIGHTS_MISSING_NOTICE + self._weights_error)
                raise
            if faces_off:  # the models are there: the copies lack only that
                emit(self.notice, faces_off_notice())
        if not self._gpu_told:  # a GPU too old for this torch build: on the CPU
            from cloak.device import cuda_unusable_reason

            self._gpu_told = True
            if self.config.device is None and (reason := cuda_unusable_reason()):
                emit(self.notice, reason[0].upper() + reason[1:] + ".")
        return self.config.fingerprint()

    def _protect_to_free_name(self, job: Job, settings: dict, source: dict | None
                              ) -> tuple[Report, Path]:
        """protect_file to the next free name in the photo's folder; a name another
        program takes during the attack is given up for the next one (NAME_ATTEMPTS).
        A copy an earlier session wrote and never recorded as done (killed while it
        was measured) is protected again at its own name, while it is still that file.
        `settings` and `source` (the photo's identity) are recorded with the copy."""
        from cloak.api import protect_file
        from cloak.manifest import file_stamp, same_stamp, unfinished_copy

        with IN_HAND_LOCK:  # not a copy another window of this app is measuring
            skip = self._made | IN_HAND
        again = unfinished_copy(job.src, job.out_dir, settings, self._also_done, skip=skip)
        for attempt in range(1, NAME_ATTEMPTS + 1):
            overwrite = False
            if again is not None:  # replaced only while it is still that earlier copy
                dst, stamp = again, file_stamp(again)
                overwrite = lambda path, stamp=stamp: (
                    same_stamp(file_stamp(Path(path)), stamp))
            else:  # GIF -> .png, MPO -> .jpg, ...: the suffix names the format written
                dst = unique_destination(job.out_dir,
                                         output_path_for(job.src, job.out_dir).name)
            try:
                # made already: one gone during the attack is not made again by the
                # save (nor the path to it: a renamed or unmounted photos' folder)
                report = protect_file(
                    job.src, dst, self.config, overwrite=overwrite,
                    progress=self._on_progress, should_stop=self._stop.is_set,
                    make_folders=False,
                    on_written=lambda path: self._note_written(path, job, settings, source))
                return report, dst
            except OutputExistsError as exc:
                if attempt == NAME_ATTEMPTS or Path(exc.path) != dst:
                    raise
                again = None  # (the earlier copy was changed meanwhile: kept)
                # Another program (a second window, a CLI run) took the free name
                # while this photo was protected: the next free one is used instead.
                log.info("%s was taken meanwhile; protecting again to the next name", dst)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _failed(self, job: Job, exc: Exception, settings: dict, stamp,
                source: dict | None = None) -> None:
        """Tell the photo's row why it failed; a folder that can't take copies fails the
        run's later photos going there at once (_folder_errors)."""
        from cloak.manifest import record_copy

        if not isinstance(exc, CloakError):
            log.exception("protecting %s failed", job.src)
        written = getattr(exc, "written", None)
        if written is not None:
            # protect_file wrote the copy, then a later step failed. After out of
            # memory in the lossy copy's measuring the copy is whole, and recorded, so
            # a later session does not protect it again; after another failure (the
            # copy could not be read back) it is shown, and recorded as unfinished
            # only (_note_written): a later session protects it again to its name.
            self._written.pop(Path(written), None)
            as_recorded = self._identities.get(Path(written))
            if is_out_of_memory(exc):
                self._identities.pop(Path(written), None)
                self._check_recorded(Path(written), record_copy(
                    job.src, Path(written), settings, src_identity=source,
                    written=as_recorded, wait_s=self._lock_wait(Path(written).parent)))
                self._recorded_in.add(Path(written).parent)
                self._made.add(os.path.abspath(written))
            emit(self.protected, job.index, Outcome(
                job.src, Path(written), None, "protected, but measuring the saved copy "
                "failed: " + plain_message(exc), self.config, stamp))
            return
        if isinstance(exc, OutputError) and exc.errno in (
                errno.ENOENT, errno.ENOTDIR) and not job.out_dir.is_dir():
            # deleted, renamed or unmounted during its attack (protect_file made
            # nothing). A chosen Save-to folder fails the run's later photos going
            # there too; a default protected/ folder is made again for them.
            if not job.chosen:
                emit(self.failed, job.index, f"the folder {job.out_dir} went while this "
                     "photo was protected (deleted, moved, or its disk unplugged), so "
                     "its copy was not written; protect it again")
                return
            self._folder_errors[job.out_dir] = (
                no_longer_there if exc.errno == errno.ENOENT else not_a_folder)(job.out_dir)
            emit(self.failed, job.index, self._folder_errors[job.out_dir])
            return
        if isinstance(exc, OutputError) and exc.errno in FOLDER_STOPS:
            # the probe's empty file fits on a full disk; the photo did not: the
            # run's other photos going there fail at once, not after their attacks,
            # each saying so of the folder (not naming this photo's file)
            state = FOLDER_STOPS[exc.errno]
            remedy = ("free some space or choose another Save-to folder"
                      if state == "is full" else "choose a Save-to folder you can "
                      "write to")
            self._folder_errors.setdefault(
                job.out_dir, f"the disk holding {job.out_dir} {state}; {remedy}")
            emit(self.failed, job.index, f"{plain_message(exc)}; {remedy}")
            return
        emit(self.failed, job.index, plain_message(exc))

    def _finished(self, job: Job, dst: Path, report: Report, settings: dict, stamp,
                  source: dict | None = None, notes: tuple[str, ...] = ()) -> None:
        """Record the copy (a later session skips it, with its verdict) and show it.
        `source`: the photo's identity read before the attack (None: read now); `notes`:
        what the copy could not keep, shown on its row."""
        from cloak.manifest import record_copy

        written = self._written.pop(dst, None)  # its identity as written
        as_recorded = self._identities.get(dst)
        if job.chosen and self._moved_while_writing(job.out_dir, dst, written):
            return
        # a later session skips it; with its verdict as saved, known now: an app killed
        # during the posting check left the copy recorded with none, shown as fine later
        recorded = self._check_recorded(dst, record_copy(
            job.src, dst, settings, copy_verdict(report, None), src_identity=source,
            written=as_recorded, wait_s=self._lock_wait(dst.parent)))
        if recorded:  # (not: its unfinished entry is given up as the batch ends)
            self._identities.pop(dst, None)
        self._recorded_in.add(dst.parent)
        self._made.add(os.path.abspath(dst))
        posted_db = self._posted_damage(report)
        if recorded and (verdict := copy_verdict(report, posted_db)) is not None:
            # shown when a later session meets the copy again
            record_copy(job.src, dst, settings, verdict, entry=recorded,
                        wait_s=self._lock_wait(dst.parent))
        status = describe(report, posted_db)
        emit(self.progress, job.index, 1.0, "done")  # the posting check too
        emit(self.protected, job.index, Outcome(job.src, dst, report, status,
                                                self.config, stamp, notes=notes))

    def _hold(self, folder: Path) -> None:
        """Keep `folder` open until the run ends (not where the system can't open a folder:
        Windows keeps a folder's identity anyway)."""
        if hasattr(os, "O_DIRECTORY"):
            with contextlib.suppress(OSError):
                self._held.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))

    def _note_written(self, path: Path, job: Job, settings: dict,
                      source: dict | None) -> None:
        """Keep the identity of the copy just written (protect_file's on_written): a file
        at its name later is removed as cloak's only where it is that very file. And
        record it as written, unfinished (record_written), before it is measured: an app
        killed meanwhile (a logout) protects the photo again to that name next session,
        not beside it as `name (1)`. Not where its folder was moved meanwhile (the copy is
        then removed, and no record is left in a folder made since at that name)."""
        from cloak.manifest import record_written

        with IN_HAND_LOCK:
            IN_HAND.add(os.path.abspath(path))
        self._in_hand.add(os.path.abspath(path))
        try:
            self._written[Path(path)] = stat_key(Path(path))
        except OSError:
            return
        folder = job.out_dir
        if job.chosen and self._folder_ids.get(folder) not in (None, _folder_id(folder)):
            return
        entry = self._check_recorded(Path(path), record_written(
            job.src, Path(path), settings, source, wait_s=self._lock_wait(folder)))
        if entry is not None:
            self._recorded_in.add(Path(path).parent)
            self._identities[Path(path)] = entry["dst"]

    def _lock_wait(self, folder: Path) -> float:
        """How long a record write into `folder` waits for its lock: none where a `cloak
        protect` run was found writing there (it holds the lock for its whole run)."""
        from cloak.manifest import RECORD_LOCK_WAIT_S

        return 0.0 if folder in self._run_holds else RECORD_LOCK_WAIT_S

    def _check_recorded(self, copy: Path, entry: dict | None) -> dict | None:
        """`entry` (a record write's result); where it is None because a `cloak protect`
        run is writing to the copy's folder, say so once: its copies there are not
        recorded, and a later session protects those photos again."""
        from cloak.manifest import folder_in_use

        folder = copy.parent
        if entry is None and folder not in self._run_holds and folder_in_use(folder):
            self._run_holds.add(folder)
            emit(self.notice, f"A cloak protect run is writing to {folder}: the copies "
                 "saved there meanwhile can't be recorded, so a later session protects "
                 "those photos again")
        return entry

    def _moved_while_writing(self, folder: Path, dst: Path,
                             written: tuple[int, int] | None) -> bool:
        """Whether `folder` was renamed, deleted or unmounted while the photo was being
        protected, so that the copy `dst` went into a folder made again at its name (on
        the disk below a mount point, or beside the renamed one). That copy is removed
        (cloak's own, just written: the file whose identity is `written`, not another at
        its name) and the photo fails, as do the run's later photos going there: the
        copies are not split across two folders without a word."""
        recorded, now = self._folder_ids.get(folder), _folder_id(folder)
        if recorded is None or now is None or now == recorded:  # (gone now: it went
            return False  # after the copy was written into it)
        try:  # only the copy written: a file of the user's in a folder made since at
            # that name (the copy moved away with the renamed one) is theirs
            if stat_key(dst) == written:
                dst.unlink()
        except OSError:
            log.warning("could not remove %s, written after its folder was moved", dst)
        self._folder_errors[folder] = moved_during_the_run(folder)
        emit(self.failed, self._current, self._folder_errors[folder])
        return True

    def _make_folder(self, folder: Path, created: list[Path], make: bool = True,
                     mount: str = "") -> None:
        """Create the output folder (recorded in `created`; its parent must be there: a
        chosen Save-to folder on a share that is not mounted is not made on the disk
        below) and check that files can be written there, or fail naming it: before the
        attack, not after it, and at once (remembered) for the run's other photos going
        there. `make=False` (the user's Save-to folder) never creates it: one renamed,
        deleted or unmounted during the batch fails its photos rather than being made
        again (the copies split across two folders, or hidden below a mount point); nor
        is one written to whose `mount` (its Job's) is no longer mounted."""
        if folder in self._folder_errors:
            raise OutputError(self._folder_errors[folder])
        if not make and mount and not os.path.ismount(mount):  # (after its first photo,
            # its identity, held open, says so too: this covers the time before it)
            self._folder_errors[folder] = not_connected(folder, mount)
            raise OutputError(self._folder_errors[folder])
        if folder.exists() and not folder.is_dir():
            self._folder_errors[folder] = (
                not_a_folder(folder) if not make else
                f"{folder}, the folder for copies of the photos in {folder.parent}, is a "
                "file, not a folder; rename that file or choose a Save-to folder")
            raise OutputError(self._folder_errors[folder])
        if not folder.is_dir() and not make:  # renamed, deleted or unmounted since Protect
            self._folder_errors[folder] = no_longer_there(folder)
            raise OutputError(self._folder_errors[folder])
        if not folder.is_dir():
            try:  # as private as the originals' folder
                folder.mkdir(mode=mode_like(folder.parent, dir_mode=True))
            except FileNotFoundError as exc:
                self._folder_errors[folder] = no_longer_there(folder)
                raise OutputError(self._folder_errors[folder]) from exc
            except OSError as exc:
                raise OutputError(f"can't create the folder {folder} "
                                  f"({exc.strerror or exc}); choose a Save-to folder you "
                                  "can write to") from exc
            created.append(folder)
        try:
            check_folder_writable(folder)
        except OutputError as exc:
            self._folder_errors[folder] = f"{exc}; choose a Save-to folder you can write to"
            raise OutputError(self._folder_errors[folder]) from exc
        if not make and folder not in self._folder_ids:
            self._hold(folder)
        found = _folder_id(folder)
        # a chosen folder moved since its first photo: the one at its name now was made
        # again (or put there) since; a default protected/ deleted since is made again
        if not make and self._folder_ids.setdefault(folder, found) != found:
            self._folder_errors[folder] = moved_during_the_run(folder)
            raise OutputError(self._folder_errors[folder])
        if folder not in self._swept:  # temp files a force-quit app left there, once a run
            from cloak.batch import remove_stale_temp_files

            self._swept.add(folder)
            remove_stale_temp_files(folder)
            self._tell_if_record_damaged(folder)

    def _tell_if_record_damaged(self, folder: Path) -> None:
        """A notice where the folder's record of cloak's copies can't be read: its copies
        from earlier sessions can't be recognised, so photos are saved again beside them
        (`name (1)`); the record is set aside as the first copy is recorded. The CLI
        refuses such a folder's copies, saying so; the app said it only in its log."""
        from cloak.manifest import MANIFEST_NAME, read_only

        found = read_only(folder).found
        if found is not None and found[0] == "unreadable":
            emit(self.notice, f"The record of cloak's copies in {folder} can't be read "
                 f"({found[1]}): copies made there before can't be recognised, so photos "
                 "protected before are saved again beside them, as \"name (1)\"; the "
                 f"damaged record is kept as {MANIFEST_NAME}.unreadable-TIME.")

    def _posted_damage(self, report: Report) -> float | None:
        """posting_damage(); the copy is written already, so a failed check only leaves
        it out (None), and so does a cancel (the check stops between models)."""
        if self._stop.is_set():
            return None
        if report.damage_db:
            emit(self.progress, self._current, POSTING_CHECK_FROM, "checking it after posting…")
        try:
            return posting_damage(report, self.config, self._stop.is_set)
        except Cancelled:
            return None
        except CloakError as exc:  # a refusal in verify's words: one line, no traceback
            log.warning("%s: not checked after posting: %s", report.dst, exc)
            return None
        except Exception:
            log.exception("checking %s after posting failed", report.dst)
            return None

    def _stop_if_cancelled(self) -> None:
        if self._stop.is_set():  # the download's temp file is removed on the way out
            raise Cancelled("cancelled")

    def _on_download(self, name: str, done: int, total: int) -> None:
        self._stop_if_cancelled()
        share = f" {100 * done / total:.0f}%" if total else f" {done / 1e6:.1f} MB"
        emit(self.progress, self._current, 0.0, f"downloading {name}{share}")

    def _on_progress(self, fraction: float, message: str) -> None:
        # a measured photo's posting check follows its save: the bar keeps room for it
        share = POSTING_CHECK_FROM if self.config.measure else 1.0
        emit(self.progress, self._current, share * float(fraction), message)


class CallSignals(QObject):
    """Carries results from pool threads back to the window's thread."""

    done = Signal(object, object, object)  # key, result, error ("" when the call worked)


class BackgroundCall(QRunnable):
    """Runs `fn(*args)` on a pool thread (thumbnails, comparisons: display work too slow
    for the main thread on big photos) and reports through `signals.done`."""

    def __init__(self, signals: CallSignals, key: object, fn: Callable[..., Any],
                 *args: Any) -> None:
        super().__init__()
        self.signals, self.key, self.fn, self.args = signals, key, fn, args
        # Asked (on the pool thread) when the call's turn comes: False skips it, and
        # nothing is reported. It must only read plain attributes of the window.
        self.still_wanted: Callable[[], bool] = lambda: True

    def run(self) -> None:
        if not self.still_wanted():
            return
        try:
            result = self.fn(*self.args)
        except Exception as exc:  # shown to the user, in plain words
            if isinstance(exc, CloakError):  # a copy deleted, a photo that can't be
                # read: the panel says it; a traceback in the log file, each time the
                # row was chosen, read as a crash
                log.info("background call %s: %s", self.fn.__name__, exc)
            else:
                log.warning("background call %s failed", self.fn.__name__, exc_info=True)
            emit(self.signals.done, self.key, None, plain_message(exc))
        else:
            emit(self.signals.done, self.key, result, "")
