"""cloak.io and cloak.metadata: reading, writing and metadata policy, on files built here.

Every test image is made in tmp_path with Pillow/numpy/pillow-heif (at most 64 px, except
the aspect-ratio and bomb cases, which are never decoded). The real dev photos are used
only by the class at the end (load and save of each, about 13 s).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io as _io
import logging
import os
import select
import shutil
import signal
import struct
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from conftest import PHOTOS, missing
from PIL import (
    ExifTags,
    Image,
    ImageCms,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
)

from cloak import ConfigError, OutputError, UnsupportedImageError, atomic, cicp, io, metadata, png16
from cloak.metadata import DMI_PROHIBITED, MetadataPolicy

GPS, EXIF_IFD = ExifTags.IFD.GPSInfo, ExifTags.IFD.Exif
T = ExifTags.Base


# ------------------------------------------------------------------------ helpers


def pixels(width: int = 40, height: int = 32, channels: int = 3, seed: int = 0,
           dtype: type = np.uint8) -> np.ndarray:
    """A smooth gradient plus noise, (H, W, C) or (H, W) when channels == 1."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:height, 0:width]
    base = (x / width * 0.6 + y / height * 0.3)[..., None] * np.linspace(0.6, 1, channels)
    noise = rng.uniform(0, 0.1, (height, width, channels))
    data = np.round((base + noise).clip(0, 1) * top).astype(dtype)
    return data[..., 0] if channels == 1 else data


def save(image: Image.Image, path: Path, fmt: str | None = None, **options) -> Path:
    image.save(path, fmt, **options)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def roundtrip(src: Path, rgb: np.ndarray | None = None, **options) -> tuple[io.Photo, Path]:
    """Load src, save it (unchanged pixels unless `rgb`) next to it in out/, return both."""
    photo = io.load_photo(src)
    dst = io.output_path_for(src, src.parent / "out")
    written = io.save_photo(photo, photo.rgb if rgb is None else rgb, dst, **options)
    return photo, written


def as_u8(photo: io.Photo) -> np.ndarray:
    return np.round(photo.rgb * 255).astype(np.uint8)


def exif_with(**tags) -> Image.Exif:
    """EXIF with GPS, serials, a maker note, capture date, copyright and artist."""
    exif = Image.Exif()
    exif[T.Make], exif[T.Model] = "Cam", "X100"
    exif[T.Copyright], exif[T.Artist] = "(c) 2024 Ada", "Ada Lovelace"
    exif[EXIF_IFD] = {T.DateTimeOriginal: "2024:05:01 12:00:00", T.BodySerialNumber: "SN123",
                      T.LensSerialNumber: "LN456", T.MakerNote: b"vendor serial SN123",
                      T.ExposureTime: 0.01}
    exif[GPS] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0)}
    for name, value in tags.items():
        exif[getattr(T, name)] = value
    return exif


def cmyk_icc_profile() -> bytes:
    """A minimal ICC v2 CMYK printer profile: a 2-point lut16 A2B0 from CMYK to Lab."""
    def tag_desc(text: str) -> bytes:
        ascii_ = text.encode() + b"\0"
        return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_
                + bytes(8) + bytes(3) + bytes(67))

    clut = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lightness = 100 * (1 - k) * (1 - 0.25 * (c + m + y))
                    a, b = (70 * m - 40 * c) * (1 - k), (80 * y - 50 * c) * (1 - k)
                    clut += [round(lightness * 652.8), round((a + 128) * 256),
                             round((b + 128) * 256)]
    identity = [1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 16]
    a2b0 = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + struct.pack(">9i", *identity)
            + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
            + struct.pack(f">{len(clut)}H", *clut) + struct.pack(">6H", *[0, 65535] * 3))
    wtpt = b"XYZ " + bytes(4) + struct.pack(">3i", 63190, 65536, 54061)
    cprt = b"text" + bytes(4) + b"no copyright\0"
    tags = [(b"desc", tag_desc("test CMYK")), (b"wtpt", wtpt), (b"cprt", cprt),
            (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"prtr"
              + b"CMYKLab " + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0)
              + struct.pack(">3i", 63190, 65536, 54061) + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def description(icc: bytes) -> str:
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(_io.BytesIO(icc)))


# ------------------------------------------------------------------- reading formats


def _jpeg(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.jpg", quality=95)


def _jpeg_progressive(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.jpg", quality=95, progressive=True)


def _png(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.png")


def _png_gray(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=1), "L"), p / "a.png")


def _png_gray16(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=1, dtype=np.uint16)), p / "a.png")


def _png_rgb16(p: Path) -> Path:
    with open(p / "a.png", "wb") as fp:
        png16.write_png16(fp, pixels(dtype=np.uint16), {})
    return p / "a.png"


def _png_la(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=2), "LA"), p / "a.png")


def _png_rgba(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=4), "RGBA"), p / "a.png")


def _png_palette(p: Path) -> Path:
    return save(Image.fromarray(pixels()).quantize(64), p / "a.png")


def _png_palette_transparent(p: Path) -> Path:
    return save(Image.fromarray(pixels()).quantize(64), p / "a.png", transparency=0)


def _png_1bit(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=1) > 60), p / "a.png")


def _webp(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.webp", quality=90)


def _webp_rgba(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=4), "RGBA"), p / "a.webp", lossless=True)


def _heic(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.heic", quality=90)


def _tiff(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.tif", compression="tiff_lzw")


def _tiff_gray16(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=1, dtype=np.uint16)), p / "a.tif")


def _bmp(p: Path) -> Path:
    return save(Image.fromarray(pixels()), p / "a.bmp")


def _gif(p: Path) -> Path:
    return save(Image.fromarray(pixels()).quantize(128), p / "a.gif")


def _mpo(p: Path) -> Path:
    first, second = Image.fromarray(pixels()), Image.fromarray(pixels(seed=1))
    return save(first, p / "a.mpo", "MPO", save_all=True, append_images=[second])


def _cmyk(p: Path) -> Path:
    return save(Image.fromarray(pixels(channels=4), "CMYK"), p / "a.jpg", quality=95)


def _cmyk_icc(p: Path) -> Path:
    image = Image.fromarray(pixels(channels=4), "CMYK")
    return save(image, p / "a.jpg", quality=95, icc_profile=cmyk_icc_profile())


READERS = {  # builder -> (format, is_grayscale, bit depth, has alpha)
    _jpeg: ("JPEG", False, 8, False), _jpeg_progressive: ("JPEG", False, 8, False),
    _png: ("PNG", False, 8, False), _png_gray: ("PNG", True, 8, False),
    _png_gray16: ("PNG", True, 16, False), _png_rgb16: ("PNG", False, 16, False),
    _png_la: ("PNG", True, 8, True), _png_rgba: ("PNG", False, 8, True),
    _png_palette: ("PNG", False, 8, False), _png_palette_transparent: ("PNG", False, 8, True),
    _png_1bit: ("PNG", True, 8, False), _webp: ("WEBP", False, 8, False),
    _webp_rgba: ("WEBP", False, 8, True), _heic: ("HEIF", False, 8, False),
    _tiff: ("TIFF", False, 8, False), _tiff_gray16: ("TIFF", True, 16, False),
    _bmp: ("BMP", False, 8, False), _gif: ("GIF", False, 8, False),
    _mpo: ("MPO", False, 8, False), _cmyk: ("JPEG", False, 8, False),
    _cmyk_icc: ("JPEG", False, 8, False),
}
OUTPUT_FORMAT = {"JPEG": "JPEG", "MPO": "JPEG", "GIF": "PNG"}


class TestRead:
    @pytest.mark.parametrize("build", READERS, ids=lambda b: b.__name__[1:])
    def test_reads(self, tmp_path: Path, build) -> None:
        fmt, gray, depth, alpha = READERS[build]
        photo = io.load_photo(build(tmp_path))
        assert photo.rgb.shape == (32, 40, 3) and photo.rgb.dtype == np.float32
        assert 0 <= photo.rgb.min() and photo.rgb.max() <= 1
        assert (photo.format, photo.is_grayscale, photo.bit_depth) == (fmt, gray, depth)
        assert (photo.alpha is not None) == alpha
        if gray:
            assert np.array_equal(photo.rgb[..., 0], photo.rgb[..., 2])

    @pytest.mark.parametrize("build", READERS, ids=lambda b: b.__name__[1:])
    def test_save_keeps_size_and_format(self, tmp_path: Path, build) -> None:
        src = build(tmp_path)
        before = sha256(src)
        photo, dst = roundtrip(src)
        assert sha256(src) == before
        with Image.open(dst) as out:
            expected = OUTPUT_FORMAT.get(photo.format, photo.format)
            assert out.format == expected and out.size == (40, 32)
        assert io.load_photo(dst).is_grayscale == photo.is_grayscale

    def test_pixels_match_pillow(self, tmp_path: Path) -> None:
        src = _png(tmp_path)
        assert np.array_equal(as_u8(io.load_photo(src)), np.asarray(Image.open(src)))

    def test_mpo_takes_the_primary_frame(self, tmp_path: Path) -> None:
        photo = io.load_photo(_mpo(tmp_path))
        with Image.open(tmp_path / "a.mpo") as im:
            assert im.n_frames == 2
            first = np.asarray(im.convert("RGB"))
        assert np.array_equal(as_u8(photo), first)

    def test_cmyk_without_profile_uses_pillows_conversion(self, tmp_path: Path) -> None:
        src = _cmyk(tmp_path)
        photo = io.load_photo(src)
        assert np.array_equal(as_u8(photo), np.asarray(Image.open(src).convert("RGB")))
        assert photo.icc_profile is None

    def test_cmyk_with_profile_converts_to_srgb(self, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
        white = Image.new("CMYK", (32, 32), (0, 0, 0, 0))
        white.paste((0, 0, 0, 255), (0, 16, 32, 32))
        src = save(white, tmp_path / "w.jpg", quality=95, icc_profile=cmyk_icc_profile())
        photo = io.load_photo(src)
        assert "unusable" not in caplog.text
        assert photo.rgb[:8].min() > 0.9 and photo.rgb[24:].max() < 0.1
        assert "sRGB" in description(photo.icc_profile)
        _, dst = roundtrip(src)
        with Image.open(dst) as out:
            assert out.mode == "RGB" and out.info["icc_profile"] == photo.icc_profile

    def test_srgb_profile_bytes_do_not_depend_on_the_clock(self) -> None:
        io._srgb_profile.cache_clear()
        first = io._srgb_profile()
        time.sleep(1.1)  # lcms stamps the time to the second
        io._srgb_profile.cache_clear()
        assert io._srgb_profile() == first
        assert "sRGB" in description(first)


# --------------------------------------------------------------------- round trips


class TestLosslessRoundTrip:
    @pytest.mark.parametrize("build", [_png, _png_gray, _png_gray16, _png_rgb16, _png_la,
                                       _png_rgba, _png_palette, _png_palette_transparent,
                                       _webp_rgba, _tiff, _tiff_gray16, _bmp, _gif, _png_1bit],
                             ids=lambda b: b.__name__[1:])
    def test_unchanged_pixels_come_back_exactly(self, tmp_path: Path, build) -> None:
        photo, dst = roundtrip(build(tmp_path))
        back = io.load_photo(dst)
        assert np.array_equal(back.rgb, photo.rgb)
        assert back.bit_depth == photo.bit_depth
        if photo.alpha is not None:
            assert np.array_equal(back.alpha, photo.alpha)

    @pytest.mark.parametrize("build", [_png, _png_palette, _gif], ids=lambda b: b.__name__[1:])
    def test_perturbed_pixels_are_saved_exactly(self, tmp_path: Path, build) -> None:
        """A palette (PNG or GIF) can't hold the perturbation's colours: the copy is RGB."""
        photo = io.load_photo(build(tmp_path))
        step = np.random.default_rng(1).integers(-8, 9, photo.rgb.shape) / 255
        rgb = np.clip(photo.rgb + step, 0, 1).astype(np.float32)
        dst = io.save_photo(photo, rgb, tmp_path / "out.png")
        assert np.abs(io.load_photo(dst).rgb - rgb).max() < 1e-6
        with Image.open(dst) as out:
            assert out.mode == "RGB"

    def test_webp_is_written_lossless(self, tmp_path: Path) -> None:
        photo, dst = roundtrip(_webp(tmp_path))
        assert np.array_equal(io.load_photo(dst).rgb, photo.rgb)

    @pytest.mark.parametrize("compression", ["tiff_adobe_deflate", "tiff_lzw", "raw"])
    def test_a_compressed_tiff_copy_is_predicted_exact_and_smaller(self, tmp_path: Path,
                                                                   compression) -> None:
        """Deflate and LZW copies go through horizontal differencing (TIFF predictor 2):
        the perturbed pixels come back exactly, in a smaller file than without it (the
        8 MP photo of lossless_effort.md: 14.1 against 23.0 MB); its tags stay with it.
        An uncompressed TIFF stays as it was stored."""
        example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
        exif = Image.Exif()
        exif[T.Copyright] = "(c) 2024 Ada"
        with Image.open(example) as im:
            src = save(im.convert("RGB").crop((0, 0, 256, 192)), tmp_path / "in.tif",
                       compression=compression, exif=exif.tobytes())
        photo = io.load_photo(src)
        step = np.random.default_rng(1).integers(-4, 5, photo.rgb.shape) / 255
        rgb = np.clip(photo.rgb + step, 0, 1).astype(np.float32)
        dst = io.save_photo(photo, rgb, tmp_path / "out.tif")
        assert np.abs(io.load_photo(dst).rgb - rgb).max() < 1e-6
        with Image.open(dst) as out:
            assert out.info["compression"] == compression
            assert out.getexif()[T.Copyright] == "(c) 2024 Ada"
            assert out.tag_v2.get(io.TIFF_PREDICTOR) == (None if compression == "raw" else 2)
            unpredicted = _io.BytesIO()  # the same pixels, from a new image (one opened
            # from a TIFF brings its own tags, the predictor too)
            Image.fromarray(np.asarray(out)).save(unpredicted, "TIFF", compression=compression)
        if compression != "raw":
            assert dst.stat().st_size < 0.9 * len(unpredicted.getvalue())


def _turned_jpeg(path: Path, width: int, height: int) -> Path:
    """A q95 JPEG stored `width` x `height` with EXIF orientation 6 (shown turned a
    quarter: `height` wide)."""
    exif = Image.Exif()
    exif[T.Orientation] = 6
    return save(Image.fromarray(pixels(width, height)), path, quality=95, exif=exif.tobytes())


class TestOrientation:
    @pytest.mark.parametrize("suffix", [".png", ".tif"])
    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_load_matches_exif_transpose_and_save_restores_storage(
            self, tmp_path: Path, orientation: int, suffix: str) -> None:
        """Pillow turns a TIFF upright itself while loading it: cloak must not turn it
        again (it did, until TIFF was in this test)."""
        stored = pixels(40, 24)
        exif = Image.Exif()
        exif[T.Orientation] = orientation
        src = save(Image.fromarray(stored), tmp_path / f"o{suffix}", exif=exif.tobytes())
        photo = io.load_photo(src)
        with Image.open(src) as im:
            upright = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(as_u8(photo), upright)
        _, dst = roundtrip(src)
        with Image.open(dst) as out:
            assert out.getexif()[T.Orientation] == orientation
            if suffix == ".png":  # Pillow gives PNG pixels as stored
                assert np.array_equal(np.asarray(out), stored)
            assert np.array_equal(np.asarray(ImageOps.exif_transpose(out)), upright)

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_stored_size_is_the_files_own(self, tmp_path: Path, orientation: int) -> None:
        """Photo.stored_size is the size in the file for every orientation, the quarter
        turns (5 to 8) included: 5 read as unturned went unnoticed (nothing of cloak's
        own reads it; API users do)."""
        exif = Image.Exif()
        exif[T.Orientation] = orientation
        path = save(Image.fromarray(pixels(48, 32)), tmp_path / "o.png", exif=exif.tobytes())
        photo = io.load_photo(path)
        assert photo.stored_size == (48, 32)
        assert photo.size == ((32, 48) if orientation >= 5 else (48, 32))

    def test_jpeg_to_tiff_keeps_the_upright_size(self, tmp_path: Path) -> None:
        from_jpeg = io.load_photo(_turned_jpeg(tmp_path / "o.jpg", 40, 24))
        as_tiff = io.load_photo(io.save_photo(from_jpeg, from_jpeg.rgb, tmp_path / "j.tif"))
        assert as_tiff.size == from_jpeg.size == (24, 40)

    def test_jpeg_orientation_6(self, tmp_path: Path) -> None:
        src = _turned_jpeg(tmp_path / "r.jpg", 48, 32)
        photo, dst = roundtrip(src)
        assert photo.size == (32, 48) and photo.stored_size == (48, 32)
        with Image.open(src) as a, Image.open(dst) as b:
            assert b.size == a.size == (48, 32)
            assert b.getexif()[T.Orientation] == 6
            shown_a = np.asarray(ImageOps.exif_transpose(a), dtype=np.int16)
            shown_b = np.asarray(ImageOps.exif_transpose(b), dtype=np.int16)
        assert shown_a.shape == shown_b.shape == (48, 32, 3)
        assert np.abs(shown_a - shown_b).max() <= 8  # one more JPEG generation at q95

    def test_heic_is_stored_upright(self, tmp_path: Path) -> None:
        src = _turned_jpeg(tmp_path / "r.jpg", 48, 32)
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "r.heic")
        with Image.open(dst) as out:
            # Stored upright (not rotated with a tag), as viewers that ignore the tag show it
            assert out.size == (32, 48)
            assert out.getexif().get(T.Orientation, 1) == 1
            stored = np.asarray(out.convert("RGB"), dtype=np.int16)
        upright = np.round(photo.rgb * 255).astype(np.int16)
        assert np.abs(stored - upright).mean() < 3  # one lossy HEIC generation


