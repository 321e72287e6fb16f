"""Image-quality and protection figures. Images are (B, 3, H, W) in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import resample

LUMA = (0.299, 0.587, 0.114)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two images in [0, 1]; 100 for identical images."""
    return psnr_from_mse(F.mse_loss(a.float(), b.float()).item())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for a mean squared error on the [0, 1] scale; 100 when it is ~0."""
    if mse <= 1e-12:
        return 100.0
    return float(10 * np.log10(1.0 / mse))


@torch.no_grad()
def change_stats(a: torch.Tensor, b: torch.Tensor, band_rows: int = 256) -> tuple[float, float]:
    """(mean squared difference, max absolute difference) of two (B, C, H, W) images,
    `band_rows` rows at a time, so no full-size temporary is made."""
    total, largest = 0.0, 0.0
    for top in range(0, a.shape[-2], max(1, band_rows)):
        diff = a[..., top:top + band_rows, :].float() - b[..., top:top + band_rows, :].float()
        total += float(torch.linalg.vector_norm(diff, dtype=torch.float64).square())
        largest = max(largest, float(diff.abs().max()))
    return total / max(1, a.numel()), largest


def luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) Rec.601 luminance (no 3-channel temporary: at 12 MP
    that one costs more than the sum)."""
    y = x[:, 0:1] * LUMA[0]
    y.add_(x[:, 1:2], alpha=LUMA[1]).add_(x[:, 2:3], alpha=LUMA[2])
    return y


def _gaussian_blur_separable(x: torch.Tensor, window: int, sigma: float) -> torch.Tensor:
    """(B, 1, H, W) -> same, Gaussian blur as two 1-D passes with reflected borders
    (replicated where the image is too small to reflect)."""
    from .filters import gaussian_blur2d

    mode = "reflect" if min(x.shape[-2:]) > window // 2 else "replicate"
    return gaussian_blur2d(x, window, sigma, border=mode)


def _ssim_sum_cv2(a: np.ndarray, b: np.ndarray, window: int, sigma: float,
                  first: int, last: int) -> float:
    """Sum of the SSIM map over rows [first, last) of two (h, W) float32 luma arrays, with
    OpenCV's SIMD Gaussian blur (same kernel, same reflect-101 border as
    _gaussian_blur_separable; ~10x faster than torch's conv2d, which is memory-bound)."""
    import cv2

    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(t):
        return cv2.GaussianBlur(t, (window, window), sigma,
                                borderType=cv2.BORDER_REFLECT_101)[first:last]

    # In place wherever possible: a fresh float32 map costs more in page faults than the
    # arithmetic on it.
    mu_a, mu_b = blur(a), blur(b)
    t = np.multiply(a, a)
    var_sum = blur(t)
    np.multiply(b, b, out=t)
    var_sum += blur(t)
    np.multiply(a, b, out=t)
    cov = blur(t)
    del t
    num = np.multiply(mu_a, mu_b)
    cov -= num  # covariance
    num *= 2
    num += c1
    cov *= 2
    cov += c2
    num *= cov  # numerator (2 mu_a mu_b + c1)(2 cov + c2)
    del cov
    mu_a *= mu_a
    mu_b *= mu_b
    var_sum -= mu_a
    var_sum -= mu_b
    var_sum += c2
    mu_a += mu_b
    mu_a += c1
    mu_a *= var_sum  # denominator (mu_a^2 + mu_b^2 + c1)(var_a + var_b + c2)
    num /= mu_a
    return float(num.sum(dtype=np.float64))


def _ssim_banded_cv2(a: torch.Tensor, b: torch.Tensor, window: int, sigma: float,
                     band_rows: int) -> float:
    """Mean SSIM of two (1, 3, H, W) CPU images, `band_rows` rows at a time. Each band
    carries window // 2 extra rows on either side, so every kept row is blurred exactly as
    in one pass over the whole image; memory stays at a few band-sized maps."""
    height, width = a.shape[-2:]
    halo = window // 2
    total = 0.0
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        lo, hi = max(0, top - halo), min(height, bottom + halo)
        x = np.ascontiguousarray(luma(a[:, :, lo:hi].float())[0, 0].numpy())
        y = np.ascontiguousarray(luma(b[:, :, lo:hi].float())[0, 0].numpy())
        total += _ssim_sum_cv2(x, y, window, sigma, top - lo, bottom - lo)
    return total / (height * width)


SSIM_BAND_ROWS = 256


