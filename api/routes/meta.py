"""Liveness, readiness and the OpenAPI document (its pages are in api/routes/pages.py)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from api.asyncapi import asyncapi_document
from api.openapi import Operation, endpoint, openapi_document
from api.responses import JSON
from api.schemas.meta import AsyncAPIOut, HealthOut, OpenAPIOut, ReadinessOut
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


async def asyncapi(request: Request) -> Response:
    return JSON(
        asyncapi_document(
            request.app.routes, title="UGC Market API", version="1.0.0", host=request.url.netloc or "127.0.0.1:8000"
        )
    )


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
        "GET", "/api/schema/", schema, Operation("Документ OpenAPI 3.1", response=OpenAPIOut, auth=False, storage=False)
    ),
    endpoint(
        "GET",
        "/api/asyncapi/",
        asyncapi,
        Operation("Документ AsyncAPI 3.0 потоков WebSocket", response=AsyncAPIOut, auth=False, storage=False),
    ),
]
