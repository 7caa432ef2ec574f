"""Forms that carry an image: multipart with the image sniffed and stored, or JSON when no image is needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from api import errors
from api.body import checked, read_json
from api.services import Services
from api.uploads import Quota, ReceivedFile, is_image, receive_form

M = TypeVar("M", bound=BaseModel)


@asynccontextmanager
async def image_form(
    request: Request, s: Services, user_id: int, file_field: str, *, file_required: bool
) -> AsyncIterator[tuple[Mapping[str, Any], ReceivedFile | None]]:
    """The form's text fields and its image (stored while the block runs, removed if it raises).

    The image must be one by its bytes (422 otherwise) and counts against `user_id`'s upload quota.
    A form that needs no file may also be a JSON object, as an update of text fields alone
    naturally is.
    """
    if not file_required and _is_json(request):
        data = await read_json(request)
        if not isinstance(data, dict):
            raise errors.bad_request("not_an_object")
        yield data, None
        return
    async with receive_form(
        request,
        s.media,
        max_bytes=s.settings.max_upload_bytes,
        quota=Quota(s.db, user_id, s.settings.upload_quota_bytes, s.clock),
        file_field=file_field,
        accept=is_image,
        refusal="invalid_image",
    ) as form:
        yield form.fields, form.file


def form_fields(model: type[M], fields: Mapping[str, Any], *, missing_file: str | None = None) -> M:
    """The fields as `model`; a required file that is missing is reported with the fields' errors."""
    body, problems = checked(model, dict(fields))
    if missing_file is not None:
        problems[missing_file] = [errors.message("file_required")]
    if problems:
        raise errors.invalid(problems)
    assert body is not None
    return body


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
