"""What metadata a protected copy carries: EXIF filtering and the XMP notice.

Library choice: Pillow's own EXIF API (`Image.Exif`, `get_ifd`, `tobytes`) and the
`xmp=` / iTXt / TIFF-tag routes it offers for XMP. Pillow is already a dependency and
needs no native library; pyexiv2/exiv2 would write richer metadata but needs a compiled
libexiv2 per platform, and piexif is unmaintained and JPEG-only.

Default policy (`MetadataPolicy()`):

- kept: capture date and time, camera make/model and exposure settings, orientation,
  ICC profile, copyright and artist/author;
- removed: GPS position, device serial numbers (body, lens), camera owner name, the
  image unique ID, the maker note (it holds serials in vendor formats) and the EXIF
  thumbnail (a small unprotected copy of the photo);
- the source XMP packet is replaced by a fresh one (it can hold GPS, serials, edit
  history and the ID of the unprotected original), carrying over only `dc:creator`
  and `dc:rights`;
- added: XMP `plus:DataMining = DMI-PROHIBITED` (PLUS/IPTC "no AI/ML training or data
  mining") and a `cloak:` note saying the image is protected.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, IptcImagePlugin

log = logging.getLogger(__name__)

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
DMI_PROHIBITED = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"
CLOAK_NS = "urn:x-cloak:xmp:1.0#"  # a private name only: nothing is ever fetched from it
CLOAK_NOTE = ("Protected with cloak: this image carries an adversarial perturbation "
              "against latent-diffusion editing. AI training and data mining are prohibited.")
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
X_NS = "adobe:ns:meta/"
XML_NS = "http://www.w3.org/XML/1998/namespace"

ORIENTATION = ExifTags.Base.Orientation
X_RESOLUTION = ExifTags.Base.XResolution
COLOR_SPACE = ExifTags.Base.ColorSpace  # in the Exif IFD: 1 sRGB, 0xFFFF uncalibrated
INTEROP_INDEX = 0x0001  # in the Interop IFD: "R98" sRGB, "R03" Adobe RGB
INTEROP_VERSION = 0x0002
ARTIST = ExifTags.Base.Artist
COPYRIGHT = ExifTags.Base.Copyright
EXIF_IFD = ExifTags.IFD.Exif
GPS_IFD = ExifTags.IFD.GPSInfo
INTEROP_IFD = ExifTags.IFD.Interop
XMP_TAG = 700  # TIFF tag holding an XMP packet

# IFD0 tags worth carrying; everything else there (strip offsets, sub-IFD pointers of
# other kinds, TIFF layout tags) describes the source file, not the photo.
IFD0_KEEP = frozenset({
    ExifTags.Base.ImageDescription, ExifTags.Base.Make, ExifTags.Base.Model, ORIENTATION,
    ExifTags.Base.XResolution, ExifTags.Base.YResolution, ExifTags.Base.ResolutionUnit,
    ExifTags.Base.Software, ExifTags.Base.DateTime, ARTIST, COPYRIGHT,
    ExifTags.Base.XPTitle, ExifTags.Base.XPComment, ExifTags.Base.XPAuthor,
    ExifTags.Base.XPKeywords, ExifTags.Base.XPSubject, ExifTags.Base.Rating,
})
IDENTIFYING = frozenset({
    ExifTags.Base.BodySerialNumber, ExifTags.Base.LensSerialNumber,
    ExifTags.Base.CameraOwnerName, ExifTags.Base.ImageUniqueID, ExifTags.Base.MakerNote,
})
# Free text a person typed or a tool filled in about the photo (a caption, Windows
# Explorer's Tags / Subject / Comments, an original file name, an image number): not
# capture settings, and often names people or places. Dropped with the serials.
PERSONAL_TEXT = frozenset({
    ExifTags.Base.ImageDescription, ExifTags.Base.XPTitle, ExifTags.Base.XPComment,
    ExifTags.Base.XPKeywords, ExifTags.Base.XPSubject, ExifTags.Base.UserComment,
    ExifTags.Base.ImageHistory, ExifTags.Base.ImageNumber, ExifTags.Base.RelatedSoundFile,
    ExifTags.Base.ImageID, ExifTags.Base.SpectralSensitivity,  # ASCII, free in practice
    0xA436,  # EXIF 3.0 ImageTitle
})
# People's names in the Exif IFD, dropped with the artist and copyright (--strip-names):
# the camera's owner, EXIF 3.0's Photographer and ImageEditor, Adobe's owner name
EXIF_NAMES = frozenset({ExifTags.Base.CameraOwnerName, 0xA437, 0xA438, 0xFDE8})
# Blocks that belong elsewhere (IFD0, APP13) when met in the Exif IFD: IPTC, Photoshop's
# image resources (which may hold a thumbnail of the unprotected photo), an ICC profile,
# a second copyright. Never carried from there.
EXIF_IFD_FOREIGN = frozenset({
    ExifTags.Base.IPTCNAA, ExifTags.Base.ImageResources, ExifTags.Base.InterColorProfile,
    ExifTags.Base.Copyright, ExifTags.Base.Artist, ExifTags.Base.XPAuthor,
    # The maker note is a vendor container, not a serial: it can also hold place names
    # (Nikon's LocationInfo; Panasonic's city, country and landmark), the names of people
    # the camera recognised (Panasonic's face recognition, baby names) and a preview of the
    # unprotected photo (Olympus, Pentax); its offsets break when it moves anyway. Never
    # carried, --keep-serials or not.
    ExifTags.Base.MakerNote,
})
BULKY_VALUE = 4096  # bytes: an Exif value this long goes first when EXIF overflows a JPEG
# Where the photo was, short of GPS: the time zone (a region of the world), air pressure
# (altitude) and water depth. Dropped with the GPS (kept with --keep-gps).
PLACE_HINTS = frozenset({
    ExifTags.Base.TimeZoneOffset, ExifTags.Base.OffsetTime, ExifTags.Base.OffsetTimeOriginal,
    ExifTags.Base.OffsetTimeDigitized, ExifTags.Base.Pressure, ExifTags.Base.WaterDepth,
})
# The GPS block's capture moment (UTC): GPSTimeStamp, GPSDateStamp. Kept with the GPS only
# while the capture date is (not with --strip-exif --keep-gps).
GPS_MOMENT = frozenset({0x07, 0x1D})
# Dates as cloak reads them, whole strings only (a loose parser kept "12.00.00 +0530"):
# ISO 8601 (XMP's, its basic form, EXIF's colons, week and ordinal dates) with its zone
# last, and RFC 2822 (a PNG's Creation Time) with its zone and an optional comment
MAX_DATE = 64  # a longer "date" is not one (and no regex runs over a 1 MB text chunk)
ISO_DATE = re.compile(
    r"\d{4}[-:]?(?:\d{2}[-:]?\d{2}|W\d{2}(?:-?\d)?|\d{3})"
    r"(?:[T ]\d{2}(?::?\d{2}(?::?\d{2})?)?(?:[.,]\d+)?"
    r"(?:\s*(?P<zone>Z|[+-]\d{2}(?::?\d{2})?))?)?", re.IGNORECASE | re.ASCII)
YEAR_MONTH = re.compile(r"\d{4}(?:-\d{2})?", re.ASCII)  # XMP allows "2024" and "2024-05"
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s*"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
RFC_DATE = re.compile(
    rf"(?:{_DAY})?(?:\d{{1,2}}[\s-]+{_MONTH}|{_MONTH}\s+\d{{1,2}},?)[\s-]+\d{{2,4}},?\s+"
    r"(\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?)"
    r"(?:\s*(Z|UTC|GMT|UT|[+-]\d{2}(?::?\d{2})?)(?:\s*\([^()]*\))?)?",
    re.IGNORECASE | re.ASCII)
UTC_NAMES = frozenset({"Z", "UTC", "GMT", "UT"})
ZERO_OFFSET = re.compile(r"[+-]00(?::?00)?")  # UTC too (RFC 2822's "-0000": zone unknown)
# A value that starts with a date (XMP's form, its basic form, EXIF's, or with slashes)
DATE_START = re.compile(r"\s*(?:\d{4}[-:/]?\d{2}[-:/]?\d{2}(?:[T ]|$)|"
                        r"\d{1,2}[-:/]\d{1,2}[-:/]\d{1,4})")
# The capture and edit times EXIF holds as local clock time (no zone of their own)
EXIF_LOCAL_DATES = (ExifTags.Base.DateTimeOriginal, ExifTags.Base.DateTimeDigitized)
# The Exif IFD's standard capture tags (EXIF 2.3x, up to Gamma 0xA500), kept unless
# IDENTIFYING: software's private tags there (Adobe's owner and serial tags at 0xFDE8+,
# Microsoft's padding) are dropped with the serials.
SUBJECT_AREA = 0x9214  # standard, but not among Pillow's names
EXIF_IFD_STANDARD = frozenset(
    {int(tag) for tag in ExifTags.Base if 0x8000 <= tag <= 0xA500} | {SUBJECT_AREA})
PIXEL_X, PIXEL_Y = ExifTags.Base.ExifImageWidth, ExifTags.Base.ExifImageHeight
# Points in the stored frame of the source: wrong once the copy is stored turned.
SUBJECT_POINTS = frozenset({SUBJECT_AREA, ExifTags.Base.SubjectLocation})
# XMP properties (local names) dropped from a kept source packet.
# exif:GPSLatitude..., and drone makers' own (DJI: drone-dji:GpsLatitude, AbsoluteAltitude)
XMP_GPS = re.compile(r"^(gps|absolutealtitude|relativealtitude)", re.IGNORECASE)
XMP_IDENTIFYING = frozenset({"SerialNumber", "LensSerialNumber", "BodySerialNumber",
                             "OwnerName", "CameraOwnerName", "ImageUniqueID",
                             "DocumentID", "OriginalDocumentID", "InstanceID",
                             "DerivedFrom", "History", "Orientation", "DataMining",
                             "DocumentAncestors"})
# Dropped from every kept packet: orientation follows the pixels, the notices are re-added,
# and an embedded preview (xmp:Thumbnails, xmpGImg) would carry the unprotected photo.
# A motion photo's video (GCamera/Container) is not in the copy: pointers to it would
# send a viewer to bytes that are not there.
XMP_ALWAYS_DROPPED = frozenset({"Orientation", "DataMining", "Thumbnails", "PageInfo",
                                "MicroVideo", "MicroVideoVersion", "MicroVideoOffset",
                                "MicroVideoPresentationTimestampUs", "MotionPhoto",
                                "MotionPhotoVersion", "MotionPhotoPresentationTimestampUs",
                                "Directory", "HasExtendedXMP"})
# Google's depth map and portrait descriptors (their data is in JPEG extended XMP, which
# the copy never carries, or in the packet, dropped below) and its container's items: a
# kept packet would describe images the copy does not have.
XMP_DROPPED_NAMESPACES = frozenset({"http://ns.google.com/photos/1.0/depthmap/",
                                    "http://ns.google.com/photos/1.0/image/",
                                    "http://ns.google.com/photos/1.0/container/",
                                    "http://ns.google.com/photos/1.0/container/item/"})
# Base64 data held in a packet: Google's GImage:Data (a portrait's unedited photo) and
# GDepth:Data, xmpGImg:image, and whatever else a camera app embeds. A value of base64
# characters alone (either alphabet), whose runs of 40 or more (no word is that long; a
# line of wrapped base64 is) make 256 in all, mixing capitals, small letters and digits,
# is dropped from a kept packet (a long file name or path is one run, under 256), as is a
# data: URI; so is such a value in EXIF, rights text or a PNG text chunk
# (holds_picture_data).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{40,}")
BASE64_VALUE = re.compile(r"[A-Za-z0-9+/_=\s-]+")
# "data:", then up to the comma a media type and parameters with no space (RFC 2397's
# form, and the loose ones browsers take: "data:image;base64,"), or anything that names
# base64 (spaces too: "data: image/png ;base64,"); a credit such as "Data: OpenStreetMap
# contributors, ODbL" is words, kept
DATA_URI = re.compile(r"\s*data:(?:[^,\s]*|[^,]*;\s*base64\s*),", re.IGNORECASE)
# The 8-byte character code before an EXIF UNDEFINED text (UserComment, GPS methods)
EXIF_CHARACTER_CODES = (b"ASCII\0\0\0", b"UNICODE\0", b"JIS\0\0\0\0\0", bytes(8))
# A picture file's own start, wherever a metadata value holds one: JPEG, PNG, GIF, WebP,
# HEIF/AVIF, TIFF
PICTURE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*")
# ... and those that are words too ("our old GIF89a animation"): looked for in bytes only
PICTURE_WORD_SIGNATURES = (b"GIF87a", b"GIF89a", b"WEBPVP8", b"ftypheic", b"ftypheix",
                           b"ftypmif1", b"ftypavif")
# Place names that locate the photo as precisely as GPS does, and the time zone (a region
# of the world); dropped with GPS.
XMP_PLACE = frozenset({"City", "State", "Country", "CountryCode", "Location", "Sublocation",
                       "LocationCreated", "LocationShown", "ProvinceState", "CountryName",
                       "OffsetTime", "OffsetTimeOriginal", "OffsetTimeDigitized",
                       "TimeZoneOffset"})
NAMESPACES = {"x": X_NS, "rdf": RDF_NS, "dc": DC_NS, "plus": PLUS_NS, "cloak": CLOAK_NS,
              "xmp": "http://ns.adobe.com/xap/1.0/", "tiff": "http://ns.adobe.com/tiff/1.0/",
              "exif": "http://ns.adobe.com/exif/1.0/", "aux": "http://ns.adobe.com/exif/1.0/aux/",
              "photoshop": "http://ns.adobe.com/photoshop/1.0/",
              "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
              "xmpMM": "http://ns.adobe.com/xap/1.0/mm/"}
# What Pillow raises on malformed EXIF, reading it or writing it back.
EXIF_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, OverflowError,
               SyntaxError, struct.error)
MAX_JPEG_SEGMENT = 65533 - len(b"Exif\x00\x00")
# the most XMP one JPEG APP1 segment holds (65533 bytes less the XMP name, as Pillow checks)
MAX_JPEG_XMP = 65533 - len(b"http://ns.adobe.com/xap/1.0/\x00")
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
for _prefix, _uri in NAMESPACES.items():  # readable prefixes instead of ns0, ns1...
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class MetadataPolicy:
    """Which metadata the protected copy keeps. Orientation is always kept where the
    format can hold it: it is part of how the stored pixels are displayed."""

    keep_exif: bool = True  # date/time, camera, exposure; False keeps only what follows
    keep_copyright: bool = True  # EXIF Artist/Copyright, XMP dc:creator/dc:rights
    strip_gps: bool = True
    strip_serials: bool = True  # serials, owner name, image unique ID, maker note, and
    # free text (description, comments, keywords: PERSONAL_TEXT)
    keep_icc: bool = True  # switching it off changes colours of non-sRGB photos
    keep_xmp: bool = False  # merge the source packet (minus GPS/IDs) instead of a fresh one
    data_mining_notice: bool = True  # plus:DataMining = DMI-PROHIBITED
    cloak_note: bool = True  # cloak:Protected / cloak:Note

    @classmethod
    def minimal(cls) -> MetadataPolicy:
        """Keep nothing but orientation, ICC and the protection notices."""
        return cls(keep_exif=False, keep_copyright=False, keep_xmp=False)

    @classmethod
    def choose(cls, *, keep_gps: bool = False, keep_serials: bool = False,
               strip_exif: bool = False, keep_icc: bool = True,
               notices: bool = True, strip_names: bool = False) -> MetadataPolicy:
        """The policy behind the user-facing switches (CLI flags, the app's check boxes);
        all at their defaults gives MetadataPolicy(). `strip_names` drops the artist,
        author, creator and copyright names alone (the date and camera stay).
        `keep_serials` with `strip_exif` raises ConfigError: the serials and notes are
        EXIF that strip_exif drops (it was ignored without a word)."""
        if keep_serials and strip_exif:
            from .errors import ConfigError

            raise ConfigError("keep_serials can't be given with strip_exif, which drops the "
                              "serial numbers and notes it would keep")
        base = cls.minimal() if strip_exif else cls()
        return dataclasses.replace(
            base, strip_gps=not keep_gps, strip_serials=not keep_serials, keep_icc=keep_icc,
            data_mining_notice=notices, cloak_note=notices,
            keep_copyright=base.keep_copyright and not strip_names)


@dataclass
class ExifSnapshot:
    """A detached copy of a photo's EXIF: IFD0 tags and the Exif/GPS/Interop sub-IFDs."""

    base: dict[int, Any]
    exif: dict[int, Any]
    gps: dict[int, Any]
    interop: dict[int, Any]

    @property
    def orientation(self) -> int:
        value = self.base.get(ORIENTATION, 1)
        return value if isinstance(value, int) and 1 <= value <= 8 else 1


def snapshot_exif(image: Image.Image) -> ExifSnapshot | None:
    """Read EXIF (including an XMP orientation fallback) while the file is still open."""
    try:
        exif = image.getexif()
        if not exif:
            return None
        base = {tag: value for tag, value in exif.items() if tag not in (EXIF_IFD, GPS_IFD)}
        if ORIENTATION in base and not orientation_in_exif(image):
            # Pillow fills a missing EXIF Orientation from the XMP packet; viewers and
            # browsers read only EXIF's, so the original shows as stored: so must the copy
            del base[ORIENTATION]
        # pillow-heif turns a HEIF upright on opening and sets its EXIF Orientation to 1;
        # the frame the EXIF (SubjectArea) describes is the one the file stored
        stored_as = image.info.get("original_orientation") if image.format == "HEIF" else None
        if isinstance(stored_as, int) and 1 <= stored_as <= 8:
            base[ORIENTATION] = stored_as
    except EXIF_ERRORS as exc:  # malformed EXIF must not stop the photo from loading
        log.warning("ignoring unreadable EXIF: %s", exc)
        return None
    try:
        subs = {}
        for tag in (EXIF_IFD, GPS_IFD):
            subs[tag] = dict(exif.get_ifd(tag)) if tag in exif else {}
        interop = dict(exif.get_ifd(INTEROP_IFD)) if INTEROP_IFD in subs[EXIF_IFD] else {}
    except EXIF_ERRORS as exc:  # the main IFD (orientation, camera, date) is still good
        log.warning("ignoring unreadable EXIF details: %s", exc)
        return ExifSnapshot(base, {}, {}, {})
    return ExifSnapshot(base, subs[EXIF_IFD], subs[GPS_IFD], interop)


def orientation_in_exif(image: Image.Image) -> bool:
    """Whether the file's own EXIF (or TIFF tags) has an Orientation, rather than one that
    Pillow's getexif() took from XMP's tiff:Orientation."""
    if image.format == "TIFF":
        return ORIENTATION in getattr(image, "tag_v2", {})
    raw = image.info.get("exif")
    profile = image.info.get("Raw profile type exif")
    if raw is None and isinstance(profile, str):  # ImageMagick's PNG text chunk: its hex
        try:  # lines after a 3-line header, as Pillow reads it
            raw = bytes.fromhex("".join(profile.split("\n")[3:]))
        except ValueError:
            return False
    if not raw:
        return False
    own = Image.Exif()
    own.load(raw)
    return ORIENTATION in own


def _numbers_hold_a_picture(numbers: tuple[int, ...] | list[int]) -> bool:
    """Whether an EXIF array of numbers, written as 1-, 2- or 4-byte values in either byte
    order, spells a picture file's start (a JPEG stored as a SHORT[] SubjectArea)."""
    for width in (1, 2, 4):
        if all(-(1 << (8 * width - 1)) <= n < (1 << (8 * width)) for n in numbers):
            mask = (1 << (8 * width)) - 1
            for order in ("big", "little"):
                raw = b"".join((n & mask).to_bytes(width, order) for n in numbers)
                if any(signature in raw for signature in
                       PICTURE_SIGNATURES + PICTURE_WORD_SIGNATURES):
                    return True
    return False


def _without_pictures(values: dict[int, Any], ifd: str) -> dict[int, Any]:
    """`values` (one IFD's tags) less any that holds picture data (holds_picture_data):
    a camera writes none there, and an unprotected copy of the photo hidden in a tag
    (DeviceSettingDescription, a GPS processing method, a vendor's tag) was copied byte
    for byte."""
    kept = {}
    for tag, value in values.items():
        if holds_picture_data(value):
            log.warning("its %s tag 0x%04X holds picture data, not a setting (an unprotected "
                        "copy of the photo?): left out of the protected copy", ifd, tag)
        else:
            kept[tag] = value
    return kept


def build_exif(snapshot: ExifSnapshot | None, policy: MetadataPolicy, orientation: int,
               *, xmp_for_tiff: bytes | None = None, sub_ifds: bool = True,
               stored_size: tuple[int, int] | None = None,
               max_bytes: int | None = MAX_JPEG_SEGMENT) -> bytes | None:
    """EXIF bytes ("Exif\\0\\0" + TIFF) for the copy, or None when there is nothing to write.

    `orientation` is the tag value matching the stored pixels (1 = stored upright).
    `stored_size` (width, height) of the stored pixels sets PixelX/YDimension (a portrait
    HEIC is stored upright, turned from its source's frame); where the copy is stored
    turned from the source, the subject's area (points in the old frame) is dropped.
    `xmp_for_tiff` puts the XMP packet in tag 700 (TIFF keeps XMP inside its IFD0);
    `sub_ifds=False` leaves out the Exif/GPS sub-IFDs (libtiff cannot write them).
    `max_bytes`: the most the copy's format holds (one JPEG APP1 segment; None: no limit,
    as in PNG, WebP, HEIF, AVIF and TIFF): the MakerNote, then the Exif IFD, then all but
    orientation and rights are dropped, in that order, to fit."""
    out = Image.Exif()
    src = snapshot or ExifSnapshot({}, {}, {}, {})
    rights = (ARTIST, COPYRIGHT, ExifTags.Base.XPAuthor)
    for tag, value in _without_pictures({
            tag: value for tag, value in src.base.items()
            if tag in IFD0_KEEP and (policy.keep_copyright if tag in rights else policy.keep_exif)
            and not (policy.strip_serials and tag in PERSONAL_TEXT)}, "IFD0").items():
        out[tag] = value
    out[ORIENTATION] = orientation
    if orientation == 1 and ORIENTATION not in src.base:
        del out[ORIENTATION]
    if policy.keep_exif and sub_ifds:
        turned = orientation != src.orientation  # stored in another frame than the source
        exif_ifd = {tag: value for tag, value in src.exif.items()
                    if tag != INTEROP_IFD and not (turned and tag in SUBJECT_POINTS)
                    and tag not in EXIF_IFD_FOREIGN
                    and not (policy.strip_gps and tag in PLACE_HINTS)
                    and tag >= 0x8000  # below: GPS or IFD0 tags put here by mistake
                    and not (not policy.keep_copyright and tag in EXIF_NAMES) and (
                        not policy.strip_serials or
                        (tag in EXIF_IFD_STANDARD and tag not in IDENTIFYING
                         and tag not in PERSONAL_TEXT))}
        exif_ifd = _without_pictures(exif_ifd, "Exif")
        if stored_size is not None:
            for tag, value in zip((PIXEL_X, PIXEL_Y), stored_size, strict=True):
                if tag in exif_ifd:
                    exif_ifd[tag] = int(value)
        if src.interop:
            # its index and version only (what viewers read); the rest is free to hold
            # anything a tool put there
            exif_ifd[INTEROP_IFD] = {tag: value for tag, value in src.interop.items()
                                     if tag in (INTEROP_INDEX, INTEROP_VERSION)}
        if exif_ifd:
            out[EXIF_IFD] = exif_ifd
    elif sub_ifds and COLOR_SPACE in src.exif:
        # Not personal, and the only colour signal of a camera's Adobe RGB JPEG without an
        # ICC profile (ColorSpace 0xFFFF + Interop "R03"): without it viewers show the
        # copy washed out. Kept even when the camera details are removed.
        colour: dict[int, Any] = {COLOR_SPACE: src.exif[COLOR_SPACE]}
        if INTEROP_INDEX in src.interop:
            colour[INTEROP_IFD] = {INTEROP_INDEX: src.interop[INTEROP_INDEX]}
        out[EXIF_IFD] = colour
    if sub_ifds and src.gps and not policy.strip_gps:  # its own switch, with or without EXIF
        # the position; without the camera details, not the GPS's own UTC date and time
        # (the capture moment to the second, which --strip-exif drops)
        out[GPS_IFD] = _without_pictures({tag: value for tag, value in src.gps.items()
                                          if policy.keep_exif or tag not in GPS_MOMENT}, "GPS")
    for tag in list(out):  # IFD0's text tags (Artist, Copyright, Make...), which Pillow
        # types as ASCII; in the sub-IFDs bytes would be typed BYTE, so those keep "?"
        if isinstance(out[tag], str):
            out[tag] = exif_text_bytes(out[tag])
    if xmp_for_tiff:
        out[XMP_TAG] = xmp_for_tiff
    if not len(out):
        return None
    try:
        data = out.tobytes()
    except EXIF_ERRORS as exc:  # odd source values Pillow cannot write back
        log.warning("EXIF could not be rewritten (%s); keeping orientation and rights only", exc)
        return build_exif(_essentials(src), policy, orientation, xmp_for_tiff=xmp_for_tiff,
                          sub_ifds=False, stored_size=stored_size, max_bytes=max_bytes)
    too_long = max_bytes is not None and len(data) > max_bytes
    bulky = {tag for tag, value in src.exif.items()
             if isinstance(value, (bytes, str)) and len(value) > BULKY_VALUE}
    if too_long and sub_ifds and bulky:
        # a long value kept with --keep-serials (a user comment, a vendor's private tag)
        # goes first: date, exposure, colour space and GPS stay
        log.warning("EXIF is %d bytes, too long for one JPEG segment; dropping its long "
                    "values (tags %s)", len(data), ", ".join(f"0x{t:04X}" for t in sorted(bulky)))
        lighter = ExifSnapshot(src.base, {t: v for t, v in src.exif.items() if t not in bulky},
                               src.gps, src.interop)
        return build_exif(lighter, policy, orientation, xmp_for_tiff=xmp_for_tiff,
                          stored_size=stored_size, max_bytes=max_bytes)
    if too_long and sub_ifds and (src.exif or src.gps):
        log.warning("EXIF is %d bytes, too long for one JPEG segment; dropping the Exif IFD",
                    len(data))
        return build_exif(src, policy, orientation, xmp_for_tiff=xmp_for_tiff, sub_ifds=False,
                          stored_size=stored_size, max_bytes=max_bytes)
    if too_long and not xmp_for_tiff:
        # the main IFD alone (a huge description or keywords): Pillow would refuse it when
        # saving, after the attack. Orientation and rights, else orientation alone.
        essentials = _essentials(src)
        lighter = essentials if essentials != src else ExifSnapshot({}, {}, {}, {})
        if lighter != src:
            log.warning("EXIF is %d bytes, too long for one JPEG segment; keeping %s only",
                        len(data), "orientation, rights and date" if lighter.base
                        else "orientation")
            return build_exif(lighter, policy, orientation, sub_ifds=False,
                              stored_size=stored_size, max_bytes=max_bytes)
    return data


def _essentials(src: ExifSnapshot) -> ExifSnapshot:
    keep = (ORIENTATION, ARTIST, COPYRIGHT, ExifTags.Base.DateTime)
    return ExifSnapshot({t: v for t, v in src.base.items() if t in keep and
                         isinstance(v, (int, str))}, {}, {}, {})


def exif_string(value: str) -> str:
    """An EXIF text value as the camera or app meant it: Pillow decodes EXIF text as
    latin-1, but Lightroom, exiftool and phones write UTF-8 ("JosÃ©" is "José")."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def exif_text_bytes(value: str) -> str | bytes:
    """EXIF text as Pillow must be given it to write it back unchanged: text that is not
    plain ASCII as its original bytes (Pillow writes a str as ASCII, with "?" for every
    other character)."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1")  # the bytes Pillow read (latin-1 decoded)
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        value = exif_string(value)
    if not isinstance(value, str):
        return None
    # EXIF's two-part Copyright ("photographer\0editor") and stray control characters:
    # XML 1.0 can't hold them, and one would make the whole XMP packet unreadable.
    value = value.strip("\x00 ").replace("\x00", "; ")
    value = CONTROL_CHARACTERS.sub("", value).strip()
    return value or None


