"""Entry point of the desktop app: `cloak gui` or `cloak-gui`."""

from __future__ import annotations

import logging
import sys

from ..allocator import keep_freed_memory

NEEDS_PYSIDE6 = "the desktop app needs PySide6: pip install 'cloak[gui]'"


def main() -> int:
    """Open the cloak window and run until it is closed; returns the exit code (1, with
    one line on stderr, when PySide6 is not installed)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        from PySide6.QtWidgets import QApplication

        from .window import MainWindow
    except ImportError as exc:
        if not (exc.name or "").startswith("PySide6"):
            raise  # something else is broken: show it as it is
        print(f"error: {NEEDS_PYSIDE6} ({exc})", file=sys.stderr)
        return 1
    keep_freed_memory()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cloak")
    app.setApplicationDisplayName("cloak")
    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
