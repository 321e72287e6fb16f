"""Visibility map settings side by side: flat floor, contrast reference and eps.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/budget_sweep.py \
        [--strength medium] [--photos d01,d08,d14,d24] 0.3:0.05:8 0.1:0.1:8 ...

Each FLOOR:CONTRAST_REF:EPS spec protects the photos at `--strength` with the visibility
map's flat floor FLOOR, contrast reference CONTRAST_REF and eps EPS/255, then prints PSNR,
SSIM and as-is damage per photo and a median row (`ROW ...`). It is how the presets' map
settings (cloak/budget.py's defaults; fast's own in cloak/config.py) were chosen; see the
README's "Where the noise goes".
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb, to_image

import cloak.pipeline
from cloak import ProtectConfig
from cloak.verify import verify_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="FLOOR:CONTRAST_REF:EPS255")
    parser.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--photos", default="d01,d08,d14,d24")
    parser.add_argument("--strength", default="medium")
    args = parser.parse_args()
    prefixes = args.photos.split(",")
    paths = dev_photos(args.folder, prefixes)
    for spec in args.specs:
        floor, contrast_ref, eps255 = (float(v) for v in spec.split(":"))
        config = ProtectConfig(strength=args.strength, measure=False, eps=eps255 / 255,
                               flat_floor=floor, contrast_ref=contrast_ref)
        psnr, ssim, damage = [], [], []
        for path in paths:
            original = load_rgb(path)
            rgb = np.asarray(original, dtype=np.float32) / 255
            result = cloak.pipeline.protect_array(rgb, config)
            v = verify_images(original, to_image(result.rgb), ("as-is",))
            psnr.append(v.psnr)
            ssim.append(v.ssim)
            damage.append(list(v.channels[0].damage_db.values()))
            print(spec, path.name, f"{v.psnr:.2f} {v.ssim:.4f}",
                  [round(d, 2) for d in damage[-1]], flush=True)
        med = statistics.median
        print(f"ROW {spec} psnr {med(psnr):.2f} ssim {med(ssim):.4f} damage "
              + "/".join(f"{med(c):.2f}" for c in zip(*damage)), flush=True)


if __name__ == "__main__":
    main()
