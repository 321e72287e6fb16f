"""Display helpers (no Qt here): upright previews and the amplified difference image.

This is display code only: it never writes a file and never feeds the protection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cloak import io  # also registers the HEIC/HEIF opener with Pillow
from cloak.colour import to_srgb
from cloak.errors import CloakError, UnsupportedImageError
from cloak.naming import about

log = logging.getLogger(__name__)

# Transparency is shown over a checkerboard of these two colours, in squares of
# CHECKER_SQUARE display pixels (an image editor's convention: a flat colour was taken
# for the photo's own background in a trial).
CHECKER_COLOURS = ((255, 255, 255), (214, 219, 226))
CHECKER_SQUARE = 8
DIFF_GAIN = 10  # |protected - original| x 10: a change of 8/255 shows as 80/255
SHRINK_FIRST = ("RGB", "RGBA", "L", "LA", "CMYK")  # modes a box shrink handles as they are


def open_upright(path: Path, max_side: int | None = None) -> Image.Image:
    """The photo at `path` as upright 8-bit RGB, at most `max_side` px on its long side.
    Pillow's decompression-bomb limit (twice 89.5 MP refused) is cloak's (200 MP) here: a
    photo Pillow refuses is opened again under io.decoding_limit, whose lock the others
    don't wait for (the worker holds it while it decodes a photo). So is a PNG whose
    profile or XMP unpacks past Pillow's 1 MB (decoding_limit allows more)."""
    try:
        return _open_upright(path, max_side)
    except (Image.DecompressionBombError, ValueError) as exc:
        if isinstance(exc, ValueError) and "MAX_TEXT_CHUNK" not in str(exc):
            raise
        with io.decoding_limit(Path(path), io.pixel_limit()):
            return _open_upright(path, max_side)


def _open_upright(path: Path, max_side: int | None) -> Image.Image:
    # From an open file, as cloak.io reads photos, not by name: Pillow maps a named
    # uncompressed TIFF's pixels (8-bit gray, RGBA, CMYK, 16-bit gray) straight from the
    # file at its turned size, and one turned 90 degrees by its orientation was sheared.
    with open(path, "rb") as fp, \
            Image.open(fp, formats=io.READ_FORMATS) as image:  # never EPS, PSD... by content
        # Checked here too: io lifts Pillow's global limit for a moment while it decodes
        # its own in-memory re-encodes (on another thread, in the app).
        if image.width * image.height > io.pixel_limit():
            raise ValueError(f"{image.width}x{image.height} is over the pixel limit")
        if image.format in ("JPEG", "MPO"):  # even a thumbnail decodes every scan: a
            io.check_jpeg_scans(image.fp, path)  # bomb of 20,000 took 67 s (refused)
        if max_side:
            image.draft("RGB", (max_side, max_side))  # fast JPEG downscale on decode
            # (not TIFF: Pillow turns a TIFF upright while loading it, after the box
            # for the shrink was taken from its stored size)
            if image.mode in SHRINK_FIRST and image.format != "TIFF" and \
                    max(image.size) > 2 * max_side:
                # Other formats decode at full size: shrink before turning and colour
                # conversion, which would each copy a 48 MP photo (done in place: the
                # EXIF orientation and ICC profile stay in image.info).
                image.thumbnail((2 * max_side, 2 * max_side), Image.Resampling.BOX)
        upright = exif_upright(image)
        if upright.mode == "CMYK":  # through its profile, as the protection reads it (a
            # CMYK profile is no use to shown_in_srgb, and the plain formula shifts colours)
            rgb = Image.fromarray(io.from_cmyk(upright, path, image.info.get("icc_profile"))[0])
        else:
            from ..verify import rgb_or_rgba

            # (16-bit gray scaled to 8 bits there: Pillow's own RGB conversion clips it)
            return _shown(rgb_or_rgba(upright), image.info.get("icc_profile")
                          or _cicp_profile(image, path), max_side)
    if max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def exif_upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF Orientation says, as cloak reads photos (and viewers
    show them): not by an orientation given only in its XMP, which Pillow's getexif() and
    exif_transpose also follow (the thumbnail was turned where the copy and the comparison
    are not). Pillow turns a TIFF as it loads it, by an XMP-only orientation too: that
    turn is undone, as cloak.io undoes it. A HEIF is turned by pillow-heif: left so."""
    from cloak.compression import STORED
    from cloak.metadata import ORIENTATION, orientation_in_exif

    if image.format == "TIFF":
        xmp_turn = 1 if ORIENTATION in image.tag_v2 else image.getexif().get(ORIENTATION, 1)
        upright = ImageOps.exif_transpose(image)
        return upright.transpose(STORED[xmp_turn]) if xmp_turn in STORED else upright
    if image.format != "HEIF" and ORIENTATION in image.getexif() and \
            not orientation_in_exif(image):
        image.load()
        return image  # shown as stored, as its copy is
    return ImageOps.exif_transpose(image)


def _cicp_profile(image: Image.Image, path: Path) -> bytes | None:
    """The ICC profile a photo's CICP tag names (cloak.cicp_icc: a Display P3 HEIC's nclx,
    an AVIF's, a PNG's cICP chunk), as verify reads it; None without one, or for sRGB's."""
    from cloak.cicp import avif_cicp, png_cicp
    from cloak.cicp_icc import icc_for_cicp

    nclx = image.info.get("nclx_profile") or {}
    cicp = None
    if nclx:
        cicp = nclx.get("color_primaries"), nclx.get("transfer_characteristics")
    elif image.format in ("PNG", "AVIF"):
        try:
            with open(path, "rb") as fp:
                found = png_cicp(fp) if image.format == "PNG" else avif_cicp(fp)
        except OSError:
            return None
        cicp = tuple(found[:2]) if found else None
    return icc_for_cicp(*cicp) if cicp else None


