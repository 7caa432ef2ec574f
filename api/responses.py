"""JSON as the contract writes it: UTF-8 text, money and ratings as numbers, times in ISO UTC.

The encoder is the platform's (`ugc/platform/encoding.py`), shared with the WebSocket frames
and the Redis relay; `dumps` is re-exported here for the routes.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ugc.platform.encoding import dumps as dumps


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
