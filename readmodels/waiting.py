"""Read your writes: waiting, without polling per request, until read models reach a position.

Positions are read with `tracking.read_model_positions_by_projection`; on PostgreSQL the runners'
NOTIFY on `tracking.ADVANCED_CHANNEL` carries what each batch advanced, and the process's listening
thread (`ugc/platform/listening.py`) wakes the waiters it satisfies at once: no read of the positions
and no other thread on the way (a NOTIFY without positions, or one about positions never read, makes
the watcher read them all).

A command waits only for the read models its answer depends on: when its positions know the
topics of the events it appended (`commands.saving.Appended`), only the read models that handle one
of those topics (`Progress.declare`); otherwise every read model of its applications. So one slow or
stuck projection never stalls writes it has nothing to do with.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from readmodels import tracking
from readmodels.tracking import ADVANCED_CHANNEL, read_model_positions_by_projection
from ugc.errors import Unavailable
from ugc.platform.database import Database
from ugc.platform.listening import Subscription

WATCH_INTERVAL = 0.003  # how often the watcher re-reads positions while anyone waits and nobody says when they move
TOLD_WATCH_INTERVAL = 0.05  # the same while something says so: this process's runner leads, or a LISTEN hears


@dataclass(eq=False)
class _Waiter:
    required: Mapping[str, int]
    wake: Callable[[], object]  # called once, by the watcher, when a read shows `required` applied


class Progress:
    """In-process signals between commands, runners and waiters.

    Commands `nudge` the local runner after an append so it pulls at once. Waiters do not query
    the database themselves: while anyone waits, one watcher thread per database reads the read
    models' positions and wakes only the waiters whose positions were reached. It reads at once
    when the local runner says it `advanced()`; a runner in another process is seen by reading
    every few milliseconds, which is needed only while this process's runner does not lead and,
    on PostgreSQL, while the watcher's LISTEN for the runners' NOTIFY is not up.
    """

    def __init__(self) -> None:
        self._nudged: dict[str, threading.Event] = {}  # follower -> nudged since it last waited
        self._advanced = threading.Event()
        self._lock = threading.Lock()
        # The watcher's last read, per database: application -> read-model projection -> position.
        self._reached: dict[Database, dict[str, dict[str, int]]] = {}
        self._handles: dict[str, frozenset[str]] = {}  # read-model projection -> the topics it handles
        self._waiters: dict[Database, set[_Waiter]] = {}
        self._watchers: dict[Database, threading.Thread] = {}
        self._heard: set[Database] = set()  # databases whose runners' NOTIFYs the watcher hears
        # Per database, while the watcher reads the positions: the NOTIFYs' positions heard meanwhile.
        self._heard_during_read: dict[Database, list[tracking.Advanced]] = {}
        # Databases with a move heard of that no position in `_reached` shows yet (a NOTIFY without
        # positions, or about a projection never read): the next waiter has them read.
        self._unapplied: set[Database] = set()
        self.leading = False  # set by this process's projection runner while it leads

    def declare(self, handles: Mapping[str, frozenset[str]]) -> None:
        """Say which stored topics each read-model projection handles; one not declared counts as handling all."""
        with self._lock:
            self._handles = {**self._handles, **handles}

    def nudge(self) -> None:
        with self._lock:
            nudged = list(self._nudged.values())
        for event in nudged:
            event.set()

    def wait_for_nudge(self, timeout: float, follower: str = "") -> None:
        """Wait until nudged or `timeout`; each follower (a runner's thread) hears every nudge."""
        with self._lock:
            nudged = self._nudged.setdefault(follower, threading.Event())
        nudged.wait(timeout)
        nudged.clear()

    def advanced(self) -> None:
        self._advanced.set()

    def wait(self, db: Database, required: Mapping[str, int], timeout: float) -> None:
        """Block until every read model has applied `required`; `Unavailable` after `timeout`."""
        done = threading.Event()
        waiter = self._enlist(db, required, done.set)
        if waiter is None:
            return
        try:
            if not done.wait(timeout):
                raise Unavailable("read_model_lagging")
        finally:
            self._discharge(db, waiter)

    async def wait_async(self, db: Database, required: Mapping[str, int], timeout: float) -> None:
        """`wait` for a coroutine: the event loop goes on serving, and no thread is held meanwhile."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        waiter = self._enlist(db, required, lambda: loop.call_soon_threadsafe(_resolve, done))
        if waiter is None:
            return
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise Unavailable("read_model_lagging") from None
        finally:
            self._discharge(db, waiter)

    def _enlist(self, db: Database, required: Mapping[str, int], wake: Callable[[], object]) -> _Waiter | None:
        """A new waiter, with a watcher reading for it; None if the last read already shows `required`.

        Positions only grow, so any read that shows them reached vouches for a write made before.
        """
        with self._lock:
            if db in self._reached and _reached(self._reached[db], required, self._handles):
                return None
            waiter = _Waiter(required, wake)
            self._waiters.setdefault(db, set()).add(waiter)
            watcher = self._watchers.get(db)
            if watcher is None or not watcher.is_alive():
                watcher = threading.Thread(target=self._watch, args=(db,), name="read-model-watcher", daemon=True)
                self._watchers[db] = watcher
                watcher.start()
            current = self._told_of_every_move(db) and db not in self._unapplied
        if not current:
            self._advanced.set()  # read the positions now rather than at the next tick
        return waiter

    def _told_of_every_move(self, db: Database) -> bool:
        """Whether every move of a position committed from now on reaches `_reached` unasked: the
        LISTEN hears each batch's NOTIFY, which carries its positions (`_heard_advance`)."""
        return db in self._heard

    def _discharge(self, db: Database, waiter: _Waiter) -> None:
        with self._lock:
            self._waiters.get(db, set()).discard(waiter)

    def _watch(self, db: Database) -> None:
        """Read the positions while anyone waits on `db`; end when nobody has for a second."""
        listening = self._listen(db, threading.current_thread()) if db.dialect == "postgresql" else None
        idle_since = time.monotonic()
        while True:
            told = self.leading or db in self._heard
            self._advanced.wait(TOLD_WATCH_INTERVAL if told else WATCH_INTERVAL)
            self._advanced.clear()
            with self._lock:
                if not self._waiters.get(db):
                    if time.monotonic() - idle_since > 1.0:
                        del self._watchers[db]
                        self._heard.discard(db)
                        break
                    continue
                self._heard_during_read[db] = []
                self._unapplied.discard(db)  # this read shows every move heard of so far
            idle_since = time.monotonic()
            try:
                positions = read_model_positions_by_projection(db)
            except Exception:  # the database is away: waiters time out with 503, we try again
                with self._lock:
                    self._unapplied.add(db)
                time.sleep(WATCH_INTERVAL)
                self._advanced.set()
                continue
            with self._lock:
                # A NOTIFY heard meanwhile may tell of a batch this read did not see yet.
                for advanced in self._heard_during_read.pop(db, []):
                    _apply(positions, advanced)
                self._reached[db] = positions
                self._wake_reached(db)
        if listening is not None:
            db.listener.cancel(listening)

    def _wake_reached(self, db: Database) -> None:
        """Wake the waiters of `db` whose positions the last positions known show applied (under `_lock`)."""
        positions = self._reached[db]
        waiters = self._waiters.get(db, set())
        for waiter in [w for w in waiters if _reached(positions, w.required, self._handles)]:
            waiters.discard(waiter)
            waiter.wake()

    def _heard_advance(self, db: Database, payload: str) -> None:
        """A runner's NOTIFY: apply the positions it carries to the last read and wake whom they
        satisfy; with none, or about projections the last read did not show, have them all read."""
        advanced = tracking.advanced_in(payload)
        with self._lock:
            if advanced is None or not _apply(self._reached.get(db, {}), advanced):
                # Read now if anyone waits; if nobody does (the watcher may skip this read), the
                # next waiter has it read.
                self._unapplied.add(db)
                self._advanced.set()
                return
            if db in self._heard_during_read:
                self._heard_during_read[db].append(advanced)
            self._wake_reached(db)

    def _listen(self, db: Database, watcher: threading.Thread) -> Subscription:
        """Hear every runner, in any process, that moves read models of `db`, on the process's LISTEN
        (`db.listener`), while `watcher` watches: a watcher that ended, or its successor, is not
        confused by what the listener tells the other."""

        def listening() -> None:
            with self._lock:
                if self._watchers.get(db) is not watcher:
                    return
                self._heard.add(db)
            self._heard_advance(db, "")  # what moved before the LISTEN went unheard: all are read

        def lost() -> None:  # the watcher reads every few milliseconds meanwhile
            with self._lock:
                if self._watchers.get(db) is watcher:
                    self._heard.discard(db)

        return db.listener.subscribe(
            Subscription(ADVANCED_CHANNEL, functools.partial(self._heard_advance, db), listening, lost)
        )


def _apply(positions: dict[str, dict[str, int]], advanced: tracking.Advanced) -> bool:
    """Move `positions` (application -> projection -> position) up to what `advanced` says; False,
    changing nothing, if they do not show each of its projections (only a read tells the rest)."""
    known = positions.get(advanced.application)
    if known is None or not set(advanced.projections) <= set(known):
        return False
    for projection in advanced.projections:
        known[projection] = max(known[projection], advanced.position)
    return True


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():  # it may have timed out meanwhile
        done.set_result(None)


def _reached(
    positions: Mapping[str, Mapping[str, int]], required: Mapping[str, int], handles: Mapping[str, frozenset[str]]
) -> bool:
    """Whether every read model the requirement depends on has applied it; an application no read
    model follows counts as reached."""
    topics: Mapping[str, frozenset[str]] = getattr(required, "topics", {})
    for app, pos in required.items():
        appended = topics.get(app)
        for projection, applied in positions.get(app, {}).items():
            if applied >= pos:
                continue
            if appended is not None and projection in handles and not handles[projection] & appended:
                continue  # it handles none of the events appended: the answer does not depend on it
            return False
    return True


def wait_for(db: Database, progress: Progress, required: Mapping[str, int], timeout: float) -> None:
    """Block until every read model has applied `required` (application -> position).

    Raises `Unavailable` after `timeout` seconds rather than let a stale answer out.
    """
    if required:
        progress.wait(db, required, timeout)
