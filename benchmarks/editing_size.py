"""Protection at both editing sizes: medium (512 only) against attacking 512 and 1024.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/editing_size.py \
        [--photos d08,d10,d24] [--variants "medium;medium 512+1024;high;high 512 only"]

SD 1.x/2.x editors encode at long side 512, SDXL and FLUX at 1024. For each variant it
protects the photos and measures the reconstruction damage (cloak.metrics.damage_db) at
long side 512 and 1024 per autoencoder, with PSNR and seconds. Prints a line per photo
and a median line per variant, and writes benchmarks/editing_size.md.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import load_rgb, to_image

from cloak import ProtectConfig, metrics
from cloak.device import autocast, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import protect_array, to_tensor

SIZES = (512, 1024)
VARIANTS = {
    "medium": {},
    "medium 512+1024": {"view_sizes": (512, 1024)},  # working size becomes 1024
    "high": {"strength": "high"},
    "high 512 only": {"strength": "high", "view_sizes": (512,)},
    "high, first step 0.25": {"strength": "high", "step_start": 0.25},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--photos", default="d08,d10,d24")
    ap.add_argument("--variants", default=";".join(VARIANTS))
    ap.add_argument("--table", type=Path, default=Path(__file__).with_name("editing_size.md"))
    args = ap.parse_args()
    device = pick_device()
    nets = {m: load_autoencoder(m, device=device) for m in ALL_MODEL_NAMES}
    paths = [next(args.folder.glob(p + "_*")) for p in args.photos.split(",")]
    rows = []
    for name in args.variants.split(";"):
        damage = {(s, m): [] for s in SIZES for m in ALL_MODEL_NAMES}
        psnr, secs = [], []
        for path in paths:
            original = load_rgb(path)
            rgb = np.asarray(original, dtype=np.float32) / 255
            start = time.perf_counter()
            result = protect_array(rgb, ProtectConfig(measure=False, **VARIANTS[name]))
            secs.append(time.perf_counter() - start)
            psnr.append(result.report.psnr)
            x = to_tensor(rgb).to(device)
            xa = to_tensor(np.asarray(to_image(result.rgb), dtype=np.float32) / 255).to(device)
            with torch.no_grad(), autocast(device):
                for s in SIZES:
                    for m in ALL_MODEL_NAMES:
                        damage[s, m].append(metrics.damage_db(nets[m], x, xa, size=s))
            print(name, path.name, f"PSNR {psnr[-1]:.1f}", {
                f"{s}/{m}": round(damage[s, m][-1], 1) for s in SIZES for m in ALL_MODEL_NAMES},
                f"{secs[-1]:.0f}s", flush=True)
        med = statistics.median
        rows.append(f"| {name} | {med(psnr):.1f} | " + " | ".join(
            "/".join(f"{med(damage[s, m]):.1f}" for m in ALL_MODEL_NAMES) for s in SIZES)
            + f" | {med(secs):.0f} |")
        print(rows[-1], flush=True)
    lines = ["## Damage at both editing sizes", "",
             f"Photos: {', '.join(p.name for p in paths)}. Medians; damage in dB for "
             + " / ".join(ALL_MODEL_NAMES) + ". Command: `CLOAK_MODEL_DIR=../shared/models "
             f"python benchmarks/editing_size.py {shlex.join(sys.argv[1:])}`.".replace(
                 " `.", "`."), "",
             "| variant | PSNR | damage at 512 | damage at 1024 | s/photo |",
             "|---|---|---|---|---|", *rows, ""]
    args.table.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
