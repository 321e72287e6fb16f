"""fast on the dev photos whose two 512 grids differ (3:2 and the like): each size's
nearest grid only (the product since commit 3e003b8; fast's 4 steps are less than one
rotation cycle) against the two roundings taking turns step by step (the product from
a272595 until then, re-created here by handing the attack both roundings). Damage (dB,
taesd/taesdxl/taef1/taef2) as the photo is (the nearest grid, which cloak measures) and
on the grid that rounds down (verify's `grid` channel), on the pixels before the save.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/fast_grid.py [N photos, default 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import load_rgb

from cloak import ProtectConfig, metrics, pipeline
from cloak.verify import verify_images

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"


def photos_with_two_grids(limit: int) -> list[tuple[str, np.ndarray]]:
    """(name, upright RGB in [0, 1]) of the first `limit` dev photos whose 512 px grid
    differs between rounding to the nearest multiple of 8 and rounding down."""
    chosen = []
    for path in sorted(PHOTOS.glob("d*")):
        if path.suffix.lower() == ".heic":
            continue
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        h, w = rgb.shape[:2]
        if metrics.long_side_dims(h, w, 512) != metrics.long_side_dims_down(h, w, 512):
            chosen.append((path.name[:3], rgb))
    return chosen[:limit]


def medians(rows: list[dict[str, float]]) -> str:
    return "/".join(f"{statistics.median(r[k] for r in rows):.2f}" for k in rows[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", nargs="?", type=int, default=4,
                        help="how many dev photos with two grids (default 4)")
    photos = photos_with_two_grids(parser.parse_args().count)
    nearest_only = pipeline.editing_views
    variants = {
        "nearest grid only (now)": nearest_only,
        "both roundings in turn (before)":
            lambda full, sizes, both=False: nearest_only(full, sizes, True),
    }
    print("| fast | PSNR | as-is | grid | worse of the two |\n|---|---|---|---|---|")
    for name, views in variants.items():
        pipeline.editing_views = views
        psnr, as_is, grid, worse = [], [], [], []
        for _, rgb in photos:
            out = pipeline.protect_array(rgb, ProtectConfig(strength="fast",
                                                            measure=False)).rgb
            original, copy = (Image.fromarray(np.round(a * 255).astype(np.uint8))
                              for a in (rgb, out))
            v = verify_images(original, copy, channels=("as-is", "grid"))
            psnr.append(v.psnr)
            as_is.append(v.channels[0].damage_db)
            grid.append(v.channels[1].damage_db)
            worse.append({k: min(as_is[-1][k], grid[-1][k]) for k in as_is[-1]})
        print(f"| {name} | {statistics.median(psnr):.1f} | {medians(as_is)} | "
              f"{medians(grid)} | {medians(worse)} |", flush=True)
    pipeline.editing_views = nearest_only
    print(f"\nPhotos: {', '.join(name for name, _ in photos)}")


if __name__ == "__main__":
    main()
