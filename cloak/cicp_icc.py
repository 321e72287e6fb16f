"""ICC profiles for CICP colour tags: a HEIF's or AVIF's nclx, a PNG's cICP. Such a photo
carries no ICC profile, yet its values are in Display P3 or BT.2020; verify compares two
photos through their ICC profiles (cloak.comparable.in_one_colour_space), so a tag of
wide colours is given the matrix/TRC profile it names (ICC v2: a D50 white, Bradford
adaptation, the sRGB tone curve). Tags of sRGB's colours, and HDR tone curves (PQ, HLG:
no display-referred profile holds them), get none."""

from __future__ import annotations

import functools
import struct

import numpy as np

from .cicp import PRIMARIES_NAMES, SDR_TRANSFERS

D65 = (0.3127, 0.3290)
DCI_WHITE = (0.314, 0.351)
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
# CICP colour primaries (ITU-T H.273) -> red, green, blue and white chromaticities (x, y)
PRIMARIES = {
    9: (((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)), D65),  # BT.2020
    11: (P3_PRIMARIES, DCI_WHITE),  # DCI-P3 (SMPTE RP 431-2)
    12: (P3_PRIMARIES, D65),  # Display P3 (SMPTE EG 432-1)
}
D50_XYZ = np.array([0.9642, 1.0, 0.8249])  # the ICC profile connection space's white
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])
CURVE_POINTS = 1024


@functools.lru_cache(maxsize=8)
def icc_for_cicp(primaries: object, transfer: object) -> bytes | None:
    """An ICC profile (bytes) for the colours a CICP tag names: primaries 9 (BT.2020),
    11 (DCI-P3) or 12 (Display P3) with an SDR tone curve (SDR_TRANSFERS, each taken as
    the sRGB curve, as colour-managed viewers show them); None for sRGB's primaries, an
    HDR curve or values this table does not know."""
    if primaries not in PRIMARIES or transfer not in SDR_TRANSFERS:
        return None
    rgb, white = PRIMARIES[primaries]
    columns = _to_d50_xyz(rgb, white)
    curve = _srgb_curve()
    name = f"{PRIMARIES_NAMES[primaries]} (from the photo's CICP tag)"
    tags = [(b"desc", _desc(name)), (b"cprt", _text("no copyright, use freely")),
            (b"wtpt", _xyz(D50_XYZ)),
            (b"rXYZ", _xyz(columns[:, 0])), (b"gXYZ", _xyz(columns[:, 1])),
            (b"bXYZ", _xyz(columns[:, 2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _profile(tags)


def _chromaticity_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _to_d50_xyz(rgb, white) -> np.ndarray:
    """(3, 3): linear RGB -> XYZ, adapted to D50 (Bradford), columns red, green, blue."""
    white_xyz = _chromaticity_to_xyz(*white)
    primaries = np.stack([_chromaticity_to_xyz(*c) for c in rgb], axis=1)
    to_xyz = primaries * np.linalg.solve(primaries, white_xyz)  # white (1, 1, 1) -> white
    cone_ratio = (BRADFORD @ D50_XYZ) / (BRADFORD @ white_xyz)
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone_ratio) @ BRADFORD
    return adapt @ to_xyz


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15fixed16(float(v)) for v in values)


def _text(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _desc(text: str) -> bytes:
    """An ICC v2 textDescriptionType: ASCII, then empty Unicode and ScriptCode parts."""
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + bytes(67))


def _srgb_curve() -> bytes:
    """The sRGB decoding curve (encoded value -> linear), CURVE_POINTS samples."""
    v = np.linspace(0.0, 1.0, CURVE_POINTS)
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    samples = np.round(linear * 65535).astype(">u2").tobytes()
    return b"curv\0\0\0\0" + struct.pack(">I", CURVE_POINTS) + samples


def _profile(tags: list[tuple[bytes, bytes]]) -> bytes:
    """A display RGB profile, version 2.1, holding `tags` (each body 4-byte aligned)."""
    start = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        data += bytes(-(start + len(data)) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    size = start + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + bytes([2, 0x10, 0, 0]) + b"mntr"
              + b"RGB " + b"XYZ " + bytes(12) + b"acsp" + bytes(4) + bytes(4) + bytes(4)
              + bytes(4) + bytes(8) + struct.pack(">I", 1)  # relative colorimetric
              + b"".join(_s15fixed16(v) for v in D50_XYZ) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + table + data
