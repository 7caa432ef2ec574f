"""What marking all notifications read costs a user with many unread: the command end to end, and the batch behind it.

Against a running `ugc serve` (inline projections) over a database seeded with
bench/seed_notifications.py (one user with N unread notifications): logs in as `--user`, reads
`/metrics`, POSTs `/api/v1/notifications/mark-all-read/` once and reads `/metrics` again. Prints the
command's status, latency (its read-your-writes wait included) and answer, and what the server's
histograms gained meanwhile: the projection batches of the messaging log (the mark's event is one
of its, and nothing else is appended meanwhile) and the command's read-your-writes wait. Then
times the user's notification pages (`--repeat` runs each, `_n=` defeats every cache) after the mark.

`--read-oldest N` first marks the user's N oldest notifications read one by one (found on the
notification socket's `since=0` replay; again is harmless) and times the pages of a user without
marks: many unread above a few read. `--pages-only` times the pages and marks nothing, so that
servers of two versions take turns on one database.

Usage:  .venv/bin/python bench/mark_all_read.py http://127.0.0.1:18150 --user hnb --password ... [--repeat 5]
            [--read-oldest 5] [--pages-only]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import httpx
from websockets.sync.client import connect

PAGES = [
    "/api/v1/notifications/",
    "/api/v1/notifications/?page=500",
    "/api/v1/notifications/?read=false",
    "/api/v1/notifications/?read=true",
]


def histogram(client: httpx.Client, name: str, labels: str = "") -> tuple[float, float]:
    """The (sum, count) of histogram `name` (with `labels`, e.g. `application="messaging"`) in `/metrics`."""
    text = client.get("/metrics").text
    found = []
    for part in ("sum", "count"):
        line = re.search(rf"^{name}_{part}{{?{re.escape(labels)}}}? (\S+)$", text, re.MULTILINE)
        found.append(float(line.group(1)) if line else 0.0)
    return found[0], found[1]


def timed_pages(client: httpx.Client, headers: dict[str, str], repeat: int) -> list[str]:
    lines = []
    for path in PAGES:
        times, count = [], None
        for n in range(repeat):
            began = time.perf_counter()
            answer = client.get(f"{path}{'&' if '?' in path else '?'}_n={n}", headers=headers)
            times.append((time.perf_counter() - began) * 1000)
            count = answer.json().get("count")
        rest = statistics.median(times[1:]) if len(times) > 1 else times[0]
        lines.append(f"{answer.status_code}  first {times[0]:8.1f} ms  then {rest:8.1f} ms  count {count}  {path}")
    return lines


def read_oldest(client: httpx.Client, headers: dict[str, str], token: str, count: int) -> None:
    """Mark the user's `count` oldest notifications read, one by one."""
    socket_url = f"{str(client.base_url).replace('http', 'ws', 1).rstrip('/')}/ws/notifications/?token={token}&since=0"
    with connect(socket_url, max_size=None) as socket:
        oldest = [json.loads(socket.recv())["id"] for _ in range(count)]
    for number in oldest:
        answer = client.post(f"/api/v1/notifications/{number}/mark-as-read/", json={}, headers=headers)
        answer.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--read-oldest", type=int, default=0, help="mark this many oldest read one by one first")
    parser.add_argument("--pages-only", action="store_true", help="time the pages, mark nothing")
    args = parser.parse_args()
    with httpx.Client(base_url=args.base, timeout=60) as client:
        answer = client.post("/api/auth/token/", json={"username": args.user, "password": args.password})
        token = answer.json()["access"]
        headers = {"Authorization": f"Bearer {token}"}
        if args.read_oldest:
            read_oldest(client, headers, token, args.read_oldest)
        if args.read_oldest or args.pages_only:
            print("pages before the mark" if not args.pages_only else "pages")
            for line in timed_pages(client, headers, args.repeat):
                print(line)
        if args.pages_only:
            return
        batches = 'application="messaging"'
        batch_before = histogram(client, "ugc_projection_batch_seconds", batches)
        wait_before = histogram(client, "ugc_read_your_writes_wait_seconds")
        began = time.perf_counter()
        marked = client.post("/api/v1/notifications/mark-all-read/", json={}, headers=headers)
        took = (time.perf_counter() - began) * 1000
        time.sleep(3)  # the batch is observed once it ends, which a 503 did not wait for
        batch_after = histogram(client, "ugc_projection_batch_seconds", batches)
        wait_after = histogram(client, "ugc_read_your_writes_wait_seconds")
        print(f"mark-all-read: {marked.status_code} in {took:.1f} ms: {marked.text}")
        print(
            f"messaging batches meanwhile: {batch_after[1] - batch_before[1]:.0f}, "
            f"{(batch_after[0] - batch_before[0]) * 1000:.1f} ms in all"
        )
        print(
            f"read-your-writes waits meanwhile: {wait_after[1] - wait_before[1]:.0f}, "
            f"{(wait_after[0] - wait_before[0]) * 1000:.1f} ms in all"
        )
        for line in timed_pages(client, headers, args.repeat):
            print(line)


if __name__ == "__main__":
    main()
