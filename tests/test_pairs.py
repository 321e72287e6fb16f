"""`cloak verify ORIGINALS/ PROTECTED/`: pairing a folder of originals with the folder
cloak protect wrote to (cloak.pairs, no pixels read), and the command on real weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

import cli
from cloak import UnsupportedImageError
from cloak.pairs import entries_above, pair_folders, photos_under

# the quickest real run: one step of taesd, seen at 128 px (the smallest editing size)
TINY = ["--strength", "fast", "--steps", "1", "--models", "taesd", "--editor-sizes", "128",
        "--no-measure"]


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def ctrl_c_on_second_call(monkeypatch, module, name: str) -> None:
    """Make `module.name` raise KeyboardInterrupt on its second call (Ctrl-C mid-run)."""
    real, calls = getattr(module, name), []

    def interrupted_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted_second_time)


def protected_pair_of_photos(tmp_path: Path, small_photo, model_dir) -> tuple[Path, Path]:
    """holiday/a.png and holiday/b.png (two real photos) protected by a real `cloak
    protect holiday --out protected` (its record keeps their sizes and sha256)."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png")
    small_photo(holiday / "b.png", index=1)
    out = tmp_path / "protected"
    result = invoke("protect", holiday, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    return holiday, out


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read here")
    return path


def test_a_folder_given_to_protect_is_paired_below_its_own_name(tmp_path):
    """protect holiday/ --out protected/ writes protected/holiday/...: the copies pair
    with holiday/..., a GIF with its copy written as PNG, a TIFF whose copy was re-saved
    as JPEG since with the one photo of its stem; a copy with no original is listed with
    None; hidden files and non-photos are not copies."""
    holiday = tmp_path / "holiday"
    a, b, c = (touch(holiday / "a.jpg"), touch(holiday / "beach" / "b.png"),
               touch(holiday / "c.gif"))
    z = touch(holiday / "z.tif")
    out = tmp_path / "protected"
    for name in ("holiday/a.jpg", "holiday/beach/b.png", "holiday/c.png", "holiday/z.jpg",
                 "holiday/y.jpg", "holiday/.hidden.jpg", "holiday/notes.txt"):
        touch(out / name)
    pairs = pair_folders(holiday, out)
    assert [(p.name, p.original) for p in pairs] == [
        ("holiday/a.jpg", a), ("holiday/beach/b.png", b), ("holiday/c.png", c),
        ("holiday/y.jpg", None), ("holiday/z.jpg", z)]
    assert pairs[0].copy == out / "holiday" / "a.jpg"


def test_copies_of_loose_photos_pair_by_their_own_path(tmp_path):
    """protect *.jpg --out protected/ writes protected/a.jpg: paired with ORIGINALS/a.jpg."""
    src = tmp_path / "photos"
    a = touch(src / "a.jpg")
    touch(tmp_path / "protected" / "a.jpg")
    assert [(p.name, p.original) for p in pair_folders(src, tmp_path / "protected")] == [
        ("a.jpg", a)]


def test_the_record_s_mirror_picks_the_folder_s_copies_only(tmp_path):
    """protect 2023/Camera 2024/Camera mirrors them as Camera and Camera (2), as the
    output folder's record says: 2024/Camera pairs with Camera (2)'s copies only."""
    old, new = tmp_path / "2023" / "Camera", tmp_path / "2024" / "Camera"
    touch(old / "IMG_1.jpg")
    mine = touch(new / "IMG_1.jpg")
    out = tmp_path / "protected"
    touch(out / "Camera" / "IMG_1.jpg")
    touch(out / "Camera (2)" / "IMG_1.jpg")
    (out / ".cloak-manifest.json").write_text(json.dumps({
        "version": 1, "photos": {},
        "folders": {"Camera": str(old), "Camera (2)": str(new)}}))
    left_out: list[Path] = []
    pairs = pair_folders(new, out, left_out=left_out)
    assert [(p.name, p.original) for p in pairs] == [("Camera (2)/IMG_1.jpg", mine)]
    # the other folder's mirror holds its own copies, not strays of another run
    assert left_out == []
    stray = touch(out / "alone.jpg")  # a photo protected alone into the same folder
    pair_folders(new, out, left_out=left_out)
    assert left_out == [stray]


def test_one_folder_twice_or_no_photos_is_refused(tmp_path):
    folder = tmp_path / "f"
    touch(folder / "a.jpg")
    with pytest.raises(UnsupportedImageError, match="given twice"):
        pair_folders(folder, folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedImageError, match="no photos in"):
        pair_folders(folder, tmp_path / "empty")


def test_photos_under_does_not_follow_a_folder_link(tmp_path):
    touch(tmp_path / "f" / "a.jpg")
    (tmp_path / "f" / "loop").symlink_to(tmp_path / "f", target_is_directory=True)
    assert photos_under(tmp_path / "f") == [tmp_path / "f" / "a.jpg"]


def test_verify_two_folders_measures_every_pair(tmp_path, small_photo, model_dir):
    """The command on real weights: one line per pair, a count of the verdicts, every
    pair's figures in --json; a copy with no original is listed, not measured, and the
    run still exits 0."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png", size=(96, 64))
    small_photo(holiday / "beach" / "b.jpg", size=(64, 96), index=1)
    out = tmp_path / "protected"
    assert invoke("protect", holiday, "--out", out, *TINY).exit_code == 0
    shutil.copy(holiday / "a.png", out / "holiday" / "stray.png")  # no original of that name
    (holiday / "beach" / "b.jpg").rename(holiday / "beach" / "renamed.jpg")  # by the record
    with Image.open(holiday / "a.png") as im:  # the same pixels, with a tag added since
        info = PngInfo()
        info.add_text("Title", "tagged after protecting")
        im.save(holiday / "a.png", pnginfo=info)
    report = tmp_path / "v.json"
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "instagram",
                    "--json", report)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("holiday/a.png: ") and "worst channel" in lines[0]
    # paired by the record with its renamed original, which its line names
    assert lines[1].startswith(
        f"holiday/beach/b.jpg (original {holiday / 'beach' / 'renamed.jpg'}): ")
    assert lines[2].startswith("holiday/stray.png: not measured, no original")
    data = json.loads(report.read_text())
    assert data["kind"] == "folders" and data["without_original"] == 1
    measured = [p for p in data["pairs"] if p["verdict"] is not None]
    assert [p["verdict"] for p in data["pairs"] if "error" in p] == [None]  # as one pair's
    assert [p["name"] for p in measured] == ["holiday/a.png", "holiday/beach/b.jpg"]
    for pair in measured:
        assert [c["channel"] for c in pair["channels"]] == ["as-is", "instagram"]
        assert pair["channels"][0]["damage_db"]["taesd"] > 0.1  # protected, at one step
    assert [p["original"] for p in measured] == [
        str(holiday / "a.png"), str(holiday / "beach" / "renamed.jpg")]
    assert "is not the file this copy was made from" in measured[0]["note"]
    assert "is not the file this copy was made from" in result.stderr
    assert "made from" not in (measured[1]["note"] or "")
    counts = {}
    for pair in measured:
        counts[pair["verdict"]] = counts.get(pair["verdict"], 0) + 1
    assert data["verdicts"] == counts
    assert lines[3].startswith("2 pair(s) measured: ") and "1 copy(ies) without" in lines[3]


def test_a_copy_with_the_originals_very_pixels_gets_a_note(tmp_path, small_photo,
                                                           model_dir):
    """An original copied over its protected copy (by hand, or a sync that went the wrong
    way) measured "none" with no word of why in a folder comparison; it gets the note a
    single pair gets, on stderr and in --json. The protected pair beside it gets none."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png", size=(96, 64))
    small_photo(holiday / "b.png", size=(96, 64), index=1)
    out = tmp_path / "protected"
    assert invoke("protect", holiday, "--out", out, *TINY).exit_code == 0
    shutil.copy(holiday / "b.png", out / "holiday" / "b.png")
    report = tmp_path / "v.json"
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 0, result.output
    said = "the copy has the same pixels as the original: it carries no protection"
    assert f"note on holiday/b.png: {said}" in result.stderr
    assert "note on holiday/a.png" not in result.stderr
    notes = {p["name"]: p["note"] or "" for p in json.loads(report.read_text())["pairs"]}
    assert said in notes["holiday/b.png"] and said not in notes["holiday/a.png"]


