"""Verified, resumable downloads of the raw data files, with an offline mirror.

Every file goes through the same path: bytes are written to ``<dest>.part`` (streamed from
the network with HTTP ``Range`` resumption, or copied from a local mirror directory), then
the size and SHA-256 are checked, and only then is the ``.part`` renamed onto ``dest``.
Nothing half-written is ever left at ``dest``.

A mirror directory holds the files laid out by file name (the URL's basename). It is given
with the ``mirror`` argument (config key ``data.mirror``) or the ``LAYERKD_DATA_MIRROR``
environment variable, and is consulted before the network.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Literal
from urllib.parse import unquote, urlsplit

import requests
from tqdm import tqdm

from layerkd.io import write_json

MIRROR_ENV = "LAYERKD_DATA_MIRROR"
MANIFEST_NAME = "MANIFEST.json"
_MIRROR_HINT = (
    "to work offline, put the file in a mirror directory under its file name ({name!r}) and "
    f"point the config key `data.mirror` or the environment variable {MIRROR_ENV} at it"
)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL."""


class ChecksumError(DownloadError):
    """The fetched bytes do not match the expected size or SHA-256."""

    def __init__(self, url: str, what: str, expected: object, actual: object) -> None:
        super().__init__(f"{what} mismatch for {url}: expected {expected}, got {actual}")
        self.url, self.what, self.expected, self.actual = url, what, expected, actual


class _Transient(Exception):
    """A failure worth retrying (5xx, dropped connection, short transfer)."""


@dataclass(frozen=True)
class FileRecord:
    """One downloaded file: where it came from, where it is, and what was checked."""

    url: str
    path: Path
    bytes: int
    sha256: str
    source: Literal["mirror", "network"]
    verified: bool  # True when a known SHA-256 was checked


