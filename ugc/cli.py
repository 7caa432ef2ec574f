"""`ugc`: serve the API, migrate, run or rebuild projections, seed data, manage users, back up and restore."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ugc.config import DEFAULT_PORT, ConfigError, Settings, operator_login
from ugc.platform.numbers import natural

ROLE_CHOICES = ("admin", "auditor")
PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is no terminal
WS_MAX_FRAME = 64 * 1024  # bytes: a frame of 4,000 characters, each escaped, fits; a larger one is closed 1009
GRACEFUL_SHUTDOWN = 30  # seconds a stop waits for connections to end before closing them
WS_PING_TIMEOUT = 120  # seconds a WebSocket client has to answer the server's ping (sent every 20 s)
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start
# Seconds an erasure waits for the read models: for the listing to show every service of the person
# (to withdraw them), then for their rows to be blanked (to vacuum the old versions away).
ERASE_WAIT = 30.0
# The commands that make the tables they need; every other one refuses a database without them
# (another application's, a mistyped SQLite path) rather than make the schema there.
MIGRATING = frozenset({"serve", "migrate", "project", "seed"})
# ... and a restore, which wants a target with no database and makes it from the backup.
UNCHECKED = MIGRATING | {"restore"}

if TYPE_CHECKING:
    from datetime import datetime

    import uvicorn

    from commands.accounts import AccountCommands
    from commands.demo import DemoCommands
    from projections.replay import NotReplayed
    from ugc.platform.database import Database
    from ugc.platform.log_verify import Finding
    from ugc.platform.store import EventStores


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of `ugc`, each with its help text."""
    parser = argparse.ArgumentParser(prog="ugc", description="UGC Market backend")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API (migrates first)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help="TCP port, 1-65535 (default: %(default)s)")
    serve.add_argument("--workers", type=_positive, default=1, help="server processes (default: %(default)s)")

    commands.add_parser("migrate", help="create the event store's and the read side's tables")
    project = commands.add_parser("project", help="run the projections until interrupted (UGC_PROJECTIONS=external)")
    project.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these projections (`scheduler`: the periodic jobs) and leave the others to other "
        "processes, e.g. to give costly ones a host of their own (default: all of them)",
    )
    rebuild = commands.add_parser(
        "rebuild", help="replay read models into new tables beside the live ones, then switch to them (blue/green)"
    )
    rebuild.add_argument("names", nargs="*", help="read-model projection names (default: every read model)")
    seed = commands.add_parser("seed", help="load the reference categories and skills (idempotent)")
    seed.add_argument(
        "--demo",
        action="store_true",
        help="also add demo users, creators, services, orders in every status, reviews and chat (idempotent)",
    )
    history = commands.add_parser("history", help="print an aggregate's history from the event log")
    history_of = history.add_subparsers(dest="kind", required=True, metavar="KIND")
    order = history_of.add_parser(
        "order",
        help="an order's audit record, oldest event first (what GET /api/v1/orders/ID/history/ answers)",
    )
    order.add_argument("id", help="the order's id")
    order.add_argument(
        "--as-of",
        metavar="VERSION|TIME",
        help="only up to the event with this version, or the last one at or before this ISO 8601 time "
        "(with its time zone); the order as it was then is shown too",
    )
    order.add_argument(
        "--json",
        action="store_true",
        help="the record as the HTTP API writes it: {count, next, previous, results}; with --as-of, "
        '{"order": <GET /api/v1/orders/ID/?as_of=>, "history": <the record>}',
    )

    events = commands.add_parser("events", help="inspect the stored log")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    check = events_commands.add_parser(
        "check", help="decode stored events with this code and name any that no longer decode (exit 1 if any)"
    )
    scope = check.add_mutually_exclusive_group()
    scope.add_argument("--all", action="store_true", help="every stored event")
    scope.add_argument(
        "--sample",
        type=_positive,
        default=1000,
        metavar="N",
        help="N random events of each application's log (default: %(default)s)",
    )

    verify = commands.add_parser(
        "verify",
        help="recompute every hash chain, check the streams and the latest checkpoint (exit 1 if anything is wrong)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    audit = commands.add_parser("audit", help="sign the event logs' heads")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_commands.add_parser("checkpoint", help="write a signed checkpoint of every chain's head into UGC_AUDIT_DIR")

    users = commands.add_parser("users", help="manage users")
    user_commands = users.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_commands.add_parser("create", help="register a user (the password is read from stdin)")
    create.add_argument("username", help="the new user's username")
    create.add_argument("--email", required=True, help="the user's e-mail address")
    create.add_argument("--first-name", default="", help="first name (default: empty)")
    create.add_argument("--last-name", default="", help="last name (default: empty)")
    create.add_argument(
        "--verified", action="store_true", help="mark the e-mail verified now instead of waiting for the mail's link"
    )
    create.add_argument("--role", choices=ROLE_CHOICES, action="append", default=[], help="grant a role (repeatable)")
    user_commands.add_parser("list", help="list users with their e-mail, verification and roles")
    grant = user_commands.add_parser("grant", help="grant a role to a user")
    grant.add_argument("username", help="the user's username")
    grant.add_argument("role", choices=ROLE_CHOICES, help="the role to grant")
    revoke = user_commands.add_parser("revoke", help="take a role away from a user")
    revoke.add_argument("username", help="the user's username")
    revoke.add_argument("role", choices=ROLE_CHOICES, help="the role to revoke")
    erase = user_commands.add_parser(
        "erase",
        help="erase a person's personal data for good (their data keys are destroyed; orders stay)",
        description="Destroys the data keys that seal the person's e-mail, names, phone, bio and creator "
        "profile in the log, blanks them in the read tables and ends their sessions. Their username, orders, "
        "reviews and messages stay for the other parties and auditors. It cannot be undone.",
    )
    erase.add_argument("username", nargs="?", help="the user's username")
    erase.add_argument("--yes", action="store_true", help="do not ask: erasing cannot be undone")
    erase.add_argument(
        "--replay",
        action="store_true",
        help="after a restore: erase again everyone the erasure journal in UGC_AUDIT_DIR names "
        "and the database does not show erased",
    )

    _add_projections_parser(commands)
    _add_backup_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"ugc: {error}", file=sys.stderr)
        return 2
    from ugc.platform.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_format))
    handler: dict[str, Callable[[], int]] = {
        "serve": lambda: _serve(settings, args.host, args.port, args.workers),
        "migrate": lambda: _migrate(settings),
        "project": lambda: _project(settings, args.only),
        "rebuild": lambda: _rebuild(settings, args.names),
        "seed": lambda: _seed(settings, demo=args.demo),
        "history": lambda: _history(settings, args.id, args.as_of, as_json=args.json),
        "events": lambda: _check_events(settings, None if args.all else args.sample),
        "verify": lambda: _verify(settings, as_json=args.json),
        "audit": lambda: _checkpoint(settings),
        "users": lambda: _users(settings, args),
        "projections": lambda: _projections(settings, args),
        "backup": lambda: _backup(settings, args.dest),
        "restore": lambda: _restore(settings, args.source, yes=args.yes, replace=args.replace),
    }
    try:
        if args.command not in UNCHECKED and not _migrated(settings, args.command):
            return _not_migrated(args.command)
        if args.command not in UNCHECKED:  # those check it once they have migrated (a fresh database)
            _check_data_key(settings)
        return handler[args.command]()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ugc projections status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 1
    except Exception as error:  # one clear line, not a traceback; --debug-level logs keep the rest
        logging.getLogger("ugc.cli").debug("ugc %s failed", args.command, exc_info=error)
        if _no_such_table(error):  # a table of a later version than the database's
            return _not_migrated(args.command)
        print(f"ugc: {args.command} failed: {_describe(error)}", file=sys.stderr)
        return 1


