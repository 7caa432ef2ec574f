"""Whether `ugc serve --workers N` fits in the connections PostgreSQL takes (README: "Connection budget")."""

from __future__ import annotations

from ugc.config import Settings, is_postgres, pool_sizes

# More worker processes than this is no deployment: at ~80 MB resident each, 256 take 20 GB, and at
# the default pools' 17 connections each, 4,352 of PostgreSQL's (its default max_connections is 100).
MAX_WORKERS = 256

# What ordinary roles may open: superuser_reserved_connections, and PostgreSQL 16's reserved_connections
# (for roles granted pg_use_reserved_connections), are kept from them.
_OPEN_TO_ROLES = """
    SELECT current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(current_setting('reserved_connections', true)::int, 0)
"""


def over_budget(settings: Settings, workers: int) -> str | None:
    """Why `workers` server processes cannot all hold their pools at once on this PostgreSQL, or None.

    Each worker holds up to `PoolSizes.per_worker` connections under load; more than the server takes
    started, and under load answered 503s as connections were refused. Checked against the server alone:
    what `ugc project` processes and other clients hold is not known here, and the README's budget
    counts them."""
    if not is_postgres(settings.database_url):
        return None
    import psycopg

    each = pool_sizes().per_worker
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        row = connection.execute(_OPEN_TO_ROLES).fetchone()
    room = int(row[0]) if row is not None else 0
    if workers * each <= room:
        return None
    return (
        f"--workers {workers} needs up to {workers * each} PostgreSQL connections ({each} a worker: UGC_DB_POOL_MAX, "
        f"UGC_DB_ASYNC_POOL_MAX, UGC_STORE_POOL_MAX, UGC_ORDERS_STORE_POOL_MAX), and the server takes {room} "
        f"(max_connections less those reserved): run at most {room // each}, lower the pools or raise max_connections"
    )
