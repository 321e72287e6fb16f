"""Measure how much protection a photo carries, as it is and after simulated posting.

With the original: per autoencoder, reconstruction damage (dB) and latent shift, for the
photo as it is and after each channel (social-network presets and common clean-ups),
plus PSNR/SSIM/max change. The verdict is taken on the worst channel.

The channels (posting presets and clean-ups) are cloak.channels; making an original and
a copy of it comparable (or refusing one that is not) is cloak.comparable; the
no-reference receipt is cloak.receipt.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

from . import metrics
from .channel_list import ALL_CHANNELS, SOCIAL_PRESETS
from .channels import apply_channel, image_tensor, is_transparent, rgb_or_rgba
from .cicp_icc import icc_for_cicp
from .comparable import (
    TRANSPARENT_PAIR_NOTE,
    check_comparable,
    instagram_crop_of,
    is_resized,
    match_copy,
    pair_gray,
    pair_transparency,
    shrink_larger_copy,
)
from .device import autocast, pick_device, uses_bf16
from .errors import Cancelled, ConfigError
from .io import Photo, cicp_of, to_8bit
from .models import ALL_MODEL_NAMES, load_autoencoders
from .report import VERDICTS, stored_db, verdict_for  # noqa: F401 - VERDICTS is part of verify's API


def photo_image(photo: Photo) -> Image.Image:
    """The 8-bit image verify compares for a loaded `cloak.io.Photo`: its upright colour
    as RGB, or RGBA with its alpha band (16-bit alpha rounded to 8 bits) when it has one,
    so the posting presets can flatten it (apply_channel)."""
    rgb = np.round(photo.rgb * 255).astype(np.uint8)
    if photo.alpha is None:
        return Image.fromarray(rgb, "RGB")
    alpha = photo.alpha
    if alpha.dtype != np.uint8:  # 16-bit: as cloak.io writes it at 8 bits
        alpha = to_8bit(alpha)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def colour_profile(photo: Photo) -> bytes | None:
    """The ICC profile verify reads a loaded photo's values through: its own, else the one
    its CICP tag names (cicp_icc: a Display P3 HEIC from an iPhone, a cICP PNG), else None
    (sRGB, or an HDR tag no profile holds)."""
    if photo.icc_profile:
        return photo.icc_profile
    cicp = cicp_of(photo)
    return icc_for_cicp(*cicp) if cicp else None


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


def models_by_name(names, model_dir, device):
    return dict(zip(names, load_autoencoders(names, model_dir, device), strict=True))


def names_given(names: str | Sequence[str], what: str = "names") -> tuple[str, ...]:
    """Model or channel names as given: strings (any iterable of them but a dict), or one
    string 'taesd,taef2' (as ProtectConfig takes models), stripped and lower-cased.
    Anything else (a number, None, a list holding one) is a TypeError that says what
    `what` takes."""
    if isinstance(names, str):
        names = names.split(",")
    if isinstance(names, Iterable) and not isinstance(names, (bytes, dict)):
        names = tuple(names)  # a generator is read once
        if all(isinstance(n, str) for n in names):
            return tuple(n.strip().lower() for n in names if n.strip())
    raise TypeError(f"{what} must be names: strings (a list or tuple), or one string such "
                    f"as 'taesd,taef2', got {names!r}")


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
    models, channels = _checked_names(models, channels)
    original, protected, note = aligned_pair(original, protected, channels)
    dev = pick_device(device)
    nets = models_by_name(models, model_dir, dev)
    if figures:
        x, x_adv = image_tensor(original), image_tensor(protected)
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
    stop = should_stop or (lambda: False)
    result.channels = _channel_results(original, protected, channels, nets, dev, model_dir,
                                       cache, fingerprint, progress, stop)
    if at_1024 and (large := [n for n in nets if n in LARGE_EDITORS]):
        if progress:
            progress(1.0, f"as-is at {LARGE_EDIT_SIZE} px")
        result.damage_at_1024 = _damage_at_1024(
            original, protected, {n: nets[n] for n in large}, dev, model_dir, cache,
            fingerprint, stop)
    return result


def _checked_names(models, channels) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """verify_images' models and channels as names (see names_given), each channel once;
    ConfigError for none or an unknown channel (an unknown model is said as it loads)."""
    models, channels = names_given(models, "models"), names_given(channels, "channels")
    if not models:
        raise ConfigError("no autoencoder to measure with; name at least one, e.g. taesd")
    if unknown := [c for c in channels if c not in ALL_CHANNELS]:
        raise ConfigError(f"unknown channel {unknown[0]!r}; choose from "
                          f"{', '.join(ALL_CHANNELS)}")
    if not channels:
        raise ConfigError("no channel to measure; name at least one, e.g. as-is")
    return models, tuple(dict.fromkeys(channels))


def aligned_pair(original: Image.Image, protected: Image.Image, channels: Sequence[str]
                 ) -> tuple[Image.Image, Image.Image, str | None]:
    """The original made comparable with its protected copy (both RGB or RGBA): resized to
    a copy downloaded back at another size, cropped as Instagram crops, flattened as a
    platform flattened the copy, gray where the copy is; with a note on what was done
    (None: nothing). UnsupportedImageError for a copy that can't be the original's."""
    original, protected = rgb_or_rgba(original), rgb_or_rgba(protected)
    protected, larger_note = shrink_larger_copy(original, protected)
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
    note = "; ".join(n for n in (alpha_note, gray_note, larger_note or note) if n) or None
    check_comparable(original, protected)
    return original, protected, note


def _channel_results(original: Image.Image, protected: Image.Image,
                     channels: tuple[str, ...], nets: dict, dev: torch.device,
                     model_dir: str | None, cache: dict, fingerprint: bytes | None,
                     progress: Callable[[float, str], None] | None,
                     should_stop: Callable[[], bool]) -> list[ChannelResult]:
    """Each channel's damage and latent shift per model, at 512 px. `cache` keeps the
    original's side by channel (see verify_images' clean_cache)."""
    # Channels that hand the models the same pixels (on a photo under 512 px, the grid
    # and naive channels are the photo as it is) are measured once: each measurement is
    # two autoencoder round trips per model, each at 512x512 about 0.55 s on a 2-core
    # CPU with native bf16, 1.5 s on a 2-core AVX2 one (fp32).
    references: dict[bytes, dict] = {}  # original's side, by its pixels
    measured: dict[tuple[bytes, bytes], tuple[dict, dict]] = {}  # by both sides' pixels
    results = []
    for i, channel in enumerate(channels):
        if progress:
            progress(i / len(channels), channel)
        # resized to 512 on the CPU: only that goes to the device (a 48 MP photo would not
        # fit a small GPU at full size)
        xas = metrics.resize_long(image_tensor(apply_channel(protected, channel)), 512).to(dev)
        # the original's side depends on all of these (the pixels: a dict shared across
        # originals of one size must not hand one the other's reference; the weights'
        # folder and the precision: the same names may be other weights or other maths)
        key = (channel, tuple(nets), str(dev), uses_bf16(dev), model_dir, original.size,
               fingerprint)
        with autocast(dev):
            if key not in cache:
                xs = metrics.resize_long(image_tensor(apply_channel(original, channel)),
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
                    if should_stop():
                        raise Cancelled("cancelled")
                    d, sh = metrics.damage_and_shift(m, xs, stats[n], xas)
                    damage[n], shift[n] = stored_db(d), round(sh, 4)
                measured[both] = damage, shift
        damage, shift = measured[both]
        results.append(ChannelResult(channel, dict(damage), dict(shift)))
    return results


def _damage_at_1024(original: Image.Image, protected: Image.Image, nets: dict,
                    dev: torch.device, model_dir: str | None, cache: dict,
                    fingerprint: bytes | None, should_stop: Callable[[], bool]
                    ) -> dict[str, float]:
    """The damage as the photo is at long side LARGE_EDIT_SIZE, per model in `nets`."""
    key = (LARGE_EDIT_SIZE, str(dev), uses_bf16(dev), model_dir, original.size, fingerprint)
    if key not in cache:
        cache[key] = metrics.resize_long(image_tensor(original), LARGE_EDIT_SIZE).to(dev), {}
    xs, references = cache[key]
    xas = metrics.resize_long(image_tensor(protected), LARGE_EDIT_SIZE).to(dev)
    damage = {}
    with autocast(dev):
        for n, net in nets.items():
            if should_stop():
                raise Cancelled("cancelled")
            if n not in references:
                references[n] = metrics.clean_reference(net, xs)
            d, _ = metrics.damage_and_shift(net, xs, references[n], xas)
            damage[n] = stored_db(d)
    return damage


def _digest(t: torch.Tensor) -> bytes:
    """A short hash of a tensor's values (and shape), to tell identical inputs apart."""
    values = t.detach().float().cpu().contiguous()
    return hashlib.blake2b(repr(tuple(values.shape)).encode() + values.numpy().tobytes(),
                           digest_size=16).digest()
