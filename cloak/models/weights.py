"""Find, download, verify and load the autoencoder weights.

Lookup order for each file: an explicit model dir, then `$CLOAK_MODEL_DIR`, then the user
cache dir, then the per-user temporary folder that downloads go to while the cache dir is
not writable (fallback_dir), then a download from the public address into the cache (or,
where it is not writable, into that temporary folder; progress via callback).
Weights load only through safetensors or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import getpass
import hashlib
import http.client
import io
import logging
import os
import re
import stat
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..errors import ModelError
from ..report import plural
from .fetch import (
    MAX_DOWNLOAD_BYTES,
    CacheNotWritable,
    DownloadProgress,
    download_deadline,
    downloads_off,
    downloads_off_reason,
    fetch,
    network_reason,
    no_network,
    remove_stale_downloads,
)
from .registry import (
    FACE_DETECTOR,
    FACE_DETECTOR_URL,
    FINGERPRINTS,
    KNOWN_SHA256,
    KNOWN_VALUES,
    MODELS,
    PARTS,
    UPSTREAM_URL,
    ModelSpec,
)

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth")


def cache_dir() -> Path:
    """The per-user cache folder for downloaded weights."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cloak")) / "models"


def fallback_dir() -> Path:
    """The per-user temporary folder downloads go to where the cache folder can't be
    created or written (a read-only home, a locked-down account): `cloak-<uid>-weights`
    in the system's temporary folder (on Windows, where there is no uid, the user's name;
    its temporary folder is the user's own)."""
    if hasattr(os, "getuid"):
        who = str(os.getuid())
    else:
        try:
            who = getpass.getuser()
        except (OSError, KeyError, ImportError):  # no user name at all
            who = ""
        who = re.sub(r"[^A-Za-z0-9_.-]", "_", who) or "user"
    return Path(tempfile.gettempdir()) / f"cloak-{who}-weights"


def _unsafe_folder(folder: Path) -> str | None:
    """Why `folder` may not hold cloak's downloads, or None where it may: it must be a
    folder, not a link, owned by this user and writable by no one else. (Anyone may
    create a folder of that name in a shared /tmp first, to feed us their files.)"""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(info.st_mode):
        return "it is a link"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if hasattr(os, "getuid"):  # (Windows: a per-user temporary folder, no such modes)
        if info.st_uid != os.getuid():
            return "it belongs to another user"
        if info.st_mode & 0o022:
            return "others may write to it"
    return None


def _fallback_found() -> Path | None:
    """fallback_dir() where it exists and is safe to read weights from (else None,
    silently: a folder of that name someone else made is only named when cloak would
    write to it)."""
    folder = fallback_dir()
    if not os.path.lexists(folder):
        return None
    problem = _unsafe_folder(folder)
    if problem is not None:
        log.debug("not looking for weights in %s: %s", folder, problem)
        return None
    return folder


def _own_folders() -> tuple[Path, Path]:
    """The folders that hold cloak's own downloads (checked against their pins, fetched
    again when damaged): the cache, and the temporary folder used while it's unwritable."""
    return cache_dir(), fallback_dir()


