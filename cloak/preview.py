"""A preview sheet that shows where the perturbation went.

Three panels, each at most `panel` px on the long side, left to right:
protected | size of the change x `gain` (black = unchanged) | budget map
(white = the most noise allowed, black = none). No panel shows the original, nor lets
one rebuild it: the sheet sits in the output folder, and a 512 px unprotected copy there
is just what an editor needs, should the whole folder be uploaded. A signed difference
would be such a copy (protected minus difference is the original), so the middle panel
shows only how large the change is, averaged over R, G and B. Pure functions over
arrays; the only file writing is `save_preview`, which is atomic and never replaces a
file unasked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .atomic import Overwrite

PREVIEW_SUFFIX = ".preview.png"
# A sheet's PNG text: what a run killed between writing a sheet and recording it left is
# told from a user's file at that name (the photo's copy has cloak's note for that).
SHEET_MARK_KEY, SHEET_MARK = "Software", "cloak preview sheet"
LABEL_HEIGHT = 18
ZOOM_TO = 128  # a photo smaller than this on its short side is zoomed by whole pixels


def preview_path(dst: str | Path) -> Path:
    """Where the preview of output `dst` goes: beside it, its full name + .preview.png
    (me.jpg -> me.jpg.preview.png), so me.jpg and me.png never share one."""
    dst = Path(dst)
    return dst.with_name(dst.name + PREVIEW_SUFFIX)


def change_magnitude(original: np.ndarray, protected: np.ndarray,
                     gain: float = 10.0) -> np.ndarray:
    """(H, W, 3) float in [0, 1] each -> (H, W) uint8: gain * 255 * mean over R, G, B of
    |p - o|, clipped to 255. Without the signs, protected and this panel do not give back
    the original."""
    if original.shape != protected.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {protected.shape}")
    size = np.abs(protected.astype(np.float32) - original.astype(np.float32)).mean(axis=2)
    return np.round(np.clip(gain * size, 0, 1) * 255).astype(np.uint8)


def _to_image(rgb: np.ndarray) -> Image.Image:
    """(H, W, 3) float in [0, 1] -> 8-bit RGB image, with one float temporary."""
    scaled = np.clip(rgb, 0, 1).astype(np.float32, copy=False)
    scaled *= 255
    np.rint(scaled, out=scaled)
    return Image.fromarray(scaled.astype(np.uint8))


def _panel(img: Image.Image, size: tuple[int, int], label: str,
           resample: int) -> Image.Image:
    """The image at `size` under its label; as wide as the label at least (a tall or
    small photo's panel would cut it), the image centred."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(size[0], int(np.ceil(draw.textlength(label))) + 8)
    panel = Image.new("RGB", (width, size[1] + LABEL_HEIGHT), "white")
    panel.paste(img.convert("RGB").resize(size, resample),
                ((width - size[0]) // 2, LABEL_HEIGHT))
    ImageDraw.Draw(panel).text((4, 3), label, fill="black")
    return panel


def _checkerboard(size: tuple[int, int], square: int = 8) -> Image.Image:
    """An RGBA light-gray checkerboard of `size`: where a photo is transparent, as image
    editors show it."""
    ys, xs = np.indices((size[1], size[0]))
    light = ((ys // square + xs // square) % 2).astype(bool)
    board = np.where(light, 255, 204).astype(np.uint8)
    return Image.fromarray(np.dstack([board] * 3 + [np.full_like(board, 255)]), "RGBA")


def _opacity(alpha: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) alpha, uint8 or uint16 -> (shape) bool: where the photo shows anything
    (sampled by nearest neighbour to `shape`)."""
    ys = np.arange(shape[0]) * alpha.shape[0] // shape[0]
    xs = np.arange(shape[1]) * alpha.shape[1] // shape[1]
    return alpha[ys[:, None], xs[None, :]] > 0


def preview_sheet(original: np.ndarray, protected: np.ndarray, budget: np.ndarray | None,
                  panel: int = 512, gain: float = 10.0,
                  alpha: np.ndarray | None = None) -> Image.Image:
    """original, protected: (H, W, 3) float in [0, 1]; budget: (h, w) in [0, 1] or None;
    alpha: the photo's (H, W) alpha (uint8, or uint16 for 16 bits) or None.
    Returns one RGB image with the panels side by side (the original only through the
    size of the change, which does not give it back). Where the photo is transparent the
    sheet shows what it shows: a checkerboard, no change and no budget (colour kept
    under full transparency, an erased name, was drawn as plain as the rest)."""
    h, w = original.shape[:2]
    # larger photos shrink to `panel`; a small one is zoomed by whole pixels (NEAREST)
    # until its short side reaches ZOOM_TO, so its noise can be seen at all
    zoom = max(1, min(panel // max(h, w), ZOOM_TO // min(h, w)))
    scale = panel / max(h, w) if max(h, w) > panel else float(zoom)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # NEAREST keeps the noise's texture visible instead of averaging it away; it only
    # samples pixels, so the change is measured on every `stride`-th one (a 48 MP photo
    # would need several full-size float copies otherwise).
    stride = max(1, int(1 / scale))
    change = change_magnitude(original[::stride, ::stride], protected[::stride, ::stride],
                              gain)
    shown = _to_image(protected)
    if alpha is not None:
        change[~_opacity(alpha, change.shape)] = 0
        budget = None if budget is None else np.where(_opacity(alpha, budget.shape),
                                                      budget, 0)
        # resized as RGBA, which Pillow weights by alpha: no hidden colour at the edges
        shown.putalpha(Image.fromarray(
            (alpha >> 8).astype(np.uint8) if alpha.dtype == np.uint16 else alpha, "L"))
        shown = Image.alpha_composite(
            _checkerboard(size), shown.resize(size, Image.NEAREST if scale > 1
                                              else Image.LANCZOS))
    panels = [
        _panel(shown, size, "protected", Image.NEAREST if scale > 1 else Image.LANCZOS),
        _panel(Image.fromarray(change, "L"), size, f"change x{gain:g} (black = none)",
               Image.NEAREST),
    ]
    if budget is not None:
        gray = Image.fromarray(np.round(np.clip(budget, 0, 1) * 255).astype(np.uint8), "L")
        panels.append(_panel(gray, size, "budget map (white = most)",
                             Image.NEAREST if scale > 1 else Image.BILINEAR))
    sheet = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width
    return sheet


def save_preview(sheet: Image.Image, dst: str | Path, overwrite: Overwrite = False, *,
                 make_folders: bool = True, private_like: str | Path | None = None) -> Path:
    """Write the sheet as PNG atomically (see cloak.atomic.write_atomic; `overwrite`,
    `make_folders` and `private_like`, the original photo, as there)."""
    from PIL.PngImagePlugin import PngInfo

    from .atomic import write_atomic

    mark = PngInfo()
    mark.add_text(SHEET_MARK_KEY, SHEET_MARK)  # a killed run's sheet is known as cloak's
    return write_atomic(dst, lambda fp: sheet.save(fp, "PNG", pnginfo=mark),
                        overwrite=overwrite, make_folders=make_folders,
                        private_like=private_like)


def is_cloak_sheet(path: str | Path) -> bool:
    """Whether the file at `path` is a preview sheet cloak wrote (a PNG with cloak's mark);
    False for any other file, or one that can't be read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO's open() would wait forever
            return False
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get(SHEET_MARK_KEY) == SHEET_MARK
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
