"""Whole numbers from text (paths, query strings, form fields, settings, the CLI's arguments), kept
within the BIGINT columns they key."""

from __future__ import annotations

MAX_ID = 2**63 - 1
_MAX_DIGITS = len(str(MAX_ID))


def natural(raw: str, maximum: int = MAX_ID) -> int | None:
    """`raw` as a whole number from 0 to `maximum` if it is ASCII digits alone; None otherwise.

    Never `str.isdigit()` then `int()` on request text: isdigit() accepts "²" and "٣", which int()
    refuses or reads, and int() refuses more than 4,300 digits; both were 500s.
    """
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0")
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(digits or "0")
    return value if value <= maximum else None
