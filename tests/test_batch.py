"""cloak.batch: planning (folders, duplicates, loops, clashes), resume, bad files, stopping."""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from cloak import Cancelled, CloakError, ModelError, OutputError, ProtectConfig, batch, io
from cloak import manifest as manifest_module
from cloak.api import MEASURING_SAVED_AT, SAVED_AT, after_attack, attack_share
from cloak.batch import CANCELLED, FAILED, PROTECTED, SKIPPED
from cloak.manifest import (
    JOURNAL_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    SHEETS_RECORDED,
    Manifest,
    fold_journal,
    identity,
    output_folder_lock,
    pending_is_ours,
    record_copy,
    settings_change,
)
from cloak.planning import A_PROTECTED_COPY, Mirrors, root_mirror_name
from cloak.preview import preview_path
from cloak.same_path import fold, only_spelt_apart


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_src(items: list[batch.Item]) -> dict[str, batch.Item]:
    return {Path(i.src).name: i for i in items}


def leftovers(folder: Path) -> list[Path]:
    """Files in `folder` that are neither photos nor the manifest: temp files."""
    return [p for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME
            and p.suffix.lower() not in (".png", ".jpg", ".jpeg")]


def decodes(path: Path) -> bool:
    with Image.open(path) as im:
        im.load()
    return True


def killed_before_recording(out: Path) -> None:
    """Leave OUT's manifest as a run killed after writing its one photo, before any record
    of the file: the entry `pending`, with no identity of the file at its name."""
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    [entry] = manifest["photos"].values()
    entry["state"] = "pending"
    del entry["dst"]
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))


def huge_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A few hundred bytes that claim 10^10 pixels: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


class TestPlan:
    def test_folders_are_mirrored_and_files_go_straight_in(self, tmp_path, small_photo):
        small_photo(tmp_path / "trip" / "a.png")
        small_photo(tmp_path / "trip" / "day 2" / "b.jpg")
        small_photo(tmp_path / "trip" / ".hidden" / "c.png")
        (tmp_path / "trip" / "notes.txt").write_text("not a photo")
        (tmp_path / "trip" / "._a.png").write_bytes(b"macOS resource fork")
        single = small_photo(tmp_path / "me.png")
        out = tmp_path / "out"
        items = batch.plan([tmp_path / "trip", single], out)
        assert [(i.status, i.dst) for i in items] == [
            ("pending", out / "trip" / "a.png"),
            ("pending", out / "trip" / "day 2" / "b.jpg"),
            ("pending", out / "me.png"),
        ]

    def test_a_stop_asked_for_ends_the_walk(self, tmp_path, small_photo):
        """A first Ctrl-C while a big tree is walked ends the walk (Cancelled; the CLI
        then exits 130 with nothing written) instead of waiting for every folder and
        every photo's header."""
        from cloak import Cancelled

        for name in ("a", "b", "c"):
            small_photo(tmp_path / "trip" / name / "x.png", size=(16, 16))
        asked = []

        def after(n):
            def stop() -> bool:
                asked.append(1)
                return len(asked) > n
            return stop

        with pytest.raises(Cancelled, match="stopped while looking for photos"):
            batch.plan([tmp_path / "trip"], tmp_path / "out", after(2))
        assert len(asked) == 3  # the top folder and "a" walked, stopped before "b"
        asked.clear()
        with pytest.raises(Cancelled):  # walked, then stopped among the headers
            batch.plan([tmp_path / "trip"], tmp_path / "out", after(5))
        asked.clear()
        items = batch.plan([tmp_path / "trip"], tmp_path / "out", lambda: False)
        assert [i.status for i in items] == ["pending"] * 3
        assert not (tmp_path / "out").exists()

    def test_same_photo_twice_is_planned_once(self, tmp_path, small_photo):
        photo = small_photo(tmp_path / "in" / "a.png")
        os.symlink(photo, tmp_path / "in" / "link.png")
        items = batch.plan([tmp_path / "in", photo], tmp_path / "out")
        assert [i.status for i in items] == ["pending", SKIPPED, SKIPPED]
        # where the one copy goes, not an output of its own never written (--json named
        # out/in/link.png and out/a.png, neither made), nor the same path twice in a line
        into = f"taken once, for {tmp_path / 'out' / 'in' / 'a.png'}"
        assert items[1].message == f"the same photo as {photo}; {into}"
        assert items[2].message == f"named twice; {into}"
        assert [i.dst for i in items[1:]] == [None, None]

    def test_a_second_path_to_a_photo_refused_first_is_planned(self, tmp_path, small_photo):
        """The first path to a photo failed (its output clashed with another's), and the
        second was skipped as "protected once": the photo was never protected."""
        small_photo(tmp_path / "x" / "IMG_1.png")
        photo = small_photo(tmp_path / "y" / "IMG_1.png", index=1)
        os.symlink(photo, tmp_path / "x" / "y-copy.png")
        items = batch.plan([tmp_path / "x" / "IMG_1.png", photo, tmp_path / "x" / "y-copy.png"],
                           tmp_path / "o")
        assert [i.status for i in items] == ["pending", FAILED, "pending"]
        assert "is also the output of" in items[1].message
        assert items[2].dst == tmp_path / "o" / "y-copy.png"

    def test_outputs_one_in_letter_case_only_say_so(self, tmp_path, small_photo):
        """IMG_1.JPG and img_1.jpg from two folders: one file on macOS and Windows disks,
        so the second is refused, and told why the two names are one."""
        small_photo(tmp_path / "x" / "IMG_1.png")
        small_photo(tmp_path / "y" / "img_1.png", index=1)
        small_photo(tmp_path / "z" / "IMG_2.png", index=2)
        small_photo(tmp_path / "w" / "IMG_2.png", index=3)
        items = batch.plan([tmp_path / "x" / "IMG_1.png", tmp_path / "y" / "img_1.png",
                            tmp_path / "z" / "IMG_2.png", tmp_path / "w" / "IMG_2.png"],
                           tmp_path / "o")
        assert [i.status for i in items] == ["pending", FAILED, "pending", FAILED]
        assert items[1].message == (
            f"output {tmp_path / 'o' / 'img_1.png'} is also the output of "
            f"{tmp_path / 'x' / 'IMG_1.png'} (the names differ only in letter case, and are "
            "one file on macOS and Windows disks and on memory cards); protect this one "
            "alone into another --out folder")
        assert "differ only" not in items[3].message  # the very same name

    def test_names_a_disk_keeps_apart_are_both_planned(self, tmp_path, small_photo):
        """Straße.png and Strasse.png are two files on every disk (a case-insensitive one
        maps a letter to one capital: ß stays ß), but casefold made them one, so the
        second was refused as "differ only in letter case"."""
        small_photo(tmp_path / "x" / "Stra\u00dfe.png")
        small_photo(tmp_path / "x" / "Strasse.png", index=1)
        small_photo(tmp_path / "x" / "\ufb01sh.png", index=2)  # the ligature ﬁ
        small_photo(tmp_path / "x" / "fish.png", index=3)
        items = batch.plan([tmp_path / "x" / name for name in
                            ("Stra\u00dfe.png", "Strasse.png", "\ufb01sh.png", "fish.png")],
                           tmp_path / "o")
        assert [i.status for i in items] == ["pending"] * 4
        assert fold("Stra\u00dfe.JPG") == fold("STRA\u00dfe.jpg") != fold("Strasse.jpg")

    def test_only_spelt_apart_names_the_difference(self):
        nfc, nfd = "/o/Caf\u00e9.png", "/o/Cafe\u0301.png"
        assert only_spelt_apart("/o/a.png", "/o/a.png") == ""
        assert "only in letter case," in only_spelt_apart("/o/A.png", "/o/a.png")
        assert "only in how accented letters are encoded," in only_spelt_apart(nfc, nfd)
        assert "only in letter case and how accented" in only_spelt_apart(
            nfc, nfd.lower())
        # NTFS and memory cards keep the two encodings apart: one file on macOS alone
        assert only_spelt_apart(nfc, nfd).endswith("and are one file on macOS disks)")
        assert only_spelt_apart(nfc, nfd.lower()).endswith("and are one file on macOS disks)")
        assert only_spelt_apart("/o/A.png", "/o/a.png").endswith(
            "one file on macOS and Windows disks and on memory cards)")

    def test_a_preview_sheet_named_as_a_file_is_not_protected(self, tmp_path, small_photo):
        """Walks skipped *.preview.png sheets, but one named (`protected/*`) was protected
        like a photo, into a name that may be another copy's sheet."""
        sheet = small_photo(tmp_path / "p" / "a.jpg.preview.png")
        items = batch.plan([sheet], tmp_path / "again")
        assert [i.status for i in items] == [SKIPPED]
        assert "preview sheet" in items[0].message
        assert batch.BatchResult(items).found_no_photos  # only sheets given: exit 1

    def test_symlink_loop_ends_and_is_reported_once(self, tmp_path, small_photo):
        small_photo(tmp_path / "in" / "sub" / "a.png")
        os.symlink("..", tmp_path / "in" / "sub" / "up")
        os.symlink("loop.jpg", tmp_path / "in" / "loop.jpg")  # a file symlink to itself
        items = batch.plan([tmp_path / "in"], tmp_path / "out")
        statuses = {Path(i.src).name: (i.status, i.message) for i in items}
        assert statuses["a.png"][0] == "pending"
        assert statuses["up"][0] == SKIPPED and "not followed" in statuses["up"][1]
        assert statuses["loop.jpg"] == (
            FAILED, "is a link that leads back to itself (a loop of links)")
        assert len(items) == 3

    def test_a_symlink_above_the_folder_named_is_not_followed(self, tmp_path, small_photo):
        """A link to the input's parent (or `/`, `~`) took every photo under it, outside
        the folder named, and said nothing (its loop back was met as a plain folder)."""
        small_photo(tmp_path / "home" / "pics" / "a.png")
        small_photo(tmp_path / "home" / "private" / "secret.png")
        os.symlink("..", tmp_path / "home" / "pics" / "up")
        items = batch.plan([tmp_path / "home" / "pics"], tmp_path / "out")
        by_name = {Path(i.src).name: i for i in items}
        assert len(items) == 2 and by_name["a.png"].status == "pending"
        assert by_name["up"].status == SKIPPED
        assert by_name["up"].message.startswith("symlink to a folder that holds it")
        # a folder holding only such a link has no photos: exit 1, as an empty one
        (tmp_path / "empty").mkdir()
        os.symlink("../empty", tmp_path / "empty" / "self")
        only_link = batch.plan([tmp_path / "empty"], tmp_path / "out")
        assert [i.status for i in only_link] == [SKIPPED]
        assert batch.BatchResult(only_link).found_no_photos

    def test_a_photo_library_package_is_not_walked_unless_given(self, tmp_path, small_photo):
        """~/Pictures holds a macOS Photos library (a folder that is one document): its
        internal originals and thumbnails are not taken as photos; given by itself it is."""
        mine = small_photo(tmp_path / "Pictures" / "mine.png")
        library = tmp_path / "Pictures" / "Photos Library.photoslibrary"
        small_photo(library / "originals" / "0" / "x.png")
        small_photo(tmp_path / "Pictures" / "Catalog Previews.lrdata" / "p.jpg")
        items = batch.plan([tmp_path / "Pictures"], tmp_path / "out")
        pending = [i.src for i in items if i.status == "pending"]
        assert pending == [mine]
        skipped = {Path(i.src).name: i.message for i in items if i.status == SKIPPED}
        assert set(skipped) == {library.name, "Catalog Previews.lrdata"}
        assert all("package, not walked" in m for m in skipped.values())
        given = batch.plan([library], tmp_path / "out2")
        assert [i.status for i in given] == ["pending"]

    def test_camera_raw_files_in_a_folder_are_named_in_one_line(self, tmp_path,
                                                                 small_photo):
        """A card shot RAW+JPEG: the JPEGs are protected, and one line for the folder says
        its RAW files were not (they need developing), not one line each or nothing."""
        photo = small_photo(tmp_path / "card" / "IMG_1.png")
        for name in ("IMG_1.CR3", "IMG_2.CR3"):
            (tmp_path / "card" / name).write_bytes(b"raw")
        items = batch.plan([tmp_path / "card"], tmp_path / "out")
        assert [i.src for i in items if i.status == "pending"] == [photo]
        [raw] = [i for i in items if i.status == SKIPPED]
        assert raw.src == tmp_path / "card" and raw.message.startswith(
            "2 camera RAW file(s) (CR3) not protected: a RAW must be developed first")

    def test_output_equal_to_input_is_refused(self, tmp_path, small_photo):
        photo = small_photo(tmp_path / "a.png")
        [item] = batch.plan([photo], tmp_path)
        assert item.status == FAILED and "would replace the original" in item.message

    def test_the_output_folder_given_as_an_input_gives_only_the_users_photos(
            self, tmp_path, small_photo, tiny_config):
        """`cd trip && cloak protect * --out protected`, run again: `*` now names
        protected/ too. The copies its manifest lists are not protected a second time,
        even one without cloak's note (notices off, as a BMP has none); a photo of the
        user's own put there is."""
        from cloak.metadata import MetadataPolicy

        photo = small_photo(tmp_path / "trip" / "a.png")
        out = tmp_path / "trip" / "protected"
        config = tiny_config.replace(metadata=MetadataPolicy.choose(notices=False))
        [done] = batch.run(batch.plan([photo], out), out, config).items
        assert done.status == PROTECTED and not io.says_protected_file(out / "a.png")
        mine = small_photo(out / "mine.png", index=1)
        items = batch.plan([photo, out], out)
        pending = [i.src for i in items if i.status == "pending"]
        assert pending == [photo, mine]
        [skipped] = [i for i in items if i.status == SKIPPED]
        assert skipped.src == out and "its 1 protected copy is" in skipped.message

    def test_output_folder_inside_the_input_is_not_walked_for_its_copies(
            self, tmp_path, small_photo, tiny_config):
        """An earlier run's copies in OUT inside the input (its mirror, and copies it
        recorded elsewhere in OUT) are not taken, even without cloak's note."""
        a = small_photo(tmp_path / "in" / "a.png")
        out = tmp_path / "in" / "out"
        from cloak.metadata import MetadataPolicy

        config = tiny_config.replace(metadata=MetadataPolicy.choose(notices=False))
        assert batch.run(batch.plan([a], out), out, config
                         ).counts[PROTECTED] == 1  # out/a.png, outside the folder's mirror
        assert not io.says_protected_file(out / "a.png")
        items = batch.plan([tmp_path / "in"], out)
        assert [i.src for i in items] == [a]

    def test_output_folder_inside_the_input_with_an_unreadable_record_is_not_entered(
            self, tmp_path, small_photo, tiny_config):
        """Its record is what tells cloak's copies (without its note: --no-ai-notice, BMP)
        from the user's photos; damaged or a newer cloak's, the copies would be protected
        again, so the folder is left out, with a line saying why."""
        from cloak.metadata import MetadataPolicy

        a = small_photo(tmp_path / "in" / "a.png")
        out = tmp_path / "in" / "out"
        config = tiny_config.replace(metadata=MetadataPolicy.choose(notices=False))
        assert batch.run(batch.plan([a], out), out, config).counts[PROTECTED] == 1
        manifest = out / MANIFEST_NAME
        for record, why in (("{not json", "unreadable"),
                            ('{"version": 99, "photos": {}}', "from a newer cloak")):
            manifest.write_text(record)
            items = batch.plan([tmp_path / "in"], out)
            assert [i.src for i in items if i.status == "pending"] == [a]
            [skipped] = [i for i in items if i.status == SKIPPED]
            assert skipped.src == out and why in skipped.message, skipped.message
        # a run sets the damaged record aside and starts a new one: the next still skips
        manifest.write_text("{not json")
        batch.run(batch.plan([tmp_path / "in"], out), out, config)
        assert list(out.glob(f"{MANIFEST_NAME}.unreadable-*"))
        items = batch.plan([tmp_path / "in"], out)
        assert [i.src for i in items if i.status == "pending"] == [a]

    def test_own_photos_in_an_output_folder_inside_the_input_are_taken(
            self, tmp_path, small_photo, tiny_config):
        """`cloak protect t --out t/sub`, where sub already held the user's b.png: it was
        left out without a word (alone: "No photos found"). It is taken, as in an --out
        named as an input; the copies the run makes there are not, on a rerun either,
        and no line is said about them."""
        folder, out = tmp_path / "t", tmp_path / "t" / "sub"
        a, b = small_photo(folder / "a.png"), small_photo(out / "b.png", index=1)
        items = batch.plan([folder], out)
        assert [(i.src, i.status) for i in items] == [(a, "pending"), (b, "pending")]
        assert items[1].dst == out / "t" / "sub" / "b.png"
        assert batch.run(items, out, tiny_config).counts[PROTECTED] == 2
        again = batch.plan([folder], out)
        assert [(i.src, i.status) for i in again] == [(a, "pending"), (b, "pending")]
        assert batch.run(again, out, tiny_config).counts[SKIPPED] == 2
        alone = tmp_path / "u"
        c = small_photo(alone / "sub" / "c.png")
        assert [i.src for i in batch.plan([alone], alone / "sub")] == [c]

    def test_output_over_another_input_is_refused(self, tmp_path, small_photo):
        """a.gif's output is a.png: beside an input a.png, it would replace that original
        (and with --overwrite it would have)."""
        folder = tmp_path / "in"
        gif, png = folder / "a.gif", small_photo(folder / "a.png")
        with Image.open(png) as im:
            im.save(gif)
        for inputs, out in (([gif, png], folder), ([png, gif], folder)):
            items = by_src(batch.plan(inputs, out))
            assert items["a.gif"].status == FAILED
            assert f"would replace the original {png}" in items["a.gif"].message
        # `cloak protect in --out .`: OUT/in is the input folder itself, not a mirror cloak
        # made, so the copies get a mirror of their own
        # (where a.gif and a.png still can't share one output name: a.png keeps its own)
        items = by_src(batch.plan([folder], tmp_path))
        assert items["a.png"].status == "pending" and items["a.gif"].status == FAILED
        assert items["a.gif"].dst == items["a.png"].dst == tmp_path / "in (2)" / "a.png"

    def test_a_folder_already_in_out_that_no_run_made_is_not_merged_into(
            self, tmp_path, small_photo, tiny_config):
        """`cloak protect card/DCIM --out ~/Pictures` with the user's own ~/Pictures/DCIM
        there, or `cloak protect holiday --out holiday` with originals in holiday/holiday:
        the copies go to `DCIM (2)`, never among (or with --overwrite, over) originals,
        and those originals are still walked as inputs."""
        mine = small_photo(tmp_path / "Pictures" / "DCIM" / "IMG_0001.png", index=3)
        before = sha256(mine)
        small_photo(tmp_path / "card" / "DCIM" / "IMG_0001.png")
        out = tmp_path / "Pictures"
        [item] = batch.run(batch.plan([tmp_path / "card" / "DCIM"], out), out, tiny_config,
                           overwrite=True).items
        assert item.status == PROTECTED and item.dst == out / "DCIM (2)" / "IMG_0001.png"
        assert sha256(mine) == before
        # the next run keeps its own mirror (recorded), and the user's folder stays theirs
        [item] = batch.run(batch.plan([tmp_path / "card" / "DCIM"], out), out,
                           tiny_config).items
        assert item.status == SKIPPED and item.dst == out / "DCIM (2)" / "IMG_0001.png"
        holiday = tmp_path / "holiday"
        small_photo(holiday / "a.png")
        inner = small_photo(holiday / "holiday" / "b.png", index=1)
        items = by_src(batch.plan([holiday], holiday))
        assert items["b.png"].src == inner
        assert items["b.png"].dst == holiday / "holiday (2)" / "holiday" / "b.png"

    def test_folders_with_one_name_get_their_own_mirrors(self, tmp_path, small_photo):
        a = small_photo(tmp_path / "2023" / "Camera" / "IMG_1.jpg")
        b = small_photo(tmp_path / "2024" / "camera" / "IMG_1.jpg", index=1)
        out = tmp_path / "out"
        items = batch.plan([a.parent, b.parent], out)
        assert [(i.status, i.dst) for i in items] == [
            ("pending", out / "Camera" / "IMG_1.jpg"),
            ("pending", out / "camera (2)" / "IMG_1.jpg")]

    def test_two_photos_for_one_output_clash(self, tmp_path, small_photo):
        a = small_photo(tmp_path / "x" / "a.png")
        b = small_photo(tmp_path / "y" / "a.png", index=1)
        items = batch.plan([a, b], tmp_path / "out")
        assert items[0].status == "pending"
        assert items[1].status == FAILED and "also the output of" in items[1].message

    def test_a_photo_keeping_its_name_wins_over_a_format_change_onto_it(self, tmp_path,
                                                                          small_photo):
        """a.gif's copy is a.png, as is a.png's: a.png keeps its name (else it failed in
        every --out), and a.gif is told to go alone into another folder."""
        shoot = tmp_path / "shoot"
        shoot.mkdir()
        with Image.open(small_photo(tmp_path / "src.png")) as im:
            im.save(shoot / "a.gif")
        small_photo(shoot / "a.png", index=1)
        items = by_src(batch.plan([shoot], tmp_path / "out"))
        assert items["a.png"].status == "pending"
        assert items["a.gif"].status == FAILED
        assert "protect this one alone into another --out folder" in items["a.gif"].message

    def test_an_animated_gif_beside_its_still_is_told_why_it_fails_everywhere(
            self, tmp_path, small_photo):
        """The clash's advice (go alone into another folder) would fail again there, for
        the frames: the reason that holds in every folder comes first."""
        shoot = tmp_path / "shoot"
        shoot.mkdir()
        with Image.open(small_photo(tmp_path / "src.png")) as im:
            still = im.convert("P")
            still.save(shoot / "a.gif", save_all=True,
                       append_images=[im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                                      .convert("P")])
        small_photo(shoot / "a.png", index=1)
        items = by_src(batch.plan([shoot], tmp_path / "out"))
        assert items["a.png"].status == "pending"
        assert items["a.gif"].status == FAILED
        assert items["a.gif"].message == ("animated or multi-frame GIF (2 frames) is not "
                                          "supported; export the frame you want as a "
                                          "still image")
        assert io.frames_problem(shoot / "a.png") is None
        assert io.frames_problem(tmp_path / "missing.gif") is None  # load_photo says why
        # without waiting (the app's thumbnails): no answer while a photo is decoded
        with io.decoding_limit(shoot / "a.png", io.pixel_limit()):
            assert io.frames_problem(shoot / "a.gif", wait=False) is None
        assert io.frames_problem(shoot / "a.gif", wait=False) == items["a.gif"].message

    def test_an_output_recorded_as_one_photo_s_stays_its_own(self, tmp_path, small_photo,
                                                             tiny_config):
        """An OUT where a.gif's copy a.png was made (by itself, or by a cloak that let the
        GIF claim the name): a.png added beside it later does not take that output, so
        the GIF's copy is not redone for it."""
        shoot, out = tmp_path / "shoot", tmp_path / "out"
        shoot.mkdir()
        with Image.open(small_photo(tmp_path / "src.png")) as im:
            im.save(shoot / "a.gif")
        assert batch.run(batch.plan([shoot], out), out, tiny_config).counts[PROTECTED] == 1
        small_photo(shoot / "a.png", index=1)
        items = by_src(batch.plan([shoot], out))
        assert items["a.gif"].status == "pending" and items["a.png"].status == FAILED
        assert "also the output of" in items["a.png"].message

    def test_missing_unreadable_and_non_photo_paths(self, tmp_path):
        (tmp_path / "notes.txt").write_text("hello")
        (tmp_path / "README").write_text("hello")
        (tmp_path / "IMG_1.DNG").write_bytes(b"II*\0")  # a phone's ProRAW: needs developing
        os.mkfifo(tmp_path / "pipe.jpg")
        os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
        items = by_src(batch.plan(
            [tmp_path / "missing.jpg", tmp_path / "notes.txt", tmp_path / "pipe.jpg",
             tmp_path / "dangling.jpg", tmp_path / "IMG_1.DNG", tmp_path / "README",
             tmp_path / "*.JPG"], tmp_path / "out"))
        assert items["missing.jpg"].message == "no such file or folder"
        # `cloak protect *.JPG` where none matched: the shell passed the pattern on as it is
        assert items.pop("*.JPG").message.startswith(
            "no such file or folder: no file matches this pattern (a shell passes one that "
            "matches nothing on as it is")
        assert items["notes.txt"].message.startswith("not a photo cloak reads (suffix '.txt'); ")
        readme = items.pop("README")
        assert readme.status == SKIPPED
        assert readme.message.startswith("not a photo cloak reads (no suffix such as .jpg); ")
        assert "RAW" not in items["notes.txt"].message
        raw = items.pop("IMG_1.DNG")
        assert raw.status == SKIPPED and "camera RAW (DNG) must be developed" in raw.message
        assert items["notes.txt"].status == SKIPPED  # as in folders: a phone export's .AAE
        assert items["pipe.jpg"].message == (  # never opened: it would hang
            "not a regular file (a pipe, socket or device)")
        assert items["dangling.jpg"].message == (
            f"is a link to {tmp_path / 'gone.jpg'}, which does not exist")
        del items["notes.txt"]
        assert all(i.status == FAILED for i in items.values())

    def test_a_fifo_named_like_a_photo_in_a_folder_fails_without_blocking(self, tmp_path,
                                                                          small_photo):
        """Opening a FIFO waits for a writer forever: one found inside a folder fails as
        one given by name does, and the folder's photos are still planned."""
        import threading

        small_photo(tmp_path / "shoot" / "a.png")
        os.mkfifo(tmp_path / "shoot" / "pipe.jpg")
        planned: list = []
        planner = threading.Thread(daemon=True, target=lambda: planned.append(
            batch.plan([tmp_path / "shoot"], tmp_path / "out")))
        planner.start()
        planner.join(20)
        assert planned, "planning blocked on the FIFO"
        items = by_src(planned[0])
        assert items["a.png"].status == "pending"
        assert items["pipe.jpg"].status == FAILED
        assert items["pipe.jpg"].message == "not a regular file (a pipe, socket or device)"


