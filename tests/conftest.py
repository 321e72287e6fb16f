"""Shared fixtures: real weights from ../shared/models, a tiny config, small real photos."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _shared_folder() -> Path:
    """The shared folder (weights in models/, dev photos in photos/dev/): beside the
    project root, as CI has it; for a clone elsewhere, the folder that holds
    $CLOAK_MODEL_DIR (the README's commands name it)."""
    beside = Path(__file__).resolve().parents[2] / "shared"
    named = os.environ.get("CLOAK_MODEL_DIR")
    if not beside.is_dir() and named:
        return Path(named).expanduser().resolve().parent
    return beside


SHARED = _shared_folder()
MODELS = SHARED / "models"
PHOTOS = SHARED / "photos" / "dev"


def missing(reason: str, module_level: bool = False) -> None:
    """Something the tests need is absent (a shared file, PySide6): fail when
    CLOAK_MODEL_DIR is set (CI and the README's test command, which install everything and
    name the shared folder), so a suite that skips everything cannot pass as green; skip
    otherwise (a whole module when `module_level`)."""
    if os.environ.get("CLOAK_MODEL_DIR"):
        pytest.fail(f"{reason} (CLOAK_MODEL_DIR is set: CI's full set-up is expected)",
                    pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


@pytest.fixture(scope="session", autouse=True)
def private_system_temp() -> Iterator[Path]:
    """The system's temporary folder, for this run alone (tempfile's, and $TMPDIR for the
    processes tests start): cloak looks for weights last in `cloak-<uid>-weights` there
    (weights.fallback_dir), which a real cloak run with an unwritable cache may have left
    in /tmp; tests that expect weights to be missing must not find them. A new folder in
    the real one, open to all for reading (a test drops to `nobody` to meet a real EACCES:
    pytest's own folders are root's 0700 in CI), removed at the end."""
    import shutil
    import tempfile

    before, before_env = tempfile.tempdir, os.environ.get("TMPDIR")
    folder = Path(tempfile.mkdtemp(prefix="cloak-tests-"))
    folder.chmod(0o755)
    tempfile.tempdir, os.environ["TMPDIR"] = str(folder), str(folder)
    yield folder
    tempfile.tempdir = before
    if before_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before_env
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """The real weights' folder, for fixtures wider than one test: `$CLOAK_MODEL_DIR` (as
    CI sets it), else ../shared/models. Missing weights fail the run when CLOAK_MODEL_DIR
    names the folder (CI), so a suite that skips everything cannot pass as green; without
    it the weight-dependent tests skip."""
    named = os.environ.get("CLOAK_MODEL_DIR")
    folder = Path(named).expanduser().resolve() if named else MODELS
    if not (folder / "taesd_encoder.safetensors").is_file():
        if named:
            pytest.fail(f"CLOAK_MODEL_DIR={named}: no weights there (taesd_encoder.safetensors)")
        pytest.skip(f"weights not found in {folder}")
    return folder


@pytest.fixture
def model_dir(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point cloak at the real weights (and never download); skip if they are missing."""
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(weights_dir))
    monkeypatch.setenv("CLOAK_OFFLINE", "1")
    return weights_dir


@pytest.fixture
def no_face_detector(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> Path:
    """Point cloak at a folder with taesd's real weights but no face detector, an empty
    user cache and no downloads: faces asked for can't be found. Returns the folder (link
    the detector in to make it found)."""
    from cloak.models import weights

    folder = tmp_path / "weights-without-faces"
    folder.mkdir()
    for part in model_dir.glob("taesd_*"):
        (folder / part.name).symlink_to(part)
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(folder))
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "empty-cache")
    return folder


@pytest.fixture
def tiny_config(model_dir: Path):
    """The fastest real run: one step of taesd at 128 px, no face search, no measuring."""
    from cloak import ProtectConfig

    return ProtectConfig(strength="fast", steps=1, models=("taesd",), working_size=128,
                         faces=False, measure=False)


@pytest.fixture
def small_photo() -> Callable[..., Path]:
    """`small_photo(path, size=(64, 48), index=0)`: write a crop of a real dev photo, in the
    format `path`'s suffix names, and return `path`. Missing photos: see `missing`."""
    sources = sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    if not sources:
        missing(f"no dev photos in {PHOTOS}")

    def make(path: Path, size: tuple[int, int] = (64, 48), index: int = 0) -> Path:
        from PIL import Image

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(sources[index % len(sources)]) as im:
            im = im.convert("RGB")
            side = min(im.size)
            im = im.crop((0, 0, side, side)).resize(size)
        im.save(path)
        return path

    return make


@pytest.fixture
def bf16_env(monkeypatch: pytest.MonkeyPatch):
    """`bf16_env("0" | "1" | None, hardware=None)`: set CLOAK_CPU_BF16 (None: unset) and
    forget the cached check, before and after the test; `hardware` True or False stands
    in for this CPU's own bf16 flags (None: the real ones)."""
    from cloak import device
    from cloak.device import cpu_has_fast_bf16

    def set_to(value: str | None, hardware: bool | None = None) -> None:
        if value is None:
            monkeypatch.delenv("CLOAK_CPU_BF16", raising=False)
        else:
            monkeypatch.setenv("CLOAK_CPU_BF16", value)
        if hardware is not None:
            monkeypatch.setattr(device, "cpu_bf16_in_hardware", lambda: hardware)
        cpu_has_fast_bf16.cache_clear()

    yield set_to
    cpu_has_fast_bf16.cache_clear()


@pytest.fixture
def lock_folder(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """`lock_folder(folder)`: make `folder` behave as a folder of mode 000 does for a normal
    user (CI runs as root, for whom permissions stop nothing): listing it, and reaching
    anything in it, fail with EACCES; the folder itself can still be looked at."""

    def lock(folder: Path) -> None:
        real = {name: getattr(os, name) for name in ("stat", "lstat", "scandir")}

        def refusing(name):
            def call(path, *args, **kwargs):
                p = Path(os.fsdecode(path))
                if folder in p.parents or (name == "scandir" and p == folder):
                    raise PermissionError(13, "Permission denied", str(p))
                return real[name](path, *args, **kwargs)
            return call

        for name in real:
            monkeypatch.setattr(os, name, refusing(name))

    return lock


@pytest.fixture
def read_only_folder(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """`read_only_folder(folder)`: no file can be created in `folder` (a read-only card or
    share; simulated, as CI runs as root): os.open there fails with EACCES."""

    def make_read_only(folder: Path) -> None:
        real_open = os.open

        def refusing(path, *args, **kwargs):
            if Path(os.fsdecode(path)).parent == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing)

    return make_read_only


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real file system with no space left: a 64 KB tmpfs mounted at
    tmp_path/full and filled to the last byte (an empty file still fits, as on a full
    disk). Mounting needs root (CI runs as root); where it can't mount, the test is
    skipped, or fails where CI's full set-up is expected (`missing`)."""
    yield from _small_disk(tmp_path / "full", fill=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real 64 KB tmpfs, empty: a larger file's write stops part-way
    (a short write, then ENOSPC). Mounting as for `full_disk`."""
    yield from _small_disk(tmp_path / "small", fill=False)


def _small_disk(folder: Path, fill: bool) -> Iterator[Path]:
    import subprocess

    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
            capture_output=True, check=False)
    except OSError as exc:  # no mount command
        missing(f"can't mount a small tmpfs here: {exc}")
    if mounted.returncode:
        missing(f"can't mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        if fill:
            fd = os.open(folder / ".filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # ENOSPC: full
            finally:
                os.close(fd)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def spelt_as_the_disk_lists(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, str], Path]:
    """`spelt_as_the_disk_lists(folder, listed)`: make `folder` (a folder of files) one
    folder under two spellings, as a disk that normalises names has it (HFS+ lists `Été`
    in NFD; APFS and exFAT ignore case): `folder` is renamed to `listed`, and `folder`'s
    own spelling stays reachable as a twin whose files are hard links of the listed one's,
    with its times, which os.listdir no longer shows (same_path.spelt_as_one then takes the
    two for one, as on such a disk). Returns the listed path."""

    def spell(folder: Path, listed: str) -> Path:
        listed_path = folder.with_name(listed)
        folder.rename(listed_path)
        folder.mkdir()
        for child in listed_path.iterdir():  # (a subfolder: reached through a link)
            if child.is_dir():
                (folder / child.name).symlink_to(child, target_is_directory=True)
            else:
                os.link(child, folder / child.name)
        st = listed_path.stat()
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
        real_listdir = os.listdir
        parent, hidden = os.path.realpath(folder.parent), folder.name

        def as_listed(path=".") -> list:
            names = real_listdir(path)
            if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes) and \
                    os.path.realpath(path) == parent:
                names = [n for n in names if n != hidden]
            return names

        monkeypatch.setattr(os, "listdir", as_listed)
        return listed_path

    return spell
