"""Small photos: one more rendering, delta seen through a clean-up-like linear filter.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/filter_view.py \
        [--photos d01,d03,d13,d16,d20,d07,d22,d23] [--variants medium,downup,gauss0.8] \
        [--json bench_out/filter_view.json] [--table benchmarks/filter_view.md] [--from-json]

Small photos keep least after posting: a platform re-compresses them at their own pixels.
For photos larger than the attack size, showing the models the perturbation through the
filter it really meets (the round trip) raised damage both as-is and after clean-ups
(round_trip.md). This asks whether the same trick helps against clean-ups: medium plus one
more rendering, the photo with delta seen through a linear filter, which takes whole
rotation cycles in turn with the others (protect_pgd's also_from):

- downup: a 7x7 filter fitted (pipeline.fit_filter, least squares) to verify's
  down-up clean-up (half size and back, antialiased bicubic);
- gaussS: a Gaussian of sigma S px (verify's blur is radius 0.8).

On a photo larger than the attack size the filter is composed with the round-trip filter.
Each output is measured with cloak.verify (as-is, instagram, jpeg50, blur, down-up), and
"worst clean-up" is the lowest of jpeg50, blur and down-up per photo, as in issue 4.
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
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import load_rgb

from cloak import ProtectConfig, attack, metrics, pipeline
from cloak.verify import verify_images

CH = ("as-is", "instagram", "jpeg50", "blur", "down-up")


def down_up(t: torch.Tensor) -> torch.Tensor:
    """verify's down-up clean-up on a tensor: half size and back, antialiased bicubic."""
    h, w = t.shape[-2:]
    return metrics.resize_to(metrics.resize_to(t, (max(1, h // 2), max(1, w // 2))), (h, w))


def gauss(sigma: float, taps: int = 7) -> torch.Tensor:
    r = torch.arange(taps) - taps // 2
    g = torch.exp(-r.float() ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).reshape(1, 1, taps, taps)


def kernel_for(name: str, size: tuple[int, int]) -> torch.Tensor:
    if name == "downup":
        return pipeline.fit_filter(down_up, size)
    if name.startswith("gauss"):
        return gauss(float(name[5:]))
    raise ValueError(f"unknown variant {name!r}")


def run(rgb: np.ndarray, variant: str) -> np.ndarray:
    """Medium's output (H, W, 3) in [0, 1]; any variant but `medium` adds its rendering."""
    if variant == "medium":
        return pipeline.protect_array(rgb, ProtectConfig(measure=False)).rgb
    original = pipeline.protect_pgd

    def with_filter_view(x, *args, also_from=(), **kwargs):
        kernel = kernel_for(variant, tuple(x.shape[-2:])).to(x.device)
        if kwargs.get("delta_kernel") is not None:  # compose with the round-trip filter
            # the two filters in a row: one filter, their convolution (conv2d correlates,
            # so the second is flipped)
            kernel = F.conv2d(F.pad(kwargs["delta_kernel"].to(x.device),
                                    [kernel.shape[-1] - 1] * 4), kernel.flip(-2, -1))
        return attack.protect_pgd(x, *args, also_from=[*also_from, (x, kernel)], **kwargs)

    pipeline.protect_pgd = with_filter_view
    try:
        return pipeline.protect_array(rgb, ProtectConfig(measure=False)).rgb
    finally:
        pipeline.protect_pgd = original


MODELS = ("taesd", "taesdxl", "taef1", "taef2")
ROWS = (*CH, "worst-cleanup")
DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"


def table(res, header):
    lines = [header, "", "| variant | PSNR | " + " | ".join(ROWS) + " |",
             "|---|---|" + "---|" * len(ROWS)]
    for v, rows in res.items():
        psnr = statistics.median(r["psnr"] for r in rows.values())
        cells = ["/".join(f"{statistics.median(r[k][i] for r in rows.values()):.2f}"
                          for i in range(4)) for k in ROWS]
        lines.append(f"| {v} | {psnr:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Per photo, as-is and worst clean-up:", "",
              "| photo | " + " | ".join(res) + " |", "|---|" + "---|" * len(res)]
    for photo in next(iter(res.values())):
        lines.append(f"| {photo} | " + " | ".join(
            "/".join(f"{x:.2f}" for x in res[v][photo]["as-is"]) + " ; "
            + "/".join(f"{x:.2f}" for x in res[v][photo]["worst-cleanup"]) for v in res) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="d01,d03,d13,d16,d20,d07,d22,d23")
    parser.add_argument("--folder", type=Path, default=DEV_PHOTOS)
    parser.add_argument("--variants", default="medium,downup,gauss0.8")
    parser.add_argument("--json", type=Path, default=Path("bench_out/filter_view.json"))
    parser.add_argument("--table", type=Path, default=Path("benchmarks/filter_view.md"))
    parser.add_argument("--from-json", action="store_true")
    args = parser.parse_args()
    header = ("# Small photos: a rendering through a clean-up-like filter\n\nCommand: "
              "`CLOAK_MODEL_DIR=../shared/models python benchmarks/filter_view.py --photos "
              f"{args.photos} --variants {args.variants}`. Medians of damage dB "
              "(cloak.verify), taesd / taesdxl / taef1 / taef2.")
    if args.from_json:
        args.table.write_text(table(json.loads(args.json.read_text()), header))
        return
    res = {}
    for pre in args.photos.split(","):
        src = next(p for p in sorted(args.folder.iterdir()) if p.name.startswith(pre))
        img = load_rgb(src)
        rgb = np.asarray(img, dtype=np.float32) / 255
        for v in args.variants.split(","):
            t = time.time()
            out = run(rgb, v)
            secs = time.time() - t
            prot = Image.fromarray(np.round(out * 255).astype(np.uint8))
            ver = verify_images(img, prot, channels=CH)
            row = {c.channel: [c.damage_db[m] for m in MODELS] for c in ver.channels}
            row["worst-cleanup"] = [min(row[c][i] for c in ("jpeg50", "blur", "down-up"))
                                    for i in range(4)]
            row["psnr"], row["s"] = ver.psnr, secs
            res.setdefault(v, {})[src.name] = row
            print(src.name, v, {k: row[k] for k in ROWS}, flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1))
    args.table.write_text(table(res, header))
    print(args.table.read_text())


if __name__ == "__main__":
    main()
