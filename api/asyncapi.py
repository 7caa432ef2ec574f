"""The AsyncAPI 3.0 document of the WebSocket streams, built from their `DocumentedSocket` routes.

OpenAPI has no words for WebSockets; this document, served beside the OpenAPI one, says where each
stream is, how it authenticates, what it pushes and takes (the same pydantic models the tests hold
every frame to) and with which codes it closes (README, "Realtime").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from api.openapi import PATH_PARAMETER, DocumentedSocket
from api.realtime import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    NOT_FOUND,
    PROTOCOL_ERROR,
    SERVICE_RESTART,
    TOO_MANY,
    TRY_AGAIN_LATER,
    UNAUTHORIZED,
)
from api.schemas.errors import ErrorOut, ValidationErrorOut
from api.schemas.examples import EXAMPLES
from api.schemas.parameters import QUERY_PARAMETERS

# What each close code means and what the client should do about it.
CLOSE_CODES: dict[int, str] = {
    UNAUTHORIZED: "Нет токена, он недействителен или это refresh-токен; access-токен истек во время соединения "
    "или аккаунт удален. Получите новый токен и переподключитесь.",
    NOT_FOUND: "Диалога нет (или вы в нем не участвуете), путь не называет поток; `since=` — не уведомление "
    "этого пользователя или не сообщение этого диалога (переподключитесь без `since=`).",
    BAD_REQUEST: "`since=` — не id или передан дважды.",
    TOO_MANY: "У пользователя уже столько соединений с этим процессом сервера, сколько позволяет `UGC_WS_MAX_PER_USER` "
    "(по умолчанию 32): закройте лишние.",
    SERVICE_RESTART: "Redis пропал (пуши могли потеряться) или процесс сервера останавливается (развертывание): "
    "переподключитесь с `since=`.",
    TRY_AGAIN_LATER: "Клиент 30 с не принимал кадры, Redis сейчас недоступен, база данных недоступна, когда "
    "читалось, что отправить, или у процесса сервера уже `UGC_WS_MAX` соединений (по умолчанию 10 000): "
    "переподключитесь позже с `since=`.",
    MESSAGE_TOO_BIG: "Кадр больше 64 КиБ.",
    PROTOCOL_ERROR: "Кадр нарушает протокол WebSocket (например, не замаскирован): исправьте клиент.",
    INTERNAL_ERROR: "Непредвиденная ошибка сервера: переподключитесь с `since=`.",
}


def asyncapi_document(
    routes: Sequence[BaseRoute], *, title: str, version: str, public_url: str = "http://127.0.0.1:8000"
) -> dict[str, Any]:
    """The document of the WebSockets; its server is `public_url` (UGC_PUBLIC_URL), never a request's
    `Host`, which any client writes: a document that named it could be cached under our URL and send
    every reader's tokens to another host."""
    sockets = [route for route in routes if isinstance(route, DocumentedSocket)]
    models: list[type[BaseModel]] = [ErrorOut, ValidationErrorOut]
    for socket in sockets:
        models += [socket.pushes] + ([socket.receives] if socket.receives else [])
    _, definitions = models_json_schema(
        [(model, "serialization") for model in dict.fromkeys(models)], ref_template="#/components/schemas/{model}"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for socket in sockets:
        name = socket.name.removesuffix("_socket")
        path = PATH_PARAMETER.sub(r"{\1}", socket.path)
        channel_messages = {"push": {"$ref": f"#/components/messages/{socket.pushes.__name__}"}}
        messages[socket.pushes.__name__] = _message(socket.pushes, "Пуш сервера")
        if socket.receives is not None:
            channel_messages["send"] = {"$ref": f"#/components/messages/{socket.receives.__name__}"}
            channel_messages["error"] = {"$ref": "#/components/messages/ErrorFrame"}
            messages[socket.receives.__name__] = _message(socket.receives, "Кадр клиента")
        channels[name] = {
            "address": path,
            "title": socket.summary,
            "description": _description(socket),
            "parameters": {
                param: {"description": "Id (целое, с 1)."} for param, _ in PATH_PARAMETER.findall(socket.path)
            },
            "messages": channel_messages,
            "bindings": {
                "ws": {
                    "query": {
                        "type": "object",
                        "properties": {q: QUERY_PARAMETERS[q]["schema"] for q in socket.query},
                        "required": ["token"],
                    }
                }
            },
        }
        operations[f"{name}_receive"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Пуши: {socket.pushes.__name__}",
            "messages": [{"$ref": f"#/channels/{name}/messages/push"}],
        }
        if socket.receives is not None:
            operations[f"{name}_send"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{name}"},
                "summary": "Отправка сообщения; неверный кадр получает кадр ошибки, сокет остается открытым",
                "messages": [{"$ref": f"#/channels/{name}/messages/send"}],
                "reply": {"messages": [{"$ref": f"#/channels/{name}/messages/error"}]},
            }
    messages["ErrorFrame"] = {
        "name": "ErrorFrame",
        "summary": "Кадр ошибки: как тело ответа 400 или 422",
        "contentType": "application/json",
        "payload": {
            "oneOf": [{"$ref": "#/components/schemas/ErrorOut"}, {"$ref": "#/components/schemas/ValidationErrorOut"}]
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{title}: WebSocket",
            "version": version,
            "description": (
                "Потоки в реальном времени. Аутентификация — access-токен в `?token=`. Отказ — закрытие с кодом "
                "(после accept, чтобы код дошел до клиента):\n\n"
                + "\n".join(f"- `{code}` — {text}" for code, text in CLOSE_CODES.items())
                + "\n\nПричина закрытия (reason) — краткий текст на русском."
                + "\n\nОбычный HTTP-запрос на эти адреса (без `Upgrade: websocket` и `Connection: Upgrade`) — "
                "426 Upgrade Required; метод, отличный от GET, — 405."
            ),
        },
        "servers": {"api": _server(public_url)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": definitions.get("$defs", {}), "messages": messages},
    }


def _server(public_url: str) -> dict[str, Any]:
    """The AsyncAPI server at `public_url`: `wss` behind https, the URL's path as its `pathname`."""
    url = urlsplit(public_url)
    server = {"host": url.netloc, "protocol": "wss" if url.scheme == "https" else "ws"}
    if url.path.strip("/"):
        server["pathname"] = url.path.rstrip("/")
    return server | {"description": "Тот же хост, что и REST (UGC_PUBLIC_URL)."}


def _message(model: type[BaseModel], summary: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": model.__name__,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
    }
    if model in EXAMPLES:
        message["examples"] = [{"payload": EXAMPLES[model]}]
    return message


def _description(socket: DocumentedSocket) -> str:
    codes = ", ".join(f"`{code}`" for code in socket.closes)
    return f"{socket.summary}. Закрывается с кодами: {codes} (см. описание документа)."