def search_dirs(model_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for weights, in order (`~` expanded). A $CLOAK_MODEL_DIR that is
    not a folder is still listed (it may be created later), with one warning per value.
    fallback_dir() comes last, and only where it exists (and is safe: _unsafe_folder)."""
    dirs = []
    if model_dir:
        dirs.append(Path(os.path.expanduser(model_dir)))
    if os.environ.get("CLOAK_MODEL_DIR"):
        from_env = Path(os.path.expanduser(os.environ["CLOAK_MODEL_DIR"]))
        if not from_env.is_dir():
            _warn_once(f"CLOAK_MODEL_DIR={os.environ['CLOAK_MODEL_DIR']} is not a folder; "
                       "no weights are found there")
        dirs.append(from_env)
    dirs.append(cache_dir())
    fallback = _fallback_found()
    if fallback is not None and fallback not in dirs:
        dirs.append(fallback)
    return dirs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path, check_pin: bool = True) -> dict[str, torch.Tensor]:
    """Read a `.safetensors` or `.pth` state dict safely, as fp32 tensors. The bytes are
    read once: a pinned file's sha256 is checked on the very bytes that are loaded (a
    file swapped in a shared folder between a check and a load can't slip through);
    PinMismatch where it differs, unless not `check_pin`."""
    return _read_checked(path, other_bytes_ok=not check_pin)[0]


def _read_checked(path: Path, other_bytes_ok: bool
                  ) -> tuple[dict[str, torch.Tensor], PinMismatch | None]:
    """read_state_dict's work, from one read: the state and, where the name's pinned
    sha256 differs from the bytes, the PinMismatch (raised at once, before the bytes are
    parsed, unless `other_bytes_ok`)."""
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):  # a fifo would wait for a writer forever
            raise ModelError(_not_weights(path, found))
        if found.st_size > MAX_DOWNLOAD_BYTES:  # read whole, it would take that memory
            raise UnreadableWeights(
                f"can't read weights {path}: it is {found.st_size >> 20} MB, where the "
                "weights are a few MB (not a weights file)")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"can't read weights {path}: {exc.strerror or exc}") from exc
    try:
        check_pinned(path, hashlib.sha256(data).hexdigest())
        mismatch = None
    except PinMismatch as exc:
        if not other_bytes_ok:
            raise
        mismatch = exc
    try:
        return _parse_state(path, data), mismatch
    except ModelError:
        if mismatch is not None:  # other bytes that do not even load: damaged, and the
            raise mismatch from None  # pin's message says what to do about it
        raise


def _not_weights(path: Path, found: os.stat_result) -> str:
    """What to say of `path` (`found` its stat), at a weight file's name but not a file:
    "PATH is a folder, not a weights file: move it away ..."."""
    mode = found.st_mode
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    link = f" (a link to {os.readlink(path)})" if os.path.islink(path) else ""
    return (f"{path}{link} is {kind}, not a weights file: move it away (cloak then looks "
            "in the next place, or downloads the file)")


def _looks_like_safetensors(data: bytes) -> bool:
    """safetensors' layout: an 8-byte little-endian header length, then that much JSON."""
    size = int.from_bytes(data[:8], "little")
    return len(data) > 8 and 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def _looks_like_torch_save(data: bytes) -> bool:
    """torch.save's zip format, or its older pickle (protocol 2)."""
    return data[:4] == b"PK\x03\x04" or data[:2] == b"\x80\x02"


def _parse_state(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        # By the bytes, where they say: a .pth saved as NAME.safetensors (or the reverse)
        # is good weights under the other name, not a damaged file. Both loaders are safe.
        if _looks_like_safetensors(data) or (path.suffix == ".safetensors"
                                             and not _looks_like_torch_save(data)):
            from safetensors.torch import load as load_safetensors

            state = load_safetensors(data)
        else:
            with warnings.catch_warnings():  # torch's multi-line notes on old pickles:
                warnings.simplefilter("ignore")  # the file loads, or cloak says why not
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file; torch's message runs to many lines
        log.debug("can't read %s", path, exc_info=True)
        raise UnreadableWeights(f"can't read weights {path}: {_why_unreadable(data, exc)}"
                                ) from exc
    if not isinstance(state, dict):
        raise UnreadableWeights(f"can't read weights {path}: it holds no named tensors "
                                "(not a weights file)")
    return {k: v.float() for k, v in state.items() if isinstance(v, torch.Tensor)}


def values_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a (flat-layout) state dict's values rounded to bf16, keys in order: the
    same for the published bf16 files and for any export of the same weights at bf16 or
    finer precision; any damage to a value that bf16 can see changes it."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        bits = state[key].detach().to(torch.bfloat16).contiguous().view(torch.int16)
        digest.update(bits.numpy().tobytes())
    return digest.hexdigest()


def _why_unreadable(data: bytes, exc: Exception) -> str:
    """What a weights file that failed to load is, in a few words, from its first bytes:
    a web page saved in its place, a cut-off download, or a file of another kind."""
    if not data:
        return "the file is empty (0 bytes)"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<!--")):
        return ("a web page, not weights (saved from the site's page? download the raw "
                "file: MODELS.md lists the addresses)")
    if head.startswith(b"version https://git-lfs"):
        return ("a Git LFS pointer, not the weights (a clone made without git-lfs): run "
                "`git lfs pull` in that clone, or download the file itself")
    if "Weights only load failed" in str(exc) and "unsupported global" in str(exc).lower():
        # a pickle that holds more than tensors (torch's advice to drop the check is
        # unsafe); torch says "Weights only load failed" of a photo's bytes too
        return "not a plain weights file (refused by torch.load(weights_only=True))"
    if data[:4] == b"PK\x03\x04":  # torch's zip format, but it would not load
        return "damaged or cut off (its download may have stopped early); get it again"
    return "not a weights file (damaged, or another kind of file saved under this name)"


def normalise_keys(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """Map the diffusers `AutoencoderTiny` layout onto the flat one.

    diffusers keys look like `encoder.layers.3.conv.0.weight`. Its decoder has no weightless
    Clamp module in front, so its indices are one lower than the flat layout's.
    """
    prefix = f"{part}.layers."
    if not any(k.startswith(prefix) for k in state):
        return state
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix):].partition(".")
        if not index.isdigit() or not rest:
            raise ValueError(f"unexpected key {key!r} for the diffusers AutoencoderTiny "
                             "layout")
        if part == "decoder":
            index = str(int(index) + 1)
        out[f"{index}.{rest}"] = value
    return out


# The tensor a fingerprint samples: a 64x64x3x3 convolution that every model of the family
# has, in the same place (flat layout, after normalise_keys).
FINGERPRINT_KEY = {"encoder": "10.weight", "decoder": "8.conv.4.weight"}
FINGERPRINT_BITS = 128
SAME_WEIGHTS = 0.85  # share of agreeing signs: same weights ~1.0 (bf16 keeps every sign),
# unrelated ones 0.5 +- 0.04 (the four models' weights are independent: cosine ~0.0)


def fingerprint(state: dict[str, torch.Tensor], part: str) -> str | None:
    """A 128-bit code of (model, part) weights, as hex: the signs of 128 evenly spaced
    values of FINGERPRINT_KEY's tensor. The same weights in bf16 or fp32 give the same
    code; None where the state has no such tensor."""
    tensor = state.get(FINGERPRINT_KEY[part])
    if tensor is None or tensor.numel() < FINGERPRINT_BITS:
        return None
    values = tensor.detach().flatten()
    picked = values[:: values.numel() // FINGERPRINT_BITS][:FINGERPRINT_BITS]
    bits = "".join("1" if float(v) > 0 else "0" for v in picked)
    return f"{int(bits, 2):032x}"


def agreement(a: str, b: str) -> float:
    """Share of equal bits between two fingerprints."""
    return 1 - (int(a, 16) ^ int(b, 16)).bit_count() / FINGERPRINT_BITS


def identify(state: dict[str, torch.Tensor], part: str) -> str | None:
    """The model whose published `part` weights `state` holds (by fingerprint), or None
    for weights cloak does not know (another release, or another model)."""
    code = fingerprint(state, part)
    if code is None:
        return None
    best = max(MODELS, key=lambda name: agreement(code, FINGERPRINTS[name][part]))
    return best if agreement(code, FINGERPRINTS[best][part]) >= SAME_WEIGHTS else None


def find_local(spec: ModelSpec, part: str, model_dir=None) -> Path | None:
    """The first existing weight file for (model, part) in the search dirs."""
    stem = spec.file_stem(part)
    for folder in search_dirs(model_dir):
        candidates = [folder / f"{stem}{suffix}" for suffix in WEIGHT_SUFFIXES]
        candidates.append(folder / spec.name / "diffusion_pytorch_model.safetensors")
        for candidate in candidates:
            try:
                if candidate.is_file():
                    return candidate
                if candidate.is_symlink() and not candidate.exists():  # its target gone
                    # (a drive not mounted)
                    raise ModelError(f"{candidate} is a link to {os.readlink(candidate)}, "
                                     "which can't be found; mount or restore it, or remove "
                                     "the link so cloak looks in the next place")
                if candidate.exists():  # a folder, a pipe, a device: not skipped unsaid
                    raise ModelError(_not_weights(candidate, candidate.stat()))
            except OSError as exc:  # a folder we may not search (EACCES)
                raise ModelError(f"can't look for weights in {folder}: "
                                 f"{exc.strerror or exc}") from exc
    return None


def verify_file(path: Path) -> bool:
    """Check a file against its pinned sha256. Returns True when pinned and matching,
    False when no hash is pinned for it; raises ModelError on a mismatch."""
    if path.name not in KNOWN_SHA256:
        return False
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ModelError(f"can't read weights {path}: {exc.strerror or exc}") from exc
    check_pinned(path, actual)
    return True


class UnreadableWeights(ModelError):
    """A weight file that does not load as this (model, part): damaged, another kind of
    file, or the weights of something cloak does not know."""


class UnknownRelease(ModelError):
    """Weights that load as the model but hold other values than the release cloak knows
    (KNOWN_VALUES): refused for cloak's own downloads and cache copies."""


class PinMismatch(ModelError):
    """A file whose name has a pinned sha256 holds other bytes."""


def check_pinned(path: Path, actual: str) -> None:
    """Raise PinMismatch if `path`'s name has a pinned sha256 other than `actual`."""
    expected = KNOWN_SHA256.get(path.name)
    if expected is not None and actual != expected:
        raise PinMismatch(
            f"{path} has sha256 {actual[:12]}..., expected {expected[:12]}...: the file is "
            "corrupt or not the published weights; replace it with the published file, or "
            "move it out of that folder so cloak looks in the next one (or downloads it)"
        )


def download_url(spec: ModelSpec, part: str) -> str:
    base = (os.environ.get("CLOAK_WEIGHTS_URL") or UPSTREAM_URL).rstrip("/")
    return f"{base}/{spec.file_stem(part)}.pth"


def _not_permitted(exc: BaseException | None) -> bool:
    """Whether `exc` says a folder may not be written (no permission, a read-only file
    system), not that it is a wrong path (a file in the way: that stays an error)."""
    return isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS))


