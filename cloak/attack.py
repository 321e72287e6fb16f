"""Ensemble PGD with expectation over transformation (EOT).

Madry et al. 2018 (PGD), Athalye et al. 2018 (EOT), Salman et al. 2023 (PhotoGuard).
Norm: L-infinity, with a per-pixel bound `eps_map` (<= eps) from the visibility budget.

    x        (1, 3, H, W) clean image in [0, 1], at the working resolution
    eps_map  (1, 1 or 3, H, W) per-pixel bound in [0, eps]
    returns  delta, same shape as x, with |delta| <= eps_map and x + delta in [0, 1]

Each step uses one model of the ensemble in rotation (`rotation` lists model indices;
measured cheaper than running all of them each step). With `robust`, a share
`eot_share` of the rotation cycles sums the gradients over `eot_samples` random posting
transforms; the other cycles attack the photo as it is. Each step is a sign step whose
size decays linearly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from . import metrics, objectives
from .device import autocast
from .errors import Cancelled, ModelError
from .transforms import random_posting

StepCallback = Callable[[int, int], None]  # (steps done, steps total)


View = int | tuple[int, int] | None  # a long side, or the (h, w) the models see


def _view_fn(x: torch.Tensor, view_size: View) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the models see of an image shaped like x: itself, or x resized to `view_size`
    (h, w), or to that long side (sides multiples of 8), as an editor resizes a photo for
    them (channels_last: the models' fast layout). The pipeline passes (h, w) taken from
    the full-size photo, which x's own rounding can miss by a row of latents."""
    if not view_size:
        return lambda t: t
    size = (metrics.long_side_dims(*x.shape[-2:], view_size) if isinstance(view_size, int)
            else tuple(view_size))
    if size == tuple(x.shape[-2:]):
        return lambda t: t
    return lambda t: metrics.resize_to(t, size).contiguous(memory_format=torch.channels_last)


def _loss_fn(objective: str, models: Sequence, x: torch.Tensor, view_size: View = None):
    """Return loss(model_index, x_adv) -> scalar to maximise, on what the models see
    (see _view_fn)."""
    view = _view_fn(x, view_size)
    x_seen = view(x)
    if x_seen is not x:
        inner = _loss_fn(objective, models, x_seen)
        return lambda i, x_adv: inner(i, view(x_adv))
    if objective == "e2e":
        return lambda i, x_adv: objectives.reconstruction_error(models[i], x_adv, x)
    if objective == "encoder":
        with autocast(x.device):
            targets = [objectives.gray_target_latent(m, x) for m in models]
        return lambda i, x_adv: objectives.latent_to_target(models[i], x_adv, targets[i])
    if objective == "latent":
        with torch.no_grad(), autocast(x.device):
            clean = [m.encode(x).float() for m in models]
        return lambda i, x_adv: objectives.latent_shift(models[i], x_adv, clean[i])
    raise ValueError(f"unknown objective {objective!r}")


def _filter_fn(kernel: torch.Tensor | None, x: torch.Tensor
               ) -> Callable[[torch.Tensor], torch.Tensor]:
    """delta -> delta filtered by `kernel` (1, 1, k, k), the same on each channel with
    replicated borders; the identity when `kernel` is None."""
    if kernel is None:
        return lambda d: d
    pad = kernel.shape[-1] // 2
    weight = kernel.to(x.device, x.dtype).expand(x.shape[1], 1, *kernel.shape[-2:])
    return lambda d: F.conv2d(F.pad(d, [pad] * 4, mode="replicate"), weight,
                              groups=x.shape[1])


def _e2e_grad_reusing_decoder(model, view, x_seen: torch.Tensor, x_adv: torch.Tensor,
                              delta: torch.Tensor, latent_grads: dict, key, full: bool
                              ) -> torch.Tensor:
    """Gradient of the end-to-end loss w.r.t. delta. A `full` step (or the first for `key`)
    runs encoder and decoder and keeps the loss's gradient w.r.t. the latent in
    `latent_grads[key]`; any other step runs the encoder only and follows that kept latent
    gradient (objectives.latent_along), at under half the cost."""
    full = full or key not in latent_grads
    with autocast(x_adv.device):
        z = model.encode(view(x_adv))
        if full:
            loss = objectives.reconstruction_error_of_latent(model, z, x_seen)
    if not full:
        return torch.autograd.grad(objectives.latent_along(z, latent_grads[key]), delta)[0]
    grad, latent_grad = torch.autograd.grad(loss, [delta, z])
    latent_grads[key] = latent_grad.detach().float()
    return grad


def step_size(step: int, steps: int, start: float = 0.5, end: float = 0.05) -> float:
    """Linearly decaying step, as a fraction of the per-pixel bound."""
    if steps <= 1:
        return start
    return start + (end - start) * step / (steps - 1)


