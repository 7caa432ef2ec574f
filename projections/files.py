"""Keeps `files` and each owner's count of files not removed (`file_counts`) from the files log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from ugc.files import StoredFile
from ugc.platform.dialect import Cursor
from ugc.platform.store import Files


class FilesProjection(Projection):
    name = "files"
    applications: ClassVar[tuple[str, ...]] = (Files.name,)
    tables: ClassVar[tuple[str, ...]] = ("files", "file_counts")

    def handlers(self) -> Mapping[type, Handler]:
        return {StoredFile.Uploaded: self.uploaded, StoredFile.RemovedByOwner: self.removed_by_owner}

    def uploaded(self, cur: Cursor, e: StoredFile.Uploaded) -> None:
        cur.execute(
            "INSERT INTO files (id, uuid, owner_id, key, name, size, content_type, uploaded_at, removed) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                e.number,
                str(e.originator_id),
                e.owner_user_number,
                e.key,
                e.name,
                e.size,
                e.content_type,
                e.at,
                False,
            ),
        )
        cur.execute(
            "INSERT INTO file_counts (owner_id, n) VALUES (%s, 1) "
            "ON CONFLICT (owner_id) DO UPDATE SET n = file_counts.n + 1",
            (e.owner_user_number,),
        )

    def removed_by_owner(self, cur: Cursor, e: StoredFile.RemovedByOwner) -> None:
        # Counted out once, while the row still says it is listed.
        cur.execute(
            "UPDATE file_counts SET n = n - 1 "
            "WHERE owner_id = (SELECT owner_id FROM files WHERE uuid = %s AND removed = %s)",
            (str(e.originator_id), False),
        )
        cur.execute("UPDATE files SET removed = %s WHERE uuid = %s", (True, str(e.originator_id)))
