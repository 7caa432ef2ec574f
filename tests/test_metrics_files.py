"""The metrics files of ended workers (ugc/platform/metrics_files.py): folded into one per kind with
the totals unchanged, in a directory of files and under a real `ugc serve --workers 2` given SIGHUPs."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.backends import environment, fresh_database
from tests.servers import launch_server
from ugc.platform.metrics_files import retire

APPENDS = mmap_key("ugc_appends_total", "ugc_appends_total", ["context"], ["orders"], "Appends")
BUCKET = mmap_key("ugc_wait_seconds", "ugc_wait_seconds_bucket", ["le"], ["0.1"], "Waits")


def scraped(directory: Path) -> set[bytes]:
    """The lines a scrape of `directory` answers (their order follows the files')."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return set(generate_latest(registry).splitlines())


def record(directory: Path, pid: int, value: float) -> None:
    for kind, key in (("counter", APPENDS), ("histogram", BUCKET)):
        values = MmapedDict(str(directory / f"{kind}_{pid}.db"))  # type: ignore[no-untyped-call]
        values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
        values.close()  # type: ignore[no-untyped-call]


def appends(url: str) -> float:
    """The accounts log's appends, as /metrics adds them up over the workers' files."""
    scrape = httpx.get(f"{url}/metrics", timeout=30).text
    [line] = [line for line in scrape.splitlines() if line.startswith('ugc_appends_total{context="accounts"}')]
    return float(line.split()[-1])


def test_the_files_of_ended_processes_fold_into_one_per_kind_with_the_same_totals(tmp_path: Path) -> None:
    me = os.getpid()
    for pid, value in ((4_000_001, 2.0), (4_000_002, 3.0), (me, 5.0)):
        record(tmp_path, pid, value)
    before = scraped(tmp_path)
    assert b'ugc_appends_total{context="orders"} 10.0' in before and b"ugc_wait_seconds_count 10.0" in before

    assert retire(tmp_path, {me}) == 4
    names = sorted(path.name for path in tmp_path.glob("*.db"))
    assert names == [f"counter_{me}.db", "counter_retired.db", f"histogram_{me}.db", "histogram_retired.db"]
    assert scraped(tmp_path) == before

    record(tmp_path, 4_000_003, 7.0)  # another ended later: added to what was retired
    assert retire(tmp_path, {me}) == 2
    assert b'ugc_appends_total{context="orders"} 17.0' in scraped(tmp_path)
    assert retire(tmp_path, {me}) == 0


def test_a_server_whose_workers_are_replaced_keeps_their_counts_in_a_bounded_directory(tmp_path: Path) -> None:
    """Before, each SIGHUP left the replaced workers' files: 16 after three, and growing."""
    with fresh_database("sqlite", tmp_path, migrated=True) as url:
        server = launch_server(environment("sqlite", url, tmp_path), log_dir=tmp_path / "logs", workers=2)
        with server:
            server.wait_until_healthy()
            name = f"user_{uuid.uuid4().hex[:10]}"
            body = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
            registered = httpx.post(f"{server.url}/api/auth/register/", json=body, timeout=30)
            assert registered.status_code == 201, registered.text
            appended = appends(server.url)
            assert appended >= 1
            for replaced in range(1, 4):
                server.process.send_signal(signal.SIGHUP)
                started_by = time.monotonic() + 60
                while server.log_tail(10**6).count("Application startup complete.") < 2 + 2 * replaced:
                    assert time.monotonic() < started_by, server.log_tail()
                    time.sleep(0.2)
            metrics = tmp_path / "metrics"
            folded_by = time.monotonic() + 10
            while len(list(metrics.glob("*.db"))) > 6:  # two live workers' files and the retired ones
                assert time.monotonic() < folded_by, sorted(path.name for path in metrics.glob("*.db"))
                time.sleep(0.2)
            assert appends(server.url) == appended
