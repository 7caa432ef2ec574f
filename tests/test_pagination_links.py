"""Pagination links are UGC_PUBLIC_URL with the request's path and query, `page` moved last as
Starlette's URL helpers move it; the request's `Host` never shows in them."""

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from api.pagination import paginated
from readmodels.pages import Page, PageRequest

SETTINGS = SimpleNamespace(public_url="https://api.example.org")
URLS = [
    "/api/v1/services/",
    "/api/v1/services/?page=2",
    "/api/v1/services/?page=2&search=%D0%B2%D0%B8%D0%B4%D0%B5%D0%BE+2&min_price=10",
    "/api/v1/orders/?status=pending&page=3&role=buyer&page_size=5",
    "/api/v1/orders/?tag=a&tag=b&page=2",
]


def request(url: str) -> Request:
    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": path,
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"evil.example:8000")],
        # What api.services.services(request) reads: the app's settings.
        "app": SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(settings=SETTINGS))),
    }
    return Request(scope)


def public(url: object) -> str:
    """Starlette's URL for the request, moved to the public URL."""
    return str(url).replace("http://evil.example:8000", SETTINGS.public_url)


@pytest.mark.parametrize("url", URLS)
def test_links_match_starlettes_url_helpers(url: str) -> None:
    req = request(url)
    number = int(req.query_params.get("page", "1"))
    body = paginated(req, PageRequest(number, 1), Page(rows=[{}], count=100), lambda row: row)
    assert body["next"] == public(req.url.include_query_params(page=number + 1))
    expected_previous = None
    if number == 2:
        expected_previous = public(req.url.remove_query_params("page"))
    elif number > 2:
        expected_previous = public(req.url.include_query_params(page=number - 1))
    assert body["previous"] == expected_previous


def test_the_last_page_within_the_depth_cap_links_no_further() -> None:
    """A list longer than the cap offers `next` up to the last page that starts within it, and no further."""
    req = request("/api/v1/services/?page_size=20&page=500")
    rows = Page(rows=[{}] * 20, count=100_000)
    assert paginated(req, PageRequest(499, 20, max_depth=10_000), rows, lambda row: row)["next"] is not None
    assert paginated(req, PageRequest(500, 20, max_depth=10_000), rows, lambda row: row)["next"] is None
    assert paginated(req, PageRequest(500, 20), rows, lambda row: row)["next"] is not None
