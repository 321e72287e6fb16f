"""Regenerate docs/gui-screenshot.png: protect three small photos in the desktop app and
grab its window, with the amplified-difference view showing.

    CLOAK_MODEL_DIR=../shared/models python examples/gui_screenshot.py

Runs offscreen (no display needed). Photos come from ../shared/photos/dev when present,
otherwise from synthetic gradients.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QEvent, QEventLoop, QIODevice, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from cloak.gui.window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
# the shared folder beside the project root, or the one holding $CLOAK_MODEL_DIR
DEV_PHOTOS = next((folder / "photos" / "dev" for folder in (
    ROOT.parent / "shared",
    *([Path(os.environ["CLOAK_MODEL_DIR"]).expanduser().resolve().parent]
      if os.environ.get("CLOAK_MODEL_DIR") else []))
    if (folder / "photos" / "dev").is_dir()), ROOT.parent / "shared" / "photos" / "dev")
NAMES = ("d01_scikit-image_astronaut.png", "d02_scikit-image_coffee.png",
         "d06_kodak_kodim23.png")
log = logging.getLogger("gui_screenshot")


def make_photos(folder: Path, long_side: int) -> list[Path]:
    """Three JPEGs in `folder`, at most `long_side` px."""
    photos = []
    for i, name in enumerate(NAMES):
        if (DEV_PHOTOS / name).is_file():
            image = Image.open(DEV_PHOTOS / name).convert("RGB")
            path = folder / f"{name.split('_')[-1].split('.')[0]}.jpg"
        else:  # named for what it is, not for the photo it stands in for
            log.warning("no dev photo %s in %s: a synthetic gradient instead", name, DEV_PHOTOS)
            yy, xx = np.mgrid[0:384, 0:512]
            rgb = np.stack([xx // 2, yy // 2, (xx + yy + 80 * i) // 4], -1) % 256
            image = Image.fromarray(rgb.astype(np.uint8), "RGB")
            path = folder / f"gradient-{i + 1}.jpg"
        image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
        image.save(path, quality=93)
        photos.append(path)
    return photos


def save_small_png(image: QImage, path: Path) -> None:
    """Save a window grab as a 256-colour PNG (the README copy stays well under 300 KB)."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    with Image.open(io.BytesIO(bytes(buffer.data()))) as grabbed:
        small = grabbed.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def run_until_done(window: MainWindow, timeout_s: float) -> None:
    """Run the Qt event loop until the batch ends (exec() lets the worker thread run)."""
    loop = QEventLoop()
    window.batch_finished.connect(loop.quit)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gui-screenshot.png")
    parser.add_argument("--size", type=int, default=512, help="long side of the photos")
    parser.add_argument("--strength", default="fast")
    parser.add_argument("--models", default="taesd,taesdxl",
                        help="autoencoders to attack (all four is slower on a CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings={"models": tuple(args.models.split(","))})
    window.strength.setCurrentIndex(window.strength.findData(args.strength))
    window.resize(1180, 700)
    window.show()
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp), args.size)
        window.add_paths(photos)
        window.start()
        run_until_done(window, timeout_s=600)
        window.photo_list.set_current(window.photo_list.row_ids()[0])
        window.compare_panel.set_mode("difference")
        while window.compare_panel.loading:  # the comparison loads on a pool thread
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_small_png(window.grab().toImage(), args.out)
        window.close()
        window.deleteLater()
    del window
    # Qt's objects freed now, in order; left to Python's exit they could crash it
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.shutdown()
    log.info("wrote %s (%.0f KB)", args.out, args.out.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
