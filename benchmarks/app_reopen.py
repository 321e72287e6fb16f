"""How long the desktop app takes over a folder whose photos are all protected already.

    QT_QPA_PLATFORM=offscreen python benchmarks/app_reopen.py [--repeats 3]

For 250, 500 and 1,000 photos (64 x 48 JPEGs, each different): a first session of the
app's worker (ProtectWorker, as the window runs it) protects them next to the originals,
with the attack replaced by a copy of the pixels, so everything else (loading, saving,
metadata, the folder's record) runs for real. Then a second session is given the same
photos, and every one should be found "already protected": its time is what a user who
reopens the folder waits, nothing attacked. Prints the median over the repeats per size,
the time per 1,000 photos (growth faster than the count shows as a rising column) and how
many times the folder's record was parsed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QApplication

import cloak.api
from cloak import manifest
from cloak.config import ProtectConfig
from cloak.gui.worker import ALREADY_PROTECTED, Job, ProtectWorker
from cloak.pipeline import ProtectedArray
from cloak.report import Report

SIZES = (250, 500, 1000)


def copy_of_pixels(rgb, config, **_):
    """protect_array's result without the attack: the pixels as they came."""
    height, width = rgb.shape[:2]
    return ProtectedArray(rgb.copy(), Report(width=width, height=height, eps255=config.eps255,
                                             psnr=0, ssim=0, max_change255=0,
                                             settings=config.fingerprint()), None)


def run_session(photos: list[Path], out: Path, config: ProtectConfig) -> list[str]:
    worker = ProtectWorker([Job(i, p, out) for i, p in enumerate(photos)], config)
    statuses: list[str] = []
    worker.protected.connect(lambda i, outcome: statuses.append(outcome.status))
    worker.failed.connect(lambda i, message: statuses.append(f"failed: {message}"))
    worker.run()
    return statuses


def time_reopen(count: int, config: ProtectConfig) -> tuple[float, int]:
    """Seconds of the second session over `count` protected photos, and the record's
    parses in it."""
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(count)
        photos = []
        for i in range(count):
            path = Path(folder) / f"IMG_{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8)).save(path)
            photos.append(path)
        out = Path(folder) / "protected"
        assert all(not s.startswith("failed") for s in run_session(photos, out, config))
        parses = []
        real_init = manifest.Manifest.__init__

        def counted(self, out_dir):
            parses.append(out_dir)
            real_init(self, out_dir)

        manifest.Manifest.__init__ = counted
        try:
            start = time.perf_counter()
            statuses = run_session(photos, out, config)
            seconds = time.perf_counter() - start
        finally:
            manifest.Manifest.__init__ = real_init
        assert statuses == [ALREADY_PROTECTED] * count, set(statuses)
        return seconds, len(parses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    QApplication.instance() or QApplication([])
    cloak.api.protect_array = copy_of_pixels
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                           faces=False, measure=False)
    print("| photos, all protected | median s (runs) | s per 1,000 | record parses |")
    print("|---|---|---|---|")
    for count in SIZES:
        runs = [time_reopen(count, config) for _ in range(args.repeats)]
        seconds = [s for s, _ in runs]
        median = statistics.median(seconds)
        shown = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {count} | {median:.2f} ({shown}) | {median * 1000 / count:.2f} | "
              f"{runs[0][1]} |", flush=True)


if __name__ == "__main__":
    main()
