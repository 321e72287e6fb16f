"""Measure how much protection a photo carries, as it is and after simulated posting.

With the original: per autoencoder, reconstruction damage (dB) and latent shift, for the
photo as it is and after each channel (social-network presets and common clean-ups),
plus PSNR/SSIM/max change. The verdict is taken on the worst channel.

Without the original: a no-reference receipt. A clean photo comes back from taesd's round
trip smoother than it went in; a protected one comes back with texture the decoder made
up. The receipt scores that high-frequency gap (dB) against a threshold calibrated on the
dev photos (benchmarks/receipt_calibration.py, which compares it with the reconstruction
error and with every model). On the 25 dev photos, clean and protected at medium, it
had no false alarms as posted and after `instagram` and detected 25/25 as posted, 24/25
after instagram (the miss: a 2:3 portrait that Instagram's crop left with little damage)
and 21/25 after whatsapp with one false alarm: a strong hint, not proof
(benchmarks/receipt.md).
"""

from __future__ import annotations

import hashlib
import io as _io
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image, ImageFilter

from . import metrics
from .colour import profile_name, to_srgb
from .device import autocast, pick_device, uses_bf16
from .errors import Cancelled, ConfigError
from .io import Photo, decode_own_bytes
from .models import ALL_MODEL_NAMES, load_autoencoders
from .pipeline import to_tensor
from .report import VERDICTS, stored_db, verdict_for  # noqa: F401 - VERDICTS is part of verify's API

# Approximations of what each platform does to an upload (size cap, JPEG quality): the cap
# is on the long side, except instagram's (below).
# Platforms change these without notice; treat them as typical, not exact.
SOCIAL_PRESETS: dict[str, tuple[int, int]] = {
    "instagram": (1080, 80),
    "facebook": (2048, 85),
    "x": (4096, 85),
    "whatsapp": (1600, 75),
}
# Instagram caps the *width* at 1080 px (a 3:4 portrait posts at 1080x1440) and takes
# aspect ratios from 3:4 (tall) to 1.91:1 (wide); a photo outside that range is cropped to
# it, centred unless the user moves the frame (Instagram's help centre, as of 2025).
INSTAGRAM_ASPECT = (3 / 4, 1.91)
CLEANUPS = ("jpeg95", "jpeg75", "jpeg50", "down-up", "blur", "crop", "grid", "naive")
ALL_CHANNELS = ("as-is", *SOCIAL_PRESETS, *CLEANUPS)  # every channel verify measures
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

# No-reference receipt: taesd high-frequency gap (dB) at or above which a photo is called
# protected. Calibrated with benchmarks/receipt_calibration.py on the 25 dev photos, clean
# and protected at medium, as posted and after `instagram` (benchmarks/receipt.md).
RECEIPT_THRESHOLD_DB = 0.36


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
    small = naive_downscale(_tensor(img), size)[0].permute(1, 2, 0).numpy()
    return Image.fromarray(np.round(small * 255).astype(np.uint8), "RGB")


# What a posting preset flattens a transparent photo onto: the platforms re-encode an
# upload as JPEG, which has no alpha, and show what was transparent as white (the usual
# choice; some apps have shown black). A choice, not a measurement of any platform.
POSTING_BACKGROUND = (255, 255, 255)