def _migrated(settings: Settings, command: str) -> bool:
    from readmodels.schema import is_migrated
    from ugc.platform.database import until_reachable

    return until_reachable(lambda: is_migrated(settings.database_url), what=command)


def _not_migrated(command: str) -> int:
    print(
        f"ugc: {command}: the database of UGC_DATABASE_URL has no UGC Market tables "
        "(a wrong database, or one not migrated yet: ugc migrate)",
        file=sys.stderr,
    )
    return 2


def _no_such_table(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, is a table missing from the database."""
    import sqlite3

    from psycopg.errors import UndefinedTable

    while error is not None:
        if isinstance(error, UndefinedTable) or (
            isinstance(error, sqlite3.OperationalError) and str(error).startswith("no such table")
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _add_projections_parser(commands: Any) -> None:
    projections = commands.add_parser("projections", help="see where projections stand; retry or skip parked events")
    sub = projections.add_subparsers(dest="projections_command", required=True)
    status = sub.add_parser("status", help="per projection: position, head, lag, parked events, lease holder")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = sub.add_parser("retry", help="re-apply the parked events of a projection (after fixing the cause)")
    retry.add_argument("name", help="the projection, as `status` names it")
    skip = sub.add_parser("skip", help="give up on the event at POSITION: the projection never applies it")
    skip.add_argument("name", help="the projection, as `status` names it")
    skip.add_argument("position", type=_positive, help="the event's position in its log (notification id)")
    skip.add_argument("--log", help="the application log of POSITION (needed when the projection follows several)")


def _add_backup_parsers(commands: Any) -> None:
    backup = commands.add_parser(
        "backup",
        help="back the deployment up, in use, into a new directory: database, UGC_AUDIT_DIR, media, manifest",
    )
    backup.add_argument("dest", type=Path, help="a directory that does not exist yet (or is empty)")
    restore = commands.add_parser(
        "restore",
        help="restore a backup into an empty target, acknowledge it, erase again from the journal, verify",
        description="Checks the backup against its manifest, restores its database into the empty target of "
        "UGC_DATABASE_URL (PostgreSQL: a new database, made if missing), adds what UGC_AUDIT_DIR and the "
        "media lack from it, moves the checkpoints written since the backup began aside (the events after "
        "the backup are given up), carries out the erasure journal again and verifies the result.",
    )
    restore.add_argument("source", type=Path, help="a directory `ugc backup` made")
    restore.add_argument("--yes", action="store_true", help="do not ask: the events after the backup are given up")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="SQLite: move the database files already there aside (into replaced-<time>/ beside them) first",
    )


def _backup(settings: Settings, dest: Path) -> int:
    from projections.rebuild_progress import RebuildProgress
    from ugc.platform.backup_manifest import BackupRefused
    from ugc.platform.backups import back_up, count_files, refuse_destination
    from ugc.platform.store import EventStores

    try:
        refuse_destination(dest, settings)
    except BackupRefused as refused:
        print(f"ugc: backup: {refused}", file=sys.stderr)
        return 2
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    shown = RebuildProgress("backup", count_files(settings), sys.stderr, unit="files")
    try:
        manifest = back_up(dest, settings, stores, _version(), shown.advance)
    except BackupRefused as refused:
        print(f"ugc: backup: {refused}", file=sys.stderr)
        return 2
    finally:
        shown.close()
        stores.close()
    shown.finish()
    heads = ", ".join(f"{name} {head['position']}" for name, head in manifest["heads"].items())
    size = sum(entry["size"] for entry in manifest["files"].values())
    print(f"backed up into {dest}: {len(manifest['files'])} files, {size:,} bytes; logs at {heads}")
    return 0


def _restore(settings: Settings, source: Path, *, yes: bool, replace: bool) -> int:
    """README: "Backups and restores". Refusals come before anything is written."""
    from datetime import UTC, datetime

    from ugc.platform import restores
    from ugc.platform.backup_manifest import BackupRefused

    try:
        restore = restores.checked(source, settings, replace=replace)
    except BackupRefused as refused:
        print(f"ugc: restore: {refused}", file=sys.stderr)
        return 2
    given_up = restore.checkpoints_given_up()
    manifest = restore.manifest
    heads = ", ".join(f"{name} {head['position']}" for name, head in manifest["heads"].items())
    print(
        f"backup of {manifest['started_at']} (ugc {manifest['code_version']}) checked: "
        f"{len(manifest['files'])} files; logs at {heads}"
    )
    if given_up:
        named = ", ".join(given_up) if len(given_up) <= 2 else f"{given_up[0]} ... {given_up[-1]}"
        print(f"{len(given_up)} checkpoint(s) written since the backup began will be moved aside: {named}")
    if not (yes or _confirmed("whatever happened after the backup is given up; type yes to restore: ", "yes")):
        print("ugc: restore: not confirmed; nothing was restored (--yes confirms it)", file=sys.stderr)
        return 2
    try:
        print(restores.restore_database(restore, datetime.now(UTC)), flush=True)
    except BackupRefused as refused:
        print(f"ugc: restore: {refused}", file=sys.stderr)
        return 2
    _check_data_key(settings)
    for line in restores.restore_files(restore):
        print(line)
    aside, moved = restores.acknowledge(restore)
    print(f"restore acknowledged: {len(moved)} checkpoint(s) moved to {aside}" if moved else "no checkpoint to move")
    replayed = _replay_with_projections(settings)
    return _verify(settings, as_json=False) or replayed


def _replay_with_projections(settings: Settings) -> int:
    """`ugc users erase --replay`, with the read models' projections run here meanwhile (an erasure
    waits for them); not the side effects: a restore sends no mail."""
    from commands.accounts import AccountCommands
    from projections.registry import all_projections
    from readmodels.waiting import Progress
    from ugc.clock import SystemClock
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.wiring import password_hasher, projection_runner

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    accounts = AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings))
    read_models = [p.name for p in all_projections(settings) if p.read_model]
    try:
        with projection_runner(settings, db, stores, Progress(), only=read_models) as runner:
            runner.start()
            return _replay_erasures(settings, accounts, stores, db)
    finally:
        stores.close()
        db.close()


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import math

    from projections import operations
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        known = {p.name: p for p in all_projections(settings)}
        ProjectionRunner(db, stores, list(known.values()), Progress()).register()  # every one is listed
        if args.projections_command == "status":
            states = operations.status(db, stores)
            if args.json:
                # A time never known (a lease never held, an event that does not decode) is null: JSON
                # has no Infinity, and json.dumps would write it all the same.
                rows = [{k: None if v == math.inf else v for k, v in dataclasses.asdict(s).items()} for s in states]
                print(json.dumps(rows, default=str, allow_nan=False))
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
        try:
            operations.skip(db, stores, projection, chosen, args.position)
        except operations.NotSkippable as refused:
            print(f"ugc: {refused}", file=sys.stderr)
            return 2
        print(f"{args.name} will not apply event {args.position} of {chosen}")
        return 0
    finally:
        stores.close()
        db.close()


def _operator() -> str:
    """The actor of the events a CLI command records: the operator who runs it (`operator:<login>`)."""
    from ugc.events import operator_actor

    return operator_actor(operator_login())


def _migrate(settings: Settings, *, quiet: bool = False, await_creation: bool = False) -> int:
    from ugc.platform.database import Database, until_reachable
    from ugc.wiring import migrate

    db = Database(settings.database_url)
    try:
        until_reachable(lambda: migrate(db), what="migrate", await_creation=await_creation)
    finally:
        db.close()
    if not quiet:
        print("migrated")
    return 0


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    from ugc.config import public_url_for
    from ugc.platform.client_limits import ServeConfig
    from ugc.platform.logs import logging_config

    if not os.environ.get("UGC_PUBLIC_URL"):
        # Links in mails and file URLs follow the port actually served; the worker processes read it
        # from the environment they inherit.
        os.environ["UGC_PUBLIC_URL"] = public_url_for(host, port)
        settings = Settings.from_env()
    _migrate(settings, quiet=True, await_creation=True)  # a deployment's init may be making the database
    _check_data_key(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker keeps its metrics in files here, and /metrics in any worker adds them up.
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if settings.log_format == "json":  # every line a JSON object, the banner too
        logging.getLogger("ugc.serve").info(
            "; ".join(line.strip() for line in banner(settings, host, port, workers).splitlines())
        )
    else:
        print(banner(settings, host, port, workers), file=sys.stderr, flush=True)
    config = ServeConfig(
        "ugc.wiring:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=logging_config(settings.log_format),
        access_log=settings.access_log,
        # The client address (login throttling counts per address) comes from X-Forwarded-For only
        # when the connection comes from one of these proxies; from anyone else it is the peer's.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive,
        # A request's head, or the next piece of its body, comes within this or the connection goes.
        client_timeout=settings.client_timeout,
        # A chat frame holds at most 4,000 characters (uvicorn's default would take 16 MiB per frame).
        ws_max_size=WS_MAX_FRAME,
        # A ping waits behind every frame already on its way: a client reading a long backlog slowly
        # answers late, and uvicorn's 20 s would close it (1011) although it reads; a dead one goes
        # after WS_PING_TIMEOUT, one that reads nothing after UGC_WS_SEND_TIMEOUT (api/routes/ws.py).
        ws_ping_timeout=WS_PING_TIMEOUT,
        # A client that reads nothing keeps its connection open (its close frame never leaves);
        # a stop waits for such connections this long, not for ever.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    return _run_uvicorn(config, settings.peer_timeout)


def _run_uvicorn(config: uvicorn.Config, peer_timeout: float) -> int:
    """`uvicorn.run`'s serving, on a listening socket whose connections the kernel drops once their
    peer has acknowledged nothing for `peer_timeout` seconds (TCP_USER_TIMEOUT, inherited by every
    accepted connection): a client that reads nothing, or a host gone without a reset. Closing such
    a connection waits for a flush that never comes, and uvicorn has no abort for the application
    to call, so each one let go would hold its buffers for good."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    listening = config.bind_socket()
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(peer_timeout * 1000))
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Multiprocess(config, sockets=[listening]).run()
        else:
            server.run(sockets=[listening])
    return 0 if server.started or config.workers > 1 else STARTUP_FAILURE


