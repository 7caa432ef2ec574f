"""Liveness, readiness, the OpenAPI document and its offline documentation page."""

from __future__ import annotations

import logging
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from api.openapi import Operation, endpoint, openapi_document
from api.responses import JSON
from api.schemas.meta import HealthOut, OpenAPIOut, ReadinessOut
from api.services import services

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    s = services(request)
    checks: dict[str, str] = {}
    try:
        await s.run(s.db.ping)
        checks["database"] = "ok"
    except Exception as error:
        log.warning("readiness: database unavailable: %s", error)
        checks["database"] = "unavailable"
    if s.check_redis is not None:
        try:
            await s.run(s.check_redis)
            checks["redis"] = "ok"
        except Exception as error:
            log.warning("readiness: redis unavailable: %s", error)
            checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JSON({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


async def schema(request: Request) -> Response:
    document = openapi_document(request.app.routes, title="UGC Market API", version="1.0.0")
    return JSON(document)


async def docs(request: Request) -> Response:
    page = resources.files("api").joinpath("static/docs.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


routes = [
    endpoint("GET", "/healthz/", healthz, Operation("Процесс жив", response=HealthOut, auth=False)),
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
    endpoint("GET", "/api/schema/", schema, Operation("Документ OpenAPI 3.1", response=OpenAPIOut, auth=False)),
    endpoint(
        "GET", "/api/docs/", docs, Operation("Документация (работает без сети)", auth=False, media_type="text/html")
    ),
]
