"""A 16-bit PNG writer: Pillow keeps only 8 bits of a colour PNG, so cloak writes that one
case itself (Paeth-filtered rows, zlib level 6, with the ICC profile, EXIF, text and dpi)."""

from __future__ import annotations

import struct
import zlib
from typing import IO, Any

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _paeth_rows(raw: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """PNG Paeth filter of byte rows `raw` (n, stride) given the rows above them."""
    raw = raw.astype(np.int16)
    b = above.astype(np.int16)
    a = np.zeros_like(raw)
    a[:, bpp:] = raw[:, :-bpp]
    c = np.zeros_like(raw)
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return ((raw - pred) & 0xFF).astype(np.uint8)


def write_png16(fp: IO[bytes], samples: np.ndarray, options: dict[str, Any]) -> None:
    """Write (H, W, C) uint16 samples (C = 2 gray+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG
    with the ICC profile, EXIF, XMP, text and dpi in `options` (Pillow keeps only 8 bits
    of colour PNGs, so this one case is written here)."""
    height, width, channels = samples.shape
    colour_type = {2: 4, 3: 2, 4: 6}[channels]
    out = [b"\x89PNG\r\n\x1a\n",
           _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if options.get("icc_profile"):
        out.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(options["icc_profile"])))
    if options.get("dpi"):
        ppm = [round(d / 0.0254) for d in options["dpi"]]
        out.append(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    exif = options.get("exif")
    if exif:
        out.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    pnginfo = options.get("pnginfo")
    for kind, data, *_after_idat in (pnginfo.chunks if pnginfo else []):
        out.append(_chunk(kind, data))
    stride = width * channels * 2
    rows = samples.astype(">u2").reshape(height, stride // 2).view(np.uint8)
    compressor = zlib.compressobj(6)
    idat = []
    above = np.zeros((1, stride), np.uint8)
    for start in range(0, height, 256):
        block = rows[start:start + 256]
        prev = np.concatenate([above, block[:-1]])
        filtered = _paeth_rows(block, prev, channels * 2)
        lines = np.concatenate([np.full((len(block), 1), 4, np.uint8), filtered], axis=1)
        idat.append(compressor.compress(lines.tobytes()))
        above = block[-1:]
    idat.append(compressor.flush())
    out.append(_chunk(b"IDAT", b"".join(idat)))
    out.append(_chunk(b"IEND", b""))
    for part in out:
        fp.write(part)
