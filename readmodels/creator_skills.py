"""Queries on creators' skills (kept by `projections/creator_skills.py`), joined with `skills`.

A removed creator skill keeps its row with `active` false, so restoring it under its old id is
an update of that row.

The totals of active creator skills are kept by the projection in `creator_skill_counts`, a creator's
and every creator's (under `EVERY_CREATOR`): the list without a filter counted every creator skill
of the marketplace on each page (20,000: a sequential scan, 217 buffers).
"""

from __future__ import annotations

from readmodels.pages import PageQuery, PageRequest
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS creator_skills (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        creator_profile_id BIGINT NOT NULL,
        skill_id BIGINT NOT NULL,
        level INTEGER NOT NULL,
        active {bool} NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL)""",
    # The lists walk the active skills alone: with removed ones in the index, a page without a filter
    # passed every removed skill ordered before the first active one (99,990 of 100,000: 1,031 buffers).
    "CREATE INDEX IF NOT EXISTS creator_skills_active ON creator_skills (creator_profile_id, id) WHERE active",
    "DROP INDEX IF EXISTS creator_skills_by_profile",  # what served them before, removed skills too
    """CREATE TABLE IF NOT EXISTS creator_skill_counts (
        creator_profile_id BIGINT PRIMARY KEY,
        n BIGINT NOT NULL)""",
    # Filled once, where a database from before this table has creator skills but no counts: every
    # skill added since is counted with it, so the table is never empty while creator skills exist.
    """INSERT INTO creator_skill_counts (creator_profile_id, n)
        SELECT creator_profile_id, SUM(CASE WHEN active THEN 1 ELSE 0 END) FROM creator_skills
        WHERE NOT EXISTS (SELECT 1 FROM creator_skill_counts) GROUP BY creator_profile_id
        UNION ALL
        SELECT 0, (SELECT COUNT(*) FROM creator_skills WHERE active)
        WHERE NOT EXISTS (SELECT 1 FROM creator_skill_counts) AND EXISTS (SELECT 1 FROM creator_skills)""",
)

# The `creator_skill_counts` row of every creator's active skills together (profile ids start at 1).
EVERY_CREATOR = 0

_SELECT = (
    "SELECT cs.id, cs.creator_profile_id, cs.level, s.id AS skill_id, s.name AS skill_name, "
    "s.description AS skill_description FROM creator_skills cs JOIN skills s ON s.id = cs.skill_id"
)


def list_creator_skills(page: PageRequest, creator_profile_id: int | None = None) -> PageQuery:
    # `cs.active` as creator_skills_active says it: a planner takes a partial index for a condition it
    # can see implies the index's, which a parameter's value is not.
    where = "WHERE cs.active"
    params: list[object] = []
    if creator_profile_id is not None:
        where += " AND cs.creator_profile_id = %s"
        params.append(creator_profile_id)
    counted = EVERY_CREATOR if creator_profile_id is None else creator_profile_id
    return PageQuery(
        page,
        ("SELECT COALESCE(SUM(n), 0) AS n FROM creator_skill_counts WHERE creator_profile_id = %s", [counted]),
        (f"{_SELECT} {where} ORDER BY cs.creator_profile_id, cs.id", params),
    )


def skills_of_creator(db: Database, creator_profile_id: int) -> list[Row]:
    """Every skill of one creator (a catalog's worth at most), for the creator's page."""
    with db.read() as cur:
        return cur.execute(
            f"{_SELECT} WHERE cs.active AND cs.creator_profile_id = %s ORDER BY cs.id",
            (creator_profile_id,),
        ).fetchall()
