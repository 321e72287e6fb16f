"""Reference: the PhotoGuard encoder attack (Salman et al., ICML 2023), as published.

PGD toward the latent of a mid-gray image, L-inf 8/255, 200 sign steps whose size decays
linearly from 0.01 to 0.0001 ([0, 1] scale; the paper's code uses 0.02 on [-1, 1]),
against the SD 1.x autoencoder (here its tiny stand-in, taesd), computed at long side 512
and upsampled to the photo's full size. Used only to put cloak's figures in context.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cloak import metrics
from cloak.device import autocast, pick_device
from cloak.models import load_autoencoder
from cloak.pipeline import to_array, to_tensor


def photoguard_encoder_attack(rgb: np.ndarray, eps: float = 8 / 255, steps: int = 200,
                              step_size: float = 0.01, model: str = "taesd",
                              size: int = 512) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] -> protected (H, W, 3), quantised to 1/255 steps."""
    device = pick_device()
    net = load_autoencoder(model, device=device)
    x_full = to_tensor(rgb)
    long_side = max(8, min(size, max(x_full.shape[-2:])) // 8 * 8)  # never upscale
    x = metrics.resize_long(x_full, long_side).to(device)
    with torch.no_grad(), autocast(device):
        z_target = net.encode(torch.full_like(x, 0.5)).float()
    x_adv = x.clone()
    for i in range(steps):
        alpha = step_size - (step_size - step_size / 100) * i / steps
        x_adv.requires_grad_(True)
        with autocast(device):
            loss = F.mse_loss(net.encode(x_adv).float(), z_target)
        grad, = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv - alpha * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
    delta = F.interpolate((x_adv - x).float().cpu(), size=x_full.shape[-2:], mode="bicubic",
                          align_corners=False).clamp(-eps, eps)
    out = (x_full + torch.round(delta * 255) / 255).clamp(0, 1)
    return to_array(out)


__all__ = ["photoguard_encoder_attack"]
