"""What posting and common clean-ups do to a photo: the channels cloak verify measures.

Each takes a PIL image (RGB, or RGBA: the posting presets flatten it onto white, as the
platforms do) and returns RGB. The social presets approximate each platform's size cap and
JPEG quality; the clean-ups are what an editor or someone removing the protection does
first (re-save, downscale and upscale, blur, crop, an editor's own resize).
"""

from __future__ import annotations

import io as _io

import numpy as np
import torch
from PIL import Image, ImageFilter

from . import metrics
from .channel_list import INSTAGRAM_ASPECT, SOCIAL_PRESETS
from .errors import UnsupportedImageError
from .io import decode_own_bytes, to_8bit
from .pipeline import to_tensor

# The `naive` clean-up is no edit either: an editor that downscales the photo to 512
# without antialiasing (bilinear, what cv2.resize and torch's F.interpolate do by
# default), so each pixel it keeps blends only the 2x2 photo pixels nearest it: it sees
# the photo's fine detail aliased, not averaged. The photo as is when it is no larger.
# The `grid` clean-up is no edit at all: an editor that rounds its 512 px resize down to a
# multiple of 8 (diffusers), where cloak measures at the nearest one. For a 3:2 photo
# that is 512x336 against 512x344, a stretch that moves the latent grid by up to a cell;
# for a photo whose sides round the same way both ways (4:3, 16:9) it is the photo as is.
# The `crop` clean-up: what is this many px at long side 512 off the top and left edges.
# The autoencoders see the photo on an 8 px latent grid. Once the cropped photo is resized
# back to 512, the grid falls 4 px (half a cell) off where the attack saw it at the cut
# edges, and a little less towards the far edges (the resize stretches it by 4/512). A 2 px
# crop left more damage (benchmarks/crop_as_is.md).
CROP_AT_512 = 4


def jpeg_bytes_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as a platform would (4:2:0 JPEG) and decode."""
    buf = _io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=2)
    buf.seek(0)
    return decode_own_bytes(buf).convert("RGB")


def cap_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Downscale (never upscale) so the long side is at most `long_side`."""
    w, h = img.size
    if max(w, h) <= long_side:
        return img
    s = long_side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)


def crop_to_aspect(img: Image.Image, lo: float, hi: float) -> Image.Image:
    """Centre-crop so width/height lies in [lo, hi]; an image inside the range is returned
    as it is."""
    w, h = img.size
    if w / h < lo:  # too tall: keep the middle rows
        new_h = max(1, round(w / lo))
        top = (h - new_h) // 2
        return img.crop((0, top, w, top + new_h))
    if w / h > hi:  # too wide: keep the middle columns
        new_w = max(1, round(h * hi))
        left = (w - new_w) // 2
        return img.crop((left, 0, left + new_w, h))
    return img


def cap_width(img: Image.Image, width: int) -> Image.Image:
    """Downscale (never upscale) so the width is at most `width`."""
    w, h = img.size
    if w <= width:
        return img
    return img.resize((width, max(1, round(h * width / w))), Image.LANCZOS)


def fit_for_posting(img: Image.Image, channel: str) -> Image.Image:
    """The geometry a social preset gives an upload, before its JPEG re-encode."""
    limit, _ = SOCIAL_PRESETS[channel]
    if channel == "instagram":
        return cap_width(crop_to_aspect(img, *INSTAGRAM_ASPECT), limit)
    return cap_long_side(img, limit)


def crop_at_512(img: Image.Image, px: int = CROP_AT_512) -> Image.Image:
    """Crop what is `px` pixels at long side 512 (at least 1 px) off the top and left: an
    editor or platform that crops moves the models' 8 px latent grid against the photo (and
    the editor's resize of the cropped photo stretches it slightly)."""
    k = max(1, round(px * max(img.size) / 512))
    return img.crop((k, k, img.width, img.height))


def resize_rounding_down(img: Image.Image, long_side: int = 512) -> Image.Image:
    """The photo as an editor that rounds its `long_side` resize down to a multiple of 8
    feeds it to the models; the photo itself where that equals cloak's own rounding."""
    w, h = img.size
    down = metrics.long_side_dims_down(h, w, long_side)
    if down == metrics.long_side_dims(h, w, long_side):
        return img
    return img.resize((down[1], down[0]), Image.LANCZOS)


def resize_without_antialiasing(img: Image.Image, long_side: int = 512) -> Image.Image:
    """The photo as an editor that downscales it to `long_side` (cloak's rounding of the
    sides) without antialiasing feeds it to the models; the photo itself if no larger."""
    from .pipeline import naive_downscale

    w, h = img.size
    size = metrics.long_side_dims(h, w, long_side)
    if max(w, h) <= long_side:
        return img
    small = naive_downscale(image_tensor(img), size)[0].permute(1, 2, 0).numpy()
    return Image.fromarray(np.round(small * 255).astype(np.uint8), "RGB")


# What a posting preset flattens a transparent photo onto: the platforms re-encode an
# upload as JPEG, which has no alpha, and show what was transparent as white (the usual
# choice; some apps have shown black). A choice, not a measurement of any platform.
POSTING_BACKGROUND = (255, 255, 255)


