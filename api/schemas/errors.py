"""The error bodies every route shares (DESIGN.md, "Error bodies"), by status code.

api/errors.py writes them; these models describe them in the OpenAPI document and hold the
tests' error answers to their shape. A route that answers some status with a body of its own
(readiness' 503) declares it in its Operation instead.
"""

from __future__ import annotations

from pydantic import Field

from api.schemas.out import Out, omittable


class ErrorOut(Out):
    """400 (the body cannot be read), 413 (too large), 416 (a byte range past the file's end)."""

    error: str


class DetailOut(Out):
    """401, 403, 404, 405, 406, 429, 500, 503: the spec's Russian sentence (DRF's, for a 406)."""

    detail: str


class ConflictOut(Out):
    """409: `status` when the conflict is an order's state (its current status)."""

    error: str
    status: str = omittable("The order's current status, when the conflict is its state.")


class StaleVersionOut(Out):
    """412: a condition on the object's version is false: the request's `If-Match` names a version the
    object no longer has (or it has none yet: an `If-Match` on creating the creator profile), or its
    `If-None-Match` is `*` or names the version it has. `error` says which."""

    error: str
    version: int | None = Field(
        default=None, description="The current version (also in `ETag`); absent when there is no object yet."
    )


class ValidationErrorOut(Out):
    """422: every field refused, with its messages."""

    error: str
    fields: dict[str, list[str]]


ERROR_BODIES: dict[int, type[Out]] = {
    400: ErrorOut,
    401: DetailOut,
    403: DetailOut,
    404: DetailOut,
    405: DetailOut,
    406: DetailOut,
    409: ConflictOut,
    412: StaleVersionOut,
    413: ErrorOut,
    415: ErrorOut,
    416: ErrorOut,
    422: ValidationErrorOut,
    429: DetailOut,
    500: DetailOut,
    503: DetailOut,
}
