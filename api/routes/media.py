"""Portfolio images served publicly, like the portfolio itself.

Only keys the portfolio read model lists (covers and images of live items) are served; every
other stored file stays behind its authenticated route, so knowing a key grants nothing more.
"""

from __future__ import annotations

import mimetypes

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.downloads import stored_file_response
from api.openapi import Operation, endpoint
from api.services import services
from readmodels.portfolio import public_media_type
from ugc.platform.media import UnknownKey, is_key

# A key's bytes never change (a replaced image gets a new key), but its image may be withdrawn at
# any moment (deleted, or its creator erased): a cache may keep the bytes, yet must ask again with
# their validators before each use, which costs a live image a 304 and a withdrawn one its 404.
CACHE_CONTROL = "public, no-cache"


async def portfolio_media(request: Request) -> Response:
    s = services(request)
    key: str = request.path_params["key"]
    # A text no key has is no image, and is not to be looked up: PostgreSQL refuses a NUL in a query.
    content_type = await s.run(public_media_type, s.db, key) if is_key(key) else None
    if content_type is None:
        raise errors.not_found()
    try:
        found = await s.run(s.media.readable, key)
    except UnknownKey:
        raise errors.not_found() from None
    name = f"{key}{mimetypes.guess_extension(content_type) or ''}"
    response = stored_file_response(s.media.path(key), found, content_type, name, inline=True)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


routes = [
    endpoint(
        "GET",
        "/media/portfolio/{key:str}/",
        portfolio_media,
        Operation("Изображение портфолио (публичное)", auth=False, media_type="image/*", ranges=True),
    )
]