@torch.no_grad()
def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5,
         band_rows: int = SSIM_BAND_ROWS) -> float:
    """Mean SSIM on luminance (Gaussian window 11, sigma 1.5), as in Wang et al. 2004.
    a, b: (B, 3, H, W) in [0, 1]. Separable filtering (22 instead of 121 taps per pixel);
    matches kornia.metrics.ssim within 2e-3 (tests/test_metrics.py). One CPU image goes
    through OpenCV in bands of `band_rows` rows (same figure, tested against the torch
    path), so a 48 MP photo needs no full-size luma maps."""
    if a.device.type == "cpu" and a.shape[0] == 1 and min(a.shape[-2:]) > window // 2:
        return _ssim_banded_cv2(a, b, window, sigma, max(1, band_rows))
    return _ssim_torch(luma(a.float()), luma(b.float()), window, sigma)


def _ssim_torch(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float) -> float:
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda t: _gaussian_blur_separable(t, window, sigma)
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def long_side_dims(height: int, width: int, long_side: int, multiple: int = 8
                   ) -> tuple[int, int]:
    """(h, w) of a photo of `height` x `width` resized so its long side is `long_side`,
    each side rounded to `multiple` (as an editor feeds a latent-diffusion VAE)."""
    scale = long_side / max(height, width)
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


def long_side_dims_down(height: int, width: int, long_side: int, multiple: int = 8
                        ) -> tuple[int, int]:
    """long_side_dims, each side rounded *down* to `multiple`, as diffusers does
    (get_default_height_width): a 3:2 photo at 512 gives 512x336, not 512x344."""
    scale = long_side / max(height, width)
    return (max(multiple, int(height * scale + 1e-6) // multiple * multiple),
            max(multiple, int(width * scale + 1e-6) // multiple * multiple))


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of (N, C, h, w) to `size` (H, W), clamped to [0, 1];
    x itself when it already has that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return resample.resize(x, size, "bicubic", antialias=True).clamp(0, 1)


def resize_long(x: torch.Tensor, long_side: int, multiple: int = 8) -> torch.Tensor:
    """Antialiased resize so the long side is `long_side`, sides rounded to `multiple`."""
    return resize_to(x, long_side_dims(*x.shape[-2:], long_side, multiple))


@torch.no_grad()
def reconstruction_psnr(model, x: torch.Tensor) -> float:
    """PSNR of D(E(x)) against x."""
    return psnr(model(x).clamp(0, 1), x)


@torch.no_grad()
def clean_reference(model, xs: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(E(xs), PSNR(D(E(xs)), xs)) for a clean image already at the measuring size;
    compute once, then reuse for every protected copy (see damage_and_shift)."""
    z = model.encode(xs)
    return z, psnr(model.decode(z).float().clamp(0, 1), xs)


# A round trip this close to the photo (PSNR, dB) looks the same as the photo: both
# round trips are counted at most this high. An all-black photo rebuilds at 96 dB, its
# copy changed by 1/255 at 44: "50 dB of damage, strong", for an edit no one could see.
# Real photos rebuild below it, where nothing changes (24 of the 25 dev photos, the HEIC
# left out: 35.5 dB at most at 512 px, taef2; 38.8 at 1024 px, the camera photo, taef2).
ROUND_TRIP_CEILING_DB = 40.0


@torch.no_grad()
def damage_and_shift(model, xs: torch.Tensor, clean: tuple[torch.Tensor, float],
                     xas: torch.Tensor) -> tuple[float, float]:
    """Damage (dB, see damage_db) and relative latent shift ||E(xas) - E(xs)|| / ||E(xs)||
    of the protected xas against the clean xs, both at the measuring size, sharing the
    encodes."""
    z, clean_psnr = clean
    za = model.encode(xas)
    damage = (min(clean_psnr, ROUND_TRIP_CEILING_DB)
              - min(psnr(model.decode(za).float().clamp(0, 1), xs), ROUND_TRIP_CEILING_DB))
    shift = float((za.float() - z.float()).norm() / z.float().norm().clamp_min(1e-8))
    return damage, shift


@torch.no_grad()
def damage_db(model, x: torch.Tensor, x_adv: torch.Tensor, size: int = 512) -> float:
    """Reconstruction damage: PSNR(D(E(x)), x) - PSNR(D(E(x_adv)), x), both at long side
    `size`, each counted at most ROUND_TRIP_CEILING_DB. Higher is stronger protection; ~0
    means none."""
    xs, xas = resize_long(x, size), resize_long(x_adv, size)
    return damage_and_shift(model, xs, clean_reference(model, xs), xas)[0]
