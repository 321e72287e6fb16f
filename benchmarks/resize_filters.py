"""Does the editor's resize filter matter? Damage when the 512 px resize is another one.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/resize_filters.py \
        [--protected bench_out/grid/medium] [--photos ../shared/photos/dev] [--limit N] \
        [--table benchmarks/resize_filters.md]

cloak attacks and measures with an antialiased bicubic resize to long side 512 (sides
rounded to the nearest multiple of 8). Editors resize with other filters: diffusers and
AUTOMATIC1111 with PIL's Lanczos, OpenCV's cv2.resize and torch's F.interpolate by default
with bilinear or bicubic *without* antialiasing. This re-analyses the protected copies that
`benchmarks/efficacy.py` saved (no attack runs): original and protected copy are resized to
the same 512 px grid with each filter, and damage (dB; cloak.metrics.damage_and_shift) is
measured on what each filter produced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_rgb

from cloak import metrics
from cloak.device import autocast, describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import to_tensor


def _tensor(img: Image.Image) -> torch.Tensor:
    return to_tensor(np.asarray(img, dtype=np.float32) / 255)


def _pil(resample):
    return lambda img, size: _tensor(img.resize((size[1], size[0]), resample))


def _cv2(interpolation):
    return lambda img, size: _tensor(Image.fromarray(cv2.resize(
        np.asarray(img), (size[1], size[0]), interpolation=interpolation)))


FILTERS = {
    "cloak: bicubic, antialiased (torch)": lambda img, size: metrics.resize_to(_tensor(img),
                                                                              size),
    "Lanczos (PIL; diffusers, A1111)": _pil(Image.LANCZOS),
    "bicubic (PIL)": _pil(Image.BICUBIC),
    "bilinear (PIL)": _pil(Image.BILINEAR),
    "area (cv2.INTER_AREA)": _cv2(cv2.INTER_AREA),
    "bilinear, no antialiasing (cv2.resize default)": _cv2(cv2.INTER_LINEAR),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protected", type=Path, default=Path("bench_out/grid/medium"))
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--table", type=Path, default=Path("benchmarks/resize_filters.md"))
    args = ap.parse_args()
    for folder, what in ((args.photos, "--photos"), (args.protected, "--protected")):
        if not folder.is_dir():
            sys.exit(f"{what}: no folder {folder}" + (
                "; run benchmarks/efficacy.py first (it writes the protected copies)"
                if what == "--protected" else ""))
    originals = {p.stem: p for p in args.photos.iterdir() if p.suffix.lower() in SUFFIXES}
    protected = sorted(p for p in args.protected.iterdir() if p.stem in originals)
    if not protected:
        sys.exit(f"no protected copies in {args.protected} of the photos in {args.photos}")
    device = pick_device()
    models = {n: load_autoencoder(n, None, device) for n in ALL_MODEL_NAMES}
    if args.limit:
        protected = protected[: args.limit]
    rows: dict[str, dict] = {}
    for path in protected:
        original, copy = load_rgb(originals[path.stem]), load_rgb(path)
        size = metrics.long_side_dims(original.height, original.width, 512)
        rows[path.stem] = {"megapixels": original.width * original.height / 1e6}
        for name, resize in FILTERS.items():
            with torch.no_grad(), autocast(device):
                xs, xas = resize(original, size).to(device), resize(copy, size).to(device)
                rows[path.stem][name] = {
                    m: metrics.damage_and_shift(model, xs, metrics.clean_reference(model, xs),
                                                xas)[0] for m, model in models.items()}
        print(path.stem, flush=True)
    (args.protected / "resize_filters.json").write_text(json.dumps(rows, indent=1))

    def med(group: list[str], name: str) -> str:
        return " / ".join(f"{statistics.median(rows[s][name][m] for s in group):.1f}"
                          for m in ALL_MODEL_NAMES)

    groups = [("all", list(rows)),
              ("under 0.5 MP", [s for s in rows if rows[s]["megapixels"] < 0.5]),
              ("at least 0.5 MP", [s for s in rows if rows[s]["megapixels"] >= 0.5])]
    groups = [(g, keys) for g, keys in groups if keys]
    md = ["## Damage by the editor's resize filter (medians, dB, "
          + " / ".join(ALL_MODEL_NAMES) + ")", "",
          (f"Protected copies: `{args.protected}`. Command: `CLOAK_MODEL_DIR=../shared/models "
          f"python benchmarks/resize_filters.py {' '.join(sys.argv[1:])}`; "
          f"{describe(device)}."), "",
          "| resize to 512 | " + " | ".join(f"{g} ({len(k)})" for g, k in groups) + " |",
          "|---|" + "---|" * len(groups)]
    md += [f"| {name} | " + " | ".join(med(keys, name) for _, keys in groups) + " |"
           for name in FILTERS]
    args.table.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
