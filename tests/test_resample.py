"""Resizing by matrix products: the route the attack takes on an Apple GPU (mps), where
torch has no backward kernel for antialiased resizing. Checked here on the CPU against
torch's own resize, forward and backward, and through a real protection run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cloak import resample

SIZES = [((384, 512), (336, 512)),  # a 3:2 view beside a 4:3 working image
         ((300, 400), (384, 512)),  # a small photo upscaled to the editing size
         ((1024, 768), (512, 384)),  # high's working size down to medium's
         ((37, 91), (16, 200))]  # shrink one side, stretch the other


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(("size_in", "size_out"), SIZES)
def test_matches_torch_forward_and_backward(mode, antialias, size_in, size_out):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, *size_in, generator=generator, requires_grad=True)
    upstream = torch.rand(2, 3, *size_out, generator=generator)
    expected = F.interpolate(x, size=size_out, mode=mode, antialias=antialias,
                             align_corners=False)
    got = resample.resize_by_matrices(x, size_out, mode, antialias)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4
    grad_expected, = torch.autograd.grad(expected, x, upstream)
    grad_got, = torch.autograd.grad(got, x, upstream)
    assert (grad_got - grad_expected).abs().max() < 1e-4
    assert grad_expected.abs().max() > 0.1  # a real gradient, not two zero tensors


def test_resize_keeps_torchs_own_route_where_it_has_the_kernel():
    """On the CPU (and CUDA) `resize` is torch's interpolate, bit for bit."""
    x = torch.rand(1, 3, 60, 80, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(x, size=(45, 60), mode="bicubic", antialias=True,
                             align_corners=False)
    assert torch.equal(resample.resize(x, (45, 60), "bicubic", antialias=True), expected)


def test_the_matrices_are_used_only_where_a_gradient_will_be_taken(monkeypatch):
    """On a device without the backward kernel (mps; the CPU stands in here), a resize
    with no gradient to take keeps torch's forward kernel: measuring a 48 MP photo builds
    no matrices the size of the photo."""
    monkeypatch.setattr(resample, "_WITHOUT_AA_BACKWARD", frozenset({"cpu"}))
    x = torch.rand(1, 3, 60, 80, generator=torch.Generator().manual_seed(2))
    torch_route = F.interpolate(x, size=(45, 60), mode="bicubic", antialias=True,
                                align_corners=False)
    assert torch.equal(resample.resize(x, (45, 60), "bicubic", antialias=True), torch_route)
    with_grad = resample.resize(x.requires_grad_(), (45, 60), "bicubic", antialias=True)
    assert "Upsample" not in with_grad.grad_fn.name()  # a matrix product's, not torch's
    assert "Upsample" in F.interpolate(x, size=(45, 60), mode="bicubic", antialias=True,
                                       align_corners=False).grad_fn.name()
    with torch.no_grad():
        assert torch.equal(resample.resize(x, (45, 60), "bicubic", antialias=True),
                           torch_route)


def test_refuses_what_it_cannot_resize():
    with pytest.raises(ValueError, match="floating"):
        resample.resize_by_matrices(torch.zeros(3, 8, 8), (4, 4), "bilinear", True)
    with pytest.raises(ValueError, match="floating"):
        resample.resize_by_matrices(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (4, 4),
                                    "bilinear", True)


def test_a_protection_run_through_the_matrix_route_matches_torchs(tiny_config, small_photo,
                                                                  tmp_path, monkeypatch):
    """The whole attack with views at other sizes than the working image (what crashed on
    mps), once through torch's resize and once through the matrices (the mps route,
    forced on the CPU). Sign steps magnify float rounding (a 1e-6 change to the input
    moves about 1% of the saved pixels here), so the two runs agree in direction, not to
    the bit: 87-91% of the signs of changes of 2/255 or more matched when this was
    written, against 50% for unrelated noise."""
    from PIL import Image

    from cloak.pipeline import protect_array

    src = small_photo(tmp_path / "a.png", size=(200, 150))
    with Image.open(src) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    # Attacked at 160 px (the largest size), seen at 128 and 160 in turn.
    config = tiny_config.replace(steps=3, working_size=128, view_sizes=(128, 160))
    plain = protect_array(rgb, config, figures=False).rgb - rgb

    calls = []
    by_matrices = resample.resize_by_matrices

    def counted(*args, **kwargs):
        calls.append(args[1])
        return by_matrices(*args, **kwargs)

    monkeypatch.setattr(resample, "_WITHOUT_AA_BACKWARD", frozenset({"cpu"}))
    monkeypatch.setattr(resample, "resize_by_matrices", counted)
    matrices = protect_array(rgb, config, figures=False).rgb - rgb
    assert (96, 128) in calls, "the models' 128 px view never went through the matrices"
    assert np.abs(matrices).max() <= config.eps + 1e-6
    strong = np.abs(plain) >= 1.5 / 255
    assert strong.mean() > 0.3
    assert (np.sign(plain) == np.sign(matrices))[strong].mean() > 0.75
    assert np.abs(matrices).mean() == pytest.approx(np.abs(plain).mean(), rel=0.05)
