"""`ugc` with a memory probe in every process, for finding what grows in a soak (bench only).

`python bench/memory_probe.py serve ...` runs `ugc serve ...` unchanged, except that every process of
it — the master and each uvicorn worker, which are spawned and so import this file again as
`__mp_main__`, running its top level — answers SIGUSR1 by writing to $SOAK_PROBE_DIR:

* `<pid>-<n>.caches.json`: the fill of every bounded cache the process holds (each `eventsourcing`
  application's aggregate cache and fast-forward locks, each `ugc.platform.cache.LRU` by its owner's
  class), so that "a cache still warming up" is a count against its bound rather than a guess;
* `<pid>-<n>.snapshot`: a tracemalloc snapshot, when $SOAK_PROBE_TRACE is a frame count. Tracing
  starts at the first SIGUSR1 (importing everything traced would take minutes), so the snapshots
  hold what was allocated since then and is still alive: what grew. Tracing slows the process and
  grows its RSS: for finding a cause, not for the figures of a soak.
  `python bench/memory_probe.py --diff A B` prints what grew between two snapshots.

Nothing of this is in the product: the product code runs as it does under `ugc serve`.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, ModuleType
from typing import Any

PROBE_DIR = os.environ.get("SOAK_PROBE_DIR", "")
TRACE_FRAMES = int(os.environ.get("SOAK_PROBE_TRACE", "0") or 0)
_probes = count(1)


def cache_fill() -> list[dict[str, Any]]:
    """Every bounded cache this process holds: where it is, its entries, its bound."""
    from eventsourcing.application import Application

    from ugc.platform.cache import LRU

    found: list[dict[str, Any]] = []
    for obj, owner in reachable((Application, LRU)):
        if isinstance(obj, Application):
            repository = obj.repository
            cache = repository.cache
            if cache is not None:
                found.append({"cache": f"{obj.name} aggregates", "entries": len(cache.cache),
                              "bound": getattr(cache, "maxsize", None)})
            locks = repository._fastforward_locks_cache  # noqa: SLF001 - the library keeps no public count
            found.append({"cache": f"{obj.name} fast-forward locks", "entries": len(locks.cache),
                          "bound": locks.maxsize, "in use": len(repository._fastforward_locks_inuse)})  # noqa: SLF001
        else:
            inner = obj._cache  # noqa: SLF001 - a probe, not a caller
            found.append({"cache": f"LRU of {owner}", "entries": len(inner), "bound": int(inner.maxsize)})
    return sorted(found, key=lambda c: c["cache"])


LEAVES = (type, ModuleType, FunctionType, BuiltinFunctionType, CodeType, str, bytes, int, float)


def reachable(kinds: tuple[type, ...]) -> Iterator[tuple[Any, str]]:
    """The objects of `kinds` reachable from the running frames' locals, each with the class of the
    object that holds it; not looked inside. A walk rather than `gc.get_objects()`: the server
    freezes what it built at start (ugc/platform/tuning.py), and frozen objects are not listed."""
    seen: set[int] = set()
    todo: list[tuple[Any, str]] = [(value, "frame") for frame in sys._current_frames().values()  # noqa: SLF001
                                   for f in _stack(frame) for value in f.f_locals.values()]
    while todo:
        obj, owner = todo.pop()
        if id(obj) in seen or isinstance(obj, LEAVES):
            continue
        seen.add(id(obj))
        if isinstance(obj, kinds):
            yield obj, owner
            continue
        holder = owner if isinstance(obj, (dict, list, tuple, set, frozenset)) else type(obj).__qualname__
        todo += [(child, holder) for child in gc.get_referents(obj)]


def _stack(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def probe(_signum: int, _frame: FrameType | None) -> None:
    """Write this process's cache fill (and its tracemalloc snapshot when tracing) to PROBE_DIR."""
    n = next(_probes)
    stem = Path(PROBE_DIR) / f"{os.getpid()}-{n}"
    if TRACE_FRAMES and not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(f"{stem}.snapshot")
    stem.with_suffix(".caches.json").write_text(json.dumps(cache_fill()))


def diff(before: Path, after: Path, top: int = 25) -> str:
    """What grew between two snapshots of one process, grouped by the allocating traceback."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(ignore)
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    lines = [f"{after.name} - {before.name}: {total / 1024:+,.0f} KiB traced in all"]
    for stat in stats[:top]:
        lines.append(f"{stat.size_diff / 1024:+9,.0f} KiB {stat.count_diff:+8,} blocks "
                     f"(now {stat.size / 1024:,.0f} KiB in {stat.count:,})")
        lines += [f"      {line}" for line in stat.traceback.format(limit=TRACE_FRAMES or 8, most_recent_first=True)
                  if not line.startswith("    ")]
    return "\n".join(lines)


if PROBE_DIR:
    signal.signal(signal.SIGUSR1, probe)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--diff"]:
        print(diff(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        from ugc.cli import main

        sys.exit(main(sys.argv[1:]))
