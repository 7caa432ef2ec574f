"""Leases (`leases`, `lease_members`): which process runs which projection or job, and until when.

A lease row names its holder, a fencing token that grows by one at every acquisition, and when it
expires. Expiry is read on the database's clock (`NOW`), never a process's, so two hosts whose
clocks disagree still agree on who holds what. A holder renews its leases every tick; one that
stops (dead, frozen, cut off) loses them when they expire, and another process acquires them with
a new token. Every batch checks its lease in its own transaction (`fence`), so a holder that lost
one commits nothing more under it. `lease_members` lists the processes alive, the leases each
runs with their weights, and the version of each read model's code it runs, for the balance. Every
server process is a member, one that runs no projection too (with no lease): the throttle counts a
sign-in in flight only while the process running it is a live member (`live_members`).

The coordination lives here; who acquires what, and when, is `projections/leasing.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ugc.platform.database import Database, reading
from ugc.platform.dialect import Cursor, Dialect, add_column

DDL = (
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT,
        token BIGINT NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    # What makes an acquisition wait for a batch's fence, and a renewal not (see `fence`).
    "CREATE UNIQUE INDEX IF NOT EXISTS leases_token ON leases (name, token)",
    # `leases`: the leases the member runs and their weights, as JSON ({"orders": 4.0, ...});
    # `versions`: the version of the code of each read model it runs ({"notifications": 3, ...}).
    """CREATE TABLE IF NOT EXISTS lease_members (
        holder TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL,
        leases TEXT NOT NULL DEFAULT '',
        versions TEXT NOT NULL DEFAULT '')""",
)

# The database's clock, in seconds since the epoch. clock_timestamp(), not now(): now() is when the
# transaction began, and a batch's fence must read the time at the moment it checks.
NOW: dict[Dialect, str] = {
    "postgresql": "extract(epoch from clock_timestamp())::float8",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
# A batch's session is named for its holder while its transaction runs, so a process that takes a
# lease over can end the transactions its frozen predecessor left open (`end_batches_of`).
BATCH_PREFIX = "ugc-batch "
MEMBERS_KEPT = 60.0  # seconds a dead member's row stays before any member deletes it


class LeaseLost(RuntimeError):
    """A batch's lease was no longer this holder's (expired, or acquired by another): nothing committed."""

    def __init__(self, holder: str, names: Sequence[str]) -> None:
        super().__init__(f"{holder} no longer holds {sorted(names)}")
        self.names = sorted(names)


def _now(cur: Cursor) -> str:
    return NOW[cur.dialect]


def ensure(cur: Cursor, names: Sequence[str]) -> None:
    """A row for each lease, held by nobody when new."""
    for name in names:
        cur.execute("INSERT INTO leases (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))


def add_later_columns(cur: Cursor) -> None:
    """Give a `lease_members` made before members named their leases, or their versions, the columns."""
    add_column(cur, "lease_members", "leases TEXT NOT NULL DEFAULT ''")
    add_column(cur, "lease_members", "versions TEXT NOT NULL DEFAULT ''")


@dataclass(frozen=True)
class Member:
    """What a live member runs: lease -> weight, and read model -> the version of its code."""

    weights: dict[str, float]
    versions: dict[str, int]


def attend(
    cur: Cursor, holder: str, ttl: float, runs: Mapping[str, float], versions: Mapping[str, int]
) -> dict[str, Member]:
    """Say `holder` is alive for `ttl` seconds more and runs the leases `runs` (name -> weight), its
    read models' code at `versions`; every member alive (itself included) and what each runs. A member
    of an older version, which named none, runs none as far as the balance knows; one that named no
    versions runs every read model at version 0."""
    now = _now(cur)
    cur.execute(
        f"INSERT INTO lease_members (holder, expires_at, leases, versions) VALUES (%s, {now} + %s, %s, %s) "
        "ON CONFLICT (holder) DO UPDATE SET expires_at = excluded.expires_at, leases = excluded.leases, "
        "versions = excluded.versions",
        (holder, ttl, json.dumps(dict(runs), sort_keys=True), json.dumps(dict(versions), sort_keys=True)),
    )
    cur.execute(f"DELETE FROM lease_members WHERE expires_at < {now} - %s", (MEMBERS_KEPT,))
    rows = cur.execute(f"SELECT holder, leases, versions FROM lease_members WHERE expires_at > {now}").fetchall()
    return {
        row["holder"]: Member(json.loads(row["leases"] or "{}"), json.loads(row["versions"] or "{}")) for row in rows
    }


def live_members(dialect: Dialect) -> str:
    """A subquery of the holders of the members alive now, on the database's clock (the throttle
    counts an attempt in flight only while its process is one: ugc/platform/auth_failures.py)."""
    return f"SELECT holder FROM lease_members WHERE expires_at > {NOW[dialect]}"


def leave(cur: Cursor, holder: str) -> None:
    """Give every lease of `holder` up at once and leave the members (a clean stop)."""
    cur.execute(f"UPDATE leases SET holder = NULL, expires_at = {_now(cur)} WHERE holder = %s", (holder,))
    cur.execute("DELETE FROM lease_members WHERE holder = %s", (holder,))


def _matching(held: Mapping[str, int]) -> tuple[str, list[object]]:
    """`(name = %s AND token = %s) OR ...` for every held lease, and its parameters, in name order."""
    names = sorted(held)
    clause = " OR ".join(["(name = %s AND token = %s)"] * len(names))
    return f"({clause})", [value for name in names for value in (name, held[name])]


def renew(cur: Cursor, holder: str, held: Mapping[str, int], ttl: float) -> set[str]:
    """Extend the leases `holder` still holds with these tokens; the names renewed. A lease that expired
    but that nobody took since is renewed too: the unchanged token proves nobody held it meanwhile."""
    if not held:
        return set()
    clause, params = _matching(held)
    rows = cur.execute(
        f"UPDATE leases SET expires_at = {_now(cur)} + %s WHERE holder = %s AND {clause} RETURNING name",
        (ttl, holder, *params),
    ).fetchall()
    return {row["name"] for row in rows}


def unheld(cur: Cursor, names: Sequence[str]) -> dict[str, float]:
    """Of `names`, those nobody holds live, and for how many seconds they have been so (one statement)."""
    if not names:
        return {}
    marks = ", ".join(["%s"] * len(names))
    rows = cur.execute(
        f"SELECT name, {_now(cur)} - expires_at AS unheld_for FROM leases "
        f"WHERE name IN ({marks}) AND (holder IS NULL OR expires_at <= {_now(cur)})",
        tuple(names),
    ).fetchall()
    return {row["name"]: float(row["unheld_for"]) for row in rows}


def acquire(cur: Cursor, name: str, holder: str, ttl: float) -> tuple[int, str | None, int] | None:
    """Take lease `name` if nobody holds it live: its new token, its previous holder and how many of
    that holder's open batches were ended; None if it is held.

    A previous holder frozen between its batch's fence and commit keeps the lease row locked against
    this: its batches are ended first, so the acquisition does not wait for it to wake.
    """
    now = _now(cur)
    row = cur.execute(
        f"SELECT holder, CASE WHEN expires_at <= {now} THEN 1 ELSE 0 END AS lapsed FROM leases WHERE name = %s",
        (name,),
    ).fetchone()
    if row is None or (row["holder"] is not None and not row["lapsed"]):
        return None
    previous = row["holder"] if row["holder"] != holder else None
    ended = end_batches_of(cur, previous) if previous else 0
    taken = cur.execute(
        f"UPDATE leases SET holder = %s, token = token + 1, expires_at = {now} + %s "
        f"WHERE name = %s AND (holder IS NULL OR expires_at <= {now}) RETURNING token",
        (holder, ttl, name),
    ).fetchone()
    return None if taken is None else (int(taken["token"]), previous, ended)


def release(cur: Cursor, name: str, holder: str, token: int) -> None:
    """Give lease `name` up now (the balance gives it to another member)."""
    cur.execute(
        f"UPDATE leases SET holder = NULL, expires_at = {_now(cur)} WHERE name = %s AND holder = %s AND token = %s",
        (name, holder, token),
    )


def fence(cur: Cursor, holder: str, held: Mapping[str, int], *, margin: float = 0.0) -> None:
    """Raise LeaseLost unless `holder` holds every lease of `held` with these tokens, unexpired for
    `margin` seconds more.

    Inside a batch's transaction on PostgreSQL the rows stay locked FOR KEY SHARE until it ends, and
    that lock conflicts only with an UPDATE of a column of a unique index: `acquire`, which moves
    `token` (in `leases_token`), waits until the batch commits, so nobody takes a lease between this
    check and the commit; the holder's own renewal, which moves only `expires_at`, never waits for
    its batches (under FOR SHARE it queued behind them, timed out on a loaded machine, and the
    holder lost its leases to itself).
    """
    if not held:
        return
    name_batch(cur, holder)  # a holder frozen from here to its commit can be ended by its successor
    clause, params = _matching(held)
    lock = " FOR KEY SHARE" if cur.dialect == "postgresql" else ""
    rows = cur.execute(
        f"SELECT name FROM leases WHERE holder = %s AND expires_at > {_now(cur)} + %s AND {clause}{lock}",
        (holder, margin, *params),
    ).fetchall()
    if len(rows) != len(held):
        raise LeaseLost(holder, sorted(set(held) - {row["name"] for row in rows}))


def name_batch(cur: Cursor, holder: str) -> None:
    """Name this transaction's session for `holder` until it ends (PostgreSQL), for `end_batches_of`."""
    if cur.dialect == "postgresql":
        cur.execute(f"SET LOCAL application_name = '{BATCH_PREFIX}{_quoted(holder)}'")


