from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from api.ids import PublicId
from api.schemas.patch import PatchIn

Text = Annotated[str, StringConstraints(max_length=5000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class EmptyIn(BaseModel):
    """Commands without a body accept `{}` or nothing."""


class PlaceOrderIn(BaseModel):
    service_id: PublicId
    requirements: Text = ""
    delivery_date: date
    selected_option_ids: Annotated[list[PublicId], Field(max_length=50)] = Field(default_factory=list)


class UpdateOrderIn(PatchIn):
    requirements: Text | None = None
    delivery_date: date | None = None


class CancelIn(BaseModel):
    reason: Reason


class RevisionIn(BaseModel):
    message: Text = ""


class DeliverIn(BaseModel):
    message: Text = ""
    file_ids: Annotated[list[PublicId], Field(max_length=50)] = Field(default_factory=list)


class ReviewIn(BaseModel):
    content: Text = ""
    rating: Annotated[int, Field(ge=1, le=5)]


class Party(BaseModel):
    id: int
    username: str


class OrderService(BaseModel):
    id: int
    title: str
    creator: dict[str, Any]


class OrderOption(BaseModel):
    id: int
    name: str
    description: str
    price: Decimal


class OrderOut(BaseModel):
    id: int
    service: OrderService
    buyer: Party
    status: str
    requirements: str
    price: Decimal
    total_price: Decimal
    delivery_date: date
    created_at: datetime
    updated_at: datetime
    selected_options: list[OrderOption]
    is_late: bool
    cancellation_reason: str | None
    delivered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None


class StatusOut(BaseModel):
    id: int
    status: str
    updated_at: datetime


class CancelledOut(BaseModel):
    id: int
    status: str
    cancellation_reason: str
    cancelled_at: datetime


class ApprovedOut(BaseModel):
    id: int
    status: str
    completed_at: datetime


class DeliveryFile(BaseModel):
    id: int
    name: str
    url: str
    size: int
    content_type: str


class DeliveryOut(BaseModel):
    id: int
    order_id: int
    message: str
    files: list[DeliveryFile]
    created_at: datetime


class ReviewOut(BaseModel):
    id: int
    order_id: int
    rating: int
    content: str
    reviewer: Party
    service_title: str
    created_at: datetime


class HistoryEntry(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    actor: Party | None
    data: dict[str, Any]
