from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints, TypeAdapter, field_validator

from api.schemas.auth import Name
from api.schemas.creator_skills import CreatorSkillOut
from api.schemas.out import Number, Out, omittable
from api.schemas.patch import PatchIn
from api.schemas.portfolio import PortfolioItemOut

Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32, pattern=r"^[0-9+()\- ]*$")]
Bio = Annotated[str, StringConstraints(max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Long = Annotated[str, StringConstraints(max_length=2000)]
Link = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


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


_URL = TypeAdapter(AnyHttpUrl)


def _check_link(value: str) -> str:
    if value:
        try:
            _URL.validate_python(value)
        except ValueError:
            raise ValueError("Введите правильный URL.") from None
    return value


SocialLinks = Annotated[dict[Annotated[str, StringConstraints(max_length=50)], Link], Field(max_length=20)]


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


class CreatorDetailOut(CreatorProfileOut):
    """`GET /api/v1/creators/{id}/`: the profile, with its skills and portfolio when `?detail=true` asks."""

    skills: list[CreatorSkillOut] = omittable("Only with `?detail=true`.")
    portfolio: list[PortfolioItemOut] = omittable("Only with `?detail=true`, newest first.")
