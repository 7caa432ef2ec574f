"""Reading a JSON body into a pydantic model: 415 if it comes in another media type, compressed or
in an encoding other than UTF-8, 400 if it is not JSON, 422 if a field is wrong."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.errors import (
    PATTERN_MESSAGES,
    bad_request,
    invalid,
    message,
    too_large,
    unsupported_charset,
    unsupported_coding,
    unsupported_media_type,
)
from api.text import storable, unstorable_fields
from ugc.platform.numbers import natural

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_JSON_BYTES = 1 << 20
OFF_LOOP_BYTES = 64 << 10  # larger JSON bodies are decoded and checked on a thread (`off_the_loop_if_large`)
# No body or frame of this API nests deeper than 4; anything nested past this is refused as malformed.
# The standard parser recurses once per level (RecursionError past ~1,000, a 500 it was), and so
# does the walk of every string in a body (api/text.py); orjson, which stops at 1,024 by itself,
# cannot parse money as Decimal, so the limit is ours.
MAX_JSON_DEPTH = 32

# Russian texts for pydantic's validation errors, by error type; `{name}` takes the error's context
# (a bound, a length, the allowed values). A type not listed answers INVALID, never pydantic's
# English: every message of the API is Russian.
INVALID = "Недопустимое значение."
_DATE = "Неправильный формат даты. Используйте формат YYYY-MM-DD."
_DATETIME = "Неправильный формат даты и времени. Используйте ISO 8601, с часовым поясом."
_NUMBER = "Ожидается число."
# How pydantic's EmailStr starts every refusal; its reasons (email-validator's, English) vary.
_EMAIL_REFUSED = "value is not a valid email address"
_FIELD_MESSAGES = {
    "missing": "Обязательное поле.",
    "string_type": "Ожидается строка.",
    "int_type": "Ожидается целое число.",
    "int_parsing": "Ожидается целое число.",
    "int_from_float": "Ожидается целое число.",
    "dict_type": "Ожидается объект.",
    "model_type": "Ожидается объект.",  # a list's entry that is no object: a bulk update's, a service's option
    "list_type": "Ожидается список.",
    "bool_type": "Ожидается логическое значение.",
    "bool_parsing": "Ожидается логическое значение.",
    "extra_forbidden": "Неизвестное поле.",
    "value_error": INVALID,
    "string_too_long": "Убедитесь, что это значение содержит не более {max_length} символов.",
    "string_too_short": "Убедитесь, что это значение содержит не менее {min_length} символов.",
    "string_blank": "Это поле не может быть пустым.",
    "string_pattern_mismatch": "Значение не соответствует формату.",
    "too_long": "Убедитесь, что здесь не более {max_length} элементов.",
    "too_short": "Убедитесь, что здесь не менее {min_length} элементов.",
    "less_than_equal": "Убедитесь, что это значение меньше либо равно {le}.",
    "less_than": "Убедитесь, что это значение меньше {lt}.",
    "greater_than_equal": "Убедитесь, что это значение больше либо равно {ge}.",
    "greater_than": "Убедитесь, что это значение больше {gt}.",
    "literal_error": "Допустимые значения: {expected}.",
    "enum": "Допустимые значения: {expected}.",
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "timezone_aware": _DATETIME,
    "decimal_type": _NUMBER,
    "decimal_parsing": _NUMBER,
    "float_type": _NUMBER,
    "float_parsing": _NUMBER,
    "finite_number": _NUMBER,
    "decimal_max_digits": "Убедитесь, что в числе не более {max_digits} цифр.",
    "decimal_max_places": "Убедитесь, что в числе не более {decimal_places} знаков после запятой.",
    "decimal_whole_digits": "Убедитесь, что в числе не более {whole_digits} цифр до запятой.",
}


async def raw_body(request: Request, limit: int = MAX_JSON_BYTES) -> bytes:
    """The whole body, refused with 413 past `limit`; kept on the request so it can be read again."""
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached
    check_content_coding(request)
    if declared_past(request, limit):
        raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    request._body = raw  # Starlette's own cache: request.body() and stream() replay it
    return raw


def check_content_coding(request: Request) -> None:
    """415 unless the body is in no content coding but `identity`: a gzip (or any other) body is never
    decoded here, and read as if it were plain it would be refused as malformed at best, or, when
    its bytes happened to parse, applied."""
    codings = ",".join(request.headers.getlist("content-encoding")).lower().split(",")
    if any(coding.strip() not in ("", "identity") for coding in codings):
        raise unsupported_coding()


def declared_past(request: Request, limit: int) -> bool:
    """Whether the request's Content-Length (ASCII digits, however many) says more than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    return declared.isascii() and declared.isdigit() and natural(declared, limit) is None