# A photo's packet, however long its edit history (Photoshop's DocumentAncestors can run to
# tens of thousands of entries), stays far below this; a tree this large costs ~100 MB.
MAX_XMP_ELEMENTS = 200_000


def _parse_xmp(xmp: bytes | None, quiet: bool = False) -> ET.Element | None:
    """The packet's XML root, or None where there is none or it is refused (warned about,
    unless `quiet`: a second reading of the packet build_xmp reads and warns about)."""
    if not xmp:
        return None
    if b"<!DOCTYPE" in xmp or b"<!ENTITY" in xmp:  # XMP has no use for either (XXE, bombs)
        if not quiet:
            log.warning("ignoring an XMP packet that declares a DTD or entities")
        return None
    parser = ET.XMLPullParser(events=("start",))
    root, elements, data = None, 0, xmp.strip(b"\x00 \r\n\t")
    try:
        for at in range(0, len(data), 1 << 16):  # counted as it is read: a packet of
            parser.feed(data[at:at + (1 << 16)])  # millions of empty elements (16 MB
            for _, element in parser.read_events():  # from a 74 KB PNG) held the app's
                root = element if root is None else root  # window 2.6 s a photo, and a
                elements += 1  # run 1.2 GB more, for a tree no photo needs
            if elements > MAX_XMP_ELEMENTS:
                if not quiet:
                    log.warning("ignoring an XMP packet of more than %d elements",
                                MAX_XMP_ELEMENTS)
                return None
        parser.close()
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: unknown encoding
        if not quiet:
            log.warning("ignoring unreadable XMP packet: %s", exc)
        return None
    return root


