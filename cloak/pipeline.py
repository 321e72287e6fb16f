"""Glue: a photo + a config + the models -> a protected photo and a Report."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import budget, metrics
from .attack import NoGradient, protect_pgd
from .config import ProtectConfig, config_or_default
from .device import autocast, pick_device, uses_bf16
from .errors import Cancelled, ModelError
from .models import load_autoencoders
from .models.weights import resolve_face_detector
from .report import Report, stored_db

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


@dataclass
class ProtectedArray:
    """Protected pixels (H, W, 3) float32 in [0, 1] plus the report."""

    rgb: np.ndarray
    report: Report
    budget: np.ndarray | None = None  # (h, w) in [0, 1] at the working resolution


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float in [0, 1] -> (1, 3, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]


def to_array(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) -> (H, W, 3) float32."""
    return x[0].permute(1, 2, 0).contiguous().cpu().numpy()


def working_image(x: torch.Tensor, working_size: int) -> torch.Tensor:
    """Downscale so the long side is `working_size`, sides multiple of 8. A photo already
    that small stays as it is: the attack optimises its own pixels and shows the models
    the photo resized to `working_size`, as an editor would (protect_pgd's view_size)."""
    if max(x.shape[-2:]) <= working_size:
        return x
    return metrics.resize_long(x, working_size)


def _measure(report: Report, x_full: torch.Tensor, x_adv: torch.Tensor,
             config: ProtectConfig, models: list, device: torch.device,
             should_stop: Callable[[], bool] | None = None) -> None:
    """Fill the report's change figures (PSNR, SSIM, largest change) from x_adv against
    x_full ((1, 3, H, W) in [0, 1], CPU), and damage_db for each of `models`. A stop asked
    for between models leaves damage_db empty, as with measuring off (a Ctrl-C need not
    wait for every model's round trips: seconds each on a CPU without native bf16)."""
    mse, max_change = metrics.change_stats(x_adv, x_full)
    report.psnr, report.ssim = metrics.psnr_from_mse(mse), metrics.ssim(x_adv, x_full)
    report.max_change255 = max_change * 255
    if models:
        damage = {}
        with autocast(device):  # each photo resized to 512 once, not once per model,
            # where it is (the CPU): only that goes to the device (48 MP at full size
            # would need over 1 GB of a GPU's memory)
            xs = metrics.resize_long(x_full, 512).to(device)
            xas = metrics.resize_long(x_adv, 512).to(device)
            for name, m in zip(config.models, models):
                if should_stop is not None and should_stop():
                    return
                damage[name] = stored_db(metrics.damage_and_shift(
                    m, xs, metrics.clean_reference(m, xs), xas)[0])
        report.damage_db = damage


def measure_saved(report: Report, original: np.ndarray, saved: np.ndarray,
                  config: ProtectConfig, should_stop: Callable[[], bool] | None = None) -> None:
    """Measure the report's figures again on the pixels as saved ((H, W, 3) float32 in
    [0, 1] each, upright): a lossy format (JPEG, HEIC) moves them after the attack."""
    device = pick_device(config.device)
    models = (load_autoencoders(config.models, config.model_dir, device,
                                config.allow_download) if config.measure else [])
    _measure(report, to_tensor(original), to_tensor(saved), config, models, device,
             should_stop)


def quantise_change(delta: torch.Tensor, eps255: float) -> torch.Tensor:
    """Round a change (any shape, on the [0, 1] scale) in place to whole 8-bit steps, to
    the nearest, within the whole steps of eps (a fractional eps 7.5/255 allows 7), so
    |saved - original| <= eps holds after saving. Returns `delta`."""
    whole_steps = math.floor(eps255 + 1e-6) / 255
    return delta.mul_(255).round_().div_(255).clamp_(-whole_steps, whole_steps)


