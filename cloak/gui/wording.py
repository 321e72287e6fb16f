"""Library messages in the app's terms (no Qt here). cloak's errors and log lines are
written for the command line (`pass --model-dir DIR`); the app has no flags, so its rows,
status bar and log put that advice as its user can follow it."""

from __future__ import annotations

import logging
import re

from ..naming import PrintableFormatter

# Each pair: (CLI wording, a regular expression; what the app's user can do instead)
APP_WORDING: tuple[tuple[str, str], ...] = (
    (r"pass --model-dir DIR or set CLOAK_MODEL_DIR=DIR",
     "set CLOAK_MODEL_DIR=DIR before starting the app"),
    (r"with --model-dir DIR or CLOAK_MODEL_DIR=DIR",
     "named by CLOAK_MODEL_DIR=DIR, set before starting the app"),
    (r"in --model-dir or CLOAK_MODEL_DIR", "in the folder CLOAK_MODEL_DIR names"),
    (r"give that folder as --model-dir",
     "name that folder with CLOAK_MODEL_DIR before starting the app"),
    (r"\(--model-dir\)", "(CLOAK_MODEL_DIR)"),
    (r"pass --overwrite to replace it", "the app never replaces a file"),
    (r"another --out( folder)?\b", "another Save-to folder"),
    (r"--strength (fast|low|medium|high)\b", r"Strength: \1"),
    (r"use --device cpu", "set CLOAK_DEVICE=cpu before starting the app"),
    (r"raise it with (CLOAK_MAX_PIXELS=\d+)", r"set \1 before starting the app"),
)


def for_the_app(message: str) -> str:
    """`message` with its command-line advice (flags) put in the app's terms."""
    for cli, app in APP_WORDING:
        message = re.sub(cli, app, message)
    return message


class AppFormatter(PrintableFormatter):
    """The app's log lines (its stderr and its log file): names made printable, and
    cloak's own lines (the face detector's "put it in --model-dir or CLOAK_MODEL_DIR") in
    the app's terms, as its rows say them. The record is left as it is, for any other
    handler."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return for_the_app(line) if record.name.split(".")[0] == "cloak" else line
