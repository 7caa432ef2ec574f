"""Liveness, readiness and the OpenAPI document (its pages are in api/routes/pages.py)."""

from __future__ import annotations

import hmac
import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from api.asyncapi import asyncapi_document
from api.auth import bearer_token
from api.errors import unauthorized
from api.metrics import projection_metrics
from api.openapi import Operation, endpoint, openapi_document
from api.readiness import Report
from api.responses import JSON
from api.schemas.meta import AsyncAPIOut, HealthOut, OpenAPIOut, ReadinessOut
from api.services import Services, services
from readmodels.tracking import ProjectionState
from ugc.platform import metrics

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


# A read model whose lease nobody holds is tolerated this long: a standby takes a dead or frozen
# holder's over within TTL + TICK (3.5 s, projections/leasing.py), a rebalance within a tick.
NO_HOLDER_FOR = 10.0


async def readyz(request: Request) -> Response:
    """503 when this process cannot serve consistent reads (the database is away, the projections lag
    more than UGC_READY_MAX_LAG seconds, or a read model's lease has had no live holder for
    NO_HOLDER_FOR seconds), naming why; a database that refuses writes, Redis away or parked events are
    reported ("degraded") without failing it. Within READY_DEADLINE, whatever the database does
    (api/readiness.py): a check that has not answered by then fails it."""
    s = services(request)
    report = await s.readiness.report(lambda report: _run_checks(s, report))
    degraded = any(value != "ok" for value in report.checks.values())
    status = "unavailable" if report.failing else "degraded" if degraded else "ok"
    return JSON({"status": status, "checks": report.checks}, status_code=503 if report.failing else 200)


async def _run_checks(s: Services, report: Report) -> None:
    checks, failing = report.checks, report.failing
    report.begin("database")
    try:
        # Refusing writes (a standby, SQLite's lock held by another process): reads stay consistent,
        # writes answer 503 (ugc/platform/outages.py).
        refused = await s.check(s.db.ping)
        checks["database"] = refused or "ok"
    except Exception as error:
        log.warning("readiness: database unavailable: %s", error)
        checks["database"] = "unavailable"
        failing.append("database")
    if s.check_redis is not None:
        report.begin("redis")
        try:
            await s.check(s.check_redis)
            checks["redis"] = "ok"
        except Exception as error:
            log.warning("readiness: redis unavailable: %s", error)
            checks["redis"] = "unavailable"  # pushes may be missed; reads stay consistent
    if s.projection_states is not None and not failing:
        report.begin("projections")
        try:
            states = await s.check(s.projection_states)
        except Exception as error:
            log.warning("readiness: projection positions unreadable: %s", error)
            checks["projections"] = "unavailable"
            failing.append("projections")
        else:
            failing += _judge_projections(s, states, checks)
    report.underway = None


def _judge_projections(s: Services, states: list[ProjectionState], checks: dict[str, str]) -> list[str]:
    failing = []
    read_models = [state for state in states if state.read_model]
    lagging = sorted(
        {f"{st.projection} {st.lag_seconds:.0f}s" for st in read_models if st.lag_seconds > s.settings.ready_max_lag}
    )
    checks["projection_lag"] = "ok" if not lagging else "lagging: " + ", ".join(lagging)
    if lagging:
        failing.append("projection_lag")
    # Per read model (not per log): its lease is one, whichever logs it follows.
    unheld = {st.projection: st.unheld_for for st in read_models if st.unheld_for is not None}
    missing = sorted(name for name, since in unheld.items() if since > NO_HOLDER_FOR)
    checks["projection_runner"] = (
        "ok" if not missing else "no lease holder: " + ", ".join(f"{name} ({_for(unheld[name])})" for name in missing)
    )
    if missing:
        failing.append("projection_runner")
    parked = {state.projection: state.parked for state in states if state.parked}
    checks["parked_events"] = "ok" if not parked else ", ".join(f"{name}: {n}" for name, n in sorted(parked.items()))
    return failing


def _for(seconds: float) -> str:
    return "never held" if seconds == float("inf") else f"none for {seconds:.0f}s"


async def metrics_page(request: Request) -> Response:
    """Prometheus text: this process's (or, with --workers N, every worker's) counters and
    histograms, and each projection's position, lag, parked events and lease holder, read now on the
    checks' own thread and connection, as /readyz's (a scrape neither waits behind requests nor takes
    a connection of theirs); with `UGC_METRICS_TOKEN` set, to its bearer alone (they name hosts and
    processes)."""
    s = services(request)
    expected = s.settings.metrics_token
    if expected:
        # The header is read as every route reads it: the scheme in any case (RFC 9110 §11.1).
        token = bearer_token(request)
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise unauthorized("invalid_token" if "authorization" in request.headers else "not_authenticated")
    body = metrics.render()
    if s.projection_states is not None:
        try:
            body += projection_metrics(await s.check(s.projection_states))
        except Exception as error:
            log.warning("metrics: projection positions unreadable: %s", error)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def schema(request: Request) -> Response:
    document = openapi_document(request.app.routes, title="UGC Market API", version="1.0.0")
    return JSON(document)


async def asyncapi(request: Request) -> Response:
    public_url = services(request).settings.public_url
    return JSON(asyncapi_document(request.app.routes, title="UGC Market API", version="1.0.0", public_url=public_url))


routes = [
    endpoint("GET", "/healthz/", healthz, Operation("Процесс жив", response=HealthOut, auth=False, storage=False)),
    endpoint(
        "GET",
        "/readyz/",
        readyz,
        Operation(
            "Процесс готов отвечать согласованно (503 — что недоступно)",
            response=ReadinessOut,
            auth=False,
            also=((503, ReadinessOut),),
        ),
    ),
    endpoint(
        "GET",
        "/metrics/",
        metrics_page,
        Operation(
            "Метрики Prometheus (если задан UGC_METRICS_TOKEN — только с ним как Bearer-токеном)",
            auth=False,
            media_type="text/plain",
            operator_token=True,
        ),
    ),
    endpoint(
        "GET", "/api/schema/", schema, Operation("Документ OpenAPI 3.1", response=OpenAPIOut, auth=False, storage=False)
    ),
    endpoint(
        "GET",
        "/api/asyncapi/",
        asyncapi,
        Operation("Документ AsyncAPI 3.0 потоков WebSocket", response=AsyncAPIOut, auth=False, storage=False),
    ),
]