class TestRun:
    @pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
    def test_a_private_folders_copies_are_private(self, tmp_path, small_photo,
                                                  tiny_config):
        """`cloak protect tree --out out` under umask 022, tree/priv 0700 holding a 0600
        photo: its mirror folder, copy and preview were 755/644, readable by every user
        of the machine (`cp -r` keeps them 700/600). A public folder's stay as the umask
        makes them; the record, made private by its user, stays private over a rerun."""
        private = small_photo(tmp_path / "tree" / "priv" / "a.png")
        public = small_photo(tmp_path / "tree" / "pub" / "b.png", index=1)
        private.chmod(0o600)
        private.parent.chmod(0o700)
        public.chmod(0o644)
        public.parent.chmod(0o755)
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        before = os.umask(0o022)
        try:
            result = batch.run(batch.plan([tmp_path / "tree"], out), out, config)
            assert result.counts[PROTECTED] == 2

            def mode(path: Path) -> int:
                return path.stat().st_mode & 0o777

            mirror = out / "tree"
            assert [mode(p) for p in (mirror / "priv", mirror / "priv" / "a.png",
                                      mirror / "priv" / "a.png.preview.png")] == [
                0o700, 0o600, 0o600]
            assert [mode(p) for p in (mirror / "pub", mirror / "pub" / "b.png",
                                      mirror / "pub" / "b.png.preview.png")] == [
                0o755, 0o644, 0o644]
            (out / MANIFEST_NAME).chmod(0o600)
            again = batch.run(batch.plan([tmp_path / "tree"], out), out, config, force=True)
            assert again.counts[PROTECTED] == 2
            assert mode(out / MANIFEST_NAME) == 0o600
            assert mode(mirror / "priv" / "a.png") == 0o600
        finally:
            os.umask(before)

    def test_protects_mirrors_and_records_a_manifest(self, tmp_path, small_photo,
                                                     tiny_config):
        src = [small_photo(tmp_path / "in" / "a.png"),
               small_photo(tmp_path / "in" / "sub" / "b b é.jpg", index=1)]
        before = [sha256(p) for p in src]
        out = tmp_path / "out"
        events = []
        result = batch.run(batch.plan([tmp_path / "in"], out), out, tiny_config,
                           on_event=events.append)
        assert result.counts[PROTECTED] == 2 and not result.interrupted
        assert [sha256(p) for p in src] == before
        for item in result.items:
            assert decodes(item.dst) and item.report.width == 64
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert set(manifest["photos"]) == {"in/a.png", "in/sub/b b é.jpg"}
        entry = manifest["photos"]["in/a.png"]
        assert entry["state"] == "done" and entry["settings"] == tiny_config.fingerprint()
        assert entry["src"]["sha256"] == before[0]
        assert "verdict" not in entry  # not measured
        kinds = [e.kind for e in events]
        assert kinds[0] == "todo" and kinds.count("start") == kinds.count("done") == 2
        assert not leftovers(out)

    def test_a_measured_copy_s_verdict_is_recorded(self, tmp_path, small_photo, tiny_config):
        """The record keeps the verdict a measured copy got as saved (the desktop app
        shows it when it meets that copy again in a later session)."""
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([small_photo(tmp_path / "a.png")], out), out,
                           tiny_config.replace(measure=True)).items
        (entry,) = json.loads((out / MANIFEST_NAME).read_text())["photos"].values()
        assert entry["verdict"] == item.report.to_dict()["verdict"]
        assert entry["verdict"] in ("strong", "moderate", "weak", "none")

    def test_resume_skips_force_redoes_and_settings_matter(self, tmp_path, small_photo,
                                                           tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"

        def again(config=tiny_config, **kw) -> batch.Item:
            [item] = batch.run(batch.plan([photo], out), out, config, **kw).items
            return item

        assert again().status == PROTECTED
        made = (out / "a.png").stat().st_mtime_ns
        assert (again().status, again().message) == (SKIPPED, batch.ALREADY_DONE)
        assert (out / "a.png").stat().st_mtime_ns == made
        assert again(force=True).status == PROTECTED
        other = tiny_config.replace(steps=2)
        refused = again(other)
        assert refused.status == FAILED and "other settings (--steps 1 -> 2)" in refused.message
        # another strength is named in the options' terms, not its preset's inner tuning
        fast, medium = (ProtectConfig(strength=s).fingerprint() for s in ("fast", "medium"))
        assert settings_change(fast, medium) == (
            "--strength fast -> medium, --steps 4 -> 32")
        # in the options' terms and as typed: --eps 8 -> 6, not eps255 8.0 -> 6.0
        assert settings_change(medium, {**medium, "eps255": 6.0}) == "--eps 8 -> 6"
        retuned = {**medium, "flat_floor": 0.3}  # the same strength, as another cloak made it
        assert settings_change(retuned, medium) == (
            "the medium preset as another cloak version tuned it")
        wider = ProtectConfig(strength="medium", view_sizes=(512, 1024)).fingerprint()
        assert settings_change(medium, wider) == "--editor-sizes 512 -> 512,1024"
        # a setting a cloak before 25 Nov did not record is that version's tuning, not
        # an option the user changed ("--editor-sizes None -> 512")
        older = {k: v for k, v in fast.items() if k != "view_sizes"}
        assert settings_change(older, fast) == (
            "the fast preset as another cloak version tuned it")
        # a mask added is still said so to a record from before masks were hashed
        unhashed = {k: v for k, v in older.items() if k != "mask_sha256"}
        assert settings_change(unhashed, {**fast, "mask_sha256": "ab12"}) == (
            "a mask added, the fast preset as another cloak version tuned it")
        assert again(other, overwrite=True).status == PROTECTED
        assert again(other).status == SKIPPED
        # a setting recorded on one side only (a non-default metadata policy) is named
        from cloak.metadata import MetadataPolicy

        keep_gps = other.replace(metadata=MetadataPolicy.choose(keep_gps=True))
        assert again(keep_gps, overwrite=True).status == PROTECTED
        refused = again(other)  # --keep-gps left out
        assert refused.status == FAILED and \
            "other settings (metadata options (--keep-gps, --strip-exif...) changed)" \
            in refused.message

    def test_copies_record_face_priority_as_it_ran(self, tmp_path, small_photo,
                                                   tiny_config, model_dir, no_face_detector):
        """Faces asked for but no face detector (offline): the copy is made without face
        priority and recorded so. A rerun still without it skips the copy; once the
        detector is there, the rerun names the change instead of calling the copy done."""
        photo, out = small_photo(tmp_path / "a.png"), tmp_path / "out"
        faces = tiny_config.replace(faces=True)

        def again() -> batch.Item:
            [item] = batch.run(batch.plan([photo], out), out, faces).items
            return item

        assert again().status == PROTECTED
        entry = json.loads((out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        assert entry["settings"]["faces"] is False
        assert (again().status, again().message) == (SKIPPED, batch.ALREADY_DONE)
        (no_face_detector / "yunet_n_dynamic.onnx").symlink_to(
            model_dir / "yunet_n_dynamic.onnx")
        refused = again()
        assert refused.status == FAILED and \
            "other settings (face priority on)" in refused.message
        # made with face priority, then the detector gone (offline, a new cache): the copy
        # is as good as what this run would make, so it is done, and nothing is fetched
        [item] = batch.run(batch.plan([photo], out), out, faces, overwrite=True).items
        assert item.status == PROTECTED
        (no_face_detector / "yunet_n_dynamic.onnx").unlink()
        assert (again().status, again().message) == (SKIPPED, batch.ALREADY_DONE)

    def test_an_opencv_that_cannot_run_the_detector_records_face_priority_off(
            self, tmp_path, small_photo, tiny_config, model_dir, monkeypatch, caplog):
        """The detector is on disk but this OpenCV can't run it (a 4.x build, say): the
        copy is made without face priority and recorded so (one warning for the run),
        not recorded as made with it. A rerun with that OpenCV skips it; once OpenCV
        runs the detector, the rerun names the change instead of calling the copy done."""
        import cv2

        photo, out = small_photo(tmp_path / "a.png"), tmp_path / "out"
        faces = tiny_config.replace(faces=True)
        create = cv2.FaceDetectorYN.create

        def refuse(*args, **kwargs):
            raise cv2.error("OpenCV(4.x) net_impl.cpp: unsupported layer")

        def again() -> batch.Item:
            [item] = batch.run(batch.plan([photo], out), out, faces).items
            return item

        monkeypatch.setattr(cv2.FaceDetectorYN, "create", refuse)
        monkeypatch.setattr("cloak.budget._probed", {})
        monkeypatch.setattr("cloak.models.weights._warned", set())
        assert again().status == PROTECTED
        entry = json.loads((out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        assert entry["settings"]["faces"] is False
        assert caplog.text.count("face priority is off") == 1
        assert (again().status, again().message) == (SKIPPED, batch.ALREADY_DONE)
        monkeypatch.setattr(cv2.FaceDetectorYN, "create", create)
        monkeypatch.setattr("cloak.budget._probed", {})  # a new process, OpenCV mended
        refused = again()
        assert refused.status == FAILED and \
            "other settings (face priority on)" in refused.message

    def test_the_result_carries_the_settings_as_run(self, tmp_path, small_photo,
                                                    tiny_config, no_face_detector):
        """Faces asked for, no face detector: the result's settings are those the copy
        was made and recorded with (faces off), on the run that made it and on a rerun
        that skips it, for the --json report to show."""
        photo, out = small_photo(tmp_path / "a.png"), tmp_path / "out"
        faces = tiny_config.replace(faces=True)
        for status in (PROTECTED, SKIPPED):
            result = batch.run(batch.plan([photo], out), out, faces)
            assert [i.status for i in result.items] == [status]
            assert result.settings == tiny_config.fingerprint()  # faces off
        entry = json.loads((out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        assert entry["settings"] == result.settings

    def test_a_copy_made_with_another_seed_by_an_earlier_version_is_done(
            self, tmp_path, small_photo, tiny_config):
        """Earlier versions recorded any --seed; now it is recorded as 0 where nothing is
        drawn. A copy made then with `--seed 7` (no --robust) is the same copy, so the same
        command run again skips it; with --robust the seed still counts."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        manifest["photos"]["a.png"]["settings"]["seed"] = 7  # as an earlier version wrote
        (out / MANIFEST_NAME).write_text(json.dumps(manifest))
        for seed in (7, 0):
            [item] = batch.run(batch.plan([photo], out), out,
                               tiny_config.replace(seed=seed)).items
            assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        robust = tiny_config.replace(robust=True, seed=3)
        [item] = batch.run(batch.plan([photo], out), out, robust).items
        assert item.status == FAILED and "robust False -> True" in item.message

    def test_a_protected_copy_named_beside_its_photo_does_not_block_it(
            self, tmp_path, small_photo, tiny_config):
        """`cloak protect shoot/* --out shoot` after a first run: a.png is a.gif's copy.
        The copy is skipped (never read), so it is not an input a.gif's output would
        replace: a.gif is already done."""
        shoot = tmp_path / "shoot"
        gif = shoot / "a.gif"
        with Image.open(small_photo(tmp_path / "a.png")) as im:
            shoot.mkdir()
            im.convert("RGB").save(gif)
        [item] = batch.run(batch.plan([gif], shoot), shoot, tiny_config).items
        assert item.status == PROTECTED and item.dst == shoot / "a.png"
        items = batch.run(batch.plan([gif, shoot / "a.png"], shoot), shoot, tiny_config).items
        assert [(i.src.name, i.status, i.message) for i in items] == [
            ("a.gif", SKIPPED, batch.ALREADY_DONE),
            ("a.png", SKIPPED, A_PROTECTED_COPY)]

    def test_overwrite_never_replaces_an_original_beside_the_source(self, tmp_path,
                                                                  small_photo, tiny_config):
        """`cloak protect ~/Pictures/a.gif --out ~/Pictures --overwrite` with an a.png there
        that is not an input: a.gif's output would be a.png, another original."""
        folder = tmp_path / "Pictures"
        png = small_photo(folder / "a.png")
        gif = folder / "a.gif"
        with Image.open(small_photo(tmp_path / "src.png", index=1)) as im:
            im.save(gif)
        before = sha256(png)
        # without the flag: the advice is to move it or choose another folder, not the
        # --overwrite that would refuse it just the same
        [item] = batch.run(batch.plan([gif], folder), folder, tiny_config).items
        assert item.status == FAILED and "choose another --out folder" in item.message
        assert "--overwrite" not in item.message
        for flags in ({"overwrite": True}, {"force": True}):
            [item] = batch.run(batch.plan([gif], folder), folder, tiny_config, **flags).items
            assert item.status == FAILED and "not a file cloak wrote there" in item.message
            assert sha256(png) == before
        # elsewhere, --overwrite still replaces a file cloak did not make (the user said so)
        other = tmp_path / "out"
        small_photo(other / "a.png", index=2)
        [item] = batch.run(batch.plan([gif], other), other, tiny_config, overwrite=True).items
        assert item.status == PROTECTED

    @pytest.mark.parametrize("flags", [{"overwrite": True}, {"force": True}],
                             ids=["--overwrite", "--force"])
    @pytest.mark.parametrize("when", ["appears", "replaces cloak's copy",
                                      "sheet appears"])
    def test_a_file_that_comes_beside_the_original_during_the_run_is_never_replaced(
            self, tmp_path, small_photo, tiny_config, flags, when):
        """--out the photos' own folder, with --overwrite or --force: a file beside the
        original cloak never made is never replaced, but only one there as the run
        began was refused. One that came meanwhile (a sync client, a camera import: at
        the copy's name, or in place of cloak's own copy, or at the sheet's name) was
        replaced without a word. It is kept; the photo fails, naming it."""
        folder = tmp_path / "Pictures"
        gif = folder / "a.gif"
        with Image.open(small_photo(tmp_path / "src.png", index=1)) as im:
            folder.mkdir()
            im.save(gif)
        png, sheet = folder / "a.png", folder / "a.png.preview.png"
        config = tiny_config.replace(preview=when == "sheet appears")
        earlier = tiny_config.replace(working_size=136)  # other settings: redone, not skipped
        if when == "replaces cloak's copy":
            assert batch.run(batch.plan([gif], folder), folder,
                             earlier).counts[PROTECTED] == 1
        target = sheet if when == "sheet appears" else png
        mine = small_photo(tmp_path / "mine.png", index=2).read_bytes()

        def users_file_arrives(event: batch.Event) -> None:  # during the attack
            if event.kind == "progress" and not users_file_arrives.done:
                users_file_arrives.done = True
                target.unlink(missing_ok=True)
                target.write_bytes(mine)
        users_file_arrives.done = False
        [item] = batch.run(batch.plan([gif], folder), folder, config,
                           on_event=users_file_arrives, **flags).items
        assert users_file_arrives.done
        assert target.read_bytes() == mine
        assert item.status == FAILED, item.message
        assert f"{target} exists beside the original" in item.message, item.message
        assert "--overwrite to replace" not in item.message
        assert leftovers(folder) == [gif]  # the original alone: no temp file left
        # with nothing arriving, the same run writes as before: cloak's own files go
        target.unlink()
        if when == "replaces cloak's copy":
            assert batch.run(batch.plan([gif], folder), folder,
                             earlier).counts[PROTECTED] == 1
        [item] = batch.run(batch.plan([gif], folder), folder, config, **flags).items
        assert item.status == PROTECTED, item.message
        assert png.read_bytes() != mine

    @pytest.mark.parametrize("meanwhile", ["deleted", "chmod-ed", "replaced"])
    def test_cloaks_own_copy_beside_the_original_changed_before_its_turn(
            self, tmp_path, small_photo, tiny_config, meanwhile):
        """--out the photos' own folder, --force: while a.gif is protected, b.gif's
        earlier copy b.png (cloak's) is deleted, or chmod-ed: b was refused as a file that
        "exists beside the original and came or changed" (the first fix of the stop
        judged by the stamp alone), and the copy was not made. Either is made now; a file
        of the user's in its place is still kept."""
        folder = tmp_path / "Pictures"
        folder.mkdir()
        gifs = []
        for n in range(2):
            with Image.open(small_photo(tmp_path / f"{n}.png", index=n)) as im:
                im.save(folder / f"{'ab'[n]}.gif")
            gifs.append(folder / f"{'ab'[n]}.gif")
        assert batch.run(batch.plan(gifs, folder), folder,
                         tiny_config).counts[PROTECTED] == 2
        copy = folder / "b.png"
        mine = small_photo(tmp_path / "mine.png", index=2).read_bytes()

        def change_bs_copy(event: batch.Event) -> None:  # while a.gif is protected
            if event.kind == "progress" and event.item.src.name == "a.gif" and \
                    not change_bs_copy.done:
                change_bs_copy.done = True
                if meanwhile == "deleted":
                    copy.unlink()
                elif meanwhile == "chmod-ed":
                    copy.chmod(0o600)
                else:
                    copy.unlink()
                    copy.write_bytes(mine)
        change_bs_copy.done = False
        items = batch.run(batch.plan(gifs, folder), folder, tiny_config, force=True,
                          on_event=change_bs_copy).items
        assert change_bs_copy.done
        b = next(i for i in items if i.src.name == "b.gif")
        if meanwhile == "replaced":
            assert b.status == FAILED and f"{copy} exists beside the original" in b.message
            assert copy.read_bytes() == mine
        else:
            assert b.status == PROTECTED, b.message
            assert copy.is_file() and copy.read_bytes() != mine

    def test_a_copy_deleted_by_hand_is_made_again_beside_its_old_preview(
            self, tmp_path, small_photo, tiny_config):
        """The sheet cloak wrote for a copy the user then deleted does not block making the
        copy again with --preview; someone else's file at that name still does."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        (out / "a.png").unlink()
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == PROTECTED, item.message
        (out / "a.png").unlink()
        (out / "a.png.preview.png").write_bytes(b"someone's file")
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED and "already exists" in item.message
        assert (out / "a.png.preview.png").read_bytes() == b"someone's file"

    def test_a_sheet_an_older_cloak_did_not_record_is_its_own(self, tmp_path,
                                                              small_photo, tiny_config):
        """A --preview batch made by a cloak before 1 Dec (its record names no sheet), run
        again as it was: every photo failed, its sheet said to be "changed or replaced
        since", though nothing had changed. The sheet written with the copy is taken as
        cloak's (and recorded from then on); a file put there long after the copy still
        is not."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        sheet = out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1

        def as_the_older_cloak_recorded() -> None:
            record = json.loads((out / MANIFEST_NAME).read_text())
            del record["photos"]["a.png"]["preview"]
            record["photos"]["a.png"].pop(SHEETS_RECORDED, None)
            (out / MANIFEST_NAME).write_text(json.dumps(record))

        as_the_older_cloak_recorded()
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        entry = json.loads((out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        assert entry["preview"]["sha256"] == sha256(sheet)
        as_the_older_cloak_recorded()
        hour_ago = time.time() - 3600  # the copy made an hour before the file there
        os.utime(out / "a.png", (hour_ago, hour_ago))
        before = sheet.read_bytes()
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED and "not the preview sheet" in item.message
        assert sheet.read_bytes() == before
        # --out the photos' own folder (a.gif's copy a.png beside it): the same
        gif = tmp_path / "shoot" / "a.gif"
        gif.parent.mkdir()
        with Image.open(photo) as im:
            im.convert("RGB").save(gif)
        [item] = batch.run(batch.plan([gif], gif.parent), gif.parent, config).items
        assert item.status == PROTECTED
        record = json.loads((gif.parent / MANIFEST_NAME).read_text())
        del record["photos"]["a.png"]["preview"]
        del record["photos"]["a.png"][SHEETS_RECORDED]
        (gif.parent / MANIFEST_NAME).write_text(json.dumps(record))
        [item] = batch.run(batch.plan([gif], gif.parent), gif.parent, config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)

    def test_a_sheet_taken_by_its_times_alone_is_never_removed_or_replaced_unasked(
            self, tmp_path, small_photo, tiny_config):
        """An older cloak's entry (no sheet recorded, no mark), and a user's file saved at
        the sheet's name within minutes of the copy: a --preview rerun takes it for the
        sheet by its times (counted as done), and a --force redo without --preview then
        deleted it as the earlier copy's sheet. Adopted so, it is left alone: a --preview
        run then names it, and needs --overwrite (or --force) to replace it."""
        photo = small_photo(tmp_path / "a.png")
        out, with_sheet = tmp_path / "out", tiny_config.replace(preview=True)
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        record = json.loads((out / MANIFEST_NAME).read_text())
        del record["photos"]["a.png"][SHEETS_RECORDED]  # as an older cloak's entry
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        mine = out / "a.png.preview.png"
        mine.write_bytes(small_photo(tmp_path / "other.png", index=1).read_bytes())
        kept = mine.read_bytes()
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        [item] = batch.run(batch.plan([photo], out), out, tiny_config, force=True).items
        assert item.status == PROTECTED and mine.read_bytes() == kept
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert item.status == FAILED and "--overwrite" in item.message, item.message
        assert mine.read_bytes() == kept
        # adopted, then its copy deleted: the redo makes the copy, not the sheet over it
        record = json.loads((out / MANIFEST_NAME).read_text())
        record["photos"]["a.png"]["preview"] = {**identity(mine), batch.ADOPTED: True}
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        (out / "a.png").unlink()
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert item.status == FAILED and "--overwrite" in item.message, item.message
        assert mine.read_bytes() == kept

    @pytest.mark.parametrize("beside", [False, True], ids=["out", "beside the originals"])
    @pytest.mark.parametrize("copy_times", [True, False], ids=["cp -a", "cp -r"])
    def test_an_older_cloaks_sheet_is_its_own_in_a_copied_folder(
            self, tmp_path, small_photo, tiny_config, copy_times, beside):
        """The older cloak's folder made an hour ago, then copied (`cp -a`, a backup
        restored: times kept, the change times new; `cp -r`: all times new, the sheet's
        perhaps a moment before its photo's): each sheet was "changed or replaced since",
        each photo failed, as the sheet was last changed long after its copy was made."""
        import shutil

        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        photo = out / "a.gif" if beside else tmp_path / "a.png"  # a.gif's copy a.png
        with Image.open(small_photo(tmp_path / "a.png")) as im:
            if beside:
                out.mkdir()
                im.convert("RGB").save(photo)
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        record = json.loads((out / MANIFEST_NAME).read_text())
        del record["photos"]["a.png"]["preview"]  # as a cloak before 1 Dec recorded
        del record["photos"]["a.png"][SHEETS_RECORDED]
        hour_ago = time.time_ns() - 3600 * 10**9
        os.utime(out / "a.png", ns=(hour_ago, hour_ago))
        os.utime(out / "a.png.preview.png", ns=(hour_ago + 10**9, hour_ago + 10**9))
        record["photos"]["a.png"]["dst"]["mtime_ns"] = hour_ago
        record["photos"]["a.png"]["dst"]["ctime_ns"] = hour_ago
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        copied = tmp_path / "copied"
        shutil.copytree(out, copied, copy_function=shutil.copy2 if copy_times else shutil.copy)
        if not copy_times:  # the sheet copied a moment before its photo
            now = time.time_ns()
            os.utime(copied / "a.png.preview.png", ns=(now - 10**6, now - 10**6))
            os.utime(copied / "a.png", ns=(now, now))
        if beside:
            photo = copied / "a.gif"
        [item] = batch.run(batch.plan([photo], copied), copied, config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE), item.message

    def test_a_sheet_left_from_before_a_redo_without_preview_is_made_again(
            self, tmp_path, small_photo, tiny_config):
        """--preview, then --force without it: the new copy's old sheet (another copy's
        change and budget map) stood beside it without a word; it goes with the copy it
        showed. A redo that fails keeps it, as it keeps that copy. --preview again makes
        the sheet again."""
        photo = small_photo(tmp_path / "a.png")
        out, with_sheet = tmp_path / "out", tiny_config.replace(preview=True)
        sheet = out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, with_sheet).counts[PROTECTED] == 1
        old = sha256(sheet)

        seen: list[str] = []  # a redo stopped half-way
        stopped = batch.run(batch.plan([photo], out), out, tiny_config, force=True,
                            on_event=lambda event: seen.append(event.kind),
                            should_stop=lambda: "progress" in seen)
        assert stopped.interrupted and sha256(sheet) == old  # the earlier copy's, kept
        [item] = batch.run(batch.plan([photo], out), out, tiny_config, force=True).items
        assert item.status == PROTECTED and not sheet.exists()
        assert "earlier_preview" not in json.loads(
            (out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert item.status == PROTECTED, item.message
        assert sheet.exists()
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        # a file of that name cloak did not write is the user's: never replaced unasked
        other = small_photo(tmp_path / "b.png", index=1)
        assert batch.run(batch.plan([other], out), out, tiny_config).counts[PROTECTED] == 1
        (out / "b.png.preview.png").write_bytes(b"mine")
        [item] = batch.run(batch.plan([other], out), out, with_sheet).items
        assert item.status != PROTECTED and (out / "b.png.preview.png").read_bytes() == b"mine"

    @pytest.mark.parametrize("case", ["copy deleted, sheet kept", "sheet deleted",
                                      "killed before the record"])
    def test_a_file_put_at_a_redone_copys_name_meanwhile_is_kept(
            self, tmp_path, small_photo, tiny_config, case):
        """A redo cloak decides by itself (no --overwrite) replaces only its own files,
        as they were when the run looked: a file a user saves at the copy's name while
        the photo is being protected is kept, and the photo fails naming it (it was
        replaced when the write came, minutes after the check)."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        copy, sheet = out / "a.png", out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        if case == "copy deleted, sheet kept":
            copy.unlink()
        elif case == "sheet deleted":
            sheet.unlink()
        else:
            killed_before_recording(out)
            sheet.unlink()

        def users_save(event: batch.Event) -> None:  # during the attack
            if event.kind == "progress" and not users_save.done:
                users_save.done = True
                copy.unlink(missing_ok=True)
                copy.write_bytes(b"the user's own edit")
        users_save.done = False
        [item] = batch.run(batch.plan([photo], out), out, config, on_event=users_save).items
        assert users_save.done
        assert copy.read_bytes() == b"the user's own edit"
        assert item.status == FAILED and "already exists" in item.message, item.message
        assert not leftovers(out)

    @pytest.mark.parametrize("when", ["before the run", "during the run"])
    def test_an_in_place_edit_keeping_size_and_mtime_is_kept(
            self, tmp_path, small_photo, tiny_config, when):
        """An edit of cloak's copy in place that keeps its size and mtime (`exiftool -P`,
        an editor restoring the time) moves only the ctime: made before a --preview
        rerun, that rerun refused to redo the copy; made while the rerun was busy, its
        redo replaced the edit. Both keep it now."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        copy, sheet = out / "a.png", out / "a.png.preview.png"
        config = tiny_config.replace(preview=True)
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        sheet.unlink()  # the rerun redoes the copy to make its sheet again

        def edit_in_place() -> bytes:
            before = copy.stat()
            data = bytearray(copy.read_bytes())
            data[-20] ^= 0xFF  # same size
            with open(copy, "r+b") as handle:
                handle.write(data)
            os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
            assert (copy.stat().st_ino, copy.stat().st_size, copy.stat().st_mtime_ns) == (
                before.st_ino, before.st_size, before.st_mtime_ns)
            return bytes(data)

        edited: list[bytes] = []
        if when == "before the run":
            edited.append(edit_in_place())

        def users_edit(event: batch.Event) -> None:  # during the attack
            if event.kind == "progress" and not edited:
                edited.append(edit_in_place())
        [item] = batch.run(batch.plan([photo], out), out, config, on_event=users_edit).items
        assert copy.read_bytes() == edited[0]
        assert item.status == FAILED, item.message
        assert str(copy) in item.message, item.message

    def test_a_run_killed_after_writing_the_sheet_is_resumed(
            self, tmp_path, small_photo, tiny_config):
        """A --preview run killed after the photo's sheet was written, before its record:
        the rerun (the same command) said "output ....preview.png already exists; pass
        --overwrite to replace it" and failed (exit 2), though the sheet was the killed
        run's. A sheet carries cloak's mark, so the redo replaces it; a PNG of the user's
        at that name still stops it."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        sheet = out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        killed_before_recording(out)  # the copy and its sheet there, neither recorded
        record = json.loads((out / MANIFEST_NAME).read_text())
        del record["photos"]["a.png"]["preview"]
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == PROTECTED, item.message
        assert sheet.is_file() and "preview" in json.loads(
            (out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        killed_before_recording(out)
        record = json.loads((out / MANIFEST_NAME).read_text())
        del record["photos"]["a.png"]["preview"]
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        mine = small_photo(tmp_path / "mine.png", index=1).read_bytes()
        sheet.write_bytes(mine)  # the user's own PNG at the sheet's name
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED and sheet.read_bytes() == mine, item.message

    def test_a_copy_without_a_note_killed_before_its_record_is_resumed(
            self, tmp_path, small_photo, tiny_config, monkeypatch):
        """A BMP copy (no cloak note) written, then the run killed while its sheet was
        made (or a large copy measured), before its record: the rerun could not tell it
        from a user's BMP and refused it ("exists and may not be cloak's ...; pass
        --overwrite"). Its identity is recorded the moment it is written."""
        from cloak import preview

        photo = small_photo(tmp_path / "a.bmp")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        copy = out / "a.bmp"

        class Killed(BaseException):  # as SIGKILL: nothing after it runs
            pass

        def killed(*args, **kwargs):
            raise Killed

        monkeypatch.setattr(preview, "save_preview", killed)
        with pytest.raises(Killed):
            batch.run(batch.plan([photo], out), out, config)
        assert copy.is_file() and Manifest(out).get(copy)["state"] == "pending"
        monkeypatch.undo()
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == PROTECTED, item.message

    def test_a_copy_written_in_a_worker_is_recorded_as_the_parent_drains_its_queue(
            self, tmp_path, small_photo):
        """With --jobs the copy is written in a worker process: its "written" message,
        drained from the progress queue, records the copy's identity in the pending entry
        (the parent's record), as the in-process run does at once. A message for a photo
        already done is passed over."""
        import queue as queue_module

        out = tmp_path / "out"
        copy = small_photo(out / "a.bmp")
        manifest = Manifest(out)
        item = batch.Item(tmp_path / "a.bmp", copy)
        manifest.set(copy, {"state": "pending", "src": {}, "settings": {}})
        messages = queue_module.Queue()
        messages.put((0, "written", str(copy)))
        seen = []
        batch._drain(messages, [item], seen.append,
                     written=lambda item, path: batch._record_written(item, manifest, path))
        assert Manifest(out).get(copy)["dst"]["sha256"] == identity(copy)["sha256"]
        assert seen == []  # not a progress report
        manifest.set(copy, {"state": "done", "src": {}, "settings": {}})
        messages.put((0, "written", str(copy)))
        batch._drain(messages, [item], seen.append,
                     written=lambda item, path: batch._record_written(item, manifest, path))
        assert "dst" not in Manifest(out).get(copy)

    def test_a_copy_recorded_as_written_is_not_hashed_again_when_done(
            self, tmp_path, small_photo, tiny_config, monkeypatch):
        """The copy's sha256, taken as it was written (_record_written), is reused when
        the photo is recorded as done (its size and times unchanged): each copy is hashed
        once. A file whose times moved is hashed again."""
        from cloak import manifest as manifest_module

        hashed: list[Path] = []
        real_sha256 = manifest_module.sha256_of
        monkeypatch.setattr(manifest_module, "sha256_of",
                            lambda path: hashed.append(Path(path)) or real_sha256(path))
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        assert hashed.count(out / "a.png") == 1, hashed
        known = Manifest(out).get(out / "a.png")["dst"]
        assert identity(out / "a.png", known) == known
        os.utime(out / "a.png", ns=(1, 1))
        again = identity(out / "a.png", known)
        assert again["mtime_ns"] == 1 and again["sha256"] == known["sha256"]
        assert hashed.count(out / "a.png") == 2

    def test_a_fifo_at_a_pending_photos_sheet_name_does_not_hang_the_run(
            self, tmp_path, small_photo, tiny_config):
        """A FIFO at the sheet's name of a photo a killed run left pending: the resumed run
        opened it to look for cloak's sheet mark and waited forever (SIGTERM did not end
        it). It is no sheet of cloak's: the photo fails at once, naming it."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        sheet = out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        killed_before_recording(out)
        sheet.unlink()
        os.mkfifo(sheet)
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED and str(sheet) in item.message, item.message

    def test_a_copy_recorded_as_written_stays_known_when_its_worker_dies(
            self, tmp_path, small_photo, tiny_config):
        """A --jobs worker killed (out of memory) after its copy was written and recorded
        as written: the run's clean-up took the copy's identity out of the pending entry,
        so a BMP copy was refused next run as "may not be cloak's"."""
        photo = small_photo(tmp_path / "a.bmp")
        out = tmp_path / "out"
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        manifest = Manifest(out)
        copy = out / "a.bmp"
        [item] = batch.plan([photo], out)
        previous = manifest.get(copy)
        item.dst_before = None  # the copy appeared during its work
        manifest.set(copy, {**previous, "state": "pending", "dst": identity(copy)})
        batch._abandon(item, manifest, previous, batch.WorkerDied("worker died"))
        assert Manifest(out).get(copy)["dst"]["sha256"] == identity(copy)["sha256"]
        [again] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert again.status == PROTECTED, again.message  # redone, not refused

    def test_a_users_file_at_the_sheets_name_soon_after_the_copy_is_not_cloaks(
            self, tmp_path, small_photo, tiny_config):
        """A copy made without --preview, then a file of the user's saved at its sheet's
        name within minutes: a --preview rerun took it for a sheet an older cloak wrote
        and did not record (its entry records no sheet either), skipped the photo as done
        and recorded the file as its sheet, which a later redo replaced unasked. This
        cloak's entries say they record every sheet: the file is the user's."""
        photo = small_photo(tmp_path / "a.png")
        out, with_sheet = tmp_path / "out", tiny_config.replace(preview=True)
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        notes = out / "a.png.preview.png"
        notes.write_text("my notes")
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert item.status == FAILED and "not the preview sheet cloak wrote" in item.message
        assert "preview" not in json.loads(
            (out / MANIFEST_NAME).read_text())["photos"]["a.png"]
        (out / "a.png").unlink()
        [item] = batch.run(batch.plan([photo], out), out, with_sheet).items
        assert item.status == FAILED and "already exists" in item.message, item.message
        assert notes.read_text() == "my notes"

    def test_a_redo_after_a_kill_keeps_a_sheet_cloak_never_recorded(
            self, tmp_path, small_photo, tiny_config):
        """A run killed after its copy was written leaves a pending entry with no record
        of a sheet: a file at the sheet's name is the user's, not replaced by the redo
        without --overwrite (it was), and replaced with it."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        killed_before_recording(out)
        sheet = out / "a.png.preview.png"
        sheet.write_bytes(b"the user's notes")
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED and "already exists" in item.message, item.message
        assert sheet.read_bytes() == b"the user's notes"
        [item] = batch.run(batch.plan([photo], out), out, config, overwrite=True).items
        assert item.status == PROTECTED, item.message
        assert sheet.read_bytes().startswith(b"\x89PNG")

    def test_a_sheet_replaced_by_another_file_is_not_counted_as_done(
            self, tmp_path, small_photo, tiny_config):
        """With --preview, a photo whose copy is cloak's but whose sheet was replaced by
        another file was skipped as "already done" (exit 0), leaving a sheet cloak did
        not write: it fails, naming the file, which is kept; --overwrite makes it again."""
        photo = small_photo(tmp_path / "a.png")
        out, config = tmp_path / "out", tiny_config.replace(preview=True)
        sheet = out / "a.png.preview.png"
        assert batch.run(batch.plan([photo], out), out, config).counts[PROTECTED] == 1
        small_photo(sheet, index=2)  # someone's picture under the sheet's name
        theirs = sha256(sheet)
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert item.status == FAILED, item.message
        assert "is not the preview sheet cloak wrote there" in item.message
        assert sha256(sheet) == theirs
        [item] = batch.run(batch.plan([photo], out), out, config, overwrite=True).items
        assert item.status == PROTECTED and sha256(sheet) != theirs
        [item] = batch.run(batch.plan([photo], out), out, config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)

    def test_a_rerun_with_nothing_to_do_removes_temp_files_a_killed_run_left(
            self, tmp_path, small_photo, tiny_config):
        """Temp files of a run killed while it wrote (in OUT, a photo's folder, or the
        folder of a photo no longer named) are removed by the next run even when it
        skips every photo (they were only removed where there was work)."""
        photo = small_photo(tmp_path / "trip" / "a.png")
        gone = small_photo(tmp_path / "old" / "b.png", index=1)
        out = tmp_path / "out"
        assert batch.run(batch.plan([photo.parent, gone.parent], out), out,
                         tiny_config).counts[PROTECTED] == 2
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        manifest["photos"]["old/b.png"]["state"] = "pending"  # killed while redoing it
        (out / MANIFEST_NAME).write_text(json.dumps(manifest))
        temps = [out / f".{MANIFEST_NAME}.cloak-tmp-0badf00d",
                 out / "trip" / ".a.png.cloak-tmp-0badf00d",
                 out / "old" / ".b.png.cloak-tmp-0badf00d"]
        for temp in temps:
            temp.write_bytes(b"half a photo")
        result = batch.run(batch.plan([photo.parent], out), out, tiny_config)
        assert result.counts[SKIPPED] == 1 and result.counts[PROTECTED] == 0
        assert [t for t in temps if t.exists()] == []
        assert (out / "old" / "b.png").is_file()  # the copy itself is left alone

    def test_overwrite_never_replaces_a_preview_named_file_beside_the_original(
            self, tmp_path, small_photo, tiny_config):
        """`cloak protect ~/Pictures/a.gif --out ~/Pictures --preview --overwrite` with a
        file named a.png.preview.png there that cloak did not write: it stays. A sheet
        cloak wrote there is redone with --force."""
        folder = tmp_path / "Pictures"
        gif = folder / "a.gif"
        gif.parent.mkdir()
        with Image.open(small_photo(tmp_path / "src.png", index=1)) as im:
            im.save(gif)
        theirs = folder / "a.png.preview.png"
        theirs.write_bytes(b"someone's file")
        config = tiny_config.replace(preview=True)
        [item] = batch.run(batch.plan([gif], folder), folder, config, overwrite=True).items
        assert item.status == FAILED and "is not a preview cloak wrote" in item.message
        assert theirs.read_bytes() == b"someone's file" and not (folder / "a.png").exists()
        # without --overwrite too (it said "pass --overwrite", which is then refused)
        [item] = batch.run(batch.plan([gif], folder), folder, config).items
        assert item.status == FAILED and "move it away" in item.message
        assert "pass --overwrite" not in item.message
        assert theirs.read_bytes() == b"someone's file" and not (folder / "a.png").exists()
        theirs.unlink()
        [item] = batch.run(batch.plan([gif], folder), folder, config).items
        assert item.status == PROTECTED and theirs.is_file()
        before = theirs.stat().st_ino
        [item] = batch.run(batch.plan([gif], folder), folder, config, force=True).items
        assert item.status == PROTECTED, item.message
        assert theirs.stat().st_ino != before  # the sheet was written again

    def test_foreign_or_changed_outputs_need_overwrite(self, tmp_path, small_photo,
                                                       tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        small_photo(out / "a.png", index=3)  # someone else's file
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and "not made by cloak" in item.message
        # the safe way out comes first: the file may be the user's own photo
        assert "choose another --out folder, or pass --overwrite" in item.message
        assert "--overwrite" in item.message
        [item] = batch.run(batch.plan([photo], out), out, tiny_config, overwrite=True).items
        assert item.status == PROTECTED
        small_photo(photo, index=2)  # the original was edited since
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and "earlier version" in item.message

    def test_an_edited_output_is_refused_not_skipped_or_replaced(self, tmp_path, small_photo,
                                                                  tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        small_photo(out / "a.png", index=3)  # the user edited (here: replaced) the copy
        edited = sha256(out / "a.png")
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and "is not the file cloak wrote" in item.message
        assert sha256(out / "a.png") == edited
        [item] = batch.run(batch.plan([photo], out), out, tiny_config, overwrite=True).items
        assert item.status == PROTECTED and sha256(out / "a.png") != edited

    def test_a_file_that_appears_during_the_work_stays_and_is_never_taken_for_ours(
            self, tmp_path, small_photo, tiny_config):
        """Another program (a sync client) writes out/a.png while cloak works on a.png:
        the save is refused, and a plain rerun must not take that file for cloak's."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"

        def drop_a_file(event: batch.Event) -> None:
            if event.kind == "progress" and not (out / "a.png").exists():
                small_photo(out / "a.png", index=3)

        [item] = batch.run(batch.plan([photo], out), out, tiny_config,
                           on_event=drop_a_file).items
        assert item.status == FAILED and "already exists" in item.message
        theirs = sha256(out / "a.png")
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and "not made by cloak" in item.message
        assert sha256(out / "a.png") == theirs

    def test_an_output_changed_before_its_turn_is_not_redone(self, tmp_path, small_photo,
                                                             tiny_config):
        """Redoing its own copies (here, to add the previews asked for) is decided when the
        run starts; a copy the user edits while earlier photos run is left alone."""
        a, b = small_photo(tmp_path / "a.png"), small_photo(tmp_path / "b.png", index=1)
        out = tmp_path / "out"
        result = batch.run(batch.plan([a, b], out), out, tiny_config)
        assert [i.status for i in result.items] == [PROTECTED, PROTECTED]

        def edit_b(event: batch.Event) -> None:
            if event.kind == "start" and event.item.src == a:
                small_photo(out / "b.png", index=3)

        result = batch.run(batch.plan([a, b], out), out, tiny_config.replace(preview=True),
                           on_event=edit_b)
        items = by_src(result.items)
        assert items["a.png"].status == PROTECTED
        assert items["b.png"].status == FAILED and "was changed" in items["b.png"].message
        assert sha256(out / "b.png") == sha256(small_photo(tmp_path / "c.png", index=3))

    @pytest.mark.parametrize("suffix", [".png", ".bmp"])
    def test_a_crash_between_rename_and_manifest_is_redone_not_refused(self, tmp_path,
                                                                       small_photo,
                                                                       tiny_config, suffix):
        """Killed after the output's rename but before the manifest said "done": a file
        that carries cloak's note is ours, so a rerun redoes it. A BMP carries none, and
        can't be told from a user's file put there since: it needs --overwrite (it was
        trusted, and a user's BMP replaced unasked)."""
        photo = small_photo(tmp_path / f"a{suffix}")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        killed_before_recording(out)
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        if suffix == ".bmp":
            assert item.status == FAILED and "pass --overwrite" in item.message
            [item] = batch.run(batch.plan([photo], out), out, tiny_config,
                               overwrite=True).items
        assert item.status == PROTECTED, item.message
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert [e["state"] for e in manifest["photos"].values()] == ["done"]

    def test_copies_inside_an_output_folder_are_skipped_when_its_subfolder_is_named(
            self, tmp_path, small_photo, tiny_config):
        """Naming OUT skipped the copies its record lists, but naming OUT/holiday (or one
        of its copies) took a copy without cloak's note (a BMP) as a photo: a second
        layer of noise. The record above the folder or file named is read too."""
        small_photo(tmp_path / "holiday" / "a.bmp")
        out = tmp_path / "prot"
        first = batch.run(batch.plan([tmp_path / "holiday"], out), out, tiny_config)
        assert [i.status for i in first.items] == [PROTECTED]
        copy = out / "holiday" / "a.bmp"
        mine = small_photo(out / "holiday" / "mine.png", index=2)  # the user's own photo
        items = batch.plan([out / "holiday"], tmp_path / "again")
        by_name = {Path(i.src).name: i for i in items}
        assert by_name["holiday"].status == SKIPPED
        assert by_name["holiday"].message.startswith("its 1 protected copy is skipped")
        assert by_name["mine.png"].status == "pending" and "a.bmp" not in by_name
        [item] = batch.plan([copy], tmp_path / "again")
        assert item.status == SKIPPED and "record lists it" in item.message
        [item] = batch.plan([mine], tmp_path / "again")
        assert item.status == "pending"

    def test_a_run_killed_before_recording_its_file_is_redone_only_for_cloaks_file(
            self, tmp_path, small_photo, tiny_config):
        """A `pending` entry with no record of the file (the run was killed): the file at
        that name is refused if it does not carry cloak's note (it was put there after
        the run died; the test above has the case where it does)."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        killed_before_recording(out)
        small_photo(out / "a.png", index=3)
        theirs = sha256(out / "a.png")
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and "may not be cloak's" in item.message
        assert sha256(out / "a.png") == theirs

    def test_an_app_sessions_copy_still_being_measured_is_not_redone(
            self, tmp_path, small_photo, tiny_config):
        """The desktop app records its copy as written, unfinished, and measures it: a
        `cloak protect` run into that folder meanwhile took the entry for a killed run's
        and replaced the copy under it. An entry whose writer is still running is
        refused, naming it, with --overwrite for a session that is not running (a pid
        seen alive may be another process's: --overwrite and --force go past it); a pid
        now another process's (its start time differs) is a killed session's: redone."""
        import subprocess
        import sys

        from cloak.manifest import this_writer

        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED

        def unfinished_by(writer: dict) -> None:
            record = json.loads((out / MANIFEST_NAME).read_text())
            [entry] = record["photos"].values()
            entry.update(state="pending", writer=writer)
            (out / MANIFEST_NAME).write_text(json.dumps(record))

        app = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            import cloak.manifest as manifest_module

            alive = {**this_writer(), "pid": app.pid}
            started = manifest_module._start_time(app.pid)
            if started is not None:
                alive["started"] = started
            unfinished_by(alive)
            before = sha256(out / "a.png")
            [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
            assert item.status == FAILED, item.message
            assert (f"is being made by a cloak app session that may still be running "
                    f"(process {app.pid} on {alive['host']}); wait for it to finish, or "
                    "pass --overwrite") in item.message
            assert sha256(out / "a.png") == before
            [item] = batch.run(batch.plan([photo], out), out, tiny_config,
                               overwrite=True).items
            assert item.status == PROTECTED, item.message
            if started is not None:  # Linux: the pid's start time tells a reused pid
                unfinished_by({**alive, "started": started + 1})
                [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
                assert item.status == PROTECTED, item.message
        finally:
            app.kill()
            app.wait()
        unfinished_by(alive)  # gone now
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED, item.message

    def test_on_windows_a_writer_is_judged_by_what_windows_says_of_its_process(
            self, monkeypatch):
        """Windows was taken as "can't tell": an app killed there while measuring left its
        copy "being made" for every later `cloak protect` (failed until --overwrite).
        Windows is asked (OpenProcess, its exit code and creation time): gone, or its
        pid now another process's, is a killed session's; running, or a process Windows
        won't open, may be the writer. (Windows simulated: what it answers is given.)"""
        import socket

        import cloak.manifest as manifest_module

        assert manifest_module._windows_process(os.getpid()) is None  # not Windows here
        entry = {"state": "pending", "writer": {"pid": 4242, "host": socket.gethostname(),
                                                "started": 1000}}
        monkeypatch.setattr(manifest_module, "ON_WINDOWS", True)
        for answer, alive in (((False, 0), False), ((True, 1000), True),
                              ((True, 999), False), (None, True)):
            monkeypatch.setattr(manifest_module, "_windows_process", lambda pid, said=answer: said)
            assert manifest_module.writer_may_be_alive(entry) is alive, answer
        monkeypatch.setattr(manifest_module, "_windows_process",
                            lambda pid: (True, 555) if pid == os.getpid() else None)
        assert manifest_module.this_writer()["started"] == 555  # recorded as compared
        monkeypatch.setattr(manifest_module, "_windows_process", lambda pid: (False, 0))
        assert manifest_module._start_time(4242) is None  # gone: no start time

    def test_a_foreign_records_names_outside_its_folder_speak_for_no_photo(
            self, tmp_path, small_photo):
        """A record that came with a downloaded folder, one entry's name "../zz/x.png"
        (or an absolute one) with the size and sha256 of the user's zz/a.png: that photo,
        in another folder, was taken for a protected copy and skipped, unsaid. A record
        speaks only for the files inside its folder."""
        photos = tmp_path / "Photos"
        a = small_photo(photos / "zz" / "a.png", index=0)
        small_photo(photos / "pack" / "p.png", index=1)
        ident = manifest_module.identity(a)
        entry = {"state": "done", "src": {}, "settings": {},
                 "dst": {"size": ident["size"], "sha256": ident["sha256"]}}
        record = photos / "pack" / ".cloak-manifest.json"
        for name, journaled in (("../zz/whatever.png", False), (str(a), False),
                                ("../zz/whatever.png", True)):
            if journaled:  # the name in the record's journal instead
                record.write_text(json.dumps({"version": 2, "photos": {}}))
                sha = hashlib.sha256(record.read_bytes()).hexdigest()
                (photos / "pack" / ".cloak-manifest.journal").write_text(
                    json.dumps({"journal": 1, "record_sha256": sha}) + "\n"
                    + json.dumps({"name": name, "entry": entry}) + "\n")
                assert manifest_module.journal_changes(photos / "pack", sha) == []
            else:
                record.write_text(json.dumps({"version": 1, "photos": {name: entry}}))
            items = batch.plan([photos], tmp_path / "protected")
            assert {i.src.name: i.status for i in items} == {
                "a.png": "pending", "p.png": "pending"}, [(i.src, i.message) for i in items]

    @pytest.mark.skipif(os.name == "nt", reason="a backslash in a name: not on Windows")
    def test_a_name_holding_backslashes_is_its_own_record_entry(self, tmp_path, small_photo,
                                                               tiny_config):
        """A Windows zip unpacked on Linux leaves names such as "\\photos\\IMG_1.png" and
        "b..\\..\\c.png": cloak recorded their copies, then took those names for paths
        leaving the record's folder on the next run, and its own copies for the user's
        ("exists and was not made by cloak ... pass --overwrite")."""
        folder = tmp_path / "in"
        photos = [small_photo(folder / name, index=i)
                  for i, name in enumerate(("\\photos\\IMG_1.png", "b..\\..\\c.png"))]
        out = tmp_path / "out"
        first = batch.run(batch.plan([photos[0], folder], out), out, tiny_config).items
        assert [i.status for i in first if i.status != SKIPPED] == [PROTECTED, PROTECTED]
        again = batch.run(batch.plan([photos[0], folder], out), out, tiny_config).items
        twice = f"named twice; taken once, for {out / photos[0].name}"
        assert {(i.status, i.message) for i in again} <= {
            (SKIPPED, batch.ALREADY_DONE), (SKIPPED, twice)}, [(i.src, i.message) for i in again]

    def test_a_record_holding_a_name_no_path_can_hold_is_read_without_it(
            self, tmp_path, small_photo, tiny_config):
        """"\\ud800" (a lone surrogate: valid JSON; a Windows name can hold one) in a
        record's name or mirror folder crashed every run into that OUT, and every walk of
        it, with a UnicodeEncodeError traceback. The entry is left out; the rest is read."""
        photo = small_photo(tmp_path / "in" / "a.png")
        out = tmp_path / "out"
        out.mkdir()
        (out / ".cloak-manifest.json").write_text(json.dumps({
            "version": 1, "folders": {"x": "/tmp/\ud800", "\ud800": str(tmp_path)},
            "photos": {"\ud800/x.png": {"state": "done", "src": {}, "settings": {},
                                         "dst": {"size": 5, "sha256": "ab"}},
                       "ok.png": {"state": "done", "src": {}, "settings": {},
                                  "dst": {"size": 5, "sha256": "ab"}}}}))
        record = manifest_module.Manifest(out)
        assert list(record.entries) == ["ok.png"] and record.folders == {}
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED, item.message
        items = batch.plan([out, photo.parent], tmp_path / "again")  # OUT walked as input
        assert [i.src.name for i in items if i.status == "pending"] == ["a.png"]

    def test_a_writer_pid_no_system_has_is_a_dead_writers(self, tmp_path, small_photo,
                                                          tiny_config):
        """An unfinished entry whose writer pid is 10**30 (a record made by hand, or
        damaged): os.kill raised OverflowError, a traceback that ended the whole run, its
        other photos unprotected (the app failed the photo, "unexpected error")."""
        import socket

        for pid in (2 ** 31, 2 ** 32, 10 ** 30):
            entry = {"state": "pending", "writer": {"pid": pid, "host": socket.gethostname()}}
            assert manifest_module.writer_may_be_alive(entry) is False, pid
        photos = [small_photo(tmp_path / f"{n}.png", index=i) for i, n in enumerate("ab")]
        out = tmp_path / "out"
        batch.run(batch.plan(photos[:1], out), out, tiny_config)
        record = json.loads((out / ".cloak-manifest.json").read_text())
        record["photos"]["a.png"].update(state="pending", writer={
            "pid": 10 ** 30, "host": socket.gethostname()})
        (out / ".cloak-manifest.json").write_text(json.dumps(record))
        (out / ".cloak-manifest.journal").unlink(missing_ok=True)
        items = batch.run(batch.plan(photos, out), out, tiny_config).items
        # a.png's unfinished copy, of a writer gone, is made again; b.png is protected
        assert [item.status for item in items] == [PROTECTED, PROTECTED], \
            [(i.status, i.message) for i in items]

    def test_a_killed_redo_finds_the_copy_it_was_replacing(self, tmp_path, small_photo,
                                                          tiny_config):
        """--force begins by marking the photo pending; killed then, the copy there is
        still the one cloak wrote before: a plain rerun takes it for that copy, done (it
        was refused as not cloak's before the pending entry kept its identity; then
        redone), and the same command again redoes it."""
        photo = small_photo(tmp_path / "a.bmp")
        out = tmp_path / "out"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED

        def killed(event: batch.Event) -> None:
            if event.kind == "progress":
                raise SystemExit  # no clean-up runs for it, as with kill -9

        with pytest.raises(SystemExit):
            batch.run(batch.plan([photo], out), out, tiny_config, force=True,
                      on_event=killed)
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        [entry] = manifest["photos"].values()
        assert entry["state"] == "pending" and entry["dst"]
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        [item] = batch.run(batch.plan([photo], out), out, tiny_config, force=True).items
        assert item.status == PROTECTED, item.message

    def test_a_redo_killed_after_replacing_the_copy_is_redone_not_refused(
            self, tmp_path, small_photo, tiny_config):
        """--force (or --preview) redoes a done photo; killed once it had written its new
        copy (other bytes: another GPU or thread count) but before recording it, the
        record still names the old copy. The new one carries cloak's note: redone."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
        other = tmp_path / "other"  # cloak's copy with other bytes (more steps)
        batch.run(batch.plan([photo], other), other, tiny_config.replace(steps=2))

        def killed_after_writing(event: batch.Event) -> None:
            if event.kind == "progress":
                (out / "a.png").write_bytes((other / "a.png").read_bytes())
                raise SystemExit  # no clean-up runs for it, as with kill -9

        with pytest.raises(SystemExit):
            batch.run(batch.plan([photo], out), out, tiny_config, force=True,
                      on_event=killed_after_writing)
        [entry] = json.loads((out / MANIFEST_NAME).read_text())["photos"].values()
        assert entry["state"] == "pending" and entry["dst"]
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED, item.message

    def test_an_error_in_the_callers_on_event_reaches_the_caller(
            self, tmp_path, small_photo, tiny_config):
        """An exception from the embedder's own on_event at a progress event was taken
        for the photo's: it failed with "unexpected error (...); please report it", asking
        them to report their bug to cloak, and the run went on. Now it ends the run and
        reaches them, as one raised at "start" or "done" did; the photo done is kept,
        the one in progress dropped, and a rerun does only that one."""
        photos = [small_photo(tmp_path / f"{name}.png", index=i)
                  for i, name in enumerate("ab")]
        out = tmp_path / "out"

        def callers_bug(event: batch.Event) -> None:
            if event.kind == "progress" and event.item.src.name == "b.png":
                raise ValueError("the caller's bug")

        with pytest.raises(ValueError, match="the caller's bug"):
            batch.run(batch.plan(photos, out), out, tiny_config, on_event=callers_bug)
        assert sorted(p.name for p in out.iterdir()) == sorted(["a.png", MANIFEST_NAME])
        again = batch.run(batch.plan(photos, out), out, tiny_config)
        assert [i.status for i in again.items] == [SKIPPED, PROTECTED]

        def callers_bug_at_once(event: batch.Event) -> None:
            if event.kind == "progress":
                raise ValueError("the caller's bug")

        # --jobs 2: the progress comes to the parent's loop, which left the photos
        # running recorded "pending" (a --force redo's done entry lost with them)
        with pytest.raises(ValueError, match="the caller's bug"):
            batch.run(batch.plan(photos, out), out, tiny_config, jobs=2, force=True,
                      on_event=callers_bug_at_once)
        record = json.loads((out / MANIFEST_NAME).read_text())["photos"]
        assert {entry["state"] for entry in record.values()} == {"done"}
        again = batch.run(batch.plan(photos, out), out, tiny_config)
        assert [i.status for i in again.items] == [SKIPPED, SKIPPED]

    def test_a_file_that_appears_before_a_cancel_is_not_taken_for_ours(
            self, tmp_path, small_photo, tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"

        def drop_a_file_then_stop(event: batch.Event) -> None:
            if event.kind == "progress" and not (out / "a.png").exists():
                small_photo(out / "a.png", index=3)
                raise KeyboardInterrupt

        result = batch.run(batch.plan([photo], out), out, tiny_config,
                           on_event=drop_a_file_then_stop)
        assert result.interrupted
        theirs = sha256(out / "a.png")
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and sha256(out / "a.png") == theirs

    def test_bad_files_fail_one_line_each_and_the_rest_is_done(self, tmp_path, small_photo,
                                                               tiny_config):
        folder = tmp_path / "in"
        good = small_photo(folder / "good.jpg")
        (folder / "empty.jpg").write_bytes(b"")
        data = good.read_bytes()
        (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
        (folder / "text.jpg").write_text("this is not a JPEG\n")
        huge_png(folder / "bomb.png")
        Image.new("RGB", (1, 1)).save(folder / "dot.png")
        Image.new("RGB", (30000, 20)).save(folder / "strip.png")
        before = {p.name: sha256(p) for p in folder.iterdir()}
        out = tmp_path / "out"
        result = batch.run(batch.plan([folder], out), out, tiny_config)
        items = by_src(result.items)
        assert items.pop("good.jpg").status == PROTECTED
        assert set(items) == {"empty.jpg", "truncated.jpg", "text.jpg", "bomb.png",
                              "dot.png", "strip.png"}
        for name, item in items.items():
            assert item.status == FAILED, name
            assert item.message and "\n" not in item.message, name
            assert not item.dst.exists(), name
        assert {p.name: sha256(p) for p in folder.iterdir()} == before
        assert not leftovers(out)

    def test_unwritable_output_folder_fails_that_photo_only(self, tmp_path, small_photo,
                                                            tiny_config):
        small_photo(tmp_path / "in" / "sub" / "a.png")
        small_photo(tmp_path / "in" / "b.png", index=1)
        out = tmp_path / "out"
        (out / "in").mkdir(parents=True)
        (out / "in" / "sub").write_text("a file where a folder must go")
        (out / MANIFEST_NAME).write_text(json.dumps(  # OUT/in is an earlier run's mirror
            {"version": 1, "photos": {}, "folders": {"in": os.path.realpath(tmp_path / "in")}}))
        items = by_src(batch.run(batch.plan([tmp_path / "in"], out), out, tiny_config).items)
        assert items["a.png"].status == FAILED and "can't create folder" in items["a.png"].message
        assert items["b.png"].status == PROTECTED

    def test_unwritable_out_raises_before_any_work(self, tmp_path, small_photo, tiny_config):
        photo = small_photo(tmp_path / "a.png")
        (tmp_path / "out").write_text("a file, not a folder")
        with pytest.raises(CloakError, match="can't write to output folder"):
            batch.run(batch.plan([photo], tmp_path / "out"), tmp_path / "out", tiny_config)

    def test_missing_weights_raise_before_any_work(self, tmp_path, small_photo, tiny_config,
                                                   monkeypatch):
        photo = small_photo(tmp_path / "a.png")
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "no-weights"))
        monkeypatch.setattr("cloak.models.weights.cache_dir", lambda: tmp_path / "no-cache")
        config = tiny_config.replace(models=("taef1",))  # not cached by earlier tests
        with pytest.raises(ModelError, match="taef1"):
            batch.run(batch.plan([photo], tmp_path / "out"), tmp_path / "out", config)
        assert not (tmp_path / "out").exists()

    def test_temp_files_left_by_a_killed_run_are_removed(self, tmp_path, small_photo,
                                                         tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        out.mkdir()
        stale = [out / ".a.png.cloak-tmp-0badf00d", out / ".cloak-manifest.json.cloak-tmp-1"]
        for path in stale:
            path.write_bytes(b"half a photo")
        (out / ".keep").write_text("not ours")
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        assert not any(p.exists() for p in stale) and (out / ".keep").exists()

    def test_should_stop_ends_cleanly_and_a_rerun_finishes(self, tmp_path, small_photo,
                                                           tiny_config):
        photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(3)]
        out = tmp_path / "out"
        done = []

        def on_event(event):
            if event.kind == "done":
                done.append(event.item)

        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event,
                           should_stop=lambda: len(done) >= 1)
        assert result.interrupted
        assert [i.status for i in result.items] == [PROTECTED, CANCELLED, CANCELLED]
        assert {p.name for p in out.iterdir()} == {"0.png", MANIFEST_NAME}
        result = batch.run(batch.plan(photos, out), out, tiny_config)
        assert [i.status for i in result.items] == [SKIPPED, PROTECTED, PROTECTED]

    def test_a_stop_while_the_last_photo_is_measured_is_an_interruption(
            self, tmp_path, small_photo, tiny_config):
        """A JPEG is saved, then measured: a Ctrl-C then cut its figures and the run
        ended as "Done" (exit 0, "interrupted": false in the report)."""
        photo = small_photo(tmp_path / "a.jpg")
        out = tmp_path / "out"
        asked = []
        measuring = progress_at(tiny_config, MEASURING_SAVED_AT)

        def on_event(event):
            if event.kind == "progress" and event.fraction >= measuring:  # saved, measuring
                asked.append(True)

        result = batch.run(batch.plan([photo], out), out, tiny_config.replace(measure=True),
                           on_event=on_event, should_stop=lambda: bool(asked))
        assert asked and result.interrupted
        [item] = result.items
        assert item.status == PROTECTED and item.report.damage_db == {}
        assert batch.run(batch.plan([photo], out), out, tiny_config).interrupted is False

    def test_a_stop_before_any_photo_cancels_them_all(self, tmp_path, small_photo,
                                                      tiny_config):
        photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(2)]
        out = tmp_path / "out"
        result = batch.run(batch.plan(photos, out), out, tiny_config, should_stop=lambda: True)
        assert result.interrupted
        assert [i.status for i in result.items] == [CANCELLED, CANCELLED]
        assert not out.exists()

    def test_ctrl_c_mid_photo_leaves_no_partial_file(self, tmp_path, small_photo,
                                                     tiny_config):
        photos = [small_photo(tmp_path / f"{n}.png", index=n) for n in range(2)]
        out = tmp_path / "out"
        saving = progress_at(tiny_config, SAVED_AT)

        def on_event(event):
            if (event.kind == "progress" and event.item.src == photos[1]
                    and event.fraction >= saving):  # the attack is done, nothing saved yet
                raise KeyboardInterrupt

        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event)
        assert result.interrupted
        assert [i.status for i in result.items] == [PROTECTED, CANCELLED]
        assert {p.name for p in out.iterdir()} == {"0.png", MANIFEST_NAME}
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert list(manifest["photos"]) == ["0.png"]

    def test_ctrl_c_sweeps_the_temp_files_left_in_its_folders(self, tmp_path, small_photo,
                                                              tiny_config):
        """A temp file a write left behind (a worker killed mid-save) is swept when the
        run ends, interrupted or not, not only by the next run."""
        small_photo(tmp_path / "in" / "a.png")
        out = tmp_path / "out"
        left = out / "in" / ".a.png.cloak-tmp-dead"

        def on_event(event):
            if event.kind == "progress" and event.fraction > 0.1:
                left.write_bytes(b"half a photo")  # OUT/in exists by now (the item began)
                raise KeyboardInterrupt

        result = batch.run(batch.plan([tmp_path / "in"], out), out, tiny_config,
                           on_event=on_event)
        assert result.interrupted and not left.exists() and not leftovers(out)

    def test_ctrl_c_after_the_save_leaves_a_file_the_rerun_redoes(self, tmp_path,
                                                                   small_photo, tiny_config):
        """A second Ctrl-C while a saved JPEG is measured: the file stays, and the manifest
        still says it is cloak's, so the rerun redoes it instead of refusing it."""
        photo = small_photo(tmp_path / "a.jpg")
        out = tmp_path / "out"
        measuring = progress_at(tiny_config, MEASURING_SAVED_AT)

        def on_event(event):
            if event.kind == "progress" and event.fraction >= measuring:  # saved, measuring
                raise KeyboardInterrupt

        result = batch.run(batch.plan([photo], out), out, tiny_config, on_event=on_event)
        assert result.interrupted and result.items[0].status == CANCELLED
        assert (out / "a.jpg").exists()
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert manifest["photos"]["a.jpg"]["state"] == "pending"
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED, item.message

    def test_jobs_run_in_worker_processes(self, tmp_path, small_photo, tiny_config,
                                          monkeypatch):
        """No photo is protected in this process: protect_file, watched here, is never
        called here (the workers, spawned, import their own), as it is with jobs=1."""
        from cloak import api

        # larger than the attack size: the round-trip filter and upsampling run too
        photos = [small_photo(tmp_path / "in" / f"{n}.png", size=(320, 256), index=n)
                  for n in range(3)]
        out = tmp_path / "out"
        children: list[int] = []  # worker processes alive while events arrive
        protected_here: list[int] = []  # the pid of each protect_file call in this process
        real_protect_file = api.protect_file

        def watched(*args, **kwargs):
            protected_here.append(os.getpid())
            return real_protect_file(*args, **kwargs)

        monkeypatch.setattr(api, "protect_file", watched)

        def on_event(event):
            children.extend(p.pid for p in multiprocessing.active_children())

        result = batch.run(batch.plan(photos, out), out, tiny_config, jobs=2,
                           on_event=on_event)
        assert children and protected_here == []
        assert [i.status for i in result.items] == [PROTECTED] * 3
        assert all(decodes(i.dst) for i in result.items)
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert {e["state"] for e in manifest["photos"].values()} == {"done"}
        # The workers ran the same attack as this process does: the same bytes, at the
        # workers' thread count (the CPU's sums in a convolution's gradient depend on it).
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, batch.usable_cores() // 2))
        try:
            here = batch.run(batch.plan(photos, tmp_path / "here"), tmp_path / "here",
                             tiny_config, jobs=1)
        finally:
            torch.set_num_threads(threads)
        assert protected_here == [os.getpid()] * 3  # work done here is seen
        assert [sha256(i.dst) for i in here.items] == [sha256(i.dst) for i in result.items]

    def test_a_worker_that_dies_fails_its_photos_and_the_rest_go_on(self, tmp_path,
                                                                   small_photo, tiny_config):
        photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(4)]
        out = tmp_path / "out"
        killed = []

        def on_event(event):  # kill a real worker process, as the OOM killer would
            if event.kind == "progress" and not killed:
                killed.append(multiprocessing.active_children()[0])
                os.kill(killed[0].pid, signal.SIGKILL)

        result = batch.run(batch.plan(photos, out), out, tiny_config, jobs=2,
                           on_event=on_event)
        statuses = [i.status for i in result.items]
        assert killed and FAILED in statuses and set(statuses) <= {PROTECTED, FAILED}
        assert result.items[-1].status == PROTECTED  # started after the crash, in a new pool
        assert all("worker process died" in i.message
                   for i in result.items if i.status == FAILED)
        assert not list(out.glob(batch.TEMP_GLOB))


def first_use_mirror(tmp_path, model_dir, monkeypatch) -> None:
    """No weights anywhere but a file:// mirror of taesd's .pth files and the face
    detector; an empty cache of this test's own, and no models loaded yet."""
    import shutil

    import torch

    from cloak.models import weights as W

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for part in ("encoder", "decoder"):
        torch.save(W.read_state_dict(model_dir / f"taesd_{part}.safetensors"),
                   mirror / f"taesd_{part}.pth")
    shutil.copy(model_dir / W.FACE_DETECTOR, mirror)
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", mirror.as_uri())
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr("cloak.models.loading._cache", {})


def test_first_use_downloads_report_progress_before_the_photos(tmp_path, small_photo,
                                                               model_dir, monkeypatch):
    """No weights anywhere but a mirror: the models and the face detector are fetched,
    checked and cached, each with `download` events, before the `todo` event."""
    from cloak import ProtectConfig
    from cloak.models import weights as W

    first_use_mirror(tmp_path, model_dir, monkeypatch)
    events = []
    items = batch.plan([small_photo(tmp_path / "a.png")], tmp_path / "out")
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                           measure=False)
    batch.run(items, tmp_path / "out", config, on_event=events.append)
    assert items[0].status == PROTECTED, items[0].message
    downloads = [e for e in events if e.kind == "download"]
    assert {e.label for e in downloads} == {"taesd_encoder.pth", "taesd_decoder.pth",
                                            W.FACE_DETECTOR}
    last = {e.label: e for e in downloads}  # each file's last event: all of it arrived
    assert all(e.fraction == 1.0 and e.total > 0 for e in last.values())
    kinds = [e.kind for e in events]
    assert kinds.index("todo") > max(i for i, k in enumerate(kinds) if k == "download")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        ["taesd_encoder.pth", "taesd_decoder.pth", W.FACE_DETECTOR])


def test_a_stop_during_the_first_use_downloads_starts_no_more_of_them(
        tmp_path, small_photo, model_dir, monkeypatch):
    """A Ctrl-C (or SIGTERM) asked for while the weights download: the file in flight is
    dropped (not cached) and no other download starts; the run ends interrupted, with
    nothing written. (It went on to fetch every other file first: minutes on a slow link.)"""
    from cloak import ProtectConfig

    first_use_mirror(tmp_path, model_dir, monkeypatch)
    events = []
    items = batch.plan([small_photo(tmp_path / "a.png")], tmp_path / "out")
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                           measure=False)
    result = batch.run(items, tmp_path / "out", config, on_event=events.append,
                       should_stop=lambda: any(e.kind == "download" for e in events))
    assert result.interrupted and items[0].status == batch.CANCELLED
    assert {e.label for e in events if e.kind == "download"} == {"taesd_encoder.pth"}
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert not (tmp_path / "out").exists()


class TestOutputFolderGone:
    """OUT removed while a run wrote to it, and made again by another run (which locked
    the new folder): the first run's lock was on the removed folder's lock file, so it
    went on writing copies and its whole record into the other run's folder (whose
    record then lost entries, and whose copies it refused as "not made by cloak"), and
    removed the other run's lock file as it ended."""

    @staticmethod
    def _another_run_takes(out: Path, held: contextlib.ExitStack) -> None:
        shutil.rmtree(out)
        out.mkdir()
        (out / "theirs.txt").write_text("another run's")
        held.enter_context(output_folder_lock(out))

    @pytest.mark.parametrize("out_there", [False, True])
    def test_between_photos_nothing_more_is_written_there(self, tmp_path, small_photo,
                                                          tiny_config, out_there):
        photos = [small_photo(tmp_path / "in" / f"p{i}.png", index=i) for i in range(3)]
        out = tmp_path / "out"
        if out_there:  # locked as the run begins (else as it makes OUT)
            out.mkdir()
        with contextlib.ExitStack() as other:
            def on_event(event) -> None:
                if event.kind == "done" and event.item.src == photos[0]:
                    self._another_run_takes(out, other)

            result = batch.run(batch.plan(photos, out), out, tiny_config,
                               on_event=on_event)
            assert result.out_folder_gone
            assert [i.status for i in result.items] == [PROTECTED, FAILED, FAILED]
            assert "was removed, moved or replaced during this run" in \
                result.items[1].message
            assert result.items[2].message == (
                f"not started: the output folder {out} was removed, moved or replaced "
                "during the run")
            # the other run's folder as it left it, its lock file still there
            assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "theirs.txt"]

    def test_a_copy_written_into_the_new_folder_is_taken_back(self, tmp_path, small_photo,
                                                              tiny_config):
        """With its preview sheet: the other run then failed on it ("already exists")."""
        photos = [small_photo(tmp_path / "in" / f"p{i}.png", index=i) for i in range(2)]
        out = tmp_path / "out"
        with contextlib.ExitStack() as other:
            def on_event(event) -> None:  # during the second photo's attack
                if event.kind == "progress" and event.item.src == photos[1] \
                        and not (out / "theirs.txt").exists():
                    self._another_run_takes(out, other)

            result = batch.run(batch.plan(photos, out), out,
                               tiny_config.replace(preview=True), on_event=on_event)
            assert [i.status for i in result.items] == [PROTECTED, FAILED]
            assert "was removed, moved or replaced" in result.items[1].message
            assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "theirs.txt"]

    def test_a_folder_removed_is_not_made_again(self, tmp_path, small_photo, tiny_config):
        """OUT removed during a photo's attack, and no other run: its copy is not saved
        into a folder made again at that name (its photo said "protected, but can't
        update" the record, for a copy not kept)."""
        photos = [small_photo(tmp_path / "in" / f"p{i}.png", index=i) for i in range(2)]
        out = tmp_path / "out"

        def on_event(event) -> None:
            if event.kind == "progress" and event.item.src == photos[1] and out.exists():
                shutil.rmtree(out)

        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event)
        assert [i.status for i in result.items] == [PROTECTED, FAILED]
        assert "was removed, moved or replaced" in result.items[1].message
        assert not result.items[1].message.startswith("protected, but")
        assert not out.exists()

    def test_a_ctrl_c_after_the_folder_went_is_still_a_ctrl_c(self, tmp_path, small_photo,
                                                              tiny_config):
        """The photo under way was dropped by writing its record, which raised
        OutputFolderGoneError in place of the stop: the run raised it (the CLI then said
        no photo was done, exit 1) instead of returning an interrupted result."""
        photos = [small_photo(tmp_path / "in" / f"p{i}.png", index=i) for i in range(2)]
        out = tmp_path / "out"

        def on_event(event) -> None:
            if event.kind == "progress" and event.item.src == photos[1]:
                shutil.rmtree(out)
                raise KeyboardInterrupt

        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event)
        assert result.interrupted and result.out_folder_gone
        assert [i.status for i in result.items] == [PROTECTED, CANCELLED]


class TestDoneUnderTheAppsName:
    """The desktop app saved 2023/a.jpg as OUT/a.jpg and 2024/a.jpg as OUT/a (1).jpg, each
    recorded. `cloak protect 2024/a.jpg --out OUT` then refused it ("exists and was made
    from another photo of that name ...; pass --overwrite to replace it"), and following
    that advice replaced 2023's copy with a second copy of 2024's photo."""

    @staticmethod
    def _as_the_app_saved(tmp_path, small_photo, config) -> tuple[Path, Path, Path]:
        from cloak import protect_file

        first = small_photo(tmp_path / "2023" / "a.png")
        second = small_photo(tmp_path / "2024" / "a.png", index=1)
        out = tmp_path / "out"
        for photo, name in ((first, "a.png"), (second, "a (1).png")):
            protect_file(photo, out / name, config)
            assert record_copy(photo, out / name, config.fingerprint(), "strong")
        return first, second, out

    def test_the_photo_is_done_and_the_other_photos_copy_kept(self, tmp_path, small_photo,
                                                               tiny_config):
        first, second, out = self._as_the_app_saved(tmp_path, small_photo, tiny_config)
        theirs = (out / "a.png").read_bytes()
        apps = (out / "a (1).png").read_bytes()
        for flags in ({}, {"overwrite": True}):
            (item,) = batch.run(batch.plan([second], out), out, tiny_config, **flags).items
            assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
            assert item.dst == out / "a (1).png"  # --json names its copy, not a.png
            assert (out / "a.png").read_bytes() == theirs
        # --preview makes its missing sheet, and --force makes it again, at its copy
        (item,) = batch.run(batch.plan([second], out), out,
                            tiny_config.replace(preview=True)).items
        assert item.status == PROTECTED and (out / "a (1).png.preview.png").is_file()
        (item,) = batch.run(batch.plan([second], out), out, tiny_config, force=True).items
        assert item.status == PROTECTED and item.dst == out / "a (1).png"
        assert (out / "a.png").read_bytes() == theirs
        assert (out / "a (1).png").read_bytes() == apps  # the same photo, made again
        # the photo whose copy is at its own name is done as ever
        (item,) = batch.run(batch.plan([first], out), out, tiny_config).items
        assert (item.status, item.message) == (SKIPPED, "already protected with these settings")

    def test_both_photos_in_one_run_are_done(self, tmp_path, small_photo, tiny_config):
        """`cloak protect 2023/a.png 2024/a.png --out OUT`: 2024's was refused as it was
        planned ("out/a.png is also the output of 2023/a.png; protect this one alone into
        another --out folder"), exit 2, though both were done; alone it was found done at
        `a (1).png`. --force makes each again at its own copy."""
        first, second, out = self._as_the_app_saved(tmp_path, small_photo, tiny_config)
        files = {p: p.read_bytes() for p in (out / "a.png", out / "a (1).png")}
        for order in ([first, second], [second, first]):
            items = batch.run(batch.plan(order, out), out, tiny_config).items
            assert {i.src: (i.status, i.dst) for i in items} == {
                first: (SKIPPED, out / "a.png"), second: (SKIPPED, out / "a (1).png")}
            assert all(p.read_bytes() == data for p, data in files.items())
        items = batch.run(batch.plan([first, second], out), out, tiny_config,
                          force=True).items
        assert [(i.status, i.dst) for i in items] == [(PROTECTED, out / "a.png"),
                                                      (PROTECTED, out / "a (1).png")]
        assert all(p.read_bytes() == data for p, data in files.items())  # each its own
        other = small_photo(tmp_path / "2025" / "a.png", index=2)  # no copy of its own:
        items = batch.run(batch.plan([first, other], out), out, tiny_config).items
        assert [i.status for i in items] == [SKIPPED, FAILED]  # still refused
        assert "is also the output of" in items[1].message

    def test_not_where_another_photo_of_the_run_is_named_for_that_copy(
            self, tmp_path, small_photo, tiny_config):
        """2025/a (1).png is another photo, given in the same run: it is told to pass
        --overwrite for out/a (1).png, so 2024/a.png is not found done there (it was, in
        one order of the inputs only; the advised --overwrite rerun then wrote 2024's
        photo over 2023's copy)."""
        _, second, out = self._as_the_app_saved(tmp_path, small_photo, tiny_config)
        third = small_photo(tmp_path / "2025" / "a (1).png", index=2)
        files = {p: p.read_bytes() for p in (out / "a.png", out / "a (1).png")}
        for order in ([third, second], [second, third]):
            items = batch.run(batch.plan(order, out), out, tiny_config).items
            assert [i.status for i in items] == [FAILED, FAILED]
            assert {i.src: i.dst for i in items} == {second: out / "a.png",
                                                    third: out / "a (1).png"}
            assert all(p.read_bytes() == data for p, data in files.items())

    def test_a_copy_listed_by_the_record_above(self, tmp_path, small_photo, tiny_config):
        """OUT/holiday's copies listed only in OUT's record: `a (1).png`, this photo's, is
        done (it was called "not made by cloak", as OUT/holiday's own record has no
        entry for it)."""
        photo = small_photo(tmp_path / "holiday" / "a.png")
        (tmp_path / "holiday" / "a (1).png").write_bytes(photo.read_bytes())
        out = tmp_path / "out"
        assert batch.run(batch.plan([tmp_path / "holiday"], out), out,
                         tiny_config).counts[PROTECTED] == 2
        mirror = out / "holiday"
        small_photo(mirror / "a.png", index=3)  # a file of the user's at its own name
        (item,) = batch.run(batch.plan([photo], mirror), mirror, tiny_config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        assert item.dst == mirror / "a (1).png"
        assert not (mirror / MANIFEST_NAME).exists()  # nothing recorded there for it

    def test_only_this_photos_copy_beside_it_under_its_name(self, tmp_path, small_photo,
                                                            tiny_config):
        """Not a copy of it under another name, nor one in another folder, nor where the
        file at its own name is its own copy (other settings: refused as ever)."""
        from cloak import protect_file

        photo = small_photo(tmp_path / "2024" / "a.png", index=1)
        out = tmp_path / "out"
        small_photo(out / "a.png", index=2)  # the user's own file at its name
        settings = tiny_config.fingerprint()
        for name in ("b.png", "sub/a (1).png"):
            protect_file(photo, out / name, tiny_config)
            assert record_copy(photo, out / name, settings, "strong")
        # listed in OUT's own record, as a mirror's copies are
        Manifest(out).set(out / "sub" / "a (1).png",
                          Manifest(out / "sub").get(out / "sub" / "a (1).png"))
        (out / "sub" / MANIFEST_NAME).unlink()
        (item,) = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == FAILED and item.dst == out / "a.png"
        assert "was not made by cloak" in item.message
        own = tmp_path / "own"  # its own copy at its name, other settings, and one
        protect_file(photo, own / "a.png", tiny_config.replace(steps=2))  # beside it
        assert record_copy(photo, own / "a.png", tiny_config.replace(steps=2).fingerprint())
        protect_file(photo, own / "a (1).png", tiny_config)
        assert record_copy(photo, own / "a (1).png", settings)
        (item,) = batch.run(batch.plan([photo], own), own, tiny_config).items
        assert item.status == FAILED and "was made with other settings" in item.message


class _Killed(BaseException):
    """The process ending where it is raised (SIGKILL, a crash): no handler catches it."""


def test_a_redo_killed_before_it_wrote_leaves_its_copy_done(tmp_path, small_photo,
                                                            tiny_config, monkeypatch):
    """A redo with other settings (--overwrite) killed during its attack left the copy
    there untouched, yet recorded as pending with the redo's settings: a rerun with the
    copy's own settings said it "was made with other settings (--steps 2 -> 1)", which is
    false, and the app made `a (1).png` beside it. The copy is now still done as made."""
    from cloak.manifest import earlier_copy

    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    assert batch.run(batch.plan([photo], out), out, tiny_config).items[0].status == PROTECTED
    copy = (out / "a.png").read_bytes()
    redo = tiny_config.replace(steps=2)

    def killed(*args, **kwargs):
        raise _Killed

    monkeypatch.setattr(batch, "_protect_one", killed)
    with pytest.raises(_Killed):
        batch.run(batch.plan([photo], out), out, redo, overwrite=True)
    monkeypatch.undo()
    assert Manifest(out).get(out / "a.png")["state"] == "pending"  # as a kill leaves it
    (item,) = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
    assert earlier_copy(photo, out, tiny_config.fingerprint()) == out / "a.png"  # the app
    assert (out / "a.png").read_bytes() == copy
    # the redo's own command, run again, makes it again; the entry then is the new copy's
    (item,) = batch.run(batch.plan([photo], out), out, redo, overwrite=True).items
    assert item.status == PROTECTED and (out / "a.png").read_bytes() != copy
    entry = Manifest(out).get(out / "a.png")
    assert entry["state"] == "done" and "before" not in entry
    assert entry["settings"] == redo.fingerprint()


class TestAMirrorFolderAsOutput:
    """`cloak protect holiday --out OUT` wrote OUT/holiday/a.png, recorded in OUT's record.
    The app with Save-to OUT/holiday, or `cloak protect holiday/a.png --out OUT/holiday`,
    read only OUT/holiday's own record: the app saved `a (1).png` beside the copy, and the
    CLI refused it as "not made by cloak (it may be a photo of yours)"."""

    @staticmethod
    def _protected_as_a_folder(tmp_path, small_photo, config) -> tuple[Path, Path]:
        photo = small_photo(tmp_path / "holiday" / "a.png")
        out = tmp_path / "out"
        result = batch.run(batch.plan([tmp_path / "holiday"], out), out, config)
        assert result.counts[PROTECTED] == 1 and (out / "holiday" / "a.png").is_file()
        return photo, out

    def test_the_app_finds_the_copy(self, tmp_path, small_photo, tiny_config):
        from cloak.manifest import earlier_copy

        photo, out = self._protected_as_a_folder(tmp_path, small_photo, tiny_config)
        settings = tiny_config.fingerprint()
        assert earlier_copy(photo, out / "holiday", settings) == out / "holiday" / "a.png"
        assert earlier_copy(photo, out / "holiday", tiny_config.replace(steps=2)
                            .fingerprint()) is None  # other settings: not that copy

    def test_the_cli_skips_it_or_says_whose_it_is(self, tmp_path, small_photo, tiny_config):
        photo, out = self._protected_as_a_folder(tmp_path, small_photo, tiny_config)
        mirror = out / "holiday"
        copy = (mirror / "a.png").read_bytes()
        (item,) = batch.run(batch.plan([photo], mirror), mirror, tiny_config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        (item,) = batch.run(batch.plan([photo], mirror), mirror,
                            tiny_config.replace(steps=2)).items
        assert item.status == FAILED  # why, and a command that makes it again there:
        assert item.message == (  # (`--out OUT` with the photo alone wrote OUT/a.png)
            f"output {mirror / 'a.png'} exists and was made with other settings (--steps 1 "
            f"-> 2); it is a copy listed in the record of {out}, a cloak output folder "
            f"above this one: protect {photo.parent} into --out {out} with --overwrite to "
            "make it again there, or pass --overwrite to replace it here")
        assert (mirror / "a.png").read_bytes() == copy
        (item,) = batch.run(batch.plan([photo], mirror), mirror,
                            tiny_config.replace(preview=True)).items  # a redo, for its sheet
        assert item.status == FAILED and item.message.startswith(
            f"output {mirror / 'a.png'} is a copy listed in the record of {out}, a cloak "
            f"output folder above this one, made again only there: protect {photo.parent}")
        other = small_photo(tmp_path / "other" / "a.png", index=2)  # another photo's
        (item,) = batch.run(batch.plan([other], mirror), mirror, tiny_config).items
        assert item.status == FAILED and "was made from another photo of that name" in \
            item.message and "make it again there" not in item.message
        assert (mirror / "a.png").read_bytes() == copy
        again = batch.run(batch.plan([photo.parent], out), out, tiny_config.replace(steps=2),
                          overwrite=True)  # the advice, followed
        assert [(i.status, i.dst) for i in again.items] == [(PROTECTED, mirror / "a.png")]
        sheet = tiny_config.replace(steps=2, preview=True)
        (item,) = batch.run(batch.plan([photo], mirror), mirror, sheet).items
        assert item.status == FAILED and "made again only there" in item.message
        again = batch.run(batch.plan([photo.parent], out), out, sheet)  # followed: no
        assert [i.status for i in again.items] == [PROTECTED]  # --overwrite needed
        assert preview_path(mirror / "a.png").is_file()
        copy = (mirror / "a.png").read_bytes()
        small_photo(mirror / "a.png", index=3)  # a file of the user's at its name now:
        (item,) = batch.run(batch.plan([photo], mirror), mirror, tiny_config).items
        assert item.status == FAILED  # not called a copy recorded in OUT
        assert "is not the file cloak wrote there" in item.message

    def test_from_a_folder_inside_a_mirror_the_advice_names_the_mirrors_folder(
            self, tmp_path, small_photo, tiny_config):
        """`--out OUT/holiday/2019`: the command that makes the copy again there is the
        mirror's folder (holiday) into OUT, not the subfolder's."""
        photo = small_photo(tmp_path / "holiday" / "2019" / "a.png")
        out = tmp_path / "out"
        batch.run(batch.plan([tmp_path / "holiday"], out), out, tiny_config)
        inner = out / "holiday" / "2019"
        (item,) = batch.run(batch.plan([photo], inner), inner,
                            tiny_config.replace(steps=2)).items
        assert item.status == FAILED and item.message.endswith(
            f"protect {tmp_path / 'holiday'} into --out {out} with --overwrite to make it "
            "again there, or pass --overwrite to replace it here")

    def test_a_record_between_hides_none_above_it(self, tmp_path, small_photo, tiny_config):
        """The app saved a photo into OUT/holiday (its own record there): a copy OUT's
        record lists in OUT/holiday/2019 was no longer found."""
        from cloak import protect_file
        from cloak.manifest import earlier_copy

        photo = small_photo(tmp_path / "holiday" / "2019" / "a.png")
        out = tmp_path / "out"
        assert batch.run(batch.plan([tmp_path / "holiday"], out), out,
                         tiny_config).counts[PROTECTED] == 1
        other = small_photo(tmp_path / "b.png", index=1)
        protect_file(other, out / "holiday" / "b.png", tiny_config)
        assert record_copy(other, out / "holiday" / "b.png", tiny_config.fingerprint())
        folder = out / "holiday" / "2019"
        assert earlier_copy(photo, folder, tiny_config.fingerprint()) == folder / "a.png"
        (item,) = batch.run(batch.plan([photo], folder), folder, tiny_config).items
        assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
        # a copy OUT lists in another of its folders is not one in this folder
        (out / "holiday" / "2020").mkdir()
        assert earlier_copy(photo, out / "holiday" / "2020", tiny_config.fingerprint()) \
            is None


class TestReviewFixes:
    def test_a_held_output_folder_is_refused_and_its_temp_files_kept(
            self, tmp_path, small_photo, tiny_config):
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        out.mkdir()
        live = out / ".b.png.cloak-tmp-1234"  # another run's photo, being written
        live.write_bytes(b"half a photo")
        with output_folder_lock(out):
            with pytest.raises(OutputError, match="another cloak protect is writing"):
                batch.run(batch.plan([photo], out), out, tiny_config)
            assert live.exists()
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == PROTECTED
        assert not (out / LOCK_NAME).exists()

    def test_the_lock_file_goes_where_an_open_file_cannot_be_removed(
            self, tmp_path, monkeypatch):
        """Windows refuses to remove a file that is still open: the lock was removed
        while held, so every output folder kept a `.cloak-lock`, and a run that wrote
        nothing could not remove the folder it made. Simulated: a file this process has
        open refuses unlink, as on Windows."""
        def open_here(path: Path) -> bool:
            fds = Path("/proc/self/fd")
            return any(os.path.realpath(fd) == os.path.realpath(path) for fd in fds.iterdir())

        real_unlink = Path.unlink

        def windows_unlink(self, missing_ok=False):
            if open_here(self):
                raise PermissionError(13, "The process cannot access the file because it "
                                          "is being used by another process")
            return real_unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", windows_unlink)
        monkeypatch.setattr(manifest_module, "REMOVES_OPEN_FILES", False)
        out = tmp_path / "out"
        out.mkdir()
        with output_folder_lock(out):
            assert (out / LOCK_NAME).exists()
        assert not (out / LOCK_NAME).exists()
        monkeypatch.setattr(manifest_module, "REMOVES_OPEN_FILES", True)  # POSIX's order
        with output_folder_lock(out):  # shown failing under the simulation
            pass
        assert (out / LOCK_NAME).exists()

    def test_a_run_that_loses_the_race_for_a_new_out_keeps_the_winners_temp_files(
            self, tmp_path, small_photo, tiny_config, monkeypatch):
        """Two runs start before OUT exists; the other one makes it and locks it while
        this one loads its models. This one is refused, and must leave the other's
        photo in progress (a temp file in OUT) alone."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        live = out / ".a.png.cloak-tmp-1234"
        winner = contextlib.ExitStack()
        load = batch.preload_models

        def the_other_run_arrives(config, progress=None):
            load(config, progress)
            out.mkdir()
            winner.enter_context(output_folder_lock(out))
            live.write_bytes(b"half a photo")

        monkeypatch.setattr(batch, "preload_models", the_other_run_arrives)
        with winner:
            # an OutputError, as when OUT was there before the run: one `except` for both
            with pytest.raises(OutputError, match="another cloak protect is writing"):
                batch.run(batch.plan([photo], out), out, tiny_config)
            assert live.exists()

    def test_a_folder_link_inside_out_is_not_written_through(self, tmp_path, small_photo,
                                                             tiny_config):
        small_photo(tmp_path / "trip" / "day 1" / "a.png")
        elsewhere = tmp_path / "someone else's"
        elsewhere.mkdir()
        out = tmp_path / "out"
        out.mkdir()
        (out / "trip").symlink_to(elsewhere)
        [item] = batch.run(batch.plan([tmp_path / "trip"], out), out, tiny_config).items
        assert item.status == FAILED and "link to outside" in item.message
        assert list(elsewhere.iterdir()) == []

    def test_a_lock_file_that_is_a_link_is_not_followed(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        (out / LOCK_NAME).symlink_to(tmp_path / "elsewhere.lock")  # dangling
        with pytest.raises(CloakError, match="can't write to output folder"), \
                output_folder_lock(out):
            pass
        assert not (tmp_path / "elsewhere.lock").exists()

    def test_outputs_that_differ_only_in_case_clash(self, tmp_path, small_photo):
        one = small_photo(tmp_path / "cam1" / "IMG_1.png")
        two = small_photo(tmp_path / "cam2" / "img_1.png", index=1)
        items = by_src(batch.plan([one, two], tmp_path / "out"))
        assert items["IMG_1.png"].status == "pending"
        assert items["img_1.png"].status == FAILED
        assert "also the output of" in items["img_1.png"].message

    def test_earlier_output_folders_and_previews_are_not_walked(self, tmp_path, small_photo,
                                                                 tiny_config):
        small_photo(tmp_path / "photos" / "a.png")
        first = batch.run(batch.plan([tmp_path / "photos"], tmp_path / "photos" / "cloaked"),
                          tmp_path / "photos" / "cloaked", tiny_config.replace(preview=True))
        assert first.counts[PROTECTED] == 1
        assert (tmp_path / "photos" / "cloaked" / "photos" / "a.png.preview.png").is_file()
        small_photo(tmp_path / "photos" / "b.png.preview.png", index=1)  # a stray sheet
        items = batch.plan([tmp_path / "photos"], tmp_path / "elsewhere")
        names = {i.src.name: i for i in items}
        assert set(names) == {"a.png", "cloaked"}
        assert names["cloaked"].status == SKIPPED
        assert "cloak output folder" in names["cloaked"].message
        [item] = batch.plan([tmp_path / "photos" / "cloaked"], tmp_path / "elsewhere")
        assert item.status == SKIPPED

    def test_a_folder_once_used_as_out_still_gives_its_own_photos(self, tmp_path,
                                                                small_photo, tiny_config):
        """`cloak protect new.png --out ~/Pictures`, later `cloak protect ~/Pictures --out p`:
        the copy written there is skipped, the library's own photos are protected."""
        pictures = tmp_path / "Pictures"
        own = [small_photo(pictures / "mine.png"),
               small_photo(pictures / "trip" / "beach.png", index=1)]
        new = small_photo(tmp_path / "new.png", index=2)
        holiday = small_photo(tmp_path / "holiday" / "h.png", index=3)
        first = batch.run(batch.plan([new, holiday.parent], pictures), pictures, tiny_config)
        assert first.counts[PROTECTED] == 2
        assert (pictures / "new.png").is_file() and (pictures / "holiday" / "h.png").is_file()
        for later in ([pictures], [pictures / "trip", pictures]):
            items = batch.plan(later, tmp_path / "p")
            planned = sorted(i.src for i in items if i.status == "pending")
            assert planned == sorted(own)
            [note] = [i for i in items if i.status == SKIPPED]
            assert note.src == pictures and "its 2 protected copies" in note.message
        result = batch.run(batch.plan([pictures], tmp_path / "p"), tmp_path / "p", tiny_config)
        assert result.counts[PROTECTED] == 2 and result.counts[FAILED] == 0

    def test_a_folder_that_may_not_be_searched_is_one_failed_item(
            self, tmp_path, small_photo, monkeypatch):
        # As root (CI) permissions don't stop anything; Python 3.10-3.12 raise from
        # Path.is_dir() on EACCES, so that is what is raised here.
        good = small_photo(tmp_path / "good.png")
        locked = tmp_path / "locked" / "a.png"
        real_is_dir = Path.is_dir

        def is_dir(self):
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real_is_dir(self)

        monkeypatch.setattr(Path, "is_dir", is_dir)
        items = by_src(batch.plan([locked, good], tmp_path / "out"))
        assert items["a.png"].status == FAILED
        assert "Permission denied" in items["a.png"].message
        assert items["good.png"].status == "pending"

    def test_a_locked_subfolder_fails_alone(self, tmp_path, small_photo, lock_folder):
        """`cloak protect /media/usb` with a root-owned lost+found inside: that folder is
        one failed item; the photos beside it are still planned."""
        good = small_photo(tmp_path / "usb" / "a.png")
        other = small_photo(tmp_path / "usb" / "trip" / "b.png", index=1)
        (tmp_path / "usb" / "lost+found").mkdir()
        lock_folder(tmp_path / "usb" / "lost+found")
        items = by_src(batch.plan([tmp_path / "usb"], tmp_path / "out"))
        assert items["a.png"].status == items["b.png"].status == "pending"
        assert {items["a.png"].src, items["b.png"].src} == {good, other}
        assert items["lost+found"].status == FAILED
        assert "can't read folder" in items["lost+found"].message

    def test_an_input_in_a_locked_folder_fails_alone(self, tmp_path, small_photo,
                                                     lock_folder):
        """`cloak protect ok.png /root/x.png`: x.png fails, ok.png is still planned."""
        good = small_photo(tmp_path / "ok.png")
        (tmp_path / "root").mkdir()
        lock_folder(tmp_path / "root")
        items = by_src(batch.plan([good, tmp_path / "root" / "x.png"], tmp_path / "out"))
        assert items["ok.png"].status == "pending"
        assert items["x.png"].status == FAILED
        assert "Permission denied" in items["x.png"].message

    def test_a_manifest_that_cant_be_written_mid_run_ends_with_a_result(
            self, tmp_path, small_photo, tiny_config):
        photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(3)]
        out = tmp_path / "out"
        manifest = out / MANIFEST_NAME

        def on_event(event):
            if event.kind == "done" and event.item.src == photos[0]:
                # folders where the record and its journal go: every save fails
                for record in (manifest, out / JOURNAL_NAME):
                    record.unlink(missing_ok=True)
                    (record / "x").mkdir(parents=True)

        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event)
        assert [i.status for i in result.items] == [PROTECTED, FAILED, FAILED]
        assert "can't update" in result.items[1].message
        assert "not started" in result.items[2].message
        assert not result.interrupted
        assert not (out / "1.png").exists() and not (out / "2.png").exists()

    def test_a_full_disk_stops_the_run_instead_of_failing_each_photo_after_its_attack(
            self, tmp_path, small_photo, tiny_config, full_disk):
        """Space for the manifest but not for a copy (a real tmpfs with two free pages):
        the first photo fails on its save (its temp file is removed, so the manifest
        still fits), and the rest are not started, saying why: each would have run its
        whole attack only to fail the same way."""
        photos = [small_photo(tmp_path / "in" / f"{n}.png", (96, 72), index=n)
                  for n in range(3)]
        filler = full_disk / ".filler"
        os.truncate(filler, os.path.getsize(filler) - 8192)  # the manifest and its next copy fit
        started = []

        def on_event(event):
            if event.kind == "start":
                started.append(event.item.src)

        result = batch.run(batch.plan(photos, full_disk), full_disk, tiny_config,
                           on_event=on_event)
        assert started == photos[:1]
        assert [i.status for i in result.items] == [FAILED] * 3
        assert "No space left on device" in result.items[0].message
        for item in result.items[1:]:
            assert item.message.startswith("not started: the disk holding")
            assert "is full" in item.message

    def test_a_damaged_record_is_set_aside_and_a_newer_ones_refused(
            self, tmp_path, small_photo, tiny_config, caplog):
        """A record a sync client damaged is kept beside the new one, not replaced; one a
        newer cloak wrote is left alone and the run refused (an older cloak would drop
        what it can't read)."""
        photo = small_photo(tmp_path / "a.png")
        out = tmp_path / "out"
        out.mkdir()
        (out / MANIFEST_NAME).write_text('{"version": 1, "photos": {"x.png": ')  # cut off
        result = batch.run(batch.plan([photo], out), out, tiny_config)
        assert [i.status for i in result.items] == [PROTECTED]
        (aside,) = out.glob(f"{MANIFEST_NAME}.unreadable-*")
        assert aside.read_text() == '{"version": 1, "photos": {"x.png": '
        # the time it was set aside, in UTC and said so (one local time has no zone)
        stamp = aside.name.removeprefix(f"{MANIFEST_NAME}.unreadable-")
        assert abs(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")) - time.time()) < 120
        assert "a.png" in json.loads((out / MANIFEST_NAME).read_text())["photos"]
        assert f"kept as {aside.name}" in caplog.text

        newer = tmp_path / "newer"
        newer.mkdir()
        record = '{"version": 3, "photos": {}, "journal": "a.jsonl"}'
        (newer / MANIFEST_NAME).write_text(record)
        with pytest.raises(CloakError, match="written by a newer cloak .*version 3"):
            batch.run(batch.plan([photo], newer), newer, tiny_config)
        assert (newer / MANIFEST_NAME).read_text() == record
        assert not (newer / "a.png").exists()
        # its copies already there: still that one line, not "not made by cloak" per photo
        # (whose --overwrite advice would only reach the same refusal)
        (newer / "a.png").write_bytes(photo.read_bytes())
        with pytest.raises(CloakError, match="written by a newer cloak .*version 3"):
            batch.run(batch.plan([photo], newer), newer, tiny_config)

    def test_a_record_with_fields_of_the_wrong_type_does_not_crash_the_run(
            self, tmp_path, small_photo, tiny_config):
        """Valid JSON whose entry fields have the wrong type (hand-edited, sync-merged)
        raised AttributeError on every later run; now such an entry matches no file."""
        photos = [small_photo(tmp_path / name) for name in ("a.png", "b.png")]
        out = tmp_path / "out"
        out.mkdir()
        (out / "a.png").write_bytes(photos[0].read_bytes())  # a copy the record can't vouch for
        record = {"version": 1, "photos": {
            "a.png": {"state": "done", "src": "x", "dst": "y", "settings": {}},
            "b.png": {"state": "pending", "src": [1], "settings": {"metadata": "all"},
                      "preview": 3}}}
        (out / MANIFEST_NAME).write_text(json.dumps(record))
        result = batch.run(batch.plan(photos, out), out, tiny_config)
        a, b = result.items
        assert a.status == FAILED and "pass --overwrite to replace it" in a.message
        assert b.status == PROTECTED
        assert (out / "a.png").read_bytes() == photos[0].read_bytes()  # left alone

    def test_the_mask_path_as_typed_does_not_count_as_a_setting(
            self, tmp_path, small_photo, tiny_config, monkeypatch):
        photo = small_photo(tmp_path / "a.png")
        Image.new("L", (64, 48), 255).save(tmp_path / "m.png")
        monkeypatch.chdir(tmp_path)
        out = tmp_path / "out"
        first = batch.run(batch.plan([photo], out), out, tiny_config.replace(mask_path="m.png"))
        assert first.counts[PROTECTED] == 1
        again = batch.run(batch.plan([photo], out), out,
                          tiny_config.replace(mask_path=str(tmp_path / "m.png")))
        assert again.items[0].message == batch.ALREADY_DONE
        changed_mask = Image.new("L", (64, 48), 0)
        changed_mask.paste(255, (0, 0, 32, 48))
        changed_mask.save(tmp_path / "m.png")  # a changed mask still counts
        changed = batch.run(batch.plan([photo], out), out,
                            tiny_config.replace(mask_path="m.png"))
        assert changed.items[0].status == FAILED and "other settings" in changed.items[0].message


def test_a_folder_named_by_another_string_keeps_its_mirror(tmp_path):
    """On macOS realpath keeps the case typed: `~/photos` after a run on `~/Photos` is the
    same folder under another string, and must not be protected again into `Photos (2)`
    (simulated here by another spelling of the same path)."""
    (tmp_path / "Photos").mkdir()
    (tmp_path / "Other").mkdir()
    recorded = {"Photos": str(tmp_path / "Photos")}
    again = str(tmp_path / "Other" / ".." / "Photos")
    assert Mirrors(recorded, tmp_path / "out").name_for(again) == "Photos"
    other = tmp_path / "elsewhere" / "Photos"
    other.mkdir(parents=True)
    assert Mirrors(recorded, tmp_path / "out").name_for(str(other)) == "Photos (2)"


def test_a_drive_mounted_elsewhere_keeps_its_mirror(tmp_path, small_photo, tiny_config,
                                                      caplog):
    """disk/Trip protected into disk/protected, then the disk mounted at another place
    (E: become F:, /media/a become /media/b): the record's Trip names a folder that is
    gone, so the rerun took "Trip" for another folder's and protected every photo again
    into "Trip (2)". The copies there were made from the photos at the same places in
    the folder given, so the mirror is its own (recorded at its new place); a folder
    of other photos under that name still gets "Trip (2)"."""
    disk = tmp_path / "disk1"
    photos = [small_photo(disk / "Trip" / f"{name}.png", index=i)
              for i, name in enumerate("ab")]
    out = disk / "protected"
    assert batch.run(batch.plan([photos[0].parent], out), out,
                     tiny_config).counts[PROTECTED] == 2
    moved = tmp_path / "disk2"
    disk.rename(moved)
    out = moved / "protected"
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        again = batch.run(batch.plan([moved / "Trip"], out), out, tiny_config)
    assert not caplog.records  # the same name: nothing renamed to say
    assert [i.status for i in again.items] == [SKIPPED, SKIPPED]
    assert [i.dst.parent.name for i in again.items] == ["Trip", "Trip"]
    record = json.loads((out / MANIFEST_NAME).read_text())
    assert record["folders"] == {"Trip": str(moved / "Trip")}
    other = small_photo(tmp_path / "other" / "Trip" / "c.png", index=2)
    shutil.rmtree(moved / "Trip")
    [item] = batch.plan([other.parent], out)
    assert item.dst == out / "Trip (2)" / "c.png"


def test_folders_whose_names_differ_only_in_accent_encoding_get_two_mirrors(tmp_path):
    """`2023/Café` (NFD, as an old Mac disk stores it) and `2024/Café` (NFC) are one
    folder name on macOS and Windows: they shared one mirror (names were only
    case-folded), so same-named photos in them clashed and the rest were mixed."""
    nfd, nfc = "Cafe\u0301", "Caf\xe9"
    first, second = tmp_path / "2023" / nfd, tmp_path / "2024" / nfc
    for folder in (first, second):
        folder.mkdir(parents=True)
    mirrors = Mirrors({}, tmp_path / "out")
    assert mirrors.name_for(str(first)) == nfd
    assert mirrors.name_for(str(second)) == f"{nfc} (2)"
    recorded = {nfd: str(first)}  # a later run of the NFC folder alone: not into 2023's
    assert Mirrors(recorded, tmp_path / "out").name_for(str(second)) == f"{nfc} (2)"


def test_a_copy_named_in_another_case_is_found_in_its_record(tmp_path, small_photo,
                                                              tiny_config):
    """On macOS, Windows and exFAT disks `img_1.png` typed for `IMG_1.png` names the same
    file, but the record keys each copy by the name first written: a rerun typing the
    other case found no record and refused its own copy as not cloak's. Simulated with a
    hard link (one file, two names); where the names are two files, nothing changes."""
    photo = small_photo(tmp_path / "IMG_1.png")
    out = tmp_path / "out"
    assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
    typed = tmp_path / "typed" / "img_1.png"
    typed.parent.mkdir()
    os.link(photo, typed)
    os.link(out / "IMG_1.png", out / "img_1.png")  # what such a disk answers
    again = batch.run(batch.plan([typed], out), out, tiny_config)
    assert [i.message for i in again.items] == [batch.ALREADY_DONE]
    assert set(Manifest(out).entries) == {"IMG_1.png"}
    (out / "img_1.png").unlink()
    (out / "img_1.png").write_bytes(b"the user's own file")
    other = batch.run(batch.plan([typed], out), out, tiny_config)
    assert other.items[0].status == FAILED
    assert (out / "img_1.png").read_bytes() == b"the user's own file"
    assert set(Manifest(out).entries) == {"IMG_1.png"}


def test_a_file_above_out_takes_no_mirror_name_but_a_file_at_it_does(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "holiday").write_text("the user's own file")
    assert not Mirrors({}, tmp_path / "notes.txt" / "out")._in_use("holiday")
    assert Mirrors({}, tmp_path / "out")._in_use("holiday")
    assert Mirrors({}, tmp_path / "out").name_for(str(tmp_path / "holiday")) \
        == "holiday (2)"


def test_a_folder_keeps_its_mirror_in_later_runs(tmp_path, small_photo, tiny_config):
    a = small_photo(tmp_path / "2023" / "Camera" / "IMG_1.png")
    b = small_photo(tmp_path / "2024" / "Camera" / "IMG_1.png", index=1)
    out = tmp_path / "out"
    first = batch.run(batch.plan([a.parent, b.parent], out), out, tiny_config)
    assert first.counts[PROTECTED] == 2
    assert (out / "Camera (2)" / "IMG_1.png").is_file()
    # 2024 alone, or the two the other way round: each folder into its own mirror
    [later] = batch.plan([b.parent], out)
    assert later.dst == out / "Camera (2)" / "IMG_1.png"
    swapped = batch.plan([b.parent, a.parent], out)
    assert [i.dst for i in swapped] == [out / "Camera (2)" / "IMG_1.png",
                                        out / "Camera" / "IMG_1.png"]
    again = batch.run(swapped, out, tiny_config)
    assert [i.message for i in again.items] == [batch.ALREADY_DONE] * 2
    # a third folder of that name takes the next free one
    c = small_photo(tmp_path / "2025" / "Camera" / "IMG_1.png", index=2)
    [third] = batch.plan([c.parent], out)
    assert third.dst == out / "Camera (3)" / "IMG_1.png"


def test_a_mirror_made_before_mirrors_were_recorded_is_still_the_folders_own(
        tmp_path, small_photo, tiny_config):
    """A record from a cloak before 30 Nov lists the copies in `out/Camera/` but has no
    "folders": the rerun took `Camera/` for a folder of the user's own and protected
    every photo again into `Camera (2)/`, saying nothing. Now a mirror whose recorded
    copies were made from this folder's photos is its own (and recorded from then on);
    another folder of that name still gets `Camera (2)`."""
    photo = small_photo(tmp_path / "2023" / "Camera" / "IMG_1.png")
    small_photo(tmp_path / "2023" / "Camera" / "sub" / "IMG_2.png", index=1)
    out = tmp_path / "out"
    first = batch.run(batch.plan([photo.parent], out), out, tiny_config)
    assert first.counts[PROTECTED] == 2
    record = json.loads((out / MANIFEST_NAME).read_text())
    del record["folders"]  # as the older cloak wrote it
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    other = small_photo(tmp_path / "2024" / "Camera" / "IMG_1.png", index=2)
    [theirs] = batch.plan([other.parent], out)
    assert theirs.dst == out / "Camera (2)" / "IMG_1.png"
    again = batch.run(batch.plan([photo.parent], out), out, tiny_config)
    assert [i.message for i in again.items] == [batch.ALREADY_DONE] * 2
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "Camera"]
    # a newer run's record of another folder does not hide the older mirror
    shots = small_photo(tmp_path / "Screenshots" / "s.png", index=4).parent
    assert batch.run(batch.plan([shots], out), out, tiny_config).counts[PROTECTED] == 1
    assert set(json.loads((out / MANIFEST_NAME).read_text())["folders"]) == {"Screenshots"}
    again = batch.run(batch.plan([photo.parent], out), out, tiny_config)
    assert [i.message for i in again.items] == [batch.ALREADY_DONE] * 2
    small_photo(photo.parent / "IMG_3.png", index=3)  # a photo added: a run that saves
    added = batch.run(batch.plan([photo.parent], out), out, tiny_config)
    assert added.counts[PROTECTED] == 1 and (out / "Camera" / "IMG_3.png").is_file()
    assert json.loads((out / MANIFEST_NAME).read_text())["folders"] == {
        "Camera": os.path.realpath(photo.parent), "Screenshots": os.path.realpath(shots)}


def test_an_older_runs_second_mirror_of_a_name_is_still_its_folders(
        tmp_path, small_photo, tiny_config):
    """An older cloak made `Camera/` and `Camera (2)/` for 2023/Camera and 2024/Camera
    and recorded no mirrors: 2024/Camera alone went to `Camera (3)/`."""
    a = small_photo(tmp_path / "2023" / "Camera" / "IMG_1.png")
    b = small_photo(tmp_path / "2024" / "Camera" / "IMG_1.png", index=1)
    out = tmp_path / "out"
    assert batch.run(batch.plan([a.parent, b.parent], out), out,
                     tiny_config).counts[PROTECTED] == 2
    record = json.loads((out / MANIFEST_NAME).read_text())
    del record["folders"]
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    [later] = batch.plan([b.parent], out)
    assert later.dst == out / "Camera (2)" / "IMG_1.png"
    [first] = batch.plan([a.parent], out)
    assert first.dst == out / "Camera" / "IMG_1.png"


@pytest.mark.parametrize("recorded", ["../backup", "/tmp/elsewhere", "a/b", "..", ""])
def test_a_manifest_can_not_send_a_mirror_outside_out(tmp_path, small_photo, recorded):
    """A manifest edited, or brought along with a copied output folder, names a folder's
    mirror outside OUT: that record is ignored and the folder mirrors inside OUT."""
    photo = small_photo(tmp_path / "Camera" / "IMG_1.png")
    out = tmp_path / "out"
    out.mkdir()
    real = os.path.realpath(photo.parent)
    (out / MANIFEST_NAME).write_text(json.dumps({"folders": {recorded: real}}))
    [item] = batch.plan([photo.parent], out)
    assert item.dst == out / "Camera" / "IMG_1.png"


class TestSecondReview:
    def test_a_new_original_under_a_listed_name_is_protected(self, tmp_path, small_photo,
                                                             tiny_config):
        """A folder once used as --out: a file there that is no longer the copy cloak
        wrote (another camera's IMG_0001 took its name), and a new photo in a mirror
        folder, are the user's photos, not skipped as cloak's copies."""
        pictures = tmp_path / "Pictures"
        first = batch.run(batch.plan([small_photo(tmp_path / "IMG_0001.png"),
                                      small_photo(tmp_path / "trip" / "a.png", index=1)],
                                     pictures), pictures, tiny_config)
        assert first.counts[PROTECTED] == 2
        replaced = small_photo(pictures / "IMG_0001.png", index=2)  # a new original
        added = small_photo(pictures / "trip" / "b.png", index=3)  # in a mirror folder
        items = batch.plan([pictures], tmp_path / "p")
        assert sorted(i.src for i in items if i.status == "pending") == sorted(
            [replaced, added])
        [note] = [i for i in items if i.status == SKIPPED]
        assert "its 1 protected copy is" in note.message  # trip/a.png, still cloak's

    def test_a_source_edited_in_place_with_its_size_and_time_kept_is_not_done(
            self, tmp_path, small_photo, tiny_config):
        """`exiftool -P` edits a photo in place and keeps its size and mtime; the ctime
        still moves, so the rerun does not call it already protected."""
        with Image.open(small_photo(tmp_path / "a.png")) as im:
            im.convert("RGB").save(tmp_path / "a.bmp")  # uncompressed: edit one byte
        src, out = tmp_path / "a.bmp", tmp_path / "out"
        assert batch.run(batch.plan([src], out), out, tiny_config).counts[PROTECTED] == 1
        before = src.stat()
        data = bytearray(src.read_bytes())
        data[-1] ^= 0xFF
        time.sleep(0.01)
        src.write_bytes(bytes(data))
        os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert src.stat().st_size == before.st_size and src.stat().st_ctime_ns != \
            before.st_ctime_ns
        [item] = batch.run(batch.plan([src], out), out, tiny_config).items
        assert item.status == FAILED and "an earlier version of this one" in item.message

    def test_an_output_that_cant_be_checked_fails_alone(self, tmp_path, small_photo,
                                                        tiny_config):
        """A name of 250 bytes: its preview's name is too long for the disk, and checking
        it raises (ENAMETOOLONG); that photo fails, the others are still done."""
        long_name = small_photo(tmp_path / "in" / ("a" * 246 + ".png"))
        other = small_photo(tmp_path / "in" / "b.png", index=1)
        out = tmp_path / "out"
        batch.run(batch.plan([long_name], out), out, tiny_config)
        result = batch.run(batch.plan([long_name, other], out), out,
                           tiny_config.replace(preview=True))
        statuses = {i.src.name: (i.status, i.message) for i in result.items}
        assert statuses["b.png"][0] == PROTECTED
        assert statuses[long_name.name][0] == FAILED
        assert "can't check its output" in statuses[long_name.name][1]


def test_a_copy_written_by_a_worker_that_then_died_is_redone_not_refused(
        tmp_path, small_photo, tiny_config):
    """--jobs: the system kills one worker and the pool ends the others, one of them just
    after it saved its copy. The next run redoes that photo (its copy carries cloak's
    note) instead of refusing the file as not cloak's; a stranger's file is refused. The
    same when a stop sent to the whole process group ends the workers."""
    import concurrent.futures.process as cfp
    import threading

    photo = small_photo(tmp_path / "a.png")
    made = tmp_path / "made"
    batch.run(batch.plan([photo], made), made, tiny_config)  # a copy as a worker writes it
    out = tmp_path / "out"
    for written, expected in ((made / "a.png", PROTECTED), (photo, FAILED)):
        [item] = batch.plan([photo], out)
        manifest = Manifest(out)
        batch._begin(item, manifest, tiny_config.fingerprint())
        item.dst.write_bytes(written.read_bytes())
        died = batch._lost_worker(cfp.BrokenProcessPool("a child process terminated"),
                                  threading.Event())
        # a Ctrl-C the run saw before passing it on: the photo is cancelled, not failed
        assert isinstance(batch._lost_worker(cfp.BrokenProcessPool("x"), threading.Event(),
                                             lambda: True), Cancelled)
        batch._finish(item, manifest, None, died)
        assert item.status == FAILED and "worker process died" in item.message
        [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
        assert item.status == expected, item.message
        if expected == FAILED:
            assert "may not be cloak's" in item.message
            assert item.dst.read_bytes() == photo.read_bytes()
        (out / "a.png").unlink()
        (out / MANIFEST_NAME).unlink()
    # a stop sent to the whole process group (systemd, Slurm) ends the workers as the run
    # stops: the photo is cancelled, and the copy one had written is still cloak's
    [item] = batch.plan([photo], out)
    manifest = Manifest(out)
    batch._begin(item, manifest, tiny_config.fingerprint())
    item.dst.write_bytes((made / "a.png").read_bytes())
    stopped = threading.Event()
    stopped.set()
    batch._finish(item, manifest, None, batch._lost_worker(
        cfp.BrokenProcessPool("a child process terminated"), stopped))
    assert item.status == CANCELLED
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert item.status == PROTECTED, item.message


def test_workers_end_when_the_cli_is_killed(tmp_path, small_photo, model_dir):
    """`kill -9` (or `timeout`) on `cloak protect --jobs 2`: its worker processes end too,
    instead of finishing a photo into a folder no run holds and then waiting forever."""
    import subprocess
    import sys

    photos = [small_photo(tmp_path / "in" / f"{n}.png", size=(128, 96), index=n)
              for n in range(4)]
    cli_run = subprocess.Popen(
        [sys.executable, "-m", "cloak", "protect", *map(str, photos), "--out",
         str(tmp_path / "out"), "--strength", "fast", "--steps", "400", "--models", "taesd",
         "--no-measure", "--jobs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        found = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == cli_run.pid:  # the parent pid
                found.append(int(stat_file.parent.name))
        return found

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (tmp_path / "out").is_dir():
            time.sleep(0.2)
        time.sleep(3)  # the workers are up (the pool starts with the first photo)
        workers = children()
        assert len(workers) >= 2, workers  # the pool's workers (and its resource tracker)
    finally:
        cli_run.kill()
        cli_run.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and
                                              "Z" not in _state(pid) for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    # the resource tracker exits by itself once its pipe closes; workers by their watch
    assert alive == [], alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_run_that_made_out_first_keeps_its_manifest(tmp_path, small_photo, tiny_config,
                                                      monkeypatch):
    """Two runs into one new --out: B starts before OUT exists; while B loads its models,
    A makes OUT, protects its photo and writes the manifest. B then takes the lock and
    keeps A's entry, instead of saving its own manifest over it (A's copy would then read
    as "not made by cloak")."""
    out = tmp_path / "out"
    photo_a = small_photo(tmp_path / "a" / "a.png")
    photo_b = small_photo(tmp_path / "b" / "b.png", index=1)
    real_preload = batch.preload_models
    ran_a = []

    def preload_while_a_runs(config, progress=None):
        real_preload(config, progress)
        if not ran_a:  # run A, whole, between B's planning and B's first write
            ran_a.append(None)  # A's own preload comes back here: only once
            ran_a[0] = batch.run(batch.plan([photo_a], out), out, tiny_config)

    monkeypatch.setattr(batch, "preload_models", preload_while_a_runs)
    result_b = batch.run(batch.plan([photo_b], out), out, tiny_config)
    assert ran_a[0].counts[PROTECTED] == 1 and result_b.counts[PROTECTED] == 1
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert set(manifest["photos"]) == {"a.png", "b.png"}
    monkeypatch.setattr(batch, "preload_models", real_preload)
    again = batch.run(batch.plan([photo_a, photo_b], out), out, tiny_config)
    assert [i.status for i in again.items] == [SKIPPED, SKIPPED]  # both known as done


def test_a_chmod_or_restore_costs_one_hash_not_one_per_run(tmp_path, small_photo,
                                                           tiny_config, monkeypatch):
    """The ctime moves on chmod (or a restore from a backup) without the file changing:
    the next run hashes it once, finds it unchanged, skips it, and records the new
    times, so the run after that hashes nothing."""
    src, out = small_photo(tmp_path / "a.png"), tmp_path / "out"
    assert batch.run(batch.plan([src], out), out, tiny_config).counts[PROTECTED] == 1
    time.sleep(0.01)
    for path in (src, out / "a.png"):
        os.chmod(path, 0o600)
    hashed = []
    real_sha = manifest_module.sha256_of
    monkeypatch.setattr(manifest_module, "sha256_of", lambda path: hashed.append(path) or real_sha(path))
    for expected in ({src, out / "a.png"}, set()):
        hashed.clear()
        [item] = batch.run(batch.plan([src], out), out, tiny_config).items
        assert item.status == SKIPPED, item.message
        assert set(hashed) == expected


def test_workers_start_with_ctrl_c_ignored():
    """A process started inside the guard (as --jobs workers are, by spawn) begins with
    Ctrl-C ignored, inherited through exec, so it can't be interrupted while it imports
    torch; SIGTERM keeps its default there (the pool ends a broken pool's workers with
    it). Afterwards the run's own handler is back."""
    import signal
    import subprocess
    import sys

    before = signal.getsignal(signal.SIGINT)
    term_ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # as pytest started
    probe = ("import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "
             "signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)")
    with batch._children_ignore_ctrl_c():
        inside = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                text=True, check=True).stdout.split()
    assert inside == ["True", str(term_ignored)]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_pending_copy_in_a_folder_once_used_as_out_is_still_skipped(tmp_path, small_photo,
                                                                      tiny_config):
    """A run killed right after writing a copy leaves its entry pending, with no record
    of the written file: the copy there is still cloak's, not an original."""
    pictures = tmp_path / "Pictures"
    batch.run(batch.plan([small_photo(tmp_path / "a.png")], pictures), pictures, tiny_config)
    manifest = json.loads((pictures / MANIFEST_NAME).read_text())
    entry = manifest["photos"]["a.png"]
    entry["state"] = "pending"
    entry.pop("dst")
    (pictures / MANIFEST_NAME).write_text(json.dumps(manifest))
    items = batch.plan([pictures], tmp_path / "p")
    assert [i.status for i in items] == [SKIPPED]
    assert "its 1 protected copy is" in items[0].message


@pytest.mark.parametrize("jobs", [2, 1])
def test_a_workers_warning_names_its_photo(tmp_path, small_photo, tiny_config, capfd,
                                           caplog, jobs):
    """With --jobs, warnings from several worker processes interleave: each names the
    photo it is about (Pillow's warning on a malformed EXIF block here), and goes to the
    parent, which prints it as its own (above the progress bar, names escaped), not
    straight onto the terminal from the worker. With one job (the default) too: one line
    naming the photo, not Python's two naming Pillow's source file. cloak's own warnings
    too (an unreadable XMP packet), which named no photo with one job, and said twice."""
    from cloak.naming import name_photos

    name_photos(caplog.handler)  # as the CLI's handlers are given it
    good = small_photo(tmp_path / "in" / "good.png")
    odd = tmp_path / "in" / "odd.jpg"
    with Image.open(small_photo(tmp_path / "odd.png", index=1)) as im:
        im.convert("RGB").save(odd, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    broken_xmp = tmp_path / "in" / "xmp.png"
    with Image.open(small_photo(tmp_path / "xmp_src.png", index=2)) as im:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'>")
        im.save(broken_xmp, pnginfo=info)
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = batch.run(batch.plan([good, odd, broken_xmp], out), out, tiny_config,
                           jobs=jobs)
    assert result.counts[PROTECTED] == 3
    [record] = [r for r in caplog.records if "Corrupt EXIF" in r.getMessage()]
    assert record.levelname == "WARNING" and record.name.startswith("cloak.")
    assert record.getMessage().startswith(f"{odd}: "), record.getMessage()
    assert "\n" not in record.getMessage()  # one line (a captured warning adds its source)
    assert "Corrupt EXIF" not in capfd.readouterr().err  # not from the worker itself
    [xmp] = [r.getMessage() for r in caplog.records if "XMP" in r.getMessage()]
    assert xmp.startswith(f"{broken_xmp}: ignoring unreadable XMP packet"), xmp


@pytest.mark.parametrize("jobs", [2, 1])
def test_an_unreadable_photo_fails_without_pillows_warnings(tmp_path, small_photo,
                                                            tiny_config, caplog, jobs):
    """A few bytes named .tif (a TIFF header and no more): Pillow warns "Corrupt EXIF
    data" and then can't read it; its failure alone is said, not the warning above it."""
    fake = tmp_path / "in" / "fake.tif"
    fake.parent.mkdir()
    fake.write_bytes(b"II*\x00hello, no tiff here")
    good = small_photo(tmp_path / "in" / "good.png")
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = batch.run(batch.plan([fake, good], out), out, tiny_config, jobs=jobs)
    assert result.counts[PROTECTED] == 1 and result.counts[FAILED] == 1
    [failed] = [i for i in result.items if i.status == FAILED]
    assert "is named .tif but is not an image cloak can read" in failed.message
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


def test_running_out_of_memory_is_said_in_plain_words():
    """torch's CPU allocator failing (a real one: 400 TB asked for) is a RuntimeError
    without "out of memory" in it: the photo's line says what happened and what to try,
    not "unexpected error ... please report it"."""
    import torch

    from cloak.batch import _describe
    from cloak.errors import is_out_of_memory

    with pytest.raises(RuntimeError) as caught:
        torch.empty(10 ** 14)
    assert is_out_of_memory(caught.value) and is_out_of_memory(MemoryError())
    # the same failure on Windows, in its allocator's words
    assert is_out_of_memory(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: "
        "you tried to allocate 1073741824 bytes."))
    assert _describe(caught.value).startswith("not enough memory to protect this photo")
    assert "--strength fast" not in _describe(caught.value)  # it needs as much as medium
    on_gpu = _describe(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert on_gpu.startswith("not enough GPU memory") and "--device cpu" in on_gpu
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert "please report it" in _describe(RuntimeError("shape mismatch"))


def test_a_ctrl_c_while_a_written_copy_is_synced_keeps_it_as_cloak_s(
        tmp_path, small_photo, tiny_config, monkeypatch):
    """A second Ctrl-C in the folder sync just after the copy is renamed into place: the
    copy is cloak's, and the next run redoes it instead of refusing it as "not made by
    cloak"."""
    from cloak import atomic

    photo, out = small_photo(tmp_path / "a.png"), tmp_path / "out"
    real_publish, real_sync, published = atomic._publish, atomic._fsync_folder, []

    def publish(temp, dst, overwrite):
        real_publish(temp, dst, overwrite)
        published.append(Path(dst).name)

    def sync(folder):
        if published[-1:] == ["a.png"]:  # the photo's own sync, not the record's
            published.append("interrupted")
            raise KeyboardInterrupt
        real_sync(folder)

    monkeypatch.setattr(atomic, "_publish", publish)
    monkeypatch.setattr(atomic, "_fsync_folder", sync)
    assert batch.run(batch.plan([photo], out), out, tiny_config).interrupted
    assert "interrupted" in published and (out / "a.png").exists()
    monkeypatch.undo()
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert item.status == PROTECTED, item.message


def test_a_file_without_a_note_at_a_killed_runs_name_is_not_taken_for_cloaks(
        tmp_path, small_photo, tiny_config):
    """A run killed before it recorded its copy leaves the entry pending. A BMP (or a
    --no-ai-notice copy) carries no note, so the entry was trusted: a BMP of the user's
    put at that name since was replaced without --overwrite. Neither is taken for
    cloak's now; the file there is kept, and the photo fails with the way to redo it."""
    photo, out = small_photo(tmp_path / "in" / "p.bmp"), tmp_path / "out"
    batch.run(batch.plan([photo], out), out, tiny_config)
    record = json.loads((out / MANIFEST_NAME).read_text())
    entry = record["photos"]["p.bmp"]
    entry["state"] = "pending"  # as a kill between the copy's rename and its record
    entry.pop("dst")
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    mine = small_photo(tmp_path / "mine.bmp", index=1).read_bytes()
    (out / "p.bmp").write_bytes(mine)  # the user's own file, put there since
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert item.status == FAILED and "--overwrite" in item.message, item.message
    assert (out / "p.bmp").read_bytes() == mine
    old_copy = {"size": 1, "mtime_ns": 1, "ctime_ns": 1, "sha256": "0" * 64}
    no_notes = {"dst": old_copy, "settings": {"metadata": {"cloak_note": False}}}
    assert not pending_is_ours(out / "p.bmp", no_notes)
    assert not pending_is_ours(out / "p.bmp", {"dst": old_copy, "settings": {}})
    # to skip, though, it may be cloak's copy: never protected again as a photo (two
    # layers of noise), from OUT named as an input, or by the app's walk
    items = batch.plan([out], tmp_path / "again")
    assert [i.status for i in items] == [SKIPPED], [(i.src, i.message) for i in items]
    assert items[0].message.startswith("its 1 protected copy is skipped")
    from cloak.gui.paths import expand_paths

    assert expand_paths([out]) == [] and expand_paths([out / "p.bmp"]) == []


def test_a_drive_or_share_root_gets_a_mirror_name_of_its_own(tmp_path):
    """`cloak protect E:\\ --out C:\\protected` (an SD card): the root has no name, and ""
    was recorded and then refused as no plain name, so the next run redid every photo into
    " (2)". A root is named from its drive or share."""
    from pathlib import PurePosixPath, PureWindowsPath

    assert root_mirror_name(PureWindowsPath("E:\\")) == "E"
    assert root_mirror_name(PureWindowsPath("\\\\server\\share\\")) == "server-share"
    assert root_mirror_name(PurePosixPath("/")) == "root"
    assert root_mirror_name(PurePosixPath("/home/u/Pictures")) == "Pictures"
    out = tmp_path / "out"
    assert Mirrors({}, out).name_for("/") == "root"
    assert Mirrors({"root": "/"}, out).name_for("/") == "root"  # the next run


def test_a_read_only_out_is_checked_by_a_rerun_and_refused_only_with_work(
        tmp_path, small_photo, tiny_config, read_only_folder, monkeypatch):
    """A finished OUT on a drive remounted read-only: the same command again says the
    photos are done (it failed before on the lock file, exit 1); asked to redo them, it
    is refused once, naming the folder."""
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert item.status == PROTECTED
    read_only_folder(out)
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)

    def no_models(*args, **kwargs):  # refused before any model is loaded or fetched
        raise AssertionError("models loaded for a run that can't write")

    monkeypatch.setattr(batch, "preload_models", no_models)
    with pytest.raises(CloakError) as refused:
        batch.run(batch.plan([photo], out), out, tiny_config, force=True)
    assert str(refused.value) == f"can't write to output folder {out}: Permission denied"


def test_a_run_that_started_before_another_made_out_takes_its_copies_as_done(
        tmp_path, small_photo, tiny_config, monkeypatch):
    """Two runs into a new --out started together: B began while OUT did not exist, and A
    made it and protected the photos while B loaded its models. B, once it holds the
    lock, finds them done (they failed as "already exists"), and refuses where A mirrors
    another folder under a name B uses."""
    camera = tmp_path / "a" / "Camera"
    small_photo(camera / "IMG_1.png")
    real_preload = batch.preload_models

    def other_run_meanwhile(out: Path, photos: Path):
        def preload(*args, **kwargs):
            monkeypatch.setattr(batch, "preload_models", real_preload)  # A's own: real
            assert batch.run(batch.plan([photos], out), out, tiny_config).counts[
                PROTECTED] == 1
            return real_preload(*args, **kwargs)
        monkeypatch.setattr(batch, "preload_models", preload)

    out = tmp_path / "out"
    other_run_meanwhile(out, camera)
    [item] = batch.run(batch.plan([camera], out), out, tiny_config).items  # B
    assert (item.status, item.message) == (SKIPPED, batch.ALREADY_DONE)
    other = tmp_path / "b" / "Camera"  # another folder of the same name
    small_photo(other / "IMG_1.png", index=1)
    out2 = tmp_path / "out2"
    other_run_meanwhile(out2, camera)
    with pytest.raises(CloakError, match=r"mirroring .*a/Camera there as Camera; run this"):
        batch.run(batch.plan([other], out2), out2, tiny_config)
    assert json.loads((out2 / ".cloak-manifest.json").read_text())["folders"] == {
        "Camera": str(camera)}


def test_a_run_that_writes_nothing_leaves_no_folder_it_made(tmp_path, small_photo,
                                                            tiny_config):
    """Every photo fails, or the run is stopped before its first copy: the folders the
    run made for --out (OUT and a missing parent) go again, instead of a folder that
    holds only an empty record. A folder that was there before keeps what it had, with
    no empty record added (one already there stays), and a run that writes a copy keeps
    OUT."""
    bad = tmp_path / "in" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a photo")
    out = tmp_path / "new" / "out"
    result = batch.run(batch.plan([bad], out), out, tiny_config)
    assert result.counts[FAILED] == 1
    assert not (tmp_path / "new").exists() and bad.read_bytes() == b"not a photo"
    there = tmp_path / "there"
    (there / "mine").mkdir(parents=True)
    assert batch.run(batch.plan([bad], there), there, tiny_config).counts[FAILED] == 1
    assert os.listdir(there) == ["mine"]  # and no empty record beside it
    empty = tmp_path / "empty"  # named through a folder that is not there: OUT exists
    empty.mkdir()
    through = tmp_path / "missing" / ".." / "empty"
    assert batch.run(batch.plan([bad], through), through, tiny_config).counts[FAILED] == 1
    assert empty.is_dir()
    good = small_photo(tmp_path / "in" / "good.png")
    todo = []  # stopped once OUT is made (the "todo" event), before the first photo
    stopped = batch.run(batch.plan([good], out), out, tiny_config,
                        on_event=lambda e: todo.append(e) if e.kind == "todo" else None,
                        should_stop=lambda: bool(todo))
    assert todo and stopped.interrupted and stopped.counts[CANCELLED] == 1
    assert not (tmp_path / "new").exists()
    result = batch.run(batch.plan([bad, good], out), out, tiny_config)
    assert result.counts[PROTECTED] == 1 and (out / "good.png").is_file()
    assert set(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == {"good.png"}
    # OUT's record from that run stays when a later run writes nothing
    assert batch.run(batch.plan([bad], out), out, tiny_config).counts[FAILED] == 1
    assert set(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == {"good.png"}


def test_a_folders_mirror_made_for_a_copy_never_written_goes_too(tmp_path, small_photo,
                                                                  tiny_config):
    """A folder given as the input: its mirror under OUT is made before its first photo's
    attack, and stayed (empty, with the record beside it, so OUT stayed too) when that
    photo failed or the run was stopped during it. It goes now, and OUT with it where the
    run made OUT; a mirror that holds a copy stays."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "bad.png").write_bytes(b"not a photo")  # fails when protected
    out = tmp_path / "out"
    result = batch.run(batch.plan([folder], out), out, tiny_config)
    assert result.counts[FAILED] == 1
    assert not out.exists()
    there = tmp_path / "there"  # OUT there before the run: it stays, as it was
    (there / "mine").mkdir(parents=True)
    assert batch.run(batch.plan([folder], there), there, tiny_config).counts[FAILED] == 1
    assert os.listdir(there) == ["mine"]
    (folder / "sub" / "bad.png").unlink()
    small_photo(folder / "sub" / "good.png")
    started = []  # stopped during the photo's attack, after its folder was made
    stopped = batch.run(batch.plan([folder], out), out, tiny_config,
                        on_event=lambda e: started.append(e) if e.kind == "start" else None,
                        should_stop=lambda: bool(started))
    assert started and stopped.counts[CANCELLED] == 1
    assert not out.exists()
    small_photo(folder / "other" / "good.png")
    (folder / "other" / "bad.png").write_bytes(b"not a photo")
    (folder / "worse").mkdir()
    (folder / "worse" / "bad.png").write_bytes(b"not a photo")
    result = batch.run(batch.plan([folder], out), out, tiny_config)
    assert result.counts == {PROTECTED: 2, FAILED: 2, SKIPPED: 0, CANCELLED: 0}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        MANIFEST_NAME, "in", "in/other", "in/other/good.png", "in/sub", "in/sub/good.png"]


def test_a_mirror_removed_again_gives_up_its_name_in_the_record(tmp_path, small_photo,
                                                                tiny_config):
    """OUT keeps its record (it lists a copy), and a folder input whose photos all failed
    had its mirror removed: the record still named that mirror, so a folder the user made
    later at that name was written into as cloak's own. The name is given up with it."""
    out = tmp_path / "out"
    assert batch.run(batch.plan([small_photo(tmp_path / "one.png")], out), out,
                     tiny_config).counts[PROTECTED] == 1
    folder = tmp_path / "A" / "in"
    folder.mkdir(parents=True)
    (folder / "bad.png").write_bytes(b"not a photo")
    assert batch.run(batch.plan([folder], out), out, tiny_config).counts[FAILED] == 1
    assert not (out / "in").exists()
    record = json.loads((out / MANIFEST_NAME).read_text())
    assert "in" not in record.get("folders", {})
    # the run left the record whole: the version a cloak from before the journal reads
    assert record["version"] == Manifest.VERSION and not (out / JOURNAL_NAME).exists()
    mine = small_photo(out / "in" / "mine.png", index=2)  # the user's own, made since
    (folder / "bad.png").unlink()
    small_photo(folder / "good.png")
    [item] = batch.run(batch.plan([folder], out), out, tiny_config).items
    assert item.status == PROTECTED and item.dst == out / "in (2)" / "good.png"
    assert sorted(p.name for p in (out / "in").iterdir()) == [mine.name]


def test_a_file_put_in_a_new_out_during_a_run_that_writes_nothing_keeps_it(tmp_path,
                                                                          tiny_config):
    """Another program (or the user) saves a file into the OUT this run made while its
    photos fail: OUT, its record and that file stay."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    out = tmp_path / "out"

    def on_event(event):
        if event.kind == "done" and event.item.status == FAILED:
            (out / "theirs.txt").write_text("keep me")

    result = batch.run(batch.plan([bad], out), out, tiny_config, on_event=on_event)
    assert result.counts[FAILED] == 1
    assert (out / "theirs.txt").read_text() == "keep me" and (out / MANIFEST_NAME).is_file()


def progress_at(config, point: float, pixels: int = 64 * 48) -> float:
    """The fraction protect_file reports at `point` of the work after its attack
    (cloak.api.SAVED_AT: saving; MEASURING_SAVED_AT: a lossy copy measured), for a photo
    of `pixels` (small_photo's default 64x48)."""
    return after_attack(attack_share(config.steps, pixels), point)


def test_a_lone_photo_of_a_jobs_run_gets_a_workers_threads(tmp_path, small_photo,
                                                            tiny_config, monkeypatch):
    """--jobs N gives each photo cores/N torch threads; a run with one photo to do (or
    resumed with one left) ran it here with all of them, and the thread count changes a
    copy's bytes (64% of a photo's pixels after fast's 4 steps): the same command gave
    other bytes by batch size. The lone photo gets cores/N now; the count is put back."""
    import torch

    monkeypatch.setattr(batch, "usable_cores", lambda: 4)
    seen = []
    protect_one = batch._protect_one

    def counting(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return protect_one(*args, **kwargs)

    monkeypatch.setattr(batch, "_protect_one", counting)
    before = torch.get_num_threads()
    photo = small_photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = batch.run(batch.plan([photo], out), out, tiny_config, jobs=4)
    assert result.counts[PROTECTED] == 1
    assert seen == [1] and torch.get_num_threads() == before
    seen.clear()
    batch.run(batch.plan([small_photo(tmp_path / "in" / "b.png")], out), out, tiny_config)
    assert seen == [before]  # one job: the process's own count, unchanged


def test_batch_run_from_python_names_the_photo_of_pillows_warning(tmp_path, small_photo,
                                                                   tiny_config, caplog):
    """A program calling batch.run with its own logging (no NamePhoto filter on its
    handlers) got Pillow's warning without the photo's name after cloak/naming.py took
    over; the caught warning is named where it is logged, once."""
    from cloak.naming import name_photos

    odd = tmp_path / "in" / "odd.jpg"
    odd.parent.mkdir()
    with Image.open(small_photo(tmp_path / "odd.png")) as im:
        im.convert("RGB").save(odd, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        batch.run(batch.plan([odd], out), out, tiny_config)
    [line] = [r.getMessage() for r in caplog.records if "Corrupt EXIF" in r.getMessage()]
    assert line.startswith(f"{odd}: Corrupt EXIF")
    name_photos(caplog.handler)  # the CLI's handlers: still named once
    caplog.clear()
    with caplog.at_level("WARNING"):
        batch.run(batch.plan([odd], tmp_path / "again"), tmp_path / "again", tiny_config)
    [line] = [r.getMessage() for r in caplog.records if "Corrupt EXIF" in r.getMessage()]
    assert line.startswith(f"{odd}: Corrupt EXIF") and line.count(str(odd)) == 1


@pytest.mark.parametrize("damage", ["newer", "cut", "nested"])
def test_an_earlier_output_folder_with_an_unusable_record_is_not_protected_again(
        tmp_path, small_photo, tiny_config, damage):
    """A BMP copy carries no cloak note: only its folder's record tells it from the
    user's photos. With that record from a newer cloak, cut short (a sync client), or
    nested too deep to parse (which raised RecursionError), the copy was protected again
    (a second layer of noise), found in a folder, as the folder named, or named alone."""
    photo = tmp_path / "src" / "x.bmp"
    with Image.open(small_photo(tmp_path / "x.png")) as im:
        photo.parent.mkdir()
        im.save(photo)
    earlier = tmp_path / "P"
    assert batch.run(batch.plan([photo], earlier), earlier, tiny_config).counts[PROTECTED] == 1
    record = earlier / MANIFEST_NAME
    text = record.read_text()
    if damage == "newer":
        data = json.loads(text)
        data["version"] = 3
        record.write_text(json.dumps(data))
    elif damage == "cut":
        record.write_text(text[:len(text) // 2])
    else:
        record.write_text('{"version": 1, "photos": ' + "[" * 5000 + "]" * 5000 + "}")
    before = record.read_bytes()
    copy = earlier / "x.bmp"
    for inputs in ([tmp_path], [earlier], [copy]):
        items = batch.plan(inputs, tmp_path / "again")
        assert not any(i.status == "pending" and i.src == copy for i in items), inputs
        assert any(i.status == SKIPPED and "can't be told from" in i.message for i in items)
    assert record.read_bytes() == before  # an earlier folder's record is left as it was


def test_odd_records_are_read_without_a_crash_a_hang_or_silence(tmp_path, small_photo,
                                                                  tiny_config, caplog):
    """A name with a NUL in an OUT's record raised ValueError ("embedded null byte") out
    of plan(); a FIFO at the record's name blocked the run forever; a record without a
    version was set aside without a word (every copy then "not made by cloak")."""
    import threading

    out = tmp_path / "out"
    photo = small_photo(tmp_path / "in" / "a.png")
    assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
    record = out / MANIFEST_NAME
    data = json.loads(record.read_text())
    [entry] = data["photos"].values()
    data["photos"]["in/x\u0000.png"] = entry
    record.write_text(json.dumps(data))
    items = batch.plan([out, photo], tmp_path / "next")
    assert {i.src.name for i in items if i.status == "pending"} == {"a.png"}

    del data["version"]
    record.write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="cloak.manifest"):
        assert manifest_module.Manifest(out).found == ("unreadable", "record version None")
    assert f"cloak's record {record} can't be read (record version None); the copies " \
        "already in that folder can't be recognised as cloak's" in caplog.text

    record.unlink()
    os.mkfifo(record)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(manifest_module.Manifest(out).found),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive() and seen == [("unreadable", "not a regular file")]


def test_a_folder_or_link_at_the_lock_name_is_named(tmp_path, small_photo, tiny_config):
    """A folder (or a symlink) where OUT's lock file goes said "can't write to output
    folder OUT: Is a directory" of a writable folder, never naming the lock file."""
    photo = small_photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    (out / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(CloakError, match=r"its lock file .*\.cloak-lock is a folder; "
                                         r"remove it"):
        batch.run(batch.plan([photo], out), out, tiny_config)
    (out / LOCK_NAME).rmdir()
    (out / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CloakError, match=r"\.cloak-lock is a symlink; remove it"):
        batch.run(batch.plan([photo], out), out, tiny_config)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("state", ["done", "pending"])
def test_cloaks_earlier_sheet_beside_the_original_is_still_its_own(tmp_path, state):
    """--out the photo's folder: the sheet a first --preview run wrote, kept in the
    record as earlier_preview after a redo without --preview, is cloak's, and asking for
    a preview again redoes the photo; the check for a user's file at the sheet's name
    (now made without --overwrite too) took it for the user's."""
    from cloak.manifest import identity
    from cloak.planning import Item

    src, dst = tmp_path / "a.gif", tmp_path / "a.png"
    Image.new("RGB", (16, 16), "red").save(src)
    Image.new("RGB", (16, 16), "blue").save(dst)
    sheet = tmp_path / "a.png.preview.png"
    Image.new("RGB", (32, 16), "green").save(sheet)
    settings = {"strength": "fast"}
    entry = {"state": state, "src": identity(src), "dst": identity(dst),
             "settings": settings, "earlier_preview": identity(sheet)}
    item = Item(src, dst)
    batch._decide(item, entry, settings, force=False, overwrite=False, preview=True)
    assert item.status == "pending" and item.sheet_stamp is not None, item.message


def test_a_damaged_record_above_blocks_neither_its_own_run_nor_a_later_one(
        tmp_path, small_photo):
    """Pictures holds a damaged record: `cloak protect Pictures/2024 --out Pictures` is
    the run that sets it aside, so its inputs under Pictures are planned; once set
    aside, with a good record written, later runs search Pictures again (the first
    version of this stop's rule refused them forever). A dangling link at a subfolder's
    record name hides nothing above it."""
    pictures = tmp_path / "Pictures"
    a = small_photo(pictures / "2023" / "a.png")
    b = small_photo(pictures / "2024" / "b.png", index=1)
    (pictures / MANIFEST_NAME).write_text('{"version": 1, "photos": {')  # cut short
    items = batch.plan([pictures / "2024"], pictures)
    assert [i.src for i in items if i.status == "pending"] == [b]
    Manifest(pictures).set(pictures / "x.png", None)  # a save: sets it aside, a new record
    assert any(p.name.startswith(f"{MANIFEST_NAME}.unreadable-") for p in pictures.iterdir())
    for inputs in ([pictures], [pictures / "2024"], [b]):
        planned = {i.src for i in batch.plan(inputs, tmp_path / "elsewhere")
                   if i.status == "pending"}
        assert b in planned and (a in planned) == (inputs == [pictures]), inputs


def test_a_photo_the_user_may_not_read_is_said_so(tmp_path, small_photo, tiny_config,
                                                  monkeypatch):
    """A photo of mode 000: its identity was read first, so it failed as "can't read or
    write a.png: Permission denied" (protect_file, and so the app, says "permission
    denied (cannot read the file)"), after its folders were made. Simulated: opening it
    is refused, as for a user who may not read it (CI runs as root)."""
    import builtins

    photo = small_photo(tmp_path / "in" / "sub" / "a.png")
    out = tmp_path / "out"
    items = batch.plan([photo.parent.parent], out)
    real_open = builtins.open

    def refusing(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == photo:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    [item] = batch.run(items, out, tiny_config).items
    assert (item.status, item.message) == (
        FAILED, f"{photo}: permission denied (cannot read the file)")
    assert not (out / "in" / "sub").exists()


def test_a_bad_cloak_max_pixels_is_said_once_as_the_settings(
        tmp_path, small_photo, tiny_config, monkeypatch, caplog):
    """A bad CLOAK_MAX_PIXELS was warned about with the first photo's name in front (it
    is first read while that photo is named), and once more by each --jobs worker."""
    photos = [small_photo(tmp_path / f"{n}.png", index=i) for i, n in enumerate("ab")]
    monkeypatch.setenv("CLOAK_MAX_PIXELS", "abc-jobs")
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = batch.run(batch.plan(photos, out), out, tiny_config, jobs=2)
    assert result.counts[PROTECTED] == 2
    said = [r.getMessage() for r in caplog.records if "CLOAK_MAX_PIXELS" in r.getMessage()]
    assert said == [("ignoring CLOAK_MAX_PIXELS='abc-jobs': not a pixel count (a whole "
                     "number such as 300000000)")]


def test_a_copy_renamed_in_its_output_folder_is_not_protected_again(
        tmp_path, small_photo, tiny_config):
    """A BMP copy (no cloak note) renamed for posting (cup_posted.bmp), and a second
    copy of another made under another name: the record lists each by its size and
    sha256, but only its name was looked at, so both were protected again (a second
    layer of noise) when the output folder was given as photos. A photo of the user's
    of the same size there is still protected."""
    import shutil

    cup = small_photo(tmp_path / "pics" / "cup.bmp")
    small_photo(tmp_path / "pics" / "tea.bmp", index=1)
    out = tmp_path / "out"
    assert batch.run(batch.plan([cup.parent], out), out, tiny_config).counts[PROTECTED] == 2
    (out / "pics" / "cup.bmp").rename(out / "pics" / "cup_posted.bmp")
    shutil.copy(out / "pics" / "tea.bmp", out / "pics" / "tea_insta.bmp")
    mine = small_photo(out / "pics" / "mine.bmp", index=2)  # the user's, the same size
    assert mine.stat().st_size == (out / "pics" / "tea.bmp").stat().st_size
    planned = batch.plan([out], tmp_path / "again")
    assert [i.src.name for i in planned if i.status == "pending"] == ["mine.bmp"]
    [single] = batch.plan([out / "pics" / "cup_posted.bmp"], tmp_path / "again")
    assert single.status == SKIPPED and "record lists it" in single.message


def test_a_dangling_link_at_a_subfolders_record_name_hides_nothing_above(
        tmp_path, small_photo, tiny_config):
    """A BMP copy (no cloak note) in a mirror folder of OUT, whose record lists it; a
    dangling link named like a record in that mirror folder stopped the search for the
    record above, and the copy was planned as a photo of the user's."""
    photo = tmp_path / "src" / "c.bmp"
    photo.parent.mkdir()
    with Image.open(small_photo(tmp_path / "c.png")) as im:
        im.save(photo)
    out = tmp_path / "Out"
    assert batch.run(batch.plan([photo.parent], out), out, tiny_config).counts[PROTECTED] == 1
    [copy] = out.rglob("c.bmp")
    (copy.parent / MANIFEST_NAME).symlink_to(tmp_path / "nowhere")
    [item] = batch.plan([copy], tmp_path / "elsewhere")
    assert item.status == SKIPPED and "the output folder's record lists it" in item.message


def test_a_run_s_sweep_passes_over_a_temp_file_still_being_written(tmp_path, small_photo,
                                                                    model_dir):
    """The desktop app saves into a folder as a `cloak protect` run into that folder
    starts or ends: the run's sweep of leftover temp files removed the app's file in
    the middle of its write, and the app's photo failed after its whole attack ("could
    not write ...: No such file or directory"). A temp file being written is locked and
    passed over; one a killed run left is still removed."""
    import subprocess
    import sys

    from cloak import atomic

    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    killed = out / ".b.png.cloak-tmp-0badf00d"
    killed.write_bytes(b"left by a killed run")
    runs = []

    def write(fp) -> None:
        fp.write(b"half")
        # a whole `cloak protect` run into the folder meanwhile
        runs.append(subprocess.run(
            [sys.executable, "-m", "cloak", "protect", str(photo), "--out", str(out),
             "--strength", "fast", "--steps", "1", "--models", "taesd", "--no-measure",
             "--editor-sizes", "128"], check=False, capture_output=True,
            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}))
        fp.write(b" and whole")

    atomic.write_atomic(out / "c.png", write)
    assert runs[0].returncode == 0 and "1 protected" in runs[0].stderr, runs[0].stderr
    assert (out / "c.png").read_bytes() == b"half and whole"
    assert not killed.exists()
    assert leftovers(out) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_as_a_temp_file_does_not_hang_the_sweep(tmp_path):
    """A FIFO bearing a temp file's name: opening it to see whether a write holds it
    waited for a writer forever (a run hung, deaf to SIGTERM). It is no write's, and is
    swept as before."""
    import subprocess
    import sys

    fifo = tmp_path / ".b.png.cloak-tmp-0badf00d"
    os.mkfifo(fifo)
    script = ("import sys; from pathlib import Path; from cloak import atomic, batch; "
              "print(atomic.in_use(sys.argv[1])); "
              "batch._remove_temp_files(Path(sys.argv[1]).parent)")
    done = subprocess.run(
        [sys.executable, "-c", script, str(fifo)],
        check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    assert not os.path.lexists(fifo)


def test_photos_named_on_two_threads_at_once_leave_pythons_warnings_as_they_were():
    """Two batch runs on two threads (a web service): each photo's catch_warnings swapped
    the process's warning hook, and when they ended out of order the hook left in place
    was a list no one read; every later warning of the host vanished, and one raised
    meanwhile on another thread was named after a photo. Each warning now goes to the
    photo of the thread that raised it; the host's are shown; the hook comes back."""
    import threading
    import warnings

    from cloak.naming import naming

    shown = []

    def host_hook(message, category, filename, lineno, file=None, line=None):
        shown.append(str(message))

    real_hook = warnings.showwarning
    warnings.showwarning = host_hook
    a_in, b_in, a_out, host_warned = (threading.Event() for _ in range(4))
    caught: dict = {}

    def photo_a() -> None:
        with naming("a.jpg"):
            a_in.set()
            b_in.wait(10)
            host_warned.wait(10)
            warnings.warn("a's own")
        a_out.set()

    def photo_b() -> None:
        a_in.wait(10)
        with naming("b.jpg"):
            b_in.set()
            a_out.wait(10)  # a ends first
            warnings.warn("b's own")

    try:
        with pytest.MonkeyPatch.context() as patch:
            logged = []
            patch.setattr("cloak.naming.log.warning",
                          lambda text, photo, message, **_: logged.append((photo, message)))
            threads = [threading.Thread(target=photo_a), threading.Thread(target=photo_b)]
            for thread in threads:
                thread.start()
            b_in.wait(10)
            warnings.warn("the host's, meanwhile")  # on this thread, in no naming()
            host_warned.set()
            for thread in threads:
                thread.join(30)
            caught["logged"] = sorted(logged)
        assert caught["logged"] == [("a.jpg", "a's own"), ("b.jpg", "b's own")]
        assert shown == ["the host's, meanwhile"]
        assert warnings.showwarning is host_hook  # given back
        warnings.warn("the host's, after")
        assert shown == ["the host's, meanwhile", "the host's, after"]
    finally:
        warnings.showwarning = real_hook


class TestJournal:
    """A run appends each photo's entry to OUT's journal rather than rewriting the whole
    record twice a photo (which grew with the square of a long run's photos); every
    reader folds the journal in, so a killed run is recognised as before."""

    @staticmethod
    def entry(n: int) -> dict:
        return {"state": "done", "src": {"size": n, "mtime_ns": n, "sha256": "a" * 64},
                "settings": {"strength": "fast"}}

    def test_a_run_appends_rather_than_rewriting_the_record_each_photo(
            self, tmp_path, small_photo, tiny_config):
        photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(3)]
        out = tmp_path / "out"
        seen = []

        def on_event(event):
            if event.kind == "done":
                record = (out / MANIFEST_NAME).stat()
                seen.append(((record.st_ino, record.st_mtime_ns),
                             (out / JOURNAL_NAME).is_file()))
                # while a journal extends it, a cloak from before the journal refuses it
                # (a newer cloak's record), rather than reading it without the journal
                versions.add(json.loads((out / MANIFEST_NAME).read_text())["version"])

        versions: set[int] = set()
        result = batch.run(batch.plan(photos, out), out, tiny_config, on_event=on_event)
        assert [i.status for i in result.items] == [PROTECTED] * 3
        assert versions == {Manifest.JOURNALED_VERSION}
        assert json.loads((out / MANIFEST_NAME).read_text())["version"] == Manifest.VERSION
        assert len(seen) == 3 and all(journal for _, journal in seen)
        assert len({record for record, _ in seen}) == 1  # not rewritten once a photo
        assert not (out / JOURNAL_NAME).exists()  # folded in as the run ended
        photos_recorded = json.loads((out / MANIFEST_NAME).read_text())["photos"]
        assert sorted(photos_recorded) == ["0.png", "1.png", "2.png"]
        assert {e["state"] for e in photos_recorded.values()} == {"done"}

    def test_a_killed_runs_journal_is_read_with_its_record(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))  # no record yet: written whole
        record.set(out / "b.png", self.entry(2))
        record.set(out / "a.png", None)
        record.set(out / "c.png", self.entry(3))
        assert sorted(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == ["a.png"]
        again = Manifest(out)
        assert sorted(again.entries) == ["b.png", "c.png"]
        assert again.entries["c.png"] == self.entry(3)
        again.set(out / "d.png", self.entry(4))  # appended to the same journal
        assert sorted(Manifest(out).entries) == ["b.png", "c.png", "d.png"]
        again.compact()
        assert not (out / JOURNAL_NAME).exists()
        assert sorted(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == [
            "b.png", "c.png", "d.png"]

    def test_an_app_copy_into_a_finished_runs_folder_marks_the_record_journaled(
            self, tmp_path, small_photo):
        """The app's first copy into a folder a finished run left (its record VERSION)
        was appended to a journal beside that record as it was: the app killed there, a
        cloak from before the journal read the record without the copy, called the copy
        not cloak's and replaced the record, and the copy's entry was lost for good."""
        out = tmp_path / "out"
        out.mkdir()
        Manifest(out).set(out / "a.png", self.entry(1))
        Manifest(out).compact()  # as a run leaves it
        assert json.loads((out / MANIFEST_NAME).read_text())["version"] == Manifest.VERSION
        photos = [small_photo(tmp_path / f"{n}.png", index=n) for n in range(2)]
        copies = [small_photo(out / f"{n}.png", index=n + 5) for n in range(2)]
        for photo, copy in zip(photos, copies):
            assert record_copy(photo, copy, {"strength": "fast"})
            on_disk = json.loads((out / MANIFEST_NAME).read_text())
            assert on_disk["version"] == Manifest.JOURNALED_VERSION
        assert "0.png" in on_disk["photos"] and (out / JOURNAL_NAME).is_file()  # appended
        assert sorted(Manifest(out).entries) == ["0.png", "1.png", "a.png"]
        fold_journal(out)  # as the app's session ends: whole, as VERSION again
        on_disk = json.loads((out / MANIFEST_NAME).read_text())
        assert on_disk["version"] == Manifest.VERSION and not (out / JOURNAL_NAME).exists()
        assert sorted(on_disk["photos"]) == ["0.png", "1.png", "a.png"]

    def two_appended(self, tmp_path: Path, line: bytes) -> Path:
        """OUT with a.png written whole, b.png appended, then `line` as written there."""
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))
        record.set(out / "b.png", self.entry(2))
        with open(out / JOURNAL_NAME, "ab") as journal:
            journal.write(line)
        return out

    def test_a_line_cut_short_by_a_kill_loses_only_itself(self, tmp_path):
        out = self.two_appended(tmp_path, b'\n{"name":"x.png","entry":{"sta')  # killed
        record = Manifest(out)
        record.set(out / "c.png", self.entry(3))
        assert sorted(Manifest(out).entries) == ["a.png", "b.png", "c.png"]

    def test_a_journal_of_another_record_is_ignored(self, tmp_path):
        """One left after the record was rewritten (its removal failed), or one brought
        from another folder, names another record, and changes nothing."""
        out, other = tmp_path / "out", tmp_path / "other"
        for folder in (out, other):
            folder.mkdir()
            Manifest(folder).set(folder / "a.png", self.entry(1))
        Manifest(other).set(other / "b.png", self.entry(2))
        (out / JOURNAL_NAME).write_bytes((other / JOURNAL_NAME).read_bytes())
        (out / MANIFEST_NAME).write_text(
            (out / MANIFEST_NAME).read_text().replace('"size":1', '"size":5'))
        assert sorted(Manifest(out).entries) == ["a.png"]
        assert sorted(Manifest(other).entries) == ["a.png", "b.png"]
        record = Manifest(out)
        record.set(out / "c.png", self.entry(3))  # starts a journal of its own
        assert sorted(Manifest(out).entries) == ["a.png", "c.png"]

    def test_the_record_is_rewritten_once_the_journal_is_as_large(self, tmp_path,
                                                                   monkeypatch):
        monkeypatch.setattr(manifest_module, "JOURNAL_MIN_BYTES", 0)
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        rewrites = 0
        for n in range(40):
            before = (out / MANIFEST_NAME).stat().st_ino if n else None
            record.set(out / f"{n}.png", self.entry(n))
            rewrites += (out / MANIFEST_NAME).stat().st_ino != before
        assert 2 < rewrites < 20  # doubling: about log2(40) + 1, not 40
        assert sorted(Manifest(out).entries, key=lambda k: int(k[:-4])) == [
            f"{n}.png" for n in range(40)]

    def test_a_cached_read_sees_what_was_appended(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        Manifest(out).set(out / "a.png", self.entry(1))
        assert sorted(manifest_module.read_only(out).entries) == ["a.png"]
        Manifest(out).set(out / "b.png", self.entry(2))
        assert sorted(manifest_module.read_only(out).entries) == ["a.png", "b.png"]

    def test_a_record_left_as_another_writer_folded_it_is_not_lost(self, tmp_path):
        """Two writers of one OUT in turn (the app records each copy afresh): the first
        finds the journal it appended to gone and rewrites the record instead."""
        out = tmp_path / "out"
        out.mkdir()
        first = Manifest(out)
        first.set(out / "a.png", self.entry(1))
        first.set(out / "b.png", self.entry(2))
        second = Manifest(out)
        second.set(out / "c.png", self.entry(3))
        second.compact()
        first.set(out / "d.png", self.entry(4))
        assert {"a.png", "b.png", "d.png"} <= set(Manifest(out).entries)

    def test_an_entry_that_is_not_an_object_in_the_journal_removes_nothing(self, tmp_path):
        out = self.two_appended(tmp_path, b'\n{"name":"a.png","entry":"damaged"}')
        assert sorted(Manifest(out).entries) == ["a.png", "b.png"]

    @pytest.mark.skipif(not hasattr(os, "link"), reason="hard links")
    def test_a_hard_link_at_the_journals_name_is_not_written_through(self, tmp_path):
        """The journal was opened in place (O_NOFOLLOW refuses a symlink, not a hard link):
        a `cp -al` backup of OUT made after a killed session got the next session's
        entries, and a user's file linked at the journal's name was truncated and
        overwritten with JSON. Files outside OUT are left as they were."""
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))  # the record, written whole
        record.set(out / "b.png", self.entry(2))  # the journal, started
        backup = tmp_path / "backup"
        backup.mkdir()
        os.link(out / JOURNAL_NAME, backup / JOURNAL_NAME)  # `cp -al out backup`
        os.link(out / MANIFEST_NAME, backup / MANIFEST_NAME)
        kept = (backup / JOURNAL_NAME).read_bytes()
        record.set(out / "c.png", self.entry(3))  # appended, by the one that made it
        again = Manifest(out)  # the next session's
        again.set(out / "d.png", self.entry(4))
        assert (backup / JOURNAL_NAME).read_bytes() == kept
        assert sorted(Manifest(backup).entries) == ["a.png", "b.png"]
        assert sorted(Manifest(out).entries) == ["a.png", "b.png", "c.png", "d.png"]
        notes = tmp_path / "notes.txt"  # a user's file, linked at the name
        notes.write_text("my thesis notes\n")
        (out / JOURNAL_NAME).unlink()
        os.link(notes, out / JOURNAL_NAME)
        Manifest(out).set(out / "e.png", self.entry(5))
        assert notes.read_text() == "my thesis notes\n"
        assert "e.png" in Manifest(out).entries

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
    def test_a_fifo_at_the_journals_name_is_passed_over_without_a_hang(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))  # the record, written whole
        os.mkfifo(out / JOURNAL_NAME)
        assert sorted(Manifest(out).entries) == ["a.png"]  # read: passed over
        record.set(out / "b.png", self.entry(2))  # ENXIO, at once: the record written whole
        assert sorted(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == [
            "a.png", "b.png"]


    def test_the_journal_takes_the_records_permissions_whatever_the_umask(self, tmp_path):
        """A group's shared folder (record 0664): a journal made under umask 022 was 0644,
        and the group's other member could no longer record there. A read-only record
        (0444, restored from read-only media) gave a journal its owner could not append
        to again: the run stopped at its second photo."""
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))
        old_umask = os.umask(0o022)
        try:
            for mode, expected in ((0o664, 0o664), (0o444, 0o644), (0o600, 0o600)):
                (out / JOURNAL_NAME).unlink(missing_ok=True)
                record = Manifest(out)
                os.chmod(out / MANIFEST_NAME, mode)
                record.set(out / "b.png", self.entry(2))
                assert (out / JOURNAL_NAME).stat().st_mode & 0o777 == expected, oct(mode)
        finally:
            os.umask(old_umask)

    def test_a_read_only_record_is_replaced_on_windows_too(self, tmp_path, small_photo,
                                                           tiny_config, monkeypatch):
        """Windows refuses to replace a file marked read-only (POSIX replaces by the
        folder's permission alone): a record restored from read-only media stopped every
        run there ("could not write .cloak-manifest.json: Access is denied"), and a copy
        marked so could not be redone with --force. Simulated: a replace that refuses a
        destination without write permission, as Windows does."""
        from cloak import atomic

        real_replace = os.replace

        def windows_replace(src, dst):
            if os.path.lexists(dst) and not os.lstat(dst).st_mode & 0o200:  # the name's own
                raise PermissionError(13, "Access is denied", str(dst))
            real_replace(src, dst)

        monkeypatch.setattr(atomic.os, "replace", windows_replace)
        monkeypatch.setattr(atomic, "REPLACE_CLEARS_READ_ONLY", True, raising=False)
        out = tmp_path / "out"
        a, b = (small_photo(tmp_path / f"{n}.png", index=i) for i, n in enumerate("ab"))
        assert batch.run(batch.plan([a], out), out, tiny_config).counts[PROTECTED] == 1
        os.chmod(out / MANIFEST_NAME, 0o444)
        os.chmod(out / "a.png", 0o444)
        assert batch.run(batch.plan([b], out), out, tiny_config).counts[PROTECTED] == 1
        [item] = batch.run(batch.plan([a], out), out, tiny_config, force=True).items
        assert item.status == PROTECTED, item.message
        assert sorted(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == [
            "a.png", "b.png"]
        # a link at the copy's name to a read-only file outside OUT: the link is
        # replaced (--overwrite), and its target keeps its read-only mark (it lost it)
        theirs = small_photo(tmp_path / "theirs.png", index=2)
        os.chmod(theirs, 0o444)
        (out / "a.png").unlink()
        (out / "a.png").symlink_to(theirs)
        [item] = batch.run(batch.plan([a], out), out, tiny_config, overwrite=True).items
        assert item.status == PROTECTED, item.message
        assert stat.S_IMODE(theirs.stat().st_mode) == 0o444
        assert not (out / "a.png").is_symlink()

    def test_a_journal_this_user_cannot_write_gives_way_to_the_whole_record(
            self, tmp_path, monkeypatch):
        """Another user's journal in a shared folder (a permission error, which root never
        meets: simulated): the record is written whole, as before the journal."""
        out = tmp_path / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))
        record.set(out / "b.png", self.entry(2))
        real_open = os.open

        def refused(path, *args, **kwargs):
            if str(path).endswith(JOURNAL_NAME):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(manifest_module.os, "open", refused)
        record.set(out / "c.png", self.entry(3))
        monkeypatch.undo()
        assert not (out / JOURNAL_NAME).exists()
        assert sorted(json.loads((out / MANIFEST_NAME).read_text())["photos"]) == [
            "a.png", "b.png", "c.png"]

    def test_a_line_cut_short_by_a_full_disk_fails_the_write(self, small_disk):
        """A disk that fills mid-line: os.write wrote part of it and set() returned as if
        the change were recorded (the cut line is skipped when read)."""
        out = small_disk / "out"
        out.mkdir()
        record = Manifest(out)
        record.set(out / "a.png", self.entry(1))
        record.set(out / "b.png", self.entry(2))  # the journal, in its first page
        size = (out / JOURNAL_NAME).stat().st_size
        fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        big = dict(self.entry(3), note="x" * 9000)
        with pytest.raises(OSError):
            record.set(out / "c.png", big)
        assert (out / JOURNAL_NAME).stat().st_size == size  # the part written taken back
        assert sorted(Manifest(out).entries) == ["a.png", "b.png"]

def test_a_copy_in_a_folder_whose_record_is_damaged_is_not_called_the_users(
        tmp_path, small_photo, tiny_config, caplog):
    """A record damaged since (a sync client cut it off): cloak's own copy was said to be
    "not made by cloak (it may be a photo of yours)", after a warning in JSON parser text
    ("Expecting value: line 1 column 1 (char 0)")."""
    out = tmp_path / "out"
    photo = small_photo(tmp_path / "in" / "a.png")
    assert batch.run(batch.plan([photo], out), out, tiny_config).counts[PROTECTED] == 1
    (out / MANIFEST_NAME).write_text("garbage{")
    with caplog.at_level("WARNING", logger="cloak.manifest"):
        result = batch.run(batch.plan([photo], out), out, tiny_config)
    [item] = result.items
    assert item.status == FAILED
    said = (f"output {out / 'a.png'} exists, and cloak's record of that folder "
            f"({MANIFEST_NAME}) can't be read, or an earlier one could not (kept as "
            f"{MANIFEST_NAME}.unreadable-TIME), so cloak can't tell whether it made it; "
            "pass --overwrite to replace it, or choose another --out folder")
    assert item.message == said
    assert "not valid JSON: damaged, or cut off" in caplog.text
    assert "Expecting value" not in caplog.text
    # once a run with another photo has set the damaged record aside, the same
    other = small_photo(tmp_path / "in" / "b.png", index=1)
    result = batch.run(batch.plan([other], out), out, tiny_config)
    assert result.counts[PROTECTED] == 1 and list(out.glob(f"{MANIFEST_NAME}.unreadable-*"))
    [item] = batch.run(batch.plan([photo], out), out, tiny_config).items
    assert (item.status, item.message) == (FAILED, said)
    # a file put in OUT after that record was set aside can't be one it listed: the
    # user's own photo is still said to be possibly theirs
    time.sleep(0.05)  # (a later change time than the setting aside, on any clock)
    mine = small_photo(tmp_path / "elsewhere" / "mine.png", index=2)
    (out / "mine.png").write_bytes(mine.read_bytes())
    [item] = batch.run(batch.plan([mine], out), out, tiny_config).items
    assert item.status == FAILED and "was not made by cloak (it may be a photo of yours)" \
        in item.message, item.message



def test_a_journal_that_cant_be_removed_does_not_stop_a_run(tmp_path, small_photo,
                                                            tiny_config):
    """A folder (or an immutable file) at the journal's name: removing it as the record
    was rewritten raised, and the run was refused, "can't write to output folder OUT: Is
    a directory", the folder itself writable. The journal is an aid: the record is
    written whole instead, and the run goes on."""
    out = tmp_path / "out"
    photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(2)]
    assert batch.run(batch.plan(photos[:1], out), out, tiny_config).counts[PROTECTED] == 1
    (out / JOURNAL_NAME).mkdir()
    result = batch.run(batch.plan(photos, out), out, tiny_config)
    assert [i.status for i in result.items] == [SKIPPED, PROTECTED], result.items
    record = json.loads((out / MANIFEST_NAME).read_text())
    assert sorted(record["photos"]) == ["0.png", "1.png"] and record["version"] == 1


@pytest.mark.parametrize("record", [
    {"version": 1, "photos": {}, "folders": {"in": "/tmp\u0000x"}},
    {"version": 1, "photos": {"in/a\u0000b/x.png": {"state": "done", "src": {"size": 1}}}},
    {"version": 1, "photos": {}, "folders": {"z" * 300: "IN"}},
], ids=["nul in a folder", "nul in a key", "a mirror name too long"])
def test_a_nul_in_a_records_mirror_data_is_passed_over(tmp_path, small_photo, tiny_config,
                                                       record):
    """A record edited (or damaged) to hold a NUL in a mirror's folder, or in a photo key
    below a mirror, stopped `cloak protect` with a traceback ("ValueError: embedded null
    byte"), and one naming a 300-byte mirror for the folder failed every run ("File name
    too long"): such entries are ignored, as a NUL in a photo key at the top already was."""
    photo, out = small_photo(tmp_path / "in" / "a.png"), tmp_path / "out"
    out.mkdir()
    record["folders"] = {k: os.path.realpath(photo.parent) if v == "IN" else v
                         for k, v in record.get("folders", {}).items()}
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    [item] = batch.run(batch.plan([photo.parent], out), out, tiny_config).items
    assert item.status == PROTECTED, item.message


def test_a_card_whose_driver_refuses_chmod_still_takes_the_record(
        tmp_path, small_photo, tiny_config, monkeypatch):
    """A FAT32 card through fusefat refuses every chmod (ENOSYS): the journal's fchmod
    stopped the run at its first photo ("can't update .cloak-manifest.json (Function not
    implemented)"), and the app recorded only a session's first copy."""
    import errno as errno_module

    def refused(*args):
        raise OSError(errno_module.ENOSYS, os.strerror(errno_module.ENOSYS))

    monkeypatch.setattr(os, "fchmod", refused)
    photos = [small_photo(tmp_path / "in" / f"{n}.png", index=n) for n in range(3)]
    out = tmp_path / "out"
    result = batch.run(batch.plan(photos, out), out, tiny_config)
    assert result.counts[PROTECTED] == 3, [i.message for i in result.items]
    assert sorted(Manifest(out).entries) == ["0.png", "1.png", "2.png"]


def test_a_stamp_is_the_same_file_when_only_its_inode_number_moved():
    """FAT and exFAT through FUSE give a file a new inode number once the kernel's cache
    lets it go: a rerun refused cloak's own copies as "changed while this run was busy".
    Size, mtime or ctime moved is another file, or the file written: an in-place edit
    that keeps size and mtime (`exiftool -P`) moves the ctime alone, and was taken for
    the same file (a chmod moves it too: refused, and --overwrite replaces it)."""
    from cloak.manifest import same_stamp

    stamp = (7, 100, 5_000, 6_000)
    assert same_stamp(stamp, stamp) and same_stamp(None, None)
    assert same_stamp(stamp, (8, 100, 5_000, 6_000))  # a new inode number, same ctime
    assert not same_stamp(stamp, (7, 100, 5_000, 6_500))  # edited in place, or chmod-ed
    assert not same_stamp(stamp, (8, 100, 5_000, 6_500))  # another file, renamed in
    assert not same_stamp(stamp, (7, 101, 5_000, 6_000))
    assert not same_stamp(stamp, (7, 100, 5_001, 6_000))
    assert not same_stamp(stamp, None) and not same_stamp(None, stamp)


def test_a_recorded_copy_is_known_by_its_identity_not_only_its_spelling(tmp_path):
    """HFS+ lists a name in NFD; the record (and a path typed) spell it in NFC: the walk's
    path of a recorded copy was not the string recorded_copies gave, so the copy was
    protected again (one folder deeper each run) and counted twice ("its 3 protected
    copies", 2 there). Here two spellings of one file are its name and a hard link."""
    from cloak.manifest import Manifest, identity, recorded_copies
    from cloak.same_path import PathSet

    out = tmp_path / "out"
    out.mkdir()
    copy = out / "a.png"
    copy.write_bytes(b"cloak's copy")
    other = out / "b.png"
    other.write_bytes(b"the user's photo")
    record = Manifest(out)
    record.set(copy, {"state": "done", "src": {}, "dst": identity(copy)})
    spelt_otherwise = out / "a-listed.png"
    os.link(copy, spelt_otherwise)  # one file, a second spelling
    copies = recorded_copies(out)
    assert len(copies) == 1, list(copies)  # not counted again by its other spelling
    assert str(spelt_otherwise) in copies and os.path.realpath(copy) in copies
    assert str(other) not in copies and str(out / "gone.png") not in copies
    both = PathSet([str(copy)])
    both.update(PathSet([str(other)]))
    assert str(spelt_otherwise) in both and str(other) in both and len(both) == 2


def test_an_output_folder_reached_by_another_path_is_this_runs(tmp_path, small_photo,
                                                               model_dir):
    """The photos' folder named by one path, --out inside it by another to the same
    folder (macOS's NFC typed for an NFD name; here a bind mount): the rerun took OUT
    for another run's output folder ("its 2 protected copies are skipped ...; the other
    photos in it are protected") and counted a skip too many."""
    import subprocess

    real, bound = tmp_path / "real", tmp_path / "bound"
    for n in range(2):
        small_photo(real / "Trip" / f"{n}.png", index=n)
    bound.mkdir()
    try:
        mounted = subprocess.run(["mount", "--bind", str(real), str(bound)],
                                 check=False, capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    if not mounted:
        pytest.skip("no bind mount here (needs root)")
    try:
        out = bound / "Trip" / "protected"
        args = [str(real / "Trip"), "--out", str(out), "--model-dir", str(model_dir),
                "--strength", "fast", "--steps", "1", "--models", "taesd", "--no-measure",
                "--no-ai-notice"]
        from typer.testing import CliRunner

        import cli

        first = CliRunner().invoke(cli.app, ["protect", *args])
        assert "Done: 2 protected, 0 failed." in first.output, first.output
        again = CliRunner().invoke(cli.app, ["protect", *args])
        assert again.exit_code == 0, again.output
        assert "Done: 0 protected, 2 skipped (2 already done" in again.output, again.output
        assert "cloak output folder" not in again.output, again.output
    finally:
        subprocess.run(["umount", str(bound)], check=True)


def test_two_spellings_of_one_card_folder_are_one_where_the_disk_ignores_case(
        tmp_path, monkeypatch):
    """exFAT and FAT cards through FUSE give `Pics/beach.jpg` and `pics/beach.jpg` two
    inode numbers though they are one file: `--out card/pics` for the photos in
    `card/Pics`, with --overwrite, replaced each original with its copy ("output is the
    input photo" needs them to be one). Simulated here on a disk that keeps case: two
    folders of the same contents and times, whose listing shows one spelling only where
    the disk would (a case-keeping disk lists both: then they are two)."""
    from cloak.same_path import same_file, same_folder, spelt_as_one

    for name in ("Pics", "pics"):
        photo = tmp_path / "card" / name / "beach.jpg"
        photo.parent.mkdir(parents=True)
        photo.write_bytes(b"the same bytes")
        os.utime(photo, ns=(1_000_000_000, 1_000_000_000))
        os.utime(photo.parent, ns=(1_000_000_000, 1_000_000_000))  # one folder's, there
    a, b = tmp_path / "card" / "Pics" / "beach.jpg", tmp_path / "card" / "pics" / "beach.jpg"
    assert not same_file(a, b) and not spelt_as_one(a, b)  # both listed: two files
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda folder=".": [
        n for n in real_listdir(folder) if n != "pics"])  # as a case-ignoring disk lists
    assert same_file(a, b) and same_folder(a.parent, b.parent)
    from cloak.api import check_destination

    with pytest.raises(OutputError, match="is the input photo"):
        check_destination(a, b, overwrite=True)  # `--out card/pics --overwrite`
    os.utime(b, ns=(2_000_000_000, 2_000_000_000))
    assert not same_file(a, b)  # another mtime: another file
    assert not same_file(a, tmp_path / "card" / "Pics" / "other.jpg")


def test_a_renamed_folder_keeps_its_mirror(tmp_path, small_photo, tiny_config, caplog):
    """Trip protected, then renamed `Trip 2026`: the record's Trip names a folder that is
    gone, and the new name had no mirror, so every photo was protected again into
    `Trip 2026/` (hours for a large folder) and each copy kept twice. The copies in
    `Trip/` were made from the photos at the same places in the folder given: its photos
    are done, its new photo goes there too, and a line says where. A copy of the folder
    (the old one still there) gets a mirror of its own."""
    photos = [small_photo(tmp_path / "Trip" / f"{name}.png", index=i)
              for i, name in enumerate("ab")]
    out = tmp_path / "protected"
    assert batch.run(batch.plan([photos[0].parent], out), out,
                     tiny_config).counts[PROTECTED] == 2
    renamed = tmp_path / "Trip 2026"
    shutil.copytree(tmp_path / "Trip", tmp_path / "copied")
    (tmp_path / "Trip").rename(renamed)
    small_photo(renamed / "c.png", index=2)
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        again = batch.run(batch.plan([renamed], out), out, tiny_config)
    assert [(i.status, i.dst.relative_to(out).as_posix()) for i in again.items] == [
        (SKIPPED, "Trip/a.png"), (SKIPPED, "Trip/b.png"), (PROTECTED, "Trip/c.png")]
    [said] = [r.getMessage() for r in caplog.records if r.name == "cloak.planning"]
    assert said == (f"{renamed}: protected before as {tmp_path / 'Trip'} (renamed or moved "
                    f"since); its copies are in {out / 'Trip'}, and its new photos go "
                    "there too")
    assert not (out / "Trip 2026").exists()
    assert json.loads((out / MANIFEST_NAME).read_text())["folders"] == {
        "Trip": str(renamed)}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        [a, b] = batch.plan([tmp_path / "copied"], out)  # Trip is renamed's now
        assert [i.dst for i in (a, b)] == [out / "copied" / "a.png", out / "copied" / "b.png"]
        assert [i.dst for i in batch.plan([renamed], out)][:1] == [out / "Trip" / "a.png"]
    assert not caplog.records


def test_a_folder_with_part_of_a_gone_folders_photos_gets_its_own_mirror(
        tmp_path, small_photo, tiny_config, caplog):
    """One photo copied from Trip into Selection beside one of its own, and Trip's drive
    unplugged: Selection took Trip's mirror ("protected before as Trip"), its own b.png
    was refused as "made from another photo", and --overwrite, as advised, replaced
    Trip's copy. Every copy looked at must have its photo at the same place. Two gone
    folders of the same photos, both renamed, can't be told apart: neither is taken."""
    drive = tmp_path / "drive"
    photos = [small_photo(drive / "Trip" / f"{name}.png", index=i)
              for i, name in enumerate("abc")]
    out = tmp_path / "protected"
    assert batch.run(batch.plan([drive / "Trip"], out), out,
                     tiny_config).counts[PROTECTED] == 3
    selection = tmp_path / "Selection"
    selection.mkdir()
    shutil.copy2(photos[0], selection / "a.png")
    small_photo(selection / "b.png", index=5)
    drive.rename(tmp_path / "drive unplugged")
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        items = batch.run(batch.plan([selection], out), out, tiny_config).items
    assert [(i.status, i.dst.parent.name) for i in items] == [(PROTECTED, "Selection")] * 2
    assert not caplog.records
    (tmp_path / "drive unplugged").rename(drive)
    again = batch.run(batch.plan([drive / "Trip"], out), out, tiny_config)
    assert [i.status for i in again.items] == [SKIPPED] * 3
    twins = [tmp_path / name for name in ("A", "B")]
    for folder in twins:
        small_photo(folder / "x.png", index=7)
    out = tmp_path / "twins"
    batch.run(batch.plan(twins, out), out, tiny_config)
    for folder in twins:
        folder.rename(folder.with_name(folder.name + "2"))
    names = [i.dst.parent.name for i in batch.plan(
        [tmp_path / "B2", tmp_path / "A2"], out)]
    assert names == ["B2", "A2"]  # not each the other's mirror


def test_a_copy_of_a_folder_still_there_gets_its_own_mirror(tmp_path, small_photo,
                                                             tiny_config, caplog):
    """Trip protected, then copied whole to `Trip copy`, Trip itself kept: every copy in
    Trip's mirror was made from a photo at the same place in the copy, but Trip is still
    there, so it was not renamed. Taken for renamed, the copy's photos went into Trip's
    mirror (said "renamed or moved since"), and the mirror became the copy's: Trip's own
    next run protected every photo again into `Trip (2)`."""
    photos = [small_photo(tmp_path / "Trip" / f"{name}.png", index=i)
              for i, name in enumerate("ab")]
    out = tmp_path / "protected"
    assert batch.run(batch.plan([photos[0].parent], out), out,
                     tiny_config).counts[PROTECTED] == 2
    shutil.copytree(tmp_path / "Trip", tmp_path / "Trip copy")
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        dsts = [i.dst for i in batch.plan([tmp_path / "Trip copy"], out)]
    assert dsts == [out / "Trip copy" / "a.png", out / "Trip copy" / "b.png"]
    assert not [r for r in caplog.records if "renamed or moved since" in r.getMessage()]


def test_a_gone_folder_whose_mirror_has_no_copy_is_not_taken_for_a_renamed_one(
        tmp_path, small_photo, tiny_config, caplog):
    """A run of A and B stopped after A's photo: B's mirror is recorded with no copy in
    it. With B deleted since, any other folder (C, none of its photos B's) passed "every
    copy in the mirror was made from a photo here", there being none, and took B's
    mirror: C's copies went into `B/`, said as "protected before as B (renamed or moved
    since)"."""
    folders = [small_photo(tmp_path / name / f"{name.lower()}.png", index=i).parent
               for i, name in enumerate("AB")]
    out = tmp_path / "protected"
    done = []
    result = batch.run(batch.plan(folders, out), out, tiny_config,
                       on_event=lambda e: e.kind == "done" and done.append(e.item),
                       should_stop=lambda: bool(done))
    assert [i.status for i in result.items] == [PROTECTED, CANCELLED]
    assert set(json.loads((out / MANIFEST_NAME).read_text())["folders"]) == {"A", "B"}
    shutil.rmtree(folders[1])
    small_photo(tmp_path / "C" / "c.png", index=2)
    with caplog.at_level(logging.WARNING, logger="cloak.planning"):
        [item] = batch.plan([tmp_path / "C"], out)
    assert item.dst == out / "C" / "c.png"
    assert not caplog.records


def test_run_and_plan_check_what_a_python_caller_gives_them(tmp_path, small_photo,
                                                            tiny_config):
    """cloak.batch as the README's "From Python" calls it, given what a developer may
    pass: one path as a str (its letters were planned: "." walked the current folder,
    "/" the whole disk); the items as a generator (used up unseen: nothing done, said as
    success); a list run before (its counts reported again as this run's, its cancelled
    photos never resumed); items planned for another OUT (each failed as "a link to
    outside"); a preset's name, paths or a str where a config, items or jobs go (deep
    AttributeErrors)."""
    photo = small_photo(tmp_path / "me.png")
    out = tmp_path / "out"
    for one in (str(photo), photo):
        [item] = batch.plan(one, out)
        assert (item.src, item.dst, item.status) == (Path(one), out / "me.png", "pending")
    items = batch.plan([photo], out)
    result = batch.run((i for i in items if i.status == "pending"), out, tiny_config)
    assert result.counts[PROTECTED] == 1 and items[0].status == PROTECTED
    with pytest.raises(ValueError, match="these items were run before: plan them again"):
        batch.run(items, out, tiny_config)
    stopped = batch.plan([photo], tmp_path / "stopped")
    assert [i.status for i in batch.run(stopped, tmp_path / "stopped", tiny_config,
                                        should_stop=lambda: True).items] == [CANCELLED]
    with pytest.raises(ValueError, match="these items were run before: plan them again"):
        batch.run(stopped, tmp_path / "stopped", tiny_config)  # cancelled: never resumed
    with pytest.raises(ValueError, match="planned for another output folder"):
        batch.run(batch.plan([photo], out), tmp_path / "elsewhere", tiny_config)
    assert not (tmp_path / "elsewhere").exists()
    fresh = batch.plan([photo], out)
    preset = "config must be a cloak.ProtectConfig, got str (for the preset: ProtectConfig("
    takes = "run() takes the items batch.plan() made, got "
    whole = "jobs must be a whole number of at least 1, got "
    for args, kwargs, said in (
            ((fresh, out, "fast"), {}, preset + "strength='fast'))"),
            (([str(photo)], out, tiny_config), {}, takes + "a str among them"),
            ((str(photo), out, tiny_config), {}, takes + "str"),
            ((fresh, out, tiny_config), {"jobs": "2"}, "jobs must be a whole number"),
            ((fresh, out, tiny_config), {"jobs": 0}, whole + "0"),
            ((fresh, out, tiny_config), {"jobs": True}, whole + "True"),
            ((fresh, out, tiny_config), {"on_event": 5}, "on_event must be a function"),
            ((fresh, out, tiny_config), {"should_stop": True}, "should_stop must be a")):
        with pytest.raises(TypeError, match=re.escape(said)):
            batch.run(*args, **kwargs)
    assert [i.status for i in batch.run(fresh, out, tiny_config).items] == [SKIPPED]


def test_items_planned_for_out_by_a_link_to_it_run_into_it_by_either_name(
        tmp_path, small_photo, tiny_config):
    """OUT named through a link for plan() and by its real path for run(), or the other
    way round (`~/Pictures/protected` a link to a second disk): one folder, whose items
    must not be refused as "planned for another output folder"."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    for index, (planned, given, name) in enumerate(((link, real, "a.png"),
                                                    (real, link, "b.png"))):
        photo = small_photo(tmp_path / "in" / name, index=index)
        [item] = batch.run(batch.plan([photo], planned), given, tiny_config).items
        assert (item.status, item.dst) == (PROTECTED, planned / name), item.message
        assert decodes(real / name)