def says_protected(xmp: bytes | str | None) -> bool:
    """Whether an XMP packet carries cloak's own note (`cloak:Protected="True"`): the file
    is a protected copy cloak wrote, unless the user turned the notices off."""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not xmp or CLOAK_NS.encode() not in xmp:
        return False
    root = _parse_xmp(xmp)
    key = f"{{{CLOAK_NS}}}Protected"
    return root is not None and any(
        element.get(key) == "True" or (element.tag == key and element.text == "True")
        for element in root.iter())


def _own_descriptions(root: ET.Element | None) -> list[ET.Element]:
    """The rdf:Descriptions of a packet that describe the photo itself: those directly
    in its rdf:RDF. A Description nested in a property is another resource's: a document
    placed into the photo (xmpMM:Pantry, Adobe's), an ancestor, a person or place shown
    (Iptc4xmpExt:LocationShown); its creator, rights, date, camera and position were taken
    for the photo's."""
    if root is None:
        return []
    rdfs = [root] if root.tag == f"{{{RDF_NS}}}RDF" else root.iter(f"{{{RDF_NS}}}RDF")
    return [desc for rdf in rdfs for desc in rdf.findall(f"{{{RDF_NS}}}Description")]


def _xmp_rights(root: ET.Element | None) -> tuple[list[str], str | None]:
    """dc:creator entries and the x-default dc:rights text of a source packet, the
    photo's own (_own_descriptions)."""
    creators: list[str] = []
    rights = None
    lang = f"{{{XML_NS}}}lang"
    for desc in _own_descriptions(root):
        creators += [li.text.strip() for node in desc.findall(f"{{{DC_NS}}}creator")
                     for li in node.iter(f"{{{RDF_NS}}}li") if li.text and li.text.strip()]
        for node in desc.findall(f"{{{DC_NS}}}rights"):
            items = [li for li in node.iter(f"{{{RDF_NS}}}li") if li.text and li.text.strip()]
            chosen = next((li for li in items if li.get(lang) == "x-default"),
                          items[0] if items else None)  # the default language, else the first
            rights = rights or (chosen.text.strip() if chosen is not None else None)
    return creators, rights


