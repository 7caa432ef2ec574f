"""Word of an erasure, to every process at once: nothing a process kept of the person outlives it.

A server process keeps each user's standing for a while (`commands/standing.py`), and `ugc users
erase` runs in a process of its own. So the erasure is announced once the person's data keys are
destroyed (`announce`; the tombstones make them count as erased, `commands/erased.py`), and every
server process runs an `ErasureWatch` that hears it and has the person's standing forgotten and their
sockets closed. On PostgreSQL the announcement is a NOTIFY on
`CHANNEL`, heard on the process's one LISTEN connection (`ugc/platform/listening.py`). SQLite has
no NOTIFY: the announcement is a row of `erasure_marks`, which every process (on the one host) reads
for new rows every `POLL_INTERVAL` seconds; the leader's sweep (`ugc/platform/sweeping.py`) forgets
marks after `MARKS_KEPT_FOR`. A LISTEN that was down, or a poller that finds marks it had not read
swept, may have missed some: `missed` is called, and every kept standing forgotten (a reload each,
far cheaper than trusting an erased person's token). Either way a request still pays only the
dictionary lookup of its standing.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, Row, add_column
from ugc.platform.listening import Subscription

CHANNEL = "ugc_erasures"
POLL_INTERVAL = 0.1  # SQLite: a keyed read of one table, ten times a second per process
RETRY_AFTER = 1.0  # seconds between attempts to poll again while the database is away
# Far past the 30 s a process keeps a standing (commands/standing.py): a process that has not read a
# mark by then keeps nothing the mark would correct. One that finds marks it had not read swept (it
# could not read for that long) takes erasures as missed all the same.
MARKS_KEPT_FOR = timedelta(minutes=10)

DDL = (
    # SQLite only (PostgreSQL is told by NOTIFY): written in one transaction at a time, so rows
    # commit in the order of their seq, and a reader that saw one has seen every earlier one.
    {
        "sqlite": "CREATE TABLE IF NOT EXISTS erasure_marks "
        "(seq INTEGER PRIMARY KEY, user_id BIGINT NOT NULL, at {timestamp})"
    },
)

log = logging.getLogger(__name__)


def announce(db: Database, user_id: int, at: datetime) -> None:
    """Tell every process that `user_id` was erased; called once their data keys are destroyed, so a
    process that hears it and reads the account again finds it erased (by the tombstones, before
    `User.Erased` is stored)."""
    with db.transaction(write=True) as cur:
        if db.dialect == "postgresql":
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(user_id)))  # sent at the commit
        else:
            cur.execute("INSERT INTO erasure_marks (user_id, at) VALUES (%s, %s)", (user_id, at))


def sweep_marks(cur: Cursor, before: datetime) -> int:
    """SQLite: forget the marks up to the last one made before `before` (those made before `at` was
    recorded with them included), but the newest: SQLite numbers a row one past the largest seq, and
    an emptied table would number again from 1, below what every poller has read. The marks forgotten."""
    if cur.dialect != "sqlite":
        return 0
    return cur.execute(
        "DELETE FROM erasure_marks WHERE seq <= (SELECT MAX(seq) FROM erasure_marks WHERE at IS NULL OR at < %s) "
        "AND seq < (SELECT MAX(seq) FROM erasure_marks)",
        (before,),
    ).rowcount


def add_later_columns(cur: Cursor) -> None:
    if cur.dialect == "sqlite":
        add_column(cur, "erasure_marks", "at {timestamp}")


class ErasureWatch:
    """Calls `erased(user_id)` for every erasure announced after `start`, and `missed()` whenever
    erasures may have gone unheard (a LISTEN that is up again): on the process's listening thread
    on PostgreSQL, on a polling thread of its own on SQLite."""

    def __init__(self, db: Database, erased: Callable[[int], object], missed: Callable[[], object]) -> None:
        self.db = db
        self.erased = erased
        self.missed = missed
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None

    def start(self) -> None:
        if self.db.dialect == "postgresql":
            # Listening (again): what was announced while it was not is unknown, hence `missed`.
            heard = Subscription(CHANNEL, lambda payload: self.erased(int(payload)), self.missed)
            self._subscription = self.db.listener.subscribe(heard)
            return
        # Read now: every erasure announced after `start` is a row after this one.
        self._thread = threading.Thread(
            target=functools.partial(self._poll, self._last_mark()), name="erasure-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching. The poller is waited for, as its reads use the database's own connections
        (closed next)."""
        if self._subscription is not None:
            self.db.listener.cancel(self._subscription)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _poll(self, seen: int) -> None:
        while not self._stopping.wait(POLL_INTERVAL):
            try:
                with self.db.read() as cur:
                    rows = cur.execute(
                        "SELECT seq, user_id FROM erasure_marks WHERE seq > %s ORDER BY seq", (seen,)
                    ).fetchall()
            except Exception as error:  # the database is away or busy: try again
                log.warning("erasure marks not read (%s); reading again in %g s", error, RETRY_AFTER)
                self._stopping.wait(RETRY_AFTER)
                continue
            seen = self._heard(rows, seen)

    def _heard(self, rows: Sequence[Row], seen: int) -> int:
        """Tell of the marks read after `seen` (in order); the last seq read."""
        if rows and int(rows[0]["seq"]) > seen + 1:  # swept before this process read them
            self.missed()
        for row in rows:
            self.erased(int(row["user_id"]))
            seen = int(row["seq"])
        return seen

    def _last_mark(self) -> int:
        with self.db.read() as cur:
            row = cur.execute("SELECT COALESCE(MAX(seq), 0) AS seq FROM erasure_marks").fetchone()
        return int(row["seq"]) if row is not None else 0
