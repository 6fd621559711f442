"""layerkd.data.download against a real HTTP server on 127.0.0.1 that can misbehave."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from layerkd.data.download import (
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    download,
    download_all,
)
from layerkd.io import read_json

PAYLOAD = bytes(range(256)) * 200  # 51,200 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"backoff": 0.0, "timeout": 5.0, "chunk_size": 4096}


@dataclass
class Behaviour:
    """Server state the tests inspect and tweak."""

    files: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    statuses: list[int] = field(default_factory=list)  # forced answers for the next requests
    cut_after: int | None = None  # first full answer: send this many bytes, then hang up
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    stall: float = 0.0  # first request: sleep this long before answering
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``Behaviour.files`` with Range support and optional misbehaviour."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        b = self.server.behaviour
        rng = self.headers.get("Range")
        with b.lock:
            b.log.append((self.path, rng))
            forced = b.statuses.pop(0) if b.statuses else None
            stall, b.stall = b.stall, 0.0
        if stall:
            time.sleep(stall)
        if forced is not None:
            self.send_error(forced)
            return
        data = b.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not b.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m is not None
            start = int(m[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with b.lock:
            cut, b.cut_after = b.cut_after, None
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    behaviour: Behaviour

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # client hung up (timeouts): not interesting


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    """A live server; yields (base URL, behaviour) with ``/data/file.bin`` = PAYLOAD."""
    srv = _Server(("127.0.0.1", 0), Handler)
    srv.behaviour = Behaviour(files={"/data/file.bin": PAYLOAD})
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv.behaviour
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def test_normal_download_with_checksum(server, tmp_path):
    base, b = server
    dest = tmp_path / "out" / "file.bin"
    rec = download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert (rec.path, rec.bytes, rec.sha256, rec.source, rec.verified) == (
        dest, len(PAYLOAD), PAYLOAD_SHA, "network", True)
    assert leftovers(dest) == ["file.bin"]
    assert b.log == [("/data/file.bin", None)]


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    base, b = server
    b.cut_after = 10_000
    dest = tmp_path / "file.bin"
    rec = download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD and rec.sha256 == PAYLOAD_SHA
    # The resume starts at whatever reached the .part before the hang-up (whole chunks).
    assert [r for _, r in b.log][0] is None and len(b.log) == 2
    m = re.fullmatch(r"bytes=(\d+)-", b.log[1][1] or "")
    assert m is not None and 0 < int(m[1]) <= 10_000
    assert leftovers(dest) == ["file.bin"]


def test_existing_part_is_resumed(server, tmp_path):
    base, b = server
    dest = tmp_path / "file.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:1234])
    download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert b.log == [("/data/file.bin", "bytes=1234-")]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, b = server
    b.ignore_range = True
    dest = tmp_path / "file.bin"
    dest.with_suffix(".bin.part").write_bytes(b"stale garbage")
    download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert b.log == [("/data/file.bin", "bytes=13-")]


def test_416_on_complete_part_just_verifies(server, tmp_path):
    base, b = server
    dest = tmp_path / "file.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD)
    rec = download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD and rec.verified
    assert b.log == [("/data/file.bin", f"bytes={len(PAYLOAD)}-")]


def test_416_on_overlong_part_restarts(server, tmp_path):
    base, b = server
    dest = tmp_path / "file.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD + b"extra")
    download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in b.log] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_wrong_checksum_is_refused_and_leaves_nothing(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    url = f"{base}/data/file.bin"
    with pytest.raises(ChecksumError) as err:
        download(url, dest, sha256="0" * 64, **FAST)
    msg = str(err.value)
    assert url in msg and "0" * 64 in msg and PAYLOAD_SHA in msg
    assert leftovers(dest) == []


def test_wrong_size_is_refused(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    with pytest.raises(ChecksumError, match=f"expected 5, got {len(PAYLOAD)}"):
        download(f"{base}/data/file.bin", dest, expected_size=5, **FAST)
    assert leftovers(dest) == []


def test_404_fails_at_once(server, tmp_path):
    base, b = server
    url = f"{base}/data/missing.bin"
    with pytest.raises(DownloadError, match="404") as err:
        download(url, tmp_path / "missing.bin", retries=4, **FAST)
    assert url in str(err.value)
    assert len(b.log) == 1
    assert not (tmp_path / "missing.bin").exists()


def test_500_is_retried_then_succeeds(server, tmp_path):
    base, b = server
    b.statuses = [500, 503]
    dest = tmp_path / "file.bin"
    download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, retries=2, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(b.log) == 3


def test_500_forever_fails_after_retries(server, tmp_path):
    base, b = server
    b.statuses = [500] * 10
    url = f"{base}/data/file.bin"
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "file.bin", retries=2, **FAST)
    assert url in str(err.value) and "500" in str(err.value)
    assert len(b.log) == 3
    assert not (tmp_path / "file.bin").exists()


def test_read_timeout_is_retried(server, tmp_path):
    base, b = server
    b.stall = 1.0
    dest = tmp_path / "file.bin"
    download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, retries=3,
             backoff=0.0, timeout=0.3)
    assert dest.read_bytes() == PAYLOAD
    assert len(b.log) >= 2  # the first request stalled past the timeout and was retried


def test_mirror_hit_makes_no_request(server, tmp_path):
    base, b = server
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "file.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "file.bin"
    rec = download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, mirror=mirror, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert (rec.source, rec.verified) == ("mirror", True)
    assert b.log == []
    assert leftovers(dest) == ["file.bin"]


def test_mirror_from_env_and_corrupt_mirror_copy_is_refused(server, tmp_path, monkeypatch):
    base, b = server
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "file.bin").write_bytes(PAYLOAD[:-1])
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(ChecksumError, match="mirror"):
        download(f"{base}/data/file.bin", dest, sha256=PAYLOAD_SHA, **FAST)
    assert b.log == []
    assert leftovers(dest) == []


def test_mirror_miss_falls_back_to_network(server, tmp_path):
    base, b = server
    (tmp_path / "mirror").mkdir()
    rec = download(f"{base}/data/file.bin", tmp_path / "file.bin", mirror=tmp_path / "mirror",
                   **FAST)
    assert rec.source == "network" and not rec.verified and rec.sha256 == PAYLOAD_SHA
    assert len(b.log) == 1


def test_offline_without_mirror_names_url_and_mirror_setting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/amazon/reviews.jsonl.gz"
    dest = tmp_path / "reviews.jsonl.gz"
    with pytest.raises(DownloadError) as err:
        download(url, dest, retries=1, **FAST)
    msg = str(err.value)
    assert url in msg
    assert "data.mirror" in msg and MIRROR_ENV in msg and "reviews.jsonl.gz" in msg
    assert not dest.exists()


def test_download_all_writes_manifest(server, tmp_path):
    base, b = server
    other = b"second file\n" * 100
    b.files["/data/other.txt"] = other
    out = tmp_path / "raw"
    records = download_all(
        [(f"{base}/data/file.bin", PAYLOAD_SHA), (f"{base}/data/other.txt", None)], out,
        mirror=None, **FAST,
    )
    assert [r.path for r in records] == [out / "file.bin", out / "other.txt"]
    assert (out / "other.txt").read_bytes() == other
    manifest = read_json(out / "MANIFEST.json")
    assert manifest == {"files": [
        {"url": f"{base}/data/file.bin", "file": "file.bin", "bytes": len(PAYLOAD),
         "sha256": PAYLOAD_SHA, "verified": True, "source": "network"},
        {"url": f"{base}/data/other.txt", "file": "other.txt", "bytes": len(other),
         "sha256": hashlib.sha256(other).hexdigest(), "verified": False, "source": "network"},
    ]}
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "file.bin", "other.txt"]


def test_download_all_failure_writes_no_manifest(server, tmp_path):
    base, _ = server
    out = tmp_path / "raw"
    with pytest.raises(ChecksumError):
        download_all([(f"{base}/data/file.bin", "f" * 64)], out, mirror=None, **FAST)
    assert not (out / "MANIFEST.json").exists()
