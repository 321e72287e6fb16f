"""The public entry points: `protect` (an image in memory) and `protect_file`."""

from __future__ import annotations

import errno
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import check_folder_writable, overwrite_flag
from .config import ProtectConfig, config_or_default
from .errors import Cancelled, ConfigError, OutputError, OutputExistsError, UnsupportedImageError
from .pipeline import Progress, measure_saved, protect_array
from .report import Report


@dataclass
class ProtectResult:
    """The protected image and its report. Same size as the input; gray stays gray
    (16-bit gray as I;16), alpha is kept, anything else (CMYK, palette, YCbCr, ...) comes
    back RGB or RGBA."""

    image: Image.Image
    report: Report


# 32-bit float gray (values in [0, 1] would come out black or white), and colour
# spaces PIL can't turn into RGB by itself
NOT_TAKEN_MODES = ("F", "LAB", "HSV")


def protect(image: Image.Image, config: ProtectConfig | None = None, *,
            progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> ProtectResult:
    """Protect a PIL image already upright in memory. Alpha (an alpha band, a palette's or
    a colour key's transparency) is kept untouched as an alpha band; grayscale stays
    grayscale, 16-bit gray stays 16-bit (mode I;16; one with a colour key is refused, as PIL
    has no mode to return it in), a palette image comes back RGB(A).
    For files (EXIF, ICC, formats, atomic writes) use `protect_file`."""
    from .io import check_size, looks_gray, with_real_alpha

    if not isinstance(image, Image.Image):
        raise TypeError(f"protect() takes a PIL image, got {type(image).__name__}; for a "
                        "file use protect_file, for an array pipeline.protect_array")
    config = config_or_default(config)
    if image.mode in NOT_TAKEN_MODES:  # F would go to RGB through 8-bit gray: 0 or 1
        raise UnsupportedImageError(
            f"images in PIL mode {image.mode} are not supported; pass an 8- or 16-bit RGB "
            "or grayscale image")
    check_size(*image.size)  # as protect_file's load: no huge, tiny or sliver images
    image = with_real_alpha(_with_scaled_key(image))
    deep = image.mode.startswith("I")  # 16-bit (or 32-bit integer) gray
    if deep and "transparency" in image.info:  # PIL has no 16-bit gray + alpha mode
        raise UnsupportedImageError(
            "a 16-bit grayscale image with a transparent colour key can't be returned with "
            "its transparency; use protect_file, which writes it as 16-bit gray + alpha")
    grayscale = deep or image.mode in ("L", "LA", "1")
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    if deep:
        levels = np.asarray(image)
        if levels.min() < 0 or levels.max() > 65535:
            raise UnsupportedImageError("32-bit integer pixels are not supported; "
                                        "pass an 8- or 16-bit image")
        rgb = np.repeat(levels[..., None].astype(np.float32) / 65535, 3, axis=2)
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    gray_change = grayscale or looks_gray(rgb, None if alpha is None else np.asarray(alpha))
    result = protect_array(rgb, config, grayscale=gray_change,
                           progress=progress,
                           should_stop=should_stop)
    if deep:  # 16-bit in, 16-bit out (the change is whole 8-bit steps: 257 per step)
        out = Image.fromarray(np.round(result.rgb[..., 0] * 65535).astype(np.uint16))
    else:
        out = Image.fromarray(np.round(result.rgb * 255).astype(np.uint8), "RGB")
        if grayscale:
            out = out.convert("L")
    if alpha is not None:
        out = out.convert("LA" if grayscale else "RGBA")
        out.putalpha(alpha)
    return ProtectResult(out, result.report)


def _with_scaled_key(image: Image.Image) -> Image.Image:
    """A 2- or 4-bit gray PNG not loaded yet, with its tRNS key scaled as Pillow scales its
    samples (io.low_bit_gray_key); any other image as it is. A loaded one no longer says
    its depth: its key is taken as it is."""
    from .io import low_bit_gray_key

    key = image.info.get("transparency")
    if image.format != "PNG" or image.mode != "L" or not isinstance(key, int) or \
            not image.tile:
        return image
    depth = {"L;2": 2, "L;4": 4}.get(image.tile[0].args) if \
        isinstance(image.tile[0].args, str) else None
    if depth is None:
        return image
    scaled = image.copy()  # the caller's image keeps its own info
    scaled.info["transparency"] = low_bit_gray_key(key, depth)
    return scaled


SAVE_OPTIONS = frozenset({"format", "jpeg_quality", "metadata"})  # io.save_photo's
# For protect_file's progress: one attack step (at 512 px) takes about as long as 10 MP of
# the work at full resolution (applying the change, measuring it, encoding, reading a lossy
# copy back). fast on a 12 MP photo, 2-core CPU: 4 steps 2.4 s, the rest 0.8 s; 1.05 s a
# step and about 1 s for the rest on a slower one (benchmarks/speed_avx512.md, stop 61).
PIXELS_PER_STEP = 10_000_000
# Points in the work after the attack, as shares of it: saving, measuring a lossy copy as
# saved, writing the preview sheet.
SAVED_AT, MEASURING_SAVED_AT, PREVIEW_AT = 0.3, 0.6, 0.9


def attack_share(steps: int, pixels: int) -> float:
    """The share in [0.1, 0.9] of protect_file's progress bar its attack takes, for a
    photo of `pixels` pixels: at 100 MP the work at full resolution takes most of the
    time (a fixed 0.9 left the bar's estimate at a few seconds for 30-40 s there)."""
    return min(0.9, max(0.1, steps / (steps + pixels / PIXELS_PER_STEP + 0.5)))


def after_attack(share: float, point: float) -> float:
    """The progress fraction of `point` (a share of the work after the attack)."""
    return share + (1 - share) * point


def check_destination(src: Path, dst: Path, overwrite) -> None:
    """Refuse to write over the input (by any name: a hard link, another case on a
    case-insensitive disk), over a folder, or over an existing file `overwrite` does not
    allow replacing (cloak.atomic.may_replace)."""
    from .atomic import may_replace
    from .io import same_file
    from .same_path import (
        NAME_TOO_LONG_ADVICE,
        NUL_IN_NAME,
        holds_nul,
        name_too_long,
        output_reason,
    )

    if holds_nul(dst):
        raise OutputError(f"can't use the output name {os.fspath(dst)!r}: {NUL_IN_NAME}")
    if name_too_long(dst):  # its folder yet to be made: no stat below says so
        raise OutputError(f"can't use the output name {dst}: "
                          f"{os.strerror(errno.ENAMETOOLONG)}; {NAME_TOO_LONG_ADVICE}")
    try:
        if dst.is_dir():
            raise OutputError(f"output {dst} is a folder; give a file name")
        if dst.exists() and src.exists() and same_file(dst, src):
            raise OutputError(f"output {dst} is the input photo; choose another --out folder")
        exists = os.path.lexists(dst)  # a broken link there too: it is refused
        # now, not by the save after the attack's minutes
        # a file where a folder of the path should be: the save would fail after the attack
        in_a_file = next((folder for folder in dst.parents if os.path.lexists(folder)
                          and not folder.is_dir()), None)
    except OSError as exc:  # a name too long for the disk (a preview's adds 12 bytes)
        raise OutputError(f"can't use the output name {dst}: {output_reason(exc)}") from exc
    if in_a_file is not None:
        raise OutputError(f"can't write {dst}: {in_a_file} is not a folder")
    if exists and not may_replace(overwrite, dst):
        raise OutputExistsError(dst)


def check_not_the_mask(dst: Path, mask_path: str | None) -> None:
    """Refuse to write over the mask the protection reads, whatever `overwrite` says."""
    from .io import same_file

    if mask_path and same_file(dst, mask_path):
        raise OutputError(f"output {dst} is the mask file ({mask_path}); write the copy "
                          "elsewhere")


def check_save_options(save_options: dict) -> None:
    """Save options are checked before the attack, not after its minutes of work."""
    unknown = set(save_options) - SAVE_OPTIONS
    if unknown:
        raise TypeError(f"protect_file() got unexpected save options {sorted(unknown)}; "
                        f"it takes {', '.join(sorted(SAVE_OPTIONS))}")
    from .metadata import MetadataPolicy

    fmt, metadata = save_options.get("format"), save_options.get("metadata")
    if fmt is not None and not isinstance(fmt, str):
        raise TypeError(f"format must be a format name such as 'PNG', got {fmt!r}")
    if metadata is not None and not isinstance(metadata, MetadataPolicy):
        raise TypeError(f"metadata must be a cloak.metadata.MetadataPolicy, got "
                        f"{type(metadata).__name__}")
    quality = save_options.get("jpeg_quality")
    if quality is not None and not (isinstance(quality, numbers.Integral) and
                                    not isinstance(quality, bool) and 1 <= quality <= 100):
        raise ConfigError(f"JPEG quality must be a whole number in [1, 100], got {quality!r}")


def protect_file(src: str | Path, dst: str | Path, config: ProtectConfig | None = None, *,
                 overwrite: bool | Callable[[Path], bool] = False,
                 progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, make_folders: bool = True,
                 on_written: Callable[[Path], None] | None = None,
                 **save_options) -> Report:
    """Protect the photo at `src` and write it to `dst` atomically; never touches `src`.
    The report's `seconds` covers the whole job: loading, protecting, saving, measuring.

    `overwrite`: True replaces a file at `dst` (and at its preview sheet's name); a
    callable is asked, path by path, whether the file found there may be replaced, before
    the attack and again (more than once) as each file is written (a batch run's own
    earlier copy, not a file that appeared meanwhile): a quick check that answers the same
    each time, not a prompt. `make_folders` False: dst's folder is not made, nor
    made again where it went during the attack (OutputError, errno ENOENT: an app's
    chosen Save-to folder, deleted or unmounted meanwhile). `on_written(path)`: called
    with the copy's path as soon as it is written, before it is measured (a caller
    records it then: a process killed while a large copy is measured leaves it known)."""
    from . import io
    from .same_path import path_argument

    start = time.perf_counter()
    src = path_argument(src, "protect_file", "src")
    dst = path_argument(dst, "protect_file", "dst")
    config = config_or_default(config)
    overwrite = overwrite_flag(overwrite)  # read one way before the attack and after it
    if config.steps == 0:  # protect() takes it (no change: for tests); a file would be
        # marked protected without any protection
        raise ConfigError("steps must be at least 1 to write a protected copy")
    check_save_options(save_options)
    if config.metadata is not None:
        save_options.setdefault("metadata", config.metadata)
    src, dst = Path(src), io.settled_path(dst)  # new/../x.png names x.png
    check_destination(src, dst, overwrite)
    check_not_the_mask(dst, config.mask_path)
    if dst.parent.is_dir():  # a read-only folder or full disk fails now, not after the attack
        check_folder_writable(dst.parent, dst.name)
    elif not make_folders:  # a folder that was never there fails now too, said so (the
        # save's words are for a folder that went during the attack)
        error = OutputError(f"the folder {dst.parent} is not there (make_folders is False: "
                            "it is not made)")
        error.errno = errno.ENOENT
        raise error
    if config.preview:  # refuse before the work, not after the photo is written
        from .preview import preview_path

        check_destination(src, preview_path(dst), overwrite)
        check_not_the_mask(preview_path(dst), config.mask_path)
    photo = io.load_photo(src)
    io.check_writable(photo, dst, save_options.get("format"))  # before the attack
    # A lossy format (JPEG, HEIC) moves the pixels again when it encodes them, so its
    # figures are measured on the file as written, not on the pixels before the save.
    lossy = io.writes_lossy(photo, dst, save_options.get("format"))
    report_progress = progress or (lambda fraction, message: None)
    # "done" (1.0) only once the file is written; the attack's share follows the photo's
    # size. protect_array gives its attack 0.9 and the full-resolution work after it 0.1.
    share = attack_share(config.steps, photo.rgb.shape[0] * photo.rgb.shape[1])

    def attack_progress(fraction: float, message: str) -> None:
        if fraction <= 0.9:
            done = share * fraction / 0.9
        elif fraction < 1:
            done = after_attack(share, SAVED_AT * (fraction - 0.9) / 0.1)
        else:  # exactly saving's point, which a caller may watch for
            done = after_attack(share, SAVED_AT)
        report_progress(done, "saving" if message == "done" else message)

    # a black-and-white photo stored in colour gets a gray change too (colour speckle
    # would show on it), and stays a colour file
    result = protect_array(photo.rgb, config, grayscale=photo.looks_gray,
                           should_stop=should_stop, progress=attack_progress,
                           figures=not lossy)
    if should_stop is not None and should_stop():  # a cancel while figures were measured
        raise Cancelled("cancelled")
    written = io.save_photo(photo, result.rgb, dst, overwrite=overwrite,
                            make_folders=make_folders, **save_options)
    try:
        if on_written is not None:
            on_written(written)
        saved = result.rgb  # the pixels written: a lossy format's as it encoded them
        if lossy:
            # the file's own pixels replace the attack's (written; 1.2 GB at 100 MP)
            saved = result.rgb = None
            report_progress(after_attack(share, MEASURING_SAVED_AT), "measuring the saved photo")
            saved = io.load_photo(written).rgb
            measure_saved(result.report, photo.rgb, saved, config, should_stop)
        result.report.src, result.report.dst = str(src), str(written)
        if config.preview:
            from .preview import preview_path, preview_sheet, save_preview

            report_progress(after_attack(share, PREVIEW_AT), "writing the preview")
            sheet = preview_sheet(photo.rgb, saved, result.budget, alpha=photo.alpha)
            result.report.preview = str(save_preview(
                sheet, preview_path(written), overwrite, make_folders=make_folders,
                private_like=photo.path))  # it shows the photo: as private as it
        result.report.seconds = time.perf_counter() - start
        report_progress(1.0, "done")  # a caller's callback that raises here too
    except BaseException as exc:
        # The copy is written: say so to the caller (a batch run keeps it as its own,
        # to redo; a file that appeared at dst without this is someone else's).
        exc.written = str(written)
        raise
    return result.report
