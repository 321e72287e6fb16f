"""The `cloak` command line: help, `protect` on files and folders, exit codes, --json,
resume, and stopping (Ctrl-C, SIGKILL) without partial files."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import cli
from cloak.manifest import MANIFEST_NAME
from cloak.naming import PrintableFormatter
from cloak.report import shown_db, verdict_for

# The quickest real run: one step of taesd, seen at 128 px (the smallest editing size;
# fast's 512 cost about ten times more per photo, most of the suite's CLI time).
TINY = ["--strength", "fast", "--steps", "1", "--models", "taesd", "--editor-sizes", "128",
        "--no-measure"]


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[Path]:
    """Files under `folder` that are neither photos nor the manifest (temp files)."""
    return [p for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME and p.suffix not in (".png", ".jpg")]


def decodes(path: Path) -> bool:
    with Image.open(path) as im:
        im.load()
    return True


def test_help():
    for args in ([], ["protect"]):
        result = invoke(*args, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout
    listing = invoke("--help").stdout.splitlines()
    for command in ("protect", "verify", "gui"):  # each listed with its whole summary
        assert any(line.split()[:1] == [command] for line in listing), listing
        assert not any(command in line and "..." in line for line in listing)
    text = invoke("protect", "--help").stdout
    assert "Exit codes" in text and "130" in text
    assert "Crop and edit photos before protecting them" in text  # crops remove most of it
    for option in ("--out", "--jobs", "--force", "--overwrite", "--json"):
        assert option in text


def test_help_and_library_import_do_not_load_torch():
    """`cloak --help`, `cloak protect --help` and `import cloak` answer without loading
    torch (about a second on a 2-core CPU); a command loads it when it runs."""
    code = ("import sys, cloak, cli\n"
            "from cloak import ProtectConfig\n"
            "from cloak.models import ALL_MODEL_NAMES\n"
            "ProtectConfig(models=('taesd',))\n"
            "sys.argv = ['cloak', 'protect', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was loaded'\n"
            "cloak.protect_file\n"  # the lazy names still resolve
            "from cloak.models import load_autoencoders, TinyAutoencoder\n"
            "assert 'torch' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, cwd=Path(cli.__file__).parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Exit codes" in result.stdout


def test_gui_help_names_the_settings_the_app_takes_from_the_environment():
    """The app has no --device or --model-dir (README): its help named neither of the
    variables that stand in for them."""
    result = CliRunner(env={"COLUMNS": "100"}).invoke(cli.app, ["gui", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for setting in ("CLOAK_MODEL_DIR=DIR", "CLOAK_DEVICE=cpu, cuda, cuda:N or mps",
                    "CLOAK_OFFLINE=1", "CLOAK_MAX_PIXELS=N"):
        assert setting in text, setting
    for command in ("protect", "verify"):  # beside --model-dir's "download on first use"
        result = CliRunner(env={"COLUMNS": "100"}).invoke(cli.app, [command, "--help"])
        assert "which CLOAK_OFFLINE=1 turns off" in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["protect", "verify"])
def test_help_reflows_paragraphs_to_the_terminal(command):
    """The docstrings are wrapped at ~90 columns; in an 80-column terminal each paragraph
    must be re-filled, not wrapped a second time (which leaves one-word lines)."""
    result = CliRunner(env={"COLUMNS": "80"}).invoke(cli.app, [command, "--help"])
    lines = [line.rstrip() for line in result.stdout.split("Arguments")[0].splitlines()]
    paragraphs = "\n".join(lines).strip().split("\n\n")
    assert len(paragraphs) >= 4  # usage line, summary, at least two paragraphs
    for paragraph in paragraphs[1:]:
        rows = paragraph.splitlines()
        assert all(len(row) <= 80 for row in rows), paragraph
        assert all(len(row) > 50 for row in rows[:-1]), paragraph


def test_folder_run_mirrors_reports_bad_files_and_writes_json(tmp_path, small_photo,
                                                              model_dir):
    folder = tmp_path / "my photos"
    small_photo(folder / "a.png")
    small_photo(folder / "sub" / "ü b.jpg", index=1)
    (folder / "text.jpg").write_text("not a photo")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("skipped quietly")
    before = {p: sha256(p) for p in folder.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    result = invoke("protect", folder, "--out", out, "--json", report, *TINY)
    assert result.exit_code == 2, result.output
    assert result.stdout.count(" -> ") == 2
    errors = [line for line in result.stderr.splitlines() if "text.jpg" in line
              or "empty.jpg" in line]
    assert len(errors) == 2
    assert "notes.txt" not in result.output and "Traceback" not in result.output
    assert "2 protected" in result.stderr and "2 failed" in result.stderr
    assert {p: sha256(p) for p in before} == before
    assert decodes(out / "my photos" / "a.png") and decodes(out / "my photos" / "sub" / "ü b.jpg")

    summary = json.loads(report.read_text())
    assert summary["counts"] == {"protected": 2, "skipped": 0, "failed": 2, "cancelled": 0}
    files = {Path(f["src"]).name: f for f in summary["files"]}
    assert files["a.png"]["status"] == "protected"
    assert files["a.png"]["report"]["width"] == 64
    assert files["a.png"]["dst"] == str(out / "my photos" / "a.png")
    assert files["text.jpg"]["status"] == "failed" and files["text.jpg"]["error"]
    # every failed photo's error names it, as its line on the console does: the library's
    # messages start with the path, and the batch's own ("output X exists ...") get it
    for entry in summary["files"]:
        if entry["status"] == "failed":
            assert entry["error"].startswith(entry["src"]), entry
    assert summary["settings"]["steps"] == 1
    # A rerun replaces the report (it skips what is done), leaving no temp file beside it.
    again = invoke("protect", folder, "--out", out, "--json", report, *TINY)
    assert json.loads(report.read_text())["counts"]["skipped"] == 2, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my photos", "out", "report.json"]


def test_rerun_skips_done_photos_and_force_redoes_them(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    assert invoke("protect", photo, "--out", out, *TINY).exit_code == 0
    again = invoke("protect", photo, "--out", out, *TINY)
    assert again.exit_code == 0 and " -> " not in again.stdout
    assert "1 already done; --force redoes them" in again.stderr
    forced = invoke("protect", photo, "--out", out, "--force", *TINY)
    assert forced.exit_code == 0 and forced.stdout.count(" -> ") == 1
    measured = invoke("protect", photo, "--out", out, *TINY[:-1])
    assert measured.exit_code == 0 and " -> " not in measured.stdout  # same pixels: done
    stronger = invoke("protect", photo, "--out", out, *TINY[:3], "2", *TINY[4:])
    assert stronger.exit_code == 2 and "--overwrite" in stronger.stderr


def test_force_with_no_overwrite_typed_is_refused_not_ignored(tmp_path, small_photo,
                                                              model_dir):
    """--force implies --overwrite, and an explicit --no-overwrite (typed for safety) was
    read as the default: the user's own file at the copy's name was replaced without a
    word. Now the pair is refused before anything is read or written."""
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    theirs = small_photo(out / "a.png", index=1)
    before = sha256(theirs)
    report = tmp_path / "r.json"
    refused = invoke("protect", photo, "--out", out, "--force", "--no-overwrite",
                     "--json", report, *TINY)
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: --force replaces the files at the copies' names (it implies --overwrite), "
        "so it can't be given with --no-overwrite: drop one of them")
    assert sha256(theirs) == before and sorted(p.name for p in out.iterdir()) == ["a.png"]
    assert "--no-overwrite" in json.loads(report.read_text())["error"]
    forced = invoke("protect", photo, "--out", out, "--force", *TINY)  # as --help says
    assert forced.exit_code == 0 and sha256(theirs) != before


def test_a_path_the_user_may_not_read_is_cloaks_to_word(tmp_path, small_photo,
                                                       monkeypatch):
    """click checked PHOTO, PROTECTED, --mask, --model-dir and --json for read access
    first: a copy the user may not read was "Invalid value for 'PROTECTED': ... is not
    readable (see: cloak verify --help)", a usage error, and the last run's --json
    verdict stayed as this one's. cloak's own checks word it ("permission denied"),
    with the report written. Simulated through os.access (CI runs as root); cloak then
    reads the file, as root may."""
    src = small_photo(tmp_path / "a.png", size=(64, 64))
    refused = {str(src)}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if str(path) in
                        refused else real_access(path, mode, *a, **k))
    report = tmp_path / "r.json"
    result = invoke("verify", src, "--json", report)
    assert "Invalid value" not in result.output and "not readable" not in result.output
    assert json.loads(report.read_text())["kind"] == "receipt"


def test_a_warning_prints_a_photos_name_safely(monkeypatch):
    """Warnings went to stderr as the names were: a photo named "a\\nWARNING: fake\\x1b[31m
    .jpg" forged a second line and drove the terminal (stdout's lines were escaped),
    and a --jobs worker sent only the first line of the message, cutting it at the name's
    newline. The worker now sends it whole; the parent's line escapes it."""
    import queue

    from cloak import batch

    name = "a\nWARNING: fake\x1b[31m.jpg"
    record = logging.LogRecord("cloak.io", logging.WARNING, __file__, 1,
                               "%s is named .jpg", (name,), None)
    line = PrintableFormatter("%(levelname)s: %(message)s").format(record)
    assert line == "WARNING: a\\nWARNING: fake\\x1b[31m.jpg is named .jpg"
    try:  # a traceback after the line keeps its own lines (the app's "please report")
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        import sys

        failed = logging.LogRecord("cloak.gui", logging.ERROR, __file__, 1, "%s failed",
                                   (name,), sys.exc_info())
    lines = PrintableFormatter("%(levelname)s: %(message)s").format(failed)
    assert lines.splitlines()[0] == "ERROR: a\\nWARNING: fake\\x1b[31m.jpg failed"
    assert lines.splitlines()[1] == "Traceback (most recent call last):"
    sent: queue.Queue = queue.Queue()
    monkeypatch.setattr(batch, "_worker_queue", sent, raising=False)
    batch._ToParent().emit(record)
    assert sent.get_nowait() == (None, logging.WARNING, f"{name} is named .jpg")


def test_keep_serials_with_strip_exif_is_refused_not_ignored(tmp_path, small_photo):
    """--strip-exif drops the serials and notes --keep-serials keeps: the pair wrote the
    same bytes as --strip-exif alone, said nothing, and a rerun with one flag less
    failed as "other settings". Now refused before any photo is read."""
    photo = small_photo(tmp_path / "a.png")
    refused = invoke("protect", photo, "--out", tmp_path / "out", "--strip-exif",
                     "--keep-serials", *TINY)
    assert refused.exit_code == 1 and not (tmp_path / "out").exists()
    assert refused.stderr.strip() == (
        "error: --keep-serials can't be given with --strip-exif, which drops the serial "
        "numbers and notes it would keep: drop one of them")


def test_out_equal_to_the_photos_folder_never_touches_originals(tmp_path, small_photo,
                                                                model_dir):
    photos = [small_photo(tmp_path / f"{n}.png", index=n) for n in range(2)]
    before = [sha256(p) for p in photos]
    result = invoke("protect", *photos, "--out", tmp_path, *TINY)
    assert result.exit_code == 2
    assert result.stderr.count("would replace the original") == 2
    assert [sha256(p) for p in photos] == before


def test_same_photo_named_twice_is_protected_once(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, photo, "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 0
    assert result.stdout.count(" -> ") == 1 and "named twice" in result.stderr


def test_cpu_without_native_bf16_is_told_about_fast(tmp_path, small_photo, model_dir,
                                                   bf16_env):
    bf16_env(None, hardware=False)
    photo = small_photo(tmp_path / "a.png")
    slow = ["--models", "taesd", "--steps", "1", "--no-measure"]
    medium = invoke("protect", photo, "--out", tmp_path / "m", *slow)
    fast = invoke("protect", photo, "--out", tmp_path / "f", *TINY)
    assert medium.exit_code == 0 and fast.exit_code == 0
    assert "no native bf16" in medium.stderr and "fast preset" in medium.stderr
    assert "no native bf16" not in fast.stderr
    assert (tmp_path / "m" / "a.png").is_file()
    again = invoke("protect", photo, "--out", tmp_path / "m", *slow)  # nothing left to do
    assert again.exit_code == 0 and "no native bf16" not in again.stderr


def test_bad_settings_exit_1_with_one_line(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "out", "--strength", "extreme")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: unknown strength 'extreme'; choose from fast, low, medium, high"]
    assert not (tmp_path / "out").exists()
    result = invoke("protect", photo, "--out", tmp_path / "out", "--jobs", "0")
    assert result.exit_code == 1 and "--jobs must be at least 1" in result.stderr
    for option, value in (("--eps", "0.5"), ("--eps", "40"), ("--eps", "nan"),
                          ("--steps", "0")):
        result = invoke("protect", photo, "--out", tmp_path / "out", option, value)
        # A usage error: click's code 2 here, which cli.main turns into 1 (see
        # test_usage_error_exits_1).
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.stderr
        if option == "--eps":  # NaN was refused as "less than or equal to 32"
            assert ("not a number" in result.stderr) == (value == "nan")
            assert "give 1 to 32" in result.stderr
    result = invoke("protect", photo, "--out", tmp_path / "out", "--editor-sizes", "512,big")
    assert result.exit_code == 1 and "--editor-sizes takes whole numbers" in result.stderr
    result = invoke("protect", photo, "--out", tmp_path / "out", "--editor-sizes", "500")
    assert result.exit_code == 1 and "--editor-sizes: each size must be a multiple of 8" in result.stderr
    for empty in ("", ",", " "):  # "$UNSET" would have dropped high's 1024
        result = invoke("protect", photo, "--out", tmp_path / "out", "--editor-sizes", empty)
        assert result.exit_code == 1 and "--editor-sizes needs at least one size" in result.stderr
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY,
                    "--mask", tmp_path / "no.png")
    assert result.exit_code == 1 and "can't read mask" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unknown_model_is_refused_naming_the_option(tmp_path, small_photo, model_dir):
    """`--models sd15` said "unknown model 'sd15'" without naming the option it came from
    (the library's words); protect and verify both name --models and what it takes."""
    photo = small_photo(tmp_path / "a.png")
    for args in (("protect", photo, "--out", tmp_path / "out"), ("verify", photo, photo),
                 ("verify", photo)):
        result = invoke(*args, "--models", "taesd, SD15")
        assert result.exit_code == 1, result.output
        assert result.stderr == ("error: --models: unknown model 'sd15'; choose from taesd, "
                                 "taesdxl, taef1, taef2 (comma-separated)\n")
    assert not (tmp_path / "out").exists()


