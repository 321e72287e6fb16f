"""The warnings cloak's library logs while one photo is protected (a colour profile the
copy's format can't carry, 16 bits saved as 8, GPS left out of a compressed TIFF, a JPEG
named .png written as PNG), gathered for that photo's row: a desktop user sees no
terminal, and reads no log."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

# The modules whose warnings are about what a copy keeps of its photo (not the folder's
# record, the models or the device: the app says those in its status bar)
ABOUT_THE_COPY = ("cloak.io", "cloak.metadata")


class _Gathered(logging.Handler):
    """Keeps the text of each warning (or worse) about a copy (ABOUT_THE_COPY) logged by
    one thread, once."""

    def __init__(self, thread_id: int, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.thread_id = thread_id
        self.messages = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id or record.name not in ABOUT_THE_COPY:
            return  # another photo's thumbnail or comparison; the record, the models
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call: the log has it
            return
        if text not in self.messages:
            self.messages.append(text)


@contextlib.contextmanager
def photo_notes(into: list[str]) -> Iterator[list[str]]:
    """Append to `into` the warnings cloak logs in this thread meanwhile (as logged, in
    order, each once); yields `into`."""
    handler = _Gathered(threading.get_ident(), into)
    logger = logging.getLogger("cloak")
    logger.addHandler(handler)
    try:
        yield into
    finally:
        logger.removeHandler(handler)


def about_the_photo(message: str, src: Path) -> str:
    """A warning about `src` as its row says it, without the path the row shows:
    "PATH: its colour profile ..." -> "its colour profile ...", "PATH is named .png but"
    -> "it is named .png but"."""
    named = str(src)
    if message.startswith(f"{named}: "):
        return message.removeprefix(f"{named}: ")
    if message.startswith(f"{named} "):
        return "it " + message.removeprefix(f"{named} ")
    return message
