"""The composition root: the one module that wires the layers together for a process.

It imports api, commands, projections and readmodels; nothing in them imports it, and the
rest of `ugc` imports none of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher

from commands import intents
from commands.accounts import AccountCommands
from commands.creator_skills import CreatorSkillCommands
from commands.creators import CreatorCommands
from commands.files import FileCommands
from commands.messaging import MessagingCommands
from commands.notifications import NotificationCommands
from commands.orders import OrderCommands
from commands.portfolio import PortfolioCommands
from commands.reference import load_reference_data
from commands.scheduler import AutoCompleter
from commands.services import ServiceCommands
from commands.skills import SkillCommands
from commands.standing import Standings
from projections import scratch
from projections.base import Projection
from projections.bluegreen import VersionUpgrade
from projections.leasing import LeaseKeeper
from projections.operations import status as projection_status
from projections.registry import LEASE_WEIGHTS, all_projections
from projections.runner import JOBS_LEASE, ProjectionRunner
from readmodels.orders import due_for_auto_completion
from readmodels.schema import create_tables
from readmodels.tracking import ProjectionState
from readmodels.waiting import Progress, wait_for
from ugc.clock import Clock, SystemClock
from ugc.config import ARGON2_LANES, Settings, operator_login
from ugc.errors import Unavailable
from ugc.events import operator_actor
from ugc.platform import schema_stamp
from ugc.platform.abandoned_uploads import AbandonedUploads, abandoned_uploads_swept
from ugc.platform.checkpoints import PeriodicCheckpoints
from ugc.platform.database import Database, until_reachable
from ugc.platform.deployment import deployment_id
from ugc.platform.erasures import ErasureWatch
from ugc.platform.media import MediaStore
from ugc.platform.push import Publisher
from ugc.platform.recorded_log import RecordedLog
from ugc.platform.serving_lock import migrating, serving
from ugc.platform.store import EventStores, Orders, create_event_tables, owned_by_another_role
from ugc.platform.sweeping import Sweeper
from ugc.platform.tuning import freeze_startup_objects, return_large_allocations_to_the_system

if TYPE_CHECKING:
    import redis
    from starlette.applications import Starlette

    from api.realtime import Hub
    from api.services import Services
    from ugc.platform.push_relay import RedisRelay

log = logging.getLogger(__name__)

STARTUP_WAIT = 30.0


def migrate(db: Database) -> None:
    """`ugc migrate`: create the event store's and the read side's tables once, under a lock, so
    concurrent starts never race; safe to run from many processes. Refused (RestorePending) while a
    restore runs on the database: it would make tables under it, or serve what it has not finished."""
    with db.exclusive_lock("migrate"), migrating(db.url):
        owner = owned_by_another_role(db.url)
        if owner is not None:
            log.info("the event tables belong to %s: it migrates (`ugc migrate` as that role), not this role", owner)
            return
        create_event_tables(db.url)
        create_tables(db)
        schema_stamp.record(db)


def migrate_unless_current(db: Database) -> None:
    """A server process's first step: refused as a migration is (a restore under way or unfinished,
    `migrating`), but a migration only where another code, or none, migrated the database last
    (`ugc/platform/schema_stamp.py`): `ugc serve` migrated it before it started this process."""
    with migrating(db.url):
        if schema_stamp.migrated_by_this_code(db):
            return
    log.info("the database was last migrated by other code than this process's: migrating it")
    migrate(db)


def order_commands(
    settings: Settings, stores: EventStores, db: Database, clock: Clock, standings: Standings | None = None
) -> OrderCommands:
    """`standings`: a server's own, which hears of erasures; a command-line process's keeps its own."""
    return OrderCommands(
        stores,
        db,
        clock,
        standings or Standings(stores, clock),
        auto_complete_after=timedelta(days=settings.auto_complete_days),
    )


def unknown_names(settings: Settings, only: Collection[str]) -> str | None:
    """What is wrong with a projection runner's `only`, if anything: it may name every projection, and
    JOBS_LEASE for the periodic jobs."""
    known = {p.name for p in all_projections(settings)} | {JOBS_LEASE}
    unknown = sorted(set(only) - known)
    return f"no projection named {', '.join(unknown)}; known: {', '.join(sorted(known))}" if unknown else None


@contextmanager
def projection_runner(
    settings: Settings,
    db: Database,
    stores: EventStores,
    progress: Progress,
    clock: Clock | None = None,
    publisher: Publisher | None = None,
    only: Collection[str] | None = None,
) -> Iterator[ProjectionRunner]:
    """The runner of every projection, and of the scheduler's jobs while it leads; with `only`, of
    those projections (and of the jobs if it names JOBS_LEASE).

    Pushes go to `publisher`; without one, over Redis when it is configured (`ugc project`).
    """
    if only is not None:
        if (wrong := unknown_names(settings, only)) is not None:
            raise ValueError(wrong)

    def chosen(projection: Projection) -> bool:
        return only is None or projection.name in only

    clock = clock or SystemClock()
    auto_completer = AutoCompleter(
        order_commands(settings, stores, db, clock), clock, lambda before: due_for_auto_completion(db, before)
    )
    sender: RedisRelay | None = None
    if publisher is None and settings.redis_url:
        from ugc.platform.push_relay import RedisRelay, channel_for  # see `pushes_relayed`

        sender = RedisRelay(settings.redis_url, channel_for(settings.database_url))
        sender.start()
    runner = ProjectionRunner(
        db,
        stores,
        [p for p in all_projections(settings, publisher or sender, stores) if chosen(p)],
        progress,
        jobs=[
            auto_completer.run_once,
            audit_checkpoints(settings, stores).run_once,
            leader_sweeper(settings, db, clock).run_once,
        ]
        if only is None or JOBS_LEASE in only
        else [],
        lease_weights=LEASE_WEIGHTS,
        max_attempts=settings.projection_max_attempts,
    )
    until_reachable(runner.register, what="start", await_creation=True)
    upgrade = VersionUpgrade(
        db, stores, lambda: [p for p in all_projections(settings) if chosen(p)], lambda: runner.keeper
    )
    upgrade.start()
    try:
        yield runner
    finally:
        upgrade.stop()
        runner.stop()
        if sender is not None:
            sender.stop()


def leader_sweeper(settings: Settings, db: Database, clock: Clock) -> Sweeper:
    """The leader's job that forgets, every UGC_SWEEP_INTERVAL seconds, what has outlived its use: the
    platform's rows, and the scratch sets of rebuilds and compares whose process died."""
    # How long the API keeps what it answered and the failures it counts: the platform's, beside their
    # tables. Importing them from the API (its errors, Starlette, psycopg) was ~65 ms of CPU at the start
    # of each `ugc project` that leads.
    from ugc.platform.auth_failures import WINDOW as THROTTLE_WINDOW
    from ugc.platform.idempotency_keys import KEPT_FOR

    return Sweeper(
        db,
        clock.now,
        keys_kept_for=KEPT_FOR,
        attempts_kept_for=THROTTLE_WINDOW,
        interval=settings.sweep_interval,
        elsewhere=[lambda: len(scratch.sweep(db))],
    )


