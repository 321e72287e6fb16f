"""Image-quality and protection figures. Images are (B, 3, H, W) in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two images in [0, 1]; 100 for identical images."""
    mse = F.mse_loss(a.float(), b.float()).item()
    if mse <= 1e-12:
        return 100.0
    return float(10 * torch.log10(torch.tensor(1.0 / mse)))


def luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) Rec.601 luminance."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> float:
    """Mean SSIM on luminance (Gaussian window, sigma 1.5), as in Wang et al. 2004."""
    import kornia

    return float(kornia.metrics.ssim(luma(a.float()), luma(b.float()), window).mean())


def resize_long(x: torch.Tensor, long_side: int, multiple: int = 8) -> torch.Tensor:
    """Antialiased resize so the long side is `long_side`, sides rounded to `multiple`."""
    h, w = x.shape[-2:]
    scale = long_side / max(h, w)
    nh = max(multiple, round(h * scale / multiple) * multiple)
    nw = max(multiple, round(w * scale / multiple) * multiple)
    if (nh, nw) == (h, w):
        return x
    return F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


@torch.no_grad()
def reconstruction_psnr(model, x: torch.Tensor) -> float:
    """PSNR of D(E(x)) against x."""
    return psnr(model(x).clamp(0, 1), x)


@torch.no_grad()
def damage_db(model, x: torch.Tensor, x_adv: torch.Tensor, size: int = 512) -> float:
    """Reconstruction damage: PSNR(D(E(x)), x) - PSNR(D(E(x_adv)), x), both at long side
    `size`. Higher is stronger protection; ~0 means none."""
    xs, xas = resize_long(x, size), resize_long(x_adv, size)
    return psnr(model(xs).clamp(0, 1), xs) - psnr(model(xas).clamp(0, 1), xs)


@torch.no_grad()
def latent_shift(model, x: torch.Tensor, x_adv: torch.Tensor, size: int = 512) -> float:
    """Relative latent change ||E(x_adv) - E(x)|| / ||E(x)|| at long side `size`."""
    z = model.encode(resize_long(x, size)).float()
    za = model.encode(resize_long(x_adv, size)).float()
    return float((za - z).norm() / z.norm().clamp_min(1e-8))