def test_an_empty_photos_argument_is_refused_not_the_current_folder(tmp_path, small_photo,
                                                                    model_dir, monkeypatch):
    """`cloak protect "$PHOTO" --out protected` with PHOTO unset passes "": Path("") is
    the current folder, which must not be walked (it may be a whole home folder)."""
    small_photo(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    for empty in ("", " "):
        result = invoke("protect", empty, "--out", "protected", *TINY)
        assert result.exit_code == 1, result.output
        assert result.stderr == ("error: a PHOTOS argument is empty (an unset variable?): "
                                 "name the photos or folders\n")
        assert not (tmp_path / "protected").exists()


def test_a_tilde_after_out_equals_is_the_home_folder(tmp_path, small_photo, model_dir,
                                                     monkeypatch):
    """`--out=~/protected`: the shell leaves that ~ alone; cloak expands it instead of
    making a folder named "~" in the current folder (and so for --json)."""
    photo = small_photo(tmp_path / "a.png")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = invoke("protect", photo, "--out=~/protected", "--json=~/r.json", *TINY)
    assert result.exit_code == 0, result.output
    assert (home / "protected" / "a.png").is_file() and (home / "r.json").is_file()
    assert not (tmp_path / "~").exists()


def test_refused_settings_leave_this_runs_report_at_json(tmp_path, small_photo, model_dir):
    """A run refused for its settings writes its --json report with the error, so an
    earlier run's report is not left there to be read as this run's."""
    photo = small_photo(tmp_path / "a.png")
    report = tmp_path / "r.json"
    earlier = {"out": "earlier", "settings": {}, "counts": {"protected": 3}, "files": ["x"]}
    for bad, message in ((["--strength", "extreme"], "unknown strength 'extreme'"),
                         (["--jobs", "0"], "--jobs must be at least 1"),
                         (["--editor-sizes", "500"], "each size must be a multiple of 8"),
                         (["--model-dir", tmp_path / "nowhere"], "is not a folder"),
                         (["--models", "taesd,sd15"], "--models: unknown model 'sd15'"),
                         (["--models", ","], "--models: no model named in ','")):
        report.write_text(json.dumps(earlier))
        result = invoke("protect", photo, "--out", tmp_path / "out", "--json", report, *bad)
        assert result.exit_code == 1 and message in result.stderr, result.output
        data = json.loads(report.read_text())
        assert message in data["error"] and data["counts"] == {} and data["files"] == []
        assert data["out"] == str(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_report_that_cant_be_written_does_not_hide_the_runs_error(tmp_path, small_photo):
    """A refused run whose --json can't be written either said only the --json error:
    the reason the run was refused (here a bad strength) was never printed."""
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / ("x" * 300)  # a name too long to make: the report goes in it
    result = invoke("protect", photo, "--out", out, "--json", out / "r.json",
                    "--strength", "bogus")
    assert result.exit_code == 1, result.output
    assert "warning: --json:" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown strength 'bogus'"), result.stderr


def broken_png(path: Path) -> Path:
    """A PNG whose second image-data chunk has a type that is not letters: Pillow opens
    it, then raises SyntaxError ("broken PNG file") while decoding."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.effect_noise((64, 48), 60).save(buffer, "PNG")
    data, pos, out = buffer.getvalue(), 8, bytearray(buffer.getvalue()[:8])
    while pos < len(data):
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + size]
        pos += 12 + size
        parts = ([(b"IDAT", body[:size // 2]), (b"\x00\x01\x02\x03", body[size // 2:])]
                 if kind == b"IDAT" else [(kind, body)])
        for name, part in parts:
            out += struct.pack(">I", len(part)) + name + part
            out += struct.pack(">I", zlib.crc32(name + part))
    path.write_bytes(bytes(out))
    return path


def test_a_damaged_mask_is_one_line_not_a_traceback(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    mask = broken_png(tmp_path / "mask.png")
    with pytest.raises(SyntaxError), Image.open(mask) as img:  # the damage tested here
        img.load()
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY, "--mask", mask)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: can't read mask") and "broken PNG" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert isinstance(result.exception, SystemExit)  # cloak's exit, not the SyntaxError


def test_a_name_the_output_cant_encode_is_escaped_not_fatal(monkeypatch):
    """Windows, output redirected to a file: stdout is cp1252 with strict errors, and a
    photo named with an emoji would stop the batch while its line is printed."""
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="cp1252", errors="strict")
    with pytest.raises(UnicodeEncodeError):  # what the plain print does there
        print("\U0001f642", file=stream)
    monkeypatch.setattr(sys, "stdout", stream)
    cli.BatchView().line("a \U0001f642 photo.jpg -> out/a \U0001f642 photo.jpg")
    stream.flush()
    assert buffer.getvalue() == b"a \\U0001f642 photo.jpg -> out/a \\U0001f642 photo.jpg\n"


def test_missing_weights_exit_1_before_any_work(tmp_path, small_photo, monkeypatch):
    photo = small_photo(tmp_path / "a.png")
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CLOAK_OFFLINE", "1")
    monkeypatch.setattr("cloak.models.weights.cache_dir", lambda: tmp_path / "no-cache")
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY[:5], "taef2")
    assert result.exit_code == 1, result.output
    # offline: both of taef2's missing files named in one line
    assert result.stderr.startswith("error: weights not found for 2 files: taef2_encoder, "
                                    "taef2_decoder") and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    # --json holds this run's report, not an earlier one's left in its place
    report = tmp_path / "run.json"
    report.write_text(json.dumps({"out": "earlier", "settings": {}, "counts": {"protected": 3},
                                  "files": ["earlier"]}))
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY[:5], "taef2",
                    "--json", report)
    assert result.exit_code == 1
    data = json.loads(report.read_text())
    assert data["error"].startswith("weights not found for 2 files: taef2_encoder") and \
        data["files"] == []
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- real processes


def cloak_process(*args, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cloak", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_missing_weights_are_the_only_word_when_the_face_detector_is_missing_too(
        tmp_path, small_photo, monkeypatch):
    """Offline with nothing on disk: a trial read a face-detector warning, telling it to
    put the file in CLOAK_MODEL_DIR, before the run's fatal line on the missing weights.
    The autoencoders are checked first; the run ends on them alone."""
    photo = small_photo(tmp_path / "a.png")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CLOAK_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    proc = cloak_process("protect", photo, "--out", tmp_path / "out", *TINY, cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.startswith("error: weights not found"), err
    assert "face" not in err.lower(), err


def first_line(proc: subprocess.Popen, timeout: float = 300) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


def test_usage_error_exits_1(tmp_path):
    proc = cloak_process("protect", "a.png", cwd=tmp_path)  # no --out
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "--out" in err
    # an out-of-range setting is a usage error too: 1, as the help's exit codes say
    proc = cloak_process("protect", "a.png", "--out", "o", "--eps", "40", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Invalid value for '--eps'" in err
    assert not (tmp_path / "o").exists()
    # one line, as cloak's own errors (click's usage block made it four)
    (line,) = err.strip().splitlines()
    assert line.startswith("error: Invalid value for '--eps': ")
    bare = cloak_process(cwd=tmp_path)  # no command: the help, not an "error: Usage…"
    out, err = bare.communicate(timeout=60)
    assert "Usage:" in out + err and "error:" not in out + err
    assert line.endswith("cloak protect --help)")  # "python -m cloak protect" here
    # an option left without its value (the parser's error has no context to name the
    # command): one line too, with the same pointer, not click's "Error: ..."
    proc = cloak_process("protect", "a.png", "--out", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    (line,) = err.strip().splitlines()
    assert proc.returncode == 1
    assert line == "error: Option '--out' requires an argument. (see: cloak protect --help)"
    short = cloak_process("protect", "-h", cwd=tmp_path)  # -h is --help
    out, _ = short.communicate(timeout=60)
    assert short.returncode == 0 and "Usage:" in out and "--strength" in out


def test_a_reader_of_both_streams_that_leaves_costs_no_report_and_no_exit_code(
        tmp_path, small_photo, model_dir):
    """`cloak protect in --out out --json r.json 2>&1 | head -1`: the totals line met the
    closed pipe on stderr, and the run that protected every photo exited 1 without its
    report."""
    for n in range(3):
        small_photo(tmp_path / "in" / f"photo {n}.png", index=n)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cloak", "protect", "in", "--out", "out",
                             "--json", "r.json", *TINY], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first_line(proc)
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["protected"] == 3


def test_verify_s_notes_meet_a_reader_that_left_as_its_figures_do(tmp_path, small_photo,
                                                                  model_dir):
    """`cloak verify A B --json r.json 2>&1 | head -1`: a note on stderr after the reader
    has gone costs that line, not the report or the exit code."""
    import shutil

    src = small_photo(tmp_path / "a.png", size=(64, 64))
    shutil.copy(src, tmp_path / "copy.png")  # the same pixels: a note on stderr
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cloak", "verify", "a.png", "copy.png",
                             "--models", "taesd", "--channels", "as-is", "--json", "r.json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    proc.stdout.close()  # gone before the first line (`| head -0`)
    assert proc.wait(timeout=300) == 0
    assert "same pixels" in json.loads((tmp_path / "r.json").read_text())["note"]


@pytest.fixture
def six_photos(tmp_path, small_photo, model_dir) -> list[Path]:
    return [small_photo(tmp_path / "in" / f"photo {n}.png", index=n) for n in range(6)]


# Slow enough that a signal sent after the first photo lands mid-run (six photos: the
# other five take seconds), quick enough for the suite: two steps seen at 256 px, a
# quarter of the pixels of fast's 512.
SLOW = ["--strength", "fast", "--steps", "2", "--models", "taesd", "--no-measure",
        "--editor-sizes", "256"]


def test_a_reader_that_leaves_early_does_not_stop_the_batch(tmp_path, small_photo,
                                                              model_dir):
    # `cloak protect in --out out | head -1`: the later lines meet a closed pipe
    for n in range(3):
        small_photo(tmp_path / "in" / f"photo {n}.png", index=n)
    proc = cloak_process("protect", "in", "--out", "out", *TINY, cwd=tmp_path)
    assert " -> " in first_line(proc)
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert "Broken pipe" not in stderr and "BrokenPipeError" not in stderr
    assert "3 protected" in stderr
    assert len(list((tmp_path / "out" / "in").glob("*.png"))) == 3


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("full", ["stdout", "stderr"])
def test_an_output_that_cant_be_written_does_not_stop_the_batch(tmp_path, small_photo,
                                                                 model_dir, full):
    """`cloak protect ... > log` with the log's disk full (ENOSPC; a closed terminal
    gives EIO): the first line that failed ended the batch after its first photo, and
    --json said "can't read or write: No space left on device" with no files. The lines
    are lost, not the photos, the exit code or the report."""
    small_photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.jpg").write_text("not a photo")  # a failure line on stderr
    small_photo(tmp_path / "in" / "c.png", index=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open("/dev/full", "w") as disk_full:
        done = subprocess.run(
            [sys.executable, "-m", "cloak", "protect", "in", "--out", "out", *TINY,
             "--json", "r.json"], check=False, cwd=tmp_path, env=env, timeout=300, text=True,
            stdout=disk_full if full == "stdout" else subprocess.PIPE,
            stderr=disk_full if full == "stderr" else subprocess.PIPE)
    assert done.returncode == 2, done.stderr  # one photo failed, as it did
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["protected"] == 2 and report["counts"]["failed"] == 1
    assert sorted(p.name for p in (tmp_path / "out" / "in").glob("*.png")) == [
        "a.png", "c.png"]
    assert "Traceback" not in (done.stderr or "")
    with open("/dev/full", "w") as disk_full:  # --help too: no traceback, exit 1
        helped = subprocess.run([sys.executable, "-m", "cloak", "--help"], check=False, env=env,
                                stdout=disk_full, stderr=subprocess.PIPE, text=True,
                                timeout=120)
    assert helped.returncode == 1 and "Traceback" not in helped.stderr, helped.stderr


def test_no_color_and_a_dumb_terminal_get_no_colour(monkeypatch, capsys):
    """NO_COLOR (no-color.org) or TERM=dumb: the error, warning and totals lines, which
    carried ANSI colour codes on a terminal while the bars followed NO_COLOR, are plain,
    and carry no code at all: click's style ended even an uncoloured line with a reset
    (ESC[0m), shown as "^[[0m" in an Emacs shell or a CI log viewer. Simulated: output
    kept as to a terminal (only a pipe had the codes stripped)."""
    import importlib

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert cli.coloured("red") == "red"
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.coloured("red") is None
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: colour, as no-color.org says
    monkeypatch.setenv("TERM", "dumb")
    assert cli.coloured("red") is None
    echo_module = importlib.import_module(typer.echo.__module__)
    monkeypatch.setattr(echo_module, "should_strip_ansi", lambda *a, **k: False)
    for variable, value in (("TERM", "dumb"), ("NO_COLOR", "1")):
        with monkeypatch.context() as env:
            env.setenv(variable, value)
            with pytest.raises(cli.typer.Exit):
                cli.fail("bad input")
            cli.say("Done: 1 protected", err=True, color="green")
            cli.say("invisibility: PSNR 37.5 dB")
            captured = capsys.readouterr()
            assert captured.err == "error: bad input\nDone: 1 protected\n", variable
            assert captured.out == "invisibility: PSNR 37.5 dB\n", variable
    monkeypatch.setenv("TERM", "xterm")
    cli.say("Done: 1 protected", err=True, color="green")
    assert "\x1b[32m" in capsys.readouterr().err  # colour where it is wanted


def test_sigkill_then_rerun_finishes_with_no_temp_files(tmp_path, six_photos):
    before = [sha256(p) for p in six_photos]
    proc = cloak_process("protect", "in", "--out", "out", *SLOW, cwd=tmp_path)
    assert " -> " in first_line(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    out = tmp_path / "out" / "in"
    killed_with = sorted(p.name for p in out.glob("*.png"))
    assert 1 <= len(killed_with) < 6  # the kill landed mid-run

    proc = cloak_process("protect", "in", "--out", "out", *SLOW, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=600)  # a hang guard, not a speed check
    assert proc.returncode == 0, stderr
    assert sorted(p.name for p in out.glob("*.png")) == [p.name for p in six_photos]
    assert all(decodes(p) for p in out.glob("*.png"))
    assert not leftovers(tmp_path / "out")
    assert stdout.count(" -> ") <= 6 - len(killed_with) + 1  # at most one photo redone
    assert [sha256(p) for p in six_photos] == before


def test_a_stop_after_every_photo_was_done_asks_for_no_rerun():
    """A stop that came as the last photo was saved (its figures cut), or after it, left
    nothing to do: the line said "0 not done. Run the same command again to finish"."""
    from cloak import batch

    done = [batch.Item(Path(f"{n}.jpg"), Path(f"out/{n}.jpg"), batch.PROTECTED) for n in "ab"]
    line = cli.BatchView.totals(batch.BatchResult(done, interrupted=True))
    assert line == "Interrupted once every photo was done: 2 protected, 0 failed."
    left = done + [batch.Item(Path("c.jpg"), Path("out/c.jpg"), batch.CANCELLED)]
    line = cli.BatchView.totals(batch.BatchResult(left, interrupted=True))
    assert line.startswith("Interrupted: 2 protected, 0 failed, 1 not done. Run the same")


@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_stops_cleanly_with_exit_130(tmp_path, six_photos, stop_signal):
    """Ctrl-C, SIGTERM (`kill`, a service manager's or a scheduler's stop) and SIGHUP (the
    terminal closed: it ended the run where it stood, leaving a redo's record wrong) stop
    after the photo under way with the summary and the --json report."""
    proc = cloak_process("protect", "in", "--out", "out", "--json", "run.json", *SLOW,
                         cwd=tmp_path)
    assert " -> " in first_line(proc)
    proc.send_signal(getattr(signal, stop_signal))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Interrupted:" in stderr and "not done" in stderr and "Traceback" not in stderr
    again = "Ctrl-C again" if stop_signal == "SIGINT" else f"{stop_signal} again, or Ctrl-C,"
    assert f"Stopping after the current step ({again} to stop now)" in stderr
    out = tmp_path / "out" / "in"
    assert all(decodes(p) for p in out.glob("*.png"))
    assert not leftovers(tmp_path / "out")
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["interrupted"] and summary["counts"]["cancelled"] >= 1
    assert summary["counts"]["protected"] == len(list(out.glob("*.png")))


def test_steps_too_few_for_every_model_or_size_are_said(tmp_path, small_photo, model_dir):
    """Each step attacks one model, and with few steps one editing size in turn: `--steps
    3` over four models never attacked taef2, and nothing said so (the copy was the one
    made without it, and the record named all four)."""
    from cloak import ProtectConfig
    from cloak.pipeline import not_attacked

    assert not_attacked(ProtectConfig(strength="fast", steps=3)) == (
        "with --steps 3, taef2 is not attacked (only 3 of the 4 models get a step; its "
        "editors get only what carries over from the others): give --steps 4 or more to "
        "attack each")
    assert not_attacked(ProtectConfig(strength="fast", steps=1, models=("taesd",),
                                      view_sizes=(512, 1024))) == (
        "with --steps 1, the editing size 1024 is not attacked: give --steps 2 or more to "
        "attack each")
    for preset in ("fast", "low", "medium", "high"):  # every preset reaches all of them
        assert not_attacked(ProtectConfig(strength=preset)) is None
    assert not_attacked(ProtectConfig(strength="fast", steps=4,
                                      view_sizes=(512, 1024))) is None
    src = small_photo(tmp_path / "a.png")
    result = invoke("protect", src, "--out", tmp_path / "out", "--strength", "fast",
                    "--steps", "1", "--models", "taesd,taef2", "--editor-sizes", "128",
                    "--no-measure")
    assert result.exit_code == 0, result.output
    assert ("Note: with --steps 1, taef2 is not attacked (only 1 of the 2 models gets a "
            "step; its editors get only what carries over from the others): give --steps "
            "2 or more to attack each.") in result.output
    again = invoke("protect", src, "--out", tmp_path / "out", "--strength", "fast",
                   "--steps", "1", "--models", "taesd,taef2", "--editor-sizes", "128",
                   "--no-measure")  # a rerun with nothing to do: no note on what it did not
    assert again.exit_code == 0 and "1 already done" in again.output, again.output
    assert "Note:" not in again.output
    assert "Note:" not in invoke("protect", src, "--out", tmp_path / "out2", *TINY).output


def test_a_run_under_nohup_goes_on_after_sighup(tmp_path, six_photos):
    """SIGHUP stops a run cleanly, but one started ignoring it (`nohup cloak protect …`,
    the user logging out) goes on, as asked: it was stopped, its photos left not done."""
    nohup = shutil.which("nohup")
    if nohup is None:
        pytest.skip("no nohup on this system")
    proc = subprocess.Popen(
        [nohup, sys.executable, "-m", "cloak", "protect", "in", "--out", "out", *SLOW],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert " -> " in first_line(proc)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Interrupted" not in stderr
    assert len(list((tmp_path / "out" / "in").glob("*.png"))) == 6


def test_verify_with_original_prints_channels_and_writes_json(tmp_path, small_photo,
                                                              model_dir):
    src = small_photo(tmp_path / "a.png", size=(96, 48))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, *TINY).exit_code == 0
    report = tmp_path / "v.json"
    result = invoke("verify", src, out / "a.png", "--models", "taesd", "--json", report)
    assert result.exit_code == 0, result.output
    assert "invisibility: PSNR" in result.stdout and "verdict:" in result.stdout
    data = json.loads(report.read_text())
    assert [c["channel"] for c in data["channels"]] == [
        "as-is", "instagram", "facebook", "x", "whatsapp", "jpeg95", "jpeg75", "jpeg50",
        "down-up", "blur", "crop", "grid", "naive"]
    assert 0 < data["max_change255"] <= 8
    as_is = data["channels"][0]["damage_db"]
    assert set(as_is) == {"taesd"} and as_is["taesd"] > 0.1
    worst = min(data["channels"], key=lambda c: c["damage_db"]["taesd"])
    assert data["worst_channel"] == worst["channel"]
    assert (f"verdict: {data['verdict']} (worst channel: {worst['channel']}; on taesd only)"
            in result.stdout)  # the verdict says it weighed one model of four
    # the verdict is verify's word for the worst channel's weakest model; the one on the
    # photo as it is, for the as-is channel's (also under its first name)
    assert data["verdict"] == verdict_for(worst["damage_db"]["taesd"])
    assert data["verdict_as_is"] == verdict_for(as_is["taesd"])
    assert data["verdict_as_posted"] == data["verdict_as_is"]
    assert f"as is (before posting): {data['verdict_as_is']}" in result.stdout
    # the files under their own keys: "protected" is the one-photo receipt's yes or no
    assert data["original"] == str(src) and data["protected_copy"] == str(out / "a.png")
    assert "protected" not in data
    # both groups of columns are named: damage, then latent shift, model by model
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("channel"))
    assert "damage dB" in lines[header - 1] and "latent shift" in lines[header - 1]
    assert lines[header].split() == ["channel", "taesd", "taesd"]
    assert len(lines[header + 1].split()) == 3  # as-is, its damage, its latent shift
    # taesd stands for SD, which edits at 512: nothing is measured at 1024
    assert "at 1024 px" not in result.stdout
    assert data["damage_at_1024"] == {} and data["verdict_at_1024"] is None


def test_verify_measures_the_sdxl_stand_in_at_1024_too(tmp_path, small_photo, model_dir):
    src = small_photo(tmp_path / "a.png", size=(96, 48))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, *TINY).exit_code == 0
    report = tmp_path / "v.json"
    result = invoke("verify", src, out / "a.png", "--models", "taesdxl", "--channels",
                    "jpeg50", "--json", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert set(data["damage_at_1024"]) == {"taesdxl"}
    line = next(s for s in result.stdout.splitlines() if s.startswith("at 1024 px"))
    assert f"taesdxl {shown_db(data['damage_at_1024']['taesdxl'])} dB: {data['verdict_at_1024']}" \
        in line and "above are at 512 px" in line


def test_each_protected_photo_gets_verifys_word_for_its_damage(tmp_path, small_photo,
                                                               model_dir):
    """The dB figures alone don't say whether they are much: each photo's line names
    verify's verdict for its weakest model as saved."""
    src = small_photo(tmp_path / "a.png", size=(96, 64))
    report = tmp_path / "r.json"
    result = invoke("protect", src, "--out", tmp_path / "out", "--strength", "fast",
                    "--steps", "1", "--models", "taesd", "--editor-sizes", "128", "--json",
                    report)
    assert result.exit_code == 0, result.output
    found = re.search(r"damage dB: taesd -?\d+\.\d \((strong|moderate|weak|none) as saved\)",
                      result.stdout)
    assert found, result.stdout
    damage = json.loads(report.read_text())["files"][0]["report"]["damage_db"]["taesd"]
    assert found.group(1) == verdict_for(damage)


def test_version():
    import cloak

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"cloak {cloak.__version__}\n"


def test_a_folder_with_no_photos_exits_1(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a photo")
    (tmp_path / "IMG_0001.CR2").write_bytes(b"raw")
    # a Mac's Pictures folder holding only its Photos library, which is not walked
    (tmp_path / "Pictures" / "Photos Library.photoslibrary" / "originals").mkdir(parents=True)
    (tmp_path / "raw").mkdir()  # a camera card's RAW-only folder
    for name in ("A.NEF", "B.NEF", "C.dng"):
        (tmp_path / "raw" / name).write_bytes(b"II*\0")
    for given in ("empty", "notes", "notes/readme.txt", "IMG_0001.CR2", "Pictures",
                  ("empty", "empty"), "raw"):
        given = [tmp_path / name for name in
                 (given if isinstance(given, tuple) else (given,))]
        result = invoke("protect", *given, "--out", tmp_path / "out", *TINY)
        assert result.exit_code == 1, result.output
        # a file named directly first says why it was skipped, as in any run, and the
        # formats cloak reads are said once: on its line, else on the last one
        assert result.stderr.count("JPEG, PNG") == 1, result.stderr
        assert result.stderr.splitlines()[-1] == "No photos found." if "supported: JPEG" in \
            result.stderr else result.stderr.splitlines()[-1].startswith(
                "No photos found (cloak reads JPEG")
    assert "3 camera RAW file(s) (DNG, NEF) not protected: a RAW must be developed first" \
        in result.stderr  # the RAW-only folder says why its photos were not taken
    assert not (tmp_path / "out").exists()
    # its --json says so too: not read as a successful empty run (a trial)
    result = invoke("protect", tmp_path / "notes", "--out", tmp_path / "out", *TINY,
                    "--json", tmp_path / "r.json")
    assert result.exit_code == 1
    assert json.loads((tmp_path / "r.json").read_text())["error"].startswith("No photos found")


def test_an_empty_out_is_refused_not_taken_as_the_current_folder(tmp_path, small_photo,
                                                                  monkeypatch):
    """`--out "$DEST"` with DEST unset wrote into the current folder."""
    src = small_photo(tmp_path / "in" / "a.png")
    monkeypatch.chdir(tmp_path)
    result = invoke("protect", src, "--out", "", *TINY)
    assert result.exit_code == 1 and "--out is empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_protected_copies_are_not_protected_again(tmp_path, small_photo, model_dir):
    """Copies named as files (`cloak protect out/*`), or moved into a folder that is
    walked, are skipped with the reason: their XMP carries cloak's note."""
    src = small_photo(tmp_path / "a.png")
    assert invoke("protect", src, "--out", tmp_path / "out", *TINY).exit_code == 0
    copy = tmp_path / "out" / "a.png"
    album = tmp_path / "album"
    album.mkdir()
    (album / "moved.png").write_bytes(copy.read_bytes())
    small_photo(album / "new.png")
    result = invoke("protect", copy, album, "--out", tmp_path / "again", *TINY)
    assert result.exit_code == 0, result.output
    assert f"{copy}: skipped, a copy cloak protected already" in result.stderr
    assert "copies cloak protected already (their metadata says so), not protected " \
           "again: 1" in result.stderr
    assert "Done: 1 protected, 2 skipped, 0 failed." in result.stderr
    assert [p.name for p in (tmp_path / "again").rglob("*.png")] == ["new.png"]
    # with the notes turned off only its output folder's record knows a copy: named
    # there it is skipped; moved out of it, it is taken like any photo
    bare = invoke("protect", src, "--out", tmp_path / "bare", *TINY, "--no-ai-notice")
    assert bare.exit_code == 0
    result = invoke("protect", tmp_path / "bare" / "a.png", "--out", tmp_path / "twice", *TINY)
    assert result.exit_code == 0 and "the output folder's record lists it" in result.stderr
    assert not (tmp_path / "twice" / "a.png").exists()
    (album / "bare.png").write_bytes((tmp_path / "bare" / "a.png").read_bytes())
    assert invoke("protect", album / "bare.png", "--out", tmp_path / "twice",
                  *TINY).exit_code == 0
    assert (tmp_path / "twice" / "bare.png").is_file()


def test_names_of_presets_and_models_are_taken_in_any_case(tmp_path, small_photo,
                                                          model_dir):
    src = small_photo(tmp_path / "a.png")
    result = invoke("protect", src, "--out", tmp_path / "out", "--strength", "FAST",
                    "--steps", "1", "--models", "TAESD", "--no-measure",
                    "--json", tmp_path / "run.json")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert settings["strength"] == "fast" and settings["models"] == ["taesd"]
    assert settings["step_start"] == 0.5  # fast's own, not medium's 0.25


def test_editor_sizes_are_checked_under_their_own_name(tmp_path, small_photo):
    result = invoke("protect", small_photo(tmp_path / "a.png"), "--out", tmp_path / "out",
                    "--editor-sizes", "512,300")
    assert result.exit_code == 1
    assert "--editor-sizes: each size must be a multiple of 8" in result.stderr
    assert "got 300" in result.stderr and "view sizes" not in result.stderr


def test_a_missing_mask_is_said_before_the_outputs_made_with_it_are_judged(
        tmp_path, small_photo, model_dir):
    """A rerun whose mask is gone: "can't read mask", not "made with other settings"
    against the copies protected with it."""
    src = small_photo(tmp_path / "a.png")
    mask = tmp_path / "mask.png"
    Image.new("L", (64, 48), 255).save(mask)
    assert invoke("protect", src, "--out", tmp_path / "out", *TINY,
                  "--mask", mask).exit_code == 0
    mask.unlink()
    result = invoke("protect", src, "--out", tmp_path / "out", *TINY, "--mask", mask)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: can't read mask {mask}: no such file"]


def test_verify_says_when_the_photos_look_swapped(tmp_path, small_photo, model_dir,
                                                  monkeypatch):
    """`cloak verify PROTECTED ORIGINAL`: every model rebuilds the second photo better than
    the first, so every damage figure is negative and the verdict would read "none" for a
    protected photo. It still measures (exit 0) and says the order is probably swapped;
    the right order gets no such note."""
    src = small_photo(tmp_path / "a.png", size=(128, 64))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, "--strength", "fast", "--models", "taesd",
                  "--editor-sizes", "256", "--no-measure").exit_code == 0
    swapped = invoke("verify", out / "a.png", src, "--models", "taesd", "--channels", "as-is")
    assert swapped.exit_code == 0, swapped.output
    assert "were they swapped?" in swapped.stderr
    assert "as is (before posting): none" in swapped.stdout
    right = invoke("verify", src, out / "a.png", "--models", "taesd", "--channels", "as-is")
    assert right.exit_code == 0 and "swapped" not in right.stderr
    assert "as is (before posting): none" not in right.stdout

    # the advice a weak verdict prints is in --json's note too, as every note printed
    # (it was left out; which verdicts get it: test_a_weak_verdict_says_what_to_do)
    report = tmp_path / "v.json"
    monkeypatch.setattr(cli, "weak_verdict_advice", lambda v: f"advice for {v.verdict}")
    result = invoke("verify", src, out / "a.png", "--models", "taesd", "--channels",
                    "as-is", "--json", report)
    verdict = json.loads(report.read_text())["verdict"]
    assert f"note: advice for {verdict}" in result.stderr
    assert f"advice for {verdict}" in json.loads(report.read_text())["note"]
    # cloak.verify_files "returns its figures with the notes": this one too
    import cloak

    api = cloak.verify_files(out / "a.png", src, channels=("as-is",), models=("taesd",))
    assert api.verification.verdict == "none" and "were they swapped?" in api.verification.note
    api = cloak.verify_files(src, out / "a.png", channels=("as-is",), models=("taesd",))
    assert "swapped" not in (api.verification.note or "")


def test_verify_says_swapped_by_cloaks_note_when_the_damage_is_too_small_to(
        tmp_path, small_photo, model_dir):
    """A copy made at eps 1/255 in one step carries too little for negative damage to
    show the order; the note cloak writes in its copies still does."""
    src = small_photo(tmp_path / "a.png", size=(128, 64))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, "--eps", "1", "--steps", "1", "--models",
                  "taesd", "--no-measure").exit_code == 0
    report = tmp_path / "r.json"
    swapped = invoke("verify", out / "a.png", src, "--models", "taesd", "--channels",
                     "as-is", "--json", report)
    assert swapped.exit_code == 0, swapped.output
    assert "the first photo carries cloak's note and the second does not" in swapped.stderr
    data = json.loads(report.read_text())
    assert "were they swapped?" in data["note"]
    assert data["kind"] == "comparison" and data["models"] == ["taesd"]
    assert data["device"] == "cpu" and data["precision"] in ("bf16", "fp32")
    assert data["cloak_version"] == cli.__version__
    right = invoke("verify", src, out / "a.png", "--models", "taesd", "--channels", "as-is")
    assert right.exit_code == 0 and "swapped" not in right.stderr


def test_verify_a_photo_alone_says_channels_and_models_are_not_used(tmp_path, small_photo,
                                                                    model_dir):
    src = small_photo(tmp_path / "a.png", size=(128, 128))
    report = tmp_path / "r.json"
    result = invoke("verify", src, "--channels", "instagram", "--json", report)
    assert result.exit_code == 0, result.output
    assert "--channels and --models are for the comparison with the original" in \
        result.stderr
    data = json.loads(report.read_text())
    assert data["kind"] == "receipt" and data["model"] == "taesd"
    assert "--channels and --models" in data["note"]
    plain = invoke("verify", src)
    assert plain.exit_code == 0 and "--channels" not in plain.stderr
    # a folder of photos alone: the same note, in its --json too (it was left out)
    folder_report = tmp_path / "f.json"
    result = invoke("verify", tmp_path, "--models", "taesd", "--json", folder_report)
    assert result.exit_code == 0 and "--channels and --models are for" in result.stderr
    data = json.loads(folder_report.read_text())
    assert data["kind"] == "receipts" and "--channels and --models" in data["note"]
    invoke("verify", tmp_path, "--json", folder_report)
    assert json.loads(folder_report.read_text())["note"] is None


def test_verify_measures_the_channels_asked_for_and_always_as_is(tmp_path, small_photo,
                                                                  model_dir):
    src = small_photo(tmp_path / "a.png", size=(128, 64))
    copy = tmp_path / "b.png"
    with Image.open(src) as im:
        noisy = np.asarray(im, dtype=np.int16) + np.random.default_rng(0).integers(-4, 5, (
            im.height, im.width, 3))
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(copy)
    report = tmp_path / "r.json"
    result = invoke("verify", src, copy, "--models", "taesd", "--channels", "JPEG50,blur",
                    "--json", report)
    assert result.exit_code == 0, result.output
    assert [c["channel"] for c in json.loads(report.read_text())["channels"]] == [
        "as-is", "jpeg50", "blur"]
    for bad, said in (("jpeg40", "unknown channel 'jpeg40'"), (",", "needs at least one channel")):
        result = invoke("verify", src, copy, "--channels", bad)
        assert result.exit_code == 1 and f"--channels: {said}; choose from as-is" in \
            result.stderr


def test_verify_refuses_one_file_given_twice(tmp_path, small_photo, model_dir):
    src = small_photo(tmp_path / "a.png", size=(64, 64))
    result = invoke("verify", src, tmp_path / "." / "a.png")
    assert result.exit_code == 1 and "was given twice" in result.stderr
    assert "verdict" not in result.stdout and "Traceback" not in result.output


@pytest.mark.parametrize("spelling", ["NFD", "letter case"])
def test_a_mirror_given_in_another_spelling_is_known_as_cloaks_copies(
        tmp_path, small_photo, model_dir, spelling, spelt_as_the_disk_lists):
    """`cloak protect OUT/Été --out OUT2`, the folder typed (or tab-completed) in NFD on an
    HFS+ disk, or in another letter case on APFS, where OUT's record spells it as first
    typed: a copy without cloak's note (a BMP, --no-ai-notice) was protected again ("1
    protected"); typed as the record spells it, it was skipped. Simulated: the mirror
    reachable under both spellings, listed in the other one only."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "\u00c9t\u00e9")
    other = unicodedata.normalize("NFD", nfc) if spelling == "NFD" else nfc.upper()
    photos, out = tmp_path / nfc, tmp_path / "out"
    small_photo(photos / "a.png")
    result = invoke("protect", photos, "--out", out, "--no-ai-notice", "--model-dir",
                    model_dir, *TINY)
    assert result.exit_code == 0, result.output
    listed = spelt_as_the_disk_lists(out / nfc, other)
    again = invoke("protect", listed, "--out", tmp_path / "out2", "--model-dir", model_dir,
                   *TINY)
    assert "0 protected" in again.output, again.output
    assert "1 protected copy is skipped" in again.output, again.output
    assert not (tmp_path / "out2").exists()


def test_verify_json_names_a_refused_photo_as_it_is(tmp_path, small_photo, model_dir):
    """A name with a newline (and a byte that is not UTF-8) given twice: --json's "error"
    held it escaped for a terminal ("a\\nb\\xff.jpg", backslashes and all) beside the
    real name in "original"; JSON has its own escaping. The terminal's line escapes it."""
    name = os.fsdecode(b"a\nb\xff.png")
    src = small_photo(tmp_path / name, size=(64, 64))
    report = tmp_path / "r.json"
    result = invoke("verify", src, src, "--json", report)
    assert result.exit_code == 1
    written = json.loads(report.read_text(encoding="utf-8", errors="surrogateescape"))
    assert written["error"].startswith(f"{src} was given twice"), ascii(written["error"])
    assert "a\\nb\\xff.png was given twice" in result.stderr, result.stderr
    folder = tmp_path / "in\nfolder"
    folder.mkdir()
    result = invoke("verify", folder, src, "--json", report)
    assert result.exit_code == 1
    assert json.loads(report.read_text(encoding="utf-8", errors="surrogateescape"))[
        "error"].startswith(f"{folder} is a folder and the other a file")
    assert "in\\nfolder is a folder" in result.stderr, result.stderr


def test_verify_says_an_untouched_copy_carries_no_protection(tmp_path, small_photo,
                                                             model_dir):
    """A plain copy of the photo (never protected) printed a table of 0.00 and "verdict:
    none" with no word of why; now a note says so, in --json too."""
    import shutil

    src = small_photo(tmp_path / "a.png", size=(64, 64))
    copy = tmp_path / "copy.png"
    shutil.copy(src, copy)
    report = tmp_path / "r.json"
    result = invoke("verify", src, copy, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 0, result.output
    said = "the copy has the same pixels as the original: it carries no protection"
    assert said in result.stderr and said in json.loads(report.read_text())["note"]
    assert "verdict: none" in result.stdout


def test_the_receipt_is_called_a_hint_and_small_photos_get_no_decision(tmp_path, small_photo,
                                                                        model_dir):
    report = tmp_path / "r.json"
    small = invoke("verify", small_photo(tmp_path / "thumb.png", size=(200, 150)),
                   "--json", report)
    assert small.exit_code == 0, small.output
    assert "receipt: can't tell: the photo is 200x150, under the 500 px" in small.stdout
    assert "protection detected" not in small.stdout
    # the score's line does not say what its threshold means at sizes it decides at
    assert "above means protected" not in small.stdout
    assert "which decides nothing at this size)" in small.stdout.splitlines()[0]
    # the reason is in the report too, not only on the screen
    data = json.loads(report.read_text())
    assert data["protected"] is None and "under the 500 px" in data["note"]
    large = invoke("verify", small_photo(tmp_path / "big.png", size=(640, 480)))
    assert large.exit_code == 0 and "calibrated on" not in large.output
    assert "a hint, not proof" in large.stdout


def test_verify_receipt_on_a_clean_photo(tmp_path, model_dir):
    example = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
    report = tmp_path / "r.json"
    result = invoke("verify", example, "--json", report)
    assert result.exit_code == 0, result.output
    assert "taesd high-frequency gap" in result.stdout
    assert "receipt: no protection detected" in result.stdout
    assert "carries cloak's note" not in result.stderr
    result = invoke("verify", example, "--json", tmp_path)  # a folder: refused up front
    assert result.exit_code == 1 and "is a folder" in result.stderr
    assert "gap" not in result.stdout  # before any measuring
    assert "Traceback" not in result.output
    data = json.loads(report.read_text())
    assert data["score"] == "hf_gap" and data["protected"] is False


def test_a_copy_cloak_made_that_the_receipt_misses_is_said_to_be_cloaks(tmp_path, model_dir):
    from cloak import io

    # the clean example written the way cloak writes its copies (with its note): a copy
    # whose pixels carry no protection the receipt can find, as some fast copies do
    photo = io.load_photo(Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg")
    copy = io.save_photo(photo, photo.rgb, tmp_path / "a.png")
    assert io.says_protected_file(copy)
    result = invoke("verify", copy)
    assert result.exit_code == 0 and "receipt: no protection detected" in result.stdout
    assert "note: this file carries cloak's note, so cloak made it" in result.stderr


def test_verify_json_is_replaced_by_the_next_run_even_a_refused_one(tmp_path, small_photo,
                                                                     model_dir, monkeypatch):
    """`cloak verify a b --json r.json` twice replaces its own report (it was refused as
    "not a cloak report" once the key became protected_copy); a refused pair leaves this
    run's error, not the earlier pair's verdict; `--json=~/r.json` is the home folder."""
    src = small_photo(tmp_path / "a.png", size=(96, 48))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, *TINY).exit_code == 0
    report = tmp_path / "r.json"
    for _ in range(2):
        result = invoke("verify", src, out / "a.png", "--models", "taesd,taesd",
                        "--channels", "jpeg50", "--json", report)
        assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["verdict"] in ("strong", "moderate", "weak", "none")
    assert list(data["channels"][0]["damage_db"]) == ["taesd"]  # named twice, once
    assert result.stdout.splitlines()[2].split() == ["channel", "taesd", "taesd"]
    other = small_photo(tmp_path / "b.png", size=(96, 48), index=3)
    result = invoke("verify", src, other, "--models", "taesd", "--json", report)
    assert result.exit_code == 1 and "differ far more" in result.stderr
    data = json.loads(report.read_text())
    assert data["verdict"] is None and "differ far more" in data["error"]
    assert data["protected_copy"] == str(other)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    result = invoke("verify", src, out / "a.png", "--models", "taesd", "--channels", "jpeg50",
                    "--json=~/r.json")
    assert result.exit_code == 0, result.output
    assert json.loads((home / "r.json").read_text())["verdict"] is not None


def test_verify_missing_photo_is_one_clear_line(tmp_path, model_dir):
    result = invoke("verify", tmp_path / "nope.jpg")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "nope.jpg" in result.output
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_metadata_flags_reach_the_saved_photo(tmp_path, small_photo, model_dir):
    from PIL import ExifTags

    gps, exif_ifd, tags = ExifTags.IFD.GPSInfo, ExifTags.IFD.Exif, ExifTags.Base
    exif = Image.Exif()
    exif[tags.Copyright] = "(c) Ada"
    exif[exif_ifd] = {tags.BodySerialNumber: "SN123", tags.DateTimeOriginal: "2024:05:01 12:00:00"}
    exif[gps] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0)}
    with Image.open(small_photo(tmp_path / "plain.png")) as im:
        im.convert("RGB").save(tmp_path / "a.jpg", quality=95, exif=exif.tobytes())
    photo = tmp_path / "a.jpg"
    assert invoke("protect", photo, "--out", tmp_path / "default", *TINY).exit_code == 0
    kept = invoke("protect", photo, "--out", tmp_path / "kept", *TINY, "--keep-gps",
                  "--keep-serials", "--no-ai-notice")
    assert kept.exit_code == 0, kept.output
    with Image.open(tmp_path / "default" / "a.jpg") as out:
        assert not out.getexif().get_ifd(gps)
        assert tags.BodySerialNumber not in out.getexif().get_ifd(exif_ifd)
        assert b"DMI-PROHIBITED" in out.info["xmp"]
    with Image.open(tmp_path / "kept" / "a.jpg") as out:
        assert out.getexif().get_ifd(gps)[1] == "N"
        assert out.getexif().get_ifd(exif_ifd)[tags.BodySerialNumber] == "SN123"
        assert b"DMI-PROHIBITED" not in out.info.get("xmp", b"")
    stripped = invoke("protect", photo, "--out", tmp_path / "stripped", *TINY, "--strip-exif")
    assert stripped.exit_code == 0
    with Image.open(tmp_path / "stripped" / "a.jpg") as out:
        assert tags.Copyright not in out.getexif()
        assert tags.DateTimeOriginal not in out.getexif().get_ifd(exif_ifd)
        assert not out.getexif().get_ifd(gps)
    both = invoke("protect", photo, "--out", tmp_path / "both", *TINY, "--strip-exif",
                  "--keep-gps")
    assert both.exit_code == 0
    with Image.open(tmp_path / "both" / "a.jpg") as out:
        assert out.getexif().get_ifd(gps)[1] == "N"
        assert tags.DateTimeOriginal not in out.getexif().get_ifd(exif_ifd)
    # Another metadata policy is another setting: a rerun does not pass it off as done.
    again = invoke("protect", photo, "--out", tmp_path / "default", *TINY, "--keep-gps")
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_preview_asked_for_on_a_rerun_is_written(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    assert invoke("protect", photo, "--out", out, *TINY).exit_code == 0
    again = invoke("protect", photo, "--out", out, *TINY, "--preview")
    assert again.exit_code == 0, again.output
    assert (out / "a.png.preview.png").is_file()
    third = invoke("protect", photo, "--out", out, *TINY, "--preview")
    assert third.exit_code == 0 and "1 already done" in third.stderr


def test_mistyped_model_dir_fails_before_any_work(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY,
                    "--model-dir", tmp_path / "modles")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --model-dir {tmp_path / 'modles'} is not a "
                                     "folder (or can't be reached)")
    assert not (tmp_path / "out").exists()
    result = invoke("verify", photo, "--model-dir", tmp_path / "modles")
    assert result.exit_code == 1 and "is not a folder" in result.stderr


def test_model_dir_with_a_tilde_the_shell_left_is_the_home_folder(
        tmp_path, small_photo, model_dir, monkeypatch):
    """`--model-dir=~/weights`: bash leaves that ~ as it is; the weights are found in the
    home folder, as the library finds them, not refused as "not a folder"."""
    import shutil

    weights = tmp_path / "home" / "weights"
    weights.mkdir(parents=True)
    for part in ("encoder", "decoder"):
        found = min(model_dir.glob(f"taesd_{part}.*"))
        shutil.copy(found, weights / found.name)
    shutil.copy(model_dir / "yunet_n_dynamic.onnx", weights)  # faces: nothing to download
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLOAK_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY,
                    "--model-dir=~/weights")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.png").is_file()


