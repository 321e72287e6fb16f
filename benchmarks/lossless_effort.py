"""How hard cloak's lossless encoders try: PNG's zlib level, lossless WebP's effort, and
TIFF's predictor (horizontal differencing before LZW or deflate).

    CLOAK_MODEL_DIR=../shared/models python benchmarks/lossless_effort.py \
        [--photos d25,d18,d10,d01] [--repeats 3] [--table out.md]

Each photo is protected once at `--strength fast` (in memory); that copy is then encoded
with each setting, `--repeats` times (the median is shown), and decoded back to check the
pixels are the protected ones exactly (they must be: both encoders are lossless, so the
setting changes only seconds and bytes, never the protection).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import dev_photos, load_rgb

from cloak import ProtectConfig, protect

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"
SETTINGS = {  # name -> (Pillow format, save options)
    "PNG level 6 (zlib's default)": ("PNG", {"compress_level": 6}),
    "PNG level 3": ("PNG", {"compress_level": 3}),
    "PNG level 1": ("PNG", {"compress_level": 1}),
    "WebP lossless q80 m4": ("WEBP", {"lossless": True, "quality": 80, "method": 4}),
    "WebP lossless q50 m2": ("WEBP", {"lossless": True, "quality": 50, "method": 2}),
    "WebP lossless q25 m1": ("WEBP", {"lossless": True, "quality": 25, "method": 1}),
    "WebP lossless q0 m0": ("WEBP", {"lossless": True, "quality": 0, "method": 0}),
    "TIFF deflate": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    "TIFF deflate, predictor 2": ("TIFF", {"compression": "tiff_adobe_deflate",
                                           "tiffinfo": {317: 2}}),
    "TIFF LZW": ("TIFF", {"compression": "tiff_lzw"}),
    "TIFF LZW, predictor 2": ("TIFF", {"compression": "tiff_lzw", "tiffinfo": {317: 2}}),
}


def encoded(image: Image.Image, fmt: str, options: dict) -> tuple[bytes, float]:
    """(the file's bytes, seconds the encode took)."""
    buffer = io.BytesIO()
    started = time.perf_counter()
    image.save(buffer, fmt, **({"exact": True} if fmt == "WEBP" else {}), **options)
    return buffer.getvalue(), time.perf_counter() - started


def protected_at_fast(prefixes: str):
    """For each comma-separated dev photo prefix ("d25,d18"): (its path, its upright RGB,
    that photo protected at `--strength fast`, in memory). Exits on a prefix with no photo."""
    wanted = [p.strip() for p in prefixes.split(",") if p.strip()]
    found = {path.name.split("_")[0]: path for path in dev_photos(PHOTOS, wanted)}
    for prefix in wanted:
        if prefix not in found:
            sys.exit(f"no dev photo starts with {prefix!r} in {PHOTOS}")
        original = load_rgb(found[prefix])
        yield found[prefix], original, protect(original, ProtectConfig(
            strength="fast", measure=False)).image


def add_row(rows: list[str], row: str) -> None:
    """Keep a table row and print it at once (a long run shows its progress)."""
    rows.append(row)
    print(row, flush=True)


def write_table(rows: list[str], path: Path | None) -> None:
    if path:
        path.write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="d25,d18,d10,d01",
                        help="dev photo name prefixes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--table", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    rows = ["| photo | size | setting | median encode s | MB |", "|---|---|---|---|---|"]
    for path, original, protected in protected_at_fast(args.photos):
        pixels = np.asarray(protected)
        for name, (fmt, options) in SETTINGS.items():
            runs = []
            for _ in range(args.repeats):
                data, seconds = encoded(protected, fmt, options)
                runs.append(seconds)
            back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            if not np.array_equal(back, pixels):
                sys.exit(f"{name} changed pixels of {path.name}")
            add_row(rows, f"| {path.name} | {original.width}x{original.height} | {name} | "
                          f"{statistics.median(runs):.2f} | {len(data) / 1e6:.2f} |")
    write_table(rows, args.table)

if __name__ == "__main__":
    main()
