"""Warnings that name their photo. While `naming(photo)` holds, cloak's log lines (an
unreadable EXIF block, an XMP packet refused) and Python warnings (Pillow's "Corrupt EXIF
data") are about that photo: a handler given the NamePhoto filter prints them as
"PHOTO: message", in one process (`cloak protect`, `cloak verify`) as in a --jobs worker,
where several photos' lines interleave."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import UnsupportedImageError

log = logging.getLogger(__name__)

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
def about(photo: str | Path) -> Iterator[None]:
    """Log records within, on this thread, are about `photo` (see NamePhoto); Python
    warnings are left to logging.captureWarnings, which logs each on the thread that
    raised it. For a process with several threads decoding photos (the app):
    `naming`'s catch_warnings swaps the warning handler of the whole process, and would
    name a warning another thread raised after this thread's photo."""
    token = _photo.set(str(photo))
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
    One thread at a time (catch_warnings is the process's): see `about` for threads."""
    with about(photo), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
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
