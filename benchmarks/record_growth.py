"""How the output folder's record costs grow over a long `cloak protect` run.

    python benchmarks/record_growth.py [--sizes 500,1000,3000] [--repeats 1]

For each size, a real batch run (cloak.batch, as `cloak protect` runs it) over that many
64 x 48 JPEGs (each different) into a new folder, with the attack replaced by a copy of
the pixels, so loading, saving, metadata and the folder's record run for real and only
the attack is left out. Prints the run's seconds, the seconds spent writing the record
(Manifest.set, Manifest.save and Manifest.compact, timed around each call), and the
record's milliseconds per photo over the run's last 10 % of photos: a cost that grows with
the folder shows as a rising last column. Medians over the repeats.

Run it in a checkout of each version to compare (PYTHONPATH=that checkout).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import cloak.api
from cloak import batch, manifest
from cloak.config import ProtectConfig
from cloak.pipeline import ProtectedArray
from cloak.report import Report


def copy_of_pixels(rgb, config, **_):
    """protect_array's result without the attack: the pixels as they came."""
    height, width = rgb.shape[:2]
    return ProtectedArray(rgb.copy(), Report(width=width, height=height, eps255=config.eps255,
                                             psnr=0, ssim=0, max_change255=0,
                                             settings=config.fingerprint()), None)


class RecordClock:
    """Seconds spent in the record's writes, in total and per photo done."""

    def __init__(self) -> None:
        self.total = 0.0
        self.per_photo: list[float] = []
        self._photo = 0.0
        self._real = {}

    def install(self) -> None:
        for name in ("set", "save", "compact"):
            real = getattr(manifest.Manifest, name, None)
            if real is None:  # (an older version has no compact)
                continue
            self._real[name] = real
            setattr(manifest.Manifest, name, self._timed(real))

    def uninstall(self) -> None:
        for name, real in self._real.items():
            setattr(manifest.Manifest, name, real)

    def _timed(self, real):
        clock = self

        def timed(self_, *args, **kwargs):
            if getattr(clock, "_inside", False):  # set calling save: counted once
                return real(self_, *args, **kwargs)
            clock._inside = True
            start = time.perf_counter()
            try:
                return real(self_, *args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                clock._inside = False
                clock.total += spent
                clock._photo += spent
        return timed

    def photo_done(self) -> None:
        self.per_photo.append(self._photo)
        self._photo = 0.0


def one_run(count: int, config: ProtectConfig) -> tuple[float, float, float]:
    """(run seconds, record seconds, record ms per photo over the last 10 %)."""
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(count)
        photos = []
        for i in range(count):
            path = Path(folder) / "in" / f"IMG_{i:05d}.jpg"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8)).save(path)
            photos.append(path)
        out = Path(folder) / "out"
        clock = RecordClock()
        clock.install()
        try:
            def on_event(event):
                if event.kind == "done":
                    clock.photo_done()

            start = time.perf_counter()
            result = batch.run(batch.plan(photos, out), out, config, on_event=on_event)
            seconds = time.perf_counter() - start
        finally:
            clock.uninstall()
        assert all(item.status == batch.PROTECTED for item in result.items)
        tail = clock.per_photo[-max(1, count // 10):]
        return seconds, clock.total, 1000 * statistics.mean(tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,3000")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cloak.api.protect_array = copy_of_pixels  # (protect_file calls it by this name)
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                           faces=False, measure=False)
    print("| photos | run s | record s (share) | record ms/photo, last 10 % |")
    print("|---|---|---|---|")
    for count in (int(n) for n in args.sizes.split(",")):
        runs = [one_run(count, config) for _ in range(args.repeats)]
        run_s, record_s, tail_ms = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"| {count} | {run_s:.1f} | {record_s:.1f} ({record_s / run_s:.0%}) | "
              f"{tail_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