def test_verify_folders_fails_a_pair_it_cannot_read_and_goes_on(tmp_path, small_photo,
                                                                model_dir):
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png", size=(64, 48))
    out = tmp_path / "protected"
    assert invoke("protect", holiday, "--out", out, *TINY).exit_code == 0
    (holiday / "z.png").write_bytes(b"not a png")  # its copy pairs, but can't be read
    # (a photo of its own: a second copy of a.png's would be found a.png's by its contents)
    small_photo(out / "holiday" / "z.png", size=(64, 48), index=1)
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "as-is")
    assert result.exit_code == 2, result.output
    # which of the two could not be read (the copy is named on the line already)
    assert "holiday/z.png: not measured: the original: " in result.output
    assert str(holiday / "z.png") not in result.output
    assert "1 pair(s) measured" in result.stdout and "1 not measured" in result.stdout


@pytest.mark.parametrize("which", ["empty folder alone", "folder and file", "no originals"])
def test_verify_folder_mistakes_get_one_line(tmp_path, small_photo, which):
    folder = tmp_path / "holiday"
    photo = small_photo(folder / "a.png")
    other = tmp_path / "elsewhere"
    small_photo(other / "x.png")
    (tmp_path / "empty").mkdir()
    args = {"empty folder alone": [tmp_path / "empty"], "folder and file": [folder, photo],
            "no originals": [other, folder]}[which]
    said = {"empty folder alone": "no photos in",
            "folder and file": "is a folder and the other a file",
            "no originals": "none of the 1 photo(s) in"}[which]
    result = invoke("verify", *args)
    assert result.exit_code == 1 and said in result.output, result.output
    assert "Traceback" not in result.output


def test_preview_sheets_and_the_copy_itself_are_not_pairs(tmp_path):
    """`protect --preview` writes NAME.EXT.preview.png beside each copy: not a copy. A
    protected folder that holds the originals (`cloak verify holiday .`) pairs no copy
    with itself."""
    holiday = tmp_path / "holiday"
    a = touch(holiday / "a.jpg")
    out = tmp_path / "out"
    touch(out / "holiday" / "a.jpg")
    touch(out / "holiday" / "a.jpg.preview.png")
    assert [(p.name, p.original) for p in pair_folders(holiday, out)] == [("holiday/a.jpg", a)]
    assert [(p.name, p.original) for p in pair_folders(holiday, tmp_path)] == [
        ("holiday/a.jpg", None), ("out/holiday/a.jpg", None)]


def test_a_moved_folder_is_not_paired_with_another_folders_copies(tmp_path):
    """2023/Camera and 2024/Camera protected together (mirrors Camera, Camera (2)); then
    2024/Camera moved to /new/Camera: Camera/'s copies are 2023's (still there), so
    /new/Camera pairs with none of them."""
    old = tmp_path / "2023" / "Camera"
    touch(old / "IMG_1.jpg")
    moved = tmp_path / "new" / "Camera"
    touch(moved / "IMG_1.jpg")
    out = tmp_path / "protected"
    touch(out / "Camera" / "IMG_1.jpg")
    touch(out / "Camera (2)" / "IMG_1.jpg")
    (out / ".cloak-manifest.json").write_text(json.dumps({
        "version": 1, "photos": {},
        "folders": {"Camera": str(old), "Camera (2)": str(tmp_path / "2024" / "Camera")}}))
    assert all(p.original is None for p in pair_folders(moved, out))
    assert [p.original for p in pair_folders(old, out)] == [old / "IMG_1.jpg"]


