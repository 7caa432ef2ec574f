"""`Idempotency-Key`: the same key from the same user applies a command once and replays its answer.

The first request with a key inserts a row (the database's primary key decides who is first);
requests that find the row wait for its answer and replay it. A request with the same key but a
different method, path or body is refused; a JSON body is compared as the API reads it, not as
its bytes (api/canonical_json.py). An upload claims its key once its form is received
(`idempotent_upload`, `claim_received`): its body is streamed to the media store, never held.

Before each save the key records what the command is about to append (commands/intents.py, set
up here for the request's context); once the command appended, the key records where
(`Services.settle`) and is never let go: a 503 because the read models lagged is sent at once, but
the request goes on waiting for them in the background and stores its real answer, which the
client's retry replays. Only the answer of a command decided on the state its caller saw is kept (a
2xx, a 409: `decided`); a refusal that decided nothing (a body, a false precondition, a 403 or 404)
lets go of the key as a failure does, so that a retry, corrected or not, runs afresh. A request
that failed lets go of the key, so it can be retried, unless the event store holds what it
announced: then the command was applied (the failure came after the append's commit) and the key
answers 409 `idempotency_key_answer_lost` instead of running it again. A claim whose process died
is settled the same way after `UGC_IDEMPOTENCY_IN_FLIGHT` seconds (api/idempotency_keys.py). What a
claimed key does next (keep the answer, let go) waits for a blocking thread however busy the
process is: a command turned away for want of one (503, ugc/platform/blocking.py) must not leave
its key claimed, answering its retries 409 until the claim expires.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticated_user
from api.body import off_the_loop_if_large, raw_body
from api.canonical_json import canonical
from api.errors import ApiError, from_domain, unavailable
from api.idempotency_header import key_sent, sent_key
from api.idempotency_keys import Pending, Stored, current, holding
from api.openapi import IDEMPOTENT
from api.responses import JSON
from api.services import Services, services
from commands.intents import announcing
from ugc.errors import DomainError

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

_finishing: set[asyncio.Task[Response]] = set()  # requests answered 503 that still run, kept from the GC


def idempotent(endpoint: Endpoint) -> Endpoint:
    """Wrap a command endpoint so that an `Idempotency-Key` header makes retries safe."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        keyed = _keyed(request)
        if keyed is None:
            return await endpoint(request)
        s, pending = keyed
        raw = await raw_body(request)
        content = await off_the_loop_if_large(raw, canonical, raw)
        stored = await s.run(s.idempotency.claim, pending.user_id, pending.key, fingerprint(request, content))
        if stored is not None:
            return _replayed(stored)
        pending.claimed = True
        return await _run(endpoint, request, s, pending)

    setattr(wrapper, IDEMPOTENT, True)  # the document lists the header and its errors (api/openapi.py)
    return wrapper


