"""Receiving one multipart/form-data upload as a stream, straight into the media store.

The body is never held in memory: python-multipart's streaming parser reads `request.stream()`
chunk by chunk and the file part's bytes go to an incoming file of the media store as they come.
A body announced (Content-Length) or found to be over the limit is refused with 413 at once, and
a refused upload of any kind leaves nothing stored. The content type comes from the bytes
(`api.content_types`), the display name is the uploaded name made harmless (`display_name`).

    async with receive_upload(request, s.media, max_bytes=s.settings.max_upload_bytes, quota=...) as upload:
        await upload.file.record(s.run(... append the event that names upload.file.key ...))

The bytes are committed under their key when the block starts and removed again if the block
raises (unless `record` saw its command store the event all the same), so no stored file lacks
its event and no event lacks its bytes.

Every upload also counts against its user's quota (`Quota`, UGC_UPLOAD_QUOTA_BYTES): the file
may be no larger than the room left (413 with the quota's message past it, while streaming), and
the room is taken before the bytes are kept (`ugc/platform/stored_bytes.py`), given back if the
block raises, and settled when it ends. `record` has the command's save announce what it appends
to the room's reservation first, so that if the process dies before the block's end the sweep of
abandoned uploads (`ugc/platform/abandoned_uploads.py`) can tell a stored upload from a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any, TypeVar

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.body import check_content_coding, content_type, declared_past
from api.content_types import Sniffer
from api.errors import bad_request, invalid, message, too_large, unsupported_media_type
from api.idempotency import claim_received
from api.idempotency_keys import current
from api.text import storable
from commands.intents import Intent, also_announcing, to_text
from ugc.clock import Clock
from ugc.platform import stored_bytes
from ugc.platform.database import Database
from ugc.platform.media import Incoming, MediaStore

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

log = logging.getLogger(__name__)

T = TypeVar("T")

MULTIPART = "multipart/form-data"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# Room beyond the file for the form's other parts and the multipart framing.
FORM_OVERHEAD_BYTES = 256 * 1024
# Text fields are small (a caption, a title, a description): each is bounded, and so is their number.
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 32
MAX_NAME_CHARS = 255
FALLBACK_NAME = "file"


def declares_multipart(request: Request) -> bool:
    """Whether the request's Content-Type is multipart/form-data; a body without one is no form (415)."""
    return content_type(request)[0] == MULTIPART.encode()


def is_image(content_type: str) -> bool:
    """An `accept` predicate: the image types browsers display (PNG, JPEG, GIF, WebP)."""
    return content_type in IMAGE_TYPES


@dataclass(frozen=True)
class ReceivedFile:
    """A received file whose bytes wait in the media store (committed while the block runs)."""

    incoming: Incoming
    name: str
    content_type: str
    quota: Quota | None  # whose room the bytes took (and reserved under their key)

    @property
    def key(self) -> str:
        return self.incoming.key

    @property
    def size(self) -> int:
        return self.incoming.size

    @property
    def sha256(self) -> str:
        return self.incoming.sha256

    async def record(self, command: Coroutine[Any, Any, T]) -> T:
        """Await, to its end, the command that stores the event naming these bytes; its saves announce
        what they append to the room's reservation first (`Quota.intend`).

        Only a stop cancels a request (uvicorn, UGC_STOP_GRACE seconds after the signal), and the
        command goes on in its thread: it may store its event after the request was cancelled, and
        the block's exit then discarded the bytes that event names. Cancelled, this waits for the
        command; if it stored, the bytes are kept (and their room stays taken). The cancellation
        then goes on: the client gets 503 and may send the file again.
        """
        context = contextvars.copy_context()
        if self.quota is not None:
            context.run(also_announcing, functools.partial(self.quota.intend, self.key))
        running = asyncio.get_running_loop().create_task(command, context=context)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            while not running.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([running])
            if not running.cancelled() and running.exception() is None:
                self.incoming.keep()
            raise


@dataclass(frozen=True)
class Form:
    """A received form whose file part may be absent."""

    file: ReceivedFile | None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    """A received form with its file."""

    file: ReceivedFile
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    """The bytes `user_id` may keep in the media store in all, counted in `db`."""

    db: Database
    user_id: int
    limit: int
    clock: Clock

    async def room(self) -> int:
        return self.limit - await run_in_threadpool(stored_bytes.stored, self.db, self.user_id)

    async def take(self, media_key: str, size: int) -> bool:
        now = self.clock.now()
        return await run_in_threadpool(stored_bytes.take, self.db, self.user_id, size, self.limit, media_key, now)

    def intend(self, media_key: str, intents: Sequence[Intent]) -> None:
        """Before a save (in the command's thread): record what it appends in the reservation."""
        stored_bytes.intend(self.db, media_key, to_text(intents))

    async def settle(self, media_key: str) -> None:
        """The bytes are kept: their event is stored, and with it the intent their reservation holds. A
        database that refuses now (away, a lock) fails nothing: the sweep of abandoned uploads settles it."""
        try:
            await self._finish(stored_bytes.settle, media_key)
        except Exception as error:
            log.warning("the quota reservation of an upload kept is left to the sweep to settle (%s)", error)

    async def give_back(self, media_key: str) -> None:
        await self._finish(stored_bytes.give_back, media_key)

    async def _finish(self, step: Callable[[Database, str], None], media_key: str) -> None:
        # Shielded: a request cancelled while it gives the room back still gives it (the thread finishes).
        done = asyncio.get_running_loop().run_in_executor(None, step, self.db, media_key)
        await asyncio.shield(done)


