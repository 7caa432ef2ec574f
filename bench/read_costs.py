"""What a hostile or careless read costs: deep pages, broad searches, every filter, a `since=0` backlog.

Times each GET list/search request against a running `ugc serve` over a database seeded with
bench/seed_services.py (e.g. 100,000 services) and bench/seed_orders.py (e.g. 100,000 orders, half
of them one heavy buyer's), and the WebSocket replay of a user's whole backlog of notifications.
Each request runs `--repeat` times, each time with a distinct dummy parameter (`_n=`), so the
services listing's remembered answers (api/listing.py) never serve it; the first run also counts
a total not counted before (its search term is new), the later ones reuse it. Prints one line per
request: status, first, median of the rest, and the largest `count`.

With `--order ID` (an order with many events, e.g. thousands of revision rounds) the auditor also
reads its history and its state `as_of` a version and a time.

With `--notifications-only` only the user's notification pages and the replay run (a database
seeded by bench/seed_notifications.py: one user with 100,000 notifications and nothing else). With
`--server-pid PID` the replay also samples that server process's resident memory every 10 ms and
prints its peak above what it held before the socket opened, and the CPU the server spent.

Usage:  .venv/bin/python bench/read_costs.py http://127.0.0.1:18150 --user hbuyer1 --auditor hauditor
            --password ... [--order ID] [--repeat 5] [--no-socket] [--notifications-only]
            [--server-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import websockets

TERMS = ["о", "ео", "видео", "%", "_", "съёмка обзор"]


def services_cases() -> list[str]:
    cases = ["", "page=500", "page=100&page_size=100", "ordering=-rating&page=500", "ordering=price&page=500"]
    for term in TERMS:
        cases += [f"search={quote(term)}", f"search={quote(term)}&page=500"]
    cases += [
        "min_price=0&max_price=99999999&page=500",
        f"search={quote('о')}&min_price=0&max_price=99999999&ordering=-rating&page=100&page_size=100",
        f"search={quote('о')}&category=3&creator=7&min_price=0&max_price=99999999",
    ]
    return [f"/api/v1/services/?{query}" for query in cases]


def order_cases(auditor: bool) -> list[str]:
    cases = ["", "page=500", "status=completed&page=500", "role=buyer&page=100&page_size=100"]
    if auditor:
        cases += ["page=100&page_size=100", "created_after=2000-01-01", "created_after=2000-01-01&page=500"]
    return [f"/api/v1/orders/?{query}" for query in cases]


def history_cases(order: int) -> list[str]:
    return [
        f"/api/v1/orders/{order}/",
        f"/api/v1/orders/{order}/history/",
        f"/api/v1/orders/{order}/history/?page=50&page_size=100",
        f"/api/v1/orders/{order}/?as_of=1",
        f"/api/v1/orders/{order}/?as_of=2000-01-01T00:00:00Z",
        f"/api/v1/orders/{order}/deliveries/?page=25&page_size=100",
    ]


NOTIFICATION_CASES = [
    "/api/v1/notifications/",
    "/api/v1/notifications/?page=500",
    "/api/v1/notifications/?read=false",
    "/api/v1/notifications/?read=true",
]


def token(client: httpx.Client, username: str, password: str) -> str:
    answer = client.post("/api/auth/token/", json={"username": username, "password": password})
    answer.raise_for_status()
    return str(answer.json()["access"])


def timed(client: httpx.Client, path: str, headers: dict[str, str], repeat: int) -> str:
    seconds, count, status = [], None, 0
    for n in range(repeat):
        url = f"{path}{'&' if '?' in path else '?'}_n={time.monotonic_ns()}{n}"
        began = time.perf_counter()
        answer = client.get(url, headers=headers)
        seconds.append(time.perf_counter() - began)
        status = answer.status_code
        if status == 200:
            count = answer.json().get("count")
    rest = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    return f"{status}  first {seconds[0] * 1000:7.1f} ms  then {rest * 1000:7.1f} ms  count {count}  {path}"


def resident_kib(pid: int) -> int:
    """The process's resident memory now (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # clock ticks: 100 a second on Linux


async def sample_peak(pid: int, peak: list[int]) -> None:
    """Keep the largest resident memory of `pid` seen in `peak[0]` until cancelled."""
    while True:
        peak[0] = max(peak[0], resident_kib(pid))
        await asyncio.sleep(0.01)


async def replay(base: str, access: str, server_pid: int | None) -> str:
    """Connect with `since=0` and read until the backlog is drained (no frame for a second)."""
    url = base.replace("http", "ws", 1) + f"/ws/notifications/?token={access}&since=0"
    frames, ids = 0, set()
    before = resident_kib(server_pid) if server_pid else 0
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    peak = [before]
    sampler = asyncio.create_task(sample_peak(server_pid, peak)) if server_pid else None
    began = time.perf_counter()
    async with websockets.connect(url, max_size=None) as socket:
        try:
            while True:
                ids.add(json.loads(await asyncio.wait_for(socket.recv(), timeout=1.0))["id"])
                frames += 1
        except TimeoutError:
            pass
    seconds = time.perf_counter() - began - 1.0
    line = f"ws since=0: {frames} notifications ({frames - len(ids)} repeated) replayed in {seconds:.2f} s"
    if sampler is not None and server_pid is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        cpu = cpu_seconds(server_pid) - cpu_before
        line += (
            f"; server RSS {before / 1024:.1f} MiB before, peak {peak[0] / 1024:.1f} MiB "
            f"(+{(peak[0] - before) / 1024:.1f} MiB), server CPU {cpu:.2f} s"
        )
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("--user", required=True)
    parser.add_argument("--auditor")
    parser.add_argument("--password", required=True)
    parser.add_argument("--order", type=int)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-socket", action="store_true")
    parser.add_argument("--notifications-only", action="store_true")
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    with httpx.Client(base_url=args.base, timeout=120) as client:
        user = {"Authorization": f"Bearer {token(client, args.user, args.password)}"}
        for path in [] if args.notifications_only else services_cases():
            print(timed(client, path, {}, args.repeat))
        for path in ([] if args.notifications_only else order_cases(auditor=False)) + NOTIFICATION_CASES:
            print(timed(client, path, user, args.repeat), f"({args.user})")
        if args.auditor:
            auditor = {"Authorization": f"Bearer {token(client, args.auditor, args.password)}"}
            for path in order_cases(auditor=True) + (history_cases(args.order) if args.order else []):
                print(timed(client, path, auditor, args.repeat), f"({args.auditor})")
        if not args.no_socket:
            print(asyncio.run(replay(args.base, user["Authorization"].removeprefix("Bearer "), args.server_pid)))


if __name__ == "__main__":
    main()
