"""Download an official CoaT ImageNet checkpoint: ``shakyo weights NAME [--to DIR]``.

The CoaT authors (mlpc-ucsd/CoaT) host their checkpoints at
``https://vcl.ucsd.edu/coat/pretrained/``; the solution starts from
``coat_lite_medium_384x384_f9129688.pth``, a dict ``{'model': state_dict}``
(site: facts/model/#encoder). The 8 hex digits in each file name are, as the CoaT README
states, the first 8 characters of the file's SHA-256. The full hashes are not
published, so by default the download is checked against that prefix; pass
``--sha256`` with a full hash to check all 64 digits.

The download is resumable: bytes go to ``FILE.part`` beside the target; a
rerun asks the server for the rest (an HTTP Range request) and starts over if
the server answers with the whole file instead. The size is checked against
Content-Length, the checksum against the table, and only then is the file
renamed to its final name, so a file under the final name is always complete.
Network problems become one-line :class:`WeightsError` messages naming the URL
and the way out (download by hand, then set the config key ``PRETRAINED``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from reference.errors import WeightsError

_BASE = "https://vcl.ucsd.edu/coat/pretrained/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """A known checkpoint. ``sha256`` is a full hex digest or a prefix of one."""

    url: str
    filename: str
    sha256: str
    size: int | None  # bytes; None where not known
    note: str


def _coat(filename: str, note: str) -> Checkpoint:
    prefix = re.search(r"_([0-9a-f]{8})\.pth$", filename).group(1)
    return Checkpoint(_BASE + filename, filename, prefix, None, note)


KNOWN: dict[str, Checkpoint] = {
    "coat_lite_mini": _coat("coat_lite_mini_6b4a8ae5.pth", "ImageNet 224x224, 11M parameters"),
    "coat_lite_small": _coat("coat_lite_small_8d362f48.pth", "ImageNet 224x224, 20M parameters"),
    "coat_lite_medium": _coat(
        "coat_lite_medium_384x384_f9129688.pth",
        "ImageNet 384x384, 45M parameters; the checkpoint the solution trains from",
    ),
    "coat_lite_medium_224": _coat("coat_lite_medium_a750cd63.pth", "ImageNet 224x224"),
}


def _check_hex(sha256: str) -> str:
    sha256 = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", sha256):
        raise WeightsError(
            f"--sha256 {sha256!r} is not a hex SHA-256 digest (or a prefix of at least 8 digits)"
        )
    return sha256


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _manual(url: str, dest: Path) -> str:
    return f"download it by hand into {dest.parent} and set the config key PRETRAINED to its path"


def _open(url: str, offset: int, timeout: float, hint: str):
    """Open ``url``, asking for bytes from ``offset`` on; WeightsError on network errors."""
    request = urllib.request.Request(url, headers={"User-Agent": "shakyo"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # Nothing left to send: either the .part is already whole (a crash between
            # the last byte and the rename) or it is no prefix of the file: start over.
            whole = re.fullmatch(r"bytes \*/(\d+)", (e.headers.get("Content-Range") or "").strip())
            return _WHOLE if whole and int(whole.group(1)) == offset else None
        raise WeightsError(f"cannot download {url}: HTTP {e.code} {e.reason}; {hint}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):
            reason = f"host not found ({reason.strerror}; offline?)"
        raise WeightsError(f"cannot download {url}: {reason}; {hint}") from None


_WHOLE = "the .part file is already complete"


def _total_size(response, offset: int) -> int | None:
    """Size of the whole file from Content-Range (206) or Content-Length (200)."""
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range.strip())
    if response.status == 206 and match:
        if int(match.group(1)) != offset:
            return -1
        return int(match.group(3)) if match.group(3) != "*" else None
    length = response.headers.get("Content-Length")
    return int(length) + (offset if response.status == 206 else 0) if length else None


def _fetch(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    """Bring ``part`` to the complete file, resuming it when the server allows."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    response = _open(url, offset, timeout, _manual(url, part))
    if response is _WHOLE:
        return
    if response is not None and response.status == 206 and _total_size(response, offset) == -1:
        response.close()  # a range other than the one asked for: not worth patching up
        response = None
    if response is None:
        part.unlink()
        offset = 0
        response = _open(url, 0, timeout, _manual(url, part))
    with response:
        if response.status != 206:
            offset = 0  # the server sent the whole file (it ignored the Range header)
        total = _total_size(response, offset)
        if size is not None and total is not None and total != size:
            raise WeightsError(
                f"{url} has {total} bytes, expected {size}: not the known file; "
                f"pass --url of a correct mirror, or {_manual(url, part)}"
            )
        expected = total if total is not None else size
        bar = tqdm(
            total=expected,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=None if progress else True,
        )
        try:
            f = open(part, "ab" if offset else "wb")
        except OSError as e:
            raise WeightsError(f"cannot write {part}: {e.strerror}; pass another --to") from None
        with bar, f:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    f.flush()
                    raise WeightsError(
                        f"download of {url} interrupted after {part.stat().st_size} bytes "
                        f"({e or type(e).__name__}); rerun the same command to resume"
                    ) from None
                if not chunk:
                    break
                try:
                    f.write(chunk)
                except OSError as e:
                    raise WeightsError(
                        f"cannot write {part}: {e.strerror}; free some space and rerun to resume"
                    ) from None
                bar.update(len(chunk))
    got = part.stat().st_size
    if expected is not None and got != expected:
        if got > expected:
            part.unlink()
        raise WeightsError(
            f"download of {url} incomplete: {got} of {expected} bytes; "
            f"rerun the same command to resume"
        )