def test_verify_keeps_its_result_when_the_reader_leaves_or_is_stopped(
        tmp_path, small_photo, model_dir, monkeypatch):
    """`cloak verify a b --json r.json | less`, quit early: the lines are lost, not the
    measurement (no "can't read: Broken pipe", the report written, exit 0). A Ctrl-C
    while it measures leaves this run's "interrupted", not the earlier pair's verdict."""
    import cloak.verify

    src = small_photo(tmp_path / "a.png", size=(96, 48))
    out = tmp_path / "out"
    assert invoke("protect", src, "--out", out, *TINY).exit_code == 0
    report = tmp_path / "r.json"
    real_verify_images = cloak.verify.verify_images
    # A real process whose reader has gone before the first line (`| head -0`), its
    # stdout block-buffered as a user's pipe is (no PYTHONUNBUFFERED): the lines meet a
    # closed pipe when flushed, at the latest in Python's own flush at exit.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloak", "verify", str(src), str(out / "a.png"), "--models",
         "taesd", "--channels", "jpeg50", "--json", str(report)], cwd=tmp_path,
        env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Broken pipe" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert json.loads(report.read_text())["verdict"] in ("strong", "moderate", "weak", "none")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cloak.verify, "verify_images", interrupted)
    result = invoke("verify", src, out / "a.png", "--models", "taesd", "--json", report)
    assert result.exit_code == 130
    data = json.loads(report.read_text())
    assert data["verdict"] is None and data["error"] == "interrupted"

    def a_bug(*args, **kwargs):
        raise ValueError("something cloak did not expect")

    def a_torch_bug(*args, **kwargs):  # a RuntimeError that is not out of memory
        raise RuntimeError("shape mismatch")

    for bug, kind, words in ((a_bug, ValueError, "something cloak did not expect"),
                             (a_torch_bug, RuntimeError, "shape mismatch")):
        monkeypatch.setattr(cloak.verify, "verify_images", real_verify_images)
        assert invoke("verify", src, out / "a.png", "--models", "taesd", "--channels",
                      "as-is", "--json", report).exit_code == 0
        monkeypatch.setattr(cloak.verify, "verify_images", bug)
        result = invoke("verify", src, out / "a.png", "--models", "taesd", "--json", report)
        assert result.exit_code != 0 and isinstance(result.exception, kind)
        data = json.loads(report.read_text())  # not the pair's verdict of the run before
        assert data["verdict"] is None and data["error"] == (
            f"unexpected error ({kind.__name__}: {words})")
        assert data["kind"] == "comparison" and data["cloak_version"] == cli.__version__


