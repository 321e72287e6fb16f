"""How far rounding to whole 8-bit steps takes the saved change past the per-pixel budget.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/budget_rounding.py d01 d12

For each dev photo named (by its prefix), protects it at medium (no measuring) and
compares |protected - original| (largest over R, G, B; /255) with the visibility
budget upsampled to full size as the pipeline does. Prints the share of pixels whose
budget is under one 8-bit step, how many of those still change by one step, and how many
pixels end up over their budget (never by more than half a step).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos

from cloak import ProtectConfig, io
from cloak.pipeline import protect_array, upsample

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"


def main(prefixes: list[str]) -> None:
    config = ProtectConfig(strength="medium", measure=False)
    for path in dev_photos(PHOTOS, prefixes):
        photo = io.load_photo(path)
        result = protect_array(photo.rgb, config)
        change = np.abs(result.rgb - photo.rgb).max(axis=2) * 255
        allowed = torch.from_numpy(result.budget)[None, None].float()
        budget = (upsample(allowed, change.shape)[0, 0].numpy().clip(0, 1)
                  * config.eps * 255)
        over = change - budget
        small = budget < 1.0
        moved = f"{(change[small] >= 0.999).mean():.1%}" if small.sum() >= 100 else "n/a"
        print(f"{path.name}: budget under 1/255 on {small.mean():.1%} of pixels, "
              f"{moved} of those change by 1/255; "
              f"over budget by >= 0.2/255 on {(over >= 0.2).mean():.1%} of pixels, "
              f"by at most {over.max():.2f}/255")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", default=["d01", "d12"],
                        help="dev photo prefixes (default d01 d12)")
    main(parser.parse_args().photos)