def _verify(path: Path, sha256: str | None, url: str, dest: Path) -> str:
    digest = file_sha256(path)
    if sha256 is not None and not digest.startswith(sha256):
        path.unlink()
        kind = "" if len(sha256) == 64 else " prefix"
        raise WeightsError(
            f"{dest.name}: sha256 {digest[:16]}... does not match the expected{kind} {sha256}; "
            f"the file was deleted; rerun, or {_manual(url, dest)}"
        )
    return digest


def download(
    url: str,
    dest_dir: str | os.PathLike,
    filename: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest_dir/filename`` (default: the URL's last path segment).

    ``sha256``: a full hex digest or a prefix of at least 8 digits, checked
    before the final rename (None: not checked). ``size``: expected bytes. An
    existing final file that passes the checks is returned without downloading.
    Raises :class:`WeightsError` (one line) on any network or checksum problem.
    """
    sha256 = _check_hex(sha256) if sha256 else None
    name = filename or Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name:
        raise WeightsError(f"cannot tell a file name from {url}; pass a filename")
    dest = Path(dest_dir) / name
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create {dest.parent}: {e.strerror}; pass another --to"
        ) from None
    if dest.exists():
        digest = file_sha256(dest)
        if sha256 is None or digest.startswith(sha256):
            return dest
        raise WeightsError(
            f"{dest} exists but its sha256 {digest[:16]}... does not match {sha256}; "
            f"delete it and rerun"
        )
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, size, progress, timeout)
    _verify(part, sha256, url, dest)
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    known = ", ".join(KNOWN)
    parser.add_argument("name", metavar="NAME", help=f"checkpoint name: {known}")
    parser.add_argument(
        "--to",
        default="weights",
        metavar="DIR",
        help="folder to save the file in (default: weights, where configs/coat_ulstm.json looks)",
    )
    parser.add_argument("--url", help="download from this URL (a mirror) instead of the table's")
    parser.add_argument(
        "--sha256",
        metavar="HEX",
        help="expected SHA-256 (full, or a prefix of >= 8 digits); default: the table's prefix",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    known = KNOWN.get(args.name)
    if known is None and not args.url:
        raise WeightsError(
            f"unknown checkpoint {args.name!r}; known: {', '.join(KNOWN)} (or pass --url URL)"
        )
    url = args.url or known.url
    filename = known.filename if known and not args.url else None
    sha256 = args.sha256 or (known.sha256 if known else None)
    size = known.size if known and not args.url else None
    path = download(url, args.to, filename, sha256, size, progress=not args.no_progress)
    print(f"{path}  sha256 {file_sha256(path)}")
    print(f"use it with: shakyo train CONFIG PRETRAINED {path}")
    return 0