def test_a_failed_receipt_leaves_protected_null_in_its_json(tmp_path):
    """A photo alone that can't be read: its --json says so with `protected` null, the
    field a receipt is read by, as a comparison's says `verdict` null."""
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo")
    report = tmp_path / "r.json"
    result = invoke("verify", fake, "--json", report)
    assert result.exit_code == 1
    data = json.loads(report.read_text())
    assert data["kind"] == "receipt" and data["error"]
    assert (data["protected"], data["score_db"]) == (None, None)


def test_verify_json_into_a_missing_folder_fails_before_measuring(tmp_path, small_photo,
                                                                   model_dir):
    photo = small_photo(tmp_path / "a.png")
    result = invoke("verify", photo, photo, "--json", tmp_path / "no" / "v.json")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert "invisibility" not in result.stdout


def test_gui_without_a_display_is_one_line():
    """Qt's default platform on Linux aborts the process with a core dump and advice to
    reinstall when there is no display; cloak says what is missing instead."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the check is for Linux and the BSDs")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    code = "import sys; sys.argv = ['cloak', 'gui']; import cli; cli.main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(cli.__file__).parent, env=env, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: no display to open the window on")
    assert len(done.stderr.strip().splitlines()) == 1


def test_gui_entry_point_without_pyside6_is_one_line(tmp_path):
    """`cloak-gui` and `cloak gui` where PySide6 is not installed (hidden from import)."""
    hide = "import sys; sys.modules['PySide6'] = None; "
    for code in (hide + "from cloak.gui.app import main; sys.exit(main())",
                 hide + "sys.argv = ['cloak', 'gui']; import cli; cli.main()"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=Path(cli.__file__).parent, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: the desktop app needs PySide6")
        assert "Traceback" not in done.stderr


def test_gui_script_help_prints_usage_and_opens_no_window(capsys, monkeypatch):
    """`cloak-gui --help` (or -h) prints its usage and exits 0; any other argument is one
    error line, exit 2; neither opens a window (no display here: opening one would fail
    with "no display" instead). The installed script is this function."""
    from importlib.metadata import entry_points

    from cloak.gui.app import script_main

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("cloak-gui") == "cloak.gui.app:script_main"
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    for args in (["--help"], ["-h"], ["photo.jpg", "--help"]):
        assert script_main(args) == 0
        out, err = capsys.readouterr()
        assert out.startswith("usage: cloak-gui") and "cloak protect" in out and err == ""
    for args in (["photo.jpg"], ["--out", "x"]):
        assert script_main(args) == 1  # as `cloak gui x`; 2 says some photos failed
        out, err = capsys.readouterr()
        assert err.startswith(f"error: cloak-gui takes no arguments (got '{args[0]}')")
        assert len(err.strip().splitlines()) == 1 and out == ""
    # as the installed script runs it: its arguments from sys.argv
    code = ("import sys; sys.argv = ['cloak-gui', '--help']; "
            "from cloak.gui.app import script_main; sys.exit(script_main())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(cli.__file__).parent, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: cloak-gui"), done.stderr
    # its reader gone before it is written (`cloak-gui --help | head -1`): no traceback
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as closed_pipe:
        done = subprocess.run([sys.executable, "-c", code], stdout=closed_pipe,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                              cwd=Path(cli.__file__).parent)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_gui_with_a_pyside6_that_cant_load_says_so(tmp_path):
    """PySide6 installed but missing a system library (libEGL on a bare Linux: loading
    QtWidgets' extension fails with ImportError, not ModuleNotFoundError): the user, who installed
    cloak[gui] already, is told what is missing rather than to install it again."""
    broken = (
        "import sys, importlib.abc\n"
        "class Broken(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'PySide6.QtWidgets':\n"
        "            raise ImportError('libEGL.so.1: cannot open shared object file', name=name)\n"
        "sys.meta_path.insert(0, Broken())\n"
        "from cloak.gui.app import main; sys.exit(main())\n")
    done = subprocess.run([sys.executable, "-c", broken], capture_output=True, text=True,
                          cwd=Path(cli.__file__).parent, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: PySide6 is installed but can't load"), done.stderr
    assert "libEGL.so.1" in done.stderr and "pip install" not in done.stderr
    assert "Traceback" not in done.stderr


def test_device_is_chosen_by_option_or_environment(tmp_path, small_photo, model_dir,
                                                   monkeypatch):
    """--device (or CLOAK_DEVICE) picks where to compute; one asked for that this machine
    lacks, or a name that is no device, is one line before any work."""
    import json

    import torch

    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "bad", *TINY, "--device", "gpu9000")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --device: unknown device 'gpu9000'; use auto, cpu, cuda (or cuda:N) or mps"]
    # cpu:0, which torch takes, failed later at ProtectConfig, without naming the variable
    monkeypatch.setenv("CLOAK_DEVICE", "cpu:0")
    result = invoke("protect", photo, "--out", tmp_path / "bad", *TINY)
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        ("error: CLOAK_DEVICE=cpu:0 (set in the environment; --device overrides it): unknown "
        "device 'cpu:0'; use auto, cpu, cuda (or cuda:N) or mps")]
    monkeypatch.delenv("CLOAK_DEVICE")
    if not torch.cuda.is_available():
        monkeypatch.setenv("CLOAK_DEVICE", "cuda")
        for command in (("protect", photo, "--out", tmp_path / "bad", *TINY),
                        ("verify", photo, photo, "--models", "taesd")):
            result = invoke(*command)
            assert result.exit_code == 1, result.output
            assert result.stderr.strip().splitlines() == [
                ("error: CLOAK_DEVICE=cuda (set in the environment; --device overrides it): "
                 "device cuda was asked for, but no CUDA GPU is available")]
        result = invoke("protect", photo, "--out", tmp_path / "bad", *TINY, "--device", "cuda")
        assert result.stderr.strip().splitlines() == [
            "error: --device: device cuda was asked for, but no CUDA GPU is available"]
    assert not (tmp_path / "bad").exists()
    monkeypatch.setenv("CLOAK_DEVICE", "cpu")
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY,
                    "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((tmp_path / "r.json").read_text())["files"]
    assert entry["report"]["device"] == "cpu"
    result = invoke("verify", photo, tmp_path / "out" / "a.png", "--models", "taesd",
                    "--channels", "as-is", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "--device" in invoke("protect", "--help").output


def test_python_m_cloak_runs_cloaks_app_even_beside_another_cli_py(tmp_path):
    (tmp_path / "cli.py").write_text('raise SystemExit("another project\'s cli.py")\n')
    done = subprocess.run([sys.executable, "-m", "cloak", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "protect" in done.stdout and "verify" in done.stdout



def test_the_cloak_command_runs_only_cloaks_own_cli_py(tmp_path, capsys):
    """`cli.py` is a common name: another package installed its own over cloak's in
    site-packages (pip replaces it without a word), and `cloak protect` ran that
    program, protecting nothing, with exit code 0. The command now runs the file only
    where it carries cloak's mark, and says what to do otherwise."""
    from cloak.__main__ import CLI_MARK, main

    theirs = tmp_path / "cli.py"
    theirs.write_text("def main():\n    print('othertool: this is not cloak')\n")
    with pytest.raises(SystemExit) as stopped:
        main(theirs)
    assert str(stopped.value) == (
        f"error: {theirs} is not cloak's command-line module (another package installed "
        "its own cli.py over it); reinstall cloak (pip install --force-reinstall --no-deps "
        "cloak)")
    assert "othertool" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="command-line module is missing"):
        main(tmp_path / "gone" / "cli.py")
    assert CLI_MARK in Path(cli.__file__).read_text()[:2000]  # cloak's own carries it
    entry = "import sys; from cloak.__main__ import main; sys.argv = ['cloak', '--version']; main()"
    done = subprocess.run([sys.executable, "-c", entry], capture_output=True, text=True,
                          timeout=120, check=False)  # as the console script calls it
    assert done.returncode == 0 and done.stdout.startswith("cloak "), done.stderr

