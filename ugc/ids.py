"""Public ids are positive integers; aggregate UUIDs are derived from them and stay internal."""

from __future__ import annotations

import unicodedata
from uuid import UUID, uuid5

# Kinds of public ids, each drawn from its own database sequence.
ID_KINDS = (
    "user",
    "creator_profile",
    "category",
    "skill",
    "order",
    "delivery",
    "review",
    "file",
    "creator_skill",
    "portfolio_item",
    "portfolio_image",
    "service",
    "service_option",
    "conversation",
    "message",
)

_NAMESPACE = UUID("4f1c2b9e-8d0a-4c55-9a51-6f7e3c2d1b00")


def aggregate_id(kind: str, key: int | str) -> UUID:
    """The UUID of the aggregate of `kind` whose public id (or other unique key) is `key`."""
    return uuid5(_NAMESPACE, f"{kind}/{key}")


def claim_id(kind: str, value: str) -> UUID:
    """The UUID of the claim on a unique value (a username, an email, a slug)."""
    return uuid5(_NAMESPACE, f"claim/{kind}/{normalise(value)}")


def normalise(value: str) -> str:
    """Fold case and compatibility forms so 'Anna', 'ANNA' and 'Ａnna' claim the same name."""
    return unicodedata.normalize("NFKC", value).casefold().strip()
