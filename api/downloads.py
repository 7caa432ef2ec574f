"""Serving stored bytes so that no browser runs them: the sniffed type, `nosniff`, a safe disposition."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from urllib.parse import quote

from starlette.responses import FileResponse

_ASCII_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-()+,")


def stored_file_response(path: Path, content_type: str, name: str, *, inline: bool = False) -> FileResponse:
    """Stream the file at `path` (in chunks) as `content_type`, offered for download under `name`.

    `inline` lets a browser show it in place (public images); the default asks it to save the file.
    """
    disposition = f"{'inline' if inline else 'attachment'}; {filename_parameters(name)}"
    return FileResponse(
        path,
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