def end_batches_of(cur: Cursor, holder: str) -> int:
    """End the batches `holder` has open (PostgreSQL): after it lost a lease by freezing mid-batch, its
    open transaction would hold the rows its successor must write until it woke. How many ended."""
    if cur.dialect != "postgresql":
        return 0
    rows = cur.execute(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
        (f"{BATCH_PREFIX}{holder}"[:63],),
    ).fetchall()
    return sum(1 for row in rows if row["ended"])


def _quoted(holder: str) -> str:
    return holder.replace("'", "''")


@dataclass(frozen=True)
class LeaseState:
    """One lease as the database says now: a live holder (None when nobody's lease is unexpired)."""

    name: str
    holder: str | None
    token: int
    expired_for: float | None  # seconds since it expired (None while held); inf if it was never held


def states(source: Database | Cursor) -> dict[str, LeaseState]:
    """Every lease, read on the database's clock (and on `source`: `reading`)."""
    with reading(source) as cur:
        rows = cur.execute(f"SELECT name, holder, token, expires_at, {_now(cur)} AS now FROM leases").fetchall()
    found = {}
    for row in rows:
        expires_at, now = float(row["expires_at"]), float(row["now"])
        live = row["holder"] is not None and expires_at > now
        if live:
            expired_for = None
        elif row["holder"] is None and int(row["token"]) == 0:
            expired_for = float("inf")
        else:
            expired_for = max(0.0, now - expires_at)
        found[row["name"]] = LeaseState(row["name"], row["holder"] if live else None, int(row["token"]), expired_for)
    return found
