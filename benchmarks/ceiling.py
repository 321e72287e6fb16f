"""How much damage medium's budget allows on taesdxl, the most resistant autoencoder,
when the whole attack goes to it alone - the ceiling the ensemble works under.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/ceiling.py [--photos d08,d14,d24]

Each variant protects the same photos (same seed) with cloak's pipeline at
`--strength medium`, changing only the models attacked, the steps and the budget map.
Damage is measured on all four autoencoders as the photo is (512 px long side, as
`verify`). Writes benchmarks/ceiling.md.
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
from efficacy import SUFFIXES, load_rgb

from cloak import ProtectConfig, metrics
from cloak.device import autocast, describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import protect_array

VARIANTS = {
    "medium (all four, 32 steps)": {},
    "taesdxl alone, 32 steps": {"models": ("taesdxl",)},
    "taesdxl alone, 64 steps": {"models": ("taesdxl",), "steps": 64},
    "taesdxl alone, 32 steps, uniform 8/255 (no visibility map)":
        {"models": ("taesdxl",), "perceptual": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="d08,d14,d24", help="dev photo prefixes")
    parser.add_argument("--dir", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ceiling.md"))
    args = parser.parse_args()
    device = pick_device()
    judges = {n: load_autoencoder(n, None, device, False) for n in ALL_MODEL_NAMES}
    paths = [next(p for p in sorted(args.dir.glob(prefix + "_*")) if p.suffix.lower() in SUFFIXES)
             for prefix in args.photos.split(",")]
    rows: dict[str, list[tuple[float, float, list[float], float]]] = {v: [] for v in VARIANTS}
    for path in paths:
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)
        for label, changes in VARIANTS.items():
            start = time.perf_counter()
            out = protect_array(rgb, ProtectConfig(strength="medium", measure=False, **changes))
            seconds = time.perf_counter() - start
            x_adv = torch.from_numpy(out.rgb).permute(2, 0, 1)[None].to(device)
            with torch.no_grad(), autocast(device):  # as protect and verify measure
                damage = [metrics.damage_db(judges[n], x, x_adv) for n in ALL_MODEL_NAMES]
            rows[label].append((out.report.psnr, out.report.ssim, damage, seconds))
            print(f"{path.name}: {label}: PSNR {out.report.psnr:.1f} damage "
                  + "/".join(f"{d:.1f}" for d in damage) + f" ({seconds:.0f} s)", flush=True)

    lines = [
        "# The damage ceiling on taesdxl at medium's budget", "",
        f"Photos: {', '.join(p.name for p in paths)}. Device: {describe(device)}.",
        "Damage in dB on taesd / taesdxl / taef1 / taef2, as the photo is (512 px long side).",
        ("Command: `CLOAK_MODEL_DIR=../shared/models python benchmarks/ceiling.py"
         f" --photos {args.photos}`"), "",
        "| variant | median PSNR | median SSIM | median damage | taesdxl per photo | s/photo |",
        "|---|---|---|---|---|---|"]
    for label, results in rows.items():
        damage = "/".join(f"{statistics.median([r[2][i] for r in results]):.1f}" for i in range(4))
        per_photo = ", ".join(f"{r[2][1]:.1f}" for r in results)
        lines.append(f"| {label} | {statistics.median([r[0] for r in results]):.1f} | "
                     f"{statistics.median([r[1] for r in results]):.3f} | {damage} | {per_photo} | "
                     f"{statistics.median([r[3] for r in results]):.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
