"""cloak.compression: how much of a JPEG copy's measured damage its own compression
accounts for (the floor `cloak verify` notes), on real weights and a real photo (256x128:
verify measures it at 512x256, half the round-trip time of a square one)."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

import cli
from cloak.compression import (
    FLOOR_NOTE_DB,
    compression_floor,
    estimate_quality,
    jpeg_settings,
    saved_like,
)
from cloak.verify import verify_images


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


@pytest.mark.parametrize("quality", [10, 50, 70, 85, 95])
@pytest.mark.parametrize("subsampling", [0, 2])
def test_a_jpeg_s_quality_and_chroma_are_read_back(tmp_path, small_photo, quality,
                                                    subsampling):
    path = tmp_path / "c.jpg"
    Image.open(small_photo(tmp_path / "p.png")).save(path, quality=quality,
                                                     subsampling=subsampling)
    settings = jpeg_settings(path)
    assert (settings.quality, settings.subsampling) == (quality, subsampling)
    # cloak's own JPEG (95, 4:4:4) is the only one here not lossier than cloak's
    assert settings.lossier_than_cloak == (quality < 95 or subsampling != 0)


def test_other_formats_and_unreadable_files_have_no_jpeg_settings(tmp_path, small_photo):
    assert jpeg_settings(small_photo(tmp_path / "p.png")) is None
    assert jpeg_settings(small_photo(tmp_path / "p.webp")) is None
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    assert jpeg_settings(tmp_path / "bad.jpg") is None
    assert jpeg_settings(tmp_path / "missing.jpg") is None


def test_a_table_between_two_qualities_takes_the_nearest(tmp_path, small_photo):
    path = tmp_path / "c.jpg"
    Image.open(small_photo(tmp_path / "p.png")).save(path, quality=60)
    table = jpeg_settings(path).qtables[0]
    assert estimate_quality([v + 1 for v in table]) in (58, 59)  # coarser: lower quality


def test_saving_like_a_copy_gives_the_copy_s_own_pixels(tmp_path, small_photo):
    """The original saved with a JPEG copy's tables and subsampling is that copy, pixel
    for pixel (same encoder): the floor measures exactly the compression."""
    original = Image.open(small_photo(tmp_path / "p.png", size=(96, 64))).convert("RGB")
    path = tmp_path / "c.jpg"
    original.save(path, quality=40, subsampling=2)
    resaved = saved_like(original, jpeg_settings(path))
    assert resaved.size == original.size
    assert resaved.tobytes() == Image.open(path).convert("RGB").tobytes()


def test_the_floor_of_an_unprotected_copy_is_its_whole_damage(tmp_path, small_photo):
    """An unprotected original saved at quality 40 measures as much damage as its own
    floor (it is all compression), model by model, at 512 and 1024 px, and the floor is
    noted; sharing the clean cache with the copy's measurement changes nothing."""
    original = Image.open(small_photo(tmp_path / "p.png", size=(256, 128))).convert("RGB")
    path = tmp_path / "c.jpg"
    original.save(path, quality=40)
    copy = Image.open(path).convert("RGB")
    models = ("taef2",)  # measured at 512 and 1024 px
    cache: dict = {}
    measured = verify_images(original, copy, ("as-is",), models=models, at_1024=True,
                             clean_cache=cache)
    floor = compression_floor(original, copy, jpeg_settings(path), models, clean_cache=cache)
    alone = compression_floor(original, copy, jpeg_settings(path), models)
    assert floor.damage_db == measured.as_is.damage_db == alone.damage_db
    assert floor.damage_at_1024 == {}  # asked at 512 only
    at_1024 = compression_floor(original, copy, jpeg_settings(path), models,
                                clean_cache=cache, at_1024=True)
    assert at_1024.damage_at_1024 == measured.damage_at_1024
    assert at_1024.highest_db >= FLOOR_NOTE_DB, at_1024  # quality 40 does reach a verdict
    assert "quality 40, 4:2:0 chroma" in at_1024.note()
    assert "compression, not protection" in at_1024.note()


