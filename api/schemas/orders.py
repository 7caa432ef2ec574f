from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictInt, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from api.ids import PublicId
from api.schemas.files import download_url
from api.schemas.out import Number, Out, Row
from api.schemas.patch import PatchIn
from api.schemas.services import QueryId
from readmodels.order_history import BadAsOf, parse_moment
from readmodels.orders import is_late

Text = Annotated[str, StringConstraints(max_length=5000)]
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def calendar_date(value: Any) -> date:
    """`value` if it is the spec's `YYYY-MM-DD`, as a date: not a Unix time (pydantic's lax `date`
    reads 1892160000 as 2029-12-17), a time of day, or ISO's other spellings ("20261214", "2026-W50-1")."""
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date_parsing", "Input should be a date as YYYY-MM-DD")


CalendarDate = Annotated[date, BeforeValidator(calendar_date)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class EmptyIn(BaseModel):
    """Commands without a body accept `{}` or nothing."""


class PlaceOrderIn(BaseModel):
    service_id: PublicId
    requirements: Text = ""
    delivery_date: CalendarDate
    selected_option_ids: Annotated[list[PublicId], Field(max_length=50)] = Field(default_factory=list)


class UpdateOrderIn(PatchIn):
    requirements: Text | None = None
    delivery_date: CalendarDate | None = None


class CancelIn(BaseModel):
    reason: Reason


class RevisionIn(BaseModel):
    message: Text = ""


class DeliverIn(BaseModel):
    """A message, files, or both (a link in the message is a delivery); nothing at all is not."""

    message: Text = ""
    file_ids: Annotated[list[PublicId], Field(max_length=50)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _delivers_something(self) -> DeliverIn:
        if not self.message.strip() and not self.file_ids:
            raise ValueError("Добавьте к доставке сообщение или файлы.")
        return self


class ReviewIn(BaseModel):
    content: Text = ""
    rating: Annotated[StrictInt, Field(ge=1, le=5)]


def _moment(value: Any) -> Any:
    """A date (that day's midnight, UTC) or an ISO 8601 time with its time zone, as UTC."""
    if not isinstance(value, str):
        return value
    raw = value.strip()
    try:
        # Both bounds take a time past the microsecond up to the next one (stored times are whole
        # microseconds): T+100ns is after an order placed at T, and before one placed at T+1µs.
        moment = (
            datetime.combine(calendar_date(raw), time(), UTC) if len(raw) == 10 else parse_moment(raw, ceiling=True)
        )
    except BadAsOf as bad:
        raise ValueError(MOMENT_MESSAGES[bad.reason]) from None
    except ValueError:
        raise ValueError(MOMENT_MESSAGES["format"]) from None
    return moment


MOMENT_MESSAGES = {"format": "Ожидается дата или время ISO 8601.", "timezone": "Укажите часовой пояс (например, Z)."}
QueryMoment = Annotated[datetime, BeforeValidator(_moment)]


class OrderQuery(BaseModel):
    """The filters of `GET /api/v1/orders/` beside `status` and `role` (an auditor's apply to every
    order, anyone else's to their own); an empty parameter counts as absent."""

    buyer: QueryId | None = None
    creator: QueryId | None = None
    created_after: QueryMoment | None = None
    created_before: QueryMoment | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> dict[str, str]:
        return {name: params[name] for name in cls.model_fields if params.get(name, "").strip()}


class Party(Out):
    id: int
    username: str


class OrderCreator(Out):
    """An order's creator: profile id, user id and username — `ServiceCreator` without the rating."""

    id: int = Field(description="The creator profile's id (as in /api/v1/creators/{id}/).")
    user_id: int = Field(description="The creator's user id.")
    username: str


class OrderService(Out):
    id: int
    title: str
    creator: OrderCreator


class OrderOption(Out):
    """An option as it was when the order was placed."""

    id: int
    name: str
    description: str
    price: Number


class OrderOut(Out):
    id: int
    service: OrderService
    buyer: Party
    status: str
    requirements: str
    price: Number
    total_price: Number
    delivery_date: date
    created_at: datetime
    updated_at: datetime
    selected_options: list[OrderOption]
    is_late: bool
    cancellation_reason: str | None
    delivered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None


def render_order(row: Row, today: date) -> dict[str, Any]:
    """`row` is the order's read row, or an order just appended (`Order.as_row()`); `today` decides `is_late`."""
    return {
        "id": row["id"],
        "service": {
            "id": row["service_id"],
            "title": row["service_title"],
            "creator": {
                "id": row["creator_profile_id"],
                "user_id": row["creator_id"],
                "username": row["creator_username"],
            },
        },
        "buyer": {"id": row["buyer_id"], "username": row["buyer_username"]},
        "status": row["status"],
        "requirements": row["requirements"],
        "price": row["price"],
        "total_price": row["total_price"],
        "delivery_date": row["delivery_date"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "selected_options": [
            # A number, as every price: the read model keeps an option's price as JSON text.
            {"id": o["id"], "name": o["name"], "description": o.get("description", ""), "price": Decimal(o["price"])}
            for o in row["selected_options"]
        ],
        "is_late": is_late(row, today),
        "cancellation_reason": row["cancellation_reason"],
        "delivered_at": row["delivered_at"],
        "completed_at": row["completed_at"],
        "cancelled_at": row["cancelled_at"],
    }


class StatusOut(Out):
    id: int
    status: str
    updated_at: datetime


def render_status(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "status": row["status"], "updated_at": row["updated_at"]}


class CancelledOut(Out):
    id: int
    status: str
    cancellation_reason: str
    cancelled_at: datetime


def render_cancelled(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "cancellation_reason": row["cancellation_reason"],
        "cancelled_at": row["cancelled_at"],
    }


class ApprovedOut(Out):
    id: int
    status: str
    completed_at: datetime


def render_approved(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "status": row["status"], "completed_at": row["completed_at"]}


class DeliveryFile(Out):
    id: int
    name: str
    url: str
    size: int
    content_type: str


class DeliveryOut(Out):
    id: int
    order_id: int
    message: str
    files: list[DeliveryFile]
    created_at: datetime


def render_delivery(public_url: str, row: Row, files: Mapping[int, Row]) -> dict[str, Any]:
    """`files`: the stored files by id, of this delivery at least (a file missing from it is left out)."""
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "message": row["message"],
        "files": [
            {
                "id": files[file_id]["id"],
                "name": files[file_id]["name"],
                "url": download_url(public_url, file_id),
                "size": files[file_id]["size"],
                "content_type": files[file_id]["content_type"],
            }
            for file_id in row["file_ids"]
            if file_id in files
        ],
        "created_at": row["created_at"],
    }


class ReviewOut(Out):
    id: int
    order_id: int
    rating: int
    content: str
    reviewer: Party
    service_title: str
    created_at: datetime


def render_review(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "rating": row["rating"],
        "content": row["content"],
        "reviewer": {"id": row["reviewer_id"], "username": row["reviewer_username"]},
        "service_title": row["service_title"],
        "created_at": row["created_at"],
    }


class HistoryActor(Out):
    kind: Literal["user", "system", "operator", "unrecorded"] = Field(
        description="Кто: пользователь, система (планировщик), оператор команды CLI или не записано (старые события)."
    )
    id: int | None = Field(description="Id пользователя; null для остальных.")
    username: str | None = Field(
        description="Имя пользователя (как при размещении заказа), `scheduler` для системы, логин оператора; "
        "null, если не записано."
    )


class HistoryEntry(Out):
    """One stored event of the order: what happened (`data`), who caused it, when, and how it was recorded."""

    version: int = Field(description="Версия заказа после события, с 1 (как в `?as_of=`).")
    type: str
    occurred_at: datetime = Field(description="Время события в предметной области (часы сервиса).")
    actor: HistoryActor
    request_id: str | None = Field(description="Id HTTP-запроса, вызвавшего событие; null для планировщика и CLI.")
    data: dict[str, Any] = Field(description="Поля события предметной области (без служебных полей хранилища).")
    position: int = Field(description="Позиция события в журнале заказов (номер уведомления), общая для всех заказов.")
    recorded_at: datetime | None = Field(
        description="Когда хранилище записало событие; null для событий, записанных до появления цепочки."
    )
    stream: str = Field(description="Id потока событий заказа (UUID агрегата), входит в хеш.")
    topic: str = Field(description="Сохраненный тип события (например, `ugc.Order.Placed`), входит в хеш.")
    payload: str = Field(
        description="Сохраненное состояние события — в точности текст JSON из журнала, покрытый хешем "
        "(у старых версий событий — со служебными полями); `data` — его прочтение текущим кодом."
    )
    hash: str | None = Field(description="SHA-256 события (hex), сцепленный с предыдущим; рецепт — в README.")
    previous_hash: str | None = Field(
        description="Хеш предыдущей версии заказа (64 нуля для версии 1), с которым сцеплен `hash`."
    )
