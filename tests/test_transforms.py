"""Differentiable posting transforms: shapes, ranges, gradients, input checks, seeding."""

from __future__ import annotations

import pytest
import torch

from cloak import transforms as T


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.rand(1, 3, 24, 32)


CASES = {
    "jpeg": lambda x: T.jpeg(x, 60),
    "resize": lambda x: T.resize_round_trip(x, 16),
    "blur": lambda x: T.gaussian_blur(x, 0.8),
    "shift": lambda x: T.shift(x, 2, -3),
}


class TestEachTransform:
    @pytest.mark.parametrize("name", CASES)
    def test_shape_and_range(self, x, name):
        y = CASES[name](x)
        assert y.shape == x.shape
        assert float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6

    @pytest.mark.parametrize("name", CASES)
    def test_gradient_flows(self, x, name):
        x = x.clone().requires_grad_(True)
        CASES[name](x).sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0

    def test_jpeg_changes_the_image(self, x):
        assert float((T.jpeg(x, 50) - x).abs().mean()) > 1e-3

    def test_bad_values_are_named(self, x):
        with pytest.raises(ValueError, match="quality must be in"):
            T.jpeg(x, 0)
        with pytest.raises(ValueError, match="sigma must be > 0"):
            T.gaussian_blur(x, 0)
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            T.jpeg(torch.rand(3, 8, 8), 80)


class TestRandomPosting:
    def test_same_seed_same_draw(self, x):
        a = T.random_posting(x, torch.Generator().manual_seed(3))
        b = T.random_posting(x, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)

    def test_draws_differ_across_seeds(self, x):
        outs = [T.random_posting(x, torch.Generator().manual_seed(s)) for s in range(6)]
        assert any(not torch.equal(outs[0], o) for o in outs[1:])

    def test_gradient_flows_through_the_chain(self, x):
        x = x.clone().requires_grad_(True)
        ranges = T.PostingRanges(p_jpeg=1, p_resize=1, p_blur=1, p_shift=1, p_noise=1)
        T.random_posting(x, torch.Generator().manual_seed(0), ranges).sum().backward()
        assert float(x.grad.abs().sum()) > 0


def test_resize_antialiases_when_only_the_width_shrinks():
    import torch.nn.functional as F

    from cloak.transforms import resize_to

    x = torch.rand(1, 3, 8, 512, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=(8, 384), mode="bilinear", antialias=True,
                             align_corners=False)
    assert torch.allclose(resize_to(x, (8, 384)), expected)
