"""Clean-ups beyond those `cloak verify` first simulated, after the instagram preset.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/unseen_cleanups.py \
        [--protected bench_out/medium] [--photos ../shared/photos/dev] [--limit N] \
        [--only d08,d14] [--base instagram|as-is] [--table benchmarks/unseen_cleanups.md]

Issue 4 warns that protection will be judged on clean-up methods cloak never trained or
measured against. This re-analyses the protected copies that `benchmarks/efficacy.py`
saved (no new attack runs): each original and its protected copy go through the
`instagram` preset (what an attacker downloads), then through one more clean-up, and damage
(dB, 512 px, see cloak.metrics.damage_db) is measured against the clean photo sent through
the same chain (`--base as-is` skips the preset). The half-cell crop, the worst found here,
is now verify's `crop` clean-up. Writes the table to --table and the
raw figures to <protected>/unseen_cleanups_<base>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_as_verify, load_rgb, saved_output

from cloak import metrics
from cloak.channel_list import INSTAGRAM_ASPECT, SOCIAL_PRESETS
from cloak.channels import apply_channel, crop_at_512, image_tensor, jpeg_bytes_roundtrip
from cloak.device import autocast, describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder


def _reencode(img: Image.Image, fmt: str, **options) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _cv2(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Image.Image], Image.Image]:
    return lambda img: Image.fromarray(fn(np.ascontiguousarray(np.asarray(img))))


def _noisy_down_up(img: Image.Image) -> Image.Image:
    """Half-size, seeded Gaussian noise (std 4/255), bicubic back up, JPEG q90: a cheap
    stand-in for Hoenig et al.'s noisy upscaling (theirs upscales with a diffusion model)."""
    w, h = img.size
    small = np.asarray(img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS),
                       dtype=np.float32)
    noise = np.random.default_rng(0).normal(0, 4, small.shape).astype(np.float32)
    noisy = Image.fromarray(np.clip(small + noise, 0, 255).round().astype(np.uint8))
    return _reencode(noisy.resize((w, h), Image.BICUBIC), "JPEG", quality=90)


def _center_crop(img: Image.Image, keep_w: float, keep_h: float) -> Image.Image:
    """The centred `keep_w` x `keep_h` share of the image (no resizing)."""
    w, h = img.size
    cw, ch = max(1, round(w * keep_w)), max(1, round(h * keep_h))
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


# name -> (what it stands for, function on the posted RGB image)
CLEANUPS: dict[str, tuple[str, Callable[[Image.Image], Image.Image]]] = {
    "none": ("nothing more (the baseline)", lambda img: img),
    "webp75": ("WebP q75 re-encode (platform delivery)",
               lambda img: _reencode(img, "WEBP", quality=75)),
    "jpeg30": ("JPEG q30 re-encode (harsher than verify's q50)",
               lambda img: jpeg_bytes_roundtrip(img, 30)),
    "median3": ("3x3 median filter", lambda img: img.filter(ImageFilter.MedianFilter(3))),
    "bilateral": ("bilateral filter d=5, sigma colour 25, space 5",
                  _cv2(lambda a: cv2.bilateralFilter(a, 5, 25, 5))),
    "nlmeans": ("non-local means denoising h=5 (OpenCV)",
                _cv2(lambda a: cv2.fastNlMeansDenoisingColored(a, None, 5, 5, 7, 21))),
    "noisy-down-up": ("half size + noise 4/255 + bicubic up + JPEG q90", _noisy_down_up),
    "half-cell-crop": ("crop off the top and left what is 4 px at 512 (half a latent cell)",
                       lambda img: crop_at_512(img, 4)),
    "quarter-cell-crop": ("the same, 2 px at 512", lambda img: crop_at_512(img, 2)),
    "center-crop-80": (("center crop to 80% of width and height (the editor then sees the "
                       "perturbation 1.25x larger, on a shifted latent grid)"),
                       lambda img: _center_crop(img, 0.8, 0.8)),
    "square-crop": ("center crop to a square (profile pictures, grid thumbnails)",
                    lambda img: _center_crop(img, min(img.size) / img.size[0],
                                             min(img.size) / img.size[1])),
    "sharpen": ("unsharp mask radius 2, 80%",
                lambda img: img.filter(ImageFilter.UnsharpMask(2, 80, 0))),
}


