"""Queries on categories and skills (kept by `projections/catalog.py`)."""

from __future__ import annotations

from readmodels.folding import folded
from readmodels.pages import PageQuery, PageRequest
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS categories (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        slug TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE IF NOT EXISTS skills (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        search_text TEXT NOT NULL)""",
)


def list_categories(page: PageRequest) -> PageQuery:
    return PageQuery(
        page,
        ("SELECT COUNT(*) AS n FROM categories", ()),
        # COLLATE "C": the same order on SQLite and on PostgreSQL whatever its locale (en_US would
        # put "iMovie" among the I's and "ёлка" after "е"; SQLite puts them after "Z" and "я").
        ('SELECT id, name, slug FROM categories ORDER BY name COLLATE "C", id', ()),
    )


def list_skills(page: PageRequest, search: tuple[str, ...] = ()) -> PageQuery:
    """A page of skills; with `search` (a term's folded words, readmodels/folding.py), those whose
    name or description holds every word (a LIKE each: skills, a reference list admins keep, have no
    search index)."""
    # search_text is folded by the projection: SQLite's LOWER() knows only ASCII.
    where = " AND ".join(["search_text LIKE %s ESCAPE '\\'"] * len(search))
    where = f" WHERE {where}" if where else ""
    params = [f"%{_escape_like(word)}%" for word in search]
    return PageQuery(
        page,
        (f"SELECT COUNT(*) AS n FROM skills{where}", params),
        (f'SELECT id, name, description FROM skills{where} ORDER BY name COLLATE "C", id', params),
    )


def get_skill(db: Database, skill_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute("SELECT id, name, description FROM skills WHERE id = %s", (skill_id,)).fetchone()


def search_text(*parts: str) -> str:
    """The folded text that skill search matches against."""
    return " ".join(folded(part) for part in parts)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
