"""/metrics: Prometheus text with appends, waits and the projections' positions."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from tests.backends import environment, fresh_database
from tests.conftest import Api, new_client
from ugc.clock import MovableClock
from ugc.config import Settings


def value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix} in /metrics"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_metrics_count_appends_and_waits_and_show_projection_positions(api: Api) -> None:
    api.user()
    after = api.client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert value(text, 'ugc_appends_total{context="accounts"}') >= 1
    assert value(text, "ugc_read_your_writes_wait_seconds_count") >= 1
    assert value(text, 'ugc_projection_position{application="accounts",projection="accounts"}') > 0
    assert 'ugc_projection_lag_events{application="orders",projection="orders"}' in text
    assert "ugc_projection_parked_events" in text and "ugc_projection_lease_held" in text
    assert "ugc_projection_batch_seconds_count" in text


def test_with_a_metrics_token_only_its_bearer_reads_metrics(settings: Settings) -> None:
    with new_client(replace(settings, metrics_token="scrape-secret-0123456789"), MovableClock()) as client:
        assert client.get("/metrics").status_code == 401
        refused = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and refused.json() == {"detail": "Токен недействителен или просрочен."}
        assert refused.headers["www-authenticate"].startswith("Bearer")
        allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"})
        assert allowed.status_code == 200 and "ugc_projection_lease_held" in allowed.text
        assert client.get("/healthz").status_code == 200  # the probes stay open


def test_the_metrics_token_is_taken_under_any_case_of_its_scheme(settings: Settings) -> None:
    """The scheme of `Authorization` is case-insensitive (RFC 9110 §11.1), as every other route here
    takes it: `bearer <token>` was refused 401 by /metrics alone."""
    with new_client(replace(settings, metrics_token="scrape-secret-0123456789"), MovableClock()) as client:
        for scheme in ("bearer", "BEARER"):
            allowed = client.get("/metrics", headers={"Authorization": f"{scheme} scrape-secret-0123456789"})
            assert allowed.status_code == 200 and "ugc_projection_lease_held" in allowed.text
        refused = client.get("/metrics", headers={"Authorization": "bearer wrong"})
        assert refused.status_code == 401 and refused.json() == {"detail": "Токен недействителен или просрочен."}
        other = client.get("/metrics", headers={"Authorization": "Basic c2NyYXBlOnNlY3JldA=="})
        assert other.status_code == 401 and other.json() == {"detail": "Токен недействителен или просрочен."}


def test_a_failing_scheduled_job_is_counted(backend: str, tmp_path: Path) -> None:
    """Audit checkpoints that cannot be written (here: the directory's parent is a file; in Compose
    it was a volume owned by root) failed every round in the log alone: /readyz stays 200, as reads
    are fine, so /metrics is where an operator sees it. A database of its own: the module's other
    runtime would hold the jobs' lease."""
    (tmp_path / "a-file").write_text("")
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path) | {"UGC_AUDIT_DIR": str(tmp_path / "a-file" / "audit")}
        with new_client(Settings.from_env(env), MovableClock()) as client:
            deadline = time.monotonic() + 20
            series = 'ugc_scheduled_job_failures_total{job="PeriodicCheckpoints.run_once"}'
            while series not in client.get("/metrics").text:
                assert time.monotonic() < deadline, "no failed checkpoint counted"
                time.sleep(0.1)
            assert value(client.get("/metrics").text, series) >= 1
