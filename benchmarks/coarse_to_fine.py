"""Coarse to fine: the first attack steps at half the working size (a quarter of the
cost each), their perturbation upsampled as the start of medium's steps at 512.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/coarse_to_fine.py [--photos d01,d08,d14,d24]

Each variant protects the same photos (same seed) and is measured with `verify` as-is
and after the instagram preset; medians go to benchmarks/coarse_to_fine.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb, pick_variants, to_image

import cloak.pipeline
from cloak import ProtectConfig, metrics
from cloak.models import ALL_MODEL_NAMES
from cloak.verify import verify_images

# (coarse steps at half size, steps at the working size)
VARIANTS = {
    "medium: 32 steps at 512": (0, 32),
    "16 at 256, then 24 at 512": (16, 24),
    "16 at 256, then 16 at 512": (16, 16),
    "24 at 512": (0, 24),
}


def coarse_then_fine(coarse_steps: int, coarse_start: float = 0.5):
    """A protect_pgd that first attacks x at half size, where the models see only that
    small image, and starts the given call from that perturbation upsampled."""
    original = cloak.pipeline.protect_pgd

    def run(x, models, eps_map, steps, generator, objective="e2e", robust=False,
            eot_samples=1, rotation=None, on_step=None, should_stop=None, eot_share=1.0,
            perceptual_weight=0.0, **options):
        if coarse_steps:
            size = metrics.long_side_dims(*x.shape[-2:], max(x.shape[-2:]) // 2)
            x_small = metrics.resize_to(x, size)
            eps_small = torch.nn.functional.interpolate(eps_map, size=size, mode="area")
            small = original(x_small, models, eps_small, coarse_steps, generator, objective,
                             robust, eot_samples, rotation, None, should_stop, eot_share,
                             perceptual_weight, step_start=coarse_start)
            options["init"] = torch.nn.functional.interpolate(
                small.float(), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return original(x, models, eps_map, steps, generator, objective, robust, eot_samples,
                        rotation, on_step, should_stop, eot_share, perceptual_weight, **options)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--photos", default="d01,d08,d14,d24")
    parser.add_argument("--variants", default="", help="comma-separated indices; all by default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("coarse_to_fine.md"))
    args = parser.parse_args()
    paths = dev_photos(args.folder, args.photos.split(","))
    names = pick_variants(list(VARIANTS), args.variants)
    config = ProtectConfig(strength="medium", measure=False)
    clean_cache: dict = {}
    original_pgd = cloak.pipeline.protect_pgd
    med = statistics.median
    rows = []
    for label in names:
        coarse, fine = VARIANTS[label]
        psnr, secs = [], []
        asis, insta = ({m: [] for m in ALL_MODEL_NAMES} for _ in range(2))
        for path in paths:
            original = load_rgb(path)
            rgb = np.asarray(original, dtype=np.float32) / 255
            cloak.pipeline.protect_pgd = coarse_then_fine(coarse)
            try:
                t = time.perf_counter()
                result = cloak.pipeline.protect_array(rgb, config.replace(steps=fine))
                secs.append(time.perf_counter() - t)
            finally:
                cloak.pipeline.protect_pgd = original_pgd
            v = verify_images(original, to_image(result.rgb), ("as-is", "instagram"),
                              clean_cache=clean_cache.setdefault(path.name, {}))
            psnr.append(v.psnr)
            for m in ALL_MODEL_NAMES:
                asis[m].append(v.channels[0].damage_db[m])
                insta[m].append(v.channels[1].damage_db[m])
            print(label, path.name, f"psnr {v.psnr:.2f} {secs[-1]:.1f}s",
                  {m: round(asis[m][-1], 2) for m in ALL_MODEL_NAMES}, flush=True)
        rows.append(f"| {label} | {med(psnr):.1f} | "
                    + "/".join(f"{med(asis[m]):.1f}" for m in ALL_MODEL_NAMES) + " | "
                    + "/".join(f"{med(insta[m]):.1f}" for m in ALL_MODEL_NAMES)
                    + f" | {med(secs):.1f} |")
        print(rows[-1], flush=True)
    table = "\n".join([
        "# Coarse to fine at --strength medium", "",
        (f"Command: `CLOAK_MODEL_DIR=../shared/models python benchmarks/coarse_to_fine.py"
         f" --photos {args.photos}`; {torch.get_num_threads()} threads."), "",
        f"Photos: {', '.join(p.name for p in paths)}. Medians; damage in dB for "
        + " / ".join(ALL_MODEL_NAMES) + ".", "",
        "| variant | PSNR | as-is damage | instagram damage | s/photo |",
        "|---|---|---|---|---|", *rows, ""])
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
