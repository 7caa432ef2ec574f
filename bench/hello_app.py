"""The framework ceiling: a Starlette app whose one route answers a constant JSON object.

Served by ceilings.py as `uvicorn --loop uvloop --http httptools --workers 1 hello_app:app`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello, methods=["GET"])])
