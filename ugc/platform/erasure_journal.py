"""The erasure journal: every `ugc users erase`, recorded outside the database (README: "Backups and restores").

Crypto-shredding destroys a person's data keys in the database, so restoring a backup taken before
an erasure brings the keys back. The journal is how the erasure survives: one line per erasure in
`UGC_AUDIT_DIR/erasures.jsonl`, beside the signed checkpoints and kept as they are (copied where the
database's administrators cannot write), signed with `UGC_AUDIT_KEY` as they are, so that only a
holder of the key adds an erasure `ugc users erase --replay` will carry out. A line holds the user's
number, their username (which stays in the log anyway) and the time: no personal data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ugc.platform.chain import format_time
from ugc.platform.checkpoints import signature, signature_matches, unreadable

FORMAT = "ugc-erasure/1"
NAME = "erasures.jsonl"


@dataclass(frozen=True)
class JournaledErasure:
    user: int
    username: str
    erased_at: str
    line: int  # 1-based, to name it


@dataclass(frozen=True)
class Journal:
    erasures: list[JournaledErasure]
    problems: list[str]  # lines that are not signed erasures: each named, none carried out
    # Every user a readable line names, signed or not: one whose line a key no longer configured
    # signed is in the journal, its line named among the problems, not an erasure the journal lost.
    named: frozenset[int] = frozenset()


def record_erasure(directory: Path, key: str, user: int, username: str, at: datetime) -> Path:
    """Append one signed line for the erasure of `user` and make it durable before returning: an
    erasure is journaled before the keys go, so a crash in between leaves it to `--replay`."""
    document: dict[str, object] = {"format": FORMAT, "user": user, "username": username, "erased_at": format_time(at)}
    document["signature"] = signature(document, key)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / NAME
    line = (json.dumps(document, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line)  # one write of a short line with O_APPEND: never interleaved
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def read_journal(directory: Path, keys: tuple[str, ...]) -> Journal:
    """Every signed erasure in the journal (none when there is no journal), and what is wrong with other lines."""
    path = directory / NAME
    if not path.exists():
        return Journal([], [])
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:  # a directory or an unreadable file under its name: no erasure is read from it
        return Journal([], [f"{path} cannot be read: {error.strerror or error}"])
    erasures, problems, named = [], [], set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            document = json.loads(text)
            user, username, erased_at = int(document["user"]), str(document["username"]), str(document["erased_at"])
            erasure = JournaledErasure(user, username, erased_at, number)
            given = str(document["signature"])
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"{path} line {number} is not a readable erasure: {unreadable(error)}")
            continue
        named.add(user)
        if document.get("format") != FORMAT or not signature_matches(given, document, keys):
            problems.append(
                f"{path} line {number}: the signature does not match UGC_AUDIT_KEY "
                "(altered, or signed with another key)"
            )
            continue
        erasures.append(erasure)
    return Journal(erasures, problems, frozenset(named))
