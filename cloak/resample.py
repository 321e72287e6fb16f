"""Resizing that can be differentiated on every device.

torch 2.13 has no Apple-GPU (mps) kernel for the backward pass of antialiased bilinear or
bicubic resizing, which the attack needs whenever the models see the photo at another
size than its working size. A separable resize is linear, so it is two matrix products:
one along the rows, one along the columns. `resize` takes that route where the kernel is
missing; its matrices are torch's own resize applied, on the CPU, to one-hot signals, so
the two routes agree to float rounding.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# Devices whose backward pass for antialiased resizing is missing in torch.
_WITHOUT_AA_BACKWARD = frozenset({"mps"})


def resize(x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> torch.Tensor:
    """F.interpolate(x, size, mode, antialias, align_corners=False) for (N, C, h, w) x,
    `mode` "bilinear" or "bicubic"; through `resize_by_matrices` where a gradient will be
    taken on a device that lacks the antialiased backward pass (the forward pass exists:
    resizing a full-size photo to measure it keeps torch's own route, and no matrices as
    large as the photo)."""
    size = (int(size[0]), int(size[1]))
    if (antialias and x.device.type in _WITHOUT_AA_BACKWARD and x.requires_grad
            and torch.is_grad_enabled()):
        return resize_by_matrices(x, size, mode, antialias)
    return F.interpolate(x, size=size, mode=mode, antialias=antialias, align_corners=False)


def resize_by_matrices(x: torch.Tensor, size: tuple[int, int], mode: str,
                       antialias: bool) -> torch.Tensor:
    """The same resize as `resize`, as rows (H, h) @ x @ columns (w, W): matrix products
    only, differentiable on any device, in x's own precision even under autocast. x is
    (N, C, h, w) floating point."""
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating (N, C, h, w) tensor, got {x.dtype} "
                         f"{tuple(x.shape)}")
    rows = _matrix(x.shape[-2], size[0], mode, antialias).to(x.device, x.dtype)
    columns = _matrix(x.shape[-1], size[1], mode, antialias).to(x.device, x.dtype)
    with torch.autocast(x.device.type, enabled=False):  # fp32 as torch's resize under autocast
        return rows @ x @ columns.T


@functools.lru_cache(maxsize=32)
def _matrix(n_in: int, n_out: int, mode: str, antialias: bool) -> torch.Tensor:
    """(n_out, n_in) float32 CPU matrix of a 1-D resize from n_in to n_out samples: column
    i is torch's resize of a one-hot signal at i (the other axis kept at 1 sample, which a
    resize to the same size leaves untouched)."""
    one_hots = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)
    out = F.interpolate(one_hots, size=(1, n_out), mode=mode, antialias=antialias,
                        align_corners=False)
    return out.reshape(n_in, n_out).T.contiguous().float()
