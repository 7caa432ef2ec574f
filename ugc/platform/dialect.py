"""One SQL text for SQLite and PostgreSQL: column types, parameters, the cursor, rows as dicts.

Code outside the platform writes one SQL text with `%s` placeholders and portable types; a
`Cursor` adapts it to the dialect it runs on. Importing this module registers SQLite's adapters
and converters (times in UTC, JSON, booleans, exact decimals); psycopg is imported only by a
process that works on PostgreSQL (`psycopg_loaded`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

if TYPE_CHECKING:
    import psycopg

Row = dict[str, Any]
Query = tuple[str, Sequence[Any]]  # a statement and its parameters
Dialect = Literal["sqlite", "postgresql"]

# Column types spelled per dialect; the SQLite names pick the converters registered below.
COLUMN_TYPES: dict[Dialect, dict[str, str]] = {
    "postgresql": {
        "timestamp": "TIMESTAMPTZ",
        "json": "JSONB",
        "bool": "BOOLEAN",
        "money": "NUMERIC(14, 2)",
        "text_array": "TEXT[]",
    },
    # SQLite has no arrays: a table with a `{text_array}` column is PostgreSQL's alone to fill.
    "sqlite": {
        "timestamp": "TIMESTAMPTZ",
        "json": "JSONTEXT",
        "bool": "BOOLEAN",
        "money": "DECIMALTEXT",
        "text_array": "TEXT",
    },
}


def _parse_timestamp(raw: bytes) -> datetime:
    value = datetime.fromisoformat(raw.decode())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


sqlite3.register_adapter(datetime, lambda value: value.astimezone(UTC).isoformat())
sqlite3.register_adapter(Decimal, str)
sqlite3.register_adapter(bool, int)
sqlite3.register_converter("TIMESTAMPTZ", _parse_timestamp)
sqlite3.register_converter("JSONTEXT", orjson.loads)
sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))
sqlite3.register_converter("DECIMALTEXT", lambda raw: Decimal(raw.decode()))


class Cursor:
    """A cursor that takes `%s` SQL and JSON-able parameters on either dialect, rows as dicts."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.dialect == "sqlite":
            sql = sql.replace("%s", "?")
            params = [json.dumps(p) if isinstance(p, (dict, list)) else p for p in params]
        else:
            params = postgres_params(params)
        self._raw.execute(sql, params)
        return self

    def rows(
        self, name: str, columns: Mapping[str, str], rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, list[Any]]]:
        """`rows` as a WITH entry `name` with `columns` (name -> PostgreSQL type): its text and parameters.

        On PostgreSQL once, as one JSON array of rows: a short statement that psycopg parses once
        and prepares, however many rows, and one parameter that orjson writes in C (a VALUES list of
        hundreds of placeholders was parsed anew each batch; arrays were dumped element by element
        in Python: either was most of a batch's CPU). On SQLite as VALUES, in runs of at most
        MAX_PARAMETERS values, one entry each.
        """
        names = ", ".join(columns)
        if self.dialect == "postgresql":
            fields = ", ".join(
                f"r -> {i}" if kind == "jsonb" else f"(r ->> {i})::{kind}" for i, kind in enumerate(columns.values())
            )
            yield (
                f"{name} ({names}) AS (SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS held_rows (r))",
                [orjson.dumps(rows, default=_json_default).decode()],
            )
            return
        for chunk in _chunks(rows, len(columns)):
            yield f"{name} ({names}) AS (VALUES {_values(len(chunk), len(columns))})", [v for row in chunk for v in row]

    def execute_read_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[Row]]:
        """Run `sql`; what reads its rows, which may be called once the transaction has ended. Here
        they are read now (the cursor's next statement would replace them); a pipelined cursor
        sends the statement without waiting (`PipelinedCursor`)."""
        rows = self.execute(sql, params).fetchall()
        return lambda: rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for params in rows:
            self.execute(sql, params)

    def fetchone(self) -> Row | None:
        row: Row | None = self._raw.fetchone()
        if row is None or self.dialect == "postgresql":  # psycopg's rows are dicts already (dict_row)
            return row
        return dict(row)

    def fetchall(self) -> list[Row]:
        rows: list[Row] = self._raw.fetchall()
        return rows if self.dialect == "postgresql" else [dict(row) for row in rows]

    @property
    def rowcount(self) -> int:
        return int(self._raw.rowcount)


_CREATE_INDEX = re.compile(r'CREATE (?:UNIQUE )?INDEX IF NOT EXISTS "?(\w+)"? ')


def created_index(sql: str) -> str | None:
    """The index `sql` creates if it is a CREATE INDEX IF NOT EXISTS, else None.

    On PostgreSQL such a statement locks its table (SHARE) even when the index exists, until the
    transaction commits: a process that starts (and migrates) beside running ones would wait for
    their writes, every write after it waiting in turn, or deadlock with a batch that writes the
    tables in another order. A migration asks the catalogue first and runs it only when missing."""
    found = _CREATE_INDEX.match(sql)
    return found.group(1) if found else None


_CREATE_TABLE = re.compile(r'CREATE TABLE IF NOT EXISTS "?(\w+)"?[ (]')


def created_table(sql: str) -> str | None:
    """The table `sql` creates if it is a CREATE TABLE IF NOT EXISTS, else None."""
    found = _CREATE_TABLE.match(sql)
    return found.group(1) if found else None