IPTC_BYLINE = (2, 80)  # IPTC-IIM dataset numbers: the photo's creators,
IPTC_COPYRIGHT = (2, 116)  # and its copyright notice


def iptc_rights(image: Image.Image) -> tuple[list[str], str | None]:
    """By-line entries and the copyright notice of an image's IPTC-IIM block (a JPEG's
    Photoshop APP13, a TIFF's tag 33723), as _xmp_rights gives an XMP packet's: ([], None)
    where it has none. The copy writes no IPTC block: these go into its fresh XMP."""
    try:
        block = IptcImagePlugin.getiptcinfo(image) or {}
    except EXIF_ERRORS:  # a damaged block: as if there were none
        return [], None

    def texts(value: Any) -> list[str]:
        values = value if isinstance(value, list) else [value]
        # UTF-8 as current tools write it, else Latin-1 (older ones), as EXIF text is read
        return [text for v in values if isinstance(v, bytes)
                and (text := _text(v.decode("latin-1")))]

    notices = texts(block.get(IPTC_COPYRIGHT))
    return texts(block.get(IPTC_BYLINE)), (notices[0] if notices else None)


# Capture date and camera as XMP holds them (NAMESPACES prefix, local name): carried into
# the fresh packet with the EXIF details (a PNG or WebP export may hold them only here).
XMP_CAPTURE = (("xmp", "CreateDate"), ("exif", "DateTimeOriginal"),
               ("photoshop", "DateCreated"), ("tiff", "Make"), ("tiff", "Model"))