def banner(settings: Settings, host: str, port: int, workers: int) -> str:
    """What a person starting the server needs to know: where it answers and where its data goes."""
    from ugc.config import is_postgres

    database = settings.database_url
    if is_postgres(database):
        database = _without_password(database)
    mail = (
        _without_password(settings.smtp_url) if settings.smtp_url else f"{settings.outbox_dir.resolve()} (.eml files)"
    )
    lines = [
        f"UGC Market {_version()} ({settings.env}) on {host}:{port}, {workers} worker(s)",
        f"  public URL   {settings.public_url}",
        f"  API docs     {settings.public_url}/api/docs/  (ReDoc: /api/redoc/, schema: /api/schema/)",
        f"  database     {database}",
        f"  data dir     {settings.var_dir.resolve()}",
        f"  media        {settings.media_dir.resolve()}",
        f"  mail         {mail}",
        f"  projections  {settings.projections}",
    ]
    return "\n".join(lines)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 address keeps its brackets
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ugc-market")
    except PackageNotFoundError:
        return "unknown"


def _check_data_key(settings: Settings) -> None:
    """Fail at start, in one line, when UGC_DATA_KEY is not the deployment's (README: "Personal data")."""
    from ugc.platform.store import EventStores

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        if stores.data_keys is not None:
            stores.data_keys.check()
    finally:
        stores.close()


