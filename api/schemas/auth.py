from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from api.schemas.out import Out

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150, pattern=r"^[\w.@+-]+$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)]


class RegisterIn(BaseModel):
    username: Username
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password
    first_name: Name = ""
    last_name: Name = ""


class RegisterOut(Out):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str


class VerifyEmailIn(BaseModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class VerifyEmailOut(Out):
    message: str


class TokenIn(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TokenOut(Out):
    access: str
    refresh: str


class RefreshIn(BaseModel):
    refresh: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class AccessOut(Out):
    access: str
