"""List reads on the embedded default (SQLite), the page read on the event loop's reading threads.

On SQLite a coroutine's reads (every list page) run on threads of their own (`UGC_DB_ASYNC_POOL_MAX`),
a read that waited longer than `UGC_QUEUE_TIMEOUT` for one turned away (ugc/platform/blocking.py
`AgedLine`); before, on the loop's default executor, unbounded. This starts `ugc serve` (one worker,
as `make run` does) on a fresh SQLite file with the demo world (`ugc seed --demo`) and loads a
paginated list read through that path, `GET /api/v1/creators/{id}/reviews/` (a page and its total in
one snapshot), at 16 and 256 connections. With `--base DIR` (another checkout of the project, e.g. a
`git worktree` of an older commit) the same server from DIR is measured in turn, round after round,
so each pair of figures is seconds apart on the same machine. The ceilings of the same run come from
bench/ceilings.py. Prints markdown and writes it to a dated file in bench/results/ (common.record).

Usage:  .venv/bin/python bench/sqlite_reads.py [--base DIR] [--rounds 3] [--duration 5] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import ceilings
import common
import httpx
import loadgen
from common import free_port, record, server

CONNECTIONS = (16, 256)
PATH = "/api/v1/creators/{creator}/reviews/"


@contextmanager
def sqlite_server(checkout: Path | None) -> Iterator[tuple[str, int]]:
    """`ugc serve` of `checkout` (None: this one) on a fresh SQLite file with the demo world; (URL, pid)."""
    with tempfile.TemporaryDirectory(prefix="ugc-bench-sqlite-") as var_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UGC_")}
        env |= {"UGC_VAR_DIR": var_dir, "UGC_DATABASE_URL": f"sqlite:///{var_dir}/ugc.sqlite3"}
        if checkout is not None:
            env["PYTHONPATH"] = str(checkout)  # ahead of this checkout's editable install
        ugc = [sys.executable, "-m", "ugc.cli"]
        subprocess.run([*ugc, "seed", "--demo"], env=env, check=True, capture_output=True)
        port = free_port()
        argv = [*ugc, "serve", "--host", "127.0.0.1", "--port", str(port)]
        with server(argv, port, env=env, log=Path(var_dir) / "server.log") as process:
            yield f"http://127.0.0.1:{port}", process.pid


def reviewed_creator(base: str) -> int:
    """A creator of the demo world with reviews: the page read returns rows, not an empty list."""
    for creator in range(1, 50):
        answer = httpx.get(base + PATH.format(creator=creator), timeout=10)
        if answer.status_code == 200 and answer.json()["count"]:
            return creator
    raise RuntimeError("no creator of the demo world has a review")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="another checkout to measure in turn with this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    began = datetime.now(UTC)
    common.wait_for_quiet()
    ceiling = ceilings.measure(duration=3.0, connections=(16,))
    checkouts: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.base is not None:
        checkouts.append((f"`{args.base}`", args.base.resolve()))
    rows = []
    for round_number in range(1, args.rounds + 1):
        for label, checkout in checkouts:
            with sqlite_server(checkout) as (base, pid):
                scenario = loadgen.Scenario(path=PATH.format(creator=reviewed_creator(base)))
                for connections in CONNECTIONS:
                    result = loadgen.run(base, scenario, connections=connections, duration=args.duration,
                                         server_pid=pid, database="", attempts=1)
                    rows.append(ceilings.result_row(f"round {round_number}, {label}", result))
    command = " ".join(["python bench/sqlite_reads.py", *sys.argv[1:]])
    section = "\n".join([
        f"## List reads on SQLite, {began:%Y-%m-%d %H:%M} UTC", "",
        f"Command: `{command}`. `ugc serve` (one worker) on a fresh SQLite file with the demo world; "
        f"`GET {PATH}` (a page and its total read in one snapshot on the event loop's reading threads).", "",
        ceilings.markdown(ceiling), "",
        "### The page read", "",
        ceilings.RESULT_HEADER, *rows,
    ])
    print(section)
    if not args.no_record:
        record(section, "sqlite-reads", began)


if __name__ == "__main__":
    main()