def test_a_renamed_or_moved_original_pairs_by_cloak_s_record(tmp_path, small_photo,
                                                            model_dir):
    """cloak protect records each original's size and sha256: an original renamed or
    moved within ORIGINALS since still finds its copy; a photo of the same size but other
    content does not, and an original paired by its path is not taken twice."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    moved = holiday / "kept" / "renamed.png"
    moved.parent.mkdir()
    (holiday / "a.png").rename(moved)
    same_size = holiday / "other.png"
    same_size.write_bytes(bytes(reversed((holiday / "b.png").read_bytes())))
    assert [(p.name, p.original) for p in pair_folders(holiday, out)] == [
        ("holiday/a.png", moved), ("holiday/b.png", holiday / "b.png")]
    (holiday / "b.png").rename(holiday / "b2.png")
    (holiday / "b2.png").write_bytes(b"edited" + (holiday / "b2.png").read_bytes())
    assert [p.original for p in pair_folders(holiday, out)] == [moved, None]
    # edited where it was: still paired by its path, with a note that it changed
    (holiday / "b2.png").rename(holiday / "b.png")
    pairs = pair_folders(holiday, out)
    assert (pairs[0].original, pairs[0].note) == (moved, None)
    assert pairs[1].original == holiday / "b.png"
    assert "is not the file this copy was made from" in pairs[1].note


def test_a_copy_listed_in_another_unicode_form_is_found_in_the_record(tmp_path, small_photo,
                                                                     model_dir):
    """HFS+ lists `Été.png` decomposed (NFD); the record keeps the name as it was typed
    (NFC): looked up by the name listed, the copy had no record, so an original edited
    since was measured as the copy's, with no note. Simulated on a disk that keeps both:
    the copy and its original renamed to their NFD spelling after the run."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "\u00c9t\u00e9.png")
    nfd = unicodedata.normalize("NFD", nfc)
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    small_photo(holiday / nfc)
    result = invoke("protect", holiday, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    (holiday / nfc).rename(holiday / nfd)
    (out / "holiday" / nfc).rename(out / "holiday" / nfd)
    [pair] = pair_folders(holiday, out)
    assert (pair.original, pair.note) == (holiday / nfd, None)  # the same file: no note
    edited = holiday / nfd
    edited.write_bytes(edited.read_bytes() + b"edited since")
    [pair] = pair_folders(holiday, out)
    assert pair.original == edited
    assert pair.note and "is not the file this copy was made from" in pair.note
    # another file at that name's other spelling is not this record's copy: of the
    # recorded size, but other bytes
    data = bytearray((out / "holiday" / nfd).read_bytes())
    data[-20] ^= 0xFF
    (out / "holiday" / nfd).write_bytes(bytes(data))
    [pair] = pair_folders(holiday, out)
    assert pair.note is None


def test_folders_spelt_otherwise_on_disk_pair_and_are_not_left_out(
        tmp_path, small_photo, model_dir, spelt_as_the_disk_lists):
    """On an HFS+ disk the mirror `Été` made by `cloak protect Été --out protected` is
    listed in NFD, the record keeps it as typed (NFC): verify measured its copies, then
    said "2 other photo(s) in protected ... were not measured (such as .../Été/a.png:
    another run's copy?)"; and with the record gone, ORIGINALS typed in NFC paired no
    copy ("none of the 2 photo(s) ... has its original"). Simulated: each folder reachable
    under both spellings, listed in NFD only."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "\u00c9t\u00e9")
    nfd = unicodedata.normalize("NFD", nfc)
    originals, out = tmp_path / nfc, tmp_path / "protected"
    for n in range(2):
        small_photo(originals / f"{'ab'[n]}.png", index=n)
    result = invoke("protect", originals, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    spelt_as_the_disk_lists(out / nfc, nfd)
    spelt_as_the_disk_lists(originals, nfd)  # typed NFC still reaches it (the twin)
    left_out: list[Path] = []
    pairs = pair_folders(originals, out, left_out=left_out)
    assert [p.original is not None for p in pairs] == [True, True], pairs
    assert left_out == []
    (out / ".cloak-manifest.json").unlink()  # copied elsewhere without the hidden record
    pairs = pair_folders(originals, out)
    originals_found = sorted(p.original.name for p in pairs if p.original is not None)
    assert originals_found == ["a.png", "a.png", "b.png", "b.png"], pairs  # each spelling


def test_a_subfolder_of_originals_spelt_otherwise_finds_its_part_of_the_mirror(
        tmp_path, small_photo, model_dir, spelt_as_the_disk_lists):
    """`cloak verify Été/sub OUT`, `Été` typed in NFD (as HFS+ lists it) where the record
    names the folder protected as typed then (NFC): its part of the mirror, `Été/sub`,
    was not found (the recorded folder was compared by a string prefix whose length NFD
    changes), so no copy had its original."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "\u00c9t\u00e9")
    nfd = unicodedata.normalize("NFD", nfc)
    originals, out = tmp_path / nfc, tmp_path / "protected"
    small_photo(originals / "sub" / "a.png")
    small_photo(originals / "b.png", index=1)
    result = invoke("protect", originals, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    listed = spelt_as_the_disk_lists(originals, nfd)
    [pair] = pair_folders(listed / "sub", out)
    assert pair.original == listed / "sub" / "a.png", pair


def test_a_copy_renamed_since_pairs_by_its_own_content_in_the_record(tmp_path, small_photo,
                                                                     model_dir):
    """protected/holiday/a.png renamed a_insta.png before posting: cloak's record keeps
    the copy's size and sha256 too, so it still finds its original; a renamed file of
    other content does not."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    (out / "holiday" / "a.png").rename(out / "holiday" / "a_insta.png")
    (out / "holiday" / "b.png").rename(out / "holiday" / "b_edit.png")
    edited = out / "holiday" / "b_edit.png"
    edited.write_bytes(edited.read_bytes() + b"appended")
    assert [(p.name, p.original) for p in pair_folders(holiday, out)] == [
        ("holiday/a_insta.png", holiday / "a.png"), ("holiday/b_edit.png", None)]


def test_originals_whose_names_were_swapped_pair_by_content(tmp_path, small_photo, model_dir):
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    (holiday / "a.png").rename(holiday / "t.png")
    (holiday / "b.png").rename(holiday / "a.png")
    (holiday / "t.png").rename(holiday / "b.png")
    assert [(p.name, p.original, p.note) for p in pair_folders(holiday, out)] == [
        ("holiday/a.png", holiday / "b.png", None), ("holiday/b.png", holiday / "a.png", None)]


def test_copies_whose_names_were_swapped_or_taken_pair_by_content(tmp_path, small_photo,
                                                                   model_dir):
    """The copies' names swapped (or one copy renamed onto another's name): each was
    paired with the original of its name, by path, and refused as "another shape" or
    measured against the wrong photo without a word. The record of the name is not of
    the file there, so the copy is looked up by its own content, and its line names the
    original it was measured against."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    copies = out / "holiday"
    (copies / "a.png").rename(copies / "t.png")
    (copies / "b.png").rename(copies / "a.png")
    (copies / "t.png").rename(copies / "b.png")
    assert [(p.name, p.original, p.by_record) for p in pair_folders(holiday, out)] == [
        ("holiday/a.png", holiday / "b.png", True), ("holiday/b.png", holiday / "a.png", True)]
    (copies / "a.png").unlink()  # b's copy (now at a.png's name) gone; a's onto b's name
    assert [(p.name, p.original) for p in pair_folders(holiday, out)] == [
        ("holiday/b.png", holiday / "a.png")]
    result = invoke("verify", holiday, out, "--channels", "as-is", "--models", "taesd",
                    "--model-dir", model_dir)
    assert result.exit_code == 0, result.output
    assert f"holiday/b.png (original {holiday / 'a.png'}): " in result.stdout


def test_swapped_copies_of_one_size_pair_by_content(tmp_path, small_photo, model_dir):
    """Two BMP copies of one size (same dimensions: same bytes count) with their names
    swapped: the record's entry of each name passed as the file's by its size, and each
    copy was refused against the other's original (PSNR 9.0 dB). The entry is the file's
    only where its times or its sha256 say so."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.bmp", size=(96, 72))
    small_photo(holiday / "b.bmp", size=(96, 72), index=1)
    out = tmp_path / "protected"
    result = invoke("protect", holiday, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    copies = out / "holiday"
    assert (copies / "a.bmp").stat().st_size == (copies / "b.bmp").stat().st_size
    (copies / "a.bmp").rename(copies / "t.bmp")
    (copies / "b.bmp").rename(copies / "a.bmp")
    (copies / "t.bmp").rename(copies / "b.bmp")
    assert [(p.name, p.original, p.by_record) for p in pair_folders(holiday, out)] == [
        ("holiday/a.bmp", holiday / "b.bmp", True), ("holiday/b.bmp", holiday / "a.bmp", True)]


def test_a_copy_moved_beside_another_photo_of_its_name_pairs_by_content(
        tmp_path, small_photo, model_dir):
    """A copy filed into another folder that holds a later photo of its name (or of its
    stem in another format) had an original by path there and no record entry by its new
    name: it was measured against that other photo, "strong" where its own pair is
    "moderate", with no note. Its own contents find it in the record."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a" / "IMG_1.png")
    small_photo(holiday / "a" / "x.png", index=2)
    out = tmp_path / "protected"
    result = invoke("protect", holiday, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    small_photo(holiday / "b" / "IMG_1.png", index=1)  # a later shot, another folder
    small_photo(holiday / "b" / "x.webp", index=3)  # its stem, another format
    (out / "holiday" / "b").mkdir()
    for name in ("IMG_1.png", "x.png"):
        (out / "holiday" / "a" / name).rename(out / "holiday" / "b" / name)
    pairs = {p.name: p for p in pair_folders(holiday, out)}
    assert pairs["holiday/b/IMG_1.png"].original == holiday / "a" / "IMG_1.png"
    assert pairs["holiday/b/x.png"].original == holiday / "a" / "x.png"
    assert pairs["holiday/b/x.png"].by_record


def test_a_mirror_subfolder_given_as_protected_finds_a_copy_swapped_in_from_another(
        tmp_path, small_photo, model_dir):
    """`cloak verify holiday/x protected/holiday/x`: the record above it was read for the
    copies below the folder given only, so a copy swapped in from protected/holiday/y
    (one size, one name: a burst's BMPs) was measured against x's photo without a word,
    where `verify holiday protected` paired it right. It is looked up in the whole record,
    and, its original not under the ORIGINALS given, its line says the photo there is not
    the one it was made from."""
    holiday = tmp_path / "holiday"
    small_photo(holiday / "x" / "p.bmp", size=(96, 72))
    small_photo(holiday / "y" / "p.bmp", size=(96, 72), index=1)
    out = tmp_path / "protected"
    result = invoke("protect", holiday, "--out", out, "--model-dir", model_dir, *TINY)
    assert result.exit_code == 0, result.output
    copies = out / "holiday"
    (copies / "x" / "p.bmp").rename(tmp_path / "t.bmp")
    (copies / "y" / "p.bmp").rename(copies / "x" / "p.bmp")
    (tmp_path / "t.bmp").rename(copies / "y" / "p.bmp")
    [pair] = pair_folders(holiday / "x", copies / "x")
    assert pair.note and "is not the file this copy was made from" in pair.note, pair
    [pair] = pair_folders(holiday / "y", copies / "x")  # its own photo's folder: found
    assert pair.original == holiday / "y" / "p.bmp"


def test_a_copy_moved_into_a_subfolder_names_the_original_it_was_measured_against(
        tmp_path, small_photo, model_dir):
    """A copy moved into protected/holiday/posted/ pairs with holiday/a.png by the record;
    its line named no original, as if there were a holiday/posted/a.png."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    (out / "holiday" / "b.png").unlink()
    (out / "holiday" / "posted").mkdir()
    (out / "holiday" / "a.png").rename(out / "holiday" / "posted" / "a.png")
    result = invoke("verify", holiday, out, "--channels", "as-is", "--models", "taesd",
                    "--model-dir", model_dir)
    assert result.exit_code == 0, result.output
    assert f"holiday/posted/a.png (original {holiday / 'a.png'}): " in result.stdout
    (out / "holiday" / "posted" / "a.png").rename(out / "holiday" / "a.png")
    result = invoke("verify", holiday, out, "--channels", "as-is", "--models", "taesd",
                    "--model-dir", model_dir)
    assert result.exit_code == 0, result.output
    assert "holiday/a.png: " in result.stdout and "original" not in result.stdout


def test_a_protected_folder_that_does_not_exist_is_named(tmp_path, small_photo):
    folder = tmp_path / "holiday"
    small_photo(folder / "a.png")
    result = invoke("verify", folder, tmp_path / "protcted")
    assert result.exit_code == 1 and "protcted: no such file" in result.output


def test_a_shell_pattern_that_matched_nothing_is_said_as_protect_says_it(tmp_path):
    """`cloak verify protected/*.JPG` where the copies are .jpg: the shell passes the
    pattern on as it is, and verify said only "no such file"."""
    result = invoke("verify", tmp_path / "IMG_*.JPG")
    assert result.exit_code == 1
    assert "IMG_*.JPG: no such file or folder: no file matches this pattern" in result.output
    assert "check the name's letter case" in result.output
    # a real name with brackets, gone (the app's thumbnail, the API): no shell advice
    from cloak.io import load_photo

    with pytest.raises(UnsupportedImageError, match=r"Beach \[1\]\.png: no such file$"):
        load_photo(tmp_path / "Beach [1].png")


@pytest.mark.skipif(os.sep == "\\", reason="a backslash separates folders on Windows")
def test_a_folder_named_with_a_backslash_is_resumed_and_verified_once(tmp_path, small_photo,
                                                                     model_dir):
    """`Trip\\2024` (a Windows zip unpacked on Linux or macOS) is one folder here. Its
    recorded mirror was passed over as a path, so each run protected it again into
    `Trip\\2024 (2)`, `(3)`..., and verify measured every one of them."""
    trip = tmp_path / "Trip\\2024"
    small_photo(trip / "p.png")
    out = tmp_path / "protected"
    for _ in range(2):
        result = invoke("protect", trip, "--out", out, "--model-dir", model_dir, *TINY)
        assert result.exit_code == 0, result.output
    assert "0 protected, 1 skipped" in result.output, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["Trip\\2024"]
    assert [p.name for p in pair_folders(trip, out)] == ["Trip\\2024/p.png"]


def test_ctrl_c_keeps_the_pairs_measured_so_far(tmp_path, small_photo, model_dir,
                                                monkeypatch):
    """Ctrl-C on the second pair: the first pair's line and --json row are kept, the
    summary says it was interrupted, and the exit code is 130."""
    from cloak import verify

    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png", size=(64, 48))
    small_photo(holiday / "b.png", size=(64, 48), index=1)
    out = tmp_path / "protected"
    assert invoke("protect", holiday, "--out", out, *TINY).exit_code == 0
    ctrl_c_on_second_call(monkeypatch, verify, "verify_images")
    report = tmp_path / "v.json"
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 130, result.output
    assert result.stdout.startswith("holiday/a.png: ")
    assert "1 pair(s) measured" in result.stdout
    assert "interrupted, 1 not reached" in result.stdout
    data = json.loads(report.read_text())
    assert data["error"] == "interrupted"
    assert data["interrupted"] is True and [p["name"] for p in data["pairs"]] == [
        "holiday/a.png"]


def test_verify_a_folder_alone_gives_each_photo_its_receipt(tmp_path, small_photo,
                                                            model_dir):
    """Copies downloaded back, no originals: each photo's receipt on its own line, the
    same as `cloak verify PHOTO` gives it; a file that can't be read is said and the
    run exits 2; --json keeps every photo's row. A photo under the receipt's calibrated
    size gets its score and "can't tell", and is not counted among those decided."""
    folder = tmp_path / "downloaded"
    small_photo(folder / "a.png", size=(640, 480))
    small_photo(folder / "sub" / "b.jpg", size=(96, 64), index=1)
    (folder / "c.png").write_bytes(b"not a png")
    report = tmp_path / "r.json"
    result = invoke("verify", folder, "--json", report)
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["a.png", "sub/b.jpg"]
    said = next(line for line in result.output.splitlines() if "c.png: not read" in line)
    assert str(folder) not in said, said  # named once, by its name in the folder
    assert lines[-1].startswith("protection detected in ") and "of 1 photo(s)" in lines[-1]
    assert "; 1 too small to tell (under 500 px); 1 not read" in lines[-1]
    assert lines[1].startswith("sub/b.jpg: can't tell (")
    data = json.loads(report.read_text())
    assert data["kind"] == "receipts" and data["read"] == 2 and data["failed"] == 1
    assert data["undecided"] == 1 and data["photos"][2]["protected"] is None
    assert [row["name"] for row in data["photos"]] == ["a.png", "c.png", "sub/b.jpg"]
    for row in (data["photos"][0], data["photos"][2]):
        alone = tmp_path / f"{row['name'].replace('/', '_')}.json"
        assert invoke("verify", row["photo"], "--json", alone).exit_code == 0
        single = json.loads(alone.read_text())
        assert (row["score_db"], row["protected"]) == (single["score_db"],
                                                       single["protected"])
        assert row["below_calibrated_size"] is single["below_calibrated_size"] is (
            row["name"] == "sub/b.jpg")
    failed = data["photos"][1]  # the same keys, empty, as a read photo's row
    assert (failed["protected"], failed["score_db"]) == (None, None) and failed["error"]


def test_a_folder_receipt_run_again_replaces_its_report_and_keeps_done_on_ctrl_c(
        tmp_path, small_photo, model_dir, monkeypatch):
    """The same --json twice: the first run's report is cloak's, so it is replaced (it was
    refused as "not a cloak report"). Ctrl-C on the second photo keeps the first."""
    from cloak import receipt

    folder = tmp_path / "downloaded"
    small_photo(folder / "a.png", size=(640, 480))  # at the calibrated size: no note
    small_photo(folder / "b.png", size=(96, 64), index=1)
    report = tmp_path / "r.json"
    assert invoke("verify", folder, "--json", report).exit_code == 0
    first = json.loads(report.read_text())
    assert [row["below_calibrated_size"] for row in first["photos"]] == [False, True]
    assert first["photos"][0]["note"] is None and "96x64" in first["photos"][1]["note"]
    ctrl_c_on_second_call(monkeypatch, receipt, "receipt_image")
    result = invoke("verify", folder, "--json", report)
    assert result.exit_code == 130, result.output
    assert "interrupted, 1 not reached" in result.stdout
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and [r["name"] for r in data["photos"]] == ["a.png"]
    assert data["error"] == "interrupted"  # as every verify's report says a Ctrl-C


def test_a_ctrl_c_as_verify_starts_replaces_the_earlier_report(
        tmp_path, small_photo, model_dir, monkeypatch):
    """A Ctrl-C in verify's first second (checking --json loads torch) ended with no line
    and left the earlier run's verdict at --json, to be read as this run's."""
    folder = tmp_path / "downloaded"
    small_photo(folder / "a.png", size=(96, 64))
    report = tmp_path / "r.json"
    assert invoke("verify", folder, "--json", report).exit_code == 0

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "check_json_path", ctrl_c)
    for given in ((folder,), (folder, folder / "a.png"), (folder / "a.png", folder / "a.png"),
                  (folder, tmp_path)):
        result = invoke("verify", *given, "--json", report)
        assert result.exit_code == 130, result.output
        assert result.stderr == "Interrupted; no figures were written.\n"
        data = json.loads(report.read_text())
        assert data["error"] == "interrupted" and data.get("interrupted", True) is True
        assert data.get("photos", data.get("pairs", [])) == []  # a list, as a run's


def test_a_folder_reports_failure_to_write_json_once_keeping_its_exit_code(
        tmp_path, small_photo, model_dir, monkeypatch):
    """A file that appeared at --json during a folder verify with a failed photo: exit 1
    instead of 2, and the failure said twice (a warning, then the error)."""
    folder = tmp_path / "downloaded"
    small_photo(folder / "a.png", size=(96, 64))
    (folder / "broken.png").write_bytes(b"not a png")
    report = tmp_path / "r.json"
    real = cli.unsearched_rows

    def and_a_file_appears(*args, **kwargs):  # as the run ends: someone else's file
        report.write_text('{"mine": 1}')
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "unsearched_rows", and_a_file_appears)
    result = invoke("verify", folder, "--json", report)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("appeared during the run") == 1
    assert json.loads(report.read_text()) == {"mine": 1}


def test_a_folder_of_copies_that_cant_be_listed_is_a_failure_not_silence(
        tmp_path, small_photo, model_dir, lock_folder):
    """A subfolder that can't be listed (EACCES simulated: CI runs as root) is named and
    the run exits 2, where it was passed over in silence."""
    folder = tmp_path / "downloaded"
    small_photo(folder / "a.png", size=(640, 480))  # large enough to be told
    small_photo(folder / "locked" / "b.png", size=(96, 64))
    lock_folder(folder / "locked")
    result = invoke("verify", folder)
    assert result.exit_code == 2, result.output
    assert "locked: not searched: Permission denied" in result.output
    assert "protection detected in" in result.stdout and "1 not read" in result.stdout
    # its --json row has every other row's keys, and is named as they are (relative)
    report = tmp_path / "r.json"
    assert invoke("verify", folder, "--json", report).exit_code == 2
    rows = json.loads(report.read_text())["photos"]
    assert [set(row) >= {"name", "photo", "protected", "score_db"}
            for row in rows] == [True, True]
    assert rows[1]["name"] == "locked" and rows[1]["protected"] is None
    assert rows[1]["error"] == "folder not searched: Permission denied"


def test_a_fifo_named_like_a_photo_is_not_a_photo(tmp_path):
    import os

    touch(tmp_path / "f" / "a.jpg")
    os.mkfifo(tmp_path / "f" / "pipe.jpg")
    assert photos_under(tmp_path / "f") == [tmp_path / "f" / "a.jpg"]


def test_a_folder_of_unreadable_photos_says_none_could_be_read(tmp_path, model_dir):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "c.png").write_bytes(b"not a png")
    result = invoke("verify", folder)
    assert result.exit_code == 2, result.output
    assert result.stdout.splitlines()[-1] == "no photo could be read; 1 not read"


def test_an_original_moved_onto_another_s_name_is_not_given_to_both(tmp_path, small_photo,
                                                                    model_dir):
    """a.png moved onto b.png: b.png is a's original now (by the record), and b's copy,
    whose original is gone, has none, rather than being compared with another photo."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    (holiday / "a.png").replace(holiday / "b.png")
    assert [(p.name, p.original) for p in pair_folders(holiday, out)] == [
        ("holiday/a.png", holiday / "b.png"), ("holiday/b.png", None)]


def test_two_copies_of_one_photo_share_its_original(tmp_path, small_photo, model_dir):
    """a.png's copy, and a second copy of it made for posting (a_insta.png): the record
    led each to holiday/a.png, but an original was given to one copy only, so the second
    was "no original of it" (as were a renamed copy and the copy made again after it).
    Paired by path, two copies already shared one; by the record they do too."""
    import shutil

    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    shutil.copy2(out / "holiday" / "a.png", out / "holiday" / "a_insta.png")
    (out / "holiday" / "b.png").rename(out / "holiday" / "b_posted.png")
    pairs = {p.name: p.original for p in pair_folders(holiday, out)}
    assert pairs == {"holiday/a.png": holiday / "a.png",
                     "holiday/a_insta.png": holiday / "a.png",
                     "holiday/b_posted.png": holiday / "b.png"}


def test_a_mirror_given_as_protected_uses_the_record_above_it(tmp_path, small_photo,
                                                             model_dir):
    """`cloak verify holiday protected/holiday` (the folder the help calls PROTECTED):
    its record is one folder up, and was not read, so an original edited since was
    measured without the note that it is another file, and a renamed one was not found
    ("none has its original"), where `verify holiday protected` did both."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    small_photo(holiday / "a.png", index=3)  # another photo saved under its name
    (holiday / "b.png").rename(holiday / "b renamed.png")
    pairs = {p.name: p for p in pair_folders(holiday, out / "holiday")}
    assert pairs["a.png"].original == holiday / "a.png"
    assert "is not the file this copy was made from" in pairs["a.png"].note
    assert pairs["b.png"].original == holiday / "b renamed.png"
    assert entries_above(tmp_path / "elsewhere") == ({}, {})


def test_a_pair_refused_as_too_different_still_says_the_original_changed(
        tmp_path, small_photo, model_dir):
    holiday = tmp_path / "holiday"
    small_photo(holiday / "a.png")
    out = tmp_path / "protected"
    assert invoke("protect", holiday, "--out", out, "--model-dir", model_dir,
                  *TINY).exit_code == 0
    small_photo(holiday / "a.png", index=3)  # another photo saved under its name
    report = tmp_path / "v.json"
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "instagram",
                    "--json", report)
    assert result.exit_code == 2, result.output
    assert "not measured" in result.stderr and "made from" in result.stderr
    row = json.loads(report.read_text())["pairs"][0]
    assert row["error"] and "is not the file this copy was made from" in row["note"]


def record(out: Path, folders: dict[str, str], photos: dict[str, tuple[Path, Path]]) -> None:
    """Write `out`'s cloak record by hand: each copy name -> (its source, the copy), as
    finished entries giving the source's size and sha256 and the copy's size."""
    from cloak.models.weights import sha256_of

    (out / ".cloak-manifest.json").write_text(json.dumps({
        "version": 1, "folders": folders, "photos": {
            name: {"state": "done",
                   "src": {"size": src.stat().st_size, "sha256": sha256_of(src)},
                   "dst": {"size": copy.stat().st_size}}
            for name, (src, copy) in photos.items()}}))


def test_an_originals_folder_that_cant_be_searched_fails_its_pairs_only(tmp_path, lock_folder):
    """A subfolder of ORIGINALS that can't be searched (EACCES or macOS's EPERM; simulated,
    as CI runs as root) costs only the pairs in it: no error for the run, and the search
    by content names it."""
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    a, b = touch(holiday / "a.jpg"), touch(holiday / "private" / "b.jpg")
    b.write_bytes(b"another photo")  # not a.jpg's bytes: a.jpg would be its original too
    copy_a, copy_b = touch(out / "holiday" / "a.jpg"), touch(out / "holiday" / "private" / "b.jpg")
    record(out, {"holiday": str(holiday)}, {"holiday/a.jpg": (a, copy_a),
                                           "holiday/private/b.jpg": (b, copy_b)})
    lock_folder(holiday / "private")
    unreadable: list[OSError] = []
    pairs = pair_folders(holiday, out, unreadable)
    assert [(p.name, p.original) for p in pairs] == [
        ("holiday/a.jpg", a), ("holiday/private/b.jpg", None)]
    # named once, on the pair it costs (the search by content met it too)
    assert pairs[1].unreachable.filename == str(holiday / "private")
    assert unreadable == []


def test_a_copy_of_the_recorded_folder_pairs_where_it_holds_the_recorded_photos(tmp_path):
    """protect A/holiday, then verify B/holiday OUT, B/holiday a copy of A/holiday (a
    backup), A still there: `holiday` is A's mirror, so B's photos were looked for at
    B/holiday/holiday/... only, and a copy changed since (replaced by the unprotected
    photo, re-saved by a download), which the record no longer describes, had "no
    original": an unprotected copy went unflagged. A photo of B that holds the recorded
    content is its original; one of the same name and other content is not."""
    first, backup, out = tmp_path / "A" / "holiday", tmp_path / "B" / "holiday", tmp_path / "out"
    a, b = touch(first / "a.jpg"), touch(first / "b.jpg")
    b.write_bytes(b"another photo")
    copy_a, copy_b = touch(out / "holiday" / "a.jpg"), touch(out / "holiday" / "b.jpg")
    record(out, {"holiday": str(first)}, {"holiday/a.jpg": (a, copy_a),
                                         "holiday/b.jpg": (b, copy_b)})
    same_a = touch(backup / "a.jpg")  # a's very bytes
    touch(backup / "b.jpg")  # b.jpg's name, a's bytes: not b's original
    copy_a.write_bytes(b"the unprotected photo, put in its copy's place")
    copy_b.write_bytes(b"the copy, re-saved since")
    assert [(p.name, p.original) for p in pair_folders(backup, out)] == [
        ("holiday/a.jpg", same_a), ("holiday/b.jpg", None)]


def test_a_recorded_folder_inside_originals_pairs_with_its_own_mirror(tmp_path):
    """protect A/trip B/trip (mirrors trip, trip (2)), then verify B OUT: trip (2)'s copies
    had no original (looked for at B/trip (2)/...), and trip's (A's) were paired with
    B/trip's photos of the same names, which the record gives to trip (2). trip (2) pairs
    with B/trip; trip, A's mirror, with nothing in B."""
    a_trip, b_trip, out = tmp_path / "A" / "trip", tmp_path / "B" / "trip", tmp_path / "out"
    a = touch(a_trip / "a.jpg")
    b = touch(b_trip / "a.jpg")
    b.write_bytes(b"B's own photo a.jpg")
    copy_a, copy_b = touch(out / "trip" / "a.jpg"), touch(out / "trip (2)" / "a.jpg")
    record(out, {"trip": str(a_trip), "trip (2)": str(b_trip)},
           {"trip/a.jpg": (a, copy_a), "trip (2)/a.jpg": (b, copy_b)})
    copy_b.write_bytes(b"B's copy, re-saved since")  # the record no longer describes it
    assert [(p.name, p.original) for p in pair_folders(tmp_path / "B", out)] == [
        ("trip/a.jpg", None), ("trip (2)/a.jpg", b)]
    assert [(p.name, p.original) for p in pair_folders(tmp_path / "A", out)] == [
        ("trip/a.jpg", a), ("trip (2)/a.jpg", None)]