class TestAvif:
    """AVIF (Pillow's own plugin): read and written as AVIF, near-lossless, its rotation
    kept as the flag it was stored with, alpha and gray kept."""

    @pytest.fixture(autouse=True)
    def _needs_avif(self) -> None:
        if not io.AVIF_SUPPORTED:
            missing("this Pillow has no AVIF support")

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_its_rotation_is_applied_and_kept(self, tmp_path: Path, orientation: int) -> None:
        """Pillow stores an EXIF orientation as AVIF's irot/imir boxes and reads them back as
        one: the photo is loaded upright, and the copy is stored as the original was."""
        stored = pixels(40, 24)
        exif = Image.Exif()
        exif[T.Orientation] = orientation
        src = save(Image.fromarray(stored), tmp_path / "o.avif", quality=100,
                   subsampling="4:4:4", exif=exif.tobytes())
        photo = io.load_photo(src)
        with Image.open(src) as im:
            assert im.getexif().get(T.Orientation, 1) == orientation  # read from irot/imir
            upright = np.asarray(ImageOps.exif_transpose(im), dtype=np.int16)
        assert np.array_equal(as_u8(photo), upright)
        _, dst = roundtrip(src)
        assert dst.suffix == ".avif"
        with Image.open(dst) as out:
            assert out.format == "AVIF" and out.size == (40, 24)
            assert out.getexif().get(T.Orientation, 1) == orientation
            shown = np.asarray(ImageOps.exif_transpose(out), dtype=np.int16)
        assert np.abs(shown - upright).max() <= 2  # RGB -> YCbCr rounding at q100 4:4:4

    def test_a_perturbation_survives_within_two_levels(self, tmp_path: Path) -> None:
        src = save(Image.fromarray(pixels(64, 48)), tmp_path / "a.png")
        photo = io.load_photo(src)
        sign = np.where(np.indices((48, 64)).sum(0) % 2, 1.0, -1.0)[..., None]
        rgb = np.clip(photo.rgb + sign * np.array([8, -8, 8]) / 255, 0, 1).astype(np.float32)
        dst = io.save_photo(photo, rgb, tmp_path / "a.avif")
        assert io.writes_lossy(photo, dst)  # so cloak measures the file as written
        assert round(float(np.abs(io.load_photo(dst).rgb - rgb).max()) * 255, 3) <= 2

    def test_gray_stays_gray_and_exact(self, tmp_path: Path) -> None:
        src = save(Image.fromarray(pixels(40, 32, channels=1)), tmp_path / "g.png")
        photo, dst = roundtrip(src, format="AVIF")
        copy = io.load_photo(dst)
        assert copy.format == "AVIF" and copy.is_grayscale
        assert np.array_equal(as_u8(copy), as_u8(photo))  # monochrome 4:0:0: lossless

    def test_alpha_is_kept(self, tmp_path: Path) -> None:
        rgba = np.dstack([pixels(40, 32), np.tile(np.arange(40, dtype=np.uint8) * 6, (32, 1))])
        src = save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.avif", quality=100,
                   subsampling="4:4:4")
        photo, dst = roundtrip(src)
        copy = io.load_photo(dst)
        assert photo.alpha is not None and np.array_equal(copy.alpha, photo.alpha)

    def test_an_avif_branded_mif1_is_read_as_avif(self, tmp_path: Path) -> None:
        """pillow-heif claims files whose major brand is "mif1" and, with no AV1 decoder,
        fails on an AVIF: the compatible brands send it to Pillow's AVIF reader."""
        src = save(Image.fromarray(pixels()), tmp_path / "a.avif", quality=100,
                   subsampling="4:4:4")
        data = bytearray(src.read_bytes())
        assert data[4:12] == b"ftypavif"
        data[8:12] = b"mif1"
        (tmp_path / "b.avif").write_bytes(bytes(data))
        photo = io.load_photo(tmp_path / "b.avif")
        assert photo.format == "AVIF"
        assert np.abs(as_u8(photo).astype(int) - pixels()).max() <= 2
        heic = _heic(tmp_path)  # HEIC still goes to pillow-heif
        assert io.load_photo(heic).format == "HEIF"

    def test_more_than_8_bits_a_channel_is_warned_about(self, tmp_path: Path,
                                                         caplog) -> None:
        """Pillow decodes AVIF to 8 bits a channel, as pillow-heif does HEIF (which is
        warned about): a 10-bit AVIF's copy is 8-bit, and the run says so. (libavif
        refuses to decode a file whose pixi box is edited to 10 bits, so the warning is
        checked on the file's header, as load_photo reads it first.)"""
        src = save(Image.fromarray(pixels()), tmp_path / "a.avif", quality=100)
        with src.open("rb") as fp:
            assert cicp.avif_depth(fp) == 8
        with caplog.at_level("WARNING", logger="cloak.io"):
            io.load_photo(src)
        assert "8-bit" not in caplog.text
        data = bytearray(src.read_bytes())
        at = data.find(b"pixi")
        data[at + 9:at + 9 + data[at + 8]] = bytes([10] * data[at + 8])
        caplog.clear()
        with caplog.at_level("WARNING", logger="cloak.io"):
            io._warn_avif_depth(_io.BytesIO(bytes(data)), src)
        assert f"{src}: 10-bit AVIF is read as 8-bit" in caplog.text
        # a 10-bit HEIC, as some cameras write: its line names it too (a folder's run)
        deep = (pixels().astype(np.uint16) * 257).astype("<u2")  # 16-bit values, as given
        heic = tmp_path / "ten.heic"
        pillow_heif.from_bytes(mode="RGB;16", size=(deep.shape[1], deep.shape[0]),
                               data=deep.tobytes()).save(heic, quality=90)
        caplog.clear()
        with caplog.at_level("WARNING", logger="cloak.io"):
            assert io.load_photo(heic).bit_depth == 8
        assert f"{heic}: 10-bit HEIF is read as 8-bit" in caplog.text

    def test_colour_tagged_only_as_display_p3_or_hdr_is_carried_or_warned_about(
            self, tmp_path: Path, caplog) -> None:
        """Pillow reads an AVIF's pixels but not its CICP (nclx) colour tag, and writes
        sRGB's: a photo tagged Display P3 or HDR (with no ICC profile) looked duller in its
        copy. The AVIF copy now carries the tag (not with --no-icc), a PNG copy as its cICP
        chunk, and a JPEG copy, which can't, says so; sRGB's own tag gets no warning."""
        src = save(Image.fromarray(pixels()), tmp_path / "a.avif", quality=100)
        data = bytearray(src.read_bytes())
        at = data.find(b"colrnclx")
        with src.open("rb") as fp:
            assert cicp.avif_cicp(fp) == (1, 13)  # BT.709 primaries, sRGB curve
        with caplog.at_level("WARNING", logger="cloak.io"):
            plain = io.load_photo(src)
            io.save_photo(plain, plain.rgb, tmp_path / "plain.jpg")
        assert "CICP" not in caplog.text
        for primaries, transfer, named in ((12, 13, "Display P3"), (9, 16, "BT.2020, PQ (HDR)")):
            data[at + 8:at + 12] = primaries.to_bytes(2, "big") + transfer.to_bytes(2, "big")
            tagged = tmp_path / f"p{primaries}.avif"
            tagged.write_bytes(bytes(data))
            caplog.clear()
            with caplog.at_level("WARNING", logger="cloak.io"):
                photo = io.load_photo(tagged)
                kept = io.save_photo(photo, photo.rgb, tmp_path / f"out{primaries}.avif")
                as_png = io.save_photo(photo, photo.rgb, tmp_path / f"out{primaries}.png")
                dropped = io.save_photo(photo, photo.rgb, tmp_path / f"srgb{primaries}.avif",
                                        metadata=MetadataPolicy(keep_icc=False))
            assert photo.format == "AVIF" and "CICP" not in caplog.text
            for path, expected in ((kept, (primaries, transfer)), (dropped, (1, 13))):
                with path.open("rb") as fp:
                    assert cicp.avif_cicp(fp) == expected
            with Image.open(kept) as out, Image.open(dropped) as plain_copy:
                # still a valid AVIF, its pixels as written
                assert np.array_equal(np.asarray(out.convert("RGB")),
                                      np.asarray(plain_copy.convert("RGB")))
            with as_png.open("rb") as fp:
                assert cicp.png_cicp(fp) == bytes([primaries, transfer, 0, 1])
            with caplog.at_level("WARNING", logger="cloak.io"):
                io.save_photo(photo, photo.rgb, tmp_path / f"out{primaries}.jpg")
            assert f"tagged {named} (an AVIF's CICP tag" in caplog.text
            assert tagged.name in caplog.text

    def test_an_avif_is_found_and_named_avif(self, tmp_path: Path) -> None:
        assert ".avif" in io.IMAGE_SUFFIXES and "AVIF" in io.SUPPORTED
        assert io.output_path_for("x/Shot.AVIF", tmp_path) == tmp_path / "Shot.AVIF"
        photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "a.avif"))
        assert io.says_protected_file(io.save_photo(photo, photo.rgb, tmp_path / "b.avif"))


class TestIcc:
    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".heic"])
    def test_profile_bytes_are_kept(self, tmp_path: Path, suffix: str) -> None:
        src = save(Image.fromarray(pixels()), tmp_path / f"a{suffix}", icc_profile=SRGB)
        _, dst = roundtrip(src)
        with Image.open(dst) as out:
            assert out.info.get("icc_profile") == SRGB

    def test_policy_can_drop_it(self, tmp_path: Path) -> None:
        src = save(Image.fromarray(pixels()), tmp_path / "a.jpg", icc_profile=SRGB)
        _, dst = roundtrip(src, metadata=MetadataPolicy(keep_icc=False))
        with Image.open(dst) as out:
            assert not out.info.get("icc_profile")

    def test_16bit_png_keeps_profile(self, tmp_path: Path) -> None:
        with open(tmp_path / "a.png", "wb") as fp:
            png16.write_png16(fp, pixels(dtype=np.uint16), {"icc_profile": SRGB})
        _, dst = roundtrip(tmp_path / "a.png")
        with Image.open(dst) as out:
            assert out.info["icc_profile"] == SRGB


def _tiff_rgb16(path: Path, samples: np.ndarray, orientation: int = 1,
                planar: bool = False, extra: int | None = None) -> Path:
    """An uncompressed 16-bit RGB (or, with 4 channels, RGBA with ExtraSamples `extra`)
    TIFF with an orientation tag, interleaved or one plane a channel, built byte by byte
    (Pillow can't write one)."""
    h, w, c = samples.shape
    planes = [np.ascontiguousarray(samples[:, :, i]) for i in range(c)] if planar \
        else [samples]
    data = b"".join(p.astype("<u2").tobytes() for p in planes)
    arrays_at = 8 + len(data)  # BitsPerSample, then (planar) strip offsets and counts
    arrays = struct.pack(f"<{c}H", *[16] * c)
    offsets = [8 + i * len(data) // len(planes) for i in range(len(planes))]
    if planar:
        arrays += struct.pack(f"<{c}I", *offsets) + struct.pack(f"<{c}I", *[h * w * 2] * c)
    head = b"II*\x00" + struct.pack("<I", arrays_at + len(arrays))
    strips = ([(273, 4, c, arrays_at + 2 * c), (279, 4, c, arrays_at + 6 * c)] if planar
              else [(273, 4, 1, 8), (279, 4, 1, len(data))])
    entries = sorted([(256, 4, 1, w), (257, 4, 1, h), (258, 3, c, arrays_at), (259, 3, 1, 1),
                      (262, 3, 1, 2), (274, 3, 1, orientation), (277, 3, 1, c),
                      (278, 4, 1, h), (284, 3, 1, 2 if planar else 1), *strips]
                     + ([(338, 3, 1, extra)] if extra is not None else []))
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0)
                                                 if kind == 3 and count == 1
                                                 else struct.pack("<I", value))
        for tag, kind, count, value in entries) + struct.pack("<I", 0)
    path.write_bytes(head + data + arrays + ifd)
    return path


class TestAlphaAndDepth:
    @pytest.mark.parametrize("build", [_png_rgba, _png_la, _webp_rgba],
                             ids=lambda b: b.__name__[1:])
    def test_alpha_is_untouched_when_colour_changes(self, tmp_path: Path, build) -> None:
        photo = io.load_photo(build(tmp_path))
        rgb = np.clip(photo.rgb + 4 / 255, 0, 1)
        dst = io.save_photo(photo, rgb, tmp_path / "out" / f"a{build(tmp_path).suffix}")
        back = io.load_photo(dst)
        assert np.array_equal(back.alpha, photo.alpha)
        assert np.abs(back.rgb - rgb).max() < 1e-6

    def test_16bit_png_stays_16bit_with_fine_steps(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png_rgb16(tmp_path))
        rgb = np.clip(photo.rgb + 3 / 65535, 0, 1).astype(np.float32)
        dst = io.save_photo(photo, rgb, tmp_path / "out.png")
        assert dst.read_bytes()[24] == 16  # IHDR bit depth
        back = io.load_photo(dst)
        assert back.bit_depth == 16 and back.mode == "RGB;16"
        assert np.array_equal(np.round(back.rgb * 65535), np.round(rgb * 65535))

    def test_16bit_rgba_png_keeps_16bit_alpha(self, tmp_path: Path) -> None:
        with open(tmp_path / "a.png", "wb") as fp:
            png16.write_png16(fp, pixels(channels=4, dtype=np.uint16), {})
        photo, dst = roundtrip(tmp_path / "a.png")
        back = io.load_photo(dst)
        assert photo.alpha.dtype == np.uint16 and np.array_equal(back.alpha, photo.alpha)

    def test_16bit_gray_png_stays_i16(self, tmp_path: Path) -> None:
        _, dst = roundtrip(_png_gray16(tmp_path))
        with Image.open(dst) as out:
            assert out.mode == "I;16"

    @pytest.mark.parametrize("orientation", [1, 6])
    def test_16bit_colour_tiff_is_read_at_16_bits(self, tmp_path: Path, orientation: int,
                                                  caplog: pytest.LogCaptureFixture) -> None:
        """Pillow keeps the top 8 bits of a 16-bit RGB TIFF; cloak reads all 16 (the L-inf
        bound and the figures are on the photo's own values), turned as Pillow turns it,
        and writes the copy as 8-bit TIFF, which counts as a save that moves the pixels,
        with a warning (it was silent, where the README promises the bit depth kept)."""
        samples = pixels(dtype=np.uint16)
        src = _tiff_rgb16(tmp_path / "deep.tif", samples, orientation)
        photo = io.load_photo(src)
        assert photo.bit_depth == 16 and photo.mode == "RGB;16"
        upright = io.to_upright(samples, orientation)
        assert np.array_equal(np.round(photo.rgb * 65535).astype(np.uint16), upright)
        with Image.open(src) as im:  # Pillow's own (upright, 8-bit) reading agrees
            assert np.array_equal(np.asarray(im), (upright >> 8).astype(np.uint8))
        dst = tmp_path / "out" / "deep.tif"
        assert io.writes_lossy(photo, dst)
        with caplog.at_level("WARNING", logger="cloak.io"):
            io.save_photo(photo, photo.rgb, dst)
        assert "the copy is an 8-bit TIFF where the original has 16 bits" in caplog.text
        back = io.load_photo(dst)
        assert back.bit_depth == 8 and back.orientation == orientation
        caplog.clear()
        with caplog.at_level("WARNING", logger="cloak.io"):  # an 8-bit TIFF: no word
            io.save_photo(back, back.rgb, tmp_path / "out" / "again.tif")
        assert "8-bit TIFF" not in caplog.text
        assert np.abs(back.rgb - photo.rgb).max() <= 0.5 / 255 + 1e-6

    def test_16bit_colour_tiffs_read_wrong_elsewhere(self, tmp_path: Path) -> None:
        """Premultiplied alpha is read through Pillow (which unmultiplies it), at 8 bits;
        separate 16-bit planes, which Pillow and OpenCV both misread (a scrambled
        picture), are refused in one line."""
        rgba = pixels(channels=4, dtype=np.uint16)
        rgba[:, :, 3] = 65535  # opaque: premultiplied or not, the same colours
        photo = io.load_photo(_tiff_rgb16(tmp_path / "pre.tif", rgba, extra=1))
        assert photo.bit_depth == 8
        assert np.abs(photo.rgb * 255 - (rgba[:, :, :3] >> 8)).max() <= 1
        straight = io.load_photo(_tiff_rgb16(tmp_path / "straight.tif", rgba, extra=2))
        assert straight.bit_depth == 16 and np.array_equal(straight.alpha, rgba[:, :, 3])
        planar = _tiff_rgb16(tmp_path / "planar.tif", pixels(dtype=np.uint16), planar=True)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(planar)
        _assert_one_line(exc, planar, "separate planes")

    def test_16bit_to_jpeg_is_8bit(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png_rgb16(tmp_path))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "a.jpg")
        with Image.open(dst) as out:
            assert out.format == "JPEG" and out.mode == "RGB"
        assert np.abs(io.load_photo(dst).rgb - photo.rgb).mean() * 255 < 5  # JPEG noise only


class TestGrayscale:
    @pytest.mark.parametrize("suffix,mode", [(".jpg", "L"), (".png", "L"), (".tif", "L"),
                                             (".bmp", "L")])
    def test_gray_in_gray_out(self, tmp_path: Path, suffix: str, mode: str) -> None:
        src = save(Image.fromarray(pixels(channels=1), "L"), tmp_path / f"g{suffix}")
        photo, dst = roundtrip(src)
        assert photo.is_grayscale
        with Image.open(dst) as out:
            assert out.mode == mode

    def test_uses_the_channel_mean(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png_gray(tmp_path))
        rgb = photo.rgb.copy()
        rgb[..., 0] += 3 / 255
        rgb[..., 1] -= 6 / 255
        rgb[..., 2] += 3 / 255  # mean unchanged; no single channel (nor luma) is
        dst = io.save_photo(photo, np.clip(rgb, 0, 1), tmp_path / "out.png")
        with Image.open(dst) as out:
            assert out.mode == "L"
        back = io.load_photo(dst).rgb
        inside = (photo.rgb[..., 0] > 6 / 255) & (photo.rgb[..., 0] < 249 / 255)
        assert np.array_equal(back[inside], photo.rgb[inside])

    def test_one_bit_becomes_8bit_gray(self, tmp_path: Path) -> None:
        _, dst = roundtrip(_png_1bit(tmp_path))
        with Image.open(dst) as out:
            assert out.mode == "L"


# ------------------------------------------------------------------ output formats


class TestOutputFormat:
    def test_jpeg_is_q95_444(self, tmp_path: Path) -> None:
        _, dst = roundtrip(_jpeg(tmp_path))
        with Image.open(dst) as out:
            assert JpegImagePlugin.get_sampling(out) == 0
            reference = _io.BytesIO()
            Image.fromarray(pixels()).save(reference, "JPEG", quality=95, subsampling=0)
            assert out.quantization == Image.open(reference).quantization

    def test_progressive_stays_progressive(self, tmp_path: Path) -> None:
        _, dst = roundtrip(_jpeg_progressive(tmp_path))
        with Image.open(dst) as out:
            assert out.info.get("progressive")

    def test_jpeg_quality_option(self, tmp_path: Path) -> None:
        _, high = roundtrip(_jpeg(tmp_path))
        photo = io.load_photo(tmp_path / "a.jpg")
        low = io.save_photo(photo, photo.rgb, tmp_path / "low.jpg", jpeg_quality=60)
        assert low.stat().st_size < high.stat().st_size
        with pytest.raises(ConfigError, match="quality"):  # a setting, not the output
            io.save_photo(photo, photo.rgb, tmp_path / "bad.jpg", jpeg_quality=0)

    @pytest.mark.parametrize("name,expected", [("a.gif", "a.png"), ("b.MPO", "b.jpg"),
                                               ("c.heic", "c.heic"), ("d.JPG", "d.JPG"),
                                               ("e.tiff", "e.tiff"), ("f", "f")])
    def test_output_path_for(self, tmp_path: Path, name: str, expected: str) -> None:
        assert io.output_path_for(Path("in") / name, tmp_path) == tmp_path / expected

    def test_gif_becomes_png(self, tmp_path: Path) -> None:
        photo, dst = roundtrip(_gif(tmp_path))
        assert dst.suffix == ".png"
        with pytest.raises(OutputError, match="GIF"):
            io.save_photo(photo, photo.rgb, tmp_path / "x.gif")
        with pytest.raises(OutputError, match="GIF"):
            io.save_photo(photo, photo.rgb, tmp_path / "x.png", format="gif")

    def test_a_gifs_xmp_creator_and_rights_reach_its_png_copy(self, tmp_path: Path) -> None:
        """Pillow only locates a GIF's XMP (its "XMP DataXMP" application extension), and
        the copy lost its creator and rights, kept from every other format."""
        gif = _gif(tmp_path)
        data = gif.read_bytes()
        flags = data[10]
        at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the colour table
        packet = (b"<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?><x:xmpmeta "
                  b'xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
                  b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements'
                  b'/1.1/"><dc:creator><rdf:Seq><rdf:li>Dan Example</rdf:li></rdf:Seq>'
                  b'</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>'
                  b"<?xpacket end='w'?>")
        trailer = bytes([1, *range(255, -1, -1), 0])  # the XMP spec's "magic trailer"
        gif.write_bytes(data[:at] + b"!\xff\x0bXMP DataXMP" + packet + trailer + data[at:])
        photo = io.load_photo(gif)
        assert photo.xmp == packet
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
        with Image.open(dst) as out:
            assert b"Dan Example" in out.info["xmp"]

    def test_palette_becomes_rgba_png(self, tmp_path: Path) -> None:
        _, dst = roundtrip(_png_palette_transparent(tmp_path))
        with Image.open(dst) as out:
            assert out.mode == "RGBA"

    @pytest.mark.parametrize("mode, key", [("RGB", (10, 20, 30)), ("L", 10)])
    def test_colour_key_transparency_becomes_alpha(self, tmp_path: Path, mode, key) -> None:
        data = pixels() if mode == "RGB" else pixels(channels=1)
        data[:4, :4] = key  # the transparent corner
        _, dst = roundtrip(save(Image.fromarray(data), tmp_path / "key.png", transparency=key))
        with Image.open(dst) as out:
            alpha = np.asarray(out.getchannel("A"))
        assert out.mode == ("RGBA" if mode == "RGB" else "LA")
        keyed = (data == key).all(-1) if mode == "RGB" else data == key
        assert keyed[:4, :4].all() and ((alpha == 0) == keyed).all()

    @pytest.mark.parametrize("bits", [2, 4])
    def test_low_bit_gray_colour_key_becomes_alpha(self, tmp_path: Path, bits: int) -> None:
        data = np.zeros((32, 48), np.uint8)
        data[:, 24:] = 255  # white half: the top level, the transparent key
        src = tmp_path / "sticker.png"
        Image.fromarray(data, "L").save(src, bits=bits, transparency=2 ** bits - 1)
        photo = io.load_photo(src)
        assert photo.alpha is not None
        assert (photo.alpha[:, 24:] == 0).all() and (photo.alpha[:, :24] == 255).all()

    def test_16bit_gray_colour_key_becomes_16bit_alpha(self, tmp_path: Path) -> None:
        data = (np.arange(32 * 48, dtype=np.uint32).reshape(32, 48) * 40).astype(np.uint16)
        data[:4, :4] = 1000  # the transparent corner (a 16-bit key, not a multiple of 257)
        src = tmp_path / "gray16key.png"
        Image.frombytes("I;16", (48, 32), data.astype("<u2").tobytes()).save(
            src, transparency=1000)
        photo, dst = roundtrip(src)
        keyed = data == 1000
        assert photo.bit_depth == 16 and photo.alpha.dtype == np.uint16
        assert keyed[:4, :4].all() and ((photo.alpha == 0) == keyed).all()
        back = io.load_photo(dst)
        assert back.bit_depth == 16 and back.is_grayscale
        assert np.array_equal(back.alpha, photo.alpha)

    def test_suffix_or_format_chooses_conversion(self, tmp_path: Path) -> None:
        photo = io.load_photo(_jpeg(tmp_path))
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "x.png")) as out:
            assert out.format == "PNG"
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "y.bin",
                                      format="webp")) as out:
            assert out.format == "WEBP"
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "z")) as out:
            assert out.format == "JPEG"

    @pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
    def test_formats_without_alpha_refuse_it(self, tmp_path: Path, suffix: str) -> None:
        # Pillow writes RGBA BMP with a plain header: read back (by Pillow too) as opaque
        photo = io.load_photo(_png_rgba(tmp_path))
        with pytest.raises(OutputError, match="transparency"):
            io.check_writable(photo, tmp_path / f"x{suffix}")
        with pytest.raises(OutputError, match="transparency"):
            io.save_photo(photo, photo.rgb, tmp_path / f"x{suffix}")
        assert list(tmp_path.iterdir()) == [tmp_path / "a.png"]

    @pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
    def test_an_alpha_band_that_hides_nothing_is_not_refused(self, tmp_path: Path,
                                                             suffix: str) -> None:
        """GIMP and Photoshop export 32-bit files whose alpha is 255 everywhere: there is
        no transparency to lose, so a JPEG or BMP copy is written (without the band)."""
        rgba = np.dstack([pixels(), np.full(pixels().shape[:2], 255, np.uint8)])
        photo = io.load_photo(save(Image.fromarray(rgba, "RGBA"), tmp_path / "o.png"))
        assert photo.alpha is not None
        io.check_writable(photo, tmp_path / f"x{suffix}")
        plain = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "p.png"))
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / f"x{suffix}")) as out, \
                Image.open(io.save_photo(plain, plain.rgb, tmp_path / f"p{suffix}")) as rgb:
            assert out.mode == "RGB"  # as the same photo without the band is written
            assert np.array_equal(np.asarray(out), np.asarray(rgb))

    @pytest.mark.parametrize("suffix", [".heic", ".jpg", ".avif"])
    def test_lossy_copies_keep_full_colour_resolution(self, tmp_path: Path,
                                                      suffix: str) -> None:
        """HEIC, JPEG and AVIF copies are written with 4:4:4 chroma: colour that changes
        from one pixel to the next (as the perturbation's does) survives; 4:2:0 would
        average it over 2x2 blocks."""
        if suffix == ".avif" and not io.AVIF_SUPPORTED:
            missing("this Pillow has no AVIF support")
        y, x = np.mgrid[0:64, 0:64]
        sign = np.where((x + y) % 2, 1.0, -1.0)[..., None] * np.array([1.0, 0.0, -1.0])
        colour = np.round(128 + 8 * sign).astype(np.uint8)  # red/blue checkerboard, +-8
        photo = io.load_photo(save(Image.fromarray(colour), tmp_path / "c.png"))
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
        assert io.load_photo(dst).format == io.SUFFIX_FORMAT[suffix]  # HEIC is HEIC
        assert np.abs(io.load_photo(dst).rgb - photo.rgb).max() * 255 <= 7

    def test_a_heic_name_without_an_encoder_is_refused(self, tmp_path: Path,
                                                       monkeypatch) -> None:
        """Where pillow-heif can't write HEIC, x.heic is refused, not filled with JPEG
        bytes under a name that says HEIC."""
        photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "p.png"))
        monkeypatch.setattr(io, "WRITABLE", io.WRITABLE - {"HEIF"})
        with pytest.raises(OutputError, match="cannot write HEIC here"):
            io.save_photo(photo, photo.rgb, tmp_path / "x.heic")
        assert not (tmp_path / "x.heic").exists()

    def test_heic_round_trip_is_close(self, tmp_path: Path) -> None:
        photo, dst = roundtrip(_heic(tmp_path))
        with Image.open(dst) as out:
            assert out.format == "HEIF"
        assert np.abs(io.load_photo(dst).rgb - photo.rgb).max() * 255 <= 12

    def test_shape_mismatch_is_a_value_error(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png(tmp_path))
        with pytest.raises(ValueError, match="shape"):
            io.save_photo(photo, photo.rgb[:-1], tmp_path / "x.png")


