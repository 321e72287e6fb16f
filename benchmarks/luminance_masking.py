"""A visibility map with luminance masking, against a uniform budget at the same PSNR.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/luminance_masking.py [--photos d01,d08]

The lever (measured, not kept; benchmarks/attack_levers.md): the eye tolerates more change
in dark and in very bright areas (Chou & Li 1995: a visibility threshold of
17 * (1 - sqrt(bg / 127)) + 3 grey levels for a background bg <= 127 and
3 / 128 * (bg - 127) + 3 above). Here the map's flat floor is scaled by that threshold over
its mid-grey value of 3 (capped at 1), so dark flat areas get up to 6.7x medium's floor.
For each photo: `--strength medium` with that map, then a uniform budget tuned to the same
PSNR (budget_compare.uniform_at_psnr). Prints PSNR, SSIM and as-is damage per model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget_compare import uniform_at_psnr
from efficacy import SUFFIXES, load_rgb

import cloak.budget
from cloak import ProtectConfig
from cloak.metrics import luma
from cloak.models import ALL_MODEL_NAMES
from cloak.pipeline import protect_array


def luminance_threshold(background: torch.Tensor) -> torch.Tensor:
    """Chou-Li visibility threshold (grey levels) for a background luminance in [0, 255]."""
    dark = 17 * (1 - (background / 127).clamp(0, 1).sqrt()) + 3
    bright = 3 / 128 * (background - 127) + 3
    return torch.where(background <= 127, dark, bright)


def visibility_map_with_luminance(x: torch.Tensor, floor: float = cloak.budget.FLAT_FLOOR,
                                  contrast_ref: float = cloak.budget.CONTRAST_REF
                                  ) -> torch.Tensor:
    """cloak.budget.visibility_map with the flat floor raised by luminance masking:
    (1, 3, H, W) in [0, 1] -> (1, 1, H, W) in [floor, 1]."""
    import kornia

    background = F.avg_pool2d(F.pad(luma(x), [2] * 4, mode="replicate"), 5, stride=1) * 255
    raised = (floor * luminance_threshold(background) / 3).clamp(max=1)
    v = raised + (1 - raised) * (cloak.budget.local_contrast(x) / contrast_ref).clamp(0, 1)
    v = kornia.filters.gaussian_blur2d(v, (9, 9), (2.0, 2.0), border_type="replicate")
    return v.clamp(floor, 1)


def summary(report) -> str:
    return (f"PSNR {report.psnr:.2f}, SSIM {report.ssim:.3f}, damage "
            + "/".join(f"{report.damage_db[m]:.2f}" for m in ALL_MODEL_NAMES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="d01,d08,d09,d12", help="dev photo prefixes")
    parser.add_argument("--dir", type=Path, default=Path("../shared/photos/dev"))
    args = parser.parse_args()
    cloak.budget.visibility_map = visibility_map_with_luminance  # budget_map looks it up
    base = ProtectConfig(strength="medium")
    rows = []
    for prefix in args.photos.split(","):
        path = next(p for p in sorted(args.dir.glob(prefix + "_*"))
                    if p.suffix.lower() in SUFFIXES)
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        masked = protect_array(rgb, base).report
        uniform = uniform_at_psnr(rgb, masked.psnr, base).report
        rows.append((masked, uniform))
        print(f"{path.name}: luminance-masked map {summary(masked)} | uniform {summary(uniform)}",
              flush=True)
    for i, label in ((0, "luminance-masked map"), (1, "uniform at the same PSNR")):
        reports = [row[i] for row in rows]
        print(f"median, {label}: PSNR {statistics.median(r.psnr for r in reports):.2f}, "
              f"SSIM {statistics.median(r.ssim for r in reports):.3f}, damage "
              + "/".join(f"{statistics.median(r.damage_db[m] for r in reports):.2f}"
                         for m in ALL_MODEL_NAMES))


if __name__ == "__main__":
    main()
