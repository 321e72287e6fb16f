"""Warnings that name their photo. While `naming(photo)` holds, cloak's log lines (an
unreadable EXIF block, an XMP packet refused) and Python warnings (Pillow's "Corrupt EXIF
data") are about that photo: a handler given the NamePhoto filter prints them as
"PHOTO: message", in one process (`cloak protect`, `cloak verify`) as in a --jobs worker,
where several photos' lines interleave. And such lines made safe to print (`printable`,
PrintableFormatter): a name can't fake a line or drive the terminal."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import UnsupportedImageError

log = logging.getLogger(__name__)

# control characters; the bidirectional controls (a right-to-left override shows the
# rest of a line reversed); the line and paragraph separators (a line break where text
# is laid out by Unicode, as the app's labels are)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe to print: a file name that is not valid UTF-8 (its bytes held as lone
    surrogates) shows them as \\xNN escapes instead of stopping the run, and control
    characters in it (a newline, a terminal escape) as escapes too, so a name can't fake
    a line of output or drive the terminal, and bidirectional controls and line
    separators, so it can't reverse the rest of a line or break it. Every caller prints
    one line."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


class PrintableFormatter(logging.Formatter):
    """Log lines with the names in them made printable (a photo named with a newline or a
    terminal escape can't fake a line or drive the terminal), as stdout's are: for the
    CLI's stderr, the app's stderr and the app's log file."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # the line alone: a traceback after it (log.exception) keeps its lines
        return printable(super().formatMessage(record))


_photo: contextvars.ContextVar[str | None] = contextvars.ContextVar("cloak_photo", default=None)


class NamePhoto(logging.Filter):
    """A handler's filter: a record logged within `naming(photo)` reads "PHOTO: message"
    (once, however many handlers carry the filter; a message that already starts with the
    photo's path, such as "PHOTO is named .jpg but holds a PNG", is left as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        photo = _photo.get()
        if photo and not getattr(record, "cloak_named", False):
            text = record.getMessage()
            if not text.startswith(photo):
                record.msg, record.args = f"{photo}: {text}", ()
            record.cloak_named = True
        return True


def name_photos(handler: logging.Handler) -> logging.Handler:
    """`handler`, given the NamePhoto filter (once)."""
    if not any(isinstance(f, NamePhoto) for f in handler.filters):
        handler.addFilter(NamePhoto())
    return handler


@contextlib.contextmanager
def about(photo: str | Path | None) -> Iterator[None]:
    """Log records within, on this thread, are about `photo` (see NamePhoto; None: about
    no photo, for the batch's own work inside a photo's, such as fetching models); Python
    warnings are left to logging.captureWarnings, which logs each on the thread that
    raised it. For a process with several threads decoding photos (the app):
    `naming`'s catch_warnings swaps the warning handler of the whole process, and would
    name a warning another thread raised after this thread's photo."""
    token = _photo.set(None if photo is None else str(photo))
    try:
        yield
    finally:
        _photo.reset(token)


@contextlib.contextmanager
def naming(photo: str | Path) -> Iterator[None]:
    """Log records within are about `photo` (see NamePhoto), and Python warnings raised
    within are logged as one line each, not as Python's two lines naming Pillow's source
    file. None are logged for a photo that turns out unreadable: its failure says what is
    wrong (a text file named .tif gave "Corrupt EXIF data" above "not an image cloak can
    read"). A filter that turns a warning into an error (decoding_limit's) still does.
    Threads may each hold one (two batch runs at once): a warning goes to the photo of
    the thread that raised it, and one raised outside any is shown as it would be."""
    with about(photo), _collecting() as caught:
        try:
            yield
        except UnsupportedImageError:
            caught.clear()  # its failure line says it all
            raise
        finally:
            for warning in caught:  # named here (for any handler), not again
                text = str(warning.message).strip()
                log.warning("%s: %s", photo, text.splitlines()[0] if text
                            else warning.category.__name__, extra={"cloak_named": True})


# The warnings the thread (or task) in `naming` has raised; None outside it.
_caught: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "cloak_warnings", default=None)
_hold_lock = threading.Lock()
_held: dict = {"users": 0, "catch": None, "shown_before": None}


@contextlib.contextmanager
def _collecting() -> Iterator[list]:
    """A list the warnings raised within, on this thread, are put in (not shown). The
    process's warning filters and hook (module state) are taken over once, by the first
    in, each warning shown once per place while held ("default"), and given back by the
    last out: a catch_warnings per thread gave back another thread's hook, and every
    later warning of the host process went into a list no one read."""
    caught: list = []
    token = _caught.set(caught)
    with _hold_lock:
        if _held["users"] == 0:
            catch = warnings.catch_warnings()
            catch.__enter__()
            warnings.simplefilter("default")
            _held.update(catch=catch, shown_before=warnings.showwarning)
            warnings.showwarning = _to_its_photo
        _held["users"] += 1
    try:
        yield caught
    finally:
        _caught.reset(token)
        with _hold_lock:
            _held["users"] -= 1
            if _held["users"] == 0:
                _held["catch"].__exit__(None, None, None)
                _held.update(catch=None, shown_before=None)


def _to_its_photo(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning while `_collecting` holds: into the raising thread's list, or
    shown as before for a thread outside `naming`."""
    caught = _caught.get()
    if caught is not None:
        caught.append(warnings.WarningMessage(message, category, filename, lineno, file,
                                              line))
        return
    shown_before = _held["shown_before"] or warnings.showwarning
    if shown_before is not _to_its_photo:
        shown_before(message, category, filename, lineno, file, line)
