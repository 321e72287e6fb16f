"""Downloads where the user cache can't be written (a private temporary folder instead,
looked in last on later runs), and the overall deadline of one download (a server that
drips bytes never trips urlopen's per-read timeout)."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from cloak.errors import ModelError
from cloak.models import fetch as F
from cloak.models import weights as W
from cloak.models.registry import get_spec

LOGGER = "cloak.models.weights"
POSIX_ONLY = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    """Each test gets its own empty user cache and its own system temporary folder (where
    the fallback folder is made, never the real /tmp), no weights anywhere else, downloads
    on, and no warnings given yet."""
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(W, "_warned", set())
    monkeypatch.setattr(F, "_warned", set())
    monkeypatch.setattr(W, "_face_detector_failed", set())
    monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("CLOAK_OFFLINE", raising=False)
    monkeypatch.delenv("CLOAK_DOWNLOAD_DEADLINE", raising=False)
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", (tmp_path / "no-mirror").as_uri())


@pytest.fixture
def mirror(weights_dir, tmp_path, monkeypatch) -> Path:
    """A local 'upstream' (a file:// URL) with taef2's files (pinned sha256) and the face
    detector, as the public addresses serve them."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in ("taef2_encoder.pth", "taef2_decoder.pth", W.FACE_DETECTOR):
        shutil.copy(weights_dir / name, folder)
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", folder.as_uri())
    return folder


@contextlib.contextmanager
def serving(do_get: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A local HTTP server answering every GET with `do_get(handler)`; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            do_get(self)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class TestUnwritableCache:
    def test_an_unwritable_cache_downloads_into_a_private_temporary_folder(
            self, mirror, tmp_path, read_only_folder, caplog):
        """A read-only cache (simulated: CI runs as root): the files go to
        <temp>/cloak-<uid>-weights, made 0700, with one warning naming both folders;
        the next run finds them there and downloads nothing."""
        cache = tmp_path / "cache"
        read_only_folder(cache)
        fallback = W.fallback_dir()
        assert fallback.parent == tmp_path / "tmp"
        if hasattr(os, "getuid"):
            assert fallback.name == f"cloak-{os.getuid()}-weights"
        with caplog.at_level("WARNING", logger=LOGGER):
            encoder = W.resolve(get_spec("taef2"), "encoder")
            decoder = W.resolve(get_spec("taef2"), "decoder")
        assert (encoder, decoder) == (fallback / "taef2_encoder.pth",
                                      fallback / "taef2_decoder.pth")
        assert W.sha256_of(encoder) == W.KNOWN_SHA256["taef2_encoder.pth"]
        if hasattr(os, "getuid"):
            assert stat.S_IMODE(fallback.lstat().st_mode) == 0o700
        assert not list(cache.glob("*"))  # nothing half-written left in the cache
        warned = [r.getMessage() for r in caplog.records if "not writable" in r.getMessage()]
        assert len(warned) == 1, warned  # once, not once a file
        assert f"the cache folder {cache} is not writable" in warned[0]
        assert f"kept in {fallback} instead" in warned[0]
        # The next run: looked in last, after the cache, and used with the mirror gone.
        shutil.rmtree(mirror)
        assert W.search_dirs()[-2:] == [cache, fallback]
        assert W.resolve(get_spec("taef2"), "encoder") == encoder
        assert isinstance(W.load_verified(get_spec("taef2"), "decoder"), torch.nn.Module)

    @pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                        reason="root writes whatever the modes say (read_only_folder "
                               "simulates a read-only cache for it)")
    def test_a_cache_in_a_folder_of_mode_0500_falls_back(self, mirror, tmp_path,
                                                          monkeypatch):
        locked = tmp_path / "locked"
        locked.mkdir()
        monkeypatch.setattr(W, "cache_dir", lambda: locked / "cache")
        locked.chmod(0o500)
        try:
            path = W.resolve(get_spec("taef2"), "encoder")
        finally:
            locked.chmod(0o700)
        assert path == W.fallback_dir() / "taef2_encoder.pth"
        assert not (locked / "cache").exists()

    def test_the_face_detector_falls_back_too(self, mirror, tmp_path, read_only_folder):
        read_only_folder(tmp_path / "cache")
        path = W.resolve_face_detector()
        assert path == W.fallback_dir() / W.FACE_DETECTOR
        shutil.rmtree(mirror)
        assert W.resolve_face_detector() == path  # found there next time

    def test_the_temporary_folder_is_looked_in_last_and_checked_as_the_cache_is(
            self, weights_dir, mirror, tmp_path, monkeypatch, read_only_folder):
        """After --model-dir/$CLOAK_MODEL_DIR and the cache; and its files are cloak's own
        downloads: a damaged one is refused at once (not taken for another export) and,
        with downloads on, fetched again in its place."""
        spec = get_spec("taef2")
        fallback = W.fallback_dir()
        fallback.mkdir(mode=0o700)
        shutil.copy(weights_dir / "taef2_encoder.pth", fallback)
        found = W.resolve(spec, "encoder", allow_download=False)
        assert found == fallback / "taef2_encoder.pth"
        for folder in (tmp_path / "cache", tmp_path / "mine"):
            folder.mkdir()
            shutil.copy(weights_dir / "taef2_encoder.pth", folder)
        found = W.resolve(spec, "encoder", allow_download=False)
        assert found == tmp_path / "cache" / "taef2_encoder.pth"
        monkeypatch.setenv("CLOAK_MODEL_DIR", str(tmp_path / "mine"))
        found = W.resolve(spec, "encoder", allow_download=False)
        assert found == tmp_path / "mine" / "taef2_encoder.pth"
        data = bytearray((weights_dir / "taef2_decoder.pth").read_bytes())
        data[-10] ^= 0xFF  # a flipped bit: the pinned sha256 differs
        (fallback / "taef2_decoder.pth").write_bytes(bytes(data))
        with pytest.raises(W.PinMismatch):
            W.resolve(spec, "decoder", allow_download=False)
        read_only_folder(tmp_path / "cache")  # so the new copy goes where the bad one was
        assert isinstance(W.load_verified(spec, "decoder"), torch.nn.Module)
        assert W.sha256_of(fallback / "taef2_decoder.pth") == W.KNOWN_SHA256[
            "taef2_decoder.pth"]

    @POSIX_ONLY
    @pytest.mark.parametrize("how", ["a link", "another user's", "writable by others"])
    def test_an_unsafe_temporary_folder_is_neither_read_nor_written(
            self, how, weights_dir, mirror, tmp_path, monkeypatch, read_only_folder):
        """Anyone can make a folder of that name in a shared /tmp first: a link (to a
        folder of theirs), a folder another user owns, or one others may write to is not
        looked in, and a download that would need it fails with one line naming both
        folders."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        if how == "another user's":
            real_uid = os.getuid()
            monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
        fallback = W.fallback_dir()
        if how == "a link":
            fallback.symlink_to(elsewhere, target_is_directory=True)
            holds = elsewhere
        else:
            fallback.mkdir(mode=0o700)
            if how == "writable by others":
                fallback.chmod(0o777)
            holds = fallback
        shutil.copy(weights_dir / "taef2_encoder.pth", holds)  # planted there
        assert fallback not in W.search_dirs()
        with pytest.raises(ModelError, match="weights for taef2 encoder not found"):
            W.resolve(get_spec("taef2"), "encoder", allow_download=False)
        read_only_folder(tmp_path / "cache")
        refused = "is not writable .*can't be used either"
        with pytest.raises(ModelError, match=refused) as info:
            W.resolve(get_spec("taef2"), "decoder")
        assert str(tmp_path / "cache") in str(info.value)
        assert str(fallback) in str(info.value)
        assert [p.name for p in holds.iterdir()] == ["taef2_encoder.pth"]  # nothing written

    @POSIX_ONLY
    def test_a_temporary_folder_anyone_may_write_without_the_sticky_bit_is_not_used(
            self, mirror, tmp_path, read_only_folder):
        """In such a folder another user may rename ours away and put theirs in its place
        after the checks: the download fails with one line instead (/tmp is sticky)."""
        (tmp_path / "tmp").chmod(0o777)
        read_only_folder(tmp_path / "cache")
        with pytest.raises(ModelError, match="not sticky"):
            W.resolve(get_spec("taef2"), "encoder")
        assert not os.path.lexists(W.fallback_dir())
        (tmp_path / "tmp").chmod(0o1777)
        assert W.resolve(get_spec("taef2"), "encoder").parent == W.fallback_dir()

    def test_a_file_in_the_caches_way_is_still_an_error_not_a_fallback(self, tmp_path,
                                                                        monkeypatch):
        """A cache path under a file is a wrong setting, not a permission: the one-line
        error as before, and no temporary folder made."""
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        monkeypatch.setattr(W, "cache_dir", lambda: blocker / "cache")
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        # named as what it is (it read "is not writable (File exists)": a permission?)
        assert (f"the cache folder {blocker / 'cache'} can't be made: {blocker} is a file, "
                "not a folder") in str(info.value)
        assert not os.path.lexists(W.fallback_dir())

    @pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
    def test_a_cache_folder_in_a_loop_of_links_says_why_it_cant_be_made(self, tmp_path,
                                                                      monkeypatch):
        """A folder on the cache's path that can't be looked at (a loop of links here;
        a folder the user may not search elsewhere) gives its reason, as a
        CacheNotWritable, not an OSError from the look itself."""
        loop = tmp_path / "loop"
        loop.symlink_to(loop)
        monkeypatch.setattr(W, "cache_dir", lambda: loop / "cache")
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        assert (f"the cache folder {loop / 'cache'} is not writable (Too many levels of "
                "symbolic links)") in str(info.value)

    @pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
    def test_a_cache_folder_linked_to_a_drive_not_mounted_is_said_to_be_a_link(
            self, tmp_path, monkeypatch):
        """A cache folder that is a link to a place gone (a drive not mounted) was "a file,
        not a folder (move it away ...)": moving it away throws the user's link out. It
        is named as a link to what can't be found, and nothing is made at its target."""
        link = tmp_path / "models"
        gone = tmp_path / "drive" / "cloak-models"
        link.symlink_to(gone, target_is_directory=True)
        monkeypatch.setattr(W, "cache_dir", lambda: link)
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        assert (f"the cache folder {link} can't be made: {link} is a link to {gone}, which "
                "can't be found (a drive not mounted?); mount or restore it") in str(info.value)
        assert "is a file" not in str(info.value)
        assert link.is_symlink() and not os.path.lexists(tmp_path / "drive")


def test_a_bare_path_as_the_mirror_address_says_what_it_takes(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", "foo/bar")
    with pytest.raises(ModelError, match="CLOAK_WEIGHTS_URL takes an address, such as "
                                         "https://host/folder or file:///path/to/folder"):
        W.resolve(get_spec("taef2"), "encoder")


def drip_headers(handler: http.server.BaseHTTPRequestHandler) -> None:
    """An answer whose headers come a byte every 50 ms and never end (10 s of them)."""
    try:
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
        for _ in range(200):
            handler.wfile.write(b"a")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass  # the client hung up


def failed_download(do_get, monkeypatch, deadline: str = "0.5") -> tuple[str, str, float]:
    """taef2's encoder fetched from a server answering with `do_get`, under a deadline of
    `deadline` s, expected to fail: (the server's URL, the error's message, seconds taken)."""
    monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", deadline)
    with serving(do_get) as base:
        monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
        started = time.monotonic()
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        return base, str(info.value), time.monotonic() - started


def data_then_silence(release: threading.Event, pieces: int, piece: int, pause: float = 0
                      ) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    """An answer promising 1 MiB that sends `pieces` of `piece` bytes, `pause` s apart, then
    holds the connection open, silent, until `release` is set (30 s at most)."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(1 << 20))
        handler.end_headers()
        with contextlib.suppress(OSError):  # the client hung up
            for _ in range(pieces):
                handler.wfile.write(bytes(piece))
                handler.wfile.flush()
                time.sleep(pause)
            release.wait(30)

    return answer


class TestDeadline:
    def test_a_server_that_drips_bytes_is_given_up_on_at_the_deadline(self, tmp_path,
                                                                      monkeypatch):
        """1 KiB every 20 ms keeps every read under urlopen's timeout (a whole MiB would
        take 20 s): the deadline stops it, with one clear line, and the partial file is
        removed."""

        def drip(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(1 << 20))
            handler.end_headers()
            try:
                for _ in range(1 << 10):
                    handler.wfile.write(bytes(1 << 10))
                    handler.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass  # the client hung up

        base, message, elapsed = failed_download(drip, monkeypatch)
        assert ("the download of taef2_encoder.pth took longer than 0.5 s; try again or "
                f"fetch it by hand: {base}/taef2_encoder.pth") in message
        assert "\n" not in message
        assert elapsed < 10, elapsed
        assert not list((tmp_path / "cache").glob("*"))

    def test_a_server_that_drips_its_headers_is_given_up_on_at_the_deadline(
            self, tmp_path, monkeypatch):
        """The deadline counts from the request: headers sent a byte at a time (each read
        well within urlopen's timeout) held a download past it for as long as they came."""

        base, message, elapsed = failed_download(drip_headers, monkeypatch)
        assert ("the server did not finish answering within 0.5 s; try again or fetch it "
                f"by hand: {base}/taef2_encoder.pth") in message
        assert elapsed < 5, elapsed
        assert not list((tmp_path / "cache").glob("*"))

    def test_a_stop_is_heard_while_the_server_has_not_answered(self, tmp_path,
                                                               monkeypatch):
        """The first Ctrl-C (or the app's Cancel) while headers drip in: the progress
        callback is not called before the answer, so stops_downloads' check is asked in
        the wait; the download ends at once, with nothing cached."""

        asked_at = time.monotonic() + 0.5

        def stop_after_half_a_second() -> None:
            if time.monotonic() > asked_at:
                raise KeyboardInterrupt

        with serving(drip_headers) as base:
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt), F.stops_downloads(stop_after_half_a_second):
                W.resolve(get_spec("taef2"), "encoder")
            elapsed = time.monotonic() - started
        assert elapsed < 3, elapsed
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]

    @pytest.mark.parametrize("chunked", [False, True])
    @pytest.mark.parametrize("stop", [KeyboardInterrupt, "cancelled"])
    def test_a_stop_is_heard_while_the_server_stalls_mid_file(self, tmp_path, monkeypatch,
                                                             stop, chunked):
        """Half the file, then silence: each read waits up to urlopen's 60 s timeout, and
        the progress callback (where a stop was heard once data flowed) is not called, so
        Cancel, the window's close and a Ctrl-C went unheard for a minute, and the run
        then ended as a failed download (exit 1, not 130). The stop is heard at once, as
        itself, with nothing cached."""
        from cloak.errors import Cancelled

        release = threading.Event()

        def half_then_silence(handler):
            if chunked:  # no length: the shut connection reads as a cut-off body
                handler.protocol_version = "HTTP/1.1"
            handler.send_response(200)
            if chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            else:
                handler.send_header("Content-Length", str(1 << 20))
            handler.end_headers()
            try:
                half = bytes(1 << 19)
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(half), half) if chunked else half)
                handler.wfile.flush()
            except OSError:
                return
            release.wait(30)  # silent, the connection held open

        raised = KeyboardInterrupt if stop is KeyboardInterrupt else Cancelled
        half_sent = []

        def progress(name: str, done: int, total: int) -> None:
            if done >= 1 << 19:
                half_sent.append(time.monotonic())

        def stop_once_half_is_in() -> None:
            if half_sent and time.monotonic() > half_sent[0] + 0.3:
                raise raised("cancelled") if raised is Cancelled else raised

        try:
            with serving(half_then_silence) as base:
                monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
                with pytest.raises(raised), F.stops_downloads(stop_once_half_is_in):
                    W.resolve(get_spec("taef2"), "encoder", progress=progress)
                stopped = time.monotonic()
        finally:
            release.set()
        assert half_sent and stopped - half_sent[0] < 3, stopped - half_sent[0]
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]

    def test_a_server_silent_mid_file_is_given_up_on_at_the_deadline(self, tmp_path,
                                                                      monkeypatch):
        """Half the file, then silence, and no stop asked for: each read waited its whole
        60 s timeout before the deadline was looked at, so CLOAK_DOWNLOAD_DEADLINE=1 gave
        up after a minute, as "failed (timed out)". The read's wait is cut to the time
        left: the deadline's own message, at the deadline."""
        release = threading.Event()
        try:
            base, message, elapsed = failed_download(
                data_then_silence(release, pieces=1, piece=1 << 19), monkeypatch, "1")
        finally:
            release.set()
        assert ("the download of taef2_encoder.pth took longer than 1 s; try again or "
                f"fetch it by hand: {base}/taef2_encoder.pth") in message
        assert elapsed < 10, elapsed
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]

    def test_a_stall_after_data_flowed_ends_at_the_deadline_not_the_reads_timeout(
            self, tmp_path):
        """The deadline longer than a read's timeout (as by default: 600 s against 60 s):
        data flows for a while, then the server goes silent with less time left than a
        read's timeout. The read waits only the time left, and the deadline's message is
        given at the deadline (a full timeout's wait ended past it, as "timed out")."""
        release = threading.Event()
        try:  # 1.2 s of data
            with serving(data_then_silence(release, pieces=12, piece=1 << 10,
                                           pause=0.1)) as base:
                started = time.monotonic()
                with pytest.raises(F.DownloadTooSlow, match="took longer than 2 s"):
                    F.fetch(f"{base}/taef2_encoder.pth", tmp_path / "c" / "taef2_encoder.pth",
                            lambda path: None, timeout=1.5, deadline=2)
                elapsed = time.monotonic() - started
        finally:
            release.set()
        assert elapsed < 2.8, elapsed  # not 1.2 s of data + a 1.5 s timeout's wait
        assert not list((tmp_path / "c").glob("*"))

    def test_a_chunked_download_cut_off_says_it_ended_early(self, tmp_path, monkeypatch):
        """A chunked answer (no Content-Length) whose connection closes mid-file was
        "failed (IncompleteRead(0 bytes read))", a Python object, though 64 KiB had come.
        It is said as a cut-off Content-Length download is, with what arrived."""

        def one_chunk_then_close(handler):
            handler.protocol_version = "HTTP/1.1"
            handler.send_response(200)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            chunk = bytes(1 << 16)
            handler.wfile.write(b"%x\r\n%s\r\n%x\r\n" % (len(chunk), chunk, 1 << 20))
            handler.wfile.flush()
            handler.close_connection = True  # the next chunk promised, never sent

        base, message, _ = failed_download(one_chunk_then_close, monkeypatch, "30")
        assert (f"download from {base}/taef2_encoder.pth failed (the download ended early "
                f"(the connection closed after {1 << 16} bytes))") in message
        assert "IncompleteRead" not in message
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]

    def test_a_deadline_past_what_a_wait_can_take_means_no_limit(self, mirror, tmp_path,
                                                                  monkeypatch):
        """threading refuses waits over TIMEOUT_MAX (about 292 years): such a
        CLOAK_DOWNLOAD_DEADLINE downloads as before, not an OverflowError."""
        monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", "99999999999")
        path = W.resolve(get_spec("taef2"), "encoder")
        assert path == tmp_path / "cache" / "taef2_encoder.pth"

    def test_the_optional_face_detector_is_given_up_on_sooner(self, tmp_path,
                                                              monkeypatch, caplog):
        """Its download has its own short deadline (FACE_DETECTOR_DEADLINE_S), not the
        weights' ten minutes: the photos go on without face priority."""

        def drip(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(1 << 20))
            handler.end_headers()
            try:
                for _ in range(1 << 10):
                    handler.wfile.write(bytes(64))
                    handler.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass

        monkeypatch.setattr(W, "FACE_DETECTOR_DEADLINE_S", 0.5)
        with serving(drip) as base, caplog.at_level("WARNING", logger=LOGGER):
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
            started = time.monotonic()
            assert W.resolve_face_detector() is None
            elapsed = time.monotonic() - started
        assert elapsed < 5, elapsed
        assert "took longer than 0.5 s" in caplog.text and "face priority is off" in caplog.text

    def test_a_404_leaves_no_connection_open(self, monkeypatch, caplog):
        """A server without the face detector (HTTP 404, with a page): the run goes on
        without it, saying so, and the 404's connection is closed, not left for the
        garbage collector (which said "unclosed <socket.socket ...>" in the CLI's output)."""
        import gc
        import warnings

        def not_found(handler):
            page = b"<html>no such file</html>"
            handler.send_response(404)
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)

        with serving(not_found) as base, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
            with caplog.at_level("WARNING", logger=LOGGER):
                assert W.resolve_face_detector() is None
            gc.collect()
        assert "HTTP 404" in caplog.text and "face priority is off" in caplog.text
        assert f"HTTP 404 Not Found: {base}" in caplog.text  # the address it tried
        unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert not unclosed, [str(w.message) for w in unclosed]

    def test_a_download_over_http_within_its_deadline_is_kept(self, weights_dir, tmp_path,
                                                              monkeypatch):
        body = (weights_dir / "taef2_encoder.pth").read_bytes()

        def send(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", "60")
        with serving(send) as base:
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
            path = W.resolve(get_spec("taef2"), "encoder")
        assert path == tmp_path / "cache" / "taef2_encoder.pth"
        assert W.sha256_of(path) == W.KNOWN_SHA256["taef2_encoder.pth"]

    def test_the_deadline_is_generous_and_can_be_set(self, monkeypatch, caplog):
        assert F.download_deadline() == F.download_deadline(5_000_000) == 600
        assert F.download_deadline(100_000_000) == 10_000  # 10 kB/s for a big file
        assert F.download_deadline(10 ** 15) == F.DOWNLOAD_DEADLINE_MAX_S
        monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", " 90 ")
        assert F.download_deadline(100_000_000) == 90
        bad = ("soon", "0", "-5", "inf", "nan")
        with caplog.at_level("WARNING", logger="cloak.models.fetch"):
            for value in bad:
                monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", value)
                assert F.download_deadline() == 600, value
        for value in bad:
            assert f"ignoring CLOAK_DOWNLOAD_DEADLINE={value!r}" in caplog.text


def damaged_decoder_in(folder: Path, weights_dir: Path) -> Path:
    """`folder` (made) holding taef2's decoder with one flipped byte (its pin differs)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    data = bytearray((weights_dir / "taef2_decoder.pth").read_bytes())
    data[-10] ^= 0xFF
    (folder / "taef2_decoder.pth").write_bytes(bytes(data))
    return folder


class TestFailedDownloadLeavesNoFolder:
    def test_a_failed_download_leaves_no_empty_cache_folder_it_made(self, tmp_path):
        """No mirror holds the file: the cache folder (and its parent) the download made
        are removed again, not left empty in the user's cache."""
        cache = tmp_path / "cache"
        with pytest.raises(ModelError, match="taef2"):
            W.resolve(get_spec("taef2"), "encoder")
        assert not cache.exists()

    def test_a_failed_download_keeps_a_cache_folder_that_was_there(self, tmp_path):
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "notes.txt").write_text("mine")
        with pytest.raises(ModelError, match="taef2"):
            W.resolve(get_spec("taef2"), "encoder")
        assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]

    def test_only_the_folders_it_made_are_removed(self, tmp_path):
        """An empty folder that was there before the download stays; the empty ones the
        download made inside it go."""
        there = tmp_path / "there"
        there.mkdir()
        target = there / "made" / "deeper" / "file.pth"
        with pytest.raises(OSError):
            F.fetch((tmp_path / "no-such-file").as_uri(), target, lambda path: None)
        assert there.is_dir() and list(there.iterdir()) == []

    def test_a_folder_another_downloads_failure_removes_midway_is_made_again(
            self, mirror, tmp_path, monkeypatch):
        """Two first runs at once: one whose download fails removes the empty cache
        folders it found missing, which the other made meanwhile. Between the other's
        mkdir and its temp file, that failed it as "the cache folder ... is not writable
        (No such file or directory)" (2 runs in 2,000, racing). The folder is made
        again."""
        cache = tmp_path / "cache"
        sweep = F.remove_stale_downloads
        removed = []

        def sweep_then_lose_the_folder(folder: Path) -> None:
            sweep(folder)
            if not removed:  # the other process's _remove_empty, just now
                removed.append(folder)
                folder.rmdir()

        monkeypatch.setattr(F, "remove_stale_downloads", sweep_then_lose_the_folder)
        path = W.resolve(get_spec("taef2"), "encoder")
        assert removed == [cache]
        assert path == cache / "taef2_encoder.pth" and path.is_file()
        assert W.sha256_of(path) == W.KNOWN_SHA256["taef2_encoder.pth"]

    def test_a_successful_download_keeps_its_folder(self, mirror, tmp_path):
        path = W.resolve(get_spec("taef2"), "encoder")
        assert path.parent == tmp_path / "cache" and path.is_file()