async def read_json(request: Request, *, decimals: bool = False) -> Any:
    """The body's JSON (fractions as Decimal when `decimals`): 415 if it is not in JSON's media type
    or encoding, 400 if it is not JSON, 413 past the limit."""
    text = await _json_text(request)
    return await off_the_loop_if_large(text, _decoded, text, decimals)


# A JSON body's Content-Type, or none (`declares_json`); `content_type` tells the two apart.
JSON_KINDS = (b"application/json", b"")
# What a Content-Type sent without a media type (`;;;`, empty, parameters alone) counts as, and two
# Content-Type lines that differ: a type the API does not take, never the absent header, which would
# have the body read as JSON.
NAMELESS = b"?"


def content_type(request: Request) -> tuple[bytes, dict[bytes, bytes]]:
    """The request's media type and its parameters, as python-multipart parses them; b"" when the
    request has no Content-Type, NAMELESS when it has one that names no media type, or two that differ
    (the field is one value, RFC 9110 §8.3: the first was taken, where a proxy may keep the other)."""
    lines = request.headers.getlist("content-type")
    if len(set(lines)) > 1:
        return NAMELESS, {}
    kind, options = parse_options_header(lines[0] if lines else None)
    return (kind or (NAMELESS if lines else b"")), options


def declares_json(request: Request) -> bool:
    """Whether the body is to be read as JSON: `Content-Type: application/json`, or no Content-Type at
    all, which RFC 9110 §8.3 lets a recipient read by what the data is (a client that sends `{}` or
    nothing without the header is served)."""
    return content_type(request)[0] in JSON_KINDS


async def _json_text(request: Request) -> str:
    """The body as text, "" when it is empty; 415 unless it is JSON's media type in UTF-8.

    An empty body is no content: whatever its Content-Type says, it holds nothing in a media type or
    an encoding the API does not take (a client that sends a form's Content-Type and no body to
    accept an order is served). JSON between systems is UTF-8 (RFC 8259 §8.1), declared or not: a
    UTF-16 or UTF-32 body (told by the NULs of its first four bytes, as RFC 4627 §3 has it: JSON
    begins with ASCII), or bytes that are no UTF-8 (windows-1251 text sent undeclared), get the answer
    a body declared in another charset gets, rather than "not JSON" or, for the UTF-16 body the
    standard parser recognised, being applied. A UTF-8 byte order mark is skipped, as RFC 8259 §8.1
    lets a parser do: it says nothing but "UTF-8", which Windows' editors and PowerShell write
    before a file's text.
    """
    raw = await raw_body(request)
    if not raw:
        return ""
    kind, options = content_type(request)  # parsed once for both checks
    if kind not in JSON_KINDS:
        raise unsupported_media_type("unsupported_media_type", request.method, "application/json")
    charset = options.get(b"charset")
    if (charset is not None and not _is_utf8(charset.decode("latin-1"))) or b"\0" in raw[:4]:
        raise unsupported_charset(request.method)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unsupported_charset(request.method) from None
    if not text:  # a byte order mark before nothing: content, but no JSON text (not the empty body's `{}`)
        raise bad_request("malformed_json")
    return text


def _is_utf8(charset: str) -> bool:
    """Whether a `charset` parameter names UTF-8, however spelt (`UTF-8`, `utf8`)."""
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


