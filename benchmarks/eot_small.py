"""Small photos (under 0.5 MP) with a JPEG-only EOT draw, against medium.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/eot_small.py d02,d07,d13,d17 \
        ["medium|jpeg-eot 0.25|jpeg-eot 0.5"]

On a small photo the posting JPEG (instagram: q80, no resize) meets the perturbation at
its own scale, so drawing a differentiable JPEG (q60-90) on a share of the rotation
cycles might keep more of it after posting than on the larger photos where it was first
measured (README, "Robustness (EOT)"). Prints one line per photo and a median row per
variant: damage in dB (taesd / taesdxl / taef1 / taef2) as-is and after instagram, JPEG
q75 and q50; the pixels before the save are measured, as in benchmarks/optimizers.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb, to_image

import cloak.attack
import cloak.pipeline
from cloak import ProtectConfig
from cloak.models import ALL_MODEL_NAMES
from cloak.transforms import _uniform, jpeg
from cloak.verify import verify_images

VARIANTS = {"medium": {}, "jpeg-eot 0.25": {"robust": True, "eot_share": 0.25},
            "jpeg-eot 0.5": {"robust": True, "eot_share": 0.5}}
CHANNELS = ("as-is", "instagram", "jpeg75", "jpeg50")


def jpeg_only(x, generator, lo: float = 60, hi: float = 90):
    """The EOT draw: a differentiable JPEG round trip at a random quality, nothing else."""
    return jpeg(x, _uniform(generator, lo, hi)).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", help="dev photo prefixes, comma-separated (d02,d07)")
    parser.add_argument("variants", nargs="?", default="|".join(VARIANTS),
                        help=f"variants, |-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    photos = dev_photos(Path("../shared/photos/dev"), args.photos.split(","))
    names = args.variants.split("|")
    cloak.attack.random_posting = jpeg_only  # what protect_pgd draws when robust
    cache: dict = {}
    for label in names:
        config = ProtectConfig(strength="medium", measure=False).replace(**VARIANTS[label])
        damage = {c: {m: [] for m in ALL_MODEL_NAMES} for c in CHANNELS}
        psnrs = []
        for path in photos:
            original = load_rgb(path)
            start = time.perf_counter()
            result = cloak.pipeline.protect_array(
                np.asarray(original, dtype=np.float32) / 255, config)
            seconds = time.perf_counter() - start
            v = verify_images(original, to_image(result.rgb), CHANNELS,
                              clean_cache=cache.setdefault(path.name, {}))
            psnrs.append(v.psnr)
            for channel in v.channels:
                for m in ALL_MODEL_NAMES:
                    damage[channel.channel][m].append(channel.damage_db[m])
            print(label, path.name, f"psnr {v.psnr:.2f} {seconds:.0f}s",
                  {c.channel: [round(c.damage_db[m], 2) for m in ALL_MODEL_NAMES]
                   for c in v.channels}, flush=True)
        med = statistics.median
        print("ROW", label, f"psnr {med(psnrs):.2f}",
              {c: "/".join(f"{med(damage[c][m]):.2f}" for m in ALL_MODEL_NAMES)
               for c in CHANNELS}, flush=True)


if __name__ == "__main__":
    main()
