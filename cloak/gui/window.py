"""The main window: a drop zone, one row per photo, and a before/after comparison.

The drop zone (`drop_zone.py`) only turns dropped URLs into local paths and emits a
signal; the window turns rows into `Job`s for a `ProtectWorker` running in a QThread, and
shows what the worker reports (the rows and the comparison panel live in `widgets.py`).
No protection logic lives here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QEvent,
    QSettings,
    QSize,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cloak import PRESETS, CloakError, ProtectConfig
from cloak.allocator import release_freed_memory
from cloak.config import STRONGER
from cloak.device import DEVICE_ENV, fp32_cpu_note, pick_device
from cloak.io import DecoderBusy
from cloak.manifest import MANIFEST_NAME
from cloak.metadata import MetadataPolicy
from cloak.naming import printable
from cloak.report import plural
from cloak.same_path import fold, holds_as_spelt, same_folder_path

from .drop_zone import DropZone
from .images import Comparison, compare, thumbnail_or_why
from .paths import (
    IMAGE_SUFFIXES,
    OUTPUT_FOLDER_NAME,
    SUPPORTED,
    common_folder,
    default_output_dir,
    expand_paths,
    find_photos,
    is_image_file,
    not_added_note,
    skipped_as_output,
)
from .signals import emit
from .widgets import (
    THUMB_SIZE,
    ComparePanel,
    ElidedLabel,
    PhotoList,
    PhotoRow,
    PrintableStatusBar,
    ScrollingPane,
    plain_tooltip,
)
from .worker import (
    ALREADY_PROTECTED,
    BackgroundCall,
    CallSignals,
    Job,
    Outcome,
    ProtectWorker,
    for_the_app,
    gone_or_unreadable,
    source_stamp,
)

# Whether the system's disks take names that differ only in letter case or in how an
# accented letter is encoded (NFC, NFD) as one name (same_path.fold): macOS hands a
# dropped file's name over NFC-normalised, while a folder's walk gives it as stored.
# Not Windows: NTFS keeps the two encodings apart (two photos; normcase folds the case).
NAMES_FOLD_ACCENTS = sys.platform == "darwin"


def same_photo_key(path: Path) -> str:
    """What tells two listed paths apart: the path with links and ".." resolved, the
    letter case folded where the system folds it, and (macOS) accented letters in one
    encoding. A path, not the file's inode: an editor's save gives the photo a new
    inode (the same photo added again after an edit is one row), and a deleted photo's
    inode may be reused by a new one."""
    real = os.path.realpath(path)
    return fold(real) if NAMES_FOLD_ACCENTS else os.path.normcase(real)


# What each preset is for, in the Strength menu (its budget and steps in a tooltip)
STRENGTH_WORDS = {"fast": "quickest, light protection",
                  "low": "least visible, light protection",
                  "medium": "recommended",
                  "high": "strongest, slowest, also for SDXL and FLUX editors"}

log = logging.getLogger(__name__)

DEFAULT_STRENGTH = ProtectConfig.strength  # the library's default preset
PENDING_STATES = (PhotoRow.WAITING, PhotoRow.CANCELLED, PhotoRow.FAILED)  # Protect runs these
EARLIER = "already protected"  # the summary's count of copies found from an earlier session
REDO_NOTE = ("protected with other settings: Protect makes copies with these (the "
             "earlier ones stay)")
# The pool runs one call at a time; what the user waits on jumps the queue of thumbnails.
COMPARE_PRIORITY, WALK_PRIORITY = 2, 1
COMPARE_SIDE = 1024  # long side of the before/after images shown
SYNC_ADD_LIMIT = 20  # more files than this are checked on the pool (each header is read)


# the before/after of a photo changed on disk since its copy was made
EDITED_SINCE = ("the photo changed since its copy was made (edited, cropped or turned), "
                "so a comparison would show that change, not the protection; add it again "
                "to protect it as it is now")
# ... and of a copy changed since cloak wrote it (brightened, turned in a viewer)
COPY_EDITED_SINCE = ("the protected copy changed since cloak made it (edited, cropped or "
                     "turned), so a comparison would show that change, not the protection")


def _about_the_pair(message: str, outcome: Outcome) -> str:
    """A library message about the original or its copy, naming which it is in words, not
    by its full path ("PATH: is named .jpg but ..." -> "the protected copy a.jpg: is named
    .jpg but ...")."""
    for path, what in ((outcome.dst, f"the protected copy {outcome.dst.name}"),
                       (outcome.src, f"the original {outcome.src.name}")):
        if path is not None and message.startswith(f"{path}: "):
            return f"{what}: {message.removeprefix(f'{path}: ')}"
    return message


def mount_point_of(folder: Path) -> str:
    """The mount point `folder` is on, where it is not the root's ("" for a folder on the
    system disk, or one that can't be looked at): a NAS share or a USB disk's own folder
    stays an empty folder once unmounted, and copies saved there would go, hidden, to the
    disk below. Links on its path are followed (ismount is False for a link itself:
    ~/nas -> /mnt/nas was taken for a folder on the system disk)."""
    try:
        path = os.path.realpath(folder)
        while not os.path.ismount(path):
            parent = os.path.dirname(path)
            if parent == path:
                return ""
            path = parent
    except (OSError, ValueError):
        return ""
    return "" if os.path.dirname(path) == path else path


def record_of_copy(dst: Path) -> dict:
    """The record's entry for the protected copy `dst`: its own folder's, else the nearest
    record above that lists it (a copy `cloak protect` made in a mirror folder,
    OUT/holiday/a.png, found by the app saving to OUT); {} where none does, or none can
    be read."""
    from cloak.manifest import entry_above, read_only

    try:
        entry = read_only(dst.parent).get(dst)
        if entry is None and (above := entry_above(dst, dst.parent)) is not None:
            entry = above[1]
    except (OSError, CloakError):
        return {}
    return entry or {}


def save_to_problem(folder: Path, mount: str = "") -> str | None:
    """Why copies can't be saved in the chosen Save-to `folder` now (None: they can):
    not a full path (a hand-edited setting: its place would depend on where the app was
    started), a file, not there, or on `mount`, its mount point when chosen, unmounted
    since. Never raises (a share that is down)."""
    if not os.path.isabs(folder):
        return "is not a full path"
    try:
        is_folder = stat.S_ISDIR(os.stat(folder).st_mode)
    except PermissionError:  # not "deleted": a folder on its path can't be searched
        return "can't be opened (permission denied on a folder on its path)"
    except (OSError, ValueError):
        return "can't be reached (deleted, or on a disk or share not connected?)"
    if not is_folder:
        return "is a file, not a folder"
    if mount and not os.path.ismount(mount):
        return f"can't be reached (its disk or share, {mount}, is not connected)"
    return None


def save_to_advice(problem: str) -> str:
    """What to do about a Save-to folder's `problem` (save_to_problem's)."""
    if problem.startswith("is a file"):
        return "choose a folder (Change…, or Next to originals)"
    if problem.startswith("can't be reached"):
        return "connect it, or choose it again (Change…, or Next to originals)"
    return "choose it again (Change…, or Next to originals)"


def open_folder(folder: Path) -> bool:
    """Show `folder` in the system file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class MainWindow(QMainWindow):
    """The cloak desktop app. `settings` are extra `ProtectConfig` fields (tests, power
    users); the strength preset and the metadata policy always come from the window's
    controls."""

    batch_finished = Signal()

    def __init__(self, settings: dict | None = None,
                 store: Callable[[], QSettings] | None = None) -> None:
        super().__init__()
        self.settings = dict(settings or {})
        # Remembers the controls between launches (None: nothing kept). A factory, so each
        # read or write uses a short-lived QSettings: one kept on the window outlived
        # Qt's teardown at exit and crashed the interpreter.
        self.store = store
        self._restoring = True  # until _restore_choices: building sets no remembered value
        self._said_choices = False  # that the remembered choices can't be kept
        self.output_dir: Path | None = None  # None: a `protected` folder next to each photo
        self.output_mount = ""  # the mount point the Save-to folder was on when chosen
        self.last_output_dir: Path | None = None  # what "Open output folder" opens
        self._run_output_dirs: set[Path] = set()  # where the last batch wrote
        self._run_ids: set[int] = set()  # the rows of the last batch
        self._run_notices: list[str] = []  # what the worker told the user in the last batch
        self._next_id = 0
        # same_photo_key -> row, for every listed row: an add keys only its new photos (a
        # realpath of each of thousands of rows on every add made adding quadratic). A
        # row's key is taken when it is listed: a link re-pointed since is not followed.
        self._listed: dict[str, PhotoRow] = {}
        self._todo = self._done = 0  # photos in the running batch, and finished so far
        self._thread: QThread | None = None
        self._worker: ProtectWorker | None = None
        self._pool = QThreadPool(self)  # thumbnails and comparisons, off the main thread
        self._pool.setMaxThreadCount(1)
        self._thumbnails = CallSignals(self)
        self._thumbnails.done.connect(self._on_thumbnail)
        self._comparisons = CallSignals(self)
        self._comparisons.done.connect(self._on_comparison)
        self._walks = CallSignals(self)
        self._walks_pending = 0  # folder walks queued or running on the pool
        self._folder_walks = 0  # those of them with a folder to search (Cancel stops them)
        self._list_generation = 0  # bumped by clear(): walks from before it are dropped
        self._walk_generation = 0  # bumped by cancel(): it stops folder walks too
        # Failures so far, and the count at each row's failure: a folder dropped (and
        # searched) before a photo failed does not make it wait again with its result.
        self._failures = 0
        self._failed_at: dict[int, int] = {}
        # Set once the window really closes (not on a close refused mid-batch): folder
        # walks stop early, and no pool work starts after the pool was drained (see
        # _run_in_background).
        self._closing = False
        self._close_when_stopped = False  # closed mid-batch: close once the worker stops
        self._joining = False  # shutdown(): close waits for the worker instead
        self._walks.done.connect(self._on_walked)
        self._compare_wanted: int | None = None
        self._compare_loading: Outcome | None = None  # the row's outcome asked for
        self.setWindowTitle("cloak — protect photos before you post them")
        self.setAcceptDrops(True)  # drops anywhere go through the drop zone's filter
        self._build()
        self.set_output_dir(None)
        self._restore_choices()
        self.resize(self._first_size())
        self.photo_list.setFocus()

    def _first_size(self) -> QSize:
        """1160 x 700, or the screen's free area where that is smaller (a 1024 x 600
        netbook, a laptop at 150 % scaling), but not under the window's least size."""
        wanted = QSize(1160, 700)
        screen = self.screen()
        if screen is not None:
            wanted = wanted.boundedTo(screen.availableGeometry().size())
        return wanted.expandedTo(self.minimumSizeHint())

    # building -----------------------------------------------------------------------

    def _build(self) -> None:
        # a message longer than the window is wide is cut: hovering shows all of it
        self.setStatusBar(PrintableStatusBar())
        status_bar = self.statusBar()
        status_bar.messageChanged.connect(
            lambda message: status_bar.setToolTip(plain_tooltip(message)))
        self.drop_zone = DropZone()
        self.drop_zone.photos_dropped.connect(self.add_paths)
        self.drop_zone.clicked.connect(self.pick_photos)

        self.strength = QComboBox()
        for name, preset in PRESETS.items():
            self.strength.addItem(f"{name} — {STRENGTH_WORDS.get(name, '')}".rstrip(" —"),
                                  name)
            self.strength.setItemData(  # the figures, for those who want them
                self.strength.count() - 1, f"{preset.eps255:g}/255, {preset.steps} steps",
                Qt.ItemDataRole.ToolTipRole)
        self.strength.setCurrentIndex(list(PRESETS).index(DEFAULT_STRENGTH))
        # sized for "medium — recommended", not for high's long words (the list that
        # drops down still widens to its longest entry)
        self.strength.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.strength.setMinimumContentsLength(22)
        self.strength.setToolTip("Stronger presets protect more, take longer, and change "
                                 "more pixels (still meant to be invisible).")
        # one line, a long folder shortened in its middle (wrapped, a long path took the
        # height the switches below it need at the window's least size); whole as a tooltip
        self.output_label = ElidedLabel("")
        self.output_label.setObjectName("hint")
        self.change_output = QPushButton("Change…")
        self.change_output.clicked.connect(self.pick_output_dir)
        self.reset_output = QPushButton("Next to originals")
        self.reset_output.clicked.connect(self.use_default_output_dir)
        # The same switches as the CLI's --keep-gps, --strip-names and --strip-exif
        # (MetadataPolicy.choose).
        self.keep_gps = QCheckBox("Keep location (GPS)")
        self.keep_gps.setToolTip("Off: the protected copy carries no GPS position, so it "
                                 "does not tell where the photo was taken.")
        self.strip_exif = QCheckBox("Remove camera details")
        self.strip_exif.setToolTip("Also drop the capture date, camera, exposure, copyright "
                                   "and author. Orientation and colour profile stay.")
        self.strip_names = QCheckBox("Remove my name")
        self.strip_names.setToolTip("Drop the artist, author and copyright names (a camera "
                                    "set up with its owner's name writes it into every "
                                    "photo). The date and camera stay.")
        # one switch a line, and the buttons in two rows below: side by side they set the
        # window's least width to ~1000 px, past a small laptop's screen
        metadata = QVBoxLayout()
        metadata.addWidget(self.keep_gps)
        metadata.addWidget(self.strip_names)
        metadata.addWidget(self.strip_exif)
        options = QGridLayout()
        # each label names its control to a screen reader (a combo box is read by its
        # value alone otherwise); Alt+S goes to the strength
        self.strength_label = QLabel("&Strength")
        self.strength_label.setBuddy(self.strength)
        self.output_title = QLabel("Save to")
        self.output_title.setBuddy(self.change_output)
        self.metadata_title = QLabel("Metadata")
        self.metadata_title.setBuddy(self.keep_gps)
        options.addWidget(self.strength_label, 0, 0)
        options.addWidget(self.strength, 0, 1, 1, 3, Qt.AlignmentFlag.AlignLeft)
        options.addWidget(self.output_title, 1, 0)
        options.addWidget(self.output_label, 1, 1, 1, 3)
        output_buttons = QHBoxLayout()  # under the folder's name, which takes the width
        output_buttons.addWidget(self.change_output)
        output_buttons.addWidget(self.reset_output)
        output_buttons.addStretch(1)
        options.addLayout(output_buttons, 2, 1, 1, 3)
        options.addWidget(self.metadata_title, 3, 0, Qt.AlignmentFlag.AlignTop)
        options.addLayout(metadata, 3, 1, 1, 3)
        options.setColumnStretch(1, 1)

        self.photo_list = PhotoList()
        self.rows = self.photo_list.rows  # row id -> PhotoRow
        self.photo_list.current_changed.connect(self._on_current_changed)
        self.photo_list.remove_requested.connect(self.remove_row)

        self.protect_button = QPushButton("Protect")
        self.protect_button.setObjectName("primary")
        self.protect_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open output folder")
        self.open_button.clicked.connect(self.open_output_folder)
        self.add_photos_button = QPushButton("Add photos…")
        self.add_photos_button.setShortcut(QKeySequence.StandardKey.Open)  # Ctrl+O / Cmd+O
        self.add_photos_button.setToolTip("Choose photos to protect (Ctrl+O)")
        self.add_photos_button.clicked.connect(self.pick_photos)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self.pick_folder)
        self.clear_button = QPushButton("Clear list")
        self.clear_button.clicked.connect(self.clear)
        self.summary = QLabel()
        # on its own line under the buttons: a long count ("2 protected, 1 already
        # protected, 1 failed; 3 added meanwhile, waiting") wraps in the list's width
        # instead of widening the window past a laptop's screen (it sat between the buttons)
        self.summary.setWordWrap(True)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for button in (self.protect_button, self.cancel_button, self.open_button,
                       self.add_photos_button, self.add_folder_button, self.clear_button,
                       self.change_output, self.reset_output):
            button.setAutoDefault(True)  # Enter presses the focused button, as Space does
        list_actions = QHBoxLayout()  # above the list they change
        for button in (self.add_photos_button, self.add_folder_button, self.clear_button):
            list_actions.addWidget(button)
        list_actions.addStretch(1)
        actions = QHBoxLayout()
        for button in (self.protect_button, self.cancel_button, self.open_button):
            actions.addWidget(button)
        actions.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.drop_zone)
        left_layout.addLayout(options)
        left_layout.addLayout(list_actions)
        left_layout.addWidget(self.photo_list, 1)
        left_layout.addLayout(actions)
        left_layout.addWidget(self.summary)

        self.compare_panel = ComparePanel()
        # each pane scrolls where large fonts make it larger than its share of the screen
        self.left_pane = ScrollingPane(left, width_share=0.45)
        self.right_pane = ScrollingPane(self.compare_panel, width_share=0.5)
        splitter = QSplitter()
        splitter.addWidget(self.left_pane)
        splitter.addWidget(self.right_pane)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([600, 560])
        self.setCentralWidget(splitter)
        self.setStyleSheet(STYLE_SHEET)

    # photos -------------------------------------------------------------------------

    @Slot(list)
    def add_paths(self, paths: list) -> None:
        """Add photos as waiting rows, skipping ones already listed. Folders are walked on
        the pool thread (a large folder would freeze the window); their photos are added
        when the walk is done, in the order given. So are files while photos are being
        protected, or while the pool decodes one (a before/after view): telling a
        protected copy apart reads its header, which waits for a decode in progress
        (io.decoding_limit's lock), seconds for a 48 MP photo. Files that are not photos
        cloak reads are named in the status bar (camera RAW files as such)."""
        if self._close_when_stopped:  # the window closes once the batch stops
            self.statusBar().showMessage("the window closes once the batch stops; photos "
                                         "are not added now", 5000)
            return
        not_added = not_added_note(paths)
        given, paths_given = len(paths), list(paths)
        paths = [p for p in paths if os.path.isdir(p) or is_image_file(Path(p))]
        if not paths:
            self._on_nothing_usable(given, not_added)
            return
        has_folder = any(os.path.isdir(p) for p in paths)
        if not (self._walks_pending or len(paths) > SYNC_ADD_LIMIT or self.is_running()
                or has_folder):
            try:
                photos = expand_paths(paths, self.output_dir, wait=False)
            except DecoderBusy:
                pass  # a decode holds the lock: walk on the pool instead
            else:
                self._add_photos(photos, given, not_added_note(paths_given, (), photos,
                                                               expanded=True))
                return
        # Through the pool's one thread, behind any walk still running: rows keep the
        # order the photos were given in.
        self._walks_pending += 1
        # Cancel stops a search of folders only: files the user picked are always added
        walks = self._walk_generation if has_folder else None
        self._folder_walks += has_folder
        self.statusBar().showMessage("looking for photos…")
        key = (self._list_generation, walks, given, tuple(map(str, paths_given)),
               self._failures)
        generation = self._list_generation

        def stale() -> bool:  # the list was cleared, or the window closing
            return self._closing or self._list_generation != generation

        def cancelled() -> bool:  # Cancel pressed: the folders' search stops, not the files'
            return walks not in (None, self._walk_generation)

        self._run_in_background(BackgroundCall(
            self._walks, key, find_photos, list(paths), self.output_dir, stale, cancelled),
            WALK_PRIORITY)
        self._update_buttons()  # Clear list stops a walk (a home folder dropped)

    @Slot(object, object, object)
    def _on_walked(self, key: tuple[int, int, int, tuple[str, ...], int],
                   found: tuple[list[Path], list[Path], list[tuple[Path, str]]] | None,
                   error: str) -> None:
        """A walk's (photos, camera RAW files in the folders, folders it could not read)
        from find_photos."""
        generation, walks, count, given, failures = key
        self._walks_pending -= 1
        self._folder_walks -= walks is not None
        self._update_buttons()
        photos, raw, unreadable = found or ([], [], [])
        not_added = not_added_note(given, raw, photos, expanded=True,
                                   unreadable_folders=unreadable)
        stopped = "stopped the search for photos; none added from it"
        if walks not in (None, self._walk_generation):  # Cancel: the photo files picked
            # alone (a walk that ended before the click found the folders' photos too)
            picked = {Path(g).absolute() for g in given if not os.path.isdir(g)}
            photos = [photo for photo in photos if photo in picked]
        if generation != self._list_generation or (walks not in (None, self._walk_generation)
                                                    and not photos):
            if not self._walks_pending:  # no walk left to say "looking for photos…" for
                if generation == self._list_generation:  # Cancel: say what it did
                    self.statusBar().showMessage(stopped, 5000)
                else:
                    self.statusBar().clearMessage()
            return  # the list was cleared (or Cancel pressed) while this folder was walked
        if walks not in (None, self._walk_generation):  # Cancel: the photo files picked
            # with the folders are added, none from the folders
            self._add_photos(photos, len(photos), f"{stopped} (the folders)",
                             failed_before=failures)
            return
        if error:
            self._say(f"could not read the folder: {error}", 8000)
            return
        denied = {folder for folder, _ in unreadable}  # said so already, not "none in"

        def said_already(folder: Path) -> bool:  # or one with a record in it or above
            real = Path(os.path.realpath(folder))
            return folder in denied or any(
                record == real or record in real.parents or real in record.parents
                for record in denied if os.path.isfile(record / MANIFEST_NAME))

        folders = [Path(g) for g in given if os.path.isdir(g) and not said_already(Path(g))]
        if not photos and folders:  # say which folders held none (an empty one, say)
            # and why one may hold photos yet (a folder of one's own named "protected")
            skipped = [(f, why) for f in folders
                       if (why := skipped_as_output(f, self.output_dir)) is not None]
            empty = [f.name or str(f) for f in folders if f not in dict(skipped)]
            parts = [f"none added from {f.name or f}: {why}" for f, why in skipped[:1]]
            if len(skipped) > 1:
                parts.append(f"none from {len(skipped) - 1} other folder(s) holding a "
                             f"{OUTPUT_FOLDER_NAME} folder")
            if empty:
                parts.append(f"none in {', '.join(empty[:2])}"
                             + (f" and {len(empty) - 2} other folder(s)" if len(empty) > 2
                                else ""))
            inside = "; ".join(parts)
            not_added = f"{not_added}; {inside}" if not_added else inside
        self._add_photos(photos, count, not_added, failed_before=failures)

    def _say(self, text: str, timeout: int) -> None:
        """`text` in the status bar for `timeout` ms; while another folder search is still
        running, with that said after it, until its own result replaces it."""
        if self._walks_pending:
            self.statusBar().showMessage(f"{text}; still looking for photos…")
        else:
            self.statusBar().showMessage(text, timeout)

    def _add_photos(self, photos: list[Path], given: int, not_added: str = "",
                    failed_before: int | None = None) -> None:
        """Add `photos` (found among `given` dropped or chosen items) as waiting rows. A
        photo listed already stays as it is, except, with no batch running, a failed one
        (with `failed_before`, the failure count when the photos were given: only one
        that had failed by then) and one protected with other settings or into another
        folder (_asks_other), which wait again. `not_added`: the given files that are not
        photos, said after the count."""
        if not photos:
            self._on_nothing_usable(given, not_added)
            return
        # by the file itself: the same photo reached by another path (a link to its
        # folder, "photos/../photos/a.jpg") is listed once, not protected twice
        listed = self._listed
        added = again = 0  # new rows; listed rows put back to wait (failed, or edited)
        generation = self._list_generation

        def wanted() -> bool:  # a thumbnail cleared (or closing) before its turn is not
            # decoded, so new photos' thumbnails don't wait behind a whole old list's
            return not self._closing and self._list_generation == generation

        new_rows, refresh = [], []
        for src in photos:
            key = same_photo_key(src)
            if key in listed:
                # added again once failed, or protected with other settings (another
                # strength, say): it waits again (a folder dropped again to add its new
                # photos leaves the ones protected as now asked alone)
                row = listed[key]
                retry = (failed_before is None
                         or self._failed_at.get(row.row_id, 0) <= failed_before)
                if self._thumbnail_stale(row) or not row.has_thumbnail():  # edited since
                    # (cropped in place, as the drop zone advises; or mended, where it
                    # could not be read): shown, or said unreadable, as it is now
                    refresh.append(row)
                if not self.is_running() and ((retry and row.state == PhotoRow.FAILED) or (
                        row.state == PhotoRow.PROTECTED and self._asks_other(row))):
                    row.set_waiting()
                    if self._compare_wanted == row.row_id:  # not its old before/after
                        self.compare_panel.reset()
                    again += 1  # not a new row: said apart from those added
                continue
            row_id, self._next_id = self._next_id, self._next_id + 1
            new_rows.append(PhotoRow(row_id, src))
            listed[key] = new_rows[-1]  # a photo given twice in one add is listed once
            added += 1
        self.photo_list.add_rows(new_rows)
        for row in new_rows + refresh:
            self._request_thumbnail(row, wanted)
        waits = "waits" if again == 1 else "wait"
        said = "; ".join(
            [f"added {plural(added, 'photo')}"] * bool(added)
            + [f"{plural(again, 'photo')} in the list already {waits} again"] * bool(again)
        ) or ("that photo is already in the list" if len(photos) == 1 else
              "those photos are already in the list")
        self._say(f"{said}; {not_added}" if not_added else said, 8000 if not_added else 5000)
        self._update_buttons()

    def _asks_other(self, row: PhotoRow) -> bool:
        """Whether the window's settings now differ from those `row` was protected with
        (face priority aside: on or off as the face detector allowed), its copy would
        now go to another folder (Save to changed since), or the photo was edited since
        (cropped in place, as the drop zone advises, and added again)."""
        if row.outcome is None or row.outcome.config is None:
            return True
        if self._edited_since(row) or self._copy_not_there(row):
            return True
        then, now = row.outcome.config.fingerprint(), self.config().fingerprint()
        then.pop("faces", None)
        now.pop("faces", None)
        return then != now

    def _request_thumbnail(self, row: PhotoRow, wanted: Callable[[], bool]) -> None:
        """Make `row`'s thumbnail in the background, from its photo as it is now (while
        `wanted()` still says so when its turn comes)."""
        row.thumb_stamp = source_stamp(row.src)
        call = BackgroundCall(self._thumbnails, row.row_id, thumbnail_or_why, row.src,
                              self._thumb_pixels())
        call.still_wanted = wanted
        self._run_in_background(call)

    @staticmethod
    def _thumbnail_stale(row: PhotoRow, stamp: tuple | None = None) -> bool:
        """Whether `row`'s photo (as `stamp` says, else as it is on disk now) differs
        from the file its thumbnail was made from."""
        stamp = stamp or source_stamp(row.src)
        return None not in (stamp, row.thumb_stamp) and stamp != row.thumb_stamp

    def _copy_not_there(self, row: PhotoRow) -> bool:
        """Whether a protected `row`'s copy is not where Protect would put it now: deleted
        since, or the Save-to folder changed (`cloak protect` makes it again)."""
        return self._goes_elsewhere(row) or not os.path.lexists(row.outcome.dst)

    def _goes_elsewhere(self, row: PhotoRow) -> bool:
        """Whether a protected `row`'s copy would now go to another folder than the one
        it is in (the Save-to folder changed since)."""
        folder = os.path.abspath(self.output_dir or default_output_dir(row.src))
        parent = os.path.abspath(row.outcome.dst.parent)
        if same_folder_path(parent, folder):  # (the same string, or spelt otherwise)
            return False
        return not (row.outcome.status == ALREADY_PROTECTED  # found below it
                    and holds_as_spelt(folder, parent))

    def _why_no_comparison(self, row: PhotoRow) -> str | None:
        """Why a protected `row`'s before/after can't be shown now, found before it is
        made: its photo moved away (not "edited", which advised adding it again from
        where it no longer is) or changed since its copy was made (the difference would
        show the edit as protection)."""
        if (gone := gone_or_unreadable(row.src)) is not None:
            return f"the original {row.src.name}: {gone}"
        if self._changed_since(row):
            return EDITED_SINCE
        return COPY_EDITED_SINCE if self._copy_changed_since(row) else None

    @staticmethod
    def _copy_changed_since(row: PhotoRow) -> bool:
        """Whether a protected `row`'s copy is no longer the file cloak wrote, as its
        record keeps it (size and times, else its sha256; record_of_copy): the difference would
        show the user's edit as the protection. False where no record says (a copy gone
        is said as its loading fails)."""
        from cloak.manifest import matches_record

        dst = row.outcome.dst
        ident = record_of_copy(dst).get("dst")
        return (isinstance(ident, dict) and os.path.lexists(dst)
                and not matches_record(dst, ident))

    def _changed_since(self, row: PhotoRow) -> bool:
        """_edited_since, for what the photo holds: one only chmod-ed or touched (a sync
        client's, a backup tool's xattrs) still has the contents its copy's record keeps
        (its sha256, read where the times moved): its before/after is shown."""
        if not self._edited_since(row):
            return False
        from cloak.manifest import matches_record

        source = record_of_copy(row.outcome.dst).get("src")
        return not (isinstance(source, dict) and matches_record(row.src, source))

    @staticmethod
    def _edited_since(row: PhotoRow) -> bool:
        """Whether `row`'s photo changed on disk since its copy was made."""
        return (row.outcome is not None and row.outcome.src_stamp is not None
                and source_stamp(row.src) != row.outcome.src_stamp)

    def _thumb_pixels(self) -> int:
        """Thumbnail size in device pixels (sharp on high-DPI screens)."""
        return round(THUMB_SIZE * max(1.0, self.devicePixelRatioF()))

    def pick_photos(self) -> None:
        patterns = " ".join(f"*{s} *{s.upper()}" for s in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Choose photos to protect", "",
                                                f"Photos ({patterns});;All files (*)")
        if files:
            self.add_paths(files)

    def pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of photos")
        if folder:
            self.add_paths([folder])

    def pick_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save protected copies in")
        if folder:
            self.set_output_dir(Path(folder))

    def set_output_dir(self, folder: Path | None, mount: str | None = None) -> None:
        """Where protected copies go; None means a `protected` folder next to each photo.
        `mount`: the mount point the folder was on when it was chosen (remembered; by
        default found now), so one unmounted since is refused, not written below."""
        self.output_dir = folder
        self.output_mount = mount if mount is not None else (
            mount_point_of(folder) if folder is not None else "")
        self.output_label.setText(printable(str(folder)) if folder else
                                  "a “protected” folder next to each photo")
        self.output_label.setToolTip(plain_tooltip(self.output_label.text()))
        # the folder's name can't take the focus: its button says it to a screen reader
        self.change_output.setAccessibleName("Change the Save-to folder")
        self.change_output.setAccessibleDescription(
            f"protected copies go to {self.output_label.text()}")
        self._remember("output_dir", str(folder) if folder else "")
        self._remember("output_mount", self.output_mount)
        self._update_buttons()
        if not self._restoring and not self.is_running():
            elsewhere = [i for i in self._protected_otherwise()
                         if self._goes_elsewhere(self.rows[i])]
            if elsewhere:
                self.statusBar().showMessage(
                    f"{plural(len(elsewhere), 'photo')} protected into another folder: "
                    "Protect makes copies in this one (the earlier ones stay)")

    def use_default_output_dir(self) -> None:
        self.set_output_dir(None)

    @Slot(int)
    def remove_row(self, row_id: int) -> None:
        """Take one photo off the list (a photo added by mistake: Delete in the list, or
        its row's menu), only while nothing is being protected; the one after it is
        selected instead."""
        if row_id not in self.rows:
            return
        if self.is_running():
            self.statusBar().showMessage("a photo can be taken off the list once the "
                                         "batch ends (or is cancelled)", 5000)
            return
        row = self.rows[row_id]
        for key in [k for k, listed in self._listed.items() if listed is row]:
            del self._listed[key]  # added again, it is listed again
        self._failed_at.pop(row_id, None)
        if self._compare_wanted == row_id:
            self._compare_wanted = None
            self.compare_panel.reset("protected")
        self.photo_list.remove_row(row_id)  # selects the next row: its comparison shows
        if row_id in self._run_ids:  # the last batch's counts, without it (none: cleared,
            self._run_ids.discard(row_id)  # as Clear list does)
            if self._run_ids:
                self._count_batch()
            else:
                self.summary.clear()
        self._say(f"removed {row.src.name} from the list", 3000)
        self._update_buttons()

    def clear(self) -> None:
        """Remove every row, and stop the folder walks still looking for photos (only
        while nothing is being protected)."""
        if self.is_running():
            return
        self._list_generation += 1  # a folder walk still running stops at its next file
        if self._walks_pending:
            self.statusBar().showMessage("stopping the search for photos…")
        else:  # the last message was about rows now gone
            self.statusBar().showMessage("list cleared", 3000)
        self.photo_list.remove_all()
        self._listed.clear()
        self._failed_at.clear()
        self.summary.clear()  # the last batch's counts were for rows now gone
        self._compare_wanted = None
        self.compare_panel.reset("protected")
        self._update_buttons()

    # running ------------------------------------------------------------------------

    def config(self) -> ProtectConfig:
        """The run's settings: the window's controls, `settings`, and the device that
        CLOAK_DEVICE names (as for the CLI; auto when unset)."""
        policy = MetadataPolicy.choose(keep_gps=self.keep_gps.isChecked(),
                                       strip_exif=self.strip_exif.isChecked(),
                                       strip_names=self.strip_names.isChecked())
        device = os.environ.get(DEVICE_ENV, "").strip().lower()
        chosen = {"device": device} if device and device != "auto" else {}
        return ProtectConfig(strength=self.strength.currentData(), **{
            **chosen, **self.settings, "metadata": policy})

    def _settings_problem(self, exc: CloakError) -> str:
        """`exc` in the app's words; where the device CLOAK_DEVICE names is the problem,
        naming the variable (the app has no device setting of its own to point to)."""
        message = for_the_app(str(exc))
        device = os.environ.get(DEVICE_ENV, "").strip()
        if not device or device.lower() == "auto":
            return message
        try:  # the window's settings without that device: fine, so the device is it
            ProtectConfig(strength=self.strength.currentData(), **self.settings)
        except CloakError:
            return message
        return (f"{DEVICE_ENV}={device} (set in the environment): {message}; unset it, or "
                f"set {DEVICE_ENV}=auto, before starting the app")

    def is_running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Protect every waiting (or previously cancelled or failed) photo in a background
        thread."""
        if self.is_running():
            return
        redo = self._protected_otherwise()
        todo = [i for i in self.photo_list.row_ids()
                if self.rows[i].state in PENDING_STATES or i in redo]
        if not todo:
            self.statusBar().showMessage("drop some photos first", 5000)
            return
        what = (save_to_problem(self.output_dir, self.output_mount)
                if self.output_dir is not None else None)
        if what is not None:
            # gone since it was chosen (deleted, or a share no longer mounted: its copies
            # would land hidden on the disk below the mount point)
            self.statusBar().showMessage(f"the Save-to folder {self.output_dir} {what}: "
                                         f"{save_to_advice(what)}", 8000)
            return
        try:
            config = self.config()
            note = fp32_cpu_note(pick_device(config.device), config.strength)
        except CloakError as exc:
            self.statusBar().showMessage(f"settings problem: {self._settings_problem(exc)}")
            return
        jobs = [Job(i, self.rows[i].src, self.output_dir or default_output_dir(self.rows[i].src),
                    chosen=self.output_dir is not None, mount=self.output_mount)
                for i in todo]
        for i in todo:
            self.rows[i].set_waiting()
        if self._compare_wanted in redo:  # protected again: not its old copy meanwhile
            self.compare_panel.reset()
        self._todo = len(jobs)
        self._done = 0
        # last_output_dir stays the last batch's until this one writes a copy: a batch
        # that writes none (cancelled, or only unreadable photos) leaves it to show
        self._run_notices = []  # shown again when the batch ends
        self._run_ids = set(todo)  # the summary at the end counts this batch's photos
        self._run_output_dirs = set()
        self._thread = QThread(self)
        self._worker = ProtectWorker(jobs, config)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.started.connect(self._on_started)
        self._worker.progress.connect(self._on_progress)
        self._worker.protected.connect(self._on_protected)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._worker.notice.connect(self._on_notice)
        # quit() is thread-safe; a direct call lets closeEvent's wait() end the thread.
        self._worker.finished.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        # Deleted in its own thread as that ends (Qt's pattern): a deleteLater called
        # later, from the main thread, went to a thread with no event loop left, and each
        # batch's worker was never freed.
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.finished.connect(self._on_thread_finished)
        self._thread.start()
        self.summary.setText(f"protecting {plural(len(jobs), 'photo')}…")
        if note:
            self.statusBar().showMessage(for_the_app(note))
        elif not self._walks_pending:  # not a last batch's notice or settings problem
            self.statusBar().clearMessage()
        self._update_buttons()  # Protect, pressed from the keyboard: the focus to the list

    def cancel(self) -> None:
        """Stop at the next attack step; nothing is written for unfinished photos. A
        folder walk still looking for photos stops too, adding none (a home folder dropped
        by mistake: Clear list is off during a batch, and would remove every row); photo
        files picked alone are still added."""
        if self._folder_walks:
            self._walk_generation += 1  # each folder walk stops at its next file
            self.statusBar().showMessage("stopped the search for photos", 5000)
        if self._worker is not None:
            self._worker.cancel()
            self.summary.setText("cancelling…")
            self._enable(self.cancel_button, False)

    def open_output_folder(self) -> None:
        folder = self.last_output_dir or self.output_dir
        if folder is not None and not open_folder(folder):
            self.statusBar().showMessage(
                f"could not open {folder}" + ("" if os.path.isdir(folder) else
                                              " (it is no longer there)"), 8000)

    # worker signals -----------------------------------------------------------------

    @Slot(object)
    def _on_notice(self, text: str) -> None:
        text = printable(text)  # a folder named in bytes that are not UTF-8: \xNN
        self._run_notices.append(text)
        self.statusBar().showMessage(text)

    @Slot(int)
    def _on_started(self, row_id: int) -> None:
        self.rows[row_id].set_working(0.0, "starting")
        if self._worker is None or not self._worker.is_cancelled():  # keep "cancelling…"
            self.summary.setText(f"protecting {self._done + 1} of {self._todo}…")

    @Slot(int, float, object)
    def _on_progress(self, row_id: int, fraction: float, message: str) -> None:
        self.rows[row_id].set_working(fraction, message)

    @Slot(int, object)
    def _on_protected(self, row_id: int, outcome: Outcome) -> None:
        self._done += 1
        row = self.rows[row_id]
        row.set_protected(outcome)
        if self._thumbnail_stale(row, outcome.src_stamp):  # edited after it was added:
            generation = self._list_generation  # the thumbnail shows what was protected
            self._request_thumbnail(row, lambda: not self._closing
                                    and self._list_generation == generation)
        self._run_output_dirs.add(outcome.dst.parent)
        self.last_output_dir = common_folder(self._run_output_dirs, outcome.dst.parent)
        if self._compare_wanted is None and self.photo_list.current_row_id() is None:
            self.photo_list.set_current(row_id)  # shown, and highlighted as such (a trial)
        elif self._compare_wanted is None or self.photo_list.current_row_id() == row_id:
            self.show_comparison(row_id)

    @Slot(int, object)
    def _on_failed(self, row_id: int, message: str) -> None:
        self._done += 1
        self._failures += 1
        self._failed_at[row_id] = self._failures
        self.rows[row_id].set_failed(message)

    @Slot(int)
    def _on_cancelled(self, row_id: int) -> None:
        self.rows[row_id].set_cancelled()

    @Slot()
    def _on_thread_finished(self) -> None:
        self._thread.deleteLater()
        self._worker = self._thread = None
        release_freed_memory()  # the app stays open: not its peak memory until it quits
        counts, weak = self._count_batch()
        self._update_buttons()
        if weak:  # as the CLI's closing note: the count alone read as "all protected"
            stronger = STRONGER.get(self.strength.currentData())
            which = " and ".join(
                f"{weak[s]} of {counts[s]} {many if counts[s] > 1 else one}"
                for s, one, many in ((PhotoRow.PROTECTED, "new copy", "new copies"),
                                     (EARLIER, "copy made earlier",
                                      "copies made earlier")) if weak.get(s))
            verb = "carries" if sum(weak.values()) == 1 else "carry"
            # the advice first: a narrow window's status bar cuts the end off
            self._run_notices.append(
                (f"Strength {stronger} protects more: choose it and click Protect. "
                 if stronger else "") + f"{which} {verb} little protection (under 0.5 dB on "
                "the weakest model, as saved or after Instagram-style posting)"
                + ("" if stronger else "; small or very flat photos hold less") + ".")
        noted = sum(bool(row.outcome.notes) for i, row in self.rows.items()
                    if i in self._run_ids and row.outcome is not None)
        if noted:  # a row scrolled out of sight: its note said where the user looks
            self._run_notices.append(
                f"{plural(noted, 'copy', 'copies')} {'has a note' if noted == 1 else 'have notes'}"
                f" on how {'it was' if noted == 1 else 'they were'} saved (what a format "
                f"could not keep, or the format itself): see "
                f"{'its row' if noted == 1 else 'their rows'}.")
        if self._run_notices:  # a message shown since may have replaced them
            self.statusBar().showMessage(" ".join(self._run_notices))
        emit(self.batch_finished)
        if self._close_when_stopped:  # closed mid-batch: the worker has stopped now
            QTimer.singleShot(0, self, self.close)

    def _count_batch(self) -> tuple[dict[str, int], dict[str, int]]:
        """The last batch's rows still listed, counted by how each ended (a photo found
        protected in an earlier session as EARLIER, not as new), and those of them with
        little protection (_weak_copies); the summary line says both."""
        states = [EARLIER if row.outcome is not None
                  and row.outcome.status == ALREADY_PROTECTED else row.state
                  for i, row in self.rows.items() if i in self._run_ids]
        counts = {s: states.count(s) for s in (PhotoRow.PROTECTED, EARLIER,
                                               PhotoRow.FAILED, PhotoRow.CANCELLED)
                  if states.count(s)}
        waiting = sum(row.state == PhotoRow.WAITING for i, row in self.rows.items()
                      if i not in self._run_ids)
        weak = self._weak_copies()
        self.summary.setText(", ".join(
            f"{n} {s}" + (f" ({weak[s]} with protection mostly lost)" if weak.get(s) else "")
            for s, n in counts.items())
            + (f"; {waiting} added meanwhile, waiting" if waiting else ""))
        return counts, weak

    def _weak_copies(self) -> dict[str, int]:
        """This batch's copies whose weakest model keeps under verify's "weak" (0.5 dB),
        as saved or after Instagram-style posting, or as an earlier copy's record says
        (their rows say "protection mostly lost"), counted as the summary counts them: new
        (PhotoRow.PROTECTED) or EARLIER. Empty when there are none."""
        weak: dict[str, int] = {}
        for i in self._run_ids:
            row = self.rows.get(i)
            outcome = row.outcome if row is not None else None
            if (row is None or row.state != PhotoRow.PROTECTED or outcome is None
                    or not outcome.protection_lost):
                continue
            kind = EARLIER if outcome.status == ALREADY_PROTECTED else PhotoRow.PROTECTED
            weak[kind] = weak.get(kind, 0) + 1
        return weak

    # the rest -----------------------------------------------------------------------

    def show_comparison(self, row_id: int) -> None:
        """Load the before/after of a protected row in the background, then show it."""
        row = self.rows.get(row_id)
        if row is None:
            return
        if (row_id == self._compare_wanted and self.compare_panel.loading
                and row.outcome is not None and row.outcome is self._compare_loading):
            return  # already on its way (a second click on the same photo)
        self._compare_wanted, self._compare_loading = row_id, row.outcome
        if row.outcome is None:  # not protected (yet): no earlier photo's comparison
            self.compare_panel.reset()
            return
        if (why := self._why_no_comparison(row)) is not None:
            self.compare_panel.show_error(row.src.name, why)
            return
        self.compare_panel.show_loading(row.src.name)
        # A comparison that is no longer wanted when its turn comes is skipped, so arrowing
        # through 30 photos decodes 1 or 2 of them, not 30. (The pool owns its runnables:
        # one kept here could be freed by Python while the pool thread still runs it.)
        outcome = row.outcome
        call = BackgroundCall(self._comparisons, (row_id, outcome), compare, outcome.src,
                              outcome.dst, COMPARE_SIDE, outcome.config)
        call.still_wanted = lambda: (not self._closing and self._compare_wanted == row_id
                                     and self._compare_loading is outcome)
        self._run_in_background(call, COMPARE_PRIORITY)

    def _run_in_background(self, call: BackgroundCall, priority: int = 0) -> None:
        """Queue `call` on the pool, unless the window is closing. Once closeEvent has
        drained the pool, nothing may start there: the pool, a child of the window, waits
        for its work when the window is deleted, and a call started from a queued signal
        after the drain (a walk's result listing photos, a last photo's comparison) could
        deadlock that wait, which holds Python's lock where a test's event loop deletes
        the window."""
        if not self._closing:
            self._pool.start(call, priority)

    @Slot(object, object, object)
    def _on_comparison(self, key: tuple[int, Outcome], comparison: Comparison | None,
                       error: str) -> None:
        row_id, outcome = key
        row = self.rows.get(row_id)
        if row_id != self._compare_wanted or row is None or row.outcome is not outcome:
            return  # the user has moved on to another photo, or it was added again since
        if (why := self._why_no_comparison(row)) is not None:  # (while it was loaded)
            self.compare_panel.show_error(row.src.name, why)
        elif comparison is None:
            self.compare_panel.show_error(row.src.name, _about_the_pair(error, outcome))
        else:
            self.compare_panel.show_comparison(row.src.name, comparison)

    @Slot(object, object, object)
    def _on_thumbnail(self, row_id: int, made: tuple | None, _error: str) -> None:
        if row_id not in self.rows:
            return
        row = self.rows[row_id]
        image, why = made or (None, None)
        row.set_thumbnail(image)
        if why and row.state == PhotoRow.WAITING:  # not one protected or running since
            row.set_unreadable(for_the_app(why))  # as its failure would say it

    @Slot(int)
    def _on_nothing_usable(self, count: int, not_added: str = "") -> None:
        if not_added and any(kind in not_added for kind in (
                "RAW", "protected cop", "hidden file", "preview sheet", "can't read",
                "holds a cloak record", "taken for cloak's copies",
                "holds cloak's copies")):
            # the advice (develop it, add the original) says more than the list
            self._say(f"no photos to add; {not_added}", 8000)
            return
        named = f"; {not_added}" if not_added else ""  # the files, by name
        self._say(f"no photos to add among {plural(count, 'item')}{named}; cloak reads "
                  f"{SUPPORTED} (hidden files, protected copies and the Save-to folder are "
                  "skipped)", 8000)

    @Slot(int)
    def _on_current_changed(self, row_id: int) -> None:
        self.show_comparison(row_id)

    def _protected_otherwise(self, settings_only: bool = False) -> set[int]:
        """The rows protected (now or in an earlier session) with other settings than the
        window's now: after the advice to protect at a stronger preset, Protect makes
        new copies of them with these. None while new photos wait (Protect does those,
        with the new settings, and not the earlier ones again; a photo that failed or was
        cancelled is retried, and blocks nothing: one unreadable file kept the advice
        from being followed), and never for "Keep location" alone: copies made without
        the GPS are not made again with it. So are those whose copy is not where Protect
        would put it now (deleted since, or the Save-to folder changed), as `cloak
        protect` makes it again; `settings_only`: not those, unless their settings
        differ too."""
        if any(row.state == PhotoRow.WAITING for row in self.rows.values()):
            return set()
        try:
            config = self.config()
        except CloakError:  # a settings problem: start() says so
            return set()
        judged: dict[int, bool] = {}  # rows of one batch share one config

        def chosen_otherwise(made: ProtectConfig) -> bool:
            if id(made) not in judged:
                # as the user chose it: a run turns face priority off where the detector
                # is missing, and downloads off once the weights are fetched; "Keep
                # location" is not a reason to make copies again
                judged[id(made)] = made.replace(
                    faces=config.faces, allow_download=config.allow_download,
                    metadata=dataclasses.replace(made.metadata or MetadataPolicy(),
                                                 strip_gps=config.metadata.strip_gps)
                ) != config
            return judged[id(made)]

        return {i for i, row in self.rows.items()
                if row.state == PhotoRow.PROTECTED and row.outcome is not None
                and row.outcome.config is not None
                and (chosen_otherwise(row.outcome.config)
                     or (not settings_only and self._copy_not_there(row)))}

    @Slot()
    def _settings_changed(self) -> None:
        """A setting that changes the copies: say what Protect will do with the photos
        protected with other ones."""
        if self.is_running() or self._restoring:
            return
        self._update_buttons()
        if redo := self._protected_otherwise(settings_only=True):
            self.statusBar().showMessage(
                f"{plural(len(redo), 'photo')} {REDO_NOTE}")
        elif gone := [i for i in self._protected_otherwise()  # (settings as they were)
                      if not self._goes_elsewhere(self.rows[i])]:
            one = len(gone) == 1  # deleted since: not "other settings", none differ
            self.statusBar().showMessage(
                f"{plural(len(gone), 'protected copy', 'protected copies')} "
                f"{'is' if one else 'are'} no longer there: Protect makes "
                f"{'it' if one else 'them'} again")
        elif self.statusBar().currentMessage().endswith(REDO_NOTE):  # changed back
            self.statusBar().clearMessage()

    def _update_buttons(self) -> None:
        running = self.is_running()
        pending = not running and (any(r.state in PENDING_STATES for r in self.rows.values())
                                   or bool(self._protected_otherwise()))
        enable = self._enable
        enable(self.protect_button, pending)
        # a folder dropped by mistake can be stopped without clearing the list
        cancelling = running and self._worker is not None and self._worker.is_cancelled()
        enable(self.cancel_button, (running and not cancelling) or self._folder_walks > 0)
        enable(self.open_button, self.last_output_dir is not None and not running)
        enable(self.clear_button, (bool(self.rows) or self._walks_pending > 0)
               and not running)
        for control in (self.strength, self.keep_gps, self.strip_names, self.strip_exif):
            enable(control, not running)
        enable(self.change_output, not running)
        enable(self.reset_output, self.output_dir is not None and not running)

    def _enable(self, control: QWidget, on: bool) -> None:
        """Turn `control` on or off. One turned off while it has the keyboard focus
        (Cancel as a batch or a folder search ends by itself) hands the focus to the photo
        list: Qt passed it on round the Tab order, often to the drop zone, where the Space
        the user meant for Cancel opened a file chooser. So where the window is not the
        active one (the user switched away during a long batch): the control it gives
        the focus back to when it is."""
        if not on and (control.hasFocus() or self.focusWidget() is control):
            self.photo_list.setFocus()
        control.setEnabled(on)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self.drop_zone.dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self.drop_zone.dragMoveEvent(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.drop_zone.dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_zone.dropEvent(event)

    # remembered choices ---------------------------------------------------------------

    def _remember(self, key: str, value: object) -> None:
        if self.store is not None and not self._restoring:
            store = self.store()
            store.setValue(key, value)
            store.sync()
            if store.status() != QSettings.Status.NoError:
                self._choices_not_kept(store, "saved")

    def _choices_not_kept(self, store: QSettings, what: str) -> None:
        """Say once a session that the remembered choices can't be `what` (saved, read):
        the app works on with this session's choices."""
        if self._said_choices:
            return
        self._said_choices = True
        message = (f"your choices can't be {what} ({store.fileName()}: "
                   f"{'not writable' if what == 'saved' else 'unreadable'}); they hold for "
                   "this session only")
        log.warning("%s", message)
        self.statusBar().showMessage(message, 10000)

    def _restore_choices(self) -> None:
        """Put back the strength, Save-to folder and "Remove camera details" of the last
        launch ("Keep location" starts off).
        A Save-to folder that can't be reached now (a disk or share not connected) is kept,
        with a word in the status bar: Protect refuses it until it is there again, so
        copies never go next to the originals unasked."""
        self._restoring = True
        try:
            if self.store is not None:
                store = self.store()
                if store.status() == QSettings.Status.AccessError:
                    self._choices_not_kept(store, "read")
                index = self.strength.findData(store.value("strength", DEFAULT_STRENGTH))
                if index >= 0:
                    self.strength.setCurrentIndex(index)
                folder = str(store.value("output_dir", "") or "")
                if folder:  # its mount point as remembered; found now where none was
                    # (settings kept before it was): unmounted since, that is refused
                    mount = (str(store.value("output_mount", "") or "")
                             if store.contains("output_mount") else None)
                    self.set_output_dir(Path(folder), mount)
                    what = save_to_problem(Path(folder), self.output_mount)
                    if what is not None:
                        self.statusBar().showMessage(
                            f"the Save-to folder {folder} {what}: {save_to_advice(what)}")
                # "Keep location" starts off at every launch: ticked once for one trip's
                # photos, it must not put the next session's home photos' position in
                # their copies. "Remove camera details" only removes more: remembered.
                for box, key in ((self.strip_exif, "strip_exif"),
                                 (self.strip_names, "strip_names")):  # only remove more
                    box.setChecked(str(store.value(key, "false")).lower() == "true")
        finally:
            self._restoring = False
        self.strength.currentIndexChanged.connect(
            lambda _: self._remember("strength", self.strength.currentData()))
        self.strength.currentIndexChanged.connect(self._settings_changed)
        for box in (self.keep_gps, self.strip_exif, self.strip_names):
            box.toggled.connect(self._settings_changed)
        self.strip_exif.toggled.connect(lambda on: self._remember("strip_exif", on))
        self.strip_names.toggled.connect(lambda on: self._remember("strip_names", on))

    def changeEvent(self, event: QEvent) -> None:
        """Back in the window (from a file manager, where a protected copy was deleted):
        Protect is on again for those, as a change of setting would show."""
        super().changeEvent(event)
        if (event.type() == QEvent.Type.ActivationChange and self.isActiveWindow()
                and not getattr(self, "_closing", True) and not self.is_running()):
            self._update_buttons()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closed while a batch runs, the window cancels it and stays open, responsive,
        until the worker stops (the current attack step, a photo's load or its check
        after posting can take seconds), then closes by itself: waiting here would freeze
        it (photos dropped meanwhile are not added). shutdown() waits instead, so no
        thread outlives the window."""
        if self._thread is not None and not self._joining:
            self._close_when_stopped = True
            self.cancel()
            self.statusBar().showMessage("Stopping after the current step; the window "
                                         "closes by itself")
            event.ignore()
            return
        self._stop_background_work()
        super().closeEvent(event)

    def _stop_background_work(self) -> None:
        """Cancel a running batch, wait for its worker to stop, drop queued pool work and
        wait for the running call; nothing new starts on the pool after this."""
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            self.statusBar().showMessage("Stopping after the current step…")
            self.repaint()
            self._thread.quit()
            self._thread.wait()
        self._pool.clear()
        self._pool.waitForDone()

    def shutdown(self) -> None:
        """Close now: cancel a running batch and wait for its worker to stop (the app's
        exit, where nothing may outlive the window). The waiting is done here, not left
        to closeEvent, which Qt skips for a window closed already."""
        self._joining = True
        self._stop_background_work()
        self.close()


STYLE_SHEET = """
#dropZone { border: 2px dashed #8a94a6; border-radius: 10px; background: #f4f6fa; }
#dropZone[hover="true"] { border-color: #2f6fed; background: #e8f0ff; }
#dropZone:focus { border-color: #2f6fed; }
#hint { color: #5b6473; }
#photoName { font-weight: bold; }
#status { color: #3c4350; }
#thumb { background: #eceff4; border-radius: 4px; }
#panelTitle { font-weight: bold; }
#photoColumn { background: white; }
#photoList { border: 2px solid #d5dae3; }
#photoList:focus { border-color: #2f6fed; }
#photoRow { border-bottom: 1px solid #e3e6ec; }
#photoRow[selected="true"] { background: #dde7fb; border-left: 4px solid #1f4fb8; }
#photoRow[selected="false"] { border-left: 4px solid transparent; }
#compareView { background: #20232a; color: #c9ced8; border-radius: 6px; }
QPushButton#primary { font-weight: bold; }
"""
