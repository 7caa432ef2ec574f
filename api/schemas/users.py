from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, Field, StringConstraints, TypeAdapter, field_validator

from api.errors import explained
from api.schemas.auth import Name
from api.schemas.creator_skills import CreatorSkillOut, render_creator_skill
from api.schemas.out import Number, Out, Row, omittable
from api.schemas.patch import PatchIn
from api.schemas.portfolio import PortfolioItemOut, render_item

Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=32, pattern=explained(r"^[0-9+()\- ]*$", "phone_characters")),
]
Bio = Annotated[str, StringConstraints(max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Long = Annotated[str, StringConstraints(max_length=2000)]
Link = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]

CLIENT, CREATOR = "Клиент", "Креатор"


class UserPatchIn(PatchIn):
    first_name: Name | None = None
    last_name: Name | None = None
    phone: Phone | None = None
    bio: Bio | None = None


class UserUpdatedOut(Out):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    full_name: str
    avatar: str | None
    phone: str
    bio: str
    is_verified: bool
    user_type: str
    date_joined: datetime


class UserOut(UserUpdatedOut):
    has_creator_profile: bool
    has_client_profile: bool


def render_user(row: Row, *, with_profile_flags: bool = True) -> dict[str, Any]:
    """UserOut; UserUpdatedOut (the spec's PATCH answer) without the profile flags."""
    full_name = f"{row['first_name']} {row['last_name']}".strip()
    user = {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "full_name": full_name,
        "avatar": row["avatar"],
        "phone": row["phone"],
        "bio": row["bio"],
        "is_verified": bool(row["is_verified"]),
        "user_type": CREATOR if row["creator_profile_id"] is not None else CLIENT,
        "date_joined": row["date_joined"],
    }
    if with_profile_flags:
        user["has_creator_profile"] = row["creator_profile_id"] is not None
        user["has_client_profile"] = True
    return user


_URL = TypeAdapter(AnyHttpUrl)


def _check_link(value: str) -> str:
    if value:
        try:
            _URL.validate_python(value)
        except ValueError:
            raise ValueError("Введите правильный URL.") from None
    return value


def _check_social_link(value: str) -> str:
    """A profile on a network: its web address or a handle (`@anna`). Anything with a scheme or a space
    must be an http(s) URL, so no `javascript:` or `data:` link reaches the pages that show it."""
    if any(char.isspace() for char in value):
        raise ValueError("Введите правильный URL.")
    return _check_link(value) if ":" in value else value


SocialLinks = Annotated[
    dict[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)],
        Annotated[Link, AfterValidator(_check_social_link)],
    ],
    Field(max_length=20),
]


class CreatorProfileIn(BaseModel):
    specialization: Short
    experience: Long = ""
    portfolio_link: Link = ""
    social_links: SocialLinks = Field(default_factory=dict)

    @field_validator("portfolio_link")
    @classmethod
    def link(cls, value: str) -> str:
        return _check_link(value)


class CreatorProfilePatchIn(PatchIn):
    specialization: Short | None = None
    experience: Long | None = None
    portfolio_link: Link | None = None
    social_links: SocialLinks | None = None

    @field_validator("portfolio_link")
    @classmethod
    def link(cls, value: str) -> str:
        return _check_link(value)


class UserRef(Out):
    id: int
    username: str


class CreatorProfileOut(Out):
    id: int
    user: UserRef
    specialization: str
    experience: str
    portfolio_link: str
    social_links: dict[str, str]
    rating: Number = Field(description="The mean of the creator's review ratings, 0 before the first review.")
    completed_orders: int
    created_at: datetime
    updated_at: datetime


def render_profile(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": {"id": row["user_id"], "username": row["username"]},
        "specialization": row["specialization"],
        "experience": row["experience"],
        "portfolio_link": row["portfolio_link"],
        "social_links": row["social_links"],
        "rating": row["rating"] if row["rating"] is not None else Decimal(0),
        "completed_orders": row["completed_orders"] or 0,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class CreatorDetailOut(CreatorProfileOut):
    """`GET /api/v1/creators/{id}/`: the profile, with its skills and portfolio when `?detail=true` asks."""

    skills: list[CreatorSkillOut] = omittable("Only with `?detail=true`.")
    portfolio: list[PortfolioItemOut] = omittable("Only with `?detail=true`, newest first.")


def render_detail(public_url: str, row: Row, skills: list[Row], portfolio: list[Row]) -> dict[str, Any]:
    return render_profile(row) | {
        "skills": [render_creator_skill(skill) for skill in skills],
        "portfolio": [render_item(public_url, item) for item in portfolio],
    }
