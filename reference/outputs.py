"""Checks of the places a command will write, made before any work starts.

A user who points ``--out`` at a folder, at a path below a file or at a place
they may not write should hear so in one line before minutes of prediction or
training, not read a traceback at the end. Both checks create nothing that
stays: writability is proven with a probe file that is removed at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reference.errors import ConfigError, ShakyoError


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a file or a folder)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(folder: Path, what: str, fix: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
    except OSError as e:
        raise ConfigError(f"{what}: cannot write in {folder} ({e.strerror or e}); {fix}") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(
    path: str | os.PathLike, flag: str = "--out", suffix: str | None = None
) -> Path:
    """Refuse an output FILE path that is a folder, lies below a file, or cannot be written.

    ``flag`` names the option in the message (``--out``); ``suffix`` (e.g. ``".png"``),
    when given, is the only file ending accepted (the format written does not follow
    the name). Returns ``Path(path)``.
    """
    path = Path(path)
    fix = f"pass {flag} a file path in a folder you can write"
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; {fix}, e.g. {path / 'out.csv'}")
    if suffix is not None and path.suffix.lower() != suffix:
        kind = suffix.lstrip(".").upper()
        raise ConfigError(
            f"{flag} {path}: writes {kind} files; name it {path.with_suffix(suffix).name}"
        )
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise ConfigError(f"{flag} {path}: {base} is a file, not a folder; {fix}")
    _probe(base, f"{flag} {path}", fix)
    return path


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """Refuse an output FOLDER that is a file, lies below a file, or cannot be written.

    ``what`` starts the message (``OUT out``). Returns ``Path(path)``.
    """
    path = Path(path)
    fix = "pick a folder you can write"
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise ConfigError(f"{what}: {base} is a file, not a folder; {fix}")
    _probe(base, what, fix)
    return path


@contextlib.contextmanager
def removed_on_user_error(folder: Path, keep_if: str) -> Iterator[None]:
    """Remove ``folder`` (and the parents made with it) when a user error (ShakyoError)
    ends the block and it did not exist before, unless ``folder/keep_if`` was written
    meanwhile, or the error carries a ``result`` (the NaN guard's stop): work worth keeping.

    Bugs (other exceptions) leave the folder for inspection.
    """
    # The highest folder this block creates: OUT itself when OUT/FNAME is new in a new OUT.
    top = None
    p = folder
    while not p.exists() and p != p.parent:
        top, p = p, p.parent
    try:
        yield
    except ShakyoError as e:
        # Under torchrun only rank 0 writes the run folder, so only it may remove it.
        rank0 = os.environ.get("RANK", "0") == "0"
        keep = (folder / keep_if).exists() or getattr(e, "result", None)
        if top is not None and rank0 and not keep:
            shutil.rmtree(top, ignore_errors=True)
        raise
