"""Process-level CPU performance settings for training.

glibc returns large freed blocks to the OS (``mmap`` threshold, trim threshold), so a
training loop that allocates the same 100 MB activations every iteration pays for fresh
page faults each time. Raising both thresholds keeps freed memory in the heap for reuse
(the same effect as the jemalloc/tcmalloc advice in PyTorch's CPU performance guides).
No effect on results; a no-op where glibc's ``mallopt`` is unavailable.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 34) -> bool:
    """Ask glibc to serve large allocations from a heap it keeps; True if applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
        return ok and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):
        return False
