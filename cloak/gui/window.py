"""The main window: a drop zone, one row per photo, and a before/after comparison.

The drop zone only turns dropped URLs into local photo paths and emits a signal; the
window turns rows into `Job`s for a `ProtectWorker` running in a QThread, and shows what
the worker reports. No protection logic lives here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QThread, QThreadPool, QUrl, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cloak import PRESETS, CloakError, ProtectConfig

from .images import Comparison, compare, thumbnail
from .paths import IMAGE_SUFFIXES, SUPPORTED, default_output_dir, expand_paths
from .worker import BackgroundCall, CallSignals, Job, Outcome, ProtectWorker

log = logging.getLogger(__name__)

THUMB_SIZE = 56
DEFAULT_STRENGTH = ProtectConfig.strength  # the library's default preset
ERROR_COLOR = "#b3261e"
OK_COLOR = "#1b6e3a"


def to_qimage(image: Image.Image) -> QImage:
    """A PIL image as a QImage that owns its pixels."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    return QImage(data, rgba.width, rgba.height, 4 * rgba.width,
                  QImage.Format.Format_RGBA8888).copy()


def open_folder(folder: Path) -> bool:
    """Show `folder` in the system file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders among the dragged URLs (web URLs are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class DropZone(QFrame):
    """Accepts dropped photos and folders, or a click to pick photos; only emits signals."""

    photos_dropped = Signal(list)  # list[Path]: photos, folders already expanded
    nothing_usable = Signal(int)   # how many dropped items were not photos
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dropZone")
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMinimumHeight(110)
        self.setProperty("hover", False)
        label = QLabel("<b>Drop photos or folders here</b><br>or click to choose photos")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(f"Originals are never changed. {SUPPORTED}")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(label)
        layout.addWidget(hint)
        layout.addStretch()

    def _set_hover(self, hover: bool) -> None:
        self.setProperty("hover", hover)
        self.style().unpolish(self)
        self.style().polish(self)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
            self._set_hover(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_hover(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_hover(False)
        dropped = local_paths(event.mimeData())
        if not dropped:
            event.ignore()
            return
        event.acceptProposedAction()
        photos = expand_paths(dropped)
        if photos:
            self.photos_dropped.emit(photos)
        else:
            self.nothing_usable.emit(len(dropped))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
                event.position().toPoint()):
            self.clicked.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.clicked.emit()
        else:
            super().keyPressEvent(event)


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" instead of widening its parent."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideMiddle,
                                             self.contentsRect().width())
        painter.drawText(self.contentsRect(), int(self.alignment()), text)


class PhotoRow(QWidget):
    """One photo: thumbnail, name, progress bar and a status line in plain words."""

    WAITING, WORKING, PROTECTED, FAILED, CANCELLED = (
        "waiting", "working", "protected", "failed", "cancelled")
    clicked = Signal(int)  # row id

    def __init__(self, row_id: int, src: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row_id = row_id
        self.src = src
        self.setObjectName("photoRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setProperty("selected", False)
        self.outcome: Outcome | None = None
        self.state = self.WAITING
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB_SIZE, THUMB_SIZE)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setObjectName("thumb")
        self.name = ElidedLabel(src.name)
        self.name.setObjectName("photoName")
        self.name.setToolTip(str(src))
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.status = QLabel()
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(120)
        text = QVBoxLayout()
        text.setSpacing(3)
        text.addWidget(self.name)
        text.addWidget(self.bar)
        text.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.thumb)
        layout.addLayout(text, 1)
        self.set_waiting()

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.row_id)
        super().mousePressEvent(event)

    def set_thumbnail(self, image: Image.Image | None) -> None:
        if image is None:
            self.thumb.setText("?")
            return
        self.thumb.setPixmap(QPixmap.fromImage(to_qimage(image)))

    def _show(self, state: str, status: str, fraction: float, color: str | None = None) -> None:
        self.state = state
        self.status.setText(status)
        self.status.setStyleSheet(f"color: {color};" if color else "")
        self.bar.setValue(round(1000 * fraction))

    def set_waiting(self) -> None:
        self._show(self.WAITING, "waiting", 0.0)

    def set_working(self, fraction: float, message: str) -> None:
        self._show(self.WORKING, message, fraction)

    def set_protected(self, outcome: Outcome) -> None:
        self.outcome = outcome
        shown = Path(outcome.dst.parent.name) / outcome.dst.name
        self._show(self.PROTECTED, f"{outcome.status}\nsaved as {shown}", 1.0, OK_COLOR)
        self.status.setToolTip(str(outcome.dst))

    def set_failed(self, message: str) -> None:
        message = message.removeprefix(f"{self.src}: ")  # the row already names the photo
        self._show(self.FAILED, f"failed: {message}", 0.0, ERROR_COLOR)

    def set_cancelled(self) -> None:
        self._show(self.CANCELLED, "cancelled — nothing saved", 0.0)


class PhotoList(QScrollArea):
    """The photo rows, by id, in a scrolling column; click (or Up/Down) selects one."""

    current_changed = Signal(int)  # the id of the newly selected row

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[int, PhotoRow] = {}
        self._current: int | None = None
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        column = QWidget()
        column.setObjectName("photoColumn")
        self._layout = QVBoxLayout(column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addStretch()
        self.setWidget(column)

    def add_row(self, row: PhotoRow) -> None:
        self.rows[row.row_id] = row
        self._layout.insertWidget(self._layout.count() - 1, row)
        row.clicked.connect(self.set_current)

    def row_ids(self) -> list[int]:
        """Row ids in display order."""
        return list(self.rows)

    def current_row_id(self) -> int | None:
        return self._current

    @Slot(int)
    def set_current(self, row_id: int) -> None:
        """Select a row (highlighted) and say so through `current_changed`."""
        for rid, row in self.rows.items():
            row.set_selected(rid == row_id)
        self._current = row_id
        self.ensureWidgetVisible(self.rows[row_id])
        self.current_changed.emit(row_id)

    def remove_all(self) -> None:
        for row in self.rows.values():
            row.deleteLater()
        self.rows.clear()
        self._current = None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        ids = self.row_ids()
        step = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1}.get(event.key())
        if step is None or not ids:
            super().keyPressEvent(event)
            return
        index = ids.index(self._current) + step if self._current in ids else 0
        self.set_current(ids[max(0, min(index, len(ids) - 1))])


class ImageView(QLabel):
    """Shows a pixmap scaled to fit, keeping its aspect ratio as the widget resizes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(200, 160)

    def set_image(self, image: Image.Image | None) -> None:
        self._pixmap = None if image is None else QPixmap.fromImage(to_qimage(image))
        if self._pixmap is None:
            self.clear()
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None:
            return  # keep any text shown instead
        self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))