def test_verify_notes_the_floor_of_a_lossy_jpeg_copy_only(tmp_path, small_photo):
    """cloak verify on an unprotected photo re-saved at quality 40 says how much of its
    figures compression alone gives, and keeps the floor in --json; cloak's own JPEG
    copy (quality 95, 4:4:4) is not measured twice."""
    original = small_photo(tmp_path / "p.png", size=(256, 128))
    lossy = tmp_path / "lossy.jpg"
    Image.open(original).save(lossy, quality=40)
    report = tmp_path / "r.json"
    result = invoke("verify", original, lossy, "--models", "taef2", "--channels",
                    "as-is", "--json", report)
    assert result.exit_code == 0, result.output
    # an unprotected copy is all compression: said so, on the verdict's line too, and
    # not told to "protect the original again" as if it carried some protection
    assert "quality 40" in result.output and "all of these figures are compression" \
        in result.output
    assert "(all of it compression: see the note)" in result.stdout
    assert "protect the original again" not in result.output
    data = json.loads(report.read_text())
    floor = data["compression_floor"]
    assert (floor["jpeg_quality"], floor["subsampling"]) == (40, "4:2:0")
    as_is = next(c for c in data["channels"] if c["channel"] == "as-is")
    assert floor["damage_db"] == as_is["damage_db"]
    assert floor["damage_at_1024"] == data["damage_at_1024"]
    assert "all of these figures are compression" in data["note"]
    assert data["all_compression"] is True

    own = tmp_path / "protected" / "p.jpg"
    Image.open(original).save(tmp_path / "p.jpg", quality=95)
    made = invoke("protect", tmp_path / "p.jpg", "--out", own.parent, "--strength", "fast",
                  "--steps", "1", "--models", "taesd", "--editor-sizes", "128", "--no-measure")
    assert made.exit_code == 0, made.output
    result = invoke("verify", tmp_path / "p.jpg", own, "--models", "taesd", "--channels",
                    "as-is", "--json", report)
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["compression_floor"] is None
    assert json.loads(report.read_text())["all_compression"] is False
    assert "compression" not in result.output