def _private_fallback_dir() -> Path:
    """fallback_dir(), made (mode 0700) where it does not exist; OSError where it can't
    be made, or is not safe to write to (_unsafe_folder)."""
    folder = fallback_dir()
    parent = os.stat(folder.parent)
    if hasattr(os, "getuid") and parent.st_mode & 0o002 and not parent.st_mode & stat.S_ISVTX:
        # anyone may rename our folder away and put theirs in its place after the check
        raise OSError(f"{folder.parent} may be written by anyone and is not sticky")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:  # ours from an earlier run, or someone else's: checked next
        pass
    problem = _unsafe_folder(folder)
    if problem is not None:
        raise OSError(problem)
    return folder


def fetch_to_cache(url: str, name: str, check: Callable[[Path], None],
                   progress: DownloadProgress | None = None, timeout: float = 60,
                   deadline: float | None = None) -> Path:
    """fetch `url` into the cache folder as `name`. Where that folder can't be created or
    written for want of permission, into fallback_dir() instead (searched on later runs,
    after the cache), saying so once per process; CacheNotWritable where neither can."""
    cache = cache_dir()
    try:
        return fetch(url, cache / name, check, progress, timeout, deadline)
    except CacheNotWritable as exc:
        if not _not_permitted(exc.__cause__):
            raise
        refused = exc
    try:
        folder = _private_fallback_dir()
    except OSError as exc:
        raise CacheNotWritable(f"{refused}, and the temporary folder for downloads "
                               f"{fallback_dir()} can't be used either "
                               f"({exc.strerror or exc})") from exc
    try:
        path = fetch(url, folder / name, check, progress, timeout, deadline,
                     "the temporary folder for downloads")
    except CacheNotWritable as exc:  # a full or read-only temporary folder: both named
        raise CacheNotWritable(f"{refused}, and {exc}") from exc
    problem = _unsafe_folder(folder)  # again: fetch makes the folder if it went meanwhile
    if problem is not None:
        raise CacheNotWritable(f"{refused}, and the temporary folder for downloads "
                               f"{folder} can't be used either ({problem})")
    _warn_once(f"{refused}: downloads are kept in {folder} instead (found there "
               "on later runs, until the system empties its temporary folder); make the "
               "cache folder writable, or keep them in a folder of your own with "
               "--model-dir DIR or CLOAK_MODEL_DIR=DIR")
    return path