def idempotent_upload(endpoint: Endpoint) -> Endpoint:
    """`idempotent` for an endpoint that streams its body to the media store (an upload): the body is
    never held to be hashed first, so the block receiving the form claims the key with
    `claim_received` (api/uploads.py `receive_form`, api/image_forms.py), once the form is received,
    before the room it takes and its command. A refusal before that (413 past the upload limit, 415,
    an empty file) keeps nothing for the key, and neither does a 413 past the room left (`decided`)."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        keyed = _keyed(request)
        if keyed is None:
            return await endpoint(request)
        return await _run(endpoint, request, *keyed)

    setattr(wrapper, IDEMPOTENT, True)
    return wrapper


async def claim_received(request: Request, content: bytes) -> None:
    """Where an `idempotent_upload` endpoint receives its form: claim the request's key (if it sent one)
    for `content`, what it received; `Replay` with the first answer when the key has one (the block
    receiving the form then removes the bytes received again)."""
    pending = current()
    if pending is None:
        return
    s = services(request)
    stored = await s.run(s.idempotency.claim, pending.user_id, pending.key, fingerprint(request, content))
    if stored is not None:
        raise Replay(stored)
    pending.claimed = True


class Replay(Exception):
    """The key claimed by `claim_received` has an answer already: the request ends with it."""

    def __init__(self, stored: Stored) -> None:
        super().__init__("replayed")
        self.stored = stored


def fingerprint(request: Request, content: bytes) -> str:
    """What a key is claimed for: a retry must send the same method, path and `content`."""
    return hashlib.sha256(b"\n".join([request.method.encode(), request.url.path.encode(), content])).hexdigest()


def _keyed(request: Request) -> tuple[Services, Pending] | None:
    """The request's services and its key, not yet claimed, for the authenticated user; None without a key.
    The caller comes first: without a token, or with a bad one, the answer is 401 whatever the key."""
    if not key_sent(request):
        return None
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    return s, Pending(user_id, sent_key(request))


async def _run(endpoint: Endpoint, request: Request, s: Services, pending: Pending) -> Response:
    """Run the endpoint holding `pending`; a 503 at once if its read-models wait times out after it appended."""
    context = contextvars.copy_context()
    context.run(holding, pending)  # what `Services.settle` sees while the endpoint runs
    announcing_intent = functools.partial(s.idempotency.intend, pending.user_id, pending.key)
    context.run(announcing, announcing_intent)  # before each save
    running = asyncio.create_task(_answer(endpoint, request, s, pending), context=context)
    gave_up = asyncio.create_task(pending.answered_503.wait())
    await asyncio.wait({running, gave_up}, return_when=asyncio.FIRST_COMPLETED)
    gave_up.cancel()
    if running.done():
        return running.result()
    _finishing.add(running)
    running.add_done_callback(_finishing.discard)
    api_error = unavailable("read_model_lagging")
    return JSON(api_error.body, status_code=api_error.status, headers=api_error.headers)


def _replayed(stored: Stored) -> Response:
    """The stored answer again; one with no body (a 204) has no content type, as the first had none."""
    headers = {"Idempotent-Replayed": "true"} | ({"ETag": stored.etag} if stored.etag else {})
    media_type = "application/json" if stored.body else None
    return Response(stored.body, status_code=stored.status, media_type=media_type, headers=headers)


async def _answer(endpoint: Endpoint, request: Request, s: Services, pending: Pending) -> Response:
    """Run the endpoint and keep its answer for the key (or let go of the key if nothing was appended)."""
    try:
        response = await endpoint(request)
    except Replay as replay:
        return _replayed(replay.stored)
    except (ApiError, DomainError) as error:
        api_error = error if isinstance(error, ApiError) else from_domain(error)
        response = JSON(api_error.body, status_code=api_error.status, headers=api_error.headers)
    except Exception:
        if not pending.claimed:
            raise
        lost = await s.run(s.idempotency.release, pending.user_id, pending.key, patient=True)  # kept if it appended
        if lost is not None and not pending.answered_503.is_set():
            log.warning("a command failed after its append was committed", exc_info=True)
            return _replayed(lost)
        if not pending.answered_503.is_set():
            raise
        log.exception("a command answered 503 failed while finishing in the background")
        api_error = unavailable()
        return JSON(api_error.body, status_code=api_error.status, headers=api_error.headers)
    if not pending.claimed:  # refused before its key was claimed (`claim_received`): nothing to keep
        return response
    if response.status_code >= 500:
        lost = await s.run(s.idempotency.release, pending.user_id, pending.key, patient=True)  # kept if it appended
        return response if lost is None else _replayed(lost)
    answer = Stored(response.status_code, bytes(response.body).decode(), response.headers.get("etag"))
    if decided(response.status_code):
        await s.run(s.idempotency.finish, pending.user_id, pending.key, answer, patient=True)
    else:
        await s.run(s.idempotency.release, pending.user_id, pending.key, answer, patient=True)  # kept if it appended
    return response


def decided(status: int) -> bool:
    """Whether an answer is kept for its key: its command was decided on the aggregate's state, and a
    retry must get the same. A 2xx; a 409, a refusal for the state its caller saw (an order's status,
    an object that exists), which a command run again later could find otherwise (README: a command is
    meant for the status its caller saw). Any other refusal decided nothing a retry must keep to: the
    body (400, 413, 415, 422), who may write (403, 404), a false precondition (412: a stale `If-Match`,
    an `If-None-Match` naming the current version), which a retry corrects, or which a change of state
    (a creator profile made, a token refreshed, another edit) lifts."""
    return 200 <= status < 300 or status == 409