# ------------------------------------------------------------------------ metadata


def tiff_x_resolution(image: Image.Image) -> object:
    """A TIFF's own XResolution tag, or None."""
    return image.tag_v2.get(T.XResolution)


def _tagged_jpeg(tmp_path: Path, **tags) -> Path:
    return save(Image.fromarray(pixels()), tmp_path / "m.jpg", quality=95,
                exif=exif_with(**tags).tobytes())


class TestMetadata:
    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".heic", ".avif"])
    def test_default_policy(self, tmp_path: Path, suffix: str) -> None:
        if suffix == ".avif" and not io.AVIF_SUPPORTED:
            missing("this Pillow has no AVIF support")
        photo = io.load_photo(_tagged_jpeg(tmp_path))
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
        with Image.open(dst) as out:
            exif = out.getexif()
            sub = exif.get_ifd(EXIF_IFD)
            assert GPS not in exif and not exif.get_ifd(GPS)
            for tag in (T.BodySerialNumber, T.LensSerialNumber, T.MakerNote):
                assert tag not in sub
            assert sub[T.DateTimeOriginal] == "2024:05:01 12:00:00"
            assert exif[T.Copyright] == "(c) 2024 Ada" and exif[T.Artist] == "Ada Lovelace"
            assert exif[T.Make] == "Cam"
            xmp = out.info["xmp"]
        assert b"plus:DataMining" in xmp and DMI_PROHIBITED.encode() in xmp
        assert metadata.PLUS_NS.encode() in xmp and b"cloak:Protected" in xmp
        assert b"Ada Lovelace" in xmp and b"(c) 2024 Ada" in xmp
        assert b"SN123" not in dst.read_bytes()

    def test_strip_names_drops_the_owner_name_even_with_keep_serials(
            self, tmp_path: Path) -> None:
        """CameraOwnerName went only with the serials: --keep-serials --strip-names (or
        the app's remembered "Remove my name") still wrote it."""
        exif = exif_with()
        exif[EXIF_IFD][T.CameraOwnerName] = "Jane Roe"
        photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "o.jpg",
                                   quality=95, exif=exif.tobytes()))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg", metadata=MetadataPolicy
                            .choose(keep_serials=True, strip_names=True))
        assert b"Jane Roe" not in dst.read_bytes()

    @pytest.mark.parametrize("suffix", [".jpg", ".png"])
    def test_names_can_go_without_the_camera_details(self, tmp_path: Path,
                                                      suffix: str) -> None:
        """A camera set up with its owner's name writes it into every photo: --strip-names
        drops the artist, author and copyright (EXIF, an XPAuthor misplaced in the Exif
        block, XMP) and keeps the date and camera. Before, only --strip-exif dropped them,
        with everything else."""
        exif = exif_with()
        exif[EXIF_IFD][T.XPAuthor] = "Ada Byron".encode("utf-16-le")
        src = save(Image.fromarray(pixels()), tmp_path / "n.jpg", quality=95,
                   exif=exif.tobytes())
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}",
                            metadata=MetadataPolicy.choose(strip_names=True))
        data = dst.read_bytes()
        for name in (b"Ada Lovelace", b"(c) 2024 Ada", "Ada Byron".encode("utf-16-le")):
            assert name not in data, name
        with Image.open(dst) as out:
            assert out.getexif().get_ifd(EXIF_IFD)[T.DateTimeOriginal] == "2024:05:01 12:00:00"
            assert out.getexif()[T.Make] == "Cam"

    def test_tiff_keeps_ifd0_and_xmp(self, tmp_path: Path) -> None:
        photo = io.load_photo(_tagged_jpeg(tmp_path, Orientation=3))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.tif")
        with Image.open(dst) as out:
            assert out.getexif()[T.Orientation] == 3
            assert out.getexif()[T.Copyright] == "(c) 2024 Ada"
            assert DMI_PROHIBITED.encode() in out.info["xmp"]
        assert b"SN123" not in dst.read_bytes()

    def test_xmp_is_valid_and_readable(self, tmp_path: Path) -> None:
        import xml.etree.ElementTree as ET

        photo = io.load_photo(_tagged_jpeg(tmp_path))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
        with Image.open(dst) as out:
            packet = out.info["xmp"]
        packet = packet.encode() if isinstance(packet, str) else packet
        root = ET.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?", 1)[0])
        found = [d.get(f"{{{metadata.PLUS_NS}}}DataMining") for d in root.iter()]
        assert DMI_PROHIBITED in found

    def test_switches(self, tmp_path: Path) -> None:
        photo = io.load_photo(_tagged_jpeg(tmp_path, Orientation=6))
        keep = MetadataPolicy(strip_gps=False, strip_serials=False)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "keep.jpg", metadata=keep)
        with Image.open(dst) as out:
            assert out.getexif().get_ifd(GPS)[1] == "N"
            assert out.getexif().get_ifd(EXIF_IFD)[T.BodySerialNumber] == "SN123"
        dst = io.save_photo(photo, photo.rgb, tmp_path / "min.jpg",
                            metadata=MetadataPolicy.minimal())
        with Image.open(dst) as out:
            exif = out.getexif()
            assert dict(exif) == {T.Orientation: 6}  # orientation always follows the pixels
            assert b"Ada" not in out.info["xmp"] and DMI_PROHIBITED.encode() in out.info["xmp"]
        quiet = MetadataPolicy(data_mining_notice=False, cloak_note=False, keep_copyright=False)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "quiet.jpg", metadata=quiet)
        with Image.open(dst) as out:
            assert "xmp" not in out.info

    def test_adobe_rgb_signal_survives_removed_camera_details(self, tmp_path: Path) -> None:
        """A camera's Adobe RGB JPEG without an ICC profile says so only with ColorSpace
        0xFFFF and Interop "R03"; dropping them would show the copy washed out."""
        exif = exif_with()
        exif[EXIF_IFD] = {T.ColorSpace: 0xFFFF, T.DateTimeOriginal: "2024:05:01 12:00:00",
                          T.BodySerialNumber: "SN123"}
        exif[EXIF_IFD][ExifTags.IFD.Interop] = {1: "R03"}
        src = save(Image.fromarray(pixels()), tmp_path / "adobe.jpg", quality=95,
                   exif=exif.tobytes())
        photo = io.load_photo(src)
        assert photo.icc_profile is None
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg",
                            metadata=MetadataPolicy.choose(strip_exif=True))
        with Image.open(dst) as out:
            sub = out.getexif().get_ifd(EXIF_IFD)
            interop = out.getexif().get_ifd(ExifTags.IFD.Interop)
        assert sub[T.ColorSpace] == 0xFFFF and interop[1] == "R03"
        assert T.DateTimeOriginal not in sub and T.BodySerialNumber not in sub

    def test_user_switches(self, tmp_path: Path) -> None:
        """MetadataPolicy.choose: the CLI flags and the app's boxes. All at their defaults
        is the default policy; the location switch holds with camera details removed."""
        assert MetadataPolicy.choose() == MetadataPolicy()
        tags = exif_with(Orientation=6)
        tags[GPS] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0),
                     7: (10.0, 34.0, 56.0), 0x1D: "2024:05:01"}
        src = save(Image.fromarray(pixels()), tmp_path / "m.jpg", exif=tags.tobytes())
        photo = io.load_photo(src)
        policy = MetadataPolicy.choose(keep_gps=True, strip_exif=True)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "gps.jpg", metadata=policy)
        with Image.open(dst) as out:
            exif = out.getexif()
            assert exif.get_ifd(GPS)[1] == "N"
            assert not exif.get_ifd(EXIF_IFD) and T.Copyright not in exif
            # the GPS's UTC date and time are the capture moment --strip-exif drops
            assert 7 not in exif.get_ifd(GPS) and 0x1D not in exif.get_ifd(GPS)
        kept = io.save_photo(photo, photo.rgb, tmp_path / "all.jpg",
                             metadata=MetadataPolicy.choose(keep_gps=True))
        with Image.open(kept) as out:
            assert out.getexif().get_ifd(GPS)[0x1D] == "2024:05:01"
        # the serials are camera details --strip-exif drops: the pair is refused, not
        # ignored (it was, and a rerun took it for other settings)
        with pytest.raises(ConfigError, match="keep_serials can't be given with strip_exif"):
            MetadataPolicy.choose(keep_serials=True, strip_exif=True)

    def test_keep_gps_keeps_a_position_held_only_in_xmp(self, tmp_path: Path) -> None:
        """A PNG or WebP export may hold its position only in XMP: --keep-gps lost it
        without a word (while keeping the time zone, a weaker hint of the place), where
        the date held there is carried. Not kept by default, nor beside an EXIF GPS."""
        source = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org'
                  b'/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe'
                  b'.com/exif/1.0/" exif:GPSLatitude="48,51.498N" exif:GPSLongitude='
                  b'"2,17.67E" exif:DateTimeOriginal="2024-05-01T12:34:56+02:00"/>'
                  b'</rdf:RDF></x:xmpmeta>')
        chunks = PngImagePlugin.PngInfo()
        chunks.add_itxt("XML:com.adobe.xmp", source.decode())
        src = save(Image.fromarray(pixels()), tmp_path / "x.png", pnginfo=chunks)
        photo = io.load_photo(src)
        assert photo.xmp == source
        for policy, kept in ((MetadataPolicy.choose(keep_gps=True), True),
                             (MetadataPolicy.choose(keep_gps=True, strip_exif=True), True),
                             (MetadataPolicy.choose(), False)):
            dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png", metadata=policy)
            with Image.open(dst) as out:
                xmp = out.info["xmp"]
            assert (b'GPSLatitude="48,51.498N"' in xmp) == kept, policy
            assert (b'GPSLongitude="2,17.67E"' in xmp) == kept
            dst.unlink()

    def test_source_xmp_is_replaced_or_scrubbed(self, tmp_path: Path) -> None:
        source = (
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            b'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:aux="http://ns.adobe.com/exif/1.0/aux/" '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/" exif:GPSLatitude="52,22.5N" '
            b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Leiden" '
            b'aux:SerialNumber="SN999" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
            b'drone-dji:GpsLatitude="52.1601" drone-dji:AbsoluteAltitude="+61.2" '
            b'><xmp:Thumbnails xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
            b'<rdf:Alt><rdf:li>CLEANPREVIEWBASE64</rdf:li></rdf:Alt></xmp:Thumbnails><dc:title><rdf:Alt><rdf:li xml:lang="x-default">Beach'
            b"</rdf:li></rdf:Alt></dc:title><dc:rights><rdf:Alt><rdf:li xml:lang=\"x-default\">"
            b"(c) Bob</rdf:li></rdf:Alt></dc:rights></rdf:Description></rdf:RDF></x:xmpmeta>")
        src = save(Image.fromarray(pixels()), tmp_path / "x.jpg", xmp=source)
        photo = io.load_photo(src)
        fresh = io.save_photo(photo, photo.rgb, tmp_path / "fresh.jpg")
        merged = io.save_photo(photo, photo.rgb, tmp_path / "merged.jpg",
                               metadata=MetadataPolicy(keep_xmp=True))
        for dst, title in ((fresh, False), (merged, True)):
            with Image.open(dst) as out:
                xmp = out.info["xmp"]
            assert b"GPSLatitude" not in xmp and b"SN999" not in xmp
            assert b"52.1601" not in xmp and b"+61.2" not in xmp  # a drone's own GPS
            assert b"Leiden" not in xmp  # a place name locates the photo as GPS does
            assert b"CLEANPREVIEWBASE64" not in xmp  # a preview of the unprotected photo
            assert b"(c) Bob" in xmp and DMI_PROHIBITED.encode() in xmp
            assert (b"Beach" in xmp) == title

    def test_a_kept_packet_loses_embedded_images_and_video_pointers(self, tmp_path: Path
                                                                     ) -> None:
        """keep_xmp: a portrait's unedited photo (GImage:Data, as an attribute) and its
        depth map (GDepth:Data, as an element, base64 in lines) would carry the
        unprotected photo; a motion photo's pointers name a video the copy lacks. Text
        and a long description are kept."""
        preview = _io.BytesIO()
        Image.fromarray(pixels()).save(preview, "JPEG")
        data = base64.b64encode(preview.getvalue()).decode()
        lines = "\n".join(data[i:i + 76] for i in range(0, len(data), 76))
        description = " ".join(["a long caption of many words"] * 20)
        source = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:GImage="http://ns.google.com/photos/1.0/image/" '
            'xmlns:GDepth="http://ns.google.com/photos/1.0/depthmap/" '
            'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'GImage:Mime="image/jpeg" GImage:Data="{data}" GCamera:MicroVideo="1" '
            f'GCamera:MicroVideoOffset="123456"><GDepth:Data>{lines}</GDepth:Data>'
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li>'
            '</rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>')
        xmp = kept_packet(tmp_path, source)
        assert data[:64].encode() not in xmp and lines[:64].encode() not in xmp
        assert b"MicroVideo" not in xmp and b"GImage" not in xmp
        assert description.encode() in xmp

    def test_a_kept_packet_loses_base64_under_a_namespace_no_list_names(self,
                                                                        tmp_path: Path
                                                                        ) -> None:
        """The same unedited photo under a vendor's namespace no list names (as an
        attribute, and as an element in lines): only the base64 rule
        (metadata.embedded_data) drops it, which the test above never needed, as its
        GImage and GDepth namespaces go whole."""
        preview = _io.BytesIO()
        Image.fromarray(pixels()).save(preview, "JPEG")
        data = base64.b64encode(preview.getvalue()).decode()
        lines = "\n".join(data[i:i + 76] for i in range(0, len(data), 76))
        source = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:vendor="http://example.com/vendor/1.0/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'vendor:OriginalPreview="{data}" vendor:Model="X-100">'
            f'<vendor:Thumb>{lines}</vendor:Thumb>'
            '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">A walk</rdf:li></rdf:Alt>'
            '</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>')
        xmp = kept_packet(tmp_path, source)
        assert data[:64].encode() not in xmp and lines[:64].encode() not in xmp
        assert b"X-100" in xmp and b"A walk" in xmp  # the packet's text is kept

    def test_a_kept_packet_loses_wrapped_base64_and_data_uris(self, tmp_path: Path) -> None:
        """The unprotected photo as base64 in lines of 60 (under the run of 64 the rule
        looked for), in the URL-safe alphabet, and as a data: URI passed a kept packet;
        prose, IDs and a short hash still pass."""
        preview = _io.BytesIO()
        Image.fromarray(pixels()).save(preview, "JPEG")
        data = base64.b64encode(preview.getvalue()).decode()
        wrapped = "\n".join(data[i:i + 60] for i in range(0, len(data), 60))
        url_safe = base64.urlsafe_b64encode(preview.getvalue()).decode()
        source = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:vendor="http://example.com/vendor/1.0/" '
            f'vendor:Uri="data:image/jpeg;base64,{data}" vendor:Safe="{url_safe}" '
            'vendor:Id="xmp.did:0f3c2a1b-77aa" vendor:Hash="9f86d081884c7d659a2feaa0c55ad015">'
            f'<vendor:Thumb>{wrapped}</vendor:Thumb><vendor:Note>'
            f'{" ".join(["Sunset over the bay"] * 20)}</vendor:Note>'
            '</rdf:Description></rdf:RDF></x:xmpmeta>')
        xmp = kept_packet(tmp_path, source)
        for held in (data, wrapped, url_safe):
            assert held[:40].encode() not in xmp
        assert b"data:image" not in xmp
        assert b"xmp.did:0f3c2a1b-77aa" in xmp and b"9f86d081884c7d659a2feaa0c55ad015" in xmp
        assert b"Sunset over the bay Sunset" in xmp

    def test_what_holds_picture_data_and_what_is_words(self) -> None:
        """holds_picture_data: a picture's bytes (as bytes, UTF-16 text after a character
        code, or numbers of a SHORT[] array), its base64 (of 256 characters and more, in one
        run or in lines), a data: URI; not a long file name or path, IDs, hashes, a
        sentence naming "GIF89a" (each dropped as picture data, an Artist with one)."""
        jpeg = _io.BytesIO()
        Image.fromarray(pixels()).save(jpeg, "JPEG")
        data = jpeg.getvalue()
        png = _io.BytesIO()
        Image.fromarray(pixels()).save(png, "PNG")
        text = base64.b64encode(data).decode()
        thumbnail = _io.BytesIO()  # an 8x8 JPEG: its base64 is 800-odd characters
        Image.fromarray(pixels()[:8, :8]).save(thumbnail, "JPEG")
        thumbnail_text = base64.b64encode(thumbnail.getvalue()).decode()
        assert 256 < len(thumbnail_text) < 1024
        pictures = [data, thumbnail_text, "DATA:image/jpeg;base64," + text,
                    "\n   data:image/png;base64,AAAA", "data:,AAAA",
                    # loose forms a browser still shows: no subtype, a wildcard, none
                    "data:image;base64,AAAA", "data:image/*;base64,AAAA",
                    "data:;base64,AAAA", "data:image/svg+xml;charset=utf-8;base64,AAAA",
                    "data: image/png;base64,AAAA", "data:image/png ;base64,AAAA",
                    "data:image/png;name=my photo.png;base64,AAAA",
                    "data:application/octet-stream;name=depth.bin;base64,AAAA",
                    struct.unpack(">16I", data[:64]),  # a LONG[] array
                    struct.unpack(">32h", data[:64]),  # an SSHORT[] one (starts below 0)
                    tuple(int.from_bytes(data[i:i + 2], "little") for i in range(0, 64, 2)), png.getvalue(), b"xx" + png.getvalue()[:16],
                    b"UNICODE\0" + text.encode("utf-16-le"), text,
                    "\n".join(text[i:i + 60] for i in range(0, len(text), 60)),
                    "data:image/png;base64,AAAA", tuple(data[:64]), b"\0II*\0\x08\0",
                    b"MM\0*\0\0\0\x08", b"RIFF\x10\0\0\0WEBPVP8L", b"\0\0\0\x18ftypheic",
                    b"\0\0\0\x1cftypavif", b"GIF89a\x28\0",
                    tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, 64, 2)),
                    ("Ann", text)]
        for value in pictures:
            assert metadata.holds_picture_data(value), str(value)[:60]
        words = ["IMG_" + "SummerHolidayAtTheLakeHouseWithGrandmaAndGrandpa2019Final" * 1,
                 "/Users/JohnSmith/Pictures/Exports/Family_2019/Summer_Holiday_Lake-House",
                 "Frame 3 taken from our old GIF89a animation of the cat",
                 "xmp.did:0f3c2a1b-77aa-4c1e-9d2b-3f2504e04f89",
                 "9f86d081884c7d659a2feaa0c55ad0159f86d081884c7d659a2feaa0c55ad015",
                 b"ASCII\0\0\0GPS", "NETWORK", b"UNICODE\0" + "Zoë".encode("utf-16-le"),
                 (1, 2, 3, 4), tuple(range(64)), "x" * 5000,
                 # credits, not data: URIs (both were dropped from EXIF and XMP rights)
                 "Data: OpenStreetMap contributors, ODbL", "Map data:OSM, ODbL",
                 "data: see www.example.org/terms, 2024", "Data: Base64 Inc, 2024"]
        for value in words:
            assert not metadata.holds_picture_data(value), value

    def test_no_kept_exif_tag_or_rights_text_carries_a_picture(self, tmp_path: Path,
                                                               caplog) -> None:
        """The unprotected photo held, whole, in a standard Exif tag (DeviceSettingDescription),
        in a GPS tag kept with --keep-gps, in the XMP rights and in a PNG Author chunk as
        base64: each passed to the copy byte for byte (no limit but a JPEG's segment). Each
        is left out, the EXIF one with a warning; the camera's settings and real rights
        text stay."""
        from PIL.PngImagePlugin import PngInfo

        original = _io.BytesIO()
        Image.fromarray(pixels()).save(original, "JPEG", quality=95)
        picture = original.getvalue()
        as_text = base64.b64encode(picture).decode()
        exif = Image.Exif()
        exif[ExifTags.Base.Make] = "Cam"
        exif[ExifTags.Base.Artist] = as_text  # IFD0, kept by default
        credit = "Data: OpenStreetMap contributors, ODbL"  # was taken for a data: URI
        exif[ExifTags.Base.Copyright] = credit
        exif.get_ifd(ExifTags.IFD.Exif)[0xA40B] = picture  # DeviceSettingDescription
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExposureTime] = 1 / 125
        exif.get_ifd(ExifTags.IFD.GPSInfo)[0x1B] = b"ASCII\0\0\0" + as_text.encode()
        xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
               '1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://'
               'purl.org/dc/elements/1.1/"><dc:rights><rdf:Alt><rdf:li xml:lang="x-default">'
               f'{as_text}</rdf:li></rdf:Alt></dc:rights><dc:creator><rdf:Seq><rdf:li>Ann'
               f'</rdf:li><rdf:li>{as_text}</rdf:li></rdf:Seq></dc:creator></rdf:Description>'
               '</rdf:RDF></x:xmpmeta>')
        info = PngInfo()
        info.add_itxt("Author", as_text)
        info.add_itxt("Copyright", "(c) Ann")
        sources = [save(Image.fromarray(pixels()), tmp_path / "p.png", exif=exif.tobytes(),
                        pnginfo=info)]
        for suffix, options in ((".webp", {"lossless": True}), (".tif", {}), (".jpg", {})):
            sources.append(save(Image.fromarray(pixels()), tmp_path / f"p{suffix}",
                                exif=exif.tobytes(), xmp=xmp.encode(), **options))
        policy = MetadataPolicy(strip_gps=False)
        for src in sources:
            photo = io.load_photo(src)
            with caplog.at_level("WARNING"):
                dst = io.save_photo(photo, photo.rgb, tmp_path / "out" / src.name,
                                    metadata=policy)
            held = dst.read_bytes()
            assert picture not in held and as_text[:64].encode() not in held, src.name
            assert "Exif tag 0xA40B holds picture data" in caplog.text, src.name
            assert "GPS tag 0x001B holds picture data" in caplog.text, src.name
            assert "IFD0 tag 0x013B holds picture data" in caplog.text, src.name
            caplog.clear()
            with Image.open(dst) as copy:
                kept = copy.getexif()
                assert kept[ExifTags.Base.Make] == "Cam", src.name
                assert kept[ExifTags.Base.Copyright] == credit, src.name
                assert ExifTags.Base.ExposureTime in kept.get_ifd(ExifTags.IFD.Exif), src.name
                if copy.format == "PNG":
                    assert copy.text.get("Copyright") == "(c) Ann"
                elif src.suffix != ".tif":  # (Pillow writes no XMP into a TIFF)
                    assert b"<rdf:li>Ann</rdf:li>" in copy.info["xmp"], src.name

    def test_a_kept_packet_loses_the_descriptors_of_extended_xmp_data(self, tmp_path: Path
                                                                      ) -> None:
        """A Google portrait keeps its depth map and unedited photo in JPEG extended XMP
        (which the copy never carries); its main packet's descriptors of them (GDepth,
        GImage, xmpNote:HasExtendedXMP) would describe images the copy does not have."""
        source = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:GDepth="http://ns.google.com/photos/1.0/depthmap/" '
            'xmlns:GImage="http://ns.google.com/photos/1.0/image/" '
            'xmlns:xmpNote="http://ns.adobe.com/xmp/note/" '
            'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            'GDepth:Format="RangeInverse" GDepth:Near="0.5" GDepth:Far="3.2" '
            'GDepth:Mime="image/jpeg" GImage:Mime="image/jpeg" '
            'xmpNote:HasExtendedXMP="A1B2C3D4E5F6" photoshop:Headline="Portrait"/>'
            '</rdf:RDF></x:xmpmeta>')
        xmp = kept_packet(tmp_path, source)
        assert b"GDepth" not in xmp and b"GImage" not in xmp and b"A1B2C3D4E5F6" not in xmp
        assert b"Portrait" in xmp

    def test_a_copy_stored_turned_says_its_own_size(self, tmp_path: Path) -> None:
        """A sideways-stored camera JPEG (Orientation 6, 40x32 stored) written as HEIC is
        stored upright (32x40): PixelX/YDimension follow, and the subject's area (a point
        in the old frame) goes. A JPEG copy keeps the frame, and both."""
        exif = exif_with(Orientation=6)
        exif[EXIF_IFD] = {T.ExifImageWidth: 40, T.ExifImageHeight: 32,
                          0x9214: (20, 16, 8, 8), T.ExposureTime: 0.01}
        src = save(Image.fromarray(pixels()), tmp_path / "side.jpg", quality=95,
                   exif=exif.tobytes())
        photo = io.load_photo(src)
        for suffix, stored, turned in ((".heic", (32, 40), True), (".jpg", (40, 32), False)):
            if suffix == ".heic" and not io.HEIF_WRITABLE:
                missing("pillow-heif has no HEVC encoder to write HEIC")
            dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
            with Image.open(dst) as out:
                sub = out.getexif().get_ifd(EXIF_IFD)
                assert out.size == stored
            assert (sub[T.ExifImageWidth], sub[T.ExifImageHeight]) == stored
            assert (0x9214 in sub) == (not turned) and T.ExposureTime in sub

    def test_capture_date_and_camera_held_only_in_xmp_are_kept(self, tmp_path: Path) -> None:
        """A PNG export with its date and camera in XMP only (no EXIF): the fresh packet
        carries them (not its GPS), and the rights in the default language."""
        from PIL.PngImagePlugin import PngInfo

        packet = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmp:CreateDate="2024-05-01T12:00:00" exif:GPSLatitude="52,22.5N" '
            'tiff:Make="Cam"><exif:DateTimeOriginal>2024-05-01T12:00:00</exif:DateTimeOriginal>'
            '<dc:rights><rdf:Alt><rdf:li xml:lang="de">(c) Ada, alle Rechte</rdf:li>'
            '<rdf:li xml:lang="x-default">(c) Ada</rdf:li></rdf:Alt></dc:rights>'
            '</rdf:Description></rdf:RDF></x:xmpmeta>')
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet)
        photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "src.png",
                                   pnginfo=info))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
        with Image.open(dst) as out:
            xmp = out.info["xmp"]
        xmp = xmp.encode() if isinstance(xmp, str) else xmp
        assert b'xmp:CreateDate="2024-05-01T12:00:00"' in xmp
        assert b'exif:DateTimeOriginal="2024-05-01T12:00:00"' in xmp
        assert b'tiff:Make="Cam"' in xmp and b"GPS" not in xmp and b"52,22" not in xmp
        assert b">(c) Ada<" in xmp and b"alle Rechte" not in xmp
        bare = io.save_photo(photo, photo.rgb, tmp_path / "bare.png",
                             metadata=MetadataPolicy.choose(strip_exif=True))
        assert b"2024-05-01" not in bare.read_bytes()

    def test_only_the_photos_own_xmp_gives_its_creator_date_camera_and_place(
            self, tmp_path: Path) -> None:
        """A Description nested in a property describes another resource: a document
        placed into the photo (Adobe's xmpMM:Pantry), a place shown in it. Its creator was
        added to the photo's, its rights replaced the photo's own notice, its camera and
        date were stamped on the copy, and with --keep-gps its position became the
        copy's. Only the photo's own Description gives them now."""
        from PIL.PngImagePlugin import PngInfo

        packet = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmlns:Iptc4xmpExt='
            '"http://iptc.org/std/Iptc4xmpExt/2008-02-29/" tiff:Model="Mine">'
            '<dc:creator><rdf:Seq><rdf:li>Me Poster</rdf:li></rdf:Seq></dc:creator>'
            '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Me</rdf:li></rdf:Alt>'
            '</dc:rights><xmpMM:Pantry><rdf:Bag><rdf:li><rdf:Description tiff:Make="Other" '
            'xmp:CreateDate="1987-06-05T00:00:00" exif:GPSLatitude="40,41.0N">'
            '<dc:creator><rdf:Seq><rdf:li>Eve Third</rdf:li></rdf:Seq></dc:creator>'
            '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Agency</rdf:li></rdf:Alt>'
            '</dc:rights></rdf:Description></rdf:li></rdf:Bag></xmpMM:Pantry>'
            '<Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li><rdf:Description>'
            '<exif:GPSLongitude>73,59.0W</exif:GPSLongitude></rdf:Description></rdf:li>'
            '</rdf:Bag></Iptc4xmpExt:LocationShown></rdf:Description></rdf:RDF></x:xmpmeta>')
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet)
        photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "src.png",
                                   pnginfo=info))
        for policy in (MetadataPolicy(), MetadataPolicy.choose(keep_gps=True)):
            dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png", metadata=policy)
            with Image.open(dst) as out:
                xmp = out.info["xmp"]
            xmp = xmp.encode() if isinstance(xmp, str) else xmp
            assert b">Me Poster<" in xmp and b">(c) Me<" in xmp
            assert b'tiff:Model="Mine"' in xmp  # the photo's own camera, still carried
            for theirs in (b"Eve Third", b"Agency", b"Other", b"1987", b"40,41", b"73,59"):
                assert theirs not in xmp, (theirs, policy)
            dst.unlink()
        # two Descriptions of the photo itself (a packet may split its properties): the
        # first notice is the one carried, never both
        rights = ('<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                  '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{}</rdf:li></rdf:Alt>'
                  '</dc:rights></rdf:Description>')
        split = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                 '"http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                 + rights.format("(c) First") + rights.format("(c) Second")
                 + '</rdf:RDF></x:xmpmeta>')
        xmp = xmp_of_its_copy(tmp_path / "split", split)
        assert b">(c) First<" in xmp and b"(c) Second" not in xmp

    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
    def test_free_text_and_foreign_blocks_are_not_posted(self, tmp_path: Path,
                                                         suffix: str) -> None:
        """A caption, Windows Explorer's Tags / Subject / Comments, a user comment and an
        original file name name people and places: dropped by default (kept with the
        serials switch). Blocks met in the Exif IFD that belong elsewhere (Photoshop's
        image resources, which may hold a thumbnail of the unprotected photo; IPTC) are
        never carried from there. PNG Title/Description text goes the same way."""
        from PIL.PngImagePlugin import PngInfo

        exif = exif_with(ImageDescription="Emma at Grandma's house",
                         XPKeywords="Emma; Grandma".encode("utf-16-le"),
                         XPComment="Emma".encode("utf-16-le"),
                         XPSubject="Grandma".encode("utf-16-le"))
        exif[EXIF_IFD] = {T.ExposureTime: 0.01, T.UserComment: b"ASCII\0\0\0Emma 2024",
                          T.RelatedSoundFile: "IMG_0001.WAV",
                          T.ImageResources: b"8BIM\x04\x0cTHUMBSECRET",
                          T.IPTCNAA: b"\x1c\x02\x05IPTCSECRET"}
        text = PngInfo()
        text.add_itxt("Title", "Emma")
        text.add_itxt("Description", "Grandma's house")
        text.add_itxt("Copyright", "(c) Ada")
        src = save(Image.fromarray(pixels()), tmp_path / "src.png", exif=exif.tobytes(),
                   pnginfo=text)
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
        data = dst.read_bytes()
        for secret in (b"Emma", b"Grandma", "Emma".encode("utf-16-le"), b"IMG_0001",
                       b"THUMBSECRET", b"IPTCSECRET"):
            assert secret not in data, (suffix, secret)
        with Image.open(dst) as out:
            assert out.getexif().get_ifd(EXIF_IFD)[T.ExposureTime] == 0.01  # capture kept
            assert out.getexif()[T.Copyright] == "(c) 2024 Ada"
        kept = io.save_photo(photo, photo.rgb, tmp_path / f"kept{suffix}",
                             metadata=MetadataPolicy(strip_serials=False))
        assert b"Emma at Grandma's house" in kept.read_bytes()
        assert b"THUMBSECRET" not in kept.read_bytes()  # from the Exif IFD: never

    def test_software_tags_in_the_exif_ifd_go_with_the_serials(self, tmp_path: Path) -> None:
        """Adobe Camera Raw's owner name and serial (0xFDE8, 0xFDE9) in the Exif IFD are
        not standard capture tags: dropped by default, kept with the serials."""
        exif = exif_with()
        exif[EXIF_IFD] = {T.ExposureTime: 0.01, 0xFDE8: "Owner's Name: Ada",
                          0xFDE9: "Serial Number: 8812"}
        src = save(Image.fromarray(pixels()), tmp_path / "acr.jpg", quality=95,
                   exif=exif.tobytes())
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg")
        assert b"8812" not in dst.read_bytes() and b"Owner's Name" not in dst.read_bytes()
        with Image.open(dst) as out:
            assert out.getexif().get_ifd(EXIF_IFD)[T.ExposureTime] == 0.01
        kept = io.save_photo(photo, photo.rgb, tmp_path / "kept.jpg",
                             metadata=MetadataPolicy(strip_serials=False))
        assert b"8812" in kept.read_bytes()

    def test_without_copyright_the_exif_author_goes_too(self, tmp_path: Path) -> None:
        photo = io.load_photo(_tagged_jpeg(tmp_path))
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg",
                            metadata=MetadataPolicy(keep_copyright=False))
        with Image.open(dst) as out:
            exif = out.getexif()
            assert T.Artist not in exif and T.Copyright not in exif
            assert exif[T.Make] == "Cam"  # the camera details stay
        assert b"Ada" not in dst.read_bytes()

    def test_a_two_part_exif_copyright_gives_valid_xmp(self, tmp_path: Path) -> None:
        """EXIF's "photographer NUL editor" Copyright: XML can't hold a NUL, and a packet
        with one would lose the notices (and the app would protect the copy again)."""
        import xml.etree.ElementTree as ET

        src = _tagged_jpeg(tmp_path, Copyright="Jane Doe\x00Ed Itor\x00",
                           Artist="Jane\x07 Doe")
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg")
        with Image.open(dst) as out:
            packet = out.info["xmp"]
        ET.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?", 1)[0])  # parses
        assert b"Jane Doe; Ed Itor" in packet and b"\x07" not in packet
        assert metadata.says_protected(packet)

    def test_rights_too_long_for_a_jpeg_segment_leave_the_notice(self, tmp_path: Path,
                                                                 caplog) -> None:
        """A PNG's XMP rights of 70 KB, written as a JPEG (a PNG named .jpg): Pillow refused
        the packet when saving ("XMP data is too long"), after the attack's work. The copy
        is written, with cloak's notice and without that text, and a warning says so."""
        from PIL.PngImagePlugin import PngInfo

        rights = "All rights reserved. " * 3500
        xmp = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta '
               'xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
               '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/'
               'dc/elements/1.1/"><dc:rights><rdf:Alt><rdf:li xml:lang="x-default">'
               f'{rights}</rdf:li></rdf:Alt></dc:rights></rdf:Description></rdf:RDF>'
               '</x:xmpmeta><?xpacket end="w"?>')
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp)
        src = tmp_path / "long.jpg"
        Image.fromarray(pixels()).save(src, "PNG", pnginfo=info)
        photo = io.load_photo(src)
        with caplog.at_level("WARNING"):
            dst = io.save_photo(photo, photo.rgb, tmp_path / "out" / "long.jpg")
        assert "do not fit a JPEG" in caplog.text
        with Image.open(dst) as out:
            assert out.format == "JPEG"
            packet = out.info["xmp"]
        assert metadata.says_protected(packet) and b"All rights reserved" not in packet
        small = io.save_photo(photo, photo.rgb, tmp_path / "out" / "long.png")  # PNG holds it
        with Image.open(small) as out:
            assert b"All rights reserved" in out.info["xmp"]

    def test_copyright_and_author_held_only_in_iptc_go_into_the_xmp(self, tmp_path: Path
                                                                    ) -> None:
        """Older tools (Photoshop's File Info, Photo Mechanic) write the rights as IPTC
        alone: a JPEG's APP13 block, a TIFF's tag 33723. The copy writes no IPTC block, so
        its creators and notice go into the XMP (not the caption: free text), unless
        --strip-names."""
        from PIL import TiffImagePlugin

        def dataset(number: int, value: bytes) -> bytes:
            return bytes([0x1C, 2, number]) + struct.pack(">H", len(value)) + value

        iptc = (dataset(0, b"\x00\x04") + dataset(116, "© Ana Núñez".encode())
                + dataset(80, b"Ana Nunez") + dataset(80, b"Bo Li") + dataset(120, b"at home"))
        resources = b"8BIM" + struct.pack(">HHI", 0x404, 0, len(iptc)) + iptc + \
            b"\x00" * (len(iptc) % 2)
        segment = b"Photoshop 3.0\x00" + resources
        plain = save(Image.fromarray(pixels()), tmp_path / "plain.jpg", quality=95).read_bytes()
        jpeg = tmp_path / "iptc.jpg"
        jpeg.write_bytes(plain[:2] + b"\xff\xed" + struct.pack(">H", len(segment) + 2)
                         + segment + plain[2:])
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[33723], tags.tagtype[33723] = iptc, 7
        tiff = save(Image.fromarray(pixels()), tmp_path / "iptc.tif", tiffinfo=tags)
        for src in (jpeg, tiff):
            photo = io.load_photo(src)
            dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{src.suffix}")
            with Image.open(dst) as out:
                packet = out.info.get("xmp") or out.tag_v2.get(metadata.XMP_TAG)
            packet = packet if isinstance(packet, bytes) else packet.encode()
            assert b"<rdf:li>Ana Nunez</rdf:li>" in packet and b"Bo Li" in packet, src
            assert "© Ana Núñez".encode() in packet and b"at home" not in packet, src
            anonymous = io.save_photo(photo, photo.rgb, tmp_path / f"anon{src.suffix}",
                                      metadata=MetadataPolicy(keep_copyright=False))
            assert b"Ana" not in anonymous.read_bytes()
        photo = io.load_photo(_tagged_jpeg(tmp_path))  # EXIF names only: as before
        assert "iptc_rights" not in photo.info

    def test_a_resolution_is_kept_only_where_the_file_gives_one(self, tmp_path: Path) -> None:
        """Pillow makes up 1 dpi for a TIFF without resolution tags and 72 dpi for a JPEG
        whose EXIF has none; written into the copy, 1 dpi places a photo at 64 inches."""
        image = Image.fromarray(pixels())
        for name, kwargs in (("none.tif", {}), ("none.jpg", {"exif": exif_with().tobytes()})):
            photo = io.load_photo(save(image, tmp_path / name, **kwargs))
            dst = io.save_photo(photo, photo.rgb, tmp_path / f"out-{name}")
            with Image.open(dst) as out:
                if out.format == "TIFF":
                    assert tiff_x_resolution(out) is None
                else:
                    assert out.info.get("jfif_unit") == 0 and T.XResolution not in out.getexif()
        for name in ("300.tif", "300.jpg"):
            photo = io.load_photo(save(image, tmp_path / name, dpi=(300, 300)))
            dst = io.save_photo(photo, photo.rgb, tmp_path / f"out-{name}")
            with Image.open(dst) as out:
                assert tuple(round(float(d)) for d in out.info["dpi"]) == (300, 300)

    def test_an_orientation_only_in_xmp_is_not_made_an_exif_one(self, tmp_path: Path) -> None:
        """Pillow fills a missing EXIF Orientation from XMP's tiff:Orientation; browsers
        read only EXIF's, so the original shows as stored and so must the copy."""
        xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
               b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com'
               b'/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
        src = save(Image.fromarray(pixels()), tmp_path / "x.jpg", quality=95, xmp=xmp)
        photo = io.load_photo(src)
        assert photo.rgb.shape[:2] == pixels().shape[:2]  # as stored, not turned
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg")
        with Image.open(dst) as out:
            assert T.Orientation not in out.getexif()
            assert out.size == (pixels().shape[1], pixels().shape[0])
        ex = exif_with(Orientation=6)  # in EXIF as well: turned, as viewers show it
        src = save(Image.fromarray(pixels()), tmp_path / "e.jpg", quality=95, xmp=xmp,
                   exif=ex.tobytes())
        assert io.load_photo(src).rgb.shape[:2] == pixels().shape[1::-1]

    def test_a_tiff_turned_by_pillow_for_its_xmp_orientation_is_stored_as_it_was(
            self, tmp_path: Path) -> None:
        """Pillow turns a TIFF upright while loading it by XMP's tiff:Orientation too, when
        it has no Orientation tag; the copy keeps the stored pixels, as viewers show them."""
        from PIL import TiffImagePlugin

        xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
               b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com'
               b'/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700], tags.tagtype[700] = xmp, 1
        src = tmp_path / "x.tif"
        Image.fromarray(pixels()).save(src, tiffinfo=tags)
        photo = io.load_photo(src)
        assert photo.orientation == 1
        np.testing.assert_array_equal(np.round(photo.rgb * 255).astype(np.uint8), pixels())
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out.tif")
        with Image.open(dst) as out:
            assert T.Orientation not in out.tag_v2
            assert out.size == (pixels().shape[1], pixels().shape[0])

    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
    def test_non_ascii_rights_survive_in_exif_and_xmp(self, tmp_path: Path,
                                                      suffix: str) -> None:
        """Lightroom, exiftool and phones write EXIF text as UTF-8: "© 2024 José Müller"
        must not come out as "?? 2024 Jos?? M??ller" (EXIF) or "Â© 2024 JosÃ©" (XMP). A
        TIFF copy had it so, compressed or not: Pillow's TIFF writer took the EXIF bytes
        apart and wrote the text back as ASCII."""
        src = _tagged_jpeg(tmp_path, Copyright="© 2024 José Müller".encode(),
                           Artist="José Müller".encode())
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
        raw = dst.read_bytes()
        assert "© 2024 José Müller".encode() in raw and b"Jos?? M" not in raw
        with Image.open(dst) as out:
            exif, packet = out.getexif(), out.info["xmp"]
        assert exif[T.Copyright].encode("latin-1").decode() == "© 2024 José Müller"
        assert exif[T.Artist].encode("latin-1").decode() == "José Müller"
        packet = packet if isinstance(packet, bytes) else packet.encode()
        assert "José Müller".encode() in packet and "JosÃ©".encode() not in packet
        if suffix == ".tif":  # (deflate, from a JPEG) and as an uncompressed TIFF's copy
            photo.info["compression"] = "raw"
            dst = io.save_photo(photo, photo.rgb, tmp_path / "raw.tif")
            with Image.open(dst) as out:
                assert out.info["compression"] == "raw"
                assert out.getexif()[T.Artist].encode("latin-1").decode() == "José Müller"

    def test_a_tiffs_iptc_stored_as_longs_is_read_without_a_warning(self, tmp_path: Path
                                                                     ) -> None:
        """Photoshop and exiftool store a TIFF's IPTC block (tag 33723) as LONGs: Pillow
        warned "tag 33723 had too many entries" on every such photo, in the CLI's output
        and the app's log, though the block is read whole. The file: a 16 x 16 gray LZW
        TIFF from Pillow, then `exiftool -IPTC:By-line="Iptc Tif"` (12.57)."""
        path = tmp_path / "iptc.tif"
        path.write_bytes(base64.b64decode(
            "SUkqAAgAAAAKAAABAwABAAAAEAAAAAEBAwABAAAAEAAAAAIBAwABAAAACAAAAAMBAwABAAAABQAA"
            "AAYBAwABAAAAAQAAABEBBAABAAAAmgAAABYBAwABAAAAEAAAABcBBAABAAAAHQAAABwBAwABAAAA"
            "AQAAALuDBAAFAAAAhgAAAAAAAAAcAlAACElwdGMgVGlmHAIAAAIABIAWoFA4JBYNB4RCYVC4ZDYd"
            "D4hEYlE4pFYtA4CAAA=="))
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            photo = io.load_photo(path)
        assert photo.rgb.shape[:2] == (16, 16)
        assert [str(w.message) for w in said if "33723" in str(w.message)] == []
        with Image.open(path) as image, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert metadata.iptc_rights(image) == (["Iptc Tif"], None)  # read whole

    def test_a_tiff_pillow_cannot_open_is_simply_not_a_protected_copy(self, tmp_path: Path
                                                                       ) -> None:
        """A compression Pillow does not know (JPEG 2000, 34712) can't be opened: the
        check answers False rather than failing the run; a copy cloak wrote answers True."""
        data = bytearray(save(Image.fromarray(pixels()), tmp_path / "a.tif").read_bytes())
        entry = struct.pack("<HHIH", 259, 3, 1, 1)  # Compression, SHORT, 1 value: none
        at = bytes(data).index(entry)
        data[at + 8:at + 10] = struct.pack("<H", 34712)
        (path := tmp_path / "j2k.tif").write_bytes(bytes(data))
        with pytest.raises(Exception):  # noqa: B017 - whatever Pillow raises for it
            Image.open(path).load()
        assert io.says_protected_file(path) is False
        photo = io.load_photo(_png(tmp_path))
        assert io.says_protected_file(io.save_photo(photo, photo.rgb, tmp_path / "c.png"))

    def test_an_xmp_packet_in_an_unknown_encoding_is_ignored(self, tmp_path: Path) -> None:
        source = (b'<?xml version="1.0" encoding="no-such-codec"?><x:xmpmeta '
                  b'xmlns:x="adobe:ns:meta/"/>')
        src = save(Image.fromarray(pixels()), tmp_path / "x.jpg", xmp=source)
        photo = io.load_photo(src)
        for policy in (MetadataPolicy(), MetadataPolicy(keep_xmp=True)):
            dst = io.save_photo(photo, photo.rgb, tmp_path / "out.jpg", overwrite=True,
                                metadata=policy)
            with Image.open(dst) as out:
                assert DMI_PROHIBITED.encode() in out.info["xmp"]
        assert not metadata.says_protected(source)

    def test_a_gray_profile_is_not_put_on_an_rgb_webp(self, tmp_path: Path) -> None:
        """WebP has no gray mode: a gray photo is written as RGB there, where a gray ICC
        profile would not fit (viewers ignore or misapply it). PNG keeps it."""
        from PIL import ImageCms

        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        gray_icc = srgb[:16] + b"GRAY" + srgb[20:]  # the header's colour space is what counts
        src = save(Image.fromarray(pixels(channels=1), "L"), tmp_path / "g.png",
                   icc_profile=gray_icc)
        photo = io.load_photo(src)
        assert photo.icc_profile == gray_icc
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "out.webp")) as out:
            assert out.mode == "RGB" and "icc_profile" not in out.info
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "out.png")) as out:
            assert out.info.get("icc_profile") == gray_icc

    @pytest.mark.parametrize("suffix", [".avif", ".heic"])
    def test_a_gray_profile_is_not_put_on_gray_with_alpha_written_as_rgba(
            self, tmp_path: Path, suffix: str) -> None:
        """Pillow's AVIF writer and pillow-heif write gray with alpha as RGBA: the gray
        profile is left off there too. Gray without alpha stays gray, with its profile."""
        from PIL import ImageCms

        if suffix == ".avif" and not io.AVIF_SUPPORTED:
            missing("this Pillow has no AVIF support")
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        gray_icc = srgb[:16] + b"GRAY" + srgb[20:]
        gray = pixels(channels=1)
        alpha = np.full_like(gray, 255)
        alpha[:4] = 0
        src = save(Image.fromarray(np.dstack([gray, alpha]), "LA"), tmp_path / "la.png",
                   icc_profile=gray_icc)
        photo = io.load_photo(src)
        with Image.open(io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")) as out:
            assert out.mode == "RGBA" and not out.info.get("icc_profile")
        plain = io.load_photo(save(Image.fromarray(gray, "L"), tmp_path / "g.png",
                                   icc_profile=gray_icc))
        with Image.open(io.save_photo(plain, plain.rgb, tmp_path / f"g{suffix}")) as out:
            assert out.mode == "L" and out.info.get("icc_profile") == gray_icc

    @pytest.mark.filterwarnings("ignore:Corrupt EXIF")
    def test_broken_exif_does_not_block_loading(self, tmp_path: Path) -> None:
        src = save(Image.fromarray(pixels()), tmp_path / "b.jpg",
                   exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
        photo, dst = roundtrip(src)
        change = np.abs(as_u8(io.load_photo(dst)).astype(int) - as_u8(photo))
        assert change.max() <= 11 and change.mean() < 2  # one more JPEG generation at q95


# ----------------------------------------------------------------------- bad input


def _assert_one_line(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message
    for word in words:
        assert word in message.lower(), message


def _load_as_nobody(*paths: Path) -> list[str]:
    """io.load_photo on each path in a forked child, as user `nobody` when this runs as
    root: per path "refused: MESSAGE" (an UnsupportedImageError), "loaded" or "error: ...".
    Skips (fails under CI's set-up: conftest.missing) where root may not change user;
    fails if the child hangs (a lock held at fork)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        outcomes = ["error: the child did not finish"]
        try:
            if os.geteuid() == 0:
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                except PermissionError as exc:
                    outcomes = [f"skip: can't become nobody ({exc})"]
                    raise
            outcomes = []
            for path in paths:
                try:
                    io.load_photo(path)
                    outcomes.append("loaded")
                except UnsupportedImageError as exc:
                    outcomes.append(f"refused: {exc}")
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            if not outcomes or not outcomes[0].startswith("skip"):
                outcomes = [f"error: {type(exc).__name__}: {exc}"]
        finally:
            os.write(write_end, "\0".join(outcomes).encode())
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 60)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child hung")
        with os.fdopen(read_end, "rb", closefd=False) as pipe:
            outcomes = pipe.read().decode().split("\0")
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if outcomes[0].startswith("skip: "):  # fails under CI's set-up: its only real denial
        missing(outcomes[0].removeprefix("skip: "))
    return outcomes


class TestBadInput:
    def test_gray_tiffs_pillow_misreads_are_refused(self, tmp_path: Path) -> None:
        """Pillow reads a 16-bit white-is-zero gray TIFF without inverting it, and a
        12-bit one as 16-bit values in 0..4095: protected as read, the copy came out a
        negative, or nearly black. Both are refused in one line; a standard one loads."""
        import struct

        from PIL import TiffImagePlugin

        ramp = (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[262] = 0  # white is zero
        Image.fromarray(ramp).save(tmp_path / "wiz.tif", tiffinfo=tags)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "wiz.tif")
        _assert_one_line(exc, tmp_path / "wiz.tif", "white-is-zero")
        # 12 bits a sample, two samples in three bytes, as a scanner writes it
        h, w = 16, 32
        rows = np.tile(np.linspace(0, 4095, w).astype(int), (h, 1))
        data = b"".join(bytes([a >> 4, ((a & 15) << 4) | (c >> 8), c & 255])
                        for row in rows for a, c in zip(row[0::2], row[1::2]))
        head = b"II*\x00" + struct.pack("<I", 8 + len(data))
        entries = [(256, 4, w), (257, 4, h), (258, 3, 12), (259, 3, 1), (262, 3, 1),
                   (273, 4, len(head)), (277, 3, 1), (278, 4, h), (279, 4, len(data))]
        ifd = struct.pack("<H", len(entries)) + b"".join(
            struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                 else struct.pack("<I", value))
            for tag, kind, value in entries) + struct.pack("<I", 0)
        (tmp_path / "g12.tif").write_bytes(head + data + ifd)
        with Image.open(tmp_path / "g12.tif") as im:
            assert im.mode.startswith("I;16")  # what Pillow makes of it
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "g12.tif")
        _assert_one_line(exc, tmp_path / "g12.tif", "12-bit")
        Image.fromarray(ramp).save(tmp_path / "std.tif")
        assert io.load_photo(tmp_path / "std.tif").bit_depth == 16

    def test_a_32_bit_gray_tiff_is_refused_whatever_its_values(self, tmp_path: Path) -> None:
        """Pillow opens a 32-bit integer gray TIFF as mode "I". One holding 0-255 was
        taken for 16-bit (its values fit), protected as a nearly black picture and saved as
        16-bit noise; it is refused like one with larger values."""
        ramp = (np.arange(48 * 64).reshape(48, 64) % 253).astype(np.int32)
        for name, values in (("small.tif", ramp), ("large.tif", ramp * 1000)):
            Image.fromarray(values, "I").save(tmp_path / name)
            with Image.open(tmp_path / name) as im:
                assert im.mode == "I" and im.tag_v2[258] == (32,)  # what Pillow makes of it
            with pytest.raises(UnsupportedImageError) as exc:
                io.load_photo(tmp_path / name)
            _assert_one_line(exc, tmp_path / name, "32-bit integer")

    def test_a_tiff_that_opens_on_a_preview_is_refused(self, tmp_path: Path) -> None:
        """Only the first image would be protected: a reduced-size preview stored before
        the picture, or a DNG's preview (its RAW data is not an image Pillow shows)."""
        from PIL import TiffImagePlugin

        preview = TiffImagePlugin.ImageFileDirectory_v2()
        preview[254] = 1  # NewSubfileType: reduced-resolution image
        Image.fromarray(pixels(40, 30)).save(
            tmp_path / "p.tif", save_all=True, tiffinfo=preview,
            append_images=[Image.fromarray(pixels(400, 300))])
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "p.tif")
        _assert_one_line(exc, tmp_path / "p.tif", "reduced-size preview")
        dng = TiffImagePlugin.ImageFileDirectory_v2()
        dng[50706] = b"\x01\x04\x00\x00"  # DNGVersion 1.4
        Image.fromarray(pixels(256, 171)).save(tmp_path / "x.tif", tiffinfo=dng)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "x.tif")
        _assert_one_line(exc, tmp_path / "x.tif", "camera raw (dng)")

    def test_empty_file(self, tmp_path: Path) -> None:
        (path := tmp_path / "e.jpg").write_bytes(b"")
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "empty")

    def test_truncated_jpeg(self, tmp_path: Path) -> None:
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        data = _jpeg(tmp_path).read_bytes()
        (path := tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "truncated")
        # Pillow's own "image file is truncated (N bytes not processed)" is not nested in
        # the line (a trial read it twice over)
        assert "not processed" not in str(exc.value) and "ends too soon" in str(exc.value)

    def test_truncated_png(self, tmp_path: Path) -> None:
        data = _png(tmp_path).read_bytes()
        (path := tmp_path / "t.png").write_bytes(data[: len(data) // 2])
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "truncated")

    def test_corrupt_png_data_is_refused_not_half_black(self, tmp_path: Path) -> None:
        """Zeroed bytes in the middle of the image data (a bad sector, a broken copy):
        Pillow's own load fails; cloak must not protect the half it could decode."""
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
            tmp_path / "a.png")
        data = bytearray((tmp_path / "a.png").read_bytes())
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(4096)
        (path := tmp_path / "corrupt.png").write_bytes(bytes(data))
        with Image.open(path) as im, pytest.raises(OSError):
            im.load()
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "truncated or corrupt")

    def test_text_named_jpg(self, tmp_path: Path) -> None:
        (path := tmp_path / "notes.jpg").write_text("hello, not a photo\n")
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "not an image")
        # not "(supported: JPEG, ...)", which read as if JPEG were not (a trial)
        assert "is named .jpg but is not an image cloak can read (damaged" in str(exc.value)

    def test_unsupported_format(self, tmp_path: Path) -> None:
        path = save(Image.fromarray(pixels()), tmp_path / "a.ppm")
        with pytest.raises(UnsupportedImageError, match="not an image cloak can read"):
            io.load_photo(path)

    def test_pixel_limit(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        saved = Image.MAX_IMAGE_PIXELS
        path = _png(tmp_path)  # 1280 pixels
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path, max_pixels=1000)
        _assert_one_line(exc, path, "cloak_max_pixels", "limit")
        monkeypatch.setenv("CLOAK_MAX_PIXELS", "1000")
        with pytest.raises(UnsupportedImageError, match="CLOAK_MAX_PIXELS"):
            io.load_photo(path)
        monkeypatch.setenv("CLOAK_MAX_PIXELS", "2000")
        assert io.load_photo(path).size == (40, 32)
        for nonsense in ("inf", "nan", "0", "-5", "lots"):  # the default, with a warning
            monkeypatch.setenv("CLOAK_MAX_PIXELS", nonsense)
            assert io.pixel_limit() == io.MAX_PIXELS
        for nonsense in (0, float("inf")):
            with pytest.raises(ValueError, match="at least 1"):
                io.pixel_limit(nonsense)
        assert Image.MAX_IMAGE_PIXELS == saved  # Pillow's own limit is restored

    def test_decompression_bomb_header(self, tmp_path: Path) -> None:
        saved = Image.MAX_IMAGE_PIXELS
        ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
        idat = zlib.compress(bytes(1000))
        data = b"\x89PNG\r\n\x1a\n" + b"".join(
            struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
            for k, d in ((b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")))
        (path := tmp_path / "bomb.png").write_bytes(data)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "10000 megapixels", "cloak_max_pixels")
        assert Image.MAX_IMAGE_PIXELS == saved

    @pytest.mark.parametrize("size,word", [((1, 1), "too small"), ((15, 64), "too small"),
                                           ((30000, 20), "aspect ratio"),
                                           ((20, 400), "aspect ratio")])
    def test_bad_geometry(self, tmp_path: Path, size: tuple[int, int], word: str) -> None:
        path = save(Image.new("L", size), tmp_path / "g.png")
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, word)

    def test_refusals_never_show_the_limit_as_the_photos_own_figure(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Just over a limit, the figures are shown with the decimals that tell them
        apart: "16.4:1" over 16:1 (it read "16:1; cloak handles up to 16:1"), and
        "0.147 megapixels" over a 0.001 MP limit (it read "0 ... over the 0 MP")."""
        path = save(Image.new("RGB", (640, 39)), tmp_path / "wide.png")
        with pytest.raises(UnsupportedImageError, match=r"aspect ratio \(16\.4:1\); cloak "
                                                        r"handles up to 16:1"):
            io.load_photo(path)
        path = save(Image.new("RGB", (384, 384)), tmp_path / "a.png")  # 147,456 pixels
        monkeypatch.setenv("CLOAK_MAX_PIXELS", "1000")
        with pytest.raises(UnsupportedImageError, match=r"0\.147 megapixels is over the "
                                                        r"0\.001 MP safety limit"):
            io.load_photo(path)
        assert io._megapixels_apart(200_400_000, 200_000_000) == ("200.4", "200.0")
        assert io._megapixels_apart(250_000_000, 200_000_000) == ("250", "200")

    def test_wide_panorama_is_fine(self, tmp_path: Path) -> None:
        assert io.load_photo(save(Image.new("RGB", (256, 16)), tmp_path / "p.png")).size \
            == (256, 16)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "nope.jpg")
        _assert_one_line(exc, tmp_path / "nope.jpg", "no such file")

    def test_a_folder_on_the_way_that_cant_be_searched(self, tmp_path: Path,
                                                       lock_folder) -> None:
        """`cloak verify /root/a.jpg` as a user: stat fails with EACCES (simulated here,
        since root searches any folder); one line, not a traceback."""
        path = tmp_path / "locked" / "a.jpg"
        lock_folder(path.parent)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "permission denied")

    def test_a_symlink_loop_is_named(self, tmp_path: Path) -> None:
        (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
        (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(tmp_path / "a.jpg")
        _assert_one_line(exc, tmp_path / "a.jpg", "a loop of links")

    def test_directory(self, tmp_path: Path) -> None:
        (path := tmp_path / "dir.jpg").mkdir()
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "folder")

    def test_permission_denied(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = _jpeg(tmp_path)

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(io, "open", refuse, raising=False)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "permission denied")

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
    def test_permission_denied_for_real(self, tmp_path: Path) -> None:
        """A real EACCES from the OS, not a patched open. Root reads any file, and CI runs
        as root, so there the load runs in a forked child that has dropped to `nobody`."""
        folder = Path(tempfile.mkdtemp(prefix="cloak-perm-"))  # outside root's 0700 tmp
        try:
            folder.chmod(0o755)
            readable = _jpeg(folder)
            io.load_photo(readable)  # Pillow's plugins imported now, before dropping rights
            path = folder / "locked.jpg"
            path.write_bytes(readable.read_bytes())
            path.chmod(0)
            # the readable twin loads: the refusal is the file's mode, not the folder's
            loaded, outcome = _load_as_nobody(readable, path)
            assert loaded == "loaded", loaded
            assert outcome.startswith("refused: "), outcome
            message = outcome.removeprefix("refused: ")
            assert "\n" not in message and str(path) in message
            assert "permission denied" in message.lower(), message
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @pytest.mark.parametrize("suffix,options", [
        (".gif", {"duration": 100, "loop": 0}), (".png", {}), (".webp", {}),
        (".tif", {}), (".heic", {})])
    def test_multi_frame_is_refused(self, tmp_path: Path, suffix: str, options: dict) -> None:
        frames = [Image.fromarray(pixels(seed=s)) for s in range(3)]
        path = save(frames[0], tmp_path / f"anim{suffix}", save_all=True,
                    append_images=frames[1:], **options)
        with pytest.raises(UnsupportedImageError) as exc:
            io.load_photo(path)
        _assert_one_line(exc, path, "multi-frame", "3 frames")


# ------------------------------------------------------------------- atomic writes


class TestAtomicWrite:
    def test_source_untouched_and_nothing_else_written(self, tmp_path: Path) -> None:
        src = _tagged_jpeg(tmp_path)
        before = sha256(src)
        photo = io.load_photo(src)
        dst = io.save_photo(photo, np.clip(photo.rgb + 2 / 255, 0, 1), tmp_path / "a" / "b" /
                            "m.jpg")
        assert sha256(src) == before
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                      if p.is_file()) == ["a/b/m.jpg", "m.jpg"]
        assert dst == tmp_path / "a" / "b" / "m.jpg"

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png(tmp_path))
        (dst := tmp_path / "out.png").write_bytes(b"keep me")
        with pytest.raises(OutputError, match="already exists.*overwrite"):
            io.save_photo(photo, photo.rgb, dst)
        assert dst.read_bytes() == b"keep me"
        io.save_photo(photo, photo.rgb, dst, overwrite=True)
        assert io.load_photo(dst).size == (40, 32)
        (link := tmp_path / "link.png").symlink_to(tmp_path / "nowhere.png")
        with pytest.raises(OutputError, match="already exists.*overwrite"):
            io.save_photo(photo, photo.rgb, link)  # a broken link is a name in use
        assert link.is_symlink() and not (tmp_path / "nowhere.png").exists()

    def test_never_overwrites_the_source(self, tmp_path: Path) -> None:
        src = _png(tmp_path)
        before = sha256(src)
        photo = io.load_photo(src)
        with pytest.raises(OutputError, match="input"):
            io.save_photo(photo, photo.rgb, src, overwrite=True)
        # by a path through a folder that is not there yet and back out of it
        with pytest.raises(OutputError, match="input"):
            io.save_photo(photo, photo.rgb, src.parent / "new" / ".." / src.name,
                          overwrite=True)
        assert sha256(src) == before and not (src.parent / "new").exists()

    def test_settled_path_takes_dot_dot_after_a_missing_folder_by_its_letters(
            self, tmp_path: Path) -> None:
        (tmp_path / "there").mkdir()
        assert io.settled_path(tmp_path / "new" / ".." / "x.png") == tmp_path / "x.png"
        assert (io.settled_path(tmp_path / "there" / "new" / "a" / ".." / ".." / "x.png")
                == tmp_path / "there" / "x.png")
        # an existing part is kept as given (the system resolves its links); no `..`: as is
        assert (io.settled_path(tmp_path / "there" / ".." / "x.png")
                == tmp_path / "there" / ".." / "x.png")
        assert io.settled_path(tmp_path / "new" / "x.png") == tmp_path / "new" / "x.png"

    def test_link_race_is_caught(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that appears between the check and the move is not replaced."""
        photo = io.load_photo(_png(tmp_path))
        dst = tmp_path / "race.png"
        real_link = os.link

        def link_after_someone_else(a, b):
            Path(b).write_bytes(b"theirs")
            return real_link(a, b)

        monkeypatch.setattr(atomic.os, "link", link_after_someone_else)
        with pytest.raises(OutputError, match="already exists"):
            io.save_photo(photo, photo.rgb, dst)
        assert dst.read_bytes() == b"theirs"
        assert not list(tmp_path.glob(".*cloak-tmp*"))

    @staticmethod
    def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
        """As on a FAT or exFAT card, or some network shares: link() fails with EPERM."""
        def refuse(a, b):
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(atomic.os, "link", refuse)

    def test_a_disk_without_hard_links_is_written_and_never_replaced(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        photo = io.load_photo(_png(tmp_path))
        self._no_hard_links(monkeypatch)
        dst = io.save_photo(photo, photo.rgb, tmp_path / "out" / "a.png")
        assert np.array_equal(io.load_photo(dst).rgb, photo.rgb)
        theirs = tmp_path / "out" / "b.png"

        def lands_during_the_write(fp) -> None:  # after any check, before the move:
            theirs.write_bytes(b"theirs")  # only the move itself can refuse it now
            fp.write(b"ours")

        for one_step in (True, False):  # renameat2's no-replace, then check-then-rename
            if not one_step:
                monkeypatch.setattr(atomic, "_rename_no_replace", lambda temp, dst: False)
            theirs.unlink(missing_ok=True)
            with pytest.raises(OutputError, match="already exists"):
                atomic.write_atomic(theirs, lands_during_the_write)
            assert theirs.read_bytes() == b"theirs"
            assert not list((tmp_path / "out").glob(".*cloak-tmp*"))

    def test_a_temp_name_that_cannot_be_removed_after_the_link_is_no_failure(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On Windows a file another program holds open (antivirus scanning a new file,
        a sync client) can't be deleted: the copy, whole at its name, was reported as
        failed, and the next run refused it as not cloak's. The stale temp name is left
        for a later run's sweep."""
        real_unlink = os.unlink

        def held_open(path, *args, **kwargs):
            if ".cloak-tmp-" in os.fspath(path):
                raise PermissionError(13, "The process cannot access the file because it "
                                          "is being used by another process")
            return real_unlink(path, *args, **kwargs)

        monkeypatch.setattr(atomic.os, "unlink", held_open)
        dst = atomic.write_atomic(tmp_path / "a.bin", lambda fp: fp.write(b"ours"))
        assert dst.read_bytes() == b"ours"

    def test_a_rename_refused_for_a_moment_is_tried_again(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Windows refuses to replace a file another program has open for a moment (an
        indexer, antivirus, another cloak reading the record): one refusal stopped a
        whole batch. Where renames are tried again (Windows), a passing hold is waited
        out; one that lasts still fails, and leaves no temp file."""
        monkeypatch.setattr(atomic, "RENAME_TRIES", 3)
        monkeypatch.setattr(atomic, "RENAME_RETRY_WAIT_S", 0)
        real_replace, refusals = os.replace, []

        def held_for(times: int):
            def replace(a, b):
                if len(refusals) < times:
                    refusals.append(b)
                    raise PermissionError(13, "Access is denied")
                return real_replace(a, b)
            return replace

        dst = tmp_path / "record.json"
        dst.write_bytes(b"old")
        monkeypatch.setattr(atomic.os, "replace", held_for(2))
        atomic.write_atomic(dst, lambda fp: fp.write(b"new"), overwrite=True)
        assert dst.read_bytes() == b"new" and len(refusals) == 2
        refusals.clear()
        monkeypatch.setattr(atomic.os, "replace", held_for(3))
        with pytest.raises(OutputError, match="Access is denied"):
            atomic.write_atomic(dst, lambda fp: fp.write(b"newer"), overwrite=True)
        assert dst.read_bytes() == b"new" and len(refusals) == 3
        assert not list(tmp_path.glob(".*cloak-tmp*"))

    def test_overwrite_check_is_asked_about_the_file_found_at_the_write(
            self, tmp_path: Path) -> None:
        """`overwrite` as a check: with nothing at dst the file is written without
        replacing anything; a file found there is replaced only if the check, asked
        about that file when the write is published, says so."""
        dst = tmp_path / "a.bin"
        asked = []

        def only_ours(path: Path) -> bool:
            asked.append(path)
            return path.read_bytes() == b"ours"

        atomic.write_atomic(dst, lambda fp: fp.write(b"ours"), overwrite=only_ours)
        assert dst.read_bytes() == b"ours" and asked == []  # nothing there: not asked
        atomic.write_atomic(dst, lambda fp: fp.write(b"ours"), overwrite=only_ours)
        assert asked == [dst]

        def lands_during_the_write(fp) -> None:
            dst.write_bytes(b"theirs")
            fp.write(b"ours")

        with pytest.raises(OutputError, match="already exists"):
            atomic.write_atomic(dst, lands_during_the_write, overwrite=only_ours)
        assert dst.read_bytes() == b"theirs"
        assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
        assert atomic.may_replace(True, dst) and not atomic.may_replace(False, dst)

    def test_a_failed_overwrite_keeps_the_old_file(self, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        photo = io.load_photo(_png(tmp_path))
        dst = tmp_path / "out" / "a.png"
        dst.parent.mkdir()
        dst.write_bytes(b"the copy a run before wrote")

        def broken_save(self, fp, *args, **kwargs):
            fp.write(b"half a file")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Image.Image, "save", broken_save)
        with pytest.raises(OutputError, match="No space left"):
            io.save_photo(photo, photo.rgb, dst, overwrite=True)
        assert dst.read_bytes() == b"the copy a run before wrote"
        assert [p.name for p in dst.parent.iterdir()] == ["a.png"]

    @pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                       ValueError("encoder broke"), KeyboardInterrupt()])
    def test_failure_leaves_no_temp_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         error: BaseException) -> None:
        photo = io.load_photo(_png(tmp_path))
        out = tmp_path / "out"

        def broken_save(self, fp, *args, **kwargs):
            fp.write(b"half a file")
            raise error

        monkeypatch.setattr(Image.Image, "save", broken_save)
        expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else OutputError
        with pytest.raises(expected):
            io.save_photo(photo, photo.rgb, out / "a.png")
        assert list(out.iterdir()) == []

    def test_long_non_ascii_name_gets_a_temp_name_the_disk_accepts(self, tmp_path: Path
                                                                    ) -> None:
        dst = tmp_path / ("写真" * 40 + ".png")  # 244 bytes in UTF-8: a valid name
        atomic.write_atomic(dst, lambda fp: fp.write(b"data"))
        assert dst.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [dst.name]

    @pytest.mark.skipif(os.name != "posix", reason="a POSIX locale")
    def test_a_utf8_name_is_written_where_names_are_ascii(self, tmp_path: Path) -> None:
        """Under PYTHONUTF8=0 LC_ALL=C names are ASCII (other bytes held as surrogates):
        the temp name was cut as UTF-8, which made "café" a name the OS call can't
        encode, and every such photo failed as "unexpected error ... please report it"."""
        import subprocess
        import sys

        script = ("import os, sys; from cloak import atomic; "
                  "print(sys.getfilesystemencoding()); "
                  "atomic.write_atomic(os.path.join(sys.argv[1], os.fsdecode("
                  "b'caf\\xc3\\xa9.bin')), lambda fp: fp.write(b'ours'))")
        env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ascii"  # the locale this is about
        with open(os.path.join(os.fsencode(tmp_path), b"caf\xc3\xa9.bin"), "rb") as fp:
            assert fp.read() == b"ours"

    def test_temp_file_is_hidden_next_to_dst(self, tmp_path: Path) -> None:
        seen = []

        def write(fp) -> None:
            seen.extend((tmp_path / "sub").iterdir())
            fp.write(b"data")

        atomic.write_atomic(tmp_path / "sub" / "f.bin", write)
        assert seen[0].parent == tmp_path / "sub"
        assert seen[0].name.startswith(".f.bin.cloak-tmp-")
        assert (tmp_path / "sub" / "f.bin").read_bytes() == b"data"
        assert not seen[0].exists()

    def test_a_full_disk_is_an_output_error_carrying_enospc(self, tmp_path: Path,
                                                              full_disk: Path) -> None:
        """On a real full file system: the write fails with the disk's errno kept (the
        app then fails the run's other photos for that folder at once), and no temp file
        is left."""
        import errno

        photo = io.load_photo(_png(tmp_path))
        before = sorted(full_disk.iterdir())
        with pytest.raises(OutputError, match="No space left on device") as caught:
            io.save_photo(photo, photo.rgb, full_disk / "a.png")
        assert caught.value.errno == errno.ENOSPC
        assert sorted(full_disk.iterdir()) == before

    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".bmp", ".heic",
                                        ".avif", ".png16"])
    def test_a_disk_that_fills_mid_write_leaves_no_copy(self, tmp_path: Path,
                                                        small_disk: Path, suffix: str) -> None:
        """Pillow's C encoders write the file descriptor directly and take a short write
        as success: a JPEG q95 is written in one call, so a disk that filled part-way
        left a truncated copy under its final name (a user trial). Every format's
        write is checked: it fails with the disk's errno and leaves nothing."""
        import errno

        if suffix == ".heic" and not io.HEIF_WRITABLE:
            missing("pillow-heif has no HEVC encoder to make the HEIF")
        if suffix == ".avif" and not io.AVIF_SUPPORTED:
            missing("Pillow has no AVIF support")
        noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
        if suffix == ".png16":
            src, suffix = tmp_path / "deep.png", ".png"
            Image.fromarray(noise[:, :, 0].astype(np.uint16) * 257).save(src)
        else:
            src = save(Image.fromarray(noise), tmp_path / f"noise{suffix}")
        photo = io.load_photo(src)
        with pytest.raises(OutputError, match="No space left on device") as caught:
            io.save_photo(photo, photo.rgb, small_disk / f"copy{suffix}")
        assert caught.value.errno == errno.ENOSPC
        assert list(small_disk.iterdir()) == []

    def test_unwritable_folder(self, tmp_path: Path) -> None:
        photo = io.load_photo(_png(tmp_path))
        (blocker := tmp_path / "file").write_bytes(b"")
        with pytest.raises(OutputError, match="cannot create folder"):
            io.save_photo(photo, photo.rgb, blocker / "sub" / "a.png")


@pytest.fixture
def umask_022():
    """The usual umask (files 644) while the test runs."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
class TestPermissions:
    """A copy is readable by no one the original is not readable by (as `cp` makes it),
    and a replaced file keeps the permissions it had: under the usual umask 022 a 0600
    photo's copy was 0644, readable by every user of the machine, and a manifest made
    0600 by its user was 0644 again after the next run."""

    def test_a_private_photos_copy_is_private(self, tmp_path, umask_022):
        src = _png(tmp_path)
        src.chmod(0o600)
        photo = io.load_photo(src)
        copy = io.save_photo(photo, photo.rgb, tmp_path / "out" / "a.png")
        assert copy.stat().st_mode & 0o777 == 0o600
        src.chmod(0o640)  # the group may read it: so may it read the copy
        assert io.save_photo(photo, photo.rgb, tmp_path / "out" / "b.png"
                             ).stat().st_mode & 0o777 == 0o640
        src.chmod(0o644)  # the umask still applies to a readable photo's copy
        assert io.save_photo(photo, photo.rgb, tmp_path / "out" / "c.png"
                             ).stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert io.save_photo(photo, photo.rgb, tmp_path / "out" / "d.png"
                             ).stat().st_mode & 0o777 == 0o600

    def test_a_replaced_file_keeps_its_permissions_no_wider_than_the_photos(
            self, tmp_path, umask_022):
        record = tmp_path / "record.json"
        record.write_bytes(b"old")
        record.chmod(0o600)
        atomic.write_atomic(record, lambda fp: fp.write(b"new"), overwrite=True)
        assert record.read_bytes() == b"new" and record.stat().st_mode & 0o777 == 0o600
        record.chmod(0o664)  # wider than the umask, by its user's choice: kept too
        atomic.write_atomic(record, lambda fp: fp.write(b"newer"), overwrite=True)
        assert record.stat().st_mode & 0o777 == 0o664
        src = _png(tmp_path)
        photo = io.load_photo(src)
        copy = io.save_photo(photo, photo.rgb, tmp_path / "copy.png")
        assert copy.stat().st_mode & 0o777 == 0o644
        src.chmod(0o600)  # made private since: the copy replacing the old one is too
        io.save_photo(photo, photo.rgb, copy, overwrite=True)
        assert copy.stat().st_mode & 0o777 == 0o600

    def test_mode_like(self, tmp_path):
        original = tmp_path / "a"
        original.write_bytes(b"")
        for bits, file_mode, folder_mode in ((0o600, 0o600, 0o700), (0o400, 0o600, 0o700),
                                             (0o640, 0o660, 0o770), (0o604, 0o606, 0o707),
                                             (0o644, 0o666, 0o777)):
            original.chmod(bits)
            assert atomic.mode_like(original) == file_mode, oct(bits)
            assert atomic.mode_like(original, dir_mode=True) == folder_mode, oct(bits)
        assert atomic.mode_like(None) == 0o666
        assert atomic.mode_like(tmp_path / "gone") == 0o666


class TestModule:
    def test_suffixes_are_lower_case_and_readable(self) -> None:
        assert all(s == s.lower() and s.startswith(".") for s in io.IMAGE_SUFFIXES)
        assert {".jpg", ".png", ".heic", ".webp", ".tif", ".gif", ".bmp"} <= io.IMAGE_SUFFIXES

    def test_heic_opener_is_registered(self) -> None:
        assert "HEIF" in Image.OPEN and pillow_heif.libheif_info()["HEIF"]


# ------------------------------------------------------------- real dev photos


NO_PHOTOS = "(no dev photos)"


class TestDevPhotos:
    """Every dev photo through load and save, no model (about 13 s for the 25)."""

    @pytest.mark.parametrize("name", sorted(p.name for p in PHOTOS.glob("*"))
                             if PHOTOS.is_dir() else [NO_PHOTOS])
    def test_round_trip_keeps_displayed_size_and_format(self, tmp_path: Path,
                                                        name: str) -> None:
        if name == NO_PHOTOS:  # fails in CI, skips elsewhere (see conftest.missing)
            missing(f"no dev photos in {PHOTOS}")
        src = PHOTOS / name
        before = sha256(src)
        photo = io.load_photo(src)
        dst = io.save_photo(photo, photo.rgb, io.output_path_for(src, tmp_path))
        assert sha256(src) == before
        with Image.open(src) as a, Image.open(dst) as b:
            assert OUTPUT_FORMAT.get(a.format, a.format) == b.format
            assert ImageOps.exif_transpose(a).size == ImageOps.exif_transpose(b).size
            if b.format != "HEIF":
                assert a.size == b.size
            if b.format == "JPEG":  # high quality, full-resolution chroma (4:4:4)
                assert JpegImagePlugin.get_sampling(b) == 0, name
        back = io.load_photo(dst)
        assert back.size == photo.size and back.is_grayscale == photo.is_grayscale
        change = np.abs(back.rgb - photo.rgb) * 255
        if b.format in ("PNG", "WEBP"):  # lossless
            assert change.max() == 0, name
        else:  # one q95 generation: measured at most 24/255, mean 1.5/255, on these photos
            assert change.max() <= 30 and change.mean() < 2, name


def test_cloaks_pixel_limit_holds_while_a_tiff_decodes(tmp_path: Path, monkeypatch) -> None:
    """TIFF checks Pillow's limit again when it loads: cloak's own limit must be the one in
    force then (a photo under it loads; one over it is one clear line)."""
    src = save(Image.fromarray(pixels(64, 64)), tmp_path / "a.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's, far below the photo
    assert io.load_photo(src, max_pixels=10**6).size == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back
    with pytest.raises(UnsupportedImageError, match="pixels"):
        io.load_photo(src, max_pixels=2000)


class TestHostileMetadata:
    def test_an_xmp_packet_with_a_dtd_is_ignored(self):
        bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                b'xmlns:cloak="' + metadata.CLOAK_NS.encode() + b'" cloak:Protected="True">'
                b'&b;</rdf:Description></rdf:RDF></x:xmpmeta>')
        assert not metadata.says_protected(bomb)
        assert metadata.says_protected(bomb.replace(b"&b;", b"").split(b"]>", 1)[1])
        for policy in (MetadataPolicy(), MetadataPolicy(keep_xmp=True)):
            # cloak's own notices are written; nothing of the hostile packet is
            packet = metadata.build_xmp(bomb, None, policy, "test")
            assert packet and metadata.DMI_PROHIBITED.encode() in packet
            assert metadata.says_protected(packet)
            assert b"ENTITY" not in packet and b"aaaaaaaaaa" not in packet

    def test_an_xmp_packet_of_millions_of_elements_is_not_built(self, caplog):
        """A 74 KB PNG whose packet inflates to 16 MB of empty elements (with cloak's
        namespace in it): each was built whole as a tree, holding the app's window 2.6 s
        a photo as it looked for cloak's note, and a run 1.2 GB more. The packet is read
        no further than MAX_XMP_ELEMENTS, and ignored; one within it is read as ever."""
        def packet(elements: int) -> bytes:
            return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                    b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                    b'xmlns:cloak="' + metadata.CLOAK_NS.encode() + b'" cloak:Protected='
                    b'"True">' + b"<a/>" * elements + b"</rdf:Description></rdf:RDF>"
                    b"</x:xmpmeta>")

        within = packet(metadata.MAX_XMP_ELEMENTS - 10)
        assert metadata.says_protected(within)
        read = []
        real = metadata.ET.XMLPullParser

        class Counting(real):  # how much of the bomb is read before it is given up
            def feed(self, data):
                read.append(len(data))
                return super().feed(data)

        metadata.ET.XMLPullParser = Counting
        try:
            bomb = packet(4_000_000)  # 16 MB
            with caplog.at_level(logging.WARNING, logger="cloak.metadata"):
                assert not metadata.says_protected(bomb)
                built = metadata.build_xmp(bomb, None, MetadataPolicy(), "test")
        finally:
            metadata.ET.XMLPullParser = real
        # each of the three reads (the note, the copy's packet, its dates) stops at
        # about 4 bytes an element: under a quarter of the 16 MB in all
        assert sum(read) < len(bomb) // 4
        assert built and b"<a" not in built  # cloak's own notices only
        assert "ignoring an XMP packet of more than 200000 elements" in caplog.text

    def test_a_jpeg_of_thousands_of_empty_scans_is_refused_before_it_decodes(
            self, tmp_path: Path) -> None:
        """libjpeg decodes each scan over the whole picture and sets no limit: 20,000
        empty AC scans (31 bytes each, 683 KB in all) took 27 s to verify, 100,000 about
        five minutes. More than MAX_JPEG_SCANS is refused at once; an ordinary progressive
        JPEG (ten scans), one with an EXIF thumbnail, and the dev photos load."""
        bomb = jpeg_of_empty_scans(tmp_path / "bomb.jpg", io.MAX_JPEG_SCANS + 1)
        assert io.jpeg_scan_count(bomb.read_bytes()) == io.MAX_JPEG_SCANS + 11
        with pytest.raises(UnsupportedImageError, match=(
                f"is a JPEG of {io.MAX_JPEG_SCANS + 11} scans .*refused as a "
                "decompression bomb")):
            io.load_photo(bomb)
        ordinary = jpeg_of_empty_scans(tmp_path / "ok.jpg", 5)  # 15 scans: read as ever
        assert io.jpeg_scan_count(ordinary.read_bytes()) == 15
        assert io.load_photo(ordinary).rgb.shape[:2] == pixels().shape[:2]
        exif = Image.Exif()
        exif[ExifTags.Base.Make] = "Cam"
        thumbed = save(Image.fromarray(pixels()), tmp_path / "t.jpg", exif=exif)
        assert io.jpeg_scan_count(thumbed.read_bytes()) == 1
        for photo in sorted(PHOTOS.glob("*.jp*g")):
            assert io.jpeg_scan_count(photo.read_bytes()) <= 20, photo.name

    def test_scans_are_counted_as_libjpeg_reads_them_whatever_lies_between(
            self, tmp_path: Path, monkeypatch) -> None:
        """A comment between scans holding the bytes FF D9 (an end marker's) stopped the
        count at one: 20,000 empty scans behind it were decoded (68 s at 1600x1200).
        Segments are stepped over by their length, as libjpeg does; fill bytes and a TEM
        marker before them change nothing; an MPO's second picture is not its first's
        (counted once: 10, not 20), and an MPO is checked as a JPEG is."""
        bomb = jpeg_of_empty_scans(tmp_path / "plain.jpg", 20_000)
        data = bomb.read_bytes()
        first_scan = data.index(b"\xff\xda")
        after_first = data.index(b"\xff\xda", first_scan + 2)  # (empty: no FF in between)
        hidden = tmp_path / "hidden.jpg"
        hidden.write_bytes(data[:after_first] + b"\xff\xfe\x00\x04\xff\xd9"
                           + data[after_first:])
        for path in (bomb, hidden):
            assert io.jpeg_scan_count(path.read_bytes()) == 20_010, path.name
            with pytest.raises(UnsupportedImageError, match="of 20010 scans"):
                io.load_photo(path)
        # garbage between segments: libjpeg passes "FF 00" by, not as a segment's length
        garbage = data[:after_first] + b"\xff\x00\x40\x00" + data[after_first:]
        assert io.jpeg_scan_count(garbage) == 20_010
        ordinary = jpeg_of_empty_scans(tmp_path / "ok.jpg", 0).read_bytes()
        # cut off inside a scan's data, with no 0xFF after it: one scan, and an end
        assert io.jpeg_scan_count(ordinary[:ordinary.index(b"\xff\xda") + 40]) == 1
        dqt = ordinary.index(b"\xff\xdb")
        padded = (ordinary[:dqt] + b"\xff\xff" + ordinary[dqt:first_scan] + b"\xff\x01"
                  + ordinary[first_scan:])
        assert io.jpeg_scan_count(padded) == 10
        buffer = _io.BytesIO()
        Image.fromarray(pixels()).save(buffer, "MPO", save_all=True, progressive=True,
                                       append_images=[Image.fromarray(pixels(seed=1))])
        mpo = tmp_path / "pair.mpo"
        mpo.write_bytes(buffer.getvalue())
        assert io.jpeg_scan_count(mpo.read_bytes()) == 10
        assert io.load_photo(mpo).format == "MPO"
        # a second picture over 64 KB: past the first's end marker nothing is counted
        # (read as a segment, FF D9's "length" would be the next FF D8's, 65,496 bytes)
        noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
        buffer = _io.BytesIO()
        Image.fromarray(noise).save(buffer, "MPO", save_all=True, progressive=True,
                                    append_images=[Image.fromarray(noise[::-1])])
        big = buffer.getvalue()
        second = big.index(b"\xff\xd8", 2)
        assert big[second + 65_536:].count(b"\xff\xda") > 1  # scans beyond that jump
        assert io.jpeg_scan_count(big) == 10
        # cut off just after a 0xFF of its scan's data (a stuffed FF 00): one scan, and
        # no reading past the end
        baseline = _io.BytesIO()
        Image.fromarray(noise).save(baseline, "JPEG", quality=95)
        data = baseline.getvalue()
        assert io.jpeg_scan_count(data[:data.index(b"\xff\x00",
                                                   data.index(b"\xff\xda")) + 1]) == 1
        monkeypatch.setattr(io, "MAX_JPEG_SCANS", 9)
        with pytest.raises(UnsupportedImageError, match="of 10 scans"):
            io.load_photo(mpo)


def jpeg_of_empty_scans(path: Path, extra: int) -> Path:
    """A progressive JPEG of pixels() (ten scans) with its last AC scan repeated `extra`
    times more (a few bytes each: it refines nothing), written to `path`."""
    buffer = _io.BytesIO()
    Image.fromarray(pixels()).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    assert io.jpeg_scan_count(data) == 10
    at, scans = 2, []  # the segments, to find an AC scan to repeat
    while data[at + 1] != 0xD9:
        end = at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
        if data[at + 1] == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] != 0
                       and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
            scans.append(data[at:end])
        at = end
    path.write_bytes(data[:-2] + scans[-1] * extra + data[-2:])
    return path


def xmp_of_its_copy(folder: Path, packet: str) -> bytes:
    """The XMP of cloak's PNG copy of a PNG holding `packet` (made in `folder`)."""
    folder.mkdir(exist_ok=True)
    photo = io.load_photo(save(Image.fromarray(pixels()), folder / "src.png",
                               pnginfo=_png_xmp(packet.encode())))
    dst = io.save_photo(photo, photo.rgb, folder / "out.png")
    with Image.open(dst) as out:
        xmp = out.info["xmp"]
    return xmp.encode() if isinstance(xmp, str) else xmp


def _png_xmp(xmp: bytes):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_the_maker_note_is_never_carried_and_place_hints_go_with_the_gps(
        tmp_path: Path) -> None:
    """A maker note is a vendor container: besides serials it can hold place names, the
    names of people the camera recognised and a preview of the unprotected photo. It was
    kept with --keep-serials (byte for byte, and whole in a PNG copy). The time zone, air
    pressure and water depth say where the photo was short of GPS: they go with it."""
    from io import BytesIO

    preview = BytesIO()
    Image.fromarray(pixels(seed=3)).save(preview, "JPEG", quality=50)
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {
        T.DateTimeOriginal: "2024:05:01 12:00:00", T.BodySerialNumber: "SN123",
        T.OffsetTimeOriginal: "+05:30", T.Pressure: 1013.25,
        T.MakerNote: b"Panasonic\0\0\0LANDMARK=Leiden;BABY=Emma" + preview.getvalue()}
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
           b'xmp:CreateDate="2024-05-01T12:00:00+05:30"/></rdf:RDF></x:xmpmeta>')
    photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "m.png",
                               exif=exif.tobytes(), pnginfo=_png_xmp(xmp)))
    for suffix in (".jpg", ".png", ".webp"):
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}",
                            metadata=MetadataPolicy.choose(keep_serials=True))
        data = dst.read_bytes()
        assert b"Leiden" not in data and b"Emma" not in data, suffix
        assert preview.getvalue()[2:400] not in data, suffix  # the unprotected preview
        assert b"SN123" in data, suffix  # the serial itself is kept, as asked
        assert b"+05:30" not in data, suffix
        with Image.open(dst) as out:
            sub = out.getexif().get_ifd(ExifTags.IFD.Exif)
        assert sub[T.DateTimeOriginal] == "2024:05:01 12:00:00" and T.Pressure not in sub
    kept = io.save_photo(photo, photo.rgb, tmp_path / "gps.jpg",
                         metadata=MetadataPolicy.choose(keep_gps=True))
    with Image.open(kept) as out:
        assert out.getexif().get_ifd(ExifTags.IFD.Exif)[T.OffsetTimeOriginal] == "+05:30"
        assert b"2024-05-01T12:00:00+05:30" in out.info["xmp"]


def test_a_photo_whose_name_and_content_disagree_is_said_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A JPEG named .png gets a PNG copy, as its name says: lossless, four times the size
    in a trial, without a word. Now one line says why and what to rename; a photo named
    as it is, or a GIF (whose copy is a PNG by design), gets none."""
    jpeg_named_png = save(Image.fromarray(pixels()), tmp_path / "a.png", "JPEG")
    png_named_jpg = save(Image.fromarray(pixels()), tmp_path / "b.jpg", "PNG")
    gif = save(Image.fromarray(pixels()).convert("P"), tmp_path / "c.gif")
    gif_named_png = save(Image.fromarray(pixels()).convert("P"), tmp_path / "d.png", "GIF")
    jpeg_named_webp = save(Image.fromarray(pixels()), tmp_path / "e.webp", "JPEG")
    avif_named_png = save(Image.fromarray(pixels()), tmp_path / "f.png", "AVIF")
    with caplog.at_level("WARNING", logger="cloak.io"):
        for src in (jpeg_named_png, png_named_jpg, gif, gif_named_png, jpeg_named_webp,
                    avif_named_png):
            photo = io.load_photo(src)
            io.save_photo(photo, photo.rgb, io.output_path_for(src, tmp_path / "out"))
    assert (f"{jpeg_named_png} is named .png but holds a JPEG image: its copy is written as "
            "PNG, as the name says (lossless, so several times larger); rename the photo "
            ".jpg for a JPEG copy") in caplog.text
    assert f"{png_named_jpg} is named .jpg but holds a PNG image" in caplog.text
    assert "(lossy); rename the photo .png for a PNG copy" in caplog.text
    assert "c.gif" not in caplog.text
    assert "d.png" not in caplog.text  # a GIF's copy is a PNG whatever its name
    assert (f"{jpeg_named_webp} is named .webp but holds a JPEG image: its copy is written "
            "as WEBP, as the name says (lossless, so several times larger)") in caplog.text
    # "an AVIF", not "a AVIF"
    assert (f"{avif_named_png} is named .png but holds an AVIF image: its copy is written "
            "as PNG, as the name says (lossless, so several times larger); rename the photo "
            ".avif for an AVIF copy") in caplog.text


def _xmp_dates(**dates: str) -> bytes:
    attrs = " ".join(f'{k.replace("_", ":")}="{v}"' for k, v in dates.items())
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
            b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            + attrs.encode() + b'/></rdf:RDF></x:xmpmeta>')


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def test_a_utc_date_beside_a_local_one_goes_with_the_gps(tmp_path: Path) -> None:
    """A UTC stamp (XMP "…Z", a PNG "Creation Time" in GMT) next to the local time EXIF
    keeps gives the time zone away as their difference: with the GPS dropped, it goes too.
    A numeric offset leaves its local time; a UTC stamp alone keeps its time, zoneless."""

    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {T.DateTimeOriginal: "2024:05:01 12:00:00"}

    def png(name: str, creation: str, xmp: bytes, with_exif: bool) -> io.Photo:
        info = _png_xmp(xmp)
        info.add_itxt("Creation Time", creation)
        extra = {"exif": exif.tobytes()} if with_exif else {}
        return io.load_photo(save(Image.fromarray(pixels()), tmp_path / name, pnginfo=info,
                                  **extra))

    both = png("both.png", "Wed, 01 May 2024 06:30:00 GMT",
               _xmp_dates(xmp_CreateDate="2024-05-01T06:30:00Z",
                          photoshop_DateCreated="2024-05-01T12:00:00+05:30"), True)
    for suffix in (".png", ".jpg", ".webp"):
        data = io.save_photo(both, both.rgb, tmp_path / f"out-both{suffix}").read_bytes()
        assert b"06:30" not in data and b"+05:30" not in data, suffix
        assert b"2024-05-01T12:00:00" in data, suffix  # the local time stays
    # no EXIF: the PNG's own Creation Time is the local time the UTC one gives away
    beside = png("beside.png", "Wed, 01 May 2024 12:00:00 +0530",
                 _xmp_dates(xmp_CreateDate="2024-05-01T06:30:00+00:00"), False)
    with Image.open(io.save_photo(beside, beside.rgb, tmp_path / "out-beside.png")) as out:
        assert out.text["Creation Time"] == "Wed, 01 May 2024 12:00:00"
        assert b"06:30" not in _as_bytes(out.info["xmp"])
    alone = png("alone.png", "Wed, 01 May 2024 06:30:00 +0000",
                _xmp_dates(xmp_CreateDate="2024-05-01T06:30:00Z"), False)
    with Image.open(io.save_photo(alone, alone.rgb, tmp_path / "out-alone.png")) as out:
        assert out.text["Creation Time"] == "Wed, 01 May 2024 06:30:00"
        assert b'CreateDate="2024-05-01T06:30:00"' in _as_bytes(out.info["xmp"])
    utc = png("utc.png", "2024-05-01T06:30:00Z", _xmp_dates(), True)
    with Image.open(io.save_photo(utc, utc.rgb, tmp_path / "out-utc.png")) as out:
        assert "Creation Time" not in out.text
    with Image.open(io.save_photo(both, both.rgb, tmp_path / "gps.png",
                                  metadata=MetadataPolicy.choose(keep_gps=True))) as out:
        assert out.text["Creation Time"] == "Wed, 01 May 2024 06:30:00 GMT"
        assert b"2024-05-01T06:30:00Z" in _as_bytes(out.info["xmp"])
    # an RFC-form local date in XMP counts as the local time a UTC one would give away
    packet = metadata.build_xmp(_xmp_dates(photoshop_DateCreated="Wed, 01 May 2024 12:00:00",
                                           xmp_CreateDate="2024-05-01T06:30:00Z"),
                                None, MetadataPolicy(), "test")
    assert packet is not None and b"06:30" not in packet
    merged = metadata.build_xmp(_xmp_dates(xmp_CreateDate="Wed, 01 May 2024 12:00:00 +0530"),
                                None, MetadataPolicy(keep_xmp=True), "test")
    assert merged is not None and b"+0530" not in merged
    for policy in (MetadataPolicy(keep_xmp=True), MetadataPolicy(keep_xmp=True,
                                                                  keep_exif=False)):
        merged = metadata.build_xmp(_xmp_dates(xmp_CreateDate="2024-05-01T06:30:00Z",
                                               xmp_ModifyDate="2024-05-02T09:00:00-04:00"),
                                    None, policy, "test")
        assert merged is not None and b"06:30" not in merged and b"-04:00" not in merged
        assert b'ModifyDate="2024-05-02T09:00:00"' in merged


@pytest.mark.parametrize(("text", "beside_local", "kept"), [
    ("2024-05-01T12:00:00+05:30", True, "2024-05-01T12:00:00"),
    ("2024-05-01T12:00:00.25-04", True, "2024-05-01T12:00:00.25"),
    ("2024-05-01T06:30:00Z", True, None),
    ("2024-05-01T06:30:00Z", False, "2024-05-01T06:30:00"),
    ("2024-05-01T06:30:00-00:00", True, None),
    ("Wed, 01 May 2024 06:30:00 +0000", True, None),
    ("Wed, 01 May 2024 06:30:00 +0000 (UTC)", False, "Wed, 01 May 2024 06:30:00"),
    ("Wed, 01 May 2024 12:00:00 PDT", False, None),  # a named zone can't be told apart
    ("Wed, 01 May 2024 12:00:00 GMT+05:30", False, None),
    ("Wed May  1 06:30:00 UTC 2024", False, None),
    ("2024:05:01 12:00:00", True, "2024:05:01 12:00:00"),
    ("2024:05:01 12:00:00+05:30", True, "2024:05:01 12:00:00"),
    ("2024-05-01", True, "2024-05-01"),
    # forms an exiftool audit found kept whole: ISO's basic form, a Unix time (UTC's
    # count), slashes, a zone before the date; what can't be read is dropped
    ("20240501T070456Z", True, None),
    ("20240501T123456+0530", True, "20240501T123456"),
    ("2024-05-01T12+05:30", True, "2024-05-01T12"),
    ("1714547096", True, None),
    ("2024/05/01 12:34:56+05:30", True, None),
    ("+0530 2024-05-01 12:34:56", True, None),
    ("2024-05-01 +0530", True, None),
    ("1 May 2024, 12:00 PM", True, "1 May 2024, 12:00 PM"),
    # free text in a date's field (kept before: a helper's "Sunday evening at Grandma
    # house, Springfield PDT" in a PNG's Creation Time came through, place and all)
    ("no date", True, None),
    ("Sunday evening at Grandma house, Springfield PDT", False, None),
    # a review's leaks: forms a loose parser took whole, zone and all
    ("Wed, 01 May 2024 12.00.00 +0530", True, None),
    ("+0530, 01 May 2024 12:00:00", True, None),
    ("GMT, 01 May 2024 06:30:00", True, None),
    ("2024-05-01T06:30:00z-07:00", True, None),
    ("01 May 2024 12:00 +05 " + "1:11+05 (" * 1000, True, None),  # too long to be one
    ("2024", True, "2024"),
    ("2024-05", True, "2024-05"),
])
def test_a_date_loses_its_zone(text: str, beside_local: bool, kept: str | None) -> None:
    assert metadata.date_without_zone(text, local_time_carried=beside_local) == kept


def test_names_misplaced_gps_and_the_interop_block_are_filtered(tmp_path: Path) -> None:
    """From an exiftool audit: --strip-names left EXIF 3.0's Photographer and ImageEditor
    and Adobe's owner name with --keep-serials; a GPS tag put in the Exif block by mistake
    passed with --keep-serials; the Interop block was copied whole; SpectralSensitivity's
    free text was kept."""
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {
        T.DateTimeOriginal: "2024:05:01 12:00:00", 0xA437: "Alice Photographer",
        0xA438: "Bob Editor", 0xFDE8: "Alice Owner", 0x0002: "48.8584 N misplaced",
        T.SpectralSensitivity: "Alice at home",
        ExifTags.IFD.Interop: {0x0001: "R98", 0x1002: "Interop secret Paris"}}
    photo = io.load_photo(save(Image.fromarray(pixels()), tmp_path / "n.jpg",
                               exif=exif.tobytes()))
    for name, policy, kept in (
            ("default", MetadataPolicy(), set()),  # EXIF 3.0's names: not Pillow's tags
            ("serials", MetadataPolicy.choose(keep_serials=True),
             {b"Alice Photographer", b"Bob Editor", b"Alice Owner", b"Alice at home"}),
            ("names", MetadataPolicy.choose(keep_serials=True, strip_names=True),
             {b"Alice at home"})):
        data = io.save_photo(photo, photo.rgb, tmp_path / f"out-{name}.jpg",
                             metadata=policy).read_bytes()
        for value in (b"Alice Photographer", b"Bob Editor", b"Alice Owner",
                      b"misplaced", b"Interop secret", b"Alice at home"):
            assert (value in data) == (value in kept), (name, value)
        assert b"R98" in data and b"2024:05:01 12:00:00" in data, name


def test_a_turned_heif_drops_its_subject_area(tmp_path: Path) -> None:
    """pillow-heif opens a HEIF upright and resets its EXIF Orientation; the frame its
    SubjectArea describes is the one stored (here Orientation 6). Copies, stored upright,
    say their own size and drop the old frame's subject area."""
    if not io.HEIF_WRITABLE:
        missing("pillow-heif has no HEVC encoder to make the HEIF")
    exif = Image.Exif()
    exif[T.Orientation] = 6
    exif[EXIF_IFD] = {T.ExifImageWidth: 40, T.ExifImageHeight: 32, 0x9214: (20, 16, 8, 8)}
    src = tmp_path / "side.heic"
    Image.fromarray(pixels()).save(src, exif=exif.tobytes(), quality=90)
    photo = io.load_photo(src)
    assert photo.rgb.shape[:2] == (40, 32)  # upright
    for suffix in (".heic", ".jpg"):
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}")
        with Image.open(dst) as out:
            sub = out.getexif().get_ifd(EXIF_IFD)
        assert (sub[T.ExifImageWidth], sub[T.ExifImageHeight]) == (32, 40), suffix
        assert 0x9214 not in sub, suffix


