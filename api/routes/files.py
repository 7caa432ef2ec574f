"""A user's private files: upload, list, remove, download.

A file is visible only to its owner, and only until the owner removes it: after that it leaves the
owner's list and its download answers 404 for the owner too (the bytes and the record stay for the
orders the file was delivered in, whose buyer and creator may always download it). Anyone else
gets 404, as for a file that does not exist.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from api import errors
from api.auth import authenticated_user
from api.downloads import stored_file_response
from api.idempotency import idempotent, idempotent_upload
from api.openapi import FormField, Operation, endpoint
from api.pagination import page_request, paginated
from api.responses import JSON
from api.schemas.files import FileOut, render_file
from api.services import services
from api.uploads import Quota, receive_upload
from readmodels.files import get_file, list_own_files
from readmodels.orders import delivered_to
from readmodels.pages import read_page_async
from ugc.platform.media import UnknownKey

log = logging.getLogger(__name__)


@idempotent_upload
async def upload(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    quota = Quota(s.db, user_id, s.settings.upload_quota_bytes, s.clock)
    async with receive_upload(request, s.media, max_bytes=s.settings.max_upload_bytes, quota=quota) as received:
        file = received.file
        file_id, positions = await file.record(
            s.run(
                s.files.upload,
                user_id,
                key=file.key,
                name=file.name,
                size=file.size,
                content_type=file.content_type,
                sha256=file.sha256,
            )
        )
    await s.settle(positions)
    row = await s.run(get_file, s.db, file_id)
    if row is None:
        raise errors.unavailable("read_model_lagging")
    return JSON(render_file(s.settings.public_url, row), status_code=201)


async def own_files(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    wanted = page_request(request)
    page = await read_page_async(s.db, list_own_files(user_id, wanted))
    public_url = s.settings.public_url
    return JSON(paginated(request, wanted, page, lambda row: render_file(public_url, row)))


@idempotent
async def remove(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    positions = await s.run(s.files.remove, user_id, request.path_params["id"])
    await s.settle(positions)
    return Response(status_code=204)


async def download(request: Request) -> Response:
    s = services(request)
    user_id = authenticated_user(request, s.tokens)
    row = await s.run(get_file, s.db, request.path_params["id"])
    if row is None:
        raise errors.not_found("file_not_found")
    owns = row["owner_id"] == user_id and not row["removed"]
    # A file delivered in an order stays the order's evidence: both parties may download it.
    if not owns and not await s.run(delivered_to, s.db, row["id"], user_id):
        raise errors.not_found("file_not_found")
    try:
        # A file system that will not read the bytes raises MediaUnavailable: 503, not a cut answer.
        found = await s.run(s.media.readable, row["key"])
    except UnknownKey:
        log.error("file %s: no bytes under key %s", row["id"], row["key"])
        raise errors.not_found("file_not_found") from None
    return stored_file_response(s.media.path(row["key"]), found, row["content_type"], row["name"])


routes = [
    endpoint(
        "POST",
        "/api/v1/files/upload/",
        upload,
        Operation("Загрузка файла", response=FileOut, status=201, form=(FormField("file", required=True),)),
    ),
    endpoint("GET", "/api/v1/files/", own_files, Operation("Список своих файлов", response=FileOut, paginated=True)),
    endpoint("DELETE", "/api/v1/files/{id:id}/", remove, Operation("Удаление файла", status=204)),
    endpoint(
        "GET",
        "/api/v1/files/{id:id}/download/",
        download,
        Operation("Скачивание своего файла (байты файла, его тип)", media_type="*/*", ranges=True),
    ),
]