def test_a_shape_instagram_crops_gets_a_note(tmp_path, small_photo, model_dir):
    tall = small_photo(tmp_path / "tall.png", size=(64, 96))  # 2:3, taller than 3:4
    square = small_photo(tmp_path / "square.png", size=(64, 64))
    result = invoke("protect", tall, square, "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 0
    assert "note: 1 photo is taller than 3:4" in result.stderr and "tall.png" in result.stderr
    result = invoke("protect", square, "--out", tmp_path / "out2", *TINY)
    assert result.exit_code == 0 and "Instagram crops" not in result.stderr


def test_the_instagram_note_gives_a_wide_photo_a_wide_crop(tmp_path, small_photo, model_dir):
    """A 3:1 panorama was told to crop to 3:4 or 4:5, a portrait shape: each direction
    gets its own crop, and both are said when both are there."""
    wide = small_photo(tmp_path / "pano.png", size=(96, 32))
    tall = small_photo(tmp_path / "tall.png", size=(64, 96))
    result = invoke("protect", wide, "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 0, result.output
    assert "note: 1 photo is wider than 1.91:1 (e.g. pano.png)" in result.stderr
    assert "crop them to 1.91:1 or narrower first" in result.stderr
    assert "3:4" not in result.stderr
    result = invoke("protect", wide, tall, "--out", tmp_path / "out2", *TINY)
    assert result.exit_code == 0, result.output
    assert "2 photos are taller than 3:4 or wider than 1.91:1" in result.stderr
    assert "crop tall ones to 3:4 or 4:5 and wide ones to 1.91:1 or narrower" in result.stderr


def test_copies_with_little_protection_get_a_closing_note(tmp_path, small_photo, model_dir):
    """Copies measured under verify's "weak" as saved (each line says "none as saved")
    are counted once more at the end, with the stronger preset to try."""
    photos = [small_photo(tmp_path / f"{n}.png", size=(64, 64), index=n) for n in range(2)]
    measured = ["--strength", "fast", "--steps", "1", "--models", "taesd", "--editor-sizes", "128"]
    result = invoke("protect", *photos, "--out", tmp_path / "out", *measured, "--eps", "1")
    assert result.exit_code == 0, result.output
    feeble = [line for line in result.stdout.splitlines() if "(none as saved)" in line]
    assert feeble, result.stdout  # at eps 1/255 and one step
    name = Path(feeble[0].split(" -> ")[0]).name
    assert (f"note: {len(feeble)} of 2 copies carry little measurable protection as saved "
            f"(under 0.5 dB on their weakest model, e.g. {name}): --steps 1 (the preset's 4) "
            "and --eps 1 (the preset's 8) gave them less: leave them out, or try --strength "
            "medium (the default).") in " ".join(result.stderr.split())
    result = invoke("protect", *photos, "--out", tmp_path / "out2", *TINY)  # not measured
    assert result.exit_code == 0 and "little measurable" not in result.stderr


@pytest.mark.parametrize(("settings", "advice"), [
    ({}, "--strength medium (the default) protects more, at more time."),
    ({"steps": 2}, ("--steps 2 (the preset's 4) gave them less: leave it out, or try "
                    "--strength medium (the default).")),
    ({"steps": 9, "eps": 9 / 255}, "--strength medium (the default) protects more"),
    ({"strength": "high", "eps": 4 / 255}, ("--eps 4 (the preset's 12) gave them less: "
                                            "leave it out.")),
    ({"strength": "high"}, "small or very flat photos hold less protection."),
])
def test_the_little_protection_note_names_the_overrides_that_cut_the_preset(settings,
                                                                            advice):
    """The closing note's advice names a --steps or --eps below the preset's first (the
    run's own cut, not the preset, left the copy weak), and only those below it."""
    from cli import little_protection_note
    from cloak import ProtectConfig
    from cloak.batch import PROTECTED, BatchResult
    from cloak.planning import Item
    from cloak.report import Report

    report = Report(width=64, height=64, eps255=8, psnr=40, ssim=0.99, max_change255=8,
                    damage_db={"taesd": 0.1})
    result = BatchResult([Item(Path("a.png"), Path("out/a.png"), PROTECTED, report=report)])
    config = ProtectConfig(**{"strength": "fast", **settings})
    note = little_protection_note(result, config)
    assert note.startswith("note: 1 of 1 copies carry little measurable protection")
    assert note.endswith(advice) if advice.endswith(".") else advice in note
    if "steps" not in settings or settings["steps"] >= 4:
        assert "--steps" not in note


def test_a_second_run_into_the_same_out_is_refused_while_the_first_works(tmp_path,
                                                                          six_photos):
    proc = cloak_process("protect", "in", "--out", "out", *SLOW, cwd=tmp_path)
    try:
        assert " -> " in first_line(proc)
        other = tmp_path / "other.png"
        other.write_bytes(six_photos[0].read_bytes())
        result = invoke("protect", other, "--out", tmp_path / "out", *TINY)
        assert result.exit_code == 1
        assert "another cloak protect is writing to" in result.output
        assert not (tmp_path / "out" / "other.png").exists()
    finally:
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr  # the first run lost nothing to the second
    assert stdout.count(" -> ") == 5  # and the first line, read above
    assert len(list((tmp_path / "out" / "in").glob("*.png"))) == 6
    assert not (tmp_path / "out" / ".cloak-lock").exists()
    result = invoke("protect", tmp_path / "other.png", "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 0, result.output


def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path, small_photo):
    photo = small_photo(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("protect", photo, "--out", tmp_path / "notes.txt", *TINY)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --out {tmp_path / 'notes.txt'} is a file, not a "
                                     "folder; give a folder for the protected copies")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # a link to a drive not mounted was called "a file" too
    (tmp_path / "backup").symlink_to(tmp_path / "drive" / "photos")
    result = invoke("protect", photo, "--out", tmp_path / "backup", *TINY)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --out {tmp_path / 'backup'} is a link to "
                                     f"{tmp_path / 'drive' / 'photos'}, which does not exist "
                                     "(or can't be reached); connect it, or give another "
                                     "folder")
    assert not (tmp_path / "drive").exists()


def test_an_out_named_like_a_photo_is_refused_before_any_work(tmp_path, small_photo):
    """`--out me_protected.jpg` would make a folder of that name holding me.jpg; an
    existing folder of such a name is still taken."""
    photo = small_photo(tmp_path / "me.png")
    result = invoke("protect", photo, "--out", tmp_path / "me_protected.PNG", *TINY)
    assert result.exit_code == 1
    assert "looks like a photo's file name; --out names a folder" in result.stderr
    assert not (tmp_path / "me_protected.PNG").exists()
    (tmp_path / "shots.jpg").mkdir()
    result = invoke("protect", photo, "--out", tmp_path / "shots.jpg", *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "shots.jpg" / "me.png").is_file()


def test_a_failure_line_names_its_own_photo(tmp_path, small_photo, model_dir, monkeypatch):
    # the message names the other photo, whose path ends in this one's
    small_photo(tmp_path / "x" / "IMG_1.png")
    small_photo(tmp_path / "here" / "IMG_1.png", index=1)
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(model_dir.resolve()))
    monkeypatch.chdir(tmp_path / "here")
    result = invoke("protect", "../x/IMG_1.png", "IMG_1.png", "--out", "out", *TINY)
    assert result.exit_code == 2
    assert "IMG_1.png: output out/IMG_1.png is also the output of ../x/IMG_1.png" \
        in result.stderr


