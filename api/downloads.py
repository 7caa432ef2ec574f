"""Serving stored bytes so that no browser runs them: the sniffed type, `nosniff`, a safe disposition."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import quote

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import FileResponse, JSONResponse, MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from api import errors

_ASCII_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-()+,")


class StoredFile(FileResponse):
    """Starlette's FileResponse, whose `Range` answers keep to RFC 9110 and to the API's error bodies.

    A `Range` it cannot read (`bytes=1-0`, `items=0-1`) is ignored, as RFC 9110 (14.2) lets a server
    do: the whole file, 200, where Starlette answered 400 in plain text. One that starts past the
    file's end is 416 with `Content-Range: bytes */<size>` and a JSON body.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = Headers(scope=scope).get("range")
        if wanted is not None and scope["method"] in ("GET", "HEAD"):
            found = self.stat_result
            if found is None:
                found = await anyio.to_thread.run_sync(os.stat, self.path)
            size = found.st_size
            try:
                self._parse_range_header(wanted, size)
            except MalformedRangeHeader:
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"range"]}
            except RangeNotSatisfiable:
                body = {"error": errors.message("range_not_satisfiable")}
                unreachable = JSONResponse(body, status_code=416, headers={"Content-Range": f"bytes */{size}"})
                await unreachable(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def stored_file_response(
    path: Path, found: os.stat_result, content_type: str, name: str, *, inline: bool = False
) -> FileResponse:
    """Stream the file at `path` (in chunks) as `content_type`, offered for download under `name`.

    `found` is the file as `MediaStore.readable` found it, so the answer's length and validators
    are those of the file the store could read. `inline` lets a browser show it in place (public
    images); the default asks it to save the file.
    """
    disposition = f"{'inline' if inline else 'attachment'}; {filename_parameters(name)}"
    return StoredFile(
        path,
        media_type=content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": disposition},
        stat_result=found,
    )


def filename_parameters(name: str) -> str:
    """`filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded name>` (RFC 6266).

    The fallback keeps only characters that need no quoting, so no quote, backslash or line break
    can end the header early.
    """
    # Accents fold away ("café" -> "cafe"); any other character becomes "_".
    folded = (ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    fallback = "".join(ch if ch in _ASCII_SAFE else "_" for ch in folded).strip(" .") or "file"
    return f"filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