def test_a_main_ifd_too_long_for_jpeg_keeps_orientation_and_rights() -> None:
    """A 70 KB ImageDescription alone would make Pillow refuse the JPEG at save time,
    after the attack: the copy keeps orientation and rights, and is written."""
    snapshot = metadata.ExifSnapshot(
        {ExifTags.Base.ImageDescription: "x" * 70_000, ExifTags.Base.Artist: "Me"}, {}, {}, {})
    data = metadata.build_exif(snapshot, MetadataPolicy(), 6)
    assert data is not None and len(data) <= metadata.MAX_JPEG_SEGMENT
    exif = Image.Exif()
    exif.load(data)
    assert exif[ExifTags.Base.Orientation] == 6 and exif[ExifTags.Base.Artist] == "Me"
    assert ExifTags.Base.ImageDescription not in exif
    snapshot = metadata.ExifSnapshot({ExifTags.Base.Artist: "x" * 70_000}, {}, {}, {})
    exif.load(metadata.build_exif(snapshot, MetadataPolicy(), 6))
    assert dict(exif) == {ExifTags.Base.Orientation: 6}
    Image.new("RGB", (8, 8)).save(_io.BytesIO(), "JPEG", exif=data)  # Pillow takes it


def _with_chunks_after_ihdr(path: Path, chunks: list[tuple[bytes, bytes]]) -> Path:
    """`path`'s PNG with `chunks` (type, data) put right after its IHDR."""
    raw = path.read_bytes()  # signature and IHDR are the first 33 bytes
    extra = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                     for k, d in chunks)
    path.write_bytes(raw[:33] + extra + raw[33:])
    return path