def audit_checkpoints(settings: Settings, stores: EventStores) -> PeriodicCheckpoints:
    """The leader's job that signs the chains' heads every UGC_AUDIT_CHECKPOINT_INTERVAL seconds."""
    return PeriodicCheckpoints(
        stores.chain_heads, settings.audit_dir, settings.audit_key, settings.audit_checkpoint_interval
    )


@contextmanager
def runtime(settings: Settings, *, clock: Clock | None = None) -> Iterator[Services]:
    """Everything one server process needs, opened in order and closed in reverse; the database's
    serving lock held all along (`ugc/platform/serving_lock.py`)."""
    with serving(settings.database_url), _opened(settings, clock) as services:
        yield services


@contextmanager
def _opened(settings: Settings, clock: Clock | None) -> Iterator[Services]:
    # What only a server uses is imported here, as `asgi_app` imports the routes: every `ugc` command
    # imports this module, and the API's services and tokens (jwt) were ~60 ms of each one's start.
    from api.idempotency_keys import IdempotencyKeys
    from api.realtime import Hub
    from api.services import Services
    from api.sessions import Sessions
    from api.throttle import FailureThrottle
    from api.tokens import TokenService

    clock = clock or SystemClock()
    db = Database(settings.database_url)
    stores: EventStores | None = None
    redis_client: redis.Redis[bytes] | None = None
    try:
        until_reachable(lambda: migrate_unless_current(db), what="start", await_creation=True)
        stores = until_reachable(
            lambda: EventStores(settings.database_url, data_key=settings.data_key), what="start", await_creation=True
        )
        reference = load_reference_data(stores, db, clock, operator_actor(operator_login()))  # `ugc serve`'s
        progress = Progress()
        if settings.redis_url:
            import redis  # see `pushes_relayed`

            redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
        hub = Hub(
            asyncio.get_running_loop(),
            max_per_user=settings.ws_max_per_user,
            max_sockets=settings.ws_max,
            brokered=bool(settings.redis_url),
        )
        standings = Standings(stores, clock)
        media = MediaStore(settings.media_dir)
        uploads = AbandonedUploads(
            media, db, announced_applied(stores), clock.now, after=settings.abandoned_upload_after
        )
        with (
            abandoned_uploads_swept(uploads),
            server_erasures_heard(db, stores, standings, hub),
            pushes_relayed(settings, hub) as redis_relay,
            projection_runner(settings, db, stores, progress, clock, redis_relay or hub) as runner,
            membership(settings, db, runner) as member,
        ):
            if settings.projections == "inline":
                try:
                    # A fresh install serves its categories and skills from the very first request.
                    wait_for(db, progress, reference, STARTUP_WAIT)
                except Unavailable:
                    log.warning("reference data not projected after %.0f s; serving anyway", STARTUP_WAIT)
            tokens = TokenService(
                settings.secret_key,
                clock,
                audience=deployment_id(db),
                access_ttl=settings.access_token_ttl,
                refresh_ttl=settings.refresh_token_ttl,
                previous_keys=settings.previous_secret_keys,
            )
            services = Services(
                settings=settings,
                clock=clock,
                db=db,
                progress=progress,
                tokens=tokens,
                sessions=Sessions(
                    db, tokens, clock, standings, reuse_window=timedelta(seconds=settings.refresh_reuse_window)
                ),
                standings=standings,
                throttle=FailureThrottle(db, clock, member),
                accounts=AccountCommands(
                    stores,
                    db,
                    clock,
                    hasher=password_hasher(settings),
                    verification_ttl=settings.verification_token_ttl,
                ),
                creators=CreatorCommands(stores, db, clock),
                files=FileCommands(stores, db, clock),
                services=ServiceCommands(stores, db, clock),
                skills=SkillCommands(stores, db, clock),
                creator_skills=CreatorSkillCommands(stores, db, clock),
                portfolio=PortfolioCommands(stores, db, clock),
                messaging=MessagingCommands(stores, db, clock, standings),
                notifications=NotificationCommands(stores, clock),
                realtime=hub,
                orders=order_commands(settings, stores, db, clock, standings),
                order_log=RecordedLog(stores, Orders.name),
                idempotency=IdempotencyKeys(
                    db,
                    clock,
                    timedelta(seconds=settings.idempotency_in_flight),
                    functools.partial(intents.applied, stores.__getitem__),
                ),
                media=media,
                check_redis=_pinger(redis_client) if redis_client is not None else None,
                projection_states=probed_status(db, stores),
            )
            freeze_startup_objects()
            yield services
    finally:
        if redis_client is not None:
            redis_client.close()
        if stores is not None:
            stores.close()
        db.close()


