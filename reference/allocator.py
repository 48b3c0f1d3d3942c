"""Keep freed memory in the process: glibc malloc tuned for training on the CPU.

A training step allocates and frees the same activations every batch. With
glibc's defaults the memory freed at the end of a step is handed back to the
kernel (the top of the heap is trimmed past ``M_TRIM_THRESHOLD``, big blocks
are ``munmap``-ed), so the next step page-faults it in again and the kernel
zeroes every page: about 10,000 minor faults and 30 ms of system time per
step of CoaT_ULSTM tiny at 64x64, batch 4 (benchmarks/train_step.py).
Raising the two thresholds keeps that memory for reuse. The numbers computed
do not change (the same kernels run on the same values; the tensors are
64-byte aligned either way); only the process's resident memory stays at its
peak instead of breathing with every batch, which is what a caching allocator
(PyTorch's on the GPU, jemalloc, tcmalloc) does too.

The setting is for the whole process, and forked DataLoader workers inherit
it. It is not applied when the user has tuned malloc already (any
``MALLOC_*_`` variable in the environment) or when the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt(3) parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks below 1 GiB come from the heap (glibc < 2.26 caps the threshold at 32 MiB:
# then that is used). Larger blocks are still mapped and unmapped one by one.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
TRIM_THRESHOLD = (1 << 31) - 1

_applied: bool | None = None


def _user_tuned() -> bool:
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are set.

    False (and nothing changed) off Linux/glibc or when a ``MALLOC_*_`` environment
    variable already tunes malloc.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or _user_tuned():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = any(libc.mallopt(M_MMAP_THRESHOLD, t) == 1 for t in MMAP_THRESHOLDS)
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok
