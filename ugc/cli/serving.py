"""`ugc serve`, `ugc migrate` and `ugc project`: the long-running processes and the schema they need."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ugc.cli.budget import over_budget
from ugc.cli.common import (
    check_data_key,
    file_in_the_way,
    listen_host,
    migrate_database,
    no_checkpoint_room,
    tcp_port,
    version,
    worker_count,
)
from ugc.config import DEFAULT_PORT, Settings

if TYPE_CHECKING:
    import uvicorn

WS_MAX_FRAME = 64 * 1024  # bytes: a frame of 4,000 characters, each escaped, fits; a larger one is closed 1009
WS_PING_TIMEOUT = 120  # seconds a WebSocket client has to answer the server's ping (sent every 20 s)
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start


def add_parsers(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the HTTP API (migrates first)")
    serve.add_argument(
        "--host", type=listen_host, default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument("--port", type=tcp_port, default=DEFAULT_PORT, help="TCP port, 1-65535 (default: %(default)s)")
    serve.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help="server processes, 1-256, as many as PostgreSQL's connections hold (README: Connection budget; "
        "default: %(default)s)",
    )
    serve.set_defaults(run=lambda settings, args: _serve(settings, args.host, args.port, args.workers))

    migrate = commands.add_parser("migrate", help="create the event store's and the read side's tables")
    migrate.set_defaults(run=lambda settings, _: _migrate(settings))

    project = commands.add_parser("project", help="run the projections until interrupted (UGC_PROJECTIONS=external)")
    project.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these projections (`scheduler`: the periodic jobs) and leave the others to other "
        "processes, e.g. to give costly ones a host of their own (default: all of them)",
    )
    project.set_defaults(run=lambda settings, args: _project(settings, args.only))


def _migrate(settings: Settings) -> int:
    """Make the tables, then check UGC_DATA_KEY as every other command does: a deployment's first
    step (an init job's `ugc migrate`) run with a key that is not the deployment's says so."""
    migrate_database(settings, quiet=True)
    check_data_key(settings)
    print("migrated")
    return 0


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    from ugc.config import public_url_for
    from ugc.platform.open_files import raise_to_hard_limit

    if file_in_the_way("serve", settings):
        return 2
    if settings.projections == "inline" and no_checkpoint_room("serve", settings):  # its leader writes them
        return 2
    if not os.environ.get("UGC_PUBLIC_URL"):
        # Links in mails and file URLs follow the port actually served; the worker processes read it
        # from the environment they inherit.
        os.environ["UGC_PUBLIC_URL"] = public_url_for(host, port)
        settings = Settings.from_env()
    migrate_database(settings, quiet=True, await_creation=True)  # a deployment's init may be making the database
    check_data_key(settings)
    if (too_many := over_budget(settings, workers)) is not None:
        print(f"ugc: serve: {too_many}", file=sys.stderr)
        return 2
    open_files = raise_to_hard_limit()
    try:
        listening = _listening_socket(host, port, settings.peer_timeout)
    except OSError as error:  # taken by another process, an address of no interface here, a name unknown
        print(f"ugc: serve: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    with listening:
        return _serve_on(settings, listening, host, port, workers, open_files)


def _serve_on(
    settings: Settings, listening: socket.socket, host: str, port: int, workers: int, open_files: tuple[int, int]
) -> int:
    from ugc.platform.client_limits import ServeConfig
    from ugc.platform.logs import logging_config

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker keeps its metrics in files here, and /metrics in any worker adds them up.
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if settings.log_format == "json":  # every line a JSON object, the banner too
        logging.getLogger("ugc.serve").info(
            "; ".join(line.strip() for line in banner(settings, host, port, workers, open_files).splitlines())
        )
    else:
        print(banner(settings, host, port, workers, open_files), file=sys.stderr, flush=True)
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
        # a stop waits for such connections UGC_STOP_GRACE seconds, not for ever.
        timeout_graceful_shutdown=settings.stop_grace,
    )
    return _run_uvicorn(config, listening)


def _listening_socket(host: str, port: int, peer_timeout: float) -> socket.socket:
    """The socket `ugc serve` listens on, bound as uvicorn binds it (IPv6 for a host with a colon),
    before the banner: a port taken is one line, not a banner and then uvicorn's log line. The
    kernel drops its connections once their peer has acknowledged nothing for `peer_timeout` seconds
    (TCP_USER_TIMEOUT, inherited by every accepted connection): a client that reads nothing, or a
    host gone without a reset. Closing such a connection waits for a flush that never comes, and
    uvicorn has no abort for the application to call, so each one let go would hold its buffers for good."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
            listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(peer_timeout * 1000))
    except OSError:
        listening.close()
        raise
    listening.set_inheritable(True)  # the workers of --workers N serve it too
    return listening


