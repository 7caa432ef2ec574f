"""What several `ugc` commands share: the acting operator, the version, the schema and the data key
checked at start, argument types, and the operator's confirmation."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
import tempfile

from ugc.cli.budget import MAX_WORKERS
from ugc.config import Settings, is_postgres, operator_login, sqlite_path
from ugc.platform.numbers import natural


def acting_operator() -> str:
    """The actor of the events a CLI command records: the operator who runs it (`operator:<login>`)."""
    from ugc.events import operator_actor

    return operator_actor(operator_login())


def version() -> str:
    """This installation's version of the `ugc-market` package."""
    from importlib import metadata

    try:
        return metadata.version("ugc-market")
    except metadata.PackageNotFoundError:
        return "unknown"


def migrate_database(settings: Settings, *, quiet: bool = False, await_creation: bool = False) -> int:
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


def check_data_key(settings: Settings) -> None:
    """Fail at start, in one line, when UGC_DATA_KEY is not the deployment's (README: "Personal data")."""
    from ugc.platform.store import check_data_key as check

    check(settings.database_url, settings.data_key)


def tcp_port(text: str) -> int:
    """A TCP port to listen on: 0 would take any (the public URL could not name it), past 65535 none."""
    port = natural(text, 65535)
    if not port:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {text!r}")
    return port


# A host name as DNS writes one (RFC 1123): dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def listen_host(text: str) -> str:
    """An address to listen on: an IP address (IPv6 without brackets), a host name, or "" for every
    interface. Anything else was told as `serve failed: UGC_PUBLIC_URL must be ...`, exit status 1, the
    default public URL being made of it: a variable the operator had not set."""
    if text == "" or _HOST_NAME.fullmatch(text):
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IP address or a host name (an IPv6 address without brackets), got {text!r}"
        ) from None
    return text


def worker_count(text: str) -> int:
    """`ugc serve --workers`: from 1 to MAX_WORKERS (on PostgreSQL, `over_budget` bounds it further)."""
    number = natural(text, MAX_WORKERS)
    if not number:
        raise argparse.ArgumentTypeError(f"expected a number of server processes from 1 to {MAX_WORKERS}, got {text!r}")
    return number


def positive(text: str) -> int:
    """A whole number from 1 to a BIGINT's largest."""
    number = natural(text)
    if not number:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return number


def confirmed(question: str, answer: str) -> bool:
    """On a terminal, the operator types `answer` (a username to erase again); a script must pass --yes."""
    if not sys.stdin.isatty():
        return False
    try:
        typed = input(question)
    except EOFError:
        return False
    return typed.strip() == answer


def file_in_the_way(command: str, settings: Settings) -> bool:
    """Whether a directory the command keeps or reads files in is a file, or lies under one: told in a
    line naming its variable. A server started all the same, and the leader's checkpoint job logged a
    traceback every round (UGC_AUDIT_DIR), every upload answered 503 (UGC_MEDIA_DIR), or the start
    failed as `File exists` (an SQLite database's directory); `ugc audit checkpoint` said `[Errno 17]
    File exists`, and `ugc backup` made a whole-looking backup without the audit directory."""
    directories = {
        "UGC_VAR_DIR": settings.var_dir,
        "UGC_MEDIA_DIR": settings.media_dir,
        "UGC_AUDIT_DIR": settings.audit_dir,
    }
    if not is_postgres(settings.database_url):
        directories["UGC_DATABASE_URL"] = sqlite_path(settings.database_url).parent
    for name, directory in directories.items():
        found = next(path for path in (directory.absolute(), *directory.absolute().parents) if path.exists())
        if not found.is_dir():
            print(f"ugc: {command}: {name}: {directory} cannot be a directory, {found} is a file", file=sys.stderr)
            return True
    return False


def no_checkpoint_room(command: str, settings: Settings) -> bool:
    """Whether UGC_AUDIT_DIR cannot be made or written (a file system mounted read-only, a directory not
    the service user's): told in a line naming it. A server started all the same, and the projection
    leader's checkpoint job logged a traceback every round. It is made here, as the leader would on its
    first checkpoint; the file that tries it is never linked into it."""
    try:
        settings.audit_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.audit_dir):
            pass
    except OSError as error:
        print(
            f"ugc: {command}: UGC_AUDIT_DIR: no checkpoint can be written in {settings.audit_dir}: "
            f"{error.strerror or error}",
            file=sys.stderr,
        )
        return True
    return False