def download(spec: ModelSpec, part: str, progress: DownloadProgress | None = None,
             model_dir=None, explain=None) -> Path:
    """Download (model, part) into the cache (fetch_to_cache: or the temporary folder for
    downloads, where the cache is not writable), atomically, and return its path
    (`model_dir` only names the folders searched in an error). A failure raises
    ModelError(explain(why)); by default missing_message, which says where cloak looked."""
    url = download_url(spec, part)

    def fail(why: str, offline: bool = False) -> ModelError:
        if explain is None:
            return WeightsMissing(spec, part, why, model_dir, offline)
        return ModelError(explain(why))

    target = cache_dir() / f"{spec.file_stem(part)}.pth"

    def check(tmp: Path) -> None:
        expected = KNOWN_SHA256.get(target.name)
        if expected and sha256_of(tmp) != expected:
            raise ModelError("the file it sent does not match its pinned sha256")
        # No pinned hash: accept only what loads strictly into the architecture and holds
        # the published values (a server's file is never trusted on its name alone).
        try:
            load_part(spec, part, tmp, warn=False, released_only=True)
        except UnknownRelease as exc:
            log.debug("download of %s refused: %s", url, exc)
            raise ModelError(
                "the file it sent loads as these weights but holds other values than the "
                "release cloak knows (a copy damaged on the way or on the server, a newer "
                "upstream release, or a foreign file); try again later or from another "
                "mirror (CLOAK_WEIGHTS_URL), or, where you trust the file, save it into a "
                "folder yourself and give that folder as --model-dir") from exc
        except ModelError as exc:  # an HTML page from a proxy, a cut-off file
            log.debug("download of %s refused: %s", url, exc)
            raise ModelError("the file it sent is not these weights (an error page, or a "
                             "cut-off or foreign file)") from exc

    try:
        return fetch_to_cache(url, target.name, check, progress)
    except CacheNotWritable as exc:
        raise fail(str(exc)) from exc
    except ModelError as exc:
        raise fail(f"download from {url} failed: {exc}") from exc
    except (urllib.error.URLError, OSError, TimeoutError, ValueError,
            http.client.HTTPException) as exc:
        # ValueError: a CLOAK_WEIGHTS_URL that is not a URL
        raise fail(f"download from {url} failed ({network_reason(exc)})",
                   no_network(exc)) from exc


