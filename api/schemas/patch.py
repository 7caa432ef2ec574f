"""The base of PATCH bodies: every field may be left out, but none may be sent as null."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator


class PatchIn(BaseModel):
    """Fields default to None meaning "unchanged"; an explicit null is refused (422), never stored."""

    @field_validator("*")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Поле не может быть пустым (null).")
        return value
