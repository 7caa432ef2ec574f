from __future__ import annotations

from datetime import datetime

from api.schemas.out import Out


class FileOut(Out):
    id: int
    name: str
    url: str
    size: int
    content_type: str
    uploaded_at: datetime