class TestDamagedCacheCopy:
    def test_a_damaged_copy_in_a_read_only_cache_uses_the_good_spare_not_a_download(
            self, weights_dir, mirror, tmp_path, read_only_folder, caplog):
        """The cache is searched first: a damaged copy there that can't be replaced sent
        every run to download it again into the temporary folder. Now the good copy
        already there is used, with a warning naming both."""
        spec = get_spec("taef2")
        cache = damaged_decoder_in(tmp_path / "cache", weights_dir)
        read_only_folder(cache)
        assert isinstance(W.load_verified(spec, "decoder"), torch.nn.Module)  # downloads
        spare = W.fallback_dir() / "taef2_decoder.pth"
        assert W.sha256_of(spare) == W.KNOWN_SHA256["taef2_decoder.pth"]
        shutil.rmtree(mirror)  # the next run can't download: the spare must do
        caplog.clear()
        with caplog.at_level("WARNING", logger=LOGGER):
            assert isinstance(W.load_verified(spec, "decoder"), torch.nn.Module)
            assert isinstance(W.load_verified(spec, "decoder", allow_download=False),
                              torch.nn.Module)
        said = [r.getMessage() for r in caplog.records]
        assert any(f"using {spare}" in m and "is damaged" in m for m in said), said
        assert not any("downloading it again" in m for m in said), said

    def test_a_damaged_copy_in_a_writable_cache_is_downloaded_again_spare_or_not(
            self, weights_dir, mirror, tmp_path, caplog):
        """A spare left in the temporary folder from a read-only spell does not stand in
        for a cache that can be written again: the cache's copy is replaced."""
        spec = get_spec("taef2")
        cache = damaged_decoder_in(tmp_path / "cache", weights_dir)
        W.fallback_dir().mkdir(mode=0o700)
        shutil.copy(weights_dir / "taef2_decoder.pth", W.fallback_dir())
        with caplog.at_level("WARNING", logger=LOGGER):
            assert isinstance(W.load_verified(spec, "decoder"), torch.nn.Module)
        assert W.sha256_of(cache / "taef2_decoder.pth") == W.KNOWN_SHA256["taef2_decoder.pth"]
        assert any("downloading it again" in r.getMessage() for r in caplog.records)

    def test_an_unpinned_models_spare_is_used_too(self, weights_dir, tmp_path,
                                                   read_only_folder, caplog):
        """taesd's .pth (as upstream serves it) has no pinned sha256: its spare is checked
        as a download is (a strict load of taesd's weights), not refused for the lack of a
        pin, so an offline run in a read-only cache still works."""
        from safetensors.torch import load_file

        spec = get_spec("taesd")
        state = load_file(str(weights_dir / "taesd_encoder.safetensors"))
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        (cache / "taesd_encoder.pth").write_bytes(b"half a file")  # damaged: won't load
        W.fallback_dir().mkdir(mode=0o700)
        torch.save({k: v.float() for k, v in state.items()},
                   W.fallback_dir() / "taesd_encoder.pth")
        read_only_folder(cache)
        with caplog.at_level("WARNING", logger=LOGGER):
            assert isinstance(W.load_verified(spec, "encoder", allow_download=False),
                              torch.nn.Module)
        assert any(f"using {W.fallback_dir() / 'taesd_encoder.pth'}" in r.getMessage()
                   for r in caplog.records)

    def test_a_damaged_spare_is_not_used(self, weights_dir, tmp_path, read_only_folder):
        spec = get_spec("taef2")
        for folder in (tmp_path / "cache", W.fallback_dir()):
            damaged_decoder_in(folder, weights_dir)
        read_only_folder(tmp_path / "cache")
        with pytest.raises(ModelError, match="is damaged"):
            W.load_verified(spec, "decoder")  # no mirror: the download fails too