def test_a_folder_inside_a_protected_one_pairs_with_its_part_of_the_mirror(tmp_path):
    """protect holiday --out protected, then verify holiday/beach protected: the beach
    copies pair by path, and no other copy is listed."""
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    touch(holiday / "a.jpg")
    b = touch(holiday / "beach" / "b.jpg")
    touch(out / "holiday" / "a.jpg")
    touch(out / "holiday" / "beach" / "b.jpg")
    (out / ".cloak-manifest.json").write_text(json.dumps({
        "version": 1, "photos": {}, "folders": {"holiday": str(holiday)}}))
    assert [(p.name, p.original) for p in pair_folders(holiday / "beach", out)] == [
        ("holiday/beach/b.jpg", b)]


def test_a_record_of_a_copy_replaced_since_is_not_used(tmp_path):
    """The record names what cloak wrote: a copy of another size than recorded (replaced
    since, by a later run into another folder or by hand) pairs by its path, without the
    record's search by content or its 'not the file' note."""
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    a = touch(holiday / "a.jpg")
    old = holiday / "old" / "a.jpg"
    old.parent.mkdir()
    old.write_bytes(b"the photo as it was protected")
    copy = touch(out / "holiday" / "a.jpg")
    record(out, {"holiday": str(holiday)}, {"holiday/a.jpg": (old, copy)})
    [pair] = pair_folders(holiday, out)
    assert (pair.original, pair.note) == (old, None)  # the record still describes the copy
    copy.write_bytes(b"another copy, written since")
    [pair] = pair_folders(holiday, out)
    assert (pair.original, pair.note) == (a, None)