@torch.no_grad()
def damage_after(nets: dict, original: Image.Image, protected: Image.Image,
                 cleanup: Callable[[Image.Image], Image.Image], device,
                 base: str = "instagram") -> dict[str, float]:
    """Damage per model after the `base` channel (cloak.verify.apply_channel) and then
    `cleanup`, against the clean photo sent through both."""
    xs = metrics.resize_long(image_tensor(cleanup(apply_channel(original, base))).to(device), 512)
    xas = metrics.resize_long(image_tensor(cleanup(apply_channel(protected, base))).to(device), 512)
    out = {}
    with autocast(device):
        for name, net in nets.items():
            clean = metrics.clean_reference(net, xs)
            out[name] = round(metrics.damage_and_shift(net, xs, clean, xas)[0], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protected", default="bench_out/medium",
                    help="Folder of protected copies as efficacy.py saves them (named after the "
                         "originals, in their own format; older runs' PNGs too).")
    ap.add_argument("--photos", default="../shared/photos/dev")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--only", default="", help="Photo name prefixes, comma-separated (d08,d14).")
    ap.add_argument("--cleanups", default=",".join(CLEANUPS),
                    help="Which clean-ups, comma-separated ('none' is the baseline, always run).")
    ap.add_argument("--base", default="instagram",
                    help="Channel before each clean-up: as-is or a social preset.")
    ap.add_argument("--table", default="benchmarks/unseen_cleanups.md")
    args = ap.parse_args()

    chosen = ["none", *(c for c in args.cleanups.split(",") if c and c != "none")]
    unknown = [c for c in chosen if c not in CLEANUPS]
    if unknown:
        sys.exit(f"unknown clean-up {unknown[0]!r}; choose from {', '.join(CLEANUPS)}")
    protected_dir = Path(args.protected)
    pairs = []
    missing = []
    for path in sorted(Path(args.photos).iterdir()):
        if path.suffix.lower() not in SUFFIXES:
            continue
        copy = saved_output(protected_dir, path.name)
        if copy.is_file():
            pairs.append((path, copy))
        else:
            missing.append(path.name)
    if args.only:
        pairs = [p for p in pairs if p[0].name.split("_")[0] in args.only.split(",")]
    if args.limit:
        pairs = pairs[: args.limit]
    if missing and not args.only:
        print(f"no protected copy in {protected_dir} of: {', '.join(missing)}",
              file=sys.stderr)
    if not pairs:
        sys.exit(f"no protected copies in {protected_dir} of the photos in {args.photos} "
                 "(as efficacy.py names them); run benchmarks/efficacy.py first")

    device = pick_device(None)
    nets = {n: load_autoencoder(n, None, device) for n in ALL_MODEL_NAMES}
    rows = []
    for k, (path, copy) in enumerate(pairs, 1):
        original = load_rgb(path)
        protected = load_as_verify(copy).convert("RGB")  # upright, as cloak reads it
        row = {"name": path.name, "damage_db": {}}
        for cname in chosen:
            row["damage_db"][cname] = damage_after(
                nets, original, protected, CLEANUPS[cname][1], device, args.base)
        rows.append(row)
        print(f"[{k}/{len(pairs)}] {path.name}: " + "; ".join(
            f"{c} " + "/".join(f"{v:.1f}" for v in d.values())
            for c, d in row["damage_db"].items()), flush=True)
        raw = protected_dir / f"unseen_cleanups_{args.base}.json"
        raw.write_text(json.dumps(rows, indent=1))

    def median(cname: str, model: str) -> float:
        return statistics.median(r["damage_db"][cname][model] for r in rows)

    base = {m: median("none", m) for m in ALL_MODEL_NAMES}
    after = {"instagram": "after the instagram preset", "as-is": "on the photo as it is"}.get(
        args.base, f"after {args.base}")
    width, quality = SOCIAL_PRESETS["instagram"]
    tall, wide = INSTAGRAM_ASPECT
    chain = {"instagram": (f"the instagram-posted photo (cropped to {tall:.2f}:1-{wide}:1, "
                           f"width at most {width}, JPEG q{quality})"),
             "as-is": "the protected photo as it is"}.get(
        args.base, f"the photo after `{args.base}`")
    command = "CLOAK_MODEL_DIR=../shared/models python benchmarks/unseen_cleanups.py" + "".join(
        f" --{k} {v}" for k, v in (("protected", args.protected), ("photos", args.photos),
                                  ("only", args.only), ("limit", args.limit),
                                  ("base", args.base), ("cleanups", args.cleanups),
                                  ("table", args.table))
        if v and v != ap.get_default(k))
    lines = [
        f"# Clean-ups beyond those of cloak verify's first efficacy run, {after}", "",
        f"Protected copies: `{protected_dir}` ({len(rows)} photos). Device: "
        + describe(device) + ".", f"Command: `{command}`", "",
        (f"Each clean-up runs on {chain}, the original going through the same chain. "
         "Medians over the photos; damage in dB at 512 px, taesd / taesdxl / taef1 / taef2; "
         "retention is the median damage as a share of the median with no clean-up."), "",
        "| clean-up | median damage | retention | worst photo |",
        "|---|---|---|---|",
    ]
    for cname in chosen:
        label = CLEANUPS[cname][0]
        med = [median(cname, m) for m in ALL_MODEL_NAMES]
        ret = [f"{100 * v / base[m]:.0f}%" if base[m] > 0 else "n/a"
               for v, m in zip(med, ALL_MODEL_NAMES)]
        worst = [min(r["damage_db"][cname][m] for r in rows) for m in ALL_MODEL_NAMES]
        lines.append(f"| {cname}: {label} | " + "/".join(f"{v:.1f}" for v in med) + " | "
                     + "/".join(ret) + " | " + "/".join(f"{v:.1f}" for v in worst) + " |")
    Path(args.table).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
