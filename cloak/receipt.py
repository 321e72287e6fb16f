"""Whether a photo carries protection, without the original: a no-reference receipt.

A clean photo comes back from taesd's round trip smoother than it went in; a protected one
comes back with texture the decoder made up. The receipt scores that high-frequency gap
(dB) against a threshold calibrated on the dev photos (benchmarks/receipt_calibration.py,
which compares it with the reconstruction error and with every model). On the 25 dev
photos, clean and protected at medium, it had no false alarms as posted and after
`instagram` and detected 25/25 as posted, 24/25 after instagram (the miss: a 2:3 portrait
that Instagram's crop left with little damage) and 21/25 after whatsapp with one false
alarm: a strong hint, not proof (benchmarks/receipt.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from . import metrics
from .channels import image_tensor
from .device import pick_device
from .models import ALL_MODEL_NAMES
from .verify import models_by_name

# No-reference receipt: taesd high-frequency gap (dB) at or above which a photo is called
# protected. Calibrated with benchmarks/receipt_calibration.py on the 25 dev photos, clean
# and protected at medium, as posted and after `instagram` (benchmarks/receipt.md).
RECEIPT_THRESHOLD_DB = 0.36


@dataclass
class Receipt:
    """No-reference result: the receipt score (dB) of one model and the decision.
    `decided` False (a photo under RECEIPT_SMALLEST px on its long side): no decision,
    and `protected` is None. Such a photo is upscaled to 512 px to be scored, and the
    upscale's smoothness alone raises the gap: clean dev photos shrunk to 128-384 px
    scored +0.4 to +1.7 dB, and a protected one shrunk to 256 px no more than its clean
    original did."""

    score_db: float
    threshold_db: float
    score_name: str = "hf_gap"
    model: str = "taesd"
    decided: bool = True

    @property
    def protected(self) -> bool | None:
        return self.score_db >= self.threshold_db if self.decided else None

    @property
    def label(self) -> str:
        return f"{self.model} {RECEIPT_LABELS.get(self.score_name, self.score_name)}"

    def to_dict(self) -> dict:
        return {"score": self.score_name, "model": self.model, "score_db": self.score_db,
                "threshold_db": self.threshold_db, "protected": self.protected}


def laplacian_energy_db(x: torch.Tensor) -> float:
    """10*log10 of the mean squared 4-neighbour Laplacian of the luma of x (1, 3, h, w)."""
    y = metrics.luma(x.float())
    lap = (4 * y[..., 1:-1, 1:-1] - y[..., :-2, 1:-1] - y[..., 2:, 1:-1]
           - y[..., 1:-1, :-2] - y[..., 1:-1, 2:])
    return float(10 * torch.log10(lap.pow(2).mean().clamp_min(1e-12)))


# The Laplacian energy of 8-bit rounding noise alone: 20 * (1/255)^2 / 12, in dB. A photo
# smoother than that (a flat colour) would give any texture the decoder paints a huge gap.
# That is one channel's noise; the luma of three independently rounded channels has about
# 0.45 of it, so for colour photos the floor is on the high side: it can only lower the
# gap of very smooth photos (fewer detections there, never more false alarms).
QUANTISATION_FLOOR_DB = 10 * math.log10(20 / 12 / 255**2)


def _per_model_receipt(net, x: torch.Tensor) -> dict[str, float]:
    """No-reference scores (dB) of one autoencoder on x (1, 3, h, w) in [0, 1]:
    recon_error_db = 10*log10(MSE of D(E(x)) vs x); hf_gap = high-frequency (Laplacian)
    energy of D(E(x)) minus that of x. A clean photo rebuilds smoother than it is
    (hf_gap < 0); the perturbation makes the decoder paint texture that is not there."""
    recon = net(x).float().clamp(0, 1)
    return {"recon_error_db": -metrics.psnr(recon, x),
            "hf_gap": laplacian_energy_db(recon)
            - max(laplacian_energy_db(x), QUANTISATION_FLOOR_DB)}


# The candidate scores benchmarks/receipt_calibration.py compares.
RECEIPT_FEATURES = ("recon_error_db", "hf_gap")
# The smallest long side among the photos the receipt was calibrated on (d13, d16, d20):
# under it the receipt gives its score but no decision (see Receipt).
RECEIPT_SMALLEST = 500
# The best score in benchmarks/receipt.md: taesd's high-frequency gap. One round trip.
RECEIPT_MODEL = "taesd"
RECEIPT_SCORE = "hf_gap"
RECEIPT_LABELS = {"recon_error_db": "reconstruction error", "hf_gap": "high-frequency gap"}


@torch.no_grad()
def receipt_per_model(photo: Image.Image, models: Sequence[str] = ALL_MODEL_NAMES,
                      model_dir: str | None = None,
                      device: str | None = None) -> dict[str, dict[str, float]]:
    """{model: {feature: dB}} for one photo at long side 512."""
    dev = pick_device(device)
    x = metrics.resize_long(image_tensor(photo), 512).to(dev).clamp(0, 1)
    # fp32 on every device, so a photo scores alike on every machine (bf16 autocast
    # moved taesd's hf_gap by +0.01 to +0.03 dB on three clean dev photos). One forward
    # pass per model, so fp32 costs little. On a CUDA GPU torch runs fp32 convolutions at
    # TF32 precision by default (torch.backends.cudnn.conv.fp32_precision), which cloak
    # leaves as it is: never measured here, as no GPU was available.
    return {name: {k: round(v, 3) for k, v in _per_model_receipt(net, x).items()}
            for name, net in models_by_name(models, model_dir, dev).items()}


def receipt_image(photo: Image.Image, model_dir: str | None = None,
                  device: str | None = None, threshold_db: float | None = None) -> Receipt:
    """No-reference check of one photo (see module docstring); undecided under
    RECEIPT_SMALLEST px on its long side (see Receipt)."""
    per_model = receipt_per_model(photo, (RECEIPT_MODEL,), model_dir, device)
    return Receipt(per_model[RECEIPT_MODEL][RECEIPT_SCORE],
                   RECEIPT_THRESHOLD_DB if threshold_db is None else threshold_db,
                   RECEIPT_SCORE, RECEIPT_MODEL, decided=max(photo.size) >= RECEIPT_SMALLEST)
