"""What `ugc verify` pays for checking every checkpoint: a year of hourly ones, each signing another head.

Into a fresh, migrated database (`URL`: an empty PostgreSQL database, or `sqlite:////dir/ugc.sqlite3`
in an empty directory) the orders log gets `--count` events, and the audit directory beside it
`--count` checkpoints, the n-th signing the orders head at position n (the worst case: a quiet log's
checkpoints repeat one head, which is looked up once). Then `check_checkpoints` runs three times.

Measured 2026-12-05 on this 2-core machine, 8,760 checkpoints: SQLite 1.08-1.32 s, PostgreSQL
1.51-1.69 s (reading, parsing and signing the files, and one lookup per position).

Usage:  .venv/bin/python bench/verify_checkpoints.py URL [--count 8760]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import StoredEvent

from ugc.platform.chain import ChainHead
from ugc.platform.checkpoints import write_checkpoint
from ugc.platform.checkpoints_verify import check_checkpoints
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate

KEY = "bench-audit-key-" * 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=8760)
    args = parser.parse_args()
    db = Database(args.url)
    migrate(db)
    db.close()
    stores = EventStores(args.url)
    try:
        stream = uuid.uuid4()
        for start in range(0, args.count, 500):
            versions = range(start + 1, min(start + 500, args.count) + 1)
            stores.orders.recorder.insert_events([StoredEvent(stream, v, "ugc.Order.Updated", b"{}") for v in versions])
        heads = stores.chain_heads()
        with tempfile.TemporaryDirectory() as directory:
            first = datetime(2026, 1, 1, tzinfo=UTC)
            for hour, row in enumerate(stores.chained("orders").chain_rows(1, args.count, args.count)):
                signed = heads | {"orders": ChainHead(row.position, row.link, row.recorded_at)}
                write_checkpoint(Path(directory), KEY, signed, first + timedelta(hours=hour))
            chains = {name: stores.chained(name) for name in stores.applications}
            for _ in range(3):
                began = time.perf_counter()
                checked = check_checkpoints(Path(directory), (KEY,), chains)
                took = time.perf_counter() - began
                print(f"{checked.count} checkpoints, {len(checked.findings)} findings: {took:.2f} s")
    finally:
        stores.close()


if __name__ == "__main__":
    main()
