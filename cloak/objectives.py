"""Losses the attack maximises. Each takes an autoencoder, the perturbed image x_adv
(B, 3, H, W) in [0, 1], and a per-image context, and returns a scalar to MAXIMISE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_error(model, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """End-to-end: mean squared error of D(E(x_adv)) against the clean image x.

    Maximising it makes the editor's autoencoder round trip - the first and last step
    of every latent-diffusion edit - come out wrong."""
    return reconstruction_error_of_latent(model, model.encode(x_adv), x)


def reconstruction_error_of_latent(model, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The end-to-end loss from an already computed latent z = E(x_adv): mean squared
    error of D(z) against the clean image x (B, 3, H, W) in [0, 1]."""
    return F.mse_loss(model.decode(z).float(), x.float())


def latent_along(z: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Encoder-only stand-in for a loss whose latent gradient was `direction`: <z, direction>,
    its first-order change as the latent z = E(x_adv) moves (no decoder pass)."""
    return (z.float() * direction).sum()


def latent_to_target(model, x_adv: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """PhotoGuard encoder attack (Salman et al. 2023): minus the distance of E(x_adv) to a
    target latent (by default the latent of a mid-gray image)."""
    z = model.encode(x_adv).float()
    if z.shape != z_target.shape:
        z_target = F.interpolate(z_target, size=z.shape[-2:], mode="nearest")
    return -F.mse_loss(z, z_target)


def gray_target_latent(model, x: torch.Tensor) -> torch.Tensor:
    """Latent of a mid-gray image the size of x."""
    with torch.no_grad():
        return model.encode(torch.full_like(x, 0.5)).float()


def latent_shift(model, x_adv: torch.Tensor, z_clean: torch.Tensor) -> torch.Tensor:
    """Untargeted encoder attack: squared distance of E(x_adv) from the clean latent,
    normalised by the clean latent's energy. Encoder only, so about 2.5x cheaper than
    the end-to-end objective."""
    z = model.encode(x_adv).float()
    return F.mse_loss(z, z_clean) / z_clean.pow(2).mean().clamp_min(1e-6)


def low_frequency_energy(delta: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Perceptual penalty (to MINIMISE): energy of the perturbation's local mean over
    `window`-px neighbourhoods, per colour channel. Smooth colour shifts are what the eye
    sees first; zero-mean fine grain that averages out over a window is much less visible.

    delta (B, 3, H, W) -> scalar >= 0."""
    local_mean = F.avg_pool2d(delta, window, stride=1, padding=window // 2,
                              count_include_pad=False)
    return local_mean.pow(2).mean()