async def off_the_loop_if_large(raw: bytes | str, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on a thread when `raw` is past OFF_LOOP_BYTES, else here: a body of many small
    items takes about a second of CPU a megabyte to decode and check, which the event loop, serving
    everyone else, must not wait out; a small one costs less than the hand-off."""
    if len(raw) > OFF_LOOP_BYTES:
        return await run_in_threadpool(work, *args)
    return work(*args)


def _decoded(text: str, decimals: bool) -> Any:
    if not text:
        return {}
    try:
        return loads(text, decimals=decimals)
    except UnrepresentableNumber:
        raise invalid({"non_field_errors": [message("number_out_of_range")]}) from None
    except RepeatedName as repeated:
        field = repeated.name if storable(repeated.name) else "non_field_errors"
        raise invalid({field: [message("body_field_repeated")]}) from None
    except ValueError:
        raise bad_request("malformed_json") from None


class UnrepresentableNumber(ValueError):
    """A JSON number no Python value holds: an integer past 4,300 digits (Python's limit on turning
    text into int) or a fraction whose exponent is past Decimal's. The text is JSON, so the answer is
    a 422 about a value, not a 400 about the body."""


class RepeatedName(ValueError):
    """An object that gives one name twice. RFC 8259 leaves which value counts to each parser (Python's
    takes the last, others the first, and so may a proxy that checked the body before us), so such a
    body is refused rather than read one way here and another way there."""

    def __init__(self, name: str) -> None:
        super().__init__("a name given twice in one object")
        self.name = name


def loads(text: str | bytes, *, decimals: bool = False) -> Any:
    """JSON text as Python values, fractions as Decimal when `decimals` (else float); ValueError if it
    is not JSON (`NaN` and `Infinity` included, which the standard parser takes) or nests deeper than
    MAX_JSON_DEPTH, UnrepresentableNumber for a number past Python's, RepeatedName for an object
    that gives a name twice."""
    try:
        data = json.loads(
            text,
            parse_int=_integer,
            parse_float=_decimal if decimals else float,
            parse_constant=_not_json,
            object_pairs_hook=_unique_names,
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    # Counting brackets first keeps the walk for the rare body that could be deep.
    if _openings(text) > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise ValueError("JSON nested too deeply")
    return data


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise RepeatedName(name)
            seen.add(name)
    return data


def _not_json(literal: str) -> NoReturn:
    raise ValueError(f"{literal} is not JSON")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UnrepresentableNumber(text[:20]) from None


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise UnrepresentableNumber(text[:20]) from None


def _openings(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in `data`, without recursion; stops counting past the limit."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


async def parse(request: Request, model: type[M], *, decimals: bool = False) -> M:
    """The body as `model`; `decimals` parses fractions as Decimal, so money never passes through float."""
    text = await _json_text(request)
    return await off_the_loop_if_large(text, _parsed, text, model, decimals)


def _parsed(text: str, model: type[M], decimals: bool) -> M:
    data = _decoded(text, decimals)
    if not isinstance(data, dict):
        raise bad_request("not_an_object")
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    body, problems = checked(model, data)
    if body is None:
        raise invalid(problems)
    return body


def checked(model: type[M], data: Any) -> tuple[M | None, dict[str, list[str]]]:
    """`data` as `model`, or None and the field errors: text no backend can store is refused first."""
    problems = unstorable_fields(data)
    if problems:
        return None, problems
    try:
        return model.model_validate(data), {}
    except ValidationError as error:
        return None, field_errors(error)


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "non_field_errors"
        fields.setdefault(name, []).append(_message(item))
    return fields


def _message(item: Any) -> str:
    kind = item["type"]
    context = item.get("ctx") or {}
    if kind == "string_too_short" and context.get("min_length") == 1:
        kind = "string_blank"  # empty, or spaces alone: DRF's words for it, not "не менее 1 символов"
    if kind == "value_error" and str(item.get("msg", "")).startswith(_EMAIL_REFUSED):
        return "Введите правильный адрес электронной почты."
    if kind == "string_pattern_mismatch" and context.get("pattern") in PATTERN_MESSAGES:
        return message(PATTERN_MESSAGES[context["pattern"]])
    if kind == "value_error":  # our validators' own (Russian) words
        return str(item.get("msg", "")).removeprefix("Value error, ") or INVALID
    try:
        return _FIELD_MESSAGES.get(kind, INVALID).format_map({key: _shown(value) for key, value in context.items()})
    except KeyError:  # a context without the bound its message names: still Russian, still a 422
        return INVALID


def _shown(value: Any) -> str:
    """A bound or the allowed values of an error's context as a message shows them: `'a' or 'b'` as a, b."""
    return str(value).replace("'", "").replace(" or ", ", ")
