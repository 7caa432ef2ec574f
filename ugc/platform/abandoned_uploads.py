"""The upload files a dead process left in the media store, swept by every `ugc serve` process.

An upload streams into `<media>/.incoming/<key>.part` and renames or removes it at its end; a process
killed in between (SIGKILL, a forced stop, a host going down) did neither, and the partial file,
up to UGC_MAX_UPLOAD_BYTES, stayed for good. The serving processes sweep them (`MediaStore.
sweep_incoming`): they are the ones that mount the media directory (`ugc project` need not), and
several at once are harmless (each file goes once; one an upload holds is left alone). A sweep runs
at the process's start, so a restart after a crash cleans up at once, and every `interval` after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ugc.platform.media import MediaStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0  # seconds between sweeps, at most


@contextmanager
def incoming_swept(media: MediaStore, untouched_for: float) -> Iterator[None]:
    """While the block runs, sweep `media`'s abandoned upload files (untouched for `untouched_for`
    seconds and held by no upload) at once and every min(`untouched_for`, SWEEP_INTERVAL) seconds."""
    stopping = threading.Event()
    interval = min(untouched_for, SWEEP_INTERVAL)

    def sweep() -> None:
        while True:
            try:
                removed = media.sweep_incoming(untouched_for)
            except OSError as error:  # a share away, a permission: the next round tries again
                log.warning("abandoned upload files not swept (%s); next try in %g s", error, interval)
            else:
                if removed:
                    log.info("removed %d upload file(s) left by a process that died", removed)
            if stopping.wait(interval):
                return

    thread = threading.Thread(target=sweep, name="incoming-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
