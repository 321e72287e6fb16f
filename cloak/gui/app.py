"""Entry point of the desktop app: `cloak gui` or `cloak-gui`."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from ..allocator import keep_freed_memory
from ..naming import name_photos
from .wording import AppFormatter

LOG_HANDLER_NAME = "cloak-gui-log"  # worker.log_file finds the file by this name
NEEDS_PYSIDE6 = ("the desktop app needs PySide6: pip install 'PySide6-Essentials>=6.7,"
                 "!=6.12.0' (or, in a checkout of the cloak project, pip install -e "
                 "'.[gui]')")
SCRIPT_USAGE = """usage: cloak-gui [-h]

Open cloak's desktop drag-and-drop app (the same as `cloak gui`): drop photos or
folders on its window, pick a strength and a Save-to folder, press Protect.
It takes no arguments; for photos named on the command line use
`cloak protect PHOTOS --out DIR` (see `cloak --help`).

options:
  -h, --help  show this message and exit"""
PYSIDE6_BROKEN = ("PySide6 is installed but can't load; on Linux, Qt needs system libraries "
                  "such as libegl1, libgl1 and libxkbcommon0 (install them with the system's "
                  "package manager)")


def missing_display() -> str | None:
    """Why no window can open here, or None: on Linux and the BSDs, Qt's default platform
    needs an X11 or Wayland display (without one Qt aborts the process, advising a
    reinstall). QT_QPA_PLATFORM set by the user (offscreen, vnc, ...) is left to Qt."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get(
            "WAYLAND_DISPLAY"):
        return None
    return ("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset); "
            "run `cloak gui` inside a desktop session, or use the command line: "
            "cloak protect PHOTOS --out DIR")


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files only their owner can read (mode 0600): the one a
    rollover starts, too (RotatingFileHandler's own opens it under the umask, often 0644)."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def log_to_file() -> Path | None:
    """Also write warnings and errors to the user's log folder (a desktop user sees no
    terminal; failed rows name this file). None, and nothing changed, if it can't be
    written."""
    from platformdirs import user_log_path

    path = user_log_path("cloak") / "cloak-gui.log"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the user's own: it names their photos' paths
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
        os.chmod(path, 0o600)
        handler = PrivateRotatingFileHandler(path, maxBytes=1 << 20, backupCount=1,
                                             encoding="utf-8")
    except OSError:
        return None
    handler.set_name(LOG_HANDLER_NAME)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(AppFormatter(  # the local time with its zone (+0100)
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S%z"))
    logging.getLogger().addHandler(name_photos(handler))  # "PHOTO: ..." (naming.about)
    return path


def stop_logging_to_file() -> None:
    """Close and remove log_to_file's handler."""
    for handler in list(logging.getLogger().handlers):
        if handler.get_name() == LOG_HANDLER_NAME:
            logging.getLogger().removeHandler(handler)
            handler.close()


def main() -> int:
    """Open the cloak window and run until it is closed; returns the exit code (1, with
    one line on stderr, when PySide6 is not installed)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    formatters = {}  # each handler's own, given back as the app ends (a caller's, in tests)
    for handler in logging.getLogger().handlers:
        name_photos(handler)
        formatters[handler] = handler.formatter
        handler.setFormatter(AppFormatter("%(levelname)s: %(message)s"))
    try:
        return _run_app()
    finally:
        for handler, formatter in formatters.items():
            handler.setFormatter(formatter)


def _run_app() -> int:
    """main's work, once its stderr lines are set up."""
    try:
        from PySide6.QtCore import QEvent, QSettings
        from PySide6.QtWidgets import QApplication

        from .window import MainWindow
    except ImportError as exc:
        # PySide6's own (a module of it that fails to load reaches QtWidgets' import as
        # "libshiboken: could not import module 'PySide6.QtGui'", with no name)
        if not ((exc.name or "").startswith(("PySide6", "shiboken6"))
                or "PySide6" in str(exc) or "shiboken" in str(exc)):
            raise  # something else is broken: show it as it is
        if isinstance(exc, ModuleNotFoundError):
            print(f"error: {NEEDS_PYSIDE6} ({exc})", file=sys.stderr)
        else:  # installed, but a library it links to is missing (libEGL on a bare Linux)
            print(f"error: {PYSIDE6_BROKEN} ({exc})", file=sys.stderr)
        return 1
    created = QApplication.instance() is None
    if created and (reason := missing_display()):
        print(f"error: {reason}", file=sys.stderr)
        return 1
    log_to_file()
    # Pillow's "Corrupt EXIF data" into the log, named by the thread's photo (about)
    logging.captureWarnings(True)
    keep_freed_memory()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cloak")
    app.setApplicationDisplayName("cloak")
    # Strength, Save-to folder and metadata switches are kept between launches.
    window = MainWindow(store=lambda: QSettings("cloak", "cloak"))
    window.show()
    listening = close_on_signals(window)
    try:
        return app.exec()
    finally:
        if listening is not None:
            listening.stop()
        window.shutdown()  # cancels and joins a running batch
        window.deleteLater()
        del window
        if created:  # Qt's objects freed now, in order, not by Python's exit (it crashed)
            app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            app.shutdown()
        stop_logging_to_file()
        logging.captureWarnings(False)


def close_on_signals(window):
    """Ctrl-C in the terminal that started the app, or SIGTERM (a logout, `kill`), closes
    the window as its close button does: a running batch stops after its current step and
    what it finished is kept. Ctrl-C was ignored (Python's handler never ran while Qt's
    loop waited) and SIGTERM ended the process at once. Returns the timer that lets
    Python run its handlers (None off the main thread, where handlers can't be set)."""
    import signal
    import threading

    from PySide6.QtCore import QTimer

    if threading.current_thread() is not threading.main_thread():
        return None

    def close(signum, frame) -> None:
        QTimer.singleShot(0, window.close)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, close)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)  # Python code runs, so its handlers do
    timer.start(200)
    return timer


def script_main(argv: list[str] | None = None) -> int:
    """The `cloak-gui` script: `-h`/`--help` prints its usage (exit 0) and anything else
    given is refused in one line (exit 1, as `cloak gui` does), before a window opens;
    with nothing given, main(). `argv` defaults to sys.argv[1:]."""
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        try:
            print(SCRIPT_USAGE, flush=True)
        except BrokenPipeError:  # `cloak-gui --help | head -3`: the reader has enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no traceback
        return 0
    if args:
        print(f"error: cloak-gui takes no arguments (got {args[0]!r}); open it and drop "
              "photos on its window, or use: cloak protect PHOTOS --out DIR",
              file=sys.stderr)
        return 1  # (2 means some photos failed)
    return main()


if __name__ == "__main__":
    sys.exit(script_main())
