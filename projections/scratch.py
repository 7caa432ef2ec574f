"""A scratch set: empty copies of some read tables beside the live ones, which a projection's
unchanged SQL (unqualified table names) writes into instead of the live tables.

Where it lives, and why:
- PostgreSQL: a schema of its own (`ugc_scratch_<hex>`) with the same DDL; a scratch transaction
  runs `SET LOCAL search_path TO <scratch>, <live>`. Unqualified names then reach the scratch
  tables first and fall through to the live schema for every other table (the parked events, the
  notifications' kept `notification_seqs`, another projection's table a handler reads). Same
  database, so the blue/green switch is a catalog change in one transaction (`ALTER TABLE ... SET
  SCHEMA`), whatever the size of the tables, and live work never waits on the scratch's writes.
- SQLite: a database file of its own beside the read side's (`<file>.ugc_scratch_<hex>`), opened
  as `main` with the live file attached as `live`: SQLite resolves an unqualified name in `main`
  first, then in the attached files, the same fall-through. Tables cannot move between files, so
  the switch copies the rows in one transaction of the live file (readers in WAL mode see the old
  rows or the new ones, never a mix).

Only the tables named are made: any other name must reach the live table. A scratch set is held
by a lock while its maker lives; `sweep` drops those whose maker is gone (Ctrl-C, a crash), so the
next rebuild or compare cleans up after the last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import secrets
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from readmodels.schema import LATER_INDEXES, READ_MODELS
from ugc.config import sqlite_path
from ugc.platform.database import Database, sqlite_transaction
from ugc.platform.dialect import Cursor

PREFIX = "ugc_scratch_"
# The statements of the read models' DDL that make something; the others (DROP INDEX of an old
# index, CREATE EXTENSION) concern the live database only and would reach it through the search path.
_MAKES = re.compile(r"\s*CREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX|VIRTUAL\s+TABLE|TRIGGER)\b", re.IGNORECASE)
# A plain (not unique) index and its table: one the replay of some tables may make only at the end.
_PLAIN_INDEX = re.compile(r"\s*CREATE\s+INDEX\b.*?\bON\s+(\w+)", re.IGNORECASE | re.DOTALL)


class ScratchSet:
    """Empty `tables` beside the live ones; `transaction()` gives a cursor whose unqualified names
    reach them. Made with `ScratchSet.made(db, tables)`."""

    def __init__(self, db: Database, tables: Sequence[str], name: str, *, indexed_later: Collection[str] = ()) -> None:
        self.db = db
        self.tables = tuple(tables)
        self.name = name
        self.indexed_later = frozenset(indexed_later)
        self._later_indexes: list[str] = []  # made by `index`
        self._sqlite: sqlite3.Connection | None = None
        if db.dialect == "postgresql":
            with db.read() as cur:
                row = cur.execute("SELECT current_schema() AS name").fetchone()
            assert row is not None
            self.live_schema: str = row["name"]
            self.live = _quote(self.live_schema)  # how SQL on a scratch cursor names a live table's schema
            self.scratch = _quote(name)
        else:
            self.path = scratch_path(db, name)
            self.live_schema = self.live = "live"
            self.scratch = "main"

    @classmethod
    @contextmanager
    def made(cls, db: Database, tables: Sequence[str], *, indexed_later: Collection[str] = ()) -> Iterator[ScratchSet]:
        """Sweep what earlier runs left, make the set, and drop it when the block ends however it ends.

        The plain indexes of the tables `indexed_later` are made only by `index`: built once over the
        replayed rows, not kept up row by row (those tables' projections never read by them).
        """
        sweep(db)
        scratch = cls(db, tables, PREFIX + secrets.token_hex(6), indexed_later=indexed_later)
        with ExitStack() as stack:
            stack.enter_context(_held(db, scratch.name))
            stack.callback(scratch._drop)
            scratch._create()
            yield scratch

    @contextmanager
    def transaction(self, *, write: bool = True, pipelined: bool = False) -> Iterator[Cursor]:
        """One transaction whose unqualified names reach the scratch tables first, the live ones otherwise.

        On SQLite `write` takes the write lock of both files up front (BEGIN IMMEDIATE): a handler
        may write a live table (`notification_seqs`), and a lock upgraded half way could fail.
        """
        if self.db.dialect == "postgresql":
            with self.db.transaction(write=write, pipelined=pipelined) as cur:
                cur.execute(f"SET LOCAL search_path TO {self.scratch}, {self.live}")
                yield cur
            return
        with sqlite_transaction(self._connection(), write=write) as cur:
            yield cur

    def columns(self, cur: Cursor, schema: str, table: str) -> list[str]:
        """The columns of `table` in `schema` (`self.scratch` or `self.live`), in their order."""
        if cur.dialect == "postgresql":
            rows = cur.execute(
                "SELECT attname AS name FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (f"{schema}.{_quote(table)}",),
            ).fetchall()
        else:
            rows = cur.execute(f"SELECT name FROM {schema}.pragma_table_info(%s) ORDER BY cid", (table,)).fetchall()
        return [row["name"] for row in rows]

    def primary_key(self, cur: Cursor, table: str) -> list[str]:
        """The primary key's columns of the scratch `table`, in key order (empty when it has none)."""
        if cur.dialect == "postgresql":
            rows = cur.execute(
                "SELECT a.attname AS name FROM pg_index i "
                "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, n) ON TRUE "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
                (f"{self.scratch}.{_quote(table)}",),
            ).fetchall()
            return [row["name"] for row in rows]
        rows = cur.execute(f"SELECT name, pk FROM {self.scratch}.pragma_table_info(%s)", (table,)).fetchall()
        return [row["name"] for row in sorted(rows, key=lambda row: row["pk"]) if row["pk"]]

    def index(self) -> None:
        """Make the plain indexes left for after the replay (see `made`)."""
        later, self._later_indexes = self._later_indexes, []
        if later:
            with self.transaction(write=True) as cur:
                for sql in later:
                    cur.execute(sql)

    def analyze(self) -> None:
        """Give the new tables planner statistics before they go live (PostgreSQL; SQLite plans without)."""
        if self.db.dialect == "postgresql":
            with self.db.read() as cur:
                for table in self.tables:
                    cur.execute(f"ANALYZE {self.scratch}.{_quote(table)}")

    def _create(self) -> None:
        statements = [
            sql.format(**self.db.types)
            for statement in (*(ddl for module in READ_MODELS for ddl in module), *(i for _, i in LATER_INDEXES))
            if (sql := statement if isinstance(statement, str) else statement.get(self.db.dialect, ""))
            and _MAKES.match(sql)
        ]
        self._later_indexes = [
            sql for sql in statements if (index := _PLAIN_INDEX.match(sql)) and index[1] in self.indexed_later
        ]
        statements = [sql for sql in statements if sql not in self._later_indexes]
        if self.db.dialect == "postgresql":
            with self.db.transaction(write=True) as cur:
                cur.execute(f"CREATE SCHEMA {self.scratch}")
                # The live schema stays on the path for what the DDL names there (pg_trgm's operators).
                cur.execute(f"SET LOCAL search_path TO {self.scratch}, {self.live}")
                for sql in statements:
                    cur.execute(sql)
                made = cur.execute(
                    "SELECT tablename AS name FROM pg_tables WHERE schemaname = %s", (self.name,)
                ).fetchall()
                for row in made:
                    if row["name"] not in self.tables:
                        cur.execute(f"DROP TABLE {self.scratch}.{_quote(row['name'])}")
            return
        # The live file is attached after the DDL, so the DDL cannot reach it.
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN")
            for sql in statements:
                connection.execute(sql)
            for (name,) in connection.execute(
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
            ).fetchall():
                if name not in self.tables and not name.startswith("sqlite_"):
                    connection.execute(f"DROP TABLE {_quote(name)}")  # its triggers go with it
            # A virtual table (full-text index) stays only while a kept table's trigger feeds it.
            triggers = " ".join(
                sql for (sql,) in connection.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")
            )
            for (name,) in connection.execute(
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'virtual'"
            ).fetchall():
                if name not in triggers:
                    connection.execute(f"DROP TABLE {_quote(name)}")
            connection.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,
                detect_types=sqlite3.PARSE_DECLTYPES,
                check_same_thread=False,
                timeout=10,
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA synchronous=OFF")  # a scratch file that a crash loses is swept anyway
            connection.execute("ATTACH DATABASE ? AS live", (str(sqlite_path(self.db.url)),))
            self._sqlite = connection
        return self._sqlite

    def _drop(self) -> None:
        if self.db.dialect == "postgresql":
            drop_schema(self.db, self.name)
            return
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        remove_files(self.path)


def scratch_path(db: Database, name: str) -> Path:
    live = sqlite_path(db.url)
    return live.with_name(f"{live.name}.{name}")


def sweep(db: Database) -> list[str]:
    """Drop the scratch sets whose maker is gone (its lock is free); the names dropped."""
    if db.dialect == "postgresql":
        with db.read() as cur:
            rows = cur.execute(
                "SELECT nspname AS name FROM pg_namespace WHERE starts_with(nspname, %s)", (PREFIX,)
            ).fetchall()
        names = [row["name"] for row in rows]
    else:
        live = sqlite_path(db.url)
        names = sorted(
            path.name[len(live.name) + 1 :]
            for path in live.parent.glob(f"{live.name}.{PREFIX}*")
            if re.fullmatch(rf"{re.escape(live.name)}\.{PREFIX}[0-9a-f]+", path.name)
        )
    dropped = []
    for name in names:
        with _held(db, name, wait=False) as free:
            if not free:
                continue
            if db.dialect == "postgresql":
                drop_schema(db, name)
            else:
                remove_files(scratch_path(db, name))
            dropped.append(name)
    return dropped


def drop_schema(db: Database, name: str) -> None:
    with db.read() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {_quote(name)} CASCADE")


def remove_files(path: Path) -> None:
    for companion in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{companion}").unlink(missing_ok=True)


@contextmanager
def _held(db: Database, name: str, *, wait: bool = True) -> Iterator[bool]:
    """The lock that tells a scratch set in use from one left behind (whether it was taken)."""
    if db.dialect == "postgresql":
        with db.exclusive_lock(name, wait=wait) as taken:
            yield taken
        return
    # A lock file of its own beside the scratch file, removed with it.
    lock_path = Path(f"{scratch_path(db, name)}.lock")
    with open(lock_path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(file, fcntl.LOCK_UN)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