def _shown(image: Image.Image, icc_profile: bytes | None, max_side: int | None
           ) -> Image.Image:
    """RGB or RGBA `image`, shrunk to `max_side` (in place), as shown: in sRGB, and any
    transparency over the checkerboard, drawn after the shrink so its squares keep their
    size on screen."""
    if max_side:  # colour and alpha together: Pillow premultiplies RGBA, so the colour
        # under transparent pixels leaves no dark fringe at their edges
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if image.mode != "RGBA":
        return shown_in_srgb(image, icc_profile)
    colour = shown_in_srgb(image.convert("RGB"), icc_profile)
    return on_checkerboard(Image.merge("RGBA", (*colour.split(), image.getchannel("A"))))


def shown_in_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """8-bit RGB `image` whose values are in `icc_profile`'s colour space, converted to
    sRGB for the screen (a Display P3 or Adobe RGB photo shown raw looks muted). Without a
    profile, or with one lcms can't use, the image as it is."""
    return to_srgb(image, icc_profile)


def checkerboard(size: tuple[int, int]) -> Image.Image:
    """An RGB checkerboard of `size` (w, h) in CHECKER_COLOURS, squares of CHECKER_SQUARE
    px, the top-left one light."""
    width, height = size
    rows, cols = np.indices((height, width)) // CHECKER_SQUARE
    board = np.empty((height, width, 3), np.uint8)
    board[:] = CHECKER_COLOURS[0]
    board[(rows + cols) % 2 == 1] = CHECKER_COLOURS[1]
    return Image.fromarray(board, "RGB")


def on_checkerboard(image: Image.Image) -> Image.Image:
    """8-bit RGB, with any transparency shown over the checkerboard (dropping alpha would
    show what the transparent pixels hide, usually black)."""
    from ..verify import rgb_or_rgba

    image = rgb_or_rgba(image)
    if image.mode == "RGB":
        return image
    under = checkerboard(image.size).convert("RGBA")
    return Image.alpha_composite(under, image).convert("RGB")


def thumbnail(path: Path, size: int) -> Image.Image | None:
    """A small upright preview, or None if the file is not a readable image. Warnings
    while it is read name `path` in the log (naming.about)."""
    try:
        with about(path):
            return open_upright(path, size)
    except (OSError, UnidentifiedImageError, ValueError, UnsupportedImageError) as exc:
        log.debug("no thumbnail for %s: %s", path, exc)
        return None


def thumbnail_or_why(path: Path, size: int) -> tuple[Image.Image | None, str | None]:
    """(thumbnail or None, why the photo can't be protected or None), the reason in
    cloak's own words ("PATH: the file is empty (0 bytes)"). A file that holds several
    pictures (an animated GIF, a multi-page TIFF) gets its first as the thumbnail, and the
    reason; (None, None) where the protection reads a file the preview could not show.
    The frames, asked of every photo, are counted only where no other thread is decoding
    (a batch's photo: the thumbnails, one at a time, would wait seconds behind it; the
    protect step says why then). The reason for a file the preview failed on (rare) is
    load_photo's, which does wait for such a decode."""
    with about(path):  # its warnings name it (the frames' count reads the header)
        image = thumbnail(path, size)
        if image is not None:  # the header alone: no second decode
            return image, io.frames_problem(path, wait=False)
        try:
            io.load_photo(path)  # only for a file the preview failed on: damaged, mostly
        except CloakError as exc:
            return None, str(exc)
        except (OSError, MemoryError, ValueError) as exc:  # the protect step says it then
            log.debug("%s: no reason found for the missing thumbnail: %s", path, exc)
        return None, None


