"""How long the desktop app holds its window while a large drop is listed.

    QT_QPA_PLATFORM=offscreen python benchmarks/app_list.py [--repeats 3]

For 500, 1,000 and 2,000 photos: a fresh window, shown, is given that many photos at once
(window._add_photos, what a drop or a folder walk ends in; the paths need not exist: their
thumbnails fail on the pool thread, off the timer) and the time until the event loop is
idle again is taken. Prints the median over the repeats per size, and each size's time
per 1,000 photos, so growth faster than the count shows as a rising last column.

Then, with that many photos listed, the main thread's time per progress report (one row's
`set_working` with a new step text, and the events it causes): a photo sends about 45.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from cloak.gui.window import MainWindow

SIZES = (500, 1000, 2000)


REPORTS = 50


def time_one_add(app: QApplication, count: int) -> tuple[float, float]:
    """Seconds from handing `count` photos to a shown window until its events are done,
    and then milliseconds per progress report on the middle row."""
    window = MainWindow(settings={})
    window.resize(1000, 700)
    window.show()
    app.processEvents()
    photos = [Path(f"/no/such/folder/photo {i}.jpg") for i in range(count)]
    start = time.perf_counter()
    window._add_photos(photos, count)
    app.processEvents()
    seconds = time.perf_counter() - start
    assert len(window.rows) == count
    row = list(window.rows.values())[count // 2]
    start = time.perf_counter()
    for step in range(REPORTS):
        row.set_working(step / REPORTS, f"step {step}/{REPORTS}")
        app.processEvents()
    report_ms = (time.perf_counter() - start) * 1000 / REPORTS
    window.shutdown()
    window.close()
    window.deleteLater()
    app.processEvents()
    gc.collect()
    return seconds, report_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    print("| photos added at once | median s (runs) | s per 1,000 | ms per progress report "
          "with them listed, median (runs) |")
    print("|---|---|---|---|")
    for count in SIZES:
        runs = [time_one_add(app, count) for _ in range(args.repeats)]
        median = statistics.median(s for s, _ in runs)
        report = statistics.median(ms for _, ms in runs)
        shown = ", ".join(f"{s:.2f}" for s, _ in runs)
        reports = ", ".join(f"{ms:.1f}" for _, ms in runs)
        print(f"| {count} | {median:.2f} ({shown}) | {median * 1000 / count:.2f} | "
              f"{report:.1f} ({reports}) |", flush=True)
    # Shut Qt down here: left to Python's exit, the order Qt objects are freed in can
    # crash the process (as in tests/test_gui.py's qapp fixture).
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    gc.collect()
    app.shutdown()


if __name__ == "__main__":
    main()
