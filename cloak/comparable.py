"""Make an original and a copy of it comparable, or refuse a copy that is not of it.

A copy downloaded back smaller, cropped to Instagram's shape, flattened, made black and
white, or stored in another colour space is compared with the original made the same way
(each says so in a note); a turned, mirrored or edited copy, or another photo, raises
UnsupportedImageError with what it looks like.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from . import metrics
from .channel_list import INSTAGRAM_ASPECT
from .channels import (
    crop_to_aspect,
    flatten,
    image_tensor,
    is_transparent,
    resize_keeping_colour,
    rgb_or_rgba,
)
from .colour import profile_name, to_srgb

# What a transparent original may have become in an opaque copy: flattened onto white (the
# usual platform) or black (some apps), or its alpha dropped (an editor's convert("RGB")).
FLATTENINGS = (("onto white", (255, 255, 255)), ("onto black", (0, 0, 0)),
               ("by dropping its transparency", None))


# pair_transparency's note for a pair that both keep their transparency (cloak's copies do)
TRANSPARENT_PAIR_NOTE = (
    "the photos are transparent: the posting presets compare them flattened onto white, as "
    "a platform shows them; every other channel compares the colour stored under the "
    "transparency, which an editor that drops it sees")
# and for such a pair whose copy lost the colour under its transparency
HIDDEN_COLOUR_NOTE = (
    "the copy keeps the transparency but not the colour stored under it (cleared by an "
    "encoder or optimiser, as WebP's is by default): both were compared flattened onto "
    "white, as they show")
WHITE = (255, 255, 255)


def thumbnail_size(size: tuple[int, int], side: int | None = None) -> tuple[int, int]:
    """`size` scaled down (never up) to long side `side` (TURN_CHECK_SIDE by default),
    each side at least 1: what the quick pairing checks compare at."""
    scale = min(1.0, (side or TURN_CHECK_SIDE) / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def pair_transparency(original: Image.Image, protected: Image.Image
                      ) -> tuple[Image.Image, Image.Image, str | None]:
    """The two photos (rgb_or_rgba) as verify compares them, and a note saying what was
    done with transparency, or None when neither is transparent.

    - Both transparent (cloak's copy keeps the alpha bit for bit): unchanged; the posting
      presets flatten both onto white (apply_channel), which the note says. Where the
      colour under the transparency was cleared since (the pair would be refused as
      another photo, but shows the same), both are flattened onto white here.
    - A transparent original and an opaque copy (a platform's flattened copy): the original
      is flattened the way that pairs best with the copy (coarse PSNR at 64 px, scored on
      thumbnails, so only the choice is flattened at full size): onto white, onto black,
      or with its alpha dropped (chosen on thumbnails, so the two may differ in size: a
      copy downloaded back smaller is paired after this, as the platform flattened first).
    - An opaque original: unchanged; a transparent copy's alpha is dropped here, so that
      the posting presets do not flatten the copy alone onto white."""
    if not is_transparent(original):
        return original, (protected.convert("RGB") if is_transparent(protected)
                          else protected), None
    if is_transparent(protected):
        bar = comparable_db(original.size)
        if coarse_psnr(original, protected) < bar and coarse_psnr(
                flatten(original, WHITE), flatten(protected, WHITE)) >= bar:
            # transparent still, but the colour under the transparency cleared (a WebP
            # encoder, a PNG optimiser, a resize): what shows is the same, what is
            # hidden is not, and the pair was refused as another photo
            return flatten(original, WHITE), flatten(protected, WHITE), HIDDEN_COLOUR_NOTE
        return original, protected, TRANSPARENT_PAIR_NOTE
    size = thumbnail_size(original.size)
    small, small_copy = resize_keeping_colour(original, size), protected.resize(size, Image.BOX)

    def flattened(img: Image.Image, background: tuple[int, int, int] | None) -> Image.Image:
        return flatten(img, background) if background else img.convert("RGB")

    how, background = max(FLATTENINGS, key=lambda t: coarse_psnr(
        flattened(small, t[1]), small_copy))
    return flattened(original, background), protected, (
        f"the original is transparent and the copy is not: the original was flattened "
        f"{how} to compare them, as the copy seems to be")


# The ways a photo is commonly made black and white, each (what the note says, its key
# for made_gray): Rec. 601 luma (Pillow's convert("L"), JPEG's), Rec. 709 luma (sRGB's
# primaries), the channels' average, and the lightness (max + min) / 2 that some editors'
# "desaturate" takes.
GRAY_WAYS = (("as Rec. 601 luma", "601"), ("as Rec. 709 luma", "709"),
             ("as the channels' average", "average"),
             ("as lightness, (max + min) / 2", "lightness"))
_GRAY_MATRICES = {"709": (0.2126, 0.7152, 0.0722, 0.0), "average": (1 / 3, 1 / 3, 1 / 3, 0.0)}


def made_gray(img: Image.Image, way: str) -> Image.Image:
    """`img` (RGB or RGBA) black and white the GRAY_WAYS `way` ("601", "709", "average"
    or "lightness"), in the same mode (three equal channels; the alpha kept)."""
    from PIL import ImageChops

    rgb = img.convert("RGB")
    if way == "601":
        gray = rgb.convert("L")
    elif way == "lightness":
        r, g, b = rgb.split()
        gray = ImageChops.add(ImageChops.lighter(ImageChops.lighter(r, g), b),
                              ImageChops.darker(ImageChops.darker(r, g), b), scale=2.0)
    else:
        gray = rgb.convert("L", _GRAY_MATRICES[way])
    out = Image.merge("RGB", (gray, gray, gray))
    if img.mode == "RGBA":
        out.putalpha(img.getchannel("A"))
    return out


def pair_gray(original: Image.Image, protected: Image.Image
              ) -> tuple[Image.Image, str | None]:
    """The original as verify compares it with `protected` (the same size; rgb_or_rgba):
    made black and white the GRAY_WAYS way closest to the copy (PSNR on thumbnails) where
    the copy is black and white and the original is not, with a note saying so; else
    itself and None. What protection changed in the brightness survives a black and white
    copy, and is measured; its colour part is gone."""
    size = thumbnail_size(original.size)  # looks_gray's size: it shrinks these no more
    small, small_copy = (rgb_or_rgba(i).resize(size, Image.BOX).convert("RGB")
                         for i in (original, protected))
    if not looks_gray(small_copy) or looks_gray(small):
        return original, None
    copy_luma = _luma(small_copy)
    how, way = max(GRAY_WAYS, key=lambda named: _psnr_luma(
        _luma(made_gray(small, named[1])), copy_luma))
    return made_gray(original, way), (
        f"the copy is black and white: it was compared with the original made black and "
        f"white the way that matches it best ({how}); protection's colour part is gone "
        "from such a copy, its brightness part is what was measured")


def _in_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """`image`'s colour converted to sRGB (to_srgb), its alpha band, if any, kept."""
    image = rgb_or_rgba(image)
    converted = to_srgb(image.convert("RGB"), icc_profile)  # a new image: ours to change
    if image.mode == "RGBA":
        converted.putalpha(image.getchannel("A"))
    return converted


def in_one_colour_space(original: Image.Image, protected: Image.Image,
                        original_icc: bytes | None, protected_icc: bytes | None
                        ) -> tuple[Image.Image, Image.Image, str | None]:
    """The two photos with values in one colour space: as they are when their ICC profiles
    agree (cloak's copies keep the original's); both converted to sRGB when they differ
    (a Display P3 original and the sRGB copy a platform sends back, whose colour shift
    would otherwise count as damage), with a note saying so."""
    if (original_icc or None) == (protected_icc or None):
        return original, protected, None
    names = f"{profile_name(original_icc)} and {profile_name(protected_icc)}"
    converted = (_in_srgb(original, original_icc), _in_srgb(protected, protected_icc))
    in_srgb = (f"the two photos have different colour profiles ({names}): both were "
               "compared in sRGB")
    if original_icc and protected_icc:
        return (*converted, in_srgb)
    # One has no profile: sRGB by convention (a platform's copy), or the original's own
    # values with the profile left out (`protect --no-icc`). The copy is meant to be the
    # original's, so the reading under which the two agree best is the right one.
    if coarse_psnr(*converted) > coarse_psnr(original, protected):
        return (*converted, in_srgb)
    return original, protected, (f"the two photos have different colour profiles "
                                 f"({names}); they match best as stored, so they were "
                                 "compared as stored")


# A copy resized from the original has each side within this many of its px of the
# original's side at one common scale (rounding, or an encoder's even sizes); a copy
# cropped by more, along either side, is not lined up with a resized original, and is not
# taken for one.
RESIZE_SLACK_PX = 1
# A protected copy differs from its original only in fine detail: at long side 64 the two
# stay above this PSNR (44.3 dB at the least over the 25 dev photos at `fast`, eps 8/255,
# its flattest map), while a brightness edit or another photo falls far below it.
COMPARABLE_DB = 35.0
# A photo smaller than that is not averaged down to 64 px (or little), so its change
# counts nearly in full: cloak's own JPEG copy of a 64 px photo measured 31.5 dB at fast
# and 27.1 at high (eps 12), 128 px ones 38.4 and 31.3, 192 px 41.6 and 34.4 (d08, d14).
# The bar starts at SMALL_COMPARABLE_DB at 64 px and rises 10 dB a tenfold in size
# (the change is smooth, so averaging lowers it less than independent noise), up to
# COMPARABLE_DB from about 550 px.
SMALL_COMPARABLE_DB = 25.5


# ...which a brightness or contrast edit of a small photo clears too (x1.1 brighter at
# 64 px: 25.7 to 34 dB), so there a copy also keeps the original's tones: the slope of the
# copy's values on the original's, at 64 px, stays within this of 1, and the mean of no
# channel moves by more than MAX_MEAN_SHIFT. Cloak's `high` copies (taesd, 16 steps) of
# d04, d08, d16, d25 at 48 px as JPEG q85: slopes 0.985 to 1.041, shifts up to 0.031.
# Edits there: x1.1 brighter 1.08 to 1.10, x0.93 0.93, x1.2 contrast 1.08 to 1.20, x0.9
# contrast 0.90 (a pure shift, +12/255 and more, is caught by the mean).
MAX_TONE_SLOPE_CHANGE = 0.06
MAX_MEAN_SHIFT = 0.045


def tone_change(original: Image.Image, protected: Image.Image) -> tuple[float, float]:
    """(|slope - 1|, largest |mean shift| of a channel), [0, 1] values, of `protected`
    against `original` at coarse_psnr's 64 px: near (0, 0) for a protected copy, what a
    brightness or contrast edit moves (the slope: a least-squares line through all three
    channels' values)."""
    w, h = original.size
    scale = 64 / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    x, y = (np.asarray(im.convert("RGB").resize(size, Image.BOX), dtype=np.float64) / 255
            for im in (original, protected))
    shift = float(np.abs((y - x).reshape(-1, 3).mean(axis=0)).max())
    xc, yc = x - x.mean(axis=(0, 1)), y - y.mean(axis=(0, 1))  # each channel's own mean
    spread = float((xc * xc).sum())
    slope = float((xc * yc).sum()) / spread if spread > 1e-12 else 1.0
    return abs(slope - 1), shift


def comparable_db(size: tuple[int, int]) -> float:
    """The coarse PSNR (dB) a protected copy of a photo of `size` (w, h) stays above."""
    return min(COMPARABLE_DB, SMALL_COMPARABLE_DB + 10 * math.log10(max(1.0, max(size) / 64)))


def is_resized(size: tuple[int, int], copy: tuple[int, int]) -> bool:
    """Whether `copy` (w, h) is `size` resized, its sides rounded: there is one scale s
    with each side of the copy within RESIZE_SLACK_PX of the original's times s (the two
    sides' own scales differ by at most slack/w + slack/h)."""
    (w, h), (cw, ch) = size, copy
    return abs(cw / w - ch / h) <= RESIZE_SLACK_PX * (1 / w + 1 / h) + 1e-12


def instagram_crop_of(original: Image.Image, size: tuple[int, int]
                      ) -> tuple[Image.Image, str | None]:
    """Instagram's centre crop of `original` and match_copy's note for it, where a copy
    of `size` (width, height) is that crop resized; else `original` and None."""
    (ow, oh), (pw, ph) = original.size, size
    cropped = crop_to_aspect(original, *INSTAGRAM_ASPECT)
    if cropped.size == original.size or not is_resized(cropped.size, size):
        return original, None
    return cropped, (f"the original is {ow}x{oh} and the copy {pw}x{ph}: the original was "
                     f"cropped to its middle {cropped.width}x{cropped.height}, as Instagram "
                     "crops a photo this shape")


# A copy this many px or fewer smaller along each axis (both edges together) is searched
# for as a crop of the original (its edges trimmed) before it is taken for a resized one.
CROP_SEARCH_PX = 32
# ...and taken for the crop where it lines up with it this much better (PSNR, dB) than
# with the original resized: a crop lines up exactly, a resize nowhere
CROP_BETTER_DB = 3.0


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def _psnr_luma(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def crop_offset(original: Image.Image, protected: Image.Image) -> tuple[int, int] | None:
    """(left, top) of the box of `original` that `protected` is, where the copy is the
    original with up to CROP_SEARCH_PX px trimmed along each axis (a crop after
    protecting) and lines up with that box CROP_BETTER_DB better than with the original
    resized to it; else None. Found by matching five patches of the copy's luma at every
    offset, then checked on the whole photo (every k-th pixel: about 4 MP)."""
    (ow, oh), (pw, ph) = original.size, protected.size
    if (ow, oh) == (pw, ph) or not (0 <= ow - pw <= CROP_SEARCH_PX
                                    and 0 <= oh - ph <= CROP_SEARCH_PX) or min(pw, ph) < 32:
        return None
    big, small = _luma(original), _luma(protected)
    side = min(64, pw // 4, ph // 4)
    centres = [(pw // 2, ph // 2), (pw // 4, ph // 4), (3 * pw // 4, ph // 4),
               (pw // 4, 3 * ph // 4), (3 * pw // 4, 3 * ph // 4)]
    patches = [(x - side // 2, y - side // 2) for x, y in centres]
    best, best_cost = None, math.inf
    for top in range(oh - ph + 1):
        for left in range(ow - pw + 1):
            cost = sum(float(np.sum((big[y + top:y + top + side, x + left:x + left + side]
                                     - small[y:y + side, x:x + side]) ** 2))
                       for x, y in patches)
            if cost < best_cost:
                best, best_cost = (left, top), cost
    left, top = best
    k = max(1, round(math.sqrt(pw * ph / 4e6)))  # a 48 MP photo: every 3rd pixel
    as_crop = _psnr_luma(big[top:top + ph:k, left:left + pw:k], small[::k, ::k])
    resized = _luma(original.resize((pw, ph), Image.Resampling.LANCZOS))
    as_resize = _psnr_luma(resized[::k, ::k], small[::k, ::k])
    return best if as_crop >= as_resize + CROP_BETTER_DB else None


def is_enlarged(original_size: tuple[int, int], copy_size: tuple[int, int]) -> bool:
    """Whether a copy of `copy_size` (w, h) is the original's shape with more pixels."""
    (ow, oh), (pw, ph) = original_size, copy_size
    return pw * ph > ow * oh and is_resized((pw, ph), (ow, oh))


def shrink_larger_copy(original: Image.Image, protected: Image.Image
                       ) -> tuple[Image.Image, str | None]:
    """`protected` as it can be compared with `original`: shrunk to the original's size
    where it is the original's shape with more pixels (a platform enlarges a photo
    narrower than 320 px), with a note; else as it is. Enlarging the original instead
    would blur it, and the blur would read as protection (an unprotected photo and a
    smaller copy of it, given the other way round, measured "strong")."""
    (ow, oh), (pw, ph) = original.size, protected.size
    if not is_enlarged(original.size, protected.size):
        return protected, None
    return resize_keeping_colour(rgb_or_rgba(protected), (ow, oh)), (
        f"the copy is {pw}x{ph}, larger than the original ({ow}x{oh}): it was shrunk to the "
        "original's size to compare them (a platform enlarges a small photo; or were they "
        "given the other way round?)")


def match_copy(original: Image.Image, protected: Image.Image
               ) -> tuple[Image.Image, str | None]:
    """The original as it can be compared with `protected`: itself when the sizes agree;
    the same box of it when the copy is the original with its edges trimmed (crop_offset);
    resized to the copy's size when the copy is the original resized (a copy downloaded
    back from a platform), or Instagram's centre crop of it resized, with a note saying
    so. UnsupportedImageError for a copy turned by a quarter or cropped otherwise, or
    with more pixels than the original in another shape (given the other way round?;
    one of its shape is shrunk first: shrink_larger_copy)."""
    from .errors import UnsupportedImageError

    (ow, oh), (pw, ph) = original.size, protected.size
    if (ow, oh) == (pw, ph):
        return original, None
    sizes = f"the original is {ow}x{oh} and the copy {pw}x{ph}"
    if pw * ph > ow * oh:  # enlarging the original would blur it, and the blur would read
        # as the copy's protection (an unprotected photo and a smaller copy of it, given
        # the other way round, measured "strong"); a copy enlarged with the original's
        # shape is shrunk back first (shrink_larger_copy)
        raise UnsupportedImageError(
            f"{sizes}: the copy is larger than the original and of another shape, so they "
            "can't be compared; were they given the other way round? Give the original "
            "first, then its protected copy")
    if (found := crop_offset(original, protected)) is not None:
        left, top = found
        cut = ", ".join(f"{n} px {where}" for n, where in (
            (left, "on the left"), (top, "at the top"), (ow - pw - left, "on the right"),
            (oh - ph - top, "at the bottom")) if n)
        return original.crop((left, top, left + pw, top + ph)), (
            f"{sizes}: the copy is the original cropped ({cut} cut off), so it is compared "
            "with the same crop of the original; a crop after protecting removes much of "
            "the protection (verify's crop channel measures it)")
    if is_resized((ow, oh), (pw, ph)):
        note = (f"{sizes}: the original was resized to the copy's size to compare them "
                "(a copy downloaded back from a platform is smaller)")
        return resize_keeping_colour(rgb_or_rgba(original), (pw, ph)), note
    cropped, crop_note = instagram_crop_of(original, (pw, ph))
    if crop_note:
        note = f"{crop_note}, and resized to the copy's size to compare them"
        return resize_keeping_colour(rgb_or_rgba(cropped), (pw, ph)), note
    if is_resized((oh, ow), (pw, ph)):
        raise UnsupportedImageError(f"{sizes}: the copy is turned by a quarter; turn it back "
                                    "(or save it upright) and compare again")
    raise UnsupportedImageError(f"{sizes}, another shape (cropped?); compare a photo with "
                                "its own protected copy, uncropped (or only resized, or "
                                "cropped to its middle as Instagram does)")


def coarse_psnr(original: Image.Image, protected: Image.Image) -> float:
    """PSNR (dB) of the two at the original's size scaled to long side 64 (a copy of
    another size is scaled to it too)."""
    w, h = original.size
    scale = 64 / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def coarse(image: Image.Image) -> torch.Tensor:
        return image_tensor(rgb_or_rgba(image).convert("RGB").resize(size, Image.BOX))

    return metrics.psnr(coarse(protected), coarse(original))


# Turns and mirrors that keep a photo's size, tried on a copy that does not pair with its
# original as it is: (what undoes it on the copy, what was done, what to do). A quarter
# turn of a photo that is not square changes its size, and match_copy says so.
SIZE_KEEPING_TURNS = (
    (Image.Transpose.ROTATE_180, "turned 180 degrees", "turn it back"),
    (Image.Transpose.FLIP_LEFT_RIGHT, "mirrored left to right", "flip it back"),
    (Image.Transpose.FLIP_TOP_BOTTOM, "mirrored top to bottom", "flip it back"),
)
# ...and on a square photo, the quarter turns and the mirrors across a diagonal too
SQUARE_TURNS = (
    (Image.Transpose.ROTATE_90, "turned by a quarter", "turn it back"),
    (Image.Transpose.ROTATE_270, "turned by a quarter", "turn it back"),
    (Image.Transpose.TRANSPOSE, "turned by a quarter and mirrored", "turn and flip it back"),
    (Image.Transpose.TRANSVERSE, "turned by a quarter and mirrored", "turn and flip it back"),
)


# turned() compares at this long side (then coarse_psnr's 64): four times its measure's
TURN_CHECK_SIDE = 256


def turned(original: Image.Image, protected: Image.Image, bar: float | None = None
           ) -> tuple[str, str] | None:
    """(what was done, what to do) when `protected` (the original's size) pairs with
    `original` once turned or flipped back, by check_comparable's own measure (coarse
    PSNR at or above `bar`, comparable_db of the original's size where None); None when
    no such turn makes them pair. Meant for
    copies that do not pair as they are. Both are first scaled to long side TURN_CHECK_SIDE
    (box filter), so each try turns a small image, not the full-size copy."""
    square = protected.width == protected.height
    bar = comparable_db(original.size) if bar is None else bar
    size = thumbnail_size(original.size)
    if size != original.size:
        original = original.convert("RGB").resize(size, Image.BOX)
        protected = protected.convert("RGB").resize(size, Image.BOX)
    for undo, how, advice in SIZE_KEEPING_TURNS + (SQUARE_TURNS if square else ()):
        if coarse_psnr(original, protected.transpose(undo)) >= bar:
            return how, advice
    return None


def looks_gray(img: Image.Image) -> bool:
    """Whether `img` (any mode) is black and white: a gray mode, or colour channels
    within 3/255 of one another everywhere (a gray photo saved as a colour JPEG keeps a
    little chroma noise), judged at long side 256."""
    if img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    # shrunk before converting: no full-size copy of a large photo
    small = img.resize(thumbnail_size(img.size, 256), Image.BOX)
    rgb = np.asarray(small.convert("RGB"), dtype=np.int16)
    return int(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max()) <= 3


def check_comparable(original: Image.Image, protected: Image.Image) -> float:
    """PSNR (dB) of the two at long side 64; UnsupportedImageError below comparable_db
    of the original's size (below COMPARABLE_DB where the copy of a small photo does not
    keep its tones: tone_change), where `protected` is not a protected copy of
    `original` as it is, so every difference would count as damage: one saying so for a
    copy turned 180 degrees or mirrored (or, when square, turned by a quarter; see turned),
    else one for an edit or another photo. (A black and white copy is compared with the original made black and white
    first: pair_gray.)"""
    from .errors import UnsupportedImageError

    value = coarse_psnr(original, protected)
    size_bar = comparable_db(original.size)
    bar, tones = size_bar, ""
    if size_bar <= value < COMPARABLE_DB:  # a small photo, under the lower bar: tones kept?
        slope_change, shift = tone_change(original, protected)
        if slope_change > MAX_TONE_SLOPE_CHANGE or shift > MAX_MEAN_SHIFT:
            bar = COMPARABLE_DB
            tones = (f"PSNR {value:.1f} dB at 64 px, but its brightness or contrast "
                     f"changed: tone slope off 1 by {slope_change:.2f}, mean moved "
                     f"{shift * 255:.0f}/255, where protection keeps them")
    if value < bar:
        found = turned(original, protected, size_bar)  # (a turned copy's tones: unknown)
        if found is not None:
            how, advice = found
            raise UnsupportedImageError(
                f"the copy looks like the original {how}: {advice} and compare again, or "
                "verify the copy alone, as posted (cloak verify PROTECTED: the "
                "no-reference receipt)")
        raise UnsupportedImageError(
            "the two photos differ far more than protection changes a photo ("
            + (tones or f"PSNR {value:.1f} dB at 64 px; a protected copy stays above "
               f"{bar:.1f}") + "): "
            "compare a photo with its own protected copy, before any edit (a copy cropped "
            "or edited since: verify it alone, cloak verify PROTECTED, the no-reference "
            "receipt)")
    return value