@contextmanager
def membership(settings: Settings, db: Database, runner: ProjectionRunner) -> Iterator[str]:
    """This process's name among the live lease members while the block runs: its runner's keeper's
    when it runs the projections (the runner started here), else that of a keeper of no lease
    (api/throttle.py counts a sign-in in flight only while its process is a live member)."""
    if settings.projections == "inline":
        runner.start()  # stopped as `projection_runner` ends
    if runner.keeper is not None:
        yield runner.keeper.holder
        return
    keeper = LeaseKeeper(db, [])
    until_reachable(keeper.tick, what="start")  # a member before its first request
    keeper.start()
    try:
        yield keeper.holder
    finally:
        keeper.stop()


def probed_status(db: Database, stores: EventStores) -> Callable[[], list[ProjectionState]]:
    """Where each projection stands, read on the process's probe connection (`Database.probing`)."""
    return lambda: db.probing(lambda cur: projection_status(db, stores, on=cur))


def announced_applied(stores: EventStores) -> Callable[[str], bool]:
    """Whether the event store holds any of the intents written out in a text (commands/intents.py)."""
    return lambda text: intents.applied(stores.__getitem__, intents.from_text(text))


@contextmanager
def erasures_heard(
    db: Database,
    stores: EventStores,
    erased: Callable[[int], object] = lambda user_id: None,
    missed: Callable[[], object] = lambda: None,
) -> Iterator[None]:
    """While the block runs, an erasure made by any process reaches this one at once, not once what it
    kept expires (ugc/platform/erasures.py): the data keys it opened are forgotten, so nothing it does
    next reads the person's sealed fields (a mail that waited for its server finds no address to go
    to), then `erased(user_id)` is called, or `missed()` when erasures may have gone unheard."""

    def heard(user_id: int) -> None:
        _forget_data_keys(stores)
        erased(user_id)

    def unheard() -> None:
        _forget_data_keys(stores)
        missed()

    watch = ErasureWatch(db, heard, unheard)
    watch.start()
    try:
        yield
    finally:
        watch.stop()


