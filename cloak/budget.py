"""Where the perturbation may go: a per-pixel L-infinity budget.

`visibility_map` follows a simple just-noticeable-difference model: the eye tolerates
more change where local contrast is high (texture, edges) and little in flat areas
(skin, sky, blurred backgrounds). `region_map` raises the budget on faces, heads and
upper bodies (what nudify and face-swap tools edit) and on a user mask.

All maps are (1, 1, H, W) in [0, 1]; multiply by eps to get the per-pixel bound.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import CONTRAST_REF, FLAT_FLOOR  # the map's defaults, set with the presets
from .filters import gaussian_blur2d
from .metrics import luma

log = logging.getLogger(__name__)

REGION_GAIN = 1.5     # faces/bodies/mask: budget multiplied by this (capped at 1)


def local_contrast(x: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 1, H, W) local standard deviation of luminance.
    Computed in float64 on the CPU: E[y^2] - E[y]^2 in float32 left a flat bright area a
    std of up to 1e-3 (0 for black or mid-gray), so equally flat areas got unequal budgets."""
    y = luma(x.detach().to("cpu", torch.float64))
    k = 2 * radius + 1
    mean = F.avg_pool2d(F.pad(y, [radius] * 4, mode="replicate"), k, stride=1)
    mean_sq = F.avg_pool2d(F.pad(y * y, [radius] * 4, mode="replicate"), k, stride=1)
    return (mean_sq - mean * mean).clamp_min(0).sqrt().to(x.device, x.dtype)


def visibility_map(x: torch.Tensor, floor: float = FLAT_FLOOR,
                   contrast_ref: float = CONTRAST_REF) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 1, H, W) in [floor, 1]: smooth, so no blocky budget edges."""
    v = floor + (1 - floor) * (local_contrast(x) / contrast_ref).clamp(0, 1)
    # Spread texture budget a little into its neighbourhood, never into flat areas' core.
    v = gaussian_blur2d(v, 9, 2.0, border="replicate")
    return v.clamp(floor, 1)


@contextlib.contextmanager
def _opencv_errors_only(cv2):
    """OpenCV's log at errors only while cloak runs the detector (its DNN backend prints a
    harmless warning per photo otherwise), then back to the level the process had. The
    level is the process's: threads detecting at once share one quiet spell, the level
    saved by the first in and put back by the last out (each saving its own, a thread
    that came in second saved the quiet level and left it for good)."""
    log_api = getattr(cv2.utils, "logging", None)
    if log_api is None or not hasattr(log_api, "getLogLevel"):
        yield
        return
    with _quiet_lock:
        if _quiet["users"] == 0:
            _quiet["before"] = log_api.getLogLevel()
            log_api.setLogLevel(log_api.LOG_LEVEL_ERROR)
        _quiet["users"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["users"] -= 1
            if _quiet["users"] == 0:
                log_api.setLogLevel(_quiet["before"])


_quiet_lock = threading.Lock()
_quiet = {"users": 0, "before": None}


def find_faces(rgb_uint8: np.ndarray, detector_path: Path | None
               ) -> list[tuple[float, ...]] | None:
    """Face boxes (x, y, w, h) in pixels of `rgb_uint8` (H, W, 3), via YuNet/OpenCV ([]:
    none found). None when no detector is given, or it can't run (a warning says why)."""
    boxes, why = _detect(rgb_uint8, detector_path)
    if why:
        log.warning("%s; face priority is off for this photo", why)
    return boxes


def face_detection_fails(detector_path: Path | None) -> str | None:
    """Why the face detector at `detector_path` can't run in this process (OpenCV missing
    or failing to import, a file that is not YuNet, an OpenCV that can't run it), or None
    when it runs. Found by detecting on a small gray image, once per path and process: a
    run turns face priority off for every photo, and records it off, when this fails."""
    if detector_path is None or not Path(detector_path).is_file():
        return "face detector not found"
    key = str(detector_path)
    if key not in _probed:
        _probed[key] = _detect(np.full((48, 64, 3), 128, np.uint8), Path(detector_path))[1]
    return _probed[key]