def _project(settings: Settings, only: Sequence[str] | None) -> int:
    from readmodels.waiting import Progress
    from ugc.platform.database import Database, until_reachable
    from ugc.platform.store import EventStores
    from ugc.wiring import projection_runner

    if not os.environ.get("UGC_PUBLIC_URL") and (not only or "verification_mail" in only):
        logging.getLogger("ugc.project").warning(
            "UGC_PUBLIC_URL is not set: the verification mails this process sends link to %s", settings.public_url
        )
    _migrate(settings, await_creation=True)  # a deployment's init may be making the database
    stores = until_reachable(
        lambda: EventStores(settings.database_url, data_key=settings.data_key), what="project", await_creation=True
    )
    if stores.data_keys is not None:
        stores.data_keys.check()
    db = Database(settings.database_url)
    # Only now: while the database is awaited (up to 2 minutes), Ctrl-C and SIGTERM end the wait as
    # they end any other command; from here they stop the runner, which then closes what it holds.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with projection_runner(settings, db, stores, Progress(), only=only) as runner:
            runner.start()
            stop.wait()
    finally:
        stores.close()
        db.close()
    return 0


def _rebuild(settings: Settings, names: Sequence[str]) -> int:
    """Blue/green: new tables built beside the live ones and switched in at the end (the API keeps serving)."""
    from projections.bluegreen import RebuildRunning, rebuild
    from projections.operations import events_after
    from projections.rebuild_progress import RebuildProgress
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        projections = all_projections(settings)
        known = {p.name: p for p in projections if p.read_model}
        side_effects = [name for name in names if name not in known and name in {p.name for p in projections}]
        if side_effects:
            print(f"ugc: {', '.join(side_effects)}: side effects (mail, pushes) are never replayed", file=sys.stderr)
            return 2
        unknown = [name for name in names if name not in known]
        if unknown:
            print(f"ugc: unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        ProjectionRunner(db, stores, projections, Progress()).register()
        chosen = [known[name] for name in dict.fromkeys(names or known)]
        total = sum(events_after(stores, application, 0) for p in chosen for application in p.applications)
        label = ", ".join(p.name for p in chosen) if len(chosen) <= 3 else f"{len(chosen)} read models"
        shown = RebuildProgress(label, total, sys.stderr)
        try:
            positions = rebuild(db, stores, chosen, advanced=shown.advance)
        except RebuildRunning as error:
            print(f"ugc: {error}", file=sys.stderr)
            return 1
        finally:
            shown.close()
        shown.finish()
        for projection in chosen:
            at = ", ".join(f"{app} {positions[(projection.name, app)]}" for app in projection.applications)
            print(f"rebuilt {projection.name} (switched at {at})")
    finally:
        stores.close()
        db.close()
    return 0


def _port(text: str) -> int:
    """A TCP port to listen on: 0 would take any (the public URL could not name it), past 65535 none."""
    port = natural(text, 65535)
    if not port:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {text!r}")
    return port


def _positive(text: str) -> int:
    """A whole number from 1 to a BIGINT's largest."""
    number = natural(text)
    if not number:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return number


def _check_events(settings: Settings, sample: int | None) -> int:
    from ugc.platform.log_check import check_log
    from ugc.platform.store import EventStores

    terminal, last = sys.stderr.isatty(), [0.0]

    def progress(done: int, total: int) -> None:
        """A line rewritten in place on a terminal; otherwise a line every few seconds, and the last."""
        if terminal:
            print(f"\rchecked {done} of {total} events", end="", file=sys.stderr)
        elif done == total or time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            print(f"checked {done} of {total} events", file=sys.stderr)

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        checked, findings = check_log(stores, sample=sample, progress=progress)
    finally:
        stores.close()
    if terminal:
        print(file=sys.stderr)
    for finding in findings:
        print(finding)
    print(
        f"{checked} events checked ({'all' if sample is None else f'a sample of up to {sample} per log'}), "
        f"{len(findings)} do not decode"
    )
    return 1 if findings else 0


def _checkpoint(settings: Settings) -> int:
    from datetime import UTC, datetime

    from ugc.platform.checkpoints import write_checkpoint
    from ugc.platform.store import EventStores

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        path = write_checkpoint(settings.audit_dir, settings.audit_key, stores.chain_heads(), datetime.now(UTC))
    finally:
        stores.close()
    print(f"checkpoint written: {path}")
    return 0


def _verify(settings: Settings, *, as_json: bool) -> int:
    import json

    from projections.rebuild_progress import RebuildProgress
    from ugc.platform.log_verify import ChainCheck, check_checkpoints
    from ugc.platform.store import EventStores

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    findings: list[Finding] = []
    try:
        checks = [ChainCheck(name, app.recorder, stores.chained(name)) for name, app in stores.applications.items()]
        for check in checks:
            stop = check.head()
            shown = RebuildProgress(f"verify {check.context}", stop, sys.stderr)
            for finding in check.run(stop, shown.advance):
                findings.append(finding)
                if not as_json:
                    print(finding, flush=True)
            shown.finish()
        checkpoints = check_checkpoints(
            settings.audit_dir, settings.audit_key, {name: stores.chained(name) for name in stores.applications}
        )
        findings += checkpoints.findings
        differences = _read_model_findings(settings, stores)
        if not as_json:
            for finding in differences:
                print(finding, flush=True)
        findings += differences
    finally:
        stores.close()
    events = sum(check.checked for check in checks)
    if as_json:
        report = {
            "ok": not findings,
            "events": events,
            "checkpoint": str(checkpoints.furthest) if checkpoints.furthest else None,
            "checkpoints": checkpoints.count,
            "findings": [finding.as_dict() for finding in findings],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))  # a read row's times and Decimals
    else:
        for finding in checkpoints.findings:
            print(finding)
        where = (
            f"checkpoint {checkpoints.furthest.name} (the furthest of {checkpoints.count})"
            if checkpoints.furthest
            else f"{checkpoints.count} checkpoint(s), none signed with UGC_AUDIT_KEY"
            if checkpoints.count
            else f"no checkpoint in {settings.audit_dir} yet"
            if settings.audit_dir.is_dir()
            else f"no checkpoint: UGC_AUDIT_DIR {settings.audit_dir} does not exist"
        )
        print(f"{events} events verified in {len(checks)} logs, {where}: {len(findings)} finding(s)")
    return 1 if findings else 0


