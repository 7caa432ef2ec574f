from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class FileOut(BaseModel):
    id: int
    name: str
    url: str
    size: int
    content_type: str
    uploaded_at: datetime
