"""The HTML pages the app serves: Swagger UI, ReDoc, the mail link's confirmation page and the
auditor's page, which fetches an order's history and recomputes its hash chain in the browser.

Everything they load is served from here (Swagger UI from the `swagger-ui-bundle-v2` package,
ReDoc's standalone bundle vendored in api/static/redoc/), so the docs work without a network.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

from api import errors
from api.openapi import Operation, endpoint
from api.services import services

_STATIC = resources.files("api") / "static"

# The only files the asset route serves: a name outside this table is a 404, never a path.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (Path(str(swagger_ui_path / "swagger-ui-bundle.js")), "text/javascript"),
    "swagger-ui.css": (Path(str(swagger_ui_path / "swagger-ui.css")), "text/css"),
    "favicon-32x32.png": (Path(str(swagger_ui_path / "favicon-32x32.png")), "image/png"),
    "redoc.standalone.js": (Path(str(_STATIC / "redoc" / "redoc.standalone.js")), "text/javascript"),
    "audit.css": (Path(str(_STATIC / "audit.css")), "text/css"),
    "audit-verify.js": (Path(str(_STATIC / "audit-verify.js")), "text/javascript"),
    "audit.js": (Path(str(_STATIC / "audit.js")), "text/javascript"),
}

# The assets change only with a new install; a day of caching spares reloading 2.5 MB per visit.
# A page names each by its bytes (`?v=`, `_page`), so an install's new file is a new URL: a browser
# never runs yesterday's audit.js or audit-verify.js under today's page.
ASSET_CACHE_CONTROL = "public, max-age=86400"
_ASSET_REFERENCE = re.compile(r'(?<=")/api/docs/assets/([^"?]+)(?=")')

# The confirmation page carries a token in its URL: it must not leak in a Referer, sit in a cache
# or be framed by another site that would trick the user into pressing its button.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


# The docs pages may load only from this server: a bundle that reaches for a CDN (ReDoc's sidebar
# logo does) is refused by the browser instead of leaking the visit or breaking offline.
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'",
}


# The auditor's page holds a bearer token in its memory and shows what the log says: it runs only
# the scripts served from here (none inline, so an injected one is refused), talks only to this
# server, and is framed, cached and referred by nobody.
AUDIT_HEADERS = PAGE_HEADERS | {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'",
}


# What the pages reach on this server, written from its root: the files they load, the API they call.
_ROOT_REFERENCE = re.compile(r'(?<=")/api/')


@cache
def _page(name: str, base: str) -> str:
    """The page's HTML, each asset it loads named with the first 16 hex digits of its SHA-256, and
    everything it reaches on this server under `base`, the path of UGC_PUBLIC_URL: behind a proxy
    that serves the API under a path of its own, pages that loaded and called `/api/...` from the
    host's root got nothing. Scripts of their own read `base` from the page (`data-base`)."""
    html = (_STATIC / name).read_text(encoding="utf-8")
    html = _ASSET_REFERENCE.sub(lambda found: f"{found.group(0)}?v={_digest(found.group(1))}", html)
    html = _ROOT_REFERENCE.sub(f"{base}/api/", html)
    return html.replace('<html lang="ru">', f'<html lang="ru" data-base="{base}">', 1)


def _served(request: Request, name: str) -> str:
    """`name`'s page for the UGC_PUBLIC_URL this process serves, its path quoted for HTML and scripts."""
    path = urlsplit(services(request).settings.public_url).path
    return _page(name, quote(path, safe="/%-._~!$&'()*+,;=:@"))


@cache
def _digest(asset: str) -> str:
    return hashlib.sha256(ASSETS[asset][0].read_bytes()).hexdigest()[:16]


async def swagger_ui(request: Request) -> Response:
    return HTMLResponse(_served(request, "swagger.html"), headers=DOCS_HEADERS)


async def redoc(request: Request) -> Response:
    return HTMLResponse(_served(request, "redoc.html"), headers=DOCS_HEADERS)


async def asset(request: Request) -> Response:
    known = ASSETS.get(request.path_params["name"])
    if known is None:
        raise errors.not_found()
    path, media_type = known
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": ASSET_CACHE_CONTROL})


async def verify_email_page(request: Request) -> Response:
    return HTMLResponse(_served(request, "verify-email.html"), headers=PAGE_HEADERS)


async def audit_page(request: Request) -> Response:
    return HTMLResponse(_served(request, "audit.html"), headers=AUDIT_HEADERS)


routes = [
    endpoint(
        "GET",
        "/api/docs/",
        swagger_ui,
        Operation("Документация: Swagger UI (работает без сети)", auth=False, media_type="text/html", storage=False),
    ),
    endpoint(
        "GET",
        "/api/redoc/",
        redoc,
        Operation("Документация: ReDoc (работает без сети)", auth=False, media_type="text/html", storage=False),
    ),
    endpoint(
        "GET",
        "/api/docs/assets/{name:str}/",
        asset,
        Operation("Скрипты, стили и значок страниц документации и аудита", auth=False, media_type="*/*", storage=False),
    ),
    endpoint(
        "GET",
        "/verify-email/",
        verify_email_page,
        Operation(
            "Страница из письма: кнопка, которая подтверждает адрес (POST /api/auth/verify-email/)",
            auth=False,
            media_type="text/html",
            storage=False,
        ),
    ),
    endpoint(
        "GET",
        "/audit/",
        audit_page,
        Operation(
            "Страница аудитора: вход, история заказа (GET /api/v1/orders/{id}/history/) и проверка"
            " её цепочки хешей в браузере",
            auth=False,
            media_type="text/html",
            storage=False,
        ),
    ),
]
