"""Process tuning for a server process: what the garbage collector walks, what the allocator keeps.

Both are settings of the process itself, applied once by the composition root (`ugc/wiring.py`):

* `freeze_startup_objects`: CPython's oldest generation holds everything a process built while
  starting (modules, classes, the event-sourcing applications, pydantic schemas: hundreds of
  thousands of objects), and every full collection walks all of it. In the listing bench that was
  80-100 ms, four times in 12 s of load, with the event loop stopped each time: the whole of the
  p99 (gc.callbacks, bench/RESULTS.md). Once the process is ready, what it built is moved out of
  the collector's sight (`gc.freeze`), so a full collection walks only what has been allocated since.
* `return_large_allocations_to_the_system`: argon2id allocates its whole memory cost
  (`UGC_ARGON2_MEMORY_KIB`) for each hash and frees it when the hash ends. glibc serves an
  allocation that large from a fresh mmap only until the first such block is freed: it then raises
  its mmap threshold to that size, so later hashes come from the heap, whose freed blocks stay
  resident. A fixed threshold keeps large blocks on mmap, returned to the system on free (measured
  in bench/RESULTS.md: 80 -> 178 MiB after 20 registrations without it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_ALLOCATION = 1024 * 1024


def freeze_startup_objects() -> None:
    """Collect what starting left behind, then exempt the survivors from later collections."""
    gc.collect()
    gc.freeze()


def return_large_allocations_to_the_system() -> bool:
    """Serve every allocation of 1 MiB or more from its own mmap; False where libc is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt, and no such threshold to fix
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large freed blocks may stay resident")
    return done
