"""Download one file over HTTP (or from a file:// address), atomically and within time
limits: each read has a timeout, and the whole download a deadline (download_deadline),
the server's answer included; a stop asked for while the server has not answered is heard
(stops_downloads). Also: why a download failed, in words, and the CLOAK_OFFLINE switch.
What is fetched, and where it goes, is weights.py's business.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import http.client
import logging
import math
import os
import socket
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DownloadProgress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total)
_warned: set[str] = set()  # warnings already given in this process


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class CacheNotWritable(OSError):
    """The cache folder can't be created or written."""


class DownloadTooSlow(TimeoutError):
    """A download went on past its deadline (download_deadline)."""


class DownloadTooLarge(OSError):
    """A server sent (or offered) more than MAX_DOWNLOAD_BYTES: not the file asked for."""


# Every file cloak fetches is a few MB (MODELS.md: under 3 MB each); a server sending more
# is a wrong address or a broken mirror, which filled the disk before the check ran.
MAX_DOWNLOAD_BYTES = 64 << 20
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # a quota too


DOWNLOAD_DEADLINE_S = 600  # the least time a download is given in all, however small
DOWNLOAD_MIN_RATE = 10_000  # bytes/s: a bigger file gets the time to come at this rate,
DOWNLOAD_DEADLINE_MAX_S = 6 * 3600  # up to this (a server's Content-Length is its word)


def download_deadline(total: int = 0) -> float:
    """Seconds one download of `total` bytes (0: size not said) may take in all:
    $CLOAK_DOWNLOAD_DEADLINE where set, else DOWNLOAD_DEADLINE_S, or the time the file
    takes at DOWNLOAD_MIN_RATE where that is longer. urlopen's timeout bounds each read
    only, so a server that drips bytes would otherwise hold a download for ever."""
    value = os.environ.get("CLOAK_DOWNLOAD_DEADLINE", "").strip()
    if value:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if 0 < seconds < math.inf:
            return seconds
        _warn_once(f"ignoring CLOAK_DOWNLOAD_DEADLINE={value!r}: not a number of seconds "
                   "above 0")
    return float(min(max(DOWNLOAD_DEADLINE_S, math.ceil(total / DOWNLOAD_MIN_RATE)),
                     DOWNLOAD_DEADLINE_MAX_S))


_stop_check: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "cloak_download_stop_check", default=None)


@contextlib.contextmanager
def stops_downloads(check: Callable[[], None]) -> Iterator[None]:
    """Within the block (in this thread), a download still waiting for its server's
    answer calls `check` about every 0.2 s; `check` raises to stop it (KeyboardInterrupt
    for a Ctrl-C, Cancelled for the app's Cancel). Once the answer is in, the download's
    progress callback is the place to stop it."""
    token = _stop_check.set(check)
    try:
        yield
    finally:
        _stop_check.reset(token)


def _open_within(url: str, timeout: float, seconds: float) -> http.client.HTTPResponse:
    """urlopen(url, timeout=timeout), given at most `seconds` for the server's answer (its
    status line and headers): urlopen's timeout bounds each read only, so headers sent a
    byte at a time would hold it for ever. Past the limit DownloadTooSlow; a connection
    answered after it (or after a Ctrl-C here) is closed by the thread that opened it."""
    box: dict = {}
    lock, answered = threading.Lock(), threading.Event()

    def open_url() -> None:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            if isinstance(exc, urllib.error.HTTPError):
                # its code and reason stay; the connection it holds goes now (left open,
                # it was reported as "unclosed socket" when collected, after a 404)
                exc.close()
            box["error"] = exc
        else:
            with lock:
                if box.get("abandoned"):
                    response.close()
                else:
                    box["response"] = response
        finally:
            answered.set()

    threading.Thread(target=open_url, name="cloak-download", daemon=True).start()
    given_up_at = time.monotonic() + seconds
    try:
        # in short waits: a stop asked for meanwhile (stops_downloads) is heard, and no
        # wait is longer than threading allows (a huge CLOAK_DOWNLOAD_DEADLINE overflowed)
        while not answered.wait(max(0.0, min(0.2, given_up_at - time.monotonic()))):
            check = _stop_check.get()
            if check is not None:
                check()
            if time.monotonic() >= given_up_at:
                with lock:
                    if not answered.is_set():
                        box["abandoned"] = True
                        raise DownloadTooSlow(
                            f"the server did not finish answering within {seconds:g} s; "
                            f"try again or fetch it by hand: {url}")
    except BaseException:
        with lock:
            box["abandoned"] = True
            if "response" in box:
                box.pop("response").close()
        raise
    if "error" in box:
        raise box["error"]
    return box["response"]