def test_a_hand_edited_record_cannot_crash_or_lead_outside(tmp_path):
    """Mirror names that are not one folder name, a NUL in a folder, a size that is not a
    number: passed over, as batch does, and pairing goes on by path."""
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    a = touch(holiday / "a.jpg")
    touch(out / "holiday" / "a.jpg")
    touch(tmp_path / "elsewhere" / "holiday" / "a.jpg")
    (out / ".cloak-manifest.json").write_text(json.dumps({
        "version": 1,
        "folders": {"../elsewhere": str(holiday), "/": str(holiday), "x": "a\u0000b"},
        "photos": {"holiday/a.jpg": {"state": "done", "src": {"size": [1], "sha256": "0"},
                                     "dst": {"size": 13}}}}))
    pairs = pair_folders(holiday, out)
    assert [(p.name, p.copy, p.original) for p in pairs] == [
        ("holiday/a.jpg", out / "holiday" / "a.jpg", a)]


def test_a_protected_folder_that_cant_be_listed_says_why(tmp_path, lock_folder):
    touch(tmp_path / "holiday" / "a.jpg")
    touch(tmp_path / "protected" / "holiday" / "a.jpg")
    lock_folder(tmp_path / "protected")
    with pytest.raises(UnsupportedImageError, match=r"\(Permission denied\)"):
        pair_folders(tmp_path / "holiday", tmp_path / "protected")