@pytest.mark.parametrize("depth", [8, 16])
def test_png_gamma_chromaticity_and_srgb_chunks_are_kept(tmp_path: Path, depth: int) -> None:
    """Pillow reads gAMA, cHRM and sRGB but does not write them: a PNG tagged with gamma
    1.0 (linear) and no ICC profile would show much brighter without them."""
    import cv2

    with_chunks = _with_chunks_after_ihdr
    chroma = (0.3127, 0.329, 0.708, 0.292, 0.17, 0.797, 0.131, 0.046)  # BT.2020
    src = tmp_path / "linear.png"
    if depth == 16:
        cv2.imwrite(str(src), np.ascontiguousarray(pixels(dtype=np.uint16)[:, :, ::-1]))
    else:
        Image.fromarray(pixels()).save(src)
    with_chunks(src, [(b"gAMA", struct.pack(">I", 100000)),
                      (b"cHRM", struct.pack(">8I", *(round(v * 1e5) for v in chroma)))])
    photo = io.load_photo(src)
    assert photo.bit_depth == depth
    dst = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
    with Image.open(dst) as out:
        assert out.info["gamma"] == 1.0 and out.info["chromaticity"] == chroma
    src = with_chunks(save(Image.fromarray(pixels()), tmp_path / "s.png"), [(b"sRGB", b"\x01")])
    photo = io.load_photo(src)
    with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "srgb.png")) as out:
        assert out.info["srgb"] == 1


