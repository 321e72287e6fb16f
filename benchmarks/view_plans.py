"""How medium's rotation cycles are shared between the renderings it attacks.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/view_plans.py \
        [--photos d04,d06,d09,d12,d14,d22] [--plans A,B,C,D] \
        [--json bench_out/view_plans.json] [--table benchmarks/view_plans.md] [--from-json]

A photo larger than 512 px whose two roundings to a multiple of 8 differ is attacked in
three renderings: cloak's antialiased resize at the nearest rounding (N), the same at the
rounding down (D, diffusers' grid) and a downscale without antialiasing at the nearest
rounding (V). Medium has 32 steps, four rotation cycles of 8, for three renderings. Plans:

- A (the product): whole cycles N, D, V, N;
- B: whole cycles N, D, V, D;
- C: the rendering changes every step (step mod 3);
- D: two renderings, whole cycles N, V-seen-at-D, N, V-seen-at-D (the naive downscale
  resized to diffusers' grid: the two other editors' changes in one).

Each photo is protected at medium with each plan and measured (damage dB, cloak.metrics) on
N ("as-is"), D ("grid") and V ("naive"), and on the worst of the three per photo.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import load_rgb

from cloak import ProtectConfig, attack, metrics, pipeline
from cloak.device import autocast, describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import naive_downscale, protect_array, to_tensor

DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "dev"
MEASURES = ("as-is", "grid", "naive", "worst")


def whole_cycles(order: list[int]):
    return lambda step, cycle, renderings: order[(step // cycle) % len(order)]


PLANS = {
    "A": ("whole cycles N, D, V, N (the product)", whole_cycles([0, 1, 2, 0]), False),
    "B": ("whole cycles N, D, V, D", whole_cycles([0, 1, 2, 1]), False),
    "C": ("every step in turn (step mod 3)", lambda step, cycle, renderings: step % renderings,
          False),
    "D": ("whole cycles N, V seen at D, N, V seen at D", whole_cycles([0, 1, 0, 1]), True),
}


def protect_with_plan(rgb: np.ndarray, plan: str, down_size: tuple[int, int]) -> np.ndarray:
    """Medium's output (H, W, 3) uint8 with the rendering of each step given by `plan`."""
    _, view_plan, naive_at_down = PLANS[plan]
    original = pipeline.protect_pgd
    also_view = down_size if naive_at_down else None

    def with_plan(*args, **kwargs):  # the plan over the pipeline's own (which passes
        # view_plan=None, as a partial's keyword would be overridden)
        return attack.protect_pgd(*args, **{**kwargs, "view_plan": view_plan,
                                            "also_view": also_view})

    pipeline.protect_pgd = with_plan
    try:
        # plan D drops the separate D view: its naive rendering is seen at D instead
        config = ProtectConfig(measure=False, both_roundings=not naive_at_down)
        return np.round(protect_array(rgb, config).rgb * 255).astype(np.uint8)
    finally:
        pipeline.protect_pgd = original


def measure(models: dict, device, rgb: np.ndarray, protected: np.ndarray) -> dict:
    h, w = rgb.shape[:2]
    near, down = metrics.long_side_dims(h, w, 512), metrics.long_side_dims_down(h, w, 512)
    x = to_tensor(rgb).to(device)  # the models' device (a GPU's, where there is one)
    x_adv = to_tensor(protected.astype(np.float32) / 255).to(device)

    def damage(clean: torch.Tensor, adv: torch.Tensor) -> list[float]:
        with torch.no_grad(), autocast(device):
            return [round(metrics.damage_and_shift(m, clean, metrics.clean_reference(m, clean),
                                                   adv)[0], 3) for m in models.values()]

    row = {"as-is": damage(metrics.resize_to(x, near), metrics.resize_to(x_adv, near)),
           "grid": damage(metrics.resize_to(x, down), metrics.resize_to(x_adv, down)),
           "naive": damage(naive_downscale(x, near), naive_downscale(x_adv, near))}
    row["worst"] = [min(row[k][i] for k in ("as-is", "grid", "naive")) for i in range(4)]
    row["psnr"] = round(metrics.psnr(x_adv, x), 3)
    return row


def table(results: dict, header: str) -> str:
    lines = [header, "", "| plan | " + " | ".join(MEASURES) + " | PSNR |",
             "|---|" + "---|" * (len(MEASURES) + 1)]
    for plan, rows in results.items():
        cells = ["/".join(f"{statistics.median(r[m][i] for r in rows.values()):.2f}"
                          for i in range(4)) for m in MEASURES]
        psnr = statistics.median(r["psnr"] for r in rows.values())
        lines.append(f"| {plan}: {PLANS[plan][0]} | " + " | ".join(cells) + f" | {psnr:.2f} |")
    lines += ["", "Per photo (worst of as-is, grid and naive):", "",
              "| photo | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for photo in next(iter(results.values())):
        lines.append(f"| {photo} | " + " | ".join(
            "/".join(f"{v:.2f}" for v in results[p][photo]["worst"]) for p in results) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="d04,d06,d09,d12,d14,d22",
                        help="Name prefixes in the dev folder, comma-separated.")
    parser.add_argument("--folder", type=Path, default=DEV_PHOTOS)
    parser.add_argument("--plans", default=",".join(PLANS))
    parser.add_argument("--json", type=Path, default=Path("bench_out/view_plans.json"))
    parser.add_argument("--table", type=Path, default=Path("benchmarks/view_plans.md"))
    parser.add_argument("--from-json", action="store_true",
                        help="Only rewrite the table from --json.")
    args = parser.parse_args()
    device = pick_device()
    header = (f"# Sharing medium's rotation cycles between renderings\n\nCommand: "
              f"`CLOAK_MODEL_DIR=../shared/models python benchmarks/view_plans.py --photos "
              f"{args.photos} --plans {args.plans}`. Device: {describe(device)}.\n"
              "Medians of damage dB, taesd / taesdxl / taef1 / taef2, on N (as-is), D "
              "(grid), V (naive) and the worst of the three per photo.")
    if args.from_json:
        args.table.write_text(table(json.loads(args.json.read_text()), header))
        return
    models = {n: load_autoencoder(n, None, device) for n in ALL_MODEL_NAMES}
    results: dict[str, dict] = {}
    for prefix in args.photos.split(","):
        path = next(p for p in sorted(args.folder.iterdir()) if p.name.startswith(prefix))
        img = load_rgb(path)
        rgb = np.asarray(img, dtype=np.float32) / 255
        down = metrics.long_side_dims_down(img.height, img.width, 512)
        for plan in args.plans.split(","):
            start = time.perf_counter()
            row = measure(models, device, rgb, protect_with_plan(rgb, plan, down))
            row["seconds"] = round(time.perf_counter() - start, 1)
            results.setdefault(plan, {})[path.name] = row
            print(path.name, plan, {m: row[m] for m in MEASURES}, flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
    args.table.write_text(table(results, header))
    print(args.table.read_text())


if __name__ == "__main__":
    main()
