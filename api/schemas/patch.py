"""The base of PATCH bodies: every field may be left out, but none may be sent as null."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


class PatchIn(BaseModel):
    """Fields default to None meaning "unchanged"; an explicit null is refused (422), never stored."""

    @field_validator("*")
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("Поле не может быть пустым (null).")
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The document shows each field as optional, never as nullable: a null is refused."""
        schema = handler(core_schema)
        for field in handler.resolve_ref_schema(schema).get("properties", {}).values():
            options = field.pop("anyOf", None)
            if options is not None:
                kept = [option for option in options if option != {"type": "null"}]
                if len(kept) == 1:
                    field.update(kept[0])
                else:
                    field["anyOf"] = kept
            if "default" in field and field["default"] is None:
                del field["default"]
        return schema