def test_a_jpeg_copy_of_a_gamma_tagged_png_says_the_tones_are_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A PNG named .jpg whose gAMA (1.0, linear) and cHRM (BT.2020) set its tones: the
    JPEG copy can't carry them and showed brighter with no word (its cICP twin warned).
    A PNG whose chunks say sRGB's, or a PNG copy, gets no warning."""
    chroma = (0.3127, 0.329, 0.708, 0.292, 0.17, 0.797, 0.131, 0.046)
    src = save(Image.fromarray(pixels()), tmp_path / "linear.png")
    _with_chunks_after_ihdr(src, [(b"gAMA", struct.pack(">I", 100000)),
                                  (b"cHRM", struct.pack(">8I", *(round(v * 1e5)
                                                                 for v in chroma)))])
    photo = io.load_photo(src)
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "copy.png")
        assert "gAMA" not in caplog.text
        io.save_photo(photo, photo.rgb, tmp_path / "copy.jpg")
    assert "set gamma 1 and other primaries, not sRGB's, which a JPEG copy can't carry" \
        in caplog.text
    caplog.clear()
    plain = save(Image.fromarray(pixels()), tmp_path / "plain.png")
    _with_chunks_after_ihdr(plain, [(b"gAMA", struct.pack(">I", 45455))])
    photo = io.load_photo(plain)
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "plain.jpg")
    assert "gAMA" not in caplog.text


