"""`page` / `page_size` in, `{count, next, previous, results}` out, with absolute links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from api.errors import not_found
from readmodels.pages import Page, PageRequest
from ugc.database import Row

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_request(request: Request) -> PageRequest:
    """A page number that is not a positive integer is a page that does not exist (404)."""
    raw_page = request.query_params.get("page", "1")
    if not raw_page.isdigit() or int(raw_page) < 1:
        raise not_found()
    raw_size = request.query_params.get("page_size", "")
    size = int(raw_size) if raw_size.isdigit() and int(raw_size) > 0 else DEFAULT_PAGE_SIZE
    return PageRequest(number=int(raw_page), size=min(size, MAX_PAGE_SIZE))


def paginated(request: Request, wanted: PageRequest, page: Page, render: Callable[[Row], Any]) -> dict[str, Any]:
    """The response body; a page past the end is a 404, except the first page of an empty list."""
    if wanted.number > 1 and wanted.offset >= page.count:
        raise not_found()
    has_next = wanted.offset + len(page.rows) < page.count
    return {
        "count": page.count,
        "next": _link(request, wanted.number + 1) if has_next else None,
        "previous": _link(request, wanted.number - 1) if wanted.number > 1 else None,
        "results": [render(row) for row in page.rows],
    }


def _link(request: Request, number: int) -> str:
    if number == 1:
        return str(request.url.remove_query_params("page"))
    return str(request.url.include_query_params(page=number))
