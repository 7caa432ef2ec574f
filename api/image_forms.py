"""Forms that carry an image: multipart with the image sniffed and stored, or JSON when no image is needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, NamedTuple, TypeVar, get_args, get_origin

from pydantic import BaseModel
from starlette.requests import Request

from api import errors
from api.body import checked, declares_json, read_json
from api.idempotency import claim_received
from api.services import Services
from api.uploads import MULTIPART, Quota, ReceivedFile, declares_multipart, is_image, receive_form, received_content

M = TypeVar("M", bound=BaseModel)


class Received(NamedTuple):
    """A request's fields and image; `multipart` when the fields are a form's text, not JSON values."""

    fields: Mapping[str, Any]
    file: ReceivedFile | None
    multipart: bool


@asynccontextmanager
async def image_form(
    request: Request, s: Services, user_id: int, file_field: str, *, file_required: bool
) -> AsyncIterator[Received]:
    """The form's text fields and its image (stored while the block runs, removed if it raises).

    The image must be one by its bytes (422 otherwise) and counts against `user_id`'s upload quota.
    A form that needs no file may also be a JSON object, as an update of text fields alone
    naturally is (a body without Content-Type included, as every JSON body is read: api/body.py);
    any other media type is 415. Either way the request's `Idempotency-Key` is claimed once the form is received
    (`receive_form`).
    """
    if not file_required and declares_json(request):
        data = await read_json(request)
        if not isinstance(data, dict):
            raise errors.bad_request("not_an_object")
        await claim_received(request, received_content(data, None))
        yield Received(data, None, multipart=False)
        return
    if not file_required and not declares_multipart(request):
        raise errors.unsupported_media_type("not_multipart_nor_json", request.method, f"{MULTIPART}, application/json")
    async with receive_form(
        request,
        s.media,
        max_bytes=s.settings.max_upload_bytes,
        quota=Quota(s.db, user_id, s.settings.upload_quota_bytes, s.clock),
        file_field=file_field,
        accept=is_image,
        refusal="invalid_image",
    ) as form:
        yield Received(form.fields, form.file, multipart=True)


def form_fields(model: type[M], received: Received, *, missing_file: str | None = None) -> M:
    """The fields as `model`; a required file that is missing is reported with the fields' errors.

    A form's optional field that holds no text (`order=`: what a browser sends for a number input
    left empty) is as absent as one left out, as DRF reads a form; an empty text field is the empty
    text it says (a caption cleared)."""
    fields = dict(received.fields)
    if received.multipart:
        fields = {name: value for name, value in fields.items() if value != "" or _takes_text(model, name)}
    body, problems = checked(model, fields)
    if missing_file is not None:
        problems[missing_file] = [errors.message("file_required")]
    if problems:
        raise errors.invalid(problems)
    assert body is not None
    return body


def _takes_text(model: type[BaseModel], name: str) -> bool:
    """Whether `model`'s field `name` holds text, or is required (an unknown name: as text, left to the model)."""
    field = model.model_fields.get(name)
    return field is None or field.is_required() or _is_text(field.annotation)


def _is_text(annotation: Any) -> bool:
    """Whether `annotation` admits text (`str`, `Caption | None`: through unions and `Annotated`)."""
    if annotation is str:
        return True
    args = get_args(annotation)
    return _is_text(args[0]) if get_origin(annotation) is Annotated else any(map(_is_text, args))
