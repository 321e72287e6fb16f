"""cloak.compare: one photo against its copy, as both forms of `cloak verify` measure it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from cloak.compare import compare_copy, join_notes, same_pixels_note, swapped_note

ONE_MODEL = {"channels": ("as-is",), "models": ("taesd",)}
SAME = "the copy has the same pixels as the original"


def _image(small_photo, path: Path) -> Image.Image:
    with Image.open(small_photo(path, size=(96, 64))) as im:
        return im.convert("RGB")


def test_join_notes_leaves_out_the_empty_ones():
    assert join_notes(None, "a", "", "b") == "a; b"
    assert join_notes(None, "") is None


def test_same_pixels_note_only_for_the_very_same_pixels(tmp_path, small_photo):
    original = _image(small_photo, tmp_path / "a.png")
    assert SAME in same_pixels_note(original, original.copy())
    changed = original.copy()
    changed.putpixel((0, 0), tuple(255 - v for v in changed.getpixel((0, 0))))
    assert same_pixels_note(original, changed) is None
    assert same_pixels_note(original, original.resize((48, 32))) is None


def test_a_png_copy_with_the_originals_pixels_gets_the_note_and_no_floor(
        tmp_path, small_photo, model_dir):
    original = _image(small_photo, tmp_path / "a.png")
    copy_path = tmp_path / "copy.png"
    original.save(copy_path)
    told = []
    compared = compare_copy(original, Image.open(copy_path).convert("RGB"), original_icc=None,
                            copy_icc=None, copy_path=copy_path, **ONE_MODEL,
                            progress=lambda f, what: told.append(what))
    assert compared.floor is None  # a PNG is no lossier than cloak's copy
    assert SAME in compared.verification.note
    assert compared.verification.verdict == "none"
    assert told and "the compression alone" not in told


def test_a_jpeg_saved_lossier_than_cloak_gets_its_floor_and_its_note_last(
        tmp_path, small_photo, model_dir):
    """A copy re-saved at quality 60 (and without the original's profile) is measured
    against what that compression alone does to the original; the colour note comes
    first, the floor's note last."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = _image(small_photo, tmp_path / "a.png")
    copy_path = tmp_path / "copy.jpg"
    original.save(copy_path, quality=60)
    told = []
    compared = compare_copy(original, Image.open(copy_path).convert("RGB"), original_icc=srgb,
                            copy_icc=None, copy_path=copy_path, **ONE_MODEL,
                            progress=lambda f, what: told.append(what))
    assert compared.floor is not None
    assert set(compared.floor.damage_db) == {"taesd"}
    assert told[-1] == "the compression alone"
    # (an unprotected copy: its figures are all compression, and its note says so)
    assert compared.all_compression
    floor_note, note = compared.floor.note(True), compared.verification.note
    assert floor_note and note.endswith(floor_note) and note != floor_note
    assert note.startswith("the two photos have different colour profiles")


def test_swapped_note_on_a_protected_file_given_first(tmp_path, small_photo, model_dir):
    from typer.testing import CliRunner

    from cli import app

    photo = small_photo(tmp_path / "a.png", size=(96, 64))
    out = tmp_path / "out"
    ran = CliRunner().invoke(app, ["protect", str(photo), "--out", str(out), "--strength",
                                   "fast", "--steps", "1", "--models", "taesd",
                                   "--no-measure"])
    assert ran.exit_code == 0, ran.output
    copy_path = out / "a.png"
    compared = compare_copy(Image.open(copy_path).convert("RGB"),
                            Image.open(photo).convert("RGB"), original_icc=None,
                            copy_icc=None, copy_path=photo, **ONE_MODEL)
    said = swapped_note(compared.verification, copy_path, photo)
    assert said is not None and "were they swapped?" in said
    right_way = compare_copy(Image.open(photo).convert("RGB"),
                             Image.open(copy_path).convert("RGB"), original_icc=None,
                             copy_icc=None, copy_path=copy_path, **ONE_MODEL)
    assert swapped_note(right_way.verification, photo, copy_path) is None


def test_a_copy_without_the_originals_profile_is_compared_with_a_note_first(
        tmp_path, small_photo, model_dir):
    """The original tagged sRGB, its copy untagged (a platform's): the two are brought into
    one colour space, and the note saying so comes before the copy's other notes."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = _image(small_photo, tmp_path / "a.png")
    copy_path = tmp_path / "copy.png"
    original.save(copy_path)
    compared = compare_copy(original, Image.open(copy_path).convert("RGB"), original_icc=srgb,
                            copy_icc=None, copy_path=copy_path, **ONE_MODEL)
    note = compared.verification.note
    assert note.startswith("the two photos have different colour profiles")
    assert SAME in note and note.index(SAME) > 0
    assert compared.original.size == compared.copy.size == original.size


def test_a_jpeg_copy_that_is_the_original_gets_no_floor(tmp_path, model_dir):
    """Two copies of one fine-noise JPEG (4:2:0, so "lossier than cloak"): the floor's own
    measurement, the original against its re-save, was refused as "the two photos differ
    far more than protection changes a photo", and so the pair, which has the very same
    pixels. A copy that is the original has no compression of its own to measure."""
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    copy_path = tmp_path / "copy.jpg"
    Image.fromarray(noise).save(copy_path, quality=90)
    photo = Image.open(copy_path).convert("RGB")
    compared = compare_copy(photo, photo.copy(), original_icc=None, copy_icc=None,
                            copy_path=copy_path, **ONE_MODEL)
    assert compared.floor is None and compared.verification.verdict == "none"
    assert compared.verification.note.startswith(SAME)


def test_a_floor_that_cant_be_measured_is_a_note_not_a_failed_pair(
        tmp_path, small_photo, model_dir, monkeypatch):
    """Where the original saved like the copy is refused by verify's own check (fine
    noise at 4:2:0), the copy, measured already, keeps its figures, with a note."""
    from cloak import compare
    from cloak.errors import UnsupportedImageError

    def refused(*args, **kwargs):
        raise UnsupportedImageError("the two photos differ far more than protection changes")

    monkeypatch.setattr(compare, "compression_floor", refused)
    original = _image(small_photo, tmp_path / "a.png")
    copy_path = tmp_path / "copy.jpg"
    original.save(copy_path, quality=60)
    compared = compare_copy(original, Image.open(copy_path).convert("RGB"), original_icc=None,
                            copy_icc=None, copy_path=copy_path, **ONE_MODEL)
    assert compared.floor is None and compared.verification.as_is is not None
    assert compared.verification.note.endswith("these figures are mostly compression, "
                                               "not protection")


def test_no_swap_hint_where_cloaks_note_shows_the_order_is_right(tmp_path):
    """A flat grey photo protected in one step at fast rebuilt better than its original
    (damage -1.03 dB): "were they swapped?", though the copy carries cloak's note and the
    original not. The note settles the order: no hint; given the other way round, the
    hint stays."""
    from types import SimpleNamespace

    import numpy as np

    from cloak import io

    original = tmp_path / "grey.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(original)
    photo = io.load_photo(original)
    copy = io.save_photo(photo, photo.rgb, tmp_path / "out" / "grey.png")
    assert io.says_protected_file(copy) and not io.says_protected_file(original)
    rebuilds_better = SimpleNamespace(as_is=SimpleNamespace(damage_db={"taesd": -1.03}))
    assert swapped_note(rebuilds_better, original, copy) is None
    assert "were they swapped?" in swapped_note(rebuilds_better, copy, original)
    plain = tmp_path / "plain.png"  # neither carries the note: the sign still tells
    Image.fromarray(np.full((64, 64, 3), 127, np.uint8)).save(plain)
    assert "negative damage" in swapped_note(rebuilds_better, original, plain)