def face_detector_url() -> str:
    base = os.environ.get("CLOAK_WEIGHTS_URL")
    return f"{base.rstrip('/')}/{FACE_DETECTOR}" if base else FACE_DETECTOR_URL


FACE_DETECTOR_TIMEOUT_S = 10  # optional: a slow network should not hold a batch up:
FACE_DETECTOR_DEADLINE_S = 30  # each read, and the whole download (230 KB)
_face_detector_failed: set[str] = set()  # addresses that failed in this process
_warned: set[str] = set()  # warnings already given in this process


def retry_face_detector_download() -> None:
    """Let the face detector's download be tried again in this process: the desktop app
    outlives a failed one (offline then, or past its time limits on a slow network) and
    tries once a batch, as each CLI run does."""
    _face_detector_failed.clear()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


# the stems already named in one warning by `one_note_for_files_elsewhere` (None: each
# file not in the chosen --model-dir is warned about on its own, as `resolve` finds it)
_announced: contextvars.ContextVar[frozenset | None] = contextvars.ContextVar(
    "cloak_files_elsewhere", default=None)


def _note_elsewhere(stem: str, chosen: Path, path: Path | None) -> None:
    if stem in (_announced.get() or ()):
        return
    _warn_once(f"{stem} is not in {chosen} (--model-dir); "
               + (f"using {path}" if path else "looking for it further"))


@contextlib.contextmanager
def one_note_for_files_elsewhere(names, model_dir, allow_download: bool = True
                                 ) -> Iterator[None]:
    """Name the weight files of models `names` that are not in the chosen `model_dir` in
    one warning, before any is looked for further (a folder holding one of the eight
    files gave seven warnings): where each was found, grouped by folder, and which are
    nowhere (downloaded next, or named by the error that follows)."""
    chosen = Path(os.path.expanduser(model_dir)) if model_dir else None
    elsewhere: list[tuple[str, Path | None]] = []
    if chosen is not None and chosen.is_dir():
        for spec in filter(None, map(MODELS.get, names)):  # an unknown name: get_spec's
            for part in PARTS:
                try:
                    path = find_local(spec, part, model_dir)
                except ModelError:  # resolve says it, in its own words
                    continue
                if path is None or chosen not in path.parents:
                    elsewhere.append((spec.file_stem(part), path))
    if len(elsewhere) > 1:
        by_folder: dict[Path, list[str]] = {}
        for stem, path in elsewhere:
            if path is not None:
                by_folder.setdefault(path.parent, []).append(stem)
        found = "; ".join(f"{', '.join(stems)} from {folder}"
                          for folder, stems in by_folder.items())
        # those found nowhere, with downloads off, are named by the error that follows
        # (one line naming every missing file): said here only where they download
        downloading = allow_download and not downloads_off()
        nowhere = [stem for stem, path in elsewhere if path is None] if downloading else []
        told = sum(1 for _, path in elsewhere if path is not None) + len(nowhere)
        fetch = f"downloading {'it' if len(nowhere) == 1 else 'them'}"
        if told:
            _warn_once(f"{plural(told, 'weight file')} {'is' if told == 1 else 'are'} not "
                       f"in {chosen} (--model-dir): " + "; ".join(
                           ([f"using {found}"] if found else [])
                           + ([f"{', '.join(nowhere)} found nowhere else ({fetch})"]
                              if nowhere else [])))
    token = _announced.set(frozenset(stem for stem, _ in elsewhere)
                           if len(elsewhere) > 1 else None)
    try:
        yield
    finally:
        _announced.reset(token)