def _socket_of(response) -> socket.socket | None:
    """The connection an urlopen response reads from (an HTTP or HTTPS one), or None (a
    file:// URL's, which never waits on a server)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


@contextlib.contextmanager
def _hears_stops(response) -> Iterator[None]:
    """While a response's body is read: a stop asked for (stops_downloads' check, asked
    every 0.2 s from a watcher thread) shuts its connection, so a read waiting on a server
    gone silent mid-file returns at once, not after its timeout (60 s of Cancel, window
    close and Ctrl-C unheard); the stop itself (Cancelled, KeyboardInterrupt) is then
    raised here, from the check, not the read's error."""
    check, sock = _stop_check.get(), _socket_of(response)
    if check is None or sock is None:
        yield
        return
    finished, heard = threading.Event(), threading.Event()

    def watch() -> None:
        while not finished.wait(0.2):
            try:
                check()
            except BaseException:  # noqa: BLE001 - a stop asked for: the reader raises it
                heard.set()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="cloak-download-stop", daemon=True)
    watcher.start()
    try:
        yield
    except BaseException:
        finished.set()
        watcher.join()
        if heard.is_set():
            check()  # raises the stop
        raise
    finished.set()
    watcher.join()
    if heard.is_set():  # the read ended (the connection shut) as a stop was asked
        check()


def fetch(url: str, target: Path, check: Callable[[Path], None],
          progress: DownloadProgress | None = None, timeout: float = 60,
          deadline: float | None = None, what: str = "the cache folder") -> Path:
    """Download `url` to `target` atomically: into a temp file beside it, `check`ed (raises
    on a bad file), then renamed. `timeout` bounds each read; `deadline` (default:
    download_deadline) the whole download, the server's answer included. Raises
    OSError/URLError/ValueError/ModelError (CacheNotWritable where the temp file can't be
    made, naming target's folder as `what`; DownloadTooSlow past the deadline)."""
    if os.path.isdir(target):  # the rename would fail after each run's download
        raise CacheNotWritable(f"{what} {target.parent} holds a folder named {target.name}, "
                               "where the downloaded file goes: move it away")
    made = [folder for folder in (target.parent, *target.parent.parents)
            if not os.path.lexists(folder)]  # innermost first: removed again on a failure
    try:
        fd, tmp_name = _temp_file_beside(target)
    except OSError as exc:
        _remove_empty(made)
        raise _cache_refused(target.parent, what, exc) from exc
    log.info("downloading %s", url)
    tmp = Path(tmp_name)
    started = time.monotonic()
    fetched = False
    try:
        try:
            with os.fdopen(fd, "wb") as out, _open_within(
                    url, timeout, deadline or download_deadline()) as response:
                total = _declared_length(response)
                if total > MAX_DOWNLOAD_BYTES:
                    raise DownloadTooLarge(_too_large(target.name, f"offers {total / 1e6:.1f} MB"))
                allowed = deadline or download_deadline(total)
                # read1: what one read of the socket brings (read() waits for a whole 64 KiB,
                # which a server dripping bytes can make last for hours).
                read = getattr(response, "read1", response.read)
                done = 0
                if progress:
                    progress(target.name, 0, total)
                sock = _socket_of(response)

                def next_chunk() -> bytes:
                    """One read, its timeout cut to the time left: a server gone silent
                    mid-file held the download `timeout` s past its deadline."""
                    left = allowed - (time.monotonic() - started)
                    if left <= 0:
                        raise too_slow()
                    cut = sock is not None and left < timeout  # the deadline comes first
                    if cut:
                        sock.settimeout(left)
                    try:
                        return read(1 << 16)
                    except TimeoutError as exc:
                        if cut:
                            raise too_slow() from exc
                        raise
                    except http.client.IncompleteRead as exc:  # chunked, cut off: said
                        # as a Content-Length one's is, not "IncompleteRead(0 bytes read)"
                        raise OSError(f"the download ended early (the connection closed "
                                      f"after {done} bytes)") from exc

                def too_slow() -> DownloadTooSlow:
                    return DownloadTooSlow(f"the download of {target.name} took longer than "
                                           f"{allowed:g} s; try again or fetch it by hand: "
                                           f"{url}")

                with _hears_stops(response):
                    while chunk := next_chunk():
                        done += len(chunk)
                        if done > MAX_DOWNLOAD_BYTES:
                            raise DownloadTooLarge(_too_large(
                                target.name, f"sent more than {MAX_DOWNLOAD_BYTES >> 20} MB"))
                        out.write(chunk)
                        if progress:
                            progress(target.name, done, total)
                        if time.monotonic() - started > allowed:
                            raise too_slow()
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename: no empty cache file after a crash
        except OSError as exc:  # a write, the flush or the close: which disk is full
            if exc.errno in DISK_FULL:
                raise CacheNotWritable(
                    f"{what} {target.parent} is on a full disk ({exc.strerror}); free some "
                    "space, or keep the weights in a folder of your own with --model-dir "
                    "DIR or CLOAK_MODEL_DIR=DIR") from exc
            raise
        if total and done != total:
            raise OSError(f"the download ended early ({done} of {total} bytes)")
        check(tmp)
        with contextlib.suppress(OSError):  # some mounts (exFAT, CIFS) refuse a chmod
            os.chmod(tmp, 0o644)  # public files: mkstemp's 0600 kept others out of the cache
        os.replace(tmp, target)
        fetched = True
    finally:
        tmp.unlink(missing_ok=True)
        if not fetched:
            _remove_empty(made)
    return target


