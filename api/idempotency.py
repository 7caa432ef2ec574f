"""`Idempotency-Key`: the same key from the same user applies a command once and replays its answer.

The first request with a key inserts a row (the database's primary key decides who is first);
requests that find the row wait for its answer and replay it. A request with the same key but a
different method, path or body is refused. Answers of 5xx are not kept, so such a request can be
retried with the same key — unless the command was stored before the failure (typically the wait
for its read models timed out: 503): an endpoint that knows its answer once the command is stored
hands it over with `stored_answer`, and that answer is kept for retries instead, so a retry never
runs the command a second time.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticated_user
from api.body import raw_body
from api.errors import ApiError, from_domain, invalid, message
from api.openapi import IDEMPOTENT
from api.responses import JSON
from api.services import Services, services
from api.text import storable
from ugc.errors import DomainError

MAX_KEY_LENGTH = 255

Endpoint = Callable[[Request], Awaitable[Response]]

# The answer of the command the current idempotent request stored (None outside one).
_stored: ContextVar[list[Response] | None] = ContextVar("idempotent_stored_answer", default=None)


def stored_answer(response: Response) -> None:
    """Tell `idempotent` the answer of a command that is now stored, before waiting for its read
    models: if the request then fails (the wait timed out), a retry with its key replays this."""
    slot = _stored.get()
    if slot is not None:
        slot.append(response)


def idempotent(endpoint: Endpoint) -> Endpoint:
    """Wrap a command endpoint so that an `Idempotency-Key` header makes retries safe."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return await endpoint(request)
        if not key or len(key) > MAX_KEY_LENGTH or not storable(key):
            raise invalid({"Idempotency-Key": [message("idempotency_key_invalid")]})
        s = services(request)
        user_id = authenticated_user(request, s.tokens)
        body = await raw_body(request)
        fingerprint = hashlib.sha256(b"\n".join([request.method.encode(), request.url.path.encode(), body])).hexdigest()
        stored = await s.run(s.idempotency.claim, user_id, key, fingerprint)
        if stored is not None:
            return Response(
                stored.body,
                status_code=stored.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        answers: list[Response] = []  # what `stored_answer` is handed
        context = _stored.set(answers)
        try:
            response = await endpoint(request)
        except (ApiError, DomainError) as error:
            api_error = error if isinstance(error, ApiError) else from_domain(error)
            response = JSON(api_error.body, status_code=api_error.status, headers=api_error.headers)
        except BaseException:
            await _close(s, user_id, key, answers[-1] if answers else None)
            raise
        finally:
            _stored.reset(context)
        # A 5xx after the command was stored keeps the stored command's answer, not the failure.
        await _close(s, user_id, key, response if response.status_code < 500 else answers[-1] if answers else None)
        return response

    setattr(wrapper, IDEMPOTENT, True)  # the document lists the header and its errors (api/openapi.py)
    return wrapper


async def _close(s: Services, user_id: int, key: str, answer: Response | None) -> None:
    """Keep `answer` for the key's retries, or let the key go when there is none (nothing was stored)."""
    if answer is None:
        await s.run(s.idempotency.release, user_id, key)
    else:
        await s.run(s.idempotency.finish, user_id, key, answer.status_code, bytes(answer.body).decode())