# The position as XMP holds it: carried into the fresh packet with --keep-gps where the
# photo has no EXIF GPS (a PNG or WebP export may hold it only here), as the date above.
XMP_POSITION = (("exif", "GPSLatitude"), ("exif", "GPSLongitude"), ("exif", "GPSAltitude"),
                ("exif", "GPSAltitudeRef"))


def _xmp_capture(root: ET.Element | None,
                 properties: tuple[tuple[str, str], ...] = XMP_CAPTURE) -> dict[str, str]:
    """{"{uri}Local": text} of the `properties` (XMP_CAPTURE) a source packet holds for
    the photo itself (_own_descriptions), as an attribute of its rdf:Description or a
    simple element in it."""
    found: dict[str, str] = {}
    descriptions = _own_descriptions(root)
    for prefix, local in properties:
        key = f"{{{NAMESPACES[prefix]}}}{local}"
        for desc in descriptions:
            element = desc.find(key)
            text = desc.get(key)
            if text is None and element is not None and len(element) == 0:
                text = element.text
            text = _text(text) if text else None
            if text and len(text) <= 64:
                found[key] = text
                break
    return found


def _is_utc(zone: str) -> bool:
    return zone.upper() in UTC_NAMES or ZERO_OFFSET.fullmatch(zone) is not None


