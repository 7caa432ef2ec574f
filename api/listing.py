"""What a process remembers of the services listing, so that an answer asked for again costs no query.

Every GET that reads the listing table (a page of the list, a service's detail in either shape)
answers a function of its URL and the listing's state (its positions in the logs it follows,
`readmodels.services.ListingState`): an answer remembered under both is never stale, and any event
that changes the listing moves the state. So a request reads the state (one read shared by every
request of a burst, `SharedRead`) and sends the remembered bytes when it has them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from api.responses import JSON
from api.shared_read import SharedRead
from readmodels.services import ListingState, ListingTotals
from ugc.platform.cache import LRU

REMEMBERED_ANSWERS = 512  # rendered answers per process: up to ~20 KiB for a page, ~1 KiB for a detail

# What the answer's links are built from besides UGC_PUBLIC_URL (api/pagination.py): taken from the
# scope as it is, because building the URL cost as much as the rest of a remembered answer.
URLKey = tuple[object, ...]

# An answer as remembered: its rendered JSON and its headers (a service's ETag).
Answer = tuple[bytes, Mapping[str, str]]

# Reads the answer from the listing table: the answer and the state it was read at.
Read = Callable[[], Awaitable[tuple[Answer, ListingState]]]


class ListingMemory:
    def __init__(self, read_state: Callable[[], Awaitable[ListingState]]) -> None:
        self.state = SharedRead(read_state)
        self.totals = ListingTotals()
        self.answers = LRU[tuple[URLKey, ListingState], Answer](REMEMBERED_ANSWERS)
        self._reading: dict[URLKey, SharedRead[tuple[Answer, ListingState]]] = {}

    async def answer(self, request: Request, read: Read) -> Response:
        """The answer remembered for this URL at the listing's current state, or `read` now and remembered.

        Requests for one URL that miss together share one read, by SharedRead's rule: after an edit
        moves the state, a burst of them costs one count and one page, not one each.
        """
        url = _url(request.scope)
        answer = self.answers.get((url, await self.state.get()))
        if answer is None:
            shared = self._reading.get(url)
            if shared is None:
                shared = self._reading[url] = SharedRead(read)
            try:
                answer, state = await shared.get()
            finally:
                if shared.idle and self._reading.get(url) is shared:
                    del self._reading[url]
            body, headers = answer
            # orjson's bytes keep its whole working buffer (4 KiB and more for a 0.5 KiB service):
            # what is remembered is copied to its own size (bench/results/2026-12-02-2130-soak-traced.md).
            answer = bytes(memoryview(body)), headers
            self.answers.put((url, state), answer)
        body, headers = answer
        return Response(body, media_type=JSON.media_type, headers=headers)


def _url(scope: Scope) -> URLKey:
    return scope.get("root_path"), scope["path"], scope["query_string"]
