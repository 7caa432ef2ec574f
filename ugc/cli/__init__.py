"""`ugc`: serve the API, migrate, run or rebuild projections, seed data, audit, manage users, back up
and restore.

Each module of this package declares its commands (`add_parsers`, each command's `run` given by
`set_defaults`) and carries them out: `serving` (serve, migrate, project), `read_models` (rebuild,
projections), `seeding`, `auditing` (history, events, verify, audit), `users`, `backups` (backup,
restore), `keys` (keys rewrap); `common` holds what they share. With `ugc/wiring.py` they are the composition root: the
only modules of `ugc` that import the layers above it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ugc.cli import auditing, backups, keys, read_models, seeding, serving, users
from ugc.cli.common import check_data_key, version
from ugc.config import ConfigError, Settings

# The commands that make the tables they need; every other one refuses a database without them
# (another application's, a mistyped SQLite path) rather than make the schema there.
MIGRATING = frozenset({"serve", "migrate", "project", "seed"})
# ... and a restore, which wants a target with no database and makes it from the backup.
UNCHECKED = MIGRATING | {"restore"}


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of `ugc`, each with its help text and its `run(settings, args)`."""
    parser = argparse.ArgumentParser(prog="ugc", description="UGC Market backend")
    parser.add_argument("--version", action=ShowVersion)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serving, read_models, seeding, auditing, users, backups, keys):
        module.add_parsers(commands)
    return parser


class ShowVersion(argparse.Action):
    """`--version`, as argparse's own, but the version is looked up only when asked: importlib.metadata
    finding the installed distribution was ~14 ms of CPU at the start of every command."""

    def __init__(self, option_strings: Sequence[str], dest: str) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        with contextlib.suppress(AttributeError, OSError):  # as argparse's own: no stdout, or a closed one
            sys.stdout.write(f"{parser.prog} {version()}\n")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"ugc: {error}", file=sys.stderr)
        return 2
    from ugc.platform.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_format))
    try:
        with sigterm_as_interrupt():
            return _run(args, settings)
    except Terminated:
        return _ended_by_sigterm()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command not in UNCHECKED and not _migrated(settings, args.command):
            return _not_migrated(args.command)
        # Those check it once they have migrated (a fresh database), or as part of their work.
        if args.command not in UNCHECKED and not getattr(args, "checks_data_key", False):
            check_data_key(settings)
        if getattr(args, "writes", False):  # serve, project, migrate and seed check it as they migrate
            from ugc.platform.serving_lock import refuse_unfinished

            refuse_unfinished(settings.database_url)
        run: Callable[[Settings, argparse.Namespace], int] = args.run
        return run(settings, args)
    except Terminated:
        raise  # `main` ends by the signal
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ugc projections status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 1
    except Exception as error:  # one clear line, not a traceback; --debug-level logs keep the rest
        from ugc.platform.dialect import no_such_table
        from ugc.platform.personal_data import DataKeysMissing, WrongDataKey
        from ugc.platform.serving_lock import RestorePending

        # A server kept out of a database being restored; a database that lost its data keys; a
        # UGC_DATA_KEY that is not the database's: exit 2, as any other configuration error.
        if isinstance(error, RestorePending | DataKeysMissing | WrongDataKey):
            print(f"ugc: {_named(args)}: {error}", file=sys.stderr)
            return 2
        logging.getLogger("ugc.cli").debug("ugc %s failed", _named(args), exc_info=error)
        if no_such_table(error):  # a table of a later version than the database's
            return _not_migrated(args.command)
        print(f"ugc: {_named(args)} failed: {_describe(error)}", file=sys.stderr)
        return 1


def _named(args: argparse.Namespace) -> str:
    """The command as typed, its action too (`users erase`): `users failed` left the operator to
    guess which of the group's commands it was."""
    action: str | None = getattr(args, "action", None)
    return f"{args.command} {action}" if action else args.command


class Terminated(KeyboardInterrupt):
    """SIGTERM: every command ends on it as on Ctrl-C, closing what it opened on the way out."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` in the main thread (`ugc serve` and `ugc project`
    install their own handlers once they serve). Left to its default action, SIGTERM ended a command
    at once, but for a PID namespace's first process, such as a container's command: the kernel drops
    the signals that process has no handler for, so `ugc serve` and `ugc project` waiting for their
    database (up to 2 minutes) went on waiting through `docker stop` until its SIGKILL."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _terminate(number: int, frame: FrameType | None) -> None:
    raise Terminated


def _ended_by_sigterm() -> int:
    """End by SIGTERM, so that the parent sees what stopped the command (as before it had a handler);
    where the kernel drops it (the first process of a PID namespace), exit 143, as a shell reports it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)
    return 128 + signal.SIGTERM


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


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
