"""Serving stored bytes so that no browser runs them: the sniffed type, `nosniff`, a safe disposition."""

from __future__ import annotations

import calendar
import os
import unicodedata
from collections.abc import Mapping
from email.utils import parsedate
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import FileResponse, JSONResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Receive, Scope, Send

from api import errors
from api.conditions import none_match

_ASCII_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-()+,")


class StoredFile(FileResponse):
    """Starlette's FileResponse, whose conditional and `Range` answers keep to RFC 9110 and to the
    API's error bodies.

    A cached copy asked for again with its validators (`If-None-Match`, else `If-Modified-Since`) is
    304 without the bytes: Starlette's FileResponse sends validators but never reads them back, so a
    browser revalidating a public image (which it must before each use) fetched all of it again. A `Range` under an
    `If-Range` that does not match is ignored (the whole file, 200). A `Range` it cannot read
    (`bytes=1-0`, `items=0-1`, two `Range` or `If-Range` lines) is ignored too, as RFC 9110 (14.2)
    lets a server do, where Starlette
    answered 400 in plain text. One whose every range starts past the file's end is 416 with
    `Content-Range: bytes */<size>` and a JSON body; of a set, the satisfiable ranges are served.
    """

    @classmethod
    def _parse_ranges(cls, range_: str, file_size: int) -> list[tuple[int, int]]:
        """The satisfiable ranges of the set (RFC 9110 14.1.2), where Starlette answered 416 for the whole
        set when any one was not (`bytes=0-0,-0`); all of them when none is: Starlette's 416 then."""
        ranges = super()._parse_ranges(range_, file_size)
        return [(start, end) for start, end in ranges if 0 <= start < file_size] or ranges

    def __init__(self, path: Path, found: os.stat_result, *, media_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(path, media_type=media_type, headers=headers, stat_result=found)
        self.found = found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = Headers(scope=scope)
        if scope["method"] in ("GET", "HEAD") and self._not_modified(asked):
            kept = {
                name: self.headers[name] for name in ("etag", "last-modified", "cache-control") if name in self.headers
            }
            await Response(status_code=304, headers=kept)(scope, receive, send)
            return
        wanted, if_range = asked.getlist("range"), asked.getlist("if-range")
        if wanted and scope["method"] in ("GET", "HEAD"):
            if len(wanted) > 1 or len(if_range) > 1:
                # Neither field is a list (RFC 9110 §5.3): of two lines, which one a cache in front
                # acted on is unknown, so none is; the whole file is right whatever was meant.
                scope = _without_range(scope)
            elif not if_range or self._should_use_range(if_range[0]):
                try:
                    self._parse_range_header(wanted[0], self.found.st_size)
                except MalformedRangeHeader:
                    scope = _without_range(scope)
                except RangeNotSatisfiable:
                    body = {"error": errors.message("range_not_satisfiable")}
                    headers = {"Content-Range": f"bytes */{self.found.st_size}"}
                    await JSONResponse(body, status_code=416, headers=headers)(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    def _not_modified(self, asked: Headers) -> bool:
        """RFC 9110 13.1.2 and 13.1.3: `If-None-Match` (weak comparison) decides when present, else
        `If-Modified-Since`; a date that cannot be read is ignored, and so is one whose year no
        calendar here holds (past 9999: no HTTP-date, and converting it raised a 500)."""
        lines = asked.getlist("if-none-match")
        if lines:
            return none_match(lines, self.headers["etag"])
        since = parsedate(asked.get("if-modified-since") or "")
        if since is None:
            return False
        try:
            seconds = calendar.timegm(since)
        except (ValueError, OverflowError):
            return False
        return int(self.found.st_mtime) <= seconds


def _without_range(scope: Scope) -> Scope:
    """The request as if it had asked for no range: Starlette then sends the whole file."""
    return {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"range"]}


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
        found,
        media_type=content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": disposition},
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
