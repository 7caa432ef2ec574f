"""What a route can use: built once per process by the composition root (`ugc/wiring.py`)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from api import idempotency_keys
from api.idempotency_keys import IdempotencyKeys
from api.listing import ListingMemory
from api.readiness import READY_DEADLINE, Readiness
from api.realtime import Hub
from api.sessions import Sessions
from api.throttle import FailureThrottle
from api.tokens import TokenService
from commands.accounts import HASHES_AT_ONCE, AccountCommands
from commands.creator_skills import CreatorSkillCommands
from commands.creators import CreatorCommands
from commands.files import FileCommands
from commands.messaging import MessagingCommands
from commands.notifications import NotificationCommands
from commands.orders import OrderCommands
from commands.portfolio import PortfolioCommands
from commands.saving import Positions
from commands.services import ServiceCommands
from commands.skills import SkillCommands
from commands.standing import Standings
from readmodels.order_history import EventLog
from readmodels.services import listing_state
from readmodels.tracking import ProjectionState
from readmodels.waiting import Progress
from ugc.clock import Clock
from ugc.config import Settings
from ugc.errors import Unavailable
from ugc.platform import metrics
from ugc.platform.blocking import BlockingThreads
from ugc.platform.database import Database
from ugc.platform.media import MediaStore

T = TypeVar("T")

BLOCKING_THREADS = 40  # as many as anyio's default: a command holds its thread while the database works

# Whether the request under way has had its command stored (set by `Services.settle`): its blocking
# work from then on waits for a thread however long it takes (ugc/platform/blocking.py).
_stored: contextvars.ContextVar[bool] = contextvars.ContextVar("stored", default=False)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    progress: Progress
    tokens: TokenService
    sessions: Sessions
    standings: Standings
    throttle: FailureThrottle
    accounts: AccountCommands
    creators: CreatorCommands
    files: FileCommands
    orders: OrderCommands
    order_log: EventLog  # the orders log, for histories and `as_of` (readmodels/order_history.py)
    idempotency: IdempotencyKeys
    media: MediaStore
    services: ServiceCommands
    skills: SkillCommands
    creator_skills: CreatorSkillCommands
    portfolio: PortfolioCommands
    messaging: MessagingCommands
    notifications: NotificationCommands
    realtime: Hub
    check_redis: Callable[[], None] | None = None
    # Where each projection stands (projections/operations.py), for /readyz and /metrics: read on the
    # process's probe connection (`Database.probing`), so to be run by `check`.
    projection_states: Callable[[], list[ProjectionState]] | None = None
    readiness: Readiness = field(default_factory=Readiness)  # /readyz's checks, shared by its probes
    listing: ListingMemory = field(init=False)
    blocking: BlockingThreads = field(init=False)
    # The thread of the process's own checks (`check`), which no request's work ever takes.
    probing: BlockingThreads = field(init=False)
    # A command that hashes a password (argon2: ~0.1 s of a core) waits for its turn here, on the
    # event loop, holding no thread of `blocking`: 60 registrations at once queued on the commands'
    # own semaphore inside those threads, and every database read waited behind them (a sign-in
    # 17-26 s, a profile read 3.3 s at p50). Registrations take at most one turn at a time, so sign-ins
    # keep one of their own whatever a flood of registrations does.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HASHES_AT_ONCE))
    registering: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def __post_init__(self) -> None:
        self.listing = ListingMemory(lambda: listing_state(self.db))
        self.blocking = BlockingThreads(BLOCKING_THREADS, self.settings.queue_timeout)
        self.probing = BlockingThreads(1, READY_DEADLINE, name="ugc-probe")

    async def run(self, function: Callable[..., T], *args: Any, patient: bool = False, **kwargs: Any) -> T:
        """Run blocking work (the event store, the database) off the event loop, on `blocking`.

        Work waits for a thread at most UGC_QUEUE_TIMEOUT (then 503), unless it is `patient`: work
        after the request's command was stored, or work that must not be left undone once begun
        (an `Idempotency-Key`'s answer or its release: api/idempotency.py).

        A plain executor rather than Starlette's `run_in_threadpool`: anyio's capacity limiter and
        cancel scope cost ~10% of a list request's CPU here (bench/RESULTS.md, Orders 08:23, reading).
        """
        # The copied context carries the request id (ugc/platform/logs.py) into the thread's log lines.
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await self.blocking.run(call, patient=patient or _stored.get())

    async def check(self, function: Callable[[], T]) -> T:
        """Run one of the process's own checks (/readyz's, /metrics' projection figures) on `probing`:
        under a healthy burst every thread of `blocking` and every pooled connection is a request's,
        and checks that waited in line behind them answered /readyz 503 for a process serving all it
        was sent. A check finds the thread busy only with another check (bounded by the probe
        connection's timeouts); it waits for it READY_DEADLINE at most, then `Busy`."""
        call = functools.partial(contextvars.copy_context().run, function)
        return await self.probing.run(call)

    async def aclose(self) -> None:
        """Release what serving opened: the blocking threads and the asyncio connections."""
        self.probing.shutdown()
        self.blocking.shutdown()
        await self.db.aclose()

    async def settle(self, positions: Positions) -> None:
        """Read your writes: return once the read models that handle what the command appended have
        applied `positions` (503 after the timeout).

        Under an `Idempotency-Key` the key first records `positions` (it is never let go from then
        on), and a timeout answers the client 503 at once while this goes on waiting, up to
        `FINISH_WITHIN`, so the request can store the answer its retry replays (api/idempotency.py).
        """
        _stored.set(True)
        if not positions:
            return
        self.progress.nudge()
        pending = idempotency_keys.current()
        if pending is not None:
            await self.run(self.idempotency.appended, pending.user_id, pending.key, positions)
        started = time.monotonic()
        try:
            await self.progress.wait_async(self.db, positions, self.settings.read_your_writes_timeout)
        except Unavailable:
            metrics.WAIT_TIMEOUTS.inc()
            if pending is None:
                raise
            pending.answered_503.set()
            await self.progress.wait_async(self.db, positions, idempotency_keys.FINISH_WITHIN)
        else:
            metrics.WAIT_SECONDS.observe(time.monotonic() - started)


def services(connection: HTTPConnection) -> Services:
    found: Services = connection.app.state.services
    return found