def _run_uvicorn(config: uvicorn.Config, listening: socket.socket) -> int:
    """`uvicorn.run`'s serving, on `listening`."""
    import uvicorn

    from ugc.platform.workers import Workers

    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Workers(config, sockets=[listening]).run()
        else:
            server.run(sockets=[listening])
    return 0 if server.started or config.workers > 1 else STARTUP_FAILURE


def banner(settings: Settings, host: str, port: int, workers: int, open_files: tuple[int, int]) -> str:
    """What a person starting the server needs to know: where it answers, where its data goes, and
    how many files (connections among them) each process may hold open, `(before, after)` raising it."""
    from ugc.config import is_postgres

    database = settings.database_url
    if is_postgres(database):
        database = without_password(database)
    before, after = open_files
    mail = without_password(settings.smtp_url) if settings.smtp_url else f"{settings.outbox_dir.resolve()} (.eml files)"
    lines = [
        f"UGC Market {version()} ({settings.env}) on {host}:{port}, {workers} worker(s)",
        f"  public URL   {settings.public_url}",
        f"  API docs     {settings.public_url}/api/docs/  (ReDoc: /api/redoc/, schema: /api/schema/)",
        f"  database     {database}",
        f"  data dir     {settings.var_dir.resolve()}",
        f"  media        {settings.media_dir.resolve()}",
        f"  mail         {mail}",
        f"  projections  {settings.projections}",
        f"  open files   {after}" + (f" (raised from {before})" if after != before else ""),
    ]
    return "\n".join(lines)


def without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 address keeps its brackets
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _project(settings: Settings, only: Sequence[str] | None) -> int:
    from readmodels.waiting import Progress
    from ugc.platform.database import Database, until_reachable
    from ugc.platform.forced_stop import STOP_SIGNALS, ProjectorStop
    from ugc.platform.serving_lock import serving
    from ugc.platform.store import EventStores
    from ugc.wiring import erasures_heard, projection_runner, unknown_names

    # A mistyped argument, told before the database is touched.
    if (wrong := unknown_names(settings, only or ())) is not None:
        print(f"ugc: project: {wrong}", file=sys.stderr)
        return 2

    if file_in_the_way("project", settings):
        return 2
    if (not only or "scheduler" in only) and no_checkpoint_room("project", settings):  # its periodic jobs write them
        return 2
    if not os.environ.get("UGC_PUBLIC_URL") and (not only or "verification_mail" in only):
        logging.getLogger("ugc.project").warning(
            "UGC_PUBLIC_URL is not set: the verification mails this process sends link to %s", settings.public_url
        )
    migrate_database(settings, quiet=True, await_creation=True)  # a deployment's init may be making the database
    stores = until_reachable(
        lambda: EventStores(settings.database_url, data_key=settings.data_key), what="project", await_creation=True
    )
    if stores.data_keys is not None:
        stores.data_keys.check()
    db = Database(settings.database_url)
    # Only now: while the database is awaited (up to 2 minutes), Ctrl-C and SIGTERM end the wait as
    # they end any other command; from here they, and a hangup, stop the runner, which then closes
    # what it holds (a second one ends the process at once).
    stop = threading.Event()
    handler = ProjectorStop(stop)
    for number in STOP_SIGNALS:
        signal.signal(number, handler)
    try:
        with (
            serving(settings.database_url),
            erasures_heard(db, stores),
            projection_runner(settings, db, stores, Progress(), only=only) as runner,
        ):
            runner.start()
            stop.wait()
    finally:
        stores.close()
        db.close()
    return 0
