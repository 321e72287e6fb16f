"""How much of a JPEG copy's measured damage its own compression accounts for.

`cloak verify ORIGINAL COPY` measures what the copy does to the autoencoders against what
the original does. A copy re-saved as a lossy JPEG (by hand, an app, or a platform it was
downloaded back from) carries compression as well as protection, and at low quality the
compression alone measures as damage: the original saved at quality 70, unprotected,
measures up to 2.9 dB on taef2 at 1024 px (README "cloak verify"). So for a JPEG copy
saved lossier than cloak saves its own (quality 95, 4:4:4 chroma), the original is saved
with the copy's own quantisation tables and chroma subsampling and measured the same way:
the floor that compression alone reaches.
"""

from __future__ import annotations

import functools
import io as _io
import os
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, JpegImagePlugin

from .io import decode_own_bytes
from .report import VERDICTS, shown_db

# cloak writes JPEG at quality 95 with 4:4:4 chroma (io.JPEG_QUALITY): a copy saved at
# this quality or above, unsubsampled, is taken as saved no lossier than that (dev photos
# d01, d04 and d17 saved at 95, 4:4:4, measured at most 0.3 dB on any model, even at
# 1024 px).
LOSSLESS_ENOUGH_QUALITY = 90
# the floor is worth a note where it reaches the weakest verdict's threshold ("weak")
FLOOR_NOTE_DB = min(threshold for _, threshold in VERDICTS)
# a copy measuring no more than its floor plus this on every model carries nothing
# measurable beyond its compression (an unprotected photo re-saved measures its floor to
# the hundredth; a protected one re-saved at quality 70 measured well above it)
BEYOND_FLOOR_DB = 0.25
SUBSAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