_probed: dict[str, str | None] = {}


def _detect(rgb_uint8: np.ndarray, detector_path: Path | None
            ) -> tuple[list[tuple[float, ...]] | None, str | None]:
    """find_faces' boxes, or None and why not (None: no detector was given)."""
    if detector_path is None or not Path(detector_path).is_file():
        return None, None
    try:
        import cv2
    except ModuleNotFoundError:
        return None, "opencv is not installed"
    except ImportError as exc:  # installed, but built against another numpy, say
        return None, (f"opencv is installed but fails to import ({exc}; reinstall "
                      "opencv-python-headless>=5.0)")
    import hashlib

    from .models.registry import FACE_DETECTOR, KNOWN_SHA256

    # OpenCV parses the bytes checked here, not the file again by name: a file swapped
    # after resolve_face_detector's check never reaches its ONNX parser.
    try:
        model = Path(detector_path).read_bytes()
    except OSError as exc:
        return None, f"can't read the face detector {detector_path} ({exc.strerror or exc})"
    if hashlib.sha256(model).hexdigest() != KNOWN_SHA256[FACE_DETECTOR]:
        return None, f"{detector_path} is not the published YuNet detector (sha256 differs)"
    h, w = rgb_uint8.shape[:2]
    try:
        with _opencv_errors_only(cv2):
            detector = cv2.FaceDetectorYN.create("onnx", np.frombuffer(model, np.uint8),
                                                 np.zeros(0, np.uint8), (w, h), 0.7, 0.3, 5000)
            _, faces = detector.detect(np.ascontiguousarray(rgb_uint8[..., ::-1]))
    except cv2.error as exc:  # an OpenCV build without this DNN path, or a size it refuses
        lines = [line for line in str(exc).splitlines() if line.strip(" >")]
        return None, (f"the face detector failed in OpenCV "
                      f"{getattr(cv2, '__version__', '?')} "
                      f"({lines[-1].strip()[:200] if lines else type(exc).__name__}; "
                      "the YuNet detector needs OpenCV 5)")
    if faces is None:
        return [], None
    return [tuple(float(v) for v in f[:4]) for f in faces], None