def resolve_face_detector(model_dir=None, allow_download: bool = True,
                          progress: DownloadProgress | None = None) -> Path | None:
    """Path to the YuNet face detector (sha256-checked), downloading it into the cache if
    allowed. Faces only steer the budget, so any failure is one warning per process and
    None (face priority off), not an error; a failed download is not retried. With
    `allow_download` False it only looks (batch workers, after the parent fetched)."""
    expected = KNOWN_SHA256[FACE_DETECTOR]
    for folder in search_dirs(model_dir):
        path = folder / FACE_DETECTOR
        try:
            if not path.is_file():
                continue
            if sha256_of(path) == expected:
                return path
            _warn_once(f"{path} is not the published YuNet detector (sha256 differs); "
                       "ignoring it")
        except OSError as exc:
            _warn_once(f"can't read {path} ({exc.strerror or exc}); ignoring it")
    url = face_detector_url()
    if not allow_download or url in _face_detector_failed:
        return None  # the caller fetches nothing, or the failure was reported already
    if downloads_off():
        _warn_once(f"face detector {FACE_DETECTOR} not found and downloads are off "
                   "(CLOAK_OFFLINE); face priority is off. Put it in --model-dir or "
                   "CLOAK_MODEL_DIR to turn it on")
        return None

    def check(tmp: Path) -> None:
        if sha256_of(tmp) != expected:
            raise ModelError(f"download of {url} does not match its pinned sha256")

    try:
        return fetch_to_cache(url, FACE_DETECTOR, check, progress,
                              timeout=FACE_DETECTOR_TIMEOUT_S,
                              deadline=min(FACE_DETECTOR_DEADLINE_S, download_deadline()))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, ModelError,
            http.client.HTTPException) as exc:
        _face_detector_failed.add(url)
        # the address too, unless the reason names it: a mirror's missing file said
        # only "No such file or directory"
        reason = network_reason(exc)
        why = exc if isinstance(exc, ModelError) else (
            reason if url in reason else f"{reason}: {url}")
        _warn_once(f"face detector not available ({why}); face priority is off. Put "
                   f"{FACE_DETECTOR} in --model-dir or CLOAK_MODEL_DIR to turn it on")
        return None


class WeightsMissing(ModelError):
    """No weights for a (model, part) were found, and none could be downloaded (`why`).
    `offline`: downloads are off or the network can't be reached, so no other missing
    file would download either (a mirror's 404 or a bad file is this file's own)."""

    def __init__(self, spec: ModelSpec, part: str, why: str, model_dir=None,
                 offline: bool = False):
        super().__init__(missing_message(spec, part, why, model_dir))
        self.why = why
        self.model_dir = model_dir
        self.offline = offline

    def __reduce__(self):  # pickles back from a --jobs worker (its __init__ takes a spec:
        # unpickled by it, the parent's pool broke, "worker process died")
        return _rebuilt, (type(self), str(self), self.__dict__)