# EXIF orientation -> the turn that shows the stored pixels upright (as cloak reads them)
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
# ...and the turn back to the stored layout (each is its own inverse but the quarter turns)
STORED = {**UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class JpegSettings:
    """How a JPEG file was saved: its quantisation tables (luma first, then chroma's for a
    colour file), its chroma subsampling (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0; None for a gray
    file), its EXIF orientation (1 = stored upright) and the libjpeg quality whose luma
    table is nearest its own (an estimate for tables a camera or a platform made)."""

    qtables: list[list[int]]
    subsampling: int | None
    quality: int
    orientation: int = 1

    @property
    def lossier_than_cloak(self) -> bool:
        return self.quality < LOSSLESS_ENOUGH_QUALITY or self.subsampling not in (None, 0)

    def describe(self) -> str:
        chroma = SUBSAMPLING_NAMES.get(self.subsampling)
        return f"about quality {self.quality}" + (f", {chroma} chroma" if chroma else
                                                 ", in gray" if self.subsampling is None else "")


@functools.lru_cache(maxsize=1)
def _libjpeg_luma_tables() -> dict[int, list[int]]:
    """Pillow's luma quantisation table at each quality 1..100 (in the order Pillow reads
    tables back, so a file's table compares entry by entry)."""
    tables = {}
    for quality in range(1, 101):
        buf = _io.BytesIO()
        Image.new("L", (8, 8)).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        tables[quality] = list(Image.open(buf).quantization[0])
    return tables


def estimate_quality(luma_table: Sequence[int]) -> int:
    """The libjpeg quality (1..100) whose luma table is nearest `luma_table` (64 steps)."""
    tables = _libjpeg_luma_tables()
    return min(tables, key=lambda q: (sum(abs(a - b) for a, b in zip(tables[q], luma_table)),
                                      -q))


def jpeg_settings(path: str | os.PathLike[str]) -> JpegSettings | None:
    """How the JPEG at `path` was saved; None for another format, a JPEG whose saving
    Pillow can't repeat (CMYK, two chroma tables, uncommon subsampling), or a file Pillow
    can't open (the comparison that reads it says why)."""
    try:
        with Image.open(path) as img:
            if not isinstance(img, JpegImagePlugin.JpegImageFile) or not img.quantization:
                return None
            # each component's (id, horizontal, vertical sampling, table id)
            components = list(img.layer)
            tables = {k: list(v) for k, v in img.quantization.items()}
            used = [c[3] for c in components]
            if len(components) not in (1, 3) or any(t not in tables for t in used):
                return None
            if len(components) == 3 and used[1] != used[2]:
                return None
            subsampling = (JpegImagePlugin.get_sampling(img) if len(components) == 3
                           else None)
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if subsampling == -1:
        return None
    qtables = [tables[used[0]]] + ([tables[used[1]]] if len(components) == 3 else [])
    return JpegSettings(qtables, subsampling, estimate_quality(qtables[0]),
                        orientation if orientation in UPRIGHT else 1)


def saved_like(img: Image.Image, settings: JpegSettings) -> Image.Image:
    """`img` (upright RGB; anything else is converted) saved as `settings` say (its tables,
    chroma subsampling, gray or colour, in the file's stored orientation, so the 8 px
    blocks and the subsampled direction fall where the file's do) and decoded upright:
    RGB, the same size."""
    buf = _io.BytesIO()
    stored = img.convert("L" if settings.subsampling is None else "RGB")
    if settings.orientation in STORED:
        stored = stored.transpose(STORED[settings.orientation])
    options = {"qtables": settings.qtables}
    if settings.subsampling is not None:
        options["subsampling"] = settings.subsampling
    stored.save(buf, "JPEG", **options)
    buf.seek(0)
    decoded = decode_own_bytes(buf).convert("RGB")
    if settings.orientation in UPRIGHT:
        decoded = decoded.transpose(UPRIGHT[settings.orientation])
    return decoded


@dataclass
class CompressionFloor:
    """What the original measures saved like the copy, unprotected: damage (dB) as is at
    512 px per model, and at 1024 px for the SDXL/FLUX stand-ins where measured."""

    settings: JpegSettings
    damage_db: dict[str, float]
    damage_at_1024: dict[str, float]

    @property
    def highest_db(self) -> float:
        return max([*self.damage_db.values(), *self.damage_at_1024.values()])

    def note(self, accounts_for_all: bool = False) -> str | None:
        """A sentence for the report where compression alone reaches a verdict; else None.
        `accounts_for_all`: the copy measures no more than this floor (accounts_for)."""
        if self.highest_db < FLOOR_NOTE_DB:
            return None
        worst = max(self.damage_db, key=self.damage_db.get)
        parts = [f"{worst} {shown_db(self.damage_db[worst])} dB as is"]
        if self.damage_at_1024:
            worst_1024 = max(self.damage_at_1024, key=self.damage_at_1024.get)
            parts.append(f"{worst_1024} {shown_db(self.damage_at_1024[worst_1024])} dB at "
                         "1024 px")
        if accounts_for_all:
            return (f"this copy is a JPEG saved at {self.settings.describe()} and measures "
                    "no more than the original saved that way, unprotected, on every model "
                    f"({' and '.join(parts)}): all of these figures are compression, and "
                    "the copy carries no protection beyond it (if it was protected, the "
                    "re-saving took it: post cloak's own copy instead)")
        return (f"this copy is a JPEG saved at {self.settings.describe()}; the original "
                f"saved that way, unprotected, already measures {' and '.join(parts)}: that "
                "much of these figures is compression, not protection (compare cloak's own "
                "copy for what protection carries)")

    def accounts_for(self, verification) -> bool:
        """Whether the copy's figures (a verify.Verification: its as-is damage at 512 px
        and, where both are measured, at 1024) are all compression: no model measures
        more than this floor plus BEYOND_FLOOR_DB, and the floor reaches a verdict."""
        as_is = verification.as_is
        if as_is is None or self.highest_db < FLOOR_NOTE_DB:
            return False
        pairs = [(as_is.damage_db.get(name), floor) for name, floor in self.damage_db.items()]
        pairs += [(verification.damage_at_1024.get(name), floor)
                  for name, floor in self.damage_at_1024.items()]
        return all(measured is not None and measured <= floor + BEYOND_FLOOR_DB
                   for measured, floor in pairs)

    def to_dict(self) -> dict:
        return {"jpeg_quality": self.settings.quality,
                "subsampling": SUBSAMPLING_NAMES.get(self.settings.subsampling, "gray"),
                "damage_db": self.damage_db, "damage_at_1024": self.damage_at_1024}


def compression_floor(original: Image.Image, copy: Image.Image, settings: JpegSettings,
                      models: Sequence[str], model_dir: str | None = None,
                      device: str | None = None, clean_cache: dict | None = None,
                      at_1024: bool = False) -> CompressionFloor:
    """Measure `original` (upright RGB or RGBA) saved like `copy` (the JPEG copy as read,
    `settings` its file's) against itself, as verify_images measures the copy: matched to
    the copy's size and crop first, a transparent original flattened the way verify pairs
    it with the copy (comparable.pair_transparency), made black and white as a black and white
    copy is (comparable.pair_gray). `clean_cache`: the
    dict the copy's own verify_images call used, so the original's side is not measured
    twice."""
    from .channels import resize_keeping_colour
    from .comparable import is_enlarged, match_copy, pair_gray, pair_transparency, rgb_or_rgba
    from .verify import verify_images

    if is_enlarged(original.size, copy.size):
        # the copy is the original enlarged, then saved (a platform enlarges a small
        # photo): so is the original here, before it is saved like it; verify_images
        # shrinks both back the same way
        matched = resize_keeping_colour(rgb_or_rgba(original), copy.size)
    else:
        matched, _ = match_copy(original, copy)
    # a transparent original flattened the way verify pairs it with this copy (onto
    # white, onto black, or its alpha dropped), and made black and white as it is
    matched, _, _ = pair_transparency(matched, copy)
    matched, _ = pair_gray(matched, copy)
    resaved = saved_like(matched.convert("RGB"), settings)
    measured = verify_images(original, resaved, channels=("as-is",), models=models,
                             model_dir=model_dir, device=device, clean_cache=clean_cache,
                             figures=False, at_1024=at_1024)
    return CompressionFloor(settings, dict(measured.as_is.damage_db),
                            dict(measured.damage_at_1024))