def _read_model_findings(settings: Settings, stores: EventStores) -> list[Finding]:
    """Every read table row that differs from a replay of the log into scratch tables, as findings."""
    from projections.compare import compare_read_models
    from projections.rebuild_progress import RebuildProgress
    from projections.registry import all_projections
    from ugc.platform.database import Database
    from ugc.platform.log_verify import Finding

    db = Database(settings.database_url)
    shown: RebuildProgress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal shown
        if shown is None:
            shown = RebuildProgress("verify read models", total, sys.stderr)
        shown.advance(done - shown.done)

    not_replayed: list[NotReplayed] = []
    try:
        differences = compare_read_models(db, stores, all_projections(settings), progress, failed=not_replayed.append)
    finally:
        if shown is not None:
            shown.finish()
        db.close()
    return [_not_replayed_finding(failure) for failure in not_replayed] + [
        Finding(
            kind="read_model",
            context=None,
            position=None,
            stream=None,
            version=None,
            what=difference.describe(),
            detail={
                "projection": difference.projection,
                "table": difference.table,
                "difference": difference.kind,
                "key": difference.key,
                "columns": {c.column: {"live": c.live, "replayed": c.replayed} for c in difference.columns},
            },
        )
        for difference in differences
    ]


def _not_replayed_finding(failure: NotReplayed) -> Finding:
    """An event (or a batch) a read model's replay could not apply, as a finding named by that event."""
    from ugc.platform.log_verify import Finding

    event = failure.event
    return Finding(
        kind="replay",
        context=failure.application,
        position=event.id if event else None,
        stream=str(event.originator_id) if event else None,
        version=event.originator_version if event else None,
        what=failure.describe(),
        detail={
            "projection": failure.projection,
            "topic": event.topic if event else None,
            "after": None if event else failure.after,
            "error": failure.reason,
        },
    )


