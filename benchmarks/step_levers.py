"""More attack levers at --strength medium, each measured against cloak's own attack
on the same photo, seed and visibility map (none kept; see attack_levers.md). Medium here
is medium as those tables were measured: one editing grid and no naive-downscale rendering
(MEDIUM_THEN; the product's medium took both since):

- `l2-capK`: steps along the gradient normalised to unit RMS (steepest ascent per unit of
  MSE, so per dB of PSNR) instead of its sign, bounded by K times medium's per-pixel map and
  projected onto the RMS that medium's own perturbation reached on the photo.
- `tileN`: start from a universal tiled perturbation (trained here on other dev photos with
  `--train-tile`), then N sign steps; `-rotR` replaces medium's rotation (digits are model
  indices taesd=0, taesdxl=1, taef1=2, taef2=3).
- `truncS`: the loss is the squared change of the decoder's features at S px (128 or 256)
  instead of the reconstruction error, skipping the decoder's costly full-size stages. Its
  gradient is zero at delta = 0, so it starts from seeded noise in a quarter of the bound.
- `clamp`: the reconstruction is clamped to [0, 1] inside the loss, as the damage metric
  clamps it, so no effort goes into pushing pixels past black or white.
- `shiftS`: a share S of the rotation cycles (1 = every step) crops photo and attacked copy
  alike by a seeded 1-7 px from the top and left (8 px less in all) before the models see
  them, so the perturbation is not tuned to one position of the models' 8 px latent grid,
  which any crop by an editor or platform moves.
- `phaseP-S`: the same with one fixed shift of P px (both axes) instead of a seeded one, so
  the perturbation is made for two grid positions: as posted and P px off.
- `stretchS`: like `shiftS`, but the seeded 1-7 px crop off the top and left is resized
  back to the working size, as an editor resizes a cropped photo (a shift plus a stretch
  of under 2%). `stretchfirstS` / `stretchlastS` stretch the first / last share S of
  the steps instead of alternate cycles; `stretchmodelsIJ` stretches every step of the
  models with indices I, J (taesd=0, taesdxl=1, taef1=2, taef2=3) and no other.
- `zoomS`: like `stretchS`, but the window is a seeded 75-95% of each side at a seeded
  place, resized back to the working size: what the models see after a crop (a platform's
  aspect-ratio crop, a user's framing) and the editor's resize, so a shift of the latent
  grid and a zoom of 1.05-1.33x.
- `jpegS`: a share S of the rotation cycles sees photo and attacked copy through cloak's
  differentiable JPEG at a seeded quality 70-90, at the photo's own pixels (before the
  models' view), as a platform re-compresses a photo it does not need to resize.
- `salG`: after the first rotation cycle (one step per model, the map as it is), the map
  is reshaped by where the models answer: each model's |gradient| (summed over colour,
  divided by its mean, so no model outweighs the others) is averaged over the cycle,
  blurred (sigma 4 px), raised to the power G and multiplied into the map, which is then
  scaled to the energy (sum of squares) the map had and capped at eps. Under the same
  energy, a bound that follows |gradient| gains more per dB of PSNR than one that does
  not (for a linear model the gain is sum |g| * bound). The reshaped bound is written
  into the pipeline's map, so the full-resolution step is bounded by it too.
- `chromaF`: besides medium's perturbation, a colour-only one (no change of luma: steps
  along YCbCr's Cb and Cr directions) that may take F x eps x (1 - map) where the map
  leaves the budget unspent, that is in flat areas, where the eye sees changes of luma
  far more than changes of colour at fine scale. The total stays within eps; the
  pipeline's map is raised to the total bound so the full-resolution step keeps it.

    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_levers.py --photos d08 \\
        --variants medium,l2-cap1,l2-cap1.5,l2-cap2,trunc256,trunc128
    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_levers.py --train-tile tile.pt
    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_levers.py --photos d08,d14 \\
        --tile tile.pt --variants tile0,tile32,tile16,tile32-rot1021013
    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_levers.py --photos d08,d14 \\
        --variants medium,clamp
    CLOAK_MODEL_DIR=../shared/models python benchmarks/step_levers.py --photos d08,d14 \\
        --variants medium,shift1,shift0.5 --save bench_out/levers

`--save DIR` keeps each output as DIR/<variant>/<photo>.png, for benchmarks/unseen_cleanups.py.

Damage is dB as the photo is (512 px long side) on taesd / taesdxl / taef1 / taef2.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficacy import SUFFIXES, load_rgb, to_image

from cloak import ProtectConfig, budget, metrics, objectives, pipeline
from cloak.attack import _filter_fn, _loss_fn, _view_fn, step_size, uses_eot
from cloak.device import autocast
from cloak.jpeg import jpeg_round_trip
from cloak.models import ALL_MODEL_NAMES, load_autoencoder

DECODER_CUT = {256: 16, 128: 11}  # decoder[:cut] ends at that many px (of 512)
TILE_HOLDOUT = {"d01", "d04", "d08", "d09", "d12", "d14", "d17", "d22", "d24"}
PHOTOS = Path("../shared/photos/dev")


def tiled(tile: torch.Tensor, height: int, width: int, top: int = 0, left: int = 0):
    """(1, 3, P, P) -> (1, 3, height, width), repeated from image position (top, left)."""
    p = tile.shape[-1]
    reps = (math.ceil((height + top) / p), math.ceil((width + left) / p))
    return tile.repeat(1, 1, *reps)[..., top:top + height, left:left + width]


def default_when(step: int, steps: int, cycle: int, index: int, share: float) -> bool:
    """A share of the rotation cycles, alternating (as attack.uses_eot)."""
    return uses_eot(step, cycle, share, steps)


def first_when(step: int, steps: int, cycle: int, index: int, share: float) -> bool:
    """The first `share` of the steps."""
    return step < share * steps


def last_when(step: int, steps: int, cycle: int, index: int, share: float) -> bool:
    """The last `share` of the steps."""
    return step >= (1 - share) * steps


def models_when(indices: str):
    """Every step of the models whose indices are listed (taesd=0 ... taef2=3)."""
    return lambda step, steps, cycle, index, share: str(index) in indices


# Medium as the tables in attack_levers.md were measured (2026-11-29 and 30): one editing
# grid (the nearest rounding) and no naive-downscale rendering. Medium took both since
# (config.Preset.both_roundings, naive_downscale); the stand-in below covers the loop of
# that time only, so its "medium" row is medium without them, as the tables' was.
MEDIUM_THEN = {"both_roundings": False, "naive_downscale": False}


def lever_pgd(lever: dict):
    """A stand-in for attack.protect_pgd (medium's settings: no EOT, no penalty)."""

    def pgd(x, models, eps_map, steps, generator, objective="e2e", robust=False,
            eot_samples=1, rotation=None, on_step=None, should_stop=None, eot_share=1.0,
            perceptual_weight=0.0, view_size=None, step_start=0.25, delta_kernel=None,
            also_from=(), view_plan=None, also_view=None, init=None, momentum=0.0,
            luma_only=False, decoder_reuse=0):
        if also_from or view_plan is not None or also_view is not None or init is not None:
            raise SystemExit("step_levers covers medium as its tables were measured: one "
                             "rendering, whole cycles, a zero start (see MEDIUM_THEN)")
        if momentum or luma_only or decoder_reuse:
            raise SystemExit("step_levers' stand-in makes plain sign steps in colour, each "
                             "with the decoder (no momentum, luma_only or decoder_reuse)")
        x = x.contiguous(memory_format=torch.channels_last)
        cap = eps_map * lever.get("cap", 1.0)
        sizes = [view_size] if view_size is None or isinstance(view_size, int) else view_size
        if len(sizes) != 1:
            raise SystemExit("step_levers covers one editing size (medium's)")
        loss_fn = _loss_fn(objective, models, x, sizes[0])
        seen = _filter_fn(delta_kernel, x)
        model_view = _view_fn(x, sizes[0])  # what the models see (jpegS variants)
        schedule = lever.get("rotation") or list(rotation)
        delta = torch.zeros_like(x)
        if lever.get("tile") is not None:
            delta = eps_map * tiled(lever["tile"], *x.shape[-2:])
        if lever.get("random_start"):
            noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
            delta = noise * eps_map * lever["random_start"]
        delta = ((x + delta).clamp(0, 1) - x).contiguous(memory_format=torch.channels_last)
        chroma = lever.get("chroma")
        if chroma:  # colour-only directions (unit max change per channel), shape (1, 3, 1, 1)
            eps = float(eps_map.max())
            basis = [torch.tensor([0.0, -0.344136 / 1.772, 1.0]).view(1, 3, 1, 1),
                     torch.tensor([1.0, -0.714136 / 1.402, 0.0]).view(1, 3, 1, 1)]
            chroma_cap = chroma * (eps - eps_map)  # (1, 1, H, W)
            ab = torch.zeros(1, 2, *x.shape[-2:])
            eps_map.copy_((eps_map + chroma_cap).clamp(max=eps))  # the full-size bound

            def colour(t):
                return t[:, :1] * basis[0] + t[:, 1:] * basis[1]
        saliency = None  # salG: summed normalised |gradient| over the first cycle
        shift_share = lever.get("shift_share", 0.0)
        if shift_share and metrics.resize_long(x, sizes[0]) is not x:
            raise SystemExit("shift variants take photos larger than the working size")
        for step in range(steps):
            delta.requires_grad_(True)
            index = schedule[step % len(schedule)]
            if chroma:
                ab.requires_grad_(True)
                x_adv = (x + seen(delta + colour(ab))).clamp(0, 1)
            else:
                x_adv = (x + seen(delta)).clamp(0, 1)
            with autocast(x.device):
                if shift_share and lever.get("when", default_when)(
                        step, steps, len(schedule), index, shift_share):
                    draw = random.Random(step)
                    dy, dx = draw.randrange(1, 8), draw.randrange(1, 8)
                    if lever.get("phase"):
                        dy = dx = lever["phase"]
                    if lever.get("zoom"):  # a seeded window of 75-95%, resized back
                        scale = draw.uniform(0.75, 0.95)
                        h, w = x.shape[-2:]
                        ch, cw = round(h * scale), round(w * scale)
                        top, left = draw.randrange(h - ch + 1), draw.randrange(w - cw + 1)

                        def view(t, top=top, left=left, ch=ch, cw=cw):
                            return F.interpolate(t[..., top:top + ch, left:left + cw],
                                                 size=tuple(t.shape[-2:]), mode="bicubic",
                                                 align_corners=False)
                    elif lever.get("stretch"):  # crop dy px off the top and left, resize back
                        def view(t, k=dy):
                            return F.interpolate(t[..., k:, k:], size=tuple(t.shape[-2:]),
                                                 mode="bicubic", align_corners=False)
                    else:  # crop to 8 px less, dy and dx off the top and left
                        def view(t, dy=dy, dx=dx):
                            return t[..., dy:dy + t.shape[-2] - 8, dx:dx + t.shape[-1] - 8]
                    loss = objectives.reconstruction_error(models[index], view(x_adv), view(x))
                elif lever.get("jpeg_share") and uses_eot(step, len(schedule),
                                                         lever["jpeg_share"], steps):
                    quality = random.Random(step).uniform(70, 90)
                    loss = objectives.reconstruction_error(
                        models[index], model_view(jpeg_round_trip(x_adv, quality)),
                        model_view(jpeg_round_trip(x, quality)))
                else:
                    loss = loss_fn(index, x_adv)
            if chroma:
                grad, grad_ab = torch.autograd.grad(loss, [delta, ab])
            else:
                grad = torch.autograd.grad(loss, delta)[0]
            if lever.get("saliency_power") and step < len(schedule):
                g = grad.detach().abs().sum(1, keepdim=True)
                g = g / g.mean().clamp_min(1e-12)
                saliency = g if saliency is None else saliency + g
                if step == len(schedule) - 1:
                    cap = reshaped_cap(eps_map, saliency, lever["saliency_power"])
                    eps_map.copy_(cap)  # the pipeline bounds the full-size delta by it
            with torch.no_grad():
                size = step_size(step, steps, step_start)
                if lever.get("l2"):
                    v = cap * grad
                    delta = delta + size * cap.mean() * v / v.pow(2).mean().sqrt().clamp_min(1e-12)
                else:
                    delta = delta + size * cap * grad.sign()
                delta = torch.maximum(torch.minimum(delta, cap), -cap)
                if chroma:
                    ab = ab + size * chroma_cap * grad_ab.sign()
                    ab = torch.maximum(torch.minimum(ab, chroma_cap), -chroma_cap)
                if lever.get("rms") is not None:
                    rms = delta.pow(2).mean().sqrt()
                    delta = delta * min(1.0, lever["rms"] / float(rms))
                delta = (x + delta).clamp(0, 1) - x
        if chroma:
            lever["chroma_rms"] = float(colour(ab).pow(2).mean().sqrt())
            delta = (delta + colour(ab)).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
        lever["last_rms"] = float(delta.pow(2).mean().sqrt())
        return delta.detach()

    return pgd


def reshaped_cap(eps_map: torch.Tensor, saliency: torch.Tensor, power: float
                 ) -> torch.Tensor:
    """eps_map (1, 1, H, W) times the blurred saliency (1, 1, H, W) to `power`, scaled to
    eps_map's sum of squares and capped at eps_map's maximum (the preset's eps wherever
    texture earns the full budget, as on the photos measured)."""
    import kornia

    eps = float(eps_map.max())
    shape = kornia.filters.gaussian_blur2d(saliency, (25, 25), (4.0, 4.0),
                                           border_type="replicate") ** power
    raw = eps_map * shape
    energy = float(eps_map.pow(2).sum())
    low, high = 0.0, 100.0 / float(raw.max().clamp_min(1e-12)) * eps
    for _ in range(40):  # bisect the scale k: sum(min(eps, k * raw)^2) = energy
        k = (low + high) / 2
        if float((k * raw).clamp(max=eps).pow(2).sum()) < energy:
            low = k
        else:
            high = k
    return (low * raw).clamp(max=eps)


def feature_loss(cut: int):
    """objectives.reconstruction_error's stand-in: squared change of decoder[:cut]'s output."""
    clean = {}

    def loss(model, x_adv, x):
        key = (id(model), tuple(x.shape))
        if key not in clean:
            with torch.no_grad():
                clean[key] = model.decoder[:cut](model.encode(x)).float()
        return F.mse_loss(model.decoder[:cut](model.encode(x_adv)).float(), clean[key])

    return loss


def clamped_reconstruction_error(model, x_adv, x):
    """objectives.reconstruction_error's stand-in: the error of D(E(x_adv)) clamped to
    [0, 1], as metrics.damage_db measures it (zero gradient where D overshoots)."""
    return F.mse_loss(model.decode(model.encode(x_adv)).float().clamp(0, 1), x.float())


def train_tile(out: Path, names: list[str], size: int, iterations: int) -> None:
    """Sign ascent on one (1, 3, size, size) tile in [-1, 1], scaled by eps and each photo's
    visibility map, on random 256 px crops of the dev photos outside TILE_HOLDOUT; the loss
    is the sum over models of log reconstruction error."""
    torch.manual_seed(0)
    random.seed(0)
    models = [load_autoencoder(n, None, "cpu", False) for n in names]
    photos = []
    for path in sorted(PHOTOS.iterdir()):
        if path.suffix.lower() in SUFFIXES and path.name[:3] not in TILE_HOLDOUT:
            x = torch.from_numpy(np.asarray(load_rgb(path), dtype=np.float32) / 255)
            x = metrics.resize_long(x.permute(2, 0, 1)[None], 512)
            photos.append((x, budget.budget_map(x)))
    tile = torch.zeros(1, 3, size, size)
    for it in range(iterations):
        x, allowed = random.choice(photos)
        height, width = (min(256, s) for s in x.shape[-2:])
        top = random.randrange(0, (x.shape[-2] - height) // 8 + 1) * 8
        left = random.randrange(0, (x.shape[-1] - width) // 8 + 1) * 8
        crop = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
        xc = x[crop].contiguous(memory_format=torch.channels_last)
        tile.requires_grad_(True)
        delta = 8 / 255 * allowed[crop] * tiled(tile, height, width, top % size, left % size)
        x_adv = (xc + delta).clamp(0, 1)
        loss = sum(torch.log(objectives.reconstruction_error(m, x_adv, xc)) for m in models)
        grad = torch.autograd.grad(loss, tile)[0]
        with torch.no_grad():
            tile = (tile + (0.2 * (1 - it / iterations) + 0.02) * grad.sign()).clamp(-1, 1)
        if it % 10 == 0:
            print(f"iteration {it}: loss {float(loss):.2f}", flush=True)
    torch.save(tile.detach(), out)


def parse(variant: str, tile: torch.Tensor | None) -> tuple[dict, int]:
    """Variant name -> (lever settings, steps)."""
    if variant == "medium":
        return {}, 32
    if variant == "clamp":
        return {"clamp": True}, 32
    if variant.startswith("shift"):
        return {"shift_share": float(variant[5:])}, 32
    if variant.startswith("chroma"):
        return {"chroma": float(variant[6:])}, 32
    if variant.startswith("sal"):
        return {"saliency_power": float(variant[3:])}, 32
    if variant.startswith("jpeg"):
        return {"jpeg_share": float(variant[4:])}, 32
    if variant.startswith("zoom"):
        return {"zoom": True, "shift_share": float(variant[4:])}, 32
    if variant.startswith("stretchfirst"):
        return {"stretch": True, "shift_share": float(variant[12:]), "when": first_when}, 32
    if variant.startswith("stretchlast"):
        return {"stretch": True, "shift_share": float(variant[11:]), "when": last_when}, 32
    if variant.startswith("stretchmodels"):
        return {"stretch": True, "shift_share": 1.0, "when": models_when(variant[13:])}, 32
    if variant.startswith("stretch"):
        return {"stretch": True, "shift_share": float(variant[7:])}, 32
    if variant.startswith("phase"):
        phase, _, share = variant[5:].partition("-")
        return {"phase": int(phase), "shift_share": float(share)}, 32
    if variant.startswith("l2-cap"):
        return {"l2": True, "cap": float(variant[6:]), "rms_from_medium": True}, 32
    if variant.startswith("trunc"):
        return {"cut": DECODER_CUT[int(variant[5:])], "random_start": 0.25}, 32
    if variant.startswith("tile"):
        if tile is None:
            raise SystemExit(f"{variant} needs --tile (make one with --train-tile)")
        steps, _, rotation = variant[4:].partition("-rot")
        return {"tile": tile, "rotation": [int(c) for c in rotation] or None}, int(steps)
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="d08")
    ap.add_argument("--variants", default="medium")
    ap.add_argument("--tile", type=Path)
    ap.add_argument("--train-tile", type=Path, help="train a tile, save it here and stop")
    ap.add_argument("--tile-models", default=",".join(ALL_MODEL_NAMES))
    ap.add_argument("--tile-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--save", type=Path, help="keep outputs as SAVE/<variant>/<photo>.png")
    args = ap.parse_args()
    if args.train_tile:
        train_tile(args.train_tile, args.tile_models.split(","), args.tile_size, args.iterations)
        return
    tile = torch.load(args.tile, weights_only=True) if args.tile else None
    reconstruction_error = objectives.reconstruction_error
    for prefix in args.photos.split(","):
        path = next(p for p in sorted(PHOTOS.glob(prefix + "_*")))
        rgb = np.asarray(load_rgb(path), dtype=np.float32) / 255
        medium_rms = None
        for variant in args.variants.split(","):
            lever, steps = parse(variant, tile)
            if lever.pop("rms_from_medium", False):
                if medium_rms is None:
                    raise SystemExit("l2 variants need 'medium' listed before them")
                lever["rms"] = medium_rms
            cut = lever.pop("cut", None)
            if cut:
                objectives.reconstruction_error = feature_loss(cut)
            elif lever.pop("clamp", False):
                objectives.reconstruction_error = clamped_reconstruction_error
            else:
                objectives.reconstruction_error = reconstruction_error
            pipeline.protect_pgd = lever_pgd(lever)
            start = time.perf_counter()
            result = pipeline.protect_array(rgb, ProtectConfig(strength="medium", steps=steps,
                                                               **MEDIUM_THEN))
            report = result.report
            if args.save:
                (args.save / variant).mkdir(parents=True, exist_ok=True)
                to_image(result.rgb).save(args.save / variant / (path.stem + ".png"))
            if variant == "medium":
                medium_rms = lever["last_rms"]
            print(f"{prefix} {variant}: PSNR {report.psnr:.2f} SSIM {report.ssim:.3f} "
                  f"rms {lever['last_rms'] * 255:.2f}/255 "
                  + (f"(colour {lever['chroma_rms'] * 255:.2f}) " if "chroma_rms" in lever else "")
                  + "damage "
                  + "/".join(f"{v:.2f}" for v in report.damage_db.values())
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
