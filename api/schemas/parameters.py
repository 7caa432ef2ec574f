"""Query parameters, path parameters and headers as the OpenAPI document describes them.

One entry per parameter name, shared by every route that takes it (api/openapi.py refuses a route
whose query names one that is not here), typed as the routes really read them: enums where the route
accepts a fixed set, ranges where it bounds a number.
"""

from __future__ import annotations

from typing import Any

from api.pagination import MAX_DEPTH
from api.schemas.services import MAX_FILTER_PRICE
from readmodels.services import DEFAULT_ORDERING, ORDERINGS
from ugc.orders import STATUSES
from ugc.platform.numbers import MAX_ID

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_PRICE = {"type": "number", "minimum": 0, "maximum": int(MAX_FILTER_PRICE)}
# A date (its midnight UTC) or a time with its zone: what OrderQuery reads, nothing else.
_MOMENT = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}

QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "page": {
        "description": (
            "Номер страницы, с 1. Страница за последней (кроме первой пустого списка) — 404; страница, "
            f"начинающаяся дальше первых {MAX_DEPTH} записей списка, — 422 (кроме истории заказа)."
        ),
        "schema": {"type": "integer", "minimum": 1, "default": 1},
    },
    "page_size": {
        "description": "Размер страницы, по умолчанию 20, не больше 100 (больше — считается как 100).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "status": {
        "description": "Фильтр по статусу заказа.",
        "schema": {"type": "string", "enum": list(STATUSES)},
    },
    "role": {
        "description": (
            "Только заказы, где пользователь покупатель (`buyer`) или креатор (`creator`); без него — оба "
            "(аудитору без него — все заказы)."
        ),
        "schema": {"type": "string", "enum": ["buyer", "creator"]},
    },
    "as_of": {
        "description": (
            "Заказ (или его история), каким он был: после события с этой версией (целое, с 1, как в /history/) "
            "или на момент времени ISO 8601 с часовым поясом."
        ),
        "schema": {"type": "string", "examples": ["3", "2026-06-15T12:00:00Z"]},
    },
    "detail": {
        "description": "`true` — включить навыки и портфолио креатора.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "read": {
        "description": "Только прочитанные (`true`) или непрочитанные (`false`).",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "search": {
        "description": (
            "Слова через пробел или запятую (до 10 слов, до 100 символов): находится то, в названии "
            "(у навыка — имени) или описании чего есть каждое слово (как подстрока, в любом порядке), "
            "без учёта регистра, «ё» и «е» не различаются."
        ),
        "schema": {"type": "string", "maxLength": 100},
    },
    "category": {"description": "Id категории.", "schema": _ID},
    "creator": {
        "description": (
            "Id профиля креатора (в /api/v1/services/); в /api/v1/orders/ — id пользователя-креатора заказа."
        ),
        "schema": _ID,
    },
    "buyer": {"description": "Только заказы этого покупателя (id пользователя).", "schema": _ID},
    "created_after": {
        "description": (
            "Только заказы, размещенные в этот момент или позже: время ISO 8601 с часовым поясом или дата "
            "(полночь UTC)."
        ),
        "schema": _MOMENT | {"examples": ["2026-06-01", "2026-06-15T12:00:00Z"]},
    },
    "created_before": {
        "description": "Только размещенные раньше этого момента; формат как у created_after.",
        "schema": _MOMENT | {"examples": ["2026-07-01", "2026-06-15T12:00:00Z"]},
    },
    "min_price": {"description": "Не дешевле (базовая цена).", "schema": _PRICE},
    "max_price": {"description": "Не дороже (базовая цена).", "schema": _PRICE},
    "ordering": {
        "description": "Порядок: поле, с `-` — по убыванию.",
        "schema": {"type": "string", "enum": sorted(ORDERINGS), "default": DEFAULT_ORDERING},
    },
    "creator_profile_id": {"description": "Id профиля креатора.", "schema": _ID},
    "portfolio_item_id": {"description": "Id элемента портфолио.", "schema": _ID},
    "token": {"description": "Access-токен (JWT).", "schema": {"type": "string"}},
    "since": {
        "description": "Id последнего полученного уведомления (или сообщения, в сокете диалога): "
        "сначала придут все более новые (0 — все).",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def path_parameter(name: str, kind: str) -> dict[str, Any]:
    if kind in ("id", "int"):
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": "Id (целое, с 1).",
            "schema": _ID,
            "example": 1,
        }
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


# Request headers an operation may take (components.parameters).
PARAMETERS: dict[str, dict[str, Any]] = {
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": (
            'Версия объекта: его `ETag` (`"3.5f1c0a9e2b7d4c18"`, сравнивается только версия до точки) или `"3"`, '
            'или список (`"3", "4"`): изменение применяется, только если одна из них текущая, иначе 412 '
            "с текущей версией. `*` или без заголовка — к любой версии."
        ),
        "schema": {"type": "string", "examples": ['"3"']},
    },
    "If-None-Match": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": (
            '`ETag` копии, которая уже есть у клиента, или список (`"3.5f1c0a9e2b7d4c18", "4.0c2e9b7a5d1f3e68"`, '
            "в одной или нескольких строках заголовка); `W/` не учитывается (слабое сравнение), `*` — любой ответ. "
            "Если один из них — `ETag` ответа, ответ 304 без тела с тем же `ETag`, иначе обычный 200."
        ),
        "schema": {"type": "string", "examples": ['"3.5f1c0a9e2b7d4c18"']},
    },
    # The same header on a write, where it is a precondition (RFC 9110 §13.1.2), not a revalidation.
    "If-None-Match-write": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": (
            "`*` — изменение применяется, только если объекта нет (он есть, поэтому 412); версии (`ETag` "
            '`"3.5f1c0a9e2b7d4c18"`, сравнивается только версия до точки, `W/` не учитывается, или `"3"`, или '
            "список) — только если ни одна из них не текущая, иначе 412 с текущей версией. Проверяется после "
            "`If-Match`; тег, в котором не прочесть версию, не называет ни одной."
        ),
        "schema": {"type": "string", "examples": ["*"]},
    },
    # A stored file's download (`Operation.ranges`): parts of it, and its revalidation by date.
    "Range": {
        "name": "Range",
        "in": "header",
        "required": False,
        "description": (
            "Часть файла: `bytes=0-1023`, `bytes=1024-`, `bytes=-500` (последние 500 байт) или несколько через "
            "запятую (ответ `multipart/byteranges`): 206 с этой частью; 416, если начало за концом файла. "
            "Диапазон, который не прочесть, не учитывается: 200 с файлом целиком."
        ),
        "schema": {"type": "string", "examples": ["bytes=0-1023"]},
    },
    "If-Range": {
        "name": "If-Range",
        "in": "header",
        "required": False,
        "description": (
            "`ETag` или `Last-Modified` копии, часть которой уже есть у клиента: `Range` учитывается, только "
            "если файл с тех пор не изменился, иначе 200 с файлом целиком."
        ),
        "schema": {"type": "string"},
    },
    "If-Modified-Since": {
        "name": "If-Modified-Since",
        "in": "header",
        "required": False,
        "description": (
            "Дата HTTP (`Last-Modified` копии клиента): 304 без тела, если файл не изменился с нее. "
            "Не учитывается при `If-None-Match` и если дату не прочесть."
        ),
        "schema": {"type": "string", "examples": ["Mon, 07 Dec 2026 07:49:32 GMT"]},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            'Ключ повтора, до 255 символов: строка в кавычках (`"8e03978e-40d5"`, как в '
            'draft-ietf-httpapi-idempotency-key-header; `\\"` и `\\\\` внутри — кавычка и обратная косая черта) '
            'или без них (`"abc"` и `abc` — один ключ); один заголовок, иначе 422. '
            "Тот же запрос с тем же ключом от того же пользователя применяется "
            "один раз, повтор получает первый ответ (`Idempotent-Replayed: true`). Ответ хранится 24 ч, если "
            "команда выполнена (2xx) или отклонена из-за состояния объекта (409); после остальных ошибок (400, "
            "403, 404, 412, 413, 415, 422, 429) ключ свободен, и повтор с ним выполняется заново."
        ),
        "schema": {"type": "string", "minLength": 1},
    },
    "X-Request-ID": {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "Id запроса клиента (`[A-Za-z0-9._:+/=-]{1,128}`); иначе сервер выдает свой.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:+/=-]{1,128}$"},
    },
}

