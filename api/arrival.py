"""A command on an order arrives when its request does (commands/status_seen.py).

An order's command is meant for the status its caller saw: of two racing transitions, exactly one
wins. Whether the other was under way when the winner saved is decided by when it arrived, so its
arrival is registered on the event loop before anything else of the request (the caller's check,
the body, the `Idempotency-Key` claim, the wait for a blocking thread, the group commit): each may
queue under load long enough for the winner to be saved meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from api.services import services

Endpoint = Callable[[Request], Awaitable[Response]]


def arriving(handler: Endpoint) -> Endpoint:
    """`handler`, a command on the order of the path's `id`, registered as under way from the start."""

    @functools.wraps(handler)
    async def arrive(request: Request) -> Response:
        with services(request).orders.arriving(request.path_params["id"]):
            return await handler(request)

    return arrive
