"""How many rotation steps each autoencoder gets: the shares in cloak.pipeline.STEP_SHARE.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_shares.py [--photos d01,d08,d14,d24]

Protects the photos at `--strength medium` with each set of shares (same seed and step
count) and prints the median damage as-is and after the instagram preset, per model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import load_rgb, to_image

import cloak.pipeline
from cloak import ProtectConfig
from cloak.models import ALL_MODEL_NAMES
from cloak.verify import verify_images

SHARES = {  # taesd / taesdxl / taef1 / taef2
    "2/3/2/1 (cloak's)": {"taesd": 2, "taesdxl": 3, "taef1": 2, "taef2": 1},
    "1/3/3/1": {"taesd": 1, "taesdxl": 3, "taef1": 3, "taef2": 1},
    "2/4/3/1": {"taesd": 2, "taesdxl": 4, "taef1": 3, "taef2": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--photos", default="d01,d08,d14,d24")
    args = ap.parse_args()
    paths = [next(args.folder.glob(p + "_*")) for p in args.photos.split(",")]
    cache: dict = {}
    original_share = cloak.pipeline.STEP_SHARE
    try:
        for label, share in SHARES.items():
            cloak.pipeline.STEP_SHARE = share
            asis = {m: [] for m in ALL_MODEL_NAMES}
            posted = {m: [] for m in ALL_MODEL_NAMES}
            for path in paths:
                original = load_rgb(path)
                rgb = np.asarray(original, dtype=np.float32) / 255
                result = cloak.pipeline.protect_array(rgb, ProtectConfig(measure=False))
                v = verify_images(original, to_image(result.rgb), ("as-is", "instagram"),
                                  clean_cache=cache.setdefault(path.name, {}))
                for m in ALL_MODEL_NAMES:
                    asis[m].append(v.channels[0].damage_db[m])
                    posted[m].append(v.channels[1].damage_db[m])
            med = statistics.median
            print(f"| {label} | " + " / ".join(f"{med(asis[m]):.1f}" for m in ALL_MODEL_NAMES)
                  + " | " + " / ".join(f"{med(posted[m]):.1f}" for m in ALL_MODEL_NAMES)
                  + " |", flush=True)
    finally:
        cloak.pipeline.STEP_SHARE = original_share


if __name__ == "__main__":
    main()
