"""Give freed memory back to the system: the next step's peak then starts from what is really in use.

glibc keeps freed heap pages (per thread arena) and Arrow's allocator keeps freed buffers for
reuse; both make a process's resident size grow by every large result it ever held.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

_LIBC: list[Any] = []  # malloc_trim, or None where there is none


def trim() -> None:
    """``malloc_trim(0)`` where the C library has it (glibc), and Arrow's pool released if loaded."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim)
        except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to trim
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](0)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # Arrow's own allocator keeps freed buffers for reuse, as glibc does
        pyarrow.default_memory_pool().release_unused()
