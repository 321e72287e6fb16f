"""Do the four autoencoders want the same perturbation? Cosines between their gradients.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/gradient_overlap.py [--photos d08,d14,d24]

For each photo (resized to 512 px on the long side, as `verify` measures), the gradient of
cloak's end-to-end loss (reconstruction error of D(E(x + delta)) against x) with respect to
delta is taken for each autoencoder, at two points:

- `clean`: delta = uniform noise of 1/255 (the attack's start, near the photo);
- `medium`: delta = what `--strength medium` added to the photo (its end point).

Printed per pair of models: the cosine between the two gradients and the share of pixels
where their signs agree (0.5 = no more than chance). And, per model, the share of its own
best first-order gain that one L-inf sign step along the summed, normalised gradients of
all four keeps: <sign(sum_k g_k / |g_k|_2), g_m> / |g_m|_1 (1 = as good as attacking that
model alone). Also per model, where its gradient's energy lies: the share along the grey
axis (the same change on R, G and B, i.e. luma) and the share left in its 4x4-block means
(coarser than 4 px). Writes benchmarks/gradient_overlap.md.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_rgb

from cloak import ProtectConfig, metrics, objectives
from cloak.device import describe, pick_device
from cloak.models import ALL_MODEL_NAMES, load_autoencoder
from cloak.pipeline import protect_array


def gradients(models: dict, x: torch.Tensor, delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Flattened gradient of each model's end-to-end loss w.r.t. delta (all (1, 3, H, W))."""
    grads = {}
    for name, model in models.items():
        d = delta.clone().requires_grad_(True)
        x_adv = (x + d).clamp(0, 1).contiguous(memory_format=torch.channels_last)
        loss = objectives.reconstruction_error(model, x_adv, x)
        (grad,) = torch.autograd.grad(loss, d)
        grads[name] = grad.flatten().double()
    return grads


def overlap(grads: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(pair -> (cosine, sign agreement), model -> share kept by a summed sign step)."""
    pairs = {}
    for a, b in itertools.combinations(grads, 2):
        cos = F.cosine_similarity(grads[a], grads[b], dim=0).item()
        agree = (grads[a].sign() == grads[b].sign()).double().mean().item()
        pairs[(a, b)] = (cos, agree)
    step = sum(g / g.norm() for g in grads.values()).sign()
    shares = {m: ((step * g).sum() / g.abs().sum()).item() for m, g in grads.items()}
    return pairs, shares


def energy_split(grad: torch.Tensor, height: int, width: int) -> tuple[float, float]:
    """(share of the gradient's energy along the grey axis, share in its 4x4-block means)
    for a flattened (3 * H * W) gradient."""
    g = grad.reshape(1, 3, height, width)
    grey = g.mean(1, keepdim=True).expand_as(g)
    coarse = F.interpolate(F.avg_pool2d(g, 4), scale_factor=4, mode="nearest")
    total = g.pow(2).sum()
    return (grey.pow(2).sum() / total).item(), (coarse.pow(2).sum() / total).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="d08,d14,d24", help="dev photo prefixes")
    parser.add_argument("--dir", type=Path, default=Path("../shared/photos/dev"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("gradient_overlap.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    device = pick_device()
    models = {n: load_autoencoder(n, None, device, False) for n in ALL_MODEL_NAMES}
    paths = [next(p for p in sorted(args.dir.glob(prefix + "_*")) if p.suffix.lower() in SUFFIXES)
             for prefix in args.photos.split(",")]
    pair_rows: dict[str, dict] = {"clean": {}, "medium": {}}
    share_rows: dict[str, dict] = {"clean": {}, "medium": {}}
    split_rows: dict[str, list] = {}
    for path in paths:
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        protected = protect_array(rgb, ProtectConfig(strength="medium", measure=False)).rgb
        x_full = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)
        adv_full = torch.from_numpy(protected).permute(2, 0, 1)[None].to(device)
        x = metrics.resize_long(x_full, 512)
        deltas = {"clean": (torch.rand_like(x) * 2 - 1) / 255,
                  "medium": metrics.resize_long(adv_full, 512) - x}
        for point, delta in deltas.items():
            grads = gradients(models, x, delta)
            pairs, shares = overlap(grads)
            if point == "clean":
                for name, grad in grads.items():
                    split_rows.setdefault(name, []).append(energy_split(grad, *x.shape[-2:]))
            for key, value in pairs.items():
                pair_rows[point].setdefault(key, []).append(value)
            for key, value in shares.items():
                share_rows[point].setdefault(key, []).append(value)
            print(path.name, point, {f"{a}/{b}": f"{c:+.3f} {s:.3f}" for (a, b), (c, s)
                                     in pairs.items()},
                  {m: round(v, 3) for m, v in shares.items()}, flush=True)

    cmd = "CLOAK_MODEL_DIR=../shared/models python benchmarks/gradient_overlap.py"
    if args.photos != "d08,d14,d24":
        cmd += f" --photos {args.photos}"
    lines = ["## Gradient overlap between the four autoencoders", "",
             (f"Command: `{cmd}`. Photos: {', '.join(p.name for p in paths)}. "
             f"Machine: {describe(device)}. Medians over photos; at 512 px on the long side."),
             "", ("| pair | cosine at clean | sign agreement at clean | cosine at medium's "
             "end point | sign agreement at medium's end point |"), "|---|---|---|---|---|"]
    for key in pair_rows["clean"]:
        cells = []
        for point in ("clean", "medium"):
            values = pair_rows[point][key]
            cells += [f"{statistics.median(v[0] for v in values):+.3f}",
                      f"{statistics.median(v[1] for v in values):.3f}"]
        lines.append(f"| {key[0]} / {key[1]} | " + " | ".join(cells) + " |")
    lines += ["", ("Share of each model's own best first-order gain kept by one sign step "
              "along the sum of the four normalised gradients (1 = attacking it alone):"), "",
              "| point | " + " | ".join(ALL_MODEL_NAMES) + " |",
              "|---|" + "---|" * len(ALL_MODEL_NAMES)]
    for point in ("clean", "medium"):
        lines.append(f"| {point} | " + " | ".join(
            f"{statistics.median(share_rows[point][m]):.2f}" for m in ALL_MODEL_NAMES) + " |")
    lines += ["", "Where each model's gradient energy lies, at clean (1 = all of it):", "",
              "| model | along the grey axis (luma) | in 4x4-block means (coarser than 4 px) |",
              "|---|---|---|"]
    for name in ALL_MODEL_NAMES:
        grey = statistics.median(v[0] for v in split_rows[name])
        coarse = statistics.median(v[1] for v in split_rows[name])
        lines.append(f"| {name} | {grey:.2f} | {coarse:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
