"""The key an `Idempotency-Key` header sends, as draft-ietf-httpapi-idempotency-key-header writes it.

The draft makes the header a Structured Field Item whose value is a String (RFC 8941 §3.3.3):
`Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`, the key being what the quotes hold (with
`\\"` and `\\\\` read as `"` and `\\`). Clients written before it send the key bare, and still may:
`"abc"` and `abc` are one key. A value holding a double quote is read as a String, and one that is
not exactly one (a quote left open, text after it, a list, parameters, an escape of anything else,
a character outside printable ASCII) is refused: taken as it stands, it would be a key other than
the one its client meant, and a retry that quoted it properly would run the command again.

Header bytes reach Starlette as latin-1 text, one character a byte. A bare key in UTF-8 (as a
client sends `ключ`) is still that text, the same whichever way it is sent again; its length is
counted in the characters its bytes spell in UTF-8, as the message says, not in bytes (128 Cyrillic
letters are 128 characters, not 256). Two header lines are refused: one of them taken silently
could be the other one's retry's key.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from api.errors import invalid, message
from api.text import storable

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255  # characters

# An sf-string (RFC 8941 §3.3.3): printable ASCII between double quotes, `"` and `\` escaped by `\`.
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPED = re.compile(r"\\([\"\\])")


def key_sent(request: Request) -> bool:
    return HEADER in request.headers


def sent_key(request: Request) -> str:
    """The key of a request that sent the header (`key_sent`): 422 for two lines, a bad String or a bad key."""
    lines = request.headers.getlist(HEADER)
    if len(lines) > 1:
        raise _refused("idempotency_key_repeated")
    key = lines[0]
    if '"' in key:
        quoted = _SF_STRING.fullmatch(key)
        if quoted is None:
            raise _refused("idempotency_key_malformed")
        key = _ESCAPED.sub(r"\1", quoted[1])
    if not key or _length(key) > MAX_KEY_LENGTH or not storable(key):
        raise _refused("idempotency_key_invalid")
    return key


def _length(key: str) -> int:
    """Characters of the key: those its bytes spell in UTF-8, or its bytes when they spell none."""
    raw = key.encode("latin-1")
    try:
        return len(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return len(raw)


def _refused(code: str) -> Exception:
    return invalid({"Idempotency-Key": [message(code)]})
