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

    def test_shift_moves_the_content(self, x):
        """Shifting by (2, -3) moves every pixel 2 rows down and 3 columns left; the rows
        and columns it uncovers are the reflected border."""
        y = T.shift(x, 2, -3)
        assert torch.equal(y[..., 2:, :-3], x[..., :-2, 3:])
        assert torch.equal(y[..., :2, :-3], x[..., [2, 1], 3:])  # reflected, edge not repeated
        assert torch.equal(T.shift(x, 0, 0), x)

    def test_blur_is_a_gaussian_of_that_sigma(self, x):
        """An impulse comes out as a normalised, symmetric bump whose variance is sigma^2
        along each axis (kernel 2*round(3 sigma)+1 wide, so a little under sigma^2)."""
        for sigma in (0.8, 1.5):
            impulse = torch.zeros(1, 3, 41, 41)
            impulse[..., 20, 20] = 1
            response = T.gaussian_blur(impulse, sigma)[0, 0].double()
            assert float(response.sum()) == pytest.approx(1, abs=1e-5)
            assert torch.allclose(response, response.flip(0)) and \
                torch.allclose(response, response.T)
            offsets = torch.arange(41, dtype=torch.float64) - 20
            variance = float((response.sum(1) * offsets ** 2).sum())
            assert variance == pytest.approx(sigma ** 2, rel=0.05)
        # and it smooths: less energy in the differences between neighbours
        energy = lambda t: float((t[..., 1:, :] - t[..., :-1, :]).pow(2).mean())
        assert energy(T.gaussian_blur(x, 0.8)) < 0.5 * energy(x)

    def test_resize_round_trip_goes_down_and_back(self, x):
        import torch.nn.functional as F

        small = F.interpolate(x, size=(12, 16), mode="bilinear", antialias=True,
                              align_corners=False)
        back = F.interpolate(small, size=(24, 32), mode="bilinear", align_corners=False)
        y = T.resize_round_trip(x, 16)
        assert torch.allclose(y, back, atol=1e-5)
        assert float((y - x).abs().mean()) > 1e-2  # detail was lost on the way

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
