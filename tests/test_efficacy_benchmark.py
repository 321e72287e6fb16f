"""benchmarks/efficacy.py measures what `cloak verify` measures: these pin the parts of it
that decide the README's Efficacy figures without running an attack."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import efficacy

from cloak import io
from cloak.verify import photo_image


def test_a_transparent_photo_is_compared_with_its_transparency(tmp_path: Path) -> None:
    """The benchmark converted every photo to RGB, so a transparent photo's posting presets
    saw the colour stored under its transparency, where `cloak verify` (and a platform)
    flattens it onto white first."""
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., :3] = 40
    rgba[:, 24:, 3] = 255  # the left half hidden, black-ish under it
    src = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(src)
    seen = efficacy.load_as_verify(src)
    assert seen.mode == "RGBA"
    assert seen.tobytes() == photo_image(io.load_photo(src)).tobytes()
    assert efficacy.load_rgb(src).mode == "RGB"  # what the other benchmarks attack


def _row(damage: dict[str, float]) -> dict:
    return {"channels": [{"channel": c, "damage_db": {"taesd": d}} for c, d in damage.items()]}


def test_the_worst_clean_up_is_unmeasured_when_one_clean_up_is() -> None:
    measured = {"as-is": 4.0, "jpeg95": 3.0, "jpeg75": 2.0, "jpeg50": 1.0, "down-up": 2.5}
    assert set(efficacy.ISSUE4_CLEANUPS) == set(measured) - {"as-is"} | {"blur"}
    rows = [_row(measured)] * 3
    assert math.isnan(efficacy._worst_cleanup(rows, "taesd"))  # min() said 1.0 before
    rows = [_row({**measured, "blur": 0.5})] * 3
    assert efficacy._worst_cleanup(rows, "taesd") == 0.5
    assert "| worst clean-up | 12% |" in efficacy.retention_table({"cloak medium": rows})


def test_run_one_protects_and_compares_as_the_product_does(tmp_path, monkeypatch, model_dir):
    """run_one hands the protector cloak.io's pixels with the gray flag `cloak protect`
    passes, writes the copy as the product does, and verifies that file with its
    transparency (verify's note on transparent photos is in the row)."""
    from cloak.verify import verify_images

    monkeypatch.setattr(efficacy, "CHANNELS", ("as-is", "instagram"))
    compared: list[Image.Image] = []

    def verify_recorded(original, protected, *args, **kwargs):
        compared.append(protected)
        return verify_images(original, protected, *args, models=("taesd",), **kwargs)

    monkeypatch.setattr(efficacy, "verify_images", verify_recorded)
    asked: list[bool] = []

    def protect_fn(rgb, grayscale=False):  # a seeded +-4/255 change, gray where asked
        asked.append(grayscale)
        noise = np.random.default_rng(0).choice([-4, 4], rgb.shape[:2] + (1,)) / 255
        return np.clip(rgb + noise, 0, 1).astype(np.float32)

    gray = tmp_path / "g.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)), "L").save(gray)
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(1).integers(0, 256, (48, 64, 3))
    rgba[:, 32:, 3] = 255  # the left half hidden, black under it
    rgba[:, :32, :3] = 0
    clear = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(clear)
    rows = [efficacy.run_one(src.name, efficacy.load_as_verify(src), protect_fn,
                             tmp_path / "out", source=src) for src in (gray, clear)]
    assert asked == [True, False]
    assert "transparent" in (rows[1]["note"] or "")
    with Image.open(tmp_path / "out" / "t.png") as written:
        assert written.mode == "RGBA"
    for src, seen in zip((gray, clear), compared):  # the files as written, not the pixels
        as_read = efficacy.load_as_verify(tmp_path / "out" / src.name)
        assert seen.mode == as_read.mode and seen.tobytes() == as_read.tobytes()
    assert compared[1].mode == "RGBA"
