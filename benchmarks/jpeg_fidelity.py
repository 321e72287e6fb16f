"""How closely cloak's differentiable JPEG (cloak/jpeg.py) follows Pillow's real encoder,
against kornia's jpeg_codec_differentiable, on the dev photos.

Each photo (read as cloak reads it) is cut to its central crop of at most 512x512 px; both
models' outputs are compared with Pillow's own JPEG round trip (4:2:0, the same quality) by
PSNR. Writes a markdown table of min / median / max per quality.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/jpeg_fidelity.py [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloak import transforms
from cloak.io import load_photo
from cloak.jpeg import jpeg_round_trip

QUALITIES = (50, 75, 95)
CROP = 512


def dev_photos() -> list[Path]:
    import os

    models = Path(os.environ.get("CLOAK_MODEL_DIR", "../shared/models"))
    folder = models.parent / "photos" / "dev"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() != ".csv")


def central_crop(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    return rgb[top:top + CROP, left:left + CROP]


def pillow_round_trip(rgb8: np.ndarray, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(rgb8).save(buffer, "JPEG", quality=quality, subsampling=2)
    with Image.open(buffer) as decoded:
        back = np.asarray(decoded.convert("RGB"), np.float32) / 255
    return torch.from_numpy(back).permute(2, 0, 1)[None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * np.log10(1 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ours: dict[int, list[float]] = {q: [] for q in QUALITIES}
    kornia: dict[int, list[float]] = {q: [] for q in QUALITIES}
    names = []
    for path in dev_photos():
        rgb8 = central_crop(np.round(load_photo(path).rgb * 255).astype(np.uint8))
        x = torch.from_numpy(rgb8.astype(np.float32) / 255).permute(2, 0, 1)[None]
        names.append(path.name)
        for q in QUALITIES:
            real = pillow_round_trip(rgb8, q)
            ours[q].append(psnr(jpeg_round_trip(x, q), real))
            kornia[q].append(psnr(transforms.jpeg(x, q, impl="kornia"), real))
        print(path.name, " ".join(f"q{q} {ours[q][-1]:.1f}/{kornia[q][-1]:.1f}"
                                   for q in QUALITIES), flush=True)
    rows = [("| quality | cloak min / median / max (dB) | kornia min / median / max (dB) | "
            "photos where cloak's is closer |"), "|---|---|---|---|"]
    for q in QUALITIES:
        closer = sum(a > b for a, b in zip(ours[q], kornia[q], strict=True))
        rows.append(f"| {q} | {min(ours[q]):.1f} / {statistics.median(ours[q]):.1f} / "
                    f"{max(ours[q]):.1f} | {min(kornia[q]):.1f} / "
                    f"{statistics.median(kornia[q]):.1f} / {max(kornia[q]):.1f} | "
                    f"{closer} of {len(names)} |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
