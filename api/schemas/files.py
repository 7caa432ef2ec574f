"""A user's files as answered: the upload's answer and the list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.schemas.out import Out, Row


class FileOut(Out):
    id: int
    name: str
    url: str
    size: int
    content_type: str
    uploaded_at: datetime


def download_url(public_url: str, file_id: int) -> str:
    """A file's `url`: its authenticated download route (DESIGN.md, "Files")."""
    return f"{public_url}/api/v1/files/{file_id}/download/"


def render_file(public_url: str, row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "url": download_url(public_url, row["id"]),
        "size": row["size"],
        "content_type": row["content_type"],
        "uploaded_at": row["uploaded_at"],
    }
