"""Rounding the saved change to whole 8-bit steps: to the nearest (the product) against
leaving sub-step changes out, and against rounding at random in proportion.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/rounding_modes.py [d01 d08 d12 d24]

The attack's change is rounded to whole 8-bit steps before saving (pipeline.quantise_change).
Where the visibility budget is under one step (flat areas at medium: 0.8/255), rounding to
the nearest makes most of those pixels change by a full step (see budget_rounding.py).
Variants, swapped in for pipeline.quantise_change in this process only:
- nearest: the product;
- sub-step zero: changes under one step (before rounding) are left out, so flat areas
  stay untouched; the rest rounds to the nearest;
- stochastic: a change of k + f steps becomes k + 1 steps with probability f (seeded), so
  the expected change is the attack's own.
Prints PSNR, SSIM and as-is damage per photo and the medians (medium, measured on the
pixels as they would be saved, before any lossy encoding).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos

import cloak.pipeline
from cloak import ProtectConfig, io
from cloak.models import ALL_MODEL_NAMES

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"
NEAREST = cloak.pipeline.quantise_change


def sub_step_zero(delta: torch.Tensor, eps255: float) -> torch.Tensor:
    small = delta.abs() < 1 / 255
    NEAREST(delta, eps255)
    return delta.masked_fill_(small, 0.0)


def stochastic(delta: torch.Tensor, eps255: float) -> torch.Tensor:
    whole_steps = math.floor(eps255 + 1e-6) / 255
    steps = delta.mul_(255)
    low = steps.floor()
    draw = torch.rand(steps.shape, generator=torch.Generator().manual_seed(0))
    steps.copy_(low + (draw < (steps - low)).to(steps.dtype))
    return steps.div_(255).clamp_(-whole_steps, whole_steps)


VARIANTS = {"nearest": NEAREST, "sub-step zero": sub_step_zero, "stochastic": stochastic}


def main(prefixes: list[str]) -> None:
    config = ProtectConfig(strength="medium")
    rows: dict[str, list[tuple[float, float, dict]]] = {name: [] for name in VARIANTS}
    for path in dev_photos(PHOTOS, prefixes):
        photo = io.load_photo(path)
        for name, fn in VARIANTS.items():
            cloak.pipeline.quantise_change = fn
            report = cloak.pipeline.protect_array(photo.rgb, config).report
            rows[name].append((report.psnr, report.ssim, report.damage_db))
            damage = " / ".join(f"{report.damage_db[m]:.2f}" for m in ALL_MODEL_NAMES)
            print(f"{path.name} {name}: PSNR {report.psnr:.2f}, SSIM {report.ssim:.4f}, "
                  f"damage {damage}", flush=True)
    cloak.pipeline.quantise_change = NEAREST
    print(f"\nmedians over {len(prefixes)} photos (damage "
          + " / ".join(ALL_MODEL_NAMES) + ", dB as the photo is):")
    print("| rounding | PSNR | SSIM | damage |\n|---|---|---|---|")
    for name, results in rows.items():
        damage = " / ".join(f"{statistics.median(r[2][m] for r in results):.2f}"
                            for m in ALL_MODEL_NAMES)
        print(f"| {name} | {statistics.median(r[0] for r in results):.2f} | "
              f"{statistics.median(r[1] for r in results):.4f} | {damage} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", default=["d01", "d08", "d12", "d24"],
                        help="dev photo prefixes (default d01 d08 d12 d24)")
    main(parser.parse_args().photos)
