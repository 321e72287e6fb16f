"""One photo against its protected copy, as `cloak verify ORIGINAL COPY` and its folder
form measure it: both in one colour space, the verify figures, the compression floor of a
copy saved lossier than cloak saves, and the notes that explain a surprising verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from . import verify
from .channel_list import ALL_CHANNELS
from .compression import CompressionFloor, compression_floor, jpeg_settings
from .errors import UnsupportedImageError
from .models.registry import ALL_MODEL_NAMES
from .verify import Verification


@dataclass
class Comparison:
    """What compare_copy measured: `verification` (its note holds the notes below),
    `floor` (None unless the copy is a JPEG saved lossier than cloak saves), and the
    `original` and `copy` images as compared (in one colour space)."""

    verification: Verification
    floor: CompressionFloor | None
    original: Image.Image
    copy: Image.Image

    @property
    def all_compression(self) -> bool:
        """Whether the copy's figures are all its JPEG compression's (ALL_COMPRESSION_NOTE):
        its verdict then says nothing of protection."""
        return self.floor is not None and self.floor.accounts_for(self.verification)


def compare_copy(original: Image.Image, copy: Image.Image, *, original_icc: bytes | None,
                 copy_icc: bytes | None, copy_path: Path, channels: Sequence[str],
                 models: Sequence[str], model_dir: str | None = None,
                 device: str | None = None, at_1024: bool = False,
                 progress: Callable[[float, str], None] | None = None) -> Comparison:
    """Measure `copy` (read from `copy_path`) against its `original`, each an upright
    8-bit image (RGB, or RGBA with its alpha) with its ICC profile (None: sRGB): first
    brought into one colour space (comparable.in_one_colour_space), then verify_images
    on `channels` and `models` (and at long side 1024 with `at_1024`), and, for a JPEG copy
    saved lossier than cloak saves, what that compression alone does to the original
    (its floor). The verification's note joins, in this order: the colour-space note, a
    copy holding the original's very pixels, verify_images' own note, the floor's note.
    `progress(fraction, what)` is told of the verify and then of the floor."""
    from .comparable import in_one_colour_space

    original, copy, colour_note = in_one_colour_space(original, copy, original_icc, copy_icc)
    settings = jpeg_settings(copy_path)
    lossy = settings is not None and settings.lossier_than_cloak
    cache = {} if lossy else None  # the original's side, for the floor too
    verification = verify.verify_images(original, copy, channels=channels, models=models,
                                        model_dir=model_dir, device=device,
                                        progress=progress, at_1024=at_1024,
                                        clean_cache=cache)
    floor, floor_note = None, None
    same = same_pixels_note(original, copy)
    if lossy and not same:  # a copy that is the original has no compression of its own
        if progress is not None:
            progress(1.0, "the compression alone")
        try:
            floor = compression_floor(original, copy, settings, models, model_dir, device,
                                      cache, at_1024=at_1024)
        except UnsupportedImageError:  # the original saved like the copy is further from
            # it than a protected copy can be (fine noise, a tiny photo at 4:2:0): the copy
            # was measured; its figures are the compression's as much as protection's
            floor_note = ("saved as this JPEG copy is, the original alone changes more "
                          "than protection changes a photo: these figures are mostly "
                          "compression, not protection")
        else:
            floor_note = floor.note(floor.accounts_for(verification))
    verification.note = join_notes(colour_note, same, verification.note, floor_note)
    return Comparison(verification, floor, original, copy)


def verify_files(original: str | Path, copy: str | Path,
                 channels: Sequence[str] = ALL_CHANNELS,
                 models: Sequence[str] = ALL_MODEL_NAMES, model_dir: str | None = None,
                 device: str | None = None, at_1024: bool = False,
                 progress: Callable[[float, str], None] | None = None) -> Comparison:
    """`cloak verify ORIGINAL COPY` from Python: both files read as cloak reads a photo
    (upright, CMYK and 16-bit converted, with the colour profile or CICP tag each
    carries), then compare_copy, with the note the command gives where the two look
    given the wrong way round. verify_images, which takes images, compares their values
    as given (upright sRGB)."""
    from .io import load_photo
    from .same_path import path_argument

    original = path_argument(original, "verify_files", "original")
    copy = path_argument(copy, "verify_files", "copy")
    first, second = load_photo(original), load_photo(copy)
    compared = compare_copy(verify.photo_image(first), verify.photo_image(second),
                            original_icc=verify.colour_profile(first),
                            copy_icc=verify.colour_profile(second), copy_path=Path(copy),
                            channels=channels, models=models, model_dir=model_dir,
                            device=device, at_1024=at_1024, progress=progress)
    v = compared.verification
    v.note = join_notes(v.note, swapped_note(v, Path(original), Path(copy)))
    return compared


def join_notes(*notes: str | None) -> str | None:
    """The notes given (None and "" left out) joined with "; ", or None when none is."""
    return "; ".join(n for n in notes if n) or None


def same_pixels_note(original: Image.Image, copy: Image.Image) -> str | None:
    """A note where the copy holds the original's very pixels (the original copied over, or
    named twice under two names): its verdict "none" is no failure of the protection."""
    if original.size == copy.size and \
            original.convert("RGB").tobytes() == copy.convert("RGB").tobytes():
        return ("the copy has the same pixels as the original: it carries no protection "
                "(protect the photo first: cloak protect)")
    return None


def swapped_note(verification: Verification, first: Path, second: Path,
                 order: str = "ORIGINAL, then PROTECTED") -> str | None:
    """A note where `verification` of `first` against `second` looks like the two given
    the wrong way round (`order`: how they should be given), else None."""
    from . import io

    if io.says_protected_file(second) and not io.says_protected_file(first):
        # given in order, by cloak's own note: a copy with too little protection (a flat
        # photo, one step at fast) can rebuild better than its original; its verdict says
        # so, not "were they swapped?"
        return None
    as_is = verification.as_is.damage_db if verification.as_is else {}
    if as_is and max(as_is.values()) < -0.5:
        return ("the second photo rebuilds better than the first on every model (negative "
                f"damage): the order is {order}; were they swapped?")
    if io.says_protected_file(first) and not io.says_protected_file(second):
        # a copy made at fast or low may carry too little for the sign to show
        return (f"the first photo carries cloak's note and the second does not: the order "
                f"is {order}; were they swapped?")
    return None
