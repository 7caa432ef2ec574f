"""Which code last migrated the database: a digest of it, so that a server process tells with one
read that the schema it needs is in place, and does not migrate it again.

`ugc serve` migrates before it starts its workers, and each worker then migrated again as it
started, one after another behind the migration's lock: on PostgreSQL ~0.25 s of each worker's
start on an idle machine (its own stores and pools, the catalogue read, every log's chain looked
at), paid once more by every in-process app of the tests. A migration now ends by recording the
digest of the code that ran it (`record`), and a server process whose own code has that digest
(`migrated_by_this_code`) leaves the schema as it finds it. One that finds another digest, or
none, migrates as every start did before: a worker of another version (an installation upgraded
in place, then a SIGHUP that renews the workers), or a database no `ugc migrate` or `ugc serve`
of this code has migrated (uvicorn run on `ugc.wiring:asgi_app` by hand).

The digest covers every Python source of the project's packages and of eventsourcing (whose stores
make the event tables): any change makes the next server process migrate once more, which costs
what every start cost before. A digest of the DDL alone would miss the steps of a migration written
as code (columns added, projections rewound, logs chained) and let a worker serve a schema it does
not know. The stamp says what was made, not what is still there: a
table dropped by hand since is made anew by the next `ugc serve` or `ugc migrate`, which migrate
whatever the stamp says, not by a worker.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import util
from pathlib import Path

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor, table_exists

# The packages of the `ugc-market` distribution (pyproject.toml: [tool.setuptools.packages.find]) and
# the library that makes the event tables. Their sources, not their distributions' versions: a version's
# look-up (importlib.metadata) costs ~45 ms of CPU, more than the whole digest.
PACKAGES = ("ugc", "commands", "projections", "readmodels", "api", "eventsourcing")

DDL = ("CREATE TABLE IF NOT EXISTS schema_stamp (id INTEGER PRIMARY KEY, code TEXT NOT NULL)",)


@functools.cache
def code_digest() -> str:
    """This installation's digest (~10 ms, once per process)."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        spec = util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec is not None else []:
            for path in sorted(Path(root).rglob("*.py")):
                source = path.read_bytes()
                digest.update(f"{package}/{path.relative_to(root).as_posix()} {len(source)}\n".encode())
                digest.update(source)
    return digest.hexdigest()


def record(db: Database) -> None:
    """Note that this code has just migrated the database (at the end of `ugc migrate`, under its lock)."""
    with db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO schema_stamp (id, code) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET code = excluded.code",
            (code_digest(),),
        )


def migrated_by_this_code(db: Database) -> bool:
    """Whether this code migrated the database last: False where no stamp is found (a database not
    migrated yet, or by a version from before stamps) or none can be read."""
    with db.read() as cur:
        if not _readable(cur):
            return False
        row = cur.execute("SELECT code FROM schema_stamp WHERE id = 1").fetchone()
    return row is not None and row["code"] == code_digest()


def _readable(cur: Cursor) -> bool:
    """Whether the stamp's table is there and this role may read it. Where another role owns the tables
    (README: "Append-only on PostgreSQL"), the application's role reads a table made by a later
    `ugc migrate` only once `deploy/append-only.sql` has run again; until then its servers start as
    they did before stamps, their migration leaving the owner's schema alone."""
    if cur.dialect == "postgresql":
        row = cur.execute(
            "SELECT has_table_privilege(c.oid, 'SELECT') AS readable FROM pg_class c "
            "WHERE c.oid = to_regclass('schema_stamp')"
        ).fetchone()
        return bool(row and row["readable"])
    return table_exists(cur, "schema_stamp")
