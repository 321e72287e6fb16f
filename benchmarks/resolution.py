"""Does the protection hold at the editing sizes of SDXL and FLUX (1024) as well as SD (512)?

    CLOAK_MODEL_DIR=../shared/models python benchmarks/resolution.py [--protected bench_out/medium]

For every protected copy in `--protected` whose original has a long side of at least
1024 px, measures the reconstruction damage (cloak.metrics.damage_db) with the photo
resized to long side 512 and to 1024, per autoencoder. Writes benchmarks/resolution.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_as_verify, load_rgb, saved_output

from cloak import metrics
from cloak.device import autocast, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import to_tensor

SIZES = (512, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--protected", type=Path, default=Path("bench_out/medium"))
    ap.add_argument("--table", type=Path, default=Path("benchmarks/resolution.md"))
    args = ap.parse_args()
    device = pick_device()
    nets = {n: load_autoencoder(n, device=device) for n in ALL_MODEL_NAMES}
    damage = {(s, m): [] for s in SIZES for m in ALL_MODEL_NAMES}
    names = []
    missing = []
    for path in sorted(args.clean.iterdir()):
        if path.suffix.lower() not in SUFFIXES:
            continue
        protected_path = saved_output(args.protected, path.name)
        if not protected_path.is_file():
            missing.append(path.name)
            continue
        original = load_rgb(path)
        if max(original.size) < max(SIZES):
            continue
        protected = load_as_verify(protected_path).convert("RGB")
        x, xa = (to_tensor(np.asarray(i, dtype=np.float32) / 255).to(device)
                 for i in (original, protected))
        with torch.no_grad(), autocast(device):
            for s in SIZES:
                for m, net in nets.items():
                    damage[s, m].append(metrics.damage_db(net, x, xa, size=s))
        names.append(path.name)
        print(path.name, {f"{s}/{m}": round(damage[s, m][-1], 2)
                          for s in SIZES for m in ALL_MODEL_NAMES}, flush=True)
    if missing:
        print(f"no protected copy in {args.protected} of: {', '.join(missing)}",
              file=sys.stderr)
    if not names:
        sys.exit(f"no photo of {args.clean} of at least {max(SIZES)} px has a protected "
                 f"copy in {args.protected}; run benchmarks/efficacy.py first")
    lines = ["## Damage at the SD size (512) and the SDXL/FLUX size (1024)", "",
             (f"Protected copies from `{args.protected}` of the {len(names)} dev photos with a "
             "long side of at least 1024 px. Median (worst) damage in dB. Command: "
             "`CLOAK_MODEL_DIR=../shared/models python benchmarks/resolution.py`."), "",
             "| long side | " + " | ".join(ALL_MODEL_NAMES) + " |",
             "|---|" + "---|" * len(ALL_MODEL_NAMES)]
    for s in SIZES:
        lines.append(f"| {s} | " + " | ".join(
            f"{statistics.median(damage[s, m]):.1f} ({min(damage[s, m]):.1f})"
            for m in ALL_MODEL_NAMES) + " |")
    args.table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
