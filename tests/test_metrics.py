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


@pytest.mark.parametrize("band_rows", [256, 70, 13, 5, 1])
def test_ssim_opencv_bands_match_the_torch_path_over_the_whole_image(band_rows):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 70, 90)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    whole = metrics._ssim_torch(metrics.luma(x), metrics.luma(y), 11, 1.5)
    assert metrics.ssim(x, y, band_rows=band_rows) == pytest.approx(whole, abs=1e-5)
    # and the same figure on a channels-last image, as the pipeline passes them
    x_cl, y_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, y))
    assert metrics.ssim(x_cl, y_cl, band_rows=band_rows) == pytest.approx(whole, abs=1e-5)


@pytest.mark.parametrize("band_rows", [256, 7, 1])
def test_change_stats_matches_float64_numpy(band_rows):
    torch.manual_seed(2)
    a = torch.rand(1, 3, 50, 40).contiguous(memory_format=torch.channels_last)
    b = (a + 0.02 * torch.randn_like(a)).clamp(0, 1)
    mse, largest = metrics.change_stats(a, b, band_rows=band_rows)
    diff = a.double().numpy() - b.double().numpy()
    assert mse == pytest.approx(float((diff ** 2).mean()), rel=1e-9)
    assert largest == pytest.approx(float(abs(diff).max()), abs=1e-7)


def test_damage_counts_each_round_trip_at_most_the_ceiling(model_dir, small_photo, tmp_path):
    """An all-black photo rebuilds at 96 dB; its copy changed by 1/255 at 44 dB, which
    looks the same: the plain difference of the two, "50 dB, strong", graded the flattest
    photos highest. Each round trip counts at most ROUND_TRIP_CEILING_DB, so that copy has
    no damage; a real photo (which rebuilds far below the ceiling) keeps the plain
    difference."""
    import numpy as np
    from PIL import Image

    from cloak.models import load_autoencoder

    net = load_autoencoder("taesd", model_dir)
    black = torch.zeros(1, 3, 96, 128)
    speckled = black.clone()
    speckled[..., ::2, ::2] = 1 / 255  # 1/255 on a quarter of the pixels
    _, clean_psnr = metrics.clean_reference(net, metrics.resize_long(black, 512))
    assert clean_psnr > metrics.ROUND_TRIP_CEILING_DB + 20  # what made the 50 dB
    assert metrics.damage_db(net, black, speckled) < 1.0
    with Image.open(small_photo(tmp_path / "p.png", size=(128, 96))) as im:
        photo = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255)
    x = photo.permute(2, 0, 1)[None]
    x_adv = (x + 8 / 255 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    xs, xas = metrics.resize_long(x, 512), metrics.resize_long(x_adv, 512)
    _, clean_psnr = metrics.clean_reference(net, xs)
    assert clean_psnr < metrics.ROUND_TRIP_CEILING_DB
    with torch.no_grad():
        rebuilt = net.decode(net.encode(xas)).float().clamp(0, 1)
    plain = clean_psnr - metrics.psnr(rebuilt, xs)
    assert metrics.damage_db(net, x, x_adv) == pytest.approx(plain, abs=1e-3)