@POSIX_ONLY
def test_a_temporary_folder_that_cannot_be_written_is_named_as_such(
        mirror, tmp_path, read_only_folder, monkeypatch):
    """Both folders refused: the message names the cache and the temporary folder each
    for what it is (it called the temporary folder "the cache folder")."""
    read_only_folder(tmp_path / "cache")
    fallback = W.fallback_dir()
    fallback.mkdir(mode=0o700)
    real_mkstemp = tempfile.mkstemp

    def refusing(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == fallback:
            raise OSError(28, "No space left on device")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing)
    with pytest.raises(ModelError) as info:
        W.resolve(get_spec("taef2"), "encoder")
    said = str(info.value)
    assert f"the cache folder {tmp_path / 'cache'} is not writable" in said
    assert f"the temporary folder for downloads {fallback} is not writable" in said
    assert f"the cache folder {fallback}" not in said


class TestWhatAServerSends:
    """What a wrong address or a broken mirror sends is refused in words that say so."""

    def test_a_server_sending_far_more_than_a_weights_file_is_stopped(self, tmp_path,
                                                                      monkeypatch):
        """200 MB of zeros for a 2.5 MB file filled a small disk, and the error blamed the
        disk ("No space left on device"); with no length given it went on to the deadline.
        Now the offer, and the bytes read past the cap, are refused at once."""
        monkeypatch.setattr(F, "MAX_DOWNLOAD_BYTES", 1 << 20)

        def offer_too_much(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(200_000_000))
            handler.end_headers()

        def send_too_much(handler):  # no length: read until the cap
            handler.send_response(200)
            handler.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(64):
                    handler.wfile.write(bytes(1 << 16))

        _, message, _ = failed_download(offer_too_much, monkeypatch, deadline="60")
        assert ("the server offers 200.0 MB for taef2_encoder.pth, far more than that file "
                "holds: check the address in CLOAK_WEIGHTS_URL") in message
        _, message, _ = failed_download(send_too_much, monkeypatch, deadline="60")
        assert "the server sent more than 1 MB for taef2_encoder.pth" in message
        assert not (tmp_path / "cache").exists()

    def test_a_length_that_is_not_a_number_is_taken_as_none(self, weights_dir, tmp_path,
                                                            monkeypatch):
        """`Content-Length: abc` failed the download with "invalid literal for int()"."""
        body = (weights_dir / "taef2_encoder.pth").read_bytes()

        def send(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", "abc")
            handler.end_headers()
            handler.wfile.write(body)
            handler.close_connection = True

        monkeypatch.setenv("CLOAK_DOWNLOAD_DEADLINE", "60")
        with serving(send) as base:
            monkeypatch.setenv("CLOAK_WEIGHTS_URL", base)
            path = W.resolve(get_spec("taef2"), "encoder")
        assert W.sha256_of(path) == W.KNOWN_SHA256["taef2_encoder.pth"]

    def test_a_redirect_loop_is_said_on_one_line(self, monkeypatch):
        def loop(handler):
            handler.send_response(302)
            handler.send_header("Location", handler.path)
            handler.end_headers()

        _, message, _ = failed_download(loop, monkeypatch, deadline="60")
        assert "HTTP 302" in message and "\n" not in message
        # in words, not urllib's "would lead to an infinite loop. The last 30x error ..."
        assert "failed (HTTP 302: the server sent redirect after redirect, never the " \
               "file)" in message
        assert "30x" not in message

    def test_a_folder_where_the_file_goes_is_named_not_downloaded_each_run(
            self, mirror, tmp_path):
        """The download worked, then the rename failed on a folder of the file's name:
        "download ... failed (Is a directory)", and the next run downloaded it again. The
        folder is named before any download (where the download would put the file, as
        in any folder searched, the search found it and said nothing of it)."""
        folder = tmp_path / "cache" / "taef2_encoder.pth"
        folder.mkdir(parents=True)
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        assert str(info.value) == (f"{folder} is a folder, not a weights file: move it away "
                                   "(cloak then looks in the next place, or downloads the "
                                   "file)")
        assert [p.name for p in (tmp_path / "cache").iterdir()] == ["taef2_encoder.pth"]

    @pytest.mark.parametrize("fails_at", ["write", "flush"])
    def test_a_full_disk_is_named(self, mirror, tmp_path, monkeypatch, fails_at):
        """ENOSPC said only "No space left on device", naming no disk: while writing, or
        (the last bytes, still buffered) at the flush before the rename."""
        import errno as errno_module

        real_fdopen = os.fdopen

        class FullDisk:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def full(self, *args):
                raise OSError(errno_module.ENOSPC, os.strerror(errno_module.ENOSPC))

            def __getattr__(self, name):
                return self.full if name == fails_at else getattr(self.handle, name)

        monkeypatch.setattr(F.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
        with pytest.raises(ModelError) as info:
            W.resolve(get_spec("taef2"), "encoder")
        assert f"{tmp_path / 'cache'} is on a full disk (No space left on device)" in \
            str(info.value)
        # the advice said once: the full disk's own, not again by the missing-weights line
        assert str(info.value).count("--model-dir") == 1, str(info.value)
        assert str(info.value).endswith("/taef2_encoder.pth)")
        assert not (tmp_path / "cache").exists()

    def test_a_temp_file_a_killed_download_left_is_swept_once_all_is_cached(
            self, mirror, tmp_path, monkeypatch):
        """Only a download swept the cache's stale `.download-*` files: once every file was
        cached, one a killed download left stayed for good."""
        W.resolve(get_spec("taef2"), "encoder")
        stale = tmp_path / "cache" / ".download-x1y2z3.pth"
        stale.write_bytes(b"half a download")
        long_ago = time.time() - F.STALE_DOWNLOAD_S - 60
        os.utime(stale, (long_ago, long_ago))
        young = tmp_path / "cache" / ".download-a1b2c3.pth"  # another process's, now
        young.write_bytes(b"being written")
        monkeypatch.setattr(W, "_swept", set(), raising=False)  # a new process
        W.resolve(get_spec("taef2"), "encoder")
        assert not stale.exists() and young.exists()


def test_a_damaged_download_is_said_to_be_possibly_damaged(weights_dir, tmp_path,
                                                           monkeypatch):
    """A one-bit flip in an unpinned file (taesd: checked by its values) was put as "a newer
    upstream release, or a foreign file", with advice to use it anyway."""
    data = bytearray((weights_dir / "taesd_encoder.safetensors").read_bytes())
    data[-100] ^= 0x01
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "taesd_encoder.pth").write_bytes(bytes(data))
    monkeypatch.setenv("CLOAK_WEIGHTS_URL", folder.as_uri())
    with pytest.raises(ModelError) as info:
        W.resolve(get_spec("taesd"), "encoder")
    assert "a copy damaged on the way or on the server" in str(info.value)
    assert "try again later or from another mirror" in str(info.value)
