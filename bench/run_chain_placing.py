"""`POST /api/v1/orders/` with and without the hash chain, in the same run, on PostgreSQL.

Two servers side by side, each on a fresh database with the same cast (bench/run_orders.py's
`build_cast`: 64 verified buyers, 16 creators with 2 services each): `ugc serve` as shipped (every
append writes its chain rows) and bench/serve_without_chain.py (the library's own recorder, no chain
rows). One uvicorn worker each, projections inline. Placing runs alternate between the two, one
warm-up run each first, and the same run's ceilings are measured (bench/ceilings.py: hello-world
HTTP, raw INSERT+COMMIT).

Usage:  .venv/bin/python bench/run_chain_placing.py [--duration 10] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import loadgen
import uvloop
from ceilings import hello_world, pg_insert
from common import ROOT, VENV_BIN, free_port, fresh_database, record, server
from run_orders import Cast, build_cast, place_scenario, refreshed


@contextmanager
def serving(database_url: str, *, chained: bool) -> Iterator[tuple[str, int, Path]]:
    with tempfile.TemporaryDirectory(prefix="ugc-bench-chain-") as var_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UGC_")}
        env |= {"UGC_DATABASE_URL": database_url, "UGC_VAR_DIR": var_dir, "UGC_SECRET_KEY": secrets.token_urlsafe(48)}
        port = free_port()
        without = [str(VENV_BIN / "python"), str(ROOT / "bench" / "serve_without_chain.py")]
        command = [str(VENV_BIN / "ugc")] if chained else without
        argv = [*command, "serve", "--host", "127.0.0.1", "--port", str(port)]
        with server(argv, port, env=env, log=Path(var_dir) / "server.log", ready_timeout=120) as proc:
            yield f"http://127.0.0.1:{port}", proc.pid, Path(var_dir)


def cast_for(base: str, var_dir: Path) -> Cast:
    async def go() -> Cast:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return await build_cast(client, var_dir / "outbox", creators=16, buyers=64, services_per_creator=2)

    return uvloop.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--engine", default=loadgen.DEFAULT_ENGINE)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    began = datetime.now(UTC)
    rates: dict[str, list[float]] = {"with the chain": [], "without (the library's append)": []}
    p99: dict[str, list[float]] = {name: [] for name in rates}
    errors = 0
    with fresh_database("ugc_bench_chained") as chained_url, fresh_database("ugc_bench_plain") as plain_url:
        insert = pg_insert(chained_url)
        hello = hello_world(args.connections, 5.0, engine=args.engine)
        with serving(chained_url, chained=True) as chained, serving(plain_url, chained=False) as plain:
            sides = {}
            for name, (base, pid, var_dir) in zip(rates, (chained, plain), strict=True):
                cast = cast_for(base, var_dir)
                sides[name] = (base, pid, cast, place_scenario(cast))
            for round_ in range(args.rounds + 1):
                for name, (base, pid, cast, scenario) in sides.items():
                    refreshed(base, cast.buyers)
                    result = loadgen.run(
                        base,
                        scenario,
                        connections=args.connections,
                        duration=args.duration if round_ else 3.0,
                        engine=args.engine,
                        server_pid=pid,
                        quiet=False,
                    )
                    print(
                        f"{name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, {result.errors} errors",
                        file=sys.stderr,
                    )
                    if round_:
                        rates[name].append(result.rps)
                        p99[name].append(result.p99_ms)
                        errors += result.errors
    with_chain, without = (statistics.median(v) for v in rates.values())
    lines = [
        f"# Placing orders with and without the hash chain ({began:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `python bench/run_chain_placing.py --duration {args.duration:g} --rounds {args.rounds} "
        f"--connections {args.connections}` (engine {args.engine}). Two `ugc serve` processes (one uvicorn worker, "
        "projections inline), each on its own fresh PostgreSQL database with the same cast; runs alternate. "
        "The machine (2 cores) was shared with other work throughout.",
        "",
        f"Ceilings of the same run: hello-world {hello.rps:,.0f} req/s ({args.connections} connections); raw "
        f"INSERT+COMMIT {insert.tps:,.0f} tx/s (8 threads).",
        "",
        f"| `POST /api/v1/orders/`, {args.connections} connections | runs (req/s) | median | p99 ms (median) "
        "| ÷ INSERT+COMMIT | ÷ hello-world |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {median:,.0f} | "
            f"{statistics.median(p99[name]):.1f} | {median / insert.tps:.3f} | {median / hello.rps:.3f} |"
        )
    ratio = with_chain / without
    lines += ["", f"With ÷ without: **{ratio:.3f}** (target ≥ 0.90); {errors} errors in the measured runs."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_record:
        record(text, "chain-placing", began)


if __name__ == "__main__":
    main()
