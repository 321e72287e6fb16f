"""CICP (ITU-T H.273) colour tags in AVIF and PNG files, which Pillow neither reads nor
keeps: an HDR or Display P3 photo is tagged this way, and a viewer takes the tag before
any ICC profile. Here they are found (AVIF's `colr` nclx box, PNG's cICP chunk), named,
and written back into an AVIF cloak encodes; plus the two AVIF facts Pillow does not
give (that a file is AVIF, not HEIF, and its bit depth).
"""

from __future__ import annotations

import os
import struct
from typing import IO, Any


def is_avif(fp: IO[bytes]) -> bool:
    """Whether the file's ISO-BMFF `ftyp` box names AVIF and no HEVC brand: pillow-heif
    also claims AVIF files branded "mif1", and can't decode them without an AV1 decoder."""
    fp.seek(0)
    head = fp.read(64)
    fp.seek(0)
    if head[4:8] != b"ftyp":
        return False
    size = int.from_bytes(head[:4], "big")
    brands = {head[i:i + 4] for i in range(8, min(size, len(head)) - 3, 4)}
    return bool(brands & {b"avif", b"avis"}) and not brands & {
        b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}


# CICP (ITU-T H.273) code points that mean sRGB's colours to a viewer: BT.709 primaries
# (1) or unspecified (2); the sRGB curve (13), BT.709's, BT.601's and BT.2020's SDR curves
# (1, 6, 14, 15) or unspecified (2).
SRGB_PRIMARIES = frozenset({1, 2})
SDR_TRANSFERS = frozenset({1, 2, 6, 13, 14, 15})
PRIMARIES_NAMES = {9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}
TRANSFER_NAMES = {16: "PQ (HDR)", 18: "HLG (HDR)"}


def avif_cicp(fp: IO[bytes], span: int = 1 << 16) -> tuple[int, int] | None:
    """(colour primaries, transfer characteristics) of an AVIF's `colr` box of type nclx,
    found in the file's first `span` bytes (the meta box comes before the image data in
    the files cloak meets); None without one."""
    fp.seek(0)
    head = fp.read(span)
    fp.seek(0)
    at = head.find(b"colrnclx")
    if at < 4 or at + 12 > len(head):
        return None
    return (int.from_bytes(head[at + 8:at + 10], "big"),
            int.from_bytes(head[at + 10:at + 12], "big"))


def avif_depth(fp: IO[bytes], span: int = 1 << 16) -> int | None:
    """Bits per channel an AVIF stores, from its `pixi` box in the file's first `span`
    bytes (a full box: version and flags, the channel count, one depth a channel); None
    without one."""
    fp.seek(0)
    head = fp.read(span)
    fp.seek(0)
    at = head.find(b"pixi")
    if at < 4 or at + 10 > len(head) or head[at + 8] == 0:
        return None
    return max(head[at + 9:at + 9 + head[at + 8]])


def png_cicp(fp: IO[bytes], max_chunks: int = 4096) -> bytes | None:
    """The 4 data bytes of a PNG's cICP chunk (PNG 3rd edition: colour primaries, transfer
    characteristics, matrix coefficients (0 for RGB), full-range flag), which comes before
    the image data; None without one. Pillow 13 neither reads nor keeps it, and a viewer
    takes it before the ICC profile: an HDR or Display P3 PNG is tagged this way."""
    try:
        fp.seek(8)
        for _ in range(max_chunks):
            head = fp.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            if kind == b"cICP":
                data = fp.read(length) if length == 4 else b""
                return data if len(data) == 4 else None
            fp.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
        return None
    finally:
        fp.seek(0)


def with_avif_cicp(data: bytes, primaries: int, transfer: int) -> bytes | None:
    """`data`, an AVIF as Pillow writes it (its `colr` box of type nclx says sRGB), with
    that box's colour primaries and transfer characteristics set: the same length, its
    matrix and range as encoded. None where no such box is in the first 64 KiB or the
    values are not 16-bit code points."""
    at = data.find(b"colrnclx", 0, 1 << 16)
    if at < 4 or at + 12 > len(data) or not all(
            isinstance(v, int) and 0 <= v < 1 << 16 for v in (primaries, transfer)):
        return None
    return (data[:at + 8] + primaries.to_bytes(2, "big") + transfer.to_bytes(2, "big")
            + data[at + 12:])


def cicp_beyond_srgb(primaries: Any, transfer: Any) -> str | None:
    """What a CICP (nclx) tag names beyond sRGB's colours and SDR ("Display P3",
    "BT.2020, PQ (HDR)"), or None where it names sRGB's (or nothing)."""
    parts = ([PRIMARIES_NAMES.get(primaries, f"primaries {primaries}")]
             * (primaries is not None and primaries not in SRGB_PRIMARIES)
             + [TRANSFER_NAMES.get(transfer, f"transfer {transfer}")]
             * (transfer is not None and transfer not in SDR_TRANSFERS))
    return ", ".join(parts) or None