def person_mask(boxes: list[tuple[float, ...]], height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W) in [0, 1]: each face box grown to the head and the upper body."""
    mask = torch.zeros(1, 1, height, width)
    for x0, y0, bw, bh in boxes:
        cx = x0 + bw / 2
        head = (cx - 0.9 * bw, y0 - 0.6 * bh, cx + 0.9 * bw, y0 + 1.3 * bh)
        body = (cx - 1.8 * bw, y0 + 0.9 * bh, cx + 1.8 * bw, y0 + 4.0 * bh)
        for left, top, right, bottom in (head, body):
            t, b = max(0, int(top)), min(height, int(bottom))
            lft, r = max(0, int(left)), min(width, int(right))
            if b > t and r > lft:
                mask[..., t:b, lft:r] = 1
    return mask


# A mask's aspect ratio may differ from its photo's by this much, plus a pixel of rounding
# on the mask's short side (a mask exported at half size, or a small one): a mask drawn
# for another photo (3.4% off, in a user trial) is refused, not stretched.
MASK_ASPECT_TOLERANCE = 0.01


BLACK_MASK = 0.1  # a mask no brighter than this anywhere, at the working size: refused


def load_user_mask(path: str | Path, height: int, width: int, check_aspect: bool = True,
                   shape_of: tuple[int, int] | None = None) -> torch.Tensor:
    """Read a mask image (white = protect most), upright by its EXIF orientation, resized
    to (H, W) -> (1, 1, H, W) in [0, 1]. A mask whose shape is not the photo's (more than
    1% off in aspect ratio, plus a pixel of rounding on its short side: drawn for another
    photo, or turned) is refused, not stretched;
    `shape_of` (h, w) is the photo's size when (H, W) is a working size rounded to 8 px
    (a 2000x200 photo works at 512x48, 6.7% off its shape); `check_aspect` False only
    checks that it reads."""
    if shape_of is not None:
        aspect_height, aspect_width = shape_of
    else:
        aspect_height, aspect_width = height, width
    from PIL import Image, ImageOps

    from .errors import UnsupportedImageError, raised_by_cloak
    from .io import (
        DECODE_ERRORS,
        READ_FORMATS,
        _frame_count,
        _frames_refusal,
        check_can_open,
        decode_problem,
        decoding_limit,
        pixel_limit,
    )

    try:  # missing, a folder, a FIFO (which would hang the open), empty: said as for a photo
        check_can_open(path)
    except UnsupportedImageError as exc:
        raise UnsupportedImageError(f"can't read mask {exc}") from None
    try:  # a mask over cloak's pixel limit fails as a photo would (no traceback)
        with decoding_limit(Path(path), pixel_limit()), \
                Image.open(path, formats=READ_FORMATS) as img:
            # an animated GIF or APNG as a mask: refused as a photo is (only its first
            # frame was read, unsaid), and as a multi-page TIFF mask already was
            if (frames := _frame_count(img)) > 1 and img.format != "MPO":
                raise UnsupportedImageError(f"can't read mask {path}: "
                                            f"{_frames_refusal(img.format or '?', frames)}")
            # a float TIFF (which cloak reads as a mask only) keeps Pillow's turn
            tiff = img.format == "TIFF" and img.mode != "F"
            if img.format == "TIFF" and not tiff:
                img = mask_values(ImageOps.exif_transpose(img))
            elif not tiff:
                img = _upright_values(img, Path(path))
        if tiff:  # outside the lock: read as a photo is (load_photo takes it itself)
            try:
                img = _tiff_values(Path(path))
            except UnsupportedImageError as exc:  # "PATH: truncated": the mask's, said so
                raise UnsupportedImageError(f"can't read mask {exc}") from None
    except DECODE_ERRORS as exc:  # Pillow raises SyntaxError, struct.error... on damage
        if raised_by_cloak(exc):  # cloak's own bug, not damage in the mask
            raise
        raise UnsupportedImageError(f"can't read mask {path}: {decode_problem(exc)}") from exc
    slack = MASK_ASPECT_TOLERANCE + 1 / min(img.width, img.height)
    if check_aspect and abs((img.width / img.height) / (aspect_width / aspect_height) - 1) > \
            slack:
        raise UnsupportedImageError(
            f"mask {path} is {img.width}x{img.height} (aspect {img.width / img.height:.3f}), "
            f"not the shape of this photo, {aspect_width}x{aspect_height} (aspect "
            f"{aspect_width / aspect_height:.3f}): draw the mask over this photo as it is "
            "shown, and save it at the photo's size or any size of the same shape")
    arr = np.asarray(img.resize((width, height), Image.BILINEAR), dtype=np.float32)
    why = ("white marks what to protect most, and the rest of the photo keeps a third of "
           "the protection, so it would weaken the whole photo; paint the region white, or "
           "leave --mask out")
    if float(np.asarray(img).max()) <= BLACK_MASK:
        raise UnsupportedImageError(f"mask {path} has no white region: {why}")
    # `check_aspect` False only checks that the file reads: no size to work at yet
    if check_aspect and float(arr.max()) <= BLACK_MASK:
        raise UnsupportedImageError(
            f"mask {path} has no white region that lasts at the {width}x{height} px cloak "
            f"works at for this photo (only lines or specks too thin): {why}")
    return torch.from_numpy(arr.clip(0, 1))[None, None]


def _tiff_values(path: Path):
    """A TIFF mask as mode "F" in [0, 1], read as cloak.io reads a photo: Pillow turns a
    TIFF while it loads (by its tag, or else by XMP's), and exif_transpose then turned an
    EXIF-tagged one back; io keeps the turn a viewer makes. See-through counts as black,
    as in mask_values."""
    from PIL import Image

    from .io import load_photo

    photo = load_photo(path)
    values = photo.rgb.mean(axis=2)
    if photo.alpha is not None:
        values *= photo.alpha.astype(np.float32) / np.iinfo(photo.alpha.dtype).max
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), "F")


def _upright_values(img, path: Path):
    """mask_values(img) turned upright as cloak.io turns a photo: by its EXIF Orientation,
    not by an XMP tiff:Orientation alone (Pillow's exif_transpose follows that one; viewers,
    and cloak's photos, do not). Not for a TIFF (_tiff_values)."""
    from PIL import Image

    from . import metadata as md
    from .io import _png_header, to_upright

    if img.format == "PNG":
        img.load()  # eXIf may follow the pixels
        key = img.info.get("transparency")
        if isinstance(key, int):  # as io._pixels: Pillow scales 2- and 4-bit gray samples
            with open(path, "rb") as header:  # to 0-255, but not their tRNS key
                depth, colour_type = _png_header(header)
            if colour_type == 0 and depth in (2, 4):
                img.info["transparency"] = key * 255 // (2 ** depth - 1)
    exif = md.snapshot_exif(img)
    orientation = 1 if img.format == "HEIF" or exif is None else exif.orientation
    values = np.asarray(mask_values(img))
    return Image.fromarray(to_upright(values, orientation), "F")


def mask_values(img):
    """A mask image of any mode -> mode "F" in [0, 1] (white = 1). 16-bit and 32-bit gray
    are scaled from their full range (Pillow's own conversion to 8 bits clips them, so
    a 16-bit 50% gray would read as white); float gray is taken as [0, 1]; transparency
    counts as black (an eraser's see-through pixels: no extra protection)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        levels = np.asarray(img)
        values = levels.astype(np.float32) / 65535
        key = img.info.get("transparency")
        if isinstance(key, int):  # a 16-bit gray colour key: see-through, so black
            values[levels == key] = 0
    elif img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
    else:
        from .io import with_real_alpha

        img = with_real_alpha(img)  # a colour key (PNG tRNS on 1/L/RGB) as an alpha band
        has_alpha = img.mode in ("LA", "RGBA")
        gray = np.asarray(img.convert("L"), dtype=np.float32) / 255
        if has_alpha:
            gray *= np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.float32) / 255
        values = gray
    return Image.fromarray(np.ascontiguousarray(values.clip(0, 1), dtype=np.float32), "F")


def budget_map(x: torch.Tensor, *, perceptual: bool = True,
               face_boxes: list[tuple[float, ...]] | None = None,
               user_mask: torch.Tensor | None = None, flat_floor: float = FLAT_FLOOR,
               contrast_ref: float = CONTRAST_REF) -> torch.Tensor:
    """Combine visibility and priorities -> (1, 1, H, W) in [0, 1].

    `flat_floor` and `contrast_ref` shape the visibility map (see visibility_map); the
    presets set them (config.Preset).
    Without perceptual shaping the budget is uniform (1 everywhere). Priority regions
    (faces, bodies, the white of a user mask) get REGION_GAIN times the visible budget;
    with a user mask, the rest of the photo keeps a third of it."""
    _, _, h, w = x.shape
    base = (visibility_map(x, flat_floor, contrast_ref) if perceptual
            else torch.ones(1, 1, h, w, device=x.device))
    priority = torch.zeros(1, 1, h, w, device=x.device)
    if face_boxes:
        priority = torch.maximum(priority, person_mask(face_boxes, h, w).to(x.device))
    if user_mask is not None:
        priority = torch.maximum(priority, user_mask.to(x.device))
    sigma = max(2.0, min(h, w) / 100)
    k = 2 * int(3 * sigma) + 1

    def soften(m: torch.Tensor) -> torch.Tensor:  # no hard budget edges, hence no seams
        return gaussian_blur2d(m, k, sigma)

    if float(priority.max()) > 0:
        priority = soften(priority)
    gain = 1 + (REGION_GAIN - 1) * priority
    if user_mask is not None:
        gain = gain * (1 / 3 + 2 / 3 * soften(user_mask.to(x.device).clamp(0, 1)))
    return (base * gain).clamp(0, 1)
