"""Coarse to fine: the first attack steps at half the working size (a quarter of the
cost each), their perturbation upsampled as the start of medium's steps at 512.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/coarse_to_fine.py [--photos d01,d08,d14,d24]

Each variant protects the same photos (same seed) and is measured with `verify` as-is
and after the instagram preset; medians go to benchmarks/coarse_to_fine.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, pick_variants
from variant_rows import variant_row, write_table

import cloak.pipeline
from cloak import ProtectConfig, metrics

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
    config = ProtectConfig(strength="medium", measure=False)
    clean_cache: dict = {}
    original_pgd = cloak.pipeline.protect_pgd
    rows = []
    for label in pick_variants(list(VARIANTS), args.variants):
        coarse, fine = VARIANTS[label]

        def protect(rgb, coarse=coarse, fine=fine):
            cloak.pipeline.protect_pgd = coarse_then_fine(coarse)
            try:
                return cloak.pipeline.protect_array(rgb, config.replace(steps=fine))
            finally:
                cloak.pipeline.protect_pgd = original_pgd

        rows.append(variant_row(label, paths, protect, clean_cache))
    write_table(args.out, "Coarse to fine at --strength medium",
                "CLOAK_MODEL_DIR=../shared/models python benchmarks/coarse_to_fine.py "
                f"--photos {args.photos}", torch.get_num_threads(), paths, rows)


if __name__ == "__main__":
    main()
