"""The spec's JSON examples (spec/ugc-market-api.ru.md), attached to the document's bodies by model.

Placeholders of the spec ("string", "YYYY-MM-DDThh:mm:ss") are replaced with plausible values so
that every example is a valid instance of its model (tests/test_openapi.py checks it); the shape
and the spec's own values are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from api.errors import message
from api.schemas import auth, creator_skills, files, messaging, orders, portfolio, reference, services, users

_AT = "2025-06-15T12:00:00Z"
_SKILL = {"id": 1, "name": "Photoshop", "description": "Редактирование изображений"}
_SKILL_2 = {"id": 2, "name": "Illustrator", "description": "Векторная графика"}
_IMAGES = [
    {"id": 1, "image": "http://example.com/media/portfolio/images/logo1.jpg", "caption": "Вариант 1", "order": 1},
    {"id": 2, "image": "http://example.com/media/portfolio/images/logo2.jpg", "caption": "Вариант 2", "order": 2},
]
_ITEM = {
    "id": 1,
    "title": "Дизайн логотипа",
    "description": "Разработка логотипа для компании",
    "cover_image": "http://example.com/media/portfolio/covers/logo.jpg",
    "images": _IMAGES,
    "created_at": _AT,
    "updated_at": _AT,
    "creator_profile": 1,
}
_SOCIAL = {"instagram": "https://instagram.com/anna", "behance": "https://behance.net/anna"}
_PROFILE = {
    "id": 1,
    "user": {"id": 1, "username": "anna"},
    "specialization": "Видеограф",
    "experience": "5 лет",
    "portfolio_link": "https://anna.example.com",
    "social_links": _SOCIAL,
    "rating": 0,
    "completed_orders": 0,
    "created_at": _AT,
    "updated_at": _AT,
}
_USER = {
    "id": 1,
    "username": "anna",
    "email": "user@example.com",
    "first_name": "Анна",
    "last_name": "Смирнова",
    "full_name": "Анна Смирнова",
    "avatar": None,
    "phone": "+7 900 000-00-00",
    "bio": "Снимаю видео",
    "is_verified": True,
    "user_type": "Клиент",
    "date_joined": _AT,
}
_SERVICE = {
    "id": 1,
    "title": "Видеообзор товара",
    "description": "Вертикальное видео до 60 секунд",
    "category_id": 1,
    "creator": {"id": 1, "user_id": 1, "username": "anna", "rating": 4.67},
    "base_price": 1000,
    "delivery_time": 7,
    "options": [{"id": 1, "name": "Субтитры", "description": "Русские субтитры", "price": 200}],
    "tags": ["tag1", "tag2"],
    "allows_modifications": True,
    "modifications_price": 0,
    "is_active": True,
    "created_at": _AT,
    "updated_at": _AT,
}
_ORDER = {
    "id": 1,
    "service": {"id": 1, "title": "Видеообзор товара", "creator": {"id": 1, "user_id": 1, "username": "anna"}},
    "buyer": {"id": 2, "username": "boris"},
    "status": "pending",
    "requirements": "Обзор наушников, 30 секунд",
    "price": 1000,
    "total_price": 1200,
    "delivery_date": "2025-06-22",
    "created_at": _AT,
    "updated_at": _AT,
    "selected_options": [{"id": 1, "name": "Субтитры", "description": "Русские субтитры", "price": 200}],
    "is_late": False,
    "cancellation_reason": None,
    "delivered_at": None,
    "completed_at": None,
    "cancelled_at": None,
}
_NOTIFICATION = {
    "id": 1,
    "type": "new_order",
    "message": "У вас новый заказ!",
    "data": {"order_id": 1},
    "created_at": _AT,
    "is_read": False,
}
_MESSAGE = {"id": 1, "sender": {"id": 1, "username": "anna", "avatar": None}, "message": "Привет!", "timestamp": _AT}

EXAMPLES: dict[type[BaseModel], Any] = {
    auth.RegisterIn: {
        "username": "anna",
        "email": "user@example.com",
        "password": "secret-pass",
        "first_name": "Анна",
        "last_name": "Смирнова",
    },
    auth.RegisterOut: {
        "id": 1,
        "username": "anna",
        "email": "user@example.com",
        "first_name": "Анна",
        "last_name": "Смирнова",
    },
    auth.VerifyEmailIn: {"token": "eyJ1c2VyIjoxfQ.abc-123_x"},
    auth.VerifyEmailOut: {"message": "Email успешно подтвержден"},
    auth.TokenIn: {"username": "anna", "password": "secret-pass"},
    auth.TokenOut: {"access": "eyJhbGciOiJIUzI1NiJ9.access.sig", "refresh": "eyJhbGciOiJIUzI1NiJ9.refresh.sig"},
    auth.RefreshIn: {"refresh": "eyJhbGciOiJIUzI1NiJ9.refresh.sig"},
    users.UserOut: _USER | {"has_creator_profile": False, "has_client_profile": True},
    users.UserPatchIn: {"first_name": "Анна", "last_name": "Смирнова", "phone": "+7 900 000-00-00", "bio": "Снимаю"},
    users.UserUpdatedOut: _USER,
    users.CreatorProfileIn: {
        "specialization": "Видеограф",
        "experience": "5 лет",
        "portfolio_link": "https://anna.example.com",
        "social_links": _SOCIAL,
    },
    users.CreatorProfilePatchIn: {"experience": "6 лет"},
    users.CreatorProfileOut: _PROFILE,
    users.CreatorDetailOut: _PROFILE,
    orders.PlaceOrderIn: {
        "service_id": 1,
        "requirements": "Обзор наушников, 30 секунд",
        "delivery_date": "2025-06-22",
        "selected_option_ids": [1],
    },
    orders.OrderOut: _ORDER,
    orders.CancelIn: {"reason": "Передумал"},
    orders.CancelledOut: {"id": 1, "status": "cancelled", "cancellation_reason": "Передумал", "cancelled_at": _AT},
    orders.ApprovedOut: {"id": 1, "status": "completed", "completed_at": _AT},
    orders.StatusOut: {"id": 1, "status": "in_progress", "updated_at": _AT},
    orders.DeliverIn: {"message": "Готово, смотрите файлы", "file_ids": [1, 2, 3]},
    orders.ReviewIn: {"content": "Отличная работа", "rating": 5},
    services.ServiceIn: {
        "title": "Видеообзор товара",
        "description": "Вертикальное видео до 60 секунд",
        "category_id": 1,
        "base_price": 1000,
        "delivery_time": 7,
        "options": [{"name": "Субтитры", "description": "Русские субтитры", "price": 200}],
        "tags": ["tag1", "tag2"],
    },
    services.ServiceOut: _SERVICE,
    services.LegacyServiceOut: {
        "id": 1,
        "creator_profile": 1,
        "creator_username": "anna",
        "title": "Видеообзор товара",
        "description": "Вертикальное видео до 60 секунд",
        "price": "1000.00",
        "estimated_time": "7 дней",
        "allows_modifications": True,
        "modifications_price": "0.00",
        "is_active": True,
        "created_at": "2024-06-22T18:00:00Z",
        "updated_at": "2024-06-22T18:00:00Z",
    },
    messaging.StartConversationIn: {"recipient_id": 2},
    messaging.SendMessageIn: {"message": "Привет!"},
    messaging.MessageOut: _MESSAGE,
    messaging.NotificationReadOut: {"id": 1, "is_read": True},
    files.FileOut: {
        "id": 1,
        "name": "brief.jpg",
        "url": "http://127.0.0.1:8000/api/v1/files/1/download/",
        "size": 1024,
        "content_type": "image/jpeg",
        "uploaded_at": _AT,
    },
    reference.SkillOut: _SKILL,
    creator_skills.CreatorSkillIn: {"skill": 1, "level": 4},
    creator_skills.CreatorSkillLevelIn: {"level": 5},
    creator_skills.CreatorSkillPatchIn: {"level": 5},
    creator_skills.CreatorSkillOut: {"id": 1, "skill": _SKILL, "level": 4, "creator_profile": 1},
    creator_skills.BulkUpdateIn: [
        {"skill_id": 1, "level": 3},
        {"skill_id": 2, "level": 5},
        {"skill_id": 3, "level": 4},
    ],
    creator_skills.BulkUpdateOut: [
        {"id": 1, "skill_id": 1, "skill_name": "Photoshop", "level": 3, "created": False},
        {"id": 2, "skill_id": 2, "skill_name": "Illustrator", "level": 5, "created": False},
        {"id": 3, "skill_id": 3, "skill_name": "After Effects", "level": 4, "created": True},
    ],
    portfolio.PortfolioItemOut: _ITEM,
    portfolio.PortfolioImageOut: _IMAGES[0] | {"portfolio_item": 1},
}

# Examples of a list's page, by the model of its items.
PAGE_EXAMPLES: dict[type[BaseModel] | None, Any] = {
    reference.SkillOut: {
        "count": 10,
        "next": "http://example.com/api/skills/?page=2",
        "previous": None,
        "results": [_SKILL, _SKILL_2],
    },
    creator_skills.CreatorSkillOut: {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {"id": 1, "skill": _SKILL, "level": 4, "creator_profile": 1},
            {"id": 2, "skill": _SKILL_2, "level": 5, "creator_profile": 1},
        ],
    },
    portfolio.PortfolioItemOut: {"count": 1, "next": None, "previous": None, "results": [_ITEM]},
    portfolio.PortfolioImageOut: {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [image | {"portfolio_item": 1} for image in _IMAGES],
    },
    orders.OrderOut: {
        "count": 100,
        "next": "http://api.example.org/api/v1/orders/?page=2",
        "previous": None,
        "results": [_ORDER],
    },
    orders.HistoryEntry: {
        "count": 4,
        "next": "http://api.example.org/api/v1/orders/1/history/?page_size=1&page=2",
        "previous": None,
        "results": [
            {
                "version": 1,
                "type": "OrderPlaced",
                "occurred_at": "2026-06-15T12:00:00.120000Z",
                "actor": {"kind": "user", "id": 2, "username": "boris"},
                "request_id": "2f1c9e0a8b7d4c3e9f6a5b4c3d2e1f00",
                "data": {"number": 1, "buyer": 2, "total_price": 1200, "delivery_date": "2026-06-25"},
                "position": 17,
                "recorded_at": "2026-06-15T12:00:00.125431Z",
                "stream": "b5e6e275-a537-5a79-900f-ffdcb10c3167",
                "topic": "ugc.Order.Placed",
                "payload": '{"number":1,"buyer":2,"total_price":{"_type_":"decimal_str","_data_":"1200.00"}}',
                "hash": "9f2c" + "0" * 60,
                "previous_hash": "0" * 64,
            }
        ],
    },
    messaging.NotificationOut: {"count": 1, "next": None, "previous": None, "results": [_NOTIFICATION]},
    messaging.MessageOut: {"count": 1, "next": None, "previous": None, "results": [_MESSAGE]},
}


# What a duplicate is called, by the resource (the tag) that refuses it.
_DUPLICATES = {
    "auth": "username_taken",
    "users": "creator_profile_exists",
    "skills": "skill_name_taken",
    "creator-skills": "creator_skill_exists",
}


def _conflict(kind: str, tag: str) -> dict[str, Any]:
    if kind == "state":
        return {"error": message("order_wrong_status"), "status": "completed"}
    if kind == "unique":
        return {"error": message(_DUPLICATES.get(tag, "concurrent_update"))}
    if kind == "done":
        return {"error": message("email_already_verified")}
    return {"error": message("idempotency_key_in_flight")}


# The error bodies with the spec's (and DESIGN.md's) messages, by (what conflicts, the resource's tag,
# the message key of the operation's 401): only a 409's and a 401's example depend on them.
ERROR_EXAMPLES: dict[int, Callable[[str, str, str], dict[str, Any]]] = {
    400: lambda *_: {"error": message("malformed_json")},
    401: lambda _conflict, _tag, refusal: {"detail": message(refusal)},
    403: lambda *_: {"detail": message("permission_denied")},
    404: lambda *_: {"detail": message("not_found")},
    406: lambda *_: {"detail": message("not_acceptable")},
    409: lambda conflict, tag, _refusal: _conflict(conflict, tag),
    412: lambda *_: {"error": message("stale_version"), "version": 3},
    413: lambda *_: {"error": message("too_large")},
    415: lambda *_: {"error": message("unsupported_content_coding")},
    416: lambda *_: {"error": message("range_not_satisfiable")},
    422: lambda *_: {"error": message("validation_failed"), "fields": {"title": [message("file_required")]}},
    429: lambda *_: {"detail": message("throttled")},
    503: lambda *_: {"detail": message("unavailable")},
}
