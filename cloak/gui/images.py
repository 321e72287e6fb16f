"""Display helpers (no Qt here): upright previews and the amplified difference image.

This is display code only: it never writes a file and never feeds the protection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cloak import io  # also registers the HEIC/HEIF opener with Pillow

log = logging.getLogger(__name__)

TRANSPARENT_SHOWN_AS = (236, 239, 244)  # the thumbnail frame's colour (#eceff4)
DIFF_GAIN = 10  # |protected - original| x 10: a change of 8/255 shows as 80/255


def open_upright(path: Path, max_side: int | None = None) -> Image.Image:
    """The photo at `path` as upright 8-bit RGB, at most `max_side` px on its long side."""
    with Image.open(path, formats=io.READ_FORMATS) as image:  # never EPS, PSD... by content
        # Checked here, not left to Pillow's global limit, which io lifts for a moment
        # while it decodes its own in-memory re-encodes (on another thread, in the app).
        if image.width * image.height > io.pixel_limit():
            raise ValueError(f"{image.width}x{image.height} is over the pixel limit")
        if max_side:
            image.draft("RGB", (max_side, max_side))  # fast JPEG downscale on decode
        upright = ImageOps.exif_transpose(image)
        if upright.mode.startswith("I"):  # 16/32-bit gray: RGB conversion clips, so scale
            upright = upright.convert("I").point(lambda v: v * (1 / 257))
        rgb = on_light_background(upright)
    if max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def on_light_background(image: Image.Image) -> Image.Image:
    """8-bit RGB, with any transparency shown over the app's light gray (dropping alpha
    would show what the transparent pixels hide, usually black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and
                                              "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_SHOWN_AS + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def thumbnail(path: Path, size: int) -> Image.Image | None:
    """A small upright preview, or None if the file is not a readable image."""
    try:
        return open_upright(path, size)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.debug("no thumbnail for %s: %s", path, exc)
        return None


@dataclass
class Comparison:
    """Three display images of the same size: original, protected, amplified difference."""

    original: Image.Image
    protected: Image.Image
    difference: Image.Image
    max_change255: int


def amplified_difference(original: Image.Image, protected: Image.Image,
                         gain: float = DIFF_GAIN) -> tuple[Image.Image, int]:
    """|protected - original| x gain, clipped to [0, 255], and the largest change in /255."""
    if protected.size != original.size:
        protected = protected.resize(original.size, Image.Resampling.LANCZOS)
    a = np.asarray(original.convert("RGB"), dtype=np.int16)
    b = np.asarray(protected.convert("RGB"), dtype=np.int16)
    diff = np.abs(b - a)
    shown = np.clip(diff.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return Image.fromarray(shown, "RGB"), int(diff.max(initial=0))


def as_image(photo: io.Photo) -> Image.Image:
    """The upright pixels cloak protects, as an 8-bit RGB image."""
    return Image.fromarray(np.round(photo.rgb * 255).astype(np.uint8), "RGB")


def compare(original_path: Path, protected_path: Path, max_side: int = 1024) -> Comparison:
    """Both photos as cloak reads them (upright, colour-managed); the difference is taken
    at full size, then all three are downscaled for display."""
    original = as_image(io.load_photo(original_path))
    protected = as_image(io.load_photo(protected_path))
    difference, max_change = amplified_difference(original, protected)
    images = []
    for image in (original, protected, difference):
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        images.append(image)
    return Comparison(*images, max_change255=max_change)
