"""Keep the garbage collector's full collections short in a server process.

CPython's oldest generation holds everything a process built while starting (modules, classes,
the event-sourcing applications, pydantic schemas: hundreds of thousands of objects), and every
full collection walks all of it. In the listing bench that was 80-100 ms, four times in 12 s of
load, with the event loop stopped each time: the whole of the p99 (gc.callbacks, bench/RESULTS.md).
Once the process is ready, what it built is moved out of the collector's sight (`gc.freeze`), so
a full collection walks only what has been allocated since.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what starting left behind, then exempt the survivors from later collections."""
    gc.collect()
    gc.freeze()
