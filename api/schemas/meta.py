"""What liveness, readiness and the schema route answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.schemas.out import Out


class HealthOut(Out):
    status: str


class ReadinessOut(Out):
    """`status` "ok", "degraded" (200: a database that refuses writes: read-only, its disk full, its
    write lock held elsewhere; Redis away or parked events; reads stay consistent) or "unavailable"
    (503); `checks` names each check's state (database, redis, projection_lag, projection_runner,
    parked_events)."""

    status: str
    checks: dict[str, str]


class OpenAPIOut(Out):
    """The OpenAPI 3.1 document itself."""

    openapi: str
    info: dict[str, Any]
    tags: list[dict[str, Any]]
    paths: dict[str, Any]
    components: dict[str, Any]
    x_asyncapi: str = Field(alias="x-asyncapi", description="Where the AsyncAPI document of the WebSockets is.")


class AsyncAPIOut(Out):
    """The AsyncAPI 3.0 document of the two WebSocket streams."""

    asyncapi: str
    info: dict[str, Any]
    servers: dict[str, Any]
    channels: dict[str, Any]
    operations: dict[str, Any]
    components: dict[str, Any]