def test_an_out_below_a_file_is_refused_before_any_work(tmp_path, small_photo):
    # a folder input used to loop for ever looking for a free mirror name under it
    folder = tmp_path / "holiday"
    small_photo(folder / "a.png")
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("protect", folder, "--out", tmp_path / "notes.txt" / "protected", *TINY)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --out {tmp_path / 'notes.txt' / 'protected'} "
                                     f"can't be made: {tmp_path / 'notes.txt'} is a file, "
                                     "not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_json_may_go_into_the_out_folder_the_run_creates(tmp_path, small_photo, model_dir):
    photo = small_photo(tmp_path / "a.png")
    report = tmp_path / "protected" / "report.json"
    result = invoke("protect", photo, "--out", tmp_path / "protected", "--json", report, *TINY)
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["counts"]["protected"] == 1
    result = invoke("protect", photo, "--out", tmp_path / "p2", "--json",
                    tmp_path / "p2" / "sub" / "r.json", *TINY)  # only --out itself is made
    assert result.exit_code == 1 and "does not exist" in result.stderr
    result = invoke("protect", photo, "--out", tmp_path / "p3", "--json",
                    tmp_path / "p3" / "a.png", *TINY)  # still not a photo's name
    assert result.exit_code == 1 and "names a photo file" in result.stderr
    assert not (tmp_path / "p3").exists()


def test_json_naming_a_folder_the_run_makes_is_refused_before_any_work(
        tmp_path, small_photo, model_dir):
    """--json naming --out (not there yet) or a folder the run mirrors into it was taken,
    every photo protected, and then the report refused as a file that "appeared during
    the run". Refused before any work, naming a file to give instead."""
    small_photo(tmp_path / "holiday" / "a.png")
    for out, report, what in ((tmp_path / "p", tmp_path / "p", "the --out folder"),
                              (tmp_path / "q", tmp_path / "q" / "holiday",
                               "a folder this run writes copies into")):
        result = invoke("protect", tmp_path / "holiday", "--out", out, "--json", report,
                        *TINY)
        assert result.exit_code == 1, result.output
        assert f"--json {report} is {what}; give a file name, such as " \
            f"{out / 'report.json'}" in result.stderr
        assert not out.exists() and "appeared" not in result.stderr


def test_a_report_that_cant_be_written_keeps_the_totals_and_exit_code(
        tmp_path, small_photo, model_dir, full_disk):
    """The --json write fails after the work (a real full disk): the totals are still
    printed, a run with a failed photo still exits 2, and no temp report is left."""
    good = small_photo(tmp_path / "a.png")
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not a png")
    result = invoke("protect", good, bad, "--out", tmp_path / "out", "--json",
                    full_disk / "r.json", *TINY)
    assert result.exit_code == 2
    assert "1 protected" in result.stderr and "1 failed" in result.stderr
    assert "error: --json: could not write" in result.stderr
    assert "No space left on device" in result.stderr
    assert (tmp_path / "out" / "a.png").is_file()
    assert [p.name for p in full_disk.iterdir()] == [".filler"]


def test_verify_of_a_photo_that_cant_be_reached_is_one_line(tmp_path, lock_folder):
    """`cloak verify /root/a.jpg` as a user (EACCES simulated: CI runs as root)."""
    locked = tmp_path / "locked" / "a.jpg"
    lock_folder(locked.parent)
    result = invoke("verify", locked)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (f"error: {locked}: permission denied (a folder on its "
                                     "path can't be searched)")


def test_json_that_names_a_photo_is_refused(tmp_path, small_photo):
    photo = small_photo(tmp_path / "me.jpg")
    before = sha256(photo)
    result = invoke("protect", photo, "--out", tmp_path / "out", "--json", photo, *TINY)
    assert result.exit_code == 1 and "names a photo file" in result.output
    assert sha256(photo) == before


def test_json_appearing_during_the_run_is_not_replaced(tmp_path, capsys):
    """--json is checked before the run and again as the report is written: a file a
    user saved at that name during the run (minutes of work) is kept, and the run says
    the report was not written; a report of cloak's there is replaced, and a new name is
    written."""
    import typer

    report = {"out": "o", "settings": {}, "files": []}
    target = tmp_path / "report.json"
    cli.write_json(target, report)  # nothing there: written
    assert json.loads(target.read_text()) == report
    cli.write_json(target, {**report, "out": "again"})  # cloak's own report: replaced
    assert json.loads(target.read_text())["out"] == "again"
    target.write_text("the user's notes")  # saved there while the run worked
    with pytest.raises(typer.Exit) as failed:
        cli.write_json(target, report, code=1)
    assert failed.value.exit_code == 1
    err = capsys.readouterr().err
    assert "appeared during the run and is not a cloak report" in err and "not written" in err
    cli.write_json(target, report, on_the_way_out=True)  # a failing run's: a warning
    assert capsys.readouterr().err.startswith("warning: --json: ")
    assert target.read_text() == "the user's notes"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left


