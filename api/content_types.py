"""The content type of an upload, decided from its bytes; what the client declared is never trusted.

A file whose first bytes carry a known signature (`filetype`) has that type; a file without one
that is valid UTF-8 throughout (and has no NUL) is `text/plain`; anything else is
`application/octet-stream`, which browsers will not render.
"""

from __future__ import annotations

import codecs

import filetype

TEXT = "text/plain"
BINARY = "application/octet-stream"
# filetype looks at no more than the first 8 KiB.
SIGNATURE_BYTES = 8192


class Sniffer:
    """Fed the bytes of one file in order, then asked to `finish`."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._may_be_text = True

    def feed(self, data: bytes) -> None:
        if len(self._head) < SIGNATURE_BYTES:
            self._head += data[: SIGNATURE_BYTES - len(self._head)]
        if self._may_be_text:
            self._may_be_text = _still_text(self._text, data, final=False)

    def finish(self) -> str:
        """The content type of all the bytes fed; feed nothing after this."""
        kind = filetype.guess(bytes(self._head)) if self._head else None
        if kind is not None:
            return str(kind.mime)
        if self._may_be_text and _still_text(self._text, b"", final=True):
            return TEXT
        return BINARY


def _still_text(decoder: codecs.IncrementalDecoder, data: bytes, *, final: bool) -> bool:
    if b"\x00" in data:
        return False
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        return False
    return True
