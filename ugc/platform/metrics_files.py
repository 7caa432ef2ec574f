"""The metrics files of `ugc serve --workers N`'s workers that ended, folded into one per kind.

prometheus-client keeps each process's counters and histograms in files of its own in
PROMETHEUS_MULTIPROC_DIR (`counter_<pid>.db`, `histogram_<pid>.db`, 64 KiB at least) and never
removes them: an ended process's counts must still add up. uvicorn's supervisor replaces a worker that
died or hung, and every worker at each SIGHUP, so each replacement left two files more, read by every
scrape, for as long as `ugc serve` ran (measured: three SIGHUPs to two workers left 16 files).

`retire` adds an ended process's values into `<kind>_retired.db` and removes its files, so the
directory holds the live workers' files and one more per kind. A scrape (`metrics.render`) and a
retirement exclude each other by a lock file: no scrape counts a value twice, or misses it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

KINDS = ("counter", "histogram")  # what metrics.py records: both add up across processes
RETIRED = "retired"  # in place of a pid in the file's name: prometheus-client reads `<kind>_*.db`
LOCK = ".retiring.lock"


def retire(directory: Path, alive: Collection[int]) -> int:
    """Fold the files of every process not `alive` into the retired ones; how many files went."""
    folded = 0
    with _locked(directory, fcntl.LOCK_EX):
        for kind in KINDS:
            ended = [path for path in sorted(directory.glob(f"{kind}_*.db")) if _ended(path, alive)]
            if not ended:
                continue
            retired = MmapedDict(str(directory / f"{kind}_{RETIRED}.db"))  # type: ignore[no-untyped-call]
            try:
                for path in ended:
                    for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
                        total, last = retired.read_value(key)  # type: ignore[no-untyped-call]
                        retired.write_value(key, total + value, max(last, timestamp))  # type: ignore[no-untyped-call]
                    path.unlink()
                    folded += 1
            finally:
                retired.close()  # type: ignore[no-untyped-call]
    return folded


@contextmanager
def reading(directory: Path) -> Iterator[None]:
    """While the block reads the files, none is retired."""
    with _locked(directory, fcntl.LOCK_SH):
        yield


@contextmanager
def _locked(directory: Path, how: int) -> Iterator[None]:
    with open(directory / LOCK, "a") as file:
        fcntl.flock(file, how)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _ended(path: Path, alive: Collection[int]) -> bool:
    pid = path.stem.rpartition("_")[2]
    return pid.isdigit() and int(pid) not in alive
