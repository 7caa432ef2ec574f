"""Files written whole and durably: a reader finds the old file or the new one, even after a power loss."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` through a hidden draft beside it (`.<name>.partial`), synced, renamed
    over `path`, and the directory synced: without the syncs a crash can leave the new name on an
    empty file. A draft a crash left behind is overwritten by the next write of the same name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = draft_of(path)
    with draft.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(draft, path)
    sync_directory(path.parent)


def draft_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def sync_file(path: Path) -> None:
    """Make the bytes written to `path` durable."""
    _sync(path, os.O_RDONLY)


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a rename, a removal) durable."""
    _sync(directory, os.O_RDONLY | os.O_DIRECTORY)


def _sync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
