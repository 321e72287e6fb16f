"""Attack update rules side by side: sign PGD vs momentum, step-size schedules, and
encoder-only turns that reuse the decoder's latent gradient (`decoder_reuse`).

    CLOAK_MODEL_DIR=../shared/models python benchmarks/optimizers.py [--photos d01,d08,d14,d24]

Each variant protects the same photos at `--strength medium` (same seed, same steps) and
is measured with `verify` as-is and after the instagram preset. Writes
benchmarks/optimizers.md (medians over the photos).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb, pick_variants, to_image

import cloak.pipeline
from cloak import ProtectConfig
from cloak.channel_list import CLEANUPS
from cloak.models import ALL_MODEL_NAMES
from cloak.verify import verify_images

VARIANTS = {
    "sign, step 0.5->0.05 (before)": {"start": 0.5},
    "momentum 0.5": {"momentum": 0.5, "start": 0.5},
    "momentum 0.9": {"momentum": 0.9, "start": 0.5},
    "sign, step 0.25->0.05 (medium now)": {"start": 0.25},
    "momentum 0.9, step 0.25->0.05": {"momentum": 0.9, "start": 0.25},
    "luma only (same delta on R, G, B)": {"start": 0.5, "luma_only": True},
    "sign, step 0.5->0.05, 24 steps": {"start": 0.5, "steps": 24},
    "sign, step 0.25->0.05, 24 steps": {"start": 0.25, "steps": 24},
    "decoder reuse 1 (every other turn encoder-only)": {"start": 0.25, "decoder_reuse": 1},
    "decoder reuse 1, 44 steps": {"start": 0.25, "decoder_reuse": 1, "steps": 44},
    "sign, step 0.25->0.05, no round-trip filter (before)": {"start": 0.25,
                                                              "round_trip": False},
    "medium at eps 7.7/255 (about the PSNR of no round-trip filter)": {"start": 0.25,
                                                                        "eps255": 7.7},
}
# Variants 10-13 there (weakest model next, per-model momentum, blurred gradient sigma 1, 2)
# were measured at commit 6b763cb and removed with their attack code: attack_levers.md.


def run_variant(rgb: np.ndarray, config: ProtectConfig, start: float, momentum: float = 0.0,
                luma_only: bool = False, steps: int | None = None, round_trip: bool = True,
                eps255: float | None = None, **attack_options):
    original_pgd = cloak.pipeline.protect_pgd
    cloak.pipeline.protect_pgd = functools.partial(original_pgd, momentum=momentum,
                                                    luma_only=luma_only, **attack_options)
    try:
        return cloak.pipeline.protect_array(
            rgb, config.replace(step_start=start, steps=steps or config.steps,
                                eps=eps255 / 255 if eps255 else config.eps),
            round_trip=round_trip)
    finally:
        cloak.pipeline.protect_pgd = original_pgd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--photos", default="d01,d08,d14,d24")
    parser.add_argument("--strength", default="medium")
    parser.add_argument("--variants", default="", help="comma-separated indices; all by default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("optimizers.md"))
    parser.add_argument("--append", action="store_true",
                        help="add the rows to an existing table instead of rewriting it")
    parser.add_argument("--cleanups", action="store_true",
                        help="also measure verify's clean-ups and report the worst per model")
    args = parser.parse_args()
    prefixes = args.photos.split(",")
    paths = dev_photos(args.folder, prefixes)
    names = pick_variants(list(VARIANTS), args.variants)
    config = ProtectConfig(strength=args.strength, measure=False)
    clean_cache: dict = {}
    rows = []
    for label in names:
        psnr, ssim, secs, asis, insta = [], [], [], {m: [] for m in ALL_MODEL_NAMES}, {
            m: [] for m in ALL_MODEL_NAMES}
        worst = {m: [] for m in ALL_MODEL_NAMES}
        channels = ("as-is", "instagram", *(CLEANUPS if args.cleanups else ()))
        for path in paths:
            original = load_rgb(path)
            rgb = np.asarray(original, dtype=np.float32) / 255
            t = time.perf_counter()
            result = run_variant(rgb, config, **VARIANTS[label])
            secs.append(time.perf_counter() - t)
            v = verify_images(original, to_image(result.rgb), channels,
                              clean_cache=clean_cache.setdefault(path.name, {}))
            psnr.append(v.psnr)
            ssim.append(v.ssim)
            for m in ALL_MODEL_NAMES:
                asis[m].append(v.channels[0].damage_db[m])
                insta[m].append(v.channels[1].damage_db[m])
                worst[m].append(min(c.damage_db[m] for c in v.channels[2:] or v.channels))
            print(label, path.name, f"psnr {v.psnr:.2f}",
                  {m: round(asis[m][-1], 2) for m in ALL_MODEL_NAMES}, flush=True)
        med = statistics.median
        rows.append(f"| {label} | {med(psnr):.1f} | {med(ssim):.3f} | "
                    + "/".join(f"{med(asis[m]):.1f}" for m in ALL_MODEL_NAMES) + " | "
                    + "/".join(f"{med(insta[m]):.1f}" for m in ALL_MODEL_NAMES)
                    + (" | " + "/".join(f"{med(worst[m]):.1f}" for m in ALL_MODEL_NAMES)
                       if args.cleanups else "")
                    + f" | {med(secs):.1f} |")
        print(rows[-1], flush=True)
    table = "\n".join([
        f"# Update rules at --strength {args.strength}", "",
        f"Photos: {', '.join(p.name for p in paths)}. Medians; damage in dB for "
        + " / ".join(ALL_MODEL_NAMES) + ".", "",
        "| variant | PSNR | SSIM | as-is damage | instagram damage | "
        + ("worst clean-up damage | " if args.cleanups else "") + "s/photo |",
        "|---|---|---|---|---|---|" + ("---|" if args.cleanups else ""), *rows, ""])
    if args.append and args.out.is_file():
        table = args.out.read_text().rstrip("\n") + "\n" + "\n".join(rows) + "\n"
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
