"""metrics: PSNR and the separable SSIM against kornia's reference implementation."""

from __future__ import annotations

import pytest
import torch

from cloak import metrics


def test_ssim_matches_kornia_and_orders_distortions():
    import kornia

    torch.manual_seed(0)
    x = torch.rand(1, 3, 1, 1) * torch.ones(1, 3, 64, 80)
    x = (x + 0.2 * torch.rand(1, 3, 64, 80)).clamp(0, 1)
    slight = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    strong = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    for y in (slight, strong):
        reference = float(kornia.metrics.ssim(metrics.luma(x), metrics.luma(y), 11).mean())
        assert metrics.ssim(x, y) == pytest.approx(reference, abs=2e-3)
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(x, slight) > metrics.ssim(x, strong)


def test_psnr():
    x = torch.zeros(1, 3, 4, 4)
    assert metrics.psnr(x, x) == 100.0
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-4)


def test_ssim_opencv_path_matches_torch_path():
    torch.manual_seed(1)
    x = torch.rand(1, 3, 70, 90)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    lx, ly = metrics.luma(x), metrics.luma(y)
    assert metrics._ssim_cv2(lx, ly, 11, 1.5) == pytest.approx(
        metrics._ssim_torch(lx, ly, 11, 1.5), abs=1e-5)
