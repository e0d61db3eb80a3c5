"""Process-wide CPU settings, made by the entry points (``main.py``, the ``train`` and ``demo`` commands, the benchmarks)
and never by library code.

OpenMP: idle threads spin for about 0.3 ms, then sleep. That bridges the gaps between the operators of a training
step (sleeping at once makes every operator wait for its threads to wake: the 2-thread SAEHD step ran about 5 %
slower), while idle threads still leave a small shared CPU to other work soon (libgomp's default spins for about
3 ms, and on a busy 2-core machine that made two threads several times slower than one). It must be set before
torch is imported.

Allocator: every training step frees and re-allocates the same few hundred MB of activations and gradients. glibc
returns blocks above its mmap threshold to the kernel on free, so the next step page-faults that memory in again
(about 40 000 faults per step for the default SAEHD at res 64; about 3 000 when freed memory is kept, and the
2-thread step 2-4 % faster). The process's peak memory stays reserved until it exits, which is what a training
run holds anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import MutableMapping

SPIN_COUNT = "30000"  # libgomp counts about 100 000 spins per millisecond

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before giving memory back


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and keep freed memory for reuse (glibc on Linux).

    Returns True when the setting took effect; elsewhere (other C libraries, other systems) it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_MAX, 0))


def set_openmp_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Short OpenMP spin-wait (see the module doc) unless the environment already chooses a wait policy."""
    if "OMP_WAIT_POLICY" not in environ:
        environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