def test_json_never_replaces_a_file_that_is_not_a_cloak_report(tmp_path, small_photo):
    """--json replaces only a report an earlier run wrote: a user's notes, a raw photo
    with an unknown suffix, or an output folder's own record are refused before work."""
    photo = small_photo(tmp_path / "me.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    raw = tmp_path / "IMG_0001.CR2"
    raw.write_bytes(b"II*\x00 raw bytes")
    for target in (notes, raw):
        result = invoke("protect", photo, "--out", tmp_path / "out", "--json", target, *TINY)
        assert result.exit_code == 1 and "is not a cloak report" in result.stderr
    assert notes.read_text() == "my notes" and raw.read_bytes() == b"II*\x00 raw bytes"
    result = invoke("verify", photo, "--json", notes)
    assert result.exit_code == 1 and "is not a cloak report" in result.stderr
    for record in (".cloak-manifest.json", ".cloak-manifest.journal"):
        result = invoke("protect", photo, "--out", tmp_path / "out", "--json",
                        tmp_path / "out" / record, *TINY)
        assert result.exit_code == 1 and "cloak's own record" in result.stderr
        assert not (tmp_path / "out").exists()


def test_a_file_name_that_is_not_utf8_is_printed_escaped(tmp_path, small_photo, model_dir):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes, as old cameras and zips leave
    photo = small_photo(tmp_path / "in" / name)
    proc = subprocess.run([sys.executable, "-m", "cloak", "protect", "in", "--out", "out",
                           *TINY], check=False, cwd=tmp_path, capture_output=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING":
                               "utf-8"}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"caf\\xe9.png" in proc.stdout and b"Traceback" not in proc.stderr
    assert (tmp_path / "out" / "in" / name).is_file() and photo.is_file()


def test_a_file_name_with_control_characters_prints_on_one_line(tmp_path, small_photo,
                                                                 model_dir):
    name = "two\nlines \x1b[31mred [/x].png"  # a newline, a terminal escape, rich markup
    small_photo(tmp_path / "in" / name)
    result = invoke("protect", tmp_path / "in", "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    assert "two\\nlines \\x1b[31mred [/x].png" in line and "\x1b" not in line
    assert (tmp_path / "out" / "in" / name).is_file()


def test_a_name_with_bidi_controls_or_line_separators_is_escaped():
    """U+202E (right-to-left override) reached the terminal as it was: a terminal that
    lays out bidirectional text showed the rest of the line reversed, arrows and figures
    too ("holiday\u202egnp.jpg" reads as a .png); U+2028 and U+2029 break a line where
    text is laid out by Unicode (the app's labels). Each is escaped; letters, emoji and
    the joiner within an emoji sequence are not."""
    for raw, shown in [("holiday\u202egnp.jpg", "holiday\\u202egnp.jpg"),
                       ("a\u2066b\u2069\u200f.png", "a\\u2066b\\u2069\\u200f.png"),
                       ("beach\u2028FAKE\u2029.jpg", "beach\\u2028FAKE\\u2029.jpg"),
                       ("caf\u00e9 \U0001f468\u200d\U0001f469.jpg",
                        "caf\u00e9 \U0001f468\u200d\U0001f469.jpg")]:
        assert cli.printable(raw) == shown


def test_the_progress_bar_shows_a_name_that_looks_like_markup():
    import io

    from rich.console import Console

    terminal = io.StringIO()
    view = cli.BatchView(Console(file=terminal, force_terminal=True, width=120))
    task = view.progress.add_task("protecting", total=1)
    view.progress.update(task, description=cli.printable("a[/x] [bold]b.png"))
    with view.progress:  # drawing raised MarkupError ("closing tag '[/x]'") before
        view.progress.refresh()
    assert "a[/x] [bold]b.png" in terminal.getvalue()


def test_the_bar_says_photos_are_being_looked_for_until_the_work_starts():
    import io

    from rich.console import Console

    from cloak import batch

    terminal = io.StringIO()
    view = cli.BatchView(Console(file=terminal, force_terminal=True, width=120))
    with view:
        view.progress.refresh()
        assert [t.description for t in view.progress.tasks] == ["looking for photos"]
        view.on_event(batch.Event("todo", total=3))
        assert [t.description for t in view.progress.tasks] == ["protecting"]
    assert "looking for photos" in terminal.getvalue()


def test_verify_says_it_loads_the_models_not_that_it_looks_for_photos(model_dir,
                                                                        monkeypatch):
    """verify (and the receipt) load their models through a BatchView, whose spinner said
    "looking for photos" while it did."""
    labels = []

    class Recording(cli.BatchView):
        def __enter__(self):
            super().__enter__()
            labels.append([t.description for t in self.progress.tasks])

    monkeypatch.setattr(cli, "BatchView", Recording)
    cli.fetch_weights(("taesd",), str(model_dir))
    assert labels == [["loading the models"]]


def test_a_late_progress_report_does_not_count_a_finished_photo_twice():
    """With --jobs a worker's last progress message can arrive after its photo's "done":
    the bar stays at 1 of 2, not 1.9 of 2 (it read "9/8" on long runs)."""
    import io

    from rich.console import Console

    from cloak import batch

    view = cli.BatchView(Console(file=io.StringIO(), width=120))
    item = batch.Item(Path("a.png"), Path("out/a.png"), batch.SKIPPED, "already protected")
    view.on_event(batch.Event("todo", total=2))
    view.on_event(batch.Event("start", item))
    view.on_event(batch.Event("done", item))
    view.on_event(batch.Event("progress", item, fraction=0.9))
    assert view.progress.tasks[0].completed == 1


def test_more_jobs_than_cores_uses_the_cores(tmp_path, small_photo, model_dir):
    from cloak import batch

    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY, "--jobs", "64")
    assert result.exit_code == 0, result.output
    assert f"using {batch.usable_cores()}" in result.stderr


def test_an_unreadable_record_is_warned_about_once_a_run(tmp_path, small_photo, model_dir,
                                                        caplog):
    """The run reads OUT's record to plan and again to run: a damaged one printed the
    same WARNING twice. Once a run: the next run (here in the same process, as a Python
    caller's would be) says it again, as it does a record damaged otherwise since."""
    photo = small_photo(tmp_path / "a.png")
    out = tmp_path / "out"
    assert invoke("protect", photo, "--out", out, *TINY).exit_code == 0
    for damage, said in (('{"trunc', "can't be read (not valid JSON"),
                         (None, "can't be read (not valid JSON"),  # as it was: said again
                         ('{"version": "x"}', "can't be read (record version 'x')"),
                         ('{"version": "y"}', "can't be read (record version 'y')")):
        if damage is not None:
            (out / ".cloak-manifest.json").write_text(damage)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cloak.manifest"):
            assert invoke("protect", photo, "--out", out, *TINY).exit_code == 2
        assert [r.getMessage() for r in caplog.records].count(
            next(r.getMessage() for r in caplog.records if said in r.getMessage())) == 1


def test_on_windows_jobs_stop_at_the_most_workers_its_pool_takes(monkeypatch, capsys):
    """Python's process pool refuses more than 61 workers on Windows: `--jobs 62` on a
    64-core Windows machine ended in a traceback ("max_workers must be <= 61"), nothing
    protected. It uses 61, saying why. (Windows simulated: sys.platform, 64 cores.)"""
    from cloak import batch

    monkeypatch.setattr(batch, "usable_cores", lambda: 64)
    assert batch.max_jobs() == 64  # elsewhere: the cores
    monkeypatch.setattr(sys, "platform", "win32")
    assert batch.max_jobs() == batch.WINDOWS_MAX_JOBS == 61
    assert cli.jobs_within_cores(62, batch.max_jobs()) == 61
    assert ("--jobs 62 is more than 61, the most worker processes Python runs on Windows; "
            "using 61") in capsys.readouterr().err

def test_warnings_print_above_the_progress_bar_and_logging_is_restored():
    import io
    import logging

    from rich.console import Console

    terminal = io.StringIO()
    view = cli.BatchView(Console(file=terminal, force_terminal=True, width=120))
    before = logging.getLogger().handlers[:]
    with view:
        logging.getLogger("cloak.io").warning("ignoring unreadable EXIF: %s", "bad IFD")
    assert "WARNING: ignoring unreadable EXIF: bad IFD" in terminal.getvalue()
    assert logging.getLogger().handlers == before


def test_json_dash_is_refused_not_written_as_a_file_named_dash(tmp_path, small_photo,
                                                             model_dir, monkeypatch):
    """`--json -`, the usual "to stdout", wrote a file named `-` in the current folder,
    silently. It is refused before any work, for protect and verify alike."""
    photo = small_photo(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    for args in (("protect", photo, "--out", tmp_path / "out", *TINY),
                 ("verify", photo, "--models", "taesd")):
        result = invoke(*args, "--json", "-")
        assert result.exit_code == 1, result.output
        assert "--json - would write a file named '-'" in result.stderr
    assert not (tmp_path / "-").exists() and not (tmp_path / "out").exists()
    # `./-` names that file on purpose: it was refused too ("--json - would write ...")
    result = invoke("verify", photo, "--models", "taesd", "--json", "./-")
    assert "would write a file named" not in result.output
    assert json.loads((tmp_path / "-").read_text())["kind"]


def test_a_result_line_to_a_pipe_takes_the_bar_off_the_terminal_first(monkeypatch):
    """stdout piped (`| tee log`) while the bar is on the terminal: each result line was
    written after the bar, on its row, behind a stale count. The bar is taken off the
    terminal before the line and comes back with the next photo's first step (not at
    once: the reader writes the line meanwhile). With stdout closed (`>&-`) its lines
    go nowhere: it was a traceback after the first photo, the rest unprotected."""
    import io

    from rich.console import Console

    from cloak import batch

    terminal, pipe = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)  # not a terminal
    view = cli.BatchView(Console(file=terminal, force_terminal=True, width=80))
    item = batch.Item(Path("a.png"), Path("out/a.png"), "pending")
    with view:
        view.on_event(batch.Event("todo", total=2))
        view.on_event(batch.Event("start", item))
        assert view.progress.live.is_started
        view.line("a.png -> out/a.png: PSNR 40.0 dB")
        assert pipe.getvalue() == "a.png -> out/a.png: PSNR 40.0 dB\n"
        assert not view.progress.live.is_started  # off the terminal before the line
        view.on_event(batch.Event("start", item))  # the next photo: not yet
        assert not view.progress.live.is_started
        view.on_event(batch.Event("progress", item, fraction=0.1))
        assert view.progress.live.is_started  # its first step: back
        view.line("b.png -> out/b.png: PSNR 40.0 dB")
        assert not view.progress.live.is_started
        view.line("c.png: failed, damaged", err=True)  # stderr is the bar's: back, above it
        assert view.progress.live.is_started and "c.png: failed" in terminal.getvalue()

        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        monkeypatch.setattr(sys, "stdout", Terminal())  # a terminal: printed above the bar
        view.line("d.png -> out/d.png: PSNR 40.0 dB")
        assert view.progress.live.is_started and "d.png -> out" in terminal.getvalue()
        monkeypatch.setattr(sys, "stdout", None)  # closed
        view.line("b.png -> out/b.png: PSNR 40.0 dB")
        view.line("a warning", err=True)
    assert "a warning" in terminal.getvalue()


def test_protect_options_reach_the_settings_and_the_file(tmp_path, small_photo,
                                                        model_dir):
    """Each attack option, as typed, is what the run used (its --json settings), and
    --eps N is in /255 in the saved file."""
    photo = small_photo(tmp_path / "a.png")
    mask = tmp_path / "mask.png"
    Image.new("L", (64, 48), 255).save(mask)
    report = tmp_path / "r.json"
    result = invoke("protect", photo, "--out", tmp_path / "out", "--json", report,
                    "--strength", "fast", "--steps", "1", "--models", "taesd",
                    "--no-measure", "--eps", "4", "--seed", "7", "--objective", "latent",
                    "--robust", "--mask", mask, "--editor-sizes", "256")
    assert result.exit_code == 0, result.output
    settings = json.loads(report.read_text())["settings"]
    assert {k: settings[k] for k in ("strength", "eps255", "steps", "models", "seed",
                                     "objective", "robust", "view_sizes", "mask_sha256")} == {
        "strength": "fast", "eps255": 4.0, "steps": 1, "models": ["taesd"], "seed": 7,
        "objective": "latent", "robust": True, "view_sizes": [256],
        "mask_sha256": sha256(mask)}
    before = np.asarray(Image.open(photo), np.int16)
    after = np.asarray(Image.open(tmp_path / "out" / "a.png"), np.int16)
    assert 0 < np.abs(after - before).max() <= 4


def test_json_settings_record_face_priority_as_it_ran(tmp_path, small_photo, model_dir,
                                                     no_face_detector):
    """Face priority asked for (the default) but no face detector: the copy is made
    without it, and the --json settings say so, as the copy's own report and the manifest
    do; `faces_asked` keeps what was asked. With the detector there, both say on."""
    photo, out, report = small_photo(tmp_path / "a.png"), tmp_path / "out", tmp_path / "r.json"
    result = invoke("protect", photo, "--out", out, "--json", report, *TINY)
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())
    assert summary["settings"]["faces"] is False and summary["faces_asked"] is True
    [made] = summary["files"]
    entry = json.loads((out / MANIFEST_NAME).read_text())["photos"]["a.png"]
    assert summary["settings"] == made["report"]["settings"] == entry["settings"]
    (no_face_detector / "yunet_n_dynamic.onnx").symlink_to(model_dir / "yunet_n_dynamic.onnx")
    result = invoke("protect", photo, "--out", out, "--json", report, "--force", *TINY)
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())
    assert summary["settings"]["faces"] is True and summary["faces_asked"] is True


def test_a_json_path_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    """Reading a FIFO to see whether it is a report would wait forever."""
    import threading

    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    answer: list[bool] = []
    reader = threading.Thread(target=lambda: answer.append(cli.is_cloak_report(fifo)),
                              daemon=True)
    reader.start()
    reader.join(5)
    assert answer == [False]


def test_figures_show_rounded_down_as_their_thresholds_judge_them():
    """2.996 dB is "moderate" (strong is >= 3): shown as 3.00 it would contradict its
    verdict on the same line; a receipt score of 0.357 is below the 0.36 threshold."""
    assert (shown_db(2.996), verdict_for(2.996)) == ("2.99", "moderate")
    assert (shown_db(3.0), verdict_for(3.0)) == ("3.00", "strong")
    assert shown_db(0.357, sign="+") == "+0.35" and shown_db(0.36, sign="+") == "+0.36"
    assert [shown_db(v) for v in (0.29, 4.57, -1.23, 1.5)] == ["0.29", "4.57", "-1.23", "1.50"]
    assert shown_db(-0.004, sign="+") == "-0.01" and shown_db(1.5, ">8") == "    1.50"
    assert (shown_db(2.96, places=1), verdict_for(2.96)) == ("2.9", "moderate")


def test_an_output_folder_inside_the_input_is_not_said_to_be_skipped_whole(
        tmp_path, small_photo, model_dir):
    """`--out` the input folder itself: a rerun leaves the copies out and protects the
    other photos, and its line said "photos: skipped, ... other photos in it are"."""
    folder = tmp_path / "photos"
    small_photo(folder / "a.png")
    assert invoke("protect", folder, "--out", folder, *TINY).exit_code == 0
    small_photo(folder / "b.png", index=1)
    again = invoke("protect", folder, "--out", folder, *TINY)
    assert again.exit_code == 0, again.output
    assert f"{folder}: its 1 protected copy is skipped (a cloak output folder" in \
        again.stderr
    assert "skipped, its" not in again.stderr
    assert (folder / "photos" / "b.png").is_file()


def test_verify_says_what_as_is_means_for_a_copy_that_came_back_smaller(
        tmp_path, small_photo, model_dir):
    """A copy downloaded back from a platform (resized) was labelled "as is (before
    posting)", which it is not."""
    src = small_photo(tmp_path / "a.png", size=(128, 96))
    with Image.open(src) as im:
        im.resize((64, 48), Image.LANCZOS).save(tmp_path / "back.png")
    result = invoke("verify", src, tmp_path / "back.png", "--models", "taesd",
                    "--channels", "as-is")
    assert result.exit_code == 0, result.output
    assert "as is (the copy as given, already resized): " in result.stdout
    assert "before posting" not in result.stdout
    with Image.open(src) as im:  # trimmed, not resized: a trial found it called resized
        im.crop((6, 4, 128, 96)).save(tmp_path / "cut.png")
    result = invoke("verify", src, tmp_path / "cut.png", "--models", "taesd",
                    "--channels", "as-is")
    assert result.exit_code == 0, result.output
    assert "as is (the copy as given, already cropped): " in result.stdout


def test_verify_folders_names_the_copies_it_leaves_out(tmp_path, small_photo, model_dir):
    """A folder's copies are in its mirror (OUT/photos); a photo protected alone into the
    same OUT lands beside it and was left out in silence (a trial counted 6 pairs for 7
    copies)."""
    folder = tmp_path / "photos"
    a = small_photo(folder / "a.png")
    small_photo(folder / "b.png", index=1)
    out = tmp_path / "out"
    assert invoke("protect", folder, "--out", out, *TINY).exit_code == 0
    assert invoke("protect", a, "--out", out, *TINY).exit_code == 0  # out/a.png
    report = tmp_path / "r.json"
    result = invoke("verify", folder, out, "--models", "taesd", "--channels", "as-is",
                    "--json", report)
    assert result.exit_code == 0, result.output
    assert "2 pair(s) measured" in result.stdout
    assert f"note: 1 other photo(s) in {out}, outside {out / 'photos'}" in result.stderr
    assert json.loads(report.read_text())["left_out"] == [str(out / "a.png")]


def test_verify_folders_names_the_pair_a_note_is_about(tmp_path, small_photo, model_dir):
    """Notes go to stderr, pair lines to stdout: redirected to one file they no longer
    interleave line by line, and a trial read "the photos are transparent" at the end of
    a folder with one transparent photo of six. Each note names its pair."""
    folder = tmp_path / "photos"
    small_photo(folder / "a.png")
    with Image.open(small_photo(folder / "cut.png", index=1)) as im:
        cut = im.convert("RGBA")
    cut.putalpha(128)
    cut.save(folder / "cut.png")
    out = tmp_path / "out"
    assert invoke("protect", folder, "--out", out, *TINY).exit_code == 0
    result = invoke("verify", folder, out, "--models", "taesd", "--channels", "instagram")
    assert result.exit_code == 0, result.output
    assert "note on photos/cut.png: the photos are transparent" in result.stderr
    assert "note on photos/a.png" not in result.stderr


def test_strip_names_reaches_the_copy(tmp_path, small_photo, model_dir):
    """--strip-names drops the owner's name a camera writes into every photo; the date
    stays."""
    from PIL import ExifTags

    src = small_photo(tmp_path / "a.jpg")
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Jane Doe"
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "2024:05:01 12:00:00"}
    with Image.open(src) as im:
        im.save(src, quality=95, exif=exif.tobytes())
    result = invoke("protect", src, "--out", tmp_path / "out", "--strip-names", *TINY)
    assert result.exit_code == 0, result.output
    copy = tmp_path / "out" / "a.jpg"
    assert b"Jane Doe" not in copy.read_bytes()
    with Image.open(copy) as out:
        assert out.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == \
            "2024:05:01 12:00:00"



def test_ctrl_c_while_a_command_loads_torch_says_interrupted(capsys):
    """torch loads inside each command now (a second or two before any work): a Ctrl-C
    then ends with the line a Ctrl-C before any photo gives, and exit 130 (typer's own
    handling would end silently)."""
    import typer

    with pytest.raises(typer.Exit) as stopped, cli.loading_libraries():
        raise KeyboardInterrupt  # as it lands during an import
    assert stopped.value.exit_code == 130
    assert capsys.readouterr().err.strip() == "Interrupted; nothing was written."