def _history(settings: Settings, order_text: str, as_of_text: str | None, *, as_json: bool) -> int:
    """The audit record the HTTP API answers (readmodels/audit_record.py), as a table or as its JSON."""
    from datetime import UTC, datetime

    from api.schemas.orders import render_order
    from readmodels.audit_record import as_table, audit_record
    from readmodels.order_history import BadAsOf, events_as_of, folded, order_events, parse_as_of
    from ugc.errors import NotFound
    from ugc.platform.encoding import dumps
    from ugc.platform.recorded_log import RecordedLog
    from ugc.platform.store import EventStores, Orders

    order = int(order_text) if order_text.isascii() and order_text.isdigit() and len(order_text) <= 18 else 0
    if order < 1:
        print(f"ugc: history: the order id must be a positive whole number, not {order_text!r}", file=sys.stderr)
        return 2
    try:
        as_of = None if as_of_text is None else parse_as_of(as_of_text)
    except BadAsOf as bad:
        print(f"ugc: history: --as-of {as_of_text!r}: {_AS_OF_PROBLEMS[bad.reason]}", file=sys.stderr)
        return 2
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        events = events_as_of(order_events(RecordedLog(stores, Orders.name), order), as_of)  # one read for both
        entries = audit_record(events)
        state = None if as_of is None else folded(events)
    except NotFound:
        when = "" if as_of is None else f" as of {as_of_text}"
        print(f"ugc: history: no order {order}{when}", file=sys.stderr)
        return 1
    except BadAsOf as bad:
        print(f"ugc: history: --as-of {as_of_text}: order {order} has versions 1 to {bad.latest}", file=sys.stderr)
        return 2
    finally:
        stores.close()
    record = {"count": len(entries), "next": None, "previous": None, "results": entries}
    shown = None if state is None else render_order(state, datetime.now(UTC).date())
    if as_json:
        sys.stdout.buffer.write(dumps(record if shown is None else {"order": shown, "history": record}) + b"\n")
        sys.stdout.flush()
        return 0
    print(f"Order {order}: {len(entries)} events" + ("" if as_of is None else f" as of {as_of_text}"))
    print(as_table(entries))
    if shown is not None:
        print(f"\nThe order as of {as_of_text}:")
        print("\n".join(f"  {name:<20} {dumps(value).decode()}" for name, value in shown.items()))
    return 0


