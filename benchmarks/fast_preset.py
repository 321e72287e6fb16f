"""Where the fast preset spends its few steps: the attack size against the editing size.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/fast_preset.py [--photos d01,d04,d08,d14]

Each variant is a set of ProtectConfig overrides on --strength fast (its budget map and
first step; the preset itself is now 4 steps at 512). Every photo is
protected with each variant (same seed) and measured with `verify` as the photo is and
after the instagram preset (damage at long side 512, the SD editing size). Prints a
markdown table of medians, with the attack's seconds per photo, and writes it to --out.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb, pick_variants, to_image

from cloak import ProtectConfig
from cloak.device import describe, pick_device
from cloak.models import ALL_MODEL_NAMES
from cloak.pipeline import protect_array
from cloak.verify import verify_images

VARIANTS = {
    "fast: 6 steps at 384": {"working_size": 384, "steps": 6},  # fast until 2026-11-30
    "3 steps at 512": {"working_size": 512, "steps": 3},
    "4 steps at 512": {"working_size": 512, "steps": 4},
    "5 steps at 512": {"working_size": 512, "steps": 5},
    "6 steps at 512": {"working_size": 512, "steps": 6},
    "6 steps at 448": {"working_size": 448, "steps": 6},
    "8 steps at 384": {"working_size": 384, "steps": 8},
}
# A first run also had "6 steps at 384, models see 512" (view_sizes=(512,)): the attack
# then runs at the larger size, so its figures were those of "6 steps at 512" exactly.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--photos", default="d01,d04,d08,d14")
    parser.add_argument("--variants", default="", help="comma-separated indices; all by default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("fast_preset.md"))
    args = parser.parse_args()
    prefixes = args.photos.split(",")
    paths = dev_photos(args.folder, prefixes)
    names = pick_variants(list(VARIANTS), args.variants)
    clean_cache: dict = {}
    rows = []
    for label in names:
        config = ProtectConfig(strength="fast", measure=False, **VARIANTS[label])
        psnr, ssim, secs = [], [], []
        asis = {m: [] for m in ALL_MODEL_NAMES}
        insta = {m: [] for m in ALL_MODEL_NAMES}
        for path in paths:
            original = load_rgb(path)
            rgb = np.asarray(original, dtype=np.float32) / 255
            start = time.perf_counter()
            result = protect_array(rgb, config)
            secs.append(time.perf_counter() - start)
            v = verify_images(original, to_image(result.rgb), ("as-is", "instagram"),
                              clean_cache=clean_cache.setdefault(path.name, {}))
            psnr.append(v.psnr)
            ssim.append(v.ssim)
            for m in ALL_MODEL_NAMES:
                asis[m].append(v.channels[0].damage_db[m])
                insta[m].append(v.channels[1].damage_db[m])
            print(label, path.name, f"psnr {v.psnr:.2f}",
                  {m: round(asis[m][-1], 2) for m in ALL_MODEL_NAMES}, f"{secs[-1]:.1f}s",
                  flush=True)
        med = statistics.median
        rows.append(f"| {label} | {med(psnr):.1f} | {med(ssim):.3f} | "
                    + " / ".join(f"{med(asis[m]):.2f}" for m in ALL_MODEL_NAMES) + " | "
                    + " / ".join(f"{med(insta[m]):.2f}" for m in ALL_MODEL_NAMES)
                    + f" | {min(min(asis[m]) for m in ALL_MODEL_NAMES):.2f}"
                    + f" | {med(secs):.1f} |")
        print(rows[-1], flush=True)
    table = "\n".join([
        "## The fast preset: attack size against editing size", "",
        (f"Photos: {', '.join(p.name for p in paths)}. Machine: "
        f"{describe(pick_device(None))}. Command (as given, every option kept): "
        f"`CLOAK_MODEL_DIR=../shared/models "
        f"{shlex.join(['python', 'benchmarks/fast_preset.py', *sys.argv[1:]])}`. "
        "Medians; damage in dB at long "
        f"side 512, {' / '.join(ALL_MODEL_NAMES)}; seconds are protect_array's (attack, "
        "full-size step, no damage measuring)."), "",
        ("| variant | PSNR | SSIM | as-is damage | after instagram | worst as-is (any photo, "
        "any model) | s/photo |"),
        "|---|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
