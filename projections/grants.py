"""The privileges a blue/green switch carries over from each live table to the new one (PostgreSQL).

A table's grants belong to the table: the switch drops the live table and moves the scratch one in
(projections/bluegreen.py), so without this the new table has its owner's rights only. Under
deploy/append-only.sql the owner rebuilds and the application's role then could not read or write
the read tables any more (every list 500, every command waiting for its projection 503).

The read tables own no sequence (no serial or identity column: ids come from `ugc_seq_*`, which
no rebuild replaces), so their grants are all there is to carry (tests/test_append_only.py checks).
"""

from __future__ import annotations

from projections.scratch import ScratchSet
from ugc.platform.dialect import Cursor


def grant_as_live(cur: Cursor, scratch: ScratchSet) -> None:
    """Grant on each scratch table what is granted on the live table it replaces, in `cur`'s
    transaction (the switch's): one query reads every live table's ACL."""
    marks = ", ".join(["%s"] * len(scratch.tables))
    rows = cur.execute(
        # The new table's owner has its rights already: its own entries are left out (it owns the
        # live table too when the owner rebuilds, as it should). Grantee 0 is PUBLIC.
        "SELECT l.relname AS name, a.privilege_type AS privilege, a.is_grantable AS grantable, "
        "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee "
        "FROM pg_class l JOIN pg_namespace ln ON ln.oid = l.relnamespace "
        "JOIN pg_class s ON s.relname = l.relname JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "CROSS JOIN LATERAL aclexplode(l.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
        f"WHERE ln.nspname = %s AND sn.nspname = %s AND l.relname IN ({marks}) AND a.grantee <> s.relowner "
        "ORDER BY 1, 2",
        (scratch.live_schema, scratch.name, *scratch.tables),
    ).fetchall()
    # One GRANT per grantee and set of privileges, naming every table it covers (usually one in all).
    privileges: dict[tuple[str, bool, str], list[str]] = {}  # (grantee, grantable, table) -> privileges
    for row in rows:
        privileges.setdefault((row["grantee"], row["grantable"], row["name"]), []).append(row["privilege"])
    tables: dict[tuple[str, bool, str], list[str]] = {}  # (grantee, grantable, privileges) -> tables
    for (grantee, grantable, table), granted in privileges.items():
        tables.setdefault((grantee, grantable, ", ".join(granted)), []).append(f"{scratch.scratch}.{_quote(table)}")
    for (grantee, grantable, granted_list), on in tables.items():
        option = " WITH GRANT OPTION" if grantable else ""
        cur.execute(f"GRANT {granted_list} ON TABLE {', '.join(on)} TO {grantee}{option}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
