"""`--preview`: a sheet beside each output showing the protected photo, the size of the
change amplified, and the budget map (never the original, nor a way back to it)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import cli
from cloak.preview import LABEL_HEIGHT, change_magnitude, preview_path, preview_sheet


def test_change_magnitude_is_black_where_nothing_changed():
    original = np.full((4, 5, 3), 0.5, np.float32)
    protected = original.copy()
    protected[0, 0] += np.array([4, -4, 1], np.float32) / 255
    size = change_magnitude(original, protected, gain=10)
    assert size.dtype == np.uint8 and size.shape == (4, 5)
    assert (size.ravel()[1:] == 0).all()
    assert size[0, 0] == 30  # 10 * mean(4, 4, 1)
    with pytest.raises(ValueError):
        change_magnitude(original, protected[:2])


def test_the_sheet_does_not_give_back_the_original():
    """Opposite perturbations of one photo give the same middle panel: protected plus the
    sheet can't tell which way each pixel moved, so the original can't be rebuilt from an
    uploaded output folder (a signed difference would give it back exactly)."""
    rng = np.random.default_rng(3)
    original = (0.1 + 0.8 * rng.random((40, 140, 3))).astype(np.float32)
    delta = rng.choice([-8, 8], size=original.shape).astype(np.float32) / 255
    sheets = [np.asarray(preview_sheet(original, original + d, None, panel=256))
              for d in (delta, -delta)]
    middle = [s[18:, 140:280] for s in sheets]  # panels as wide as the photo's 140 px
    assert np.array_equal(middle[0], middle[1]) and middle[0].max() > 0


def test_sheet_has_three_panels_at_most_panel_px_tall_and_no_original():
    rng = np.random.default_rng(0)
    original = rng.random((300, 200, 3), dtype=np.float32) * 0.9
    sheet = preview_sheet(original, original, np.ones((60, 40)), panel=150)
    assert sheet.height == 150 + 18
    # 100 px panels, the two with longer labels widened to them (124 and 123 px + 8)
    assert sheet.width == 100 + 132 + 131
    assert preview_sheet(original, original, None, panel=150).width == 100 + 132
    # The first panel is the protected photo: an unprotected copy never sits in OUT.
    protected = original + 0.1
    first = np.asarray(preview_sheet(original, protected, None, panel=150))[18:, :100]
    expected = np.asarray(Image.fromarray(np.round(protected * 255).astype(np.uint8))
                          .resize((100, 150), Image.LANCZOS))
    assert np.abs(first.astype(int) - expected).max() <= 1


def test_a_large_photos_change_panel_shows_where_it_changed():
    """A photo 8x the panel: the change is sampled, not measured on full-size copies, and
    still lands where it is (top half changed by 4/255 -> 10 * 4 = 40 gray)."""
    original = np.full((1200, 1600, 3), 0.5, np.float32)
    protected = original.copy()
    protected[:600] += 4 / 255
    sheet = np.asarray(preview_sheet(original, protected, None, panel=200))
    change = sheet[18:, 200:400, 0].astype(int)
    assert change.shape == (150, 200)
    assert (np.abs(change[:70] - 40) <= 1).all() and (change[80:] == 0).all()


def test_preview_path_sits_beside_the_output(tmp_path):
    assert preview_path(tmp_path / "a b.jpg") == tmp_path / "a b.jpg.preview.png"


def test_cli_preview_writes_a_sheet_showing_the_noise(tmp_path, small_photo, model_dir):
    src = small_photo(tmp_path / "in" / "me.jpg", size=(96, 64))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.app, [
        "protect", str(src), "--out", str(out), "--strength", "fast", "--steps", "2",
        "--models", "taesd", "--editor-sizes", "128", "--no-measure", "--preview"])
    assert result.exit_code == 0, result.output
    sheet_path = out / "me.jpg.preview.png"
    assert (out / "me.jpg").is_file() and sheet_path.is_file()
    with Image.open(sheet_path) as sheet:
        # under 128 px on its short side: zoomed 2x, by whole pixels
        assert sheet.size == (3 * 192, 128 + 18)
        change_panel = np.asarray(sheet.convert("RGB"))[18:, 192:2 * 192:2, :][::2].astype(int)
    assert change_panel.max() > 20  # the perturbation is visible, amplified
    # the change shown is the saved JPEG's, encoder included, not the pixels before it
    from cloak import io

    shown = change_magnitude(io.load_photo(src).rgb, io.load_photo(out / "me.jpg").rgb,
                             gain=10)
    assert np.abs(change_panel[..., 0] - shown.astype(int)).max() <= 1
    # verify given the sheet for the copy (or alone) refuses it, naming the copy
    for args in ([str(src), str(sheet_path)], [str(sheet_path)]):
        result = CliRunner().invoke(cli.app, ["verify", *args, "--models", "taesd"])
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [
            (f"error: {sheet_path} is a preview sheet cloak wrote beside a copy (the copy, "
            "its change and its budget map side by side, *.preview.png), not a photo to "
            f"measure; give the copy itself, {out / 'me.jpg'}")]


def test_an_existing_preview_is_refused_before_any_work(tmp_path, small_photo, tiny_config):
    from cloak import OutputError, protect_file

    src = small_photo(tmp_path / "me.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "me.png.preview.png").write_bytes(b"mine")
    with pytest.raises(OutputError, match="already exists"):
        protect_file(src, tmp_path / "out" / "me.png", tiny_config.replace(preview=True))
    assert not (tmp_path / "out" / "me.png").exists()
    assert (tmp_path / "out" / "me.png.preview.png").read_bytes() == b"mine"


def test_same_stem_photos_get_their_own_previews_and_overwrite_reaches_them(
        tmp_path, small_photo, model_dir):
    photos = [small_photo(tmp_path / "in" / "me.jpg"), small_photo(tmp_path / "in" / "me.png")]
    out = tmp_path / "out"
    args = ["protect", *map(str, photos), "--out", str(out), "--strength", "fast",
            "--steps", "1", "--models", "taesd", "--editor-sizes", "128", "--no-measure",
            "--preview"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {
        "me.jpg", "me.png", "me.jpg.preview.png", "me.png.preview.png"}
    (out / "me.png").unlink()  # the preview of a removed output is left behind
    before = (out / "me.png.preview.png").stat().st_ino
    result = CliRunner().invoke(cli.app, args)  # the sheet is cloak's: made again with it
    assert result.exit_code == 0, result.output
    assert (out / "me.png").is_file()
    assert (out / "me.png.preview.png").stat().st_ino != before  # a new file moved in
    (out / "me.png").unlink()
    (out / "me.png.preview.png").write_bytes(b"mine")  # not cloak's: never replaced unasked
    assert CliRunner().invoke(cli.app, args).exit_code == 2
    assert (out / "me.png.preview.png").read_bytes() == b"mine"
    result = CliRunner().invoke(cli.app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "me.png").is_file()
    with Image.open(out / "me.png.preview.png") as sheet:  # made again: a sheet, not ours
        sheet.load()


def test_a_copy_named_as_another_photos_sheet_is_refused_before_any_work(
        tmp_path, small_photo, model_dir):
    """a.jpg.preview.gif's copy is a.jpg.preview.png, a.jpg's sheet: with --overwrite one
    silently replaced the other (the run said both were protected); without it a.jpg
    failed on a file this very run had written. The GIF is refused up front; a.jpg keeps
    its copy and its sheet, in either order and from a folder."""
    photo = small_photo(tmp_path / "in" / "a.jpg")
    gif = tmp_path / "in" / "a.jpg.preview.gif"
    Image.open(small_photo(tmp_path / "g.png", index=1)).convert("P").save(gif)
    tiny = ["--strength", "fast", "--steps", "1", "--models", "taesd", "--editor-sizes",
            "128", "--no-measure", "--preview"]
    for n, inputs in enumerate(([gif, photo], [tmp_path / "in"])):
        out = tmp_path / f"out{n}"
        result = CliRunner().invoke(cli.app, ["protect", *map(str, inputs), "--out",
                                              str(out), *tiny, "--overwrite"])
        assert result.exit_code == 2, result.output
        assert "is also the name of the preview sheet of" in result.output
        assert "1 protected, 1 failed" in result.output
        folder = out if n == 0 else out / "in"
        assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == {
            "a.jpg", "a.jpg.preview.png"}
        with Image.open(folder / "a.jpg.preview.png") as sheet:  # a.jpg's sheet, not
            assert sheet.width > 2 * Image.open(photo).width  # the GIF's copy



def test_a_copy_named_as_a_sheet_made_in_an_earlier_run_is_refused(
        tmp_path, small_photo, model_dir):
    """The same clash over two runs, either way round. a.jpg with --preview first: the
    GIF's run called a.jpg's sheet "not made by cloak (it may be a photo of yours)", and
    --overwrite, as advised, replaced it. The GIF first: a.jpg's --preview run said to
    pass --overwrite, which replaced the GIF's protected copy with a sheet. Both are
    refused now, even with --overwrite and --force, and the file there stays."""
    photo = small_photo(tmp_path / "in" / "a.jpg")
    gif = tmp_path / "in" / "a.jpg.preview.gif"
    Image.open(small_photo(tmp_path / "g.png", index=1)).convert("P").save(gif)
    tiny = ["--strength", "fast", "--steps", "1", "--models", "taesd", "--editor-sizes",
            "128", "--no-measure"]

    def protect(src, out, *more):
        return CliRunner().invoke(cli.app, ["protect", str(src), "--out", str(out), *tiny,
                                            *more])

    for first, then, more in ((photo, gif, ()), (gif, photo, ("--preview",))):
        out = tmp_path / f"out-{first.suffix[1:]}"
        made = protect(first, out, "--preview")
        assert made.exit_code == 0, made.output
        there = (out / "a.jpg.preview.png").read_bytes()
        for asked in ((), ("--overwrite",), ("--force",)):
            result = protect(then, out, *more, *asked)
            assert result.exit_code == 2 and "0 protected, 1 failed" in result.output
            assert "even with --overwrite" in result.output, result.output
            assert "not made by cloak" not in result.output
            assert (out / "a.jpg.preview.png").read_bytes() == there
    result = protect(photo, tmp_path / "out-gif")  # without --preview: no clash
    assert result.exit_code == 0 and "1 protected" in result.output


def test_labels_fit_on_a_tall_photo_and_a_tiny_one_is_zoomed():
    """A 1:16 photo's panels were 32 px wide and a 16x16 photo's 16 px: every label cut
    off, and the tiny photo's noise too small to see. Panels are now as wide as their
    labels (the image centred), and a photo under 128 px is zoomed by whole pixels."""
    from PIL import ImageDraw

    labels = ("protected", "change x10 (black = none)", "budget map (white = most)")
    for shape in ((1024, 64, 3), (16, 16, 3)):
        rng = np.random.default_rng(0)
        original = rng.random(shape, dtype=np.float32)
        protected = np.clip(original + rng.choice([-8, 8], shape) / 255, 0, 1)
        sheet = preview_sheet(original, protected, np.ones(shape[:2], np.float32))
        draw = ImageDraw.Draw(sheet)
        assert sheet.width >= sum(draw.textlength(label) for label in labels), shape
    tiny = preview_sheet(original, protected, np.ones((16, 16), np.float32))
    assert tiny.height == 128 + LABEL_HEIGHT  # zoomed 8x, as whole pixels
    panel = np.asarray(tiny)[LABEL_HEIGHT:, :128]  # the first panel: the photo, 128 px
    block = panel[:8, :8]
    assert (block == block[0, 0]).all()  # one photo pixel, 8x8 screen pixels


def test_colour_kept_under_full_transparency_is_not_drawn(tmp_path, small_photo, model_dir):
    """An RGBA photo whose left half was erased (alpha 0) but keeps its colour there, as
    some editors leave it: the sheet drew the hidden half (an erased name, say) as plainly
    as the rest, and its change and budget panels traced it. It shows a checkerboard
    there now, no change and no budget; the copy keeps its alpha as it was."""
    from cloak import ProtectConfig, protect_file

    with Image.open(small_photo(tmp_path / "p.png", size=(96, 64))) as im:
        rgba = np.asarray(im.convert("RGB")).copy()
    rgba[:, :48] = (255, 0, 0)  # hidden red under alpha 0
    alpha = np.full((64, 96), 255, np.uint8)
    alpha[:, :48] = 0
    src = tmp_path / "erased.png"
    Image.fromarray(np.dstack([rgba, alpha]), "RGBA").save(src)
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                           faces=False, measure=False, preview=True)
    out = tmp_path / "out" / "erased.png"
    protect_file(src, out, config)
    with Image.open(out) as copy:
        assert (np.asarray(copy)[:, :48, 3] == 0).all()  # kept, as it was
    with Image.open(preview_path(out)) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).astype(int)
    zoom = 2  # 64 px tall: zoomed by whole pixels to 128
    hidden = pixels[LABEL_HEIGHT:, : 48 * zoom]
    assert not ((hidden[..., 0] > 200) & (hidden[..., 1] < 80)).any()  # no red at all
    assert set(np.unique(hidden)) <= {204, 255}  # the checkerboard alone
    panel = 96 * zoom  # each panel as wide as the zoomed photo (its label is shorter)
    change = pixels[LABEL_HEIGHT:, panel: panel + 48 * zoom]
    assert (change == 0).all()  # no change drawn where nothing shows
    shown = pixels[LABEL_HEIGHT:, 48 * zoom + 4: 96 * zoom - 4]
    assert not set(np.unique(shown)) <= {204, 255}  # the visible half is drawn
    direct = preview_sheet(np.zeros((64, 96, 3)), np.zeros((64, 96, 3)) + 0.5, None,
                           alpha=(alpha.astype(np.uint16) * 257))  # 16-bit alpha too
    assert np.asarray(direct)[LABEL_HEIGHT + 4, 4].tolist() in ([204] * 3, [255] * 3)


def test_a_half_transparent_16_bit_photo_is_drawn_half_over_the_checkerboard():
    """A 16-bit PNG's alpha of 0x8000 (half transparent, a soft shadow) is 128 in 8 bits:
    cut to its low byte instead, it read as 0, and the photo panel showed the bare
    checkerboard, as if nothing were there."""
    photo = np.zeros((64, 96, 3), np.float32)  # black, half over the checkerboard
    alpha = np.full((64, 96), 0x8000, np.uint16)
    sheet = np.asarray(preview_sheet(photo, photo, None, alpha=alpha)).astype(int)
    shown = sheet[LABEL_HEIGHT:, : 96 * 2]  # zoomed 2x, to 128 px tall
    # neither the bare checkerboard (204, 255) nor the black photo: each square halved
    assert ((shown > 90) & (shown < 140)).all(), np.unique(shown)


def test_no_budget_is_drawn_where_the_photo_is_fully_transparent():
    """The budget map traced the erased half of a photo (alpha 0) as plainly as the rest:
    a shape nobody sees, drawn on a sheet that sits beside the copy. It is black (no
    budget) there now, as the change panel is."""
    photo = np.full((64, 96, 3), 0.5, np.float32)
    alpha = np.full((64, 96), 255, np.uint8)
    alpha[:, :48] = 0
    sheet = np.asarray(preview_sheet(photo, photo, np.ones((64, 96), np.float32),
                                     alpha=alpha)).astype(int)
    panel = 96 * 2  # zoomed 2x; each panel as wide as the photo (its label is shorter)
    assert sheet.shape[1] == 3 * panel
    budget = sheet[LABEL_HEIGHT:, 2 * panel:]
    assert (budget[:, : 48 * 2] == 0).all()  # erased: no budget
    assert (budget[:, 48 * 2:] == 255).all()  # shown: the whole budget


def test_a_sheet_is_known_by_its_record_or_by_its_mark_beside_its_copy(
        tmp_path, small_photo, tiny_config):
    """What batch._sheet_for takes for another copy's sheet (refused even with
    --overwrite), and what _is_a_copy takes for another photo's copy: the sheet the
    record lists for a copy (as its sheet, or the one a redo will replace), else a file
    with cloak's sheet mark beside that copy; a copy as the record lists it, not a file
    put at its name since."""
    from cloak import batch
    from cloak.batch import _is_a_copy, _sheet_for
    from cloak.manifest import Manifest, identity

    out = tmp_path / "out"
    batch.run(batch.plan([small_photo(tmp_path / "a.png")], out), out,
              tiny_config.replace(preview=True))
    copy, sheet = out / "a.png", preview_path(out / "a.png")
    manifest = Manifest(out)
    assert _sheet_for(sheet, manifest) == copy  # recorded, and marked
    assert _sheet_for(copy, manifest) is None  # not a sheet's name
    entry = manifest.get(copy)
    listed = dict(entry)
    manifest.entries.pop(manifest.key(copy))
    assert _sheet_for(sheet, manifest) == copy  # the record lost: its mark, beside it
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    sheet.write_bytes(plain.read_bytes())  # no mark: the record alone says so
    assert _sheet_for(sheet, manifest) is None
    for key in ("preview", "earlier_preview"):
        manifest.entries[manifest.key(copy)] = {
            **{k: v for k, v in listed.items() if k not in ("preview", "earlier_preview")},
            key: identity(sheet)}
        assert _sheet_for(sheet, manifest) == copy, key
    manifest.entries.pop(manifest.key(copy))
    with Image.open(plain) as im:  # marked, but its copy gone: nobody's sheet
        im.save(sheet, pnginfo=_cloak_mark())
    assert _sheet_for(sheet, manifest) == copy
    copy.rename(tmp_path / "moved.png")
    assert _sheet_for(sheet, manifest) is None
    (tmp_path / "moved.png").rename(copy)
    manifest.entries[manifest.key(copy)] = listed
    assert _is_a_copy(copy, manifest)
    copy.write_bytes(plain.read_bytes())  # the user's file at its name now
    assert not _is_a_copy(copy, manifest) and not _is_a_copy(sheet, manifest)


def _cloak_mark():
    from PIL.PngImagePlugin import PngInfo

    from cloak.preview import SHEET_MARK, SHEET_MARK_KEY

    info = PngInfo()
    info.add_text(SHEET_MARK_KEY, SHEET_MARK)
    return info