def _date_and_zone(text: str) -> tuple[str, str | None] | None:
    """(`text` without its zone, the zone or None) for a date cloak can read whole (ISO
    8601 or RFC 2822, ASCII, at most MAX_DATE characters); None for anything else, which
    may hold a zone in a form no rule here knows (a Unix time is UTC's count)."""
    text = text.strip()
    if len(text) > MAX_DATE or not text.isascii():
        return None
    if YEAR_MONTH.fullmatch(text):
        return text, None
    if iso := ISO_DATE.fullmatch(text):
        zone = iso.group("zone")
        return (text[:iso.start("zone")].rstrip(), zone) if zone else (text, None)
    match = RFC_DATE.fullmatch(text)
    if match is None or email.utils.parsedate_tz(text) is None:
        return None
    return text[:match.end(1)], match.group(2)


def date_without_zone(text: str, *, local_time_carried: bool) -> str | None:
    """`text`, a date and time, without its zone, which says a region of the world.

    A numeric offset goes and leaves the local clock time, like EXIF's dates. A UTC stamp
    ("Z", "GMT", "+00:00") beside a local time would give the offset away as their
    difference: it is dropped (None) when `local_time_carried`, else kept without its zone.
    A date in a form cloak can't read (a named zone such as "PDT", a Unix time, "GMT+05:30")
    is dropped, and so is text without a digit, which is no date but free text in a date's
    field ("Sunday evening at Grandma's, Springfield": a place, kept before)."""
    text = text.strip()
    if not any(c.isdigit() for c in text):
        return None
    found = _date_and_zone(text)
    if found is None:
        return None
    zoneless, zone = found
    if zone is not None and _is_utc(zone) and local_time_carried:
        return None
    return zoneless


