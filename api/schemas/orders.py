from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, RootModel, StringConstraints

from api.ids import PublicId
from api.schemas.out import Number, Out
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


class Party(Out):
    id: int
    username: str


class OrderCreator(Out):
    id: int = Field(description="The creator profile's id (as in /api/v1/creators/{id}/).")
    user_id: int
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


class StatusOut(Out):
    id: int
    status: str
    updated_at: datetime


class CancelledOut(Out):
    id: int
    status: str
    cancellation_reason: str
    cancelled_at: datetime


class ApprovedOut(Out):
    id: int
    status: str
    completed_at: datetime


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


class DeliveriesOut(RootModel[list[DeliveryOut]]):
    """`GET /api/v1/orders/{id}/deliveries/`: every delivery of the order, oldest first."""


class ReviewOut(Out):
    id: int
    order_id: int
    rating: int
    content: str
    reviewer: Party
    service_title: str
    created_at: datetime


class HistoryActor(Out):
    id: int | None = Field(description="The user; null for the scheduler (`username` is then \"system\").")
    username: str


class HistoryEntry(Out):
    version: int
    type: str
    occurred_at: datetime
    actor: HistoryActor
    data: dict[str, Any]


class HistoryOut(RootModel[list[HistoryEntry]]):
    """`GET /api/v1/orders/{id}/history/`: the order's events, oldest first, read from the log."""