def _temp_file_beside(target: Path, tries: int = 3) -> tuple[int, str]:
    """mkstemp in target's folder, made where missing; stale temp files there swept. A
    folder removed between the mkdir and the mkstemp (another process's failed first
    download removing the empty folders it thought its own) is made again."""
    for attempt in range(tries):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_downloads(target.parent)
        try:
            return tempfile.mkstemp(dir=target.parent, prefix=".download-",
                                    suffix=target.suffix)
        except FileNotFoundError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _cache_refused(folder: Path, what: str, exc: OSError) -> CacheNotWritable:
    """Why `folder` (`what`: "the cache folder") can't take a download, in words: a file
    or a link to nothing in the way of one of its folders, or the OSError's reason."""
    for above in (folder, *folder.parents):
        try:
            if stat.S_ISDIR(os.stat(above).st_mode):
                continue
        except (FileNotFoundError, NotADirectoryError):  # not there (under a file, or
            # made by no one yet), or a link to nothing
            if not os.path.islink(above):
                continue
            return CacheNotWritable(
                f"{what} {folder} can't be made: {above} is a link to "
                f"{os.readlink(above)}, which can't be found (a drive not mounted?); "
                "mount or restore it, or keep the weights in a folder of your own with "
                "--model-dir DIR or CLOAK_MODEL_DIR=DIR")
        except OSError:  # one we may not look into: the OSError's own reason below
            break
        return CacheNotWritable(
            f"{what} {folder} can't be made: {above} is a file, not a folder (move it "
            "away, or keep the weights in a folder of your own with --model-dir DIR or "
            "CLOAK_MODEL_DIR=DIR)")
    return CacheNotWritable(f"{what} {folder} is not writable ({exc.strerror or exc})")


def _declared_length(response: http.client.HTTPResponse) -> int:
    """The Content-Length the server gave, or 0 where it gave none or one that is not a
    number (urllib's "invalid literal for int()" was the whole message)."""
    try:
        return max(0, int(response.headers.get("Content-Length") or 0))
    except ValueError:
        return 0


def _too_large(name: str, how_much: str) -> str:
    return (f"the server {how_much} for {name}, far more than that file holds: check the "
            "address in CLOAK_WEIGHTS_URL, or try another mirror")


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (innermost first) that are empty: the ones a failed download made,
    so it leaves no empty cache folder behind. One that holds anything stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (another download got there), or not ours to remove
            return


STALE_DOWNLOAD_S = 3600  # a temp file this old belongs to a download that was killed


def remove_stale_downloads(folder: Path) -> None:
    """Remove `.download-*` temp files a killed download left (not ones a download in
    another process may be writing now: those are younger than STALE_DOWNLOAD_S). Each
    download does, and weights.resolve once a process for a folder it reads from (once
    every file is cached, nothing is downloaded to sweep them)."""
    now = time.time()
    for path in folder.glob(".download-*"):
        try:
            if now - path.stat().st_mtime > STALE_DOWNLOAD_S:
                path.unlink()
        except OSError:
            pass


def no_network(exc: BaseException) -> bool:
    """Whether a download failed for want of a network (no DNS, no route, refused, timed
    out), not on an answer about this one file (an HTTP 404, a mirror folder without it)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (socket.gaierror, TimeoutError, ConnectionError)) or (
        isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH,
                                                         errno.EHOSTUNREACH))


def network_reason(exc: BaseException) -> str:
    """Why a download failed, in words: urllib's `<urlopen error [Errno -3] Temporary
    failure in name resolution>` as `no network, or an unknown host: Temporary failure in name
    resolution`, an HTTP error as `HTTP 404 Not Found`."""
    if isinstance(exc, urllib.error.HTTPError):
        if "infinite loop" in str(exc.reason):  # urllib's 3 lines: a loop, or 10 redirects
            return (f"HTTP {exc.code}: the server sent redirect after redirect, never the "
                    "file")
        return " ".join(f"HTTP {exc.code} {exc.reason}".split())
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            if isinstance(reason, socket.gaierror):
                return f"no network, or an unknown host: {reason.strerror}"
            return reason.strerror
        return str(reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ValueError) and "unknown url type" in str(exc):  # a bare path
        return (f"{exc}: CLOAK_WEIGHTS_URL takes an address, such as https://host/folder "
                "or file:///path/to/folder")
    return str(exc) or type(exc).__name__


def downloads_off() -> bool:
    """CLOAK_OFFLINE set to anything but 0/false/no/off turns every download off."""
    value = os.environ.get("CLOAK_OFFLINE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def downloads_off_reason() -> str:
    """Why nothing is downloaded, naming the setting where it is CLOAK_OFFLINE."""
    if downloads_off():
        return f"downloads are off (CLOAK_OFFLINE={os.environ['CLOAK_OFFLINE'].strip()})"
    return "downloads are off"
