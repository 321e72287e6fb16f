"""The window's building blocks: photo rows, the list that holds them, and the
before/after comparison panel. They only display what they are given."""

from __future__ import annotations

import html
from pathlib import Path
from typing import ClassVar

from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtGui import Qt as QtGuiQt  # its text functions (mightBeRichText)
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from cloak.naming import printable
from cloak.report import plural

from .images import Comparison
from .signals import emit
from .worker import ALREADY_PROTECTED, PROTECTION_LOST, Outcome

THUMB_SIZE = 56
ERROR_COLOR = "#b3261e"
OK_COLOR = "#1b6e3a"
WARN_COLOR = "#8a5a00"  # written, but the check says little protection is left


def to_qimage(image: Image.Image) -> QImage:
    """A PIL image as a QImage that owns its pixels."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    return QImage(data, rgba.width, rgba.height, 4 * rgba.width,
                  QImage.Format.Format_RGBA8888).copy()



def plain_tooltip(text: str) -> str:
    """`text` as a tooltip shows it letter for letter: Qt reads a tooltip that looks like
    HTML (a photo named "<b>x.jpg", a folder "/tmp/<b>Trip") as HTML, so such a text goes
    escaped, as rich text; any other is left as it is."""
    if not QtGuiQt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


class PrintableStatusBar(QStatusBar):
    """A status bar that shows each message on one line, the names in it escaped as the
    command line prints them (a name's newline, U+2028 or right-to-left override)."""

    def showMessage(self, message: str, timeout: int = 0) -> None:
        super().showMessage(printable(message), timeout)


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


class StatusText(QWidget):
    """A row's status, word-wrapped, in one colour. Unlike a QLabel, a new text that needs
    the same height only repaints: a QLabel's setText (and a style sheet change) asks every
    parent for a new layout, so each progress report laid out every row of the list (48 ms
    per report with 2,000 photos listed, about 45 reports per photo)."""

    FLAGS = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
                | Qt.TextFlag.TextWordWrap)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._color: QColor | None = None  # None: the style sheet's text colour
        # width -> (the text as drawn there, the height it needs)
        self._layouts: dict[int, tuple[str, int]] = {}
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumWidth(120)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str, color: str | None = None) -> None:
        """Show `text` in `color` (a CSS colour name; None: the default)."""
        new_color = QColor(color) if color else None
        if text == self._text and new_color == self._color:
            return
        height = self.heightForWidth(self.width())
        if text != self._text:
            self._layouts.clear()
        self._text, self._color = text, new_color
        if self.heightForWidth(self.width()) != height:  # more or fewer lines
            self.updateGeometry()
        self.update()

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._laid_out(width)[1]

    def shown_text(self, width: int) -> str:
        """The text as drawn `width` px wide: where word wrapping still runs past the edge
        (a long file name in "saved as protected/NAME", with no space or hyphen to break
        at), each word wider than the line is shortened in its middle with "…", where it
        was cut at the edge with no sign of it."""
        return self._laid_out(width)[0]

    def _laid_out(self, width: int) -> tuple[str, int]:
        # Layouts ask many times per pass, at a few widths, from C++: measuring each time
        # made adding 1,000 rows twice as slow. Kept per width until the text or font
        # changes.
        laid_out = self._layouts.get(width)
        if laid_out is None:
            if len(self._layouts) > 64:
                self._layouts.clear()
            box = QRect(0, 0, max(1, width), 1 << 20)
            metrics = self.fontMetrics()
            shown = self._text
            drawn = metrics.boundingRect(box, self.FLAGS, shown)
            if drawn.width() > width:
                shown = self._shortened(width)
                drawn = metrics.boundingRect(box, self.FLAGS, shown)
            laid_out = self._layouts[width] = (shown, max(metrics.height(), drawn.height()))
        return laid_out

    def _shortened(self, width: int) -> str:
        metrics = self.fontMetrics()

        def fitted(word: str) -> str:
            if metrics.horizontalAdvance(word) <= width:
                return word
            return metrics.elidedText(word, Qt.TextElideMode.ElideMiddle, max(1, width))

        return "\n".join(" ".join(fitted(word) for word in line.split(" "))
                         for line in self._text.split("\n"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._layouts.clear()
        super().changeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(240, self.heightForWidth(240))

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.fontMetrics().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self._color or self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(self.rect(), self.FLAGS, self.shown_text(self.width()))


# A library message about a file, once the row has stripped its name, starting with its
# verb ("PATH: is named .png but is not an image ..."): the row says "it" in its place.
SUBJECTLESS_STARTS = ("is ", "was ", "has ", "holds ", "looks ")


class PhotoRow(QWidget):
    """One photo: thumbnail, name, progress bar and a status line in plain words."""

    WAITING, WORKING, PROTECTED, FAILED, CANCELLED = (
        "waiting", "working", "protected", "failed", "cancelled")
    clicked = Signal(int)  # row id
    described = Signal()  # its accessible name (the photo and where it stands) changed

    def __init__(self, row_id: int, src: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row_id = row_id
        self.src = src
        self.thumb_stamp: tuple | None = None  # source_stamp of the file its thumbnail shows
        self.setObjectName("photoRow")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setProperty("selected", False)
        self.outcome: Outcome | None = None
        self.state = self.WAITING
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB_SIZE, THUMB_SIZE)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setObjectName("thumb")
        # names escaped as the command line prints them: a name's newline (or U+2028, or
        # a right-to-left override) faked a line of the row, or reversed it
        self.name = ElidedLabel(printable(src.name))
        self.name.setObjectName("photoName")
        self.name.setToolTip(plain_tooltip(printable(str(src))))
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")  # what a screen reader says of it: "40%", not "400"
        self.bar.setAccessibleName(f"progress of {printable(src.name)}")
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.status = StatusText()
        self.status.setObjectName("status")
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
            emit(self.clicked, self.row_id)
        super().mousePressEvent(event)

    def has_thumbnail(self) -> bool:
        """Whether the row shows its photo (not "?", nor nothing yet)."""
        pixmap = self.thumb.pixmap()
        return pixmap is not None and not pixmap.isNull()

    def set_thumbnail(self, image: Image.Image | None) -> None:
        if image is None:
            self.thumb.setText("?")
            return
        pixmap = QPixmap.fromImage(to_qimage(image))
        # made at THUMB_SIZE device pixels (more on a high-DPI screen): shown in THUMB_SIZE
        # logical pixels, at most
        pixmap.setDevicePixelRatio(max(1.0, max(image.size) / THUMB_SIZE))
        self.thumb.setPixmap(pixmap)

    def _show(self, state: str, status: str, fraction: float, color: str | None = None) -> None:
        self.state = state
        self.status.setToolTip("")  # set_protected names its copy; no other state has one
        self.status.set_text(status, color)
        # what a screen reader says for the row: the photo and where it stands
        self.setAccessibleName(f"{printable(self.src.name)}: {status}")
        self.bar.setValue(round(1000 * fraction))
        emit(self.described)

    def set_waiting(self) -> None:
        self.outcome = None  # added again: its earlier copy is no longer what it shows
        self._show(self.WAITING, "waiting", 0.0)

    def set_working(self, fraction: float, message: str) -> None:
        self._show(self.WORKING, printable(message), fraction)

    def set_protected(self, outcome: Outcome) -> None:
        self.outcome = outcome
        shown = printable(str(Path(outcome.dst.parent.name) / outcome.dst.name))
        status = outcome.status
        if outcome.recorded_verdict == "none":  # an earlier copy's record says so
            status += f"; that copy: {PROTECTION_LOST}"
        where = "its copy:" if outcome.status == ALREADY_PROTECTED else "saved as"  # then
        # what the copy could not keep (a colour profile, 16 bits, GPS): the CLI prints
        # it, and a desktop user reads no log
        notes = "".join(f"\nnote: {printable(note)}" for note in outcome.notes)
        self._show(self.PROTECTED, f"{status}\n{where} {shown}{notes}", 1.0,
                   WARN_COLOR if outcome.protection_lost else OK_COLOR)
        self.status.setToolTip(plain_tooltip(printable(str(outcome.dst)) + notes))

    def _about_it(self, message: str) -> str:
        """A library message about this photo without its path, which the row shows:
        "it" stands in ("PATH: is named .png but ..." -> "it is named .png but ...")."""
        named = f"{self.src}: "
        if message.startswith(named):
            message = message.removeprefix(named)
            if message.startswith(SUBJECTLESS_STARTS):  # "failed: is named .png but ..."
                message = f"it {message}"
            elif message.startswith("too "):  # "too large to load in memory"
                message = f"it is {message}"
        return message

    def set_failed(self, message: str) -> None:
        message = printable(self._about_it(message))
        self._show(self.FAILED, f"failed: {message}", 0.0, ERROR_COLOR)
        self.status.setToolTip(plain_tooltip(f"failed: {message}"))  # whole, where a long path is shortened

    def set_unreadable(self, message: str) -> None:
        """Failed before any work: the file can't be read as a photo (found when its
        thumbnail was made), so the user need not press Protect to learn it. Protect
        tries it again, as any failed photo (it may have been mended meanwhile)."""
        message = printable(self._about_it(message))
        self._show(self.FAILED, f"can't be protected: {message}", 0.0, ERROR_COLOR)
        self.status.setToolTip(plain_tooltip(f"can't be protected: {message}"))

    def set_cancelled(self) -> None:
        self._show(self.CANCELLED, "cancelled — nothing saved", 0.0)


class ScrollingPane(QScrollArea):
    """`content` shown whole where the screen has room for its least size; at large
    fonts (a low-vision user's 20 pt, a laptop at 200 %), where that is past `width_share`
    of the screen's free width or most of its height, it scrolls instead of making the
    window larger than the screen (the controls at its bottom, Protect among them, were
    then out of reach). Tabbing to a control scrolls it into view."""

    HEIGHT_SHARE = 0.8  # the rest: the window's frame, title and status bars

    def __init__(self, content: QWidget, width_share: float) -> None:
        super().__init__()
        self.width_share = width_share
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        # not a Tab stop of its own (a scroll area's default): it took the focus twice
        # in each Tab cycle, unseen and, to a screen reader, an unnamed "client"
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def minimumSizeHint(self) -> QSize:
        least = self.widget().minimumSizeHint()
        screen = self.screen()
        if screen is None:
            return least
        free = screen.availableGeometry().size()
        return least.boundedTo(QSize(int(free.width() * self.width_share),
                                     int(free.height() * self.HEIGHT_SHARE)))


class PhotoList(QScrollArea):
    """The photo rows, by id, in a scrolling column; click (or Up/Down, Home/End, Page
    Up/Down) selects one; Delete or Backspace, or a row's menu (right click), asks for
    its removal."""

    current_changed = Signal(int)  # the id of the newly selected row
    remove_requested = Signal(int)  # the id of the selected row, on Delete or Backspace

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[int, PhotoRow] = {}
        self._current: int | None = None
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName("photoList")  # its frame shows the keyboard focus (STYLE_SHEET)
        column = QWidget()
        column.setObjectName("photoColumn")
        self._layout = QVBoxLayout(column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addStretch()
        self.setWidget(column)
        self._describe(None)

    def add_rows(self, rows: list[PhotoRow]) -> None:
        """Append rows at the bottom. The column is hidden while they go in: shown, it
        laid itself out again as each row's own layout settled, so adding n rows cost
        n^2 (2,000 rows held the window 7.6 s; hidden, 2.4 s)."""
        if not rows:  # every photo dropped was listed already
            return
        column = self.widget()
        scrolled = self.verticalScrollBar().value()
        column.hide()
        for row in rows:
            self.rows[row.row_id] = row
            self._layout.insertWidget(self._layout.count() - 1, row)
            row.clicked.connect(self.set_current)
            row.described.connect(lambda row_id=row.row_id: self._describe(row_id))
        column.show()
        self.verticalScrollBar().setValue(scrolled)
        self._describe(self._current)

    def row_ids(self) -> list[int]:
        """Row ids in display order."""
        return list(self.rows)

    def current_row_id(self) -> int | None:
        return self._current

    @Slot(int)
    def set_current(self, row_id: int) -> None:
        """Select a row (highlighted) and say so through `current_changed`."""
        for rid in {self._current, row_id} - {None}:  # only the two rows that change:
            if rid in self.rows:  # restyling every row made arrowing a long list lag
                self.rows[rid].set_selected(rid == row_id)
        self._current = row_id
        self.ensureWidgetVisible(self.rows[row_id])
        self._describe(row_id)
        emit(self.current_changed, row_id)

    def _describe(self, row_id: int | None) -> None:
        """The list's accessible name says which photo is selected, where it is in the
        list and where it stands ("Photos, 2 of 5 selected: b.jpg: protected ..."): the
        list keeps the keyboard focus as Up and Down move the selection, so a screen
        reader announces this name's change, not a row's. A row not selected changes
        nothing."""
        if row_id is not None and row_id != self._current:
            return
        ids = self.row_ids()
        if self._current is None or self._current not in self.rows:
            name = (f"Photos, {plural(len(ids), 'photo')}; Up and Down select one, "
                    "Delete takes it off the list" if ids else "Photos, none added")
        else:
            row = self.rows[self._current]
            name = (f"Photos, {ids.index(self._current) + 1} of {len(ids)} selected: "
                    f"{row.accessibleName()}")
        if name != self.accessibleName():
            self.setAccessibleName(name)

    def remove_row(self, row_id: int) -> None:
        """Take the row out of the list; where it was selected, the one after it (or
        before it, the last removed) is selected instead."""
        ids = self.row_ids()
        if row_id not in self.rows:
            return
        row = self.rows.pop(row_id)
        self._layout.removeWidget(row)
        row.deleteLater()
        if self._current != row_id:
            self._describe(self._current)
            return
        self._current = None
        rest = self.row_ids()
        if rest:
            self.set_current(rest[min(ids.index(row_id), len(rest) - 1)])
        else:
            self._describe(None)

    def remove_all(self) -> None:
        for row in self.rows.values():
            row.deleteLater()
        self.rows.clear()
        self._current = None
        self._describe(None)

    def row_menu(self, row_id: int) -> QMenu:
        """The menu of the row `row_id` (a right click on it): Remove from list."""
        menu = QMenu(self)
        remove = menu.addAction("Remove from list")
        remove.setShortcut(Qt.Key.Key_Delete)  # shown beside it: the list's own key
        remove.triggered.connect(lambda: emit(self.remove_requested, row_id))
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """A right click on a row (or the menu key, on the selected one) selects it and
        shows its menu."""
        if event.reason() == QContextMenuEvent.Reason.Mouse:
            under = self.widget().childAt(self.widget().mapFrom(self.viewport(),
                                                                 event.pos()))
            while under is not None and not isinstance(under, PhotoRow):
                under = under.parentWidget()
            row_id = under.row_id if under is not None else None
        else:
            row_id = self._current
        if row_id not in self.rows:
            return
        self.set_current(row_id)
        menu = self.row_menu(row_id)
        self.show_menu(menu, event.globalPos())
        menu.deleteLater()

    def show_menu(self, menu: QMenu, where: QPoint) -> None:
        """Show `menu` at `where` (global) until it is closed or an action chosen."""
        menu.exec(where)

    def rows_per_page(self) -> int:
        """How many rows the list shows at once (at least 1): Page Up/Down's step."""
        if not self.rows:
            return 1
        height = next(iter(self.rows.values())).sizeHint().height()
        return max(1, self.viewport().height() // max(1, height) - 1)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        ids = self.row_ids()
        key = event.key()
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self._current in ids:
            emit(self.remove_requested, self._current)
            return
        page = self.rows_per_page()
        step = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_PageUp: -page,
                Qt.Key.Key_PageDown: page, Qt.Key.Key_Home: -len(ids),
                Qt.Key.Key_End: len(ids)}.get(key)
        if step is None or not ids:
            super().keyPressEvent(event)
            return
        if self._current in ids:
            index = ids.index(self._current) + step
        else:  # nothing selected yet: the first row (End: the last)
            index = len(ids) - 1 if key == Qt.Key.Key_End else 0
        self.set_current(ids[max(0, min(index, len(ids) - 1))])


class ImageView(QLabel):
    """Shows a pixmap scaled to fit, keeping its aspect ratio as the widget resizes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(200, 160)
        self.setWordWrap(True)  # a message shown instead of a photo: whole, on lines
        # the message names the photo: "<b>x.jpg" is a name, not markup (Qt's AutoText
        # showed it bold, without the tag)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def set_image(self, image: Image.Image | None) -> None:
        self._pixmap = None if image is None else QPixmap.fromImage(to_qimage(image))
        if self._pixmap is None:
            self.clear()
        self.setToolTip("")
        self._rescale()

    def set_message(self, text: str) -> None:
        """Show `text` instead of a photo, wrapped, and whole in the tooltip too."""
        self.set_image(None)
        self.setText(text)
        self.setToolTip(plain_tooltip(text))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None:
            return  # keep any text shown instead
        ratio = max(1.0, self.devicePixelRatioF())  # scale in device pixels: sharp on HiDPI
        scaled = self._pixmap.scaled(self.size() * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
        scaled.setDevicePixelRatio(ratio)
        self.setPixmap(scaled)


class ComparePanel(QWidget):
    """Before/after: toggle between the original, the protected copy, the amplified
    difference (|protected − original| × 10), which shows where the perturbation is, and
    the budget map, which shows where it was allowed to go."""

    MODES = ("original", "protected", "difference", "budget")
    LABELS: ClassVar[dict[str, str]] = {
        "original": "Original", "protected": "Protected", "difference": "Difference ×10",
        "budget": "Budget map"}
    CAPTIONS: ClassVar[dict[str, str]] = {
        "original": "The original photo, untouched.",
        "protected": "The protected copy: it should look the same as the original.",
        "difference": "Where the protection is: |protected − original| × 10. "
                      "Brighter means a larger (still invisible) change.",
        "budget": "Where the protection may go: white = the full budget (texture, edges, "
                  "faces and bodies), dark = little (flat areas such as skin "
                  "and sky, where noise would show).",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = "protected"
        self.comparison: Comparison | None = None
        self.loading = False
        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        self.title.setWordWrap(True)  # a long name and the bound's note: not cut mid-word
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # the photo's name, as it is
        # The name is fitted to the title's width (_lay_out_title), so its own width must
        # not hold the panel wide: without this a shrinking window kept the shortened name.
        self.title.setMinimumWidth(1)
        self._title_name, self._title_rest = "", ""
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
            button.setAutoDefault(True)  # Enter switches the view, as Space does
            self.buttons.addButton(button)
            button.clicked.connect(self._on_toggle)
            toggles.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        layout.addLayout(toggles)
        layout.addWidget(self.caption)
        self.reset()

    def reset(self, mode: str | None = None) -> None:
        """Back to the empty state: nothing to compare yet. `mode` (Clear list gives
        "protected"): the view to show next; None keeps the one the user chose."""
        self.show_error("Before / after", "")
        if mode is not None:  # no view left pressed (greyed) from the last comparison
            self.mode = mode
            self.button(mode).setChecked(True)
        self.view.setText("Protected photos appear here.\nSelect one in the list to compare.")
        self.caption.setText(self.CAPTIONS[self.mode])

    def button(self, mode: str) -> QPushButton:
        return self.findChild(QPushButton, f"show_{mode}")

    def _show_title(self, name: str, rest: str = "") -> None:
        """Title the panel `name` + `rest`. The name (a file name) takes at most one line
        of the title's width, shortened in its middle with "…" where it is longer (a
        camera's or a messenger's long file name wrapped the title to five lines and
        squeezed the photo); the whole name is the title's tooltip. `rest` wraps."""
        name = printable(name)  # one line: a name's newline, U+2028, or bidi control
        self._title_name, self._title_rest = name, rest
        self.title.setToolTip(plain_tooltip(name))
        self._lay_out_title()

    def _lay_out_title(self) -> None:
        width = self.title.contentsRect().width()
        name = self._title_name
        if width > 1 and self.title.fontMetrics().horizontalAdvance(name) > width:
            name = self.title.fontMetrics().elidedText(
                name, Qt.TextElideMode.ElideMiddle, width)
        self.title.setText(name + self._title_rest)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._lay_out_title()  # the title's width follows the panel's

    def show_loading(self, name: str) -> None:
        """Say `name`'s before/after is on its way. Nothing of the photo shown before stays
        under its name, and no view can be chosen until it comes (a 24 MP photo takes
        seconds: the last photo's pictures, and its difference, passed for this one's)."""
        self.comparison, self.loading = None, True
        self._show_title(name, " — loading…")
        self.view.set_message("loading…")  # (not the last photo's error as its tooltip)
        for mode in self.MODES:
            self.button(mode).setEnabled(False)

    def show_comparison(self, name: str, comparison: Comparison) -> None:
        """Show `comparison` (original, protected, difference, budget) in the current
        mode (the protected copy if that is the budget map and there is none)."""
        self.comparison, self.loading = comparison, False
        rest = f" — largest pixel change {comparison.max_change255}/255"
        eps = comparison.eps255
        if eps is not None and comparison.max_change255 > eps + 0.5:  # a lossy save's
            rest += f" (cloak's bound {eps:g}; the rest is the format's own rounding)"
        if comparison.transparent:  # the checkerboard is not the photo's
            rest += ("; transparent areas are shown over a checkerboard (the colour "
                     "stored under them, which an editor may reveal, is protected too)")
        self._show_title(name, rest)
        for mode in self.MODES:
            self.button(mode).setEnabled(getattr(comparison, mode) is not None)
        self.set_mode(self.mode if getattr(comparison, self.mode) is not None
                      else "protected")

    def show_error(self, name: str, message: str) -> None:
        self.comparison, self.loading = None, False
        self._show_title(name)
        self.view.set_message(f"Cannot show this photo: {printable(message)}" if message
                              else "")
        for mode in self.MODES:
            self.button(mode).setEnabled(False)

    def set_mode(self, mode: str) -> None:
        """Show the original, the protected copy, the amplified difference or the budget
        map."""
        self.mode = mode
        self.button(mode).setChecked(True)
        self.caption.setText(self.CAPTIONS[mode])
        if self.comparison is not None:
            self.view.set_image(getattr(self.comparison, mode))

    def _on_toggle(self) -> None:
        checked = self.buttons.checkedButton()
        self.set_mode(checked.objectName().removeprefix("show_"))