def upsample(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic (a = -0.75, half-pixel centres) resize of (1, C, h, w) to `size` (H, W).
    On CPU through OpenCV (same kernel; ~4x faster than torch at 12 MP); the result is
    (1, C, H, W) laid out channels-last, like the photo tensors from to_tensor."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if t.device.type != "cpu" or t.shape[0] != 1 or t.shape[1] > 4:
        return F.interpolate(t, size=size, mode="bicubic", align_corners=False)
    import cv2

    hwc = np.ascontiguousarray(t[0].permute(1, 2, 0).float().numpy())
    out = cv2.resize(hwc, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(out.reshape(size[0], size[1], -1)).permute(2, 0, 1)[None]


def alternate_views(step: int, cycle_length: int, views: int) -> int:
    """protect_pgd's view plan where the steps make fewer rotation cycles than there are
    editing views (fast's 4 steps, one cycle, with `--editor-sizes 512,1024`): the views
    take turns step by step, so each is attacked (with one whole cycle each, the views
    after the first were never reached, and the size asked for was not protected)."""
    return step % views


def naive_downscale(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (1, C, H, W) to `size` (h, w) without antialiasing, as
    cv2.resize and torch's F.interpolate do by default: each output pixel blends the 2x2
    input pixels nearest its centre, whatever the scale."""
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False,
                         antialias=False).clamp(0, 1)


def fit_filter(op: Callable[[torch.Tensor], torch.Tensor], size: tuple[int, int],
               taps: int = 7) -> torch.Tensor:
    """The (1, 1, taps, taps) filter that best matches, in least squares, what `op`
    ((1, 1, h, w) in [0, 1] -> the same shape) does to a small perturbation of an image of
    `size` (h, w). Fitted on one seeded noise probe around mid-gray."""
    # Noise around mid-gray, small enough that a resize's clamp to [0, 1] never bites.
    probe = torch.rand((1, 1, *size), generator=torch.Generator().manual_seed(0))
    probe = (probe - 0.5) * 0.2
    back = op(probe + 0.5) - 0.5
    back = back.reshape(1, 1, *size)  # upsample's channels-last view of 1 channel
    pad = taps // 2
    # Normal equations in float64: float32 lstsq over ~200k rows came out different from
    # call to call (threaded BLAS), which broke `--seed`'s identical outputs for photos
    # larger than the attack size; float64 rounded to float32 came out the same in every run.
    rows = F.unfold(F.pad(probe.double(), [pad] * 4, mode="replicate"), taps)[0]  # (taps², h*w)
    b = back.reshape(-1, 1).double()
    kernel = torch.linalg.solve(rows @ rows.T, rows @ b).float()
    return kernel.reshape(1, 1, taps, taps)


def round_trip_kernel(full_size: tuple[int, int], working_size: tuple[int, int],
                      taps: int = 7, down: Callable | None = None) -> torch.Tensor:
    """The (1, 1, taps, taps) filter (fit_filter) that best matches what a perturbation
    made at `working_size` (h, w) becomes at that size again after `upsample` to the
    photo's `full_size` (H, W) and an editor's downscale back to `working_size`: for
    cloak's own resize a blur that takes away about 30% of its energy.
    `down` (tensor, (h, w)) -> tensor: the editor's downscale, metrics.resize_to (bicubic,
    antialiased) unless given. It depends on the sizes only, so a batch of photos from one
    camera fits it once (a full-size resize and a least-squares fit: about half a second
    at 12 MP)."""
    return _round_trip_kernel(tuple(full_size), tuple(working_size), taps,
                              down or metrics.resize_to).clone()


@functools.lru_cache(maxsize=8)
def _round_trip_kernel(full_size: tuple[int, int], working_size: tuple[int, int],
                       taps: int, down: Callable) -> torch.Tensor:
    return fit_filter(lambda t: down(upsample(t, full_size), working_size), working_size, taps)


def editing_views(full_size: tuple[int, int], editing_sizes: tuple[int, ...],
                  both_roundings: bool = False) -> list[tuple[int, int]]:
    """The (h, w) an editor resizes a photo of `full_size` (H, W) to for each editing
    size (long side): taken from the full photo, as editors and the measuring do, not from
    the working image, whose own rounding to 8 px can give a 3:2 photo one latent row
    more or less (6000x4000 at 512: 512x344, where 1024x680 halved gives 512x336).

    Sides are rounded to the nearest multiple of 8; with `both_roundings`, each size whose
    sides an editor that rounds down (diffusers) would make smaller follows as a view of
    its own: a 3:2 photo at 512 is attacked at 512x344 and 512x336 in turn. The stretch
    between the two moves the models' latent grid by up to a cell (see config.Preset)."""
    views = []
    for size in editing_sizes:
        nearest = metrics.long_side_dims(*full_size, size)
        views.append(nearest)
        down = metrics.long_side_dims_down(*full_size, size)
        if both_roundings and down != nearest:
            views.append(down)
    return views


# Share of attack steps per model, from measurement: taesdxl resists most, taef2 least.
STEP_SHARE = {"taesdxl": 3, "taesd": 2, "taef1": 2, "taef2": 1}


def rotation_for(names: tuple[str, ...]) -> list[int]:
    """Interleaved model indices, each model appearing STEP_SHARE times per cycle."""
    counts = [STEP_SHARE.get(n, 1) for n in names]
    order = []
    for round_ in range(max(counts)):
        order += [i for i, c in enumerate(counts) if c > round_]
    return order


def not_attacked(config: ProtectConfig) -> str | None:
    """What `config`'s steps never reach, said for the user, or None: each step attacks
    one model (rotation_for's order) and, with fewer steps than a cycle per editing size,
    one size in turn, so `--steps 3` over four models never attacks the fourth (the copy
    is the same as without it, its editors get only what transfers from the others)."""
    rotation = rotation_for(config.models)
    reached = {config.models[i] for i in rotation[:config.steps]}
    models = [name for name in config.models if name not in reached]
    sizes = config.editing_sizes
    cycles = -(-config.steps // len(rotation))
    missed_sizes = list(sizes[config.steps:]) if cycles < len(sizes) else []
    parts = []
    if models:
        one = len(models) == 1
        parts.append(f"{', '.join(models)} {'is' if one else 'are'} not attacked (only "
                     f"{config.steps} of the {len(config.models)} models "
                     f"{'gets' if config.steps == 1 else 'get'} a step; "
                     f"{'its' if one else 'their'} editors get only what carries over "
                     "from the others)")
    if missed_sizes:
        parts.append(f"the editing size{'s' if len(missed_sizes) > 1 else ''} "
                     f"{', '.join(map(str, missed_sizes))} "
                     f"{'is' if len(missed_sizes) == 1 else 'are'} not attacked")
    if not parts:
        return None
    needed = max(len(config.models) if models else 0, len(sizes) if missed_sizes else 0)
    return (f"with --steps {config.steps}, " + "; ".join(parts)
            + f": give --steps {needed} or more to attack each")


def working_budget(x: torch.Tensor, full_size: tuple[int, int], config: ProtectConfig
                   ) -> tuple[torch.Tensor, list | None]:
    """The share of eps each pixel of the working image x ((1, 3, h, w) in [0, 1]) may
    use, (1, 1, h, w) in [0, 1] (visibility map, faces and the user's mask, as `config`
    asks), and the face boxes found (None: faces asked for, but the face detector could
    not be found or run). `full_size` (H, W): the photo's, for the mask's shape check."""
    faces = []
    if config.faces:
        x_u8 = (to_array(x) * 255).round().astype(np.uint8)
        detector = resolve_face_detector(config.model_dir, config.allow_download)
        faces = budget.find_faces(x_u8, detector)
    user_mask = (budget.load_user_mask(config.mask_path, *x.shape[-2:], shape_of=full_size)
                 if config.mask_path else None)
    allowed = budget.budget_map(x, perceptual=config.perceptual, face_boxes=faces or [],
                                flat_floor=config.flat_floor, contrast_ref=config.contrast_ref,
                                user_mask=user_mask)
    return allowed, faces


def budget_of(rgb: np.ndarray, config: ProtectConfig) -> np.ndarray:
    """The budget map protect_array uses for upright pixels `rgb` ((H, W, 3) in [0, 1]):
    (h, w) in [0, 1] at the working size (white = most); for showing where the noise may
    go (the app's before/after)."""
    x = working_image(to_tensor(rgb), config.attack_size)
    allowed, _ = working_budget(x, rgb.shape[:2], config)
    return allowed[0, 0].cpu().numpy()


def protect_array(rgb: np.ndarray, config: ProtectConfig, *, grayscale: bool = False,
                  progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  round_trip: bool = True, figures: bool = True) -> ProtectedArray:
    """Protect upright RGB pixels (H, W, 3) float32 in [0, 1], at full resolution.

    With `round_trip` (always, but for benchmarks that compare), a photo larger than the
    attack size is attacked as the models will see it: the perturbation blurred by
    round_trip_kernel, as its upsampling to full size and an editor's downscale blur it.

    The perturbation is optimised at `config.attack_size` (the size editors encode at),
    upsampled to full size and bounded there, so every original pixel keeps its detail."""
    start = time.perf_counter()
    report_progress = progress or (lambda fraction, message: None)
    config = config_or_default(config)
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be a (H, W, 3) numpy array, got "
                         f"{getattr(rgb, 'shape', type(rgb).__name__)}")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"rgb must be floats in [0, 1], got {rgb.dtype} (divide 8-bit "
                         "pixels by 255)")
    if rgb.size == 0:
        raise ValueError(f"rgb is empty: {rgb.shape}")
    rgb = rgb.astype(np.float32, copy=False)
    if not rgb.flags.writeable:  # torch warns on a read-only array (nothing is written)
        rgb = rgb.copy()
    if not (rgb.min() >= 0 and rgb.max() <= 1):  # NaN fails these too
        raise ValueError("rgb must hold finite values in [0, 1]")
    device = pick_device(config.device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    report_progress(0.0, "loading models")
    models = load_autoencoders(config.models, config.model_dir, device,
                               config.allow_download)

    x_full = to_tensor(rgb)
    height, width = x_full.shape[-2:]
    x = working_image(x_full, config.attack_size).to(device)
    allowed, faces = working_budget(x, (height, width), config)
    eps_map = config.eps * allowed

    def on_step(done: int, total: int) -> None:
        report_progress(0.05 + 0.85 * done / max(1, total), f"step {done}/{total}")

    larger = x.shape[-2:] != x_full.shape[-2:]
    kernel = (round_trip_kernel((height, width), tuple(x.shape[-2:]))
              if round_trip and larger else None)
    rotation = rotation_for(config.models)
    views = editing_views((height, width), config.editing_sizes, config.both_roundings)
    also_from = []
    # The renderings take whole rotation cycles after the views: a run with no cycle left
    # for one (fast: 4 steps, a cycle of 8) never attacks it, so it is not made.
    cycles = -(-config.steps // len(rotation))
    if cycles < len(views):  # too few steps for a cycle per view: each editing size at
        # its nearest grid, the one cloak measures (fast alternating 512x344 and 512x336
        # step by step attacked taesdxl and taef2 only on the grid it does not measure)
        views = editing_views((height, width), config.editing_sizes)
    if config.naive_downscale and larger and cycles > len(views):
        size = tuple(x.shape[-2:])
        also_from.append((naive_downscale(x_full, size),
                          round_trip_kernel((height, width), size, down=naive_downscale)))
    on_step(0, config.steps)  # the attack starts: "loading models" is over
    # Weights that give no gradient (all zero, a damaged copy of another release): the
    # copy came out as the photo (or the latent objective's start noise), reported and
    # recorded as protected. It fails, saving nothing.
    no_change = (f"the attack made no change: the models ({', '.join(config.models)}) gave "
                 "it no gradient to follow (damaged weights?); nothing saved")
    try:
        delta = protect_pgd(x, models, eps_map, config.steps, generator, config.objective,
                            config.robust, config.eot_samples, rotation,
                            on_step, should_stop, config.eot_share,
                            config.perceptual_weight if config.perceptual else 0.0,
                            view_size=views, step_start=config.step_start,
                            delta_kernel=kernel, also_from=also_from,
                            view_plan=None if cycles >= len(views) else alternate_views)
    except NoGradient:
        raise ModelError(no_change) from None

    if should_stop is not None and should_stop():  # after the last step: nothing applied
        raise Cancelled("cancelled")
    if config.steps and eps_map.any() and not (delta.any() and torch.isfinite(delta).all()):
        raise ModelError(no_change)
    report_progress(0.9, "applying at full resolution")
    delta_full = upsample(delta.float().cpu(), (height, width))
    eps_full = upsample(eps_map.float().cpu(), (height, width)).clamp_(0, config.eps)
    torch.minimum(delta_full, eps_full, out=delta_full)
    torch.maximum(delta_full, eps_full.neg_(), out=delta_full)
    del eps_full
    if grayscale:
        # Attacked in colour, then averaged to gray. Attacking one gray value per pixel
        # (luma_only) instead was measured on d03 and gave less damage as posted on three
        # models (benchmarks/attack_levers.md, "Gray photos").
        delta_full.copy_(delta_full.mean(1, keepdim=True))  # in place: its own layout
    # Quantise to whole 8-bit steps within eps (a fractional --eps 7.5 allows 7), so
    # |saved - original| <= eps holds after saving. The protected photo is built in the
    # perturbation's memory (at 48 MP each float32 copy is 576 MB), and the change is
    # measured a band of rows at a time.
    quantise_change(delta_full, config.eps255)
    x_adv = delta_full.add_(x_full).clamp_(0, 1)
    del delta_full
    report = Report(width=int(width), height=int(height), eps255=config.eps255,
                    psnr=0.0, ssim=0.0, max_change255=0.0,
                    faces=len(faces or []), device=str(device),
                    precision="bf16" if uses_bf16(device) else "fp32",
                    # as made: face priority off where it could not run for this photo
                    settings=(config if faces is not None else config.replace(faces=False)
                              ).fingerprint())
    if figures:  # False: the caller measures the saved file instead (measure_saved)
        if config.measure:
            report_progress(0.95, "measuring protection")
        _measure(report, x_full, x_adv, config, models if config.measure else [], device,
                 should_stop)
    report.seconds = time.perf_counter() - start
    report_progress(1.0, "done")
    return ProtectedArray(to_array(x_adv), report, allowed[0, 0].cpu().numpy())