def test_only_a_jpeg_copy_is_held_to_one_segment_of_exif(tmp_path: Path) -> None:
    """The 64 KB limit is JPEG's: a PNG (or WebP, HEIF, AVIF, TIFF) copy keeps a large
    user comment with --keep-serials, the date and exposure with it; a JPEG copy drops
    the long comment first and keeps the date."""
    maker_note = ExifTags.Base.UserComment  # (the maker note itself is never carried)
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "2026:01:02 03:04:05",
                               maker_note: b"ASCII\0\0\0" + b"x" * 70_000}
    src = save(Image.fromarray(pixels()), tmp_path / "a.png", exif=exif.tobytes())
    photo = io.load_photo(src)
    policy = MetadataPolicy(strip_gps=False, strip_serials=False)
    for suffix, kept in ((".png", True), (".jpg", False)):
        dst = io.save_photo(photo, photo.rgb, tmp_path / f"out{suffix}", metadata=policy)
        with Image.open(dst) as out:
            sub = out.getexif().get_ifd(ExifTags.IFD.Exif)
        assert sub[ExifTags.Base.DateTimeOriginal] == "2026:01:02 03:04:05", suffix
        assert (maker_note in sub) is kept, suffix


def test_a_compressed_tiff_copy_says_the_exif_it_cannot_hold(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """libtiff writes no Exif or GPS blocks in a compressed TIFF: the copy leaves them out
    and says so (it kept them in silence before), naming the GPS with --keep-gps."""
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "2026:01:02 03:04:05"}
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N"}
    # Pillow's libtiff can't write such a source either: an uncompressed one, read as
    # an LZW one (a Lightroom export) would be
    src = save(Image.fromarray(pixels()), tmp_path / "a.tif", exif=exif.tobytes())
    photo = io.load_photo(src)
    assert photo.exif.gps and photo.exif.exif
    photo.info["compression"] = "tiff_lzw"
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "out" / "a.tif",
                      metadata=MetadataPolicy(strip_gps=False))
    assert "can't hold the EXIF capture details and GPS position" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="cloak.io"):  # GPS removed as asked: not named
        io.save_photo(photo, photo.rgb, tmp_path / "out" / "b.tif")
    assert "can't hold the EXIF capture details (" in caplog.text


