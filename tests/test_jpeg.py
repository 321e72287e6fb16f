"""cloak.jpeg: the fast differentiable JPEG must behave like a real JPEG encoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import PHOTOS, missing
from PIL import Image

from cloak import transforms as T
from cloak.jpeg import jpeg_round_trip, quality_table
from cloak.metrics import psnr

PHOTO = PHOTOS / "d01_scikit-image_astronaut.png"


@pytest.fixture
def photo() -> Image.Image:
    if not PHOTO.is_file():
        missing(f"{PHOTO} missing")
    with Image.open(PHOTO) as im:  # odd size on purpose: exercises the padding
        return im.convert("RGB").crop((0, 0, 203, 150))


def tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def pillow_jpeg(img: Image.Image, quality: int) -> torch.Tensor:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return tensor(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("quality", [50, 75, 95])
def test_matches_pillows_encoder_far_better_than_doing_nothing(photo, quality):
    x = tensor(photo)
    real = pillow_jpeg(photo, quality)
    ours = jpeg_round_trip(x, quality)
    assert ours.shape == x.shape
    assert psnr(ours, real) > 40           # measured about 45 dB
    assert psnr(ours, real) > psnr(x, real) + 6
    assert psnr(ours, real) >= psnr(T.jpeg(x, quality, impl="kornia"), real) - 0.5


def test_lower_quality_loses_more(photo):
    x = tensor(photo)
    assert psnr(jpeg_round_trip(x, 50), x) < psnr(jpeg_round_trip(x, 95), x)


def test_ijg_tables():
    assert quality_table((16,) * 64, 50)[0, 0] == 16
    assert quality_table((16,) * 64, 100)[0, 0] == 1
    assert quality_table((16,) * 64, 25)[0, 0] == 32
    assert quality_table((99,) * 64, 30)[0, 0] == (99 * (5000 // 30) + 50) // 100 == 164


def test_gradient_and_input_checks():
    x = torch.rand(1, 3, 16, 24, requires_grad=True)
    jpeg_round_trip(x, 70).sum().backward()
    assert float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="quality"):
        jpeg_round_trip(x, 101)
    with pytest.raises(ValueError, match="unknown JPEG"):
        T.jpeg(x, 70, impl="nope")