def file_name(url: str) -> str:
    """The file name a URL is stored under (and looked up by in a mirror)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not name:
        raise DownloadError(f"cannot derive a file name from {url}")
    return name


def resolve_mirror(mirror: str | os.PathLike[str] | None) -> Path | None:
    """The mirror directory: the argument if given, else ``$LAYERKD_DATA_MIRROR``, else None."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    return Path(mirror) if mirror is not None else None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    expected_size: int | None = None,
    mirror: Path | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
    session: requests.Session | None = None,
) -> FileRecord:
    """Fetch ``url`` to ``dest`` (mirror first, then network), verify it, and rename it into place.

    Transient failures (connection errors, timeouts, dropped transfers, 5xx) are retried up to
    ``retries`` times with exponential backoff (``backoff * 2**attempt`` seconds), resuming the
    ``.part`` file with an HTTP Range request. 4xx answers fail at once. A size or checksum
    mismatch deletes the ``.part`` and raises :class:`ChecksumError`. ``session`` lets a caller
    reuse one connection pool for several files.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    name = file_name(url)
    mirror_dir = resolve_mirror(mirror)
    if mirror_dir is not None and (mirror_dir / name).is_file():
        with (mirror_dir / name).open("rb") as src, part.open("wb") as out:
            shutil.copyfileobj(src, out, chunk_size)
            _sync(out)
        return _finish(url, part, dest, sha256, [expected_size], "mirror", mirror_dir / name)

    own_session = session is None
    session = requests.Session() if session is None else session
    try:
        server_size = _fetch_with_retries(
            session, url, part, retries=retries, backoff=backoff, timeout=timeout,
            chunk_size=chunk_size, mirror_dir=mirror_dir,
        )
    finally:
        if own_session:
            session.close()
    return _finish(url, part, dest, sha256, [expected_size, server_size], "network")


def download_all(
    files: list[tuple[str, str | None]],
    out_dir: Path,
    *,
    mirror: Path | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
) -> list[FileRecord]:
    """Download ``(url, sha256-or-None)`` pairs into ``out_dir`` and write ``MANIFEST.json``.

    Known checksums are verified; unknown ones are computed and recorded. The manifest is
    ``{"files": [{"url", "file", "bytes", "sha256", "verified", "source"}, ...]}``, written
    atomically once every file is in place.
    """
    out_dir = Path(out_dir)
    names = [file_name(url) for url, _ in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DownloadError(f"several URLs share the file name(s) {dupes}")
    records: list[FileRecord] = []
    with requests.Session() as session:
        for (url, digest), name in zip(files, names, strict=True):
            records.append(download(
                url, out_dir / name, sha256=digest, mirror=mirror, retries=retries,
                backoff=backoff, timeout=timeout, chunk_size=chunk_size, session=session,
            ))
    entries = []
    for rec in records:
        entry = asdict(rec)
        entry["file"] = entry.pop("path").name
        entries.append({k: entry[k] for k in ("url", "file", "bytes", "sha256", "verified",
                                              "source")})
    write_json(out_dir / MANIFEST_NAME, {"files": entries})
    return records


def _fetch_with_retries(
    session: requests.Session, url: str, part: Path, *, retries: int, backoff: float,
    timeout: float, chunk_size: int, mirror_dir: Path | None,
) -> int | None:
    """Run :func:`_fetch` until it completes, retrying transient failures with backoff."""
    attempt = 0
    while True:
        try:
            return _fetch(session, url, part, timeout=timeout, chunk_size=chunk_size)
        except (_Transient, *_TRANSIENT) as exc:
            if attempt >= retries:
                where = (f"; the mirror {str(mirror_dir)!r} has no such file"
                         if mirror_dir is not None else "")
                hint = _MIRROR_HINT.format(name=file_name(url))
                raise DownloadError(
                    f"could not download {url} after {attempt + 1} attempt(s): {exc}{where}; "
                    f"{hint}"
                ) from exc
            time.sleep(backoff * 2**attempt)
            attempt += 1
        except requests.RequestException as exc:  # bad URL, too many redirects, ...: not retried
            raise DownloadError(f"could not download {url}: {exc}") from exc


def _fetch(
    session: requests.Session, url: str, part: Path, *, timeout: float, chunk_size: int
) -> int | None:
    """One request: append to (or restart) ``part``; return the server's full size if known."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        code = resp.status_code
        if code == 416 and offset:
            # Nothing left past ``offset``: the .part is complete, or it is stale and too long.
            m = re.fullmatch(r"bytes \*/(\d+)", resp.headers.get("Content-Range", ""))
            if m and int(m[1]) == offset:
                return offset
            part.unlink()
            raise _Transient(f"HTTP 416 for a resume at byte {offset}; restarting from zero")
        if code >= 500:
            raise _Transient(f"HTTP {code} {resp.reason} from {url}")
        if code not in (200, 206):
            raise DownloadError(f"HTTP {code} {resp.reason} for {url} (not retried)")
        length = resp.headers.get("Content-Length")
        if code == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if m is None or int(m[1]) != offset:
                part.unlink()
                raise _Transient(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
            total = int(m[3]) if m[3] != "*" else None
        else:  # 200: the server ignored the Range (or there was none): start over.
            offset = 0
            total = int(length) if length is not None else None
        with part.open("ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=file_name(url), leave=False, disable=None,
        ) as bar:
            for chunk in resp.iter_content(chunk_size):
                out.write(chunk)
                bar.update(len(chunk))
            _sync(out)
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Transient(f"transfer of {url} stopped at byte {size} of {total}")
    return total


def _sync(f: IO[bytes]) -> None:
    """Flush a binary file object to disk."""
    f.flush()
    os.fsync(f.fileno())


def _finish(
    url: str, part: Path, dest: Path, sha256: str | None, sizes: list[int | None],
    source: Literal["mirror", "network"], origin: Path | None = None,
) -> FileRecord:
    """Check the complete ``part`` against the known sizes and checksum; rename it onto ``dest``."""
    size = part.stat().st_size
    via = f"copy from mirror {str(origin)!r}" if origin is not None else "network download"
    for expected in sizes:
        if expected is not None and expected != size:
            part.unlink()
            raise ChecksumError(url, f"size ({via})", expected, size)
    actual = sha256_file(part)
    if sha256 is not None and actual.lower() != sha256.lower():
        part.unlink()
        raise ChecksumError(url, f"sha256 ({via})", sha256.lower(), actual)
    os.replace(part, dest)
    return FileRecord(url, dest, size, actual, source, verified=sha256 is not None)