def _forget_data_keys(stores: EventStores) -> None:
    if stores.data_keys is not None:
        stores.data_keys.forget()


@contextmanager
def server_erasures_heard(db: Database, stores: EventStores, standings: Standings, hub: Hub) -> Iterator[None]:
    """`erasures_heard` in a server: the person's standing is forgotten too and their sockets closed
    with 4401, not once the standing kept here expires."""
    from api.realtime import UNAUTHORIZED  # see `_opened`

    def erased(user_id: int) -> None:
        standings.forget(user_id)
        hub.call(hub.close_user, user_id, UNAUTHORIZED)

    def missed() -> None:
        """Erasures may have gone unheard: forget every standing, and close the sockets of the users
        the store shows erased (or gone) now, not at their next look."""
        standings.forget()
        hub.close_gone(lambda user: standings.load(user) is not None)

    with erasures_heard(db, stores, erased, missed):
        yield


def pushes_relayed(settings: Settings, hub: Hub) -> AbstractContextManager[RedisRelay | None]:
    """A started Redis relay where UGC_REDIS_URL is set (stopped at exit), else None.

    Redis's client is imported only where one is configured: importing it took ~60 ms of CPU at the start
    of every `ugc` command (most never touch Redis) and of every server on its own."""
    if not settings.redis_url:
        return nullcontext()
    from ugc.platform.push_relay import relay

    return relay(settings.redis_url, settings.database_url, hub)


def _pinger(client: redis.Redis[bytes]) -> Callable[[], None]:
    def ping() -> None:
        client.ping()

    return ping


def password_hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured cost (the library's defaults unless tuned)."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=ARGON2_LANES
    )


def asgi_app() -> Starlette:
    """The app uvicorn builds in each worker process (`--factory`).

    The routes, their schemas and the OpenAPI document are imported here, not with the module: every
    `ugc` command imports this module, and only a server needs them (~0.6 s of each command's start)."""
    from api.app import build_app

    return_large_allocations_to_the_system()
    settings = Settings.from_env()
    return build_app(lambda: runtime(settings))
