"""Queries on uploaded files (kept by `projections/files.py`).

Each owner's total of files not removed is kept in `file_counts` by the projection, beside the rows
it counts: a page reads one row, where a COUNT read every file of the owner's, removed or not (the
index holds no `removed`: 10,000 files, 400 buffers, a sequential scan).
"""

from __future__ import annotations

from readmodels.pages import PageQuery, PageRequest
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS files (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        owner_id BIGINT NOT NULL,
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        size BIGINT NOT NULL,
        content_type TEXT NOT NULL,
        uploaded_at {timestamp} NOT NULL,
        removed {bool} NOT NULL)""",
    # The owner's list, newest first, is one range scan of this index. It holds the listed files alone:
    # with the removed ones too, a page walked every file removed above the listed (99,990 for 10).
    "CREATE INDEX IF NOT EXISTS files_owner_listed ON files (owner_id, uploaded_at, id) WHERE NOT removed",
    "DROP INDEX IF EXISTS files_owner_uploaded",  # what served the list before, removed files too
    """CREATE TABLE IF NOT EXISTS file_counts (
        owner_id BIGINT PRIMARY KEY,
        n BIGINT NOT NULL)""",
    # Filled once, where a database from before this table has files but no counts: every upload
    # since is counted with it, so the table is never empty while a file is listed.
    """INSERT INTO file_counts (owner_id, n)
        SELECT owner_id, COUNT(*) FROM files
        WHERE NOT removed AND NOT EXISTS (SELECT 1 FROM file_counts) GROUP BY owner_id""",
)

_COLUMNS = "id, owner_id, key, name, size, content_type, uploaded_at, removed"


def list_own_files(owner_id: int, page: PageRequest) -> PageQuery:
    """The files `owner_id` has not removed, newest first."""
    # `NOT removed` as files_owner_listed says it: a planner takes a partial index for a condition it
    # can see implies the index's, which a parameter's value is not.
    where = "WHERE owner_id = %s AND NOT removed"
    return PageQuery(
        page,
        ("SELECT n FROM file_counts WHERE owner_id = %s", (owner_id,)),
        (f"SELECT {_COLUMNS} FROM files {where} ORDER BY uploaded_at DESC, id DESC", (owner_id,)),
    )


def get_file(db: Database, file_id: int) -> Row | None:
    """One file, removed or not: the caller decides who may see it."""
    with db.read() as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM files WHERE id = %s", (file_id,)).fetchone()