def schema_relations(cur: Cursor) -> frozenset[str]:
    """The names of the tables, indexes and sequences of PostgreSQL's current schema, read at once
    (none on SQLite)."""
    if cur.dialect != "postgresql":
        return frozenset()
    rows = cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema()"
    ).fetchall()
    return frozenset(str(row["relname"]) for row in rows)


def relation_exists(cur: Cursor | psycopg.Cursor[Any], name: str) -> bool:
    """Whether PostgreSQL has the index or table `name` (on the search path, or schema-qualified),
    through either cursor: ours or a store's, both giving rows as dicts."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (name,))
    row = cur.fetchone()
    return bool(row and row["found"])


def table_exists(cur: Cursor, name: str) -> bool:
    """Whether the database has the table `name` (PostgreSQL: on the search path)."""
    if cur.dialect == "postgresql":
        return relation_exists(cur, name)
    row = cur.execute(
        "SELECT COUNT(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = %s", (name,)
    ).fetchone()
    return bool(row and row["found"])


def add_column(cur: Cursor, table: str, column: str) -> bool:
    """Give `table` the `column` (its name and type, as ALTER TABLE takes them; `{timestamp}`-style
    types are spelled for the dialect) unless it has it; whether it was added.

    The catalogue is read first and the ALTER runs only when the column is missing: on PostgreSQL
    even `ADD COLUMN IF NOT EXISTS` takes the table's lock, so a process starting beside running ones
    would wait for their statements, and they for it."""
    name = column.split()[0]
    if cur.dialect == "postgresql":
        found = cur.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
            (table, name),
        ).fetchone()
    else:
        found = cur.execute("SELECT 1 FROM pragma_table_info(%s) WHERE name = %s", (table, name)).fetchone()
    if found is not None:
        return False
    cur.execute(f"ALTER TABLE {table} ADD COLUMN {column.format(**COLUMN_TYPES[cur.dialect])}")
    return True


class PipelinedCursor(Cursor):
    """A PostgreSQL cursor in psycopg's pipeline mode: each statement on a raw cursor of its own.

    In a pipeline, psycopg hands a statement's result to the cursor that sent it whenever it
    arrives, and a fetch reads the cursor's result as soon as it has one. On one shared cursor
    the result of an earlier statement (an INSERT) could arrive while the next one was being
    sent and be read back as the next one's ("the last operation didn't produce records
    (command status: INSERT 0 1)"): a batch then failed at random under load. A raw cursor per
    statement only ever holds its own statement's result.
    """

    def __init__(self, connection: Any) -> None:
        super().__init__(connection.cursor(), "postgresql")
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._raw = self._connection.cursor()
        return super().execute(sql, params)

    def execute_read_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[Row]]:
        """Send `sql` without waiting for its rows: they come with the answer the transaction waits
        for next (a later read, or the commit), one round trip fewer, and stay on the statement's
        own raw cursor, readable after the commit."""
        raw = self.execute(sql, params)._raw

        def rows() -> list[Row]:
            found: list[Row] = raw.fetchall()
            return found

        return rows


def psycopg_loaded() -> bool:
    """Whether this process imported psycopg. Only a process that works on PostgreSQL does
    (`ugc.platform.postgres_driver`): importing it was ~70 ms of CPU at the start of each process on
    SQLite, which never uses it. An error of psycopg's exists only where psycopg was imported, so a
    check of an error asks this first and imports nothing where it says no."""
    return "psycopg" in sys.modules


def psycopg_errors(*names: str) -> tuple[type[Exception], ...]:
    """The classes of `psycopg.errors` that `names` name, to catch: none where psycopg is not loaded."""
    if not psycopg_loaded():
        return ()
    import psycopg.errors

    return tuple(getattr(psycopg.errors, name) for name in names)


def integrity_errors() -> tuple[type[Exception], ...]:
    """A row that breaks a key or constraint, on either dialect (psycopg's only where it is loaded)."""
    if not psycopg_loaded():
        return (sqlite3.IntegrityError,)
    import psycopg

    return (psycopg.IntegrityError, sqlite3.IntegrityError)


_R = TypeVar("_R")
MAX_PARAMETERS = 999  # per statement: SQLite's historic limit (PostgreSQL takes far more)


def _chunks(rows: Sequence[_R], width: int) -> Iterator[Sequence[_R]]:
    """`rows` of `width` parameters each, in runs that fit one statement."""
    size = max(1, MAX_PARAMETERS // width)
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _values(row_count: int, width: int) -> str:
    """The placeholders of `row_count` rows of `width` values: `(%s, %s), (%s, %s)`."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * row_count)


def _json_default(value: Any) -> str:
    """What orjson leaves to us: a Decimal, written exactly (as PostgreSQL reads numeric text)."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-able here")


class TextArray(list[str]):
    """Text values a `{text_array}` column holds: on PostgreSQL a `text[]`, where other lists go as JSON."""


def postgres_params(params: Sequence[Any]) -> list[Any]:
    from psycopg.types.json import Jsonb

    return [Jsonb(p) if isinstance(p, (dict, list)) and not isinstance(p, TextArray) else p for p in params]


def no_such_table(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, is a table missing from the database (either dialect)."""
    undefined_table: tuple[type[Exception], ...] = ()
    if psycopg_loaded():
        from psycopg.errors import UndefinedTable

        undefined_table = (UndefinedTable,)
    while error is not None:
        if isinstance(error, undefined_table) or (
            isinstance(error, sqlite3.OperationalError) and str(error).startswith("no such table")
        ):
            return True
        error = error.__cause__ or error.__context__
    return False