_AS_OF_PROBLEMS = {
    "format": "expected a version (1, 2, ...) or an ISO 8601 time such as 2026-06-15T12:00:00Z",
    "timezone": "give the time's zone, e.g. 2026-06-15T12:00:00Z",
}


def _seed(settings: Settings, *, demo: bool) -> int:
    from commands.reference import load_reference_data
    from ugc.clock import SystemClock
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    _migrate(settings)
    _check_data_key(settings)
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        positions = load_reference_data(stores, db, SystemClock(), _operator())
        print("reference data loaded" if positions else "reference data already present")
        if demo:
            from commands.demo import DEMO_PASSWORD, USERNAMES, seed_demo

            if seed_demo(_demo_commands(settings, stores, db)):
                print(f"demo data added: users {', '.join(USERNAMES)} (password {DEMO_PASSWORD!r})")
            else:
                print("demo data already present")
    finally:
        stores.close()
        db.close()
    return 0


def _demo_commands(settings: Settings, stores: EventStores, db: Database) -> DemoCommands:
    from commands.accounts import AccountCommands
    from commands.creators import CreatorCommands
    from commands.demo import DemoCommands
    from commands.messaging import MessagingCommands
    from commands.services import ServiceCommands
    from ugc.clock import SystemClock
    from ugc.wiring import order_commands, password_hasher

    clock = SystemClock()
    return DemoCommands(
        stores=stores,
        accounts=AccountCommands(stores, db, clock, hasher=password_hasher(settings)),
        creators=CreatorCommands(stores, db, clock),
        services=ServiceCommands(stores, db, clock),
        orders=order_commands(settings, stores, db, clock),
        messaging=MessagingCommands(stores, db, clock),
        db=db,
        clock=clock,
        operator=_operator(),
    )


def _users(settings: Settings, args: argparse.Namespace) -> int:
    from commands.accounts import AccountCommands
    from ugc.clock import SystemClock
    from ugc.errors import Conflict, NotFound
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.wiring import password_hasher

    action: str = args.user_command
    if action == "list":
        return _list_users(settings)
    if action == "erase" and (args.replay == bool(args.username)):
        print("ugc: users erase: give a USERNAME or --replay (one of them)", file=sys.stderr)
        return 2
    if action == "erase" and not (
        args.replay
        or args.yes
        or _confirmed(f"erase {args.username}'s personal data for good? type the username to confirm: ", args.username)
    ):
        print("ugc: users erase: not confirmed; nothing was erased (--yes confirms it)", file=sys.stderr)
        return 2
    password = _read_password() if action == "create" else ""
    if action == "create" and len(password) < 8:
        print("ugc: users create: the password (read from stdin) must be at least 8 characters", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    accounts = AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings))
    try:
        if action == "create":
            from api.body import checked
            from api.schemas.auth import RegisterIn
            from commands.accounts import Register

            # The rules registration over the API keeps (name characters and scripts, lengths, e-mail).
            given = {"username": args.username, "email": args.email, "password": password}
            body, problems = checked(RegisterIn, given | {"first_name": args.first_name, "last_name": args.last_name})
            if body is None:
                refused = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in problems.items())
                print(f"ugc: users create: {refused}", file=sys.stderr)
                return 2
            new_user = Register(
                body.username, body.email, password, body.first_name, body.last_name, verified=args.verified
            )
            user_id = accounts.register(new_user, _operator()).user_id
            for role in args.role:
                accounts.grant_role(args.username, role, _operator())
            print(f"created user {args.username} (id {user_id}{', verified' if args.verified else ''})")
        elif action == "erase" and args.replay:
            return _replay_erasures(settings, accounts, stores, db)
        elif action == "erase":
            return _erase(settings, accounts, stores, db, args.username, journaled=True)
        elif action == "grant":
            granted = accounts.grant_role(args.username, args.role, _operator())
            print(f"granted {args.role} to {args.username}" if granted else f"{args.username} is {args.role} already")
        else:
            revoked = accounts.revoke_role(args.username, args.role, _operator())
            print(f"revoked {args.role} from {args.username}" if revoked else f"{args.username} is not {args.role}")
    except NotFound:
        print(f"ugc: no user named {args.username!r}", file=sys.stderr)
        return 1
    except Conflict as error:
        what = "username" if "username" in str(error) else "e-mail"
        print(f"ugc: that {what} is already taken", file=sys.stderr)
        return 1
    finally:
        stores.close()
        db.close()
    return 0


