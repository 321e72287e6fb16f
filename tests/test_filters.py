"""filters: cloak's separable Gaussian blur against kornia's gaussian_blur2d, which it
replaces in the budget map and the blur transform (kornia's import costs ~0.25 s)."""

from __future__ import annotations

import pytest
import torch

from cloak.filters import gaussian_blur2d, gaussian_kernel1d


@pytest.mark.parametrize(("shape", "size", "sigma", "border"), [
    ((1, 1, 384, 512), 9, 2.0, "replicate"),  # the visibility map's spread
    ((1, 1, 384, 512), 23, 3.84, "reflect"),  # a region's soft edge at 512 px
    ((2, 3, 40, 64), 13, 2.0, "reflect"),  # the blur transform, a batch of colour
    ((1, 3, 16, 256), 7, 1.0, "reflect"),  # a panorama's short side
    ((1, 1, 336, 512), 21, 3.36, "reflect"),  # a 3:2 photo's soft edge (2e-7 off once)
])
def test_the_blur_is_kornias(shape, size, sigma, border):
    import kornia

    x = torch.rand(shape, generator=torch.Generator().manual_seed(size))
    ours = gaussian_blur2d(x, size, sigma, border)
    theirs = kornia.filters.gaussian_blur2d(x, (size, size), (sigma, sigma),
                                            border_type=border)
    assert ours.shape == x.shape
    assert torch.equal(ours, theirs)  # to the bit: protection is unchanged by the swap


def test_the_blur_keeps_flat_images_and_passes_gradients():
    flat = torch.full((1, 1, 20, 30), 0.25, requires_grad=True)
    out = gaussian_blur2d(flat, 9, 2.0, "replicate")
    assert torch.allclose(out, torch.full_like(out, 0.25))
    out.sum().backward()  # each output is a weighted mean: the weights reach the input
    assert float(flat.grad.sum()) == pytest.approx(flat.numel(), rel=1e-5)
    inner = flat.grad[..., 4:-4, 4:-4]  # beyond the kernel's reach of an edge
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-5)


def test_bad_kernels_are_refused():
    kernel = gaussian_kernel1d(5, 1.0)
    assert float(kernel.sum()) == pytest.approx(1.0) and int(kernel.argmax()) == 2
    for size, sigma in ((4, 1.0), (0, 1.0), (5, 0.0)):
        with pytest.raises(ValueError):
            gaussian_kernel1d(size, sigma)
    with pytest.raises(ValueError, match="B, C, H, W"):
        gaussian_blur2d(torch.zeros(3, 8, 8), 3, 1.0)
