"""A separable Gaussian blur in plain torch, for the budget map, the blur transform and
the SSIM of images off the CPU path (metrics).

kornia's gaussian_blur2d does the same; importing kornia costs about 0.25 s in every
process that protects a photo (a fresh `cloak protect` run included), for two
convolutions. tests/test_filters.py pins this one against kornia's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(size: int, sigma: float, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    """(size,) weights of a Gaussian of standard deviation `sigma` (> 0), centred on the
    middle tap of an odd `size`, summing to 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    taps = torch.arange(size, dtype=dtype, device=device) - size // 2
    # the variance in `dtype`, as kornia computes it, so the weights match to the bit
    variance = torch.tensor(float(sigma), dtype=dtype, device=device).pow(2)
    weights = torch.exp(-taps.pow(2) / (2 * variance))
    return weights / weights.sum()


def gaussian_blur2d(x: torch.Tensor, size: int, sigma: float,
                    border: str = "reflect") -> torch.Tensor:
    """(B, C, H, W) blurred by a `size` x `size` Gaussian (odd size) of std `sigma` pixels,
    each channel on its own, as two 1-D passes; `border` is F.pad's mode ("reflect",
    "replicate", ...) for the size // 2 pixels read beyond each edge. Same shape and dtype
    as `x`; differentiable."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    kernel = gaussian_kernel1d(size, sigma, x.dtype, x.device)
    channels, half = x.shape[1], size // 2
    x = F.pad(x, [half, half, half, half], mode=border)
    x = F.conv2d(x, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1),
                    groups=channels)