def _erase(
    settings: Settings, accounts: AccountCommands, stores: EventStores, db: Database, username: str, *, journaled: bool
) -> int:
    """Erase one person (README: "Personal data and erasure"); `journaled`: record it in the erasure
    journal first (a replay of the journal does not record it again)."""
    from commands.services import ServiceCommands
    from readmodels.services import active_of_creator
    from readmodels.waiting import Progress
    from ugc.clock import SystemClock
    from ugc.errors import Unavailable
    from ugc.platform.erasure_journal import record_erasure

    def journal(user: int, at: datetime) -> None:
        record_erasure(settings.audit_dir, settings.audit_key, user, username, at)

    erasure = accounts.erase(username, _operator(), journal if journaled else None)
    done = "erased" if erasure.newly else "was erased before; finished erasing"
    print(f"{username} (id {erasure.user_id}) {done}: {erasure.keys_destroyed} data key(s) destroyed")

    def listed(creator_profile: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, ERASE_WAIT)
        return active_of_creator(db, creator_profile)

    try:
        withdrawn = ServiceCommands(stores, db, SystemClock()).withdraw_all(erasure.user_id, _operator(), listed)
    except Unavailable:
        print(
            f"ugc: users erase: their services are not withdrawn yet: the read models did not catch up "
            f"within {ERASE_WAIT:g} s (are the projections running?); run the erasure again",
            file=sys.stderr,
        )
        return 1
    print(f"{len(withdrawn)} service(s) withdrawn")
    _clear_old_rows(db, erasure.positions)
    return 0


def _replay_erasures(settings: Settings, accounts: AccountCommands, stores: EventStores, db: Database) -> int:
    """Erase again every journaled person the database does not show erased (a restored backup from
    before their erasure): README, "Backups and restores"."""
    from ugc.platform.erasure_journal import read_journal

    journal = read_journal(settings.audit_dir, settings.audit_key)
    failed = bool(journal.problems)
    for problem in journal.problems:
        print(f"ugc: users erase --replay: {problem}; not carried out", file=sys.stderr)
    replayed = 0
    for entry in journal.erasures:
        found = accounts.erasure_done(entry.user)
        if found is None:  # the backup is older than the account: nothing of theirs to erase
            print(f"user {entry.user} ({entry.username}) is not in this database: nothing to erase")
        elif found[0] != entry.username:
            failed = True
            print(
                f"ugc: users erase --replay: line {entry.line} erased user {entry.user} ({entry.username}), but "
                f"user {entry.user} here is {found[0]}: not erased; check which backup this database is",
                file=sys.stderr,
            )
        elif not found[1]:
            replayed += 1
            failed = _erase(settings, accounts, stores, db, entry.username, journaled=False) != 0 or failed
    print(f"{len(journal.erasures)} journaled erasure(s), {replayed} carried out again")
    return 1 if failed else 0


def _clear_old_rows(db: Database, positions: Mapping[str, int]) -> None:
    """Once the read models have blanked the erased person's rows, vacuum away the rows' old versions."""
    from readmodels.waiting import Progress, wait_for
    from ugc.errors import Unavailable

    db.vacuum("idempotency_keys", "refresh_families")
    try:
        wait_for(db, Progress(), positions, ERASE_WAIT)
    except Unavailable:
        print(
            f"the read tables were not blanked within {ERASE_WAIT:.0f} s (are the projections running?): "
            "they will be when the projections apply the erasure, and autovacuum then clears the old rows",
            file=sys.stderr,
        )
        return
    db.vacuum("users", "creator_profiles")


def _confirmed(question: str, answer: str) -> bool:
    """On a terminal, the operator types `answer` (a username to erase again); a script must pass --yes."""
    if not sys.stdin.isatty():
        return False
    try:
        typed = input(question)
    except EOFError:
        return False
    return typed.strip() == answer


def _read_password() -> str:
    """The new user's password: a prompt on a terminal, else the first line of stdin (scripts, tests)."""
    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass("password: ")
        except EOFError:  # Ctrl-D: no password, which the length check then refuses
            return ""
    return sys.stdin.readline().rstrip("\n")


def _list_users(settings: Settings) -> int:
    from readmodels.users import list_users
    from ugc.platform.database import Database

    db = Database(settings.database_url)
    try:
        rows = list_users(db)
    finally:
        db.close()
    print(f"{'id':>6}  {'username':<24} {'email':<36} {'verified':<8} roles")
    for row in rows:
        roles = ",".join(row["roles"]) or "-"
        verified = "yes" if row["is_verified"] else "no"
        print(f"{row['id']:>6}  {row['username']:<24} {row['email']:<36} {verified:<8} {roles}")
    print(f"{len(rows)} user(s) (as projected; `ugc serve` or `ugc project` keeps this table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