def is_local_time(text: str) -> bool:
    """True when `text` is a date with a clock time that is not stamped UTC."""
    found = _date_and_zone(text)
    if found is None or not re.search(r"\d{1,2}:\d{2}|T\d{2}", found[0]):
        return False
    return found[1] is None or not _is_utc(found[1])


def local_time_carried(snapshot: ExifSnapshot | None, policy: MetadataPolicy,
                       source_xmp: bytes | None = None, texts: Iterable[str] = ()) -> bool:
    """True when the copy keeps a local clock time: EXIF's dates (with the camera
    details), a date in the XMP packet (kept with them, or whole) or one of `texts` (a PNG
    copy's "Creation Time") that is not stamped UTC."""
    if not (policy.keep_exif or policy.keep_xmp):
        return False
    if any(is_local_time(text) for text in texts if text):
        return True
    if policy.keep_exif and snapshot is not None and (
            any(snapshot.exif.get(tag) for tag in EXIF_LOCAL_DATES)
            or snapshot.base.get(ExifTags.Base.DateTime)):
        return True
    root = _parse_xmp(source_xmp, quiet=True)  # build_xmp says why one is refused
    if root is None:
        return False
    values = [v for node in root.iter() for v in (*node.attrib.values(), node.text or "")]
    return any(is_local_time(v) for v in values if v)


def _description(policy: MetadataPolicy, creators: list[str], rights: str | None,
                 version: str) -> ET.Element:
    desc = ET.Element(f"{{{RDF_NS}}}Description", {f"{{{RDF_NS}}}about": ""})
    if policy.data_mining_notice:
        desc.set(f"{{{PLUS_NS}}}DataMining", DMI_PROHIBITED)
    if policy.cloak_note:
        desc.set(f"{{{CLOAK_NS}}}Protected", "True")
        desc.set(f"{{{CLOAK_NS}}}Version", version)
        desc.set(f"{{{CLOAK_NS}}}Note", CLOAK_NOTE)
    if creators:
        seq = ET.SubElement(ET.SubElement(desc, f"{{{DC_NS}}}creator"), f"{{{RDF_NS}}}Seq")
        for name in creators:
            ET.SubElement(seq, f"{{{RDF_NS}}}li").text = name
    if rights:
        alt = ET.SubElement(ET.SubElement(desc, f"{{{DC_NS}}}rights"), f"{{{RDF_NS}}}Alt")
        li = ET.SubElement(alt, f"{{{RDF_NS}}}li", {f"{{{XML_NS}}}lang": "x-default"})
        li.text = rights
    return desc


def embedded_data(text: str | None) -> bool:
    """Whether an XMP value is embedded data (an image, a depth map), not text: a data:
    URI, or base64 (either alphabet, in one run or wrapped in lines)."""
    if not text:
        return False
    if DATA_URI.match(text):
        return True
    if BASE64_VALUE.fullmatch(text) is None:
        return False
    runs = "".join(BASE64_RUN.findall(text))
    # data's base64 mixes capitals, small letters and digits ("xxxx...", a line of one
    # character, is not data)
    return len(runs) >= 256 and all(re.search(kind, runs) for kind in ("[A-Z]", "[a-z]", "[0-9]"))