def rgb_or_rgba(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB, or RGBA when it carries transparency (an alpha band, a palette's
    or a colour key's); `img` itself when it is already either."""
    if img.mode == "RGBA" or (img.mode == "RGB" and "transparency" not in img.info):
        return img
    bands = img.getbands()
    if "A" in bands or "a" in bands or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("RGB")


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


# What a transparent original may have become in an opaque copy: flattened onto white (the
# usual platform) or black (some apps), or its alpha dropped (an editor's convert("RGB")).
FLATTENINGS = (("onto white", (255, 255, 255)), ("onto black", (0, 0, 0)),
               ("by dropping its transparency", None))


# pair_transparency's note for a pair that both keep their transparency (cloak's copies do)
TRANSPARENT_PAIR_NOTE = (
    "the photos are transparent: the posting presets compare them flattened onto white, as "
    "a platform shows them; every other channel compares the colour stored under the "
    "transparency, which an editor that drops it sees")


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
      presets flatten both onto white (apply_channel), which the note says.
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


def photo_image(photo: Photo) -> Image.Image:
    """The 8-bit image verify compares for a loaded `cloak.io.Photo`: its upright colour
    as RGB, or RGBA with its alpha band (16-bit alpha rounded to 8 bits) when it has one,
    so the posting presets can flatten it (apply_channel)."""
    rgb = np.round(photo.rgb * 255).astype(np.uint8)
    if photo.alpha is None:
        return Image.fromarray(rgb, "RGB")
    alpha = photo.alpha
    if alpha.dtype != np.uint8:  # 16-bit: as cloak.io writes it at 8 bits
        alpha = ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


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


@dataclass
class ChannelResult:
    channel: str
    damage_db: dict[str, float]
    latent_shift: dict[str, float]

    @property
    def min_damage_db(self) -> float:
        return min(self.damage_db.values())


# SDXL and FLUX edit at 1024 px, where a perturbation made for SD's 512 keeps much less
# (README "Editing size"): verify measures their stand-ins there too, as the photo is.
LARGE_EDITORS = ("taesdxl", "taef1", "taef2")
LARGE_EDIT_SIZE = 1024


@dataclass
class Verification:
    psnr: float
    ssim: float
    max_change255: float
    channels: list[ChannelResult] = field(default_factory=list)
    note: str | None = None  # how the two were matched, when not as given (match_copy)
    # damage (dB) as the photo is at long side 1024, for the LARGE_EDITORS measured
    damage_at_1024: dict[str, float] = field(default_factory=dict)
    # what measured it: a verdict near a threshold may differ by precision or machine
    device: str = ""
    precision: str = ""  # "bf16" (autocast) or "fp32"

    @property
    def verdict_at_1024(self) -> str | None:
        """Verdict on the weakest of the SDXL/FLUX stand-ins at 1024 px, as the photo is;
        None when they were not measured there."""
        return verdict_for(min(self.damage_at_1024.values())) if self.damage_at_1024 \
            else None

    @property
    def worst(self) -> ChannelResult:
        return min(self.channels, key=lambda c: c.min_damage_db)

    @property
    def as_is(self) -> ChannelResult | None:
        """The "as-is" channel; None when it was not measured."""
        return next((c for c in self.channels if c.channel == "as-is"), None)

    as_posted = as_is  # its first name: the photo as the user posts it, before posting

    @property
    def verdict(self) -> str:
        """Verdict on the worst channel."""
        return verdict_for(self.worst.min_damage_db)

    @property
    def verdict_as_is(self) -> str | None:
        """Verdict on the photo as it is, as the user posts it: before any platform's
        processing (the "as-is" channel); None when that channel was not measured."""
        return verdict_for(self.as_is.min_damage_db) if self.as_is else None

    verdict_as_posted = verdict_as_is  # its first name, which read as "after posting"

    def to_dict(self) -> dict:
        """Every figure, plus the verdicts: `verdict` on the worst channel and
        `verdict_as_is` on the photo as it is (also under its first name,
        `verdict_as_posted`, which read as "after posting" to some)."""
        d = asdict(self)
        d.update(verdict=self.verdict, verdict_as_is=self.verdict_as_is,
                 verdict_as_posted=self.verdict_as_is, worst_channel=self.worst.channel,
                 verdict_at_1024=self.verdict_at_1024)
        return d


@dataclass
class Receipt:
    """No-reference result: the receipt score (dB) of one model and the decision."""

    score_db: float
    threshold_db: float
    score_name: str = "hf_gap"
    model: str = "taesd"

    @property
    def protected(self) -> bool:
        return self.score_db >= self.threshold_db

    @property
    def label(self) -> str:
        return f"{self.model} {RECEIPT_LABELS.get(self.score_name, self.score_name)}"

    def to_dict(self) -> dict:
        return {"score": self.score_name, "model": self.model, "score_db": self.score_db,
                "threshold_db": self.threshold_db, "protected": self.protected}


def _tensor(img: Image.Image) -> torch.Tensor:
    return to_tensor(np.asarray(img.convert("RGB"), dtype=np.float32) / 255)


def _models(names, model_dir, device):
    return dict(zip(names, load_autoencoders(names, model_dir, device), strict=True))


def names_given(names: str | Sequence[str]) -> tuple[str, ...]:
    """Model or channel names as given: a sequence, or one string 'taesd,taef2' (as
    ProtectConfig takes models), stripped and lower-cased."""
    if isinstance(names, str):
        names = names.split(",")
    return tuple(n.strip().lower() for n in names if isinstance(n, str) and n.strip())


def verify_images(original: Image.Image, protected: Image.Image,
                  channels: Sequence[str] = ALL_CHANNELS,
                  models: Sequence[str] = ALL_MODEL_NAMES, model_dir: str | None = None,
                  device: str | None = None,
                  progress: Callable[[float, str], None] | None = None,
                  clean_cache: dict | None = None, figures: bool = True,
                  should_stop: Callable[[], bool] | None = None,
                  at_1024: bool = False) -> Verification:
    """Compare an original and its protected copy (upright RGB, or RGBA: a transparent
    photo is flattened onto white for the posting presets only, see apply_channel). A
    copy of another size but the same shape (one downloaded back from a platform) is
    compared with the original resized to it (match_copy); copies that can't be the
    original's protected copy (another shape, turned or mirrored, edited) raise
    UnsupportedImageError.

    `clean_cache`: pass the same dict when verifying several copies of one original, so
    the original's side of every channel is computed once. `figures=False` skips the
    full-size PSNR, SSIM and largest change (NaN then): heavy on a big photo, not needed
    for the damage. `should_stop` (asked before each model's measurement) raises
    Cancelled. `at_1024`: also the damage as the photo is at long side 1024 for the SDXL
    and FLUX stand-ins measured (LARGE_EDITORS; `damage_at_1024`), each round trip about
    4x one at 512."""
    for image in (original, protected):
        if not isinstance(image, Image.Image):
            raise TypeError(f"verify_images() takes two PIL images (such as "
                            f"Image.open(path)), got {type(image).__name__}")
    models, channels = names_given(models), names_given(channels)
    if not models:
        raise ConfigError("no autoencoder to measure with; name at least one, e.g. taesd")
    if unknown := [c for c in channels if c not in ALL_CHANNELS]:
        raise ConfigError(f"unknown channel {unknown[0]!r}; choose from "
                          f"{', '.join(ALL_CHANNELS)}")
    if not channels:
        raise ConfigError("no channel to measure; name at least one, e.g. as-is")
    channels = tuple(dict.fromkeys(channels))  # each measured once
    original, protected = rgb_or_rgba(original), rgb_or_rgba(protected)
    flat_note = crop_note = None
    if (is_transparent(original) and not is_transparent(protected)
            and original.size != protected.size):
        # a platform flattened it (after Instagram's crop, where it cropped), then resized
        # it: so is the original, in that order (a transparent edge resized first, then
        # flattened, comes out darker: 49 dB on a clean copy, where this order gives the
        # copy's own pixels)
        if not is_resized(original.size, protected.size):
            original, crop_note = instagram_crop_of(original, protected.size)
        if is_resized(original.size, protected.size):
            original, protected, flat_note = pair_transparency(original, protected)
    original, note = match_copy(original, protected)
    if crop_note:  # cropped here; resized by match_copy too where the sizes still differed
        note = f"{crop_note}, and resized to the copy's size to compare them" if note \
            else crop_note
    original, protected, alpha_note = pair_transparency(original, protected)
    alpha_note = alpha_note or flat_note
    if alpha_note == TRANSPARENT_PAIR_NOTE and not any(c in SOCIAL_PRESETS for c in channels):
        alpha_note = None  # it is about the posting presets, and none is measured
    original, gray_note = pair_gray(original, protected)
    note = "; ".join(n for n in (alpha_note, gray_note, note) if n) or None
    check_comparable(original, protected)
    dev = pick_device(device)
    nets = _models(models, model_dir, dev)
    if figures:
        x, x_adv = _tensor(original), _tensor(protected)
        result = Verification(psnr=metrics.psnr(x_adv, x), ssim=metrics.ssim(x_adv, x),
                              max_change255=float((x_adv - x).abs().max() * 255), note=note)
        del x, x_adv
    else:
        result = Verification(psnr=math.nan, ssim=math.nan, max_change255=math.nan, note=note)
    result.device, result.precision = str(dev), "bf16" if uses_bf16(dev) else "fp32"
    cache = {} if clean_cache is None else clean_cache
    # the alpha too: the posting presets' side of a transparent original depends on it
    fingerprint = (hashlib.blake2b(original.mode.encode() + original.tobytes(),
                                   digest_size=16).digest()
                   if clean_cache is not None else None)
    # Channels that hand the models the same pixels (on a photo under 512 px, the grid
    # and naive channels are the photo as it is) are measured once: each measurement is
    # two autoencoder round trips per model, each at 512x512 about 0.55 s on a 2-core
    # CPU with native bf16, 1.5 s on a 2-core AVX2 one (fp32).
    references: dict[bytes, dict] = {}  # original's side, by its pixels
    measured: dict[tuple[bytes, bytes], tuple[dict, dict]] = {}  # by both sides' pixels
    for i, channel in enumerate(channels):
        if progress:
            progress(i / len(channels), channel)
        # resized to 512 on the CPU: only that goes to the device (a 48 MP photo would not
        # fit a small GPU at full size)
        xas = metrics.resize_long(_tensor(apply_channel(protected, channel)), 512).to(dev)
        # the original's side depends on all of these (the pixels: a dict shared across
        # originals of one size must not hand one the other's reference; the weights'
        # folder and the precision: the same names may be other weights or other maths)
        key = (channel, tuple(nets), str(dev), uses_bf16(dev), model_dir, original.size,
               fingerprint)
        with autocast(dev):
            if key not in cache:
                xs = metrics.resize_long(_tensor(apply_channel(original, channel)),
                                         512).to(dev)
                pixels = _digest(xs)
                if pixels not in references:
                    references[pixels] = {n: metrics.clean_reference(m, xs)
                                          for n, m in nets.items()}
                cache[key] = (xs, references[pixels], pixels)
            xs, stats, pixels = cache[key]
            both = (pixels, _digest(xas))
            if both not in measured:
                damage, shift = {}, {}
                for n, m in nets.items():
                    if should_stop is not None and should_stop():
                        raise Cancelled("cancelled")
                    d, sh = metrics.damage_and_shift(m, xs, stats[n], xas)
                    damage[n], shift[n] = stored_db(d), round(sh, 4)
                measured[both] = damage, shift
        damage, shift = measured[both]
        result.channels.append(ChannelResult(channel, dict(damage), dict(shift)))
    large = [n for n in nets if n in LARGE_EDITORS] if at_1024 else []
    if large:
        if progress:
            progress(1.0, f"as-is at {LARGE_EDIT_SIZE} px")
        key = (LARGE_EDIT_SIZE, str(dev), uses_bf16(dev), model_dir, original.size,
               fingerprint)
        if key not in cache:
            cache[key] = metrics.resize_long(_tensor(original), LARGE_EDIT_SIZE).to(dev), {}
        xs, references_1024 = cache[key]
        xas = metrics.resize_long(_tensor(protected), LARGE_EDIT_SIZE).to(dev)
        with autocast(dev):
            for n in large:
                if should_stop is not None and should_stop():
                    raise Cancelled("cancelled")
                if n not in references_1024:
                    references_1024[n] = metrics.clean_reference(nets[n], xs)
                d, _ = metrics.damage_and_shift(nets[n], xs, references_1024[n], xas)
                result.damage_at_1024[n] = stored_db(d)
    return result


def _digest(t: torch.Tensor) -> bytes:
    """A short hash of a tensor's values (and shape), to tell identical inputs apart."""
    values = t.detach().float().cpu().contiguous()
    return hashlib.blake2b(repr(tuple(values.shape)).encode() + values.numpy().tobytes(),
                           digest_size=16).digest()


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


def match_copy(original: Image.Image, protected: Image.Image
               ) -> tuple[Image.Image, str | None]:
    """The original as it can be compared with `protected`: itself when the sizes agree;
    the same box of it when the copy is the original with its edges trimmed (crop_offset);
    resized to the copy's size when the copy is the original resized (a copy downloaded
    back from a platform), or Instagram's centre crop of it resized, with a note saying
    so. UnsupportedImageError for a copy turned by a quarter or cropped otherwise."""
    from .errors import UnsupportedImageError

    (ow, oh), (pw, ph) = original.size, protected.size
    if (ow, oh) == (pw, ph):
        return original, None
    sizes = f"the original is {ow}x{oh} and the copy {pw}x{ph}"
    if (found := crop_offset(original, protected)) is not None:
        left, top = found
        cut = ", ".join(f"{n} px {where}" for n, where in (
            (left, "on the left"), (top, "at the top"), (ow - pw - left, "on the right"),
            (oh - ph - top, "at the bottom")) if n)
        return original.crop((left, top, left + pw, top + ph)), (
            f"{sizes}: the copy is the original cropped ({cut} cut off), so it is compared "
            "with the same crop of the original; a crop after protecting removes much of "
            "the protection (the crop channel measures it)")
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
        return _tensor(image.convert("RGB").resize(size, Image.BOX))

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
# The smallest long side among the photos the receipt was calibrated on (d13, d16, d20).
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
    x = metrics.resize_long(_tensor(photo), 512).to(dev).clamp(0, 1)
    # fp32 on every device, so a photo scores alike on every machine (bf16 autocast
    # moved taesd's hf_gap by +0.01 to +0.03 dB on three clean dev photos). One forward
    # pass per model, so fp32 costs little. On a CUDA GPU torch runs fp32 convolutions at
    # TF32 precision by default (torch.backends.cudnn.conv.fp32_precision), which cloak
    # leaves as it is: never measured here, as no GPU was available.
    return {name: {k: round(v, 3) for k, v in _per_model_receipt(net, x).items()}
            for name, net in _models(models, model_dir, dev).items()}


def receipt_image(photo: Image.Image, model_dir: str | None = None,
                  device: str | None = None, threshold_db: float | None = None) -> Receipt:
    """No-reference check of one photo (see module docstring)."""
    per_model = receipt_per_model(photo, (RECEIPT_MODEL,), model_dir, device)
    return Receipt(per_model[RECEIPT_MODEL][RECEIPT_SCORE],
                   RECEIPT_THRESHOLD_DB if threshold_db is None else threshold_db,
                   RECEIPT_SCORE, RECEIPT_MODEL)