def _legacy_exif_png(path: Path, exif: Image.Exif, xmp_orientation: int | None) -> Path:
    """A PNG with ImageMagick's legacy EXIF text chunk ("Raw profile type exif", hex) and,
    optionally, an XMP packet giving tiff:Orientation."""
    from PIL.PngImagePlugin import PngInfo

    data = exif.tobytes()
    text = "\nexif\n" + f"{len(data):8d}\n" + data.hex()
    info = PngInfo()
    info.add_text("Raw profile type exif", text, zip=True)
    if xmp_orientation:
        info.add_itxt("XML:com.adobe.xmp", (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
            '02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
            f' tiff:Orientation="{xmp_orientation}"/></rdf:RDF></x:xmpmeta>'))
    return save(Image.fromarray(pixels()), path, pnginfo=info)


def test_an_orientation_only_in_a_png_s_xmp_is_not_made_real_through_its_text_exif(
        tmp_path: Path) -> None:
    """A PNG whose legacy EXIF text chunk has no Orientation, and whose XMP says 6: viewers
    show it as stored, so the copy is stored and tagged as it was (no eXIf Orientation
    that would turn it). An Orientation inside the chunk itself still counts."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Cam"
    src = _legacy_exif_png(tmp_path / "a.png", exif, xmp_orientation=6)
    photo = io.load_photo(src)
    assert photo.rgb.shape[:2] == (32, 40) and photo.orientation == 1
    with Image.open(io.save_photo(photo, photo.rgb, tmp_path / "out.png")) as out:
        assert out.getexif().get(ExifTags.Base.Orientation, 1) == 1
    exif[ExifTags.Base.Orientation] = 6
    photo = io.load_photo(_legacy_exif_png(tmp_path / "b.png", exif, xmp_orientation=None))
    assert photo.orientation == 6


def test_a_heif_tagged_hdr_by_cicp_alone_warns_where_its_copy_cannot_carry_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A camera's HDR HEIF (BT.2020 PQ in its nclx tag, no ICC profile): its HEIF copy
    keeps the tag (not with --no-icc); a PNG copy can't, and says so."""
    if not io.HEIF_WRITABLE:
        missing("pillow-heif has no HEVC encoder to make the HEIF")
    nclx = {"color_primaries": 9, "transfer_characteristics": 16, "matrix_coefficients": 9,
            "full_range_flag": 1}
    src = save(Image.fromarray(pixels()), tmp_path / "hdr.heic", quality=90, nclx_profile=nclx)
    photo = io.load_photo(src)
    with caplog.at_level("WARNING", logger="cloak.io"):
        kept = io.save_photo(photo, photo.rgb, tmp_path / "out.heic")
        dropped = io.save_photo(photo, photo.rgb, tmp_path / "out2.heic",
                                metadata=MetadataPolicy(keep_icc=False))
    assert "CICP" not in caplog.text
    with Image.open(kept) as out:
        assert out.info["nclx_profile"]["color_primaries"] == 9
    with Image.open(dropped) as out:
        assert (out.info.get("nclx_profile") or {}).get("color_primaries") != 9
    with caplog.at_level("WARNING", logger="cloak.io"):
        as_png = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
    assert "CICP" not in caplog.text  # a PNG copy carries it in its cICP chunk
    with open(as_png, "rb") as fp:
        assert cicp.png_cicp(fp) == bytes([9, 16, 0, 1])  # as RGB: matrix 0, full range
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "out.jpg")
    assert "tagged BT.2020, PQ (HDR) (a HEIF's CICP tag, no ICC profile)" in caplog.text


@pytest.mark.parametrize("depth", [8, 16])
def test_a_png_tagged_by_its_cicp_chunk_keeps_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, depth: int) -> None:
    """A PNG tagged Display P3 with the PQ curve by its cICP chunk (an HDR screenshot or
    export, no ICC profile): Pillow drops the chunk, so its copy looked duller (an HDR one
    flat) without a word. The PNG copy keeps it (not with --no-icc); a JPEG copy says it
    can't."""
    import cv2

    src = tmp_path / "hdr.png"
    if depth == 16:
        cv2.imwrite(str(src), np.ascontiguousarray(pixels(dtype=np.uint16)[:, :, ::-1]))
    else:
        Image.fromarray(pixels()).save(src)
    tag = bytes([12, 16, 0, 1])
    _with_chunks_after_ihdr(src, [(b"cICP", tag)])
    photo = io.load_photo(src)
    assert photo.bit_depth == depth
    with caplog.at_level("WARNING", logger="cloak.io"):
        kept = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
        dropped = io.save_photo(photo, photo.rgb, tmp_path / "plain.png",
                                metadata=MetadataPolicy(keep_icc=False))
    assert "CICP" not in caplog.text
    for path, expected in ((kept, tag), (dropped, None)):
        with open(path, "rb") as fp:
            assert cicp.png_cicp(fp) == expected
        with Image.open(path) as out:  # a valid PNG, its pixels as written
            out.load()
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "out.jpg")
    assert "tagged Display P3, PQ (HDR) (a PNG's CICP tag, no ICC profile)" in caplog.text
    plain = save(Image.fromarray(pixels()), tmp_path / "plain-src.png")
    with open(plain, "rb") as fp:
        assert cicp.png_cicp(fp) is None


def test_a_copy_s_bytes_are_synced_before_it_takes_its_name(tmp_path: Path, monkeypatch
                                                             ) -> None:
    """write_atomic's crash safety: the temp file's data reaches the disk (fsync on its
    own descriptor) before the rename publishes it, so a power cut never leaves a copy
    under its name with its data missing."""
    events: list[tuple[str, str]] = []
    real_fsync, real_publish = atomic.os.fsync, atomic._publish

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def publish(temp: Path, dst: Path, overwrite) -> None:
        events.append(("publish", str(temp)))
        real_publish(temp, dst, overwrite)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic, "_publish", publish)
    dst = atomic.write_atomic(tmp_path / "a.bin", lambda fp: fp.write(b"data"))
    assert dst.read_bytes() == b"data"
    published = next(i for i, (kind, _) in enumerate(events) if kind == "publish")
    temp = events[published][1]
    assert ("fsync", temp) in events[:published]


@pytest.mark.parametrize("compressed", [False, True])
def test_xmp_in_a_png_text_chunk_is_read_as_xmp(tmp_path: Path, compressed: bool) -> None:
    """Some tools put a PNG's XMP in a tEXt or zTXt chunk, not the iTXt the XMP spec asks
    for: its rights are still carried into the copy, and a copy so re-saved still reads as
    cloak's."""
    rights = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
              '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
              'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights><rdf:Alt>'
              '<rdf:li xml:lang="x-default">© Jürgen Text</rdf:li></rdf:Alt></dc:rights>'
              '</rdf:Description></rdf:RDF></x:xmpmeta>').encode()

    def as_text_chunk(xmp: bytes, path: Path) -> Path:
        """The packet's own UTF-8 bytes in the chunk (Pillow's add_text would encode a
        str as Latin-1)."""
        info = PngImagePlugin.PngInfo()
        info.add_text("XML:com.adobe.xmp", xmp, zip=compressed)
        Image.fromarray(pixels()).save(path, pnginfo=info)
        return path

    photo = io.load_photo(as_text_chunk(rights, tmp_path / "a.png"))
    assert photo.xmp == rights
    copy = io.save_photo(photo, photo.rgb, tmp_path / "out.png")
    with Image.open(copy) as out:
        assert "© Jürgen Text".encode() in out.info["xmp"]
        packet = out.info["xmp"]
    assert io.says_protected_file(copy)
    resaved = as_text_chunk(packet, tmp_path / "resaved.png")
    assert io.says_protected_file(resaved)


def test_write_atomic_without_make_folders_makes_no_folder(tmp_path: Path) -> None:
    """make_folders=False (an app's chosen Save-to folder): a folder that is not there, or
    is a file now, is an OutputError saying which (errno ENOENT / ENOTDIR), and nothing is
    made; by default the folders are made."""
    gone = tmp_path / "gone" / "a.bin"
    with pytest.raises(OutputError, match="is no longer there") as info:
        atomic.write_atomic(gone, lambda fp: fp.write(b"x"), make_folders=False)
    assert info.value.errno == errno.ENOENT and not gone.parent.exists()
    (tmp_path / "file").write_bytes(b"mine")
    with pytest.raises(OutputError, match="is not a folder") as info:
        atomic.write_atomic(tmp_path / "file" / "a.bin", lambda fp: fp.write(b"x"),
                            make_folders=False)
    assert info.value.errno == errno.ENOTDIR and (tmp_path / "file").read_bytes() == b"mine"
    assert atomic.write_atomic(gone, lambda fp: fp.write(b"x")).read_bytes() == b"x"


def test_a_bad_cloak_max_pixels_is_warned_about_once(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The limit is read several times a photo: a bad value printed its warning each time
    (twice for one photo, four times for two)."""
    monkeypatch.setenv("CLOAK_MAX_PIXELS", "abc-once")
    with caplog.at_level("WARNING", logger="cloak.io"):
        assert [io.pixel_limit() for _ in range(3)] == [io.MAX_PIXELS] * 3
    assert caplog.text.count("ignoring CLOAK_MAX_PIXELS='abc-once'") == 1


def kept_packet(tmp_path: Path, source: str) -> bytes:
    """The XMP packet of a JPEG copy, MetadataPolicy(keep_xmp=True), of a JPEG whose
    packet is `source`."""
    src = save(Image.fromarray(pixels()), tmp_path / "p.jpg", xmp=source.encode())
    photo = io.load_photo(src)
    kept = io.save_photo(photo, photo.rgb, tmp_path / "kept.jpg",
                         metadata=MetadataPolicy(keep_xmp=True))
    with Image.open(kept) as out:
        return out.info["xmp"]


def in_cloaks_code(source: str, name: str):
    """The function `name` defined by `source`, compiled as if it were cloak's own code
    (its frames name a file of the cloak package), as a bug of cloak's would raise."""
    scope: dict = {}
    exec(compile(source, io.__file__, "exec"), scope)  # noqa: S102 - the test's own text
    return scope[name]


def test_cloaks_own_bug_while_reading_is_not_called_damage(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    """A KeyError in cloak's own chunk reader (not in Pillow's decoder) said "the image
    data is truncated or corrupt ('cICP')": the user's good file blamed for cloak's bug.
    It is raised as it is now (the CLI says "unexpected error ... please report it"),
    while the same type from Pillow's decoding of a damaged file still names the file."""
    path = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(path)
    monkeypatch.setattr(io, "png_cicp", in_cloaks_code(
        "def png_cicp(fp, max_chunks=4096):\n    return {}['cICP']\n", "png_cicp"))
    with pytest.raises(KeyError, match="cICP"):
        io.load_photo(path)
    monkeypatch.undo()

    def decoder_fails(self, *args, **kwargs):  # a decoder's own error, outside cloak
        raise KeyError("bad table")

    monkeypatch.setattr(Image.Image, "load", decoder_fails)
    with pytest.raises(UnsupportedImageError, match=r"good\.png.*corrupt.*bad table"):
        io.load_photo(path)


def test_write_atomic_leaves_memory_and_cloaks_bugs_to_the_caller(tmp_path: Path) -> None:
    """An encoder out of memory said "could not encode a.png: " (no reason), and a bug in
    cloak's own writer "could not encode a.png: list index out of range": both are raised
    as they are now (said as out of memory, or as a bug, by the batch), with no temporary
    file left; an encoder's own error is still an OutputError naming the file."""
    def out_of_memory(fp):
        raise MemoryError

    buggy_writer = in_cloaks_code("def write(fp):\n    return [][0]\n", "write")

    def encoder_refuses(fp):
        raise ValueError("unknown raw mode")

    with pytest.raises(MemoryError):
        atomic.write_atomic(tmp_path / "a.png", out_of_memory)
    with pytest.raises(IndexError):
        atomic.write_atomic(tmp_path / "a.png", buggy_writer)
    with pytest.raises(OutputError, match=r"could not encode a\.png: unknown raw mode"):
        atomic.write_atomic(tmp_path / "a.png", encoder_refuses)
    assert list(tmp_path.iterdir()) == []


def test_a_png_whose_profile_unpacks_past_a_megabyte_is_read_and_kept(tmp_path: Path):
    """Pillow refuses a compressed PNG chunk that unpacks past 1 MB (MAX_TEXT_CHUNK): a
    valid photo with a 1.2 MB ICC profile was refused as "truncated or corrupt". It is
    read, its profile kept byte for byte in the copy, and Pillow's own limit is as it
    was afterwards."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    big = profile + bytes(1_200_000)  # an over-long profile: its tags come first
    path = tmp_path / "big_icc.png"
    Image.new("RGB", (64, 48), (90, 120, 150)).save(path, icc_profile=big)
    limit = PngImagePlugin.MAX_TEXT_CHUNK
    photo = io.load_photo(path)
    assert photo.icc_profile == big and PngImagePlugin.MAX_TEXT_CHUNK == limit
    copy = io.save_photo(photo, photo.rgb, tmp_path / "out" / "big_icc.png")
    assert io.load_photo(copy).icc_profile == big


def v5_bmp(path: Path, rgb: np.ndarray, profile: bytes) -> Path:
    """A 24-bit BMP with a BITMAPV5HEADER embedding `profile` (CSType 'MBED'), made from
    Pillow's own BMP (which has the 40-byte header) by widening its header."""
    buffer = _io.BytesIO()
    Image.fromarray(rgb).save(buffer, "BMP")
    data = buffer.getvalue()
    info = data[14:54]  # BITMAPINFOHEADER
    pixels_at = struct.unpack("<I", data[10:14])[0]
    rows = data[pixels_at:]
    header = bytearray(124)
    header[:40] = info
    header[:4] = struct.pack("<I", 124)
    header[56:60] = b"DEBM"  # LCS 'MBED'
    header[108:112] = struct.pack("<I", 4)  # LCS_GM_IMAGES
    header[112:120] = struct.pack("<II", 124 + len(rows), len(profile))  # after the pixels
    start = 14 + 124
    body = bytes(header) + rows + profile
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, start) + body)
    return path


def test_a_bmps_embedded_profile_is_read_and_its_loss_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A V5 BMP embedding a colour profile: Pillow does not read it, so the BMP copy lost
    it with no word (and verify took its values for sRGB). It is read (photo.icc_profile,
    kept by a PNG copy), and the BMP copy, written without one, says so (not of an sRGB
    profile, which viewers assume without one)."""
    from cloak.cicp_icc import icc_for_cicp

    profile = icc_for_cicp(12, 13)  # Display P3
    src = v5_bmp(tmp_path / "wide.bmp", pixels(), profile)
    photo = io.load_photo(src)
    assert photo.icc_profile == profile
    assert np.array_equal(np.round(photo.rgb * 255).astype(np.uint8), pixels())
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo, photo.rgb, tmp_path / "copy.bmp")
    assert "its colour profile (Display P3" in caplog.text and "left out of the BMP copy" \
        in caplog.text
    caplog.clear()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo_srgb = io.load_photo(v5_bmp(tmp_path / "srgb.bmp", pixels(), srgb))
    assert photo_srgb.icc_profile == srgb
    with caplog.at_level("WARNING", logger="cloak.io"):
        io.save_photo(photo_srgb, photo_srgb.rgb, tmp_path / "srgb_copy.bmp")
    assert "left out" not in caplog.text
    assert io.load_photo(io.save_photo(photo, photo.rgb, tmp_path / "copy.png")
                         ).icc_profile == profile
    plain = save(Image.fromarray(pixels()), tmp_path / "plain.bmp")
    assert io.load_photo(plain).icc_profile is None


def test_a_tiff_with_an_infinite_subfile_type_is_refused_as_corrupt(tmp_path: Path):
    """A TIFF whose NewSubfileType tag is a float infinity: int() of it raised
    OverflowError, said as "unexpected error ... please report it" (a traceback in
    verify), where the file is what is wrong."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[254] = float("inf")
    ifd.tagtype[254] = 11  # FLOAT
    path = tmp_path / "odd.tif"
    Image.fromarray(pixels()).save(path, tiffinfo=ifd)
    with pytest.raises(UnsupportedImageError, match=r"odd\.tif: the image data is truncated "
                       r"or corrupt \(cannot convert float infinity"):
        io.load_photo(path)


def test_a_float_or_32_bit_colour_tiff_is_named_so_not_called_damaged(tmp_path: Path):
    """A 32-bit float RGB TIFF (a 32-bit HDR export), which Pillow does not identify, was
    "not an image cloak can read (damaged, or another kind of file renamed)": a good
    photo, called broken. Its layout is said, as a float gray TIFF's is; a TIFF
    damaged in its first image is still said to be damaged."""
    import cv2

    rgb = np.random.default_rng(0).random((32, 40, 3), dtype=np.float32)
    cv2.imwrite(str(tmp_path / "float.tif"), rgb)
    cv2.imwrite(str(tmp_path / "int32.tif"), (rgb * 1e6).astype(np.int32))
    for name, advice in (("float.tif", ("32-bit float pixels are not supported; export an "
                                       "8- or 16-bit integer copy")),
                         ("int32.tif", ("32-bit pixels are not supported; export an 8- or "
                                       "16-bit copy"))):
        with pytest.raises(UnsupportedImageError, match=f"{name}: {advice}$"):
            io.load_photo(tmp_path / name)
    Image.fromarray(pixels()).save(tmp_path / "damaged.tif")
    data = bytearray((tmp_path / "damaged.tif").read_bytes())
    data[4:8] = struct.pack("<I", len(data) + 100)  # its first image's tags: past the end
    (tmp_path / "damaged.tif").write_bytes(bytes(data))
    with pytest.raises(UnsupportedImageError, match="damaged.tif: is named .tif but is not an "
                       "image cloak can read .damaged"):
        io.load_photo(tmp_path / "damaged.tif")


def plain_tiff(path: Path, samples: int, bits: int, sample_format: int | None,
               dtype: str) -> Path:
    """A 32x24 uncompressed little-endian TIFF, written tag by tag (for layouts Pillow and
    OpenCV won't write): `samples` channels of `bits` each, SampleFormat `sample_format`
    (None: no such tag, meaning unsigned integers)."""
    width, height = 32, 24
    pixels_bytes = np.zeros((height, width, samples), dtype=dtype).tobytes()
    tags = {256: [width], 257: [height], 258: [bits] * samples, 259: [1],
            262: [2 if samples >= 3 else 1], 277: [samples], 278: [height]}
    if sample_format is not None:
        tags[339] = [sample_format] * samples
    count = len(tags) + 2  # and StripOffsets, StripByteCounts (LONGs)
    arrays_at = 8 + 2 + 12 * count + 4
    arrays, entries = b"", []
    for tag, values in sorted(tags.items()):
        if len(values) <= 2:
            entries.append(struct.pack("<HHI", tag, 3, len(values))
                           + struct.pack(f"<{len(values)}H", *values).ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, 3, len(values), arrays_at + len(arrays)))
            arrays += struct.pack(f"<{len(values)}H", *values)
    strip_at = arrays_at + len(arrays)
    entries += [struct.pack("<HHII", 273, 4, 1, strip_at),
                struct.pack("<HHII", 279, 4, 1, len(pixels_bytes))]
    entries.sort(key=lambda entry: struct.unpack("<H", entry[:2]))
    path.write_bytes(b"II*\0" + struct.pack("<IH", 8, count) + b"".join(entries)
                     + struct.pack("<I", 0) + arrays + pixels_bytes)
    return path


@pytest.mark.parametrize(("samples", "bits", "sample_format", "dtype", "said"), [
    # a half float, gray and RGB: "export an 8- or 16-bit copy" read as "a 16-bit one
    # will do", for a file that is 16-bit already
    (1, 16, 3, "<f2", ("16-bit float pixels are not supported; export an 8- or 16-bit "
                      "integer copy")),
    (3, 16, 3, "<f2", ("16-bit float pixels are not supported; export an 8- or 16-bit "
                      "integer copy")),
    (2, 32, 3, "<f4", ("32-bit float pixels are not supported; export an 8- or 16-bit "
                      "integer copy")),  # its two BitsPerSample values held in the tag
    # 16-bit gray with transparency (no SampleFormat tag: integers) was "damaged"
    (2, 16, None, "<u2", ("16-bit gray pixels with transparency are not supported; export "
                         "an 8-bit copy, or a 16-bit one without transparency")),
    (5, 16, None, "<u2", "pixels of 5 channels are not supported; export an RGB or RGBA copy"),
])
def test_a_tiff_layout_pillow_does_not_read_is_named_not_called_damaged(
        tmp_path: Path, samples, bits, sample_format, dtype, said):
    path = plain_tiff(tmp_path / "layout.tif", samples, bits, sample_format, dtype)
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)  # what this test is about: Pillow can't read it
    with pytest.raises(UnsupportedImageError, match=f"layout.tif: {said}$"):
        io.load_photo(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_given_as_a_photo_is_refused_not_waited_on(tmp_path, model_dir):
    """`cloak verify fifo.jpg` (and protect_file from Python) opened the FIFO and waited for
    a writer forever; it is refused at once, as `cloak protect` does."""
    import subprocess
    import sys

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(UnsupportedImageError, match="not a regular file"):
        io.load_photo(fifo)
    done = subprocess.run([sys.executable, "-m", "cloak", "verify", str(fifo)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "not a regular file" in done.stderr, done.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX links")
def test_links_given_as_photos_are_said_as_protect_says_them(tmp_path):
    """verify (and --mask) said "no such file" of a link to nowhere and "cannot read the
    file (Too many levels of symbolic links)" of a loop, where protect names the link."""
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    os.symlink(tmp_path / "loop2.jpg", tmp_path / "loop1.jpg")
    os.symlink(tmp_path / "loop1.jpg", tmp_path / "loop2.jpg")
    with pytest.raises(UnsupportedImageError, match=r"dangling.jpg: is a link to .*gone.jpg, "
                                                    "which does not exist"):
        io.load_photo(tmp_path / "dangling.jpg")
    with pytest.raises(UnsupportedImageError, match=r"loop1.jpg: is a link that leads back "
                                                    r"to itself \(a loop of links\)"):
        io.load_photo(tmp_path / "loop1.jpg")