# Response headers (components.headers).
HEADERS: dict[str, dict[str, Any]] = {
    "Accept": {
        "description": (
            "Типы тела, которые операция принимает: `application/json`, `multipart/form-data` "
            "или `multipart/form-data, application/json`."
        ),
        "schema": {"type": "string"},
    },
    "Accept-Patch": {"description": "То же, что `Accept`, для PATCH (RFC 5789).", "schema": {"type": "string"}},
    "Accept-Post": {"description": "То же, что `Accept`, для POST (W3C LDP).", "schema": {"type": "string"}},
    "Accept-Encoding": {
        "description": "Кодирование тела, которое сервер принимает: только `identity` (без сжатия).",
        "schema": {"type": "string", "const": "identity"},
    },
    "Accept-Ranges": {
        "description": "`bytes`: файл отдается частями по `Range`.",
        "schema": {"type": "string", "const": "bytes"},
    },
    "Content-Disposition": {
        "description": (
            "`attachment` (скачать) или `inline` (изображения портфолио) с именем файла: `filename` (ASCII) "
            "и `filename*` (UTF-8), RFC 6266."
        ),
        "schema": {"type": "string"},
    },
    "Content-Range": {
        "description": "Размер файла: `bytes */<размер>`.",
        "schema": {"type": "string", "pattern": "^bytes \\*/[0-9]+$"},
    },
    "Content-Range-part": {
        "description": "Часть файла в ответе 206 на один диапазон: `bytes <начало>-<конец>/<размер>`.",
        "schema": {"type": "string", "pattern": "^bytes [0-9]+-[0-9]+/[0-9]+$"},
    },
    "ETag": {
        "description": (
            'Версия объекта и отпечаток тела ответа (`"3.5f1c0a9e2b7d4c18"`): меняется с любым изменением ответа '
            "(в том числе рейтинга); для `If-Match` и `If-None-Match` при следующем изменении. "
            'В ответе 412 — текущая версия (`"3"`).'
        ),
        "schema": {"type": "string"},
    },
    "ETag-file": {
        "description": "Отпечаток файла (его размер и время изменения): для `If-None-Match` и `If-Range`.",
        "schema": {"type": "string"},
    },
    "Last-Modified": {
        "description": "Когда файл изменен (дата HTTP): для `If-Modified-Since` и `If-Range`.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Через сколько секунд повторить запрос.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "X-Request-ID": {
        "description": "Id этого запроса (присланный клиентом, если он допустим), тот же, что в журнале сервера.",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": 'Схема авторизации: `Bearer realm="api"`.', "schema": {"type": "string"}},
}