def uses_eot(step: int, cycle: int, share: float, steps: int, renderings: int = 1) -> bool:
    """Whether `step` of a `steps`-step run draws posting transforms: whole rotation
    cycles of length `cycle` alternate so that a `share` in [0, 1] of them do (0.5: every
    other cycle, so each model is attacked both as the photo is and as it will be
    posted); see eot_cycles, which the attack asks once a run."""
    return step // max(1, cycle) in eot_cycles(steps, cycle, share, renderings)


def eot_cycles(steps: int, cycle: int, share: float, renderings: int = 1) -> frozenset[int]:
    """The rotation cycles (of length `cycle`) of a `steps`-step run that draw posting
    transforms: a `share` of them. A run too short for any such cycle (fast's 4 steps,
    low's 3 cycles at a quarter share) draws them on its last cycle, so a share > 0 is
    never a no-op. `renderings` > 1 (the views the attack takes in turn, one whole cycle
    each): as many cycles draw, spread over the renderings, where taking them in the
    run's order would land every one on the same rendering (a quarter share with 2 or 4
    of them): each cycle's rank in the order by rendering, then round, decides."""
    cycles = (steps - 1) // max(1, cycle) + 1
    views = max(1, renderings)
    by_rendering = sorted(range(cycles), key=lambda j: (j % views, j // views))
    drawing = frozenset(j for rank, j in enumerate(by_rendering) if _eot_cycle(rank, share))
    if share > 0 and not drawing:
        return frozenset({cycles - 1})
    return drawing


def _eot_cycle(k: int, share: float) -> bool:
    return int((k + 1) * share + 1e-9) > int(k * share + 1e-9)


def protect_pgd(x: torch.Tensor, models: Sequence, eps_map: torch.Tensor, steps: int,
                generator: torch.Generator, objective: str = "e2e", robust: bool = True,
                eot_samples: int = 1, rotation: Sequence[int] | None = None,
                on_step: StepCallback | None = None,
                should_stop: Callable[[], bool] | None = None,
                eot_share: float = 1.0, perceptual_weight: float = 0.0,
                momentum: float = 0.0, view_size: View | Sequence[View] = None,
                luma_only: bool = False, step_start: float = 0.5,
                decoder_reuse: int = 0, delta_kernel: torch.Tensor | None = None,
                also_from: Sequence[tuple[torch.Tensor, torch.Tensor | None]] = (),
                view_plan: Callable[[int, int, int], int] | None = None,
                also_view: View = None, init: torch.Tensor | None = None) -> torch.Tensor:
    """Run the attack and return the perturbation delta (see module docstring).

    `perceptual_weight` > 0 adds the low-frequency colour-shift penalty
    (objectives.low_frequency_energy) to the objective: each step follows
    sign(g_attack / mean|g_attack| - perceptual_weight * g_penalty / mean|g_penalty|),
    so the weight is the penalty's share relative to the attack, whatever the scales.
    `momentum` > 0 steps along a running sum of normalised gradients (MI-FGSM); measured
    worse on taesdxl (benchmarks/optimizers.md), so the product leaves it at 0.
    `view_size`: what the models see (see _view_fn): a long side, or an (h, w); the
    pipeline passes the editing sizes as (h, w) of the full photo, so a photo smaller than
    the attack size is attacked as an editor upscales it. A list or tuple of them (an
    (h, w) view always inside one) takes them in turn, one whole rotation cycle each, so
    every model is attacked at every editing size (SD edits at 512, SDXL and FLUX at 1024).
    `luma_only` keeps delta equal on R, G and B (no colour), which JPEG's 4:2:0 chroma
    subsampling cannot halve; compared in benchmarks/optimizers.md.
    `step_start`: the first step as a share of the bound; steps decay linearly to 0.05.
    `decoder_reuse` = k > 0 (objective "e2e" only): of each model's turns, one in k + 1
    runs encoder and decoder, the k after it the encoder only, along the latent gradient
    the full turn kept (_e2e_grad_reusing_decoder). Measured in
    benchmarks/decoder_reuse.md; off in every preset.
    `delta_kernel` (1, 1, k, k): the models see x + delta filtered by it, as the
    perturbation will reach them (the pipeline passes pipeline.round_trip_kernel); the
    bound still holds on delta itself.
    `also_from`: (image, kernel) pairs, other renderings of the photo at x's size (the
    full photo downscaled by another filter) with the filter delta reaches them through
    (None: as it is). After the views, whole rotation cycles go to each in turn: the
    models see image + filtered delta at the view that is x's own size where there is one
    (medium's 512; high's 1024, whose rendering is then what an editor working at 1024 is
    fed), else at the first view; `also_view` overrides that view.
    `view_plan(step, cycle_length, renderings)` -> index into the views, then the also_from
    renderings: which one `step` attacks. None (the product): whole rotation cycles in
    turn. Other plans are compared in benchmarks/view_plans.md.
    `init`: a starting delta shaped like x (bounded by eps_map here); zeros when None."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (1, 3, H, W), got {tuple(x.shape)}")
    if float(eps_map.min()) < 0:
        raise ValueError("eps_map must be >= 0")
    if decoder_reuse and objective != "e2e":
        raise ValueError(f"decoder_reuse needs objective 'e2e', got {objective!r}")
    if decoder_reuse and also_from:
        raise ValueError("decoder_reuse does not take also_from")
    if any(image.shape != x.shape for image, _ in also_from):
        raise ValueError(f"also_from images must be shaped like x, {tuple(x.shape)}")
    x = x.contiguous(memory_format=torch.channels_last)  # matches the models' layout
    delta = torch.zeros_like(x)
    if steps == 0 or not models:
        return delta
    views = list(view_size) if isinstance(view_size, (list, tuple)) else [view_size]
    # What each view adds delta to (x, or an also_from image) and the filter on the way.
    cleans = [x] * len(views) + [image.to(x.device).contiguous(
        memory_format=torch.channels_last) for image, _ in also_from]
    seens = [_filter_fn(delta_kernel, x)] * len(views) + [_filter_fn(kernel, x)
                                                          for _, kernel in also_from]
    own_size = also_view or next((v for v in views if _view_fn(x, v)(x) is x), views[0])
    losses = ([_loss_fn(objective, models, x, v) for v in views]
              + [_loss_fn(objective, models, clean, own_size) for clean in cleans[len(views):]])
    view_fns = [_view_fn(x, v) for v in views] if decoder_reuse else []  # reuse path only
    x_seen = [view(x) for view in view_fns]
    latent_grads: dict[tuple[int, int], torch.Tensor] = {}  # (view, model) -> dL/dz
    turns = [0] * len(models)
    if objective == "latent":
        # Its loss is a squared distance from the clean latent: zero gradient at delta = 0,
        # so start from seeded noise inside a quarter of the budget (random-start PGD).
        noise = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device)
        delta = ((noise * 2 - 1) * eps_map * 0.25).contiguous(memory_format=torch.channels_last)
        delta = (x + delta).clamp(0, 1) - x
    if init is not None:
        if init.shape != x.shape:
            raise ValueError(f"init must be shaped like x, {tuple(x.shape)}")
        delta = torch.maximum(torch.minimum(init.to(x), eps_map), -eps_map)
        delta = ((x + delta).clamp(0, 1) - x).contiguous(memory_format=torch.channels_last)
    schedule = list(rotation) if rotation else list(range(len(models)))
    # the cycles that draw posting transforms, decided once for the run
    drawing = eot_cycles(steps, len(schedule), eot_share, len(losses)) if robust else frozenset()
    velocity = torch.zeros_like(x) if momentum > 0 else None
    followed = False  # a step had a gradient to follow (one of zeros or NaN: none)
    for step in range(steps):
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")
        index = schedule[step % len(schedule)]
        eot = step // len(schedule) in drawing
        view_index = (view_plan(step, len(schedule), len(losses)) if view_plan
                      else (step // len(schedule)) % len(losses))
        if not 0 <= view_index < len(losses):
            raise ValueError(f"view_plan gave {view_index} for {len(losses)} renderings")
        full_turn = turns[index] % (decoder_reuse + 1) == 0
        turns[index] += 1
        delta.requires_grad_(True)
        grad = torch.zeros_like(x)
        for _ in range(eot_samples if eot else 1):
            x_adv = (cleans[view_index] + seens[view_index](delta)).clamp(0, 1)
            if eot:
                x_adv = random_posting(x_adv, generator)
            if decoder_reuse:
                grad += _e2e_grad_reusing_decoder(
                    models[index], view_fns[view_index], x_seen[view_index], x_adv, delta,
                    latent_grads, (view_index, index), full_turn)
                continue
            with autocast(x.device):
                loss = losses[view_index](index, x_adv)
            grad += torch.autograd.grad(loss, delta)[0]
        followed = followed or bool(grad.any() and torch.isfinite(grad).all())
        if perceptual_weight > 0 and step > 0:
            penalty = torch.autograd.grad(objectives.low_frequency_energy(delta), delta)[0]
            grad = (grad / grad.abs().mean().clamp_min(1e-12)
                    - perceptual_weight * penalty / penalty.abs().mean().clamp_min(1e-12))
        with torch.no_grad():
            if momentum > 0:
                velocity = momentum * velocity + grad / grad.abs().mean().clamp_min(1e-12)
                grad = velocity
            if luma_only:
                grad = grad.sum(1, keepdim=True).expand_as(grad)
            delta = delta + step_size(step, steps, step_start) * eps_map * grad.sign()
            delta = torch.maximum(torch.minimum(delta, eps_map), -eps_map)
            delta = (x + delta).clamp(0, 1) - x
        if on_step is not None:
            on_step(step + 1, steps)
    if steps and not followed:  # (the latent objective's start noise would pass for a change)
        raise NoGradient("the attack found no gradient to follow in any step")
    return delta.detach()


class NoGradient(ModelError):
    """No step of an attack had a gradient to follow (weights of zeros, or damaged)."""
