"""The connection budget (PostgreSQL, real processes): `ugc serve --workers 4` and two `ugc project`
fit in 100 connections with room to spare, and a projector started before its database exists
waits for it instead of dying."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.backends import POSTGRES_URL, environment, fresh_database, postgres_available
from tests.servers import free_port
from ugc.config import pool_sizes
from ugc.platform.probe_connection import APPLICATION_NAME

pytestmark = pytest.mark.skipif(not postgres_available(), reason="UGC_TEST_DATABASE_URL is not set to PostgreSQL")

# Of PostgreSQL's default max_connections = 100; measured 55-56, as with a LISTEN connection for
# erasures and another for waits in each worker (56-57): the waits' was up only while they waited,
# and rarely in every worker at once. 52 before the erasures' LISTEN.
BUDGET = 80
WORKERS, PROJECTORS = 4, 2


def connections(url: str, query: str | None = None, application: str | None = None) -> int:
    """The sessions on `url`'s database (whose last statement is LIKE `query`, of `application`, if given)."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND (%s::text IS NULL OR query LIKE %s) "
            "AND (%s::text IS NULL OR application_name = %s)",
            (name, query, query, application, application),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_documented_most_fits_in_the_default_max_connections() -> None:
    """README "Connection budget": a worker D + A + 4·S + O + 3 (its LISTEN, its probe connection, its
    lease keeper's), a projector D + 4·S + O + 2."""
    sizes = pool_sizes({})
    assert (sizes.per_worker, sizes.per_projector) == (4 + 4 + 4 * 1 + 2 + 3, 4 + 4 * 1 + 2 + 2) == (17, 12)
    assert WORKERS * sizes.per_worker + PROJECTORS * sizes.per_projector == 92 <= 100 - 3  # 3 for superusers


def test_four_workers_and_two_projectors_stay_within_the_budget(tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:
        env = os.environ | environment("postgres", url, tmp_path) | {"UGC_PROJECTIONS": "external"}
        env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        port = free_port()
        logs = [(tmp_path / f"{name}.log").open("wb") for name in ("serve", "project1", "project2")]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "ugc.cli", "serve", "--port", str(port), "--workers", str(WORKERS)],
                env=env,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            ),
            *(
                subprocess.Popen(
                    [sys.executable, "-m", "ugc.cli", "project"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
                for log in logs[1:]
            ),
        ]
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            with httpx.Client(base_url=base, timeout=10) as client:
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                    time.sleep(0.2)
                peak = 0
                for n in range(40):  # spread over the workers: registrations, lists, readiness, metrics
                    answer = client.post(
                        "/api/auth/register/",
                        json={"username": f"budget{n}", "email": f"budget{n}@example.com", "password": "long-enough"},
                    )
                    assert answer.status_code == 201, answer.text
                    assert client.get("/api/v1/services/").status_code == 200
                    assert client.get("/readyz").status_code == 200
                    assert client.get("/metrics").status_code == 200
                    peak = max(peak, connections(url))
            print(f"peak connections: {peak}")
            assert peak <= BUDGET, f"{peak} connections"
            # One LISTEN connection per process, whatever it listens for: each worker's (erasures,
            # read-your-writes waits), and each projector's while it holds leases.
            assert WORKERS <= connections(url, "%LISTEN %") <= WORKERS + PROJECTORS
            # One probe connection per worker that answered /readyz or /metrics, and none elsewhere.
            assert 1 <= connections(url, application=APPLICATION_NAME) <= WORKERS
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)
            for log in logs:
                log.close()


def test_a_projector_waits_for_its_database_to_exist(tmp_path: Path) -> None:
    name = f"ugc_test_late_{os.getpid()}_{int(time.time())}"
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    env = os.environ | environment("postgres", url, tmp_path) | {"UGC_PROJECTIONS": "external"}
    log = (tmp_path / "project.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ugc.cli", "project"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # Waits for the first failed attempt, however long the process takes to start (a loaded machine).
        deadline = time.monotonic() + 30
        while "the database of UGC_DATABASE_URL is not reachable" not in (tmp_path / "project.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "project.log").read_text()
            time.sleep(0.1)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(url) as conn:
                    row = conn.execute("SELECT COUNT(*) FROM projection_tracking").fetchone()
                    if row is not None and row[0] > 0:
                        break
            except psycopg.Error:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "project.log").read_text()
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
