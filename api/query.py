"""Optional query parameters that filter or shape a GET: empty counts as absent, a wrong value is a 422."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Literal
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from api.auth import Endpoint, bearer_token, caller
from api.errors import invalid, message
from api.text import unstorable_pairs
from readmodels.folding import MAX_SEARCH_WORDS, search_words
from ugc.platform.numbers import natural

_FLAGS = {"true": True, "1": True, "false": False, "0": False}
# A search term of more words than MAX_SEARCH_WORDS (readmodels/folding.py) is a 422.
TOO_MANY_WORDS = f"Убедитесь, что поиск содержит не более {MAX_SEARCH_WORDS} слов."


def storable_query(handler: Endpoint, *, auth: bool | Literal["optional"], names: tuple[str, ...]) -> Endpoint:
    """`handler` behind a 422 for a query string holding text that no backend can store (api/text.py),
    or naming one of the parameters the operation reads (`names`) more than once.

    For the operations that read their query (api/openapi.py wraps those, and documents the 422):
    searches, filters and `as_of` reach SQL and the log. Every pair is checked, read or not, as the
    pairs go into the pages' links too. An operation that reads no query is not wrapped: what it never
    reads reaches nothing, and its document lists no 422 (a check before routing answered one). Of a
    parameter given twice (`?page=1&page=2`) the last value counted, where another framework or a cache
    in front takes the first: which one the client meant is a guess, so the request is refused; one
    the operation does not read (a cache-buster) may repeat. The caller's token is checked first where
    the operation takes one (`auth`), as for any other wrong query value: DESIGN.md's 401 before 422.
    """

    @functools.wraps(handler)
    async def checked(request: Request) -> Response:
        query = request.scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
        if problems := repeated(pairs, names) | unstorable_pairs(pairs):
            if auth is True or (auth == "optional" and bearer_token(request) is not None):
                caller(request)  # 401 without a good token
            raise invalid(problems)
        return await handler(request)

    return checked


def repeated(pairs: list[tuple[str, str]], names: tuple[str, ...]) -> dict[str, list[str]]:
    """Each of `names` that the query string gives more than once."""
    counts = Counter(name for name, _ in pairs)
    return {name: [message("query_parameter_repeated")] for name in names if counts[name] > 1}


def query_id(request: Request, name: str) -> int | None:
    """An id filter (`?name=12`)."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    number = natural(raw)
    if number is None or number < 1:
        raise invalid({name: [message("invalid_id")]})
    return number


def query_words(request: Request, name: str, max_length: int) -> tuple[str, ...]:
    """A search term's words (`?search=...`, readmodels/folding.py), none for a blank one; past
    `max_length` characters (stripped) or MAX_SEARCH_WORDS words a 422, as the services listing's
    (cutting it short would search for something the client did not ask for)."""
    raw = request.query_params.get(name, "").strip()
    if len(raw) > max_length:
        raise invalid({name: [f"Убедитесь, что это значение содержит не более {max_length} символов."]})
    words = search_words(raw)
    if len(words) > MAX_SEARCH_WORDS:
        raise invalid({name: [TOO_MANY_WORDS]})
    return words


def query_flag(request: Request, name: str) -> bool | None:
    """A yes/no parameter (`?name=true`, `false`, or 1 and 0; any case)."""
    raw = request.query_params.get(name, "").strip().lower()
    if not raw:
        return None
    if raw not in _FLAGS:
        raise invalid({name: ["Допустимые значения: true, false."]})
    return _FLAGS[raw]
