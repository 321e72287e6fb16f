"""Differentiable "posting and editing" transforms, for expectation over transformation.

Each pure function takes an image (B, 3, H, W) in [0, 1] and returns one in [0, 1];
gradients flow through all of them. `random_posting` draws every parameter from a
caller-owned `torch.Generator`, so a seed makes the whole chain reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import resample
from .jpeg import jpeg_round_trip


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image of shape (B, 3, H, W), got {tuple(x.shape)}")


def jpeg(x: torch.Tensor, quality: float, impl: str = "fast") -> torch.Tensor:
    """Differentiable JPEG round trip (4:2:0) at `quality` in [1, 100].

    `impl="fast"` is cloak.jpeg (the same codec model as kornia's, as batched matrix
    products: about 7x faster, and closer to Pillow's real encoder); `"kornia"` is
    kornia.enhance.jpeg_codec_differentiable."""
    _check_image(x)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    if impl == "fast":
        return jpeg_round_trip(x, quality)
    if impl != "kornia":
        raise ValueError(f"unknown JPEG implementation {impl!r}; use 'fast' or 'kornia'")
    try:
        import kornia
    except ImportError as exc:  # the dev extra's: cloak itself never needs it
        raise ImportError("impl='kornia' needs kornia (pip install kornia, or the project's "
                          "dev extra); impl='fast' does not") from exc

    q = torch.tensor([float(quality)], device=x.device)
    return kornia.enhance.jpeg_codec_differentiable(x.float(), q).clamp(0, 1)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing when shrinking."""
    _check_image(x)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]  # either side
    return resample.resize(x, size, "bilinear", antialias=shrink)


def resize_round_trip(x: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize to `long_side` (a platform or editor size) and back to the input size."""
    h, w = x.shape[-2:]
    scale = long_side / max(h, w)
    small = (max(8, round(h * scale)), max(8, round(w * scale)))
    return resize_to(resize_to(x, small), (h, w))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (> 0)."""
    from .filters import gaussian_blur2d

    _check_image(x)
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    k = 2 * int(3 * sigma + 0.5) + 1
    return gaussian_blur2d(x, k, sigma, border="reflect")


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Circular-free shift by (dy, dx) pixels with reflected borders (a small crop)."""
    _check_image(x)
    if dy == 0 and dx == 0:
        return x
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    padded = F.pad(x, pad, mode="reflect")
    h, w = x.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation `std` (on the [0, 1] scale)."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
    return (x + std * noise).clamp(0, 1)


@dataclass(frozen=True)
class PostingRanges:
    """Ranges the random posting pipeline draws from."""

    jpeg_quality: tuple[float, float] = (50, 95)
    long_side: tuple[int, int] = (384, 1080)
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    max_shift: int = 4
    noise_std: tuple[float, float] = (0.0, 0.01)
    p_jpeg: float = 0.8
    p_resize: float = 0.6
    p_blur: float = 0.3
    p_shift: float = 0.5
    p_noise: float = 0.3


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g, device=g.device).item()


def random_posting(x: torch.Tensor, generator: torch.Generator,
                   ranges: PostingRanges = PostingRanges()) -> torch.Tensor:
    """One random draw of the posting pipeline: shift, resize, blur, noise, then JPEG."""
    g, r = generator, ranges
    if _uniform(g, 0, 1) < r.p_shift:
        dy = int(torch.randint(-r.max_shift, r.max_shift + 1, (), generator=g, device=g.device))
        dx = int(torch.randint(-r.max_shift, r.max_shift + 1, (), generator=g, device=g.device))
        x = shift(x, dy, dx)
    if _uniform(g, 0, 1) < r.p_resize:
        x = resize_round_trip(x, int(_uniform(g, *r.long_side)))
    if _uniform(g, 0, 1) < r.p_blur:
        x = gaussian_blur(x, _uniform(g, *r.blur_sigma))
    if _uniform(g, 0, 1) < r.p_noise:
        x = add_noise(x, _uniform(g, *r.noise_std), g)
    if _uniform(g, 0, 1) < r.p_jpeg:
        x = jpeg(x, _uniform(g, *r.jpeg_quality))
    return x.clamp(0, 1)
