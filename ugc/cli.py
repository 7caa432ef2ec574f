"""`ugc`: serve the API, migrate, run or rebuild projections, seed data, grant roles."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ugc.config import ConfigError, Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ugc", description="UGC Market backend")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)

    commands.add_parser("migrate", help="create the event store's and the read side's tables")
    commands.add_parser("project", help="run the projections until interrupted (UGC_PROJECTIONS=external)")
    rebuild = commands.add_parser("rebuild", help="empty projections' tables and replay the log into them")
    rebuild.add_argument("names", nargs="*", help="projection names (default: all)")
    commands.add_parser("seed", help="load the reference categories and skills (idempotent)")
    history = commands.add_parser("history", help="print an aggregate's history from the event log")
    history_of = history.add_subparsers(dest="kind", required=True)
    order = history_of.add_parser("order", help="an order's events, oldest first")
    order.add_argument("id", type=int)
    order.add_argument("--json", action="store_true", help="machine-readable output")

    users = commands.add_parser("users", help="manage users")
    user_commands = users.add_subparsers(dest="user_command", required=True)
    grant = user_commands.add_parser("grant", help="grant a role to a user")
    grant.add_argument("username")
    grant.add_argument("role", choices=("admin", "auditor"))

    _add_projections_parser(commands)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"ugc: {error}", file=sys.stderr)
        return 2
    handler: dict[str, Callable[[], int]] = {
        "serve": lambda: _serve(settings, args.host, args.port, args.workers),
        "migrate": lambda: _migrate(settings),
        "project": lambda: _project(settings),
        "rebuild": lambda: _rebuild(settings, args.names),
        "seed": lambda: _seed(settings),
        "history": lambda: _history(settings, args.id, as_json=args.json),
        "users": lambda: _grant(settings, args.username, args.role),
        "projections": lambda: _projections(settings, args),
    }
    return handler[args.command]()


def _add_projections_parser(commands: Any) -> None:
    projections = commands.add_parser("projections", help="see where projections stand; retry or skip parked events")
    sub = projections.add_subparsers(dest="projections_command", required=True)
    status = sub.add_parser("status", help="per projection: position, head, lag, parked events, lease holder")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = sub.add_parser("retry", help="re-apply the parked events of a projection (after fixing the cause)")
    retry.add_argument("name")
    skip = sub.add_parser("skip", help="give up on the event at POSITION: the projection never applies it")
    skip.add_argument("name")
    skip.add_argument("position", type=int)
    skip.add_argument("--log", help="the application log of POSITION (needed when the projection follows several)")


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from projections import operations
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    _migrate_quietly(settings)
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url)
    try:
        known = {p.name: p for p in all_projections(settings)}
        ProjectionRunner(db, stores, list(known.values()), Progress()).register()  # every one is listed
        if args.projections_command == "status":
            states = operations.status(db, stores)
            if args.json:
                print(json.dumps([dataclasses.asdict(s) for s in states], default=str))
            else:
                print(operations.render(states))
            return 0
        projection = known.get(args.name)
        if projection is None:
            print(f"ugc: unknown projection {args.name!r}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        if args.projections_command == "retry":
            retried = operations.retry(db, stores, projection)
            for application, position in retried.applied:
                print(f"applied {application} {position}")
            for application, position, error in retried.failed:
                print(f"still failing {application} {position}: {error}")
            return 1 if retried.failed else 0
        chosen: str | None = args.log or (projection.applications[0] if len(projection.applications) == 1 else None)
        if chosen is None or chosen not in projection.applications:
            print(f"ugc: give --log, one of: {', '.join(projection.applications)}", file=sys.stderr)
            return 2
        operations.skip(db, projection, chosen, args.position)
        print(f"{args.name} will not apply event {args.position} of {chosen}")
        return 0
    finally:
        stores.close()
        db.close()


def _migrate_quietly(settings: Settings) -> None:
    from ugc.platform.database import Database
    from ugc.wiring import migrate

    db = Database(settings.database_url)
    try:
        migrate(db)
    finally:
        db.close()


def _migrate(settings: Settings) -> int:
    from ugc.platform.database import Database, until_reachable
    from ugc.wiring import migrate

    db = Database(settings.database_url)
    try:
        until_reachable(lambda: migrate(db), what="migrate")
    finally:
        db.close()
    print("migrated")
    return 0


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    _migrate(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker keeps its metrics in files here, and /metrics in any worker adds them up.
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "ugc.wiring:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=settings.access_log,
    )
    return 0


def _project(settings: Settings) -> int:
    from readmodels.waiting import Progress
    from ugc.platform.database import Database, until_reachable
    from ugc.platform.store import EventStores
    from ugc.wiring import projection_runner

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    db = Database(settings.database_url)
    _migrate(settings)
    stores = until_reachable(lambda: EventStores(settings.database_url), what="project")
    try:
        with projection_runner(settings, db, stores, Progress()) as runner:
            runner.start()
            stop.wait()
    finally:
        stores.close()
        db.close()
    return 0


def _rebuild(settings: Settings, names: Sequence[str]) -> int:
    from projections.operations import events_after
    from projections.rebuild_progress import RebuildProgress
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url)
    try:
        projections = all_projections(settings)
        known = {p.name: p for p in projections if p.read_model}
        unknown = [name for name in names if name not in known]
        if unknown:
            print(f"ugc: unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        runner = ProjectionRunner(db, stores, projections, Progress())
        runner.register()
        for name in names or list(known):
            projection = known[name]
            total = sum(events_after(stores, application, 0) for application in projection.applications)
            shown = RebuildProgress(name, total, sys.stderr)
            runner.reset(projection)
            for application in projection.applications:
                while read := runner.run_once(projection, [application]):
                    shown.advance(read)
            shown.finish()
            print(f"rebuilt {name}")
    finally:
        stores.close()
        db.close()
    return 0


def _history(settings: Settings, order: int, *, as_json: bool) -> int:
    import json

    from readmodels.order_history import describe, order_history
    from ugc.errors import NotFound
    from ugc.platform.store import EventStores

    stores = EventStores(settings.database_url)
    try:
        entries = order_history(stores.orders.events, order)
    except NotFound:
        print(f"ugc: no order {order}", file=sys.stderr)
        return 1
    finally:
        stores.close()
    if as_json:
        print(json.dumps(entries, ensure_ascii=False, indent=2, default=str))
    else:
        print(f"Order {order}: {len(entries)} events")
        for entry in entries:
            print(describe(entry))
    return 0


def _seed(settings: Settings) -> int:
    from commands.reference import load_reference_data
    from ugc.clock import SystemClock
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    _migrate(settings)
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url)
    try:
        positions = load_reference_data(stores, db, SystemClock())
    finally:
        stores.close()
        db.close()
    print("reference data loaded" if positions else "reference data already present")
    return 0


def _grant(settings: Settings, username: str, role: str) -> int:
    from commands.accounts import AccountCommands
    from ugc.clock import SystemClock
    from ugc.errors import NotFound
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.wiring import password_hasher

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url)
    try:
        AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings)).grant_role(username, role)
    except NotFound:
        print(f"ugc: no user named {username!r}", file=sys.stderr)
        return 1
    finally:
        stores.close()
        db.close()
    print(f"granted {role} to {username}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