def holds_picture_data(value: Any) -> bool:
    """Whether a metadata value (EXIF bytes or text, a PNG text chunk, rights text)
    carries a picture rather than a setting or words: a picture file's start anywhere in
    it, or base64 data (embedded_data). The photo's own unprotected pixels hidden there
    would pass to the copy and hand an editor a clean source."""
    if isinstance(value, (tuple, list)):
        if len(value) >= 16 and all(isinstance(item, int) for item in value):
            return _numbers_hold_a_picture(value)  # a SHORT[] or LONG[] array's bytes
        return any(holds_picture_data(item) for item in value)
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")  # (any lone surrogate: no error)
        signatures = PICTURE_SIGNATURES
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        signatures = PICTURE_SIGNATURES + PICTURE_WORD_SIGNATURES
    else:
        return False
    if raw[:8] in EXIF_CHARACTER_CODES:  # a UserComment's, a GPS method's: then the text
        raw = raw[8:]
    return (any(signature in raw for signature in signatures)
            # (UTF-16 text read byte by byte: its zero bytes dropped)
            or embedded_data(raw.decode("latin-1").replace("\0", "")))


def _scrub(root: ET.Element, policy: MetadataPolicy, *, local_time: bool = False) -> None:
    """Drop GPS, identifying IDs, orientation, old notices, dc rights and embedded data
    (previews, depth maps, a motion photo's video pointers) from a packet, and, with the
    GPS, the time zones of its dates (`local_time`: see date_without_zone)."""
    def unwanted(name: str) -> bool:
        ns, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
        if ns == DC_NS and local in ("creator", "rights"):
            return True  # re-added by _description according to the policy
        if ns == CLOAK_NS or ns in XMP_DROPPED_NAMESPACES:
            return True
        return bool((policy.strip_gps and XMP_GPS.match(local)) or
                    (policy.strip_serials and local in XMP_IDENTIFYING) or
                    (policy.strip_gps and local in XMP_PLACE) or
                    local in XMP_ALWAYS_DROPPED)

    def zoneless(text: str | None) -> str | None:
        if not policy.strip_gps or not text or not (
                DATE_START.match(text) or email.utils.parsedate_tz(text) is not None):
            return text
        return date_without_zone(text, local_time_carried=local_time)

    for parent in root.iter():
        for key in [k for k, v in parent.attrib.items() if unwanted(k) or embedded_data(v)]:
            del parent.attrib[key]
        for key, value in list(parent.attrib.items()):
            if (changed := zoneless(value)) != value:
                if changed is None:
                    del parent.attrib[key]
                else:
                    parent.attrib[key] = changed
        for child in [c for c in parent if unwanted(c.tag) or (
                len(c) == 0 and embedded_data(c.text))]:
            parent.remove(child)
        for child in [c for c in parent if len(c) == 0]:
            if (changed := zoneless(child.text)) != child.text:
                if changed is None:
                    parent.remove(child)
                else:
                    child.text = changed


def build_xmp(source_xmp: bytes | None, snapshot: ExifSnapshot | None,
              policy: MetadataPolicy, version: str, *, texts: Iterable[str] = (),
              iptc: tuple[list[str], str | None] = ([], None)) -> bytes | None:
    """The XMP packet for the copy (UTF-8 bytes with xpacket wrapper), or None. `texts`:
    the dates the copy also keeps elsewhere (a PNG's "Creation Time"). `iptc`: the
    source's IPTC creators and rights (iptc_rights), taken where XMP and EXIF have none."""
    root = _parse_xmp(source_xmp)
    creators, rights = _xmp_rights(root) if policy.keep_copyright else ([], None)
    if policy.keep_copyright and snapshot is not None:
        artist = _text(snapshot.base.get(ARTIST))
        copyright_ = _text(snapshot.base.get(COPYRIGHT))
        if artist and not creators:
            creators = [artist]
        rights = rights or copyright_
    if policy.keep_copyright:
        creators, rights = creators or iptc[0], rights or iptc[1]
    # names and a notice, not data: a picture hidden in one is the photo unprotected
    creators = [name for name in creators if not holds_picture_data(name)]
    rights = None if rights is not None and holds_picture_data(rights) else rights
    desc = _description(policy, creators, rights, version)
    local = local_time_carried(snapshot, policy, source_xmp, texts)
    if policy.keep_exif and not policy.keep_xmp:
        for key, text in _xmp_capture(root).items():
            if policy.strip_gps and "Date" in key:  # the time zone says a region of the
                # world (PLACE_HINTS)
                text = date_without_zone(text, local_time_carried=local)
            if text is not None:
                desc.set(key, text)
    if not policy.strip_gps and not policy.keep_xmp and not (snapshot and snapshot.gps):
        for key, text in _xmp_capture(root, XMP_POSITION).items():  # (with or without
            desc.set(key, text)  # EXIF, as the EXIF GPS is)
    if policy.keep_xmp and root is not None and root.find(f".//{{{RDF_NS}}}RDF") is not None:
        _scrub(root, policy, local_time=local)
        rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f".//{{{RDF_NS}}}RDF")
        meta = root
    else:
        meta = ET.Element(f"{{{X_NS}}}xmpmeta")
        rdf = ET.SubElement(meta, f"{{{RDF_NS}}}RDF")
    if len(desc.attrib) > 1 or len(desc):
        rdf.append(desc)
    if not any(len(d.attrib) > 1 or len(d) for d in rdf):
        return None
    body = ET.tostring(meta, encoding="unicode", xml_declaration=False)
    packet = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
              f"{body}\n<?xpacket end=\"w\"?>")
    return packet.encode("utf-8")
