"""Entry point of the desktop app: `cloak gui` or `cloak-gui`."""

from __future__ import annotations

import logging
import sys

from PySide6.QtWidgets import QApplication

from ..allocator import keep_freed_memory
from .window import MainWindow


def main() -> int:
    """Open the cloak window and run until it is closed; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    keep_freed_memory()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cloak")
    app.setApplicationDisplayName("cloak")
    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
