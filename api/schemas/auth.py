from __future__ import annotations

from typing import Annotated

from confusable_homoglyphs import categories
from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints

from api.errors import explained, message
from api.schemas.out import Out

# Scripts a name may mix (Unicode TS #39, "highly restrictive"): Japanese, Chinese and Korean
# writing combines Han with its own scripts, and any of them may come with Latin. Any other mix,
# such as Latin with Cyrillic ('аnnа' beside 'anna'), is how a look-alike of another name is made.
_WRITTEN_TOGETHER = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Digits, punctuation and combining marks belong to no script of their own.
_SHARED = frozenset({"COMMON", "INHERITED"})


def one_script(name: str) -> str:
    """`name` if its letters come from one script (or one of the combinations written together)."""
    scripts = {categories.alias(character) for character in name} - _SHARED
    if len(scripts) > 1 and not any(scripts <= together for together in _WRITTEN_TOGETHER):
        raise ValueError(message("mixed_script_username"))
    return name


Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=150, pattern=explained(r"^[\w.@+-]+$", "username_characters")
    ),
    AfterValidator(one_script),
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


# A token holds no whitespace: what surrounds one (a pasted line's end) is not part of it.
class VerifyEmailIn(BaseModel):
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]


class VerifyEmailOut(Out):
    message: str


class ResendVerificationOut(Out):
    message: str


class TokenIn(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TokenOut(Out):
    access: str
    refresh: str


class RefreshIn(BaseModel):
    refresh: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
