"""The end-to-end objective toward a target pattern: each model's reconstruction D(E(x'))
is driven toward one shared image (so the four models' gradients may agree) instead of
away from the clean photo.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/e2e_targets.py [--photos d01,d08,d14,d24]

Each variant protects the same photos at --strength medium (same seed) and is measured
with `verify` as-is and after the instagram preset; medians go to benchmarks/e2e_targets.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, pick_variants
from variant_rows import variant_row, write_table

import cloak.objectives
from cloak import ProtectConfig
from cloak.pipeline import protect_array


def gray(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, 0.5)


def checkerboard(x: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """0.2 / 0.8 cells of `cell` px, the same on R, G and B."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h, device=x.device) // cell) % 2
    cols = (torch.arange(w, device=x.device) // cell) % 2
    board = (rows[:, None] ^ cols[None, :]).to(x.dtype) * 0.6 + 0.2
    return board.expand_as(x)


# None: medium as it is (away from the clean photo)
VARIANTS = {
    "medium (away from the photo)": None,
    "toward mid-gray": gray,
    "toward an 8 px checkerboard": checkerboard,
}


def toward(target_of):
    """reconstruction_error_of_latent replaced by minus the distance to target_of(x)."""
    def loss(model, z, x):
        return -F.mse_loss(model.decode(z).float(), target_of(x.float()))
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--photos", default="d01,d08,d14,d24")
    parser.add_argument("--variants", default="", help="comma-separated indices; all by default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("e2e_targets.md"))
    args = parser.parse_args()
    paths = dev_photos(args.folder, args.photos.split(","))
    config = ProtectConfig(strength="medium", measure=False)
    clean_cache: dict = {}
    original = cloak.objectives.reconstruction_error_of_latent
    rows = []
    for label in pick_variants(list(VARIANTS), args.variants):
        target_of = VARIANTS[label]

        def protect(rgb, target_of=target_of):
            if target_of is not None:
                cloak.objectives.reconstruction_error_of_latent = toward(target_of)
            try:
                return protect_array(rgb, config)
            finally:
                cloak.objectives.reconstruction_error_of_latent = original

        rows.append(variant_row(label, paths, protect, clean_cache))
    write_table(args.out, "End-to-end objective toward a target at --strength medium",
                "CLOAK_MODEL_DIR=../shared/models python benchmarks/e2e_targets.py "
                f"--photos {args.photos}", torch.get_num_threads(), paths, rows)


if __name__ == "__main__":
    main()