def test_a_batch_failure_in_json_names_its_photo_as_the_console_does(tmp_path, small_photo,
                                                                     model_dir):
    """A failure the batch itself finds (a file of the user's at the copy's name) reads in
    --json as on the console, starting with the photo's path, as io's messages do."""
    src = small_photo(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").write_bytes(b"the user's own file")
    report = tmp_path / "r.json"
    result = invoke("protect", src, "--out", out, "--json", report, *TINY)
    assert result.exit_code == 2, result.output
    (entry,) = json.loads(report.read_text())["files"]
    assert entry["status"] == "failed" and "not made by cloak" in entry["error"]
    assert entry["error"].startswith(f"{src}: output ")
    assert entry["error"] in result.stderr
    assert (out / "x.png").read_bytes() == b"the user's own file"


def test_a_seed_out_of_range_is_refused_as_the_option_it_is(tmp_path, small_photo):
    """--seed -5 read "error: seed must be a whole number in [0, 2^63)", naming no option,
    where --seed abc names --seed: both are the option's usage errors now (exit 1)."""
    small_photo(tmp_path / "a.png")
    for seed in ("-5", str(2 ** 63), "abc"):
        proc = cloak_process("protect", "a.png", "--out", "o", "--seed", seed, cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: Invalid value for '--seed': "), line
    assert not (tmp_path / "o").exists()


def test_a_bug_in_cloaks_reader_is_reported_as_a_bug_not_as_a_corrupt_photo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A KeyError raised in cloak's own chunk reader made `cloak protect` say "good.png:
    the image data is truncated or corrupt ('cICP')" of a good photo; it is cloak's bug,
    said so, and the photo is left as it was."""
    import cloak.io

    photo = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(photo)
    before = sha256(photo)
    scope: dict = {}
    exec(compile("def png_cicp(fp, max_chunks=4096):\n    return {}['cICP']\n",  # noqa: S102
                 cloak.io.__file__, "exec"), scope)  # as if in cloak's own file
    monkeypatch.setattr(cloak.io, "png_cicp", scope["png_cicp"])
    result = invoke("protect", photo, "--out", tmp_path / "out", *TINY)
    assert result.exit_code == 2
    assert "unexpected error (KeyError: 'cICP'); please report it" in result.output
    assert "corrupt" not in result.output and sha256(photo) == before


def test_verify_out_of_memory_on_a_gpu_advises_the_cpu():
    """verify's folder rows said "not enough memory to compare them" of a GPU's memory
    too, and a pair's line "compare a smaller copy of both" (the photos are resized before
    the models see them): on a GPU the advice is the CPU, as protect's is."""
    gpu = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    cpu = MemoryError()
    on_gpu = cli.item_failure(gpu, "to compare them", "compare a smaller copy of both")
    assert on_gpu == ("not enough GPU memory to compare them; close other programs using "
                      "the GPU, or use --device cpu")
    assert cli.item_failure(cpu, "to compare them", "compare a smaller copy of both") == (
        "not enough memory to compare them; close other programs, or compare a smaller "
        "copy of both")
    with pytest.raises(RuntimeError, match="shape mismatch"):  # a bug is raised again
        cli.item_failure(RuntimeError("shape mismatch"), "to compare them", "")


def test_verify_names_the_photo_a_warning_is_about(tmp_path, small_photo, model_dir, caplog):
    """verify printed Pillow's warning on a malformed EXIF block as Python's two lines
    naming Pillow's source file, with no word of which photo (a folder's lines could not
    be told apart); it is one line naming the photo, as protect's."""
    from cloak.naming import name_photos

    name_photos(caplog.handler)  # as main() gives the CLI's handler
    odd = tmp_path / "odd.jpg"
    with Image.open(small_photo(tmp_path / "src.png", (96, 64))) as im:
        im.convert("RGB").save(odd, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    with caplog.at_level("WARNING"):
        result = invoke("verify", odd, "--models", "taesd")
    assert result.exit_code == 0, result.output
    [line] = [r.getMessage() for r in caplog.records if "Corrupt EXIF" in r.getMessage()]
    assert line.startswith(f"{odd}: Corrupt EXIF data") and "\n" not in line


def test_the_mask_in_a_folder_given_is_not_protected_as_a_photo(tmp_path, small_photo,
                                                               model_dir):
    """A --mask kept beside the photos (in the folder given) matched its own shape, so
    it was protected into OUT as one more photo, costing its time. It is skipped, said
    so; the photos are protected with it."""
    folder = tmp_path / "in"
    small_photo(folder / "a.png", size=(96, 64))
    Image.new("L", (96, 64), 255).save(folder / "mask.png")
    out = tmp_path / "out"
    result = invoke("protect", folder, "--out", out, "--mask", folder / "mask.png", *TINY)
    assert result.exit_code == 0, result.output
    assert f"{folder / 'mask.png'}: skipped, the --mask file, not a photo to protect" \
        in result.stderr
    assert "1 protected, 1 skipped, 0 failed" in result.stderr
    assert sorted(p.name for p in (out / "in").iterdir()) == ["a.png"]


@pytest.mark.parametrize("allow", ["--overwrite", "--force"])
def test_the_mask_at_a_copys_name_is_never_replaced(tmp_path, small_photo, model_dir, allow):
    """The --mask kept in the folder used as --out, at a photo's output name (or its
    --preview sheet's): "pass --overwrite to replace it" was the advice, and --overwrite
    (or --force) replaced the mask with the copy, and protected the run's later photos
    with that copy as their mask, recorded as made with the mask. The photo is refused,
    the mask kept, and the others protected with it."""
    a = small_photo(tmp_path / "a.png", size=(96, 64))
    b = small_photo(tmp_path / "b.png", size=(96, 64), index=1)
    out = tmp_path / "out"
    out.mkdir()
    left = np.zeros((64, 96), np.uint8)
    left[:, :48] = 255
    for name in ("a.png", "c.png.preview.png"):
        Image.fromarray(left).save(out / name)
    mask_bytes = (out / "a.png").read_bytes()
    result = invoke("protect", a, b, "--out", out, "--mask", out / "a.png", allow, *TINY)
    assert result.exit_code == 2, result.output
    assert (f"{a}: its output {out / 'a.png'} would replace the --mask file; choose another "
            "--out folder, or keep the mask elsewhere") in result.stderr
    assert (out / "a.png").read_bytes() == mask_bytes
    Image.fromarray(left).save(tmp_path / "mask.png")  # the same mask, elsewhere
    again = invoke("protect", b, "--out", tmp_path / "control", "--mask",
                   tmp_path / "mask.png", *TINY)
    assert again.exit_code == 0, again.output
    assert (out / "b.png").read_bytes() == (tmp_path / "control" / "b.png").read_bytes()
    c = small_photo(tmp_path / "c.png", size=(96, 64), index=2)
    sheet = out / "c.png.preview.png"
    result = invoke("protect", c, "--out", out, "--mask", sheet, "--preview", allow, *TINY)
    assert result.exit_code == 2, result.output
    assert f"its preview sheet {sheet} would replace the --mask file" in result.stderr
    assert sheet.read_bytes() == mask_bytes and not (out / "c.png").exists()


def test_the_mask_is_never_replaced_by_protect_file(tmp_path, small_photo, model_dir):
    """The API's one photo: a copy (or its sheet) at the mask's name is refused before
    the work, whatever `overwrite` says."""
    from cloak import ProtectConfig, protect_file
    from cloak.errors import OutputError

    photo = small_photo(tmp_path / "a.png", size=(96, 64))
    mask = tmp_path / "x.png.preview.png"  # also x.png's sheet's name
    Image.new("L", (96, 64), 255).save(mask)
    before = mask.read_bytes()
    config = ProtectConfig(strength="fast", steps=1, models=("taesd",), mask_path=str(mask),
                           measure=False)
    with pytest.raises(OutputError, match="is the mask file"):
        protect_file(photo, mask, config, overwrite=True)
    with pytest.raises(OutputError, match="x.png.preview.png is the mask file"):
        protect_file(photo, tmp_path / "x.png", config.replace(preview=True), overwrite=True)
    assert mask.read_bytes() == before and not (tmp_path / "x.png").exists()


def test_a_tilde_the_shell_left_in_mask_and_json_is_the_home_folder(
        tmp_path, small_photo, model_dir, monkeypatch):
    """`--mask=~/m.png --json=~/r.json`: the shell leaves a ~ after = as it is; it means
    the home folder (as README says), not a folder named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    Image.new("L", (64, 48), 255).save(tmp_path / "home" / "m.png")
    monkeypatch.chdir(tmp_path)
    photo = small_photo(tmp_path / "a.png")
    result = invoke("protect", photo, "--out", tmp_path / "out", "--mask=~/m.png",
                    "--json=~/r.json", *TINY)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "home" / "r.json").read_text())
    assert report["settings"]["mask_sha256"] and not (tmp_path / "~").exists()


def test_an_empty_mask_or_json_is_refused_not_read_as_this_folder(tmp_path, small_photo):
    """`--mask "$MASK"` with MASK unset: typer read "" as the current folder ("can't read
    mask .: is a folder"); so for --json ("--json . is a folder")."""
    photo = small_photo(tmp_path / "a.png")
    for option, words in (("--mask", "give the mask image"),
                          ("--json", "give the report's file name")):
        result = invoke("protect", photo, "--out", tmp_path / "out", option, "", *TINY)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {option} is empty: {words}"), result.stderr
    result = invoke("verify", photo, "--json", " ")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --json is empty"), result.stderr
    assert not (tmp_path / "out").exists()


def test_a_mask_that_cant_be_read_is_said_in_plain_words(tmp_path, small_photo, model_dir):
    """Not Python's or Pillow's own text ("[Errno 21] Is a directory", "cannot identify
    image file"): the words a photo of the same kind gets. A FIFO is refused, not waited
    on forever."""
    photo = small_photo(tmp_path / "a.png")
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("my notes")
    expected = {"folder": "is a folder, not a photo", "empty.png": "the file is empty",
                "notes.png": "not an image cloak can read"}
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        expected["pipe.png"] = "not a regular file"
    for name, words in expected.items():
        result = invoke("protect", photo, "--out", tmp_path / "out", *TINY,
                        "--mask", tmp_path / name)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: can't read mask {tmp_path / name}: {words}"), \
            result.stderr
        assert "Errno" not in result.stderr and "cannot identify" not in result.stderr


def test_a_weak_verdict_says_what_to_do():
    """`cloak verify` said "verdict: weak (worst channel: crop)" at the recommended preset
    and stopped there; protect and the app give advice for such copies. The note names a
    crop after protecting where the copy carries more as it is, else a stronger preset;
    none for moderate or strong, nor for a copy with no protection even as it is."""
    from types import SimpleNamespace

    def verification(verdict, as_is, channel):
        return SimpleNamespace(verdict=verdict, verdict_as_is=as_is,
                               worst=SimpleNamespace(channel=channel))

    crop = cli.weak_verdict_advice(verification("weak", "moderate", "crop"))
    assert crop.startswith("most of this copy's protection is lost to a crop of a few "
                           "pixels (crop; as it is, it is moderate): post it as it is, and "
                           "crop or resize before protecting, not after")
    assert crop.endswith("protect the original again with --strength high, which keeps more")
    posted = cli.weak_verdict_advice(verification("weak", "weak", "instagram"))
    assert posted.startswith("to make it stronger, protect the original again with "
                             "--strength high")
    assert cli.weak_verdict_advice(verification("moderate", "strong", "crop")) is None
    assert cli.weak_verdict_advice(verification("none", "none", "as-is")) is None


def test_names_too_long_for_the_disk_fail_their_photo_alone(tmp_path, small_photo, model_dir):
    """Two folders of one 253-byte name: the second's mirror `NAME (2)` (257 bytes) and a
    deep tree whose copies' path passes PATH_MAX each stopped the whole run: "error: can't
    read or write ...: File name too long", exit 1, the other photos unreported (and
    --json listing none, though one was written). The mirror name is cut to fit; the
    deep photo fails on its own line, and the run goes on."""
    name = "z" * 253
    first = small_photo(tmp_path / "X" / name / "p.png")
    second = small_photo(tmp_path / "Y" / name / "p.png")
    out = tmp_path / "out"
    result = invoke("protect", first.parent, second.parent, "--out", out, "--model-dir",
                    model_dir, *TINY)
    assert result.exit_code == 0, result.output
    cut = "z" * 251 + " (2)"
    assert (out / name / "p.png").is_file() and (out / cut / "p.png").is_file()
    again = invoke("protect", first.parent, second.parent, "--out", out, "--model-dir",
                   model_dir, *TINY)
    assert "0 protected, 2 skipped" in again.output, again.output
    # a tree whose copies would lie past PATH_MAX (4,096 bytes here), beside a short one
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    deep = tmp_path / "D"
    while len(os.fsencode(deep)) < limit - 300:
        deep /= "d" * 200
    shallow = small_photo(tmp_path / "D" / "q.png")
    too_deep = small_photo(deep / "p.png")
    long_out = tmp_path / ("P" * 200)
    report = tmp_path / "run.json"
    result = invoke("protect", tmp_path / "D", "--out", long_out, "--json", report,
                    "--model-dir", model_dir, *TINY)
    assert result.exit_code == 2, result.output
    assert "Done: 1 protected, 1 failed." in result.output
    assert f"{too_deep}: " in result.output and "File name too long" in result.output
    assert "give the photo a shorter name, or choose another --out folder" in result.output
    assert (long_out / "D" / "q.png").is_file() and shallow.is_file()
    files = json.loads(report.read_text())["files"]
    assert sorted(f["status"] for f in files) == ["failed", "protected"]


def test_a_preview_sheet_name_too_long_is_named_as_the_sheet(tmp_path, small_photo,
                                                              model_dir):
    """A 250-byte photo name, with --preview: its sheet's name (262 bytes) can't be made.
    A second run blamed the copy ("can't check its output ....jpg"), whose name fits."""
    photo = small_photo(tmp_path / "A" / ("x" * 246 + ".png"))
    small_photo(tmp_path / "A" / "b.png")  # protected: its folder is there on the rerun
    out = tmp_path / "out"
    for _ in range(2):
        result = invoke("protect", photo.parent, "--out", out, "--preview", "--model-dir",
                        model_dir, *TINY)
        assert result.exit_code == 2, result.output
        assert f"{photo.name}.preview.png: File name too long; give the photo a shorter " \
               "name" in result.output, result.output


def test_no_report_is_written_into_an_output_folder_removed_during_the_run(
        tmp_path, small_photo, model_dir, monkeypatch):
    """`--json OUT/report.json`, OUT removed after the first photo: the run said "nothing
    more is written there", then made OUT again to write the report into it (or into
    another run's OUT at that name). A report elsewhere is still written."""
    photos = [small_photo(tmp_path / "in" / f"p{i}.png", index=i) for i in range(2)]
    seen = cli.BatchView.on_event

    def removing_out(view, event):
        seen(view, event)
        if event.kind == "done" and event.item.src == photos[0] and out.exists():
            shutil.rmtree(os.path.realpath(out))

    monkeypatch.setattr(cli.BatchView, "on_event", removing_out)
    for name in ("real", "real2"):  # OUT and --json spelt otherwise, through a link
        (tmp_path / name).mkdir()
        (tmp_path / f"link{name[4:]}").symlink_to(tmp_path / name)
    for out, report in ((tmp_path / "out", tmp_path / "out" / "report.json"),
                        (tmp_path / "link", tmp_path / "real" / "report.json"),
                        (tmp_path / "real2", tmp_path / "link2" / "report.json"),
                        (tmp_path / "out2", tmp_path / "report.json")):
        result = invoke("protect", *photos, "--out", out, "--json", report, *TINY)
        assert result.exit_code == 2, result.output
        assert "was removed, moved or replaced during this run" in result.output
        assert not os.path.exists(out)
        if report.parent != tmp_path:
            assert not report.exists()
            assert ("--json: the report is not written: " in result.output
                    and "inside the output folder, which was removed, moved or replaced "
                    "during the run" in result.output), result.output
        else:
            assert json.loads(report.read_text())["counts"]["failed"] == 1