class ComparePanel(QWidget):
    """Before/after: toggle between the original, the protected copy and the amplified
    difference (|protected − original| × 10), which shows where the perturbation is."""

    MODES = ("original", "protected", "difference")
    LABELS: ClassVar[dict[str, str]] = {
        "original": "Original", "protected": "Protected", "difference": "Difference ×10"}
    CAPTIONS: ClassVar[dict[str, str]] = {
        "original": "The original photo, untouched.",
        "protected": "The protected copy: it should look the same as the original.",
        "difference": "Where the protection is: |protected − original| × 10. "
                      "Brighter means a larger (still invisible) change.",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = "protected"
        self.comparison: Comparison | None = None
        self.loading = False
        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        self.view = ImageView()
        self.view.setObjectName("compareView")
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setObjectName("hint")
        self.buttons = QButtonGroup(self)
        toggles = QHBoxLayout()
        for mode in self.MODES:
            button = QPushButton(self.LABELS[mode])
            button.setCheckable(True)
            button.setObjectName(f"show_{mode}")
            button.setEnabled(False)
            self.buttons.addButton(button)
            button.clicked.connect(self._on_toggle)
            toggles.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        layout.addLayout(toggles)
        layout.addWidget(self.caption)
        self.reset()

    def reset(self) -> None:
        """Back to the empty state: nothing to compare yet."""
        self.show_error("Before / after", "")
        self.view.setText("Protected photos appear here.\nSelect one in the list to compare.")
        self.caption.setText(self.CAPTIONS[self.mode])

    def button(self, mode: str) -> QPushButton:
        return self.findChild(QPushButton, f"show_{mode}")

    def show_loading(self, name: str) -> None:
        self.loading = True
        self.title.setText(f"{name} — loading…")

    def show_comparison(self, name: str, comparison: Comparison) -> None:
        """Show `comparison` (original, protected, difference) in the current mode."""
        self.comparison, self.loading = comparison, False
        self.title.setText(f"{name} — largest pixel change {comparison.max_change255}/255")
        for mode in self.MODES:
            self.button(mode).setEnabled(True)
        self.set_mode(self.mode)

    def show_error(self, name: str, message: str) -> None:
        self.comparison, self.loading = None, False
        self.title.setText(name)
        self.view.set_image(None)
        self.view.setText(f"Cannot show this photo: {message}")
        for mode in self.MODES:
            self.button(mode).setEnabled(False)

    def set_mode(self, mode: str) -> None:
        """Show the original, the protected copy, or the amplified difference."""
        self.mode = mode
        self.button(mode).setChecked(True)
        self.caption.setText(self.CAPTIONS[mode])
        if self.comparison is not None:
            self.view.set_image(getattr(self.comparison, mode))

    def _on_toggle(self) -> None:
        checked = self.buttons.checkedButton()
        self.set_mode(checked.objectName().removeprefix("show_"))


class MainWindow(QMainWindow):
    """The cloak desktop app. `settings` are extra `ProtectConfig` fields (tests, power
    users); the strength preset always comes from the combo box."""

    batch_finished = Signal()

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__()
        self.settings = dict(settings or {})
        self.output_dir: Path | None = None  # None: a `protected` folder next to each photo
        self.last_output_dir: Path | None = None
        self._next_id = 0
        self._todo = self._done = 0  # photos in the running batch, and finished so far
        self._thread: QThread | None = None
        self._worker: ProtectWorker | None = None
        self._pool = QThreadPool(self)  # thumbnails and comparisons, off the main thread
        self._pool.setMaxThreadCount(1)
        self._thumbnails = CallSignals(self)
        self._thumbnails.done.connect(self._on_thumbnail)
        self._comparisons = CallSignals(self)
        self._comparisons.done.connect(self._on_comparison)
        self._compare_wanted: int | None = None
        self.setWindowTitle("cloak — protect photos before you post them")
        self.setAcceptDrops(True)  # drops anywhere go through the drop zone's filter
        self._build()
        self.set_output_dir(None)
        self.resize(1160, 700)
        self.photo_list.setFocus()

    # building -----------------------------------------------------------------------

    def _build(self) -> None:
        self.drop_zone = DropZone()
        self.drop_zone.photos_dropped.connect(self.add_paths)
        self.drop_zone.nothing_usable.connect(self._on_nothing_usable)
        self.drop_zone.clicked.connect(self.pick_photos)

        self.strength = QComboBox()
        for name, preset in PRESETS.items():
            self.strength.addItem(f"{name} — {preset.eps255:g}/255, {preset.steps} steps", name)
        self.strength.setCurrentIndex(list(PRESETS).index(DEFAULT_STRENGTH))
        self.strength.setToolTip("Stronger presets protect more, take longer, and change "
                                 "more pixels (still meant to be invisible).")
        self.output_label = QLabel()
        self.output_label.setObjectName("hint")
        self.change_output = QPushButton("Change…")
        self.change_output.clicked.connect(self.pick_output_dir)
        self.reset_output = QPushButton("Next to originals")
        self.reset_output.clicked.connect(self.use_default_output_dir)
        self.output_label.setWordWrap(True)
        options = QGridLayout()
        options.addWidget(QLabel("Strength"), 0, 0)
        options.addWidget(self.strength, 0, 1, 1, 3, Qt.AlignmentFlag.AlignLeft)
        options.addWidget(QLabel("Save to"), 1, 0)
        options.addWidget(self.output_label, 1, 1)
        options.addWidget(self.change_output, 1, 2)
        options.addWidget(self.reset_output, 1, 3)
        options.setColumnStretch(1, 1)

        self.photo_list = PhotoList()
        self.rows = self.photo_list.rows  # row id -> PhotoRow
        self.photo_list.current_changed.connect(self._on_current_changed)

        self.protect_button = QPushButton("Protect")
        self.protect_button.setObjectName("primary")
        self.protect_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open output folder")
        self.open_button.clicked.connect(self.open_output_folder)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self.pick_folder)
        self.clear_button = QPushButton("Clear list")
        self.clear_button.clicked.connect(self.clear)
        self.summary = QLabel()
        actions = QHBoxLayout()
        for button in (self.protect_button, self.cancel_button, self.open_button):
            actions.addWidget(button)
        actions.addWidget(self.summary, 1)
        actions.addWidget(self.add_folder_button)
        actions.addWidget(self.clear_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.drop_zone)
        left_layout.addLayout(options)
        left_layout.addWidget(self.photo_list, 1)
        left_layout.addLayout(actions)

        self.compare_panel = ComparePanel()
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.compare_panel)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([600, 560])
        self.setCentralWidget(splitter)
        self.setStyleSheet(STYLE_SHEET)

    # photos -------------------------------------------------------------------------

    @Slot(list)
    def add_paths(self, paths: list) -> None:
        """Add photos (folders are expanded) as waiting rows, skipping ones already listed."""
        listed = {row.src for row in self.rows.values()}
        added = 0
        for src in expand_paths(paths):
            if src in listed:
                continue
            row_id, self._next_id = self._next_id, self._next_id + 1
            self.photo_list.add_row(PhotoRow(row_id, src))
            self._pool.start(BackgroundCall(self._thumbnails, row_id, thumbnail, src,
                                            THUMB_SIZE))
            added += 1
        self.statusBar().showMessage(f"added {added} photo(s)" if added else
                                     "those photos are already in the list", 5000)
        self._update_buttons()

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

    def set_output_dir(self, folder: Path | None) -> None:
        """Where protected copies go; None means a `protected` folder next to each photo."""
        self.output_dir = folder
        self.output_label.setText(str(folder) if folder else
                                  "a “protected” folder next to each photo")
        self._update_buttons()

    def use_default_output_dir(self) -> None:
        self.set_output_dir(None)

    def clear(self) -> None:
        """Remove every row (only while nothing is running)."""
        if self.is_running():
            return
        self.photo_list.remove_all()
        self._compare_wanted = None
        self.compare_panel.reset()
        self._update_buttons()

    # running ------------------------------------------------------------------------

    def config(self) -> ProtectConfig:
        return ProtectConfig(strength=self.strength.currentData(), **self.settings)

    def is_running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Protect every waiting (or previously cancelled) photo in a background thread."""
        if self.is_running():
            return
        todo = [i for i in self.photo_list.row_ids()
                if self.rows[i].state in (PhotoRow.WAITING, PhotoRow.CANCELLED)]
        if not todo:
            self.statusBar().showMessage("drop some photos first", 5000)
            return
        try:
            config = self.config()
        except CloakError as exc:
            self.statusBar().showMessage(f"settings problem: {exc}")
            return
        jobs = [Job(i, self.rows[i].src, self.output_dir or default_output_dir(self.rows[i].src))
                for i in todo]
        for i in todo:
            self.rows[i].set_waiting()
        self._todo = len(jobs)
        self._done = 0
        self._thread = QThread(self)
        self._worker = ProtectWorker(jobs, config)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.started.connect(self._on_started)
        self._worker.progress.connect(self._on_progress)
        self._worker.protected.connect(self._on_protected)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        # quit() is thread-safe; a direct call lets closeEvent's wait() end the thread.
        self._worker.finished.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._thread.start()
        self.summary.setText(f"protecting {len(jobs)} photo(s)…")
        self._update_buttons()

    def cancel(self) -> None:
        """Stop at the next attack step; nothing is written for unfinished photos."""
        if self._worker is not None:
            self._worker.cancel()
            self.summary.setText("cancelling…")
            self.cancel_button.setEnabled(False)

    def open_output_folder(self) -> None:
        folder = self.last_output_dir or self.output_dir
        if folder is not None:
            open_folder(folder)

    # worker signals -----------------------------------------------------------------

    @Slot(int)
    def _on_started(self, row_id: int) -> None:
        self.rows[row_id].set_working(0.0, "starting")
        self.summary.setText(f"protecting {self._done + 1} of {self._todo}…")

    @Slot(int, float, str)
    def _on_progress(self, row_id: int, fraction: float, message: str) -> None:
        self.rows[row_id].set_working(fraction, message)

    @Slot(int, object)
    def _on_protected(self, row_id: int, outcome: Outcome) -> None:
        self._done += 1
        self.rows[row_id].set_protected(outcome)
        self.last_output_dir = outcome.dst.parent
        if self._compare_wanted is None or self.photo_list.current_row_id() == row_id:
            self.show_comparison(row_id)

    @Slot(int, str)
    def _on_failed(self, row_id: int, message: str) -> None:
        self._done += 1
        self.rows[row_id].set_failed(message)

    @Slot(int)
    def _on_cancelled(self, row_id: int) -> None:
        self.rows[row_id].set_cancelled()

    @Slot()
    def _on_thread_finished(self) -> None:
        self._worker.deleteLater()
        self._thread.deleteLater()
        self._worker = self._thread = None
        states = [row.state for row in self.rows.values()]
        counts = {s: states.count(s) for s in (PhotoRow.PROTECTED, PhotoRow.FAILED,
                                               PhotoRow.CANCELLED) if states.count(s)}
        self.summary.setText(", ".join(f"{n} {s}" for s, n in counts.items()))
        self._update_buttons()
        self.batch_finished.emit()

    # the rest -----------------------------------------------------------------------

    def show_comparison(self, row_id: int) -> None:
        """Load the before/after of a protected row in the background, then show it."""
        row = self.rows.get(row_id)
        if row is None or row.outcome is None:
            return
        self._compare_wanted = row_id
        self.compare_panel.show_loading(row.src.name)
        self._pool.start(BackgroundCall(self._comparisons, row_id, compare, row.outcome.src,
                                        row.outcome.dst))

    @Slot(object, object, str)
    def _on_comparison(self, row_id: int, comparison: Comparison | None, error: str) -> None:
        row = self.rows.get(row_id)
        if row_id != self._compare_wanted or row is None:
            return  # the user has moved on to another photo
        if comparison is None:
            self.compare_panel.show_error(row.src.name, error)
        else:
            self.compare_panel.show_comparison(row.src.name, comparison)

    @Slot(object, object, str)
    def _on_thumbnail(self, row_id: int, image: Image.Image | None, _error: str) -> None:
        if row_id in self.rows:
            self.rows[row_id].set_thumbnail(image)

    @Slot(int)
    def _on_nothing_usable(self, count: int) -> None:
        self.statusBar().showMessage(
            f"no photos in what was dropped ({count} item(s)); cloak reads {SUPPORTED}", 8000)

    @Slot(int)
    def _on_current_changed(self, row_id: int) -> None:
        self.show_comparison(row_id)

    def _update_buttons(self) -> None:
        running = self.is_running()
        pending = any(r.state in (PhotoRow.WAITING, PhotoRow.CANCELLED)
                      for r in self.rows.values())
        self.protect_button.setEnabled(pending and not running)
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(self.last_output_dir is not None and not running)
        self.clear_button.setEnabled(bool(self.rows) and not running)
        self.strength.setEnabled(not running)
        self.change_output.setEnabled(not running)
        self.reset_output.setEnabled(self.output_dir is not None and not running)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self.drop_zone.dragEnterEvent(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.drop_zone.dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_zone.dropEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel a running batch and wait for it, so no thread outlives the window."""
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
        self._pool.clear()
        self._pool.waitForDone()
        super().closeEvent(event)


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
#photoRow { border-bottom: 1px solid #e3e6ec; }
#photoRow[selected="true"] { background: #dde7fb; }
#compareView { background: #20232a; color: #c9ced8; border-radius: 6px; }
QPushButton#primary { font-weight: bold; }
"""
