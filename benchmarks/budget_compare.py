"""Visibility-aware budget vs a uniform budget at the same PSNR: damage table and a sheet.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/budget_compare.py [--limit 6]

For each photo, protects at `--strength medium` (visibility-aware budget), then with
uniform budgets (`perceptual=False`) of whole 8-bit steps on either side of the same PSNR,
interpolated to it (uniform_at_psnr). Writes benchmarks/budget.md (PSNR, SSIM and as-is damage per model, medians)
and benchmarks/budget_sheet.png: 100% crops of a face, a flat area and a texture from the
first photo, as original | uniform | visibility-aware | both differences x10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_rgb

from cloak import ProtectConfig
from cloak.budget import find_faces, local_contrast
from cloak.models import ALL_MODEL_NAMES
from cloak.models.weights import resolve_face_detector
from cloak.pipeline import protect_array, to_tensor

CROP = 128


def amplified_difference(original: np.ndarray, protected: np.ndarray,
                         gain: float = 10.0) -> np.ndarray:
    """(H, W, 3) float in [0, 1] each -> (H, W, 3) uint8: 128 + gain * 255 * (p - o), the
    signed difference this benchmark's sheet shows beside the original crops. (cloak's
    own --preview shows only the size of the change: see cloak.preview.)"""
    diff = 0.5 + gain * (protected.astype(np.float32) - original.astype(np.float32))
    return np.round(np.clip(diff, 0, 1) * 255).astype(np.uint8)
DEFAULT_PHOTOS = ("d01", "d08", "d09", "d12", "d14", "d24", "d04", "d17")


@dataclass
class Interpolated:
    """A uniform budget's figures at a PSNR between two whole-step runs (see below)."""

    psnr: float
    ssim: float
    eps255: float
    damage_db: dict[str, float]


def uniform_at_psnr(rgb: np.ndarray, target: float, base: ProtectConfig):
    """A uniform budget's figures at exactly `target` PSNR, and the nearer run's pixels.

    Outputs change in whole 8-bit steps, so a uniform bound is a whole number of steps
    and its PSNR moves ~1.5-2 dB per step: no single run lands on an arbitrary PSNR. This
    runs the two whole-step bounds whose PSNRs bracket `target` (stepping from a guess) and
    interpolates PSNR, SSIM and each model's damage linearly between them."""
    guess = 255 * 10 ** (-target / 20) / 0.65  # RMS change ~0.65 eps (d01, d08 at medium)
    runs: dict[int, object] = {}

    def run(eps: int):
        if eps not in runs:
            runs[eps] = protect_array(rgb, base.replace(perceptual=False, eps=eps / 255))
        return runs[eps].report

    lo = max(1, min(30, int(guess)))
    while run(lo).psnr < target and lo > 1:  # even `lo` changes too much: step down
        lo -= 1
    while run(lo + 1).psnr > target and lo < 30:  # `lo + 1` changes too little: step up
        lo += 1
    a, b = run(lo), run(lo + 1)  # a: the smaller change (higher PSNR)
    t = min(1.0, max(0.0, (a.psnr - target) / max(1e-9, a.psnr - b.psnr)))
    mix = lambda u, v: u + t * (v - u)
    figures = Interpolated(mix(a.psnr, b.psnr), mix(a.ssim, b.ssim), lo + t,
                           {m: mix(a.damage_db[m], b.damage_db[m]) for m in a.damage_db})
    return figures, runs[lo + 1 if t >= 0.5 else lo].rgb


