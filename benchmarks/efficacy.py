"""Efficacy benchmark: protect + verify over a folder, with the PhotoGuard reference.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/efficacy.py \
        [--photos ../shared/photos/dev] [--limit N] [--presets medium] [--out bench_out]

Writes a markdown table (one block per preset, plus the reference) to
benchmarks/efficacy.md and the raw figures to <out>/efficacy.json. All numbers come from
this one run. Damage is dB at long side 512 (see cloak.metrics.damage_db); "worst" is the
minimum over photos.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photoguard import photoguard_encoder_attack

from cloak import ProtectConfig
from cloak.models import ALL_MODEL_NAMES
from cloak.pipeline import protect_array
from cloak.verify import CLEANUPS, SOCIAL_PRESETS, receipt_image, verify_images

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}
CHANNELS = ("as-is", *SOCIAL_PRESETS, *CLEANUPS)


def load_rgb(path: Path) -> Image.Image:
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")


def run_one(name: str, original: Image.Image, protect_fn) -> dict:
    rgb = np.asarray(original, dtype=np.float32) / 255
    start = time.perf_counter()
    protected = to_image(protect_fn(rgb))
    seconds = time.perf_counter() - start
    v = verify_images(original, protected, CHANNELS)
    receipts = {ch: receipt_image(img).score_db for ch, img in
                (("as-is", protected),
                 ("instagram", _channel(protected, "instagram")))}
    return {"name": name, "seconds": seconds, "megapixels": original.width * original.height / 1e6,
            **v.to_dict(), "receipt": receipts}


def _channel(img, ch):
    from cloak.verify import apply_channel

    return apply_channel(img, ch)


def summarise(rows: list[dict], label: str) -> str:
    lines = [f"### {label} ({len(rows)} photos)", "",
             "| channel | " + " | ".join(ALL_MODEL_NAMES) + " |",
             "|---|" + "---|" * len(ALL_MODEL_NAMES)]
    for i, ch in enumerate(CHANNELS):
        cells = []
        for m in ALL_MODEL_NAMES:
            vals = [r["channels"][i]["damage_db"][m] for r in rows]
            cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f})")
        lines.append(f"| {ch} | " + " | ".join(cells) + " |")
    psnr = [r["psnr"] for r in rows]
    ssim = [r["ssim"] for r in rows]
    spm = [r["seconds"] / r["megapixels"] for r in rows]
    verdicts = [r["verdict_as_posted"] for r in rows]
    lines += ["", f"PSNR median {statistics.median(psnr):.1f} dB (min {min(psnr):.1f}); "
              f"SSIM median {statistics.median(ssim):.3f} (min {min(ssim):.3f}); "
              f"{statistics.median(spm):.1f} s/MP median; as-posted verdicts: "
              + (", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))), ""]
    return "\n".join(lines)


def receipt_table(clean: dict, by_label: dict[str, list[dict]], threshold: float) -> str:
    lines = ["### No-reference receipt", "",
             f"Threshold {threshold:.2f} dB (cloak.verify.RECEIPT_THRESHOLD_DB).", "",
             "| photos | channel | called protected |", "|---|---|---|"]
    for ch in ("as-is", "instagram"):
        c = clean[ch]
        lines.append(f"| clean (false alarms) | {ch} | {sum(s >= threshold for s in c)}/{len(c)} |")
        for label, rows in by_label.items():
            s = [r["receipt"][ch] for r in rows]
            lines.append(f"| {label} (detections) | {ch} | "
                         f"{sum(v >= threshold for v in s)}/{len(s)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/photos/dev")
    ap.add_argument("--limit", type=int, default=0, help="Use only the first N photos.")
    ap.add_argument("--presets", default="medium")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--table", default="benchmarks/efficacy.md")
    args = ap.parse_args()
    torch.manual_seed(0)
    paths = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in SUFFIXES)
    if args.limit:
        paths = paths[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = {p.name: load_rgb(p) for p in paths}
    results: dict[str, list[dict]] = {}
    clean_receipts = {"as-is": [], "instagram": []}
    for name, img in photos.items():
        clean_receipts["as-is"].append(receipt_image(img).score_db)
        clean_receipts["instagram"].append(receipt_image(_channel(img, "instagram")).score_db)
    for preset in args.presets.split(","):
        config = ProtectConfig(strength=preset)
        label = f"cloak {preset}"
        for name, img in photos.items():
            row = run_one(name, img, lambda rgb, c=config: protect_array(rgb, c).rgb)
            results.setdefault(label, []).append(row)
            print(label, name, f"{row['psnr']:.1f} dB", row["channels"][0]["damage_db"],
                  f"{row['seconds']:.0f}s", flush=True)
    if not args.no_reference:
        label = "PhotoGuard reference"
        for name, img in photos.items():
            row = run_one(name, img, photoguard_encoder_attack)
            results.setdefault(label, []).append(row)
            print(label, name, f"{row['psnr']:.1f} dB", row["channels"][0]["damage_db"],
                  f"{row['seconds']:.0f}s", flush=True)
    from cloak.verify import RECEIPT_THRESHOLD_DB

    md = ["## Efficacy (median (worst) damage in dB per autoencoder)", "",
          (f"Command: `CLOAK_MODEL_DIR=../shared/models python benchmarks/efficacy.py "
           f"--limit {args.limit} --presets {args.presets}`; torch threads "
           f"{torch.get_num_threads()}."), ""]
    md += [summarise(rows, label) for label, rows in results.items()]
    md.append(receipt_table(clean_receipts, {k: v for k, v in results.items()
                                             if k.startswith("cloak")}, RECEIPT_THRESHOLD_DB))
    Path(args.table).write_text("\n".join(md))
    (out / "efficacy.json").write_text(json.dumps(
        {"results": results, "clean_receipts": clean_receipts}, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
