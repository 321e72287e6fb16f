"""Load and save photos for the protect pipeline.

`load_photo` gives upright RGB pixels, (H, W, 3) float32 in [0, 1], in the file's own
colour space, plus everything needed to write the protected copy back the way the
original was stored. `save_photo` writes that copy atomically and never touches the
source.

Formats (read -> written by default):

- JPEG -> JPEG, quality 95, 4:4:4 chroma (no subsampling), progressive if the source was.
- MPO (phone stereo / multi-picture JPEG) -> JPEG of the primary (first) image only.
- CMYK JPEG/TIFF -> RGB in the same format. With an embedded profile the pixels are
  converted to sRGB through it (perceptual intent) and an sRGB profile is embedded;
  without one Pillow's plain CMYK->RGB formula is used. CMYK output would push the
  perturbation through a second profile conversion, so it is not offered.
- PNG -> PNG: 8 and 16 bit, grayscale stays grayscale, alpha kept bit for bit.
  Palette PNGs are written as RGB (RGBA with transparency): a palette can't hold the
  perturbation. 1-bit images are written as 8-bit grayscale for the same reason.
- WebP -> lossless WebP (lossy WebP is always 4:2:0 and moved pixels by up to 99/255
  under an 8/255 perturbation; lossless is exact and about 3x the size of lossy q95).
- HEIC/HEIF -> HEIC, quality 95, 4:4:4 chroma, x265 "ultrafast" (max error 5-6/255), via
  pillow-heif; pixels are stored upright (the source's rotation is already applied by
  libheif). Without a HEVC encoder the copy is written as JPEG instead.
- AVIF -> AVIF, quality 100, 4:4:4 chroma (near-lossless: max error 2/255, from the
  RGB -> YCbCr rounding; grayscale as lossless 4:0:0), via Pillow's own AVIF plugin (libavif), where Pillow has one; the
  rotation stays a flag (irot/imir), as the source stored it. Read at 8 bits.
- TIFF -> TIFF with the source's lossless compression (JPEG-compressed TIFF -> Deflate);
  LZW and Deflate with horizontal differencing (predictor 2).
  16-bit grayscale stays 16-bit; 16-bit colour TIFF is read at 16 bits (with OpenCV)
  and written as 8-bit (Pillow cannot write 16-bit colour TIFF), so its figures are
  measured on the copy as written. Compressed TIFFs keep the IFD0 metadata but
  not the Exif sub-IFD (libtiff cannot write it through Pillow).
- BMP -> BMP (it holds no metadata). GIF -> PNG: GIF's 256-colour palette would erase
  the perturbation.

Multi-frame input: animated GIF/PNG/WebP, multi-page TIFF and multi-image HEIF are
refused with UnsupportedImageError; MPO is the one exception (primary image kept).

EXIF orientation is applied for computation; on save the pixels are turned back to the
stored orientation and the tag is kept, so stored dimensions and the displayed image
match the original (HEIF and BMP are stored upright). Metadata follows
`cloak.metadata.MetadataPolicy`. Bad input (empty, truncated, not an image, too small,
too large, extreme aspect ratio, unreadable) raises UnsupportedImageError with one line
naming the file; Pillow's LOAD_TRUNCATED_IMAGES is left False.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io as _io
import logging
import os
import re
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFile, PngImagePlugin, UnidentifiedImageError, features
from PIL.PngImagePlugin import PngInfo

from . import __version__
from . import metadata as md
from .atomic import Overwrite, may_replace, overwrite_flag, write_atomic
from .cicp import (
    avif_cicp,
    avif_depth,
    cicp_beyond_srgb,
    is_avif,
    png_cicp,
    with_avif_cicp,
)
from .colour import profile_name
from .errors import (
    CloakError,
    ConfigError,
    OutputError,
    OutputExistsError,
    UnsupportedImageError,
    raised_by_cloak,
)
from .png16 import write_png16
from .same_path import (
    LINK_LOOP,
    NUL_IN_NAME,
    holds_nul,
    same_file,
)

log = logging.getLogger(__name__)
pillow_heif.register_heif_opener()

# AVIF needs a Pillow built with libavif (13.0's wheels are); without one, .avif files
# are skipped like any other format cloak does not read.
AVIF_SUPPORTED = "avif" in features.modules and bool(features.check_module("avif"))
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".heic",
                            ".heif", ".hif", ".tif", ".tiff", ".bmp", ".dib", ".gif", ".mpo"}
                           | ({".avif"} if AVIF_SUPPORTED else set()))
# Pillow plugin ids. HEIF before AVIF: both claim files branded "mif1", and only a failed
# AVIF open of a HEIC is not passed on to the next plugin.
READ_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "TIFF", "BMP", "GIF") + (
    ("AVIF",) if AVIF_SUPPORTED else ())
# Folders that are one document to the user (macOS packages): a Photos or Aperture library,
# Lightroom's previews, an app. Walking in would take the library's internal originals,
# derivatives and thumbnails as photos (and the app would write `protected/` inside it).
PACKAGE_SUFFIXES = frozenset({".photoslibrary", ".migratedphotolibrary", ".aplibrary",
                              ".lrdata", ".app", ".bundle", ".framework"})
SUPPORTED = "JPEG, PNG, WebP, HEIC/HEIF, " + ("AVIF, " if AVIF_SUPPORTED else "") + "TIFF, BMP, GIF"
MAX_PIXELS = 200_000_000  # default; env CLOAK_MAX_PIXELS or max_pixels= raise it
MIN_SIDE = 16
MAX_ASPECT = 16
JPEG_QUALITY = 95
HEIF_QUALITY = 95
# x265 "ultrafast" (libheif's default is "slow"): at quality 95 4:4:4 about 3x faster than
# "medium" on 3-8.5 MP photos (8.5 MP: 3.5 s against 10.7 on 2 cores), as close to the
# unsaved copy, the same damage as saved (benchmarks/heif_preset.md)
HEIF_PRESET = "ultrafast"
AVIF_QUALITY = 100  # with 4:4:4: max error 2/255 (q95: 13/255, more than the perturbation)
AVIF_SPEED = 8  # libaom: 2.5x faster than Pillow's default 6 at q100, same pixels, +1% size
# Lossless encoders' effort (pixels exact either way; benchmarks/lossless_effort.md): zlib
# level 3 writes an 8-bit PNG 1.5-3.8x faster than Pillow's 6 for 8-10% more bytes;
# lossless WebP at quality 25, method 1 2.0-5.2x faster than 80 and 4 for 0-5% more
PNG_COMPRESS_LEVEL = 3
PNG_XMP_KEYWORD = "XML:com.adobe.xmp"  # the iTXt (or tEXt/zTXt) keyword of XMP in a PNG
WEBP_LOSSLESS_EFFORT = {"quality": 25, "method": 1}

HEIF_WRITABLE = bool(pillow_heif.libheif_info().get("HEIF"))
DEFAULT_OUTPUT = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP",
                  "HEIF": "HEIF" if HEIF_WRITABLE else "JPEG", "TIFF": "TIFF", "BMP": "BMP",
                  "GIF": "PNG", "AVIF": "AVIF"}
WRITABLE = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP"}
                     | ({"HEIF"} if HEIF_WRITABLE else set())
                     | ({"AVIF"} if AVIF_SUPPORTED else set()))
FORMAT_NAMES = {"JPG": "JPEG", "JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "HEIC": "HEIF",
                "HEIF": "HEIF", "TIF": "TIFF", "TIFF": "TIFF", "BMP": "BMP", "GIF": "GIF",
                "MPO": "MPO", "AVIF": "AVIF"}
SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
                 ".png": "PNG", ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF",
                 ".hif": "HEIF", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
                 ".dib": "BMP", ".gif": "GIF", ".mpo": "MPO", ".avif": "AVIF"}
FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "HEIF": ".heic",
                 "TIFF": ".tif", "BMP": ".bmp", "AVIF": ".avif"}
# Formats that keep the stored orientation (an EXIF tag; AVIF's irot/imir boxes, which
# Pillow reads into and writes from the EXIF Orientation)
EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "AVIF"})
NO_GRAY = frozenset({"WEBP"})  # written as RGB: WebP has no grayscale mode
LOSSLESS_TIFF = frozenset({"raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"})
TIFF_PREDICTED = frozenset({"tiff_lzw", "tiff_adobe_deflate"})
TIFF_PREDICTOR = 317  # the TIFF tag
PNG_TEXT_RIGHTS = frozenset({"Author", "Copyright"})
PNG_TEXT_OTHER = frozenset({"Title", "Description", "Creation Time"})
PNG_TEXT_PERSONAL = frozenset({"Title", "Description"})  # free text: metadata.PERSONAL_TEXT

# What Pillow's and libheif's decoders raise on broken or truncated data.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError, IndexError,
                 TypeError, KeyError, OverflowError, struct.error, zlib.error)
# Formats cloak writes without an alpha channel: Pillow writes a 32-bit BMP that neither it
# nor most viewers read back as transparent (a plain BI_RGB header).
NO_ALPHA = frozenset({"JPEG", "BMP"})
# A PNG chunk's unpacked size cloak accepts (Pillow's MAX_TEXT_CHUNK is 1 MB): a camera's
# ICC profile or a phone's XMP with its depth map can pass 1 MB; the total Pillow allows
# for a file's text chunks (MAX_TEXT_MEMORY, 64 MB) still holds.
MAX_PNG_TEXT = 16 << 20
# A progressive JPEG has about ten scans (mozjpeg's up to ~20); each is decoded over the
# whole image, and libjpeg sets no limit (decompression bombs of empty scans)
MAX_JPEG_SCANS = 1000
_open_lock = threading.Lock()  # guards the temporary change of Image.MAX_IMAGE_PIXELS


# A black-and-white picture stored as colour: all but this share of its pixels have R, G
# and B within GRAY_SPREAD of each other. Such JPEGs decode with no spread at all (their
# chroma is exactly neutral); the 25 colour dev photos have 50-250/255 at the 99.5th
# percentile, a sepia tone about 60.
GRAY_SPREAD = 2 / 255
GRAY_EXCEPTIONS = 0.005


def looks_gray(rgb: np.ndarray, alpha: np.ndarray | None = None) -> bool:
    """Whether (H, W, 3) pixels in [0, 1] are a black-and-white picture (phones' mono
    filters and most B&W exports store one as RGB): judged on every other pixel of every
    other row, which is plenty for a whole-picture property, leaving out pixels `alpha`
    ((H, W), any integer scale) makes fully transparent; a band of rows at a time (a
    200 MP photo's whole spread would be another 200 MB)."""
    sample = rgb[::2, ::2]
    seen = None if alpha is None else alpha[::2, ::2] > 0
    colourful = counted = 0
    most = GRAY_EXCEPTIONS * sample.shape[0] * sample.shape[1]  # counted can't be more
    for top in range(0, sample.shape[0], 128):
        if colourful > most:  # a colour photo: settled by its first band or two
            return False
        r, g, b = (sample[top:top + 128, :, c] for c in range(3))
        # Channel by channel: numpy's max over a 3-long last axis is ~6x slower.
        spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        over = spread > GRAY_SPREAD + 1e-6
        if seen is None:
            colourful += int(over.sum())
            counted += over.size
        else:
            visible = seen[top:top + 128]
            colourful += int((over & visible).sum())
            counted += int(visible.sum())
    return counted > 0 and colourful <= GRAY_EXCEPTIONS * counted


@dataclass
class Photo:
    """A loaded photo. `rgb` is (H, W, 3) float32 in [0, 1], upright; the rest describes
    how the source stored it, so `save_photo` can write the copy back the same way."""

    rgb: np.ndarray
    is_grayscale: bool = False
    path: Path | None = None
    format: str = "PNG"  # Pillow's name of the source format: JPEG, MPO, PNG, HEIF...
    mode: str = "RGB"  # Pillow mode of the source: RGB, RGBA, L, LA, I;16, P, CMYK, 1...
    bit_depth: int = 8  # per sample, 8 or 16; rgb values are multiples of 1/(2**depth-1)
    alpha: np.ndarray | None = None  # (H, W) upright, uint8 or uint16 (bit_depth), as read
    orientation: int = 1  # EXIF orientation of the stored pixels, 1..8
    icc_profile: bytes | None = None  # profile of `rgb` (sRGB after a CMYK conversion)
    exif: md.ExifSnapshot | None = None
    xmp: bytes | None = None
    info: dict[str, Any] = field(default_factory=dict)  # dpi, progressive, compression...

    @property
    def looks_gray(self) -> bool:
        """Gray by mode, or a black-and-white picture stored in colour (see looks_gray)."""
        return self.is_grayscale or looks_gray(self.rgb, self.alpha)

    @property
    def size(self) -> tuple[int, int]:
        """Displayed (upright) size, (width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def stored_size(self) -> tuple[int, int]:
        """Size as stored in the file, before orientation, (width, height)."""
        w, h = self.size
        return (h, w) if self.orientation >= 5 else (w, h)


# ----------------------------------------------------------------------------- load


def pixel_limit(max_pixels: int | None = None) -> int:
    """The decompression-bomb limit: `max_pixels`, else env CLOAK_MAX_PIXELS, else 200 MP."""
    if max_pixels is not None:
        if not 1 <= max_pixels < float("inf"):
            raise ValueError(f"max_pixels must be a pixel count of at least 1, got "
                             f"{max_pixels!r}")
        return int(max_pixels)
    env = os.environ.get("CLOAK_MAX_PIXELS", "").strip().replace("_", "")
    if env:
        try:
            limit = float(env)
        except ValueError:
            limit = None
        if limit is not None and 1 <= limit < float("inf"):
            return int(limit)
        _warn_ignored_max_pixels(env)
    return MAX_PIXELS


@functools.cache
def _warn_ignored_max_pixels(value: str) -> None:
    """Once a process for a value (the limit is read for every photo, several times)."""
    log.warning("ignoring CLOAK_MAX_PIXELS=%r: not a pixel count (a whole number such as "
                "300000000)", value, extra={"cloak_named": True})  # the setting's, not
    # the photo's being read when it is first looked at (naming would prefix its name)


def _fail(path: Path, problem: str) -> UnsupportedImageError:
    return UnsupportedImageError(f"{path}: {problem}")


def _open_file(path: Path) -> IO[bytes]:
    """Open `path` for reading, turning file-system errors into one clear line."""
    if holds_nul(path):
        raise _fail(path, NUL_IN_NAME)
    try:  # not Path.exists(): it raises PermissionError where a folder can't be searched
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        try:  # said as `cloak protect` says it
            raise _fail(path, f"is a link to {os.readlink(path)}, which does not exist"
                        ) from None
        except OSError:
            raise _fail(path, "no such file") from None
    except PermissionError:
        raise _fail(path, "permission denied (a folder on its path can't be searched)") \
            from None
    except OSError as exc:  # a symlink loop, a name too long...
        if exc.errno == errno.ELOOP:  # said as `cloak protect` says it
            raise _fail(path, LINK_LOOP) from None
        raise _fail(path, f"cannot read the file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise _fail(path, "is a folder, not a photo")
    if not stat.S_ISREG(mode):  # opening a FIFO would wait for a writer forever
        raise _fail(path, "not a regular file (a pipe, socket or device); give a photo file")
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by load_photo
        size = os.fstat(fp.fileno()).st_size
    except PermissionError:
        raise _fail(path, "permission denied (cannot read the file)") from None
    except OSError as exc:
        raise _fail(path, f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        fp.close()
        raise _fail(path, "the file is empty (0 bytes)")
    return fp


def _too_many_pixels(path: Path, pixels: int, limit: int) -> UnsupportedImageError:
    shown, limit_shown = _megapixels_apart(pixels, limit)
    return _fail(path, f"{shown} megapixels is over the {limit_shown} MP safety limit "
                       "against decompression bombs; if the photo is genuine, raise it with "
                       f"CLOAK_MAX_PIXELS={pixels}")


def _megapixels_apart(pixels: int, limit: int) -> tuple[str, str]:
    """Both in megapixels, with the fewest decimals (up to 6) that tell them apart and
    show the limit above 0: 200.4 over 200.0, not 200 over 200; 0.147 over 0.001."""
    for decimals in range(7):
        shown = f"{pixels / 1e6:.{decimals}f}", f"{limit / 1e6:.{decimals}f}"
        if shown[0] != shown[1] and float(shown[1]) > 0:  # (not a limit of "0.0")
            return shown
    return shown


class DecoderBusy(Exception):
    """decoding_limit(wait=False) found another thread decoding (holding its lock)."""


@contextlib.contextmanager
def decoding_limit(path: Path, limit: int, wait: bool = True):
    """Pillow's decompression-bomb limit set to ours (restored afterwards) while a photo
    is opened and decoded: TIFF checks it again when it loads, so it must hold for both.
    A PNG's compressed chunk (an iCCP profile, a zTXt or iTXt XMP) may unpack to
    MAX_PNG_TEXT bytes, not Pillow's 1 MB, which refused valid photos as corrupt.
    One thread at a time (a lock: the limits are Pillow's globals); `wait` False raises
    DecoderBusy instead of waiting for another thread's decode (seconds for a big photo)."""
    if not _open_lock.acquire(blocking=wait):
        raise DecoderBusy(str(path))
    saved_text = PngImagePlugin.MAX_TEXT_CHUNK
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # a TIFF's IPTC block as Photoshop and exiftool store it (LONGs): Pillow warns
            # on each photo, yet it is read whole (metadata.iptc_rights)
            warnings.filterwarnings("ignore", r"Metadata Warning, tag 33723 had too many",
                                    UserWarning)
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = limit
            PngImagePlugin.MAX_TEXT_CHUNK = max(saved_text, MAX_PNG_TEXT)
            try:
                yield
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                found = re.search(r"\((\d+) pixels\)", str(exc))
                raise _too_many_pixels(path, int(found[1]) if found else limit + 1,
                                       limit) from None
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = saved_text
        _open_lock.release()


def decode_own_bytes(data: IO[bytes]) -> Image.Image:
    """Decode (fully) an image cloak itself has just encoded in memory, such as a simulated
    platform re-encode of a photo already loaded: its size is that photo's, so Pillow's
    decompression-bomb limit (89.5 MP, below cloak's) must not apply."""
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(data)
            image.load()
            return image
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def cicp_of(photo: Photo) -> tuple[int, int] | None:
    """(colour primaries, transfer characteristics) of the CICP tag a photo was read with:
    a HEIF's or an AVIF's nclx or a PNG's cICP; None without one."""
    nclx = photo.info.get("nclx_profile") or {}
    if nclx:
        return nclx.get("color_primaries"), nclx.get("transfer_characteristics")
    if photo.info.get("avif_cicp"):
        return photo.info["avif_cicp"]
    cicp = photo.info.get("png_cicp")
    return (cicp[0], cicp[1]) if cicp else None


def _warn_avif_depth(fp: IO[bytes], path: Path) -> None:
    """Say so where an AVIF stores more than 8 bits a channel (Pillow reads 8)."""
    depth = avif_depth(fp)
    if depth is not None and depth > 8:  # Pillow decodes AVIF to 8 bits, as HEIF
        log.warning("%s: %d-bit AVIF is read as 8-bit; the protected copy is 8-bit",
                    path, depth)


def _open_image(fp: IO[bytes], path: Path) -> Image.Image:
    """Image.open (inside decoding_limit)."""
    try:
        if AVIF_SUPPORTED and is_avif(fp):
            return Image.open(fp, formats=("AVIF",))
        return Image.open(fp, formats=READ_FORMATS)
    except UnidentifiedImageError:
        if (reason := unread_tiff_layout(fp)) is not None:  # a good TIFF Pillow can't read
            raise _fail(path, reason) from None
        if path.suffix.lower() in IMAGE_SUFFIXES:  # named as a photo cloak reads: the name
            # is right and the content is not (a damaged file, or another kind of file)
            raise _fail(path, f"is named {path.suffix} but is not an image cloak can read "
                              "(damaged, or another kind of file renamed)") from None
        raise _fail(path, f"not an image cloak can read (supported: {SUPPORTED})") from None


FLOAT_ADVICE = "export an 8- or 16-bit integer copy"  # "16-bit" alone: a half float too


def unread_tiff_layout(fp: IO[bytes]) -> str | None:
    """For a classic TIFF whose first image Pillow does not identify though its layout is
    a good one (a 32-bit float RGB export, a half float, 16-bit gray with transparency),
    why it is refused, in words, with what to export instead; None for any other file,
    or a TIFF whose header can't be read (damaged: said so)."""
    try:
        fp.seek(0)
        head = fp.read(8)
        order = {b"II*\0": "<", b"MM\0*": ">"}.get(head[:4])
        if order is None:
            return None
        fp.seek(struct.unpack(order + "I", head[4:8])[0])
        (count,) = struct.unpack(order + "H", fp.read(2))
        entries = fp.read(12 * min(count, 4096))
        found = {}
        for i in range(0, len(entries) - 11, 12):
            tag, kind, n = struct.unpack(order + "HHI", entries[i:i + 8])
            # SHORT: BitsPerSample, SamplesPerPixel, SampleFormat
            if tag in (258, 277, 339) and kind == 3 and n >= 1:
                if n <= 2:  # the first value inline
                    found[tag] = struct.unpack(order + "H", entries[i + 8:i + 10])[0]
                else:
                    where = fp.tell()
                    fp.seek(struct.unpack(order + "I", entries[i + 8:i + 12])[0])
                    found[tag] = struct.unpack(order + "H", fp.read(2))[0]
                    fp.seek(where)
    except (OSError, struct.error, ValueError):
        return None
    bits, samples, sample_format = found.get(258), found.get(277, 1), found.get(339, 1)
    if bits is None:
        return None
    if sample_format == 3:
        return f"{bits}-bit float pixels are not supported; {FLOAT_ADVICE}"
    if bits > 16:
        return f"{bits}-bit pixels are not supported; export an 8- or 16-bit copy"
    if bits == 16 and samples == 2:
        return ("16-bit gray pixels with transparency are not supported; export an 8-bit "
                "copy, or a 16-bit one without transparency")
    if samples > 4:  # extra channels (spot colours, masks) beside the colour ones
        return (f"pixels of {samples} channels are not supported; export an RGB or RGBA "
                "copy")
    return None


def load_photo(path: str | os.PathLike[str], max_pixels: int | None = None) -> Photo:
    """Read a photo: upright RGB (H, W, 3) float32 in [0, 1] plus how it was stored.

    Raises UnsupportedImageError (one line naming the file) for anything cloak can't
    protect faithfully."""
    path = Path(path)
    limit = pixel_limit(max_pixels)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: truncated files may load")
    fp = _open_file(path)
    try:
        with decoding_limit(path, limit):
            image = _open_image(fp, path)
            with image:
                return _read(image, fp, path, limit)
    except CloakError:
        raise
    except MemoryError:
        raise _fail(path, "too large to load into memory") from None
    except DECODE_ERRORS as exc:  # Pillow/libheif decoders raise many types on bad data
        if raised_by_cloak(exc):  # cloak's own bug, not damage in the file: reported so
            raise
        raise _fail(path, decode_problem(exc)) from None
    finally:
        fp.close()


def decode_problem(exc: BaseException) -> str:
    """What a decoder's exception on a file's data means, in a user's words."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image cloak can read (damaged, or another kind of file renamed)"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "truncated" in detail.lower():  # Pillow's "image file is truncated (40 bytes not
        # processed)" says again what the line says: the file ends too soon
        return ("the image data is truncated (the file ends too soon: a copy or download "
                "that did not finish?)")
    return f"the image data is truncated or corrupt ({detail})"


def check_can_open(path: str | os.PathLike[str]) -> None:
    """UnsupportedImageError, naming `path`, where it is not a file with data that can be
    opened (missing, a folder, a pipe, empty, not readable), as load_photo says it."""
    _open_file(Path(path)).close()


def frames_problem(path: str | os.PathLike[str], wait: bool = True) -> str | None:
    """Why load_photo would refuse `path` for holding several pictures (an animated GIF,
    a multi-page TIFF), read from its header alone; None where it is one picture, or
    where the file does not open (load_photo says why then). `wait` False: None at once
    where another thread is decoding a photo (decoding_limit's lock)."""
    path = Path(path)
    try:
        fp = _open_file(path)
    except CloakError:
        return None
    try:
        with decoding_limit(path, pixel_limit(), wait), _open_image(fp, path) as image:
            frames = _frame_count(image)
            if frames > 1 and image.format != "MPO":
                return _frames_refusal(image.format or "?", frames)
    except Exception:  # noqa: BLE001 - any reading trouble is load_photo's to report
        return None
    finally:
        fp.close()
    return None


def _frames_refusal(source_format: str, frames: int) -> str:
    return (f"animated or multi-frame {source_format} ({frames} frames) is not supported; "
            "export the frame you want as a still image")


def _frame_count(image: Image.Image) -> int:
    """Frames that are separate pictures (TIFF reduced-resolution previews don't count)."""
    frames = getattr(image, "n_frames", 1)
    if image.format != "TIFF" or frames == 1:
        return frames
    pages = 0
    for index in range(frames):
        image.seek(index)
        if not int(image.tag_v2.get(254, 0)) & 1:  # NewSubfileType bit 0: reduced image
            pages += 1
    image.seek(0)
    return pages


def check_size(width: int, height: int, what: str = "the image") -> None:
    """The size checks load_photo makes (pixel limit, smallest side, aspect), for an image
    given in memory: UnsupportedImageError naming `what`."""
    _check_geometry(Path(what), width, height, pixel_limit())


def _check_geometry(path: Path, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise _too_many_pixels(path, width * height, limit)
    if min(width, height) < MIN_SIDE:
        raise _fail(path, f"{width}x{height} px is too small for cloak "
                          f"(each side must be at least {MIN_SIDE} px)")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT:
        for decimals in range(1, 7):  # 16.4:1, never "16:1" over 16:1
            shown = f"{ratio:.{decimals}f}".rstrip("0").rstrip(".")
            if float(shown) > MAX_ASPECT:
                break
        raise _fail(path, f"{width}x{height} px has an extreme aspect ratio ({shown}:1); "
                          f"cloak handles up to {MAX_ASPECT}:1, crop or split it first")


def jpeg_scan_count(data: bytes) -> int:
    """The scans of a JPEG's first image (`data` its bytes), up to its end marker, read
    as libjpeg reads them: each segment (EXIF, ICC, a comment: any bytes, an end marker's
    among them) stepped over by its length; a scan's entropy-coded data up to the next
    marker (0xFF there is followed by 0x00 or a restart marker); fill bytes and stray
    bytes between segments passed one by one."""
    at, scans, size = 2, 0, len(data)  # after SOI
    while at + 1 < size:
        if data[at] != 0xFF or data[at + 1] == 0xFF:  # stray byte, or fill before a marker
            at += 1
            continue
        marker = data[at + 1]
        if marker == 0xD9:  # the end of the first image (an MPO's others follow)
            break
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # standalone markers
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
        if marker == 0xDA:
            scans += 1
            while (at := data.find(b"\xff", at)) >= 0 and at + 1 < size and (
                    data[at + 1] == 0x00 or 0xD0 <= data[at + 1] <= 0xD7):
                at += 2  # a stuffed 0xFF, or a restart marker: still the scan's data
            if at < 0:
                break
    return scans


def check_jpeg_scans(fp: IO[bytes], path: Path) -> None:
    """Refuse a JPEG of more than MAX_JPEG_SCANS scans: libjpeg decodes each over the
    whole image and sets no limit, so 20,000 empty scans in 683 KB took 27 s to verify
    and 100,000 about five minutes (a photo has about ten)."""
    where = fp.tell()
    try:
        fp.seek(0)
        scans = jpeg_scan_count(fp.read())
    finally:
        fp.seek(where)
    if scans > MAX_JPEG_SCANS:
        raise _fail(path, f"is a JPEG of {scans} scans (a photo has about ten): refused as a "
                          "decompression bomb; re-save it as an ordinary JPEG")


def _read(image: Image.Image, fp: IO[bytes], path: Path, limit: int) -> Photo:
    source_format = image.format or "?"
    frames = _frame_count(image)
    if frames > 1 and source_format != "MPO":
        raise _fail(path, _frames_refusal(source_format, frames))
    if source_format == "TIFF":  # what Pillow shows first would be all that is protected
        if 50706 in image.tag_v2:  # DNGVersion: a RAW's small preview, its data unseen
            raise _fail(path, "is a camera RAW (DNG) file: develop it first, and export it "
                              "as JPEG, HEIC or TIFF")
        if int(image.tag_v2.get(254, 0)) & 1:  # NewSubfileType: a reduced-size image
            raise _fail(path, "its first image is a reduced-size preview, not the picture; "
                              "export the picture as a single-image TIFF")
    width, height = image.size
    _check_geometry(path, width, height, limit)
    if source_format in ("JPEG", "MPO"):
        check_jpeg_scans(fp, path)
    if source_format == "PNG":
        # Reading a PNG's EXIF decodes every pixel first (eXIf may follow the image
        # data); a decode error there must fail the photo, not pass as unreadable EXIF
        # and leave a half-decoded image behind.
        image.load()
    exif = md.snapshot_exif(image)
    orientation = 1 if source_format == "HEIF" or exif is None else exif.orientation
    # Pillow also turns a TIFF whose only orientation is XMP's tiff:Orientation; viewers
    # read the TIFF tag alone, so that copy is stored as the file was: the turn is undone.
    xmp_turn = (image.getexif().get(md.ORIENTATION, 1)
                if source_format == "TIFF" and md.ORIENTATION not in image.tag_v2 else 1)
    icc = image.info.get("icc_profile") or None
    if source_format == "BMP" and icc is None:
        icc = bmp_profile(fp)  # Pillow does not read a V5 header's profile
    avif_colour = None
    if source_format == "AVIF":
        _warn_avif_depth(fp, path)
        # Pillow reads the pixels in their own colour space but not the CICP (nclx) tag
        # that names it; where no ICC profile says it instead, the copy is tagged from it
        avif_colour = avif_cicp(fp) if icc is None else None
    color, alpha, depth, icc = _pixels(image, fp, path, icc)
    # Pillow turns a TIFF upright itself while loading it (and drops its tag); the file's
    # orientation is still kept, so the copy is stored as the original was.
    upright_already = (source_format == "TIFF" and orientation != 1
                       and md.ORIENTATION not in image.tag_v2)
    if xmp_turn in range(2, 9) and md.ORIENTATION not in image.getexif():  # Pillow turned it
        color = to_stored(color, xmp_turn)
        alpha = None if alpha is None else to_stored(alpha, xmp_turn)
    mode = image.mode
    if depth == 16 and not mode.startswith("I"):  # Pillow reports 8-bit modes for these
        mode = ("LA" if color.ndim == 2 else "RGBA" if alpha is not None else "RGB") + ";16"
    if not upright_already:
        color = to_upright(color, orientation)
        alpha = None if alpha is None else to_upright(alpha, orientation)
    gray = color.ndim == 2
    rgb = color.astype(np.float32)
    rgb /= np.float32(2 ** depth - 1)  # in place: one float copy at a time (1.2 GB at 100 MP)
    if gray:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    xmp = xmp_packet(image, fp)
    info = _format_info(image, path)
    if source_format == "PNG" and (cicp := png_cicp(fp)):
        info["png_cicp"] = cicp
    if source_format in ("JPEG", "MPO", "TIFF") and any(iptc := md.iptc_rights(image)):
        info["iptc_rights"] = iptc
    if avif_colour and cicp_beyond_srgb(*avif_colour):
        info["avif_cicp"] = avif_colour
    photo = Photo(rgb=np.ascontiguousarray(rgb), is_grayscale=gray, path=path,
                  format=source_format, mode=mode, bit_depth=depth, alpha=alpha,
                  orientation=orientation, icc_profile=icc, exif=exif, xmp=xmp or None,
                  info=info)
    log.debug("loaded %s: %s %s %dx%d, %d-bit, orientation %d", path, source_format,
              mode, width, height, depth, orientation)
    return photo


def _stores_dpi(image: Image.Image) -> bool:
    """Whether the file itself gives its resolution: Pillow makes one up for a TIFF
    without resolution tags (1 dpi, which would place a copy at 6000 inches) and for a
    JPEG whose EXIF has none (72 dpi)."""
    if image.format == "TIFF":
        return md.X_RESOLUTION in getattr(image, "tag_v2", {})
    if image.format in ("JPEG", "MPO") and image.info.get("jfif_unit") not in (1, 2):
        try:
            return md.X_RESOLUTION in image.getexif()
        except md.EXIF_ERRORS:
            return False
    return True


def _format_info(image: Image.Image, path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if image.info.get("progressive") or image.info.get("progression"):
        info["progressive"] = True
    dpi = image.info.get("dpi") if _stores_dpi(image) else None
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(0 < float(d) < 100000 for d in dpi):
        info["dpi"] = (round(float(dpi[0]), 3), round(float(dpi[1]), 3))
    if image.format == "TIFF":
        info["compression"] = image.info.get("compression", "raw")
    if image.format == "HEIF" and image.info.get("nclx_profile"):
        info["nclx_profile"] = image.info["nclx_profile"]
    if image.format == "HEIF" and int(image.info.get("bit_depth") or 8) > 8:
        # pillow-heif's Pillow plugin always decodes HDR HEIF to 8 bits per channel
        log.warning("%s: %d-bit HEIF is read as 8-bit; the protected copy is 8-bit",
                    path, int(image.info["bit_depth"]))
    if image.format == "PNG":
        text = {k: v for k, v in image.info.items() if isinstance(v, str) and
                k in PNG_TEXT_RIGHTS | PNG_TEXT_OTHER}
        if text:
            info["png_text"] = text
        colour = {k: image.info[k] for k in ("gamma", "chromaticity", "srgb")
                  if k in image.info}
        if colour:
            info["png_colour"] = colour
    return info


def png_colour_chunks(colour: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """A PNG's colour chunks other than iCCP, from what Pillow read of them (gamma 0.45455,
    chromaticity: eight values, srgb: a rendering intent), back as (type, data). Pillow
    reads them but does not write them: without them a PNG tagged with another gamma or
    wider primaries (and no ICC profile) would show with other tones."""
    chunks = []
    try:
        if "srgb" in colour:
            chunks.append((b"sRGB", bytes([int(colour["srgb"])])))
        if "gamma" in colour:
            chunks.append((b"gAMA", struct.pack(">I", round(float(colour["gamma"]) * 1e5))))
        if "chromaticity" in colour and len(colour["chromaticity"]) == 8:
            chunks.append((b"cHRM", struct.pack(">8I", *(round(float(v) * 1e5)
                                                          for v in colour["chromaticity"]))))
    except (ValueError, TypeError, OverflowError, struct.error):  # a value no PNG holds
        return []
    return chunks


BMP_V5_HEADER = 124
BMP_PROFILE_EMBEDDED = b"DEBM"  # the CSType 'MBED', a little-endian DWORD


def bmp_profile(fp: IO[bytes], limit: int = 16 << 20) -> bytes | None:
    """The ICC profile a BMP's BITMAPV5HEADER embeds (CSType 'MBED': its offset from the
    header's start and its size), or None (another header, a linked or no profile, or
    one past the file's end or over `limit` bytes)."""
    at = fp.tell()
    try:
        fp.seek(14)
        header = fp.read(BMP_V5_HEADER)
        if len(header) < BMP_V5_HEADER or struct.unpack("<I", header[:4])[0] < BMP_V5_HEADER \
                or header[56:60] != BMP_PROFILE_EMBEDDED:
            return None
        offset, size = struct.unpack("<II", header[112:120])
        if not 0 < size <= limit:
            return None
        fp.seek(14 + offset)
        profile = fp.read(size)
        return profile if len(profile) == size else None
    finally:
        fp.seek(at)


SRGB_GAMMA = 0.45455  # a PNG's gAMA for sRGB's curve, as Pillow reads it
SRGB_CHROMATICITY = (0.3127, 0.329, 0.64, 0.33, 0.30, 0.60, 0.15, 0.06)  # white, R, G, B


def png_colour_beyond_srgb(colour: dict[str, Any]) -> str | None:
    """What a PNG's gAMA and cHRM (read as png_colour, no sRGB chunk) set beyond sRGB's
    ("gamma 1", "other primaries"), or None where they set sRGB's, or an sRGB chunk says it."""
    if not colour or "srgb" in colour:
        return None
    parts = []
    try:
        gamma = float(colour.get("gamma", SRGB_GAMMA))
        if abs(gamma - SRGB_GAMMA) > 0.005:
            parts.append(f"gamma {1 / gamma:.3g}" if gamma > 0 else "gamma")
        chromaticity = colour.get("chromaticity")
        if chromaticity is not None and len(chromaticity) == 8 and any(
                abs(float(a) - b) > 0.005 for a, b in zip(chromaticity, SRGB_CHROMATICITY)):
            parts.append("other primaries")
    except (TypeError, ValueError):
        return None
    return " and ".join(parts) or None


def with_real_alpha(image: Image.Image) -> Image.Image:
    """A palette image as RGB or RGBA, a colour key (PNG tRNS on 1/L/RGB, a gray GIF's
    transparent index) as a real alpha band (LA or RGBA), premultiplied RGBa/La as
    straight RGBA/LA; any other image unchanged."""
    mode, keyed = image.mode, "transparency" in image.info
    if mode in ("RGBa", "La"):  # premultiplied alpha: straight alpha, as files carry it
        return image.convert(mode.upper())
    if mode in ("P", "PA"):
        return image.convert("RGBA" if mode == "PA" or keyed else "RGB")
    if keyed and mode in ("1", "L", "RGB"):
        return image.convert("RGBA" if mode == "RGB" else "LA")
    return image


def low_bit_gray_key(key: int, depth: int) -> int:
    """A 2- or 4-bit gray PNG's tRNS key on the 0-255 scale Pillow gives its samples
    (Pillow scales the samples but leaves the key as stored: it would match no pixel)."""
    return key * 255 // (2 ** depth - 1)


def _png_header(fp: IO[bytes]) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    fp.seek(0)
    head = fp.read(26)
    return head[24], head[25]


def _tiff_bits(image: Image.Image, default: int = 8) -> int:
    """A TIFF's widest BitsPerSample (tag 258), `default` where the tag is missing."""
    bits = image.tag_v2.get(258, (default,))
    return max(bits) if isinstance(bits, tuple) else bits


def _pixels(image: Image.Image, fp: IO[bytes], path: Path, icc: bytes | None
            ) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """Stored-orientation pixels: colour (H, W, 3) or gray (H, W), alpha (H, W) or None,
    bit depth, and the ICC profile describing the colour array."""
    mode = image.mode
    if image.format == "PNG":
        depth, colour_type = _png_header(fp)
        if depth == 16 and colour_type in (2, 4, 6):
            return (*_png16(fp, path, colour_type), 16, icc)
        key = image.info.get("transparency")
        if colour_type == 0 and depth in (2, 4) and isinstance(key, int):
            image.info["transparency"] = low_bit_gray_key(key, depth)
    if image.format == "TIFF" and mode in ("RGB", "RGBA", "CMYK") and _tiff_bits(image) > 8:
        # not premultiplied alpha (ExtraSamples 1): Pillow's reading unmultiplies it
        deep = (_tiff16(image, fp) if mode != "CMYK" and
                image.tag_v2.get(338) not in (1, (1,)) else None)
        if deep is not None:
            return (*deep, 16, icc)
        if image.tag_v2.get(284) == 2 and image.tag_v2.get(259, 1) == 1:
            # uncompressed, one plane a channel: Pillow unpacks its 16-bit planes as
            # 8-bit ones (a scrambled picture), and OpenCV misreads them too
            raise _fail(path, "16-bit colour TIFF stored as separate planes is not "
                        "supported; export a standard (interleaved) TIFF")
        log.warning("%s: 16-bit colour TIFF is read and saved as 8-bit", path)
    image = with_real_alpha(image)
    mode = image.mode
    if mode == "1":
        return np.asarray(image.convert("L")), None, 8, icc
    if mode == "L":
        return np.asarray(image), None, 8, icc
    if mode in ("LA", "La"):
        data = np.asarray(image.convert("LA"))
        return data[:, :, 0], data[:, :, 1], 8, icc
    if mode.startswith("I;16"):
        if image.format == "TIFF":  # Pillow reads these as plain 16-bit black-is-zero
            if image.tag_v2.get(262) == 0:
                raise _fail(path, "16-bit gray TIFF stored white-is-zero is not "
                            "supported; export a standard (black-is-zero) copy")
            bits = _tiff_bits(image, default=16)
            if bits < 16:
                raise _fail(path, f"{bits}-bit gray TIFF is not supported; export an 8- or "
                            "16-bit copy")
        data = np.asarray(image).astype(np.uint16)
        key = image.info.get("transparency")  # 16-bit gray PNG's tRNS: one transparent value
        alpha = (np.where(data == key, 0, 65535).astype(np.uint16)
                 if isinstance(key, int) else None)
        return data, alpha, 16, icc
    if mode == "I":
        data = np.asarray(image)
        # a 32-bit TIFF holding small values is not 16-bit: read so, 0-255 came out black
        wide = image.format == "TIFF" and _tiff_bits(image) > 16
        if not wide and data.min() >= 0 and data.max() <= 65535:
            return data.astype(np.uint16), None, 16, icc
        raise _fail(path, "32-bit integer pixels are not supported; export an 8- or 16-bit copy")
    if mode == "F":
        raise _fail(path, f"32-bit float pixels are not supported; {FLOAT_ADVICE}")
    if mode == "CMYK":
        return from_cmyk(image, path, icc)
    if mode in ("RGBA", "RGBa"):
        data = np.asarray(image.convert("RGBA"))
        return data[:, :, :3], data[:, :, 3], 8, icc
    if mode == "RGB":
        return np.asarray(image), None, 8, icc  # no convert: a 12 MP copy is 0.05 s
    if mode in ("RGBX", "YCbCr"):
        return np.asarray(image.convert("RGB")), None, 8, icc
    raise _fail(path, f"pixel mode {mode} is not supported; export an RGB or grayscale copy")


def _png16(fp: IO[bytes], path: Path, colour_type: int
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a 16-bit colour or gray+alpha PNG with OpenCV (Pillow keeps only 8 bits)."""
    import cv2

    fp.seek(0)
    try:
        data = cv2.imdecode(np.frombuffer(fp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own size limit (2^30 px), or a decoder failure
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2.error"
        raise _fail(path, f"OpenCV can't decode this 16-bit PNG ({detail})") from None
    if data is None or data.dtype != np.uint16:
        raise _fail(path, "the 16-bit PNG data is truncated or corrupt")
    if data.ndim == 2:
        data = data[:, :, None]
    if colour_type == 4:  # gray + alpha: OpenCV expands gray to three equal channels
        return data[:, :, 0].copy(), data[:, :, -1].copy() if data.shape[2] in (2, 4) else None
    color = np.ascontiguousarray(data[:, :, 2::-1])
    return color, (data[:, :, 3].copy() if data.shape[2] == 4 else None)


def _tiff16(image: Image.Image, fp: IO[bytes]
            ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A 16-bit RGB(A) TIFF's full samples, decoded with OpenCV (Pillow keeps the top 8
    bits): (H, W, 3) uint16 colour and (H, W) uint16 alpha or None, in the orientation
    Pillow leaves them in (it turns a TIFF upright while loading it). None where OpenCV
    can't read it or reads other pixels than Pillow's top 8 bits (a layout one of them
    misreads): the caller then takes Pillow's 8 bits."""
    import cv2

    turn = image.getexif().get(md.ORIENTATION, 1)  # what Pillow's load turns it by
    image.load()
    fp.seek(0)
    try:
        data = cv2.imdecode(np.frombuffer(fp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    channels = len(image.getbands())
    if (data is None or data.dtype != np.uint16 or data.ndim != 3
            or data.shape[2] != channels):
        return None
    samples = np.concatenate([data[:, :, 2::-1], data[:, :, 3:]], axis=2)
    # OpenCV's TIFF reader turns some orientations itself: the match decides
    eight = np.asarray(image)  # Pillow's reading, to 8 bits: the same picture
    for candidate in (samples, to_upright(samples, turn) if turn in range(2, 9) else None):
        if (candidate is not None and candidate.shape[:2] == eight.shape[:2]
                and np.abs((candidate >> 8).astype(np.int16) - eight).max() <= 1):
            colour = np.ascontiguousarray(candidate[:, :, :3])
            return colour, (candidate[:, :, 3].copy() if channels == 4 else None)
    return None


_SRGB_DATE = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # ICC header dateTime, bytes 24-35


@functools.cache
def _srgb_profile() -> bytes:
    """lcms's built-in sRGB profile with a fixed creation date.

    lcms stamps the current time into the header, so two conversions a second apart
    would embed different bytes; fixing the date makes outputs reproducible. The
    profile ID (bytes 84-99) is left zero by lcms, so no checksum needs updating.
    """
    raw = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    raw[24:36] = _SRGB_DATE
    return bytes(raw)


def from_cmyk(image: Image.Image, path: Path, icc: bytes | None
              ) -> tuple[np.ndarray, None, int, bytes | None]:
    """CMYK -> sRGB through the embedded profile, else Pillow's plain formula."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
            srgb = _srgb_profile()
            rgb = ImageCms.profileToProfile(image, source, ImageCms.ImageCmsProfile(
                _io.BytesIO(srgb)), outputMode="RGB",
                renderingIntent=ImageCms.Intent.PERCEPTUAL)
            return np.asarray(rgb), None, 8, srgb
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            log.warning("%s: CMYK profile unusable (%s); converting without it", path, exc)
    return np.asarray(image.convert("RGB")), None, 8, None


# ----------------------------------------------------------------------- orientation


def to_upright(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF `orientation` (1..8) to stored pixels (H, W, ...), like exif_transpose."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def to_stored(a: np.ndarray, orientation: int) -> np.ndarray:
    """Undo `to_upright`: upright pixels (H, W, ...) back to the stored orientation."""
    return to_upright(a, {6: 8, 8: 6}.get(orientation, orientation))


# ----------------------------------------------------------------------------- save


def output_path_for(src: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Where the protected copy of `src` goes: the same name in `out_dir`, with the suffix
    changed only where the format changes (GIF -> .png, MPO -> .jpg, HEIC without an
    encoder -> .jpg)."""
    src = Path(src)
    source = SUFFIX_FORMAT.get(src.suffix.lower())
    target = DEFAULT_OUTPUT.get(source or "")
    name = src.name
    if source and target and target != source:
        name = src.stem + FORMAT_SUFFIX[target]
    return Path(out_dir) / name


LOSSY_OUTPUTS = frozenset({"JPEG", "HEIF", "AVIF"})  # WebP is written lossless


def writes_lossy(photo: Photo, dst: str | os.PathLike[str], requested: str | None = None
                 ) -> bool:
    """Whether save_photo(photo, ..., dst, format=requested) moves the pixels again after
    the attack: a lossy format's encoder, or fewer bits than the source's (a 16-bit PNG
    written as WebP, BMP or colour TIFF is rounded to 8 bits)."""
    fmt = _output_format(photo, Path(dst), requested)
    return fmt in LOSSY_OUTPUTS or _output_depth(photo, fmt) < photo.bit_depth


def _output_depth(photo: Photo, fmt: str) -> int:
    """Bits per sample save_photo writes `photo` with in `fmt`: the source's in PNG and in
    a grayscale TIFF without alpha, else 8."""
    gray = photo.is_grayscale and fmt not in NO_GRAY
    return photo.bit_depth if fmt == "PNG" or (fmt == "TIFF" and gray and
                                               photo.alpha is None) else 8


def _opaque(alpha: np.ndarray) -> bool:
    """Whether an alpha band (uint8 or uint16) is fully opaque everywhere."""
    return int(alpha.min()) == np.iinfo(alpha.dtype).max


def check_writable(photo: Photo, dst: str | os.PathLike[str], requested: str | None = None
                   ) -> None:
    """Raise OutputError now, before any work, if save_photo(photo, ..., dst,
    format=requested) would refuse to write it (transparency into a JPEG)."""
    fmt = _output_format(photo, Path(dst), requested)
    if fmt in NO_ALPHA and photo.alpha is not None and not _opaque(photo.alpha):
        raise OutputError(f"this photo has transparency, which {fmt} cannot store (a "
                          f"{photo.format} file, to be written as {Path(dst).name}); "
                          "rename it to .png or .webp and protect that")


def _output_format(photo: Photo, dst: Path, requested: str | None) -> str:
    """The format to write: `requested`, else the one dst's suffix names, else the
    default for the source format."""
    if requested:
        fmt = FORMAT_NAMES.get(requested.upper().lstrip("."))
        if fmt == "MPO":
            fmt = "JPEG"
        if fmt not in WRITABLE:
            why = (" (its 256-colour palette would erase the protection)" if fmt == "GIF"
                   else "")
            raise OutputError(f"cannot write {fmt or requested} output{why}; choose one of "
                              + ", ".join(sorted(WRITABLE)))
        return fmt
    by_suffix = SUFFIX_FORMAT.get(dst.suffix.lower())
    if by_suffix == "MPO":
        by_suffix = "JPEG"
    if by_suffix in WRITABLE:
        return by_suffix
    if by_suffix == "GIF":
        raise OutputError(f"{dst}: cannot write GIF (its 256-colour palette would erase the "
                          "protection); name the output .png (see cloak.io.output_path_for)")
    if by_suffix == "HEIF":  # pillow-heif without an HEVC encoder: never JPEG bytes in x.heic
        raise OutputError(f"{dst}: cannot write HEIC here (pillow-heif has no HEVC encoder); "
                          "name the output .jpg (see cloak.io.output_path_for)")
    return DEFAULT_OUTPUT.get(photo.format, "PNG")


def _check_rgb(photo: Photo, rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape != photo.rgb.shape:
        raise ValueError(f"rgb must have the photo's shape {photo.rgb.shape}, got {rgb.shape}")
    if not np.isfinite(rgb).all():
        raise ValueError("rgb contains NaN or infinite values")
    return rgb


def _quantise(values: np.ndarray, depth: int) -> np.ndarray:
    """[0, 1] floats -> whole steps of `depth` bits (uint8 or uint16), rounded to the
    nearest, a band of rows at a time: each band's steps run while it is in the CPU's
    cache (four passes over a 48 MP photo's 576 MB took 1.4 s), with one band's float
    temporary, not one the photo's size."""
    top = 2 ** depth - 1
    out = np.empty(values.shape, np.uint16 if depth == 16 else np.uint8)
    rows = max(1, (1 << 20) // max(1, values[0].size))  # about 4 MB of float32 a band
    for start in range(0, values.shape[0], rows):
        band = np.multiply(values[start:start + rows], top, dtype=np.float32)
        np.clip(band, 0, top, out=band)
        np.rint(band, out=band)
        out[start:start + rows] = band
    return out


def to_8bit(levels: np.ndarray) -> np.ndarray:
    """16-bit levels (any integer array in [0, 65535]) as uint8, rounded to the nearest of
    the 256 (the 8-bit level v is 257 v at 16 bits)."""
    return ((levels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _alpha_at(alpha: np.ndarray | None, depth: int) -> np.ndarray | None:
    if alpha is None or (alpha.dtype == np.uint16) == (depth == 16):
        return alpha
    if depth == 8:
        return to_8bit(alpha)
    return alpha.astype(np.uint16) * 257


@dataclass
class _Encoded:
    """Pixels ready to write: a PIL image, or raw 16-bit samples for our PNG writer."""

    image: Image.Image | None
    samples: np.ndarray | None  # (H, W, C) uint16 for 16-bit colour / gray+alpha PNG
    orientation: int  # orientation tag matching the stored pixels


def _encode_pixels(photo: Photo, rgb: np.ndarray, fmt: str) -> _Encoded:
    """Upright float pixels -> stored-orientation pixels in the output's mode."""
    gray = photo.is_grayscale and fmt not in NO_GRAY
    depth = _output_depth(photo, fmt)
    values = rgb.mean(axis=2) if gray else rgb
    pixels = _quantise(values, depth)
    alpha = _alpha_at(photo.alpha, depth)
    if alpha is not None and fmt in NO_ALPHA:
        if not _opaque(photo.alpha):
            raise OutputError(f"{fmt} cannot store transparency; save this photo as PNG or "
                              "WebP")
        alpha = None  # an alpha band that hides nothing (a 32-bit BMP's): nothing to keep
    orientation = photo.orientation if fmt in EXIF_FORMATS else 1
    if alpha is not None:
        pixels = np.dstack([pixels, alpha]) if pixels.ndim == 3 else np.stack([pixels, alpha], 2)
    pixels = to_stored(pixels, orientation)
    if depth == 16 and pixels.ndim == 3:
        return _Encoded(None, pixels, orientation)
    if depth == 16:
        return _Encoded(Image.fromarray(pixels.astype("<u2")), None, orientation)  # I;16
    mode = "L" if pixels.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    return _Encoded(Image.fromarray(pixels, mode), None, orientation)


def _save_options(photo: Photo, fmt: str, policy: md.MetadataPolicy, orientation: int,
                  jpeg_quality: int | None, stored_size: tuple[int, int] | None = None
                  ) -> dict[str, Any]:
    """Pillow save() keyword arguments for `fmt`, metadata included. `stored_size`:
    (width, height) of the pixels as stored."""
    icc = photo.icc_profile if policy.keep_icc else None
    # gray is written as RGB(A) there (WebP has no gray mode; Pillow's AVIF writer and
    # pillow-heif write gray with alpha as RGBA): a gray profile would not fit it
    rgb_written = fmt in NO_GRAY or (fmt in ("AVIF", "HEIF") and photo.alpha is not None)
    if icc and rgb_written and photo.is_grayscale and icc[16:20] == b"GRAY":
        icc = None
    # a PNG copy's Creation Time is a date it keeps too (see md.local_time_carried)
    texts = ((photo.info.get("png_text") or {}).get("Creation Time", ""),) \
        if fmt == "PNG" else ()
    xmp = md.build_xmp(photo.xmp, photo.exif, policy, __version__, texts=texts,
                       iptc=photo.info.get("iptc_rights", ([], None)))
    if fmt == "JPEG" and xmp and len(xmp) > md.MAX_JPEG_XMP:
        # one APP1 segment holds it (Pillow refused it when saving, after the attack): a
        # packet that long is the source's creator and rights text (a PNG's, say); the
        # copy keeps cloak's notice without them (EXIF's own copyright is kept as set)
        log.warning("%s: its XMP creator and rights (%d bytes) do not fit a JPEG; the "
                    "copy keeps cloak's notice without them", photo.path, len(xmp))
        xmp = md.build_xmp(photo.xmp, photo.exif, dataclasses.replace(
            policy, keep_copyright=False, keep_xmp=False), __version__, texts=texts)
    options: dict[str, Any] = {}
    if icc and fmt != "BMP":
        options["icc_profile"] = icc
    dpi = photo.info.get("dpi")
    if dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        options["dpi"] = dpi
    if fmt == "JPEG":
        quality = JPEG_QUALITY if jpeg_quality is None else int(jpeg_quality)
        if not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be in [1, 100], got {quality}")
        options.update(quality=quality, subsampling=0, optimize=True,
                       progressive=bool(photo.info.get("progressive")))
    elif fmt == "WEBP":
        options.update(lossless=True, exact=True, **WEBP_LOSSLESS_EFFORT)
    elif fmt == "HEIF":
        options.update(quality=HEIF_QUALITY, chroma=444, enc_params={"preset": HEIF_PRESET})
        if photo.info.get("nclx_profile") and policy.keep_icc:  # --no-icc: its tag too
            options["nclx_profile"] = photo.info["nclx_profile"]
    elif fmt == "AVIF":
        # gray without alpha as monochrome 4:0:0 (lossless on an 8-bit gray photo); Pillow
        # writes gray with alpha as RGBA
        gray = photo.is_grayscale and photo.alpha is None
        options.update(quality=AVIF_QUALITY, subsampling="4:0:0" if gray else "4:4:4",
                       speed=AVIF_SPEED)
    elif fmt == "TIFF":
        compression = photo.info.get("compression", "tiff_adobe_deflate")
        options["compression"] = (compression if compression in LOSSLESS_TIFF
                                  else "tiff_adobe_deflate")
    elif fmt == "PNG":
        pnginfo = PngInfo()
        for key, value in photo.info.get("png_text", {}).items():
            if key == "Creation Time" and policy.strip_gps:  # its zone says a region
                value = md.date_without_zone(value, local_time_carried=md.local_time_carried(
                    photo.exif, policy, photo.xmp, texts))
                if value is None:
                    continue
            if ((key in PNG_TEXT_RIGHTS and policy.keep_copyright) or (
                    key in PNG_TEXT_OTHER and policy.keep_exif
                    and not (policy.strip_serials and key in PNG_TEXT_PERSONAL))) \
                    and not md.holds_picture_data(value):  # words, not a hidden picture
                pnginfo.add_itxt(key, value)
        if xmp:
            pnginfo.add_itxt(PNG_XMP_KEYWORD, xmp.decode("utf-8"))
        if not options.get("icc_profile"):  # an ICC profile, when kept, says it all
            for kind, data in png_colour_chunks(photo.info.get("png_colour", {})):
                pnginfo.add(kind, data)
        if cicp := _png_cicp_to_write(photo, policy, bool(options.get("icc_profile"))):
            pnginfo.add(b"cICP", cicp)
        options["pnginfo"] = pnginfo
        options["compress_level"] = PNG_COMPRESS_LEVEL
    if fmt == "TIFF":
        sub_ifds = options["compression"] == "raw"
        src = photo.exif
        if not sub_ifds and src and ((policy.keep_exif and src.exif)
                                     or (not policy.strip_gps and src.gps)):
            log.warning("%s: a compressed TIFF copy can't hold the EXIF %s (libtiff writes "
                        "no Exif or GPS blocks there); they are left out", photo.path,
                        " and ".join(what for what, kept in (
                            ("capture details", policy.keep_exif and src.exif),
                            ("GPS position", not policy.strip_gps and src.gps)) if kept))
        exif = md.build_exif(photo.exif, policy, orientation, xmp_for_tiff=xmp,
                             sub_ifds=sub_ifds, stored_size=stored_size, max_bytes=None)
        # Pillow's TIFF writer takes EXIF bytes apart into tags, reading text as latin-1
        # and writing it back as ASCII with "?" for the rest ("José" came out "Jos??",
        # compressed or not): given the tags, with IFD0's text as its bytes, it keeps them
        tags = Image.Exif()
        if exif:
            tags.load(exif)
        for tag, value in list(tags.items()):
            if isinstance(value, str):
                tags[tag] = md.exif_text_bytes(value)
        if options["compression"] in TIFF_PREDICTED:
            # horizontal differencing (libtiff's predictor 2) before LZW or deflate: pixels
            # exact, files 11-60% smaller on dev photos, deflate's encode slower (8 MP:
            # 2.5 s against 0.7; benchmarks/lossless_effort.md). Pillow takes the tag from
            # the EXIF it writes (a `tiffinfo` would replace that EXIF).
            tags[TIFF_PREDICTOR] = 2
        exif = tags if len(tags) else None
    else:
        exif = (md.build_exif(photo.exif, policy, orientation, stored_size=stored_size,
                              max_bytes=md.MAX_JPEG_SEGMENT if fmt == "JPEG" else None)
                if fmt != "BMP" else None)
    if exif:
        options["exif"] = exif
    if xmp and fmt in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["xmp"] = xmp
    return options


def _png_cicp_to_write(photo: Photo, policy: md.MetadataPolicy, icc_kept: bool
                       ) -> bytes | None:
    """The cICP chunk a PNG copy carries (not with --no-icc): a PNG's own, as read; a HEIF's
    nclx tag where no ICC profile says the colours instead (as RGB: matrix 0, full range)."""
    if not policy.keep_icc:
        return None
    if photo.info.get("png_cicp"):
        return photo.info["png_cicp"]
    cicp = cicp_of(photo)
    if icc_kept or not cicp or not cicp_beyond_srgb(*cicp):
        return None
    try:
        return bytes([int(cicp[0]), int(cicp[1]), 0, 1])
    except (TypeError, ValueError):  # not a code point a byte holds
        return None


def save_photo(photo: Photo, rgb: np.ndarray, dst: str | os.PathLike[str], *,
               overwrite: Overwrite = False, format: str | None = None,
               jpeg_quality: int | None = None,
               metadata: md.MetadataPolicy | None = None, make_folders: bool = True) -> Path:
    """Write `rgb` ((H, W, 3) float32 in [0, 1], upright, photo.rgb's shape) to `dst`
    atomically, in the source's format, orientation, bit depth and metadata policy.
    `make_folders`: as in cloak.atomic.write_atomic.

    Raises OutputError if dst exists (unless `overwrite` allows replacing it: see
    may_replace), is the source, or can't be written. Returns the path written."""
    overwrite = overwrite_flag(overwrite)  # one reading, before the encode and at the write
    dst = settled_path(dst)
    rgb = _check_rgb(photo, rgb)
    fmt = _output_format(photo, dst, format)
    policy = metadata or md.MetadataPolicy()
    if dst.is_dir():
        raise OutputError(f"output {dst} is a folder; give a file name")
    if photo.path is not None and dst.exists() and same_file(dst, photo.path):
        raise OutputError(f"output {dst} is the input photo; choose another output folder")
    if os.path.lexists(dst) and not may_replace(overwrite, dst):  # a broken link too
        raise OutputExistsError(dst)
    encoded = _encode_pixels(photo, rgb, fmt)
    stored = (encoded.image.size if encoded.image is not None
              else (encoded.samples.shape[1], encoded.samples.shape[0]))
    options = _save_options(photo, fmt, policy, encoded.orientation, jpeg_quality, stored)
    if format is None:
        _warn_misnamed(photo, fmt)
    if fmt == "TIFF" and _output_depth(photo, fmt) < photo.bit_depth:
        log.warning("%s: the copy is an 8-bit TIFF where the original has 16 bits a sample "
                    "(Pillow writes 16-bit TIFF in gray without alpha only); a 16-bit PNG "
                    "of the original would get a 16-bit copy", photo.path or dst)
    cicp = cicp_of(photo)
    named = cicp_beyond_srgb(*cicp) if cicp else None
    carried = fmt in ("PNG", "AVIF") or (fmt == "HEIF" and photo.info.get("nclx_profile"))
    to_carry = named and not photo.icc_profile and policy.keep_icc
    if to_carry and not carried:
        _warn_colour_lost(photo, named, fmt)
    tagged = png_colour_beyond_srgb(photo.info.get("png_colour", {}))
    if fmt == "BMP" and photo.icc_profile and policy.keep_icc and not \
            profile_name(photo.icc_profile).lower().startswith("srgb"):  # shown as sRGB
        log.warning("%s: its colour profile (%s) is left out of the BMP copy (cloak writes "
                    "BMPs without one): viewers show it as sRGB; a PNG copy would keep it",
                    photo.path or dst, profile_name(photo.icc_profile))
    if tagged and fmt != "PNG" and not photo.icc_profile and policy.keep_icc:
        log.warning("%s: its PNG colour chunks (gAMA/cHRM, no ICC profile) set %s, not "
                    "sRGB's, which a %s copy can't carry: the copy will show other tones "
                    "or colours", photo.path or dst, tagged, fmt)

    def write(fp: IO[bytes]) -> None:
        if encoded.samples is not None:
            write_png16(fp, encoded.samples, options)
        elif fmt == "AVIF" and to_carry:  # Pillow writes sRGB's nclx tag: set the photo's
            buffer = _io.BytesIO()
            encoded.image.save(buffer, fmt, **options)
            tagged = with_avif_cicp(buffer.getvalue(), *cicp)
            if tagged is None:
                _warn_colour_lost(photo, named, fmt)
            fp.write(tagged or buffer.getvalue())
        else:
            encoded.image.save(fp, fmt, **options)

    write_atomic(dst, write, overwrite=overwrite, make_folders=make_folders,
                 private_like=photo.path)  # a private photo's copy is private too
    log.info("wrote %s (%s)", dst, fmt)
    return dst


LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "HEIF", "AVIF"})


def _warn_misnamed(photo: Photo, fmt: str) -> None:
    """Say so where the photo's name and its content disagree (a JPEG named .png) and
    the copy, named as the photo, is written in the format its name says."""
    if photo.path is None:
        return
    by_name = SUFFIX_FORMAT.get(photo.path.suffix.lower())
    target = DEFAULT_OUTPUT.get(photo.format, "PNG")  # what its content would give
    same = {photo.format, "JPEG" if photo.format == "MPO" else photo.format}
    if (by_name is None or by_name in same or fmt in same or fmt == target
            or fmt != DEFAULT_OUTPUT.get(by_name, by_name)):
        return
    size = ("lossless, so several times larger" if photo.format in LOSSY_FORMATS
            and fmt not in LOSSY_OUTPUTS else "lossy" if fmt in LOSSY_OUTPUTS
            and photo.format not in LOSSY_FORMATS else None)
    log.warning("%s is named %s but holds %s image: its copy is written as %s, as the "
                "name says%s; rename the photo %s for %s copy", photo.path,
                photo.path.suffix, _with_article(photo.format), fmt,
                f" ({size})" if size else "", FORMAT_SUFFIX.get(target, ".png"),
                _with_article(target))


def _with_article(format_name: str) -> str:
    """'a JPEG', 'an AVIF', 'an MPO': the article as the format's name is said."""
    return f"{'an' if format_name[:1] in 'AEIMO' else 'a'} {format_name}"


def _warn_colour_lost(photo: Photo, named: str, fmt: str) -> None:
    log.warning("%s: its colours are tagged %s (%s's CICP tag, no ICC profile), "
                "which %s copy can't carry: the copy's colours will look duller (an "
                "HDR photo flat)", photo.path, named, _with_article(photo.format),
                _with_article(fmt))


def xmp_packet(image: Image.Image, fp: IO[bytes] | None = None) -> bytes | None:
    """The photo's XMP packet as bytes, or None. Pillow reads it from a PNG's iTXt chunk,
    as the XMP spec asks; a PNG from some tools keeps it in a tEXt or zTXt chunk of the
    same keyword instead, which Pillow leaves among the text chunks. A GIF's (its "XMP
    DataXMP" application extension) Pillow only locates: it is read from `fp` (the
    image's file, by default its own)."""
    xmp = image.info.get("xmp")
    if not xmp and image.format == "GIF":
        xmp = _gif_xmp(image, fp or getattr(image, "fp", None))
    if not xmp and image.format == "PNG" and isinstance(
            text := image.info.get(PNG_XMP_KEYWORD), str):
        # Pillow decodes tEXt and zTXt as Latin-1: their bytes back, the packet's UTF-8
        raw = text.encode("latin-1", "replace")
        try:
            raw.decode("utf-8")
            xmp = raw
        except UnicodeDecodeError:  # Latin-1 text after all
            xmp = text
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return xmp or None


GIF_XMP_LIMIT = 4 << 20  # bytes: an XMP packet longer than this is not read from a GIF


def _gif_xmp(image: Image.Image, fp: IO[bytes] | None) -> bytes | None:
    """The XMP packet of a GIF's "XMP DataXMP" extension, which Pillow gives as (its
    identifier, the offset of its data): the packet runs from there to its
    `<?xpacket end=...?>` (a "magic trailer" of 258 bytes follows, which makes the
    packet's bytes readable as GIF sub-blocks). None where there is none or it is cut."""
    extension = image.info.get("extension")
    if not (isinstance(extension, tuple) and len(extension) == 2
            and extension[0] == b"XMP DataXMP" and isinstance(extension[1], int)
            and fp is not None):
        return None
    try:
        where = fp.tell()
        try:
            fp.seek(extension[1])
            data = fp.read(GIF_XMP_LIMIT)
        finally:
            fp.seek(where)
    except (OSError, ValueError):  # a closed file
        return None
    end = data.find(b"<?xpacket end=")
    close = data.find(b"?>", end) if end >= 0 else -1
    return data[:close + 2] if close >= 0 and data.startswith(b"<?xpacket") else None


def says_protected_file(path: str | os.PathLike[str], wait: bool = True) -> bool:
    """Whether the image file at `path` carries cloak's note in its XMP (a copy cloak
    wrote, unless its notices were turned off). False for a file that can't be read as
    an image, or has too many pixels to open. `wait` False: DecoderBusy while another
    thread decodes a photo (see decoding_limit), instead of waiting for it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO's open() would block
            return False
        with decoding_limit(Path(path), pixel_limit(), wait), warnings.catch_warnings():
            # only the XMP is read: Pillow's EXIF warnings come when the photo is loaded
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path, formats=READ_FORMATS) as image:
                return md.says_protected(xmp_packet(image))
    except DecoderBusy:
        raise
    except Exception:  # noqa: BLE001 - any file the user may have put there, whatever
        # Pillow raises on it: it is simply not cloak's
        return False


def settled_path(path: str | os.PathLike[str]) -> Path:
    """`path` as it names a file once its missing folders are made. A `..` after a folder
    that does not exist yet is taken by its letters (`new/../x.png` is `x.png`: the
    folder would be made, then stepped back out of), so checks made before the write
    (is this the input photo? is a file there?) see the file the write will replace.
    The part of the path that exists is kept as given: the system resolves its links."""
    path = Path(path)
    existing, rest = Path(), list(path.parts)
    while rest and os.path.lexists(existing / rest[0]):
        existing = existing / rest.pop(0)
    if ".." not in rest:
        return path
    return existing / os.path.normpath(os.path.join(*rest))
