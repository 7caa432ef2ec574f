"""Typed domain errors.

Each carries a short machine `code`; `api/errors.py` is the one place that maps errors to status
codes and codes to the contract's Russian messages.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotFound(DomainError):
    """The object does not exist or is not visible to the caller."""

    def __init__(self, code: str = "not_found") -> None:
        super().__init__(code)


class NotAllowed(DomainError):
    """The caller may see the object but may not do this."""

    def __init__(self, code: str = "permission_denied") -> None:
        super().__init__(code)


class Conflict(DomainError):
    """The request clashes with what already exists (a taken name, a second profile)."""


class WrongState(DomainError):
    """The aggregate is in a state from which the command is not allowed."""

    def __init__(self, current: str, code: str = "wrong_state") -> None:
        super().__init__(code)
        self.current = current


class InvalidField(DomainError):
    """A field's value breaks a rule only the domain knows (reported as 422)."""

    def __init__(self, field: str, code: str) -> None:
        super().__init__(code)
        self.field = field


class PreconditionFailed(DomainError):
    """A condition the client set on the object's version is false at `current` (reported as 412);
    `current` None: there is no such object yet."""

    def __init__(self, current: int | None, code: str) -> None:
        super().__init__(code)
        self.current = current


class StaleVersion(PreconditionFailed):
    """The client's `If-Match` names a version that is no longer current."""

    def __init__(self, current: int) -> None:
        super().__init__(current, "stale_version")


class InvalidToken(DomainError):
    """A verification token that is unknown, used or expired."""

    def __init__(self, code: str = "invalid_verification_token") -> None:
        super().__init__(code)


class Unavailable(DomainError):
    """The system cannot answer consistently right now (reported as 503)."""

    def __init__(self, code: str = "unavailable") -> None:
        super().__init__(code)
