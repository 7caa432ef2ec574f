"""Signed checkpoints of the chains' heads, kept outside the database (README: "Audit: the hash chain").

The chain alone needs no key, so whoever can rewrite the database can rewrite it; a checkpoint signs
each context's head (position and link) with `UGC_AUDIT_KEY`, which the database never holds, so
cutting events off a log's end, or rewriting what a checkpoint covers, shows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ugc.platform.chain import GENESIS, ChainHead, format_time
from ugc.platform.durable import draft_of, write_whole

FORMAT = "ugc-audit-checkpoint/1"
PREFIX = "checkpoint-"
STALE_DRAFT = 60.0  # seconds


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(document: Mapping[str, Any], key: str) -> str:
    """HMAC-SHA256 with the key's UTF-8 bytes of the canonical JSON of `document` without its signature."""
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    return hmac.new(key.encode("utf-8"), canonical(unsigned), hashlib.sha256).hexdigest()


def unreadable(error: Exception) -> str:
    """What is wrong with a signed file (a checkpoint, a journal line) that could not be read, in words
    rather than Python's: a KeyError's text is the bare name of the field missing."""
    if isinstance(error, KeyError):
        return f"no {error.args[0]!r} field"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON ({error.msg})"
    if isinstance(error, TypeError | AttributeError):
        return "a field of the wrong type"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"a malformed value ({error})"


def signature_matches(given: str, document: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether `given` is `document`'s signature under one of `keys` (UGC_AUDIT_KEY and those being
    rotated out: a document names no key, and an HMAC or two costs nothing), in constant time for
    each. Compared as UTF-8 bytes: `hmac.compare_digest` raises TypeError on a str holding a
    non-ASCII character, which an edited file may well put there, and that must read as unsigned,
    not stop `ugc verify`."""
    return any(hmac.compare_digest(given.encode("utf-8"), signature(document, key).encode("utf-8")) for key in keys)


@dataclass(frozen=True)
class SignedHead:
    position: int
    link: bytes


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    written_at: str
    heads: dict[str, SignedHead]
    signed: bool  # the signature matches one of the keys this process holds


def write_checkpoint(directory: Path, key: str, heads: Mapping[str, ChainHead | None], now: datetime) -> Path:
    """Sign `heads` (None: an empty log) into a new file in `directory`; written whole or not at all."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "written_at": format_time(now),
        "heads": {
            name: {
                "position": head.position if head else 0,
                "link": (head.link if head else GENESIS).hex(),
                "recorded_at": format_time(head.recorded_at) if head else None,
            }
            for name, head in heads.items()
        },
    }
    document["signature"] = signature(document, key)
    path = directory / file_name(document["written_at"])
    write_whole(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    _remove_stale_drafts(directory, path)
    return path


def _remove_stale_drafts(directory: Path, written: Path) -> None:
    """Drafts of other checkpoints a crash left behind (each draft is named after its checkpoint, so
    none is ever written again; `checkpoint-*.partial` is how they were named before durable.py).
    One writer at a time (the projection leader's job), and a draft lives milliseconds: one older
    than STALE_DRAFT is no other writer's."""
    for draft in [*directory.glob(f".{PREFIX}*.json.partial"), *directory.glob(f"{PREFIX}*.partial")]:
        try:
            if draft != draft_of(written) and time.time() - draft.stat().st_mtime > STALE_DRAFT:
                draft.unlink()
        except FileNotFoundError:
            continue


def file_name(written_at: str) -> str:
    """A checkpoint's file name, from the time it signs (`YYYY-MM-DDTHH:MM:SS.ffffffZ`): so a file whose
    name tells another time than its content was renamed, or overwritten with another checkpoint."""
    return f"{PREFIX}{written_at.replace('-', '').replace(':', '').replace('.', '')}.json"


def latest_path(directory: Path) -> Path | None:
    """The checkpoint file named last (names sort by their writer's clock), or None."""
    paths = sorted(directory.glob(f"{PREFIX}*.json")) if directory.is_dir() else []
    return paths[-1] if paths else None


def read_checkpoint(path: Path, keys: tuple[str, ...]) -> Checkpoint:
    """Raises ValueError when the file is not a checkpoint at all."""
    try:
        document = json.loads(path.read_text())
        heads = {
            name: SignedHead(int(head["position"]), bytes.fromhex(head["link"]))
            for name, head in document["heads"].items()
        }
        written_at = str(document["written_at"])
        given = str(document["signature"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path.name} is not a readable checkpoint: {unreadable(error)}") from error
    signed = document.get("format") == FORMAT and signature_matches(given, document, keys)
    return Checkpoint(path, written_at, heads, signed)


class PeriodicCheckpoints:
    """A job of the projection leader: a checkpoint when the newest one is `interval` seconds old.

    Due times follow the newest file, so restarts and a new leader keep the pace instead of
    writing one each.
    """

    def __init__(
        self,
        heads: Callable[[], Mapping[str, ChainHead | None]],
        directory: Path,
        key: str,
        interval: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._heads = heads
        self._directory = directory
        self._key = key
        self._interval = interval
        self._now = now
        self._due: float | None = None  # time.monotonic() of the next checkpoint

    def run_once(self) -> None:
        if self._due is None:
            latest = latest_path(self._directory)
            age = self._interval
            if latest is not None:  # one written while the clock ran fast is new, not from the future
                age = max(time.time() - latest.stat().st_mtime, 0.0)
            self._due = time.monotonic() + max(self._interval - age, 0.0)
        if time.monotonic() >= self._due:
            write_checkpoint(self._directory, self._key, self._heads(), self._now())
            self._due = time.monotonic() + self._interval