@asynccontextmanager
async def receive_form(
    request: Request,
    media: MediaStore,
    *,
    max_bytes: int,
    quota: Quota | None,
    file_field: str = "file",
    accept: Callable[[str], bool] | None = None,
    refusal: str = "unsupported_file_type",
) -> AsyncIterator[Form]:
    """Read the multipart body: the part named `file_field` (if any) into `media`, text parts into `fields`.

    415 if the body is not multipart/form-data or comes in a content coding (gzip); 400 if it is
    malformed; 413 past `max_bytes` of file (or a body past the file's limit plus the form's room), or
    past the room `quota` leaves (with its own message); 422 for an empty file, a second file in
    `file_field`, a content type `accept` refuses (with the message of the code `refusal`), or a
    text field that is not UTF-8. A file part with an empty `filename` and no bytes (an empty file
    input) counts as no file.

    The request's `Idempotency-Key`, if it sent one, is claimed once the form is received and found
    whole, before any room is taken (`claim_received`): a retry is answered from its key, and the
    room its first request used up has no say in it. So a keyed body is received up to `max_bytes`,
    and only then measured against the room.
    """
    limit, over = max_bytes, "too_large"
    if quota is not None and current() is None and (room := max(0, await quota.room())) < max_bytes:
        limit, over = room, "upload_quota_exceeded"
    receiver = await _receive(request, media, max_bytes=limit, file_field=file_field, over=over)
    incoming = receiver.incoming
    if incoming is not None and incoming.size == 0 and receiver.filename == "":
        # A browser sends a file input left empty as a part with an empty name and no bytes: no file
        # chosen (as Django reads it), so an edit form keeps its image, not 422 "empty file".
        incoming.discard()
        incoming = None
    if incoming is None:
        await claim_received(request, received_content(receiver.fields, None))
        yield Form(None, receiver.fields)
        return
    taken = 0
    try:
        if incoming.size == 0:
            raise invalid({file_field: [message("file_empty")]})
        content_type = receiver.sniffer.finish()
        if accept is not None and not accept(content_type):
            raise invalid({file_field: [message(refusal)]})
        file = ReceivedFile(incoming, display_name(receiver.filename), content_type, quota)
        await claim_received(request, received_content(receiver.fields, file))
        if quota is not None:
            # Another upload of the same user may have taken the room since it was measured.
            if not await quota.take(incoming.key, incoming.size):
                raise too_large("upload_quota_exceeded")
            taken = incoming.size
        await run_in_threadpool(incoming.commit)
        yield Form(file, receiver.fields)
    except BaseException:
        # Synchronously (an unlink is quick): awaiting here could itself be cancelled and leave the bytes.
        incoming.discard()
        if quota is not None and taken:
            await (quota.settle if incoming.kept else quota.give_back)(incoming.key)
        raise
    if quota is not None and taken:
        await quota.settle(incoming.key)


@asynccontextmanager
async def receive_upload(
    request: Request,
    media: MediaStore,
    *,
    max_bytes: int,
    quota: Quota | None,
    file_field: str = "file",
    accept: Callable[[str], bool] | None = None,
    refusal: str = "unsupported_file_type",
) -> AsyncIterator[Upload]:
    """`receive_form` for a form whose file is required: 422 without it."""
    async with receive_form(
        request, media, max_bytes=max_bytes, quota=quota, file_field=file_field, accept=accept, refusal=refusal
    ) as form:
        if form.file is None:
            raise invalid({file_field: [message("file_required")]})
        yield Upload(form.file, form.fields)


def received_content(fields: Mapping[str, object], file: ReceivedFile | None) -> bytes:
    """What a received form says, apart from its framing (an `Idempotency-Key`'s fingerprint): its
    fields, and its file's name and the digest of its bytes. A client's retry frames the same parts
    with a new multipart boundary. A JSON form's text may hold a lone surrogate, refused (422) only once
    its fields are checked, after the key is claimed: it is kept as it came ("surrogatepass"), so every
    other text's fingerprint stays its UTF-8."""
    parts = {"fields": dict(fields), "file": None if file is None else [file.name, file.sha256]}
    return json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass")