def window(score: np.ndarray, pick) -> tuple[int, int]:
    """Top-left corner of the CROP x CROP window with the min or max mean `score`."""
    h, w = score.shape
    best, where = None, (0, 0)
    for y in range(0, h - CROP + 1, CROP // 4):
        for x in range(0, w - CROP + 1, CROP // 4):
            value = float(score[y:y + CROP, x:x + CROP].mean())
            if best is None or pick(value, best):
                best, where = value, (y, x)
    return where


def sheet(original: np.ndarray, uniform: np.ndarray, aware: np.ndarray) -> Image.Image:
    contrast = local_contrast(to_tensor(original))[0, 0].numpy()
    u8 = np.round(original * 255).astype(np.uint8)
    faces = find_faces(u8, resolve_face_detector())
    rows = []
    if faces:
        fx, fy, fw, fh = faces[0]
        cy, cx = int(fy + fh / 2), int(fx + fw / 2)
        rows.append(("face", (max(0, cy - CROP // 2), max(0, cx - CROP // 2))))
    # Flat but not clipped: ignore near-black and near-white windows.
    level = original.mean(2)
    flat_score = np.where((level > 0.08) & (level < 0.92), contrast, 1.0)
    rows.append(("flat", window(flat_score, lambda v, b: v < b)))
    rows.append(("texture", window(contrast, lambda v, b: v > b)))
    cols = [("original", original), ("uniform", uniform), ("visibility-aware", aware)]
    diffs = [("uniform diff x10", amplified_difference(original, uniform)),
             ("aware diff x10", amplified_difference(original, aware))]
    label_h = 16
    out = Image.new("RGB", ((len(cols) + len(diffs)) * CROP, len(rows) * (CROP + label_h)),
                    "white")
    draw = ImageDraw.Draw(out)
    for r, (name, (y, x)) in enumerate(rows):
        top = r * (CROP + label_h)
        for c, (title, img) in enumerate(cols + diffs):
            crop = img[y:y + CROP, x:x + CROP]
            if crop.dtype != np.uint8:
                crop = np.round(crop * 255).astype(np.uint8)
            out.paste(Image.fromarray(crop), (c * CROP, top + label_h))
            draw.text((c * CROP + 3, top + 2), f"{name}: {title}", fill="black")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos/dev"))
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--table", type=Path, default=Path("benchmarks/budget.md"))
    ap.add_argument("--sheet", type=Path, default=Path("benchmarks/budget_sheet.png"))
    args = ap.parse_args()
    chosen = [p for prefix in DEFAULT_PHOTOS for p in sorted(args.photos.iterdir())
              if p.name.startswith(prefix) and p.suffix.lower() in SUFFIXES][: args.limit]
    base = ProtectConfig(strength="medium")
    rows = []
    for i, path in enumerate(chosen):
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        aware = protect_array(rgb, base)
        uniform, uniform_rgb = uniform_at_psnr(rgb, aware.report.psnr, base)
        rows.append((path.name, uniform, aware.report))
        print(path.name, "uniform", round(uniform.psnr, 2), round(uniform.eps255, 2),
              {m: round(v, 3) for m, v in uniform.damage_db.items()},
              "aware", round(aware.report.psnr, 2), aware.report.damage_db, flush=True)
        if i == 0:
            sheet(rgb, uniform_rgb, aware.rgb).save(args.sheet, optimize=True)

    def line(label, reports):
        med = lambda f: statistics.median(f(r) for r in reports)
        dmg = " | ".join(f"{med(lambda r, m=m: r.damage_db[m]):.1f}" for m in ALL_MODEL_NAMES)
        return (f"| {label} | {med(lambda r: r.psnr):.1f} | {med(lambda r: r.ssim):.3f} | "
                f"{med(lambda r: r.eps255):.1f} | {dmg} |")

    md = ["## Visibility-aware vs uniform budget at the same PSNR (medians)", "",
          (f"{len(rows)} dev photos ({', '.join(r[0] for r in rows)}). Command: "
           f"`CLOAK_MODEL_DIR=../shared/models python benchmarks/budget_compare.py "
           f"--limit {args.limit}`. Damage is dB as the photo is, at long side 512. The "
           "uniform row is interpolated at each photo's aware PSNR between the two "
           "whole-step uniform bounds that bracket it (its eps is fractional for that "
           "reason)."), "",
          "| budget | PSNR | SSIM | eps /255 | " + " | ".join(ALL_MODEL_NAMES) + " |",
          "|---|---|---|---|" + "---|" * len(ALL_MODEL_NAMES),
          line("uniform", [r[1] for r in rows]), line("visibility-aware", [r[2] for r in rows]),
          "", "Per photo (PSNR; damage taesd / taesdxl / taef1 / taef2):", ""]
    for name, u, a in rows:
        fmt = lambda r: (f"{r.psnr:.1f} dB; "
                         + " / ".join(f"{r.damage_db[m]:.1f}" for m in ALL_MODEL_NAMES))
        md.append(f"- {name}: uniform {fmt(u)}; aware {fmt(a)}")
    args.table.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
