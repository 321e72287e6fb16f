"""Colour spaces: pixels brought to sRGB through their ICC profile, for the screen and for
comparing two photos whose profiles differ (an iPhone's Display P3 original and the sRGB
copy a platform sends back)."""

from __future__ import annotations

import io
import logging

from PIL import Image

log = logging.getLogger(__name__)


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """8-bit RGB `image` whose values are in `icc_profile`'s colour space, converted to
    sRGB (relative colorimetric, lcms). A gray profile's image (R = G = B, as a gray photo
    is read) goes through its gray tone curve. Without a profile, with another kind (CMYK
    pixels are converted when read) or with one lcms can't use, `image` itself."""
    if not icc_profile or image.mode != "RGB":
        return image
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        space = source.profile.xcolor_space.strip()
        if space == "GRAY":
            image = image.convert("L")  # its one channel (the three are equal)
        elif space != "RGB":
            return image
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode="RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)  # Pillow's default is
        # perceptual, which a table-based profile renders differently
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.debug("colour profile not used: %s", exc)
        return image


def profile_name(icc_profile: bytes | None) -> str:
    """A short name for a profile ("none" without one)."""
    if not icc_profile:
        return "none"
    from PIL import ImageCms

    try:
        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(
            io.BytesIO(icc_profile))).strip()
    except (ImageCms.PyCMSError, OSError, ValueError):
        return "an unreadable profile"
    return name or "an unnamed profile"
