"""`shakyo weights` / reference.models.weights.download against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reference.cli import main
from reference.errors import WeightsError
from reference.models.weights import KNOWN, download

DATA = bytes((i * 7919 + 13) % 256 for i in range(300_000))  # 300 kB, not a repeating chunk
SHA = hashlib.sha256(DATA).hexdigest()
NAME = "ckpt_0a1b2c3d.pth"


class _Handler(BaseHTTPRequestHandler):
    """Serves DATA at /NAME with `Range: bytes=N-` support written here (http.server has none)."""

    def do_GET(self) -> None:
        server = self.server
        rng = self.headers.get("Range")
        server.ranges.append(rng)
        if self.path != f"/{NAME}":
            self.send_error(404)
            return
        start = 0
        if rng and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(DATA):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(DATA)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = DATA[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body = body[: server.cut_after]  # a dropped connection: fewer bytes than announced
        # Counted before the write: the client can finish reading (and the test assert)
        # before this thread runs again, so counting afterwards raced (CI saw sent == 0).
        server.sent += len(body)
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.ranges, httpd.sent, httpd.ignore_range, httpd.cut_after = [], 0, False, None
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/{NAME}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_full_download_matches_and_leaves_no_part_file(server, tmp_path):
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert path == tmp_path / NAME
    assert path.read_bytes() == DATA
    assert server.ranges == [None]
    assert not (tmp_path / f"{NAME}.part").exists()


def test_resume_asks_for_the_rest_and_appends(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(DATA[:100_000])
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert server.ranges == ["bytes=100000-"]
    assert server.sent == len(DATA) - 100_000
    assert path.read_bytes() == DATA


def test_server_ignoring_range_gives_a_correct_file(server, tmp_path):
    server.ignore_range = True
    # Garbage in the .part proves the 200 answer restarted the file instead of appending.
    (tmp_path / f"{NAME}.part").write_bytes(b"x" * 100_000)
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert server.ranges == ["bytes=100000-"]
    assert path.read_bytes() == DATA


def test_interrupted_download_keeps_part_then_resumes(server, tmp_path):
    server.cut_after = 120_000
    with pytest.raises(WeightsError, match="rerun the same command to resume"):
        download(server.url, tmp_path, sha256=SHA, progress=False)
    assert (tmp_path / f"{NAME}.part").stat().st_size == 120_000
    assert not (tmp_path / NAME).exists()
    server.cut_after = None
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert server.ranges[-1] == "bytes=120000-"
    assert path.read_bytes() == DATA


def test_complete_part_file_is_verified_and_renamed_without_refetching(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(DATA)  # a crash between last byte and rename
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert server.ranges == [f"bytes={len(DATA)}-"] and server.sent == 0
    assert path.read_bytes() == DATA


def test_part_file_longer_than_the_file_starts_over(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(DATA + b"junk")
    path = download(server.url, tmp_path, sha256=SHA, progress=False)
    assert server.ranges == [f"bytes={len(DATA) + 4}-", None]
    assert path.read_bytes() == DATA


def test_sha256_prefix_is_accepted_and_checked(server, tmp_path):
    assert download(server.url, tmp_path / "a", sha256=SHA[:8], progress=False).exists()
    wrong = format(int(SHA[:8], 16) ^ 1, "08x")
    with pytest.raises(WeightsError, match=f"expected prefix {wrong}"):
        download(server.url, tmp_path / "b", sha256=wrong, progress=False)


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path):
    (tmp_path / NAME).write_bytes(DATA)
    assert download(server.url, tmp_path, sha256=SHA, progress=False) == tmp_path / NAME
    assert server.ranges == []


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_cli_downloads_and_prints_the_full_hash(server, tmp_path, capsys):
    rc = main(["weights", "custom", "--to", str(tmp_path), "--url", server.url, "--sha256", SHA])
    assert rc == 0
    assert (tmp_path / NAME).read_bytes() == DATA
    assert SHA in capsys.readouterr().out


def test_cli_wrong_checksum_exits_2_and_leaves_no_file(server, tmp_path, capsys):
    rc = main(["weights", "x", "--to", str(tmp_path), "--url", server.url, "--sha256", "0" * 64])
    assert rc == 2
    err = _one_line(capsys)
    assert err.startswith("shakyo weights: error:") and "sha256" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_known_name_from_a_mirror_is_checked_against_the_table(server, tmp_path, capsys):
    # The table's prefix (6b4a8ae5) applies to a mirror too; DATA is not that file.
    rc = main(["weights", "coat_lite_mini", "--to", str(tmp_path), "--url", server.url])
    assert rc == 2
    assert KNOWN["coat_lite_mini"].sha256 in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_cli_connection_refused_exits_2_naming_the_url(tmp_path, capsys):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{NAME}"
    rc = main(["weights", "x", "--to", str(tmp_path), "--url", url])
    assert rc == 2
    err = _one_line(capsys)
    assert url in err and "refused" in err.lower()


def test_cli_unknown_name_lists_the_known_ones(tmp_path, capsys):
    rc = main(["weights", "coat_huge", "--to", str(tmp_path)])
    assert rc == 2
    err = _one_line(capsys)
    for name in ("coat_lite_mini", "coat_lite_small", "coat_lite_medium"):
        assert name in err


def test_table_names_carry_their_hash_prefix():
    # The CoaT README: the 8 hex digits of each file name are its SHA-256 prefix.
    med = KNOWN["coat_lite_medium"]
    assert med.filename == "coat_lite_medium_384x384_f9129688.pth"
    assert med.sha256 == "f9129688" and med.url.endswith("/" + med.filename)
