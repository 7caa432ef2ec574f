"""psycopg, configured: the one way our code imports it at run time.

Only a process that works on PostgreSQL imports it, inside the functions that run there (or with a
module that only PostgreSQL uses, as `chain_postgres`): on SQLite it was ~70 ms of CPU at every
process's start, for nothing. Whichever path imports it first configures it here, before any
connection is made, as importing it at start did: orjson parses its JSON, and the library's
PostgreSQL module (imported with it) sets psycopg's loggers to ERROR, so a pool's failed attempt to
connect is not a warning line of its own beside the error the process reports.
"""

from __future__ import annotations

import eventsourcing.postgres  # noqa: F401 - its import sets psycopg's loggers' level
import orjson
import psycopg
from psycopg.types.json import set_json_loads

__all__ = ["psycopg"]

# JSON columns are parsed by orjson on both dialects (SQLite's converter is in `dialect`): the standard
# library's parser was 4% of a list request's CPU (an order's options, a notification's data).
set_json_loads(orjson.loads)
