"""The drop zone: dropped photos and folders (or a click, Space or Enter to pick them) in,
their local paths out as a signal. It only turns dropped URLs into paths; the window
decides what is a photo and what to do with it.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAccessible,
    QAccessibleActionInterface,
    QAccessibleInterface,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
)
from PySide6.QtWidgets import QAccessibleWidget, QFrame, QLabel, QVBoxLayout, QWidget

from .paths import SUPPORTED
from .signals import emit


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders among the dragged URLs (web URLs are ignored)."""
    if not mime.hasUrls():
        return []
    return [local_path(url) for url in mime.urls() if url.isLocalFile()]


def local_path(url: QUrl) -> Path:
    """The path a local file URL names. On Linux and macOS a name is bytes: one that is
    not UTF-8 (`caf%E9.jpg`, an old camera's or a Windows disk's Latin-1 name) is
    decoded as Python names such files (os.fsdecode), so it is the file on disk;
    toLocalFile would put a replacement character in it, naming no file."""
    if os.name == "posix" and not url.host():
        encoded = url.path(QUrl.ComponentFormattingOption.FullyEncoded)
        return Path(os.fsdecode(urllib.parse.unquote_to_bytes(encoded)))
    return Path(url.toLocalFile())


class _DropZoneAccess(QAccessibleWidget):
    """The drop zone as assistive technology sees it: a button whose Press opens the
    photo chooser, as a click, Space or Enter does. As a frame it could only be focused,
    so VoiceOver's activate, Switch Control or voice control could not press it."""

    def __init__(self, zone: DropZone) -> None:
        super().__init__(zone, QAccessible.Role.Button)

    def actionNames(self) -> list[str]:
        return [QAccessibleActionInterface.pressAction(),
                QAccessibleActionInterface.setFocusAction()]

    def doAction(self, name: str) -> None:
        if name == QAccessibleActionInterface.pressAction():
            emit(self.widget().clicked)
        else:
            super().doAction(name)


def _accessible(key: str, obj: QObject) -> QAccessibleInterface | None:
    """QAccessible's factory: the drop zone's interface (Qt owns it, and deletes it with
    the zone); None for the rest, which Qt describes itself."""
    return _DropZoneAccess(obj) if isinstance(obj, DropZone) else None


@functools.cache  # once a process: Qt asks every factory installed, in turn
def _install_accessible_factory() -> None:
    QAccessible.installFactory(_accessible)


class DropZone(QFrame):
    """Accepts dropped photos and folders, or a click to pick photos; only emits signals."""

    photos_dropped = Signal(list)  # list[Path]: files and folders (the window sorts them)
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _install_accessible_factory()
        self.setObjectName("dropZone")
        self.setAccessibleName("Drop photos or folders here, or press Space to choose photos")
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setProperty("hover", False)
        label = QLabel("<b>Drop photos or folders here</b><br>or click to choose photos")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(f"Originals are never changed. {SUPPORTED}<br>"
                      "Crop photos first: cropping after protection removes most of it.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setObjectName("hint")
        hint.setWordWrap(True)  # on its two lines it set the window's width (~990 px)
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(label)
        layout.addWidget(hint)
        layout.addStretch()

    def minimumSizeHint(self) -> QSize:
        """Tall enough for its wrapped hint at its least width: the window's least size
        is summed from these, and a wrapped label's extra lines are not in it (they took
        the height of the switches below at the window's least size)."""
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(110, hint.height(),
                                       self.layout().totalHeightForWidth(hint.width())))

    def _set_hover(self, hover: bool) -> None:
        self.setProperty("hover", hover)
        self.style().unpolish(self)
        self.style().polish(self)

    @staticmethod
    def _accept_as_copy(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> None:
        """Take the drop as a copy, whatever the source proposed: Windows Explorer proposes
        a move while Shift is held, and deletes the originals once a move is accepted."""
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()

    @staticmethod
    def _copyable(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> bool:
        """Local files from a source that lets them be copied (Qt takes a move-only
        source's drop as a move, whatever the target asks)."""
        return bool(event.possibleActions() & Qt.DropAction.CopyAction) and bool(
            local_paths(event.mimeData()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._copyable(event):
            self._accept_as_copy(event)
            self._set_hover(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._copyable(event):
            self._accept_as_copy(event)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_hover(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_hover(False)
        dropped = local_paths(event.mimeData())
        if not dropped or not self._copyable(event):
            event.ignore()
            return
        self._accept_as_copy(event)
        emit(self.photos_dropped, dropped)  # the window says what is not a photo

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
                event.position().toPoint()):
            emit(self.clicked)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            emit(self.clicked)
        else:
            super().keyPressEvent(event)