def test_a_weak_copy_that_is_all_compression_gets_no_protect_again_advice(tmp_path):
    """The helper's case: d08 at 240x300 (JPEG 92), never protected, re-saved at quality
    70, read "weak" on taesd (0.65 dB, its floor 0.66) and was told to "protect the
    original again with --strength high". That advice is for a copy that carries some
    protection; this one carries none beyond compression. The folder comparison's row
    keeps `all_compression` too."""
    from conftest import PHOTOS, missing

    source = PHOTOS / "d08_face_recognition_obama.jpg"
    if not source.is_file():
        missing(f"no {source}")
    originals, copies = tmp_path / "originals", tmp_path / "copies"
    originals.mkdir()
    copies.mkdir()
    Image.open(source).convert("RGB").resize((240, 300), Image.Resampling.LANCZOS).save(
        originals / "p.jpg", quality=92)
    Image.open(originals / "p.jpg").save(copies / "p.jpg", quality=70)
    report = tmp_path / "r.json"
    result = invoke("verify", originals / "p.jpg", copies / "p.jpg", "--models", "taesd",
                    "--channels", "as-is", "--json", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["verdict"] == "weak" and data["all_compression"] is True, data
    assert "(all of it compression: see the note)" in result.stdout
    assert "protect the original again" not in result.output
    result = invoke("verify", originals, copies, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(report.read_text())["pairs"]
    assert row["all_compression"] is True
    assert "(all of it compression: see the note)" in result.stdout


def test_a_copy_is_all_compression_only_where_no_model_measures_above_its_floor(
        tmp_path, small_photo):
    """accounts_for: every model's damage as is (and at 1024 px where the floor has it)
    no more than the floor's plus BEYOND_FLOOR_DB, and a floor that reaches a verdict. A
    protected copy re-saved at quality 70 measured 4.15 dB on taesd over a 0.66 floor."""
    from types import SimpleNamespace

    from cloak.compression import BEYOND_FLOOR_DB, CompressionFloor

    path = tmp_path / "c.jpg"
    Image.open(small_photo(tmp_path / "p.png")).save(path, quality=70)
    floor = CompressionFloor(jpeg_settings(path), {"taesd": 0.66, "taef2": 2.5},
                             {"taef2": 3.8})

    def copy(taesd: float, taef2: float, at_1024: float | None = 3.8):
        return SimpleNamespace(as_is=SimpleNamespace(damage_db={"taesd": taesd,
                                                                "taef2": taef2}),
                               damage_at_1024={} if at_1024 is None else {"taef2": at_1024})

    assert floor.accounts_for(copy(0.66, 2.5))
    assert floor.accounts_for(copy(0.66 + BEYOND_FLOOR_DB, 2.4))
    assert not floor.accounts_for(copy(4.15, 2.5))  # protection on one model is enough
    assert not floor.accounts_for(copy(0.66, 2.5, at_1024=4.5))
    assert not floor.accounts_for(copy(0.66, 2.5, at_1024=None))  # not measured there
    assert not floor.accounts_for(SimpleNamespace(as_is=None, damage_at_1024={}))
    low = CompressionFloor(jpeg_settings(path), {"taesd": 0.2}, {})  # under any verdict
    assert not low.accounts_for(copy(0.2, 0.0))
    assert "all of these figures are compression" in floor.note(True)
    assert "compression, not protection" in floor.note(False)


def test_gray_files_read_as_gray_and_cloak_s_own_gray_copy_is_not_lossier(tmp_path,
                                                                           small_photo):
    gray = Image.open(small_photo(tmp_path / "p.png")).convert("L")
    for quality in (95, 60):
        gray.save(tmp_path / "g.jpg", quality=quality)
        settings = jpeg_settings(tmp_path / "g.jpg")
        assert (settings.subsampling, settings.quality, len(settings.qtables)) == (
            None, quality, 1)
        assert settings.lossier_than_cloak == (quality == 60)
        assert settings.describe() == f"about quality {quality}, in gray"
        assert saved_like(gray, settings).tobytes() == \
            Image.open(tmp_path / "g.jpg").convert("RGB").tobytes()


def test_a_gray_jpeg_whose_table_is_not_number_0_is_read(tmp_path, small_photo):
    """JPEG allows table ids 0-3; a gray file whose one table is id 1 (its frame header
    naming it) decodes, and its table is taken from where the component points."""
    gray = Image.open(small_photo(tmp_path / "p.png")).convert("L")
    gray.save(tmp_path / "g.jpg", quality=70)
    data = bytearray((tmp_path / "g.jpg").read_bytes())
    dqt, sof = data.find(b"\xff\xdb"), data.find(b"\xff\xc0")
    data[dqt + 4] = 1  # the table's id (low nibble of the byte after the length)
    data[sof + 12] = 1  # the one component's table id
    (tmp_path / "t1.jpg").write_bytes(bytes(data))
    settings = jpeg_settings(tmp_path / "t1.jpg")
    assert settings.quality == 70 and settings.subsampling is None


def test_cmyk_jpegs_get_no_floor(tmp_path, small_photo):
    Image.open(small_photo(tmp_path / "p.png")).convert("CMYK").save(tmp_path / "c.jpg",
                                                                      quality=70)
    assert jpeg_settings(tmp_path / "c.jpg") is None


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("subsampling", [1, 2])
def test_a_turned_copy_is_saved_like_the_file_in_its_stored_layout(tmp_path, small_photo,
                                                                    orientation, subsampling):
    """A copy stored turned with an EXIF orientation (a phone's) and 4:2:2 or 4:2:0
    chroma: the upright original saved like it is that copy as read, pixel for pixel
    (saved upright instead, the subsampling would run the other way and the blocks fall
    elsewhere)."""
    from cloak.io import load_photo
    from cloak.verify import photo_image

    original = Image.open(small_photo(tmp_path / "p.png", size=(100, 60))).convert("RGB")
    stored = original.transpose({3: Image.Transpose.ROTATE_180,
                                 6: Image.Transpose.ROTATE_90,
                                 8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "c.jpg"
    stored.save(path, quality=60, subsampling=subsampling, exif=exif)
    copy = photo_image(load_photo(path)).convert("RGB")
    assert copy.size == original.size
    settings = jpeg_settings(path)
    assert settings.orientation == orientation
    assert saved_like(original, settings).tobytes() == copy.tobytes()


@pytest.mark.parametrize("background", [(0, 0, 0), (255, 255, 255)])
def test_a_transparent_original_is_flattened_as_verify_pairs_it(tmp_path, background,
                                                                small_photo):
    """A transparent PNG and its JPEG copy flattened onto black (or white): the floor is
    the copy's own damage, the original flattened the way verify pairs them."""
    rgb = Image.open(small_photo(tmp_path / "p.png", size=(256, 128))).convert("RGB")
    original = rgb.copy()
    alpha = Image.new("L", rgb.size, 255)
    alpha.paste(0, (0, 0, 96, 128))
    original.putalpha(alpha)
    flat = Image.new("RGB", rgb.size, background)
    flat.paste(rgb, mask=alpha)
    path = tmp_path / "c.jpg"
    flat.save(path, quality=50)
    copy = Image.open(path).convert("RGB")
    measured = verify_images(original, copy, ("as-is",), models=("taesd",))
    floor = compression_floor(original, copy, jpeg_settings(path), ("taesd",))
    assert floor.damage_db == measured.as_is.damage_db


def test_the_folder_comparison_measures_each_lossy_copy_s_floor(tmp_path, small_photo):
    """cloak verify ORIGINALS/ DOWNLOADED/: a copy re-saved as JPEG since (p.png's copy
    p.jpg, paired by its stem) gets its floor at 512 px, in its row and its note; a copy
    that is no JPEG gets none."""
    original = small_photo(tmp_path / "orig" / "p.png", size=(256, 128))
    small_photo(tmp_path / "orig" / "q.png", size=(256, 128), index=1)
    (tmp_path / "dl").mkdir()
    Image.open(original).save(tmp_path / "dl" / "p.jpg", quality=40)
    Image.open(tmp_path / "orig" / "q.png").save(tmp_path / "dl" / "q.png")
    report = tmp_path / "r.json"
    result = invoke("verify", tmp_path / "orig", tmp_path / "dl", "--models", "taef2",
                    "--channels", "as-is", "--json", report)
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(report.read_text())["pairs"]}
    floor = rows["p.jpg"]["compression_floor"]
    as_is = next(c for c in rows["p.jpg"]["channels"] if c["channel"] == "as-is")
    assert floor["jpeg_quality"] == 40 and floor["damage_at_1024"] == {}
    assert floor["damage_db"] == as_is["damage_db"]
    assert rows["q.png"]["compression_floor"] is None
    # the line of a copy under another name than its original's names the original too
    assert f"p.jpg (original {tmp_path / 'orig' / 'p.png'}): " in result.stdout and "q.png: " in result.stdout
    assert "q.png (original" not in result.stdout


def test_a_black_and_white_jpeg_copy_s_floor_is_its_whole_damage(tmp_path, small_photo):
    """An unprotected colour photo saved black and white at quality 40 (a gray JPEG):
    the floor makes the original black and white as verify does, then saves it like
    the copy, so it measures what the copy does."""
    original = Image.open(small_photo(tmp_path / "p.png", size=(256, 128))).convert("RGB")
    path = tmp_path / "g.jpg"
    original.convert("L").save(path, quality=40)
    copy = Image.open(path).convert("RGB")
    measured = verify_images(original, copy, ("as-is",), models=("taesd",))
    assert "black and white" in measured.note
    floor = compression_floor(original, copy, jpeg_settings(path), ("taesd",))
    assert floor.settings.subsampling is None
    assert floor.damage_db == measured.as_is.damage_db


@pytest.mark.parametrize("kind", ["colour", "transparent", "black and white"])
def test_the_floor_re_saves_the_original_not_the_copy(tmp_path, small_photo, kind):
    """The tests above give an unprotected copy, whose floor is the copy itself whatever
    the floor re-saves. Here the copy is changed (±8/255) before its JPEG save: the floor
    is the original, paired as verify pairs it (flattened onto the copy's black, made
    black and white), saved like the copy; not the copy, whose damage is larger."""
    import numpy as np

    rgb = Image.open(small_photo(tmp_path / "p.png", size=(256, 128))).convert("RGB")
    original, paired = rgb, rgb
    if kind == "transparent":
        alpha = Image.new("L", rgb.size, 255)
        alpha.paste(0, (0, 0, 96, 128))
        original = rgb.copy()
        original.putalpha(alpha)
        paired = Image.new("RGB", rgb.size, (0, 0, 0))
        paired.paste(rgb, mask=alpha)
    noise = np.random.default_rng(0).choice([-8, 8], (rgb.height, rgb.width, 3))
    changed = Image.fromarray(np.clip(np.asarray(paired, np.int16) + noise, 0, 255)
                              .astype(np.uint8))
    path = tmp_path / "c.jpg"
    if kind == "black and white":
        paired = rgb.convert("L")
        changed = changed.convert("L")
    changed.save(path, quality=40)
    copy = Image.open(path).convert("RGB")
    settings = jpeg_settings(path)
    measured = verify_images(original, copy, ("as-is",), models=("taesd",))
    floor = compression_floor(original, copy, settings, ("taesd",))
    expected = verify_images(original, saved_like(paired.convert("RGB"), settings),
                             ("as-is",), models=("taesd",))
    assert floor.damage_db == expected.as_is.damage_db
    assert floor.damage_db["taesd"] < measured.as_is.damage_db["taesd"] - 0.1


def test_the_floor_of_an_enlarged_unprotected_copy_is_its_whole_damage(tmp_path, small_photo):
    """A small photo enlarged (as a platform enlarges one under 320 px wide), then saved
    at quality 40: verify shrinks the copy back, and the floor must be the original
    treated the same way, not the original saved at its own size (that said 1.85 dB of a
    0.38 dB copy was compression)."""
    original = Image.open(small_photo(tmp_path / "p.png", size=(128, 64))).convert("RGB")
    path = tmp_path / "big.jpg"
    original.resize((256, 128), Image.LANCZOS).save(path, quality=40)
    copy = Image.open(path).convert("RGB")
    models = ("taesd",)
    measured = verify_images(original, copy, ("as-is",), models=models)
    assert "it was shrunk to the original's size" in measured.note
    floor = compression_floor(original, copy, jpeg_settings(path), models)
    assert floor.damage_db == measured.as_is.damage_db, (floor, measured.as_is)