def test_a_folder_it_could_not_search_is_named_only_where_a_copy_lacks_its_original(
        tmp_path, lock_folder):
    """An original edited where it was is looked for by content, and found elsewhere: a
    locked folder the search passed (a lost+found at a disk's root) fails nothing."""
    holiday, out = tmp_path / "holiday", tmp_path / "protected"
    touch(holiday / "a.jpg").write_bytes(b"edited since")
    kept = holiday / "kept" / "a.jpg"
    kept.parent.mkdir()
    kept.write_bytes(b"the photo as it was protected")
    touch(holiday / "lost+found" / "x.jpg")
    copy = touch(out / "holiday" / "a.jpg")
    record(out, {"holiday": str(holiday)}, {"holiday/a.jpg": (kept, copy)})
    lock_folder(holiday / "lost+found")
    unreadable: list[OSError] = []
    [pair] = pair_folders(holiday, out, unreadable)
    assert (pair.original, unreadable) == (kept, [])


def test_folders_given_the_wrong_way_round_get_a_note(tmp_path, small_photo, model_dir):
    """`cloak verify protected/ holiday/`: each pair says it looks swapped, as one pair
    does."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    result = invoke("verify", out / "holiday", holiday, "--models", "taesd", "--channels",
                    "as-is")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("the order is the folder of ORIGINALS, then PROTECTED; were "
                               "they swapped?") == 2
    # the output folder itself first: no pair forms, and its record says which it is
    result = invoke("verify", out, holiday, "--models", "taesd")
    assert result.exit_code == 1
    assert f"{out} is the folder cloak protect wrote to, so the two look swapped" in \
        result.stderr
    small_photo(tmp_path / "other" / "z.png")  # a folder without cloak's record
    result = invoke("verify", tmp_path / "other", holiday, "--models", "taesd")
    assert result.exit_code == 1 and "has its original in" in result.stderr
    assert "look swapped" not in result.stderr


def test_a_copy_re_saved_in_another_format_pairs_with_the_one_photo_of_its_stem(tmp_path):
    """dl/d01.jpg (a PNG's copy saved as JPEG by hand, or by a download) pairs with
    orig/d01.png; with two photos of that stem there it pairs with none (which one?)."""
    d01 = touch(tmp_path / "orig" / "d01.png")
    touch(tmp_path / "orig" / "d02.png")
    touch(tmp_path / "orig" / "d02.webp")
    touch(tmp_path / "dl" / "d01.jpg")
    touch(tmp_path / "dl" / "d02.jpg")
    assert [(p.name, p.original) for p in pair_folders(tmp_path / "orig", tmp_path / "dl")] == [
        ("d01.jpg", d01), ("d02.jpg", None)]


def test_a_copy_whose_originals_folder_cant_be_read_is_not_called_without_one(
        tmp_path, small_photo, model_dir, lock_folder):
    """An originals subfolder the user may not open: its copy was "not measured, no
    original of it", counted as without an original, and (with cloak's record) the same
    folder then said "not searched" too. It is said once, as its folder's permission, and
    counted as not measured (exit 2)."""
    holiday, out = protected_pair_of_photos(tmp_path, small_photo, model_dir)
    small_photo(holiday / "locked" / "c.png", index=2)
    small_photo(holiday / "locked" / "sub" / "d.png", index=3)  # below it: the same folder
    result = invoke("protect", holiday, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    lock_folder(holiday / "locked")
    pairs = {p.name: p for p in pair_folders(holiday, out)}
    for name in ("holiday/locked/c.png", "holiday/locked/sub/d.png"):
        assert pairs[name].original is None
        assert pairs[name].unreachable.strerror == "Permission denied"
        assert pairs[name].unreachable.filename == str(holiday / "locked")  # the one shut
    report = tmp_path / "v.json"
    result = invoke("verify", holiday, out, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 2, result.output
    for name in ("holiday/locked/c.png", "holiday/locked/sub/d.png"):
        assert (f"{name}: not measured, its original's folder {holiday / 'locked'} can't "
                "be read: Permission denied") in result.stderr
    assert "not searched" not in result.stderr and "no original" not in result.output
    assert result.stdout.splitlines()[-1].endswith("; 2 not measured")
    data = json.loads(report.read_text())
    assert data["without_original"] == 0 and data["failed"] == 2
    assert [row["name"] for row in data["pairs"] if row.get("error")] == [
        "holiday/locked/c.png", "holiday/locked/sub/d.png"]
    assert all(row["error"].startswith("original not reached: its original's folder")
               for row in data["pairs"] if row.get("error"))
    # every original shut away: said so, not "give the folder you protected"
    result = invoke("verify", holiday / "locked", out / "holiday" / "locked", "--models",
                    "taesd", "--channels", "as-is")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: can't read {holiday / 'locked'}, where the originals of the photos in "
        f"{out / 'holiday' / 'locked'} are: Permission denied\n")


def test_a_folder_not_searched_on_another_drive_is_named_whole(monkeypatch):
    """A folder under ORIGINALS on another drive than PROTECTED (Windows): no relative
    name exists (os.path.relpath raises ValueError), so it is named whole."""
    import os

    def other_drive(path, start=os.curdir):
        raise ValueError("path is on mount 'D:', start on mount 'E:'")

    monkeypatch.setattr(os.path, "relpath", other_drive)
    (row,) = cli.unsearched_rows([PermissionError(13, "Permission denied", "/d/locked")],
                                 Path("/e/protected"), verdict=None)
    assert row["name"] == "/d/locked" and row["verdict"] is None
