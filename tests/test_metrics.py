"""/metrics: Prometheus text with appends, waits and the projections' positions."""

from __future__ import annotations

from dataclasses import replace

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