def _rebuilt(cls: type, message: str, state: dict) -> Exception:
    """An exception of `cls` with `message` and attributes `state`, its __init__ skipped."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


def missing_message(spec: ModelSpec, part: str, why: str, model_dir=None,
                    stems: list[str] | None = None) -> str:
    """One line: which weights are missing (`stems`, default this (model, part)'s file),
    where cloak looked, `why` none was downloaded, and how to supply them."""
    looked_in = ", ".join(dict.fromkeys(str(folder) for folder in search_dirs(model_dir)))
    stems = stems or [spec.file_stem(part)]
    said = "--model-dir" in why  # a full disk, a damaged download: `why` gave the advice
    if len(stems) == 1:
        if said:
            return (f"weights for {spec.name} {part} not found (looked in {looked_in}) and "
                    f"{why} (files: {UPSTREAM_URL}/{stems[0]}.pth)")
        return (
            f"weights for {spec.name} {part} not found (looked in {looked_in}) and {why}. "
            f"Put {stems[0]}.safetensors or .pth in a folder and pass --model-dir DIR "
            f"or set CLOAK_MODEL_DIR=DIR (files: {UPSTREAM_URL}/{stems[0]}.pth)")
    if said:
        return (f"weights not found for {len(stems)} files: {', '.join(stems)} (looked in "
                f"{looked_in}) and {why} (files: {UPSTREAM_URL}/NAME.pth)")
    return (
        f"weights not found for {len(stems)} files: {', '.join(stems)} (looked in "
        f"{looked_in}) and {why}. Put each as NAME.safetensors or NAME.pth in a folder and "
        f"pass --model-dir DIR or set CLOAK_MODEL_DIR=DIR (files: {UPSTREAM_URL}/NAME.pth)")


def missing_stems(names: list[str] | tuple[str, ...], model_dir=None) -> list[str]:
    """The weight files (`taesd_encoder`, ...) of models `names` found in no search dir."""
    return [MODELS[name].file_stem(part) for name in names for part in PARTS
            if find_local(MODELS[name], part, model_dir) is None]


def build_part(spec: ModelSpec, part: str) -> torch.nn.Module:
    """(model, part) with uninitialised CPU parameters, for load_state_dict(strict=True)
    to fill: built on the meta device, so no random initialisation runs (it would move
    the caller's torch random state, and cost time)."""
    from .taesd import Decoder, Encoder

    factory = Encoder if part == "encoder" else Decoder
    with torch.device("meta"):
        module = factory(spec.latent_channels, spec.use_pool)
    return module.to_empty(device="cpu")


def load_part(spec: ModelSpec, part: str, path: Path, other_exports: bool = False,
              warn: bool = True, released_only: bool = False) -> torch.nn.Module:
    """Build (model, part) and load `path` into it strictly.

    Weights of another model are refused, whatever the file's name (taesd's and taesdxl's
    have the same shapes; identify tells them apart). `other_exports`: a file whose name
    has a pinned sha256 but other bytes (the same weights exported again: fp32, another
    tool) is loaded, with a warning, when its weights are this (model, part)'s; else (and
    always for cloak's own downloads) it is refused as damaged. A file with no pinned
    sha256 whose values are not the published ones (another release, or damage that
    keeps the fingerprint) loads with a warning, unless not `warn` (a download's check
    of its temp file: the file is loaded, and warned about, under its own name next);
    with `released_only` (cloak's own downloads and their cache copies) it is refused
    (UnknownRelease)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    state, mismatch = _read_checked(path, other_bytes_ok=other_exports)
    try:
        state = normalise_keys(state, part)
    except ValueError as exc:
        raise ModelError(f"{path} is not {spec.name} {part} weights: {exc}") from exc
    if broken := [key for key, value in state.items() if not torch.isfinite(value).all()]:
        # NaN weights gave every gradient NaN: the copy came out unchanged, "protected"
        raise UnreadableWeights(
            f"can't use weights {path}: {broken[0]} holds values that are not numbers "
            "(NaN or infinite: a damaged file)")
    module = build_part(spec, part)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        log.debug("%s does not load as %s %s", path, spec.name, part, exc_info=True)
        other = _known_part_of(state, (spec.name, part))
        if other is not None:
            raise ModelError(
                f"{path} is not {spec.name} {part} weights: it holds {other}; put "
                f"{spec.name}'s {part} file there ({download_url(spec, part)})") from exc
        raise UnreadableWeights(
            f"{path} is not {spec.name} {part} weights: its tensors have other names or "
            "shapes (another model's file, or a damaged one)") from exc
    holds = identify(state, part)
    if holds is not None and holds != spec.name:
        raise ModelError(
            f"{path} holds {holds}'s {part} weights ({MODELS[holds].stands_in_for}), not "
            f"{spec.name}'s ({spec.stands_in_for}); put {spec.name}'s file there "
            f"({UPSTREAM_URL}/{spec.file_stem(part)}.pth)")
    if released_only and values_digest(state) != KNOWN_VALUES[spec.name][part]:
        raise UnknownRelease(f"{path} loads as {spec.name} {part} weights but holds other "
                             "values than the release cloak knows")
    if mismatch is not None:
        # Another export holds the published values, at bf16 or finer: their bf16 digest
        # is the pinned file's. A damaged copy (which can keep the fingerprint) is not.
        if values_digest(state) != KNOWN_VALUES[spec.name][part]:
            raise mismatch
        if warn:
            _warn_once(f"{path} is not the file cloak pinned under that name (sha256 "
                       f"differs) but holds {spec.name}'s published {part} weights "
                       "(another export of them): using it")
    elif path.name not in KNOWN_SHA256 and warn and (
            holds is None or values_digest(state) != KNOWN_VALUES[spec.name][part]):
        # holds: the fingerprint's 128 signs match, which damage elsewhere keeps
        _warn_once(f"{path} loads as {spec.name} {part}, but its weights are not the "
                   "release cloak knows (another version, or a damaged copy): protection "
                   "is made and measured against them as they are")
    return module.eval().requires_grad_(False)


def _known_part_of(state: dict[str, torch.Tensor], besides: tuple[str, str]) -> str | None:
    """What `state` holds, said for a user ("taef1's encoder weights (FLUX.1 VAE)"), where
    it loads strictly into a known (model, part) other than `besides` (another part's or
    model's file saved under a weight file's name); None where it fits none. Models of
    one layout (taesd and taesdxl) are told apart by their fingerprints (identify), or
    named together where it matches neither's."""
    fits: list[tuple[str, str]] = []
    for name in MODELS:
        for part in PARTS:
            if (name, part) == besides:
                continue
            try:
                build_part(MODELS[name], part).load_state_dict(state, strict=True)
            except RuntimeError:
                continue
            fits.append((name, part))
    for part in dict.fromkeys(p for _, p in fits):
        holds = identify(state, part)
        if holds is not None and (holds, part) in fits:
            return f"{holds}'s {part} weights ({MODELS[holds].stands_in_for})"
    if not fits:
        return None
    names = " or ".join(f"{name}'s" for name, _ in fits)
    return f"{names} {fits[0][1]} weights, of another release" if len(
        {p for _, p in fits}) == 1 else f"the weights of another model ({names})"


_swept: set[Path] = set()  # cloak's own folders resolve swept in this process


def resolve(spec: ModelSpec, part: str, model_dir=None, allow_download: bool = True,
            progress: DownloadProgress | None = None) -> Path:
    """Path to verified weights for (model, part), downloading them if needed. A
    `model_dir` that is not a folder is a ModelError (as the CLI's --model-dir): a
    mistyped one would otherwise quietly fall back to other places."""
    chosen = Path(os.path.expanduser(model_dir)) if model_dir else None
    if chosen is not None and not chosen.is_dir():
        raise ModelError(f"model_dir {chosen} is not a folder (or can't be reached); give "
                         "the folder that holds the weight files")
    path = find_local(spec, part, model_dir)
    if chosen is not None and (path is None or chosen not in path.parents):
        _note_elsewhere(spec.file_stem(part), chosen, path)
    if path is not None:
        # A folder the user chose may hold another export (load_part checks its pin, and
        # its weights, on the bytes it loads); cloak's own downloads are checked now.
        if path.parent not in _own_folders():
            return path
        verify_file(path)
        if path.parent not in _swept:  # a download killed before: its temp file goes
            _swept.add(path.parent)
            remove_stale_downloads(path.parent)
        return path
    if not allow_download or downloads_off():
        raise WeightsMissing(spec, part, downloads_off_reason(), model_dir, offline=True)
    return download(spec, part, progress, model_dir)


def _can_write(folder: Path) -> bool:
    """Whether a file can be made in `folder` now (tried: modes say nothing on a read-only
    mount, or to root)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _good_spare(spec: ModelSpec, part: str, damaged: Path
                ) -> tuple[Path, torch.nn.Module] | None:
    """A good copy of (model, part) in the temporary folder for downloads, and the part
    loaded from it, for a damaged copy in the cache (`damaged`) that can't be replaced
    there (no write, or no download): the cache is searched first, so without this every
    run would download it again. "Good" is what a download is checked for (load_part: the
    pinned sha256 where one is pinned, a strict load, this model's weights). None where
    there is no such copy, or it is damaged too."""
    folder = _fallback_found()
    if folder is None or damaged.parent == folder:
        return None
    spare = folder / f"{spec.file_stem(part)}.pth"
    try:
        if spare.is_file():
            return spare, load_part(spec, part, spare, released_only=True)
    except ModelError as exc:
        log.debug("the spare copy %s is not usable either: %s", spare, exc)
    return None


def load_verified(spec: ModelSpec, part: str, model_dir=None, allow_download: bool = True,
                  progress: DownloadProgress | None = None) -> torch.nn.Module:
    """(model, part) built and loaded from verified weights (resolve, then load_part).

    A damaged copy of cloak's own download in the cache, or in the temporary folder for
    downloads (a pinned sha256 that differs, a file that no longer loads: a disk error,
    a half-restored backup, or values other than the known release) is downloaded again once, where downloads are allowed. A bad
    file in a folder the user chose is reported, never replaced."""
    try:
        path = resolve(spec, part, model_dir, allow_download, progress)
        own = path.parent in _own_folders()  # cloak's download: only the known release
        return load_part(spec, part, path, other_exports=not own, released_only=own)
    except ModelError as exc:
        own_copy = find_local(spec, part, model_dir)
        own_copies = [folder / f"{spec.file_stem(part)}.pth" for folder in _own_folders()]
        if own_copy not in own_copies:
            if isinstance(exc, UnreadableWeights):  # a user's file: what to do about it
                raise ModelError(
                    f"{exc}; put the published file there ({download_url(spec, part)}), "
                    "or move it out of that folder so cloak looks in the next one (or "
                    "downloads it)") from exc
            raise
        can_fetch = allow_download and not downloads_off()
        spare = (None if can_fetch and _can_write(own_copy.parent)
                 else _good_spare(spec, part, own_copy))
        if spare is not None:  # a damaged cache copy the cache can't replace (read-only)
            log.warning("%s is damaged (%s); using %s, downloaded when the cache could not "
                        "be written (delete the damaged copy, or make the cache writable)",
                        own_copy, exc, spare[0])
            return spare[1]
        if not can_fetch:
            raise ModelError(
                f"{exc}; that copy is cloak's own download, and {downloads_off_reason()}, "
                f"so it is not fetched again: delete it and run with downloads on, or put "
                f"{spec.file_stem(part)}.safetensors or .pth in a folder and pass "
                "--model-dir DIR or set CLOAK_MODEL_DIR=DIR") from exc
        log.warning("%s is damaged (%s); downloading it again", own_copy, exc)
        damaged = str(exc)
    try:
        return load_part(spec, part, download(spec, part, progress, model_dir,
                                              explain=lambda why: why))
    except ModelError as exc:  # both reasons: the copy found, and the download
        raise ModelError(
            f"{own_copy} is damaged ({damaged}), and getting it again failed ({exc}); "
            f"delete it to try again later, or put {spec.file_stem(part)}.safetensors or "
            ".pth in a folder and pass --model-dir DIR or set CLOAK_MODEL_DIR=DIR") from exc
