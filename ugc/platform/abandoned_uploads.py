"""What a dead process left of its uploads, swept by every `ugc serve` process.

An upload streams into `<media>/.incoming/<key>.part`, takes its room of the user's quota, renames the
file into place, and then has its command store the event naming it; at its end the room is settled
or given back and the bytes kept or removed. A process killed in between (SIGKILL, a forced stop, a
host going down) did none of that: the partial file, up to UGC_MAX_UPLOAD_BYTES, stayed for good, and
so did the room taken, although no event may ever name the bytes. Once `after` has passed:

- a partial file no upload holds goes (`MediaStore.sweep_incoming`);
- a reservation of room (`ugc/platform/stored_bytes.py`) is settled if the event store holds what its
  command announced (`applied`), and otherwise given back, the bytes it kept for that upload removed
  first (no event names them: the announcement precedes every save).

The serving processes sweep: they mount the media directory (`ugc project` need not); several at
once are harmless (each file or reservation goes once). A sweep runs at the process's start, so a
restart after a crash cleans up at once, and every min(`after`, SWEEP_INTERVAL) seconds after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from ugc.platform import stored_bytes
from ugc.platform.database import Database
from ugc.platform.media import MediaStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0  # seconds between sweeps, at most


class AbandonedUploads:
    def __init__(
        self,
        media: MediaStore,
        db: Database,
        applied: Callable[[str], bool],
        now: Callable[[], datetime],
        after: float,
    ) -> None:
        self.media = media
        self.db = db
        self.applied = applied  # whether a reservation's recorded intent is in the event store
        self.now = now
        self.after = after

    def sweep(self) -> tuple[int, int]:
        """Sweep once: (partial files removed, reservations given back)."""
        removed = self.media.sweep_incoming(self.after)
        given_back = 0
        for reservation in stored_bytes.taken_before(self.db, self.now() - timedelta(seconds=self.after)):
            if reservation.intent and self.applied(reservation.intent):
                stored_bytes.settle(self.db, reservation.media_key)
                continue
            self.media.delete(reservation.media_key)
            stored_bytes.give_back(self.db, reservation.media_key)
            given_back += 1
        return removed, given_back


@contextmanager
def abandoned_uploads_swept(uploads: AbandonedUploads) -> Iterator[None]:
    """While the block runs, sweep `uploads` at once and every min(`uploads.after`, SWEEP_INTERVAL) seconds."""
    stopping = threading.Event()
    interval = min(uploads.after, SWEEP_INTERVAL)

    def sweeping() -> None:
        while True:
            try:
                removed, given_back = uploads.sweep()
            except Exception as error:  # the database or a share away: the next round tries again
                log.warning("abandoned uploads not swept (%s); next try in %g s", error, interval)
            else:
                if removed or given_back:
                    log.info(
                        "swept what dead processes left of uploads: %d partial file(s), %d quota reservation(s)",
                        removed,
                        given_back,
                    )
            if stopping.wait(interval):
                return

    thread = threading.Thread(target=sweeping, name="abandoned-uploads", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
