"""`page` / `page_size` in, `{count, next, previous, results}` out, with absolute links (UGC_PUBLIC_URL's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from api.errors import invalid, message, not_found
from api.services import services
from readmodels.pages import Page, PageRequest
from ugc.platform.dialect import Row
from ugc.platform.numbers import MAX_ID, natural

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# How deep a list may be paged: a page must start within its first MAX_DEPTH rows. An OFFSET is
# read and thrown away row by row, so a page's cost grows with its depth: on 100,000 services the
# page at offset 99,900 took 130-210 ms of PostgreSQL time (10,000: 13 ms), and ten times the rows
# would take ten times that. Search engines cap the same way (Elasticsearch's max_result_window);
# further rows are reached by narrowing the filters, not by paging.
MAX_DEPTH = 10_000


def page_request(request: Request, *, max_depth: int | None = MAX_DEPTH) -> PageRequest:
    """A page number that is not a positive integer is a page that does not exist (404).

    So is a page whose end (`page × page_size`) lies past what a BIGINT OFFSET can hold: no list is
    that long, and the database would refuse the OFFSET. A page that starts past `max_depth` rows
    is refused before anything is read (422 on `page`), whether or not the list is that long. A
    `page_size` that is not a positive integer means the default; one past the maximum means the
    maximum. An empty `page` (a form's empty field) is the first, as any empty query parameter counts
    as absent.
    """
    number = natural(request.query_params.get("page", "").strip() or "1")
    raw_size = request.query_params.get("page_size", "")
    size = natural(raw_size)
    if size is None and raw_size.isascii() and raw_size.isdigit():
        size = MAX_PAGE_SIZE  # more digits than any BIGINT
    size = min(size, MAX_PAGE_SIZE) if size else DEFAULT_PAGE_SIZE
    if number is None or not 1 <= number <= MAX_ID // size:
        raise not_found()
    wanted = PageRequest(number=number, size=size, max_depth=max_depth)
    if not wanted.reachable:
        raise invalid({"page": [message("page_too_deep").format(depth=max_depth)]})
    return wanted


def paginated(request: Request, wanted: PageRequest, page: Page, render: Callable[[Row], Any]) -> dict[str, Any]:
    """The response body; a page past the end is a 404, except the first page of an empty list."""
    if wanted.number > 1 and wanted.offset >= page.count:
        raise not_found()
    has_next = wanted.offset + len(page.rows) < page.count and wanted.next.reachable
    link = _linker(request) if has_next or wanted.number > 1 else None
    return {
        "count": page.count,
        "next": link(wanted.number + 1) if link and has_next else None,
        "previous": link(wanted.number - 1) if link and wanted.number > 1 else None,
        "results": [render(row) for row in page.rows],
    }


def _linker(request: Request) -> Callable[[int], str]:
    """Page number -> this URL under UGC_PUBLIC_URL, with `page` moved last (or dropped for the first page).

    The base is the public URL, as of file URLs and mail links, not the request's `Host`: behind a
    proxy that header names an inner host, and a client's own `Host` (`evil.example`) would put its
    host into links that a cache in front may hand to everyone. The query is what Starlette's
    `include_query_params`/`remove_query_params` give, parsed once per response instead of once per
    link (a tenth of a list request's CPU).
    """
    kept = urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "page"])
    path: str = request.scope["path"]
    base = services(request).settings.public_url + path.removeprefix(request.scope.get("root_path", ""))

    def link(number: int) -> str:
        query = kept if number == 1 else "&".join(filter(None, (kept, f"page={number}")))
        return f"{base}?{query}" if query else base

    return link
