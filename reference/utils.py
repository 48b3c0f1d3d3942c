"""Small shared helpers: atomic file writes and seeding."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Nothing half-written is ever visible under the final name: a crash (even
    ``kill -9``) leaves at most a ``.tmp-*`` file that a rerun ignores and
    overwrites. On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    # mkstemp creates 0600 files; give the final file the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) from one integer.

    The one seeding helper of the project: the reference, the checks and the
    learner's loop all call it, so the same seed gives the same weights and
    batches everywhere.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _user_tunes_malloc(environ) -> bool:
    """A ``MALLOC_*_`` variable (glibc's malloc settings) is in ``environ``."""
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in environ)


def keep_heap_memory() -> bool:
    """Stop glibc from returning large blocks to the kernel after every free.

    By default glibc serves each multi-megabyte NumPy temporary with a fresh
    ``mmap`` and unmaps it on free, so the next one page-faults (and zero-fills)
    all of its pages again: in ``shakyo synth`` and ``shakyo prepare`` that was
    40 % of a record's time, spent in the kernel. Training has the same pattern:
    every batch frees the activations of the last one, and with the defaults a
    step of CoaT_ULSTM tiny (64x64, batch 4) page-faulted 5,000-11,000 pages back
    in (13-22 ms of system time). Raising the mmap and trim thresholds keeps the
    freed blocks in the heap for the next record or batch; the values computed do
    not change, the resident memory stays near its peak. Called in the worker
    processes of those two commands and by ``reference.train.build_learner``
    (forked DataLoader workers inherit it); a no-op returning False outside glibc
    or when the user tunes malloc already (a ``MALLOC_*_`` environment variable).
    """
    import ctypes
    import ctypes.util

    if _user_tunes_malloc(os.environ):
        return False  # the user's own malloc settings win
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 32 << 20)  # arrays up to 32 MB (the maximum) from the heap
    ok &= mallopt(m_trim_threshold, 1 << 30)  # keep up to 1 GB of freed heap
    ok &= mallopt(m_top_pad, 64 << 20)  # grow the heap in 64 MB steps
    return bool(ok)


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages_environ(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment a training process runs with to get transparent huge pages, or None.

    ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` makes glibc (2.35+) ask the kernel for
    2 MB pages instead of 4 KB ones for the heap (madvise), where the kept heap
    (``keep_heap_memory``) holds a step's activations batch after batch: fewer TLB
    misses, and CoaT_ULSTM tiny trains a few percent faster on a CPU, same numbers
    (site: guide/benchmarks/#step-time). glibc reads it only when a process starts,
    hence an environment and not a call. None when there is nothing to do: not Linux
    with glibc 2.35+, huge pages switched off in the kernel, or the user's own
    ``GLIBC_TUNABLES`` or ``MALLOC_*_`` settings (which win).
    """
    import platform
    import sys

    environ = dict(os.environ if environ is None else environ)
    if sys.platform != "linux" or "GLIBC_TUNABLES" in environ:
        return None
    if _user_tunes_malloc(environ):
        return None
    libc, version = platform.libc_ver()
    try:
        if libc != "glibc" or tuple(int(v) for v in version.split(".")[:2]) < (2, 35):
            return None
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except (ValueError, OSError):
        return None
    if "[never]" in thp:
        return None
    return {**environ, "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}


def restart_with_huge_pages() -> None:
    """Re-execute this process (same interpreter, same command line) with huge pages on.

    Called by ``shakyo train`` before anything heavy is imported; returns without doing
    anything when ``huge_pages_environ`` says there is nothing to do, which is also the
    case in the restarted process (its GLIBC_TUNABLES is set), so it restarts at most once.
    """
    import sys

    env = huge_pages_environ()
    if env is None or not sys.executable or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # the interpreter cannot be started again: train without huge pages


def read_user_text(path: str | os.PathLike, what: str, example: str, error: type) -> str:
    """The text of a file the user named, or ``error`` with one line saying what to pass.

    what: the file's role ("config file"); example: a file to suggest ("configs/demo.json").
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} not found; pass a file such as {example}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; pass a file such as {example}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file; pass a {what} such as {example}") from None
    except OSError as e:
        raise error(f"{what} {path}: cannot read it ({e.strerror or e})") from None