def part_filename(disposition: bytes, options: Mapping[bytes, bytes]) -> str | None:
    """The file name a part's Content-Disposition gives (`options` as python-multipart parsed it);
    None for a text field.

    The plain `filename` when there is one. Else `filename*` (RFC 8187: `UTF-8''%D0%BE...`), which
    RFC 7578 §4.2 tells senders not to use in a form and python-multipart therefore skips; some
    clients send it alone all the same, and their file would be stored as "file". The standard
    library's mail header parser reads it (RFC 2231, continuations included).
    """
    plain = options.get(b"filename")
    if plain is not None:
        return plain.decode("utf-8", "replace")
    if b"filename*" not in disposition.lower():
        return None
    header = Message()
    header["Content-Disposition"] = disposition.decode("latin-1")
    try:
        return header.get_filename()
    except ValueError:  # a charset name with a NUL in it: the codec lookup refuses it (a 500 it was)
        return FALLBACK_NAME


def display_name(raw: str | None) -> str:
    """The uploaded name fit for display: its last path part, without control or invisible characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    # Cc: control characters; Cf: invisible format characters such as the right-to-left override.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs")).strip()
    if not name.strip("."):
        return FALLBACK_NAME
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        if dot and stem and len(suffix) <= 16:
            name = f"{stem[: MAX_NAME_CHARS - len(suffix) - 1]}.{suffix}"
        else:
            name = name[:MAX_NAME_CHARS]
    return name


async def _receive(request: Request, media: MediaStore, *, max_bytes: int, file_field: str, over: str) -> _Receiver:
    if not declares_multipart(request):
        raise unsupported_media_type("not_multipart", request.method, MULTIPART)
    boundary = content_type(request)[1].get(b"boundary")
    if not boundary:
        raise bad_request("malformed_multipart")
    check_content_coding(request)
    body_limit = max_bytes + FORM_OVERHEAD_BYTES
    if declared_past(request, body_limit):
        raise too_large(over)
    receiver = _Receiver(media, file_field, max_bytes, over)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise too_large(over)
            parser.write(chunk)
            if receiver.pending:
                await run_in_threadpool(receiver.flush)
        parser.finalize()
        if not receiver.ended:
            raise bad_request("malformed_multipart")
    except FormParserError:
        receiver.discard()
        raise bad_request("malformed_multipart") from None
    except BaseException:
        receiver.discard()
        raise
    return receiver


class _Receiver:
    """The parser's callbacks: route each part's bytes to the incoming file, a text field, or nowhere."""

    def __init__(self, media: MediaStore, file_field: str, max_bytes: int, over: str) -> None:
        self.media = media
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.over = over  # the message code of a file past `max_bytes`
        self.incoming: Incoming | None = None
        self.sniffer = Sniffer()
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.ended = False
        self._parts = 0
        self._file_size = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._target: str | None = None  # "file", "field" or None (skip)
        self._field_name = ""
        self._field_value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise too_large()
        self._disposition = b""
        self._target = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise bad_request("malformed_multipart")
        name = options[b"name"].decode("utf-8", "replace")
        if name == self.file_field:
            if self.incoming is not None:
                raise invalid({self.file_field: [message("one_file_only")]})
            self.filename = part_filename(self._disposition, options)
            # Opening the incoming file is a quick local call; the writes go to a worker thread.
            self.incoming = self.media.begin()
            self._target = "file"
        elif part_filename(self._disposition, options) is not None:
            self._target = None  # another file part: not asked for, not kept
        else:
            if name in self.fields:  # which of two values counts is a guess, as in a JSON body (api/body.py)
                raise invalid({name if storable(name) else "non_field_errors": [message("body_field_repeated")]})
            self._target = "field"
            self._field_name = name
            self._field_value.clear()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self._file_size += end - start
            if self._file_size > self.max_bytes:
                raise too_large(self.over)
            self.pending.append(data[start:end])
        elif self._target == "field":
            if len(self._field_value) + end - start > MAX_FIELD_BYTES:
                raise too_large()
            self._field_value += data[start:end]

    def on_part_end(self) -> None:
        if self._target == "field":
            # Strictly: bytes that are no UTF-8 are refused, as in a JSON body, not stored as U+FFFD.
            try:
                self.fields[self._field_name] = self._field_value.decode()
            except UnicodeDecodeError:
                raise invalid({self._field_name: [message("not_utf8")]}) from None
        self._target = None

    def on_end(self) -> None:
        self.ended = True

    def flush(self) -> None:
        """Write the file bytes parsed so far (in a worker thread: disk writes block)."""
        data = b"".join(self.pending)
        self.pending.clear()
        if self.incoming is not None:
            self.sniffer.feed(data)
            self.incoming.write(data)

    def discard(self) -> None:
        self.pending.clear()
        if self.incoming is not None:
            self.incoming.discard()