@dataclass
class Comparison:
    """Display images of the same size: original, protected, amplified difference, and
    the budget map (gray, white = most; None when it could not be made)."""

    original: Image.Image
    protected: Image.Image
    difference: Image.Image
    max_change255: int
    budget: Image.Image | None = None
    eps255: float | None = None  # the bound the copy was made with, when known
    transparent: bool = False  # the photo has transparency (shown over a checkerboard)


class SizesDiffer(CloakError, ValueError):
    """A photo and its protected copy are of different sizes: no difference to show."""


def amplified_difference(original: Image.Image, protected: Image.Image,
                         gain: float = DIFF_GAIN) -> tuple[Image.Image, int]:
    """|protected - original| x gain, clipped to [0, 255], and the largest change in /255.
    SizesDiffer where the two differ in size: one was cropped, turned or resized since the
    copy was made, and a difference taken after stretching one would show that, not the
    protection (a reason in plain words, not the app's "unexpected error")."""
    if protected.size != original.size:
        raise SizesDiffer(f"the photo is {original.width}x{original.height} and its "
                         f"protected copy {protected.width}x{protected.height}: one was "
                         "cropped, turned or resized since the copy was made")
    a = np.asarray(original.convert("RGB"), dtype=np.int16)
    b = np.asarray(protected.convert("RGB"), dtype=np.int16)
    diff = np.abs(b - a)
    del a, b
    max_change = int(diff.max(initial=0))
    # in place, in int16 (255 x 10 fits): no float copy of a full-size photo
    np.multiply(diff, gain, out=diff, casting="unsafe")
    np.minimum(diff, 255, out=diff)
    return Image.fromarray(diff.astype(np.uint8), "RGB"), max_change


def as_image(photo: io.Photo) -> Image.Image:
    """The upright pixels cloak protects, as an 8-bit RGB image; RGBA when the photo has
    alpha (as verify compares it: 16-bit alpha rounded)."""
    from ..verify import photo_image

    return photo_image(photo)


def budget_image(rgb: np.ndarray, config, size: tuple[int, int] | None = None
                 ) -> Image.Image | None:
    """The budget map `config` gives the upright pixels `rgb` ((H, W, 3) in [0, 1]), as a
    gray image of `size` (w, h; None: the working size), white = most; None if it can't
    be made (no face detector here: the map is then left out, not shown without its
    faces)."""

    from cloak.errors import CloakError
    from cloak.pipeline import budget_of

    try:
        budget = budget_of(rgb, config.replace(allow_download=False))
    except CloakError as exc:
        log.info("no budget map to show: %s", exc)
        return None
    gray = Image.fromarray(np.round(np.clip(budget, 0, 1) * 255).astype(np.uint8), "L")
    if size is not None:
        gray = gray.resize(size, Image.Resampling.BILINEAR)
    return gray.convert("RGB")


def compare(original_path: Path, protected_path: Path, max_side: int = 1024,
            config=None) -> Comparison:
    """Both photos as cloak reads them (upright); the difference is taken at full size on
    the stored values, then all three are downscaled for display, the photos converted to
    sRGB from their colour profiles (shown_in_srgb). With `config` (the ProtectConfig the
    copy was made with), also the budget map it gave the original."""
    from ..verify import colour_profile  # an ICC profile, or the one a CICP tag names

    with about(original_path):
        original_photo = io.load_photo(original_path)
    original, icc = as_image(original_photo), colour_profile(original_photo)
    budget = None if config is None else budget_image(original_photo.rgb, config)
    del original_photo
    with about(protected_path):
        protected_photo = io.load_photo(protected_path)
    protected, protected_icc = as_image(protected_photo), colour_profile(protected_photo)
    del protected_photo
    difference, max_change = amplified_difference(original, protected)
    images = []
    for image, profile in ((original, icc), (protected, protected_icc), (difference, None)):
        # over the checkerboard, as the thumbnail shows it (the colour under the
        # transparency is usually black: with the alpha dropped the copy looked flattened)
        images.append(_shown(image, profile, max_side))
    if budget is not None:  # from the working size to the size shown
        budget = budget.resize(images[0].size, Image.Resampling.BILINEAR)
    return Comparison(*images, max_change255=max_change, budget=budget,
                      eps255=None if config is None else config.eps255,
                      transparent=original.mode == "RGBA"
                      and original.getchannel("A").getextrema()[0] < 255)