def rgb_or_rgba(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB, or RGBA when it carries transparency (an alpha band, a palette's
    or a colour key's); `img` itself when it is already either. 16-bit gray (I;16, or I
    holding 16-bit levels) is rounded to 8 bits as cloak.io reads such a file; float and
    other colour spaces (F, LAB, HSV) raise UnsupportedImageError."""
    if img.mode == "RGBA" or (img.mode == "RGB" and "transparency" not in img.info):
        return img
    if img.mode in ("F", "LAB", "HSV"):  # Pillow's convert would clip or misread them
        raise UnsupportedImageError(
            f"images in PIL mode {img.mode} are not supported; pass an 8- or 16-bit RGB "
            "or grayscale image")
    if img.mode.startswith("I"):
        return _gray16_to_8(img)
    bands = img.getbands()
    if "A" in bands or "a" in bands or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("RGB")


def _gray16_to_8(img: Image.Image) -> Image.Image:
    """A 16-bit gray image (mode I;16*, or I holding 0-65535) as 8-bit RGB, or RGBA where
    its colour key marks a transparent level; Pillow's own convert clips at 255 instead."""
    levels = np.asarray(img).astype(np.int64)
    if levels.size and (levels.min() < 0 or levels.max() > 65535):
        raise UnsupportedImageError("32-bit integer pixels are not supported; pass an 8- or "
                                    "16-bit image")
    gray = Image.fromarray(to_8bit(levels), "L")
    key = img.info.get("transparency")
    if not isinstance(key, int):
        return gray.convert("RGB")
    out = gray.convert("RGBA")
    out.putalpha(Image.fromarray(np.where(levels == key, 0, 255).astype(np.uint8), "L"))
    return out


def resize_keeping_colour(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`img` (RGB or RGBA) resized to `size` (w, h) with Lanczos; an RGBA image's colour and
    alpha each on their own (Pillow premultiplies RGBA, which blackens the colour stored
    under transparent pixels: the colour an editor that drops the alpha sees)."""
    if img.mode != "RGBA":
        return img.resize(size, Image.LANCZOS)
    out = img.convert("RGB").resize(size, Image.LANCZOS)
    out.putalpha(img.getchannel("A").resize(size, Image.LANCZOS))
    return out


def flatten(img: Image.Image, background: tuple[int, int, int] = POSTING_BACKGROUND
            ) -> Image.Image:
    """`img` as RGB with any transparency composited onto `background` (what a platform's
    JPEG re-encode makes of it); an image without transparency as RGB (itself if RGB)."""
    img = rgb_or_rgba(img)
    if img.mode == "RGB":
        return img
    under = Image.new("RGBA", img.size, (*background, 255))
    return Image.alpha_composite(under, img).convert("RGB")


def is_transparent(img: Image.Image) -> bool:
    """Whether `img` (as rgb_or_rgba makes it) has a pixel that is not fully opaque."""
    return img.mode == "RGBA" and img.getchannel("A").getextrema()[0] < 255


def apply_channel(img: Image.Image, channel: str) -> Image.Image:
    """Simulate a posting channel or clean-up on an image (RGB, or RGBA), returning RGB.

    Transparency: a posting preset (SOCIAL_PRESETS) sees the image flattened onto
    POSTING_BACKGROUND (white) first, as a platform's JPEG re-encode stores it: what was
    transparent is white in both the original and its copy, and carries no damage. Every
    other channel, `as-is` included, sees the stored colour with the alpha dropped: what
    an editor that opens the file as RGB (PIL's convert("RGB"), diffusers' load_image)
    hands the models, and what protection changed (cloak perturbs the colour and keeps the
    alpha bit for bit). Both photos of a pair always get the same treatment."""
    if channel in SOCIAL_PRESETS:
        _, quality = SOCIAL_PRESETS[channel]
        return jpeg_bytes_roundtrip(fit_for_posting(flatten(img), channel), quality)
    if img.mode != "RGB":
        img = img.convert("RGB")
    if channel == "as-is":
        return img
    if channel.startswith("jpeg"):
        return jpeg_bytes_roundtrip(img, int(channel[4:]))
    if channel == "down-up":
        w, h = img.size
        small = img.resize((max(1, w // 2), max(1, h // 2)), Image.BICUBIC)
        return small.resize((w, h), Image.BICUBIC)
    if channel == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=0.8))
    if channel == "crop":
        return crop_at_512(img)
    if channel == "grid":
        return resize_rounding_down(img)
    if channel == "naive":
        return resize_without_antialiasing(img)
    raise ValueError(f"unknown channel {channel!r}")


def image_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image's colour as (1, 3, H, W) float32 in [0, 1] (its alpha, if any, dropped).
    16-bit gray is scaled from its 16 bits (see rgb_or_rgba), not clipped at 255."""
    return to_tensor(np.asarray(rgb_or_rgba(img).convert("RGB"), dtype=np.float32) / 255)
